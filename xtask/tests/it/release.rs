//! The release a sysadmin installs without Rust: the tarball and the .deb that `dist` packs,
//! installed on a fresh Debian 12 test server, where the pipelines run from the installed binaries.

use pretix_testkit::TestHost;

#[test]
fn the_tarball_and_the_deb_install_on_a_fresh_server_and_run_without_rust() {
    // The same packing as `cargo xtask dist`, over the debug binaries the tests built.
    let bin = xtask::steps::build_tools().expect("build the tools");
    assert!(
        bin.join("pretix-toolkit").is_file() || std::path::Path::new(env!("CARGO_BIN_EXE_pretix-toolkit")).is_file(),
        "pretix-toolkit is built"
    );
    let out = tempfile::tempdir().expect("out dir");
    let artifacts = xtask::dist::package(&bin, out.path(), true).expect("pack the release");
    let names: Vec<String> = artifacts
        .iter()
        .filter_map(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(
        names,
        [
            format!("pretix-toolkit-{}-x86_64-linux-gnu.tar.gz", env!("CARGO_PKG_VERSION")),
            format!("pretix-toolkit_{}_amd64.deb", env!("CARGO_PKG_VERSION")),
            "SHA256SUMS".to_owned()
        ]
    );
    let check = std::process::Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(out.path())
        .output()
        .expect("sha256sum");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    let host = TestHost::boot().expect("a fresh server");
    host.write_file(
        "/root/pretix-toolkit.tar.gz",
        &std::fs::read(&artifacts[0]).expect("tarball"),
        0o644,
    )
    .expect("copy the tarball");
    host.write_file(
        "/root/pretix-toolkit.deb",
        &std::fs::read(&artifacts[1]).expect("deb"),
        0o644,
    )
    .expect("copy the deb");
    // README: "Install it on a server without a Rust toolchain".
    let installed = host
        .sh(
            "set -e; tar -xzf /root/pretix-toolkit.tar.gz -C /usr/local --strip-components=1; \
             command -v cargo && exit 9; \
             pretix-toolkit --version; pretix-db --version; \
             test -f /usr/local/share/man/man1/pretix-unit.1; \
             test -f /usr/local/share/bash-completion/completions/pretix-cfg; \
             test -x /usr/local/share/ansible/collections/ansible_collections/pretix/toolkit/plugins/modules/pretix_proxy; \
             dpkg -i /root/pretix-toolkit.deb > /dev/null; /usr/bin/pretix-cron --version",
        )
        .expect("install");
    assert!(installed.success(), "{}", installed.describe());
    assert!(
        installed.stdout.contains("pretix-toolkit 0.1.0"),
        "{}",
        installed.stdout
    );
    assert!(installed.stdout.contains("pretix-cron"), "{}", installed.stdout);

    // The plan runs from the installed binaries, with no checkout.
    let plan = host.sh("pretix-toolkit plan > /root/plan.json").expect("plan");
    assert!(plan.success(), "{}", plan.describe());
    assert!(
        plan.stderr.contains("would create /etc/systemd/system/pretix.service"),
        "{}",
        plan.stderr
    );

    // doctor on a server where nothing is installed yet: a table, failures named, exit 1.
    host.write_file(
        "/root/site.json",
        br#"{"config": {"pretix": {"url": "https://tickets.example.org"}, "mail": {"from": "t@example.org"}}}"#,
        0o600,
    )
    .expect("site");
    let doctor = host.sh("pretix-toolkit doctor --site /root/site.json").expect("doctor");
    assert_eq!(doctor.code, 1, "{}", doctor.describe());
    assert!(doctor.stdout.contains("NOT HEALTHY"), "{}", doctor.describe());
    for tool in [
        "pretix-db",
        "pretix-redis",
        "pretix-cfg",
        "pretix-unit",
        "pretix-cron",
        "pretix-proxy",
    ] {
        assert!(doctor.stdout.contains(tool), "doctor reports {tool}: {}", doctor.stdout);
    }
}
