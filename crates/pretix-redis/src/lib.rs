//! `pretix-redis`: Redis for pretix.
//!
//! Not built yet: every verb fails with a clear "not implemented yet" error and exit 1.

use clap::Subcommand;
use pretix_site::run::not_implemented;
use pretix_site::{Context, Document, Tool, ToolError};

/// The verbs of `pretix-redis`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Converge the host to the document (not implemented yet)
    Apply,
    /// Read-only: report each item as ok, warning or failure (not implemented yet)
    Check,
}

/// The `pretix-redis` tool.
pub struct RedisTool;

impl Tool for RedisTool {
    type Command = Command;
    const NAME: &'static str = "pretix-redis";
    const ABOUT: &'static str = "Redis for pretix (not implemented yet)";

    fn is_read_only(command: &Command) -> bool {
        matches!(command, Command::Check)
    }

    fn run(command: &Command, _ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
        let _section: pretix_site::sections::Redis = document.section("redis")?;
        let verb = format!("{command:?}").to_lowercase();
        Err(not_implemented(Self::NAME, &verb, "built in a later issue"))
    }
}
