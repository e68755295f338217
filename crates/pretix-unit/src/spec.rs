//! The container spec: the `container` section (with `paths` and what pretix-redis added),
//! validated, resolved into one [`Instance`] per container. Pure: the host's memory and CPUs come
//! in as [`HostFacts`], so the same document always gives the same spec.
//!
//! Everything that reaches a `docker run` line or the unit file is checked here, before anything
//! changes: image references, unit names, addresses and ports, queue names, commands,
//! environment names and values, volumes and groups. A refused value is exit 2.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pretix_site::ToolError;
use pretix_site::docker::{ContainerSpec, ImageRef, PublishedPort, RestartPolicy, validate_endpoint};
use pretix_site::fs::validate_host_path;
use pretix_site::sections::{Container, ContainerInstance, ContainerRole, HostPaths, Paths, Supervisor};

use crate::workers::{self, HostFacts};

/// The celery queues pretix uses.
pub const KNOWN_QUEUES: &[&str] = &["default", "checkout", "mail", "background", "notifications"];

/// The label holding the spec a `docker`-supervised container was created from.
pub const SPEC_LABEL: &str = "org.pretix-toolkit.spec";
/// The label naming the tool that manages a container.
pub const MANAGED_LABEL: &str = "org.pretix-toolkit.managed-by";

/// The guide's ufw warning, for a port published beyond loopback.
pub const PUBLIC_BIND_WARNING: &str = "the container's port is published on a non-loopback address: Docker's \
                                       published ports bypass ufw's rules, so anyone who reaches that address \
                                       reaches pretix without the TLS proxy; keep bind_address 127.0.0.1 unless \
                                       you really mean it";

/// The desired state of every container.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The base image: pulled, its digest recorded.
    pub image: ImageRef,
    /// The custom image pretix-plugin built on the base, when there is one: what the containers run.
    pub plugin_image: Option<PluginImage>,
    /// The host (and port) of `config.pretix.url`: pretix answers only requests for it (400
    /// "Unknown host" otherwise), so the health check asks for it.
    pub site_host: Option<String>,
    pub supervisor: Supervisor,
    pub docker_host: Option<String>,
    pub unit_dir: PathBuf,
    pub state_dir: PathBuf,
    pub start_timeout: Duration,
    pub instances: Vec<Instance>,
    /// Said on every run (a public bind, an automigrate race, an unknown queue).
    pub warnings: Vec<String>,
    /// Said on every run (the NUM_WORKERS choice).
    pub notes: Vec<String>,
}

/// `tickets.example.org` of `https://tickets.example.org/`, `host:8080` of `http://host:8080`.
pub fn site_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    (!host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c)))
        .then(|| host.to_owned())
}

/// The custom image of pretix-plugin (`plugins.built`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginImage {
    pub reference: ImageRef,
    /// The base it was built on, pinned (`repository@sha256:...`, or an image id).
    pub base: String,
}

impl Desired {
    /// The image the containers run: pretix-plugin's custom image, else the base.
    pub fn run_image(&self) -> String {
        match &self.plugin_image {
            Some(plugin) => plugin.reference.to_string(),
            None => self.image.to_string(),
        }
    }
}

/// Reads `plugins.built` (pretix-plugin's, passed raw): the image to run instead of the base.
pub fn plugin_image(plugins: Option<&serde_json::Value>) -> Result<Option<PluginImage>, ToolError> {
    let Some(built) = plugins
        .and_then(|plugins| plugins.get("built"))
        .filter(|built| !built.is_null())
    else {
        return Ok(None);
    };
    let image = built.get("image").and_then(serde_json::Value::as_str).ok_or_else(|| {
        ToolError::input(
            "plugins.built.image",
            "is missing: pretix-plugin writes it; run pretix-plugin apply again",
        )
    })?;
    let reference = ImageRef::parse(image).map_err(|message| ToolError::input("plugins.built.image", message))?;
    let base = built
        .get("base")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(Some(PluginImage { reference, base }))
}

/// One container, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The unit name, which is also the container name.
    pub unit: String,
    pub role: ContainerRole,
    /// The entrypoint's arguments (`all`; `taskworker -Q checkout --concurrency 4`; a command).
    pub args: Vec<String>,
    /// `(name, value)` in the order they are passed.
    pub env: Vec<(String, String)>,
    /// `host:container[:ro]`.
    pub binds: Vec<String>,
    pub port: Option<PublishedPort>,
    pub group_add: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
}

