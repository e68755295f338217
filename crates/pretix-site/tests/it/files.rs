//! The file primitives: idempotence, owner and mode, backups, line-preserving edits of real
//! Debian files, the host lock, and a writer killed mid-write.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use pretix_site::fs::{
    DirSpec, FilePlan, FileSpec, Root, RunLock, ensure_dir, ensure_file, validate_host_path, write_atomically,
};
use pretix_site::lineedit::{Lines, Syntax, quote_postgres};
use pretix_site::secret::Redactor;

fn mtime_nanos(path: &Path) -> i128 {
    let metadata = std::fs::metadata(path).expect("metadata");
    i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec())
}

#[test]
fn create_then_noop_keeps_mtime_and_reports_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::at(dir.path());
    let spec = FileSpec::new("/pretix.cfg", "[pretix]\nurl=https://x\n")
        .owner(15371, 15371)
        .mode(0o600);
    let first = ensure_file(&root, &spec, false, &Redactor::default()).expect("create");
    assert_eq!(first.plan, FilePlan::Create);
    let path = dir.path().join("pretix.cfg");
    let metadata = std::fs::metadata(&path).expect("metadata");
    assert_eq!(
        (metadata.uid(), metadata.gid(), metadata.mode() & 0o7777),
        (15371, 15371, 0o600)
    );
    let before = mtime_nanos(&path);
    std::thread::sleep(Duration::from_millis(20));
    let second = ensure_file(&root, &spec, false, &Redactor::default()).expect("noop");
    assert_eq!(second.plan, FilePlan::Unchanged);
    assert!(second.diff.is_none());
    assert_eq!(mtime_nanos(&path), before);
}

#[test]
fn wrong_owner_and_mode_are_fixed_in_place_without_rewriting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    std::fs::write(&path, "same\n").expect("write");
    let inode = std::fs::metadata(&path).expect("metadata").ino();
    let spec = FileSpec::new("/f", "same\n").owner(15371, 15371).mode(0o600);
    let outcome = ensure_file(&Root::at(dir.path()), &spec, false, &Redactor::default()).expect("fix");
    assert_eq!(outcome.plan, FilePlan::FixAttributes);
    let attributes = outcome.diff.expect("diff").attributes.expect("attributes");
    assert_eq!(attributes.after, "15371:15371 0600");
    let metadata = std::fs::metadata(&path).expect("metadata");
    assert_eq!(metadata.ino(), inode, "fixing attributes must not replace the file");
    assert_eq!(metadata.mode() & 0o7777, 0o600);
    assert_eq!(metadata.uid(), 15371);
}

#[test]
fn replace_is_atomic_keeps_a_backup_and_diffs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("conf");
    std::fs::write(&path, "a\nb\n").expect("write");
    let spec = FileSpec::new("/conf", "a\nc\n").mode(0o644).backup(true);
    let outcome = ensure_file(&Root::at(dir.path()), &spec, false, &Redactor::default()).expect("replace");
    assert_eq!(outcome.plan, FilePlan::Replace);
    let backup = outcome.backup.expect("backup");
    assert_eq!(std::fs::read_to_string(&backup).expect("backup"), "a\nb\n");
    assert_eq!(std::fs::read_to_string(&path).expect("new"), "a\nc\n");
    let unified = outcome.diff.expect("diff").unified();
    assert!(unified.contains("-b\n") && unified.contains("+c\n"), "{unified}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left behind: {leftovers:?}");
}

#[test]
fn check_mode_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = FileSpec::new("/new", "x\n");
    let outcome = ensure_file(&Root::at(dir.path()), &spec, true, &Redactor::default()).expect("plan");
    assert_eq!(outcome.plan, FilePlan::Create);
    assert!(!dir.path().join("new").exists());
}

#[test]
fn secret_files_never_show_their_content_in_diffs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = FileSpec::new("/secret", "hunter2-long-password\n").mode(0o600).secret();
    let outcome = ensure_file(&Root::at(dir.path()), &spec, false, &Redactor::default()).expect("create");
    let diff = outcome.diff.expect("diff");
    assert!(!diff.diff.contains("hunter2"), "{}", diff.diff);
    assert!(diff.diff.contains("********"));
}

