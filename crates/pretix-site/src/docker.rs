//! The one Docker seam: a narrow, synchronous adapter over the Docker Engine API (bollard).
//!
//! Tools are synchronous; each [`Docker`] owns a current-thread tokio runtime and blocks on it, so
//! tool code never sees async. Everything the tools need and nothing more: pull (with progress)
//! returning the registry digest, inspect an image, build from an in-memory tar context, exec in a
//! running container, create/start/stop/remove/recreate a container from a [`ContainerSpec`],
//! inspect a container, and the last lines of its log.
//!
//! Errors are typed ([`DockerError`]) and carry what to check; they become
//! [`ToolError::Failed`] (exit 1) at the tool's edge. A daemon that does not answer is
//! [`DockerError::Unreachable`], naming the socket, never a panic.
//!
//! Tests run against the real engine (`tests/it/docker.rs`); there is no fake of Docker.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig, PortBinding, RestartPolicyNameEnum};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder, InspectContainerOptions,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

use crate::error::ToolError;

/// The daemon's socket when the document names none (the guide's setup).
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// How long the first contact with the daemon may take before it counts as not answering.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to Docker. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "the Docker daemon does not answer at {endpoint} ({reason}): check that Docker is installed and running \
         (systemctl status docker), and that container.docker_host names its socket"
    )]
    Unreachable { endpoint: String, reason: String },
    #[error(
        "the Docker daemon at {endpoint} refused access ({reason}): run as root or as a member of the docker group"
    )]
    PermissionDenied { endpoint: String, reason: String },
    #[error(
        "{endpoint} is not a Docker endpoint this toolkit can use: give unix:///path/to/docker.sock or tcp://host:port"
    )]
    BadEndpoint { endpoint: String },
    #[error("image {image} is not on this host: pull it first")]
    ImageNotFound { image: String },
    #[error("container {name} does not exist")]
    ContainerNotFound { name: String },
    #[error("container {name} is not running: start it first (systemctl start, or pretix-unit apply)")]
    ContainerNotRunning { name: String },
    #[error("pulling {image} failed: {message}: check the image name and tag, and that this host reaches the registry")]
    Pull { image: String, message: String },
    #[error("building {tag} failed: {message}\nthe last lines of the build log:\n{log_tail}")]
    Build {
        tag: String,
        message: String,
        /// The end of the build log, the part that says why.
        log_tail: String,
        /// The whole build log.
        log: String,
    },
    #[error("docker: {action} failed: {message}")]
    Api { action: String, message: String },
}

impl From<DockerError> for ToolError {
    fn from(error: DockerError) -> Self {
        ToolError::Failed(anyhow::Error::new(error))
    }
}

/// A connection to one Docker daemon, usable from synchronous code.
pub struct Docker {
    runtime: tokio::runtime::Runtime,
    client: bollard::Docker,
    endpoint: String,
}

impl fmt::Debug for Docker {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Docker")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// Checks a `container.docker_host` value without connecting: `unix:///abs/path` or
/// `tcp://host:port` (plain HTTP, for a daemon on loopback or behind an SSH tunnel).
pub fn validate_endpoint(endpoint: &str) -> Result<(), String> {
    if endpoint.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("contains whitespace or control characters".to_owned());
    }
    if let Some(path) = endpoint.strip_prefix("unix://") {
        if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
            return Err("a unix socket must be an absolute path without `..`: unix:///var/run/docker.sock".to_owned());
        }
        return Ok(());
    }
    if let Some(address) = endpoint.strip_prefix("tcp://") {
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| "a tcp endpoint needs a port: tcp://127.0.0.1:2375".to_owned())?;
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        {
            return Err(format!("`{host}` is not a host name or IPv4 address"));
        }
        port.parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| format!("`{port}` is not a port"))?;
        return Ok(());
    }
    Err("give unix:///path/to/docker.sock or tcp://host:port".to_owned())
}

