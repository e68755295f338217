use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_pretix-cfg");

pub use pretix_testkit::ToolRun as Run;

pub fn run(args: &[&str], document: &Value) -> Run {
    pretix_testkit::run_tool(Command::new(BIN).args(args), document)
}

/// A staging root with the directories a Debian host has.
pub fn stage() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    for dir in ["etc", "var", "run/lock", "etc/pretix-toolkit/secrets"] {
        std::fs::create_dir_all(root.path().join(dir)).expect("mkdir");
    }
    std::fs::set_permissions(
        root.path().join("etc/pretix-toolkit/secrets"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    root
}

/// Writes a root-only secret file under the staging root; returns its host-view path.
pub fn secret(root: &Path, name: &str, value: &str) -> String {
    let path = format!("/etc/pretix-toolkit/secrets/{name}");
    let host = root.join(path.trim_start_matches('/'));
    std::fs::write(&host, format!("{value}\n")).expect("write secret");
    std::fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    path
}

/// The guide's site after pretix-db and pretix-redis added their settings.
pub fn guide_site(password_file: &str) -> Value {
    serde_json::json!({
        "config": {
            "pretix": {"url": "https://pretix.mydomain.com", "instance_name": "My pretix installation", "currency": "EUR"},
            "mail": {"from": "tickets@yourdomain.com"},
            "database": {"backend": "postgresql", "name": "pretix", "user": "pretix", "host": "172.17.0.1", "port": "5432",
                         "password": {"secret_file": password_file}},
            "redis": {"location": "unix:///var/run/redis/redis.sock?db=0", "sessions": "true"},
            "celery": {"backend": "redis+socket:///var/run/redis/redis.sock?virtual_host=1",
                       "broker": "redis+socket:///var/run/redis/redis.sock?virtual_host=2"}
        }
    })
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

/// The Python venv with pretix and ansible-core that scripts/install-test-deps makes.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("PRETIX_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    assert!(
        venv.join("bin/python").exists(),
        "no Python venv at {}: run scripts/install-test-deps (or cargo xtask test), or set PRETIX_TEST_VENV",
        venv.display()
    );
    venv
}

pub fn mtime(path: &Path) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).expect("metadata");
    (metadata.mtime(), metadata.mtime_nsec())
}

pub fn owner_mode(path: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).expect("metadata");
    (metadata.uid(), metadata.gid(), metadata.mode() & 0o7777)
}
