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

/// The unit suffixes systemd knows.
const UNIT_SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "slice",
    "scope",
];

/// The one check of a systemd unit name from the document, as systemd itself checks one: at most
/// 255 characters of `[A-Za-z0-9:_.@-]` (and `\` for escapes), not starting with `-` (it goes into
/// `systemctl`'s argv), and a known suffix when it has one (`postgresql` means `postgresql.service`).
pub fn validate_unit_name(name: &str, field: &str, example: &str) -> Result<(), crate::error::ToolError> {
    let shown: String = name.chars().take(60).collect::<String>().escape_debug().to_string();
    let problem = if name.is_empty() {
        Some("is empty".to_owned())
    } else if name.len() > 255 {
        Some("is longer than systemd's 255 characters".to_owned())
    } else if name.starts_with('-') {
        Some("starts with `-`".to_owned())
    } else if let Some(bad) = name.chars().find(|character| {
        !(character.is_ascii_alphanumeric() || matches!(character, ':' | '_' | '.' | '@' | '-' | '\\'))
    }) {
        Some(format!("holds {:?}, which systemd does not allow in a unit name", bad))
    } else {
        match name.rsplit_once('.') {
            Some((stem, suffix)) if !UNIT_SUFFIXES.contains(&suffix) || stem.is_empty() => Some(format!(
                "ends in `.{suffix}`, which is not a unit type ({})",
                UNIT_SUFFIXES.join(", ")
            )),
            _ => None,
        }
    };
    match problem {
        Some(problem) => Err(crate::error::ToolError::input(
            field,
            format!("`{shown}` is not a systemd unit name: it {problem}; give one like {example}"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::validate_unit_name;

    #[test]
    fn unit_names_are_checked_as_systemd_checks_them() {
        for good in [
            "postgresql",
            "postgresql@15-main.service",
            "redis-server.service",
            "pretix.service",
        ] {
            assert!(validate_unit_name(good, "x.service", "x").is_ok(), "{good}");
        }
        for (bad, problem) in [
            ("", "is empty"),
            ("--help", "starts with `-`"),
            ("../../etc/shadow", "holds '/'"),
            ("redis server", "holds ' '"),
            ("postgresql.conf", "ends in `.conf`"),
            (&"a".repeat(256), "longer than systemd's 255"),
        ] {
            let error = validate_unit_name(bad, "x.service", "x").expect_err(bad).to_string();
            assert!(error.contains(problem), "{bad}: {error}");
        }
    }
}
