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