impl Instance {
    /// The container's name (the guide's `--name %n`).
    pub fn name(&self) -> &str {
        &self.unit
    }

    /// Whether it answers `/healthcheck/` on its published port.
    pub fn serves_http(&self) -> bool {
        self.port.is_some()
    }

    /// The Docker API spec of this container for the `docker` supervisor: restarted by Docker
    /// unless stopped by hand, and labelled with the spec it was made from, so a changed spec is
    /// seen even where Docker adds values of its own (the image's env, its labels).
    pub fn container_spec(&self, image: &str) -> ContainerSpec {
        let mut spec = ContainerSpec {
            name: self.unit.clone(),
            image: image.to_owned(),
            command: self.args.clone(),
            env: self.env.iter().map(|(name, value)| format!("{name}={value}")).collect(),
            binds: self.binds.clone(),
            ports: self.port.iter().cloned().collect(),
            sysctls: self.sysctls.clone(),
            group_add: self.group_add.clone(),
            restart: RestartPolicy::UnlessStopped,
            labels: BTreeMap::new(),
        };
        spec.labels.insert(MANAGED_LABEL.to_owned(), "pretix-unit".to_owned());
        spec.labels.insert(SPEC_LABEL.to_owned(), spec_fingerprint(&spec));
        spec
    }
}

/// The spec as one line of JSON: what the label holds and what a run compares.
pub fn spec_fingerprint(spec: &ContainerSpec) -> String {
    serde_json::json!({
        "image": spec.image,
        "command": spec.command,
        "env": spec.env,
        "binds": spec.binds,
        "ports": spec.ports.iter().map(|port| format!("{}:{}:{}", port.host_ip, port.host_port, port.container_port)).collect::<Vec<_>>(),
        "sysctls": spec.sysctls,
        "group_add": spec.group_add,
    })
    .to_string()
}

