//! import then apply keeps every setting of real-world files; secrets leave the document.

use std::os::unix::fs::MetadataExt;

use crate::support::{fixture, run, stage};

fn import_then_render(name: &str) {
    let root = stage();
    let source = root.path().join("etc/old-pretix.cfg");
    std::fs::write(&source, fixture(name)).expect("write source");
    let root_arg = root.path().display().to_string();
    let imported = run(
        &["import", "/etc/old-pretix.cfg", "--root", &root_arg],
        &serde_json::json!({}),
    );
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let document = imported.document.to_string();
    for secret in [
        "s3cret%with;odd#chars",
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN",
        "password=*********",
    ] {
        assert!(!document.contains(secret), "{secret} is in the document");
    }
    let applied = run(&["apply", "--root", &root_arg], &imported.document);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let rendered = std::fs::read_to_string(root.path().join("etc/pretix/pretix.cfg")).expect("rendered");
    let original = pretix_cfg::ini::parse(&fixture(name))
        .expect("parse original")
        .to_config();
    let again = pretix_cfg::ini::parse(&rendered).expect("parse rendered").to_config();
    assert_eq!(original, again, "import then render lost or changed a setting");
    for entry in std::fs::read_dir(root.path().join("etc/pretix-toolkit/secrets")).expect("secrets") {
        let metadata = entry.expect("entry").metadata().expect("metadata");
        assert_eq!(metadata.mode() & 0o077, 0, "a secret file is readable by others");
    }
}

#[test]
fn the_guides_file_round_trips() {
    import_then_render("guide.cfg");
}

#[test]
fn a_hand_made_file_with_odd_spacing_round_trips() {
    import_then_render("handmade.cfg");
}

#[test]
fn import_of_an_unknown_key_names_it_and_writes_nothing() {
    let root = stage();
    std::fs::write(
        root.path().join("etc/bad.cfg"),
        "[pretix]\nurl=https://x.example\n[mail]\nform=a@b.c\n",
    )
    .expect("write");
    let root_arg = root.path().display().to_string();
    let outcome = run(&["import", "/etc/bad.cfg", "--root", &root_arg], &serde_json::json!({}));
    assert_eq!(outcome.code, 2);
    let msg = outcome.result()["msg"].as_str().expect("msg");
    assert!(msg.starts_with("config.mail.form") && msg.contains("from"), "{msg}");
}

fn import_text(text: &str) -> (tempfile::TempDir, crate::support::Run) {
    let root = stage();
    std::fs::write(root.path().join("etc/old.cfg"), text).expect("write");
    let root_arg = root.path().display().to_string();
    let outcome = run(&["import", "/etc/old.cfg", "--root", &root_arg], &serde_json::json!({}));
    (root, outcome)
}

#[test]
fn a_file_pretix_would_misread_or_refuse_is_not_imported_and_no_secret_is_written() {
    for (text, field) in [
        (
            "[pretix]\nurl=https://x.example\n[mail]\nfrom=a@x.example\nadmins=a@b.c,\n    d@e.f\n[database]\npassword=secret-db-password\n",
            "config.mail.admins",
        ),
        (
            "[pretix]\nurl=https://x.example\n[locale]\ndefault=DE\n[database]\npassword=secret-db-password\n",
            "config.locale.default",
        ),
    ] {
        let (root, outcome) = import_text(text);
        assert_eq!(outcome.code, 2, "{}", outcome.stderr);
        assert!(outcome.msg().starts_with(field), "{}", outcome.msg());
        assert!(
            !root
                .path()
                .join("etc/pretix-toolkit/secrets/imported-database-password")
                .exists(),
            "a secret file was written before the file was refused"
        );
        assert!(!outcome.stdout.contains("secret-db-password") && !outcome.stderr.contains("secret-db-password"));
    }
}

#[test]
fn passwords_inside_urls_move_to_secret_files_of_their_own() {
    let text = "[pretix]\nurl=https://x.example\ndatadir=/var/pretix-data\n[mail]\nfrom=a@x.example\n\
                [redis]\nlocation=redis://:se/cret-redis-pw@10.0.0.5:6379/0\n\
                [celery]\nbackend=redis://:se/cret-redis-pw@10.0.0.5:6379/1\nbroker=redis://:se/cret-redis-pw@10.0.0.5:6379/2\n";
    let (root, outcome) = import_text(text);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    for output in [&outcome.stdout, &outcome.stderr] {
        assert!(!output.contains("cret-redis-pw"), "a password shows: {output}");
    }
    let config = &outcome.document["config"];
    assert_eq!(
        config["redis"]["location"]["secret_file"],
        "/etc/pretix-toolkit/secrets/imported-redis-location"
    );
    assert!(
        config["pretix"].get("datadir").is_none(),
        "a host datadir is not imported"
    );
    assert!(
        outcome.stderr.contains("set paths.data_dir to /var/pretix-data"),
        "{}",
        outcome.stderr
    );
    let stored = root.path().join("etc/pretix-toolkit/secrets/imported-celery-broker");
    assert_eq!(
        std::fs::read_to_string(&stored).expect("secret"),
        "redis://:se/cret-redis-pw@10.0.0.5:6379/2\n"
    );

    // Imported again with another password: the existing secret file is not overwritten.
    let changed = text.replace("cret-redis-pw", "cret-other-pw");
    std::fs::write(root.path().join("etc/old.cfg"), changed).expect("write");
    let root_arg = root.path().display().to_string();
    let again = run(&["import", "/etc/old.cfg", "--root", &root_arg], &serde_json::json!({}));
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.msg().contains("already holds another value"), "{}", again.msg());
    assert!(!again.stdout.contains("cret-other-pw") && !again.stderr.contains("cret-other-pw"));
    assert!(
        std::fs::read_to_string(&stored)
            .expect("secret")
            .contains("cret-redis-pw")
    );
}

#[test]
fn an_import_through_a_link_is_refused() {
    let root = stage();
    std::fs::write(root.path().join("etc/private"), "[pretix]\nurl=https://x.example\n").expect("write");
    std::os::unix::fs::symlink(root.path().join("etc/private"), root.path().join("etc/old.cfg")).expect("symlink");
    let root_arg = root.path().display().to_string();
    let outcome = run(&["import", "/etc/old.cfg", "--root", &root_arg], &serde_json::json!({}));
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    assert!(outcome.msg().contains("symbolic link"), "{}", outcome.msg());
}

#[test]
fn import_check_plans_each_directory_once_and_writes_nothing() {
    let root = stage();
    // A fresh host: no /etc/pretix-toolkit yet, and a file with several secrets to move there.
    std::fs::remove_dir_all(root.path().join("etc/pretix-toolkit")).expect("rm");
    std::fs::write(root.path().join("etc/old-pretix.cfg"), fixture("handmade.cfg")).expect("write source");
    let root_arg = root.path().display().to_string();
    let planned = run(
        &["import", "/etc/old-pretix.cfg", "--check", "--root", &root_arg],
        &serde_json::json!({}),
    );
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let actions: Vec<String> = planned.result()["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|action| action.as_str().unwrap_or_default().to_owned())
        .collect();
    for directory in ["/etc/pretix-toolkit ", "/etc/pretix-toolkit/secrets "] {
        let creations = actions
            .iter()
            .filter(|action| action.starts_with(&format!("create directory {directory}")))
            .count();
        assert_eq!(creations, 1, "{directory}: {actions:#?}");
    }
    assert!(!root.path().join("etc/pretix-toolkit").exists());
}
