//! The typed sections of the site document.
//!
//! Every field has a default taken from pretix's "small-scale deployment with Docker" guide, so a
//! document that holds only `config.pretix.url` and `config.mail.from` describes exactly the
//! guide's setup. Every struct denies unknown fields: a typo is an error naming the JSON path.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lenient;
use crate::secret::SecretRef;

/// The current version of the document format. A document with another version is refused.
pub const FORMAT_VERSION: u32 = 1;

/// The pretix release whose option schema and Docker image the toolkit follows.
pub const PRETIX_VERSION: &str = "2026.8";

/// The whole site document. Tools never parse it as a whole (they pass foreign sections through
/// untouched, see `Document`); this type exists to generate the JSON Schema and the docs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// The JSON Schema the document follows (for editors); tools ignore it.
    #[serde(default, rename = "$schema", skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Format version of the document; always 1 for now.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1))]
    pub version: Option<u32>,
    /// The content of pretix.cfg: section → key → value, with pretix's own names.
    #[serde(default)]
    pub config: BTreeMap<String, BTreeMap<String, ConfigValue>>,
    #[serde(default)]
    pub paths: Paths,
    #[serde(default)]
    pub database: Database,
    #[serde(default)]
    pub redis: Redis,
    #[serde(default)]
    pub container: Container,
    #[serde(default)]
    pub proxy: Proxy,
    #[serde(default)]
    pub plugins: Plugins,
    #[serde(default)]
    pub cron: Cron,
    /// What the tools did, one entry appended by each tool run.
    #[serde(default)]
    pub results: Vec<crate::report::ToolResult>,
}

/// One value in `config`: a string, a boolean, a number, or a secret kept in a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ConfigValue {
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(String),
    Secret(SecretRef),
}

impl ConfigValue {
    /// The value as pretix.cfg spells it, or `None` for a secret (which must be read first).
    pub fn as_plain_text(&self) -> Option<String> {
        match self {
            ConfigValue::Bool(true) => Some("on".to_owned()),
            ConfigValue::Bool(false) => Some("off".to_owned()),
            ConfigValue::Integer(number) => Some(number.to_string()),
            ConfigValue::Float(number) => Some(number.to_string()),
            ConfigValue::Text(text) => Some(text.clone()),
            ConfigValue::Secret(_) => None,
        }
    }
}

/// Host paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Paths {
    /// pretix's config directory, mounted into the container as /etc/pretix.
    pub config_dir: PathBuf,
    /// pretix's data directory, mounted into the container as /data.
    pub data_dir: PathBuf,
    /// Root-only directory for secrets the toolkit generates (never mounted into the container).
    pub secrets_dir: PathBuf,
    /// The lock file that keeps two toolkit runs on one host from interleaving. Keep it in a
    /// directory only root can write to (the default's is created 0700).
    pub lock_file: PathBuf,
    /// The uid that owns the config and data directories: the container's `pretixuser`.
    pub owner_uid: u32,
    /// The gid that owns the config and data directories.
    pub owner_gid: u32,
    /// How the container's web server (uid 33) may read the data dir: `mode` (0755, the
    /// guide's first choice) or `acl` (0750 plus an ACL entry for uid 33).
    pub data_dir_access: DataDirAccess,
    /// Where `pretix-cfg env` writes the settings as environment variables (root-only).
    pub env_file: PathBuf,
}

/// How the web server inside the container gets read access to the data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DataDirAccess {
    Mode,
    Acl,
}

impl Paths {
    /// Every path absolute, without `..` or control characters (checked by every tool before
    /// it takes the lock).
    pub fn validate(&self) -> Result<(), crate::error::ToolError> {
        self.validate_host_paths()?;
        if self.lock_file.file_name().is_none() {
            return Err(crate::error::ToolError::input(
                "paths.lock_file",
                "names a directory: give a file path such as /run/pretix-toolkit/lock",
            ));
        }
        Ok(())
    }
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            config_dir: PathBuf::from("/etc/pretix"),
            data_dir: PathBuf::from("/var/pretix-data"),
            secrets_dir: PathBuf::from("/etc/pretix-toolkit/secrets"),
            lock_file: PathBuf::from("/run/pretix-toolkit/lock"),
            owner_uid: 15371,
            owner_gid: 15371,
            data_dir_access: DataDirAccess::Mode,
            env_file: PathBuf::from("/etc/pretix-toolkit/pretix.env"),
        }
    }
}