impl Docker {
    /// Connects to `endpoint` (unset: [`DEFAULT_ENDPOINT`]; `DOCKER_HOST` is deliberately not
    /// read: the document says which daemon, so a run does not depend on the caller's shell),
    /// checks that the daemon answers, and agrees on an API version (Debian 12's docker.io speaks
    /// API 1.41).
    pub fn connect(endpoint: Option<&str>) -> Result<Docker, DockerError> {
        let endpoint = endpoint.unwrap_or(DEFAULT_ENDPOINT).to_owned();
        validate_endpoint(&endpoint).map_err(|_| DockerError::BadEndpoint {
            endpoint: endpoint.clone(),
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| DockerError::Api {
                action: "start the async runtime".to_owned(),
                message: error.to_string(),
            })?;
        let unreachable = |reason: String| DockerError::Unreachable {
            endpoint: endpoint.clone(),
            reason,
        };
        let client = if let Some(path) = endpoint.strip_prefix("unix://") {
            if !std::path::Path::new(path).exists() {
                return Err(unreachable(format!("{path} does not exist")));
            }
            bollard::Docker::connect_with_unix(&endpoint, 120, bollard::API_DEFAULT_VERSION)
        } else {
            let address = endpoint.replacen("tcp://", "http://", 1);
            bollard::Docker::connect_with_http(&address, 120, bollard::API_DEFAULT_VERSION)
        }
        .map_err(|error| unreachable(error.to_string()))?;
        let client = runtime.block_on(async {
            match tokio::time::timeout(PING_TIMEOUT, client.negotiate_version()).await {
                Ok(Ok(client)) => Ok(client),
                Ok(Err(error)) => Err(connection_error(&endpoint, &error)),
                Err(_) => Err(unreachable(format!("no answer within {} s", PING_TIMEOUT.as_secs()))),
            }
        })?;
        Ok(Docker {
            runtime,
            client,
            endpoint,
        })
    }

    /// The endpoint this connection talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Pulls `image`, reporting progress to `progress`, and returns the image's id and registry
    /// digest (`sha256:...`, the value to pin or roll back to).
    pub fn pull(&self, image: &ImageRef, progress: &mut dyn PullProgress) -> Result<PulledImage, DockerError> {
        let shown = image.to_string();
        let options = CreateImageOptionsBuilder::default()
            .from_image(&image.repository)
            .tag(image.pull_tag())
            .build();
        let digest_from_stream = self.runtime.block_on(async {
            let mut stream = self.client.create_image(Some(options), None, None);
            let mut digest = None;
            while let Some(message) = stream.next().await {
                let info = message.map_err(|error| match self.classify(&error) {
                    Some(connection) => connection,
                    None => DockerError::Pull {
                        image: shown.clone(),
                        message: server_message(&error),
                    },
                })?;
                if let Some(detail) = info.error_detail.and_then(|detail| detail.message) {
                    return Err(DockerError::Pull {
                        image: shown.clone(),
                        message: detail,
                    });
                }
                let status = info.status.unwrap_or_default();
                if let Some(found) = status.strip_prefix("Digest: ") {
                    digest = Some(found.trim().to_owned());
                }
                let (current, total) = info
                    .progress_detail
                    .map(|detail| (detail.current, detail.total))
                    .unwrap_or_default();
                progress.event(&PullEvent {
                    layer: info.id,
                    status,
                    current: current.and_then(|value| u64::try_from(value).ok()),
                    total: total.and_then(|value| u64::try_from(value).ok()),
                });
            }
            Ok(digest)
        });
        progress.finish();
        let digest_from_stream = digest_from_stream?;
        let inspected = self.inspect_image(&shown)?.ok_or_else(|| DockerError::Pull {
            image: shown.clone(),
            message: "the daemon reported success but has no such image".to_owned(),
        })?;
        let digest = digest_from_stream
            .or_else(|| image.digest.clone())
            .or_else(|| inspected.digest_for(&image.repository))
            .ok_or_else(|| DockerError::Pull {
                image: shown.clone(),
                message: "the registry gave no digest for it".to_owned(),
            })?;
        Ok(PulledImage {
            id: inspected.id,
            digest,
        })
    }

    /// The image `reference` (a name, a tag, a digest reference or an id), or `None` when the
    /// host does not have it.
    pub fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, DockerError> {
        let inspected = match self.runtime.block_on(self.client.inspect_image(reference)) {
            Ok(inspected) => inspected,
            Err(error) if status_code(&error) == Some(404) => return Ok(None),
            Err(error) => return Err(self.api_error(format!("inspect image {reference}"), &error)),
        };
        Ok(Some(ImageInfo {
            id: inspected.id.unwrap_or_default(),
            repo_tags: inspected.repo_tags.unwrap_or_default(),
            repo_digests: inspected.repo_digests.unwrap_or_default(),
            labels: inspected
                .config
                .and_then(|config| config.labels)
                .map(|labels| labels.into_iter().collect())
                .unwrap_or_default(),
        }))
    }

    /// Removes an image (by tag or id). `Ok(false)` when there was none.
    pub fn remove_image(&self, reference: &str) -> Result<bool, DockerError> {
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        match self
            .runtime
            .block_on(self.client.remove_image(reference, Some(options), None))
        {
            Ok(_) => Ok(true),
            Err(error) if status_code(&error) == Some(404) => Ok(false),
            Err(error) => Err(self.api_error(format!("remove image {reference}"), &error)),
        }
    }

    /// Builds an image from an in-memory tar `context`, streaming each log line to `log`, and
    /// tags it `spec.tag`. A failed build returns [`DockerError::Build`] with the log.
    pub fn build(
        &self,
        context: Vec<u8>,
        spec: &BuildSpec,
        log: &mut dyn FnMut(&str),
    ) -> Result<BuiltImage, DockerError> {
        let labels: HashMap<&str, &str> = spec.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let build_args: HashMap<&str, &str> = spec.build_args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(&spec.dockerfile)
            .t(&spec.tag)
            .rm(true)
            .forcerm(true)
            .pull(if spec.pull { "1" } else { "" })
            .nocache(spec.no_cache)
            .labels(&labels)
            .buildargs(&build_args)
            .build();
        let mut full_log = String::new();
        let outcome: Result<(), (String, bool)> = self.runtime.block_on(async {
            let mut stream = self
                .client
                .build_image(options, None, Some(bollard::body_full(context.into())));
            while let Some(message) = stream.next().await {
                let info = match message {
                    Ok(info) => info,
                    Err(error) => {
                        let connection = self.classify(&error).is_some();
                        return Err((server_message(&error), connection));
                    }
                };
                if let Some(detail) = info.error_detail.and_then(|detail| detail.message) {
                    return Err((detail, false));
                }
                for text in [info.stream, info.status].into_iter().flatten() {
                    full_log.push_str(&text);
                    if !text.ends_with('\n') {
                        full_log.push('\n');
                    }
                    for line in text.lines().filter(|line| !line.trim().is_empty()) {
                        log(line);
                    }
                }
            }
            Ok(())
        });
        if let Err((message, connection)) = outcome {
            if connection {
                return Err(DockerError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    reason: message,
                });
            }
            return Err(DockerError::Build {
                tag: spec.tag.clone(),
                message,
                log_tail: last_lines(&full_log, 30),
                log: full_log,
            });
        }
        let image = self.inspect_image(&spec.tag)?.ok_or_else(|| DockerError::Build {
            tag: spec.tag.clone(),
            message: "the daemon reported success but the tag is missing".to_owned(),
            log_tail: last_lines(&full_log, 30),
            log: full_log.clone(),
        })?;
        Ok(BuiltImage {
            id: image.id,
            log: full_log,
        })
    }