/// Validates the section and resolves the containers. `redis_socket_mode` is the raw
/// `redis.socket_mode` (pretix-redis's), needed to refuse a group-only socket for containers
/// that could not use it.
pub fn resolve(
    container: &Container,
    paths: &Paths,
    redis_socket_mode: Option<&str>,
    host: &HostFacts,
) -> Result<Desired, ToolError> {
    let image = ImageRef::parse(&container.image).map_err(|message| ToolError::input("container.image", message))?;
    if let Some(endpoint) = &container.docker_host {
        validate_endpoint(endpoint).map_err(|message| ToolError::input("container.docker_host", message))?;
    }
    container.validate_host_paths()?;
    paths.validate()?;
    if container.start_timeout_seconds == 0 {
        return Err(ToolError::input(
            "container.start_timeout_seconds",
            "must be at least 1 (the first start migrates an empty database, which takes minutes: 600 is the default)",
        ));
    }
    for digest_field in [
        ("container.image_digest", &container.image_digest),
        ("container.previous_image_digest", &container.previous_image_digest),
    ] {
        if let (field, Some(digest)) = digest_field {
            ImageRef::parse(&format!("x@{digest}")).map_err(|_| {
                ToolError::input(field, "is not sha256:<64 hex digits>: pretix-unit writes it, remove it")
            })?;
        }
    }

    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    let bind_address = validate_bind_address(container)?;
    if !bind_address.is_loopback() {
        warnings.push(PUBLIC_BIND_WARNING.to_owned());
    }
    let env = validate_env(&container.env)?;
    let binds = resolve_binds(container, paths)?;
    let group_add = validate_groups(&container.group_add)?;

    let declared = container.resolved_instances();
    let field_of = |index: usize, key: &str| {
        if container.instances.is_empty() {
            format!("container.{key}")
        } else {
            format!("container.instances[{index}].{key}")
        }
    };
    if !container.instances.is_empty() {
        for (key, set) in [
            ("role", container.role != ContainerRole::All),
            ("unit", container.unit != "pretix.service"),
            ("num_workers", container.num_workers.is_some()),
            ("queues", !container.queues.is_empty()),
            ("concurrency", container.concurrency.is_some()),
            ("command", !container.command.is_empty()),
        ] {
            if set {
                return Err(ToolError::input(
                    format!("container.{key}"),
                    "is for the single container, and instances is set: give it in each instance instead",
                ));
            }
        }
    }
    if container.instances.is_empty() && container.published_port != 8345 && !serves_http(container.role) {
        return Err(ToolError::input(
            "container.published_port",
            format!(
                "role {} serves no HTTP on port 80, so nothing is published: remove published_port",
                container.role.as_str()
            ),
        ));
    }
    let automigrate = container.automigrates();
    if automigrate && declared.len() > 1 {
        warnings.push(
            "container.automigrate is on for several containers: they migrate at the same time on every start; the \
             guide's way is automigrate off and pretix-unit migrate once after an upgrade"
                .to_owned(),
        );
    }
    if redis_socket_mode == Some("group")
        && let Some(instance) = declared
            .iter()
            .find(|instance| matches!(instance.role, ContainerRole::All | ContainerRole::Web))
    {
        return Err(ToolError::input(
            "redis.socket_mode",
            format!(
                "group does not reach pretix in {} (role {}): supervisord inside the image drops docker's \
                 --group-add for gunicorn and celery; use socket_mode world or tcp, or group only with webworker and \
                 taskworker containers",
                instance.unit,
                instance.role.as_str()
            ),
        ));
    }

    let gunicorn_containers = declared.iter().filter(|instance| runs_gunicorn(instance.role)).count();
    let celery_on_host = declared
        .iter()
        .any(|instance| matches!(instance.role, ContainerRole::All | ContainerRole::Taskworker));
    let mut units = BTreeSet::new();
    let mut ports = BTreeSet::new();
    let mut instances = Vec::new();
    for (index, declared) in declared.iter().enumerate() {
        pretix_site::service::validate_unit_name(&declared.unit, &field_of(index, "unit"), "pretix-web.service")?;
        validate_unit_name(&declared.unit).map_err(|message| ToolError::input(field_of(index, "unit"), message))?;
        if !units.insert(declared.unit.clone()) {
            return Err(ToolError::input(
                field_of(index, "unit"),
                format!(
                    "{} is used twice: each container needs a unit of its own",
                    declared.unit
                ),
            ));
        }
        let port = resolve_port(declared, &bind_address, &field_of(index, "published_port"))?;
        if let Some(port) = &port
            && !ports.insert(port.host_port)
        {
            return Err(ToolError::input(
                field_of(index, "published_port"),
                format!(
                    "port {} is published twice: give each web container a port of its own",
                    port.host_port
                ),
            ));
        }
        let args = role_args(declared, &field_of, index, &mut warnings)?;
        let mut instance_env = Vec::new();
        if !automigrate {
            instance_env.push(("AUTOMIGRATE".to_owned(), "skip".to_owned()));
        }
        if runs_gunicorn(declared.role) {
            let workers = match declared.num_workers {
                Some(0) => {
                    return Err(ToolError::input(
                        field_of(index, "num_workers"),
                        "must be at least 1 (unset: chosen from the host's memory)",
                    ));
                }
                Some(count) if count > 256 => {
                    return Err(ToolError::input(
                        field_of(index, "num_workers"),
                        format!("{count} gunicorn workers is more than any host carries: give at most 256"),
                    ));
                }
                Some(count) => count,
                None => {
                    let choice = workers::choose(host, gunicorn_containers, celery_on_host);
                    notes.push(format!("{}: {}", declared.unit, choice.reason));
                    choice.workers
                }
            };
            instance_env.push(("NUM_WORKERS".to_owned(), workers.to_string()));
        } else if declared.num_workers.is_some() {
            return Err(ToolError::input(
                field_of(index, "num_workers"),
                format!(
                    "role {} runs no gunicorn: remove num_workers (celery's processes are concurrency)",
                    declared.role.as_str()
                ),
            ));
        }
        instance_env.extend(env.iter().cloned());
        let mut sysctls = BTreeMap::new();
        if matches!(declared.role, ContainerRole::All | ContainerRole::Web) {
            // nginx inside listens with backlog=4096; the guide raises the container's limit to match.
            sysctls.insert("net.core.somaxconn".to_owned(), "4096".to_owned());
        }
        instances.push(Instance {
            unit: declared.unit.clone(),
            role: declared.role,
            args,
            env: instance_env,
            binds: binds.clone(),
            port,
            group_add: group_add.clone(),
            sysctls,
        });
    }
    Ok(Desired {
        image,
        plugin_image: None,
        site_host: None,
        supervisor: container.supervisor,
        docker_host: container.docker_host.clone(),
        unit_dir: container.unit_dir.clone(),
        state_dir: container.state_dir.clone(),
        start_timeout: Duration::from_secs(u64::from(container.start_timeout_seconds)),
        instances,
        warnings,
        notes,
    })
}