/// What pretix-db needs: the PostgreSQL admin connection, the role, the database and the
/// network settings that let the container reach PostgreSQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Database {
    /// Database name.
    pub name: String,
    /// Role (user) pretix logs in as.
    pub user: String,
    /// The role's password, by reference to a root-only file. Unset: a strong random password is
    /// generated into `paths.secrets_dir`.
    pub password: Option<SecretRef>,
    /// Set a new password even when the role already has one.
    #[serde(deserialize_with = "lenient::boolean")]
    #[schemars(with = "lenient::schema::Flag")]
    pub rotate_password: bool,
    /// How to reach PostgreSQL as its superuser.
    pub admin: DatabaseAdmin,
    /// The docker host address; PostgreSQL listens there and pretix connects to it.
    pub docker_host: String,
    /// The docker network the container connects from, allowed in pg_hba.conf.
    pub docker_subnet: String,
    /// The pg_hba.conf method: scram-sha-256, or md5 for old clients only.
    pub auth_method: AuthMethod,
    /// PostgreSQL's port as pretix sees it.
    #[serde(deserialize_with = "lenient::port")]
    #[schemars(with = "lenient::schema::Port")]
    pub port: u16,
    /// postgresql.conf; unset: asked from the server (`SHOW config_file`).
    pub postgresql_conf: Option<PathBuf>,
    /// pg_hba.conf; unset: asked from the server (`SHOW hba_file`).
    pub pg_hba_conf: Option<PathBuf>,
    /// Restart PostgreSQL when `listen_addresses` changed (otherwise the restart is reported).
    #[serde(deserialize_with = "lenient::boolean")]
    #[schemars(with = "lenient::schema::Flag")]
    pub restart: bool,
    /// The systemd unit restarted for a `listen_addresses` change.
    pub service: String,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            name: "pretix".to_owned(),
            user: "pretix".to_owned(),
            password: None,
            rotate_password: false,
            admin: DatabaseAdmin::default(),
            docker_host: "172.17.0.1".to_owned(),
            docker_subnet: "172.17.0.0/16".to_owned(),
            auth_method: AuthMethod::ScramSha256,
            port: 5432,
            postgresql_conf: None,
            pg_hba_conf: None,
            restart: false,
            service: "postgresql".to_owned(),
        }
    }
}

/// The superuser connection, by default the way `sudo -u postgres psql` connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseAdmin {
    /// A libpq key=value connection string that overrides everything else here. It must not
    /// hold a password: use `password` for that.
    pub connection: Option<String>,
    /// The superuser's password, by reference, for servers without peer authentication.
    pub password: Option<SecretRef>,
    /// The system user whose identity peer authentication checks (switched to when run as root).
    pub system_user: String,
    /// The unix socket directory.
    pub socket_dir: PathBuf,
    /// The server port (also names the socket file).
    #[serde(deserialize_with = "lenient::port")]
    #[schemars(with = "lenient::schema::Port")]
    pub port: u16,
    /// The superuser role.
    pub user: String,
}

impl Default for DatabaseAdmin {
    fn default() -> Self {
        DatabaseAdmin {
            connection: None,
            password: None,
            system_user: "postgres".to_owned(),
            socket_dir: PathBuf::from("/var/run/postgresql"),
            port: 5432,
            user: "postgres".to_owned(),
        }
    }
}

/// pg_hba.conf authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AuthMethod {
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "md5")]
    Md5,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
        }
    }
}

