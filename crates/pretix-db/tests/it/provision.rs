//! `apply` and `verify` against a real cluster, through both superuser routes.

use std::os::unix::fs::MetadataExt;

use serde_json::{Value, json};

use crate::support::{fingerprint, login, password_from, run_tool, secret_file, site};
use pretix_testkit::{Postgres, SUPERUSER_PASSWORD};

/// As root with no connection string, the superuser session runs as the postgres system user
/// (peer authentication on the socket). Before: `--check` and `verify` change nothing. Then a
/// fresh provision, the login with the password, and a re-run that changes nothing at all.
#[test]
fn fresh_provision_as_root_through_the_postgres_user_then_a_rerun_changes_nothing() {
    let cluster = Postgres::start();
    let home = tempfile::tempdir().expect("home");
    let systemctl_log = home.path().join("systemctl.log");
    let env = [(pretix_site::service::RECORD_ENV, systemctl_log.as_path())];
    let conf = cluster.data_dir().join("postgresql.conf");
    let hba = cluster.data_dir().join("pg_hba.conf");
    let document = site(&cluster, home.path());
    let secrets_dir = home.path().join("etc/pretix-toolkit/secrets");
    let files_before = (fingerprint(&conf), fingerprint(&hba));

    // --check: the plan, and nothing done.
    let planned = run_tool(&["--check", "apply"], &document, &env);
    assert_eq!(planned.code, 0, "{}", planned.describe());
    assert!(planned.changed());
    assert!(planned.has_action("create role pretix"), "{:?}", planned.actions());
    assert!(planned.has_action("create database pretix"), "{:?}", planned.actions());
    assert!(
        planned.has_action(&format!("update {}", hba.display())),
        "{:?}",
        planned.actions()
    );
    // check: read-only, and it fails (nothing is there yet).
    let checked = run_tool(&["verify"], &document, &env);
    assert_eq!(checked.code, 1, "{}", checked.describe());
    assert!(checked.msg().contains("role"), "{}", checked.msg());
    assert!(checked.msg().contains("database"), "{}", checked.msg());
    let roles = cluster
        .superuser()
        .query("SELECT 1 FROM pg_roles WHERE rolname = 'pretix'", &[])
        .expect("query");
    assert!(roles.is_empty(), "--check and check created the role");
    assert!(!secrets_dir.exists(), "--check and check created the secrets dir");
    assert_eq!(
        (fingerprint(&conf), fingerprint(&hba)),
        files_before,
        "--check and check changed a file"
    );

    // apply.
    let first = run_tool(&["-v", "apply"], &document, &env);
    assert_eq!(first.code, 0, "{}", first.describe());
    assert!(first.changed());
    assert!(
        first.stderr.contains("run as postgres: "),
        "the session did not switch users: {}",
        first.stderr
    );
    assert!(
        first.has_action("create role pretix (login, scram-sha-256 password)"),
        "{:?}",
        first.actions()
    );
    assert!(
        first.has_action("create database pretix (owner pretix, UTF8)"),
        "{:?}",
        first.actions()
    );
    assert!(
        first.has_action("reloaded the postgresql configuration"),
        "{:?}",
        first.actions()
    );
    let verified = format!(
        "logged in as pretix over tcp at 127.0.0.1:{} to database pretix",
        cluster.port()
    );
    assert!(first.has_action(&verified), "{:?}", first.actions());
    assert!(first.warnings().is_empty(), "{:?}", first.warnings());

    // The generated password: root-only, in the document by reference, and it works.
    let secret_path = secrets_dir.join("database-password");
    let metadata = std::fs::metadata(&secret_path).expect("the password file exists");
    assert_eq!((metadata.uid(), metadata.mode() & 0o777), (0, 0o600));
    assert_eq!(
        std::fs::metadata(&secrets_dir).expect("secrets dir").mode() & 0o777,
        0o700
    );
    let reference = json!({"secret_file": secret_path});
    assert_eq!(first.document["database"]["password"], reference);
    assert_eq!(
        first.document["config"]["database"],
        json!({"backend": "postgresql", "name": "pretix", "user": "pretix", "host": "127.0.0.1",
               "port": cluster.port(), "password": reference})
    );
    let password = password_from(&first.document);
    assert_eq!(password.len(), 32);
    assert!(
        !first.stdout.contains(&password) && !first.stderr.contains(&password),
        "the password was printed"
    );
    assert_eq!(
        login(cluster.port(), "127.0.0.1", "pretix", "pretix", &password)
            .ok()
            .as_deref(),
        Some("pretix")
    );
    let wrong = login(cluster.port(), "127.0.0.1", "pretix", "pretix", "not-the-password")
        .expect_err("a wrong password is refused");
    assert_eq!(wrong.code().map(|code| code.code()), Some("28P01"), "{wrong}");

    // The server's view.
    let mut superuser = cluster.superuser();
    let row = superuser
        .query_one(
            "SELECT r.rolcanlogin, r.rolsuper, r.rolpassword LIKE 'SCRAM-SHA-256$%', pg_get_userbyid(d.datdba)::text, \
             pg_encoding_to_char(d.encoding)::text FROM pg_authid r, pg_database d WHERE r.rolname = 'pretix' AND d.datname = 'pretix'",
            &[],
        )
        .expect("role and database");
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, bool>(1),
            row.get::<_, bool>(2),
            row.get::<_, String>(3),
            row.get::<_, String>(4)
        ),
        (true, false, true, "pretix".to_owned(), "UTF8".to_owned())
    );
    let hba_text = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    assert_eq!(
        hba_text
            .matches("host    pretix          pretix          127.0.0.0/8             scram-sha-256")
            .count(),
        1
    );

    // The re-run: nothing to do, no file written, no restart.
    let files_after_first = (fingerprint(&conf), fingerprint(&hba), fingerprint(&secret_path));
    let second = run_tool(&["apply"], &first.next_input(), &env);
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(!second.changed(), "{:?}", second.actions());
    assert_eq!(second.actions().len(), 1, "{:?}", second.actions());
    assert!(second.has_action(&verified), "{:?}", second.actions());
    assert!(second.warnings().is_empty(), "{:?}", second.warnings());
    assert_eq!(
        (fingerprint(&conf), fingerprint(&hba), fingerprint(&secret_path)),
        files_after_first
    );
    assert_eq!(
        password_from(&second.document),
        password,
        "a re-run rotated the password"
    );
    assert!(!systemctl_log.exists(), "nothing needed a restart");

    // check: every item ok.
    let checked = run_tool(&["verify"], &second.next_input(), &env);
    assert_eq!(checked.code, 0, "{}", checked.describe());
    let statuses: Vec<(String, String)> = checked.result()["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|item| {
            (
                item["name"].as_str().unwrap_or_default().to_owned(),
                item["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(statuses.len() >= 12, "{statuses:?}");
    assert!(statuses.iter().all(|(_, status)| status == "ok"), "{statuses:?}");
    assert!(statuses.iter().any(|(name, _)| name == "role password"), "{statuses:?}");
    assert!(
        statuses.iter().any(|(name, _)| name == "login over tcp"),
        "{statuses:?}"
    );
}

/// With a connection string the session runs in-process (TCP, the superuser's password by
/// reference). Role, database and password shaped like SQL injection are just names.
#[test]
fn connection_string_route_with_injection_shaped_names_and_password() {
    let cluster = Postgres::start();
    let home = tempfile::tempdir().expect("home");
    let role = "bühne o'neil; DROP ROLE postgres;--";
    let database = "tick ets\\ü'; DROP DATABASE postgres;--";
    let password = "pa'ss\"wo\\rd $1 %s; DROP ROLE postgres;-- ü";
    let password_file = secret_file(home.path(), "pretix-password", password);
    let admin_password = secret_file(home.path(), "superuser-password", SUPERUSER_PASSWORD);
    let mut document = site(&cluster, home.path());
    document["database"]["name"] = json!(database);
    document["database"]["user"] = json!(role);
    document["database"]["password"] = json!({"secret_file": password_file});
    document["database"]["admin"] = json!({
        "connection": format!("host=127.0.0.1 port={} user=postgres dbname=postgres", cluster.port()),
        "password": {"secret_file": admin_password}
    });
    // What the document said before: replaced, with a warning that never shows a password.
    document["config"] = json!({"database": {"host": "db.example.org", "password": "plain-text-in-config"}});

    let first = run_tool(&["-v", "apply"], &document, &[]);
    assert_eq!(first.code, 0, "{}", first.describe());
    assert!(
        !first.stderr.contains("run as postgres"),
        "the connection string must be used in-process: {}",
        first.stderr
    );
    assert!(
        first.has_action(&format!("create role {role}")),
        "{:?}",
        first.actions()
    );
    assert!(
        first.has_action(&format!("logged in as {role} over tcp")),
        "{:?}",
        first.actions()
    );
    assert!(!first.stdout.contains(password) && !first.stderr.contains(password));
    // The document keeps the given reference; nothing was generated.
    assert_eq!(
        first.document["database"]["password"],
        json!({"secret_file": password_file})
    );
    assert!(!home.path().join("etc").exists());
    let warnings = first.warnings();
    assert!(
        warnings.contains(
            &"config.database.host was `db.example.org`; replaced by `127.0.0.1` from the database section".to_owned()
        ),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|warning| warning
            .starts_with("config.database.password was a password in plain text; replaced by the secret file")),
        "{warnings:?}"
    );
    assert!(!first.stderr.contains("plain-text-in-config"));

    let mut superuser = cluster.superuser();
    let names: Vec<String> = superuser
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname IN ($1, 'postgres') ORDER BY 1",
            &[&role],
        )
        .expect("roles")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(names, vec![role.to_owned(), "postgres".to_owned()]);
    let owner: String = superuser
        .query_one(
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .expect("the database exists under its exact name")
        .get(0);
    assert_eq!(owner, role);
    assert_eq!(
        superuser
            .query("SELECT 1 FROM pg_database WHERE datname = 'postgres'", &[])
            .expect("query")
            .len(),
        1
    );
    assert_eq!(
        login(cluster.port(), "127.0.0.1", role, database, password)
            .ok()
            .as_deref(),
        Some(role)
    );
    let hba = std::fs::read_to_string(cluster.data_dir().join("pg_hba.conf")).expect("pg_hba.conf");
    assert!(
        hba.contains(&format!("host    \"{database}\" \"{role}\" 127.0.0.0/8")),
        "{hba}"
    );

    let second = run_tool(&["apply"], &first.next_input(), &[]);
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(!second.changed(), "{:?}", second.actions());
}

/// An existing role with an md5 hash and a database owned by someone else are fixed; a
/// database with another encoding is refused and left as it is. First, pg_hba.conf is a symlink
/// in the postgres-owned data dir, as whoever has the postgres account could plant: refused.
#[test]
fn existing_md5_role_and_foreign_owned_database_are_fixed_a_latin1_database_is_refused() {
    let cluster = Postgres::start();
    let home = tempfile::tempdir().expect("home");
    let hba_link = cluster.data_dir().join("pg_hba.conf");
    let hba_real = cluster.data_dir().join("pg_hba.real.conf");
    std::fs::rename(&hba_link, &hba_real).expect("move pg_hba.conf");
    std::os::unix::fs::symlink("pg_hba.real.conf", &hba_link).expect("symlink pg_hba.conf");
    let mut superuser = cluster.superuser();
    superuser
        .batch_execute("SET password_encryption = 'md5'; CREATE ROLE pretix LOGIN PASSWORD 'an-old-md5-password'")
        .expect("an md5 role");
    superuser
        .batch_execute("CREATE DATABASE pretix OWNER postgres")
        .expect("a database owned by postgres");
    superuser
        .batch_execute(
            "CREATE DATABASE shop OWNER postgres ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'",
        )
        .expect("a LATIN1 database");
    let password = "the-new-password-in-a-file";
    let mut document = site(&cluster, home.path());
    document["database"]["password"] = json!({"secret_file": secret_file(home.path(), "password", password)});

    let hba_text = std::fs::read(&hba_real).expect("read");
    let refused = run_tool(&["apply", "--check", "--diff"], &document, &[]);
    assert_eq!(refused.code, 1, "{}", refused.describe());
    assert!(refused.msg().contains("is a symbolic link"), "{}", refused.msg());
    assert_eq!(
        std::fs::read(&hba_real).expect("read"),
        hba_text,
        "the link's target is untouched"
    );
    std::fs::remove_file(&hba_link).expect("rm link");
    std::fs::rename(&hba_real, &hba_link).expect("restore pg_hba.conf");

    let fixed = run_tool(&["apply"], &document, &[]);
    assert_eq!(fixed.code, 0, "{}", fixed.describe());
    assert!(
        fixed.has_action("role pretix: set its password (replacing its md5 hash with scram-sha-256)"),
        "{:?}",
        fixed.actions()
    );
    assert!(
        fixed.has_action("database pretix: change its owner from postgres to pretix"),
        "{:?}",
        fixed.actions()
    );
    assert!(
        fixed.warnings().iter().any(|warning| warning.contains("md5")),
        "{:?}",
        fixed.warnings()
    );
    assert!(
        fixed
            .warnings()
            .iter()
            .any(|warning| warning.contains("REASSIGN OWNED")),
        "{:?}",
        fixed.warnings()
    );
    let row = superuser
        .query_one(
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$%', (SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = 'pretix') \
             FROM pg_authid WHERE rolname = 'pretix'",
            &[],
        )
        .expect("query");
    assert_eq!(
        (row.get::<_, bool>(0), row.get::<_, String>(1)),
        (true, "pretix".to_owned())
    );
    assert_eq!(
        login(cluster.port(), "127.0.0.1", "pretix", "pretix", password)
            .ok()
            .as_deref(),
        Some("pretix")
    );
    assert!(
        std::fs::read_to_string(&hba_link)
            .expect("read")
            .contains("# pretix (managed by pretix-db)")
    );

    document["database"]["name"] = json!("shop");
    let hba_before = std::fs::read(cluster.data_dir().join("pg_hba.conf")).expect("pg_hba.conf");
    let refused = run_tool(&["apply"], &document, &[]);
    assert_eq!(refused.code, 1, "{}", refused.describe());
    assert!(
        refused
            .msg()
            .starts_with("database shop has encoding LATIN1, pretix needs UTF8; it was left untouched"),
        "{}",
        refused.msg()
    );
    let row = superuser
        .query_one("SELECT pg_get_userbyid(datdba)::text, pg_encoding_to_char(encoding)::text FROM pg_database WHERE datname = 'shop'", &[])
        .expect("shop still exists");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("postgres".to_owned(), "LATIN1".to_owned())
    );
    assert_eq!(
        std::fs::read(cluster.data_dir().join("pg_hba.conf")).expect("pg_hba.conf"),
        hba_before,
        "a refused run edited pg_hba.conf"
    );
    assert!(refused.result()["failed"] == Value::Bool(true));

    // A pg_hba.conf the server already rejects: a reload would keep the old rules, so the run
    // stops before any change, naming the line.
    let mut broken = String::from_utf8(hba_before).expect("utf-8");
    broken.push_str("hots all all 0.0.0.0/0 md5\n");
    let broken_line = broken.lines().count();
    std::fs::write(&hba_link, &broken).expect("break pg_hba.conf");
    document["database"]["name"] = json!("pretix");
    document["database"]["user"] = json!("pretix2");
    let stopped = run_tool(&["apply"], &document, &[]);
    assert_eq!(stopped.code, 1, "{}", stopped.describe());
    assert!(
        stopped.msg().contains(&format!(
            "has lines the server rejects (line {broken_line}: invalid connection type \"hots\")"
        )),
        "{}",
        stopped.msg()
    );
    assert_eq!(std::fs::read_to_string(&hba_link).expect("read"), broken);
    let roles = superuser
        .query("SELECT 1 FROM pg_roles WHERE rolname = 'pretix2'", &[])
        .expect("query");
    assert!(roles.is_empty(), "the role was created before the refusal");
}

