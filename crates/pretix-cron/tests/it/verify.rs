//! `verify`: the installed job, and pretix's own record of its last run, read from a real Redis
//! that real pretix wrote to.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use pretix_testkit::{Redis, RedisOptions};

use crate::support::{Run, Stage, recorded, run_recorded};

const MARK: &str = ":1:pretix_runperiodic_executed";

/// A stage with the docker client in place and a redis-server on the guide's socket path.
fn stage_with_redis() -> (Stage, Redis) {
    let stage = Stage::new();
    let docker = stage.path("/usr/bin/docker");
    std::fs::write(&docker, "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir_all(stage.path("/var/run/redis")).expect("mkdir");
    let conf = stage.path("/redis.conf");
    std::fs::write(&conf, "port 0\nunixsocketperm 700\ndatabases 16\n").expect("write");
    let redis = Redis::start_with_config_file(
        &conf,
        RedisOptions {
            socket: stage.path("/var/run/redis/redis.sock"),
            dir: stage.path("/"),
            as_redis_user: false,
            port: Some(0),
        },
    );
    (stage, redis)
}

/// The guide's document as pretix-redis leaves it.
fn site() -> Value {
    json!({
        "config": {"redis": {"location": "unix:///var/run/redis/redis.sock?db=0", "sessions": "true"}},
        "container": {"volumes": ["/var/run/redis:/var/run/redis"]},
    })
}

fn venv() -> PathBuf {
    let venv = std::env::var_os("PRETIX_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    assert!(
        venv.join("bin/python").exists(),
        "no Python venv at {}: run scripts/install-test-deps (or cargo xtask test), or set PRETIX_TEST_VENV",
        venv.display()
    );
    venv
}

/// Real pretix's `runperiodic` (what the image's `pretix cron` runs) with Redis as its cache.
/// Without a database its tasks fail, which runperiodic reports and survives, as it does in
/// production: the mark is set first.
fn real_pretix_cron(socket: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("data")).expect("mkdir");
    let config = dir.path().join("pretix.cfg");
    std::fs::write(
        &config,
        format!(
            "[pretix]\ndatadir={}\necb_rates=off\n\n[redis]\nlocation=unix://{}?db=0\n",
            dir.path().join("data").display(),
            socket.display()
        ),
    )
    .expect("write pretix.cfg");
    let output = Command::new(venv().join("bin/python"))
        .args(["-m", "pretix", "runperiodic"])
        .env("PRETIX_CONFIG_FILE", &config)
        .output()
        .expect("run pretix runperiodic");
    assert!(
        output.status.success(),
        "pretix runperiodic failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn redis_command(socket: &Path, args: &[&str]) -> redis::Value {
    let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Unix(socket.to_path_buf()))
        .expect("connection info");
    let client = redis::Client::open(info).expect("client");
    let mut connection = client.get_connection().expect("connect");
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query(&mut connection).expect("redis command")
}

fn last_run(run: &Run) -> (String, String) {
    run.check_item("last run")
        .unwrap_or_else(|| panic!("no last run item: {}", run.describe()))
}

#[test]
fn verify_fails_before_the_first_run_and_passes_after_real_pretix_ran() {
    let (stage, redis) = stage_with_redis();
    let applied = stage.run(&["apply"], &site());
    assert_eq!(applied.code, 0, "{}", applied.describe());

    let before = stage.run(&["verify"], &applied.next_input());
    assert_eq!(before.code, 1, "{}", before.describe());
    let (status, message) = last_run(&before);
    assert_eq!(status, "failure");
    assert!(
        message.contains("no record of pretix cron in the last 12 hours"),
        "{message}"
    );
    assert_eq!(before.check_item("cron file").map(|item| item.0).as_deref(), Some("ok"));
    let (status, message) = before.check_item("cron daemon").expect("cron daemon item");
    assert_eq!(status, "warning");
    assert!(message.contains("not verified (--root)"), "{message}");

    real_pretix_cron(redis.socket_path());
    let after = stage.run(&["verify"], &applied.next_input());
    assert_eq!(after.code, 0, "{}", after.describe());
    let (status, message) = last_run(&after);
    assert_eq!(status, "ok");
    assert!(message.contains("pretix cron last ran"), "{message}");
    assert!(message.contains("at most 60 min allowed"), "{message}");

    // The mark as it is 61 minutes after a run: older than twice the guide's 30 minutes.
    let left = (12 * 3600 - 61 * 60) * 1000;
    redis_command(redis.socket_path(), &["PEXPIRE", MARK, &left.to_string()]);
    let late = stage.run(&["verify"], &applied.next_input());
    assert_eq!(late.code, 1, "{}", late.describe());
    let (status, message) = last_run(&late);
    assert_eq!(status, "failure");
    assert!(
        message.contains("last ran 61 min ago, more than twice the schedule's 30 min"),
        "{message}"
    );

    // A tighter schedule tightens the limit: 10 minutes after a run, */4 fails.
    let left = (12 * 3600 - 10 * 60) * 1000;
    redis_command(redis.socket_path(), &["PEXPIRE", MARK, &left.to_string()]);
    let mut tight = applied.next_input();
    tight["cron"] = json!({"schedule": "*/4 * * * *"});
    assert_eq!(stage.run(&["apply"], &tight).code, 0);
    let (status, message) = last_run(&stage.run(&["verify"], &tight));
    assert_eq!(status, "failure", "{message}");
}

