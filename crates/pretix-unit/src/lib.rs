//! `pretix-unit`: the pretix container and its systemd unit.
//!
//! Not built yet: this wave of the toolkit builds the foundation, the database, Redis and the
//! config file. Every verb here fails with a clear "not implemented yet" error and exit 1, never
//! a pretended success. What it will own: the `container` section of the site document.

use clap::Subcommand;
use pretix_site::run::not_implemented;
use pretix_site::{Context, Document, Tool, ToolError};

/// The verbs of `pretix-unit`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Converge the host to the document (not implemented yet)
    Apply,
    /// Read-only: report each item as ok, warning or failure (not implemented yet)
    Verify,
    /// Run `pretix upgrade` in the container (not implemented yet)
    Upgrade,
    /// Run `pretix migrate` in the container (not implemented yet)
    Migrate,
}

/// The `pretix-unit` tool.
pub struct UnitTool;

impl Tool for UnitTool {
    type Command = Command;
    const NAME: &'static str = "pretix-unit";
    const ABOUT: &'static str = "the pretix container and its systemd unit (not implemented yet)";

    fn is_read_only(command: &Command) -> bool {
        matches!(command, Command::Verify)
    }

    fn run(command: &Command, _ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
        // Validate the owned section even now, so a document written today stays valid.
        let _section: pretix_site::sections::Container = document.section("container")?;
        let verb = format!("{command:?}").to_lowercase();
        Err(not_implemented(Self::NAME, &verb, "built in a later issue"))
    }
}