/// What pretix-redis needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Redis {
    /// redis.conf.
    pub config_file: PathBuf,
    /// The unix socket pretix connects to (mounted into the container).
    pub socket: PathBuf,
    /// How the container may reach Redis: `world` (the guide's 777, the default), `group` (770
    /// and the container joins the socket's group: taskworker containers only, because the
    /// `all`/`web` roles start pretix through supervisord, which drops supplementary groups), or
    /// `tcp` (the docker host address with a password).
    pub socket_mode: RedisSocketMode,
    /// The systemd unit of redis-server.
    pub service: String,
    /// The systemd drop-in directory of that unit.
    pub dropin_dir: PathBuf,
    /// How long to wait for the socket to answer after a restart.
    #[serde(deserialize_with = "lenient::seconds")]
    #[schemars(with = "lenient::schema::Seconds")]
    pub restart_timeout_seconds: u32,
    /// Restart redis-server when redis.conf changed.
    #[serde(deserialize_with = "lenient::boolean")]
    #[schemars(with = "lenient::schema::Flag")]
    pub restart: bool,
    /// For `tcp` mode: the address Redis binds to besides localhost.
    pub tcp_bind: String,
    /// For `tcp` mode: the port.
    #[serde(deserialize_with = "lenient::port")]
    #[schemars(with = "lenient::schema::Port")]
    pub tcp_port: u16,
    /// For `tcp` mode: the password, by reference (generated when unset).
    pub password: Option<SecretRef>,
}

impl Default for Redis {
    fn default() -> Self {
        Redis {
            config_file: PathBuf::from("/etc/redis/redis.conf"),
            socket: PathBuf::from("/var/run/redis/redis.sock"),
            socket_mode: RedisSocketMode::World,
            service: "redis-server".to_owned(),
            dropin_dir: PathBuf::from("/etc/systemd/system/redis-server.service.d"),
            restart_timeout_seconds: 30,
            restart: true,
            tcp_bind: "172.17.0.1".to_owned(),
            tcp_port: 6379,
            password: None,
        }
    }
}

/// How the container reaches Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedisSocketMode {
    World,
    Group,
    Tcp,
}

/// What pretix-unit needs: the container(s), how they are supervised, and their systemd units.
///
/// One container by default, the guide's `pretix.service` running `all`. For the guide's "Scaling
/// up", list `instances` (for example a `web` and a `taskworker`): each gets its own unit and
/// container, and they share the image, volumes, groups and environment given here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Container {
    /// The image: `pretix/standalone:stable` in the guide; a version tag, or a digest reference
    /// (`pretix/standalone@sha256:...`) to pin one exact image.
    pub image: String,
    /// Who keeps the container running: `systemd` (a unit per container, the guide) or `docker`
    /// (restart policy `unless-stopped`, for hosts without systemd).
    pub supervisor: Supervisor,
    /// What the single container runs (ignored when `instances` is set).
    pub role: ContainerRole,
    /// The systemd unit name of the single container; the container is named after it (`--name %n`).
    pub unit: String,
    /// The directory of the unit files.
    pub unit_dir: PathBuf,
    /// The host address the container's port 80 is published on: loopback unless
    /// `allow_public_bind` (Docker's published ports bypass ufw).
    pub bind_address: String,
    /// Allow `bind_address` to be a non-loopback address (then anyone who reaches that address
    /// reaches pretix without the TLS proxy; ufw does not filter Docker's ports).
    #[serde(deserialize_with = "lenient::boolean")]
    #[schemars(with = "lenient::schema::Flag")]
    pub allow_public_bind: bool,
    /// The host port of the single container.
    #[serde(deserialize_with = "lenient::port")]
    #[schemars(with = "lenient::schema::Port")]
    pub published_port: u16,
    /// Migrate on every start. Unset: on for one container, off (`AUTOMIGRATE=skip`) for several,
    /// which then need `pretix-unit migrate` after an upgrade, as the guide's "Scaling up" says.
    #[serde(deserialize_with = "lenient::optional_boolean")]
    #[schemars(with = "Option<lenient::schema::Flag>")]
    pub automigrate: Option<bool>,
    /// gunicorn processes (`NUM_WORKERS`) of the single container; unset: chosen from the host's
    /// memory and CPUs (the run says what and why).
    #[serde(deserialize_with = "lenient::optional_count")]
    #[schemars(with = "Option<lenient::schema::Count>")]
    pub num_workers: Option<u32>,
    /// taskworker role: the celery queues to serve (`-Q`); empty: all of them.
    pub queues: Vec<String>,
    /// taskworker role: celery processes (`--concurrency`); unset: celery's default, the CPUs.
    #[serde(deserialize_with = "lenient::optional_count")]
    #[schemars(with = "Option<lenient::schema::Count>")]
    pub concurrency: Option<u32>,
    /// `command` role: the pretix management command and its arguments (`["cron"]`).
    pub command: Vec<String>,
    /// Extra environment: `PRETIX_<SECTION>_<KEY>` (not secrets: the unit file is world-readable)
    /// or `FILE__PRETIX_<SECTION>_<KEY>` naming a file inside the container.
    pub env: BTreeMap<String, String>,
    /// Extra bind mounts, `host:container[:ro]` (pretix-redis adds the socket's directory).
    pub volumes: Vec<String>,
    /// Extra groups for the container's user (`--group-add`; pretix-redis adds redis's gid).
    pub group_add: Vec<String>,
    /// The Docker daemon: `unix:///path` or `tcp://host:port`; unset: /var/run/docker.sock.
    pub docker_host: Option<String>,
    /// How long `apply` waits for a started container to answer `/healthcheck/` (the first start
    /// on an empty database migrates first, which takes minutes).
    #[serde(deserialize_with = "lenient::seconds")]
    #[schemars(with = "lenient::schema::Seconds")]
    pub start_timeout_seconds: u32,
    /// Where pretix-unit keeps what it must remember on the host (the image `pretix upgrade` last
    /// ran on).
    pub state_dir: PathBuf,
    /// Several containers instead of the single one ("Scaling up").
    pub instances: Vec<ContainerInstance>,
    /// Written by pretix-unit: the registry digest of `image` as last pulled.
    pub image_digest: Option<String>,
    /// Written by pretix-unit: the digest before the last pull changed it (to roll back to).
    pub previous_image_digest: Option<String>,
}

