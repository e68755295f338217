//! On the real pretix/standalone image (pretix 2026.8.0, built once per machine by the testkit):
//! a real plugin from PyPI, pretix-pages 1.6.4 (its `compatibility` is `pretix>=2024.11.0.dev0`),
//! is installed through the build-only CA stage, pretix says it loaded it, and a container of
//! the custom image migrates a real PostgreSQL (the plugin's tables included), answers
//! /healthcheck/ with Redis, and its nginx serves the plugin's static files.

use std::process::Command;
use std::time::Duration;

use pretix_testkit::image::{Container, RunSpec};
use pretix_testkit::{Postgres, Redis, SUPERUSER_PASSWORD, free_port, http_request, wait_until};
use serde_json::json;

use crate::support::Fixture;

#[test]
fn a_real_plugin_from_pypi_is_installed_loaded_and_served() {
    let base = pretix_testkit::images::real_image().unwrap_or_else(|error| panic!("the real image: {error}"));
    let mut fixture = Fixture::on_local_base("real");
    // A real database and Redis for the container of the custom image (set up first: cheap).
    let postgres = Postgres::start();
    let hba = postgres.data_dir().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
    std::fs::write(&hba, format!("local all all scram-sha-256\n{rules}")).expect("write pg_hba.conf");
    let mut admin = postgres.superuser();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .expect("reload pg_hba.conf");
    admin
        .batch_execute("CREATE DATABASE pretix")
        .expect("create the database");
    let redis = Redis::start("777");
    let redis_dir = redis.socket_path().parent().expect("redis dir").to_path_buf();
    let config = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        config.path().join("pretix.cfg"),
        format!(
            "[pretix]\nurl=http://localhost\ndatadir=/data\necb_rates=off\n\n\
             [database]\nbackend=postgresql\nname=pretix\nuser=postgres\npassword={SUPERUSER_PASSWORD}\n\
             host=/run/test-postgres\nport={}\n\n\
             [redis]\nlocation=unix:///run/test-redis/{}?db=0\n",
            postgres.port(),
            redis
                .socket_path()
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
    )
    .expect("write pretix.cfg");
    for path in [config.path().to_path_buf(), config.path().join("pretix.cfg")] {
        std::os::unix::fs::chown(&path, Some(15371), Some(15371)).expect("chown");
    }
    // The host's CA bundle, at the same path under --root: containers here reach PyPI only
    // when they trust it.
    let bundle = fixture.root.path().join("etc/ssl/certs");
    std::fs::create_dir_all(&bundle).expect("mkdir");
    std::fs::copy("/etc/ssl/certs/ca-certificates.crt", bundle.join("ca-certificates.crt"))
        .expect("copy the CA bundle");
    let document = json!({
        "container": {"image": base},
        "plugins": {
            "packages": ["pretix-pages==1.6.4"],
            "image": fixture.repository,
            "build_ca_bundle": "/etc/ssl/certs/ca-certificates.crt",
        },
    });
    let started = std::time::Instant::now();
    let built = fixture.run_with(&["apply", "-v"], &document);
    eprintln!("build and verification took {} s", started.elapsed().as_secs());
    assert_eq!(built.code, 0, "{}", built.describe());
    assert_eq!(
        built.document["plugins"]["built"]["loaded_plugins"],
        json!(["pretix_pages"])
    );
    let image = built.document["plugins"]["built"]["image"]
        .as_str()
        .expect("built")
        .to_owned();
    let base_id = fixture.docker.inspect_image(&base).expect("inspect").expect("base").id;
    assert_eq!(
        built.document["plugins"]["built"]["base"],
        base_id.as_str(),
        "pinned by its image ID"
    );

    // The CA bundle stayed in the build-only stage: not in the layers the build added (the
    // base's own history is left out: the testkit's image used a bundle of its own), nor as a file.
    let history = |reference: &str| -> Vec<String> {
        let output = Command::new("docker")
            .args(["history", "--no-trunc", "--format", "{{.CreatedBy}}", reference])
            .output()
            .expect("docker history");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let added = history(&image).len() - history(&base).len();
    let ours = history(&image)[..added].join("\n");
    assert!(ours.contains("pip3 install --no-cache-dir --no-index"), "{ours}");
    for leak in ["ca-bundle", "ca.crt", "PIP_CERT", "pretix-toolkit-fetch"] {
        assert!(!ours.contains(leak), "{leak} in the image's history:\n{ours}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let leaked = runtime.block_on(async {
        let client = pretix_testkit::image::connect().await.expect("docker");
        pretix_testkit::image::read_file_from_image(&client, &image, "/tmp/pretix-toolkit-ca.crt").await
    });
    assert!(leaked.is_err(), "the CA bundle is in the image");
    // Nor is it left in the host's image store: the build-only stage's image was removed.
    let stage = built
        .stderr
        .lines()
        .find_map(|line| line.split("removed the build-only stage's image ").nth(1))
        .unwrap_or_else(|| panic!("the build-only stage's image was not removed: {}", built.stderr))
        .trim()
        .to_owned();
    assert!(
        fixture.docker.inspect_image(&stage).expect("inspect").is_none(),
        "{stage} is still there"
    );

    let again = fixture.run("apply", &built.next_input());
    assert_eq!(again.code, 0, "{}", again.describe());
    assert!(!again.changed(), "{:?}", again.actions());

    let port = free_port();
    let container = Container::start(&RunSpec {
        image: image.clone(),
        command: vec!["all".to_owned()],
        binds: vec![
            format!("{}:/etc/pretix", config.path().display()),
            format!("{}:/run/test-postgres", postgres.socket_dir().display()),
            format!("{}:/run/test-redis", redis_dir.display()),
        ],
        publish_80_on: Some(port),
        ..RunSpec::default()
    })
    .expect("start the custom image");
    let healthy = || {
        http_request(port, "GET", "/healthcheck/", &[("Host", "localhost")], "")
            .is_ok_and(|response| response.status == 200)
    };
    wait_until(
        "the custom image's /healthcheck/ answering 200 (after migrating)",
        Duration::from_secs(600),
        healthy,
        || container.logs(),
    );
    let static_file = http_request(
        port,
        "GET",
        "/static/pretix_pages/editor.js",
        &[("Host", "localhost")],
        "",
    )
    .expect("GET the plugin's static file");
    assert_eq!(
        static_file.status, 200,
        "make production collected the plugin's static files"
    );
    let pretix_database = postgres
        .superuser_conn_string()
        .replace("dbname=postgres", "dbname=pretix");
    let mut client =
        postgres::Client::connect(&pretix_database, postgres::NoTls).expect("connect to pretix's database");
    let tables = client
        .query(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename LIKE 'pretix_pages%'",
            &[],
        )
        .expect("list tables");
    let count: i64 = tables.first().map(|row| row.get(0)).unwrap_or(0);
    assert!(count > 0, "the plugin's migrations ran");
    drop(container);
    drop(admin);
}
