//! Writing files safely.
//!
//! Every file a tool manages is described by a `FileSpec` (the whole desired content, owner,
//! mode) and goes through `plan_file` (pure: compares with what is there) and `apply_file`
//! (atomic: temp file in the same directory, fsync, owner and mode set before the rename,
//! rename, fsync of the directory). A crash at any point leaves the old file or the new one,
//! never a partial one. When content, owner and mode already match, nothing is written and the
//! mtime stays.

use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
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

    /// Where an absolute path of the managed host lives on this machine. `..` is resolved
    /// lexically and never climbs above the root, so no path escapes `--root` (input validation
    /// refuses `..` anyway: `validate_host_path`).
    pub fn host_path(&self, path: &Path) -> PathBuf {
        match &self.dir {
            None => path.to_path_buf(),
            Some(dir) => {
                let mut relative = PathBuf::new();
                for component in path.components() {
                    match component {
                        Component::Normal(name) => relative.push(name),
                        Component::ParentDir => {
                            relative.pop();
                        }
                        Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                    }
                }
                dir.join(relative)
            }
        }
    }
}

/// The checks every host path from the document passes before anything is done: absolute, no
/// `..`, no control characters (they would corrupt config files and unit files).
pub fn validate_host_path(path: &Path, field: &str) -> Result<(), crate::error::ToolError> {
    let text = path.to_string_lossy();
    let problem = if !path.is_absolute() {
        Some("is not absolute: give an absolute path such as /etc/pretix")
    } else if path.components().any(|component| component == Component::ParentDir) {
        Some("contains `..`: give the path without it")
    } else if text.chars().any(char::is_control) {
        Some("contains a control character: remove it")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(crate::error::ToolError::input(
            field,
            format!("{} {problem}", text.escape_debug()),
        )),
        None => Ok(()),
    }
}

/// Opens an existing file for reading without following a symlink, and only if it is a regular
/// file with a single link: a user who can write to the file's directory (uid 15371 owns
/// /etc/pretix) must not make root read, copy, chown or chmod another file through a symlink or a
/// hard link. A FIFO does not block. `None` when the file does not exist.
pub fn open_regular(path: &Path) -> io::Result<Option<(File, fs::Metadata)>> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) => {
            return Err(io::Error::other(format!(
                "{} is a symbolic link: the toolkit does not read or write through links; \
                 replace the link with the file itself, or point the document at the real path",
                path.display()
            )));
        }
        Err(errno) => return Err(errno.into()),
    };
    let file = File::from(fd);
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file: move it away",
            path.display()
        )));
    }
    if metadata.nlink() > 1 {
        return Err(io::Error::other(format!(
            "{} has {} hard links: the toolkit does not change files shared under another name; \
             replace it with a copy (cp --remove-destination)",
            path.display(),
            metadata.nlink()
        )));
    }
    Ok(Some((file, metadata)))
}

/// Whether a host config file may be reached through a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPolicy {
    /// Every link is refused (the atomic rewrite would replace the link).
    Refuse,
    /// A link is followed only when root owns it and its directory, and no one else may write
    /// to that directory (a configuration manager's link); the file is then read (and edited)
    /// where it really is. Never under `--root`, where the target would be the host's.
    FollowRootOwned,
}

/// A host config file as it is: where it really is, its text, owner and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    /// The path on the managed host (the link's target when a trusted link was followed).
    pub path: PathBuf,
    pub text: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// Why a host config file could not be read. Each tool words the fix for its own field.
#[derive(Debug, thiserror::Error)]
pub enum HostFileError {
    #[error("does not exist")]
    Missing,
    #[error("is a symbolic link (to {target})")]
    Link { target: String },
    #[error(
        "is a symbolic link (owned by uid {link_owner}) in a directory uid {dir_owner} can change (mode {dir_mode:04o}): \
         the toolkit follows a link to a config file only when root owns the link and its directory"
    )]
    UntrustedLink {
        link_owner: u32,
        dir_owner: u32,
        dir_mode: u32,
    },
    #[error("cannot be read: {0}")]
    PermissionDenied(io::Error),
    #[error("cannot be read: {0}")]
    Unreadable(io::Error),
    #[error("is not UTF-8 text")]
    NotUtf8,
}

