//! The `docker` supervisor against the real engine: pull from a local registry with progress and
//! the digest recorded, the container exactly as specified, nothing on an unchanged re-run,
//! recreate on a changed spec or a new image, and exec with its exit codes.

use pretix_site::docker::RestartPolicy;
use pretix_testkit::{Registry, free_port, http_get};
use serde_json::json;

use crate::support::{TestHost, read, unique};

#[test]
fn the_docker_supervisor_pulls_runs_converges_recreates_and_execs() {
    let registry = Registry::start();
    let mut host = TestHost::new("docker");
    let repository = unique("repo");
    let image = host.image_in_registry(&registry, &repository, "first");
    let port = free_port();
    let mut document = host.document(json!({
        "supervisor": "docker",
        "image": image,
        "published_port": port,
        "volumes": [format!("{}:/var/run/pretix-test", host.path("extra").display())],
        "group_add": ["4242"],
        "env": {"PRETIX_PRETIX_INSTANCE_NAME": "Tickets \"Spring\" 100% $HOME"},
        "num_workers": 3,
    }));

    // First run: pulled (quiet progress on a pipe), digest recorded, created, healthy.
    let first = host.run(&["apply"], &document);
    assert_eq!(first.code, 0, "{}", first.describe());
    assert!(
        first.has_action(&format!("pull {image} (digest sha256:")),
        "{:?}",
        first.actions()
    );
    assert!(
        first.has_action(&format!("create and start container {}", host.unit)),
        "{:?}",
        first.actions()
    );
    assert!(
        first.stderr.contains("layers,") && first.stderr.contains("downloaded"),
        "{}",
        first.stderr
    );
    let digest = first.document["container"]["image_digest"]
        .as_str()
        .expect("digest recorded")
        .to_owned();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");
    assert_eq!(
        http_get(port, "/healthcheck/").map(|(status, _)| status).ok(),
        Some(200)
    );

    let info = host
        .docker
        .inspect_container(&host.unit)
        .expect("inspect")
        .expect("created");
    let destinations: Vec<(&str, &str, bool)> = info
        .mounts
        .iter()
        .map(|mount| (mount.source.as_str(), mount.destination.as_str(), mount.read_write))
        .collect();
    for (source, target) in [
        ("data", "/data"),
        ("config", "/etc/pretix"),
        ("extra", "/var/run/pretix-test"),
    ] {
        let source = host.path(source).display().to_string();
        assert!(
            destinations.contains(&(source.as_str(), target, true)),
            "{destinations:?}"
        );
    }
    assert_eq!(info.ports.len(), 1);
    assert_eq!(
        (
            info.ports[0].host_ip.as_str(),
            info.ports[0].host_port,
            info.ports[0].container_port
        ),
        ("127.0.0.1", port, 80)
    );
    assert_eq!(info.sysctls.get("net.core.somaxconn").map(String::as_str), Some("4096"));
    assert_eq!(info.group_add, vec!["4242".to_owned()]);
    assert_eq!(info.restart, RestartPolicy::UnlessStopped);
    assert!(info.env.contains(&"NUM_WORKERS=3".to_owned()), "{:?}", info.env);
    assert!(
        !info.env.iter().any(|entry| entry.starts_with("AUTOMIGRATE=")),
        "one container migrates: {:?}",
        info.env
    );
    assert!(
        info.env
            .contains(&"PRETIX_PRETIX_INSTANCE_NAME=Tickets \"Spring\" 100% $HOME".to_owned()),
        "{:?}",
        info.env
    );
    let calls = read(&host.path("data/stand-in-calls.log"));
    assert!(
        calls.contains("uid=15371 groups=15371,4242 AUTOMIGRATE=yes NUM_WORKERS=3 args=all"),
        "{calls}"
    );

    // Unchanged: nothing happens, the same container keeps running.
    document = first.next_input();
    let second = host.run(&["apply"], &document);
    assert_eq!(second.code, 0, "{}", second.describe());
    assert!(!second.changed(), "{:?}", second.actions());
    let same = host
        .docker
        .inspect_container(&host.unit)
        .expect("inspect")
        .expect("exists");
    assert_eq!(same.id, info.id);

    // A changed spec: recreated, and it says what changed.
    document["container"]["env"] = json!({"PRETIX_PRETIX_INSTANCE_NAME": "Tickets"});
    let changed = host.run(&["apply"], &document);
    assert_eq!(changed.code, 0, "{}", changed.describe());
    assert!(
        changed.has_action(&format!("recreate container {} (env changed)", host.unit)),
        "{:?}",
        changed.actions()
    );
    let recreated = host
        .docker
        .inspect_container(&host.unit)
        .expect("inspect")
        .expect("exists");
    assert_ne!(recreated.id, info.id);
    document = changed.next_input();

    // exec: output streamed to stderr, the exit code returned.
    let failing = host.run(&["exec", "--", "exit_with", "3"], &document);
    assert_eq!(failing.code, 1, "{}", failing.describe());
    assert!(failing.msg().contains("exited with 3"), "{}", failing.msg());
    assert!(
        failing.stderr.contains("exiting with 3") && failing.stderr.contains("to-stderr"),
        "{}",
        failing.stderr
    );
    let migrate = host.run(&["migrate"], &document);
    assert_eq!(migrate.code, 0, "{}", migrate.describe());
    assert!(read(&host.path("data/stand-in-calls.log")).contains("args=migrate"));
    let upgrade = host.run(&["upgrade"], &document);
    assert_eq!(upgrade.code, 0, "{}", upgrade.describe());
    let marker = read(&host.path(&format!("state/{}.upgraded", host.unit)));
    assert_eq!(marker.trim(), recreated.image_id);

    // verify: everything the host can see is ok; the probes need pretix itself, and the stand-in
    // is not pretix, so they fail saying so (the real image proves them on the test server).
    let verify = host.run(&["verify"], &document);
    assert_eq!(verify.code, 1, "{}", verify.describe());
    let unit = &host.unit;
    for item in [
        "docker".to_owned(),
        "image".to_owned(),
        format!("container {unit}"),
        format!("settings {unit}"),
        format!("image of {unit}"),
        format!("port {unit}"),
        format!("upgrade {unit}"),
    ] {
        assert_eq!(
            verify.check_item(&item).map(|(status, _)| status),
            Some("ok".to_owned()),
            "{item}: {}",
            verify.describe()
        );
    }
    let (status, message) = verify.check_item("database from the container").expect("probed");
    assert_eq!(status, "failure");
    assert!(
        message.contains("printed no answer (is this the pretix image?)"),
        "{message}"
    );
    assert!(
        verify
            .check_item(&format!("port {unit}"))
            .is_some_and(|(_, message)| message.contains("answers 200"))
    );

    // --check plans nothing on a converged host and changes nothing.
    let planned = host.run(&["apply", "--check"], &document);
    assert_eq!(planned.code, 0, "{}", planned.describe());
    assert!(!planned.changed(), "{:?}", planned.actions());

    // A new image under the same tag: pull records it (and the digest before), apply recreates.
    // The first image loses its tag then: remove it by id at the end.
    host.images.push(recreated.image_id.clone());
    host.image_in_registry(&registry, &repository, "second");
    let pulled = host.run(&["pull"], &document);
    assert_eq!(pulled.code, 0, "{}", pulled.describe());
    assert_eq!(pulled.document["container"]["previous_image_digest"], json!(digest));
    let new_digest = pulled.document["container"]["image_digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    assert_ne!(new_digest, digest);
    document = pulled.next_input();
    let restarted = host.run(&["apply"], &document);
    assert_eq!(restarted.code, 0, "{}", restarted.describe());
    assert!(
        restarted.has_action(&format!("recreate container {} (image changed: ", host.unit)),
        "{:?}",
        restarted.actions()
    );
    let on_new = host
        .docker
        .inspect_container(&host.unit)
        .expect("inspect")
        .expect("exists");
    assert_ne!(on_new.image_id, recreated.image_id);
    assert_eq!(
        http_get(port, "/healthcheck/").map(|(status, _)| status).ok(),
        Some(200)
    );
}

#[test]
fn a_container_that_exits_at_once_fails_showing_its_log() {
    let mut host = TestHost::new("exits");
    let image = host.build_test_image("exits");
    let document = host.document(json!({
        "supervisor": "docker",
        "image": image,
        "role": "command",
        "command": ["exit_with", "3"],
    }));
    let run = host.run(&["apply"], &document);
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(run.msg().contains("exited at once ("), "{}", run.msg());
    assert!(
        run.msg().contains("exiting with 3"),
        "the log's last lines are shown: {}",
        run.msg()
    );
}

#[test]
fn the_plugin_image_in_the_document_is_what_runs() {
    let mut host = TestHost::new("plugin");
    pretix_testkit::image::build_stand_in_image_blocking().expect("build the stand-in image");
    let custom = host.build_test_image("plugins");
    let mut document = host.document(json!({
        "supervisor": "docker",
        "image": pretix_testkit::image::STAND_IN_TAG,
        "role": "webworker",
    }));
    document["plugins"] = json!({"built": {
        "image": custom,
        "id": "sha256:0",
        "base": format!("pretix/standalone@sha256:{}", "0".repeat(64)),
        "loaded_plugins": [],
    }});
    let run = host.run(&["apply"], &document);
    assert_eq!(run.code, 0, "{}", run.describe());
    let custom_id = host.docker.inspect_image(&custom).expect("inspect").expect("built").id;
    let container = host
        .docker
        .inspect_container(&host.unit)
        .expect("inspect")
        .expect("created");
    assert_eq!(container.image_id, custom_id);
    assert!(
        run.warnings()
            .iter()
            .any(|warning| warning.contains("run pretix-plugin apply to rebuild it on the current base")),
        "{:?}",
        run.warnings()
    );

    document["plugins"]["built"]["image"] = json!(format!("{}:absent", crate::support::unique("absent")));
    let missing = host.run(&["apply"], &document);
    assert_eq!(missing.code, 1, "{}", missing.describe());
    assert!(
        missing.msg().contains("is not on this host: run pretix-plugin apply"),
        "{}",
        missing.msg()
    );
}
