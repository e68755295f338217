//! Local plugins: a wheel file or a source directory on this host, read into the in-memory build
//! context. No symbolic link is followed anywhere: not on the path from `/` to the plugin, not
//! inside a source directory (a user who can write there must not make root copy another file
//! into the image), and only regular files and directories are taken.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use pretix_site::ToolError;
use pretix_site::fs::Root;
use rustix::fs::{Mode, OFlags};

use crate::requirement;

/// The most a source directory may hold, so a wrong path (`/`) fails fast instead of filling
/// memory.
const MAX_BYTES: u64 = 256 * 1024 * 1024;
const MAX_FILES: usize = 20_000;

/// One file of the build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// The path inside the context, `/`-separated.
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// What a local plugin is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalKind {
    /// A wheel; pip needs its file name as it is.
    Wheel {
        file_name: String,
    },
    Directory,
}

/// A local plugin read from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalArtifact {
    pub index: usize,
    pub kind: LocalKind,
    /// The distribution name, normalized.
    pub name: String,
    pub files: Vec<ContextFile>,
}

impl LocalArtifact {
    /// Where it sits in the context (and, under `/tmp/`, in the build).
    pub fn context_dir(&self) -> String {
        format!("pretix-toolkit/plugins/{}", self.index)
    }

    /// The argument `pip3 install` gets for it inside the build.
    pub fn install_argument(&self) -> String {
        match &self.kind {
            LocalKind::Wheel { file_name } => format!("/tmp/pretix-toolkit-plugins/{}/{file_name}", self.index),
            LocalKind::Directory => format!("/tmp/pretix-toolkit-plugins/{}/", self.index),
        }
    }
}

/// Reads the wheel or directory at `path` (a document path, mapped through `root`).
pub fn read(root: &Root, index: usize, path: &Path, name: Option<&str>) -> Result<LocalArtifact, ToolError> {
    let field = format!("plugins.packages[{index}].path");
    let shown = path.display().to_string();
    let fd = open_without_links(root, path).map_err(|message| ToolError::input(&field, message))?;
    let file = File::from(fd);
    let metadata = file
        .metadata()
        .map_err(|error| ToolError::input(&field, format!("cannot read {shown}: {error}")))?;
    if metadata.is_file() {
        let file_name = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| ToolError::input(&field, format!("{shown} has no file name")))?
            .to_owned();
        let wheel_name = wheel_distribution(&file_name).map_err(|message| ToolError::input(&field, message))?;
        if let Some(given) = name
            && given != wheel_name
        {
            return Err(ToolError::input(
                format!("plugins.packages[{index}].name"),
                format!("is {given} but the wheel {file_name} is {wheel_name}: remove the name or fix it"),
            ));
        }
        if metadata.nlink() > 1 {
            return Err(ToolError::input(
                &field,
                format!("{shown} has {} hard links: give a copy of the wheel", metadata.nlink()),
            ));
        }
        let content = read_limited(file, &shown, &mut 0).map_err(|message| ToolError::input(&field, message))?;
        return Ok(LocalArtifact {
            index,
            kind: LocalKind::Wheel {
                file_name: file_name.clone(),
            },
            name: wheel_name,
            files: vec![ContextFile {
                path: format!("pretix-toolkit/plugins/{index}/{file_name}"),
                content,
                mode: 0o644,
            }],
        });
    }
    if !metadata.is_dir() {
        return Err(ToolError::input(
            &field,
            format!("{shown} is neither a wheel file nor a source directory"),
        ));
    }
    let mut files = Vec::new();
    let mut total = 0;
    walk(file.into(), &shown, "", &mut files, &mut total).map_err(|message| ToolError::input(&field, message))?;
    files.sort_by(|left, right| left.path.cmp(&right.path));
    let name = match name {
        Some(name) => name.to_owned(),
        None => source_distribution(&files).ok_or_else(|| {
            ToolError::input(
                format!("plugins.packages[{index}].name"),
                format!(
                    "{shown} has no pyproject.toml [project] name and no setup.cfg [metadata] name: give the \
                     plugin's distribution name as plugins.packages[{index}].name"
                ),
            )
        })?,
    };
    for file in &mut files {
        file.path = format!("pretix-toolkit/plugins/{index}/{}", file.path);
    }
    Ok(LocalArtifact {
        index,
        kind: LocalKind::Directory,
        name,
        files,
    })
}

