//! Bad input and faults: clear messages, the right exit code, nothing changed.

use std::process::Command;

use serde_json::json;

use crate::support::{BIN, PRETIX_UID, Stage, mtime, run, run_with, site};

#[test]
fn bad_socket_paths_exit_2_and_change_nothing() {
    let stage = Stage::new();
    let before = mtime(&stage.conf());
    for (socket, expected) in [
        ("var/run/redis/redis.sock", "is relative"),
        ("/var/run/redis/my redis.sock", "space or control character"),
        ("/var/run/redis/redis\u{1b}.sock", "space or control character"),
        ("/var/run/redis/../redis/redis.sock", "'..'"),
        ("/var/run/redis/", "must name the socket file"),
        ("/var/run/redis.sock", "shared system directory"),
    ] {
        let outcome = run(
            &["apply", "--root", &stage.root_arg()],
            &site(json!({"socket": socket})),
        );
        assert_eq!(outcome.code, 2, "{socket:?}: {}", outcome.stderr);
        assert!(
            outcome.msg().starts_with("redis.socket: "),
            "{socket:?}: {}",
            outcome.msg()
        );
        assert!(outcome.msg().contains(expected), "{socket:?}: {}", outcome.msg());
        assert_eq!(outcome.result()["changed"], false);
    }
    assert_eq!(mtime(&stage.conf()), before);
    assert!(!stage.dropin().exists());
    let outcome = run(
        &["apply", "--root", &stage.root_arg()],
        &site(json!({"socket_mod": "group"})),
    );
    assert_eq!(outcome.code, 2);
    assert!(
        outcome.msg().contains("did you mean `socket_mode`?"),
        "{}",
        outcome.msg()
    );
}

#[test]
fn a_missing_redis_conf_is_a_clear_error() {
    let stage = Stage::new();
    std::fs::remove_file(stage.conf()).expect("remove");
    let outcome = run(&["apply", "--root", &stage.root_arg()], &site(json!({})));
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert_eq!(
        outcome.msg(),
        "/etc/redis/redis.conf: does not exist: install redis-server (apt-get install redis-server), or set \
         redis.config_file to your redis.conf"
    );
    assert!(
        !stage.dropin().exists(),
        "the drop-in was written before redis.conf was read"
    );
}

#[test]
fn an_unreadable_redis_conf_is_a_clear_error() {
    let stage = Stage::new();
    let before = mtime(&stage.conf());
    // As a user who may not enter /etc/redis (2770 redis:redis), as on Debian: only a plan,
    // since a changing run as that user stops before anything (tested below).
    let mut command = Command::new("setpriv");
    command
        .args([
            &format!("--reuid={PRETIX_UID}"),
            &format!("--regid={PRETIX_UID}"),
            "--clear-groups",
            BIN,
            "apply",
            "--check",
            "--root",
        ])
        .arg(stage.root());
    let outcome = run_with(&mut command, &site(json!({})));
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.msg().starts_with("/etc/redis/redis.conf: "),
        "{}",
        outcome.msg()
    );
    assert!(outcome.msg().contains("Permission denied"), "{}", outcome.msg());
    assert!(outcome.msg().ends_with("run pretix-redis as root"), "{}", outcome.msg());
    assert_eq!(mtime(&stage.conf()), before);
}

#[test]
fn a_changing_run_as_another_user_stops_before_the_lock() {
    let stage = Stage::new();
    let mut command = Command::new("setpriv");
    command
        .args([
            &format!("--reuid={PRETIX_UID}"),
            &format!("--regid={PRETIX_UID}"),
            "--clear-groups",
            BIN,
            "apply",
            "--root",
        ])
        .arg(stage.root());
    let outcome = run_with(&mut command, &site(json!({})));
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    assert_eq!(
        outcome.msg(),
        "(user): pretix-redis apply changes files and services that belong to root: run it as root \
         (sudo pretix-redis apply ...), or see what it would do with --check"
    );
    assert!(!stage.path("/run/pretix-toolkit").exists(), "the lock was taken");
}

#[test]
fn a_symlinked_redis_conf_is_refused_not_replaced() {
    let stage = Stage::new();
    let real = stage.path("/etc/redis/real.conf");
    std::fs::rename(stage.conf(), &real).expect("rename");
    std::os::unix::fs::symlink("real.conf", stage.conf()).expect("symlink");
    let outcome = run(&["apply", "--root", &stage.root_arg()], &site(json!({})));
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.msg().contains("is a symlink (to real.conf)"),
        "{}",
        outcome.msg()
    );
    assert!(
        std::fs::symlink_metadata(stage.conf())
            .expect("link")
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_password_in_socket_mode_is_refused_before_anything_changes() {
    let stage = Stage::new();
    let mut text = std::fs::read_to_string(stage.conf()).expect("conf");
    text.push_str("requirepass my-own-password-123\n");
    std::fs::write(stage.conf(), &text).expect("write");
    let outcome = run(&["apply", "--diff", "--root", &stage.root_arg()], &site(json!({})));
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(outcome.msg().contains("comment out requirepass"), "{}", outcome.msg());
    assert_eq!(std::fs::read_to_string(stage.conf()).expect("conf"), text);
    assert!(!stage.dropin().exists());
}

#[test]
fn redis_stopped_or_killed_is_a_clear_error_and_exit_1() {
    let stage = Stage::new();
    let first = run(&["apply", "--root", &stage.root_arg()], &site(json!({})));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let mut redis = stage.start_redis();
    assert_eq!(run(&["apply", "--root", &stage.root_arg()], &site(json!({}))).code, 0);

    redis.stop();
    let stopped = run(&["apply", "--root", &stage.root_arg()], &site(json!({})));
    assert_eq!(stopped.code, 1, "{}", stopped.stderr);
    assert_eq!(
        stopped.msg(),
        "redis-server does not answer on /var/run/redis/redis.sock: the socket does not exist: is it running with \
         this redis.conf? (systemctl status redis-server; journalctl -u redis-server)"
    );
    assert!(
        stopped.stderr.contains("error: redis-server does not answer"),
        "{}",
        stopped.stderr
    );

    // Killed hard: the socket file stays behind and nobody listens.
    let mut redis = stage.start_redis();
    redis.kill();
    assert!(stage.socket().exists());
    let killed = run(&["apply", "--root", &stage.root_arg()], &site(json!({})));
    assert_eq!(killed.code, 1, "{}", killed.stderr);
    assert!(killed.msg().contains(": connection refused: "), "{}", killed.msg());
}
