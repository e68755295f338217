//! `apply`: inspect, plan, then converge the secret files (tcp mode), the drop-in and redis.conf;
//! restart redis-server when redis.conf changed; verify; add pretix's settings to the document.

use pretix_site::fs::{DirSpec, FilePlan, FileSpec};
use pretix_site::sections::{Paths, Redis, RedisSocketMode};
use pretix_site::service::{ServiceOutcome, SkipReason};
use pretix_site::{Context, Document, Secret, ToolError};

use crate::conf::{self, ConfWanted, TcpWanted};
use crate::dropin;
use crate::error::RedisSetupError;
use crate::inspect::{self, PasswordChoice};
use crate::pretix_config;
use crate::server::{Databases, SocketFile, Target};
use crate::settings::{self, Desired};

/// The warning every `world` run carries.
pub const WORLD_WARNING: &str = "socket_mode world: the socket is mode 777 as in pretix's guide, so every local user \
                                 can read and change pretix's sessions, cache and task queue; on a host with \
                                 untrusted users use socket_mode tcp (or group, for taskworker containers)";

/// What became of redis-server this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// redis.conf did not change: the running server should already match it.
    Unchanged,
    /// Restarted (or, in tests, recorded as restarted): wait for it.
    Restarted,
    /// redis.conf changed but there was no restart (`--root`, check mode, `restart: false`).
    RestartSkipped(NoRestart),
}

/// Why redis-server was not restarted after its redis.conf changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoRestart {
    /// The service seam skipped it (check mode, `--root`).
    Skipped(SkipReason),
    /// `redis.restart: false`.
    Disabled,
}

impl std::fmt::Display for NoRestart {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoRestart::Skipped(reason) => reason.fmt(formatter),
            NoRestart::Disabled => formatter.write_str("redis.restart is off"),
        }
    }
}

pub fn apply(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let section: Redis = document.section("redis")?;
    let paths: Paths = document.section("paths")?;
    let desired = settings::resolve(&section, &paths)?;
    pretix_config::document_conflicts(document, &desired)?;
    for warning in &desired.warnings {
        ctx.warn(warning.clone());
    }

    // Inspect and plan: every check happens here, before anything is changed.
    let current = inspect::read_conf(ctx.root(), &desired.config_file)?;
    for secret in conf::secrets_in(&current.text) {
        ctx.register_secret(&secret);
    }
    let redis_gid = match desired.mode {
        RedisSocketMode::Group => Some(inspect::redis_gid(ctx.root())?),
        RedisSocketMode::World | RedisSocketMode::Tcp => None,
    };
    let password = match &desired.tcp {
        Some(tcp) => Some(inspect::resolve_password(ctx, tcp)?),
        None => None,
    };
    let wanted = ConfWanted {
        socket: &desired.socket,
        perm: desired.socket_perm(),
        tcp: desired
            .tcp
            .as_ref()
            .zip(password.as_ref())
            .map(|(tcp, choice)| TcpWanted {
                bind: tcp.bind,
                port: tcp.port,
                password: &choice.secret,
            }),
    };
    let conf_plan = conf::plan_conf(&desired.config_file, &current.text, &wanted)?;
    for warning in &conf_plan.warnings {
        ctx.warn(warning.clone());
    }
    if desired.mode == RedisSocketMode::World {
        ctx.warn(WORLD_WARNING);
    }
    if let Some(tcp) = desired.tcp.as_ref().filter(|tcp| tcp.bind.is_loopback()) {
        ctx.warn(format!(
            "redis.tcp_bind {} is a loopback address: a container on Docker's bridge network cannot reach it (its \
             own loopback is itself); use the docker host address, 172.17.0.1 by default",
            tcp.bind
        ));
    }
    // In tcp mode redis.conf holds the password: keep Debian's owner-and-group-only mode.
    let conf_mode = if desired.tcp.is_some() {
        current.mode & !0o007
    } else {
        current.mode
    };
    if desired.tcp.is_some() {
        // Without its other bits the file must still be readable by redis-server (User=redis,
        // Group=redis on Debian), through its owner or group.
        let redis_uid = pretix_site::users::lookup_user(ctx.root(), settings::REDIS_GROUP)
            .ok()
            .flatten()
            .map(|user| user.uid);
        let redis_gid = pretix_site::users::lookup_group(ctx.root(), settings::REDIS_GROUP)
            .ok()
            .flatten();
        let readable = redis_uid == Some(current.uid)
            || (redis_gid == Some(current.gid) && conf_mode & 0o040 != 0)
            || conf_mode & 0o004 != 0;
        if !readable {
            return Err(RedisSetupError::Preflight(format!(
                "{} is {}:{} {:04o}; in tcp mode it holds the Redis password, so it must not be readable by every \
                 user, and then redis-server (user and group redis) could not read it: chown redis:redis it and \
                 chmod 0640 (as Debian ships it)",
                desired.config_file.display(),
                current.uid,
                current.gid,
                current.mode
            ))
            .into());
        }
    }
    if conf_mode != current.mode {
        ctx.warn(format!(
            "{} was readable by every user and now holds the Redis password: its mode becomes {conf_mode:04o}",
            desired.config_file.display()
        ));
    }
    if let Some(tcp) = &desired.tcp
        && !ctx.is_offline()
    {
        let port_changes = conf::facts(&current.text).port.unwrap_or(6379) != tcp.port;
        crate::server::tcp_preflight(tcp.bind, tcp.port, port_changes).map_err(RedisSetupError::Preflight)?;
    }
    // A later drop-in that turns RuntimeDirectoryPreserve off again would make the restart below
    // take the socket's directory away from the running container.
    if let Some(problem) = overriding_dropins(ctx, &desired).into_iter().next() {
        return Err(RedisSetupError::Preflight(problem).into());
    }
    let url_files = match &password {
        Some(choice) => {
            ctx.register_secret(&Secret::new(pretix_config::percent_encode(choice.secret.expose())));
            pretix_config::celery_url_files(&desired, &choice.secret)
        }
        None => Vec::new(),
    };

    let steps = plan(
        &desired,
        &paths,
        &current,
        conf_mode,
        &conf_plan,
        password.as_ref(),
        url_files,
    );
    let (server, rollback) = apply_plan(ctx, &desired, &steps)?;
    let verified = verify(
        ctx,
        &desired,
        redis_gid,
        password.as_ref().map(|choice| &choice.secret),
        server,
        &rollback,
    )?;

    let additions = pretix_config::additions(&desired, redis_gid);
    pretix_config::add_to_document(ctx, document, &additions)?;
    let mode = settings::mode_name(desired.mode);
    let reach = match &desired.tcp {
        Some(tcp) => format!(
            "pretix reaches Redis at {}:{} with a password",
            pretix_config::url_host(tcp.bind),
            tcp.port
        ),
        None => format!(
            "pretix reaches Redis through {} (unixsocketperm {:o})",
            desired.socket.display(),
            desired.socket_perm()
        ),
    };
    Ok(format!("socket_mode {mode}: {reach}; {verified}"))
}

