//! Driving the real binary, staging a Debian-like root, and real redis-servers.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

pub use pretix_testkit::{Redis, RedisOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_pretix-redis");
/// Debian 12's redis.conf, as the redis-server package ships it.
pub const DEBIAN_REDIS_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/debian12/redis.conf");
/// The container's pretixuser.
pub const PRETIX_UID: u32 = 15371;

pub use pretix_testkit::ToolRun as Run;

/// Runs the binary with `document` on stdin.
pub fn run(args: &[&str], document: &Value) -> Run {
    run_with(Command::new(BIN).args(args), document)
}

/// Runs a prepared command (extra environment, another user) with `document` on stdin.
pub fn run_with(command: &mut Command, document: &Value) -> Run {
    pretix_testkit::run_tool(command, document)
}

/// The uid and gid of Debian's redis user on this machine.
pub fn redis_ids() -> (u32, u32) {
    pretix_testkit::system_user("redis")
}

/// A staging root laid out like a Debian 12 host with redis-server installed: Debian's
/// redis.conf (redis:redis 0640), /etc/redis (2770), /run/redis (2755 redis:redis, as systemd's
/// `RuntimeDirectoryMode=2755` makes it), /etc/passwd and /etc/group, and /etc/systemd/system.
/// Everything is traversable by other users, so a process as uid 15371 can reach the socket.
pub struct Stage {
    pub dir: tempfile::TempDir,
}

impl Stage {
    pub fn new() -> Stage {
        let dir = tempfile::Builder::new().prefix("redis-").tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod root");
        let (redis_uid, redis_gid) = redis_ids();
        for sub in [
            "etc/redis",
            "etc/systemd/system",
            "etc/pretix-toolkit",
            "var/run/redis",
            "var/lib/redis",
            "run/lock",
        ] {
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
        }
        for (sub, mode) in [
            ("etc/redis", 0o2770),
            ("var/run/redis", 0o2755),
            ("var/lib/redis", 0o750),
        ] {
            std::os::unix::fs::chown(root.join(sub), Some(redis_uid), Some(redis_gid)).expect("chown");
            std::fs::set_permissions(root.join(sub), std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        std::fs::set_permissions(root.join("run/lock"), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let conf = root.join("etc/redis/redis.conf");
        std::fs::copy(DEBIAN_REDIS_CONF, &conf).expect("copy Debian's redis.conf");
        std::os::unix::fs::chown(&conf, Some(redis_uid), Some(redis_gid)).expect("chown");
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        for file in ["etc/passwd", "etc/group"] {
            std::fs::copy(Path::new("/").join(file), root.join(file)).expect("copy passwd/group");
        }
        Stage { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn root_arg(&self) -> String {
        self.root().display().to_string()
    }

    /// A host path inside the stage.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.root().join(host_path.trim_start_matches('/'))
    }

    pub fn conf(&self) -> PathBuf {
        self.path("/etc/redis/redis.conf")
    }

    pub fn dropin(&self) -> PathBuf {
        self.path("/etc/systemd/system/redis-server.service.d/pretix.conf")
    }

    pub fn socket(&self) -> PathBuf {
        self.path("/var/run/redis/redis.sock")
    }

    /// Starts redis-server the way Debian's unit does (as the redis user, with the staged
    /// redis.conf), with only what a test needs overridden: foreground, no log or pid file in
    /// /var, the socket and working directory inside the stage, and no TCP port (tests run in
    /// parallel; Debian's 6379 would clash).
    pub fn start_redis(&self) -> Redis {
        Redis::start_with_config_file(
            &self.conf(),
            RedisOptions {
                socket: self.socket(),
                dir: self.path("/var/lib/redis"),
                as_redis_user: true,
                port: Some(0),
            },
        )
    }
}

/// The site document for a stage: the given `redis` section, and the secrets dir.
pub fn site(redis: Value) -> Value {
    json!({
        "redis": redis,
        "paths": {
            "secrets_dir": "/etc/pretix-toolkit/secrets",
        }
    })
}

pub fn mtime(path: &Path) -> (i64, i64) {
    let metadata = std::fs::metadata(path).expect("metadata");
    (metadata.mtime(), metadata.mtime_nsec())
}

pub fn owner_mode(path: &Path) -> (u32, u32, u32) {
    let metadata = std::fs::symlink_metadata(path).expect("metadata");
    (metadata.uid(), metadata.gid(), metadata.mode() & 0o7777)
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Lines of `after` that are not lines of `before`.
pub fn added_lines(before: &str, after: &str) -> Vec<String> {
    let before: Vec<&str> = before.lines().collect();
    after
        .lines()
        .filter(|line| !before.contains(line))
        .map(str::to_owned)
        .collect()
}

/// The unified diff of one recorded file change, as `--diff` shows it.
pub fn unified_diff(result: &Value, path: &str) -> String {
    let diff = result["diffs"]
        .as_array()
        .and_then(|diffs| diffs.iter().find(|diff| diff["path"] == path))
        .unwrap_or_else(|| panic!("no diff for {path} in {result}"));
    let diff: pretix_site::report::FileDiff = serde_json::from_value(diff.clone()).expect("a FileDiff");
    diff.unified()
}
