//! `backup` and `restore`: what pretix's maintenance docs name (a dump of the database, the data
//! dir's `media/` and `.secret`), plus pretix.cfg, the toolkit's secrets and the site document,
//! in one owner-only tar archive with a manifest naming the image that was running.
//!
//! The database dump is `pg_dump --format=custom` run as the PostgreSQL system user over the
//! local socket (peer authentication, as pretix-db's admin session does), and `pg_restore` puts
//! it back. Everything else is plain files, archived with their owners and modes; links are
//! stored as links, never followed (uid 15371 owns the data dir and could plant one).

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};
use clap::Args;
use pretix_site::sections::{Database, Paths};
use serde_json::{Value, json};

/// Where archives go unless `--dir` says otherwise.
pub const DEFAULT_BACKUP_DIR: &str = "/var/backups/pretix-toolkit";

/// The archive's member names.
const MANIFEST: &str = "manifest.json";
const SITE: &str = "site.json";
const DATABASE_DUMP: &str = "database.dump";
const DATA: &str = "data";
const CONFIG: &str = "config/pretix.cfg";
const SECRETS: &str = "secrets";

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The site document (the one the install printed)
    #[arg(long, value_name = "FILE")]
    pub site: PathBuf,
    /// The directory for the archive (created root-only)
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BACKUP_DIR)]
    pub dir: PathBuf,
    /// How many archives to keep in that directory: the oldest beyond this are removed after a
    /// backup succeeds
    #[arg(long, value_name = "N", default_value_t = DEFAULT_KEEP, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
}

/// How many archives `backup` (and the backup before an upgrade) keeps.
pub const DEFAULT_KEEP: u32 = 10;

/// What a backup took, also written into the archive as `manifest.json`.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub created: String,
    pub database: String,
    pub image: Option<String>,
    pub image_digest: Option<String>,
    pub reason: String,
}

impl Manifest {
    fn to_json(&self) -> Value {
        json!({
            "format": 1,
            "toolkit_version": env!("CARGO_PKG_VERSION"),
            "created": self.created,
            "reason": self.reason,
            "database": self.database,
            "image": self.image,
            "image_digest": self.image_digest,
        })
    }
}

pub fn run_backup(args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let document = read_site(&args.site)?;
    let archive = backup(&document, &args.dir, "backup", args.keep)?;
    eprintln!("xtask: backup written to {}", archive.display());
    pretix_site::run::print_stdout(&format!("{}\n", json!({"archive": archive})));
    Ok(ExitCode::SUCCESS)
}

/// The site document as JSON, with the sections a backup reads validated.
pub fn read_site(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let document: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not a JSON document", path.display()))?;
    let paths = section::<Paths>(&document, "paths")?;
    paths.validate().map_err(|error| anyhow::anyhow!("{error}"))?;
    section::<Database>(&document, "database")?;
    Ok(document)
}

fn section<T: serde::de::DeserializeOwned + Default>(document: &Value, name: &str) -> anyhow::Result<T> {
    match document.get(name) {
        None | Some(Value::Null) => Ok(T::default()),
        Some(value) => serde_json::from_value(value.clone()).map_err(|error| anyhow::anyhow!("{name}: {error}")),
    }
}

/// Writes one archive into `dir` and returns its path. The archive appears whole or not at all:
/// it is written under a temporary name and renamed.
pub fn backup(document: &Value, dir: &Path, reason: &str, keep: u32) -> anyhow::Result<PathBuf> {
    let paths = section::<Paths>(document, "paths")?;
    let database = section::<Database>(document, "database")?;
    ensure_private_dir(dir)?;
    sweep_partials(dir);
    let created = utc_timestamp();
    let manifest = Manifest {
        created: created.clone(),
        database: database.name.clone(),
        image: document["container"]["image"].as_str().map(str::to_owned),
        image_digest: image_digest(document),
        reason: reason.to_owned(),
    };
    let final_path = dir.join(format!("pretix-{created}.tar"));
    let temp_path = dir.join(format!(".pretix-{created}.tar.partial"));
    let result = (|| -> anyhow::Result<()> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&temp_path)
            .with_context(|| format!("create {}", temp_path.display()))?;
        // Held until the archive is renamed: a concurrent backup's sweep leaves a locked partial.
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .with_context(|| format!("lock {}", temp_path.display()))?;
        let mut archive = tar::Builder::new(file);
        archive.follow_symlinks(false);
        append_bytes(
            &mut archive,
            MANIFEST,
            serde_json::to_string_pretty(&manifest.to_json())?.as_bytes(),
        )?;
        append_bytes(&mut archive, SITE, serde_json::to_string_pretty(document)?.as_bytes())?;
        let dump_path = dir.join(format!(".pretix-{created}.dump.partial"));
        let dumped = pg_dump(&database, &dump_path).and_then(|()| append_tree(&mut archive, &dump_path, DATABASE_DUMP));
        let _ = std::fs::remove_file(&dump_path);
        dumped?;
        for member in ["media", ".secret"] {
            let path = paths.data_dir.join(member);
            if std::fs::symlink_metadata(&path).is_ok() {
                append_tree(&mut archive, &path, &format!("{DATA}/{member}"))?;
            }
        }
        let config = paths.config_dir.join("pretix.cfg");
        if std::fs::symlink_metadata(&config).is_ok() {
            append_tree(&mut archive, &config, CONFIG)?;
        }
        if std::fs::symlink_metadata(&paths.secrets_dir).is_ok() {
            append_tree(&mut archive, &paths.secrets_dir, SECRETS)?;
        }
        let file = archive.into_inner().context("finish the archive")?;
        file.sync_all().context("sync the archive")?;
        Ok(())
    })();
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temp_path);
        return Err(error.context(format!("back up into {}", dir.display())));
    }
    std::fs::rename(&temp_path, &final_path).with_context(|| format!("rename to {}", final_path.display()))?;
    File::open(dir).and_then(|dir| dir.sync_all()).ok();
    prune(dir, keep);
    Ok(final_path)
}

