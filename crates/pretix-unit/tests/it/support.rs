//! A test host: temp dirs for every path, a unique container name, the stand-in image (or one
//! built on it) in a local registry, and cleanup of every container and image on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use pretix_site::docker::{BuildSpec, Docker};
use pretix_testkit::image::{STAND_IN_TAG, build_stand_in_image_blocking, push_to_registry};
use pretix_testkit::{Registry, ToolRun};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_pretix-unit");

/// `pretix <args>` in the test image: `exit_with N` prints and exits with N; everything else is
/// the stand-in's entrypoint.
const WRAPPER: &str = "#!/bin/sh\nif [ \"$1\" = exit_with ]; then echo \"exiting with $2\"; echo to-stderr >&2; exit \"$2\"; fi\nexec /usr/local/bin/pretix-stand-in \"$@\"\n";

pub fn unique(test: &str) -> String {
    format!("pretix-unit-{test}-{}-{:08x}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|time| time.subsec_nanos())
        .unwrap_or_default();
    nanos ^ std::process::id().rotate_left(16)
}

/// Paths of one test host, all in one temp dir; containers and images removed on drop.
pub struct TestHost {
    pub dir: tempfile::TempDir,
    pub unit: String,
    pub docker: Docker,
    pub images: Vec<String>,
    pub containers: Vec<String>,
}

impl TestHost {
    pub fn new(test: &str) -> TestHost {
        let dir = tempfile::Builder::new()
            .prefix("pretix-unit-")
            .tempdir()
            .expect("tempdir");
        for sub in ["data", "config", "units", "state", "extra", "lock", "secrets"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        std::os::unix::fs::chown(dir.path().join("data"), Some(15371), Some(15371)).expect("chown data");
        let unit = format!("{}.service", unique(test));
        TestHost {
            dir,
            containers: vec![unit.clone()],
            unit,
            docker: Docker::connect(None).unwrap_or_else(|error| panic!("{error}")),
            images: Vec::new(),
        }
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// A document for this host: every path in the temp dir, the given container section on top.
    pub fn document(&self, container: Value) -> Value {
        let mut section = json!({
            "unit": self.unit,
            "unit_dir": self.path("units"),
            "state_dir": self.path("state"),
            "start_timeout_seconds": 60,
        });
        if let (Some(section), Some(extra)) = (section.as_object_mut(), container.as_object()) {
            for (key, value) in extra {
                section.insert(key.clone(), value.clone());
            }
        }
        json!({
            "paths": {
                "data_dir": self.path("data"),
                "config_dir": self.path("config"),
                "secrets_dir": self.path("secrets"),
                "lock_file": self.path("lock/lock"),
                "env_file": self.path("secrets/pretix.env"),
            },
            "container": section,
        })
    }

    /// Builds an image on the stand-in whose `pretix` also answers `exit_with N`, with a layer of
    /// its own (`marker`), pushes it to `registry` as `<repository>:stable` and removes the
    /// local copies, so the tool has to pull it. Returns the reference.
    pub fn image_in_registry(&mut self, registry: &Registry, repository: &str, marker: &str) -> String {
        let local = self.build_test_image(marker);
        let runtime = tokio_runtime();
        let remote = runtime.block_on(async {
            let client = pretix_testkit::image::connect().await.expect("docker");
            push_to_registry(&client, &local, &registry.addr(), repository, "stable")
                .await
                .expect("push to the local registry")
        });
        self.images.push(remote.clone());
        self.docker.remove_image(&remote).expect("remove the pushed tag");
        self.docker.remove_image(&local).expect("remove the local build");
        remote
    }

    /// The test image, built locally (tagged uniquely).
    pub fn build_test_image(&mut self, marker: &str) -> String {
        build_stand_in_image_blocking().expect("build the stand-in image");
        let tag = format!("{}:built", unique("image"));
        self.images.push(tag.clone());
        let dockerfile = format!(
            "FROM {STAND_IN_TAG}\nUSER root\nRUN mv /usr/local/bin/pretix /usr/local/bin/pretix-stand-in\nCOPY pretix /usr/local/bin/pretix\nCOPY marker /etc/pretix-test-marker\nUSER 15371:15371\n"
        );
        let context = tar_context(&[
            ("Dockerfile", dockerfile.as_bytes(), 0o644),
            ("pretix", WRAPPER.as_bytes(), 0o755),
            ("marker", marker.as_bytes(), 0o644),
        ]);
        self.docker
            .build(context, &BuildSpec::new(&tag), &mut |_| {})
            .unwrap_or_else(|error| panic!("{error}"));
        tag
    }

    pub fn run(&self, args: &[&str], document: &Value) -> ToolRun {
        run_with(Command::new(BIN).args(args), document)
    }

    /// A run with systemctl calls recorded to `systemctl.log` in the temp dir.
    pub fn run_recorded(&self, args: &[&str], document: &Value) -> ToolRun {
        run_with(
            Command::new(BIN)
                .args(args)
                .env(pretix_site::service::RECORD_ENV, self.path("systemctl.log")),
            document,
        )
    }

    pub fn systemctl_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("systemctl.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|call| {
                call["argv"]
                    .as_array()
                    .map(|words| words.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default()
            })
            .collect()
    }

    pub fn files_under(&self, sub: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(sub))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = self.docker.remove_container(name);
        }
        for image in &self.images {
            let _ = self.docker.remove_image(image);
        }
    }
}

pub fn run_with(command: &mut Command, document: &Value) -> ToolRun {
    pretix_testkit::run_tool(command, document)
}

pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn tar_context(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut archive = tar::Builder::new(Vec::new());
    for (name, bytes, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(*mode);
        header.set_cksum();
        archive
            .append_data(&mut header, name, *bytes)
            .expect("append to the tar");
    }
    archive.into_inner().expect("finish the tar")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}