impl Default for Container {
    fn default() -> Self {
        Container {
            image: "pretix/standalone:stable".to_owned(),
            supervisor: Supervisor::Systemd,
            role: ContainerRole::All,
            unit: "pretix.service".to_owned(),
            unit_dir: PathBuf::from("/etc/systemd/system"),
            bind_address: "127.0.0.1".to_owned(),
            allow_public_bind: false,
            published_port: 8345,
            automigrate: None,
            num_workers: None,
            queues: Vec::new(),
            concurrency: None,
            command: Vec::new(),
            env: BTreeMap::new(),
            volumes: Vec::new(),
            group_add: Vec::new(),
            docker_host: None,
            start_timeout_seconds: 600,
            state_dir: PathBuf::from("/var/lib/pretix-toolkit"),
            instances: Vec::new(),
            image_digest: None,
            previous_image_digest: None,
        }
    }
}

impl Container {
    /// The containers this section describes: the `instances`, or the single container.
    pub fn resolved_instances(&self) -> Vec<ContainerInstance> {
        if !self.instances.is_empty() {
            return self.instances.clone();
        }
        let serves_http = matches!(self.role, ContainerRole::All | ContainerRole::Web);
        vec![ContainerInstance {
            unit: self.unit.clone(),
            role: self.role,
            published_port: serves_http.then_some(self.published_port),
            num_workers: self.num_workers,
            queues: self.queues.clone(),
            concurrency: self.concurrency,
            command: self.command.clone(),
        }]
    }

    /// Whether the containers migrate on start (`AUTOMIGRATE`).
    pub fn automigrates(&self) -> bool {
        self.automigrate.unwrap_or(self.resolved_instances().len() <= 1)
    }

    /// The container that runs periodic and one-off pretix commands (`pretix cron`, `migrate`):
    /// the first that runs the task worker (`taskworker` or `all`), else the first.
    pub fn task_container(&self) -> Option<ContainerInstance> {
        let instances = self.resolved_instances();
        instances
            .iter()
            .find(|instance| instance.role == ContainerRole::Taskworker)
            .or_else(|| instances.iter().find(|instance| instance.role == ContainerRole::All))
            .or_else(|| instances.first())
            .cloned()
    }
}