/// What `apply` will do, decided before anything is done: the plan as a value.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Secret files (tcp mode): the generated password when there is one, the celery URLs, all
    /// in `secrets_dir`.
    pub secrets: Vec<(std::path::PathBuf, Secret)>,
    pub secrets_dir: std::path::PathBuf,
    /// The drop-in's directory and the drop-in (a daemon-reload follows when it changes).
    pub dropin_dir: DirSpec,
    pub dropin: FileSpec,
    /// redis.conf, every other byte kept.
    pub conf: FileSpec,
    /// What happens to redis-server.
    pub restart: Restart,
}

/// What happens to redis-server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    /// redis.conf does not change.
    NotNeeded,
    /// `systemctl restart <unit>`.
    Service(String),
    /// redis.conf changes but `redis.restart` is off.
    Disabled,
}

/// The plan (pure): the steps from what is wanted and what was inspected.
pub fn plan(
    desired: &Desired,
    paths: &Paths,
    current: &inspect::CurrentConf,
    conf_mode: u32,
    conf_plan: &conf::ConfPlan,
    password: Option<&PasswordChoice>,
    url_files: Vec<(std::path::PathBuf, Secret)>,
) -> Plan {
    let mut secrets = Vec::new();
    // Only the default reference, under the secrets dir, is ever generated.
    if let Some(choice) = password.filter(|choice| choice.write) {
        secrets.push((choice.reference.secret_file.clone(), choice.secret.clone()));
    }
    if password.is_some() {
        secrets.extend(url_files);
    }
    let restart = match (conf_plan.changed(), desired.restart) {
        (false, _) => Restart::NotNeeded,
        (true, true) => Restart::Service(desired.service.clone()),
        (true, false) => Restart::Disabled,
    };
    Plan {
        secrets,
        secrets_dir: paths.secrets_dir.clone(),
        dropin_dir: DirSpec {
            path: desired.dropin_dir.clone(),
            uid: Some(0),
            gid: Some(0),
            mode: 0o755,
        },
        dropin: FileSpec::new(&desired.dropin_file, dropin::dropin_text(desired.mode))
            .owner(0, 0)
            .mode(0o644),
        conf: FileSpec::new(&desired.config_file, conf_plan.text.clone())
            .owner(current.uid, current.gid)
            .mode(conf_mode)
            .backup(true),
        restart,
    }
}