#[test]
fn directories_are_created_fixed_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::at(dir.path());
    let spec = DirSpec {
        path: "/data".into(),
        uid: Some(15371),
        gid: Some(15371),
        mode: 0o755,
    };
    assert!(ensure_dir(&root, &spec, false).expect("create").created);
    std::fs::write(dir.path().join("data/keep"), "data").expect("write");
    std::fs::set_permissions(
        dir.path().join("data"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let fixed = ensure_dir(&root, &spec, false).expect("fix");
    assert!(!fixed.created && fixed.changed());
    assert_eq!(
        std::fs::metadata(dir.path().join("data")).expect("meta").mode() & 0o7777,
        0o755
    );
    assert!(!ensure_dir(&root, &spec, false).expect("noop").changed());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/keep")).expect("kept"),
        "data"
    );
    let orphan = DirSpec {
        path: "/missing-parent/data".into(),
        uid: None,
        gid: None,
        mode: 0o755,
    };
    let error = ensure_dir(&root, &orphan, false).expect_err("parent missing");
    assert!(
        format!("{error:#}").contains("parent directory does not exist"),
        "{error:#}"
    );
}

#[test]
fn root_maps_absolute_paths_and_refuses_to_escape() {
    let root = Root::at("/tmp/stage");
    assert_eq!(
        root.host_path(Path::new("/etc/pretix/pretix.cfg")),
        Path::new("/tmp/stage/etc/pretix/pretix.cfg")
    );
    assert_eq!(Root::system().host_path(Path::new("/etc/x")), Path::new("/etc/x"));
    assert_eq!(
        root.host_path(Path::new("/../../../etc/shadow")),
        Path::new("/tmp/stage/etc/shadow"),
        "`..` never climbs above the root"
    );
    assert_eq!(
        root.host_path(Path::new("/etc/pretix/../../../x")),
        Path::new("/tmp/stage/x")
    );
    for (path, expected) in [
        ("relative/path", "is not absolute"),
        ("/etc/../tmp/x", "contains `..`"),
        ("/etc/pre\ntix", "control character"),
    ] {
        let error = validate_host_path(Path::new(path), "paths.config_dir").expect_err(path);
        let text = error.to_string();
        assert!(
            text.starts_with("paths.config_dir: ") && text.contains(expected),
            "{text}"
        );
        assert_eq!(error.exit_code(), 2);
    }
    validate_host_path(Path::new("/etc/pretix"), "paths.config_dir").expect("a plain absolute path");
}

#[test]
fn a_symlink_at_a_managed_path_is_never_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::at(dir.path());
    // A private file elsewhere, and a link to it where the managed file belongs (as uid 15371
    // could plant in /etc/pretix, which it owns).
    let private = dir.path().join("shadow");
    std::fs::write(&private, "root:secret-hash-value:\n").expect("write");
    std::fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    symlink(&private, dir.path().join("pretix.cfg")).expect("symlink");
    for content in ["root:secret-hash-value:\n", "other\n"] {
        let spec = FileSpec::new("/pretix.cfg", content)
            .owner(15371, 15371)
            .mode(0o600)
            .backup(true);
        for check in [true, false] {
            let error = ensure_file(&root, &spec, check, &Redactor::default()).expect_err("a link is refused");
            let text = format!("{error:#}");
            assert!(text.contains("is a symbolic link"), "{text}");
            assert!(!text.contains("secret-hash-value"), "{text}");
        }
    }
    let metadata = std::fs::metadata(&private).expect("metadata");
    assert_eq!(
        (metadata.uid(), metadata.mode() & 0o7777),
        (0, 0o600),
        "the link's target is untouched"
    );
    assert_eq!(
        std::fs::read_to_string(&private).expect("read"),
        "root:secret-hash-value:\n"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no backup or temp file was made: {names:?}");
}

