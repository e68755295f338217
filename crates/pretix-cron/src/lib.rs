//! `pretix-cron`: the guide's "Cronjob" step, the periodic `pretix cron` job, without which
//! pretix sends no reminders, expires no orders, and its dashboard warns that the cronjob
//! component was not executed.
//!
//! - `apply`: `/etc/cron.d/pretix` in the guide's shape (or a systemd timer and service pair),
//!   root 0644, written atomically; the container's name and role come from the `container`
//!   section, so the two cannot drift apart;
//! - `run`: `pretix cron` in the container now, through the Docker API, its output streamed;
//! - `verify` (read-only): installed, would run, and ran recently by pretix's own record.
//!
//! Layout: `settings` (the sections, checked) → `inspect` (the host) → `plan` (pure: steps) →
//! `apply` (performs them); `schedule` and `render` are pure; `last_run` reads pretix's mark in
//! Redis; `verify` the read-only verb; `run_now` the `run` verb over the shared Docker seam.

use clap::Subcommand;
use pretix_site::{Context, Document, Tool, ToolError};

pub mod apply;
pub mod inspect;
pub mod last_run;
pub mod plan;
pub mod render;
pub mod run_now;
pub mod schedule;
pub mod settings;
pub mod verify;

/// The verbs of `pretix-cron`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Write /etc/cron.d/pretix (or, with cron.scheduler timer, a systemd timer and service, verified with
    /// systemd-analyze and enabled) running `docker exec <container> pretix cron` on the schedule
    Apply,
    /// Run `pretix cron` in the container now through the Docker API, streaming its output; fails (exit 1) when
    /// it exits non-zero, quoting its status and last lines
    Run,
    /// Read-only: the job is installed and would run, and pretix's record says when it last ran (a failure when
    /// that is longer ago than twice the schedule's interval)
    Verify,
}

/// The `pretix-cron` tool.
pub struct CronTool;

impl Tool for CronTool {
    type Command = Command;
    const NAME: &'static str = "pretix-cron";
    const ABOUT: &'static str = "the periodic pretix cron job: a cron.d file or a systemd timer, run now, verify";

    fn is_read_only(command: &Command) -> bool {
        matches!(command, Command::Verify)
    }

    fn run(command: &Command, ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
        match command {
            Command::Apply => apply::apply(ctx, document),
            Command::Run => run_now::run(ctx, document),
            Command::Verify => verify::verify(ctx, document),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        pretix_site::run::command::<CronTool>().debug_assert();
    }
}
