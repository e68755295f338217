//! `pretix-plugin`: the guide's "Install a plugin" section, kept true after every pull.
//!
//! The custom image is built from a Dockerfile in the guide's shape, on the base pinned to the
//! digest pretix-unit pulled, with the plugins of `plugins.packages` (requirement strings or local
//! wheels and source directories) and tagged with a hash of those inputs, so the same inputs
//! build nothing and a new base digest builds again. After a build, pretix itself is asked, in
//! a throwaway container, which plugins it loaded; a listed plugin it did not load fails the run.
//! The verified image goes into the document (`plugins.built`) for pretix-unit to run.
//!
//! Modules: `requirement` (PEP 508 strings), `desired` (the section, checked), `local` (local
//! plugins read without following links), `dockerfile` (the Dockerfile, the context, the hash),
//! `plan` (pure), `loaded` (what pretix loaded).

use clap::Subcommand;
use pretix_site::{Context, Document, Tool, ToolError};

pub mod apply;
pub mod desired;
pub mod dockerfile;
pub mod inspect;
pub mod loaded;
pub mod local;
pub mod plan;
pub mod requirement;
mod throwaway;
pub mod verify;

/// The verbs of `pretix-plugin`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Build the custom image when the base or the plugin list changed, check that pretix loads every
    /// listed plugin, and record the image in the document for pretix-unit
    Apply,
    /// Read-only: is the custom image built on the current base, with the listed plugins, and is it what
    /// the container runs
    Verify,
}

/// The `pretix-plugin` tool.
pub struct PluginTool;

impl Tool for PluginTool {
    type Command = Command;
    const NAME: &'static str = "pretix-plugin";
    const ABOUT: &'static str = "a custom pretix image with plugins, always built on the current base";

    fn is_read_only(command: &Command) -> bool {
        matches!(command, Command::Verify)
    }

    fn run(command: &Command, ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
        match command {
            Command::Apply => apply::apply(ctx, document),
            Command::Verify => verify::verify(ctx, document),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        pretix_site::run::command::<PluginTool>().debug_assert();
    }
}
