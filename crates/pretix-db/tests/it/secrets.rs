//! No plaintext password reaches the server, even with every statement logged.

use serde_json::json;

use crate::support::{login, password_from, run_tool, secret_file, site};
use pretix_testkit::{Postgres, PostgresOptions};

#[test]
fn server_log_holds_no_plaintext_password_after_provisioning_and_after_a_rotation() {
    let cluster = Postgres::start_with(PostgresOptions {
        log_statement_all: true,
        ..PostgresOptions::default()
    });
    let home = tempfile::tempdir().expect("home");
    let given = "Canary-Plaintext-Given-7f3a";
    let password_file = secret_file(home.path(), "pretix-password", given);
    let mut document = site(&cluster, home.path());
    document["database"]["password"] = json!({"secret_file": password_file});

    let provisioned = run_tool(&["apply"], &document, &[]);
    assert_eq!(provisioned.code, 0, "{}", provisioned.describe());
    assert_eq!(
        login(cluster.port(), "127.0.0.1", "pretix", "pretix", given)
            .ok()
            .as_deref(),
        Some("pretix")
    );

    let mut rotate = provisioned.next_input();
    rotate["database"]["rotate_password"] = json!(true);
    let rotated = run_tool(&["apply"], &rotate, &[]);
    assert_eq!(rotated.code, 0, "{}", rotated.describe());
    assert!(
        rotated.has_action("role pretix: set its password (rotate_password)"),
        "{:?}",
        rotated.actions()
    );
    assert!(
        rotated.has_action(&format!("update {}", password_file.display())),
        "{:?}",
        rotated.actions()
    );
    assert_eq!(
        rotated.document["database"]["rotate_password"],
        json!(false),
        "the output must not rotate again"
    );
    let new_password = password_from(&rotated.document);
    assert_ne!(new_password, given);
    assert_eq!(
        login(cluster.port(), "127.0.0.1", "pretix", "pretix", &new_password)
            .ok()
            .as_deref(),
        Some("pretix")
    );
    assert!(
        login(cluster.port(), "127.0.0.1", "pretix", "pretix", given).is_err(),
        "the old password still works"
    );

    // The re-run of the output document keeps the new password.
    let again = run_tool(&["apply"], &rotated.next_input(), &[]);
    assert_eq!(again.code, 0, "{}", again.describe());
    assert!(!again.changed(), "{:?}", again.actions());

    let log = cluster.server_log();
    // The log really holds every statement, verifiers included.
    assert!(
        log.contains("CREATE ROLE \"pretix\" WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:"),
        "{log}"
    );
    assert!(
        log.contains("ALTER ROLE \"pretix\" WITH PASSWORD 'SCRAM-SHA-256$4096:"),
        "{log}"
    );
    for password in [given, new_password.as_str()] {
        assert!(!log.contains(password), "the server log holds a plaintext password");
        for run in [&provisioned, &rotated, &again] {
            assert!(
                !run.stdout.contains(password) && !run.stderr.contains(password),
                "pretix-db printed a password"
            );
        }
    }
}
