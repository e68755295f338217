//! `apply` with the systemd timer. Without `--root` the systemctl seam records its calls
//! (systemd is not PID 1 here); the unit files go to a temp unit directory.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Stage, mtime, owner_mode, read, recorded, run_recorded};

fn timer_site(dir: &Path, schedule: &str) -> Value {
    json!({
        "cron": {"scheduler": "timer", "schedule": schedule, "unit_dir": dir.join("system")},
        "paths": {"lock_file": dir.join("lock")},
    })
}

/// What `systemctl enable` does for a unit in the unit directory: the tests play systemd's part.
fn enable_like_systemctl(dir: &Path) {
    let wants = dir.join("system/timers.target.wants");
    std::fs::create_dir_all(&wants).expect("mkdir");
    std::os::unix::fs::symlink(dir.join("system/pretix-cron.timer"), wants.join("pretix-cron.timer")).expect("link");
}

#[test]
fn the_timer_pair_is_verified_written_and_enabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("system")).expect("mkdir");
    let log = dir.path().join("systemctl.log");
    let run = run_recorded(&["apply"], &log, &timer_site(dir.path(), "15,45 * * * *"));
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(
        run.has_action("verified the timer and service with systemd-analyze verify"),
        "{:?}",
        run.actions()
    );
    assert_eq!(
        recorded(&log),
        ["systemctl daemon-reload", "systemctl enable --now pretix-cron.timer"]
    );
    let timer = dir.path().join("system/pretix-cron.timer");
    let service = dir.path().join("system/pretix-cron.service");
    assert_eq!(owner_mode(&timer), (0, 0, 0o644));
    assert_eq!(owner_mode(&service), (0, 0, 0o644));
    insta::assert_snapshot!("timer_unit_guide_schedule", read(&timer));
    insta::assert_snapshot!("service_unit_guide_defaults", read(&service));

    // systemd itself accepts the files as written.
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&timer)
        .arg(&service)
        .output()
        .expect("run systemd-analyze");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // The calendar event fires at exactly the cron schedule's minutes.
    let calendar = Command::new("systemd-analyze")
        .args(["calendar", "--iterations=3", "*-*-* *:15,45:00"])
        .output()
        .expect("run systemd-analyze calendar");
    let text = String::from_utf8_lossy(&calendar.stdout);
    assert!(text.contains("Normalized form: *-*-* *:15,45:00"), "{text}");
}

#[test]
fn a_second_run_changes_nothing_and_calls_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("system")).expect("mkdir");
    let log = dir.path().join("systemctl.log");
    let document = timer_site(dir.path(), "*/5 * * * *");
    assert_eq!(run_recorded(&["apply"], &log, &document).code, 0);
    enable_like_systemctl(dir.path());
    let timer = dir.path().join("system/pretix-cron.timer");
    let before = (mtime(&timer), read(&timer));
    std::fs::remove_file(&log).expect("rm log");
    let second = run_recorded(&["apply"], &log, &document);
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(!second.changed(), "{:?}", second.actions());
    assert!(recorded(&log).is_empty(), "{:?}", recorded(&log));
    assert_eq!((mtime(&timer), read(&timer)), before);
}

#[test]
fn a_new_schedule_reloads_and_restarts_the_timer() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("system")).expect("mkdir");
    let log = dir.path().join("systemctl.log");
    assert_eq!(
        run_recorded(&["apply"], &log, &timer_site(dir.path(), "15,45 * * * *")).code,
        0
    );
    enable_like_systemctl(dir.path());
    std::fs::remove_file(&log).expect("rm log");
    let run = run_recorded(&["apply"], &log, &timer_site(dir.path(), "0 * * * *"));
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_eq!(
        recorded(&log),
        ["systemctl daemon-reload", "systemctl restart pretix-cron.timer"]
    );
    assert!(read(&dir.path().join("system/pretix-cron.timer")).contains("OnCalendar=*-*-* *:00:00\n"));
}

#[test]
fn a_unit_systemd_refuses_is_never_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("system")).expect("mkdir");
    let log = dir.path().join("systemctl.log");
    let mut document = timer_site(dir.path(), "15,45 * * * *");
    document["cron"]["docker"] = json!("/nonexistent/docker");
    let run = run_recorded(&["apply"], &log, &document);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(run.msg().contains("systemd-analyze verify refused"), "{}", run.msg());
    assert!(
        run.msg().contains("/nonexistent/docker is not executable"),
        "{}",
        run.msg()
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("system")).expect("read_dir").count(),
        0
    );
    assert!(recorded(&log).is_empty());
}

#[test]
fn the_timer_name_cannot_take_the_containers_unit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut document = timer_site(dir.path(), "15,45 * * * *");
    document["cron"]["timer_unit"] = json!("pretix");
    let run = run_recorded(&["apply"], &dir.path().join("log"), &document);
    assert_eq!(run.code, 2, "{}", run.describe());
    assert!(run.msg().starts_with("cron.timer_unit"), "{}", run.msg());
}

#[test]
fn switching_schedulers_leaves_one_job() {
    let stage = Stage::new();
    assert_eq!(stage.run(&["apply"], &json!({})).code, 0);
    let cron_file = stage.path("/etc/cron.d/pretix");
    assert!(cron_file.exists());

    let to_timer = stage.run(&["apply"], &json!({"cron": {"scheduler": "timer"}}));
    assert_eq!(to_timer.code, 0, "{}", to_timer.describe());
    assert!(stage.path("/etc/systemd/system/pretix-cron.timer").exists());
    assert!(!cron_file.exists(), "the cron file must go once the timer is there");
    assert!(
        to_timer.has_action("skipped (--root): systemctl enable --now pretix-cron.timer"),
        "{:?}",
        to_timer.actions()
    );
    let actions = to_timer.actions();
    assert_eq!(actions.last().map(String::as_str), Some("remove /etc/cron.d/pretix"));

    let back = stage.run(&["apply"], &json!({}));
    assert_eq!(back.code, 0, "{}", back.describe());
    assert!(cron_file.exists());
    assert!(!stage.path("/etc/systemd/system/pretix-cron.timer").exists());
    assert!(!stage.path("/etc/systemd/system/pretix-cron.service").exists());
    assert!(
        back.has_action("skipped (--root): systemctl disable --now pretix-cron.timer"),
        "{:?}",
        back.actions()
    );
}

#[test]
fn units_someone_else_wrote_are_left_alone() {
    let stage = Stage::new();
    let theirs = stage.path("/etc/systemd/system/pretix-cron.timer");
    std::fs::write(&theirs, "[Timer]\nOnCalendar=hourly\n").expect("write");
    let run = stage.run(&["apply"], &json!({}));
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_eq!(read(&theirs), "[Timer]\nOnCalendar=hourly\n");
    assert!(
        run.warnings()
            .iter()
            .any(|warning| warning.contains("the job runs twice")),
        "{:?}",
        run.warnings()
    );
}
