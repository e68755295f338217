//! The toolkit's pipelines: the tool binaries chained with the document on pipes, exactly as a
//! user's shell script would chain them. Two front ends share them: `cargo xtask` (with the
//! project's chores) in a checkout, and the released `pretix-toolkit` binary on a server without
//! Rust. No domain logic lives here: what a pipeline does, a sysadmin can do by hand with the tools.

// xtask is glue, not a tool: it runs cargo and the built binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod backup;
pub mod dist;
pub mod doctor;
pub mod install;
pub mod pipeline;
pub mod steps;
pub mod upgrade;

/// `pretix-toolkit`, the released front end of the pipelines.
#[derive(Debug, Parser)]
#[command(
    name = "pretix-toolkit",
    version,
    about = "Install and run pretix with the toolkit's tools, in the guide's order"
)]
pub struct Toolkit {
    #[command(subcommand)]
    pub command: Pipeline,
}

/// The commands a sysadmin runs on a server.
#[derive(Debug, Subcommand)]
pub enum Pipeline {
    /// The whole install as a dry-run plan with diffs, on the guide's defaults: no root needed,
    /// nothing touched (a staging root seeded with Debian's stock config files, no server
    /// contacted)
    Plan {
        /// A site document to plan instead of the built-in example
        #[arg(long)]
        site: Option<PathBuf>,
        /// Where the tool binaries are (default: built by cargo, or next to this binary)
        #[arg(long, value_name = "DIR")]
        tools: Option<PathBuf>,
    },
    /// Install pretix on this host: every tool in order (db, redis, cfg, plugin, unit, cron,
    /// proxy), stopping at the first failure
    Install(install::InstallArgs),
    /// Back up the database (pg_dump), the data dir's media and .secret, pretix.cfg, the secrets
    /// and the site document into one owner-only archive
    Backup(backup::BackupArgs),
    /// Put a backup back onto this host (also a fresh one): secrets, the install from the archived
    /// site document, the database and the data
    Restore(backup::RestoreArgs),
    /// Every tool's read-only verify in one report: a table, or --json; exit 0 healthy, 1 not
    Doctor(doctor::DoctorArgs),
    /// Upgrade pretix on this host: a backup first, then the new image, the plugin image rebuilt
    /// on it, the containers restarted, `pretix upgrade` in the container, the health check
    Upgrade(upgrade::UpgradeArgs),
    /// Back to the image that ran before the last upgrade's pull (with --database, the database
    /// and data from that upgrade's backup too)
    Rollback(upgrade::RollbackArgs),
}

impl Pipeline {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Pipeline::Plan { site, tools } => pipeline::plan(site.as_deref(), tools.as_deref()),
            Pipeline::Install(args) => install::run(&args),
            Pipeline::Doctor(args) => doctor::run(&args),
            Pipeline::Backup(args) => backup::run_backup(&args),
            Pipeline::Restore(args) => backup::run_restore(&args),
            Pipeline::Upgrade(args) => upgrade::run_upgrade(&args),
            Pipeline::Rollback(args) => upgrade::run_rollback(&args),
        }
    }
}

/// The checkout this xtask was built from (only meaningful under cargo).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