/// One container of several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerInstance {
    /// Its systemd unit, e.g. `pretix-web.service`; the container has the same name.
    pub unit: String,
    pub role: ContainerRole,
    /// The host port its port 80 is published on (`all` and `web` only).
    #[serde(default, deserialize_with = "lenient::optional_port")]
    #[schemars(with = "Option<lenient::schema::Port>")]
    pub published_port: Option<u16>,
    /// gunicorn processes (`NUM_WORKERS`, for `all`, `web`, `webworker`); unset: chosen from the
    /// host's memory.
    #[serde(default, deserialize_with = "lenient::optional_count")]
    #[schemars(with = "Option<lenient::schema::Count>")]
    pub num_workers: Option<u32>,
    /// taskworker: the celery queues (`-Q`).
    #[serde(default)]
    pub queues: Vec<String>,
    /// taskworker: celery processes (`--concurrency`).
    #[serde(default, deserialize_with = "lenient::optional_count")]
    #[schemars(with = "Option<lenient::schema::Count>")]
    pub concurrency: Option<u32>,
    /// command: the pretix management command and its arguments.
    #[serde(default)]
    pub command: Vec<String>,
}

impl ContainerInstance {
    /// The container's name: the unit's name, as the guide's `--name %n` makes it.
    pub fn container_name(&self) -> &str {
        &self.unit
    }
}

/// Who keeps the container running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Supervisor {
    Systemd,
    Docker,
}

/// The container's role: the argument of the image's entrypoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContainerRole {
    /// nginx, gunicorn and the celery worker under supervisord (the guide's single container).
    All,
    /// nginx and gunicorn under supervisord.
    Web,
    /// gunicorn alone, on a unix socket inside the container.
    Webworker,
    /// the celery worker alone.
    Taskworker,
    /// a pretix management command (`command`).
    Command,
}

impl ContainerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerRole::All => "all",
            ContainerRole::Web => "web",
            ContainerRole::Webworker => "webworker",
            ContainerRole::Taskworker => "taskworker",
            ContainerRole::Command => "command",
        }
    }
}

/// What pretix-proxy needs: the outer nginx TLS reverse proxy in front of the container, the
/// guide's "SSL" step. Every value that is written into the nginx site is checked first, so no
/// value can add an nginx directive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Proxy {
    /// The public host name (nginx's `server_name`); unset: the host of `config.pretix.url`,
    /// which must be `https://<server_name>` either way.
    pub server_name: Option<String>,
    /// Where nginx forwards requests, `host:port` (an IPv6 address in brackets); unset:
    /// `container.bind_address:container.published_port` (127.0.0.1 for 0.0.0.0).
    pub upstream: Option<String>,
    /// Where the certificate comes from: `existing` (files you put in place), `self_signed`
    /// (made here, for staging only: browsers warn), or `acme` (certbot's webroot method).
    pub certificate_source: CertificateSource,
    /// The certificate with its chain (PEM); unset: `/etc/ssl/certs/<server_name>.pem`, or
    /// certbot's `/etc/letsencrypt/live/<server_name>/fullchain.pem` for `acme`.
    pub certificate: Option<PathBuf>,
    /// The private key (PEM); unset: `/etc/ssl/private/<server_name>.key`, or certbot's
    /// `/etc/letsencrypt/live/<server_name>/privkey.pem` for `acme`.
    pub certificate_key: Option<PathBuf>,
    /// Directory served at `/.well-known/acme-challenge/` on port 80 (certbot's `--webroot-path`).
    pub acme_webroot: PathBuf,
    /// For `acme`: the account e-mail for expiry notices; unset: registered without one.
    pub acme_email: Option<String>,
    /// For `acme`: the ACME directory URL; unset: certbot's default (Let's Encrypt).
    pub acme_server: Option<String>,
    /// The site's file name in `sites_available` (and of the link in `sites_enabled`).
    pub site_name: String,
    /// Where the site file is written.
    pub sites_available: PathBuf,
    /// Where the link that enables it is made.
    pub sites_enabled: PathBuf,
    /// nginx's main configuration file, tested as a whole with `nginx -t`; unset: nginx's own
    /// (`/etc/nginx/nginx.conf` on Debian).
    pub nginx_conf: Option<PathBuf>,
    /// nginx's prefix (`-p`); unset: nginx's own.
    pub nginx_prefix: Option<PathBuf>,
    /// The IPv4 address to listen on; unset: every address.
    pub listen_address: Option<String>,
    /// Listen on IPv6 (`[::]`) too.
    #[serde(deserialize_with = "lenient::boolean")]
    #[schemars(with = "lenient::schema::Flag")]
    pub ipv6: bool,
    /// The plain HTTP port (redirects, ACME challenges).
    #[serde(deserialize_with = "lenient::port")]
    #[schemars(with = "lenient::schema::Port")]
    pub http_port: u16,
    /// The HTTPS port.
    #[serde(deserialize_with = "lenient::port")]
    #[schemars(with = "lenient::schema::Port")]
    pub https_port: u16,
    /// Mark the site `default_server` (the guide does): it then answers requests for any name.
    /// Off by default, because only one site per address and port may be the default.
    #[serde(deserialize_with = "lenient::boolean")]
    #[schemars(with = "lenient::schema::Flag")]
    pub default_server: bool,
    /// `ipv6only=on` on the IPv6 listens (the guide has it). Off by default: nginx allows it only
    /// once per address and port, so a second site setting it breaks the configuration.
    #[serde(deserialize_with = "lenient::boolean")]
    #[schemars(with = "lenient::schema::Flag")]
    pub ipv6only: bool,
    /// HSTS `max-age` in seconds (two years, as Mozilla's profile); 0 sends no HSTS header.
    #[serde(deserialize_with = "lenient::seconds")]
    #[schemars(with = "lenient::schema::Seconds")]
    pub hsts_max_age_seconds: u32,
    /// How nginx is reloaded after a change that `nginx -t` accepted: `systemd` (`systemctl
    /// reload <service>`, Debian's nginx), `signal` (`nginx -s reload` for an nginx that systemd
    /// does not run), or `none` (reported only).
    pub reload: NginxReload,
    /// nginx's systemd unit.
    pub service: String,
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy {
            server_name: None,
            upstream: None,
            certificate_source: CertificateSource::Existing,
            certificate: None,
            certificate_key: None,
            acme_webroot: PathBuf::from("/var/www/pretix-acme"),
            acme_email: None,
            acme_server: None,
            site_name: "pretix".to_owned(),
            sites_available: PathBuf::from("/etc/nginx/sites-available"),
            sites_enabled: PathBuf::from("/etc/nginx/sites-enabled"),
            nginx_conf: None,
            nginx_prefix: None,
            listen_address: None,
            ipv6: true,
            http_port: 80,
            https_port: 443,
            default_server: false,
            ipv6only: false,
            hsts_max_age_seconds: 63_072_000,
            reload: NginxReload::Systemd,
            service: "nginx".to_owned(),
        }
    }
}