    /// Runs `command` in the running container `container`, streaming its output to `output`
    /// as it comes, and returns its exit code.
    pub fn exec(
        &self,
        container: &str,
        command: &[String],
        options: &ExecOptions,
        output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<i64, DockerError> {
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(command.to_vec()),
            user: options.user.clone(),
            env: (!options.env.is_empty()).then(|| options.env.clone()),
            working_dir: options.working_dir.clone(),
            ..ExecConfig::default()
        };
        let action = || format!("exec {} in {container}", command.join(" "));
        let created = match self.runtime.block_on(self.client.create_exec(container, config)) {
            Ok(created) => created,
            Err(error) => {
                return Err(match status_code(&error) {
                    Some(404) => DockerError::ContainerNotFound {
                        name: container.to_owned(),
                    },
                    Some(409) => DockerError::ContainerNotRunning {
                        name: container.to_owned(),
                    },
                    _ => self.api_error(action(), &error),
                });
            }
        };
        self.runtime.block_on(async {
            let started = self
                .client
                .start_exec(&created.id, None)
                .await
                .map_err(|error| self.api_error(action(), &error))?;
            if let bollard::exec::StartExecResults::Attached { output: mut stream, .. } = started {
                while let Some(chunk) = stream.next().await {
                    match chunk.map_err(|error| self.api_error(action(), &error))? {
                        bollard::container::LogOutput::StdErr { message } => output(OutputStream::Stderr, &message),
                        bollard::container::LogOutput::StdOut { message }
                        | bollard::container::LogOutput::Console { message } => output(OutputStream::Stdout, &message),
                        bollard::container::LogOutput::StdIn { .. } => {}
                    }
                }
            }
            let inspected = self
                .client
                .inspect_exec(&created.id)
                .await
                .map_err(|error| self.api_error(action(), &error))?;
            inspected.exit_code.ok_or_else(|| DockerError::Api {
                action: action(),
                message: "the daemon reported no exit code".to_owned(),
            })
        })
    }

    /// Creates (not starts) the container `spec` describes; returns its id.
    pub fn create_container(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        match self
            .runtime
            .block_on(self.client.create_container(Some(options), spec.to_create_body()))
        {
            Ok(created) => Ok(created.id),
            Err(error) if status_code(&error) == Some(404) => Err(DockerError::ImageNotFound {
                image: spec.image.clone(),
            }),
            Err(error) => Err(self.api_error(format!("create container {}", spec.name), &error)),
        }
    }

