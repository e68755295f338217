//! Writing files safely.
//!
//! Every file a tool manages is described by a `FileSpec` (the whole desired content, owner,
//! mode) and goes through `plan_file` (pure: compares with what is there) and `apply_file`
//! (atomic: temp file in the same directory, fsync, owner and mode set before the rename,
//! rename, fsync of the directory). A crash at any point leaves the old file or the new one,
//! never a partial one. When content, owner and mode already match, nothing is written and the
//! mtime stays.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::report::{AttributeDiff, FileDiff};
use crate::secret::Redactor;

/// The filesystem root every path is taken relative to: `/` normally, a directory with
/// `--root DIR` (tests and staging).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Root {
    dir: Option<PathBuf>,
}

impl Root {
    pub fn system() -> Self {
        Root { dir: None }
    }

    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Root { dir: Some(dir.into()) }
    }

    /// Whether this is a `--root` run (service actions are then reported, not performed).
    pub fn is_redirected(&self) -> bool {
        self.dir.is_some()
    }

    /// Where an absolute path of the managed host lives on this machine.
    pub fn host_path(&self, path: &Path) -> PathBuf {
        match &self.dir {
            None => path.to_path_buf(),
            Some(dir) => {
                let relative: PathBuf = path
                    .components()
                    .filter(|component| matches!(component, Component::Normal(_) | Component::ParentDir))
                    .collect();
                dir.join(relative)
            }
        }
    }
}

/// The desired state of one file.
#[derive(Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// The path on the managed host (mapped through `Root`).
    pub path: PathBuf,
    pub content: Vec<u8>,
    /// `None` keeps the current owner (or the writer's, for a new file).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: u32,
    /// Keep a copy of the previous version next to the file before replacing it.
    pub backup: bool,
    /// The whole content is secret: diffs show only that it changed.
    pub secret: bool,
}

impl std::fmt::Debug for FileSpec {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FileSpec")
            .field("path", &self.path)
            .field("bytes", &self.content.len())
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("mode", &format_args!("{:04o}", self.mode))
            .finish()
    }
}

impl FileSpec {
    pub fn new(path: impl Into<PathBuf>, content: impl Into<Vec<u8>>) -> Self {
        FileSpec {
            path: path.into(),
            content: content.into(),
            uid: None,
            gid: None,
            mode: 0o644,
            backup: false,
            secret: false,
        }
    }

    pub fn owner(mut self, uid: u32, gid: u32) -> Self {
        self.uid = Some(uid);
        self.gid = Some(gid);
        self
    }

    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    pub fn backup(mut self, backup: bool) -> Self {
        self.backup = backup;
        self
    }

    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
}

