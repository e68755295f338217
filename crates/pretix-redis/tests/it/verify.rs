//! The read-only `verify` verb.

use serde_json::json;

use crate::support::{Stage, mtime, redis_ids, run, site};

#[test]
fn check_reports_every_item_and_fails_when_redis_is_down() {
    let stage = Stage::new();
    let applied = run(&["apply", "--root", &stage.root_arg()], &site(json!({})));
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let mut redis = stage.start_redis();
    let before = mtime(&stage.conf());

    let healthy = run(&["verify", "--root", &stage.root_arg()], &site(json!({})));
    assert_eq!(healthy.code, 0, "{}", healthy.stderr);
    for name in [
        "redis.conf",
        "unixsocket",
        "unixsocketperm",
        "drop-in",
        "socket",
        "answering",
        "databases",
    ] {
        let (status, message) = healthy.check_item(name).unwrap_or_else(|| panic!("no {name} item"));
        assert_eq!(status, "ok", "{name}: {message}");
    }
    let (status, message) = healthy.check_item("socket permissions").expect("the 777 warning");
    assert_eq!(status, "warning");
    assert!(message.contains("mode 777"), "{message}");
    assert_eq!(
        healthy.check_item("socket").expect("socket").1,
        format!("/var/run/redis/redis.sock: mode 0777, group {}", redis_ids().1)
    );
    // The document gets the same settings as from apply, for a pretix-cfg check downstream.
    assert_eq!(
        healthy.document["config"]["redis"]["location"],
        "unix:///var/run/redis/redis.sock?db=0"
    );
    assert_eq!(healthy.result()["changed"], false);

    redis.stop();
    let down = run(&["verify", "--root", &stage.root_arg()], &site(json!({})));
    assert_eq!(down.code, 1, "{}", down.stderr);
    assert!(down.result()["failed"].as_bool().unwrap_or_default());
    let (status, message) = down.check_item("answering").expect("answering");
    assert_eq!(status, "failure");
    assert!(message.contains("the socket does not exist"), "{message}");
    assert!(message.contains("systemctl status redis-server"), "{message}");
    assert_eq!(down.check_item("socket").expect("socket").0, "failure");
    assert_eq!(mtime(&stage.conf()), before, "check changed redis.conf");
}

#[test]
fn check_on_an_untouched_host_names_what_apply_would_fix() {
    let stage = Stage::new();
    let outcome = run(&["verify", "--offline", "--check", "--root", &stage.root_arg()], &{
        let mut document = site(json!({"socket_mode": "group"}));
        document["container"] = json!({"role": "taskworker"});
        document
    });
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    let (status, message) = outcome.check_item("unixsocket").expect("unixsocket");
    assert_eq!(status, "failure");
    assert!(
        message.contains("sets no unixsocket: run pretix-redis apply"),
        "{message}"
    );
    let (status, message) = outcome.check_item("unixsocketperm").expect("unixsocketperm");
    assert_eq!(status, "failure", "{message}");
    let (status, message) = outcome.check_item("drop-in").expect("drop-in");
    assert_eq!(status, "failure");
    assert!(message.contains("is missing"), "{message}");
    assert_eq!(
        outcome.check_item("answering").map(|item| item.0),
        Some("warning".to_owned())
    );
    assert!(
        outcome.check_item("socket permissions").is_none(),
        "no 777 warning in group mode"
    );
    assert!(!stage.dropin().exists(), "check wrote the drop-in");
}

#[test]
fn a_later_drop_in_that_undoes_ours_is_a_failure() {
    let stage = Stage::new();
    let applied = run(&["apply", "--root", &stage.root_arg()], &site(json!({})));
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let other = stage.path("/etc/systemd/system/redis-server.service.d/zz-local.conf");
    std::fs::write(&other, "[Service]\nRuntimeDirectoryPreserve=no\n").expect("write");
    let outcome = run(
        &["verify", "--offline", "--check", "--root", &stage.root_arg()],
        &site(json!({})),
    );
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    let failures: Vec<String> = outcome.result()["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|item| item["name"] == "drop-in" && item["status"] == "failure")
        .map(|item| item["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        failures
            .iter()
            .any(|message| message.contains("zz-local.conf sets RuntimeDirectoryPreserve=no")),
        "{failures:?}"
    );
}
