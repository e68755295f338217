//! `verify`: read-only. Reports redis.conf, the drop-in, the socket and the running server as
//! check items; any failure fails the run (exit 1). Nothing on the host is changed; the document
//! gets the same settings as from `apply`, so a `pretix-cfg check` downstream compares the same.

use std::io;
use std::path::Path;

use pretix_site::report::CheckStatus;
use pretix_site::sections::{Paths, Redis, RedisSocketMode};
use pretix_site::{Context, Document, Secret, SecretRef, ToolError};

use crate::apply::{WORLD_WARNING, overriding_dropins, socket_problem, too_few_databases};
use crate::conf::{self, PRETIX_DATABASES};
use crate::dropin;
use crate::inspect;
use crate::pretix_config;
use crate::server::{SocketFile, Target, socket_file};
use crate::settings::{self, Desired};

pub fn verify(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let section: Redis = document.section("redis")?;
    let paths: Paths = document.section("paths")?;
    let desired = settings::resolve(&section, &paths)?;
    pretix_config::document_conflicts(document, &desired)?;
    for warning in &desired.warnings {
        ctx.check_item("redis section", CheckStatus::Warning, warning.clone());
    }
    let password = check_password(ctx, &desired);
    check_conf(ctx, &desired, password.as_ref());
    if desired.mode == RedisSocketMode::World {
        ctx.check_item("socket permissions", CheckStatus::Warning, WORLD_WARNING);
    }
    check_dropin(ctx, &desired);
    let redis_gid = match desired.mode {
        RedisSocketMode::Group => match inspect::redis_gid(ctx.root()) {
            Ok(gid) => Some(gid),
            Err(error) => {
                ctx.check_item("socket group", CheckStatus::Failure, error.to_string());
                None
            }
        },
        RedisSocketMode::World | RedisSocketMode::Tcp => None,
    };
    check_socket_file(ctx, &desired, redis_gid);
    if ctx.is_offline() {
        ctx.check_item(
            "answering",
            CheckStatus::Warning,
            "not checked (--offline): redis-server was not contacted",
        );
    } else {
        check_server(ctx, &desired, password.as_ref());
    }
    if let Some(password) = &password {
        check_celery_urls(ctx, &desired, password);
    }
    pretix_config::add_to_document(ctx, document, &pretix_config::additions(&desired, redis_gid))?;
    ctx.verify_outcome("pretix-redis apply fixes what it owns")
}

fn check_password(ctx: &mut Context, desired: &Desired) -> Option<Secret> {
    let tcp = desired.tcp.as_ref()?;
    match ctx.read_secret(&tcp.password, "redis.password") {
        Ok(secret) => {
            ctx.check_item(
                "password",
                CheckStatus::Ok,
                format!("read from {}", tcp.password.secret_file.display()),
            );
            Some(secret)
        }
        Err(error) => {
            let fix = if tcp.password_given {
                "put the password in that root-only file"
            } else {
                "run pretix-redis apply, which generates it"
            };
            ctx.check_item("password", CheckStatus::Failure, format!("{error}: {fix}"));
            None
        }
    }
}