/// Where the TLS certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificateSource {
    Existing,
    SelfSigned,
    Acme,
}

/// How nginx is reloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NginxReload {
    Systemd,
    Signal,
    None,
}

/// What pretix-plugin needs: a custom image with plugins on top of the base image
/// (`container.image`, pinned to the digest pretix-unit recorded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Plugins {
    /// The plugins, installed by one `pip3 install` in this order: a PEP 508 requirement without
    /// spaces (`pretix-pages==1.6.4`), or a local wheel or source directory
    /// (`{"path": "/srv/pretix-plugins/pretix_foo-1.0-py3-none-any.whl"}`).
    pub packages: Vec<PluginPackage>,
    /// The repository of the custom image; its tag is a hash of the base digest and the plugins.
    pub image: String,
    /// A CA bundle pip trusts while it downloads (a TLS-intercepting proxy, a test host). It is
    /// used in a build-only stage and never lands in the custom image. Unset: none is needed.
    pub build_ca_bundle: Option<PathBuf>,
    /// Written by pretix-plugin: the custom image it built and verified, for pretix-unit to run.
    pub built: Option<BuiltImage>,
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins {
            packages: Vec::new(),
            image: "mypretix".to_owned(),
            build_ca_bundle: None,
            built: None,
        }
    }
}

/// One plugin: a requirement string for pip, or a local wheel or source directory.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PluginPackage {
    /// A PEP 508 requirement, e.g. `pretix-pages==1.6.4` (no spaces, no URL, no markers).
    Requirement(String),
    /// A wheel file or a source directory on this host, copied into the build context.
    Local(LocalPlugin),
}

/// A local wheel or source directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalPlugin {
    /// An absolute path, no `..`, no symbolic link anywhere on it or inside a directory.
    pub path: PathBuf,
    /// The distribution name; unset: from the wheel's file name or the directory's
    /// pyproject.toml / setup.cfg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

