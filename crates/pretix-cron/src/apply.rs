//! `apply`: validate, inspect, plan, then carry the plan out (in `--check` mode: report it).

use std::process::Command;

use anyhow::Context as _;
use pretix_site::run::Verbosity;
use pretix_site::sections::CronScheduler;
use pretix_site::{Context, Document, ToolError, exec};

use crate::inspect;
use crate::plan::{self, Plan, Step};
use crate::settings::{self, Desired};

pub fn apply(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let desired = settings::resolve(document)?;
    inspect::preflight(ctx.root(), &desired)?;
    let state = inspect::state(ctx.root(), &desired)?;
    let plan = plan::plan(&desired, &state);
    if !desired.target.runs_task_worker {
        ctx.warn(format!(
            "no container runs the task worker (role taskworker or all), so the tasks pretix cron queues (mails, \
             exports) wait: the job runs in {}, but add a taskworker container",
            desired.target.name
        ));
    }
    for warning in &plan.warnings {
        ctx.warn(warning.clone());
    }
    perform(ctx, &plan)?;
    Ok(summary(&desired, ctx.has_changed(), ctx.is_check()))
}

fn summary(desired: &Desired, changed: bool, check: bool) -> String {
    let how = match desired.scheduler {
        CronScheduler::Cron => format!("{} ({})", desired.cron_file.display(), desired.schedule.cron_fields()),
        CronScheduler::Timer => format!("{} ({})", desired.timer_name(), desired.schedule.on_calendar()),
    };
    let state = match (changed, check) {
        (false, _) => "already in place",
        (true, false) => "set up",
        (true, true) => "would be set up",
    };
    format!(
        "pretix cron in the container {}, at least every {} min: {how} {state}",
        desired.target.name,
        desired.schedule.interval_minutes()
    )
}

/// Carries out the steps. Files go through `Context::file` (atomic, owner and mode before the
/// rename; nothing written in check mode); systemctl through the one seam.
fn perform(ctx: &mut Context, plan: &Plan) -> Result<(), ToolError> {
    for step in &plan.steps {
        match step {
            Step::VerifyUnits {
                timer_name,
                timer,
                service_name,
                service,
            } => verify_units(ctx, [(timer_name, timer), (service_name, service)])?,
            Step::WriteFile { spec, .. } => {
                ctx.file(spec)?;
            }
            Step::RemoveFile { path } => {
                if !ctx.is_check() {
                    let host_path = ctx.root().host_path(path);
                    std::fs::remove_file(&host_path).with_context(|| format!("remove {}", path.display()))?;
                }
                ctx.changed(step.describe());
            }
            Step::Systemctl(args) => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                ctx.systemctl(&args).map_err(|error| {
                    ToolError::Failed(anyhow::anyhow!(
                        "systemctl {} failed: {error}: see systemctl status and journalctl for the unit; a re-run \
                         repeats only what is still missing",
                        args.join(" ")
                    ))
                })?;
            }
        }
    }
    Ok(())
}

/// `systemd-analyze verify` of the two units as they will be written, from a private temp
/// directory, before either replaces what is there.
pub fn verify_units(ctx: &mut Context, units: [(&String, &String); 2]) -> Result<(), ToolError> {
    let dir = tempfile::Builder::new()
        .prefix("pretix-cron-verify.")
        .tempdir()
        .context("create a temp dir for systemd-analyze verify")?;
    let mut paths = Vec::new();
    for (name, text) in units {
        let path = dir.path().join(name);
        std::fs::write(&path, text).with_context(|| format!("write {name} for systemd-analyze verify"))?;
        paths.push(path);
    }
    let verbose = ctx.verbosity() >= Verbosity::Verbose;
    let mut log = |line: &str| {
        if verbose {
            eprintln!("pretix-cron: {line}");
        }
    };
    let output = exec::run(
        Command::new("systemd-analyze").arg("verify").args(&paths),
        None,
        &mut log,
    );
    match output {
        Ok(output) => {
            // systemd-analyze prints its findings on stderr and may still exit 0.
            let findings = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            if !findings.is_empty() {
                ctx.warn(format!("systemd-analyze verify: {findings}"));
            }
            ctx.note("verified the timer and service with systemd-analyze verify");
            Ok(())
        }
        Err(exec::ExecError::Spawn { source, .. }) => Err(ToolError::failed(format!(
            "cannot run systemd-analyze ({source}): install systemd (apt-get install systemd), which the timer needs \
             anyway"
        ))),
        Err(error) => Err(ToolError::failed(format!(
            "systemd-analyze verify refused the timer or service, nothing was written: {error}"
        ))),
    }
}
