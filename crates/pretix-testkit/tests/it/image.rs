//! The stand-in pretix/standalone image: built locally, pushed to and pulled from a local
//! registry, answering the real entrypoint's commands as uid 15371.

use std::time::Duration;

use pretix_testkit::image::{Container, RunSpec, STAND_IN_TAG, build_stand_in_image, connect, pull, push_to_registry};
use pretix_testkit::{Registry, free_port, http_get, wait_until};

/// A /data dir the container's uid 15371 can write.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::chown(dir.path(), Some(15371), Some(15371)).expect("chown");
    dir
}

fn calls(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("stand-in-calls.log")).unwrap_or_default()
}

fn run_to_end(image: &str, command: &[&str], env: &[&str], data: &tempfile::TempDir) -> i64 {
    let container = Container::start(&RunSpec {
        image: image.to_owned(),
        command: command.iter().map(|word| (*word).to_owned()).collect(),
        env: env.iter().map(|word| (*word).to_owned()).collect(),
        binds: vec![format!("{}:/data", data.path().display())],
        ..RunSpec::default()
    })
    .expect("start a container");
    container.wait().expect("wait for the container")
}

#[test]
fn stand_in_image_builds_travels_through_a_registry_and_answers_like_pretix() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let registry = Registry::start();
    let image = runtime.block_on(async {
        let docker = connect().await.expect("docker");
        build_stand_in_image(&docker, STAND_IN_TAG)
            .await
            .expect("build the stand-in");
        let remote = push_to_registry(&docker, STAND_IN_TAG, &registry.addr(), "pretix/standalone", "stable")
            .await
            .expect("push");
        let _ = docker
            .remove_image(&remote, None::<bollard::query_parameters::RemoveImageOptions>, None)
            .await;
        pull(&docker, &remote).await.expect("pull from the local registry");
        remote
    });

    let migrate = data_dir();
    assert_eq!(run_to_end(&image, &["migrate"], &[], &migrate), 0);
    let log = calls(&migrate);
    assert!(log.contains("uid=15371 "), "{log}");
    assert!(log.contains("args=migrate"), "{log}");
    assert!(log.contains("migrate --noinput"), "AUTOMIGRATE defaults to yes: {log}");
    assert!(
        migrate.path().join("logs").is_dir() && migrate.path().join("media").is_dir(),
        "the preamble makes logs/ and media/"
    );

    let cron = data_dir();
    assert_eq!(run_to_end(&image, &["cron"], &[], &cron), 0);
    let log = calls(&cron);
    assert!(
        log.contains("runperiodic") && !log.contains("migrate"),
        "cron never migrates: {log}"
    );

    let skipped = data_dir();
    assert_eq!(
        run_to_end(&image, &["upgrade"], &["AUTOMIGRATE=skip", "NUM_WORKERS=3"], &skipped),
        0
    );
    let log = calls(&skipped);
    assert!(
        log.contains("AUTOMIGRATE=skip NUM_WORKERS=3")
            && log.contains("updatestyles")
            && !log.contains("migrate --noinput"),
        "{log}"
    );

    let web = data_dir();
    let port = free_port();
    let container = Container::start(&RunSpec {
        image: image.clone(),
        command: vec!["all".into()],
        binds: vec![format!("{}:/data", web.path().display())],
        publish_80_on: Some(port),
        ..RunSpec::default()
    })
    .expect("start the web container");
    wait_until(
        "/healthcheck/ answering 200",
        Duration::from_secs(20),
        || http_get(port, "/healthcheck/").is_ok_and(|(status, _)| status == 200),
        || calls(&web),
    );
    drop(container);
    assert!(calls(&web).contains("args=all"));
    runtime.block_on(async {
        let docker = connect().await.expect("docker");
        let _ = docker
            .remove_image(&image, None::<bollard::query_parameters::RemoveImageOptions>, None)
            .await;
    });
}
