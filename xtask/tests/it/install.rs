//! `cargo xtask install`: the tools in the guide's order, stopping at the first failure and
//! saying what ran, what failed and what did not run.

use std::process::Command;

#[test]
fn install_stops_at_the_first_failing_tool_and_names_what_did_not_run() {
    let staging = tempfile::tempdir().expect("staging root");
    let site = staging.path().join("site.json");
    // pretix-redis refuses this document (an unknown key in the section it owns): exit 2.
    std::fs::write(
        &site,
        r#"{"config": {"pretix": {"url": "https://tickets.example.org"}, "mail": {"from": "t@example.org"}},
            "redis": {"sokcet": "/run/redis/redis.sock"}}"#,
    )
    .expect("site");
    for (source, target) in [
        ("postgresql.conf", "etc/postgresql/15/main/postgresql.conf"),
        ("pg_hba.conf", "etc/postgresql/15/main/pg_hba.conf"),
        ("redis.conf", "etc/redis/redis.conf"),
    ] {
        let destination = staging.path().join(target);
        std::fs::create_dir_all(destination.parent().expect("parent")).expect("mkdir");
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures/debian12")
                .join(source),
            destination,
        )
        .expect("stage a stock file");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("install")
        .arg("--site")
        .arg(&site)
        .args(["--check", "--offline", "--root"])
        .arg(staging.path())
        .output()
        .expect("run xtask install");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "pretix-redis's exit code:\n{stderr}");
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the document on stdout");
    let tools: Vec<&str> = document["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| result["tool"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(tools, ["pretix-db", "pretix-redis"], "nothing ran after the failure");
    assert!(
        stderr.contains("redis.sokcet"),
        "the failing tool names the field:\n{stderr}"
    );
    assert!(
        stderr.contains("the install stopped at pretix-redis (exit 2)"),
        "{stderr}"
    );
    for tool in [
        "pretix-cfg",
        "pretix-plugin",
        "pretix-unit",
        "pretix-cron",
        "pretix-proxy",
    ] {
        assert!(
            stderr
                .lines()
                .any(|line| line.contains(tool) && line.contains("not run")),
            "{tool} is listed as not run:\n{stderr}"
        );
    }
    assert!(!stderr.contains("pretix is installed"), "{stderr}");
}