#[test]
fn a_hard_link_or_a_fifo_at_a_managed_path_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::at(dir.path());
    let private = dir.path().join("private");
    std::fs::write(&private, "same\n").expect("write");
    std::fs::hard_link(&private, dir.path().join("linked")).expect("hard link");
    let spec = FileSpec::new("/linked", "same\n").owner(15371, 15371).mode(0o600);
    let error = ensure_file(&root, &spec, false, &Redactor::default()).expect_err("hard link refused");
    assert!(format!("{error:#}").contains("2 hard links"), "{error:#}");
    assert_eq!(std::fs::metadata(&private).expect("metadata").uid(), 0);

    let fifo = dir.path().join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let spec = FileSpec::new("/fifo", "x\n");
    let error =
        ensure_file(&root, &spec, true, &Redactor::default()).expect_err("a fifo does not block, it is refused");
    assert!(format!("{error:#}").contains("not a regular file"), "{error:#}");
}

#[test]
fn an_owner_left_open_keeps_the_current_one_on_a_rewrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("redis.conf");
    std::fs::write(&path, "port 0\n").expect("write");
    std::os::unix::fs::chown(&path, Some(4242), Some(4343)).expect("chown");
    let spec = FileSpec::new("/redis.conf", "port 6379\n").mode(0o640);
    let outcome = ensure_file(&Root::at(dir.path()), &spec, false, &Redactor::default()).expect("replace");
    assert_eq!(outcome.plan, FilePlan::Replace);
    let metadata = std::fs::metadata(&path).expect("metadata");
    assert_eq!(
        (metadata.uid(), metadata.gid(), metadata.mode() & 0o7777),
        (4242, 4343, 0o640)
    );
}

#[test]
fn two_backups_in_one_second_do_not_overwrite_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::at(dir.path());
    std::fs::write(dir.path().join("conf"), "first\n").expect("write");
    let mut backups = Vec::new();
    for content in ["second\n", "third\n"] {
        let spec = FileSpec::new("/conf", content).mode(0o644).backup(true);
        backups.push(
            ensure_file(&root, &spec, false, &Redactor::default())
                .expect("replace")
                .backup
                .expect("backup"),
        );
    }
    assert_ne!(backups[0], backups[1]);
    assert_eq!(std::fs::read_to_string(&backups[0]).expect("first backup"), "first\n");
    assert_eq!(std::fs::read_to_string(&backups[1]).expect("second backup"), "second\n");
}

#[test]
fn backups_are_named_by_readable_utc_time_and_only_the_newest_five_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::at(dir.path());
    std::fs::write(dir.path().join("conf"), "0\n").expect("write");
    // Two backups an earlier version named by unix seconds, and files that are not ours.
    for name in [
        "conf.1700000000.bak",
        "conf.1700000001.bak",
        "conf.old.bak",
        "confx.2020-01-01T000000Z.bak",
    ] {
        std::fs::write(dir.path().join(name), "kept or old\n").expect("write");
    }
    let mut last = None;
    for round in 1..=7 {
        let spec = FileSpec::new("/conf", format!("{round}\n")).mode(0o644).backup(true);
        last = ensure_file(&root, &spec, false, &Redactor::default())
            .expect("replace")
            .backup;
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("conf.") && name.ends_with(".bak"))
        .collect();
    names.sort();
    assert!(names.contains(&"conf.old.bak".to_owned()), "{names:?}");
    let ours: Vec<&String> = names.iter().filter(|name| *name != "conf.old.bak").collect();
    assert_eq!(ours.len(), 5, "{names:?}");
    assert!(
        ours.iter().all(|name| !name.starts_with("conf.17")),
        "the unix-seconds ones are the oldest: {names:?}"
    );
    let newest = last.expect("a backup");
    let newest_name = newest.file_name().expect("name").to_string_lossy().into_owned();
    assert!(ours.contains(&&newest_name), "{names:?}");
    assert_eq!(std::fs::read_to_string(&newest).expect("newest"), "6\n");
    // conf.2026-12-01T140309Z.bak (a same-second one gets -1, -2, ...)
    let stamp = newest_name.trim_start_matches("conf.").trim_end_matches(".bak");
    let shape = stamp.split('-').take(3).collect::<Vec<_>>().join("-");
    assert_eq!(shape.len(), "2026-12-01T140309Z".len(), "{newest_name}");
    assert!(shape.ends_with('Z') && shape.as_bytes()[10] == b'T', "{newest_name}");
    assert!(dir.path().join("confx.2020-01-01T000000Z.bak").exists());
}

