//! `group` mode: the socket is 770 and the container's user (uid 15371) gets in only because
//! it joins the socket's group, as `docker run --group-add <gid>` makes it.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::support::{PRETIX_UID, Stage, added_lines, owner_mode, redis_ids, run, site};

/// PING through the socket from a process that has the container user's identity: uid and gid
/// 15371, plus `extra_group` as its only supplementary group (what `--group-add` gives).
fn ping_as_pretix_user(socket: &Path, extra_group: Option<u32>) -> (bool, String) {
    let groups = match extra_group {
        Some(gid) => format!("--groups={gid}"),
        None => "--clear-groups".to_owned(),
    };
    let output = Command::new("setpriv")
        .args([
            &format!("--reuid={PRETIX_UID}"),
            &format!("--regid={PRETIX_UID}"),
            &groups,
            "redis-cli",
            "-s",
        ])
        .arg(socket)
        .arg("ping")
        .output()
        .expect("run setpriv redis-cli (util-linux and redis-tools)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success() && text.trim() == "PONG", text)
}

/// Group mode, for a taskworker container: the role where pretix runs as the container's own
/// process and keeps docker's `--group-add` (see `group_mode_is_refused_for_supervisord_roles`).
fn group_site() -> serde_json::Value {
    let mut document = site(json!({"socket_mode": "group"}));
    document["container"] = json!({"role": "taskworker"});
    document
}

#[test]
fn uid_15371_connects_through_the_770_socket_only_with_the_redis_group() {
    let stage = Stage::new();
    let (redis_uid, redis_gid) = redis_ids();
    let original = std::fs::read_to_string(stage.conf()).expect("conf");
    let first = run(&["apply", "--root", &stage.root_arg()], &group_site());
    assert_eq!(first.code, 0, "{}", first.stderr);
    let edited = std::fs::read_to_string(stage.conf()).expect("conf");
    assert_eq!(
        added_lines(&original, &edited),
        ["unixsocket /var/run/redis/redis.sock", "unixsocketperm 770"]
    );
    assert_eq!(first.document["container"]["group_add"], json!([redis_gid.to_string()]));
    assert_eq!(
        first.document["container"]["volumes"],
        json!(["/var/run/redis:/var/run/redis"])
    );
    assert!(
        !first.warnings().iter().any(|warning| warning.contains("777")),
        "{:?}",
        first.warnings()
    );

    // redis-server as Debian runs it (user and group redis) on the edited file.
    let redis = stage.start_redis();
    assert_eq!(owner_mode(redis.socket_path()), (redis_uid, redis_gid, 0o770));
    let second = run(&["apply", "--root", &stage.root_arg()], &first.document);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.result()["changed"], false);
    let expected = format!("(mode 0770, group {redis_gid})");
    assert!(
        second.actions().iter().any(|action| action.contains(&expected)),
        "{:?}",
        second.actions()
    );

    let (connected, output) = ping_as_pretix_user(redis.socket_path(), Some(redis_gid));
    assert!(connected, "uid 15371 with group {redis_gid} could not PING: {output}");
    let (connected, output) = ping_as_pretix_user(redis.socket_path(), None);
    assert!(!connected, "uid 15371 without the group got through: {output}");
    assert!(output.contains("Permission denied"), "{output}");
}

#[test]
fn group_mode_refuses_a_socket_of_another_group() {
    let stage = Stage::new();
    let first = run(&["apply", "--root", &stage.root_arg()], &group_site());
    assert_eq!(first.code, 0, "{}", first.stderr);
    // A directory without Debian's setgid bit and a server running as root: the socket ends up
    // in group root, which the container does not join.
    let run_dir = stage.path("/var/run/redis");
    std::os::unix::fs::chown(&run_dir, Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(&run_dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let _redis = crate::support::Redis::start_with_config_file(
        &stage.conf(),
        crate::support::RedisOptions {
            socket: stage.socket(),
            dir: stage.path("/var/lib/redis"),
            as_redis_user: false,
            port: Some(0),
        },
    );
    let second = run(&["apply", "--root", &stage.root_arg()], &first.document);
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(second.msg().contains("belongs to group 0"), "{}", second.msg());
    assert!(second.msg().contains("Group="), "{}", second.msg());
}

#[test]
fn group_mode_is_refused_for_supervisord_roles() {
    let stage = Stage::new();
    let before = std::fs::read_to_string(stage.conf()).expect("conf");
    for container in [json!({}), json!({"role": "all"}), json!({"role": "web"})] {
        let mut document = site(json!({"socket_mode": "group"}));
        document["container"] = container.clone();
        let outcome = run(&["apply", "--root", &stage.root_arg()], &document);
        assert_eq!(outcome.code, 2, "{container}: {}", outcome.stderr);
        assert!(
            outcome
                .msg()
                .starts_with("redis.socket_mode: group does not reach pretix in container.role"),
            "{}",
            outcome.msg()
        );
        assert!(outcome.msg().contains("supervisord"), "{}", outcome.msg());
    }
    assert_eq!(std::fs::read_to_string(stage.conf()).expect("conf"), before);
    assert!(!stage.dropin().exists());
}
