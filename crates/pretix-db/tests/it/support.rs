//! Running the real `pretix-db` binary with a document on stdin, and documents for a cluster.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::{Value, json};

use pretix_testkit::Postgres;

pub use pretix_testkit::ToolRun as Run;

/// Runs `pretix-db ARGS` with `document` on stdin and `env` set.
pub fn run_tool(args: &[&str], document: &Value, env: &[(&str, &Path)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pretix-db"));
    command.args(args);
    command.env_remove(pretix_site::service::RECORD_ENV);
    for (key, value) in env {
        command.env(key, value);
    }
    pretix_testkit::run_tool(&mut command, document)
}

/// A document for the cluster: the guide's defaults, except that the docker host is loopback
/// (127.0.0.1 in 127.0.0.0/8) and the secrets and lock live in `home`.
pub fn site(cluster: &Postgres, home: &Path) -> Value {
    json!({
        "database": {
            "docker_host": "127.0.0.1",
            "docker_subnet": "127.0.0.0/8",
            "port": cluster.port(),
            "admin": {"socket_dir": cluster.socket_dir(), "port": cluster.port()}
        },
        "paths": {
            "secrets_dir": home.join("etc/pretix-toolkit/secrets"),
            "lock_file": home.join("lock")
        }
    })
}

/// A root-only file holding `secret`.
pub fn secret_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).expect("write secret");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod secret");
    path
}

/// Content and mtime of a file, to prove it was not touched.
pub fn fingerprint(path: &Path) -> (Vec<u8>, SystemTime, u32, u32) {
    let metadata = std::fs::metadata(path).expect("stat");
    (
        std::fs::read(path).expect("read"),
        metadata.modified().expect("mtime"),
        metadata.uid(),
        metadata.mode(),
    )
}

/// Logs in as `user` over TCP with `password`, as pretix will; returns `current_user`.
pub fn login(port: u16, host: &str, user: &str, database: &str, password: &str) -> Result<String, postgres::Error> {
    let mut client = postgres::Config::new()
        .host(host)
        .port(port)
        .user(user)
        .dbname(database)
        .password(password)
        .connect(postgres::NoTls)?;
    let row = client.query_one("SELECT current_user::text", &[])?;
    Ok(row.get(0))
}

/// Reads the role's password the way pretix would: from the secret file the document names.
pub fn password_from(document: &Value) -> String {
    let path = document["config"]["database"]["password"]["secret_file"]
        .as_str()
        .expect("config.database.password");
    std::fs::read_to_string(path)
        .expect("read the password file")
        .trim()
        .to_owned()
}

/// A config file of a real Debian 12 install.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/../../fixtures/debian12/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// Every line of `before` is in `after`, byte for byte and in order, and what else `after`
/// holds is exactly the `added` lines.
pub fn assert_only_added(before: &str, after: &str, added: &[&str]) {
    let mut originals = before.split_inclusive('\n').peekable();
    let mut extra: Vec<&str> = Vec::new();
    for line in after.split_inclusive('\n') {
        if originals.peek() == Some(&line) {
            originals.next();
        } else {
            extra.push(line.trim_end_matches('\n'));
        }
    }
    assert_eq!(originals.next(), None, "a line of the original is missing or changed");
    let mut expected = added.to_vec();
    extra.sort_unstable();
    expected.sort_unstable();
    assert_eq!(extra, expected, "other lines than ours were added");
}