#[test]
fn the_lock_refuses_a_link_or_a_file_another_user_made() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::at(dir.path());
    std::fs::create_dir_all(dir.path().join("run/lock")).expect("mkdir");
    let lock_path = Path::new("/run/lock/pretix-toolkit.lock");
    let target = dir.path().join("created-by-root");
    std::os::unix::fs::symlink(&target, dir.path().join("run/lock/pretix-toolkit.lock")).expect("symlink");
    let error = RunLock::acquire(&root, lock_path, Duration::from_millis(100)).expect_err("link refused");
    assert!(format!("{error:#}").contains("symlink there is refused"), "{error:#}");
    assert!(!target.exists(), "nothing was created through the link");

    std::fs::remove_file(dir.path().join("run/lock/pretix-toolkit.lock")).expect("rm");
    std::fs::write(dir.path().join("run/lock/pretix-toolkit.lock"), "").expect("write");
    std::os::unix::fs::chown(dir.path().join("run/lock/pretix-toolkit.lock"), Some(4242), None).expect("chown");
    let error = RunLock::acquire(&root, lock_path, Duration::from_millis(100)).expect_err("foreign file refused");
    assert!(format!("{error:#}").contains("owner uid 4242"), "{error:#}");

    let fresh = Path::new("/run/pretix-toolkit/lock");
    drop(RunLock::acquire(&root, fresh, Duration::from_millis(100)).expect("default place"));
    let parent = std::fs::metadata(dir.path().join("run/pretix-toolkit")).expect("metadata");
    assert_eq!(parent.mode() & 0o7777, 0o700, "the lock's directory is root-only");
}

#[test]
fn a_symlinked_directory_is_followed_only_when_root_made_the_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::at(dir.path());
    std::fs::create_dir(dir.path().join("disk")).expect("mkdir");
    let link = dir.path().join("data");
    std::os::unix::fs::symlink(dir.path().join("disk"), &link).expect("symlink");
    let spec = DirSpec {
        path: "/data".into(),
        uid: Some(15371),
        gid: Some(15371),
        mode: 0o755,
    };
    assert!(
        ensure_dir(&root, &spec, false)
            .expect("a root-made link is followed")
            .changed()
    );
    assert_eq!(std::fs::metadata(dir.path().join("disk")).expect("meta").uid(), 15371);

    std::fs::create_dir(dir.path().join("other")).expect("mkdir");
    std::fs::remove_file(&link).expect("rm");
    std::os::unix::fs::symlink(dir.path().join("other"), &link).expect("symlink");
    std::os::unix::fs::lchown(&link, Some(15371), Some(15371)).expect("lchown");
    let error = ensure_dir(&root, &spec, false).expect_err("a link another user made is refused");
    assert!(format!("{error:#}").contains("owned by uid 15371"), "{error:#}");
    assert_eq!(std::fs::metadata(dir.path().join("other")).expect("meta").uid(), 0);
}

#[test]
fn a_second_run_waits_for_the_lock_naming_the_holder_and_gives_up_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::at(dir.path());
    let lock_path = Path::new("/run/pretix-toolkit/lock");
    let held =
        RunLock::acquire_for(&root, lock_path, Duration::from_secs(1), "pretix-db apply", &mut |_| {}).expect("first");
    let holder = format!("pid {} (pretix-db apply) since ", std::process::id());
    let mut said = Vec::new();
    let error = RunLock::acquire_for(
        &root,
        lock_path,
        Duration::from_millis(200),
        "pretix-cfg apply",
        &mut |line| said.push(line.to_owned()),
    )
    .expect_err("second must wait");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with(&format!(
            "waiting for the host lock /run/pretix-toolkit/lock: held by {holder}"
        )),
        "{said:?}"
    );
    let error = format!("{error:#}");
    assert!(error.contains(&format!("is still held by {holder}")), "{error}");
    assert!(
        error.ends_with("UTC after waiting 0s: wait for that run to finish, or end it if it hangs"),
        "{error}"
    );
    drop(held);
    RunLock::acquire(&root, lock_path, Duration::from_secs(1)).expect("free again");
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../../fixtures/debian12/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

