//! The systemd unit of one container, in the shape of the guide's `pretix.service`, rendered
//! from a handlebars template, and checked with `systemd-analyze verify` before it is kept.
//!
//! Every word of the `docker run` line goes through [`systemd_word`]: systemd splits `ExecStart`
//! itself (no shell), expands `%` specifiers and `$` variables, and unquotes `"..."` with C
//! escapes. Validation has already refused control characters; quoting makes the rest literal.

use std::path::Path;
use std::process::Command;

use handlebars::Handlebars;
use pretix_site::ToolError;
use serde::Serialize;

use crate::spec::{Desired, Instance};

/// The docker CLI the unit runs, as in the guide (Debian's docker.io).
pub const DOCKER_CLI: &str = "/usr/bin/docker";

const TEMPLATE: &str = r#"# {{unit}}: the pretix container ({{role}}), written by pretix-unit from the site document.
# Edits here are overwritten by the next pretix-unit apply: change the document instead.
[Unit]
Description=pretix ({{role}})
After=docker.service
Requires=docker.service

[Service]
TimeoutStartSec=0
ExecStartPre=-{{{docker}}} kill %n
ExecStartPre=-{{{docker}}} rm %n
ExecStart={{{docker}}} run --name %n{{#each lines}} \
    {{{this}}}{{/each}}
ExecStop={{{docker}}} stop %n
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
"#;

#[derive(Serialize)]
struct UnitView<'a> {
    unit: &'a str,
    role: &'a str,
    docker: String,
    lines: Vec<String>,
}

/// The unit file's text for one container.
pub fn render(desired: &Desired, instance: &Instance, image: &str) -> Result<String, ToolError> {
    let mut docker = vec![DOCKER_CLI.to_owned()];
    if let Some(endpoint) = &desired.docker_host {
        docker.push("-H".to_owned());
        docker.push(endpoint.clone());
    }
    let docker = docker
        .iter()
        .map(|word| systemd_word(word))
        .collect::<Vec<_>>()
        .join(" ");
    let option = |flag: &str, value: &str| format!("{flag} {}", systemd_word(value));
    let mut lines = Vec::new();
    if let Some(port) = &instance.port {
        let host = if port.host_ip.contains(':') {
            format!("[{}]", port.host_ip)
        } else {
            port.host_ip.clone()
        };
        lines.push(option(
            "-p",
            &format!("{host}:{}:{}", port.host_port, port.container_port),
        ));
    }
    for bind in &instance.binds {
        lines.push(option("-v", bind));
    }
    for group in &instance.group_add {
        lines.push(option("--group-add", group));
    }
    for (name, value) in &instance.env {
        lines.push(option("-e", &format!("{name}={value}")));
    }
    for (key, value) in &instance.sysctls {
        lines.push(option("--sysctl", &format!("{key}={value}")));
    }
    let mut last = vec![systemd_word(image)];
    last.extend(instance.args.iter().map(|arg| systemd_word(arg)));
    lines.push(last.join(" "));
    let view = UnitView {
        unit: &instance.unit,
        role: instance.role.as_str(),
        docker,
        lines,
    };
    let mut handlebars = Handlebars::new();
    handlebars.set_strict_mode(true);
    handlebars.register_escape_fn(handlebars::no_escape);
    handlebars
        .render_template(TEMPLATE, &view)
        .map_err(|error| ToolError::failed(format!("rendering the unit of {} failed: {error}", instance.unit)))
}

/// One word of a unit's command line, so that systemd passes exactly `word` to the program:
/// `%` and `$` are doubled (specifiers and variables), and a word with anything but plain
/// characters is double-quoted with `\` and `"` escaped.
pub fn systemd_word(word: &str) -> String {
    let literal = word.replace('%', "%%").replace('$', "$$");
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | ':' | '=' | ',' | '@' | '+' | '%' | '$')
        });
    if plain {
        return literal;
    }
    let mut quoted = String::with_capacity(literal.len() + 2);
    quoted.push('"');
    for c in literal.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// Runs `systemd-analyze verify` on `text` as a unit called `unit` (in a temp dir, so nothing
/// is kept when it fails). Any complaint about the file is a failure, not only fatal ones: an
/// ignored line is a setting that would silently not apply.
pub fn verify(unit: &str, text: &str, log: &mut dyn FnMut(&str)) -> Result<(), ToolError> {
    let dir = tempfile::Builder::new()
        .prefix("pretix-unit-verify.")
        .tempdir()
        .map_err(|error| ToolError::failed(format!("cannot make a temp dir to verify {unit}: {error}")))?;
    let path = dir.path().join(unit);
    std::fs::write(&path, text)
        .map_err(|error| ToolError::failed(format!("cannot write {} to verify it: {error}", path.display())))?;
    let mut command = Command::new("systemd-analyze");
    command.arg("verify").arg(&path);
    let complaint = match pretix_site::exec::run(&mut command, None, log) {
        Ok(output) => complaints_about(&path, &String::from_utf8_lossy(&output.stderr)),
        Err(pretix_site::exec::ExecError::Spawn { source, .. }) => {
            return Err(ToolError::failed(format!(
                "cannot run systemd-analyze ({source}): install systemd, or use container.supervisor docker on a host \
                 without systemd"
            )));
        }
        Err(error) => Some(error.to_string()),
    };
    match complaint {
        None => Ok(()),
        Some(complaint) => Err(ToolError::failed(format!(
            "systemd-analyze verify refused the unit rendered for {unit}, so it was not written: {complaint}"
        ))),
    }
}

fn complaints_about(path: &Path, stderr: &str) -> Option<String> {
    let shown = path.display().to_string();
    let lines: Vec<&str> = stderr.lines().filter(|line| line.starts_with(&shown)).collect();
    (!lines.is_empty()).then(|| lines.join(" / "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_as_they_are() {
        assert_eq!(systemd_word("127.0.0.1:8345:80"), "127.0.0.1:8345:80");
        assert_eq!(systemd_word("/var/pretix-data:/data"), "/var/pretix-data:/data");
        assert_eq!(
            systemd_word("pretix/standalone@sha256:ab"),
            "pretix/standalone@sha256:ab"
        );
    }

    #[test]
    fn specifiers_variables_quotes_and_spaces_become_literal() {
        assert_eq!(systemd_word("100%n"), "100%%n");
        assert_eq!(systemd_word("$HOME"), "$$HOME");
        assert_eq!(
            systemd_word("PRETIX_PRETIX_INSTANCE_NAME=Tickets \"A\" \\ 100% $X"),
            "\"PRETIX_PRETIX_INSTANCE_NAME=Tickets \\\"A\\\" \\\\ 100%% $$X\""
        );
        assert_eq!(systemd_word(""), "\"\"");
        assert_eq!(systemd_word(";"), "\";\"");
    }
}
