//! `upgrade` and `rollback`: the guide's update steps in the order that keeps a way back.
//!
//! upgrade = `backup` (the database and the data, with the digest of the image that was running),
//! then `pretix-unit pull | pretix-plugin apply | pretix-unit apply | pretix-unit upgrade |
//! pretix-unit verify`: the new image, the plugin image rebuilt on it when the base changed, the
//! containers restarted on it, `pretix upgrade` in the container (which users forget, and then
//! static files 404), and the health check.
//!
//! rollback = the image digest recorded before the last pull, pinned, then
//! `pretix-plugin apply | pretix-unit apply`; with `--database ARCHIVE` the database and the
//! data from that backup first, because pretix's migrations are not reversible: older code on a
//! migrated database may not start.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::Value;

use crate::backup::{DEFAULT_BACKUP_DIR, RestorePass, backup, restore};
use crate::install::{common_flags, recap};
use crate::steps::{SequenceRun, Step, ToolDir, exit_code, run_sequence, write_document};

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The site document (the one the install printed)
    #[arg(long, value_name = "FILE")]
    pub site: PathBuf,
    /// Where the backup taken first goes
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BACKUP_DIR)]
    pub backup_dir: PathBuf,
    /// Where the tool binaries are (default: built by cargo, or next to this binary)
    #[arg(long, value_name = "DIR")]
    pub tools: Option<PathBuf>,
    /// Write the final document here (default: stdout); keep it, rollback needs it
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The upgrade's tool steps, after the backup.
pub fn upgrade_steps() -> Vec<Step> {
    vec![
        Step::new("pretix-unit", &["pull"]),
        Step::new("pretix-plugin", &["apply"]),
        Step::new("pretix-unit", &["apply"]),
        Step::new("pretix-unit", &["upgrade"]),
        Step::new("pretix-unit", &["verify"]),
    ]
}

pub fn run_upgrade(args: &UpgradeArgs) -> anyhow::Result<ExitCode> {
    let tools = ToolDir::locate(args.tools.as_deref())?;
    let document = crate::backup::read_site(&args.site)?;
    eprintln!("xtask: upgrade: backing up first");
    let archive = backup(&document, &args.backup_dir, "upgrade", crate::backup::DEFAULT_KEEP)
        .context("the backup before the upgrade")?;
    eprintln!("xtask: backup written to {}", archive.display());
    let outcome = run_sequence(&tools, &upgrade_steps(), without_results(document)?)?;
    write_document(&outcome.document, args.output.as_deref())?;
    eprint!("{}", recap("upgrade", &outcome));
    if let Some(failure) = outcome.failure() {
        eprintln!(
            "xtask: to go back to the image that ran before: cargo xtask rollback --site <the document printed \
             above> (add --database {} to restore the database too, which pretix needs when `pretix upgrade` \
             already migrated it); {} failed",
            archive.display(),
            failure.step.command_line()
        );
    } else {
        eprintln!(
            "xtask: upgraded; the backup taken before is {} (rollback --database takes it)",
            archive.display()
        );
    }
    Ok(exit_code(outcome.exit_code()))
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The site document the upgrade printed (it records the digest to go back to)
    #[arg(long, value_name = "FILE")]
    pub site: PathBuf,
    /// Also put back the database and the data from this backup (the one the upgrade took):
    /// needed when `pretix upgrade` already migrated the database, since migrations are not
    /// reversible
    #[arg(long, value_name = "ARCHIVE")]
    pub database: Option<PathBuf>,
    /// Plan only: nothing is changed
    #[arg(long)]
    pub check: bool,
    /// Where the tool binaries are (default: built by cargo, or next to this binary)
    #[arg(long, value_name = "DIR")]
    pub tools: Option<PathBuf>,
    /// Write the final document here (default: stdout)
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The document with the image pinned to the digest that ran before the last pull.
pub fn pinned_to_previous(document: &Value) -> anyhow::Result<Value> {
    let container = &document["container"];
    let Some(previous) = container["previous_image_digest"].as_str() else {
        bail!(
            "container.previous_image_digest is not set: no pull replaced an image since this document was \
             written (pretix-unit pull records it); nothing to roll back to"
        );
    };
    let image = container["image"].as_str().unwrap_or("pretix/standalone:stable");
    let repository = repository_of(image);
    let mut pinned = document.clone();
    pinned["container"]["image"] = Value::String(format!("{repository}@{previous}"));
    Ok(pinned)
}

/// `registry:5000/pretix/standalone:stable` → `registry:5000/pretix/standalone` (a tag or a
/// digest removed; a registry port is not a tag).
pub fn repository_of(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    }
}

