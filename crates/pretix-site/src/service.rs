//! The seam for systemd. Every `systemctl` call of every tool goes through `Services`:
//! - normally it runs `systemctl`;
//! - with `--root DIR` it performs nothing and reports what it would have done;
//! - with `PRETIX_TOOLKIT_SYSTEMCTL_LOG=FILE` in the environment it appends each call to FILE as
//!   one JSON line and succeeds, so tests (where systemd is not PID 1) can assert on the calls.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context as _;

use crate::exec;

/// The environment variable that switches the seam to recording.
pub const RECORD_ENV: &str = "PRETIX_TOOLKIT_SYSTEMCTL_LOG";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Real,
    ReportOnly,
    Record(PathBuf),
}

/// What became of one service action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceOutcome {
    Performed,
    /// Not performed because of `--root` or check mode; the caller reports it.
    Skipped {
        reason: SkipReason,
    },
}

/// Why a service action was not performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `--check`: nothing acts.
    CheckMode,
    /// `--root DIR`: the files are staged, the host's services are not ours to touch.
    StagingRoot,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            SkipReason::CheckMode => "check mode",
            SkipReason::StagingRoot => "--root",
        })
    }
}

/// The answer to a read-only query (`is-active`, `is-enabled`, `show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryOutcome {
    /// systemctl answered: its exit status (0 means yes for `is-*`), stdout and stderr.
    Answered {
        success: bool,
        stdout: String,
        stderr: String,
    },
    /// Not asked: `--root` (no systemd to ask about that tree) or recording (tests).
    NotAsked { reason: &'static str },
}

/// The systemctl seam.
#[derive(Debug, Clone)]
pub struct Services {
    mode: Mode,
}

impl Services {
    /// The seam for a run: `report_only` for `--root` runs; the recording env var wins over
    /// real calls but not over `--root`.
    pub fn for_run(report_only: bool) -> Self {
        let mode = if report_only {
            Mode::ReportOnly
        } else if let Some(path) = std::env::var_os(RECORD_ENV) {
            Mode::Record(PathBuf::from(path))
        } else {
            Mode::Real
        };
        Services { mode }
    }

    /// The file calls are recorded to instead of being run (tests only).
    pub fn recording_to(&self) -> Option<&std::path::Path> {
        match &self.mode {
            Mode::Record(path) => Some(path),
            Mode::Real | Mode::ReportOnly => None,
        }
    }

    /// Runs `systemctl <args>`, or reports/records it. `check` runs never act.
    pub fn systemctl(&self, args: &[&str], check: bool, log: &mut dyn FnMut(&str)) -> anyhow::Result<ServiceOutcome> {
        if check {
            return Ok(ServiceOutcome::Skipped {
                reason: SkipReason::CheckMode,
            });
        }
        match &self.mode {
            Mode::ReportOnly => Ok(ServiceOutcome::Skipped {
                reason: SkipReason::StagingRoot,
            }),
            Mode::Record(path) => {
                let line = serde_json::json!({ "argv": std::iter::once("systemctl").chain(args.iter().copied()).collect::<Vec<_>>() });
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("open systemctl record {}", path.display()))?;
                writeln!(file, "{line}").with_context(|| format!("write systemctl record {}", path.display()))?;
                log(&format!("recorded: systemctl {}", args.join(" ")));
                Ok(ServiceOutcome::Performed)
            }
            Mode::Real => {
                exec::run(Command::new("systemctl").args(args), None, log)?;
                Ok(ServiceOutcome::Performed)
            }
        }
    }

    /// Asks systemd something without changing anything, also in check mode. Recorded calls
    /// are written to the record and answered `NotAsked`: the recording seam knows no state.
    pub fn query(&self, args: &[&str], log: &mut dyn FnMut(&str)) -> anyhow::Result<QueryOutcome> {
        match &self.mode {
            Mode::ReportOnly => Ok(QueryOutcome::NotAsked { reason: "--root" }),
            Mode::Record(_) => {
                self.systemctl(args, false, log)?;
                Ok(QueryOutcome::NotAsked {
                    reason: "systemctl calls are only recorded",
                })
            }
            Mode::Real => {
                let output = exec::output(Command::new("systemctl").args(args), log)?;
                Ok(QueryOutcome::Answered {
                    success: output.status.success(),
                    stdout: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
                    stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                })
            }
        }
    }
}
