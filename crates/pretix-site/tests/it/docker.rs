//! The Docker seam against the real engine: the stand-in image served by a local registry, real
//! containers with real mounts, ports and sysctls. Every name is unique to the test run and
//! removed on drop; nothing else on the engine is touched.

use std::collections::BTreeMap;
use std::time::Duration;

use pretix_site::docker::{
    BuildSpec, ContainerSpec, Docker, DockerError, ExecOptions, ImageRef, OutputStream, PublishedPort, PullEvent,
    RestartPolicy,
};
use pretix_testkit::image::{STAND_IN_TAG, build_stand_in_image_blocking, push_to_registry};
use pretix_testkit::{Registry, free_port, http_get, wait_until};

/// A name no other test (or engineer) uses: the test's name, the pid and a random suffix.
fn unique(test: &str) -> String {
    format!(
        "pretix-site-{test}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Removes the containers and images a test made, even when it fails.
struct Cleanup {
    docker: Docker,
    containers: Vec<String>,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = self.docker.remove_container(name);
        }
        for image in &self.images {
            let _ = self.docker.remove_image(image);
        }
    }
}

fn connect() -> Docker {
    Docker::connect(None).unwrap_or_else(|error| panic!("{error}"))
}

fn tar_context(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut archive = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, name, *bytes)
            .expect("append to the tar");
    }
    archive.into_inner().expect("finish the tar")
}

/// Builds an image on the stand-in with one layer of its own (so a pull has bytes to download),
/// pushes it to `registry` and removes the local copy. Returns the reference in the registry.
fn image_in_registry(docker: &Docker, cleanup: &mut Cleanup, registry: &Registry, test: &str) -> String {
    build_stand_in_image_blocking().expect("build the stand-in image");
    let local = format!("{}:built", unique(test));
    cleanup.images.push(local.clone());
    // A layer of its own that does not compress away: the stand-in's layers are already on the
    // engine ("Already exists"), so this is the layer whose download shows byte progress (Docker
    // reports it every 512 KiB).
    let mut marker = format!("{}\n", unique(test)).into_bytes();
    let mut noise = vec![0u8; 2 * 1024 * 1024];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").expect("urandom"), &mut noise)
        .expect("random bytes");
    marker.extend_from_slice(&noise);
    let dockerfile = format!("FROM {STAND_IN_TAG}\nCOPY marker /etc/pretix-marker\n");
    let context = tar_context(&[("Dockerfile", dockerfile.as_bytes()), ("marker", &marker)]);
    docker
        .build(context, &BuildSpec::new(&local), &mut |_| {})
        .unwrap_or_else(|error| panic!("{error}"));
    let repository = unique(test);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let remote = runtime.block_on(async {
        let client = pretix_testkit::image::connect().await.expect("docker");
        push_to_registry(&client, &local, &registry.addr(), &repository, "stable")
            .await
            .expect("push to the local registry")
    });
    cleanup.images.push(remote.clone());
    docker.remove_image(&remote).expect("remove the pushed tag");
    docker.remove_image(&local).expect("remove the local build");
    remote
}

#[test]
fn a_daemon_that_does_not_answer_is_a_clear_error_naming_the_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = format!("unix://{}/docker.sock", dir.path().display());
    let error = Docker::connect(Some(&missing)).expect_err("no daemon there");
    assert!(matches!(error, DockerError::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&missing) && message.contains("systemctl status docker"),
        "{message}"
    );

    // A socket file nobody listens on (a daemon that died and left its socket).
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let stale = format!("unix://{}", stale.display());
    let error = Docker::connect(Some(&stale)).expect_err("nobody listens");
    assert!(matches!(error, DockerError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains(&stale), "{error}");

    let error = Docker::connect(Some("ssh://somewhere")).expect_err("not an endpoint");
    assert!(matches!(error, DockerError::BadEndpoint { .. }), "{error:?}");
}