/// Carries out the plan through `Context` (in check mode it only reports). Secrets first
/// (pretix-cfg reads them), then the drop-in with its daemon-reload, so the restart already
/// keeps /run/redis, then redis.conf and the restart. Returns what became of the server and the
/// rollback hint for messages.
fn apply_plan(ctx: &mut Context, desired: &Desired, plan: &Plan) -> Result<(Server, String), ToolError> {
    for (path, secret) in &plan.secrets {
        ctx.store_secret(&plan.secrets_dir, path, secret)?;
    }
    ctx.dir(&plan.dropin_dir)?;
    let dropin_outcome = ctx.file(&plan.dropin)?;
    if matches!(dropin_outcome.plan, FilePlan::Create | FilePlan::Replace) {
        ctx.systemctl(&["daemon-reload"]).map_err(|error| {
            // A re-run finds the drop-in in place and would not reload: say so.
            ToolError::Failed(anyhow::anyhow!(
                "systemctl daemon-reload failed after writing {}: {error}: run systemctl daemon-reload yourself \
                 (a re-run will not, the drop-in is already in place)",
                desired.dropin_file.display()
            ))
        })?;
    }
    let conf_outcome = ctx.file(&plan.conf)?;
    let rollback = conf_outcome
        .backup
        .as_ref()
        .map(|backup| format!("; the previous redis.conf is saved as {}", backup.display()))
        .unwrap_or_default();
    let server = match &plan.restart {
        Restart::NotNeeded => Server::Unchanged,
        Restart::Service(service) => match ctx.systemctl(&["restart", service]) {
            Ok(ServiceOutcome::Performed) => Server::Restarted,
            Ok(ServiceOutcome::Skipped { reason }) => Server::RestartSkipped(NoRestart::Skipped(reason)),
            Err(error) => {
                return Err(ToolError::Failed(anyhow::anyhow!(
                    "systemctl restart {service} failed: {error}: see journalctl -u {service}, fix the cause, then \
                     systemctl restart {service} (a re-run finds redis.conf unchanged and will not restart){rollback}"
                )));
            }
        },
        Restart::Disabled => {
            ctx.warn(format!(
                "redis.conf changed and redis.restart is off: run systemctl restart {} to apply it; until then the \
                 socket pretix is told to use may not exist",
                desired.service
            ));
            Server::RestartSkipped(NoRestart::Disabled)
        }
    };
    Ok((server, rollback))
}

/// Other drop-ins read after ours that turn `RuntimeDirectoryPreserve` off again.
pub fn overriding_dropins(ctx: &Context, desired: &Desired) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(ctx.root().host_path(&desired.dropin_dir)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".conf") && name != settings::DROPIN_FILE_NAME)
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let text = std::fs::read_to_string(ctx.root().host_path(&desired.dropin_dir.join(&name))).ok()?;
            let value = dropin::overriding_preserve(settings::DROPIN_FILE_NAME, &name, &text)?;
            Some(format!(
                "{} sets RuntimeDirectoryPreserve={value} and is read after {}: /run/redis would be removed on \
                 every restart and the container would lose the socket; remove that line",
                desired.dropin_dir.join(&name).display(),
                settings::DROPIN_FILE_NAME
            ))
        })
        .collect()
}

/// Checks the running server against the document. Returns a summary for the message.
fn verify(
    ctx: &mut Context,
    desired: &Desired,
    redis_gid: Option<u32>,
    password: Option<&Secret>,
    server: Server,
    rollback: &str,
) -> Result<String, ToolError> {
    if ctx.is_offline() {
        ctx.note("not verified (--offline): redis-server was not contacted");
        return Ok("not verified (--offline)".to_owned());
    }
    if let Server::RestartSkipped(reason) = server {
        let message = format!("not verified: redis-server runs the previous redis.conf until it restarts ({reason})");
        ctx.note(message.clone());
        return Ok(message);
    }
    let socket = Target::socket(
        ctx.root().host_path(&desired.socket),
        &desired.socket,
        password.cloned(),
    );
    if server == Server::Restarted {
        ctx.info(&format!(
            "waiting up to {}s for redis-server to answer on {socket} after the restart",
            desired.restart_timeout_seconds
        ));
        let waited = socket
            .wait_until_answering(desired.restart_timeout())
            .map_err(|error| RedisSetupError::RestartTimeout {
                target: socket.to_string(),
                seconds: desired.restart_timeout_seconds,
                reason: format!("{error}: {}", error.fix(&desired.service)),
                service: desired.service.clone(),
                rollback: rollback.to_owned(),
            })?;
        ctx.debug(&format!(
            "redis-server answered {} ms after the restart",
            waited.as_millis()
        ));
    } else {
        socket.ping().map_err(|error| RedisSetupError::NotAnswering {
            target: socket.to_string(),
            reason: error.to_string(),
            fix: error.fix(&desired.service),
        })?;
    }
    let socket_summary = verify_socket_file(ctx, desired, redis_gid)?;
    ctx.note(format!("redis-server answers PING on {socket} ({socket_summary})"));
    let databases = socket.databases().map_err(|error| RedisSetupError::NotAnswering {
        target: socket.to_string(),
        reason: error.to_string(),
        fix: error.fix(&desired.service),
    })?;
    if !databases.enough() {
        return Err(RedisSetupError::Verification(too_few_databases(databases, &desired.service)).into());
    }
    ctx.note(format!(
        "{databases}: pretix's databases 0 (cache, sessions), 1 and 2 (celery) exist"
    ));
    if let Some(tcp) = &desired.tcp {
        let target = Target::tcp(tcp.bind, tcp.port, password.cloned());
        target.ping().map_err(|error| RedisSetupError::NotAnswering {
            target: target.to_string(),
            reason: error.to_string(),
            fix: error.fix(&desired.service),
        })?;
        ctx.note(format!("redis-server answers PING with the password on {target}"));
    }
    Ok(format!("redis-server answers, {databases}"))
}