    /// Starts a container; one already running is left alone.
    pub fn start_container(&self, name: &str) -> Result<(), DockerError> {
        match self.runtime.block_on(self.client.start_container(name, None)) {
            Ok(()) => Ok(()),
            Err(error) if status_code(&error) == Some(304) => Ok(()),
            Err(error) if status_code(&error) == Some(404) => {
                Err(DockerError::ContainerNotFound { name: name.to_owned() })
            }
            Err(error) => Err(self.api_error(format!("start container {name}"), &error)),
        }
    }

    /// Stops a container (SIGTERM, then SIGKILL after `grace`); a stopped one is left alone.
    pub fn stop_container(&self, name: &str, grace: Duration) -> Result<(), DockerError> {
        let seconds = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(seconds).build();
        match self.runtime.block_on(self.client.stop_container(name, Some(options))) {
            Ok(()) => Ok(()),
            Err(error) if status_code(&error) == Some(304) => Ok(()),
            Err(error) if status_code(&error) == Some(404) => {
                Err(DockerError::ContainerNotFound { name: name.to_owned() })
            }
            Err(error) => Err(self.api_error(format!("stop container {name}"), &error)),
        }
    }

    /// Removes a container, running or not, with its anonymous volumes. `Ok(false)` when there
    /// was none.
    pub fn remove_container(&self, name: &str) -> Result<bool, DockerError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.runtime.block_on(self.client.remove_container(name, Some(options))) {
            Ok(()) => Ok(true),
            Err(error) if status_code(&error) == Some(404) => Ok(false),
            Err(error) => Err(self.api_error(format!("remove container {name}"), &error)),
        }
    }

    /// Replaces the container named `spec.name` (if any) by a new one from `spec`, and starts it.
    pub fn recreate_container(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        self.remove_container(&spec.name)?;
        let id = self.create_container(spec)?;
        self.start_container(&spec.name)?;
        Ok(id)
    }

    /// The container `name`, or `None` when there is none.
    pub fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>, DockerError> {
        let inspected = match self
            .runtime
            .block_on(self.client.inspect_container(name, None::<InspectContainerOptions>))
        {
            Ok(inspected) => inspected,
            Err(error) if status_code(&error) == Some(404) => return Ok(None),
            Err(error) => return Err(self.api_error(format!("inspect container {name}"), &error)),
        };
        Ok(Some(ContainerInfo::from_inspect(inspected)))
    }

    /// The last `lines` lines of the container's log (stdout and stderr, interleaved as logged).
    pub fn log_tail(&self, name: &str, lines: usize) -> Result<Vec<String>, DockerError> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let text = self.runtime.block_on(async {
            let mut stream = self.client.logs(name, Some(options));
            let mut text = String::new();
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(output) => text.push_str(&String::from_utf8_lossy(&output.into_bytes())),
                    Err(error) if status_code(&error) == Some(404) => {
                        return Err(DockerError::ContainerNotFound { name: name.to_owned() });
                    }
                    Err(error) => return Err(self.api_error(format!("read the log of {name}"), &error)),
                }
            }
            Ok(text)
        })?;
        let all: Vec<String> = text.lines().map(str::to_owned).collect();
        Ok(all[all.len().saturating_sub(lines)..].to_vec())
    }

    fn classify(&self, error: &bollard::errors::Error) -> Option<DockerError> {
        connection_problem(&self.endpoint, error)
    }

    fn api_error(&self, action: String, error: &bollard::errors::Error) -> DockerError {
        self.classify(error).unwrap_or_else(|| DockerError::Api {
            action,
            message: server_message(error),
        })
    }
}

/// A connection-level failure (daemon gone, socket refused), or `None` for an API answer.
fn connection_problem(endpoint: &str, error: &bollard::errors::Error) -> Option<DockerError> {
    use bollard::errors::Error;
    let reason = error_chain(error);
    match error {
        Error::SocketNotFoundError(_) | Error::RequestTimeoutError | Error::HyperLegacyError { .. } => {
            if reason.contains("ermission denied") {
                Some(DockerError::PermissionDenied {
                    endpoint: endpoint.to_owned(),
                    reason,
                })
            } else {
                Some(DockerError::Unreachable {
                    endpoint: endpoint.to_owned(),
                    reason,
                })
            }
        }
        Error::IOError { err } if err.kind() == std::io::ErrorKind::PermissionDenied => {
            Some(DockerError::PermissionDenied {
                endpoint: endpoint.to_owned(),
                reason,
            })
        }
        Error::IOError { .. } | Error::HyperResponseError { .. } => Some(DockerError::Unreachable {
            endpoint: endpoint.to_owned(),
            reason,
        }),
        _ => None,
    }
}

