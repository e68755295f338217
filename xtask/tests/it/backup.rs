//! `backup` and `restore` against a real PostgreSQL cluster: the archive is owner-only, holds
//! what pretix's maintenance docs name, and a restore brings back the rows and the files.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use pretix_testkit::Postgres;
use serde_json::json;
use xtask::backup::{RestorePass, backup, restore};

fn psql(cluster: &Postgres, database: &str, sql: &str) -> String {
    let output = std::process::Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            "psql",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .arg(format!("--host={}", cluster.socket_dir().display()))
        .arg(format!("--port={}", cluster.port()))
        .args(["-d", database, "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn a_backup_is_owner_only_and_a_restore_brings_back_rows_and_files() {
    let cluster = Postgres::start();
    psql(&cluster, "postgres", "CREATE ROLE pretix LOGIN");
    psql(&cluster, "postgres", "CREATE DATABASE pretix OWNER pretix");
    psql(
        &cluster,
        "pretix",
        "SET ROLE pretix; CREATE TABLE organizer (slug text); INSERT INTO organizer VALUES ('before-the-backup')",
    );
    let stage = tempfile::tempdir().expect("stage");
    let path = |relative: &str| stage.path().join(relative);
    std::fs::create_dir_all(path("data/media/pub")).expect("media");
    std::fs::write(path("data/media/pub/logo.png"), b"png bytes").expect("a media file");
    std::fs::write(path("data/.secret"), b"django secret").expect(".secret");
    std::fs::create_dir_all(path("etc-pretix")).expect("config dir");
    std::fs::write(path("etc-pretix/pretix.cfg"), "[pretix]\nurl=https://t.example\n").expect("pretix.cfg");
    std::fs::create_dir_all(path("secrets")).expect("secrets");
    std::fs::write(path("secrets/database-password"), "s3cret\n").expect("secret");
    std::fs::set_permissions(
        path("secrets/database-password"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let site = json!({
        "paths": {"config_dir": path("etc-pretix"), "data_dir": path("data"), "secrets_dir": path("secrets")},
        "database": {"admin": {"socket_dir": cluster.socket_dir(), "port": cluster.port()}},
        "container": {"image": "pretix/standalone:2026.8.0"}
    });

    let backups = path("backups");
    let archive = backup(&site, &backups, "test", 10).expect("backup");
    let dir = std::fs::metadata(&backups).expect("backup dir");
    assert_eq!(dir.mode() & 0o777, 0o700, "the backup dir is root-only");
    let file = std::fs::metadata(&archive).expect("archive");
    assert_eq!(file.mode() & 0o777, 0o600, "the archive is owner-only");
    assert!(
        archive
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("pretix-20") && name.ends_with("Z.tar")),
        "a readable UTC time stamp: {}",
        archive.display()
    );
    let leftovers: Vec<_> = std::fs::read_dir(&backups)
        .expect("list")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no temp files are left: {leftovers:?}");
    let listing = std::process::Command::new("tar")
        .arg("-tvf")
        .arg(&archive)
        .output()
        .expect("tar -t");
    let listing = String::from_utf8_lossy(&listing.stdout);
    for member in [
        "manifest.json",
        "site.json",
        "database.dump",
        "data/media/pub/logo.png",
        "data/.secret",
        "config/pretix.cfg",
        "secrets/database-password",
    ] {
        assert!(listing.contains(member), "{member} is archived:\n{listing}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&xtask::backup::read_member(&archive, "manifest.json").expect("manifest"))
            .expect("manifest json");
    assert_eq!(manifest["image"], "pretix/standalone:2026.8.0");
    assert_eq!(manifest["database"], "pretix");

    // Lose everything, then restore.
    psql(&cluster, "pretix", "DROP TABLE organizer");
    std::fs::remove_dir_all(path("data")).expect("lose the data dir");
    std::fs::remove_file(path("secrets/database-password")).expect("lose the secret");
    restore(&archive, RestorePass::Secrets, &site).expect("restore the secrets");
    assert_eq!(
        std::fs::read_to_string(path("secrets/database-password")).expect("secret back"),
        "s3cret\n"
    );
    assert_eq!(
        std::fs::metadata(path("secrets/database-password"))
            .expect("secret")
            .mode()
            & 0o777,
        0o600,
        "the secret keeps its mode"
    );
    assert!(!path("data").exists(), "the secrets pass restores nothing else");
    // pretix-cfg renders pretix.cfg for the host restored onto; the archived one is not put back.
    std::fs::write(
        path("etc-pretix/pretix.cfg"),
        "[pretix]\nurl=https://this-host.example\n",
    )
    .expect("pretix.cfg");
    restore(&archive, RestorePass::DataAndDatabase, &site).expect("restore data and database");
    assert_eq!(
        std::fs::read_to_string(path("etc-pretix/pretix.cfg")).expect("pretix.cfg"),
        "[pretix]\nurl=https://this-host.example\n"
    );
    assert_eq!(
        psql(&cluster, "pretix", "SELECT slug FROM organizer"),
        "before-the-backup"
    );
    assert_eq!(
        psql(
            &cluster,
            "pretix",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'organizer'"
        ),
        "pretix",
        "restored objects belong to the pretix role"
    );
    assert_eq!(
        std::fs::read(path("data/media/pub/logo.png")).expect("media back"),
        b"png bytes"
    );
    assert_eq!(
        std::fs::read(path("data/.secret")).expect(".secret back"),
        b"django secret"
    );
}

#[test]
fn a_failed_dump_leaves_no_archive_and_no_temp_file() {
    let cluster = Postgres::start();
    let stage = tempfile::tempdir().expect("stage");
    let site = json!({
        "paths": {"config_dir": stage.path().join("c"), "data_dir": stage.path().join("d"), "secrets_dir": stage.path().join("s")},
        "database": {"name": "no_such_database", "admin": {"socket_dir": cluster.socket_dir(), "port": cluster.port()}}
    });
    let backups = stage.path().join("backups");
    let error = backup(&site, &backups, "test", 10).expect_err("no such database");
    assert!(
        format!("{error:#}").contains("pg_dump of database no_such_database failed"),
        "{error:#}"
    );
    let left: Vec<_> = std::fs::read_dir(&backups).expect("list").collect();
    assert!(left.is_empty(), "nothing is left behind: {left:?}");
}

#[test]
fn old_archives_beyond_keep_and_stale_partials_are_removed_and_a_writable_dir_refused() {
    let dir = tempfile::tempdir().expect("dir");
    for day in 1..=5 {
        std::fs::write(dir.path().join(format!("pretix-2026120{day}T000000Z.tar")), b"x").expect("archive");
    }
    std::fs::write(dir.path().join("notes.txt"), b"mine").expect("a file of the sysadmin's");
    xtask::backup::prune(dir.path(), 3);
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "notes.txt",
            "pretix-20261203T000000Z.tar",
            "pretix-20261204T000000Z.tar",
            "pretix-20261205T000000Z.tar"
        ]
    );

    // A partial another run still writes (it holds the lock) stays; a stale one goes.
    let held = dir.path().join(".pretix-20261206T000000Z.tar.partial");
    let stale = dir.path().join(".pretix-20261207T000000Z.tar.partial");
    let writer = std::fs::File::create(&held).expect("held partial");
    rustix::fs::flock(&writer, rustix::fs::FlockOperation::NonBlockingLockExclusive).expect("lock");
    std::fs::write(&stale, b"half").expect("stale partial");
    xtask::backup::sweep_partials(dir.path());
    assert!(held.exists(), "a partial in use is left alone");
    assert!(!stale.exists(), "a stale partial is removed");

    // A backup dir others can write to is refused, and its mode is not changed.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let site = json!({"paths": {"config_dir": "/nonexistent/c", "data_dir": "/nonexistent/d"}});
    let error = backup(&site, &open, "test", 10).expect_err("a world-writable dir");
    assert!(format!("{error:#}").contains("can be written by others"), "{error:#}");
    assert_eq!(std::fs::metadata(&open).expect("open").mode() & 0o777, 0o777);
}

#[test]
fn a_restore_never_follows_a_link_planted_in_the_data_dir() {
    let cluster = Postgres::start();
    psql(&cluster, "postgres", "CREATE ROLE pretix LOGIN");
    psql(&cluster, "postgres", "CREATE DATABASE pretix OWNER pretix");
    let stage = tempfile::tempdir().expect("stage");
    let path = |relative: &str| stage.path().join(relative);
    std::fs::create_dir_all(path("data/media/pub")).expect("media");
    std::fs::write(path("data/media/pub/logo.png"), b"png").expect("media file");
    let site = json!({
        "paths": {"config_dir": path("c"), "data_dir": path("data"), "secrets_dir": path("s")},
        "database": {"admin": {"socket_dir": cluster.socket_dir(), "port": cluster.port()}}
    });
    let archive = backup(&site, &path("backups"), "test", 10).expect("backup");
    // The container's user swaps media/pub for a link to a directory of its choosing.
    std::fs::remove_dir_all(path("data/media/pub")).expect("remove media/pub");
    std::fs::create_dir(path("elsewhere")).expect("elsewhere");
    std::os::unix::fs::symlink(path("elsewhere"), path("data/media/pub")).expect("plant a link");
    // Refused, either by the link check or by the unpacking that finds the link in its way.
    restore(&archive, RestorePass::DataAndDatabase, &site).expect_err("a planted link");
    assert!(
        std::fs::read_dir(path("elsewhere")).expect("list").next().is_none(),
        "nothing was written through the link"
    );
}