#[test]
fn pull_reports_per_layer_progress_and_returns_the_registry_digest() {
    let docker = connect();
    let mut cleanup = Cleanup {
        docker: connect(),
        containers: Vec::new(),
        images: Vec::new(),
    };
    let registry = Registry::start();
    let remote = image_in_registry(&docker, &mut cleanup, &registry, "pull");
    let reference = ImageRef::parse(&remote).unwrap_or_else(|error| panic!("{error}"));

    let mut events: Vec<PullEvent> = Vec::new();
    let pulled = docker
        .pull(&reference, &mut |event: &PullEvent| events.push(event.clone()))
        .unwrap_or_else(|error| panic!("{error}"));

    assert!(
        pulled.digest.starts_with("sha256:") && pulled.digest.len() == 71,
        "{pulled:?}"
    );
    let downloading: Vec<&PullEvent> = events
        .iter()
        .filter(|event| event.status == "Downloading" && event.current.is_some() && event.total.is_some())
        .collect();
    assert!(!downloading.is_empty(), "no byte progress of a layer: {events:?}");
    assert!(
        events
            .iter()
            .any(|event| event.status == "Pull complete" && event.layer.is_some()),
        "{events:?}"
    );
    let image = docker
        .inspect_image(&remote)
        .unwrap_or_else(|error| panic!("{error}"))
        .expect("the pulled image is on the host");
    assert_eq!(image.id, pulled.id);
    assert_eq!(
        image.digest_for(&reference.repository).as_deref(),
        Some(pulled.digest.as_str())
    );
    assert_eq!(
        image.labels.get("org.pretix-toolkit.stand-in").map(String::as_str),
        Some("1")
    );

    // The digest reference pulls the same image; nothing new to download.
    let pinned = ImageRef::parse(&reference.pinned(&pulled.digest)).unwrap_or_else(|error| panic!("{error}"));
    let again = docker
        .pull(&pinned, &mut |_: &PullEvent| {})
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(again, pulled);

    // A tag the registry does not have: a pull error that says what to check.
    let missing = ImageRef::parse(&format!("{}:no-such-tag", reference.repository)).expect("valid reference");
    let error = docker.pull(&missing, &mut |_: &PullEvent| {}).expect_err("no such tag");
    assert!(matches!(error, DockerError::Pull { .. }), "{error:?}");
    assert!(error.to_string().contains("no-such-tag"), "{error}");
    assert_eq!(docker.inspect_image(&missing.to_string()).expect("inspect"), None);
}

#[test]
fn a_failed_build_returns_its_log_and_a_good_one_its_labels() {
    let docker = connect();
    let mut cleanup = Cleanup {
        docker: connect(),
        containers: Vec::new(),
        images: Vec::new(),
    };
    build_stand_in_image_blocking().expect("build the stand-in image");
    let tag = format!("{}:bad", unique("build"));
    cleanup.images.push(tag.clone());
    let dockerfile = format!("FROM {STAND_IN_TAG}\nRUN echo the plugin did not install >&2; exit 3\n");
    let mut streamed = Vec::new();
    let error = docker
        .build(
            tar_context(&[("Dockerfile", dockerfile.as_bytes())]),
            &BuildSpec::new(&tag),
            &mut |line| streamed.push(line.to_owned()),
        )
        .expect_err("the RUN fails");
    match &error {
        DockerError::Build { log, message, .. } => {
            assert!(log.contains("the plugin did not install"), "{log}");
            assert!(message.contains("returned a non-zero code: 3"), "{message}");
        }
        other => panic!("not a build error: {other:?}"),
    }
    assert!(error.to_string().contains("the plugin did not install"), "{error}");
    assert!(streamed.iter().any(|line| line.contains("Step 2/2")), "{streamed:?}");
    assert_eq!(docker.inspect_image(&tag).expect("inspect"), None);

    let tag = format!("{}:good", unique("build"));
    cleanup.images.push(tag.clone());
    let mut spec = BuildSpec::new(&tag);
    spec.labels
        .insert("org.pretix-toolkit.test".to_owned(), "labelled".to_owned());
    let built = docker
        .build(
            tar_context(&[("Dockerfile", format!("FROM {STAND_IN_TAG}\n").as_bytes())]),
            &spec,
            &mut |_| {},
        )
        .unwrap_or_else(|error| panic!("{error}"));
    let image = docker.inspect_image(&tag).expect("inspect").expect("built");
    assert_eq!(image.id, built.id);
    assert_eq!(
        image.labels.get("org.pretix-toolkit.test").map(String::as_str),
        Some("labelled")
    );
    assert!(image.repo_tags.contains(&tag), "{image:?}");
}

