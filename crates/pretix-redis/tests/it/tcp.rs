//! `tcp` mode: Redis on the docker host address with a password that never shows.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::support::{Stage, added_lines, free_port, owner_mode, redis_ids, run, site, unified_diff};

#[test]
fn tcp_mode_generates_a_password_keeps_it_out_of_sight_and_answers_with_it() {
    let stage = Stage::new();
    let port = free_port();
    // 127.0.0.2 is loopback on Linux; it stands in for docker0's 172.17.0.1.
    let document = site(json!({"socket_mode": "tcp", "tcp_bind": "127.0.0.2", "tcp_port": port}));
    let original = std::fs::read_to_string(stage.conf()).expect("conf");
    let first = run(&["apply", "--diff", "--root", &stage.root_arg()], &document);
    assert_eq!(first.code, 0, "{}", first.stderr);

    let password_file = stage.path("/etc/pretix-toolkit/secrets/redis-password");
    assert_eq!(owner_mode(&password_file), (0, 0, 0o600));
    assert_eq!(owner_mode(&stage.path("/etc/pretix-toolkit/secrets")).2, 0o700);
    let password = std::fs::read_to_string(&password_file)
        .expect("password")
        .trim()
        .to_owned();
    assert_eq!(password.len(), 32);

    let edited = std::fs::read_to_string(stage.conf()).expect("conf");
    assert_eq!(
        added_lines(&original, &edited),
        [
            "bind 127.0.0.1 -::1 127.0.0.2".to_owned(),
            format!("port {port}"),
            "unixsocket /var/run/redis/redis.sock".to_owned(),
            "unixsocketperm 770".to_owned(),
            format!("requirepass {password}"),
        ]
    );
    let (redis_uid, redis_gid) = redis_ids();
    assert_eq!(owner_mode(&stage.conf()), (redis_uid, redis_gid, 0o640));

    assert!(!first.stdout.contains(&password), "the password leaked to stdout");
    assert!(!first.stderr.contains(&password), "the password leaked to stderr");
    assert!(first.stderr.contains("+requirepass ********"), "{}", first.stderr);
    let diff = unified_diff(first.result(), "/etc/redis/redis.conf").replace(&port.to_string(), "<port>");
    insta::assert_snapshot!("tcp_redis_conf_diff", diff);
    insta::assert_snapshot!(
        "dropin_tcp_mode",
        std::fs::read_to_string(stage.dropin()).expect("drop-in")
    );

    let config = &first.document["config"];
    assert_eq!(config["redis"]["location"], format!("redis://127.0.0.2:{port}/0"));
    assert_eq!(
        config["redis"]["password"],
        json!({"secret_file": "/etc/pretix-toolkit/secrets/redis-password"})
    );
    assert_eq!(
        config["celery"]["broker"],
        json!({"secret_file": "/etc/pretix-toolkit/secrets/redis-celery-broker-url"})
    );
    assert_eq!(
        config["celery"]["backend"],
        json!({"secret_file": "/etc/pretix-toolkit/secrets/redis-celery-backend-url"})
    );
    for (name, database) in [("redis-celery-backend-url", 1), ("redis-celery-broker-url", 2)] {
        let file = stage.path(&format!("/etc/pretix-toolkit/secrets/{name}"));
        assert_eq!(owner_mode(&file), (0, 0, 0o600));
        assert_eq!(
            std::fs::read_to_string(&file).expect("url"),
            format!("redis://:{password}@127.0.0.2:{port}/{database}\n")
        );
    }
    assert!(first.document["container"].get("volumes").is_none());
    assert!(first.document["container"].get("group_add").is_none());

    // redis-server on the edited file, with its own port, bind and requirepass.
    let _redis = crate::support::Redis::start_with_config_file(
        &stage.conf(),
        crate::support::RedisOptions {
            socket: stage.socket(),
            dir: stage.path("/var/lib/redis"),
            as_redis_user: true,
            port: None,
        },
    );
    let second = run(&["apply", "--root", &stage.root_arg()], &first.document);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.result()["changed"], false, "{}", second.result());
    let expected = format!("redis-server answers PING with the password on 127.0.0.2:{port}");
    assert!(second.actions().contains(&expected), "{:?}", second.actions());
    assert!(!second.stdout.contains(&password) && !second.stderr.contains(&password));

    let check = run(&["verify", "--root", &stage.root_arg()], &second.document);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert_eq!(
        check.check_item("requirepass").map(|item| item.0),
        Some("ok".to_owned())
    );
    assert_eq!(check.check_item("tcp").map(|item| item.0), Some("ok".to_owned()));

    // Another password in the file than in redis.conf: the server refuses it, clearly.
    std::fs::write(&password_file, "another-password-entirely\n").expect("write");
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let check = run(&["verify", "--root", &stage.root_arg()], &second.document);
    assert_eq!(check.code, 1, "{}", check.stderr);
    let (status, message) = check.check_item("answering").expect("answering item");
    assert_eq!(status, "failure");
    assert!(message.contains("the password was refused"), "{message}");
}

