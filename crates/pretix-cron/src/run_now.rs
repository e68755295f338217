//! `run`: `pretix cron` in the container now, through the shared Docker seam, its output
//! streamed to stderr as it comes (into the result's message in Ansible mode), and its exit
//! status returned: any status but 0 fails the run.
//!
//! Like the cron line it runs as the container's own user (pretixuser), with the container's
//! environment. pretix's `runperiodic` exits 0 even when single tasks fail (it prints their
//! errors), so a non-zero status means pretix cron could not run at all: no database, a broken
//! pretix.cfg, a missing image command.

use std::io::Write;
use std::time::Instant;

use pretix_site::docker::{Docker, ExecOptions, OutputStream};
use pretix_site::run::Output;
use pretix_site::{Context, Document, ToolError};

use crate::settings::{self, Desired};

/// The command the job runs inside the container.
pub const COMMAND: [&str; 2] = ["pretix", "cron"];

/// How many lines of output a failure quotes.
const TAIL_LINES: usize = 10;

pub fn run(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let desired = settings::resolve(document)?;
    if ctx.is_check() {
        ctx.changed(describe(&desired));
        return Ok(format!(
            "would run pretix cron in the container {}",
            desired.target.name
        ));
    }
    if ctx.root().is_redirected() {
        // A staging root is not the host the container serves: report, as for systemctl.
        ctx.note(format!("skipped (--root): {}", describe(&desired)));
        return Ok(
            "pretix cron was not run (--root): the containers on this machine are not the staged host's".to_owned(),
        );
    }
    let docker = Docker::connect(desired.target.docker_host.as_deref())?;
    ctx.info(&format!("running pretix cron in the container {}", desired.target.name));
    let stream_to_stderr = ctx.options().output == Output::Stderr;
    let mut output = Vec::new();
    let started = Instant::now();
    let command: Vec<String> = COMMAND.iter().map(|word| (*word).to_owned()).collect();
    let status = docker.exec(
        &desired.target.name,
        &command,
        &ExecOptions::default(),
        &mut |_stream: OutputStream, bytes: &[u8]| {
            if stream_to_stderr {
                let mut stderr = std::io::stderr().lock();
                let _ = stderr.write_all(bytes).and_then(|()| stderr.flush());
            }
            output.extend_from_slice(bytes);
        },
    )?;
    let seconds = started.elapsed().as_secs_f64();
    ctx.changed(format!("{} (exit status {status}, {seconds:.1} s)", describe(&desired)));
    if status == 0 {
        return Ok(format!(
            "pretix cron ran in the container {} and exited 0 after {seconds:.1} s",
            desired.target.name
        ));
    }
    let text = String::from_utf8_lossy(&output);
    let tail: Vec<&str> = text.lines().rev().take(TAIL_LINES).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let quoted = if tail.is_empty() {
        "it printed nothing".to_owned()
    } else {
        format!("its last lines:\n{}", tail.join("\n"))
    };
    Err(ToolError::failed(format!(
        "pretix cron in the container {} exited with status {status}: {quoted}\nfix what it says (docker logs {} \
         shows the container's side), then run pretix-cron run again",
        desired.target.name, desired.target.name
    )))
}

fn describe(desired: &Desired) -> String {
    format!("run pretix cron in the container {}", desired.target.name)
}
