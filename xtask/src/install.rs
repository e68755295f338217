//! `cargo xtask install`: the guide's whole install, as the shell pipeline
//! `pretix-db apply | pretix-redis apply | pretix-cfg apply | pretix-plugin apply |
//! pretix-unit apply | pretix-cron apply | pretix-proxy apply`, stopping at the first failure and
//! saying what was done and what was not.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use pretix_site::report::CheckStatus;
use serde_json::Value;

use crate::steps::{SequenceRun, Step, TOOLS, ToolDir, run_sequence};

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The site document (JSON)
    #[arg(long, value_name = "FILE")]
    pub site: PathBuf,
    /// Plan only: every tool reports what it would change, nothing is changed
    #[arg(long)]
    pub check: bool,
    /// Show the diff of every file that changes
    #[arg(long)]
    pub diff: bool,
    /// With --check: contact no server (PostgreSQL, Redis, Docker, nginx)
    #[arg(long, requires = "check")]
    pub offline: bool,
    /// Treat DIR as / for every file (staging); service actions are reported, not performed
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Where the tool binaries are (default: built by cargo, or next to this binary)
    #[arg(long, value_name = "DIR")]
    pub tools: Option<PathBuf>,
    /// Write the final document here (default: stdout)
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The install order: the database and Redis first (pretix.cfg needs their settings), then the
/// config, the image with plugins (pretix-plugin pulls the base when the host lacks it), the
/// container that uses all of it, the job that runs in the container, and the proxy in front.
pub fn install_steps(common: &[&str]) -> Vec<Step> {
    TOOLS
        .iter()
        .map(|tool| {
            let mut args = vec!["apply"];
            args.extend_from_slice(common);
            Step::new(tool, &args)
        })
        .collect()
}

/// The flags every tool of a pipeline gets.
pub fn common_flags(check: bool, offline: bool, diff: bool, root: Option<&Path>) -> Vec<String> {
    let mut flags = Vec::new();
    if check {
        flags.push("--check".to_owned());
    }
    if offline {
        flags.push("--offline".to_owned());
    }
    if diff {
        flags.push("--diff".to_owned());
    }
    if let Some(root) = root {
        flags.push("--root".to_owned());
        flags.push(root.display().to_string());
    }
    flags
}

pub fn run(args: &InstallArgs) -> anyhow::Result<ExitCode> {
    let document = std::fs::read_to_string(&args.site).with_context(|| format!("read {}", args.site.display()))?;
    let tools = ToolDir::locate(args.tools.as_deref())?;
    let flags = common_flags(args.check, args.offline, args.diff, args.root.as_deref());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let steps = install_steps(&flags);
    eprintln!(
        "xtask: {} pretix: {}",
        if args.check {
            "planning the install of"
        } else {
            "installing"
        },
        steps.iter().map(|step| step.tool).collect::<Vec<_>>().join(" | ")
    );
    let mut outcome = run_sequence(&tools, &steps, document)?;
    if !args.check && outcome.failure().is_none() {
        let tail = proof_steps(&outcome);
        let proof = run_sequence(&tools, &tail, outcome.document.clone())?;
        outcome = SequenceRun {
            document: proof.document,
            ran: outcome.ran.into_iter().chain(proof.ran).collect(),
            not_run: proof.not_run,
        };
    }
    crate::steps::write_document(&outcome.document, args.output.as_deref())?;
    eprint!("{}", summary(&outcome, args.check));
    Ok(crate::steps::exit_code(outcome.exit_code()))
}

/// After a successful install, the proof: a cron job that was just set up runs once now (pretix
/// would otherwise warn on its dashboard until the first scheduled run, and a job that cannot run
/// shows now, not in half an hour); then `pretix-unit verify`: the containers healthy, the
/// database and Redis reached from inside, and whether the guide's default admin password still
/// works.
pub fn proof_steps(install: &SequenceRun) -> Vec<Step> {
    let cron_changed = install
        .ran
        .iter()
        .filter_map(|run| run.result.as_ref())
        .any(|result| result.tool == "pretix-cron" && result.verb == "apply" && result.changed);
    let mut steps = Vec::new();
    if cron_changed {
        steps.push(Step::new("pretix-cron", &["run"]));
    }
    steps.push(Step::new("pretix-unit", &["verify"]));
    steps
}

/// The end of an install: the recap, the warnings again, and what to do next.
pub fn summary(outcome: &SequenceRun, check: bool) -> String {
    let mut text = recap("install", outcome);
    if outcome.failure().is_some() {
        return text;
    }
    let url = serde_json::from_str::<Value>(&outcome.document)
        .ok()
        .and_then(|document| document["config"]["pretix"]["url"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "the URL in config.pretix.url".to_owned());
    if check {
        text.push_str("\nxtask: plan only: nothing was changed; run without --check to install\n");
        return text;
    }
    text.push_str(&format!("\npretix is installed at {url}\n"));
    let default_admin = outcome
        .ran
        .iter()
        .filter_map(|run| run.result.as_ref())
        .flat_map(|result| result.checks.iter())
        .find(|item| item.name == "default admin password");
    match default_admin {
        Some(item) if item.status == CheckStatus::Ok => {
            text.push_str("the default admin password no longer works: good\n");
        }
        _ => text.push_str(&format!(
            "first login: {url}/control/ as admin@localhost with the password admin\n\
             !!! CHANGE THAT PASSWORD NOW: until you do, anyone who reaches the site can log in as the \
             administrator (pretix's guide, \"Next steps\")\n"
        )),
    }
    text
}

/// What every pipeline ends with: each step and its outcome, the warnings again, and where it
/// stopped.
pub fn recap(pipeline: &str, outcome: &SequenceRun) -> String {
    let mut text = format!("\nxtask: {pipeline} recap\n");
    text.push_str(&outcome.recap());
    let warnings: Vec<String> = outcome
        .ran
        .iter()
        .filter_map(|run| run.result.as_ref())
        .flat_map(|result| {
            result
                .warnings
                .iter()
                .map(move |warning| format!("  {}: {warning}\n", result.tool))
        })
        .collect();
    if !warnings.is_empty() {
        text.push_str("\nwarnings:\n");
        text.extend(warnings);
    }
    if let Some(failure) = outcome.failure() {
        text.push_str(&format!(
            "\nxtask: the {pipeline} stopped at {} (exit {}): fix what it says and run the same command again; \
             the steps that ran are kept and will not be redone\n",
            failure.step.command_line(),
            failure.code
        ));
    }
    text
}