fn check_conf(ctx: &mut Context, desired: &Desired, password: Option<&Secret>) {
    let current = match inspect::read_conf(ctx.root(), &desired.config_file) {
        Ok(current) => current,
        Err(error) => {
            ctx.check_item("redis.conf", CheckStatus::Failure, error.to_string());
            return;
        }
    };
    for secret in conf::secrets_in(&current.text) {
        ctx.register_secret(&secret);
    }
    let path = desired.config_file.display().to_string();
    ctx.check_item("redis.conf", CheckStatus::Ok, format!("{path} is readable"));
    let facts = conf::facts(&current.text);
    let socket = desired.socket.display().to_string();
    let item = |matches: bool| if matches { CheckStatus::Ok } else { CheckStatus::Failure };
    match &facts.unixsocket {
        Some(value) if *value == socket => ctx.check_item("unixsocket", CheckStatus::Ok, value.clone()),
        Some(value) => ctx.check_item(
            "unixsocket",
            CheckStatus::Failure,
            format!("{path} says {value}, the document says {socket}: run pretix-redis apply"),
        ),
        None => ctx.check_item(
            "unixsocket",
            CheckStatus::Failure,
            format!("{path} sets no unixsocket: run pretix-redis apply"),
        ),
    }
    let wanted_perm = desired.socket_perm();
    ctx.check_item(
        "unixsocketperm",
        item(facts.unixsocketperm == Some(wanted_perm)),
        match facts.unixsocketperm {
            Some(perm) if perm == wanted_perm => format!("{perm:o}"),
            Some(perm) => format!(
                "{path} says {perm:o}, socket_mode {} means {wanted_perm:o}: run pretix-redis apply",
                settings::mode_name(desired.mode)
            ),
            None => format!("{path} sets no unixsocketperm: run pretix-redis apply"),
        },
    );
    if let Some(count) = facts.databases
        && count < PRETIX_DATABASES
    {
        ctx.check_item(
            "databases",
            CheckStatus::Failure,
            format!("{path} says databases {count}, pretix uses 0, 1 and 2: set databases 16"),
        );
    }
    match (&desired.tcp, &facts.requirepass) {
        (None, Some(_)) => ctx.check_item(
            "requirepass",
            CheckStatus::Failure,
            format!(
                "{path} sets requirepass, which the socket URLs do not give: comment it out, or use socket_mode tcp"
            ),
        ),
        (None, None) => {}
        (Some(tcp), requirepass) => {
            let bound = facts.bind.as_deref().is_some_and(|bind| {
                matches!(
                    conf::merged_bind(Some(bind), tcp.bind),
                    conf::BindPlan::Keep | conf::BindPlan::EveryAddress
                )
            });
            ctx.check_item(
                "bind",
                item(bound),
                match &facts.bind {
                    Some(bind) if bound => bind.clone(),
                    Some(bind) => format!("{path} binds {bind}, without {}: run pretix-redis apply", tcp.bind),
                    None => format!("{path} has no bind line: run pretix-redis apply"),
                },
            );
            let port = facts.port.unwrap_or(6379);
            ctx.check_item(
                "port",
                item(port == tcp.port),
                if port == tcp.port {
                    port.to_string()
                } else {
                    format!(
                        "{path} says port {port}, the document says {}: run pretix-redis apply",
                        tcp.port
                    )
                },
            );
            let (status, message) = match (requirepass, password) {
                (Some(set), Some(password)) if set == password.expose() => {
                    (CheckStatus::Ok, "set to the password in the secret file".to_owned())
                }
                (Some(_), Some(_)) => (
                    CheckStatus::Failure,
                    format!("{path} has another password than the secret file: run pretix-redis apply"),
                ),
                (Some(_), None) => (
                    CheckStatus::Warning,
                    "set, but the secret file could not be read to compare".to_owned(),
                ),
                (None, _) => (
                    CheckStatus::Failure,
                    format!("{path} sets no requirepass: run pretix-redis apply"),
                ),
            };
            ctx.check_item("requirepass", status, message);
            ctx.check_item(
                "redis.conf mode",
                item(current.mode & 0o007 == 0),
                if current.mode & 0o007 == 0 {
                    format!("{:04o}", current.mode)
                } else {
                    format!(
                        "{path} holds the password and is mode {:04o}, readable by every user: chmod o-rwx it",
                        current.mode
                    )
                },
            );
        }
    }
}

fn check_dropin(ctx: &mut Context, desired: &Desired) {
    let shown = desired.dropin_file.display().to_string();
    let wanted = dropin::dropin_text(desired.mode);
    match std::fs::read_to_string(ctx.root().host_path(&desired.dropin_file)) {
        Ok(text) if text == wanted => ctx.check_item("drop-in", CheckStatus::Ok, format!("{shown}: RuntimeDirectoryPreserve=yes")),
        Ok(text) if text.lines().any(|line| line.trim() == "RuntimeDirectoryPreserve=yes") => ctx.check_item(
            "drop-in",
            CheckStatus::Warning,
            format!("{shown} keeps RuntimeDirectoryPreserve=yes but differs from what pretix-redis writes: run pretix-redis apply --check --diff"),
        ),
        Ok(_) => ctx.check_item(
            "drop-in",
            CheckStatus::Failure,
            format!("{shown} does not set RuntimeDirectoryPreserve=yes: run pretix-redis apply"),
        ),
        Err(error) if error.kind() == io::ErrorKind::NotFound => ctx.check_item(
            "drop-in",
            CheckStatus::Failure,
            format!("{shown} is missing, so a restart of redis-server takes the socket away from the container: run pretix-redis apply"),
        ),
        Err(error) => ctx.check_item("drop-in", CheckStatus::Failure, format!("cannot read {shown}: {error}")),
    }
    for warning in overriding_dropins(ctx, desired) {
        ctx.check_item("drop-in", CheckStatus::Failure, warning);
    }
}