pub fn run_rollback(args: &RollbackArgs) -> anyhow::Result<ExitCode> {
    let tools = ToolDir::locate(args.tools.as_deref())?;
    let document = crate::backup::read_site(&args.site)?;
    let pinned = pinned_to_previous(&document)?;
    eprintln!(
        "xtask: rolling back to {}",
        pinned["container"]["image"].as_str().unwrap_or_default()
    );
    if let Some(archive) = &args.database {
        if args.check {
            eprintln!(
                "xtask: would restore the database and the data from {}",
                archive.display()
            );
        } else {
            eprintln!("xtask: restoring the database and the data from {}", archive.display());
            restore(archive, RestorePass::DataAndDatabase, &document)?;
        }
    } else {
        eprintln!(
            "xtask: the database stays as it is: if `pretix upgrade` migrated it, the older pretix may not start; \
             then run rollback again with --database <the backup the upgrade took>"
        );
    }
    let flags = common_flags(args.check, false, false, None);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let steps: Vec<Step> = ["pretix-plugin", "pretix-unit"]
        .into_iter()
        .map(|tool| {
            let mut step_args = vec!["apply"];
            step_args.extend_from_slice(&flags);
            Step::new(tool, &step_args)
        })
        .collect();
    let outcome: SequenceRun = run_sequence(&tools, &steps, without_results(pinned)?)?;
    write_document(&outcome.document, args.output.as_deref())?;
    eprint!("{}", recap("rollback", &outcome));
    if outcome.exit_code() == 0 && !args.check {
        eprintln!(
            "xtask: the document now pins the image by digest; set container.image back to a tag before the next \
             upgrade"
        );
    }
    Ok(exit_code(outcome.exit_code()))
}

/// A pipeline starts from the document without the results of earlier runs.
fn without_results(mut document: Value) -> anyhow::Result<String> {
    if let Value::Object(map) = &mut document {
        map.remove("results");
    }
    Ok(serde_json::to_string(&document)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_of_an_image_reference_keeps_the_registry_port() {
        assert_eq!(repository_of("pretix/standalone:stable"), "pretix/standalone");
        assert_eq!(repository_of("pretix/standalone"), "pretix/standalone");
        assert_eq!(
            repository_of("127.0.0.1:5000/pretix/standalone:2026.8.0"),
            "127.0.0.1:5000/pretix/standalone"
        );
        assert_eq!(
            repository_of("127.0.0.1:5000/pretix/standalone"),
            "127.0.0.1:5000/pretix/standalone"
        );
        assert_eq!(
            repository_of("pretix/standalone@sha256:0123456789abcdef"),
            "pretix/standalone"
        );
    }

    #[test]
    fn rollback_pins_the_previous_digest_or_says_there_is_none() {
        let document = serde_json::json!({"container": {
            "image": "127.0.0.1:5000/pretix/standalone:stable",
            "image_digest": "sha256:new", "previous_image_digest": "sha256:old"}});
        let pinned = pinned_to_previous(&document).expect("pinned");
        assert_eq!(
            pinned["container"]["image"],
            "127.0.0.1:5000/pretix/standalone@sha256:old"
        );
        let error = pinned_to_previous(&serde_json::json!({})).expect_err("nothing recorded");
        assert!(
            error.to_string().contains("previous_image_digest is not set"),
            "{error}"
        );
    }
}