fn serves_http(role: ContainerRole) -> bool {
    matches!(role, ContainerRole::All | ContainerRole::Web)
}

fn runs_gunicorn(role: ContainerRole) -> bool {
    matches!(role, ContainerRole::All | ContainerRole::Web | ContainerRole::Webworker)
}

/// On top of systemd's rules (`pretix_site::service::validate_unit_name`): a service whose name
/// is also a valid container name, `[A-Za-z0-9][A-Za-z0-9_.-]*.service` (no `@` templates, no `\`
/// escapes: Docker allows neither in a name).
pub fn validate_unit_name(unit: &str) -> Result<(), String> {
    let Some(stem) = unit.strip_suffix(".service") else {
        return Err(format!(
            "{unit:?} must end in .service (the container is named after the unit)"
        ));
    };
    let valid = !stem.is_empty()
        && unit.len() <= 128
        && stem.starts_with(|c: char| c.is_ascii_alphanumeric())
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(format!(
            "{unit:?} is not a unit name this tool writes: letters, digits, _ . - (starting with a letter or digit), \
             ending in .service, at most 128 characters"
        ));
    }
    Ok(())
}

fn validate_bind_address(container: &Container) -> Result<IpAddr, ToolError> {
    let address: IpAddr = container.bind_address.parse().map_err(|_| {
        ToolError::input(
            "container.bind_address",
            "is not an IP address: give 127.0.0.1 (the guide) or another address of this host",
        )
    })?;
    if !address.is_loopback() && !container.allow_public_bind {
        return Err(ToolError::input(
            "container.bind_address",
            format!(
                "{address} is not a loopback address: Docker's published ports bypass ufw, so pretix would be \
                 reachable there without the TLS proxy; keep 127.0.0.1, or set container.allow_public_bind true if \
                 you mean it"
            ),
        ));
    }
    Ok(address)
}

fn resolve_port(
    declared: &ContainerInstance,
    bind_address: &IpAddr,
    field: &str,
) -> Result<Option<PublishedPort>, ToolError> {
    match (serves_http(declared.role), declared.published_port) {
        (true, Some(port)) => Ok(Some(PublishedPort {
            host_ip: bind_address.to_string(),
            host_port: port,
            container_port: 80,
        })),
        (true, None) => Err(ToolError::input(
            field,
            format!(
                "role {} serves pretix on port 80: give the host port it is published on (the guide's is 8345)",
                declared.role.as_str()
            ),
        )),
        (false, Some(_)) => Err(ToolError::input(
            field,
            format!(
                "role {} serves no HTTP on port 80 (webworker listens on a socket inside the container): remove \
                 published_port",
                declared.role.as_str()
            ),
        )),
        (false, None) => Ok(None),
    }
}

