//! `verify` (read-only): the job is installed and would run, and pretix says it ran recently.

use std::os::unix::fs::PermissionsExt;

use pretix_site::docker::Docker;
use pretix_site::fs::CurrentFile;
use pretix_site::report::CheckStatus;
use pretix_site::sections::CronScheduler;
use pretix_site::service::QueryOutcome;
use pretix_site::{Context, Document, ToolError};

use crate::last_run::{self, Located};
use crate::plan::{cron_spec, service_spec, timer_spec};
use crate::settings::{self, Desired};

pub fn verify(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let desired = settings::resolve(document)?;
    ctx.check_item(
        "schedule",
        CheckStatus::Ok,
        format!(
            "{}: at most {} min between runs",
            desired.schedule.cron_fields(),
            desired.schedule.interval_minutes()
        ),
    );
    match crate::inspect::check_user(ctx.root(), &desired.user) {
        Ok(()) => ctx.check_item(
            "user",
            CheckStatus::Ok,
            format!("{} exists and may use Docker", desired.user),
        ),
        Err(error) => ctx.check_item("user", CheckStatus::Failure, error.to_string()),
    }
    check_docker_client(ctx, &desired);
    check_container(ctx, &desired);
    match desired.scheduler {
        CronScheduler::Cron => {
            check_file(ctx, "cron file", &cron_spec(&desired));
            check_active(ctx, "cron daemon", "cron.service", "systemctl enable --now cron");
            check_other_scheduler(ctx, &desired.timer_file(), "timer");
        }
        CronScheduler::Timer => {
            check_file(ctx, "service unit", &service_spec(&desired));
            check_file(ctx, "timer unit", &timer_spec(&desired));
            check_active(
                ctx,
                "timer",
                &desired.timer_name(),
                &format!("pretix-cron apply, or systemctl enable --now {}", desired.timer_name()),
            );
            check_last_service_result(ctx, &desired);
            check_other_scheduler(ctx, &desired.cron_file, "cron file");
        }
    }
    check_last_run(ctx, document, &desired)?;
    let count = |status: CheckStatus| ctx.checks().iter().filter(|item| item.status == status).count();
    let (ok, warnings, failures) = (
        count(CheckStatus::Ok),
        count(CheckStatus::Warning),
        count(CheckStatus::Failure),
    );
    if failures > 0 {
        return Err(ToolError::failed(format!(
            "{failures} check(s) failed ({ok} ok, {warnings} warning(s)): each failed item says what to do"
        )));
    }
    Ok(format!("{ok} check(s) ok, {warnings} warning(s)"))
}

fn check_docker_client(ctx: &mut Context, desired: &Desired) {
    let path = ctx.root().host_path(&desired.docker);
    let (status, message) = match std::fs::metadata(&path) {
        Ok(metadata) if metadata.is_file() && metadata.permissions().mode() & 0o111 != 0 => {
            (CheckStatus::Ok, format!("{} is there", desired.docker.display()))
        }
        Ok(_) => (
            CheckStatus::Failure,
            format!(
                "{} is not an executable file: install the docker client there, or set cron.docker",
                desired.docker.display()
            ),
        ),
        Err(error) => (
            CheckStatus::Failure,
            format!(
                "{}: {error}: install Docker (the job calls it), or set cron.docker to where the client is",
                desired.docker.display()
            ),
        ),
    };
    ctx.check_item("docker client", status, message);
}

/// The container the job execs into is running: `docker exec` fails otherwise.
fn check_container(ctx: &mut Context, desired: &Desired) {
    let name = &desired.target.name;
    let skipped = if ctx.is_offline() {
        Some("--offline")
    } else if ctx.root().is_redirected() {
        Some("--root")
    } else {
        None
    };
    let (status, message) = match skipped {
        Some(reason) => (
            CheckStatus::Warning,
            format!("not verified ({reason}): Docker was not asked whether {name} is running"),
        ),
        None => match Docker::connect(desired.target.docker_host.as_deref())
            .and_then(|docker| docker.inspect_container(name))
        {
            Ok(Some(info)) if info.running => (CheckStatus::Ok, format!("{name} is running")),
            Ok(Some(info)) => (
                CheckStatus::Failure,
                format!(
                    "{name} is {}, so every run of the job fails: start it (systemctl start {name}, or pretix-unit \
                     apply)",
                    info.status
                ),
            ),
            Ok(None) => (
                CheckStatus::Failure,
                format!("there is no container {name}, so every run of the job fails: pretix-unit apply creates it"),
            ),
            Err(error) => (CheckStatus::Failure, error.to_string()),
        },
    };
    ctx.check_item("container", status, message);
}

/// The other scheduler's file, left behind, would run the job a second time.
fn check_other_scheduler(ctx: &mut Context, path: &std::path::Path, what: &str) {
    if ctx.root().host_path(path).symlink_metadata().is_ok() {
        ctx.check_item(
            "one job",
            CheckStatus::Warning,
            format!(
                "{} is there too, so pretix cron may run twice: pretix-cron apply removes its own {what}; remove \
                 one written by hand",
                path.display()
            ),
        );
    }
}

