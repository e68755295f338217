//! `pretix-cron`: the periodic pretix cron job.
//!
//! Not built yet: this wave of the toolkit builds the foundation, the database, Redis and the
//! config file. Every verb here fails with a clear "not implemented yet" error and exit 1, never
//! a pretended success. What it will own: the `cron` section of the site document.

use clap::Subcommand;
use pretix_site::run::not_implemented;
use pretix_site::{Context, Document, Tool, ToolError};

/// The verbs of `pretix-cron`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Converge the host to the document (not implemented yet)
    Apply,
    /// Read-only: report each item as ok, warning or failure (not implemented yet)
    Verify,
}

/// The `pretix-cron` tool.
pub struct CronTool;

impl Tool for CronTool {
    type Command = Command;
    const NAME: &'static str = "pretix-cron";
    const ABOUT: &'static str = "the periodic pretix cron job (not implemented yet)";

    fn is_read_only(command: &Command) -> bool {
        matches!(command, Command::Verify)
    }

    fn run(command: &Command, _ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
        // Validate the owned section even now, so a document written today stays valid.
        let _section: pretix_site::sections::Cron = document.section("cron")?;
        let verb = format!("{command:?}").to_lowercase();
        Err(not_implemented(Self::NAME, &verb, "built in a later issue"))
    }
}
