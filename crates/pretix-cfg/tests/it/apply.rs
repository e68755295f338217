use std::os::unix::fs::PermissionsExt;

use crate::support::{BIN, guide_site, mtime, owner_mode, run, secret, stage};

#[test]
fn guide_site_renders_the_guides_pretix_cfg_owner_only() {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    let root_arg = root.path().display().to_string();
    let outcome = run(&["apply", "--root", &root_arg], &guide_site(&password));
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let file = root.path().join("etc/pretix/pretix.cfg");
    let text = std::fs::read_to_string(&file).expect("pretix.cfg");
    insta::assert_snapshot!(
        "guide_pretix_cfg",
        text.replace("correct horse battery staple", "<the password>")
    );
    assert!(text.contains("password=correct horse battery staple\n"));
    assert_eq!(owner_mode(&file), (15371, 15371, 0o600));
    assert_eq!(owner_mode(&root.path().join("etc/pretix")), (15371, 15371, 0o700));
    assert_eq!(owner_mode(&root.path().join("var/pretix-data")), (15371, 15371, 0o755));
    let json = outcome.document.to_string();
    assert!(!json.contains("correct horse"), "the password leaked into the document");
    assert!(
        !outcome.stderr.contains("correct horse"),
        "the password leaked to stderr"
    );
    assert_eq!(outcome.result()["changed"], true);
}

#[test]
fn second_run_changes_nothing_and_keeps_mtimes() {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    let root_arg = root.path().display().to_string();
    let first = run(&["apply", "--root", &root_arg], &guide_site(&password));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let file = root.path().join("etc/pretix/pretix.cfg");
    let before = (
        mtime(&file),
        mtime(&root.path().join("etc/pretix")),
        mtime(&root.path().join("var/pretix-data")),
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = run(&["apply", "--root", &root_arg], &first.document);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.result()["changed"], false, "{}", second.result());
    let after = (
        mtime(&file),
        mtime(&root.path().join("etc/pretix")),
        mtime(&root.path().join("var/pretix-data")),
    );
    assert_eq!(before, after);
}

#[test]
fn wrong_owner_and_mode_are_fixed_and_data_is_kept() {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    let root_arg = root.path().display().to_string();
    assert_eq!(run(&["apply", "--root", &root_arg], &guide_site(&password)).code, 0);
    let file = root.path().join("etc/pretix/pretix.cfg");
    let data = root.path().join("var/pretix-data");
    std::fs::write(data.join("media-file"), "an uploaded invoice").expect("write data");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::os::unix::fs::chown(&data, Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let outcome = run(&["apply", "--root", &root_arg], &guide_site(&password));
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.result()["changed"], true);
    assert_eq!(owner_mode(&file), (15371, 15371, 0o600));
    assert_eq!(owner_mode(&data), (15371, 15371, 0o755));
    assert_eq!(
        std::fs::read_to_string(data.join("media-file")).expect("kept"),
        "an uploaded invoice"
    );
}

#[test]
fn check_mode_with_diff_writes_nothing_and_redacts() {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    let root_arg = root.path().display().to_string();
    let outcome = run(
        &["apply", "--check", "--diff", "--root", &root_arg],
        &guide_site(&password),
    );
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(!root.path().join("etc/pretix").exists());
    assert!(outcome.stderr.contains("+password=********"), "{}", outcome.stderr);
    assert!(!outcome.stderr.contains("correct horse"));
    let diff = &outcome.result()["diffs"];
    assert!(diff.to_string().contains("url=https://pretix.mydomain.com"));
}

#[test]
fn plaintext_secret_in_the_document_is_refused() {
    let root = stage();
    let root_arg = root.path().display().to_string();
    let mut site = guide_site("/x");
    site["config"]["database"]["password"] = serde_json::json!("hunter2hunter2");
    let outcome = run(&["apply", "--root", &root_arg], &site);
    assert_eq!(outcome.code, 2);
    assert!(
        outcome.result()["msg"]
            .as_str()
            .expect("msg")
            .starts_with("config.database.password: secrets must not be in the document")
    );
    assert!(!outcome.stderr.contains("hunter2hunter2"), "{}", outcome.stderr);
    assert!(!root.path().join("etc/pretix").exists());
}