#[test]
fn a_world_readable_conf_is_tightened_when_it_gets_the_password() {
    let stage = Stage::new();
    std::fs::set_permissions(stage.conf(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let secret = stage.path("/etc/pretix-toolkit/given-password");
    std::fs::write(&secret, "a-given-password-1234\n").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let document = site(json!({
        "socket_mode": "tcp",
        "tcp_bind": "127.0.0.1",
        "password": {"secret_file": "/etc/pretix-toolkit/given-password"}
    }));
    let outcome = run(&["apply", "--root", &stage.root_arg()], &document);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(owner_mode(&stage.conf()).2, 0o640);
    assert!(
        outcome
            .warnings()
            .iter()
            .any(|warning| warning.contains("was readable by every user")),
        "{:?}",
        outcome.warnings()
    );
    // The given password is used, not a generated one; 127.0.0.1 was already bound.
    assert!(!stage.path("/etc/pretix-toolkit/secrets/redis-password").exists());
    let edited = std::fs::read_to_string(stage.conf()).expect("conf");
    assert!(edited.contains("\nrequirepass a-given-password-1234\n"));
    assert!(edited.contains("\nbind 127.0.0.1 -::1\n"));
    assert!(!outcome.stdout.contains("a-given-password-1234"));
}

#[test]
fn an_address_that_is_not_the_hosts_is_refused_before_anything_changes() {
    let stage = Stage::new();
    let before = std::fs::read_to_string(stage.conf()).expect("conf");
    // 192.0.2.1 (TEST-NET-1) is on no interface: Redis could not bind it after the restart.
    let outcome = run(
        &["apply", "--root", &stage.root_arg()],
        &site(json!({"socket_mode": "tcp", "tcp_bind": "192.0.2.1"})),
    );
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome
            .msg()
            .starts_with("redis.tcp_bind 192.0.2.1 is not an address of this host"),
        "{}",
        outcome.msg()
    );
    assert_eq!(std::fs::read_to_string(stage.conf()).expect("conf"), before);
    assert!(!stage.dropin().exists());
    assert!(
        !stage.path("/etc/pretix-toolkit/secrets").exists(),
        "a secret was written before the refusal"
    );

    // A port something else listens on: the same, before anything changes.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = taken.local_addr().expect("address").port();
    let outcome = run(
        &["apply", "--root", &stage.root_arg()],
        &site(json!({"socket_mode": "tcp", "tcp_bind": "127.0.0.1", "tcp_port": port})),
    );
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.msg().contains(&format!("port {port} is in use on 127.0.0.1")),
        "{}",
        outcome.msg()
    );
    assert_eq!(std::fs::read_to_string(stage.conf()).expect("conf"), before);
}

/// In tcp mode redis.conf holds the password and loses its "other" bits; a root:root file would
/// then be unreadable for redis-server (user redis) after the restart, so the run stops first.
#[test]
fn tcp_mode_refuses_a_redis_conf_redis_could_not_read_once_private() {
    let stage = Stage::new();
    std::os::unix::fs::chown(stage.conf(), Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(stage.conf(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let before = std::fs::read(stage.conf()).expect("conf");
    let document = site(json!({"socket_mode": "tcp", "tcp_bind": "127.0.0.2", "tcp_port": free_port()}));
    let outcome = run(&["apply", "--root", &stage.root_arg()], &document);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(outcome.msg().contains("chown redis:redis"), "{}", outcome.msg());
    assert_eq!(std::fs::read(stage.conf()).expect("conf"), before);
    assert_eq!(owner_mode(&stage.conf()), (0, 0, 0o644));
    assert!(!stage.path("/etc/pretix-toolkit/secrets/redis-password").exists());

    // A loopback bind works for tests but not for a container: said so.
    let (redis_uid, redis_gid) = redis_ids();
    std::os::unix::fs::chown(stage.conf(), Some(redis_uid), Some(redis_gid)).expect("chown");
    let planned = run(
        &["apply", "--check", "--offline", "--root", &stage.root_arg()],
        &document,
    );
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    assert!(
        planned
            .warnings()
            .iter()
            .any(|warning| warning.contains("is a loopback address")),
        "{:?}",
        planned.warnings()
    );
}
