//! `--root`: the config files of a real Debian install staged under a directory, the guide's
//! addresses, an earlier rule that would shadow ours; the server is still the real one.

use serde_json::json;

use crate::support::{assert_only_added, fingerprint, fixture, run_tool};
use pretix_testkit::Postgres;

#[test]
fn debian_files_under_root_keep_every_untouched_byte_and_a_shadowing_rule_is_handled() {
    let cluster = Postgres::start();
    let root = tempfile::tempdir().expect("root");
    let systemctl_log = root.path().join("systemctl.log");
    let env = [(pretix_site::service::RECORD_ENV, systemctl_log.as_path())];
    // The server names its files by their absolute paths; --root finds them under ROOT.
    let staged = |name: &str| {
        let server_path = cluster.data_dir().join(name);
        let relative = server_path.strip_prefix("/").expect("absolute").to_path_buf();
        (server_path, root.path().join(relative))
    };
    let (conf_server, conf) = staged("postgresql.conf");
    let (hba_server, hba) = staged("pg_hba.conf");
    std::fs::create_dir_all(conf.parent().expect("parent")).expect("mkdir");
    let conf_before = fixture("postgresql.conf");
    let shadowing = "host    all             all             172.16.0.0/12           md5";
    let anchor = "# IPv4 local connections:\n";
    let hba_before = fixture("pg_hba.conf").replacen(anchor, &format!("{anchor}{shadowing}\n"), 1);
    std::fs::write(&conf, &conf_before).expect("stage postgresql.conf");
    std::fs::write(&hba, &hba_before).expect("stage pg_hba.conf");
    let server_files = (fingerprint(&conf_server), fingerprint(&hba_server));

    // The guide's defaults: 172.17.0.1 in 172.17.0.0/16.
    let document = json!({
        "database": {"port": cluster.port(), "restart": true, "admin": {"socket_dir": cluster.socket_dir(), "port": cluster.port()}}
    });
    let first = run_tool(
        &["--root", &root.path().display().to_string(), "apply"],
        &document,
        &env,
    );
    assert_eq!(first.code, 0, "{}", first.describe());
    assert!(first.has_action("create role pretix"), "{:?}", first.actions());
    assert!(
        first.warnings().iter().any(|warning| warning
            .starts_with("--root stages files only: the role and the database are changed on the live server")),
        "{:?}",
        first.warnings()
    );
    assert!(
        first.has_action(&format!("update {}", conf_server.display())),
        "{:?}",
        first.actions()
    );
    assert!(
        first.has_action(&format!("update {}", hba_server.display())),
        "{:?}",
        first.actions()
    );
    assert!(
        first.has_action("skipped (--root): systemctl restart postgresql"),
        "{:?}",
        first.actions()
    );
    assert!(first.has_action("skipped (--root): reload"), "{:?}", first.actions());
    assert!(first.has_action("not verified (--root)"), "{:?}", first.actions());
    assert!(!systemctl_log.exists(), "--root must not act on services");
    assert_eq!(
        (fingerprint(&conf_server), fingerprint(&hba_server)),
        server_files,
        "the server's own files were edited"
    );
    assert!(
        root.path()
            .join("etc/pretix-toolkit/secrets/database-password")
            .exists()
    );
    assert_eq!(first.document["config"]["database"]["host"], json!("172.17.0.1"));

    let conf_after = std::fs::read_to_string(&conf).expect("postgresql.conf");
    assert_only_added(
        &conf_before,
        &conf_after,
        &["listen_addresses = 'localhost,172.17.0.1'"],
    );
    let rule = "host    pretix          pretix          172.17.0.0/16           scram-sha-256";
    let hba_after = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    assert_only_added(&hba_before, &hba_after, &["# pretix (managed by pretix-db)", rule]);
    let position = |line: &str| {
        hba_after
            .lines()
            .position(|candidate| candidate == line)
            .expect("line present")
    };
    assert!(position(rule) < position(shadowing), "{hba_after}");
    assert!(
        first
            .actions()
            .iter()
            .any(|action| action.contains(&format!("goes before line 97 (`{shadowing}`)"))),
        "{:?}",
        first.actions()
    );
    // The backups sit next to the files and hold the old text.
    let backups: Vec<_> = std::fs::read_dir(hba.parent().expect("parent"))
        .expect("read dir")
        .filter_map(Result::ok)
        .filter(|entry| {
            entry.file_name().to_string_lossy().starts_with("pg_hba.conf.")
                && entry.file_name().to_string_lossy().ends_with(".bak")
        })
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(std::fs::read_to_string(backups[0].path()).expect("backup"), hba_before);

    let files = (fingerprint(&conf), fingerprint(&hba));
    let second = run_tool(
        &["--root", &root.path().display().to_string(), "apply"],
        &first.next_input(),
        &env,
    );
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(!second.changed(), "{:?}", second.actions());
    assert_eq!((fingerprint(&conf), fingerprint(&hba)), files);
}