// By hand rather than `untagged`: serde's untagged error ("did not match any variant") names
// neither what was expected nor which field of the object was wrong.
impl<'de> Deserialize<'de> for PluginPackage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(PluginPackage::Requirement(text)),
            value @ serde_json::Value::Object(_) => serde_json::from_value(value)
                .map(PluginPackage::Local)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "expected a requirement string such as \"pretix-pages==1.6.4\" or an object \
                 {{\"path\": \"/srv/plugin.whl\"}}, got {other}"
            ))),
        }
    }
}

/// The custom image pretix-plugin built, verified and recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuiltImage {
    /// `repository:tag`; the tag is the content hash of the build's inputs.
    pub image: String,
    /// The image ID (`sha256:...`).
    pub id: String,
    /// The base it was built on, pinned (`pretix/standalone@sha256:...`, or the image ID of a
    /// base that was never pulled from a registry).
    pub base: String,
    /// The plugin modules pretix loaded in the image, as pretix names them.
    pub loaded_plugins: Vec<String>,
}

/// What pretix-cron needs: the periodic `pretix cron` job. The container it runs in (its name
/// and role) comes from the `container` section, so the two cannot drift apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Cron {
    /// What runs the job: `cron` (a cron.d file, the guide's way) or `timer` (a systemd timer and
    /// service pair; output in the journal, a run missed while the host was down is made up).
    pub scheduler: CronScheduler,
    /// The schedule in cron's five fields, the guide's `15,45 * * * *`. Only the minute field may
    /// differ from `*`, so the job runs between every minute and every hour.
    pub schedule: String,
    /// The user the job runs as: root, or a user in the `docker` group.
    pub user: String,
    /// The cron.d file (scheduler `cron`). Debian's cron reads only /etc/cron.d, and only files
    /// whose names are letters, digits, `_` and `-`.
    pub file: PathBuf,
    /// The name of the timer and service units (scheduler `timer`), without a suffix.
    pub timer_unit: String,
    /// The directory of the timer and service units.
    pub unit_dir: PathBuf,
    /// The docker command line client the job calls.
    pub docker: PathBuf,
}

impl Default for Cron {
    fn default() -> Self {
        Cron {
            scheduler: CronScheduler::Cron,
            schedule: "15,45 * * * *".to_owned(),
            user: "root".to_owned(),
            file: PathBuf::from("/etc/cron.d/pretix"),
            timer_unit: "pretix-cron".to_owned(),
            unit_dir: PathBuf::from("/etc/systemd/system"),
            docker: PathBuf::from("/usr/bin/docker"),
        }
    }
}

/// What runs the periodic job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CronScheduler {
    Cron,
    Timer,
}

/// A section's host paths, each with its JSON field, for the one shared check
/// (`fs::validate_host_path`: absolute, no `..`, no control characters). Every path field of
/// every section is listed here; the tidy test keeps it so.
pub trait HostPaths {
    /// Every host path of the section that is set, with its field name in the document.
    fn host_paths(&self) -> Vec<(&'static str, &std::path::Path)>;

    /// Checks every one of them; the first bad one is an input error naming its field.
    fn validate_host_paths(&self) -> Result<(), crate::error::ToolError> {
        for (field, path) in self.host_paths() {
            crate::fs::validate_host_path(path, field)?;
        }
        Ok(())
    }
}

fn secret_path(reference: &Option<SecretRef>) -> Option<&std::path::Path> {
    reference.as_ref().map(|reference| reference.secret_file.as_path())
}

fn listed<'a>(
    paths: impl IntoIterator<Item = (&'static str, Option<&'a std::path::Path>)>,
) -> Vec<(&'static str, &'a std::path::Path)> {
    paths
        .into_iter()
        .filter_map(|(field, path)| path.map(|path| (field, path)))
        .collect()
}

impl HostPaths for Paths {
    fn host_paths(&self) -> Vec<(&'static str, &std::path::Path)> {
        vec![
            ("paths.config_dir", &self.config_dir),
            ("paths.data_dir", &self.data_dir),
            ("paths.secrets_dir", &self.secrets_dir),
            ("paths.lock_file", &self.lock_file),
            ("paths.env_file", &self.env_file),
        ]
    }
}