/// The file is there with the content, owner and mode `apply` writes.
fn check_file(ctx: &mut Context, name: &str, spec: &pretix_site::fs::FileSpec) {
    let shown = spec.path.display().to_string();
    let (status, message) = match CurrentFile::read(&ctx.root().host_path(&spec.path)) {
        Ok(None) => (
            CheckStatus::Failure,
            format!("{shown} does not exist: run pretix-cron apply"),
        ),
        Ok(Some(current)) if current.content != spec.content => (
            CheckStatus::Failure,
            format!("{shown} differs from what the document gives: run pretix-cron apply (--diff shows how)"),
        ),
        Ok(Some(current)) if current.uid != 0 || current.mode & 0o022 != 0 => (
            CheckStatus::Failure,
            format!(
                "{shown} is {}:{} {:04o}; cron and systemd ignore job files others can change: run pretix-cron \
                 apply (root 0644)",
                current.uid, current.gid, current.mode
            ),
        ),
        Ok(Some(current)) => (
            CheckStatus::Ok,
            format!(
                "{shown} as written, {}:{} {:04o}",
                current.uid, current.gid, current.mode
            ),
        ),
        Err(error) => (CheckStatus::Failure, format!("{shown}: {error}")),
    };
    ctx.check_item(name, status, message);
}

/// `systemctl is-active <unit>`.
fn check_active(ctx: &mut Context, name: &str, unit: &str, fix: &str) {
    let (status, message) = match query(ctx, &["is-active", unit]) {
        Ok(QueryOutcome::Answered { success: true, .. }) => (CheckStatus::Ok, format!("{unit} is active")),
        Ok(QueryOutcome::Answered { stdout, stderr, .. }) if !stdout.is_empty() => (
            CheckStatus::Failure,
            format!("{unit} is {stdout}, so the job does not run: {fix}{}", detail(&stderr)),
        ),
        Ok(QueryOutcome::Answered { stderr, .. }) => (
            CheckStatus::Failure,
            format!("systemd did not say whether {unit} is active{}", detail(&stderr)),
        ),
        Ok(QueryOutcome::NotAsked { reason }) => (
            CheckStatus::Warning,
            format!("not verified ({reason}): systemd was not asked whether {unit} is active"),
        ),
        Err(error) => (CheckStatus::Failure, format!("systemctl is-active {unit}: {error}")),
    };
    ctx.check_item(name, status, message);
}

/// The result of the service's last run, as systemd keeps it.
fn check_last_service_result(ctx: &mut Context, desired: &Desired) {
    let service = desired.service_name();
    let outcome = query(
        ctx,
        &[
            "show",
            "--property=ActiveState,Result,ExecMainStatus,ExecMainStartTimestamp,ExecMainExitTimestamp",
            &service,
        ],
    );
    let (status, message) = match outcome {
        Ok(QueryOutcome::Answered {
            success: true, stdout, ..
        }) => {
            let property = |key: &str| {
                stdout
                    .lines()
                    .find_map(|line| line.strip_prefix(&format!("{key}=")))
                    .unwrap_or_default()
                    .to_owned()
            };
            let (result, exit, when) = (
                property("Result"),
                property("ExecMainStatus"),
                property("ExecMainExitTimestamp"),
            );
            if property("ActiveState") == "activating" {
                (
                    CheckStatus::Ok,
                    format!(
                        "{service} is running now (since {})",
                        property("ExecMainStartTimestamp")
                    ),
                )
            } else if when.is_empty() {
                (CheckStatus::Ok, format!("{service} has not run since systemd started"))
            } else if result == "success" {
                (CheckStatus::Ok, format!("{service} last ended well ({when})"))
            } else {
                (
                    CheckStatus::Failure,
                    format!(
                        "{service} last ended with {result} (exit status {exit}, {when}): journalctl -u {service} says \
                         why"
                    ),
                )
            }
        }
        Ok(QueryOutcome::Answered { stderr, .. }) => (
            CheckStatus::Failure,
            format!("systemctl show {service} failed{}", detail(&stderr)),
        ),
        Ok(QueryOutcome::NotAsked { reason }) => (
            CheckStatus::Warning,
            format!("not verified ({reason}): systemd was not asked how {service} last ended"),
        ),
        Err(error) => (CheckStatus::Failure, format!("systemctl show {service}: {error}")),
    };
    ctx.check_item("last timer run", status, message);
}

fn detail(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" (systemctl: {})", stderr.lines().next().unwrap_or_default())
    }
}

fn query(ctx: &mut Context, args: &[&str]) -> Result<QueryOutcome, ToolError> {
    ctx.systemctl_query(args)
}

/// pretix's own mark of the last run, against twice the schedule's interval.
fn check_last_run(ctx: &mut Context, document: &Document, desired: &Desired) -> Result<(), ToolError> {
    if ctx.is_offline() {
        ctx.check_item(
            "last run",
            CheckStatus::Warning,
            "not checked (--offline): Redis was not contacted",
        );
        return Ok(());
    }
    let (status, message) = match last_run::locate(ctx, document)? {
        Located::Unknowable(why) => (CheckStatus::Warning, format!("not verified: {why}")),
        Located::Redis(target) => match target.read() {
            Ok(last) => match last_run::judge(last, desired.schedule.interval_minutes()) {
                (true, message) => (CheckStatus::Ok, message),
                (false, message) => (CheckStatus::Failure, message),
            },
            Err(error) => (
                CheckStatus::Failure,
                format!("{error}: pretix-redis verify shows why Redis does not answer"),
            ),
        },
    };
    ctx.check_item("last run", status, message);
    Ok(())
}
