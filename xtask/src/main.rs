//! `cargo xtask <command>`: glue. It chains the built tool binaries with JSON on pipes, exactly
//! as a user's shell script would, and runs the project's chores. No domain logic lives here.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

mod bench;
mod install;
mod pipeline;
mod steps;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "The pretix toolkit's pipelines and chores")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// The whole install as a dry-run plan with diffs, on the guide's defaults: no root needed,
    /// nothing touched (a staging root seeded with Debian's stock config files, no server
    /// contacted)
    Plan {
        /// A site document to plan instead of the built-in example
        #[arg(long)]
        site: Option<PathBuf>,
    },
    /// Install pretix on this host: every tool in order (db, redis, cfg, plugin, unit, cron,
    /// proxy), stopping at the first failure
    Install(install::InstallArgs),
    /// Upgrade pretix on this host (not implemented yet: needs pretix-unit)
    Upgrade {
        #[arg(long)]
        site: Option<PathBuf>,
    },
    /// Install what the tests need (Debian packages, a Python venv with ansible-core and
    /// pretix), then run every test
    Test {
        /// Extra arguments for cargo test (e.g. a test name filter)
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Write schema/site.schema.json from the document types
    Schema,
    /// Run the benchmarks against real throwaway servers
    Bench,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Task::Plan { site } => pipeline::plan(site.as_deref()),
        Task::Install(args) => install::run(&args),
        Task::Upgrade { .. } => Err(anyhow::anyhow!(
            "cargo xtask upgrade is not implemented yet: it needs pretix-unit (a later issue)"
        )),
        Task::Test { args } => test(&args),
        Task::Schema => schema(),
        Task::Bench => bench::run(),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn schema() -> anyhow::Result<ExitCode> {
    let path = workspace_root().join("schema/site.schema.json");
    std::fs::write(&path, pretix_site::schema::site_schema_json())
        .with_context(|| format!("write {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn test(args: &[String]) -> anyhow::Result<ExitCode> {
    let root = workspace_root();
    let status = Command::new("bash")
        .arg(root.join("scripts/install-test-deps"))
        .status()
        .context("run scripts/install-test-deps")?;
    if !status.success() {
        bail!("scripts/install-test-deps failed ({status})");
    }
    let venv = std::env::var("PRETIX_TEST_VENV").unwrap_or_else(|_| root.join(".venv").display().to_string());
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["test", "--workspace", "--all-targets"])
        .args(args)
        .env("PRETIX_TEST_VENV", &venv)
        .current_dir(&root)
        .stdin(Stdio::null())
        .status()
        .context("run cargo test")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
