//! What pretix-redis adds to the document: pretix.cfg's `[redis]` and `[celery]` settings for
//! pretix-cfg, and the socket volume and group for pretix-unit.
//!
//! In the socket modes these are the guide's lines exactly, with the configured socket path (the
//! container mounts the socket's directory at the same path). In tcp mode the password must not
//! travel in the document: `[redis] location` carries no password and `[redis] password` is a
//! secret reference; celery has no password key, so each celery URL, password included, lives in
//! a root-only file of its own under `paths.secrets_dir`, and `[celery] backend` and `broker` are
//! references to those files. pretix-cfg reads a referenced file as the whole value.

use std::net::IpAddr;

use pretix_site::sections::{ConfigValue, RedisSocketMode};
use pretix_site::{Context, Document, Secret, SecretRef, ToolError};

use crate::error::RedisSetupError;
use crate::settings::Desired;

/// What goes into the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Additions {
    /// `(section, key, value)` for `config`.
    pub config: Vec<(&'static str, &'static str, ConfigValue)>,
    /// `host:container` for `container.volumes`.
    pub volume: Option<String>,
    /// A gid for `container.group_add`.
    pub group_add: Option<String>,
}

/// The additions for a mode. `redis_gid` is the socket's group (group mode only).
pub fn additions(desired: &Desired, redis_gid: Option<u32>) -> Additions {
    let socket = desired.socket.display();
    let socket_dir = desired.socket_dir.display();
    match &desired.tcp {
        None => Additions {
            config: vec![
                ("redis", "location", ConfigValue::Text(format!("unix://{socket}?db=0"))),
                ("redis", "sessions", ConfigValue::Text("true".to_owned())),
                (
                    "celery",
                    "backend",
                    ConfigValue::Text(format!("redis+socket://{socket}?virtual_host=1")),
                ),
                (
                    "celery",
                    "broker",
                    ConfigValue::Text(format!("redis+socket://{socket}?virtual_host=2")),
                ),
            ],
            volume: Some(format!("{socket_dir}:{socket_dir}")),
            group_add: match desired.mode {
                RedisSocketMode::Group => redis_gid.map(|gid| gid.to_string()),
                RedisSocketMode::World | RedisSocketMode::Tcp => None,
            },
        },
        Some(tcp) => Additions {
            config: vec![
                (
                    "redis",
                    "location",
                    ConfigValue::Text(format!("redis://{}:{}/0", url_host(tcp.bind), tcp.port)),
                ),
                ("redis", "password", ConfigValue::Secret(tcp.password.clone())),
                ("redis", "sessions", ConfigValue::Text("true".to_owned())),
                (
                    "celery",
                    "backend",
                    ConfigValue::Secret(SecretRef::new(&tcp.celery_backend_file)),
                ),
                (
                    "celery",
                    "broker",
                    ConfigValue::Secret(SecretRef::new(&tcp.celery_broker_file)),
                ),
            ],
            volume: None,
            group_add: None,
        },
    }
}

/// Puts the additions into the document. A different value the document already had is
/// replaced, with a warning; the same setting spelt differently (`sessions: on`) is kept.
pub fn add_to_document(ctx: &mut Context, document: &mut Document, additions: &Additions) -> Result<(), ToolError> {
    for (section, key, value) in &additions.config {
        let existing = document.config_value(section, key)?;
        if existing.as_ref().is_some_and(|existing| same_setting(existing, value)) {
            continue;
        }
        if let Some(previous) = document.set_config_value(section, key, value.clone()) {
            ctx.warn(format!(
                "config.{section}.{key}: replaced {} from the document with {}",
                describe(&previous),
                describe(value)
            ));
        }
    }
    if let Some(volume) = &additions.volume {
        document.add_to_list("container", "volumes", volume);
    }
    if let Some(gid) = &additions.group_add {
        document.add_to_list("container", "group_add", gid);
    }
    Ok(())
}

