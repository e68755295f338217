//! Driving the real binary and staging a Debian-like root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub use pretix_testkit::ToolRun as Run;

pub const BIN: &str = env!("CARGO_BIN_EXE_pretix-cron");

/// Runs the binary with `document` on stdin.
pub fn run(args: &[&str], document: &Value) -> Run {
    pretix_testkit::run_tool(Command::new(BIN).args(args), document)
}

/// Runs the binary with the systemctl seam recording to `log`.
pub fn run_recorded(args: &[&str], log: &Path, document: &Value) -> Run {
    pretix_testkit::run_tool(
        Command::new(BIN).args(args).env(pretix_site::service::RECORD_ENV, log),
        document,
    )
}

/// The recorded systemctl calls, one argv each.
pub fn recorded(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).expect("a JSON line");
            value["argv"]
                .as_array()
                .map(|words| words.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        })
        .collect()
}

/// A staging root laid out like a Debian 12 host with cron installed: /etc/cron.d,
/// /etc/systemd/system, and this machine's /etc/passwd and /etc/group.
pub struct Stage {
    pub dir: tempfile::TempDir,
}

impl Stage {
    pub fn new() -> Stage {
        let dir = tempfile::Builder::new().prefix("cron-").tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for sub in ["etc/cron.d", "etc/systemd/system", "usr/bin"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        for file in ["etc/passwd", "etc/group"] {
            std::fs::copy(Path::new("/").join(file), dir.path().join(file)).expect("copy passwd/group");
        }
        Stage { dir }
    }

    /// A host path inside the stage.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.dir.path().join(host_path.trim_start_matches('/'))
    }

    /// Runs a verb with `--root` on the stage.
    pub fn run(&self, args: &[&str], document: &Value) -> Run {
        let mut all = vec!["--root", self.dir.path().to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        run(&all, document)
    }

    /// Every file under the stage's /etc with its content, for "nothing changed" checks.
    pub fn etc_snapshot(&self) -> Vec<(PathBuf, Vec<u8>, (i64, i64))> {
        let mut files = Vec::new();
        let mut dirs = vec![self.path("/etc")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let content = std::fs::read(&path).unwrap_or_default();
                    files.push((path.clone(), content, mtime(&path)));
                }
            }
        }
        files.sort();
        files
    }
}

pub fn mtime(path: &Path) -> (i64, i64) {
    let metadata = std::fs::symlink_metadata(path).expect("metadata");
    (metadata.mtime(), metadata.mtime_nsec())
}

pub fn owner_mode(path: &Path) -> (u32, u32, u32) {
    let metadata = std::fs::symlink_metadata(path).expect("metadata");
    (metadata.uid(), metadata.gid(), metadata.mode() & 0o7777)
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}