fn connection_error(endpoint: &str, error: &bollard::errors::Error) -> DockerError {
    connection_problem(endpoint, error).unwrap_or_else(|| DockerError::Unreachable {
        endpoint: endpoint.to_owned(),
        reason: server_message(error),
    })
}

/// The error and its sources on one line ("client error (Connect): Connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn status_code(error: &bollard::errors::Error) -> Option<u16> {
    match error {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The daemon's own message when it gave one, lowercase as ours are.
fn server_message(error: &bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.trim().to_owned(),
        other => error_chain(other),
    }
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// A validated image reference: `[registry[:port]/]path[:tag][@digest]`, as Docker's reference
/// grammar allows, and nothing that could be read as an option or break a unit file line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Everything before the tag and digest, registry included (`pretix/standalone`,
    /// `127.0.0.1:5000/pretix/standalone`).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses and validates a reference; the error says what is wrong with it.
    pub fn parse(reference: &str) -> Result<ImageRef, String> {
        if reference.is_empty() {
            return Err("is empty: give an image such as pretix/standalone:stable".to_owned());
        }
        if let Some(bad) = reference
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@')))
        {
            return Err(format!(
                "contains {bad:?}: an image reference holds only letters, digits and . _ - / : @"
            ));
        }
        let (name_and_tag, digest) = match reference.split_once('@') {
            Some((name, digest)) => {
                validate_digest(digest)?;
                (name, Some(digest.to_owned()))
            }
            None => (reference, None),
        };
        // A tag is after the last `:` that comes after the last `/` (a registry port is not a tag).
        let last_slash = name_and_tag.rfind('/').map_or(0, |index| index + 1);
        let (repository, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(index) => {
                let split = last_slash + index;
                (&name_and_tag[..split], Some(name_and_tag[split + 1..].to_owned()))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = &tag {
            validate_tag(tag)?;
        }
        validate_repository(repository)?;
        Ok(ImageRef {
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest, else the tag, else `latest`.
    pub fn pull_tag(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// `repository@digest`: the reference that names exactly one image, for pinning.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.repository)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(formatter, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(formatter, "@{digest}")?;
        }
        Ok(())
    }
}

fn validate_digest(digest: &str) -> Result<(), String> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("digest `{digest}` is not sha256:<64 hex digits>"))?;
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        return Err(format!("digest `{digest}` is not sha256:<64 lowercase hex digits>"));
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok
        || tag.len() > 128
        || !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!(
            "tag `{tag}` is not a Docker tag (up to 128 letters, digits, _ . -, not starting with . or -)"
        ));
    }
    Ok(())
}

fn validate_repository(repository: &str) -> Result<(), String> {
    if repository.len() > 255 {
        return Err("the repository name is longer than 255 characters".to_owned());
    }
    let mut components: Vec<&str> = repository.split('/').collect();
    // The first component is a registry when it has a `.` or a `:` or is `localhost`.
    if components.len() > 1 && (components[0].contains(['.', ':']) || components[0] == "localhost") {
        let registry = components.remove(0);
        let (host, port) = match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        };
        let host_ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port > 0));
        if !host_ok || !port_ok {
            return Err(format!("registry `{registry}` is not host[:port]"));
        }
    }
    for component in components {
        if !is_path_component(component) {
            return Err(format!(
                "`{component}` is not a repository name component (lowercase letters and digits, separated by \
                 one . or _, two _, or dashes)"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        if alnum(bytes[index]) {
            index += 1;
            continue;
        }
        let start = index;
        while index < bytes.len() && !alnum(bytes[index]) {
            index += 1;
        }
        let separator = &component[start..index];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// What [`Docker::pull`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The local image id (`sha256:...` of the config).
    pub id: String,
    /// The registry's manifest digest (`sha256:...`).
    pub digest: String,
}

/// An image on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    pub repo_tags: Vec<String>,
    /// `repository@sha256:...` for each registry the image came from.
    pub repo_digests: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

impl ImageInfo {
    /// The registry digest of this image in `repository`, if it came from a registry.
    pub fn digest_for(&self, repository: &str) -> Option<String> {
        let wanted = normalize_repository(repository);
        self.repo_digests.iter().find_map(|entry| {
            let (name, digest) = entry.split_once('@')?;
            (normalize_repository(name) == wanted).then(|| digest.to_owned())
        })
    }
}

/// Docker Hub's implicit names: `docker.io/library/x` and `x` are the same repository.
fn normalize_repository(repository: &str) -> &str {
    let without_registry = repository
        .strip_prefix("docker.io/")
        .or_else(|| repository.strip_prefix("index.docker.io/"))
        .unwrap_or(repository);
    without_registry.strip_prefix("library/").unwrap_or(without_registry)
}

/// How to build an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The tag the result gets (`mypretix:latest`).
    pub tag: String,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    /// Pull a newer base image even when one is on the host.
    pub pull: bool,
    pub no_cache: bool,
    pub labels: BTreeMap<String, String>,
    /// `--build-arg`s. They end up in the image's history: never put a secret here.
    pub build_args: BTreeMap<String, String>,
}

impl BuildSpec {
    pub fn new(tag: impl Into<String>) -> Self {
        BuildSpec {
            tag: tag.into(),
            dockerfile: "Dockerfile".to_owned(),
            pull: false,
            no_cache: false,
            labels: BTreeMap::new(),
            build_args: BTreeMap::new(),
        }
    }
}

/// What [`Docker::build`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub id: String,
    pub log: String,
}

/// Options of [`Docker::exec`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// `uid[:gid]` or a user name; unset: the container's user.
    pub user: Option<String>,
    /// Extra `KEY=value` variables for the command.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
}

