//! The stand-in `pretix/standalone` image (`images/standalone-stand-in/`), built through the
//! Docker API from the host's busybox-static, and helpers to push it to a test [`Registry`] and
//! run containers that are removed again even when a test fails.
//!
//! [`Registry`]: crate::Registry

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder, PushImageOptionsBuilder,
    RemoveContainerOptionsBuilder, TagImageOptionsBuilder, WaitContainerOptions,
};
use futures_util::StreamExt;

use crate::INSTALL_SCRIPT;

const DOCKERFILE: &str = include_str!("../../../images/standalone-stand-in/Dockerfile");
const ENTRYPOINT: &str = include_str!("../../../images/standalone-stand-in/pretix.sh");
const PASSWD: &str = include_str!("../../../images/standalone-stand-in/passwd");
const GROUP: &str = include_str!("../../../images/standalone-stand-in/group");
const PIP3: &str = include_str!("../../../images/standalone-stand-in/pip3");
const MAKE: &str = include_str!("../../../images/standalone-stand-in/make");

/// The tag tests use for the locally built stand-in.
pub const STAND_IN_TAG: &str = "pretix/standalone:stand-in";

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A Docker client, or an error saying the daemon does not answer.
pub async fn connect() -> Result<Docker, Error> {
    let docker = Docker::connect_with_local_defaults()?;
    docker.ping().await.map_err(|error| {
        format!("the Docker daemon does not answer ({error}): start dockerd; {INSTALL_SCRIPT} installs docker.io")
    })?;
    Ok(docker)
}

/// The build context: the Dockerfile, busybox-static, the entrypoint and the user database.
fn build_context() -> Result<Vec<u8>, Error> {
    let busybox = std::fs::read("/bin/busybox")
        .map_err(|error| format!("read /bin/busybox ({error}): run {INSTALL_SCRIPT} to install busybox-static"))?;
    let mut archive = tar::Builder::new(Vec::new());
    for (name, bytes, mode) in [
        ("Dockerfile", DOCKERFILE.as_bytes(), 0o644),
        ("busybox", busybox.as_slice(), 0o755),
        ("pretix.sh", ENTRYPOINT.as_bytes(), 0o755),
        ("passwd", PASSWD.as_bytes(), 0o644),
        ("group", GROUP.as_bytes(), 0o644),
        ("pip3", PIP3.as_bytes(), 0o755),
        ("make", MAKE.as_bytes(), 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(u64::try_from(bytes.len())?);
        header.set_mode(mode);
        header.set_cksum();
        archive.append_data(&mut header, name, bytes)?;
    }
    Ok(archive.into_inner()?)
}

/// Builds the stand-in image as `tag` (the classic builder; any build error is an Err).
pub async fn build_stand_in_image(docker: &Docker, tag: &str) -> Result<(), Error> {
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(build_context()?.into())));
    while let Some(message) = stream.next().await {
        let info = message?;
        if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
            return Err(format!("building the stand-in image failed: {error}").into());
        }
    }
    Ok(())
}

/// Tags `local_tag` as `<registry>/<repository>:<tag>` and pushes it there.
pub async fn push_to_registry(
    docker: &Docker,
    local_tag: &str,
    registry: &str,
    repository: &str,
    tag: &str,
) -> Result<String, Error> {
    let remote = format!("{registry}/{repository}");
    docker
        .tag_image(
            local_tag,
            Some(TagImageOptionsBuilder::default().repo(&remote).tag(tag).build()),
        )
        .await?;
    let mut stream = docker.push_image(&remote, Some(PushImageOptionsBuilder::default().tag(tag).build()), None);
    while let Some(message) = stream.next().await {
        let info = message?;
        if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
            return Err(format!("pushing {remote}:{tag} failed: {error}").into());
        }
    }
    Ok(format!("{remote}:{tag}"))
}

/// Pulls `image` (`repository:tag`), e.g. from a test registry.
pub async fn pull(docker: &Docker, image: &str) -> Result<(), Error> {
    let (repository, tag) = image.rsplit_once(':').ok_or("an image name needs a :tag")?;
    let mut stream = docker.create_image(
        Some(
            CreateImageOptionsBuilder::default()
                .from_image(repository)
                .tag(tag)
                .build(),
        ),
        None,
        None,
    );
    while let Some(message) = stream.next().await {
        let info = message?;
        if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
            return Err(format!("pulling {image} failed: {error}").into());
        }
    }
    Ok(())
}

/// How to run one container.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<String>,
    /// `host:container` bind mounts.
    pub binds: Vec<String>,
    /// Publish the container's port 80 on 127.0.0.1:<port>.
    pub publish_80_on: Option<u16>,
    pub group_add: Vec<String>,
    /// Replaces the image's entrypoint when set (e.g. `["id"]`).
    pub entrypoint: Option<Vec<String>>,
}