fn check_socket_file(ctx: &mut Context, desired: &Desired, redis_gid: Option<u32>) {
    let shown = desired.socket.display().to_string();
    match socket_file(&ctx.root().host_path(&desired.socket)) {
        Ok(SocketFile::Socket { mode, gid, .. }) => match socket_problem(desired, mode, gid, redis_gid) {
            Some(problem) => ctx.check_item("socket", CheckStatus::Failure, problem),
            None => ctx.check_item(
                "socket",
                CheckStatus::Ok,
                format!("{shown}: mode {mode:04o}, group {gid}"),
            ),
        },
        Ok(SocketFile::Missing) => ctx.check_item(
            "socket",
            CheckStatus::Failure,
            format!(
                "{shown} does not exist: is redis-server running with this redis.conf? (systemctl status {})",
                desired.service
            ),
        ),
        Ok(SocketFile::NotASocket) => ctx.check_item(
            "socket",
            CheckStatus::Failure,
            format!("{shown} exists but is not a socket: move it away and restart redis-server"),
        ),
        Err(error) => ctx.check_item(
            "socket",
            CheckStatus::Failure,
            format!("cannot inspect {shown}: {error}"),
        ),
    }
}

fn check_server(ctx: &mut Context, desired: &Desired, password: Option<&Secret>) {
    let socket = Target::socket(
        ctx.root().host_path(&desired.socket),
        &desired.socket,
        password.cloned(),
    );
    match socket.ping() {
        Ok(()) => ctx.check_item("answering", CheckStatus::Ok, format!("PING on {socket}: PONG")),
        Err(error) => {
            ctx.check_item(
                "answering",
                CheckStatus::Failure,
                format!("{socket}: {error}: {}", error.fix(&desired.service)),
            );
            return;
        }
    }
    match socket.databases() {
        Ok(databases) if databases.enough() => ctx.check_item("databases", CheckStatus::Ok, databases.to_string()),
        Ok(databases) => ctx.check_item(
            "databases",
            CheckStatus::Failure,
            too_few_databases(databases, &desired.service),
        ),
        Err(error) => ctx.check_item("databases", CheckStatus::Failure, error.to_string()),
    }
    if let Some(tcp) = &desired.tcp {
        let target = Target::tcp(tcp.bind, tcp.port, password.cloned());
        match target.ping() {
            Ok(()) => ctx.check_item(
                "tcp",
                CheckStatus::Ok,
                format!("PING with the password on {target}: PONG"),
            ),
            Err(error) => ctx.check_item(
                "tcp",
                CheckStatus::Failure,
                format!("{target}: {error}: {}", error.fix(&desired.service)),
            ),
        }
    }
}

fn check_celery_urls(ctx: &mut Context, desired: &Desired, password: &Secret) {
    for (path, url) in pretix_config::celery_url_files(desired, password) {
        ctx.register_secret(&url);
        let (status, message) = match ctx.read_secret(&SecretRef::new(&path), "config.celery") {
            Ok(found) if found == url => (CheckStatus::Ok, format!("{} holds the URL", path.display())),
            Ok(_) => (
                CheckStatus::Failure,
                format!(
                    "{} holds another URL than the password and address give: run pretix-redis apply",
                    path.display()
                ),
            ),
            Err(error) => (CheckStatus::Failure, format!("{error}: run pretix-redis apply")),
        };
        ctx.check_item(&celery_item_name(&path), status, message);
    }
}

fn celery_item_name(path: &Path) -> String {
    format!(
        "celery url {}",
        path.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}