pub fn too_few_databases(databases: Databases, service: &str) -> String {
    format!(
        "redis-server reports {databases}, but pretix uses databases 0, 1 and 2: set databases 16 in redis.conf and \
         systemctl restart {service}"
    )
}

/// The socket's mode (and group, in group mode) as the mode demands.
fn verify_socket_file(ctx: &Context, desired: &Desired, redis_gid: Option<u32>) -> Result<String, RedisSetupError> {
    let path = ctx.root().host_path(&desired.socket);
    let file = crate::server::socket_file(&path).map_err(|error| {
        RedisSetupError::Verification(format!("cannot inspect {}: {error}", desired.socket.display()))
    })?;
    let (mode, gid) = match file {
        SocketFile::Socket { mode, gid, .. } => (mode, gid),
        SocketFile::Missing | SocketFile::NotASocket => {
            return Err(RedisSetupError::Verification(format!(
                "{} is not a socket although redis-server answered on it: check for a second redis-server",
                desired.socket.display()
            )));
        }
    };
    socket_problem(desired, mode, gid, redis_gid)
        .map_or(Ok(()), |problem| Err(RedisSetupError::Verification(problem)))?;
    Ok(format!("mode {mode:04o}, group {gid}"))
}

/// What is wrong with the socket's mode or group, if anything.
pub fn socket_problem(desired: &Desired, mode: u32, gid: u32, redis_gid: Option<u32>) -> Option<String> {
    let wanted = desired.socket_perm();
    if mode & 0o777 != wanted {
        return Some(format!(
            "{} has mode {mode:04o}, but socket_mode {} means {wanted:04o}: systemctl restart {} so redis-server \
             applies unixsocketperm (or look for an include that overrides it)",
            desired.socket.display(),
            settings::mode_name(desired.mode),
            desired.service
        ));
    }
    if let Some(redis_gid) = redis_gid
        && gid != redis_gid
    {
        return Some(format!(
            "{} belongs to group {gid}, but the container joins group {} ({redis_gid}): redis-server must run as \
             group {} (Group= in its unit) or its directory must be setgid to that group",
            desired.socket.display(),
            settings::REDIS_GROUP,
            settings::REDIS_GROUP
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use pretix_site::fs::HostFile;
    use pretix_site::sections::{Paths, Redis};

    use super::{Restart, plan};
    use crate::conf::{self, ConfWanted};
    use crate::settings;

    const DEBIAN: &str = include_str!("../../../fixtures/debian12/redis.conf");

    fn planned(text: &str, restart: bool) -> super::Plan {
        let section = Redis {
            restart,
            ..Redis::default()
        };
        let paths = Paths::default();
        let desired = settings::resolve(&section, &paths).expect("the guide's defaults");
        let wanted = ConfWanted {
            socket: &desired.socket,
            perm: desired.socket_perm(),
            tcp: None,
        };
        let conf_plan = conf::plan_conf(&desired.config_file, text, &wanted).expect("plan");
        let current = HostFile {
            path: desired.config_file.clone(),
            text: text.to_owned(),
            uid: 0,
            gid: 0,
            mode: 0o640,
        };
        plan(&desired, &paths, &current, 0o640, &conf_plan, None, Vec::new())
    }

    #[test]
    fn the_plan_restarts_only_when_redis_conf_changes_and_restarts_are_allowed() {
        let fresh = planned(DEBIAN, true);
        assert_eq!(fresh.restart, Restart::Service("redis-server".to_owned()));
        assert!(fresh.secrets.is_empty(), "no secrets outside tcp mode");
        let converged = String::from_utf8(fresh.conf.content.clone()).expect("utf8");
        assert_eq!(planned(&converged, true).restart, Restart::NotNeeded);
        assert_eq!(planned(DEBIAN, false).restart, Restart::Disabled);
    }
}