/// What is on disk now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentFile {
    pub content: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl CurrentFile {
    /// Reads the file, or `None` when it does not exist.
    pub fn read(path: &Path) -> io::Result<Option<CurrentFile>> {
        match fs::read(path) {
            Ok(content) => {
                let metadata = fs::metadata(path)?;
                Ok(Some(CurrentFile {
                    content,
                    uid: metadata.uid(),
                    gid: metadata.gid(),
                    mode: metadata.mode() & 0o7777,
                }))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// What `apply_file` will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilePlan {
    Unchanged,
    Create,
    /// Rewrite the content (owner and mode are set on the new file).
    Replace,
    /// Only owner and/or mode differ: fix them in place, the content stays.
    FixAttributes,
}

impl FilePlan {
    pub fn is_change(&self) -> bool {
        *self != FilePlan::Unchanged
    }
}

/// Compares the desired file with what is there. Pure.
pub fn plan_file(current: Option<&CurrentFile>, spec: &FileSpec) -> FilePlan {
    let Some(current) = current else {
        return FilePlan::Create;
    };
    if current.content != spec.content {
        return FilePlan::Replace;
    }
    let owner_differs =
        spec.uid.is_some_and(|uid| uid != current.uid) || spec.gid.is_some_and(|gid| gid != current.gid);
    if owner_differs || current.mode != spec.mode {
        return FilePlan::FixAttributes;
    }
    FilePlan::Unchanged
}

/// The before/after for results and `--diff`, secrets redacted.
pub fn file_diff(current: Option<&CurrentFile>, spec: &FileSpec, redactor: &Redactor) -> FileDiff {
    let render = |bytes: &[u8]| -> String {
        if spec.secret {
            if bytes.is_empty() {
                String::new()
            } else {
                format!("{} (secret, {} bytes)\n", Redactor::MASK, bytes.len())
            }
        } else {
            redactor.redact(&String::from_utf8_lossy(bytes))
        }
    };
    let before = current.map(|current| render(&current.content)).unwrap_or_default();
    let after = render(&spec.content);
    let attributes_after = attributes_text(spec.uid, spec.gid, spec.mode, current);
    let attributes = match current {
        None => Some(AttributeDiff {
            before: "(absent)".to_owned(),
            after: attributes_after,
        }),
        Some(current) => {
            let before_text = format!("{}:{} {:04o}", current.uid, current.gid, current.mode);
            (before_text != attributes_after).then_some(AttributeDiff {
                before: before_text,
                after: attributes_after,
            })
        }
    };
    FileDiff::between(&spec.path.display().to_string(), &before, &after, attributes)
}

fn attributes_text(uid: Option<u32>, gid: Option<u32>, mode: u32, current: Option<&CurrentFile>) -> String {
    let keep = |wanted: Option<u32>, existing: Option<u32>| match (wanted, existing) {
        (Some(id), _) | (None, Some(id)) => id.to_string(),
        (None, None) => "-".to_owned(),
    };
    format!(
        "{}:{} {:04o}",
        keep(uid, current.map(|current| current.uid)),
        keep(gid, current.map(|current| current.gid)),
        mode
    )
}

/// The result of ensuring one file.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    pub plan: FilePlan,
    pub diff: Option<FileDiff>,
    /// Where the previous version was saved, when a backup was asked for.
    pub backup: Option<PathBuf>,
}

impl FileOutcome {
    pub fn changed(&self) -> bool {
        self.plan.is_change()
    }
}

/// Plans one file and, unless `check`, applies the plan.
pub fn ensure_file(root: &Root, spec: &FileSpec, check: bool, redactor: &Redactor) -> anyhow::Result<FileOutcome> {
    let host_path = root.host_path(&spec.path);
    let current = CurrentFile::read(&host_path).with_context(|| format!("read {}", spec.path.display()))?;
    let plan = plan_file(current.as_ref(), spec);
    if !plan.is_change() {
        return Ok(FileOutcome {
            plan,
            diff: None,
            backup: None,
        });
    }
    let diff = Some(file_diff(current.as_ref(), spec, redactor));
    let mut backup = None;
    if !check {
        if spec.backup && plan == FilePlan::Replace {
            backup = Some(write_backup(&host_path).with_context(|| format!("back up {}", spec.path.display()))?);
        }
        apply_file(&host_path, spec, &plan).with_context(|| format!("write {}", spec.path.display()))?;
    }
    Ok(FileOutcome { plan, diff, backup })
}

/// Carries out a plan on the real path.
pub fn apply_file(host_path: &Path, spec: &FileSpec, plan: &FilePlan) -> io::Result<()> {
    match plan {
        FilePlan::Unchanged => Ok(()),
        FilePlan::FixAttributes => {
            std::os::unix::fs::chown(host_path, spec.uid, spec.gid)?;
            fs::set_permissions(host_path, Permissions::from_mode(spec.mode))
        }
        FilePlan::Create | FilePlan::Replace => {
            write_atomically(host_path, &spec.content, spec.uid, spec.gid, spec.mode)
        }
    }
}

/// Writes `content` to `path` so that a crash leaves either the old or the new file.
pub fn write_atomically(path: &Path, content: &[u8], uid: Option<u32>, gid: Option<u32>, mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent directory"))?;
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    temp.write_all(content)?;
    // Owner before mode: chown clears setuid bits, and the file must never be readable by
    // others, not even for a moment, when it is meant to be private.
    std::os::unix::fs::fchown(temp.as_file(), uid, gid)?;
    temp.as_file().set_permissions(Permissions::from_mode(mode))?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|error| error.error)?;
    File::open(dir)?.sync_all()
}

fn write_backup(path: &Path) -> io::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let backup = path.with_file_name(format!(
        "{}.{}.bak",
        path.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        stamp
    ));
    let metadata = fs::metadata(path)?;
    let content = fs::read(path)?;
    write_atomically(
        &backup,
        &content,
        Some(metadata.uid()),
        Some(metadata.gid()),
        metadata.mode() & 0o7777,
    )?;
    Ok(backup)
}