#[test]
fn world_readable_secret_file_is_refused() {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    std::fs::set_permissions(
        root.path().join(password.trim_start_matches('/')),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let root_arg = root.path().display().to_string();
    let outcome = run(&["apply", "--root", &root_arg], &guide_site(&password));
    assert_eq!(outcome.code, 2);
    assert!(
        outcome.result()["msg"].as_str().expect("msg").contains("chmod 0600"),
        "{}",
        outcome.result()
    );
}

#[test]
fn check_verb_passes_after_apply_and_fails_on_a_readable_file() {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    let root_arg = root.path().display().to_string();
    let applied = run(&["apply", "--root", &root_arg], &guide_site(&password));
    let good = run(&["verify", "--root", &root_arg], &applied.document);
    assert_eq!(good.code, 0, "{}", good.stderr);
    let checks = good.result()["checks"].as_array().expect("checks").clone();
    assert!(checks.iter().all(|item| item["status"] == "ok"), "{checks:?}");
    std::fs::set_permissions(
        root.path().join("etc/pretix/pretix.cfg"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let bad = run(&["verify", "--root", &root_arg], &applied.document);
    assert_eq!(bad.code, 1);
    assert!(bad.result()["checks"].to_string().contains("no access for others"));

    // A world-writable data dir and a config dir others can enter fail too, each by name.
    std::fs::set_permissions(
        root.path().join("etc/pretix/pretix.cfg"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    std::fs::set_permissions(
        root.path().join("var/pretix-data"),
        std::fs::Permissions::from_mode(0o777),
    )
    .expect("chmod");
    std::fs::set_permissions(root.path().join("etc/pretix"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bad = run(&["verify", "--root", &root_arg], &applied.document);
    assert_eq!(bad.code, 1);
    let failed: Vec<String> = bad.result()["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|item| item["status"] == "failure")
        .map(|item| item["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(failed, ["config dir", "data dir"], "{}", bad.stderr);
}

#[test]
fn env_verb_writes_a_root_only_env_file() {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    let root_arg = root.path().display().to_string();
    let outcome = run(&["env", "--root", &root_arg], &guide_site(&password));
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let file = root.path().join("etc/pretix-toolkit/pretix.env");
    let text = std::fs::read_to_string(&file).expect("env file");
    assert!(text.contains("PRETIX_PRETIX_URL=https://pretix.mydomain.com\n"));
    assert!(text.contains("FILE__PRETIX_DATABASE_PASSWORD=/etc/pretix/secrets/database_password\n"));
    assert!(!text.contains("correct horse"), "a secret is in the env file: {text}");
    assert!(text.contains("PRETIX_REDIS_LOCATION=unix:///var/run/redis/redis.sock?db=0\n"));
    assert_eq!(owner_mode(&file), (0, 0, 0o600));
    let secret_copy = root.path().join("etc/pretix/secrets/database_password");
    assert_eq!(
        std::fs::read_to_string(&secret_copy).expect("secret"),
        "correct horse battery staple\n"
    );
    assert_eq!(owner_mode(&secret_copy), (15371, 15371, 0o600));
    assert_eq!(
        owner_mode(&root.path().join("etc/pretix/secrets")),
        (15371, 15371, 0o700)
    );
    for output in [&outcome.stdout, &outcome.stderr] {
        assert!(!output.contains("correct horse"), "{output}");
    }
    let again = run(&["env", "--root", &root_arg], &guide_site(&password));
    assert_eq!(again.result()["changed"], false, "{}", again.stderr);
}

#[test]
fn help_is_consistent() {
    pretix_site::run::command::<pretix_cfg::CfgTool>().debug_assert();
}

#[test]
fn acl_mode_gives_the_web_server_uid_33_read_access_once() {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    let root_arg = root.path().display().to_string();
    let mut site = guide_site(&password);
    site["paths"] = serde_json::json!({"data_dir_access": "acl"});
    let first = run(&["apply", "--root", &root_arg], &site);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let data = root.path().join("var/pretix-data");
    assert_eq!(owner_mode(&data), (15371, 15371, 0o750));
    let acl = std::process::Command::new("getfacl")
        .args(["--omit-header", "--absolute-names", "--numeric"])
        .arg(&data)
        .output()
        .expect("getfacl");
    assert!(
        String::from_utf8_lossy(&acl.stdout)
            .lines()
            .any(|line| line == "user:33:r-x"),
        "{}",
        String::from_utf8_lossy(&acl.stdout)
    );
    let second = run(&["apply", "--root", &root_arg], &site);
    assert_eq!(second.result()["changed"], false, "{}", second.result());
}

#[test]
fn a_file_named_like_a_verb_in_the_cwd_is_not_taken_for_ansible_arguments() {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    let cwd = tempfile::tempdir().expect("tempdir");
    std::fs::write(cwd.path().join("apply"), "{}").expect("write a file called apply");
    let root_arg = root.path().display().to_string();
    let mut command = std::process::Command::new(crate::support::BIN);
    command
        .args(["apply", "--check", "--root", &root_arg])
        .current_dir(cwd.path());
    let outcome = pretix_testkit::run_tool(&mut command, &guide_site(&password));
    assert_eq!(outcome.code, 0, "{}", outcome.describe());
    assert_eq!(
        outcome.result()["tool"],
        "pretix-cfg",
        "the pipeline protocol answered, not the Ansible one"
    );
}

#[test]
fn a_missing_data_dir_parent_fails_before_anything_is_written() {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    let root_arg = root.path().display().to_string();
    let mut site = guide_site(&password);
    site["paths"] = serde_json::json!({"data_dir": "/srv/nowhere/pretix-data"});
    let outcome = run(&["apply", "--root", &root_arg], &site);
    assert_eq!(outcome.code, 1, "{}", outcome.describe());
    assert!(outcome.msg().contains("create it first"), "{}", outcome.msg());
    assert!(
        !root.path().join("etc/pretix").exists(),
        "the config dir was created before the failure"
    );
}

#[test]
fn a_rotated_password_masks_the_old_value_in_the_diff_too() {
    let root = stage();
    let password = secret(root.path(), "database-password", "the-old-password-value");
    let root_arg = root.path().display().to_string();
    let first = run(&["apply", "--root", &root_arg], &guide_site(&password));
    assert_eq!(first.code, 0, "{}", first.stderr);
    secret(root.path(), "database-password", "the-new-password-value");
    let rotated = run(&["apply", "--diff", "--root", &root_arg], &guide_site(&password));
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    for output in [&rotated.stdout, &rotated.stderr] {
        assert!(!output.contains("password-value"), "a password shows: {output}");
    }
    assert!(rotated.stderr.contains("-password=********"), "{}", rotated.stderr);
    let written = std::fs::read_to_string(root.path().join("etc/pretix/pretix.cfg")).expect("read");
    assert!(written.contains("password=the-new-password-value"));
}

#[test]
fn a_terminal_gets_a_recap_and_a_pipe_gets_the_document() {
    let root = stage();
    let password = secret(root.path(), "database-password", "correct horse battery staple");
    let site_file = root.path().join("site.json");
    std::fs::write(&site_file, guide_site(&password).to_string()).expect("site.json");
    // `script` gives the tool a terminal as stdout, as a sysadmin's shell does.
    let command = format!(
        "{BIN} apply --check --root {} < {}",
        root.path().display(),
        site_file.display()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("run script (util-linux)");
    let terminal = String::from_utf8_lossy(&output.stdout);
    assert!(
        terminal.contains("pretix-cfg apply --check: would change"),
        "{terminal}"
    );
    assert!(
        terminal.contains("  - would create /etc/pretix/pretix.cfg"),
        "{terminal}"
    );
    assert!(
        !terminal.contains("\"results\""),
        "the document went to the terminal: {terminal}"
    );
    let piped = run(
        &["apply", "--check", "--root", &root.path().display().to_string()],
        &guide_site(&password),
    );
    assert_eq!(
        piped.document["results"][0]["tool"],
        "pretix-cfg",
        "{}",
        piped.describe()
    );
}