/// Reads one regular file (the CA bundle) without following a link on its path.
pub fn read_file(root: &Root, path: &Path, field: &str) -> Result<Vec<u8>, ToolError> {
    let shown = path.display().to_string();
    let fd = open_without_links(root, path).map_err(|message| ToolError::input(field, message))?;
    let file = File::from(fd);
    let metadata = file
        .metadata()
        .map_err(|error| ToolError::input(field, format!("cannot read {shown}: {error}")))?;
    if !metadata.is_file() {
        return Err(ToolError::input(field, format!("{shown} is not a regular file")));
    }
    read_limited(file, &shown, &mut 0).map_err(|message| ToolError::input(field, message))
}

/// Opens `path` component by component from the root, refusing any symbolic link on the way.
fn open_without_links(root: &Root, path: &Path) -> Result<OwnedFd, String> {
    let shown = path.display();
    let start = root.host_path(Path::new("/"));
    let mut current = rustix::fs::open(
        &start,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|error| format!("cannot open {}: {error}", start.display()))?;
    let components: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    for (position, name) in components.iter().enumerate() {
        let last = position + 1 == components.len();
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let flags = if last { flags } else { flags | OFlags::DIRECTORY };
        current = match rustix::fs::openat(&current, *name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Err(format!("{shown} does not exist")),
            Err(rustix::io::Errno::LOOP) | Err(rustix::io::Errno::NOTDIR) => {
                return Err(format!(
                    "{shown}: {} is a symbolic link or not a directory: pretix-plugin follows no links; give the \
                     real path",
                    Path::new(name).display()
                ));
            }
            Err(error) => return Err(format!("cannot open {shown}: {error}")),
        };
    }
    Ok(current)
}

fn read_limited(file: File, shown: &str, total: &mut u64) -> Result<Vec<u8>, String> {
    let mut content = Vec::new();
    file.take(MAX_BYTES + 1 - (*total).min(MAX_BYTES))
        .read_to_end(&mut content)
        .map_err(|error| format!("cannot read {shown}: {error}"))?;
    *total += content.len() as u64;
    if *total > MAX_BYTES {
        return Err(format!(
            "{shown} is over {} MiB: give the plugin's own directory or a wheel",
            MAX_BYTES / 1024 / 1024
        ));
    }
    Ok(content)
}

fn walk(dir: OwnedFd, shown: &str, prefix: &str, files: &mut Vec<ContextFile>, total: &mut u64) -> Result<(), String> {
    let entries = rustix::fs::Dir::read_from(&dir).map_err(|error| format!("cannot list {shown}/{prefix}: {error}"))?;
    for entry in entries {
        let entry = entry.map_err(|error| format!("cannot list {shown}/{prefix}: {error}"))?;
        let raw_name = entry.file_name().to_bytes();
        if raw_name == b"." || raw_name == b".." || raw_name == b"__pycache__" {
            continue;
        }
        let name = std::str::from_utf8(raw_name)
            .ok()
            .filter(|name| !name.chars().any(char::is_control) && !name.contains('\\'))
            .ok_or_else(|| {
                format!(
                    "{shown}/{prefix}{} has a name with control characters or that is not UTF-8: rename it",
                    String::from_utf8_lossy(raw_name).escape_debug()
                )
            })?;
        let relative = format!("{prefix}{name}");
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = match rustix::fs::openat(&dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP) => {
                return Err(format!(
                    "{shown}/{relative} is a symbolic link: pretix-plugin follows no links; replace it with the file"
                ));
            }
            Err(error) => return Err(format!("cannot open {shown}/{relative}: {error}")),
        };
        let file = File::from(fd);
        let metadata = file
            .metadata()
            .map_err(|error| format!("cannot read {shown}/{relative}: {error}"))?;
        if metadata.is_dir() {
            walk(file.into(), shown, &format!("{relative}/"), files, total)?;
        } else if metadata.is_file() {
            if metadata.nlink() > 1 {
                return Err(format!(
                    "{shown}/{relative} has {} hard links: pretix-plugin copies no file shared under another name",
                    metadata.nlink()
                ));
            }
            if files.len() >= MAX_FILES {
                return Err(format!(
                    "{shown} holds over {MAX_FILES} files: give the plugin's own directory"
                ));
            }
            if relative.ends_with(".pyc") {
                continue;
            }
            let mode = if metadata.mode() & 0o111 != 0 { 0o755 } else { 0o644 };
            let content = read_limited(file, &format!("{shown}/{relative}"), total)?;
            files.push(ContextFile {
                path: relative,
                content,
                mode,
            });
        } else {
            return Err(format!(
                "{shown}/{relative} is not a regular file or directory: move it out of the plugin's directory"
            ));
        }
    }
    Ok(())
}

