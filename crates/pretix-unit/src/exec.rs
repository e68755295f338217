//! `exec`, `migrate` and `upgrade`: a pretix command in the running container, its output
//! streamed to stderr as it comes, its exit code returned.

use std::io::Write;
use std::path::PathBuf;

use pretix_site::docker::{ExecOptions, OutputStream};
use pretix_site::fs::{DirSpec, FileSpec};
use pretix_site::{Context, Document, ToolError};

use crate::apply::{announce, load};
use crate::host::{self, docker_failed};
use crate::spec::{self, Desired};

/// Where the image id that `pretix upgrade` last ran on is kept, per container.
pub fn upgrade_marker(desired: &Desired, unit: &str) -> PathBuf {
    desired.state_dir.join(format!("{unit}.upgraded"))
}

/// Runs `pretix <args>` in `container` (default: the one that runs the task worker).
pub fn exec(
    ctx: &mut Context,
    document: &mut Document,
    container: Option<&str>,
    args: &[String],
) -> Result<String, ToolError> {
    let (section, desired) = load(document)?;
    let args = spec::validate_command(args, "exec")?;
    let target = match container {
        Some(name) => {
            spec::validate_unit_name(name).map_err(|message| ToolError::input("--container", message))?;
            if !desired.instances.iter().any(|instance| instance.unit == name) {
                return Err(ToolError::input(
                    "--container",
                    format!(
                        "{name} is not one of this document's containers ({})",
                        desired
                            .instances
                            .iter()
                            .map(|instance| instance.unit.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            name.to_owned()
        }
        None => section
            .task_container()
            .map(|instance| instance.unit)
            .ok_or_else(|| ToolError::failed("the document describes no container"))?,
    };
    announce(ctx, &desired);
    let shown = format!("pretix {}", args.join(" "));
    if ctx.is_check() {
        ctx.changed(format!("run {shown} in {target}"));
        return Ok(format!("would run {shown} in {target}"));
    }
    let docker = host::connect(&desired)?;
    let info = docker.inspect_container(&target)?.ok_or_else(|| {
        ToolError::failed(format!(
            "container {target} does not exist: run pretix-unit apply first"
        ))
    })?;
    ctx.info(&format!("running {shown} in {target}"));
    let mut command = vec!["pretix".to_owned()];
    command.extend(args.iter().cloned());
    let quiet = !crate::apply::shows_live_output(ctx);
    let mut tail = OutputTail::default();
    let code = docker
        .exec(&target, &command, &ExecOptions::default(), &mut |stream, bytes| {
            tail.push(bytes);
            if !quiet {
                let _ = match stream {
                    OutputStream::Stdout | OutputStream::Stderr => std::io::stderr().write_all(bytes),
                };
            }
        })
        .map_err(|error| docker_failed(&format!("run {shown} in {target}"), error))?;
    ctx.changed(format!("ran {shown} in {target} (exit code {code})"));
    if code != 0 {
        return Err(ToolError::failed(format!(
            "{shown} in {target} exited with {code}: its output says why; the last lines:\n{}",
            tail.lines()
        )));
    }
    if args.first().map(String::as_str) == Some("upgrade") {
        let marker = upgrade_marker(&desired, &target);
        ctx.ensure_parents(&marker)?;
        ctx.dir(&DirSpec {
            path: desired.state_dir.clone(),
            uid: Some(0),
            gid: Some(0),
            mode: 0o755,
        })?;
        ctx.file(
            &FileSpec::new(&marker, format!("{}\n", info.image_id))
                .owner(0, 0)
                .mode(0o644),
        )?;
    }
    Ok(format!("{shown} in {target} exited with 0"))
}

/// The last lines of a command's output, for the failure message.
#[derive(Default)]
struct OutputTail {
    text: String,
}

impl OutputTail {
    fn push(&mut self, bytes: &[u8]) {
        self.text.push_str(&String::from_utf8_lossy(bytes));
        if self.text.len() > 64 * 1024 {
            let cut = self.text.len() - 32 * 1024;
            let cut = (cut..self.text.len())
                .find(|index| self.text.is_char_boundary(*index))
                .unwrap_or(0);
            self.text.drain(..cut);
        }
    }

    fn lines(&self) -> String {
        let lines: Vec<&str> = self.text.lines().collect();
        lines[lines.len().saturating_sub(host::LOG_LINES)..].join("\n")
    }
}
