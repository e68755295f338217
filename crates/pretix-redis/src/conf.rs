//! redis.conf: the directives pretix-redis owns, planned from the file's current text. Pure.
//!
//! Owned in every mode: `unixsocket`, `unixsocketperm`. In tcp mode also `bind` (the docker
//! host address is added to what is there), `port` and `requirepass`. Every other byte stays.

use std::net::IpAddr;
use std::path::Path;

use pretix_site::Secret;
use pretix_site::lineedit::{Lines, Syntax};
use pretix_site::secret::Redactor;

use crate::error::RedisSetupError;

/// The database numbers pretix uses: 0 cache and sessions, 1 celery results, 2 celery broker.
pub const PRETIX_DATABASES: u32 = 3;

/// What redis.conf must say.
#[derive(Debug, Clone)]
pub struct ConfWanted<'a> {
    pub socket: &'a Path,
    pub perm: u32,
    pub tcp: Option<TcpWanted<'a>>,
}

/// tcp mode's part of redis.conf.
#[derive(Debug, Clone)]
pub struct TcpWanted<'a> {
    pub bind: IpAddr,
    pub port: u16,
    pub password: &'a Secret,
}

/// The planned redis.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfPlan {
    pub text: String,
    /// The directives that change, as `name value` (a password shown as `********`).
    pub changes: Vec<String>,
    pub warnings: Vec<String>,
}

impl ConfPlan {
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// Plans redis.conf. Fails, before anything is written, when the file as it is cannot serve
/// pretix in the chosen mode.
pub fn plan_conf(path: &Path, current: &str, wanted: &ConfWanted<'_>) -> Result<ConfPlan, RedisSetupError> {
    let mut lines = Lines::parse(current);
    let mut warnings = Vec::new();
    let conflict = |message: String| RedisSetupError::Conflict {
        path: path.display().to_string(),
        message,
    };
    if let Some(databases) = lines.directive(Syntax::RedisConf, "databases")
        && let Ok(count) = databases.value.trim().parse::<u32>()
        && count < PRETIX_DATABASES
    {
        return Err(conflict(format!(
            "databases is {count}, but pretix uses databases 0 (cache and sessions), 1 and 2 (celery): set \
             databases 16 (Redis's default)"
        )));
    }
    let current_password = active_password(&lines);
    if wanted.tcp.is_none() && current_password.is_some() {
        return Err(conflict(
            "requirepass is set, but the unix socket URLs give pretix no password: comment out requirepass, or use \
             socket_mode tcp (pretix then gets the password)"
                .to_owned(),
        ));
    }
    for include in lines.find_directives(Syntax::RedisConf, "include") {
        warnings.push(format!(
            "{} includes {}: a directive there can override unixsocket and unixsocketperm",
            path.display(),
            include.value
        ));
    }
    if !lines.find_directives(Syntax::RedisConf, "aclfile").is_empty()
        || !lines.find_directives(Syntax::RedisConf, "user").is_empty()
    {
        warnings.push(format!(
            "{} defines ACL users (user/aclfile): make sure the default user may run every command pretix needs",
            path.display()
        ));
    }
    let mut changes = Vec::new();
    let socket = wanted.socket.display().to_string();
    if let Some(previous) = lines.directive(Syntax::RedisConf, "unixsocket")
        && !previous.value.is_empty()
        && previous.value != socket
    {
        warnings.push(format!(
            "{} had unixsocket {}; it becomes {socket}: other local clients of the old socket must follow",
            path.display(),
            previous.value
        ));
    }
    if lines.set_directive(Syntax::RedisConf, "unixsocket", &socket) {
        changes.push(format!("unixsocket {socket}"));
    }
    let perm = format!("{:o}", wanted.perm);
    if set_octal(&mut lines, "unixsocketperm", wanted.perm) {
        changes.push(format!("unixsocketperm {perm}"));
    }
    if let Some(tcp) = &wanted.tcp {
        let current_bind = lines.directive(Syntax::RedisConf, "bind").map(|found| found.value);
        match merged_bind(current_bind.as_deref(), tcp.bind) {
            BindPlan::Keep => {}
            BindPlan::EveryAddress => warnings.push(format!(
                "{} binds every address (bind {}): Redis is reachable from every network, protected only by its \
                 password; consider bind 127.0.0.1 -::1 {}",
                path.display(),
                current_bind.unwrap_or_default(),
                tcp.bind
            )),
            BindPlan::Set(value) => {
                lines.set_directive(Syntax::RedisConf, "bind", &value);
                changes.push(format!("bind {value}"));
            }
        }
        let port = tcp.port.to_string();
        let port_is_set = lines
            .directive(Syntax::RedisConf, "port")
            .is_some_and(|found| found.value.trim().parse::<u16>().ok() == Some(tcp.port));
        if !port_is_set && lines.set_directive(Syntax::RedisConf, "port", &port) {
            changes.push(format!("port {port}"));
        }
        if lines.set_directive(Syntax::RedisConf, "requirepass", tcp.password.expose()) {
            changes.push(format!("requirepass {}", Redactor::MASK));
            if current_password.is_some() {
                warnings.push(format!(
                    "{} had another requirepass: every other client of this Redis needs the new password",
                    path.display()
                ));
            }
        }
    }
    Ok(ConfPlan {
        text: lines.render(),
        changes,
        warnings,
    })
}

/// Sets an octal directive unless it already has that value, however it is spelt (`0770`).
fn set_octal(lines: &mut Lines, name: &str, value: u32) -> bool {
    let current = lines
        .directive(Syntax::RedisConf, name)
        .and_then(|found| u32::from_str_radix(found.value.trim(), 8).ok());
    if current == Some(value) {
        return false;
    }
    lines.set_directive(Syntax::RedisConf, name, &format!("{value:o}"))
}

/// What `bind` must become so Redis also listens on `add`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindPlan {
    /// `add` is already there.
    Keep,
    /// Redis already listens on every address (`*`, `0.0.0.0`, `::`).
    EveryAddress,
    /// The new value.
    Set(String),
}

