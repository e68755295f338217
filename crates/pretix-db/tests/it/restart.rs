//! A `listen_addresses` change needs a restart: reported, or done through the service seam
//! when asked.

use std::path::Path;

use serde_json::json;

use crate::support::{run_tool, site};
use pretix_testkit::Postgres;

fn recorded(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_needed_restart_is_reported_then_done_through_the_service_seam_when_asked() {
    let cluster = Postgres::start();
    let home = tempfile::tempdir().expect("home");
    let systemctl_log = home.path().join("systemctl.log");
    let env = [(pretix_site::service::RECORD_ENV, systemctl_log.as_path())];
    // 127.0.0.2 is a loopback address that `localhost` does not listen on: like 172.17.0.1 on
    // a fresh Debian server.
    let mut document = site(&cluster, home.path());
    document["database"]["docker_host"] = json!("127.0.0.2");

    let reported = run_tool(&["apply"], &document, &env);
    assert_eq!(reported.code, 0, "{}", reported.describe());
    let conf = std::fs::read_to_string(cluster.data_dir().join("postgresql.conf")).expect("postgresql.conf");
    assert!(conf.contains("listen_addresses = 'localhost,127.0.0.2'"), "{conf}");
    let warnings = reported.warnings();
    assert!(
        warnings.contains(&"postgresql must be restarted to listen on localhost and 127.0.0.2: systemctl restart postgresql (or set database.restart to true)".to_owned()),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|warning| warning.starts_with("not verified: postgresql does not listen on 127.0.0.2")),
        "{warnings:?}"
    );
    assert!(recorded(&systemctl_log).is_empty());

    let mut asked = reported.next_input();
    asked["database"]["restart"] = json!(true);
    let restarted = run_tool(&["apply"], &asked, &env);
    assert_eq!(restarted.code, 0, "{}", restarted.describe());
    assert!(restarted.changed());
    assert!(
        restarted.has_action("systemctl restart postgresql"),
        "{:?}",
        restarted.actions()
    );
    assert_eq!(
        recorded(&systemctl_log),
        vec![r#"{"argv":["systemctl","restart","postgresql"]}"#.to_owned()]
    );
    assert!(
        restarted
            .warnings()
            .iter()
            .any(|warning| warning.starts_with("postgresql still listens on 'localhost' after the restart")),
        "{:?}",
        restarted.warnings()
    );
    // The seam only recorded it; this cluster is not a systemd unit. Do what systemd would.
    cluster.restart();

    let converged = run_tool(&["apply"], &restarted.next_input(), &env);
    assert_eq!(converged.code, 0, "{}", converged.describe());
    assert!(!converged.changed(), "{:?}", converged.actions());
    assert!(converged.warnings().is_empty(), "{:?}", converged.warnings());
    assert!(
        converged.has_action(&format!("logged in as pretix over tcp at 127.0.0.2:{}", cluster.port())),
        "{:?}",
        converged.actions()
    );
    assert_eq!(recorded(&systemctl_log).len(), 1, "a converged run restarted again");
}