/// Every line but the changed ones is byte-identical, in place.
fn assert_only_lines_changed(before: &str, after: &str, expected_changed: &[&str]) {
    let diff = similar::TextDiff::from_lines(before, after);
    let inserted: Vec<String> = diff
        .iter_all_changes()
        .filter(|change| change.tag() == similar::ChangeTag::Insert)
        .map(|change| change.value().to_owned())
        .collect();
    let deleted = diff
        .iter_all_changes()
        .filter(|change| change.tag() == similar::ChangeTag::Delete)
        .count();
    assert_eq!(
        inserted,
        expected_changed
            .iter()
            .map(|line| format!("{line}\n"))
            .collect::<Vec<_>>()
    );
    assert!(deleted <= expected_changed.len());
}

#[test]
fn debian_postgresql_conf_keeps_every_untouched_byte() {
    let original = fixture("postgresql.conf");
    let mut lines = Lines::parse(&original);
    assert!(lines.set_directive(
        Syntax::PostgresConf,
        "listen_addresses",
        &quote_postgres("localhost,172.17.0.1")
    ));
    let edited = lines.render();
    assert_only_lines_changed(&original, &edited, &["listen_addresses = 'localhost,172.17.0.1'"]);
    // The new line sits right under Debian's commented example.
    let position = edited.find("#listen_addresses").expect("example");
    assert!(
        edited[position..]
            .lines()
            .nth(1)
            .expect("next")
            .starts_with("listen_addresses = ")
    );
    let mut again = Lines::parse(&edited);
    assert!(!again.set_directive(
        Syntax::PostgresConf,
        "listen_addresses",
        &quote_postgres("localhost,172.17.0.1")
    ));
}

#[test]
fn debian_redis_conf_keeps_every_untouched_byte() {
    let original = fixture("redis.conf");
    let mut lines = Lines::parse(&original);
    lines.set_directive(Syntax::RedisConf, "unixsocket", "/var/run/redis/redis.sock");
    lines.set_directive(Syntax::RedisConf, "unixsocketperm", "770");
    let edited = lines.render();
    assert_only_lines_changed(
        &original,
        &edited,
        &["unixsocket /var/run/redis/redis.sock", "unixsocketperm 770"],
    );
    // Re-editing an active line rewrites it in place.
    let mut lines = Lines::parse(&edited);
    lines.set_directive(Syntax::RedisConf, "unixsocketperm", "777");
    assert_only_lines_changed(&edited, &lines.render(), &["unixsocketperm 777"]);
}

/// A writer killed at a random moment leaves the old file or the new one, never a mix or a
/// truncated file. The test re-runs its own executable as the writer child.
#[test]
fn killed_writer_leaves_old_or_new_file_whole() {
    const SIZE: usize = 4 * 1024 * 1024;
    if let Some(target) = std::env::var_os("PRETIX_SITE_WRITER_CHILD") {
        let target = std::path::PathBuf::from(target);
        for round in 0u64.. {
            let fill = if round % 2 == 0 { b'a' } else { b'b' };
            write_atomically(&target, &vec![fill; SIZE], None, None, 0o644).expect("child write");
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("state");
    write_atomically(&target, &vec![b'o'; SIZE], None, None, 0o644).expect("initial");
    for attempt in 0..12u64 {
        let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args([
                "files::killed_writer_leaves_old_or_new_file_whole",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PRETIX_SITE_WRITER_CHILD", &target)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn writer");
        std::thread::sleep(Duration::from_millis(30 + attempt * 17));
        child.kill().expect("kill");
        child.wait().expect("wait");
        let content = std::fs::read(&target).expect("read");
        assert_eq!(content.len(), SIZE, "attempt {attempt}: partial file");
        let first = content[0];
        assert!(
            matches!(first, b'o' | b'a' | b'b'),
            "attempt {attempt}: unexpected byte"
        );
        assert!(
            content.iter().all(|byte| *byte == first),
            "attempt {attempt}: mixed content"
        );
    }
}