/// Merges `add` into `bind`, keeping the addresses already there (like PostgreSQL's
/// `listen_addresses`). Without an active `bind`, Redis 7 listens everywhere; the plan then
/// narrows it to Debian's loopback default plus `add`.
pub fn merged_bind(current: Option<&str>, add: IpAddr) -> BindPlan {
    let Some(current) = current.map(str::trim).filter(|value| !value.is_empty()) else {
        return BindPlan::Set(format!("127.0.0.1 -::1 {add}"));
    };
    let addresses: Vec<&str> = current.split_whitespace().collect();
    let bare = |token: &str| token.trim_start_matches('-').to_owned();
    if addresses
        .iter()
        .any(|token| matches!(bare(token).as_str(), "*" | "::*" | "0.0.0.0" | "::"))
    {
        return BindPlan::EveryAddress;
    }
    if addresses
        .iter()
        .any(|token| bare(token).parse::<IpAddr>().ok() == Some(add))
    {
        return BindPlan::Keep;
    }
    BindPlan::Set(format!("{} {add}", addresses.join(" ")))
}

/// The active `requirepass`, if any (an empty `requirepass ""` means none).
fn active_password(lines: &Lines) -> Option<String> {
    lines
        .directive(Syntax::RedisConf, "requirepass")
        .map(|found| found.value)
        .filter(|value| !value.is_empty())
}

/// Every secret redis.conf holds (`requirepass`, `masterauth`, `>password` of ACL users), so a
/// diff of the file never shows one.
pub fn secrets_in(text: &str) -> Vec<Secret> {
    let lines = Lines::parse(text);
    let mut secrets = Vec::new();
    for name in ["requirepass", "masterauth"] {
        for found in lines.find_directives(Syntax::RedisConf, name) {
            if !found.value.is_empty() {
                secrets.push(Secret::new(found.value));
            }
        }
    }
    for found in lines.find_directives(Syntax::RedisConf, "user") {
        for rule in found.value.split_whitespace() {
            if let Some(password) = rule.strip_prefix('>').or_else(|| rule.strip_prefix('<')) {
                secrets.push(Secret::new(password));
            }
        }
    }
    secrets
}

/// What redis.conf says about the owned directives, for `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfFacts {
    pub unixsocket: Option<String>,
    pub unixsocketperm: Option<u32>,
    pub bind: Option<String>,
    pub port: Option<u16>,
    pub requirepass: Option<String>,
    pub databases: Option<u32>,
}

