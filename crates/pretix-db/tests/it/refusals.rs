//! What must stop a run before it changes anything: a SQL_ASCII cluster, a server that is down,
//! bad input.

use serde_json::{Value, json};

use crate::support::{fingerprint, run_tool, site};
use pretix_testkit::{Postgres, PostgresOptions};

#[test]
fn sql_ascii_cluster_fails_with_the_fix_and_changes_nothing() {
    let cluster = Postgres::start_with(PostgresOptions {
        encoding: Some("SQL_ASCII".to_owned()),
        ..PostgresOptions::default()
    });
    let home = tempfile::tempdir().expect("home");
    let conf = cluster.data_dir().join("postgresql.conf");
    let hba = cluster.data_dir().join("pg_hba.conf");
    let before = (fingerprint(&conf), fingerprint(&hba));
    let document = site(&cluster, home.path());
    let expected = "postgres server encoding is SQL_ASCII, pretix needs UTF8: recreate the cluster with initdb -E UTF8 (or pg_createcluster --encoding UTF8)";
    for args in [&["apply"][..], &["--check", "apply"][..]] {
        let run = run_tool(args, &document, &[]);
        assert_eq!(run.code, 1, "{args:?}: {}", run.describe());
        assert_eq!(run.msg(), expected);
        assert_eq!(run.result()["failed"], Value::Bool(true));
        assert!(!run.changed(), "{:?}", run.actions());
    }
    let checked = run_tool(&["verify"], &document, &[]);
    assert_eq!(checked.code, 1, "{}", checked.describe());
    let encoding = checked.result()["checks"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["name"] == "server encoding"))
        .cloned();
    assert_eq!(encoding.map(|item| item["status"].clone()), Some(json!("failure")));
    assert_eq!((fingerprint(&conf), fingerprint(&hba)), before, "a config file changed");
    assert!(!home.path().join("etc").exists(), "the secrets dir was created");
    let roles = cluster
        .superuser()
        .query("SELECT 1 FROM pg_roles WHERE rolname = 'pretix'", &[])
        .expect("query");
    assert!(roles.is_empty(), "the role was created");
}

#[test]
fn stopped_server_is_a_clear_failure_with_exit_1() {
    let cluster = Postgres::start();
    let home = tempfile::tempdir().expect("home");
    let document = site(&cluster, home.path());
    cluster.stop();
    for args in [&["apply"][..], &["verify"][..]] {
        let run = run_tool(args, &document, &[]);
        assert_eq!(run.code, 1, "{args:?}: {}", run.describe());
        let text = if args == ["verify"] {
            run.stderr.clone()
        } else {
            run.msg().to_owned()
        };
        let target = format!(
            "cannot connect to postgresql at {} port {} as postgres: ",
            cluster.socket_dir().display(),
            cluster.port()
        );
        assert!(text.contains(&target), "{args:?}: {text}");
        assert!(
            text.contains("is the server running? (systemctl status postgresql)"),
            "{args:?}: {text}"
        );
    }
    assert!(!home.path().join("etc").exists(), "the secrets dir was created");
    // Nothing was half done: with the server back, the same document provisions.
    cluster.start_again();
    let run = run_tool(&["apply"], &document, &[]);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(run.has_action("create role pretix"), "{:?}", run.actions());
}

#[test]
fn bad_input_exits_2_naming_the_field_before_contacting_anything() {
    let home = tempfile::tempdir().expect("home");
    // No server listens on this socket: validation must come first.
    let base = json!({
        "database": {"admin": {"socket_dir": home.path().join("nowhere"), "port": 1}},
        "paths": {"secrets_dir": home.path().join("secrets"), "lock_file": home.path().join("lock")}
    });
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "pre\"tix"}),
            "database.name: the database name holds a double quote",
        ),
        (json!({"user": "pre,tix"}), "database.user: the role name holds a comma"),
        (json!({"user": "+admins"}), "database.user: the role name starts with +"),
        (
            json!({"user": "line\nbreak"}),
            "database.user: the role name holds a control character",
        ),
        (
            json!({"name": "x".repeat(64)}),
            "database.name: the database name is 64 bytes long",
        ),
        (
            json!({"name": "template1"}),
            "database.name: template1 is one of postgresql's own databases",
        ),
        (
            json!({"user": "postgres"}),
            "database.user: postgres is the superuser role",
        ),
        (json!({"docker_host": "172.17.0.1; rm -rf /"}), "database.docker_host: "),
        (
            json!({"docker_subnet": "10.0.0.0/8"}),
            "database.docker_subnet: 10.0.0.0/8 does not contain",
        ),
        (json!({"auth_method": "trust"}), "database.auth_method: "),
        (
            json!({"admin": {"connection": "host=db user=postgres password=hunter2"}}),
            "database.admin.connection: the connection string holds a password",
        ),
        (
            json!({"password": {"secret_file": "relative/path"}}),
            "database.password.secret_file: relative/path is not absolute",
        ),
        (
            json!({"postgresql_conf": "/etc/postgresql/15/main/../main/postgresql.conf"}),
            "database.postgresql_conf: /etc/postgresql/15/main/../main/postgresql.conf contains `..`",
        ),
        (
            json!({"pg_hba_conf": "/etc/pretix/../../etc/shadow"}),
            "database.pg_hba_conf: /etc/pretix/../../etc/shadow contains `..`",
        ),
        (
            json!({"service": "../../etc/shadow"}),
            "database.service: `../../etc/shadow` is not a systemd unit name: it holds '/'",
        ),
    ];
    for (database, expected) in cases {
        let mut document = base.clone();
        if let (Some(target), Some(extra)) = (document["database"].as_object_mut(), database.as_object()) {
            for (key, value) in extra {
                target.insert(key.clone(), value.clone());
            }
        }
        let run = run_tool(&["apply"], &document, &[]);
        assert_eq!(run.code, 2, "{database}: {}", run.describe());
        assert!(run.msg().starts_with(expected), "{database}: {}", run.msg());
        // The document itself passes through as given; the messages never repeat a password.
        assert!(
            !run.msg().contains("hunter2") && !run.stderr.contains("hunter2"),
            "{}",
            run.describe()
        );
    }
    assert!(!home.path().join("secrets").exists());
}
