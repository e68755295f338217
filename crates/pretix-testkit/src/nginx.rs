//! nginx with a temp prefix on a free loopback port: every path it writes (pid, logs, temp
//! dirs) is inside the prefix, so the machine's own nginx and /var/log are never touched.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{INSTALL_SCRIPT, find_program, free_port, port_open, wait_until};

/// A running nginx; stopped on drop.
pub struct Nginx {
    child: Option<Child>,
    port: u16,
    prefix: tempfile::TempDir,
}

/// The main config around a test's server block; `{PORT}` in the block is the free port.
fn main_config(prefix: &Path, server_block: &str) -> String {
    let prefix = prefix.display();
    format!(
        "worker_processes 1;\n\
         daemon off;\n\
         pid {prefix}/nginx.pid;\n\
         error_log {prefix}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
             access_log {prefix}/access.log;\n\
             client_body_temp_path {prefix}/client_body;\n\
             proxy_temp_path {prefix}/proxy;\n\
             fastcgi_temp_path {prefix}/fastcgi;\n\
             uwsgi_temp_path {prefix}/uwsgi;\n\
             scgi_temp_path {prefix}/scgi;\n\
             {server_block}\n\
         }}\n"
    )
}

/// The minimal site: 200 "ok" on every path.
pub const MINIMAL_SITE: &str = "server { listen 127.0.0.1:{PORT}; location / { return 200 'ok'; } }";

impl Nginx {
    /// nginx serving [`MINIMAL_SITE`].
    pub fn start() -> Nginx {
        Nginx::start_with_site(MINIMAL_SITE)
    }

    /// nginx serving `server_block`, with `{PORT}` replaced by a free loopback port.
    pub fn start_with_site(server_block: &str) -> Nginx {
        let prefix = tempfile::Builder::new()
            .prefix("pretix-testkit-nginx.")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let config = prefix.path().join("nginx.conf");
        std::fs::write(
            &config,
            main_config(prefix.path(), &server_block.replace("{PORT}", &port.to_string())),
        )
        .expect("write nginx.conf");
        nginx_config_test(prefix.path(), &config).unwrap_or_else(|error| panic!("{error}"));
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("start nginx: {error} (run {INSTALL_SCRIPT})"));
        let nginx = Nginx {
            child: Some(child),
            port,
            prefix,
        };
        let log = nginx.prefix.path().join("error.log");
        wait_until(
            "nginx listening",
            Duration::from_secs(10),
            || port_open(port),
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
        nginx
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn prefix(&self) -> &Path {
        self.prefix.path()
    }

    /// Stops nginx (SIGQUIT, a graceful stop) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-QUIT", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn nginx_binary() -> PathBuf {
    find_program("nginx", &[PathBuf::from("/usr/sbin")])
}

/// `nginx -t` on a config file, with the prefix as its base for relative paths.
pub fn nginx_config_test(prefix: &Path, config: &Path) -> Result<(), String> {
    let output = Command::new(nginx_binary())
        .arg("-t")
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(config)
        .output()
        .map_err(|error| format!("run nginx -t: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nginx -t refused {}: {}",
            config.display(),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
