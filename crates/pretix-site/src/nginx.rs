//! The one seam for nginx: `nginx -t` (the validator every tool that writes nginx configuration
//! uses before anything goes live) and `nginx -s reload`, both through the one spawn wrapper
//! (`exec.rs`).
//!
//! An [`Nginx`] names a configuration tree: the machine's own (nginx's compiled-in prefix and
//! `nginx.conf`, `/etc/nginx/nginx.conf` on Debian), or another one given by prefix and main file
//! (`-p PREFIX -c CONF`), which is what tests and `--root` runs use so the machine's own nginx is
//! never read or signalled. [`ScratchTree`] is such a tree made for one check: a minimal main
//! configuration that includes only the given files, with every path nginx writes (error log,
//! pid, temp dirs) inside a temp dir.

use std::path::PathBuf;
use std::process::Command;

use crate::exec::{self, ExecError};

/// Where Debian installs the nginx binary (it is not on a non-root user's PATH).
pub const DEBIAN_BINARY: &str = "/usr/sbin/nginx";

/// Why nginx could not validate or reload a configuration.
#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error("nginx is not installed (no nginx on PATH or at {DEBIAN_BINARY}): install it with apt-get install nginx")]
    NotInstalled,
    /// `nginx -t` ran and refused the configuration; `detail` is nginx's own message.
    #[error("nginx -t refused the configuration: {detail}")]
    Refused { detail: String },
    /// `nginx -s reload` ran and failed (no master process, a pid file it cannot read, ...).
    #[error("nginx -s reload failed: {detail}")]
    ReloadFailed { detail: String },
    #[error("{0}")]
    Exec(ExecError),
    #[error("prepare a scratch nginx configuration: {0}")]
    Scratch(std::io::Error),
}

/// What `nginx -t` said about a configuration it accepted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestReport {
    /// nginx's `[warn]` lines (a conflicting server name, a deprecated directive), without the
    /// `nginx: ` prefix: the configuration works, but a sysadmin should read them.
    pub warnings: Vec<String>,
}

/// One nginx configuration tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nginx {
    binary: PathBuf,
    prefix: Option<PathBuf>,
    conf: Option<PathBuf>,
}

impl Nginx {
    /// The machine's nginx with its own configuration (no `-p`, no `-c`), or the tree given by
    /// `prefix` and `conf` when set. The binary is nginx on PATH, else Debian's `/usr/sbin/nginx`.
    pub fn new(prefix: Option<PathBuf>, conf: Option<PathBuf>) -> Nginx {
        Nginx {
            binary: find_binary(),
            prefix,
            conf,
        }
    }

    /// Whether the nginx binary exists, so a tool can refuse before it changes anything.
    pub fn is_installed(&self) -> bool {
        self.binary.is_file()
    }

    /// The command line nginx is run with for this tree, for messages.
    pub fn describe(&self) -> String {
        exec::display_command(&self.command(&[]))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        if let Some(prefix) = &self.prefix {
            // nginx glues the prefix and relative names together as strings: keep the slash.
            let mut prefix = prefix.display().to_string();
            if !prefix.ends_with('/') {
                prefix.push('/');
            }
            command.arg("-p").arg(prefix);
        }
        if let Some(conf) = &self.conf {
            command.arg("-c").arg(conf);
        }
        command.args(args);
        command
    }

    /// `nginx -t`: the whole configuration of this tree, as nginx itself reads it (every
    /// included site, the certificates and keys loaded).
    pub fn test(&self, log: &mut dyn FnMut(&str)) -> Result<TestReport, NginxError> {
        let output = self.run(&["-t", "-q"], log, |detail| NginxError::Refused { detail })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        Ok(TestReport {
            warnings: stderr
                .lines()
                .filter(|line| line.contains("[warn]"))
                .map(|line| line.trim_start_matches("nginx: ").to_owned())
                .collect(),
        })
    }

    /// `nginx -T`: the whole configuration as nginx reads it, every included file introduced by
    /// a `# configuration file PATH:` line; for checking that a file is really included.
    pub fn dump(&self, log: &mut dyn FnMut(&str)) -> Result<String, NginxError> {
        let output = self.run(&["-T", "-q"], log, |detail| NginxError::Refused { detail })?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `nginx -s reload`: signals the master process named by this tree's pid file. For an nginx
    /// that systemd does not manage; under systemd, reload through `service::Services`.
    pub fn reload_signal(&self, log: &mut dyn FnMut(&str)) -> Result<(), NginxError> {
        self.run(&["-s", "reload"], log, |detail| NginxError::ReloadFailed { detail })?;
        Ok(())
    }

    /// Runs nginx with `args` on this tree: a missing binary is `NotInstalled`, a non-zero exit
    /// `refused(nginx's own messages)`.
    fn run(
        &self,
        args: &[&str],
        log: &mut dyn FnMut(&str),
        refused: fn(String) -> NginxError,
    ) -> Result<std::process::Output, NginxError> {
        exec::run(&mut self.command(args), None, log).map_err(|error| match error {
            ExecError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                NginxError::NotInstalled
            }
            ExecError::Status { stderr, .. } => refused(nginx_messages(&stderr)),
            other => NginxError::Exec(other),
        })
    }
}

