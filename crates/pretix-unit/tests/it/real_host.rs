//! On a Debian 12 test host with systemd as PID 1 (pretix-testkit's `TestHost`) and the real
//! pretix image: the guide's pipeline installs everything, systemd starts the unit, pretix answers
//! `/healthcheck/`, `systemctl restart` brings it back, the in-container probes pass, and the
//! database probe fails once the pg_hba rule is gone.
//!
//! The harness runs no Docker daemon inside the test host: the unit's `docker run` starts pretix
//! on the machine's engine, next to the test host. Its published port is therefore on the
//! machine, and the test host reaches it on the bridge's gateway address, not on its own
//! loopback: the document binds there (with `allow_public_bind`, which on a real server would
//! be loopback). Everything else is as on a real server.

use std::time::{Duration, Instant};

use pretix_testkit::images::real_image;
use pretix_testkit::{TestHost, free_port, toolkit_binary};
use serde_json::{Value, json};

const TOOLS: [&str; 4] = ["pretix-db", "pretix-redis", "pretix-cfg", "pretix-unit"];

fn sh(host: &TestHost, script: &str) -> String {
    let output = host.sh(script).unwrap_or_else(|error| panic!("{script}: {error}"));
    assert!(output.success(), "{script}: {}", output.describe());
    output.stdout
}

