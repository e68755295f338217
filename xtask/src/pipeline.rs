//! Pipelines: the tools chained with the document on pipes, as a shell script would.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};

use crate::workspace_root;

/// The built-in example: only the pretix URL and the mail sender, everything else the guide's.
pub const EXAMPLE_SITE: &str = r#"{
  "config": {
    "pretix": {"url": "https://tickets.example.org", "instance_name": "Example tickets"},
    "mail": {"from": "tickets@example.org"}
  }
}
"#;

/// Debian's stock files, placed where a fresh Debian 12 host has them.
const STAGED_FILES: &[(&str, &str)] = &[
    (
        "fixtures/debian12/postgresql.conf",
        "etc/postgresql/15/main/postgresql.conf",
    ),
    ("fixtures/debian12/pg_hba.conf", "etc/postgresql/15/main/pg_hba.conf"),
    ("fixtures/debian12/redis.conf", "etc/redis/redis.conf"),
];

/// Builds the tool binaries and returns the directory holding them.
pub fn build_tools() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args([
            "build",
            "--quiet",
            "--bins",
            "-p",
            "pretix-db",
            "-p",
            "pretix-redis",
            "-p",
            "pretix-cfg",
        ])
        .current_dir(&root)
        .status()
        .context("cargo build")?;
    if !status.success() {
        bail!("building the tools failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("debug"))
}

/// Runs one tool with the document on stdin; returns its stdout and exit code.
pub fn run_tool(bin_dir: &Path, tool: &str, args: &[&str], document: &str) -> anyhow::Result<(String, i32)> {
    let mut child = Command::new(bin_dir.join(tool))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {tool}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(document.as_bytes())
            .with_context(|| format!("write to {tool}"))?;
    }
    let output = child.wait_with_output().with_context(|| format!("wait for {tool}"))?;
    Ok((
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.code().unwrap_or(1),
    ))
}

/// `cargo xtask plan`: the install as a dry run on a staging root.
pub fn plan(site: Option<&Path>) -> anyhow::Result<ExitCode> {
    let document = match site {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?,
        None => EXAMPLE_SITE.to_owned(),
    };
    let bin_dir = build_tools()?;
    let staging = tempfile::tempdir().context("create a staging root")?;
    for (source, target) in STAGED_FILES {
        let destination = staging.path().join(target);
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(workspace_root().join(source), &destination).with_context(|| format!("stage {target}"))?;
    }
    for dir in ["etc", "var", "run"] {
        std::fs::create_dir_all(staging.path().join(dir))?;
    }
    let root_arg = staging.path().display().to_string();
    let args = ["apply", "--check", "--diff", "--offline", "--root", root_arg.as_str()];
    eprintln!("xtask: planning the install on a staging root (nothing on this host is touched)");
    let mut current = document;
    let mut exit = 0;
    for tool in ["pretix-db", "pretix-redis", "pretix-cfg"] {
        let (output, code) = run_tool(&bin_dir, tool, &args, &current)?;
        current = output;
        if code != 0 {
            exit = code;
            break;
        }
    }
    pretix_site::run::print_stdout(&current);
    Ok(if exit == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(u8::try_from(exit).unwrap_or(1))
    })
}