/// nginx's messages without its `nginx: ` prefixes and the closing "test failed" line, which
/// says nothing the `[emerg]` line has not.
fn nginx_messages(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .split(" / ")
        .flat_map(str::lines)
        .map(|line| line.trim().trim_start_matches("nginx: ").trim())
        .filter(|line| !line.is_empty() && !line.starts_with("configuration file") && !line.ends_with("test failed"))
        .collect();
    if lines.is_empty() {
        stderr.trim().to_owned()
    } else {
        lines.join("; ")
    }
}

fn find_binary() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(DEBIAN_BINARY))
}

/// A throwaway configuration tree holding one site inside `http { }`: for checking a site when
/// the host's whole tree cannot be used (a `--root` staging directory, whose main `nginx.conf`
/// includes absolute paths of the machine itself). Removed on drop.
pub struct ScratchTree {
    dir: tempfile::TempDir,
}

impl ScratchTree {
    pub fn new(site: &str) -> Result<ScratchTree, NginxError> {
        let dir = tempfile::Builder::new()
            .prefix("pretix-toolkit-nginx-check.")
            .tempdir()
            .map_err(NginxError::Scratch)?;
        let base = dir.path().display().to_string();
        let mut text = format!(
            "# scratch configuration of a toolkit check: only the site below, every written path here\n\
             pid {base}/nginx.pid;\n\
             error_log {base}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   client_body_temp_path {base}/client_body;\n\
             \x20   proxy_temp_path {base}/proxy;\n\
             \x20   fastcgi_temp_path {base}/fastcgi;\n\
             \x20   uwsgi_temp_path {base}/uwsgi;\n\
             \x20   scgi_temp_path {base}/scgi;\n"
        );
        text.push_str(&format!("    include {base}/site.conf;\n}}\n"));
        std::fs::write(dir.path().join("site.conf"), site).map_err(NginxError::Scratch)?;
        std::fs::write(dir.path().join("nginx.conf"), text).map_err(NginxError::Scratch)?;
        Ok(ScratchTree { dir })
    }

    /// The tree as an [`Nginx`] to test.
    pub fn nginx(&self) -> Nginx {
        Nginx::new(
            Some(self.dir.path().to_path_buf()),
            Some(self.dir.path().join("nginx.conf")),
        )
    }
}

/// Refuses text that would end or change an nginx directive when written into one: whitespace,
/// `;`, `{`, `}`, quotes, `$` (a variable), `#` (a comment), `\` and control characters. Every
/// value from the document that a tool renders into nginx configuration passes this first.
pub fn validate_word(text: &str, field: &str) -> Result<(), crate::error::ToolError> {
    let bad = text
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | '{' | '}' | '"' | '\'' | '$' | '#' | '\\'));
    match (text.is_empty(), bad) {
        (true, _) => Err(crate::error::ToolError::input(field, "is empty")),
        (false, Some(c)) => Err(crate::error::ToolError::input(
            field,
            format!(
                "{} contains {}, which nginx reads as syntax: nothing an nginx directive could be made of is \
                 accepted here; remove it",
                text.escape_debug(),
                c.escape_debug()
            ),
        )),
        (false, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_ends_a_directive() {
        for bad in [
            "a;b", "a b", "a{", "}", "a\"", "'", "$host", "a#b", "a\\b", "a\nb", "a\tb", "",
        ] {
            assert!(validate_word(bad, "proxy.x").is_err(), "{bad:?} accepted");
        }
        for good in [
            "tickets.example.org",
            "/etc/ssl/certs/a.pem",
            "127.0.0.1:8345",
            "[::1]:8345",
        ] {
            assert!(validate_word(good, "proxy.x").is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn a_missing_nginx_says_how_to_install_it() {
        let missing = Nginx {
            binary: PathBuf::from("/nonexistent/sbin/nginx"),
            prefix: None,
            conf: None,
        };
        let error = missing.test(&mut |_| {}).expect_err("no nginx");
        assert!(matches!(error, NginxError::NotInstalled), "{error}");
        assert!(error.to_string().contains("apt-get install nginx"), "{error}");
    }

    #[test]
    fn messages_lose_the_noise() {
        let stderr = "nginx: [emerg] cannot load certificate \"/x\": BIO_new_file() failed / nginx: configuration file /t/nginx.conf test failed";
        assert_eq!(
            nginx_messages(stderr),
            "[emerg] cannot load certificate \"/x\": BIO_new_file() failed"
        );
    }
}