/// Which stream a piece of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// A published port: `host_ip:host_port:container_port/tcp`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PublishedPort {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
}

/// When Docker restarts the container by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Never (systemd supervises it).
    #[default]
    No,
    /// Always, unless it was stopped by hand (the `docker` supervisor).
    UnlessStopped,
    Always,
    OnFailure,
}

impl RestartPolicy {
    fn to_model(self) -> RestartPolicyNameEnum {
        match self {
            RestartPolicy::No => RestartPolicyNameEnum::NO,
            RestartPolicy::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
            RestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
            RestartPolicy::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        }
    }

    fn from_model(name: Option<RestartPolicyNameEnum>) -> Self {
        match name {
            Some(RestartPolicyNameEnum::UNLESS_STOPPED) => RestartPolicy::UnlessStopped,
            Some(RestartPolicyNameEnum::ALWAYS) => RestartPolicy::Always,
            Some(RestartPolicyNameEnum::ON_FAILURE) => RestartPolicy::OnFailure,
            _ => RestartPolicy::No,
        }
    }
}

/// Everything that defines a container, as `docker run` flags would.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// The command after the image (the entrypoint's arguments).
    pub command: Vec<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    /// `host:container[:options]` bind mounts.
    pub binds: Vec<String>,
    pub ports: Vec<PublishedPort>,
    pub sysctls: BTreeMap<String, String>,
    pub group_add: Vec<String>,
    pub restart: RestartPolicy,
    pub labels: BTreeMap<String, String>,
}

impl ContainerSpec {
    fn to_create_body(&self) -> ContainerCreateBody {
        let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for port in &self.ports {
            port_bindings
                .entry(format!("{}/tcp", port.container_port))
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: Some(port.host_ip.clone()),
                    host_port: Some(port.host_port.to_string()),
                });
        }
        let exposed: Vec<String> = {
            let mut keys: Vec<String> = port_bindings.keys().cloned().collect();
            keys.sort();
            keys
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: (!self.command.is_empty()).then(|| self.command.clone()),
            env: Some(self.env.clone()),
            labels: Some(self.labels.clone().into_iter().collect()),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(HostConfig {
                binds: Some(self.binds.clone()),
                port_bindings: Some(port_bindings),
                sysctls: (!self.sysctls.is_empty()).then(|| self.sysctls.clone().into_iter().collect()),
                group_add: (!self.group_add.is_empty()).then(|| self.group_add.clone()),
                restart_policy: Some(bollard::models::RestartPolicy {
                    name: Some(self.restart.to_model()),
                    maximum_retry_count: None,
                }),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        }
    }
}

/// A container as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerInfo {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// The id of the image it runs (`sha256:...`).
    pub image_id: String,
    /// The image reference it was created from.
    pub image: String,
    /// `created`, `running`, `restarting`, `exited`, ...
    pub status: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub restart_count: i64,
    /// `starting`, `healthy`, `unhealthy`; `None` when the image has no health check.
    pub health: Option<String>,
    pub command: Vec<String>,
    pub env: Vec<String>,
    /// The binds as created (`host:container[:options]`).
    pub binds: Vec<String>,
    pub mounts: Vec<MountInfo>,
    pub ports: Vec<PublishedPort>,
    pub sysctls: BTreeMap<String, String>,
    pub group_add: Vec<String>,
    pub restart: RestartPolicy,
    pub labels: BTreeMap<String, String>,
}

