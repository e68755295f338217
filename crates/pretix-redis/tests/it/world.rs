//! The guide's mode: Debian's redis.conf edited, the drop-in, a real server on the result.

use serde_json::json;

use crate::support::{Stage, added_lines, mtime, owner_mode, redis_ids, run, site, unified_diff};

#[test]
fn debian_conf_gets_only_the_owned_lines_and_a_rerun_changes_nothing() {
    let stage = Stage::new();
    let original = std::fs::read_to_string(stage.conf()).expect("conf");
    let first = run(&["apply", "--root", &stage.root_arg()], &site(json!({})));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let result = first.result();
    assert_eq!(result["changed"], true);

    let edited = std::fs::read_to_string(stage.conf()).expect("conf");
    assert_eq!(
        added_lines(&original, &edited),
        ["unixsocket /var/run/redis/redis.sock", "unixsocketperm 777"]
    );
    assert_eq!(edited.lines().count(), original.lines().count() + 2);
    let without_added: String = edited
        .split_inclusive('\n')
        .filter(|line| !line.starts_with("unixsocket"))
        .collect();
    assert_eq!(without_added, original, "a line other than the two owned ones changed");
    let (redis_uid, redis_gid) = redis_ids();
    assert_eq!(
        owner_mode(&stage.conf()),
        (redis_uid, redis_gid, 0o640),
        "owner and mode are kept"
    );
    insta::assert_snapshot!("world_redis_conf_diff", unified_diff(result, "/etc/redis/redis.conf"));

    let dropin = std::fs::read_to_string(stage.dropin()).expect("drop-in");
    insta::assert_snapshot!("dropin_socket_modes", dropin);
    assert_eq!(owner_mode(&stage.dropin()), (0, 0, 0o644));

    let actions = first.actions();
    assert!(
        actions.contains(&"skipped (--root): systemctl daemon-reload".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"skipped (--root): systemctl restart redis-server".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|action| action.starts_with("saved the previous version as ")
                && action.contains("/etc/redis/redis.conf.")
                && action.ends_with(".bak")),
        "{actions:?}"
    );
    assert!(
        first.warnings().iter().any(|warning| warning.contains("mode 777")),
        "{:?}",
        first.warnings()
    );
    assert!(first.msg().contains("not verified"), "{}", first.msg());

    let config = &first.document["config"];
    assert_eq!(config["redis"]["location"], "unix:///var/run/redis/redis.sock?db=0");
    assert_eq!(config["redis"]["sessions"], "true");
    assert_eq!(
        config["celery"]["backend"],
        "redis+socket:///var/run/redis/redis.sock?virtual_host=1"
    );
    assert_eq!(
        config["celery"]["broker"],
        "redis+socket:///var/run/redis/redis.sock?virtual_host=2"
    );
    assert_eq!(
        first.document["container"]["volumes"],
        json!(["/var/run/redis:/var/run/redis"])
    );
    assert!(first.document["container"].get("group_add").is_none());

    // redis-server on the edited file: the socket's mode is the guide's 777 and it answers.
    let _redis = stage.start_redis();
    assert_eq!(owner_mode(&stage.socket()).2, 0o777);
    let before = (mtime(&stage.conf()), mtime(&stage.dropin()));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = run(&["apply", "--root", &stage.root_arg()], &first.document);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.result()["changed"], false, "{}", second.result());
    assert_eq!(
        (mtime(&stage.conf()), mtime(&stage.dropin())),
        before,
        "a re-run rewrote a file"
    );
    let actions = second.actions();
    assert!(
        actions
            .iter()
            .any(|action| action.starts_with("redis-server answers PING on /var/run/redis/redis.sock (mode 0777")),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|action| action.starts_with("databases 16: ")),
        "{actions:?}"
    );
    assert!(
        !actions.iter().any(|action| action.contains("systemctl")),
        "{actions:?}"
    );
    assert_eq!(
        second.document["container"]["volumes"],
        json!(["/var/run/redis:/var/run/redis"])
    );
}

#[test]
fn check_mode_plans_and_writes_nothing() {
    let stage = Stage::new();
    let before = mtime(&stage.conf());
    let outcome = run(
        &["apply", "--check", "--diff", "--root", &stage.root_arg()],
        &site(json!({})),
    );
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.result()["changed"], true);
    assert_eq!(mtime(&stage.conf()), before);
    assert!(!stage.dropin().exists());
    assert!(outcome.stderr.contains("+unixsocketperm 777"), "{}", outcome.stderr);
    assert!(
        outcome.actions().contains(&"systemctl restart redis-server".to_owned()),
        "{:?}",
        outcome.actions()
    );
    assert!(outcome.msg().contains("not verified"), "{}", outcome.msg());
}

#[test]
fn a_value_the_document_already_had_is_replaced_with_a_warning() {
    let stage = Stage::new();
    let mut document = site(json!({}));
    document["config"] = json!({"redis": {"location": "redis://:hunter2hunter2@10.0.0.5:6379/0", "sessions": true}});
    let outcome = run(&["apply", "--root", &stage.root_arg()], &document);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(
        outcome.document["config"]["redis"]["location"],
        "unix:///var/run/redis/redis.sock?db=0"
    );
    // The same setting spelt differently stays as the user wrote it.
    assert_eq!(outcome.document["config"]["redis"]["sessions"], true);
    let warnings = outcome.warnings();
    assert!(
        warnings
            .iter()
            .any(|warning| warning.contains("config.redis.location: replaced a value with credentials (not shown)")),
        "{warnings:?}"
    );
    assert!(
        !outcome.stdout.contains("hunter2hunter2"),
        "the replaced password leaked to stdout"
    );
    assert!(
        !outcome.stderr.contains("hunter2hunter2"),
        "the replaced password leaked to stderr"
    );
}

#[test]
fn without_restart_a_changed_conf_is_reported_not_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("run")).expect("mkdir");
    std::fs::copy(crate::support::DEBIAN_REDIS_CONF, dir.path().join("redis.conf")).expect("copy");
    let log = dir.path().join("systemctl.log");
    let document = json!({
        "redis": {
            "config_file": dir.path().join("redis.conf"),
            "socket": dir.path().join("run/redis.sock"),
            "dropin_dir": dir.path().join("redis-server.service.d"),
            "restart": "no",
        },
        "paths": {"lock_file": dir.path().join("lock")}
    });
    let mut command = std::process::Command::new(crate::support::BIN);
    command.arg("apply").env(pretix_site::service::RECORD_ENV, &log);
    let outcome = crate::support::run_with(&mut command, &document);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let recorded = std::fs::read_to_string(&log).expect("record");
    assert_eq!(recorded.lines().count(), 1, "{recorded}");
    assert!(recorded.contains("daemon-reload"), "{recorded}");
    assert!(
        outcome
            .warnings()
            .iter()
            .any(|warning| warning.contains("redis.restart is off: run systemctl restart redis-server")),
        "{:?}",
        outcome.warnings()
    );
    assert!(outcome.msg().contains("not verified"), "{}", outcome.msg());
}