/// A container of a test; removed (forcefully) on drop.
pub struct Container {
    pub id: String,
    runtime: Option<tokio::runtime::Runtime>,
    docker: Docker,
}

impl Container {
    /// Creates and starts a container. It is removed when the value is dropped.
    pub fn start(spec: &RunSpec) -> Result<Container, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let docker = runtime.block_on(connect())?;
        let mut port_bindings = HashMap::new();
        if let Some(port) = spec.publish_80_on {
            port_bindings.insert(
                "80/tcp".to_owned(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
                    host_port: Some(port.to_string()),
                }]),
            );
        }
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
            entrypoint: spec.entrypoint.clone(),
            env: Some(spec.env.clone()),
            exposed_ports: spec.publish_80_on.map(|_| vec!["80/tcp".to_owned()]),
            host_config: Some(HostConfig {
                binds: Some(spec.binds.clone()),
                port_bindings: Some(port_bindings),
                group_add: Some(spec.group_add.clone()),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let name = format!("pretix-testkit-{}", std::process::id()) + &format!("-{}", crate::free_port());
        let created = runtime.block_on(
            docker.create_container(Some(CreateContainerOptionsBuilder::default().name(&name).build()), body),
        )?;
        let container = Container {
            id: created.id,
            runtime: Some(runtime),
            docker,
        };
        container.block_on(container.docker.start_container(&container.id, None))?;
        Ok(container)
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        match &self.runtime {
            Some(runtime) => runtime.block_on(future),
            None => unreachable_runtime(),
        }
    }

    /// The container's output so far (stdout and stderr interleaved), for assertion messages.
    pub fn logs(&self) -> String {
        let options = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut stream = self.docker.logs(&self.id, Some(options));
        let mut text = String::new();
        self.block_on(async {
            while let Some(Ok(chunk)) = stream.next().await {
                text.push_str(&chunk.to_string());
            }
        });
        text
    }

    /// Runs `argv` in the running container as its user (like `docker exec`); returns the exit
    /// code and the output (stdout and stderr interleaved).
    pub fn exec(&self, argv: &[&str]) -> Result<(i64, String), Error> {
        self.block_on(async {
            let exec = self
                .docker
                .create_exec(
                    &self.id,
                    bollard::exec::CreateExecOptions {
                        cmd: Some(argv.iter().map(|word| (*word).to_owned()).collect()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..bollard::exec::CreateExecOptions::default()
                    },
                )
                .await?;
            let mut text = String::new();
            if let bollard::exec::StartExecResults::Attached { mut output, .. } =
                self.docker.start_exec(&exec.id, None).await?
            {
                while let Some(chunk) = output.next().await {
                    text.push_str(&chunk?.to_string());
                }
            }
            let code = self.docker.inspect_exec(&exec.id).await?.exit_code.unwrap_or(-1);
            Ok((code, text))
        })
    }

    /// Waits for the container to exit and returns its exit code.
    pub fn wait(&self) -> Result<i64, Error> {
        let mut stream = self.docker.wait_container(&self.id, None::<WaitContainerOptions>);
        let outcome = self.block_on(stream.next());
        match outcome {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(error)) => Err(error.into()),
            None => Err("the container's wait stream ended without a status".into()),
        }
    }
}

fn unreachable_runtime() -> ! {
    panic!("a Container always holds its runtime until it is dropped")
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            let _ = runtime.block_on(self.docker.remove_container(&self.id, Some(options)));
        }
    }
}

/// Reads one file out of an image (a created, never started container, removed again): what a
/// build left in the image, e.g. the stand-in's `/pretix/stand-in-build.log`.
pub async fn read_file_from_image(docker: &Docker, image: &str, path: &str) -> Result<Vec<u8>, Error> {
    let name = format!("pretix-testkit-read-{}-{}", std::process::id(), crate::free_port());
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        ..ContainerCreateBody::default()
    };
    docker
        .create_container(Some(CreateContainerOptionsBuilder::default().name(&name).build()), body)
        .await?;
    let mut archive = Vec::new();
    let mut stream = docker.download_from_container(
        &name,
        Some(
            bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
                .path(path)
                .build(),
        ),
    );
    let mut outcome: Result<(), Error> = Ok(());
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => archive.extend_from_slice(&bytes),
            Err(error) => {
                outcome = Err(format!("read {path} from {image}: {error}").into());
                break;
            }
        }
    }
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    let _ = docker.remove_container(&name, Some(options)).await;
    outcome?;
    let mut tar = tar::Archive::new(archive.as_slice());
    let mut entry = tar
        .entries()?
        .next()
        .ok_or_else(|| format!("{path} is not in {image}"))??;
    let mut content = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut content)?;
    Ok(content)
}

/// Builds the stand-in (once per call) as [`STAND_IN_TAG`], blocking.
pub fn build_stand_in_image_blocking() -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let docker = connect().await?;
        build_stand_in_image(&docker, STAND_IN_TAG).await
    })
}
