//! `cargo xtask plan`, the README's main command: the whole install as a dry run on the guide's
//! defaults, touching nothing on this host.

// tests run servers and binaries directly; tools spawn only through pretix_site::exec.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

#[test]
fn plan_runs_the_pipeline_in_check_mode_and_touches_nothing() {
    let existed_before = std::path::Path::new("/etc/pretix/pretix.cfg").exists();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("plan")
        .output()
        .expect("run xtask plan");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "xtask plan failed:\n{stderr}");
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the plan is a JSON document");
    let results = document["results"].as_array().expect("results");
    let tools: Vec<&str> = results
        .iter()
        .map(|result| result["tool"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        tools,
        [
            "pretix-db",
            "pretix-redis",
            "pretix-cfg",
            "pretix-plugin",
            "pretix-unit",
            "pretix-cron",
            "pretix-proxy"
        ],
        "the whole install, in the guide's order"
    );
    for result in results {
        assert_eq!(result["check_mode"], true, "{result}");
        assert_eq!(result["failed"], false, "{result}");
        // Without plugins listed there is no custom image to build.
        let expect_change = result["tool"] != "pretix-plugin";
        assert_eq!(result["changed"], expect_change, "a fresh host needs changes: {result}");
    }
    for planned in [
        "would create /etc/systemd/system/pretix.service",
        "would create /etc/cron.d/pretix",
        "would obtain a certificate for tickets.example.org with certbot --webroot",
        "would create /etc/nginx/sites-available/pretix",
        "xtask: plan only: nothing was changed",
    ] {
        assert!(stderr.contains(planned), "the plan says {planned:?}:\n{stderr}");
    }
    assert_eq!(document["config"]["database"]["backend"], "postgresql");
    assert!(
        document["config"]["redis"]["location"]
            .as_str()
            .is_some_and(|location| location.starts_with("unix://"))
    );
    assert!(
        stderr.contains("+host    pretix          pretix          172.17.0.0/16           scram-sha-256"),
        "the plan shows the pg_hba.conf diff:\n{stderr}"
    );
    assert!(
        stderr.contains("+listen_addresses = 'localhost,172.17.0.1'"),
        "the plan shows postgresql.conf:\n{stderr}"
    );
    assert!(
        stderr.contains("+unixsocketperm 777"),
        "the plan shows redis.conf:\n{stderr}"
    );
    assert!(
        stderr.contains("+url=https://tickets.example.org"),
        "the plan shows pretix.cfg:\n{stderr}"
    );
    assert_eq!(
        std::path::Path::new("/etc/pretix/pretix.cfg").exists(),
        existed_before,
        "the plan touched the host"
    );
}