/// The last result of a document a tool printed.
fn last_result(stdout: &str) -> Value {
    let document: Value = serde_json::from_str(stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"));
    document["results"]
        .as_array()
        .and_then(|results| results.last())
        .cloned()
        .unwrap_or(Value::Null)
}

fn check_status(result: &Value, name: &str) -> (String, String) {
    result["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|item| item["name"] == name))
        .map(|item| {
            (
                item["status"].as_str().unwrap_or_default().to_owned(),
                item["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .unwrap_or_else(|| panic!("no check item {name}: {result}"))
}

fn wait_for_health(host: &TestHost, url: &str, timeout: Duration, unit: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        let code = host
            .exec(&["curl", "-s", "-o", "/dev/null", "-m", "5", "-w", "%{http_code}", url])
            .map(|output| output.stdout)
            .unwrap_or_default();
        if code == "200" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} answered {code:?} for {timeout:?}; journal:\n{}",
            host.journal(unit)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn on_a_real_systemd_host_the_real_pretix_runs_restarts_and_proves_its_database_and_redis() {
    let image = real_image().unwrap_or_else(|error| panic!("the real pretix image: {error}"));
    let host = TestHost::boot().unwrap_or_else(|error| panic!("boot the test host: {error}"));
    let binaries: Vec<_> = TOOLS.iter().map(|tool| toolkit_binary(tool)).collect();
    host.install_binaries(&binaries)
        .unwrap_or_else(|error| panic!("{error}"));

    let shared = host.shared_dir().to_path_buf();
    let socket_dir = shared.join("redis");
    let gateway = sh(&host, "ip route | awk '/^default/ {print $3; exit}'")
        .trim()
        .to_owned();
    // redis-server's sandbox may write only where it is told; a socket outside /run/redis needs
    // ReadWritePaths, as on a real server that keeps its socket elsewhere.
    sh(
        &host,
        &format!(
            "install -d -o redis -g redis -m 2755 {dir} && mkdir -p /etc/systemd/system/redis-server.service.d && \
             printf '[Service]\\nReadWritePaths={dir}\\n' > /etc/systemd/system/redis-server.service.d/socket-dir.conf && \
             systemctl daemon-reload",
            dir = socket_dir.display()
        ),
    );
    let unit = format!("{}-pretix.service", host.name());
    let port = free_port();
    let site = json!({
        "config": {
            "pretix": {"url": format!("http://{gateway}:{port}"), "ecb_rates": false},
            "mail": {"from": "tickets@example.org", "host": host.address()},
        },
        "paths": {"config_dir": shared.join("etc-pretix"), "data_dir": shared.join("data")},
        "database": {"docker_host": host.address(), "docker_subnet": host.docker_subnet(), "restart": true},
        "redis": {"socket": socket_dir.join("redis.sock")},
        "container": {
            "image": image,
            "unit": unit,
            "bind_address": gateway,
            "allow_public_bind": true,
            "published_port": port,
            "start_timeout_seconds": 900,
        },
    });
    let started = Instant::now();
    let install = host
        .exec_with_stdin(
            &[
                "bash",
                "-c",
                "set -o pipefail; pretix-db apply | pretix-redis apply | pretix-cfg apply | pretix-unit apply > /root/site.done.json",
            ],
            site.to_string().as_bytes(),
        )
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        install.success(),
        "the pipeline: {}\njournal of {unit}:\n{}",
        install.describe(),
        host.journal(&unit)
    );
    eprintln!(
        "install with the first migration took {} s",
        started.elapsed().as_secs()
    );
    let done = sh(&host, "cat /root/site.done.json");
    let applied = last_result(&done);
    assert_eq!(applied["tool"], "pretix-unit", "{applied}");
    assert!(
        applied["actions"]
            .as_array()
            .is_some_and(|actions| actions.iter().any(|action| action
                .as_str()
                .is_some_and(|text| text.contains("answers /healthcheck/")))),
        "{applied}"
    );
    assert_eq!(sh(&host, &format!("systemctl is-active {unit}")).trim(), "active");
    assert_eq!(sh(&host, &format!("systemctl is-enabled {unit}")).trim(), "enabled");
    let url = format!("http://{gateway}:{port}/healthcheck/");
    wait_for_health(&host, &url, Duration::from_secs(30), &unit);

    // A second run changes nothing.
    let again = sh(&host, "pretix-unit apply --site /root/site.done.json");
    assert_eq!(last_result(&again)["changed"], false, "{}", last_result(&again));

    // systemd brings it back after a restart (a new container, the same name).
    sh(&host, &format!("systemctl restart {unit}"));
    wait_for_health(&host, &url, Duration::from_secs(300), &unit);
    assert_eq!(sh(&host, &format!("systemctl is-active {unit}")).trim(), "active");

    // Only the container can prove the pg_hba rule and the socket: both pass.
    let verify = host
        .exec(&["pretix-unit", "verify", "--site", "/root/site.done.json"])
        .unwrap_or_else(|error| panic!("{error}"));
    let verified = last_result(&verify.stdout);
    let (status, message) = check_status(&verified, "database from the container");
    assert_eq!(status, "ok", "{message}\n{}", verify.stderr);
    let (status, message) = check_status(&verified, "redis from the container");
    assert_eq!(status, "ok", "{message}");
    assert!(message.ends_with("as uid 15371"), "{message}");
    let (status, message) = check_status(&verified, &format!("settings {unit}"));
    assert_eq!(
        status, "ok",
        "the container systemd started is the document's: {message}"
    );
    let (status, message) = check_status(&verified, &format!("unit {unit}"));
    assert_eq!(status, "ok", "{message}");
    let (status, message) = check_status(&verified, &format!("port {unit}"));
    assert_eq!(status, "warning", "a gateway bind is beyond loopback: {message}");

    // Without the pg_hba rule pretix-db wrote, the database probe fails and says where to look.
    let subnet = host.docker_subnet().replace('/', "\\/");
    sh(
        &host,
        &format!("sed -i '/{subnet}/d' /etc/postgresql/15/main/pg_hba.conf && systemctl reload postgresql@15-main"),
    );
    let broken = host
        .exec(&["pretix-unit", "verify", "--site", "/root/site.done.json"])
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(broken.code, 1, "{}", broken.describe());
    let (status, message) = check_status(&last_result(&broken.stdout), "database from the container");
    assert_eq!(status, "failure", "{message}");
    assert!(message.contains("pg_hba"), "{message}");
}