/// Refuses a document whose settings contradict the mode, before anything is changed.
pub fn document_conflicts(document: &Document, desired: &Desired) -> Result<(), RedisSetupError> {
    if desired.tcp.is_none()
        && let Ok(Some(_)) = document.config_value("redis", "password")
    {
        return Err(RedisSetupError::input(
            "config.redis.password",
            format!(
                "is set, but socket_mode {} gives Redis no password and pretix's login would be refused: remove it, \
                 or use socket_mode tcp",
                crate::settings::mode_name(desired.mode)
            ),
        ));
    }
    if desired.mode == RedisSocketMode::Group
        && let Some(role) = supervisord_role(document)
    {
        return Err(RedisSetupError::input(
            "redis.socket_mode",
            format!(
                "group does not reach pretix in container.role {role}: there the pretix image starts gunicorn and \
                 celery through supervisord, which gives them only the groups /etc/group inside the image lists \
                 for pretixuser, so docker's --group-add is dropped and the 770 socket refuses them; use socket_mode \
                 world (the guide's 777) or tcp; group works for taskworker containers"
            ),
        ));
    }
    Ok(())
}

/// The container role when it runs pretix under supervisord (`all`, the default, and `web`).
/// Read leniently from the raw section: pretix-unit owns it.
fn supervisord_role(document: &Document) -> Option<String> {
    let role = document
        .raw_section("container")
        .and_then(|container| container.get("role"))
        .and_then(|role| role.as_str())
        .unwrap_or("all");
    matches!(role, "all" | "web").then(|| role.to_owned())
}

fn same_setting(existing: &ConfigValue, wanted: &ConfigValue) -> bool {
    if existing == wanted {
        return true;
    }
    match (existing.as_plain_text(), wanted.as_plain_text()) {
        (Some(left), Some(right)) => normalize_boolean(&left) == normalize_boolean(&right),
        _ => false,
    }
}

fn normalize_boolean(text: &str) -> String {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => "on".to_owned(),
        "0" | "no" | "false" | "off" => "off".to_owned(),
        _ => text.to_owned(),
    }
}

fn describe(value: &ConfigValue) -> String {
    match value {
        ConfigValue::Secret(reference) => format!("the secret in {}", reference.secret_file.display()),
        plain => describe_plain(&plain.as_plain_text().unwrap_or_default()),
    }
}

/// A value the user wrote by hand may hold a password the redactor does not know, in forms no
/// mask can parse reliably (`redis://:pa/ss@host`, `?password=`): such a value is not shown.
fn describe_plain(text: &str) -> String {
    let credentials = text.split_once("://").is_some_and(|(_, rest)| rest.contains('@'))
        || text.to_ascii_lowercase().contains("password");
    if credentials {
        "a value with credentials (not shown)".to_owned()
    } else {
        text.to_owned()
    }
}

/// A host in a URL: IPv6 in brackets.
pub fn url_host(host: IpAddr) -> String {
    match host {
        IpAddr::V4(address) => address.to_string(),
        IpAddr::V6(address) => format!("[{address}]"),
    }
}

/// A celery URL with the password, as kombu parses it (the password percent-encoded).
pub fn celery_url(host: IpAddr, port: u16, password: &Secret, database: u32) -> Secret {
    Secret::new(format!(
        "redis://:{}@{}:{port}/{database}",
        percent_encode(password.expose()),
        url_host(host)
    ))
}