/// A sysadmin's `reject` for the whole loopback network comes first in pg_hba.conf: the pretix
/// rule goes before it (with a warning that it overrides it), the role really logs in over TCP,
/// and a re-run adds nothing.
#[test]
fn a_reject_rule_that_would_shadow_ours_is_overridden_with_a_warning_and_the_login_works() {
    let cluster = Postgres::start();
    let home = tempfile::tempdir().expect("home");
    let hba = cluster.data_dir().join("pg_hba.conf");
    let original = std::fs::read_to_string(&hba).expect("read");
    let rejecting = format!("# no TCP logins from this host\nhost all all 127.0.0.0/8 reject\n{original}");
    std::fs::write(&hba, &rejecting).expect("write");
    cluster
        .superuser()
        .batch_execute("SELECT pg_reload_conf()")
        .expect("reload");
    let document = site(&cluster, home.path());
    let applied = run_tool(&["apply"], &document, &[]);
    assert_eq!(applied.code, 0, "{}", applied.describe());
    assert!(
        applied
            .warnings()
            .iter()
            .any(|warning| warning.contains("goes before line 2") && warning.contains("overrides")),
        "{:?}",
        applied.warnings()
    );
    let edited = std::fs::read_to_string(&hba).expect("read");
    assert!(
        edited.ends_with(&rejecting),
        "the pretix rule goes above the reject and its comment, and nothing else moves:\n{edited}"
    );
    let password = password_from(&applied.document);
    assert_eq!(
        login(cluster.port(), "127.0.0.1", "pretix", "pretix", &password)
            .ok()
            .as_deref(),
        Some("pretix")
    );
    let again = run_tool(&["apply"], &applied.document, &[]);
    assert_eq!(again.code, 0, "{}", again.describe());
    assert!(!again.changed(), "{:?}", again.actions());
    assert_eq!(std::fs::read_to_string(&hba).expect("read"), edited);
}