/// One mount of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// `bind` or `volume`.
    pub kind: String,
    pub source: String,
    pub destination: String,
    pub read_write: bool,
}

impl ContainerInfo {
    fn from_inspect(inspected: bollard::models::ContainerInspectResponse) -> Self {
        let state = inspected.state.unwrap_or_default();
        let config = inspected.config.unwrap_or_default();
        let host = inspected.host_config.unwrap_or_default();
        let mut ports: Vec<PublishedPort> = host
            .port_bindings
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(container_port, bindings)| {
                let container_port = container_port
                    .split('/')
                    .next()
                    .and_then(|port| port.parse().ok())
                    .unwrap_or(0);
                bindings
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |binding| PublishedPort {
                        host_ip: binding.host_ip.unwrap_or_default(),
                        host_port: binding.host_port.and_then(|port| port.parse().ok()).unwrap_or(0),
                        container_port,
                    })
            })
            .collect();
        ports.sort();
        let health = state
            .health
            .and_then(|health| health.status)
            .map(|status| status.to_string())
            .filter(|status| !status.is_empty() && status != "none");
        ContainerInfo {
            id: inspected.id.unwrap_or_default(),
            name: inspected
                .name
                .map(|name| name.trim_start_matches('/').to_owned())
                .unwrap_or_default(),
            image_id: inspected.image.unwrap_or_default(),
            image: config.image.unwrap_or_default(),
            status: state.status.map(|status| status.to_string()).unwrap_or_default(),
            running: state.running.unwrap_or(false),
            exit_code: state.exit_code,
            error: state.error.filter(|error| !error.is_empty()),
            started_at: state.started_at,
            restart_count: inspected.restart_count.unwrap_or(0),
            health,
            command: config.cmd.unwrap_or_default(),
            env: config.env.unwrap_or_default(),
            binds: host.binds.unwrap_or_default(),
            mounts: inspected
                .mounts
                .unwrap_or_default()
                .into_iter()
                .map(|mount| MountInfo {
                    kind: mount.typ.map(|kind| kind.to_string()).unwrap_or_default(),
                    source: mount.source.unwrap_or_default(),
                    destination: mount.destination.unwrap_or_default(),
                    read_write: mount.rw.unwrap_or(false),
                })
                .collect(),
            ports,
            sysctls: host.sysctls.unwrap_or_default().into_iter().collect(),
            group_add: host.group_add.unwrap_or_default(),
            restart: RestartPolicy::from_model(host.restart_policy.and_then(|policy| policy.name)),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
        }
    }
}

/// One progress message of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullEvent {
    /// The layer (short id) the message is about; `None` or the tag for the image as a whole.
    pub layer: Option<String>,
    /// `Pulling fs layer`, `Downloading`, `Pull complete`, `Digest: sha256:...`, ...
    pub status: String,
    /// Bytes done and expected, while downloading or extracting.
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// Where pull progress goes.
pub trait PullProgress {
    fn event(&mut self, event: &PullEvent);
    /// Called once when the pull ends, successfully or not.
    fn finish(&mut self) {}
}

impl<F: FnMut(&PullEvent)> PullProgress for F {
    fn event(&mut self, event: &PullEvent) {
        self(event)
    }
}

/// Pull progress for humans on stderr: one bar per layer (bytes) when stderr is a terminal; a
/// few plain lines otherwise (the image-wide messages and a summary), so logs stay short.
pub struct StderrProgress {
    prefix: String,
    bars: Option<(indicatif::MultiProgress, BTreeMap<String, indicatif::ProgressBar>)>,
    hidden: bool,
    layers_done: usize,
    bytes: BTreeMap<String, u64>,
}

impl StderrProgress {
    /// Progress lines start with `prefix` (the tool's name).
    pub fn new(prefix: &str) -> Self {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| (indicatif::MultiProgress::new(), BTreeMap::new()));
        StderrProgress {
            prefix: prefix.to_owned(),
            bars,
            hidden: false,
            layers_done: 0,
            bytes: BTreeMap::new(),
        }
    }

    /// Shows nothing (`-q`, Ansible mode).
    pub fn hidden() -> Self {
        StderrProgress {
            prefix: String::new(),
            bars: None,
            hidden: true,
            layers_done: 0,
            bytes: BTreeMap::new(),
        }
    }

    fn bar(&mut self, layer: &str) -> Option<&indicatif::ProgressBar> {
        let (multi, bars) = self.bars.as_mut()?;
        Some(bars.entry(layer.to_owned()).or_insert_with(|| {
            let bar = multi.add(indicatif::ProgressBar::new(0));
            let style = indicatif::ProgressStyle::with_template("{prefix} {msg:<18} [{bar:30}] {bytes}/{total_bytes}")
                .map(|style| style.progress_chars("=> "))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(layer.to_owned());
            bar
        }))
    }
}