/// Reads a host config file the one way every tool does: through one descriptor opened without
/// following a link (`open_regular`: a regular file with one link), after `policy` decided about
/// a link at the path. A FIFO never blocks.
pub fn read_host_file(root: &Root, path: &Path, policy: LinkPolicy) -> Result<HostFile, HostFileError> {
    let linked = root.host_path(path);
    let link = fs::symlink_metadata(&linked)
        .ok()
        .filter(|metadata| metadata.file_type().is_symlink());
    let path = match (link, policy) {
        (None, _) => path.to_path_buf(),
        (Some(link), LinkPolicy::FollowRootOwned) if !root.is_redirected() => {
            let directory = linked.parent().unwrap_or(Path::new("/"));
            let directory_metadata = fs::metadata(directory).map_err(HostFileError::Unreadable)?;
            let trusted = link.uid() == 0 && directory_metadata.uid() == 0 && directory_metadata.mode() & 0o022 == 0;
            if !trusted {
                return Err(HostFileError::UntrustedLink {
                    link_owner: link.uid(),
                    dir_owner: directory_metadata.uid(),
                    dir_mode: directory_metadata.mode() & 0o7777,
                });
            }
            fs::canonicalize(&linked).map_err(HostFileError::Unreadable)?
        }
        (Some(_), _) => {
            let target = fs::read_link(&linked)
                .map(|target| target.display().to_string())
                .unwrap_or_else(|_| "its target".to_owned());
            return Err(HostFileError::Link { target });
        }
    };
    let host_path = root.host_path(&path);
    let opened = open_regular(&host_path).map_err(|error| match error.kind() {
        io::ErrorKind::PermissionDenied => HostFileError::PermissionDenied(error),
        _ => HostFileError::Unreadable(error),
    })?;
    let Some((mut file, metadata)) = opened else {
        return Err(HostFileError::Missing);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(HostFileError::Unreadable)?;
    let text = String::from_utf8(bytes).map_err(|_| HostFileError::NotUtf8)?;
    Ok(HostFile {
        path,
        text,
        uid: metadata.uid(),
        gid: metadata.gid(),
        mode: metadata.mode() & 0o7777,
    })
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
    /// Reads the file, or `None` when it does not exist. A symlink, a hard-linked file or
    /// anything but a regular file is an error (`open_regular`).
    pub fn read(path: &Path) -> io::Result<Option<CurrentFile>> {
        let Some((mut file, metadata)) = open_regular(path)? else {
            return Ok(None);
        };
        let mut content = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or_default());
        file.read_to_end(&mut content)?;
        Ok(Some(CurrentFile {
            content,
            uid: metadata.uid(),
            gid: metadata.gid(),
            mode: metadata.mode() & 0o7777,
        }))
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

/// The before/after for results and `--diff`, secrets redacted. The diff is taken of the real
/// content and redacted afterwards, so a line whose only change is a secret (a rotated password)
/// still shows as changed: `-password=********` / `+password=********`.
pub fn file_diff(current: Option<&CurrentFile>, spec: &FileSpec, redactor: &Redactor) -> FileDiff {
    let render = |bytes: &[u8]| -> String {
        if spec.secret {
            if bytes.is_empty() {
                String::new()
            } else {
                format!("{} (secret, {} bytes)\n", Redactor::MASK, bytes.len())
            }
        } else {
            String::from_utf8_lossy(bytes).into_owned()
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
    let mut diff = FileDiff::between(&spec.path.display().to_string(), &before, &after, attributes);
    diff.diff = redactor.redact(&diff.diff);
    diff
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
    // An owner left open keeps the current one, on a rewrite too.
    let mut spec = spec.clone();
    if let Some(current) = &current {
        spec.uid = spec.uid.or(Some(current.uid));
        spec.gid = spec.gid.or(Some(current.gid));
    }
    let spec = &spec;
    let diff = Some(file_diff(current.as_ref(), spec, redactor));
    let mut backup = None;
    if !check {
        if let Some(current) = current.as_ref().filter(|_| spec.backup && plan == FilePlan::Replace) {
            backup =
                Some(write_backup(&host_path, current).with_context(|| format!("back up {}", spec.path.display()))?);
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
            // Through a descriptor opened without following links, so a file swapped in since
            // the plan is never the one changed.
            let (file, _) = open_regular(host_path)?
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the file disappeared"))?;
            std::os::unix::fs::fchown(&file, spec.uid, spec.gid)?;
            file.set_permissions(Permissions::from_mode(spec.mode))
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
    let temp = write_temp(dir, &file_name, content, uid, gid, mode)?;
    temp.persist(path).map_err(|error| error.error)?;
    File::open(dir)?.sync_all()
}

/// A complete, synced temp file in `dir` with its final owner and mode, removed on drop.
fn write_temp(
    dir: &Path,
    file_name: &str,
    content: &[u8],
    uid: Option<u32>,
    gid: Option<u32>,
    mode: u32,
) -> io::Result<tempfile::NamedTempFile> {
    // Created exclusively (O_EXCL: never through a planted link) and 0600 from the first moment.
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
    Ok(temp)
}

/// Removes all but the newest `BACKUPS_KEPT` backups of `name` in `dir`: ours only
/// (`NAME.<stamp>.bak` with a stamp as we write it, the earlier unix seconds included), oldest
/// first by their stamp. Best effort: a backup that cannot be removed stays.
fn prune_backups(dir: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut backups: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let stamp = file_name
                .strip_prefix(name)?
                .strip_prefix('.')?
                .strip_suffix(".bak")?
                .to_owned();
            let ours = !stamp.is_empty()
                && stamp
                    .chars()
                    .all(|character| character.is_ascii_digit() || matches!(character, '-' | 'T' | 'Z'));
            // Only plain files: a link or directory of that name is not ours to remove.
            let plain = entry.file_type().is_ok_and(|kind| kind.is_file());
            (ours && plain).then(|| (sort_key(&stamp), entry.path()))
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(BACKUPS_KEPT);
    for (_, path) in backups.into_iter().take(excess) {
        let _ = fs::remove_file(path);
    }
}

/// Backup stamps in time order: the earlier unix seconds (`1796133789`) before the UTC stamps
/// (`2026-12-01T140309Z`, which sort as text), a same-second number (`-1`, `-2`, ...) in order.
fn sort_key(stamp: &str) -> String {
    let (main, number) = match stamp
        .rsplit_once('-')
        .filter(|(_, number)| !number.contains(['T', 'Z']))
    {
        Some((main, number)) if main.ends_with('Z') || !main.contains('T') => {
            (main, number.parse::<u64>().unwrap_or_default())
        }
        _ => (stamp, 0),
    };
    let era = if main.contains('T') { 1 } else { 0 };
    format!("{era}{main:0>24}{number:010}")
}

/// How many backups of one file are kept: the newest, the rest are removed.
pub const BACKUPS_KEPT: usize = 5;

/// Saves the previous version (as read, through `open_regular`) next to the file as
/// `NAME.<UTC time>.bak` (`pg_hba.conf.2026-12-01T140309Z.bak`), with its owner and mode; never
/// overwrites an earlier backup, and keeps only the newest `BACKUPS_KEPT`.
fn write_backup(path: &Path, current: &CurrentFile) -> io::Result<PathBuf> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent directory"))?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = crate::clock::Stamp::now().compact();
    let temp = write_temp(
        dir,
        &name,
        &current.content,
        Some(current.uid),
        Some(current.gid),
        current.mode,
    )?;
    let mut temp = Some(temp);
    // After the newest of this second: pruning may have freed a lower number, which would then
    // sort as older than the backups it follows.
    let first = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| {
                    let file_name = entry.file_name().to_string_lossy().into_owned();
                    let rest = file_name
                        .strip_prefix(&format!("{name}.{stamp}"))?
                        .strip_suffix(".bak")?;
                    match rest {
                        "" => Some(1),
                        _ => rest.strip_prefix('-')?.parse::<u32>().ok().map(|number| number + 1),
                    }
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    for attempt in first..first + 100 {
        let backup = match attempt {
            0 => dir.join(format!("{name}.{stamp}.bak")),
            _ => dir.join(format!("{name}.{stamp}-{attempt}.bak")),
        };
        let Some(file) = temp.take() else { break };
        match file.persist_noclobber(&backup) {
            Ok(_) => {
                File::open(dir)?.sync_all()?;
                prune_backups(dir, &name);
                return Ok(backup);
            }
            Err(error) if error.error.kind() == io::ErrorKind::AlreadyExists => temp = Some(error.file),
            Err(error) => return Err(error.error),
        }
    }
    Err(io::Error::other(format!(
        "too many backups of {name} within one second"
    )))
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
/// dir) and fixes its owner and mode. A symlink at the path is followed only when root (or the
/// user running the tool) owns the link itself: a data dir linked to a bigger disk is fine, a link
/// planted by another user is refused.
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
    match fs::symlink_metadata(&host_path) {
        Ok(link) if link.file_type().is_symlink() && !owned_by_us_or_root(&link) => anyhow::bail!(
            "{} is a symbolic link owned by uid {}: the toolkit follows only links root made; \
             replace it with the directory or a root-owned link",
            spec.path.display(),
            link.uid()
        ),
        Ok(_) => {
            let metadata = fs::metadata(&host_path).with_context(|| format!("inspect {}", spec.path.display()))?;
            if !metadata.is_dir() {
                anyhow::bail!("{} exists but is not a directory: move it away", spec.path.display());
            }
            let before = format!("{}:{} {:04o}", metadata.uid(), metadata.gid(), metadata.mode() & 0o7777);
            let after = wanted_text(Some(&metadata));
            if before == after {
                return Ok(DirOutcome {
                    created: false,
                    attributes: None,
                });
            }
            if !check {
                set_dir_attributes(&host_path, spec).with_context(|| format!("fix {}", spec.path.display()))?;
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
                // Created with its final mode (as far as the umask allows), then owner and mode
                // set exactly: it is never more open than asked for.
                fs::DirBuilder::new()
                    .mode(spec.mode & 0o777)
                    .create(&host_path)
                    .with_context(|| format!("create {}", spec.path.display()))?;
                set_dir_attributes(&host_path, spec).with_context(|| format!("fix {}", spec.path.display()))?;
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

fn owned_by_us_or_root(metadata: &fs::Metadata) -> bool {
    metadata.uid() == 0 || metadata.uid() == rustix::process::geteuid().as_raw()
}

/// Owner, then mode, through one descriptor of the directory.
fn set_dir_attributes(host_path: &Path, spec: &DirSpec) -> io::Result<()> {
    let dir = File::open(host_path)?;
    if !dir.metadata()?.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    std::os::unix::fs::fchown(&dir, spec.uid, spec.gid)?;
    dir.set_permissions(Permissions::from_mode(spec.mode))
}

/// Records who holds the lock. Best effort: the lock itself is the flock, not this text.
fn write_lock_holder(file: &File, holder: &str) {
    use std::os::unix::fs::FileExt;
    let line = format!(
        "pid {} ({holder}) since {}\n",
        std::process::id(),
        crate::clock::Stamp::now()
    );
    let _ = file.set_len(0).and_then(|()| file.write_all_at(line.as_bytes(), 0));
}

/// Who holds the lock, as its holder wrote it.
fn lock_holder(file: &File) -> String {
    use std::os::unix::fs::FileExt;
    let mut buffer = [0u8; 200];
    let read = file.read_at(&mut buffer, 0).unwrap_or(0);
    let text = String::from_utf8_lossy(&buffer[..read]);
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() || line.chars().any(char::is_control) {
        "another pretix toolkit run (it wrote no pid)".to_owned()
    } else {
        line.to_owned()
    }
}

/// A host-wide lock held for the length of a run, so two runs do not interleave their edits.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Waits up to `timeout` for the lock file's exclusive lock. Its parent directory is created
    /// (0700) if missing. The lock file must be a regular file owned by the running user (or
    /// root), reached without a symlink: another user must not be able to hold the host's lock
    /// or make root create files elsewhere, so keep it in a root-owned directory.
    pub fn acquire(root: &Root, lock_file: &Path, timeout: Duration) -> anyhow::Result<RunLock> {
        RunLock::acquire_for(root, lock_file, timeout, "a pretix toolkit run", &mut |_| {})
    }

    /// `acquire`, writing who holds the lock (`holder`, the pid, the time) into the lock file,
    /// and telling `report` who holds it while waiting, so a run never waits silently.
    pub fn acquire_for(
        root: &Root,
        lock_file: &Path,
        timeout: Duration,
        holder: &str,
        report: &mut dyn FnMut(&str),
    ) -> anyhow::Result<RunLock> {
        use rustix::fs::{Mode, OFlags};
        let host_path = root.host_path(lock_file);
        if let Some(parent) = host_path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        let fd = rustix::fs::open(
            &host_path,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io::Error::from)
        .with_context(|| format!("open lock file {} (a symlink there is refused)", lock_file.display()))?;
        let file = File::from(fd);
        let metadata = file.metadata()?;
        if !metadata.is_file() || !owned_by_us_or_root(&metadata) {
            anyhow::bail!(
                "lock file {} is not a regular file owned by root (owner uid {}): another user made it; \
                 remove it, and keep paths.lock_file in a root-owned directory",
                lock_file.display(),
                metadata.uid()
            );
        }
        let started = Instant::now();
        let mut next_report = started;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    write_lock_holder(&file, holder);
                    return Ok(RunLock { _file: file });
                }
                Err(fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                    if Instant::now() >= next_report {
                        report(&format!(
                            "waiting for the host lock {}: held by {}; giving up after {}s",
                            lock_file.display(),
                            lock_holder(&file),
                            timeout.as_secs().saturating_sub(started.elapsed().as_secs())
                        ));
                        next_report = Instant::now() + Duration::from_secs(15);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => anyhow::bail!(
                    "the host lock {} is still held by {} after waiting {}s: wait for that run to finish, \
                     or end it if it hangs",
                    lock_file.display(),
                    lock_holder(&file),
                    timeout.as_secs()
                ),
                Err(fs::TryLockError::Error(error)) => {
                    return Err(error).with_context(|| format!("lock {}", lock_file.display()));
                }
            }
        }
    }
}

#[cfg(test)]
mod backup_order_tests {
    use super::sort_key;

    #[test]
    fn backup_stamps_sort_in_time_order() {
        let mut stamps = vec![
            "2026-12-01T140309Z-10",
            "2026-12-01T140310Z",
            "2026-12-01T140309Z-9",
            "1796133789",
            "2026-12-01T140309Z",
            "1796133789-1",
        ];
        stamps.sort_by_key(|stamp| sort_key(stamp));
        assert_eq!(
            stamps,
            [
                "1796133789",
                "1796133789-1",
                "2026-12-01T140309Z",
                "2026-12-01T140309Z-9",
                "2026-12-01T140309Z-10",
                "2026-12-01T140310Z"
            ]
        );
    }
}
