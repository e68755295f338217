//! The first wave end to end: `pretix-db apply | pretix-redis apply | pretix-cfg apply` against a
//! real PostgreSQL cluster and a real redis-server, then real pretix from PyPI reads the
//! generated pretix.cfg, logs in to PostgreSQL as the provisioned role with the generated
//! password, and uses Redis through the socket as its cache.

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pretix_testkit::{Postgres, Redis, RedisOptions, run_tool, system_user};
use serde_json::{Value, json};

const PRETIX_USES_ITS_CONFIG: &str = r#"
import json, django
django.setup()
from django.conf import settings
from django.db import connection
from django.core.cache import cache
with connection.cursor() as cursor:
    cursor.execute("SELECT current_user, current_database()")
    user, database = cursor.fetchone()
cache.set("pretix-toolkit-pipeline", "works", 30)
print(json.dumps({"user": user, "database": database, "cache": cache.get("pretix-toolkit-pipeline"),
                  "broker": settings.CELERY_BROKER_URL}))
"#;

/// Builds the tool binaries (a no-op when `cargo test --workspace` already did) and returns one.
fn bin(name: &str) -> PathBuf {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--quiet", "--bins", "-p", name])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building {name} failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is not built: run cargo build --workspace first",
        path.display()
    );
    path
}

fn venv() -> PathBuf {
    let venv = std::env::var_os("PRETIX_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    assert!(
        venv.join("bin/python").exists(),
        "no venv at {}: run scripts/install-test-deps",
        venv.display()
    );
    venv
}

fn step(tool: &str, document: &Value, systemctl_log: &Path) -> Value {
    let mut command = Command::new(bin(tool));
    command
        .arg("apply")
        .env(pretix_site::service::RECORD_ENV, systemctl_log);
    let outcome = run_tool(&mut command, document);
    assert_eq!(outcome.code, 0, "{tool} failed:\n{}", outcome.describe());
    outcome.document
}

#[test]
fn db_redis_cfg_pipeline_gives_pretix_a_working_database_and_cache() {
    let stage = tempfile::Builder::new()
        .prefix("pretix-pipeline.")
        .tempdir()
        .expect("stage");
    std::fs::set_permissions(stage.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = |relative: &str| stage.path().join(relative);
    let (redis_uid, redis_gid) = system_user("redis");
    for (dir, mode) in [("redis", 0o2755), ("redis-lib", 0o750)] {
        std::fs::create_dir(path(dir)).expect("mkdir");
        std::os::unix::fs::chown(path(dir), Some(redis_uid), Some(redis_gid)).expect("chown");
        std::fs::set_permissions(path(dir), std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let redis_conf = path("redis.conf");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/debian12/redis.conf"),
        &redis_conf,
    )
    .expect("Debian's redis.conf");
    std::os::unix::fs::chown(&redis_conf, Some(redis_uid), Some(redis_gid)).expect("chown");
    std::fs::set_permissions(&redis_conf, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let socket = path("redis/redis.sock");
    let start_redis = || {
        Redis::start_with_config_file(
            &redis_conf,
            RedisOptions {
                socket: socket.clone(),
                dir: path("redis-lib"),
                as_redis_user: true,
                port: Some(0),
            },
        )
    };
    let mut redis = start_redis();
    let cluster = Postgres::start();
    let systemctl_log = path("systemctl.log");

    let site = json!({
        "config": {
            "pretix": {"url": "https://tickets.example.org", "ecb_rates": false},
            "mail": {"from": "tickets@example.org"}
        },
        "paths": {
            "config_dir": path("etc-pretix"),
            "data_dir": path("data"),
            "secrets_dir": path("secrets"),
            "lock_file": path("lock")
        },
        "database": {
            "docker_host": "127.0.0.1",
            "docker_subnet": "127.0.0.0/8",
            "port": cluster.port(),
            "admin": {"socket_dir": cluster.socket_dir(), "port": cluster.port()}
        },
        "redis": {
            "config_file": redis_conf,
            "socket": socket,
            "dropin_dir": path("redis-server.service.d"),
            "restart_timeout_seconds": 10,
            // systemd is not PID 1 here: the test restarts redis-server itself below.
            "restart": false
        }
    });
    let after_db = step("pretix-db", &site, &systemctl_log);
    let after_redis = step("pretix-redis", &after_db, &systemctl_log);
    let done = step("pretix-cfg", &after_redis, &systemctl_log);

    let results = done["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert!(
        results
            .iter()
            .all(|result| result["failed"] == false && result["changed"] == true),
        "{results:?}"
    );
    let password_file = done["config"]["database"]["password"]["secret_file"]
        .as_str()
        .expect("a password reference");
    let password = std::fs::read_to_string(password_file)
        .expect("the generated password")
        .trim()
        .to_owned();
    assert!(!done.to_string().contains(&password), "the password is in the document");
    let recorded = std::fs::read_to_string(&systemctl_log).unwrap_or_default();
    assert!(recorded.contains(r#"["systemctl","daemon-reload"]"#), "{recorded}");

    let config_file = path("etc-pretix/pretix.cfg");
    let rendered = std::fs::read_to_string(&config_file).expect("pretix.cfg");
    assert!(rendered.contains(&format!("port={}\n", cluster.port())), "{rendered}");
    assert!(
        rendered.contains(&format!("location=unix://{}?db=0\n", socket.display())),
        "{rendered}"
    );

    // What `systemctl restart redis-server` does on a real host: the edited redis.conf applies.
    redis.stop();
    let _restarted_redis = start_redis();
    let socket_mode = std::fs::metadata(&socket).expect("socket").permissions().mode() & 0o777;
    assert_eq!(socket_mode, 0o777, "the guide's socket mode after the restart");

    let output = Command::new(venv().join("bin/python"))
        .args(["-c", PRETIX_USES_ITS_CONFIG])
        .env("PRETIX_CONFIG_FILE", &config_file)
        .env("PRETIX_PRETIX_DATADIR", path("data"))
        .env("DJANGO_SETTINGS_MODULE", "pretix.settings")
        .current_dir(stage.path())
        .output()
        .expect("run pretix");
    assert!(
        output.status.success(),
        "pretix could not use its config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("json from pretix");
    assert_eq!(seen["user"], "pretix");
    assert_eq!(seen["database"], "pretix");
    assert_eq!(seen["cache"], "works");
    assert_eq!(
        seen["broker"],
        format!("redis+socket://{}?virtual_host=2", socket.display())
    );

    let again = step(
        "pretix-cfg",
        &step(
            "pretix-redis",
            &step("pretix-db", &site, &systemctl_log),
            &systemctl_log,
        ),
        &systemctl_log,
    );
    let reruns = again["results"].as_array().expect("results");
    assert!(
        reruns.iter().all(|result| result["changed"] == false),
        "a second pipeline run changed something: {reruns:?}"
    );
}