#[test]
fn a_redis_that_does_not_answer_is_a_clear_failure() {
    let (stage, mut redis) = stage_with_redis();
    redis.kill();
    assert_eq!(stage.run(&["apply"], &site()).code, 0);
    let run = stage.run(&["verify"], &site());
    assert_eq!(run.code, 1, "{}", run.describe());
    let (status, message) = last_run(&run);
    assert_eq!(status, "failure");
    assert!(
        message.contains("cannot connect to Redis at /var/run/redis/redis.sock db 0"),
        "{message}"
    );
}

#[test]
fn without_redis_the_last_run_cannot_be_known() {
    let stage = Stage::new();
    assert_eq!(stage.run(&["apply"], &json!({})).code, 0);
    let (status, message) = last_run(&stage.run(&["verify"], &json!({})));
    assert_eq!(status, "warning");
    assert!(message.contains("config.redis.location is not set"), "{message}");
    let memcached = json!({"config": {"memcached": {"location": "127.0.0.1:11211"}}});
    let (status, message) = last_run(&stage.run(&["verify"], &memcached));
    assert_eq!(status, "warning");
    assert!(message.contains("memcached"), "{message}");
}

#[test]
fn a_missing_cron_file_fails_verify() {
    let stage = Stage::new();
    let run = stage.run(&["verify"], &json!({}));
    assert_eq!(run.code, 1, "{}", run.describe());
    let (status, message) = run.check_item("cron file").expect("cron file item");
    assert_eq!(status, "failure");
    assert!(message.contains("does not exist: run pretix-cron apply"), "{message}");
    let (status, _) = run.check_item("docker client").expect("docker client item");
    assert_eq!(status, "failure");
}

#[test]
fn the_timer_is_asked_about_through_the_systemctl_seam() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("system")).expect("mkdir");
    let log = dir.path().join("systemctl.log");
    let document = json!({
        "cron": {"scheduler": "timer", "unit_dir": dir.path().join("system")},
        "paths": {"lock_file": dir.path().join("lock")},
    });
    assert_eq!(run_recorded(&["apply"], &log, &document).code, 0);
    std::fs::remove_file(&log).expect("rm");
    let run = run_recorded(&["verify"], &log, &document);
    assert_eq!(
        recorded(&log),
        [
            "systemctl is-active pretix-cron.timer",
            "systemctl show \
             --property=ActiveState,Result,ExecMainStatus,ExecMainStartTimestamp,ExecMainExitTimestamp \
             pretix-cron.service"
        ]
    );
    assert_eq!(run.check_item("timer unit").map(|item| item.0).as_deref(), Some("ok"));
    let (status, message) = run.check_item("timer").expect("timer item");
    assert_eq!(status, "warning");
    assert!(
        message.contains("not verified (systemctl calls are only recorded)"),
        "{message}"
    );
}

#[test]
fn a_leftover_timer_beside_the_cron_file_is_a_warning() {
    let stage = Stage::new();
    assert_eq!(stage.run(&["apply"], &json!({})).code, 0);
    let (status, message) = stage
        .run(&["verify"], &json!({}))
        .check_item("user")
        .expect("user item");
    assert_eq!(status, "ok", "{message}");
    std::fs::write(
        stage.path("/etc/systemd/system/pretix-cron.timer"),
        "[Timer]\nOnCalendar=hourly\n",
    )
    .expect("write");
    let run = stage.run(&["verify"], &json!({}));
    let (status, message) = run.check_item("one job").expect("one job item");
    assert_eq!(status, "warning");
    assert!(message.contains("pretix cron may run twice"), "{message}");
}
