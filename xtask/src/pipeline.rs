//! Pipelines: the tools chained with the document on pipes, as a shell script would.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::steps::{ToolDir, run_sequence};

/// The built-in example: the pretix URL, the mail sender, and a certificate from Let's Encrypt
/// (as the guide advises); everything else the guide's.
pub const EXAMPLE_SITE: &str = r#"{
  "config": {
    "pretix": {"url": "https://tickets.example.org", "instance_name": "Example tickets"},
    "mail": {"from": "tickets@example.org"}
  },
  "proxy": {"certificate_source": "acme"}
}
"#;

/// Debian's stock files, placed where a fresh Debian 12 host has them.
/// They are compiled in, so the released `pretix-toolkit plan` needs no checkout.
const STAGED_FILES: &[(&str, &str)] = &[
    (
        include_str!("../../fixtures/debian12/postgresql.conf"),
        "etc/postgresql/15/main/postgresql.conf",
    ),
    (
        include_str!("../../fixtures/debian12/pg_hba.conf"),
        "etc/postgresql/15/main/pg_hba.conf",
    ),
    (
        include_str!("../../fixtures/debian12/redis.conf"),
        "etc/redis/redis.conf",
    ),
];

/// `cargo xtask plan`: the install as a dry run on a staging root.
pub fn plan(site: Option<&Path>, tools: Option<&Path>) -> anyhow::Result<ExitCode> {
    let document = match site {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?,
        None => EXAMPLE_SITE.to_owned(),
    };
    let tools = ToolDir::locate(tools)?;
    let staging = tempfile::tempdir().context("create a staging root")?;
    for (content, target) in STAGED_FILES {
        let destination = staging.path().join(target);
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&destination, content).with_context(|| format!("stage {target}"))?;
    }
    // The directories a fresh Debian 12 host (with nginx and cron) has that the plan writes into.
    for dir in [
        "etc",
        "etc/systemd/system",
        "etc/cron.d",
        "etc/nginx/sites-available",
        "etc/nginx/sites-enabled",
        "var/www",
        "run",
    ] {
        std::fs::create_dir_all(staging.path().join(dir))?;
    }
    // This host's users and groups (root, postgres, redis, www-data): the tools check them.
    for file in ["etc/passwd", "etc/group"] {
        std::fs::copy(Path::new("/").join(file), staging.path().join(file))
            .with_context(|| format!("stage /{file}"))?;
    }
    let root_arg = staging.path().display().to_string();
    let args = ["apply", "--check", "--diff", "--offline", "--root", root_arg.as_str()];
    eprintln!("xtask: planning the install on a staging root (nothing on this host is touched)");
    let steps = crate::install::install_steps(&args[1..]);
    let outcome = run_sequence(&tools, &steps, document)?;
    eprint!("{}", crate::install::summary(&outcome, true));
    pretix_site::run::print_stdout(&outcome.document);
    Ok(crate::steps::exit_code(outcome.exit_code()))
}
