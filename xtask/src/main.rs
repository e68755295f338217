//! `cargo xtask <command>`: glue. It chains the built tool binaries with JSON on pipes, exactly
//! as a user's shell script would, and runs the project's chores. No domain logic lives here.

// xtask is glue, not a tool: it runs cargo and the built binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

mod bench;

use xtask::workspace_root;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "The pretix toolkit's pipelines and chores")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    #[command(flatten)]
    Pipeline(xtask::Pipeline),
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
    /// Build the release: binaries, man pages, completions and the Ansible collection, as a
    /// tarball with checksums and a .deb (in target/dist)
    Dist(xtask::dist::DistArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Task::Pipeline(pipeline) => pipeline.run(),
        Task::Test { args } => test(&args),
        Task::Schema => schema(),
        Task::Bench => bench::run(),
        Task::Dist(args) => xtask::dist::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn schema() -> anyhow::Result<ExitCode> {
    let path = workspace_root().join("schema/site.schema.json");
    std::fs::write(
        &path,
        pretix_site::schema::with_config(pretix_cfg::schema::config_json_schema()),
    )
    .with_context(|| format!("write {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// Builds (first run on a machine) or finds the real pretix image and the test host before the
/// tests start, side by side, so their minutes show up once, here, with progress, rather than
/// inside whichever test asks first. The tests would build them on first use all the same.
fn prebuild_test_images() -> anyhow::Result<()> {
    use pretix_testkit::images;
    eprintln!("xtask: the real pretix image and the test host (built once per machine, then reused)");
    let (pretix, test_host) = std::thread::scope(|scope| {
        let pretix = scope.spawn(images::real_image);
        let test_host = scope.spawn(images::test_host_image);
        (pretix.join(), test_host.join())
    });
    for (what, outcome) in [("the real pretix image", pretix), ("the test host image", test_host)] {
        match outcome {
            Ok(Ok(tag)) => eprintln!("xtask: {what}: {tag}"),
            Ok(Err(error)) => bail!("{what} could not be built: {error}"),
            Err(_) => bail!("building {what} panicked"),
        }
    }
    Ok(())
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
    prebuild_test_images()?;
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
