//! The test host: a Debian 12 server with systemd as PID 1 in a container.

use pretix_testkit::TestHost;

#[test]
fn systemd_boots_postgresql_redis_and_nginx_and_runs_an_installed_unit() {
    let host = TestHost::boot().expect("boot the test host");
    let state = host.exec(&["systemctl", "is-system-running"]).expect("exec");
    assert_eq!(
        state.stdout.trim(),
        "running",
        "failed units: {:?}",
        host.failed_units()
    );
    for unit in [
        "postgresql@15-main.service",
        "redis-server.service",
        "nginx.service",
        "cron.service",
        "docker.service",
    ] {
        let active = host.exec(&["systemctl", "is-active", unit]).expect("exec");
        assert_eq!(active.stdout.trim(), "active", "{unit}: {}", host.journal(unit));
    }
    let sql = host
        .exec(&[
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-tAc",
            "SHOW server_version_num",
        ])
        .expect("psql");
    assert!(sql.stdout.trim().starts_with("15"), "{}", sql.describe());
    let ping = host.exec(&["redis-cli", "ping"]).expect("redis-cli");
    assert_eq!(ping.stdout.trim(), "PONG", "{}", ping.describe());
    let page = host
        .exec(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1/",
        ])
        .expect("curl");
    assert_eq!(page.stdout, "200", "{}", page.describe());

    // A unit file installed the way a sysadmin does, writing into the shared dir.
    let marker = host.shared_dir().join("unit-ran");
    let unit = format!(
        "[Unit]\nDescription=a test unit\n\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'id -un > {}'\n",
        marker.display()
    );
    host.write_file(
        "/etc/systemd/system/pretix-testkit-probe.service",
        unit.as_bytes(),
        0o644,
    )
    .expect("install the unit");
    let start = host
        .sh("systemctl daemon-reload && systemctl start pretix-testkit-probe.service")
        .expect("start the unit");
    assert!(start.success(), "{}", start.describe());
    assert_eq!(
        std::fs::read_to_string(&marker).expect("the unit wrote into the shared dir"),
        "root\n",
        "the same file is seen on both sides of the shared dir"
    );
}

#[test]
fn the_docker_cli_in_the_test_host_drives_the_machines_engine() {
    let host = TestHost::boot().expect("boot the test host");
    let ps = host
        .exec(&[
            "docker",
            "ps",
            "--filter",
            &format!("name={}", host.name()),
            "--format",
            "{{.Names}}",
        ])
        .expect("docker ps");
    assert_eq!(ps.stdout.trim(), host.name(), "{}", ps.describe());
    assert!(
        host.address().starts_with("172.") || host.address().contains('.'),
        "{}",
        host.address()
    );
    assert!(host.docker_subnet().contains('/'), "{}", host.docker_subnet());
}