fn role_args(
    declared: &ContainerInstance,
    field_of: &dyn Fn(usize, &str) -> String,
    index: usize,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, ToolError> {
    let is_taskworker = declared.role == ContainerRole::Taskworker;
    if !is_taskworker && (!declared.queues.is_empty() || declared.concurrency.is_some()) {
        let key = if declared.queues.is_empty() {
            "concurrency"
        } else {
            "queues"
        };
        return Err(ToolError::input(
            field_of(index, key),
            format!("is for the taskworker role, not {}", declared.role.as_str()),
        ));
    }
    if declared.role != ContainerRole::Command && !declared.command.is_empty() {
        return Err(ToolError::input(
            field_of(index, "command"),
            format!(
                "is for the command role, not {}: remove it or set role command",
                declared.role.as_str()
            ),
        ));
    }
    let mut args = vec![declared.role.as_str().to_owned()];
    match declared.role {
        ContainerRole::Taskworker => {
            let mut seen = BTreeSet::new();
            for queue in &declared.queues {
                let valid = !queue.is_empty()
                    && queue.len() <= 64
                    && queue.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && queue
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
                if !valid {
                    return Err(ToolError::input(
                        field_of(index, "queues"),
                        format!(
                            "{queue:?} is not a queue name: lowercase letters, digits, _ . -; pretix's queues are {}",
                            KNOWN_QUEUES.join(", ")
                        ),
                    ));
                }
                if !seen.insert(queue.as_str()) {
                    return Err(ToolError::input(
                        field_of(index, "queues"),
                        format!("{queue} is listed twice"),
                    ));
                }
                if !KNOWN_QUEUES.contains(&queue.as_str()) {
                    warnings.push(format!(
                        "{}: queue {queue} is not one of pretix's ({}); only a plugin's own queue belongs here",
                        declared.unit,
                        KNOWN_QUEUES.join(", ")
                    ));
                }
            }
            if !declared.queues.is_empty() {
                args.push("-Q".to_owned());
                args.push(declared.queues.join(","));
            }
            if let Some(concurrency) = declared.concurrency {
                if concurrency == 0 || concurrency > 1024 {
                    return Err(ToolError::input(
                        field_of(index, "concurrency"),
                        "must be from 1 to 1024 (unset: celery's default, the number of CPUs)",
                    ));
                }
                args.push("--concurrency".to_owned());
                args.push(concurrency.to_string());
            }
        }
        ContainerRole::Command => {
            args = validate_command(&declared.command, &field_of(index, "command"))?;
        }
        ContainerRole::All | ContainerRole::Web | ContainerRole::Webworker => {}
    }
    Ok(args)
}

/// A pretix management command and its arguments, as given to the image's entrypoint.
pub fn validate_command(words: &[String], field: &str) -> Result<Vec<String>, ToolError> {
    let Some(first) = words.first() else {
        return Err(ToolError::input(
            field,
            "is empty: give the pretix command and its arguments, for example [\"cron\"]",
        ));
    };
    let name_ok = first.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && first.len() <= 64
        && first
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        return Err(ToolError::input(
            field,
            format!("{first:?} is not a pretix command name (lowercase letters, digits, _)"),
        ));
    }
    for word in words {
        if word.is_empty() || word.len() > 1024 || word.chars().any(char::is_control) {
            return Err(ToolError::input(
                field,
                "holds an empty word, a control character or a word over 1024 characters",
            ));
        }
    }
    Ok(words.to_vec())
}

/// Names pretix reads as secrets: a plain value would sit in the world-readable unit file and
/// in `docker run`'s argv.
fn looks_secret(name: &str) -> bool {
    ["PASSWORD", "SECRET", "DSN", "TOKEN", "PRIVATE_KEY", "_KEY_"]
        .iter()
        .any(|word| name.contains(word))
        || name.ends_with("_KEY")
}

fn validate_env(env: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, ToolError> {
    let mut resolved = Vec::new();
    for (name, value) in env {
        let field = format!("container.env.{name}");
        if name == "AUTOMIGRATE" || name == "NUM_WORKERS" {
            return Err(ToolError::input(
                field,
                format!("is set by pretix-unit: use container.{}", name.to_ascii_lowercase()),
            ));
        }
        let (is_file, rest) = match name.strip_prefix("FILE__") {
            Some(rest) => (true, rest),
            None => (false, name.as_str()),
        };
        let valid = rest.len() > "PRETIX_".len()
            && name.len() <= 128
            && rest.starts_with("PRETIX_")
            && rest
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(ToolError::input(
                field,
                "is not a pretix setting: names are PRETIX_<SECTION>_<KEY> or FILE__PRETIX_<SECTION>_<KEY>, in \
                 uppercase letters, digits and _",
            ));
        }
        if value.chars().any(char::is_control) || value.len() > 4096 {
            return Err(ToolError::input(
                field,
                "holds a control character (a newline would end the unit's line) or is longer than 4096 characters",
            ));
        }
        if is_file {
            let path = Path::new(value);
            let safe = value.starts_with('/')
                && !path
                    .components()
                    .any(|part| matches!(part, std::path::Component::ParentDir))
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
            if !safe {
                return Err(ToolError::input(
                    field,
                    "must be an absolute path inside the container (letters, digits, / . _ -, no ..), such as \
                     /etc/pretix/secrets/mail_password",
                ));
            }
        } else if looks_secret(rest) {
            // The value is never repeated: it may be the secret itself.
            return Err(ToolError::input(
                field,
                format!(
                    "looks like a secret, and a plain value would be in the world-readable unit file and in docker's \
                     command line: put it in a file under the config dir and set FILE__{name} to its path inside \
                     the container (pretix-cfg env writes such files)"
                ),
            ));
        }
        resolved.push((name.clone(), value.clone()));
    }
    Ok(resolved)
}

