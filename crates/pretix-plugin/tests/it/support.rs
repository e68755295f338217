//! A base image in a real local registry, pulled as pretix-unit pulls it, and the tool binary.

use std::process::Command;

use pretix_site::docker::{BuildSpec, Docker, ImageRef, PullEvent};
use pretix_testkit::image::{STAND_IN_TAG, build_stand_in_image_blocking, push_to_registry};
use pretix_testkit::{Registry, ToolRun, run_tool};
use serde_json::Value;

/// A name no other test (or engineer) uses: the test's name, the pid and a random suffix.
pub fn unique(test: &str) -> String {
    format!(
        "pretix-plugin-it-{test}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// A test's Docker objects: a registry serving the base, the images made, removed on drop.
pub struct Fixture {
    pub docker: Docker,
    /// Kept for its drop: the registry stops with the fixture.
    _registry: Option<Registry>,
    /// `<registry>/<unique>/standalone`.
    pub base_repository: String,
    /// The custom image's repository for this test.
    pub repository: String,
    pub root: tempfile::TempDir,
    images: Vec<String>,
    test: String,
}

impl Fixture {
    /// With the stand-in built and a registry to publish bases in.
    pub fn new(test: &str) -> Fixture {
        build_stand_in_image_blocking().unwrap_or_else(|error| panic!("build the stand-in image: {error}"));
        let registry = Registry::start();
        let base_repository = format!("{}/{}/standalone", registry.addr(), unique(test));
        Fixture {
            docker: Docker::connect(None).unwrap_or_else(|error| panic!("{error}")),
            _registry: Some(registry),
            base_repository,
            repository: unique(test),
            root: tempfile::tempdir().expect("tempdir"),
            images: Vec::new(),
            test: test.to_owned(),
        }
    }

    /// Without a registry: for a base that is already on this host (the real image).
    pub fn on_local_base(test: &str) -> Fixture {
        Fixture {
            docker: Docker::connect(None).unwrap_or_else(|error| panic!("{error}")),
            _registry: None,
            base_repository: String::new(),
            repository: unique(test),
            root: tempfile::tempdir().expect("tempdir"),
            images: Vec::new(),
            test: test.to_owned(),
        }
    }

    /// Publishes a new version of the base (the stand-in plus a label `version`) as
    /// `<base_repository>:stable`, pulls it as pretix-unit does, and returns its registry digest.
    pub fn publish_base(&mut self, version: &str) -> String {
        let local = format!("{}:base-{version}", unique(&self.test));
        self.images.push(local.clone());
        let dockerfile = format!("FROM {STAND_IN_TAG}\nLABEL org.pretix-toolkit.test-base=\"{version}\"\n");
        let context = tar_context(&[("Dockerfile", dockerfile.as_bytes())]);
        self.docker
            .build(context, &BuildSpec::new(&local), &mut |_| {})
            .unwrap_or_else(|error| panic!("{error}"));
        let (registry, repository) = self
            .base_repository
            .split_once('/')
            .map(|(registry, repository)| (registry.to_owned(), repository.to_owned()))
            .expect("registry/repository");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let remote = runtime.block_on(async {
            let client = pretix_testkit::image::connect().await.expect("docker");
            push_to_registry(&client, &local, &registry, &repository, "stable")
                .await
                .expect("push to the local registry")
        });
        self.images.push(remote.clone());
        let _ = self.docker.remove_image(&remote);
        let reference = ImageRef::parse(&remote).unwrap_or_else(|error| panic!("{error}"));
        let pulled = self
            .docker
            .pull(&reference, &mut |_: &PullEvent| {})
            .unwrap_or_else(|error| panic!("{error}"));
        self.images.push(reference.pinned(&pulled.digest));
        pulled.digest
    }

    /// The document: the base as pretix-unit left it (image and pulled digest) and `plugins`.
    pub fn document(&self, digest: &str, plugins: Value) -> Value {
        let mut plugins = plugins;
        plugins["image"] = Value::String(self.repository.clone());
        serde_json::json!({
            "container": {"image": format!("{}:stable", self.base_repository), "image_digest": digest},
            "plugins": plugins,
        })
    }

    /// Runs the tool with `--root` (the host lock and local plugin paths live there).
    pub fn run(&mut self, verb: &str, document: &Value) -> ToolRun {
        self.run_with(&[verb], document)
    }

    /// Runs the tool with these arguments and `--root`.
    pub fn run_with(&mut self, args: &[&str], document: &Value) -> ToolRun {
        let root = self.root.path().display().to_string();
        let run = run_tool(
            Command::new(env!("CARGO_BIN_EXE_pretix-plugin"))
                .args(args)
                .args(["--root", &root]),
            document,
        );
        if let Some(image) = run.document["plugins"]["built"]["image"].as_str() {
            self.images.push(image.to_owned());
        }
        run
    }

    /// Registers an image for removal.
    pub fn forget_later(&mut self, image: &str) {
        self.images.push(image.to_owned());
    }

    /// A file of an image, e.g. the stand-in's build log.
    pub fn read_from_image(&self, image: &str, path: &str) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let client = pretix_testkit::image::connect().await.expect("docker");
            let bytes = pretix_testkit::image::read_file_from_image(&client, image, path)
                .await
                .unwrap_or_else(|error| panic!("{error}"));
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for image in self.images.iter().rev() {
            let _ = self.docker.remove_image(image);
        }
    }
}

pub fn tar_context(files: &[(&str, &[u8])]) -> Vec<u8> {
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

/// A wheel file's bytes are not looked at by the stand-in's pip3: any content does.
pub fn write_wheel(dir: &std::path::Path, file_name: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let path = dir.join(file_name);
    std::fs::write(&path, b"PK stand-in wheel").expect("write the wheel");
    path
}