/// Removes the oldest archives (`pretix-<UTC time>.tar`, whose names sort by time) beyond `keep`.
pub fn prune(dir: &Path, keep: u32) {
    let mut archives: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.starts_with("pretix-") && name.ends_with(".tar") && entry.file_type().is_ok_and(|kind| kind.is_file())
        })
        .map(|entry| entry.path())
        .collect();
    archives.sort();
    let excess = archives
        .len()
        .saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
    for old in archives.iter().take(excess) {
        if std::fs::remove_file(old).is_ok() {
            eprintln!("xtask: removed the old backup {} (--keep {keep})", old.display());
        }
    }
}

/// Our own leftovers of a killed backup (`.pretix-*.partial`): removed when no run holds their
/// lock any more.
pub fn sweep_partials(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with(".pretix-") && name.ends_with(".partial");
        if !(ours && entry.file_type().is_ok_and(|kind| kind.is_file())) {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else { continue };
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The image digest pretix-unit recorded, when it did.
fn image_digest(document: &Value) -> Option<String> {
    document["container"]["image_digest"].as_str().map(str::to_owned)
}

/// The backup directory: created root-only; an existing one must be a root-owned directory (not
/// a link) that nobody else can write to.
fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    if !dir.is_absolute() || dir.components().any(|part| part == std::path::Component::ParentDir) {
        bail!("--dir {}: give an absolute path without ..", dir.display());
    }
    match std::fs::symlink_metadata(dir) {
        Ok(metadata) => {
            if !metadata.is_dir() {
                bail!(
                    "{} is not a directory (a link is not followed): remove it or choose another --dir",
                    dir.display()
                );
            }
            if metadata.uid() != 0 && rustix::process::geteuid().is_root() {
                bail!(
                    "{} is not owned by root: backups hold secrets; chown it to root or choose another --dir",
                    dir.display()
                );
            }
            // The archives themselves are 0600; a directory others can write to would let them
            // replace one. An existing directory's mode is the sysadmin's: never changed here.
            if metadata.mode() & 0o022 != 0 {
                bail!(
                    "{} can be written by others (mode {:o}), who could replace an archive: chmod go-w it or \
                     choose another --dir",
                    dir.display(),
                    metadata.mode() & 0o7777
                );
            }
        }
        Err(_) => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// `pg_dump --format=custom` of the pretix database into `to` (created 0600), as the PostgreSQL
/// system user over the local socket; streamed, never held in memory.
fn pg_dump(database: &Database, to: &Path) -> anyhow::Result<()> {
    if database.admin.connection.is_some() || database.admin.password.is_some() {
        bail!(
            "database.admin: backups use peer authentication over the local socket; a connection string or an \
             admin password is not supported yet: run pg_dump yourself and keep the dump with the archive"
        );
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(to)
        .with_context(|| format!("create {}", to.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .with_context(|| format!("lock {}", to.display()))?;
    let mut command = as_system_user(&database.admin.system_user, "pg_dump");
    command
        .arg("--format=custom")
        .arg(format!("--host={}", database.admin.socket_dir.display()))
        .arg(format!("--port={}", database.admin.port))
        .arg(format!("--username={}", database.admin.user))
        .arg("--")
        .arg(&database.name);
    let output = command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped())
        .output()
        .context("run pg_dump (Debian's postgresql-client)")?;
    if !output.status.success() {
        bail!(
            "pg_dump of database {} failed: {}",
            database.name,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// A PostgreSQL client program as the system user when we are root (peer authentication checks
/// that identity); as ourselves otherwise.
fn as_system_user(system_user: &str, program: &str) -> Command {
    if rustix::process::geteuid().is_root() && system_user != "root" {
        let mut command = Command::new("runuser");
        command.args(["-u", system_user, "--", program]);
        command
    } else {
        Command::new(program)
    }
}

fn append_bytes<W: std::io::Write>(archive: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(u64::try_from(bytes.len())?);
    header.set_mode(0o600);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    );
    header.set_cksum();
    archive
        .append_data(&mut header, name, bytes)
        .with_context(|| format!("archive {name}"))
}

/// A file or a directory tree, with owners and modes; links stored as links.
fn append_tree<W: std::io::Write>(archive: &mut tar::Builder<W>, path: &Path, name: &str) -> anyhow::Result<()> {
    let metadata = std::fs::symlink_metadata(path).with_context(|| format!("read {}", path.display()))?;
    if metadata.is_dir() {
        archive
            .append_dir_all(name, path)
            .with_context(|| format!("archive {}", path.display()))
    } else {
        archive
            .append_path_with_name(path, name)
            .with_context(|| format!("archive {}", path.display()))
    }
}

/// `20261201T141500Z`: sortable, readable, no characters a shell or tar cares about.
pub fn utc_timestamp() -> String {
    let output = Command::new("date").args(["-u", "+%Y%m%dT%H%M%SZ"]).output();
    match output {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        _ => format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs())
                .unwrap_or_default()
        ),
    }
}

/// Reads one member of an archive.
pub fn read_member(archive: &Path, member: &str) -> anyhow::Result<Vec<u8>> {
    let file = File::open(archive).with_context(|| format!("open {}", archive.display()))?;
    let mut reader = tar::Archive::new(file);
    for entry in reader.entries().context("read the archive")? {
        let mut entry = entry.context("read the archive")?;
        if entry.path().ok().as_deref() == Some(Path::new(member)) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            return Ok(bytes);
        }
    }
    bail!(
        "{} has no {member}: is it an archive that backup wrote?",
        archive.display()
    )
}

/// Which members a restore pass puts back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePass {
    /// The toolkit's secrets, before the install runs, so that it finds and keeps them (the
    /// database role gets its old password, pretix.cfg its old values).
    Secrets,
    /// The data dir's media and .secret, and the database, after the install made the role, the
    /// database and the directories. pretix.cfg is not put back: pretix-cfg has just rendered it
    /// from the site document for this host (the archived copy names the old host's addresses, and
    /// is kept in the archive for reference).
    DataAndDatabase,
}

/// The site document an archive was taken with.
pub fn archived_site(archive: &Path) -> anyhow::Result<Value> {
    let document: Value = serde_json::from_slice(&read_member(archive, SITE)?).context("the archived site document")?;
    section::<Paths>(&document, "paths")?
        .validate()
        .map_err(|error| anyhow::anyhow!("the archived site document: {error}"))?;
    Ok(document)
}

/// One restore pass: the members it covers go back where `document` (the archived site document,
/// or the one given for another host) says, with their archived owners and modes.
pub fn restore(archive: &Path, pass: RestorePass, document: &Value) -> anyhow::Result<()> {
    let paths = section::<Paths>(document, "paths")?;
    paths.validate().map_err(|error| anyhow::anyhow!("{error}"))?;
    let database = section::<Database>(document, "database")?;
    let file = File::open(archive).with_context(|| format!("open {}", archive.display()))?;
    let mut reader = tar::Archive::new(file);
    reader.set_preserve_permissions(true);
    reader.set_preserve_ownerships(true);
    reader.set_overwrite(true);
    let mut restored_database = false;
    for entry in reader.entries().context("read the archive")? {
        let mut entry = entry.context("read the archive")?;
        let name = entry.path().context("an archive member's name")?.into_owned();
        if name
            .components()
            .any(|part| !matches!(part, std::path::Component::Normal(_)))
        {
            bail!(
                "{}: member {} is not a plain relative name: the archive is not one backup wrote",
                archive.display(),
                name.display()
            );
        }
        let (base, target) = match pass {
            RestorePass::Secrets => match name.strip_prefix(SECRETS) {
                Ok(rest) => (&paths.secrets_dir, paths.secrets_dir.join(rest)),
                Err(_) => continue,
            },
            RestorePass::DataAndDatabase => {
                if name == Path::new(DATABASE_DUMP) {
                    pg_restore(&database, &mut entry)?;
                    restored_database = true;
                    continue;
                } else if let Ok(rest) = name.strip_prefix(DATA) {
                    (&paths.data_dir, paths.data_dir.join(rest))
                } else {
                    continue;
                }
            }
        };
        // uid 15371 owns the data dir and could have planted a link on the way: before root
        // creates or writes anything, the nearest existing directory above the member must really
        // be inside its base (the base itself is a validated host path).
        if let Some(parent) = target.parent() {
            if target != *base {
                std::fs::create_dir_all(base).with_context(|| format!("create {}", base.display()))?;
                let existing = parent
                    .ancestors()
                    .find(|ancestor| ancestor.exists())
                    .unwrap_or(Path::new("/"));
                let real = existing
                    .canonicalize()
                    .with_context(|| format!("resolve {}", existing.display()))?;
                let real_base = base
                    .canonicalize()
                    .with_context(|| format!("resolve {}", base.display()))?;
                if !real.starts_with(&real_base) {
                    bail!(
                        "{} leads out of {} (to {}) through a link: remove the link, then restore again",
                        existing.display(),
                        base.display(),
                        real.display()
                    );
                }
            }
            std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        entry
            .unpack(&target)
            .with_context(|| format!("restore {}", target.display()))?;
    }
    if pass == RestorePass::DataAndDatabase && !restored_database {
        bail!("{} holds no database dump", archive.display());
    }
    Ok(())
}

/// `pg_restore --clean --if-exists` from a stream (the custom format reads from stdin), as the
/// PostgreSQL system user; objects end up owned by the pretix role.
fn pg_restore(database: &Database, dump: &mut impl std::io::Read) -> anyhow::Result<()> {
    let mut command = as_system_user(&database.admin.system_user, "pg_restore");
    command
        .arg("--clean")
        .arg("--if-exists")
        .arg("--no-owner")
        .arg(format!("--role={}", database.user))
        .arg(format!("--host={}", database.admin.socket_dir.display()))
        .arg(format!("--port={}", database.admin.port))
        .arg(format!("--username={}", database.admin.user))
        .arg(format!("--dbname={}", database.name));
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("run pg_restore (Debian's postgresql-client)")?;
    if let Some(mut stdin) = child.stdin.take() {
        std::io::copy(dump, &mut stdin).context("feed pg_restore")?;
    }
    let output = child.wait_with_output().context("wait for pg_restore")?;
    if !output.status.success() {
        bail!(
            "pg_restore into database {} failed: {}",
            database.name,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive `backup` wrote
    #[arg(long, value_name = "FILE")]
    pub archive: PathBuf,
    /// The site document for this host, when its paths or addresses differ from the archived
    /// one's (default: the document in the archive)
    #[arg(long, value_name = "FILE")]
    pub site: Option<PathBuf>,
    /// Where the tool binaries are (default: built by cargo, or next to this binary)
    #[arg(long, value_name = "DIR")]
    pub tools: Option<PathBuf>,
    /// Write the final document here (default: stdout)
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `restore`: the archived secrets, then the install's first half (database, Redis, config) from
/// the archived site document, then the data and the database, then the install's second half
/// (image, container, cron, proxy). On a fresh host this gives the same pretix; on a running one,
/// stop the container first (`systemctl stop pretix.service`), since the database is replaced.
pub fn run_restore(args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let tools = crate::steps::ToolDir::locate(args.tools.as_deref())?;
    let mut document = match &args.site {
        Some(site) => read_site(site)?,
        None => archived_site(&args.archive)?,
    };
    if let Value::Object(map) = &mut document {
        map.remove("results");
    }
    eprintln!("xtask: restoring {}: the secrets first", args.archive.display());
    restore(&args.archive, RestorePass::Secrets, &document)?;
    let steps = crate::install::install_steps(&[]);
    let (first, second) = steps.split_at(3);
    let outcome = crate::steps::run_sequence(&tools, first, serde_json::to_string(&document)?)?;
    if outcome.exit_code() != 0 {
        crate::steps::write_document(&outcome.document, args.output.as_deref())?;
        eprint!("{}", crate::install::recap("restore", &outcome));
        return Ok(crate::steps::exit_code(outcome.exit_code()));
    }
    eprintln!("xtask: restoring the database and the data dir");
    restore(&args.archive, RestorePass::DataAndDatabase, &document)?;
    let rest = crate::steps::run_sequence(&tools, second, outcome.document.clone())?;
    crate::steps::write_document(&rest.document, args.output.as_deref())?;
    let whole = crate::steps::SequenceRun {
        document: rest.document.clone(),
        ran: outcome.ran.into_iter().chain(rest.ran).collect(),
        not_run: rest.not_run,
    };
    eprint!("{}", crate::install::recap("restore", &whole));
    Ok(crate::steps::exit_code(whole.exit_code()))
}
