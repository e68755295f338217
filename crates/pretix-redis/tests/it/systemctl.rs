//! Without `--root`: the systemctl seam records its calls (systemd is not PID 1 here), and
//! the tool waits for the socket after the recorded restart.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{BIN, DEBIAN_REDIS_CONF, Redis, RedisOptions, run_with};

/// A document whose every path is an absolute path inside `dir`.
fn host_site(dir: &Path, timeout: u32) -> Value {
    json!({
        "redis": {
            "config_file": dir.join("redis.conf"),
            "socket": dir.join("run/redis.sock"),
            "dropin_dir": dir.join("redis-server.service.d"),
            "restart_timeout_seconds": timeout,
        },
        "paths": {
            "lock_file": dir.join("pretix-toolkit.lock"),
            "secrets_dir": dir.join("secrets"),
        }
    })
}

fn recorded(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line")["argv"].clone())
        .collect()
}

fn apply(log: &Path, document: &Value) -> crate::support::Run {
    let mut command = Command::new(BIN);
    command.arg("apply").env(pretix_site::service::RECORD_ENV, log);
    run_with(&mut command, document)
}

#[test]
fn daemon_reload_then_restart_are_recorded_and_the_socket_is_awaited() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("run")).expect("mkdir");
    std::fs::copy(DEBIAN_REDIS_CONF, dir.path().join("redis.conf")).expect("copy");
    // The "restarted" server: already running with the socket and mode the new file asks for.
    let running = dir.path().join("running.conf");
    std::fs::write(&running, "port 0\nunixsocketperm 777\n").expect("write");
    let _redis = Redis::start_with_config_file(
        &running,
        RedisOptions {
            socket: dir.path().join("run/redis.sock"),
            dir: dir.path().to_path_buf(),
            as_redis_user: false,
            port: None,
        },
    );
    let log = dir.path().join("systemctl.log");
    let document = host_site(dir.path(), 5);

    let first = apply(&log, &document);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        recorded(&log),
        [
            json!(["systemctl", "daemon-reload"]),
            json!(["systemctl", "restart", "redis-server"])
        ],
        "the drop-in must be loaded before the restart"
    );
    let actions = first.actions();
    assert!(
        actions.contains(&"systemctl restart redis-server".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|action| action.contains("answers PING on") && action.contains("(mode 0777")),
        "{actions:?}"
    );

    let second = apply(&log, &document);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.result()["changed"], false);
    assert_eq!(recorded(&log).len(), 2, "a re-run restarted or reloaded again");
}

#[test]
fn the_wait_after_a_restart_is_bounded_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("run")).expect("mkdir");
    std::fs::copy(DEBIAN_REDIS_CONF, dir.path().join("redis.conf")).expect("copy");
    let log = dir.path().join("systemctl.log");
    let started = Instant::now();
    let outcome = apply(&log, &host_site(dir.path(), 1));
    let took = started.elapsed();
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    let socket = dir.path().join("run/redis.sock");
    let msg = outcome.msg();
    assert!(
        msg.starts_with(&format!(
            "redis-server did not answer on {} within 1s after the restart: the socket does not exist: is it \
             running with this redis.conf? (systemctl status redis-server; journalctl -u redis-server); the previous \
             redis.conf is saved as ",
            socket.display()
        )),
        "{msg}"
    );
    assert!(took < Duration::from_secs(5), "the wait took {took:?}");
    assert_eq!(recorded(&log).len(), 2);
}

/// The restarted server comes up a while after `systemctl restart` returns, as a real one may:
/// the bounded wait sees it answer and the run succeeds.
#[test]
fn a_server_that_answers_late_after_the_restart_is_waited_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("run")).expect("mkdir");
    std::fs::copy(DEBIAN_REDIS_CONF, dir.path().join("redis.conf")).expect("copy");
    let running = dir.path().join("running.conf");
    std::fs::write(&running, "port 0\nunixsocketperm 777\n").expect("write");
    let log = dir.path().join("systemctl.log");
    let document = host_site(dir.path(), 10);
    let delay = Duration::from_millis(1500);
    let started = Instant::now();
    let (outcome, _redis) = std::thread::scope(|scope| {
        let late = scope.spawn(|| {
            std::thread::sleep(delay);
            Redis::start_with_config_file(
                &running,
                RedisOptions {
                    socket: dir.path().join("run/redis.sock"),
                    dir: dir.path().to_path_buf(),
                    as_redis_user: false,
                    port: None,
                },
            )
        });
        let outcome = apply(&log, &document);
        (outcome, late.join().expect("redis"))
    });
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(started.elapsed() >= delay, "the run ended before the server was up");
    assert!(
        outcome
            .actions()
            .iter()
            .any(|action| action.contains("answers PING on")),
        "{:?}",
        outcome.actions()
    );
}