#[test]
fn a_container_runs_as_specified_execs_stream_and_it_is_recreated_and_removed() {
    let docker = connect();
    build_stand_in_image_blocking().expect("build the stand-in image");
    let name = unique("container");
    let cleanup = Cleanup {
        docker: connect(),
        containers: vec![name.clone()],
        images: Vec::new(),
    };
    let data = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::chown(data.path(), Some(15371), Some(15371)).expect("chown");
    let config = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let spec = ContainerSpec {
        name: name.clone(),
        image: STAND_IN_TAG.to_owned(),
        command: vec!["all".to_owned()],
        env: vec!["AUTOMIGRATE=skip".to_owned(), "NUM_WORKERS=3".to_owned()],
        binds: vec![
            format!("{}:/data", data.path().display()),
            format!("{}:/etc/pretix:ro", config.path().display()),
        ],
        ports: vec![PublishedPort {
            host_ip: "127.0.0.1".to_owned(),
            host_port: port,
            container_port: 80,
        }],
        sysctls: BTreeMap::from([("net.core.somaxconn".to_owned(), "4096".to_owned())]),
        group_add: vec!["4242".to_owned()],
        restart: RestartPolicy::UnlessStopped,
        labels: BTreeMap::from([("org.pretix-toolkit.test".to_owned(), name.clone())]),
    };
    assert_eq!(docker.inspect_container(&name).expect("inspect"), None);
    let id = docker
        .recreate_container(&spec)
        .unwrap_or_else(|error| panic!("{error}"));

    wait_until(
        "the stand-in answering /healthcheck/",
        Duration::from_secs(20),
        || http_get(port, "/healthcheck/").is_ok_and(|(status, _)| status == 200),
        || {
            docker
                .log_tail(&name, 20)
                .map(|lines| lines.join("\n"))
                .unwrap_or_default()
        },
    );
    let info = docker.inspect_container(&name).expect("inspect").expect("it exists");
    assert_eq!(info.id, id);
    assert_eq!(info.name, name);
    assert!(info.running && info.status == "running", "{info:?}");
    assert_eq!(info.image, STAND_IN_TAG);
    assert!(info.image_id.starts_with("sha256:"), "{info:?}");
    assert_eq!(info.command, vec!["all".to_owned()]);
    assert!(info.env.contains(&"AUTOMIGRATE=skip".to_owned()) && info.env.contains(&"NUM_WORKERS=3".to_owned()));
    assert_eq!(info.binds, spec.binds);
    let data_mount = info
        .mounts
        .iter()
        .find(|mount| mount.destination == "/data")
        .expect("/data mounted");
    assert!(data_mount.read_write && data_mount.kind == "bind", "{data_mount:?}");
    let config_mount = info
        .mounts
        .iter()
        .find(|mount| mount.destination == "/etc/pretix")
        .expect("/etc/pretix mounted");
    assert!(!config_mount.read_write, "{config_mount:?}");
    assert_eq!(info.ports, spec.ports);
    assert_eq!(info.sysctls, spec.sysctls);
    assert_eq!(info.group_add, spec.group_add);
    assert_eq!(info.restart, RestartPolicy::UnlessStopped);
    assert_eq!(info.restart_count, 0);
    assert_eq!(info.health, None, "the stand-in has no HEALTHCHECK");
    // The image's labels are the container's too, with the spec's on top.
    assert_eq!(info.labels.get("org.pretix-toolkit.test"), Some(&name));
    assert_eq!(
        info.labels.get("org.pretix-toolkit.stand-in").map(String::as_str),
        Some("1")
    );

    // The sysctl is in effect inside, and the extra group is the process's.
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let code = docker
        .exec(
            &name,
            &[
                "sh".to_owned(),
                "-c".to_owned(),
                "cat /proc/sys/net/core/somaxconn; id -G; echo to-stderr >&2; exit 7".to_owned(),
            ],
            &ExecOptions::default(),
            &mut |stream, bytes| match stream {
                OutputStream::Stdout => stdout.extend_from_slice(bytes),
                OutputStream::Stderr => stderr.extend_from_slice(bytes),
            },
        )
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(code, 7);
    let stdout = String::from_utf8_lossy(&stdout);
    assert!(stdout.starts_with("4096\n"), "{stdout}");
    assert!(stdout.contains("4242"), "{stdout}");
    assert_eq!(String::from_utf8_lossy(&stderr), "to-stderr\n");

    let options = ExecOptions {
        user: Some("0".to_owned()),
        env: vec!["PROBE=yes".to_owned()],
        working_dir: Some("/data".to_owned()),
    };
    let mut output = String::new();
    let code = docker
        .exec(
            &name,
            &["sh".to_owned(), "-c".to_owned(), "id -u; echo $PROBE; pwd".to_owned()],
            &options,
            &mut |_, bytes| output.push_str(&String::from_utf8_lossy(bytes)),
        )
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!((code, output.as_str()), (0, "0\nyes\n/data\n"));

    let log = docker.log_tail(&name, 5).expect("log");
    assert!(
        log.len() <= 5 && log.iter().any(|line| line.contains("pretix stand-in: args=all")),
        "{log:?}"
    );

    // Recreated with a changed spec: a new container with the new env.
    let mut changed = spec.clone();
    changed.env = vec!["AUTOMIGRATE=skip".to_owned(), "NUM_WORKERS=5".to_owned()];
    let new_id = docker
        .recreate_container(&changed)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_ne!(new_id, id);
    let info = docker.inspect_container(&name).expect("inspect").expect("it exists");
    assert!(
        info.env.contains(&"NUM_WORKERS=5".to_owned()) && info.running,
        "{info:?}"
    );

    docker
        .stop_container(&name, Duration::from_secs(5))
        .unwrap_or_else(|error| panic!("{error}"));
    docker
        .stop_container(&name, Duration::from_secs(5))
        .expect("stopping a stopped container is no error");
    let info = docker.inspect_container(&name).expect("inspect").expect("it exists");
    assert!(!info.running && info.status == "exited", "{info:?}");
    let error = docker
        .exec(&name, &["true".to_owned()], &ExecOptions::default(), &mut |_, _| {})
        .expect_err("not running");
    assert!(matches!(error, DockerError::ContainerNotRunning { .. }), "{error:?}");
    docker.start_container(&name).unwrap_or_else(|error| panic!("{error}"));
    assert!(
        docker
            .inspect_container(&name)
            .expect("inspect")
            .is_some_and(|info| info.running)
    );

    assert!(docker.remove_container(&name).expect("remove"));
    assert!(!docker.remove_container(&name).expect("remove again"));
    assert_eq!(docker.inspect_container(&name).expect("inspect"), None);
    let error = docker
        .exec(&name, &["true".to_owned()], &ExecOptions::default(), &mut |_, _| {})
        .expect_err("gone");
    assert!(matches!(error, DockerError::ContainerNotFound { .. }), "{error:?}");
    let error = docker.log_tail(&name, 5).expect_err("gone");
    assert!(matches!(error, DockerError::ContainerNotFound { .. }), "{error:?}");

    let mut missing_image = spec.clone();
    missing_image.image = format!("{}:absent", unique("container"));
    let error = docker.create_container(&missing_image).expect_err("no such image");
    assert!(matches!(error, DockerError::ImageNotFound { .. }), "{error:?}");
    drop(cleanup);
}