/// The distribution name of a wheel file name (`{name}-{version}(-{build})?-{py}-{abi}-{platform}.whl`).
pub fn wheel_distribution(file_name: &str) -> Result<String, String> {
    let refuse = || {
        format!(
            "{file_name:?} is not a wheel file name (name-version-python-abi-platform.whl): give a .whl as pip built \
             it, or the plugin's source directory"
        )
    };
    let stem = file_name.strip_suffix(".whl").ok_or_else(refuse)?;
    let parts: Vec<&str> = stem.split('-').collect();
    let safe = |part: &&str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'!' | b'+'))
    };
    if !(parts.len() == 5 || parts.len() == 6) || !parts.iter().all(safe) {
        return Err(refuse());
    }
    requirement::validate_name(parts[0]).map_err(|_| refuse())?;
    Ok(requirement::normalize_name(parts[0]))
}

/// The name in pyproject.toml's `[project]` table or setup.cfg's `[metadata]` section.
fn source_distribution(files: &[ContextFile]) -> Option<String> {
    let find = |file_name: &str, section: &str| {
        let file = files.iter().find(|file| file.path == file_name)?;
        let text = std::str::from_utf8(&file.content).ok()?;
        let mut in_section = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_section = line == section;
                continue;
            }
            if !in_section {
                continue;
            }
            if let Some((key, value)) = line.split_once('=')
                && key.trim() == "name"
            {
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                return requirement::validate_name(value)
                    .ok()
                    .map(|()| requirement::normalize_name(value));
            }
        }
        None
    };
    find("pyproject.toml", "[project]").or_else(|| find("setup.cfg", "[metadata]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_names() {
        assert_eq!(
            wheel_distribution("pretix_pages-1.6.4-py3-none-any.whl"),
            Ok("pretix-pages".to_owned())
        );
        assert_eq!(
            wheel_distribution("Pretix.Foo-1.0-1-py3-none-any.whl"),
            Ok("pretix-foo".to_owned())
        );
        for bad in [
            "pretix_pages.whl",
            "pretix_pages-1.6.4.tar.gz",
            "x-1-py3-none-any.whl.sh",
            "a'b-1-py3-none-any.whl",
            "a-1-py3-none-any$(id).whl",
        ] {
            assert!(wheel_distribution(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn source_names_from_pyproject_or_setup_cfg() {
        let file = |path: &str, text: &str| ContextFile {
            path: path.to_owned(),
            content: text.as_bytes().to_vec(),
            mode: 0o644,
        };
        let pyproject = file(
            "pyproject.toml",
            "[build-system]\nname = \"no\"\n[project]\nname = \"Pretix_Foo\"\n",
        );
        assert_eq!(source_distribution(&[pyproject]), Some("pretix-foo".to_owned()));
        let setup_cfg = file("setup.cfg", "[metadata]\nname = pretix-bar\n");
        assert_eq!(source_distribution(&[setup_cfg]), Some("pretix-bar".to_owned()));
        assert_eq!(source_distribution(&[file("setup.py", "")]), None);
    }
}
