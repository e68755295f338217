//! Test support only: real throwaway servers that stop when dropped, even when a test panics.
//!
//! - [`Postgres`]: a temp cluster (initdb/pg_ctl) run as the `postgres` system user, peer
//!   authentication on its own unix socket, scram-sha-256 on a free loopback port;
//! - [`Redis`]: redis-server with a temp config or a config file a test prepared;
//! - [`Nginx`]: nginx with a temp prefix on a free loopback port;
//! - [`Registry`]: Debian's docker-registry on a free loopback port;
//! - [`image`]: the stand-in `pretix/standalone` image, built from busybox-static through the
//!   Docker API, and pushed to a [`Registry`] (fast; proves the plumbing);
//! - [`images`]: the real images, built once per machine and reused: [`images::real_image`]
//!   (the real `pretix/standalone`), [`images::test_host_image`] and [`images::debian_base`];
//! - [`TestHost`]: a Debian 12 server with systemd as PID 1, in a container.
//!
//! [`run_tool`] drives a tool binary as a pipeline does.
//!
//! Nothing here touches the machine's own services. A missing server binary panics with a
//! message naming `scripts/install-test-deps`: a test never skips itself.

// test support: it runs servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

mod http;
pub mod image;
pub mod images;
mod nginx;
mod postgres;
mod redis;
mod registry;
mod test_host;
mod tool;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use http::{HttpResponse, form_encode, http_request};
pub use nginx::Nginx;
pub use postgres::{Postgres, PostgresOptions, SUPERUSER_PASSWORD};
pub use redis::{Redis, RedisOptions};
pub use registry::Registry;
pub use test_host::{ExecOutput, TestHost};
pub use tool::{ToolRun, run_tool};

/// The script that installs every server the tests use.
pub const INSTALL_SCRIPT: &str = "scripts/install-test-deps";

/// The path of a toolkit binary (`pretix-db`, …) of this workspace, built first if needed
/// (`cargo build --bins -p <name>`, a no-op when `cargo test --workspace` already built it).
pub fn toolkit_binary(name: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--quiet", "--bins", "-p", name])
        .current_dir(&workspace)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building {name} failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let path = target.join("debug").join(name);
    assert!(path.is_file(), "{} is not built", path.display());
    path
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind a free loopback port")
}

/// Finds a program on PATH or in `extra_dirs` (glob-free: each dir is checked as given), or
/// panics naming the install script.
pub fn find_program(name: &str, extra_dirs: &[PathBuf]) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .iter()
        .chain(extra_dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run {INSTALL_SCRIPT} (as root) to install the test servers")
        })
}

/// Waits until `ready` is true, or panics after `timeout` with `what` and `detail()`.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool, detail: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}: {}",
            detail()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A plain HTTP/1.0 GET on loopback; returns the status code and the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    // Lossy: a binary body (an image, a gzip) must not turn into an error.
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let response = String::from_utf8_lossy(&raw).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Makes a temp dir whose path other users (postgres, redis) can traverse.
pub(crate) fn shared_tempdir(prefix: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create a temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod the temp dir");
    dir
}

/// `/usr/lib/postgresql/<version>/bin` directories, newest first: Debian keeps initdb and
/// pg_ctl there, off PATH.
pub(crate) fn postgres_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir(Path::new("/usr/lib/postgresql"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
                    Some((version, entry.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    dirs.into_iter().map(|(_, dir)| dir).collect()
}

/// uid and gid of a system user, from /etc/passwd.
pub fn system_user(name: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 3 && fields[0] == name).then(|| (fields[2].parse().ok(), fields[3].parse().ok()))
        })
        .and_then(|(uid, gid)| Some((uid?, gid?)))
        .unwrap_or_else(|| panic!("the system user {name} does not exist: run {INSTALL_SCRIPT} (as root)"))
}
