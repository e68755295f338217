//! As an Ansible binary module: the binary sits in a root-only directory as a 0744 file, as
//! Ansible uploads it, so the postgres user cannot execute it there. The superuser session must
//! still run as postgres (from a private copy), and the copy must be gone afterwards.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::site;
use pretix_testkit::Postgres;

fn session_copies() -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("pretix-db-session."))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn as_an_ansible_module_in_a_root_only_directory_the_session_still_runs_as_postgres() {
    let cluster = Postgres::start();
    let home = tempfile::tempdir().expect("home");
    let tmp = tempfile::Builder::new()
        .prefix("ansible-tmp-")
        .tempdir()
        .expect("ansible tmp");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let module = tmp.path().join("AnsiballZ_pretix-db");
    std::fs::copy(env!("CARGO_BIN_EXE_pretix-db"), &module).expect("upload the module");
    std::fs::set_permissions(&module, std::fs::Permissions::from_mode(0o744)).expect("chmod");
    let mut args = site(&cluster, home.path());
    args["_ansible_check_mode"] = json!(false);
    args["_ansible_verbosity"] = json!(0);
    let args_file = tmp.path().join("args");
    std::fs::write(&args_file, serde_json::to_vec(&args).expect("args")).expect("write args");
    let copies_before = session_copies();

    let output = Command::new(&module).arg(&args_file).output().expect("run the module");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: Value = serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        (result["changed"].clone(), result["failed"].clone()),
        (json!(true), json!(false)),
        "{result}"
    );
    let actions: Vec<&str> = result["actions"]
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        actions.iter().any(|action| action.starts_with("create role pretix")),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|action| action.starts_with("logged in as pretix over tcp")),
        "{actions:?}"
    );
    assert_eq!(result["site"]["config"]["database"]["backend"], json!("postgresql"));
    let roles = cluster
        .superuser()
        .query("SELECT 1 FROM pg_roles WHERE rolname = 'pretix'", &[])
        .expect("query");
    assert_eq!(roles.len(), 1);
    assert_eq!(
        session_copies(),
        copies_before,
        "the private copy of the binary was left behind"
    );
}
