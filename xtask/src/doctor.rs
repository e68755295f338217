//! `doctor`: every tool's read-only `verify` in one report. Each tool checks its own part (the
//! database and its login, the Redis socket, pretix.cfg and the data dir, the image and its
//! plugins, the container, its health and `pretix upgrade`, the cron job, the proxy and its
//! certificate); doctor runs them all, even after one fails, and shows one table.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use pretix_site::report::CheckStatus;
use serde_json::json;

use crate::steps::{Step, StepRun, TOOLS, ToolDir, run_tool};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The site document (the one the install printed)
    #[arg(long, value_name = "FILE")]
    pub site: PathBuf,
    /// The report as JSON on stdout, for machines
    #[arg(long)]
    pub json: bool,
    /// Where the tool binaries are (default: built by cargo, or next to this binary)
    #[arg(long, value_name = "DIR")]
    pub tools: Option<PathBuf>,
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    pub tool: String,
    pub name: String,
    pub status: CheckStatus,
    pub message: String,
}

pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let document = std::fs::read_to_string(&args.site).with_context(|| format!("read {}", args.site.display()))?;
    let tools = ToolDir::locate(args.tools.as_deref())?;
    let findings = verify_all(&tools, &document)?;
    let healthy = findings.iter().all(|finding| finding.status != CheckStatus::Failure);
    if args.json {
        let rows: Vec<_> = findings
            .iter()
            .map(|finding| {
                json!({"tool": finding.tool, "check": finding.name, "status": finding.status, "message": finding.message})
            })
            .collect();
        pretix_site::run::print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({"healthy": healthy, "findings": rows}))?
        ));
    } else {
        pretix_site::run::print_stdout(&table(&findings, std::io::stdout().is_terminal()));
    }
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs `verify` of every tool on the same document, whatever the others found.
pub fn verify_all(tools: &ToolDir, document: &str) -> anyhow::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for tool in TOOLS {
        let step = Step::new(tool, &["verify"]);
        let (output, code) = run_tool(&tools.path(tool), &step.args, document)
            .with_context(|| format!("run {}", step.command_line()))?;
        let run = StepRun {
            step,
            code,
            result: crate::steps::last_result(&output, tool),
        };
        findings.extend(findings_of(&run));
    }
    Ok(findings)
}

/// A tool's checks; a tool that failed without checks (bad input, a server it could not reach)
/// is a failure row of its own.
fn findings_of(run: &StepRun) -> Vec<Finding> {
    let tool = run.step.tool.to_owned();
    let Some(result) = &run.result else {
        return vec![Finding {
            tool,
            name: "verify".to_owned(),
            status: CheckStatus::Failure,
            message: format!("exit {} without a result document", run.code),
        }];
    };
    let mut findings: Vec<Finding> = result
        .checks
        .iter()
        .map(|item| Finding {
            tool: tool.clone(),
            name: item.name.clone(),
            status: item.status,
            message: item.message.clone(),
        })
        .collect();
    let has_failure = findings.iter().any(|finding| finding.status == CheckStatus::Failure);
    if run.code != 0 && !has_failure {
        findings.push(Finding {
            tool,
            name: "verify".to_owned(),
            status: CheckStatus::Failure,
            message: result.msg.clone(),
        });
    }
    findings
}

/// The report for humans: one line per finding, failures and warnings marked, a verdict last.
pub fn table(findings: &[Finding], color: bool) -> String {
    let width = findings
        .iter()
        .map(|finding| finding.name.len())
        .max()
        .unwrap_or(5)
        .min(40);
    let mut text = String::new();
    for finding in findings {
        let (label, paint) = match finding.status {
            CheckStatus::Ok => ("ok", "32"),
            CheckStatus::Warning => ("WARNING", "33"),
            CheckStatus::Failure => ("FAILURE", "31"),
        };
        let label = if color {
            format!("\x1b[{paint}m{label:<8}\x1b[0m")
        } else {
            format!("{label:<8}")
        };
        text.push_str(&format!(
            "{label} {:<14} {:<width$}  {}\n",
            finding.tool, finding.name, finding.message
        ));
    }
    let failures = findings
        .iter()
        .filter(|finding| finding.status == CheckStatus::Failure)
        .count();
    let warnings = findings
        .iter()
        .filter(|finding| finding.status == CheckStatus::Warning)
        .count();
    text.push_str(&if failures == 0 {
        format!("\nhealthy: {} checks, {warnings} warnings\n", findings.len())
    } else {
        format!(
            "\nNOT HEALTHY: {failures} failures, {warnings} warnings in {} checks\n",
            findings.len()
        )
    });
    text
}
