//! `pretix-cfg`: `/etc/pretix/pretix.cfg` and the data directory, the guide's "Data files" and
//! "Config file" sections, validated against pretix 2026.8's real option schema.
//!
//! - `apply`: renders pretix.cfg from the document's `config` (secrets read from their files),
//!   creates the config and data directories with the container's owner, and writes the file
//!   owner-only. Everything is validated first; nothing is written when anything is wrong.
//! - `verify`: read-only; parses the file on disk, validates it, reports owner/mode problems and
//!   differences from the document.
//! - `import FILE`: reads an existing pretix.cfg into the document (secrets moved to root-only
//!   secret files), so a hand-made install can be adopted.
//! - `env`: the same settings as `PRETIX_<SECTION>_<KEY>` variables in a root-only env file.

pub mod acl;
pub mod apply;
pub mod desired;
pub mod env;
pub mod import;
pub mod ini;
pub mod rules;
pub mod schema;
pub mod secrets;
pub mod verify;

use std::path::{Path, PathBuf};

use clap::Subcommand;
use pretix_site::fs::DirSpec;
use pretix_site::sections::Paths;
use pretix_site::{Context, Document, Tool, ToolError};

pub use desired::{Desired, MANAGED_HEADER, desired_config};

/// The verbs of `pretix-cfg`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Render pretix.cfg and create the config and data directories
    Apply,
    /// Read-only: validate the file on disk, its owner and mode, and compare it with the document
    Verify,
    /// Read an existing pretix.cfg into the document's `config` (secrets go to secret files)
    Import {
        /// The file to import; default: pretix.cfg in paths.config_dir
        file: Option<PathBuf>,
    },
    /// Write the settings as PRETIX_<SECTION>_<KEY> variables to paths.env_file (root-only)
    Env,
}

/// The `pretix-cfg` tool.
pub struct CfgTool;

impl Tool for CfgTool {
    type Command = Command;
    const NAME: &'static str = "pretix-cfg";
    const ABOUT: &'static str = "pretix.cfg and the data directory, validated against pretix's real option schema";
    const EXAMPLES: &'static str = "pretix-cfg apply --check --diff < site.json     # the pretix.cfg it would write, secrets masked\n\
                                    pretix-cfg apply < site.json > site.done.json   # as root: /etc/pretix/pretix.cfg and the data dir\n\
                                    pretix-cfg verify < site.done.json > /dev/null  # read-only: the file, its owner and mode\n\
                                    pretix-cfg import /etc/pretix/pretix.cfg < site.json > site.imported.json\n\
                                    pretix-cfg env < site.json > /dev/null          # PRETIX_* variables for docker run --env-file\n";

    fn is_read_only(command: &Command) -> bool {
        matches!(command, Command::Verify)
    }

    fn run(command: &Command, ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
        let paths: Paths = document.section("paths")?;
        validate_paths(&paths)?;
        match command {
            Command::Apply => apply::apply(ctx, document, &paths),
            Command::Verify => verify::verify(ctx, document, &paths),
            Command::Import { file } => import::import(ctx, document, &paths, file.as_deref()),
            Command::Env => env::env(ctx, document, &paths),
        }
    }
}

/// The file inside the config dir.
pub fn config_file(paths: &Paths) -> PathBuf {
    paths.config_dir.join("pretix.cfg")
}

/// A directory owned by the container's user.
pub(crate) fn owned_dir(paths: &Paths, path: &Path, mode: u32) -> DirSpec {
    DirSpec {
        path: path.to_path_buf(),
        uid: Some(paths.owner_uid),
        gid: Some(paths.owner_gid),
        mode,
    }
}

fn validate_paths(paths: &Paths) -> Result<(), ToolError> {
    paths.validate()?;
    for (field, path) in [
        ("paths.config_dir", &paths.config_dir),
        ("paths.data_dir", &paths.data_dir),
    ] {
        if path.parent().is_none() {
            return Err(ToolError::input(field, "must not be / itself"));
        }
    }
    if paths.owner_uid == 0 {
        return Err(ToolError::input(
            "paths.owner_uid",
            "0 would make root own pretix's files: the container runs as 15371, keep that",
        ));
    }
    Ok(())
}