pub fn facts(text: &str) -> ConfFacts {
    let lines = Lines::parse(text);
    let value = |name: &str| lines.directive(Syntax::RedisConf, name).map(|found| found.value);
    ConfFacts {
        unixsocket: value("unixsocket"),
        unixsocketperm: value("unixsocketperm").and_then(|perm| u32::from_str_radix(perm.trim(), 8).ok()),
        bind: value("bind"),
        port: value("port").and_then(|port| port.trim().parse().ok()),
        requirepass: active_password(&lines),
        databases: value("databases").and_then(|count| count.trim().parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = include_str!("../../../fixtures/debian12/redis.conf");

    fn world() -> ConfWanted<'static> {
        ConfWanted {
            socket: Path::new("/var/run/redis/redis.sock"),
            perm: 0o777,
            tcp: None,
        }
    }

    fn changed_lines(before: &str, after: &str) -> Vec<String> {
        let before: Vec<&str> = before.lines().collect();
        after
            .lines()
            .filter(|line| !before.contains(line))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn debian_conf_gets_the_guides_two_lines_and_nothing_else() {
        let plan = plan_conf(Path::new("/etc/redis/redis.conf"), DEBIAN, &world()).expect("plan");
        assert_eq!(
            plan.changes,
            ["unixsocket /var/run/redis/redis.sock", "unixsocketperm 777"]
        );
        assert_eq!(
            changed_lines(DEBIAN, &plan.text),
            ["unixsocket /var/run/redis/redis.sock", "unixsocketperm 777"]
        );
        assert_eq!(plan.text.lines().count(), DEBIAN.lines().count() + 2);
        // Removing the two added lines gives back the original byte for byte.
        let restored: String = plan
            .text
            .split_inclusive('\n')
            .filter(|line| !line.starts_with("unixsocket"))
            .collect();
        assert_eq!(restored, DEBIAN);
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        let again = plan_conf(Path::new("/etc/redis/redis.conf"), &plan.text, &world()).expect("plan");
        assert!(!again.changed());
        assert_eq!(again.text, plan.text);
    }

    #[test]
    fn an_existing_socket_line_is_rewritten_in_place() {
        let text = "port 6379\nunixsocket /tmp/old.sock\nunixsocketperm 0700\n";
        let mut wanted = world();
        wanted.perm = 0o770;
        let plan = plan_conf(Path::new("/r.conf"), text, &wanted).expect("plan");
        assert_eq!(
            plan.text,
            "port 6379\nunixsocket /var/run/redis/redis.sock\nunixsocketperm 770\n"
        );
        assert!(
            plan.warnings[0].contains("had unixsocket /tmp/old.sock"),
            "{:?}",
            plan.warnings
        );
        let same_perm = "unixsocket /var/run/redis/redis.sock\nunixsocketperm 0770\n";
        assert!(
            !plan_conf(Path::new("/r.conf"), same_perm, &wanted)
                .expect("plan")
                .changed()
        );
    }

    #[test]
    fn too_few_databases_and_a_password_in_socket_mode_are_refused() {
        let error = plan_conf(Path::new("/r.conf"), "databases 2\n", &world()).expect_err("databases");
        assert!(error.to_string().contains("set databases 16"), "{error}");
        let error = plan_conf(Path::new("/r.conf"), "requirepass s3cretpassword\n", &world()).expect_err("password");
        assert!(error.to_string().contains("comment out requirepass"), "{error}");
        assert!(plan_conf(Path::new("/r.conf"), "requirepass \"\"\n", &world()).is_ok());
    }

    #[test]
    fn tcp_mode_merges_bind_and_sets_port_and_password() {
        let password = Secret::new("Tr0ub4dor&3xyzzy");
        let wanted = ConfWanted {
            tcp: Some(TcpWanted {
                bind: "172.17.0.1".parse().expect("ip"),
                port: 6380,
                password: &password,
            }),
            perm: 0o770,
            ..world()
        };
        let plan = plan_conf(Path::new("/etc/redis/redis.conf"), DEBIAN, &wanted).expect("plan");
        assert_eq!(
            plan.changes,
            [
                "unixsocket /var/run/redis/redis.sock",
                "unixsocketperm 770",
                "bind 127.0.0.1 -::1 172.17.0.1",
                "port 6380",
                "requirepass ********"
            ]
        );
        assert!(plan.text.contains("\nbind 127.0.0.1 -::1 172.17.0.1\n"));
        assert!(
            plan.text
                .contains("\n# requirepass foobared\nrequirepass Tr0ub4dor&3xyzzy\n")
        );
        assert!(
            !plan_conf(Path::new("/etc/redis/redis.conf"), &plan.text, &wanted)
                .expect("plan")
                .changed()
        );
        let facts = facts(&plan.text);
        assert_eq!(facts.port, Some(6380));
        assert_eq!(facts.requirepass.as_deref(), Some("Tr0ub4dor&3xyzzy"));
        assert_eq!(secrets_in(&plan.text), std::slice::from_ref(&password));
    }

    #[test]
    fn bind_merging() {
        let docker: IpAddr = "172.17.0.1".parse().expect("ip");
        assert_eq!(
            merged_bind(Some("127.0.0.1 -::1"), docker),
            BindPlan::Set("127.0.0.1 -::1 172.17.0.1".into())
        );
        assert_eq!(merged_bind(Some("127.0.0.1 -172.17.0.1"), docker), BindPlan::Keep);
        assert_eq!(merged_bind(Some("* -::*"), docker), BindPlan::EveryAddress);
        assert_eq!(
            merged_bind(None, docker),
            BindPlan::Set("127.0.0.1 -::1 172.17.0.1".into())
        );
    }

    #[test]
    fn acl_passwords_are_found_for_the_redactor() {
        let secrets = secrets_in("user alice on >alicepassword ~* +@all\nmasterauth masterpass1\n");
        assert!(secrets.contains(&Secret::new("alicepassword")));
        assert!(secrets.contains(&Secret::new("masterpass1")));
    }
}
