//! The command line.

use pretix_db::DbTool;

#[test]
fn command_line_is_consistent() {
    pretix_site::run::command::<DbTool>().debug_assert();
}

#[test]
fn the_internal_session_verb_is_hidden_and_refused_as_a_verb() {
    let help = pretix_site::run::command::<DbTool>().render_help().to_string();
    assert!(help.contains("apply") && help.contains("verify"), "{help}");
    assert!(!help.contains("admin-session"), "{help}");
    // Through the Ansible adapter a verb name is all it takes: it must not start a session.
    let dir = tempfile::tempdir().expect("dir");
    let args = dir.path().join("args");
    std::fs::write(&args, r#"{"verb": "admin-session"}"#).expect("write args");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pretix-db"))
        .arg(&args)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"));
    assert_eq!(result["failed"], serde_json::json!(true), "{stdout}");
    assert!(
        result["msg"].as_str().unwrap_or_default().starts_with("verb: "),
        "{stdout}"
    );
    assert_eq!(output.status.code(), Some(1));
}