/// Host paths that must never be mounted into the container: they hand it the host.
const FORBIDDEN_MOUNTS: &[&str] = &[
    "/", "/etc", "/root", "/home", "/usr", "/var", "/run", "/var/run", "/boot", "/bin", "/sbin", "/lib",
];

fn resolve_binds(container: &Container, paths: &Paths) -> Result<Vec<String>, ToolError> {
    let mut binds = vec![
        format!("{}:/data", paths.data_dir.display()),
        format!("{}:/etc/pretix", paths.config_dir.display()),
    ];
    for (field, path) in [
        ("paths.data_dir", &paths.data_dir),
        ("paths.config_dir", &paths.config_dir),
    ] {
        check_mount_source(path, field)?;
    }
    let mut targets: BTreeSet<String> = ["/data".to_owned(), "/etc/pretix".to_owned()].into();
    for (index, volume) in container.volumes.iter().enumerate() {
        let field = format!("container.volumes[{index}]");
        let parts: Vec<&str> = volume.split(':').collect();
        let (host, target, options) = match parts.as_slice() {
            [host, target] => (*host, *target, None),
            [host, target, options] => (*host, *target, Some(*options)),
            _ => {
                return Err(ToolError::input(
                    field,
                    "is not host:container or host:container:ro (paths cannot contain :)",
                ));
            }
        };
        if let Some(options) = options
            && !matches!(options, "ro" | "rw")
        {
            return Err(ToolError::input(field, format!("option {options:?} is not ro or rw")));
        }
        for path in [host, target] {
            if !path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '@'))
            {
                return Err(ToolError::input(
                    field.clone(),
                    "paths may hold only letters, digits and / . _ - + @ (nothing a shell or systemd would read)",
                ));
            }
        }
        validate_host_path(Path::new(host), &field)?;
        check_mount_source(Path::new(host), &field)?;
        validate_host_path(Path::new(target), &field)?;
        if binds.contains(volume) {
            continue;
        }
        if !targets.insert(target.to_owned()) {
            return Err(ToolError::input(
                field,
                format!("{target} is already mounted in the container: give each mount its own container path"),
            ));
        }
        binds.push(volume.clone());
    }
    Ok(binds)
}

fn check_mount_source(path: &Path, field: &str) -> Result<(), ToolError> {
    let text = path.to_string_lossy();
    let normalized = text.trim_end_matches('/');
    let normalized = if normalized.is_empty() { "/" } else { normalized };
    let under = |prefix: &str| normalized == prefix || normalized.starts_with(&format!("{prefix}/"));
    if FORBIDDEN_MOUNTS.contains(&normalized)
        || under("/proc")
        || under("/sys")
        || under("/dev")
        || under("/var/lib/docker")
        || normalized.ends_with("docker.sock")
    {
        return Err(ToolError::input(
            field,
            format!(
                "{normalized} must not be mounted into the container: it would hand the container (and anyone who \
                 breaks into pretix) the host; mount a directory of pretix's own"
            ),
        ));
    }
    Ok(())
}