/// The desired state of one directory. Its content is never touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSpec {
    pub path: PathBuf,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: u32,
}

/// What was done to a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirOutcome {
    pub created: bool,
    /// `Some((before, after))` when owner or mode were (or would be) fixed.
    pub attributes: Option<AttributeDiff>,
}

impl DirOutcome {
    pub fn changed(&self) -> bool {
        self.created || self.attributes.is_some()
    }
}

/// Creates a directory if missing (its parent must exist, as pretix itself demands for the data
/// dir) and fixes its owner and mode.
pub fn ensure_dir(root: &Root, spec: &DirSpec, check: bool) -> anyhow::Result<DirOutcome> {
    let host_path = root.host_path(&spec.path);
    let wanted_text = |current: Option<&fs::Metadata>| {
        format!(
            "{}:{} {:04o}",
            spec.uid
                .or(current.map(MetadataExt::uid))
                .map_or("-".to_owned(), |id| id.to_string()),
            spec.gid
                .or(current.map(MetadataExt::gid))
                .map_or("-".to_owned(), |id| id.to_string()),
            spec.mode
        )
    };
    match fs::metadata(&host_path) {
        Ok(metadata) if !metadata.is_dir() => {
            anyhow::bail!("{} exists but is not a directory: move it away", spec.path.display())
        }
        Ok(metadata) => {
            let before = format!("{}:{} {:04o}", metadata.uid(), metadata.gid(), metadata.mode() & 0o7777);
            let after = wanted_text(Some(&metadata));
            if before == after {
                return Ok(DirOutcome {
                    created: false,
                    attributes: None,
                });
            }
            if !check {
                std::os::unix::fs::chown(&host_path, spec.uid, spec.gid)
                    .with_context(|| format!("chown {}", spec.path.display()))?;
                fs::set_permissions(&host_path, Permissions::from_mode(spec.mode))
                    .with_context(|| format!("chmod {}", spec.path.display()))?;
            }
            Ok(DirOutcome {
                created: false,
                attributes: Some(AttributeDiff { before, after }),
            })
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let parent_missing = host_path.parent().is_some_and(|parent| !parent.exists());
            if parent_missing && !check {
                anyhow::bail!(
                    "cannot create {}: its parent directory does not exist; create the parent first",
                    spec.path.display()
                );
            }
            if !check {
                fs::create_dir(&host_path).with_context(|| format!("create {}", spec.path.display()))?;
                std::os::unix::fs::chown(&host_path, spec.uid, spec.gid)
                    .with_context(|| format!("chown {}", spec.path.display()))?;
                fs::set_permissions(&host_path, Permissions::from_mode(spec.mode))
                    .with_context(|| format!("chmod {}", spec.path.display()))?;
                if let Some(parent) = host_path.parent() {
                    File::open(parent)?.sync_all()?;
                }
            }
            Ok(DirOutcome {
                created: true,
                attributes: Some(AttributeDiff {
                    before: "(absent)".to_owned(),
                    after: wanted_text(None),
                }),
            })
        }
        Err(error) => Err(error).with_context(|| format!("inspect {}", spec.path.display())),
    }
}

/// A host-wide lock held for the length of a run, so two runs do not interleave their edits.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Waits up to `timeout` for the lock file's exclusive lock. Its parent directory is created
    /// if missing.
    pub fn acquire(root: &Root, lock_file: &Path, timeout: Duration) -> anyhow::Result<RunLock> {
        let host_path = root.host_path(lock_file);
        if let Some(parent) = host_path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&host_path)
            .with_context(|| format!("open lock file {}", lock_file.display()))?;
        let deadline = Instant::now() + timeout;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RunLock { _file: file }),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => anyhow::bail!(
                    "another pretix toolkit run holds {} after waiting {}s: wait for it to finish",
                    lock_file.display(),
                    timeout.as_secs()
                ),
                Err(fs::TryLockError::Error(error)) => {
                    return Err(error).with_context(|| format!("lock {}", lock_file.display()));
                }
            }
        }
    }
}