impl PullProgress for StderrProgress {
    fn event(&mut self, event: &PullEvent) {
        if self.hidden {
            return;
        }
        let is_layer =
            event.layer.is_some() && event.status != "Pulling from" && !event.status.starts_with("Pulling from");
        if let (true, Some(layer)) = (is_layer, &event.layer) {
            if event.status == "Downloading"
                && let Some(total) = event.total
            {
                self.bytes.insert(layer.clone(), total);
            }
            if event.status == "Pull complete" || event.status == "Already exists" {
                self.layers_done += 1;
            }
            if let Some(bar) = self.bar(layer) {
                bar.set_message(event.status.clone());
                if let Some(total) = event.total {
                    bar.set_length(total);
                }
                if let Some(current) = event.current {
                    bar.set_position(current);
                }
                if event.status == "Pull complete" || event.status == "Already exists" {
                    // A layer the host already had, or one whose size never came: no byte counts.
                    if bar.length().unwrap_or(0) == 0
                        && let Ok(style) = indicatif::ProgressStyle::with_template("{prefix} {msg}")
                    {
                        bar.set_style(style);
                    }
                    bar.finish();
                }
            }
            return;
        }
        let line = match &event.layer {
            Some(tag) if event.status.starts_with("Pulling from") => {
                format!("{}: {} ({tag})", self.prefix, event.status)
            }
            _ => format!("{}: {}", self.prefix, event.status),
        };
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn finish(&mut self) {
        if self.hidden {
            return;
        }
        if let Some((multi, bars)) = self.bars.take() {
            for bar in bars.values() {
                bar.finish();
            }
            let _ = multi.clear();
        }
        if self.layers_done > 0 {
            let total: u64 = self.bytes.values().sum();
            eprintln!(
                "{}: {} layers, {} downloaded",
                self.prefix,
                self.layers_done,
                indicatif::HumanBytes(total)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_the_guide_and_registries_use_are_accepted() {
        let plain = ImageRef::parse("pretix/standalone:stable").unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(plain.repository, "pretix/standalone");
        assert_eq!(plain.tag.as_deref(), Some("stable"));
        let local =
            ImageRef::parse("127.0.0.1:5000/pretix/standalone:2026.8.0").unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(local.repository, "127.0.0.1:5000/pretix/standalone");
        assert_eq!(local.pull_tag(), "2026.8.0");
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = ImageRef::parse(&format!("pretix/standalone@{digest}")).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(pinned.pull_tag(), digest);
        assert_eq!(pinned.tag, None);
        let untagged = ImageRef::parse("localhost:5000/mypretix").unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(untagged.pull_tag(), "latest");
        assert_eq!(untagged.to_string(), "localhost:5000/mypretix");
    }

    #[test]
    fn image_references_that_could_inject_are_refused() {
        for bad in [
            "",
            "-v/:/host",
            "pretix/standalone:stable --privileged",
            "pretix/standalone:stable\nExecStartPre=/bin/sh",
            "pretix/standalone:$(id)",
            "Pretix/Standalone",
            "pretix//standalone",
            "pretix/standalone:.hidden",
            "pretix/standalone@sha256:abc",
            "pretix/standalone:stable;rm",
            "pretix/standalone:%n",
            "../standalone",
            "-registry:5000/x",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn endpoints_are_unix_sockets_or_tcp_addresses() {
        assert!(validate_endpoint("unix:///var/run/docker.sock").is_ok());
        assert!(validate_endpoint("tcp://127.0.0.1:2375").is_ok());
        for bad in [
            "/var/run/docker.sock",
            "unix://docker.sock",
            "ssh://host",
            "tcp://host",
            "unix:///a b",
        ] {
            assert!(validate_endpoint(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn digests_are_found_for_the_repository_they_were_pulled_from() {
        let image = ImageInfo {
            id: "sha256:1".to_owned(),
            repo_tags: Vec::new(),
            repo_digests: vec![
                "127.0.0.1:5000/pretix/standalone@sha256:aaa".to_owned(),
                "pretix/standalone@sha256:bbb".to_owned(),
            ],
            labels: BTreeMap::new(),
        };
        assert_eq!(
            image.digest_for("docker.io/pretix/standalone").as_deref(),
            Some("sha256:bbb")
        );
        assert_eq!(
            image.digest_for("127.0.0.1:5000/pretix/standalone").as_deref(),
            Some("sha256:aaa")
        );
        assert_eq!(image.digest_for("other/image"), None);
    }
}