fn validate_groups(groups: &[String]) -> Result<Vec<String>, ToolError> {
    let mut resolved = Vec::new();
    for (index, group) in groups.iter().enumerate() {
        let numeric = !group.is_empty() && group.len() <= 10 && group.chars().all(|c| c.is_ascii_digit());
        let named = group.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && group.len() <= 32
            && group
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if !(numeric || named) {
            return Err(ToolError::input(
                format!("container.group_add[{index}]"),
                "is not a group id or name (digits, or lowercase letters, digits, _ -)",
            ));
        }
        if group == "0" || group == "root" || group == "docker" {
            return Err(ToolError::input(
                format!("container.group_add[{index}]"),
                format!("{group} would give the container's user root's or Docker's group: remove it"),
            ));
        }
        if !resolved.contains(group) {
            resolved.push(group.clone());
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostFacts {
        HostFacts {
            memory_bytes: Some(8 << 30),
            cpus: 4,
        }
    }

    fn resolve_json(container: serde_json::Value) -> Result<Desired, ToolError> {
        let container: Container = serde_json::from_value(container).unwrap_or_else(|error| panic!("{error}"));
        resolve(&container, &Paths::default(), None, &host())
    }

    fn refused(container: serde_json::Value) -> (String, String) {
        match resolve_json(container) {
            Err(ToolError::Input { field, message }) => (field, message),
            other => panic!("not an input error: {other:?}"),
        }
    }

    #[test]
    fn the_guides_defaults_give_the_guides_container() {
        let desired = resolve_json(serde_json::json!({})).unwrap_or_else(|error| panic!("{error}"));
        let instance = &desired.instances[0];
        assert_eq!(instance.unit, "pretix.service");
        assert_eq!(instance.args, vec!["all".to_owned()]);
        assert_eq!(
            instance.binds,
            vec!["/var/pretix-data:/data", "/etc/pretix:/etc/pretix"]
        );
        assert_eq!(
            instance.port,
            Some(PublishedPort {
                host_ip: "127.0.0.1".to_owned(),
                host_port: 8345,
                container_port: 80
            })
        );
        assert_eq!(
            instance.sysctls.get("net.core.somaxconn").map(String::as_str),
            Some("4096")
        );
        assert_eq!(instance.env[0].0, "NUM_WORKERS");
        assert!(desired.warnings.is_empty(), "{:?}", desired.warnings);
    }

    #[test]
    fn injection_shaped_values_are_refused_naming_the_field() {
        for (container, field) in [
            (
                serde_json::json!({"image": "pretix/standalone:stable --privileged"}),
                "container.image",
            ),
            (
                serde_json::json!({"unit": "pretix.service\nExecStartPre=/bin/sh"}),
                "container.unit",
            ),
            (serde_json::json!({"unit": "-v.service"}), "container.unit"),
            (serde_json::json!({"bind_address": "0.0.0.0"}), "container.bind_address"),
            (
                serde_json::json!({"bind_address": "127.0.0.1 -v /:/host"}),
                "container.bind_address",
            ),
            (
                serde_json::json!({"env": {"PRETIX_MAIL_FROM": "a\nExecStartPre=/bin/sh"}}),
                "container.env.PRETIX_MAIL_FROM",
            ),
            (
                serde_json::json!({"env": {"LD_PRELOAD": "/x.so"}}),
                "container.env.LD_PRELOAD",
            ),
            (
                serde_json::json!({"env": {"FILE__PRETIX_X_Y": "../../etc/shadow"}}),
                "container.env.FILE__PRETIX_X_Y",
            ),
            (serde_json::json!({"volumes": ["/:/host"]}), "container.volumes[0]"),
            (
                serde_json::json!({"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]}),
                "container.volumes[0]",
            ),
            (
                serde_json::json!({"volumes": ["/srv/x:/x:rw,z"]}),
                "container.volumes[0]",
            ),
            (
                serde_json::json!({"volumes": ["/srv/$(id):/x"]}),
                "container.volumes[0]",
            ),
            (
                serde_json::json!({"volumes": ["/srv/a/../b:/x"]}),
                "container.volumes[0]",
            ),
            (
                serde_json::json!({"group_add": ["--privileged"]}),
                "container.group_add[0]",
            ),
            (serde_json::json!({"group_add": ["docker"]}), "container.group_add[0]"),
            (
                serde_json::json!({"role": "taskworker", "queues": ["mail -A evil"]}),
                "container.queues",
            ),
            (
                serde_json::json!({"role": "command", "command": ["--help"]}),
                "container.command",
            ),
            (
                serde_json::json!({"docker_host": "ssh://host"}),
                "container.docker_host",
            ),
        ] {
            let (got, message) = refused(container.clone());
            assert_eq!(got, field, "{container}: {message}");
        }
    }

    #[test]
    fn a_secret_in_plain_env_is_refused_without_repeating_it() {
        let (field, message) = refused(serde_json::json!({"env": {"PRETIX_DATABASE_PASSWORD": "hunter2hunter2"}}));
        assert_eq!(field, "container.env.PRETIX_DATABASE_PASSWORD");
        assert!(
            !message.contains("hunter2") && message.contains("FILE__PRETIX_DATABASE_PASSWORD"),
            "{message}"
        );
        let desired = resolve_json(serde_json::json!({"env": {
            "FILE__PRETIX_DATABASE_PASSWORD": "/etc/pretix/secrets/database_password",
            "PRETIX_PRETIX_INSTANCE_NAME": "Tickets \"100%\" $HOME"
        }}))
        .unwrap_or_else(|error| panic!("{error}"));
        assert!(desired.instances[0].env.contains(&(
            "PRETIX_PRETIX_INSTANCE_NAME".to_owned(),
            "Tickets \"100%\" $HOME".to_owned()
        )));
    }

    #[test]
    fn a_public_bind_needs_the_explicit_option_and_carries_the_ufw_warning() {
        let desired = resolve_json(serde_json::json!({"bind_address": "0.0.0.0", "allow_public_bind": true}))
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(desired.warnings, vec![PUBLIC_BIND_WARNING.to_owned()]);
    }

    #[test]
    fn a_scaled_pair_skips_automigrate_and_passes_queues_and_concurrency() {
        let desired = resolve_json(serde_json::json!({"instances": [
            {"unit": "pretix-web.service", "role": "web", "published_port": 8345, "num_workers": 6},
            {"unit": "pretix-worker.service", "role": "taskworker", "queues": ["checkout", "mail"], "concurrency": 8}
        ]}))
        .unwrap_or_else(|error| panic!("{error}"));
        let web = &desired.instances[0];
        let worker = &desired.instances[1];
        assert_eq!(
            web.env[..2],
            [
                ("AUTOMIGRATE".to_owned(), "skip".to_owned()),
                ("NUM_WORKERS".to_owned(), "6".to_owned())
            ]
        );
        assert_eq!(
            worker.args,
            vec!["taskworker", "-Q", "checkout,mail", "--concurrency", "8"]
        );
        assert_eq!(worker.env, vec![("AUTOMIGRATE".to_owned(), "skip".to_owned())]);
        assert_eq!(worker.port, None);
        assert!(worker.sysctls.is_empty());
    }

    #[test]
    fn scaled_mistakes_are_refused() {
        for (container, field) in [
            (
                serde_json::json!({"instances": [{"unit": "a.service", "role": "web"}]}),
                "container.instances[0].published_port",
            ),
            (
                serde_json::json!({"instances": [{"unit": "a.service", "role": "taskworker", "published_port": 1}]}),
                "container.instances[0].published_port",
            ),
            (
                serde_json::json!({"instances": [{"unit": "a.service", "role": "web", "published_port": 1}, {"unit": "a.service", "role": "taskworker"}]}),
                "container.instances[1].unit",
            ),
            (
                serde_json::json!({"instances": [{"unit": "a.service", "role": "web", "published_port": 1}, {"unit": "b.service", "role": "web", "published_port": 1}]}),
                "container.instances[1].published_port",
            ),
            (
                serde_json::json!({"role": "web", "instances": [{"unit": "a.service", "role": "taskworker"}]}),
                "container.role",
            ),
            (
                serde_json::json!({"instances": [{"unit": "a.service", "role": "taskworker", "num_workers": 2}]}),
                "container.instances[0].num_workers",
            ),
            (
                serde_json::json!({"role": "web", "queues": ["mail"]}),
                "container.queues",
            ),
        ] {
            let (got, message) = refused(container.clone());
            assert_eq!(got, field, "{container}: {message}");
        }
    }

    #[test]
    fn a_group_only_redis_socket_is_refused_for_supervisord_roles() {
        let container: Container =
            serde_json::from_value(serde_json::json!({})).unwrap_or_else(|error| panic!("{error}"));
        let error = resolve(&container, &Paths::default(), Some("group"), &host()).expect_err("refused");
        assert!(
            error
                .to_string()
                .starts_with("redis.socket_mode: group does not reach pretix"),
            "{error}"
        );
    }
}

#[cfg(test)]
mod site_host_tests {
    use super::site_host;

    #[test]
    fn the_health_check_asks_for_the_host_of_pretix_url() {
        assert_eq!(
            site_host("https://tickets.example.org").as_deref(),
            Some("tickets.example.org")
        );
        assert_eq!(
            site_host("https://tickets.example.org/").as_deref(),
            Some("tickets.example.org")
        );
        assert_eq!(site_host("http://127.0.0.1:8345").as_deref(), Some("127.0.0.1:8345"));
        assert_eq!(site_host("https://[::1]:8443/x").as_deref(), Some("[::1]:8443"));
        assert_eq!(
            site_host("https://bad host\r\nX: y"),
            None,
            "nothing that could end the header"
        );
        assert_eq!(site_host(""), None);
    }
}
