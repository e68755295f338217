//! The one way tools spawn external programs: the command line is logged (it never holds a
//! secret: secrets go through files or stdin), and a non-zero exit becomes a typed error that
//! carries the end of stderr.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// A command that could not be run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot run {command}: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("{command} exited with {status}: {stderr}")]
    Status {
        command: String,
        status: String,
        stderr: String,
    },
}

/// The command line as a human would type it.
pub fn display_command(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|arg| {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains([' ', '\'', '"', '$']) {
            format!("'{}'", arg.replace('\'', "'\\''"))
        } else {
            arg.into_owned()
        }
    }));
    words.join(" ")
}

/// Starts a program that stays running for a conversation over its pipes (pretix-db's superuser
/// session: its own binary as the postgres user). Logged like every command; the caller sets up
/// the pipes and waits for the child.
#[allow(clippy::disallowed_methods)]
pub fn spawn_conversation(command: &mut Command, log: &mut dyn FnMut(&str)) -> std::io::Result<std::process::Child> {
    log(&format!("run: {}", display_command(command)));
    command.spawn()
}

/// Runs a command to completion and returns its output whatever its exit status: for queries
/// whose status is the answer (`systemctl is-active` exits 3 for an inactive unit).
#[allow(clippy::disallowed_methods)]
pub fn output(command: &mut Command, log: &mut dyn FnMut(&str)) -> Result<Output, ExecError> {
    let shown = display_command(command);
    log(&format!("run: {shown}"));
    command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ExecError::Spawn { command: shown, source })
}

/// Runs a command to completion, feeding `stdin` if given, and fails on a non-zero exit.
#[allow(clippy::disallowed_methods)]
pub fn run(command: &mut Command, stdin: Option<&[u8]>, log: &mut dyn FnMut(&str)) -> Result<Output, ExecError> {
    let shown = display_command(command);
    log(&format!("run: {shown}"));
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| ExecError::Spawn {
        command: shown.clone(),
        source,
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).map_err(|source| ExecError::Spawn {
            command: shown.clone(),
            source,
        })?;
    }
    let output = child.wait_with_output().map_err(|source| ExecError::Spawn {
        command: shown.clone(),
        source,
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(ExecError::Status {
            command: shown,
            status: output.status.to_string(),
            stderr: tail.join(" / "),
        });
    }
    Ok(output)
}
