//! `cargo xtask bench`: speed targets, measured on the release binaries against real throwaway
//! servers. Wall-clock times on a shared machine are noisy, so each case runs several times and
//! the median is compared with a generous target; the table shows min/median/max.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use xtask::steps::run_tool;
use xtask::workspace_root;

/// One measured case.
struct Case {
    name: &'static str,
    target: Duration,
    samples: Vec<Duration>,
}

impl Case {
    fn median(&self) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }
}

pub fn run() -> anyhow::Result<ExitCode> {
    let root = workspace_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--quiet", "--release", "--bins", "-p", "pretix-db"])
        .current_dir(&root)
        .status()
        .context("cargo build --release")?;
    if !status.success() {
        bail!("building the release binaries failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), std::path::PathBuf::from);
    let bin_dir = target.join("release");

    let cases = vec![bench_db_fresh(&bin_dir)?, bench_db_converged(&bin_dir)?];
    eprintln!(
        "{:<44} {:>9} {:>9} {:>9} {:>9}  result",
        "case", "min", "median", "max", "target"
    );
    let mut all_met = true;
    for case in &cases {
        let min = case.samples.iter().min().copied().unwrap_or_default();
        let max = case.samples.iter().max().copied().unwrap_or_default();
        let met = case.median() <= case.target;
        all_met &= met;
        eprintln!(
            "{:<44} {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>7.1}ms  {}",
            case.name,
            min.as_secs_f64() * 1e3,
            case.median().as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            case.target.as_secs_f64() * 1e3,
            if met { "ok" } else { "OVER TARGET" }
        );
    }
    Ok(if all_met { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The document for a test cluster: the guide's defaults with loopback as the docker host.
fn site(cluster: &pretix_testkit::Postgres, home: &Path) -> Value {
    json!({
        "database": {
            "docker_host": "127.0.0.1",
            "docker_subnet": "127.0.0.0/8",
            "port": cluster.port(),
            "admin": {"socket_dir": cluster.socket_dir(), "port": cluster.port()}
        },
        "paths": {"secrets_dir": home.join("secrets"), "lock_file": home.join("lock")}
    })
}

fn timed_apply(bin_dir: &Path, document: &Value) -> anyhow::Result<(Duration, Value)> {
    let started = Instant::now();
    let (output, code) = run_tool(
        &bin_dir.join("pretix-db"),
        &["apply".to_owned(), "-q".to_owned()],
        &document.to_string(),
    )?;
    let elapsed = started.elapsed();
    if code != 0 {
        bail!("pretix-db apply exited {code}: {output}");
    }
    Ok((
        elapsed,
        serde_json::from_str(&output).context("pretix-db printed no JSON")?,
    ))
}

/// A fresh provision: role, database, pg_hba.conf rule, reload, verification login.
fn bench_db_fresh(bin_dir: &Path) -> anyhow::Result<Case> {
    let cluster = pretix_testkit::Postgres::start();
    let hba = cluster.data_dir().join("pg_hba.conf");
    let original_hba = std::fs::read(&hba)?;
    let home = tempfile::tempdir()?;
    let mut samples = Vec::new();
    for _ in 0..5 {
        let mut admin = cluster.superuser();
        // One statement per call: DROP DATABASE cannot run in the implicit transaction of a batch.
        admin.batch_execute("DROP DATABASE IF EXISTS pretix")?;
        admin.batch_execute("DROP ROLE IF EXISTS pretix")?;
        std::fs::write(&hba, &original_hba)?;
        admin.batch_execute("SELECT pg_reload_conf()")?;
        let _ = std::fs::remove_dir_all(home.path().join("secrets"));
        let (elapsed, document) = timed_apply(bin_dir, &site(&cluster, home.path()))?;
        let changed = document["results"][0]["changed"].as_bool().unwrap_or(false);
        if !changed {
            bail!("the fresh provision reported no change");
        }
        samples.push(elapsed);
    }
    Ok(Case {
        name: "pretix-db apply, fresh provision",
        target: Duration::from_millis(1500),
        samples,
    })
}

/// A converged re-run: nothing to do, a few round trips and the verification login.
fn bench_db_converged(bin_dir: &Path) -> anyhow::Result<Case> {
    let cluster = pretix_testkit::Postgres::start();
    let home = tempfile::tempdir()?;
    let (_, mut document) = timed_apply(bin_dir, &site(&cluster, home.path()))?;
    if let Value::Object(map) = &mut document {
        map.remove("results");
    }
    let mut samples = Vec::new();
    for _ in 0..30 {
        let (elapsed, output) = timed_apply(bin_dir, &document)?;
        if output["results"][0]["changed"].as_bool() != Some(false) {
            bail!("the converged re-run changed something: {}", output["results"][0]);
        }
        samples.push(elapsed);
    }
    Ok(Case {
        name: "pretix-db apply, converged re-run (no-op)",
        target: Duration::from_millis(150),
        samples,
    })
}