impl HostPaths for Database {
    fn host_paths(&self) -> Vec<(&'static str, &std::path::Path)> {
        listed([
            ("database.password.secret_file", secret_path(&self.password)),
            ("database.postgresql_conf", self.postgresql_conf.as_deref()),
            ("database.pg_hba_conf", self.pg_hba_conf.as_deref()),
            ("database.admin.password.secret_file", secret_path(&self.admin.password)),
            ("database.admin.socket_dir", Some(self.admin.socket_dir.as_path())),
        ])
    }
}

impl HostPaths for Redis {
    fn host_paths(&self) -> Vec<(&'static str, &std::path::Path)> {
        listed([
            ("redis.config_file", Some(self.config_file.as_path())),
            ("redis.socket", Some(self.socket.as_path())),
            ("redis.dropin_dir", Some(self.dropin_dir.as_path())),
            ("redis.password.secret_file", secret_path(&self.password)),
        ])
    }
}

impl HostPaths for Container {
    fn host_paths(&self) -> Vec<(&'static str, &std::path::Path)> {
        vec![
            ("container.unit_dir", &self.unit_dir),
            ("container.state_dir", &self.state_dir),
        ]
    }
}

impl HostPaths for Proxy {
    fn host_paths(&self) -> Vec<(&'static str, &std::path::Path)> {
        listed([
            ("proxy.certificate", self.certificate.as_deref()),
            ("proxy.certificate_key", self.certificate_key.as_deref()),
            ("proxy.acme_webroot", Some(self.acme_webroot.as_path())),
            ("proxy.sites_available", Some(self.sites_available.as_path())),
            ("proxy.sites_enabled", Some(self.sites_enabled.as_path())),
            ("proxy.nginx_conf", self.nginx_conf.as_deref()),
            ("proxy.nginx_prefix", self.nginx_prefix.as_deref()),
        ])
    }
}

impl HostPaths for Plugins {
    fn host_paths(&self) -> Vec<(&'static str, &std::path::Path)> {
        let mut paths = listed([("plugins.build_ca_bundle", self.build_ca_bundle.as_deref())]);
        for package in &self.packages {
            if let PluginPackage::Local(local) = package {
                paths.push(("plugins.packages[].path", local.path.as_path()));
            }
        }
        paths
    }
}

impl HostPaths for Cron {
    fn host_paths(&self) -> Vec<(&'static str, &std::path::Path)> {
        vec![
            ("cron.file", &self.file),
            ("cron.unit_dir", &self.unit_dir),
            ("cron.docker", &self.docker),
        ]
    }
}

#[cfg(test)]
mod container_tests {
    use super::*;

    fn container(json: serde_json::Value) -> Container {
        serde_json::from_value(json).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn the_single_container_is_the_guides_pretix_service() {
        let single = container(serde_json::json!({}));
        let instances = single.resolved_instances();
        assert_eq!(instances.len(), 1);
        assert_eq!(instances[0].container_name(), "pretix.service");
        assert_eq!(instances[0].role, ContainerRole::All);
        assert_eq!(instances[0].published_port, Some(8345));
        assert!(single.automigrates());
        assert_eq!(
            single.task_container().map(|instance| instance.unit),
            Some("pretix.service".to_owned())
        );
        let worker = container(serde_json::json!({"role": "taskworker"}));
        assert_eq!(worker.resolved_instances()[0].published_port, None);
    }

    #[test]
    fn several_containers_skip_automigrate_and_the_taskworker_runs_commands() {
        let scaled = container(serde_json::json!({"instances": [
            {"unit": "pretix-web.service", "role": "web", "published_port": "8345"},
            {"unit": "pretix-worker.service", "role": "taskworker", "queues": ["checkout"], "concurrency": 4}
        ]}));
        assert!(!scaled.automigrates());
        assert_eq!(
            scaled.task_container().map(|instance| instance.unit),
            Some("pretix-worker.service".to_owned())
        );
        let forced = container(serde_json::json!({"automigrate": "yes", "instances": [
            {"unit": "a.service", "role": "web"}, {"unit": "b.service", "role": "web"}
        ]}));
        assert!(forced.automigrates());
    }
}
