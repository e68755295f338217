//! `apply` with the cron scheduler, on a staged root (`--root`).

use serde_json::json;

use crate::support::{Stage, mtime, owner_mode, read};

#[test]
fn the_guides_defaults_write_the_cron_file_root_0644() {
    let stage = Stage::new();
    let run = stage.run(&["apply"], &json!({}));
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(run.changed());
    assert!(run.has_action("create /etc/cron.d/pretix"), "{:?}", run.actions());
    let file = stage.path("/etc/cron.d/pretix");
    assert_eq!(owner_mode(&file), (0, 0, 0o644));
    insta::assert_snapshot!("cron_file_guide_defaults", read(&file));
}

#[test]
fn a_second_run_changes_nothing() {
    let stage = Stage::new();
    let document = json!({"cron": {"schedule": "*/10 * * * *"}, "container": {"unit": "tickets.service"}});
    let first = stage.run(&["apply"], &document);
    assert_eq!(first.code, 0, "{}", first.describe());
    let before = stage.etc_snapshot();
    let second = stage.run(&["apply"], &first.next_input());
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(!second.changed(), "{:?}", second.actions());
    assert!(second.msg().contains("already in place"), "{}", second.msg());
    assert_eq!(stage.etc_snapshot(), before);
}

#[test]
fn the_container_name_comes_from_the_container_section() {
    let stage = Stage::new();
    let run = stage.run(
        &["apply"],
        &json!({"container": {"unit": "tickets.service", "docker_host": "unix:///run/docker.sock"},
                "cron": {"schedule": "0 * * * *"}}),
    );
    assert_eq!(run.code, 0, "{}", run.describe());
    insta::assert_snapshot!("cron_file_other_container", read(&stage.path("/etc/cron.d/pretix")));
}

#[test]
fn bad_input_is_exit_2_and_nothing_is_written() {
    let stage = Stage::new();
    let cases = [
        (json!({"cron": {"schedule": "15,45 * * *"}}), "cron.schedule"),
        (json!({"cron": {"schedule": "0 3 * * *"}}), "cron.schedule"),
        (json!({"cron": {"schedule": "*/0 * * * *"}}), "cron.schedule"),
        (json!({"cron": {"schedule": "@hourly"}}), "cron.schedule"),
        (
            json!({"cron": {"schedule": "15 * * * * root rm -rf /"}}),
            "cron.schedule",
        ),
        (
            json!({"cron": {"schedule": "15 * * * *\n* * * * * root id"}}),
            "cron.schedule",
        ),
        (json!({"cron": {"schedule": 15}}), "cron.schedule"),
        (json!({"cron": {"file": "/etc/cron.d/pretix.bak"}}), "cron.file"),
        (json!({"cron": {"user": "nosuchuser"}}), "cron.user"),
        (json!({"cron": {"docker": "/usr/bin/docker %"}}), "cron.docker"),
        (json!({"container": {"unit": "pretix@1.service"}}), "container.unit"),
        (
            json!({"container": {"docker_host": "unix:///x\nMAILTO=root"}}),
            "container.docker_host",
        ),
    ];
    for (document, field) in cases {
        let before = stage.etc_snapshot();
        let run = stage.run(&["apply"], &document);
        assert_eq!(run.code, 2, "{document}: {}", run.describe());
        assert!(run.msg().starts_with(field), "{document}: {}", run.msg());
        assert_eq!(run.result()["failed"], true);
        assert_eq!(stage.etc_snapshot(), before, "{document} changed something");
        assert!(!stage.path("/etc/cron.d/pretix").exists());
    }
}

#[test]
fn a_user_must_be_able_to_use_docker() {
    let stage = Stage::new();
    let passwd = stage.path("/etc/passwd");
    let mut text = read(&passwd);
    text.push_str("pretixcron:x:4242:4242::/nonexistent:/usr/sbin/nologin\n");
    std::fs::write(&passwd, text).expect("write passwd");
    let document = json!({"cron": {"user": "pretixcron"}});
    let refused = stage.run(&["apply"], &document);
    assert_eq!(refused.code, 2, "{}", refused.describe());
    assert!(refused.msg().contains("not in the docker group"), "{}", refused.msg());
    assert!(!stage.path("/etc/cron.d/pretix").exists());

    let group = stage.path("/etc/group");
    let text: String = read(&group)
        .lines()
        .filter(|line| !line.starts_with("docker:"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&group, text + "docker:x:999:someone,pretixcron\n").expect("write group");
    let accepted = stage.run(&["apply"], &document);
    assert_eq!(accepted.code, 0, "{}", accepted.describe());
    assert!(read(&stage.path("/etc/cron.d/pretix")).contains("* * * * pretixcron /usr/bin/docker exec"));
}

#[test]
fn check_mode_writes_nothing_and_shows_the_diff() {
    let stage = Stage::new();
    let run = stage.run(&["apply", "--check", "--diff"], &json!({}));
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(run.changed());
    assert!(run.has_action("create /etc/cron.d/pretix"), "{:?}", run.actions());
    assert!(!stage.path("/etc/cron.d/pretix").exists());
    assert!(
        run.stderr
            .contains("+15,45 * * * * root /usr/bin/docker exec pretix.service pretix cron"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_guides_hand_written_file_is_taken_over_with_a_backup() {
    let stage = Stage::new();
    let file = stage.path("/etc/cron.d/pretix");
    let guide = "15,45 * * * * root /usr/bin/docker exec pretix.service pretix cron\n";
    std::fs::write(&file, guide).expect("write");
    let run = stage.run(&["apply"], &json!({}));
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(run.has_action("update /etc/cron.d/pretix"), "{:?}", run.actions());
    let backups: Vec<_> = std::fs::read_dir(stage.path("/etc/cron.d"))
        .expect("read_dir")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name != "pretix")
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(read(&stage.path(&format!("/etc/cron.d/{}", backups[0]))), guide);
}

#[test]
fn a_cron_file_others_can_write_is_fixed_in_place() {
    let stage = Stage::new();
    assert_eq!(stage.run(&["apply"], &json!({})).code, 0);
    let file = stage.path("/etc/cron.d/pretix");
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o664)).expect("chmod");
    let content = read(&file);
    let run = stage.run(&["apply"], &json!({}));
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(
        run.has_action("fix owner/mode of /etc/cron.d/pretix"),
        "{:?}",
        run.actions()
    );
    assert_eq!(owner_mode(&file), (0, 0, 0o644));
    assert_eq!(read(&file), content);
}

#[test]
fn a_link_where_the_cron_file_belongs_is_refused() {
    let stage = Stage::new();
    let target = stage.path("/etc/shadow-like");
    std::fs::write(&target, "keep me\n").expect("write");
    std::os::unix::fs::symlink(&target, stage.path("/etc/cron.d/pretix")).expect("symlink");
    let before = mtime(&target);
    let run = stage.run(&["apply"], &json!({}));
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(run.msg().contains("is a symbolic link"), "{}", run.msg());
    assert_eq!(read(&target), "keep me\n");
    assert_eq!(mtime(&target), before);
}

#[test]
fn a_host_without_cron_is_told_to_install_it() {
    let stage = Stage::new();
    std::fs::remove_dir(stage.path("/etc/cron.d")).expect("rmdir");
    let run = stage.run(&["apply"], &json!({}));
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(run.msg().contains("apt-get install cron"), "{}", run.msg());
    assert!(!stage.path("/etc/cron.d").exists());
}
