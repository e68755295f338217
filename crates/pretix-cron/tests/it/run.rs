//! `run` against the real Docker engine: the stand-in image's `cron` command, its output
//! streamed and its exit status returned.

use std::path::Path;

use serde_json::{Value, json};

use pretix_testkit::image::{Container, RunSpec};

use crate::support::run;

/// The stand-in image under a tag of this test's own, removed on drop (other engineers' tests
/// build the shared tag from their own checkouts).
struct StandIn {
    tag: String,
}

impl StandIn {
    fn build(test: &str) -> StandIn {
        let tag = format!(
            "pretix-cron-test-{test}-{}-{}:stand-in",
            std::process::id(),
            pretix_testkit::free_port()
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime
            .block_on(async {
                let docker = pretix_testkit::image::connect().await?;
                pretix_testkit::image::build_stand_in_image(&docker, &tag).await
            })
            .unwrap_or_else(|error| panic!("build the stand-in image: {error}"));
        StandIn { tag }
    }

    /// A running `all` container of the stand-in, with `env`.
    fn start(&self, env: &[&str]) -> Container {
        Container::start(&RunSpec {
            image: self.tag.clone(),
            command: vec!["all".to_owned()],
            env: env.iter().map(|item| (*item).to_owned()).collect(),
            ..RunSpec::default()
        })
        .unwrap_or_else(|error| panic!("start the stand-in: {error}"))
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Ok(docker) = pretix_site::docker::Docker::connect(None) {
            let _ = docker.remove_image(&self.tag);
        }
    }
}

fn site(container: &str, lock_dir: &Path) -> Value {
    json!({
        "container": {"unit": container},
        "paths": {"lock_file": lock_dir.join("lock")},
    })
}

#[test]
fn run_reaches_the_images_cron_command_and_streams_its_output() {
    let image = StandIn::build("ok");
    let container = image.start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome = run(&["run"], &site(&container.id, dir.path()));
    assert_eq!(outcome.code, 0, "{}", outcome.describe());
    // The stand-in's entrypoint says what it was asked on stderr, which run streams to ours.
    assert!(
        outcome.stderr.contains("pretix stand-in: args=cron"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("pretix stand-in: runperiodic"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.msg().contains("exited 0"), "{}", outcome.msg());
    assert!(outcome.changed());
}

#[test]
fn a_failing_cron_is_exit_1_with_its_status_and_output() {
    let image = StandIn::build("fail");
    let container = image.start(&["STAND_IN_CRON_EXIT=3"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome = run(&["run"], &site(&container.id, dir.path()));
    assert_eq!(outcome.code, 1, "{}", outcome.describe());
    assert_eq!(outcome.result()["failed"], true);
    assert!(outcome.msg().contains("exited with status 3"), "{}", outcome.msg());
    assert!(
        outcome.msg().contains("pretix stand-in: runperiodic"),
        "{}",
        outcome.msg()
    );
}

#[test]
fn a_missing_container_or_daemon_is_a_clear_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = run(&["run"], &site("pretix-cron-no-such-container.service", dir.path()));
    assert_eq!(missing.code, 1, "{}", missing.describe());
    assert!(
        missing
            .msg()
            .contains("container pretix-cron-no-such-container.service does not exist"),
        "{}",
        missing.msg()
    );

    let mut document = site("pretix.service", dir.path());
    document["container"]["docker_host"] = json!(format!("unix://{}", dir.path().join("docker.sock").display()));
    let unreachable = run(&["run"], &document);
    assert_eq!(unreachable.code, 1, "{}", unreachable.describe());
    assert!(unreachable.msg().contains("does not answer"), "{}", unreachable.msg());
}

#[test]
fn check_mode_and_a_staging_root_run_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let document = site("pretix-cron-no-such-container.service", dir.path());
    let planned = run(&["run", "--check"], &document);
    assert_eq!(planned.code, 0, "{}", planned.describe());
    assert!(
        planned.has_action("run pretix cron in the container pretix-cron-no-such-container.service"),
        "{:?}",
        planned.actions()
    );
    let staged = run(&["run", "--root", dir.path().to_str().expect("utf-8")], &document);
    assert_eq!(staged.code, 0, "{}", staged.describe());
    assert!(
        staged.has_action("skipped (--root): run pretix cron"),
        "{:?}",
        staged.actions()
    );
}

#[test]
fn verify_asks_docker_whether_the_container_runs() {
    let image = StandIn::build("verify");
    let container = image.start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let running = run(&["verify"], &site(&container.id, dir.path()));
    let (status, message) = running.check_item("container").expect("container item");
    assert_eq!(status, "ok", "{message}");
    assert!(message.ends_with("is running"), "{message}");

    let absent = run(&["verify"], &site("pretix-cron-no-such-container.service", dir.path()));
    let (status, message) = absent.check_item("container").expect("container item");
    assert_eq!(status, "failure");
    assert!(message.contains("there is no container"), "{message}");
    assert_eq!(absent.code, 1);
}
