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
    assert!(stderr.contains("the install stopped at pretix-redis apply"), "{stderr}");
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

#[test]
fn every_pipeline_command_in_the_docs_parses() {
    use clap::Parser as _;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seen = 0;
    for doc in ["README.md", "ARCHITECTURE.md", "docs/site.md"] {
        let text = std::fs::read_to_string(root.join(doc)).expect("read a doc");
        for line in text.lines() {
            let trimmed = line.trim_start();
            let Some(command) = trimmed
                .strip_prefix("cargo xtask ")
                .or_else(|| trimmed.strip_prefix("pretix-toolkit "))
            else {
                continue;
            };
            let command = command.split(" #").next().unwrap_or_default();
            let words: Vec<&str> = command.split_whitespace().collect();
            if ["test", "schema", "bench", "dist"].contains(&words.first().copied().unwrap_or_default()) {
                continue;
            }
            seen += 1;
            let parsed = xtask::Toolkit::try_parse_from(std::iter::once("pretix-toolkit").chain(words.iter().copied()));
            assert!(
                parsed.is_ok(),
                "{doc}: `cargo xtask {command}` does not parse: {:?}",
                parsed.err()
            );
        }
    }
    assert!(seen >= 10, "the README shows the pipelines ({seen} seen)");
}