/// Percent-encodes everything outside RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The celery URL files a tcp-mode run writes: `(path, url)`.
pub fn celery_url_files(desired: &Desired, password: &Secret) -> Vec<(std::path::PathBuf, Secret)> {
    let Some(tcp) = &desired.tcp else {
        return Vec::new();
    };
    vec![
        (
            tcp.celery_backend_file.clone(),
            celery_url(tcp.bind, tcp.port, password, 1),
        ),
        (
            tcp.celery_broker_file.clone(),
            celery_url(tcp.bind, tcp.port, password, 2),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretix_site::sections::{Paths, Redis};

    fn desired(mode: RedisSocketMode) -> Desired {
        let section = Redis {
            socket_mode: mode,
            ..Redis::default()
        };
        crate::settings::resolve(&section, &Paths::default()).expect("valid")
    }

    fn text(additions: &Additions, section: &str, key: &str) -> Option<ConfigValue> {
        additions
            .config
            .iter()
            .find(|(s, k, _)| *s == section && *k == key)
            .map(|(_, _, value)| value.clone())
    }

    #[test]
    fn world_mode_gives_the_guides_lines_exactly() {
        let additions = additions(&desired(RedisSocketMode::World), Some(107));
        assert_eq!(
            text(&additions, "redis", "location"),
            Some(ConfigValue::Text("unix:///var/run/redis/redis.sock?db=0".into()))
        );
        assert_eq!(
            text(&additions, "redis", "sessions"),
            Some(ConfigValue::Text("true".into()))
        );
        assert_eq!(
            text(&additions, "celery", "backend"),
            Some(ConfigValue::Text(
                "redis+socket:///var/run/redis/redis.sock?virtual_host=1".into()
            ))
        );
        assert_eq!(
            text(&additions, "celery", "broker"),
            Some(ConfigValue::Text(
                "redis+socket:///var/run/redis/redis.sock?virtual_host=2".into()
            ))
        );
        assert_eq!(additions.volume.as_deref(), Some("/var/run/redis:/var/run/redis"));
        assert_eq!(additions.group_add, None);
    }

    #[test]
    fn group_mode_adds_the_group() {
        let additions = additions(&desired(RedisSocketMode::Group), Some(107));
        assert_eq!(additions.group_add.as_deref(), Some("107"));
        assert_eq!(additions.volume.as_deref(), Some("/var/run/redis:/var/run/redis"));
    }

    #[test]
    fn tcp_mode_keeps_the_password_out_of_the_document() {
        let additions = additions(&desired(RedisSocketMode::Tcp), None);
        assert_eq!(
            text(&additions, "redis", "location"),
            Some(ConfigValue::Text("redis://172.17.0.1:6379/0".into()))
        );
        assert_eq!(
            text(&additions, "redis", "password"),
            Some(ConfigValue::Secret(SecretRef::new(
                "/etc/pretix-toolkit/secrets/redis-password"
            )))
        );
        assert_eq!(
            text(&additions, "celery", "broker"),
            Some(ConfigValue::Secret(SecretRef::new(
                "/etc/pretix-toolkit/secrets/redis-celery-broker-url"
            )))
        );
        assert_eq!(additions.volume, None);
        assert_eq!(additions.group_add, None);
    }

    #[test]
    fn group_mode_is_refused_where_supervisord_drops_the_group() {
        let group = desired(RedisSocketMode::Group);
        for (document, refused) in [
            ("{}", true),
            (r#"{"container": {"role": "web"}}"#, true),
            (r#"{"container": {"role": "taskworker"}}"#, false),
        ] {
            let document = Document::parse(document).expect("document");
            let outcome = document_conflicts(&document, &group);
            assert_eq!(outcome.is_err(), refused, "{document:?}: {outcome:?}");
        }
        let world = desired(RedisSocketMode::World);
        assert!(document_conflicts(&Document::parse("{}").expect("document"), &world).is_ok());
    }

    #[test]
    fn celery_urls_encode_the_password() {
        let url = celery_url("172.17.0.1".parse().expect("ip"), 6379, &Secret::new("a@b:c/d%e"), 2);
        assert_eq!(url.expose(), "redis://:a%40b%3Ac%2Fd%25e@172.17.0.1:6379/2");
        let url = celery_url("fd00::1".parse().expect("ip"), 6380, &Secret::new("plainpassword"), 1);
        assert_eq!(url.expose(), "redis://:plainpassword@[fd00::1]:6380/1");
    }

    #[test]
    fn hand_written_values_with_credentials_are_not_shown() {
        for text in [
            "redis://:hunter2hunter2@10.0.0.1:6379/0",
            "redis://user:pw@host/1",
            "redis://:se/cretpass@10.0.0.5:6379/0",
            "redis://h:6379/2?password=querysecret1",
        ] {
            assert_eq!(describe_plain(text), "a value with credentials (not shown)", "{text}");
        }
        assert_eq!(
            describe_plain("unix:///var/run/redis/redis.sock?db=0"),
            "unix:///var/run/redis/redis.sock?db=0"
        );
    }

    #[test]
    fn the_same_setting_spelt_differently_is_kept() {
        assert!(same_setting(
            &ConfigValue::Bool(true),
            &ConfigValue::Text("true".into())
        ));
        assert!(same_setting(
            &ConfigValue::Text("on".into()),
            &ConfigValue::Text("true".into())
        ));
        assert!(!same_setting(
            &ConfigValue::Text("redis://x/0".into()),
            &ConfigValue::Text("redis://y/0".into())
        ));
    }
}
