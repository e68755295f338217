//! The rules that make pretix fail at start-up (pretix's settings.py and its system checks), checked
//! before anything is written.

use crate::ini::Config;
use crate::schema::{self, parse_bool};

/// Where the config will be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleContext {
    /// Inside the pretix/standalone container: `datadir` must be `/data`.
    pub in_container: bool,
    /// For a host install: whether the data dir's parent exists (pretix does not create it).
    pub datadir_parent_exists: Option<bool>,
}

/// One broken rule. `key` is the key to fix (or the section's key that triggers the rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleViolation {
    pub section: String,
    pub key: String,
    pub message: String,
}

fn violation(section: &str, key: &str, message: impl Into<String>) -> RuleViolation {
    RuleViolation {
        section: section.to_owned(),
        key: key.to_owned(),
        message: message.into(),
    }
}

fn get<'a>(config: &'a Config, section: &str, key: &str) -> Option<&'a str> {
    config.get(section).and_then(|keys| keys.get(key)).map(String::as_str)
}

/// The language codes of pretix 2026.8 (`ALL_LANGUAGES` in pretix/_base_settings.py).
pub const ALL_LANGUAGES: &[&str] = &[
    "en",
    "de",
    "de-informal",
    "ar",
    "eu",
    "ca",
    "zh-hans",
    "zh-hant",
    "cs",
    "hr",
    "da",
    "nl",
    "nl-informal",
    "fr",
    "fi",
    "gl",
    "el",
    "he",
    "hu",
    "id",
    "it",
    "ja",
    "lv",
    "nb-no",
    "pl",
    "pt-pt",
    "pt-br",
    "ro",
    "ru",
    "sk",
    "sv",
    "es",
    "es-419",
    "th",
    "tr",
    "uk",
];

/// Languages pretix offers only in debug mode or when `[languages] allow_incubating` names them.
pub const INCUBATING_LANGUAGES: &[&str] = &["pt-br", "gl"];

/// pretix's own computation (settings.py): the default (fallback `en`) must be one of
/// `ALL_LANGUAGES`, minus the incubating ones not allowed (unless `[django] debug`), minus those
/// not in `[languages] enabled` when that is set. Codes are compared exactly, as pretix does.
fn default_language_problem(config: &Config) -> Option<String> {
    let given = get(config, "locale", "default");
    let default = given.unwrap_or("en");
    let named = match given {
        Some(value) => format!("\"{value}\""),
        None => "unset, so pretix uses \"en\", which".to_owned(),
    };
    let debug = get(config, "django", "debug").and_then(parse_bool).unwrap_or(false);
    let allowed: Vec<&str> = get(config, "languages", "allow_incubating")
        .map(|value| value.split(',').collect())
        .unwrap_or_default();
    let enabled: Vec<&str> = get(config, "languages", "enabled")
        .map(|value| value.split(',').filter(|code| !code.is_empty()).collect())
        .unwrap_or_default();
    if !ALL_LANGUAGES.contains(&default) {
        let hint = ALL_LANGUAGES
            .iter()
            .find(|code| code.eq_ignore_ascii_case(default))
            .map(|code| format!(" (codes are case-sensitive: \"{code}\")"))
            .unwrap_or_default();
        return Some(format!(
            "{named} is not a language pretix has{hint}: use one of {}",
            ALL_LANGUAGES.join(", ")
        ));
    }
    if INCUBATING_LANGUAGES.contains(&default) && !debug && !allowed.contains(&default) {
        return Some(format!(
            "{named} is an incubating language, which pretix offers only when [languages] allow_incubating \
             names it: add it there or pick another"
        ));
    }
    if !enabled.is_empty() && !enabled.contains(&default) {
        return Some(format!(
            "{named} is not among [languages] enabled ({}): add it there or pick one of them",
            enabled.join(",")
        ));
    }
    None
}

/// Every rule pretix enforces when it starts; an empty list means it will start.
pub fn check_startup_rules(config: &Config, context: &RuleContext) -> Vec<RuleViolation> {
    let mut found = Vec::new();
    for (section, keys) in config {
        if let Err(error) = schema::section(section) {
            found.push(violation(section, "", error.to_string()));
            continue;
        }
        for (key, value) in keys {
            match schema::key(section, key) {
                Err(error) => found.push(violation(section, key, error.to_string())),
                Ok(definition) => {
                    if let Err(message) = schema::check_value(definition, value) {
                        found.push(violation(section, key, message));
                    }
                }
            }
        }
    }

    if let Some(value) = get(config, "pretix", "request_id_header")
        && parse_bool(value).is_some()
    {
        found.push(violation(
            "pretix",
            "request_id_header",
            format!(
                "\"{value}\" looks like a boolean, which pretix refuses: give the name of a header, e.g. X-Request-ID"
            ),
        ));
    }
    if let Some(url) = get(config, "pretix", "url") {
        let host = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
        if host.is_none_or(str::is_empty) {
            found.push(violation(
                "pretix",
                "url",
                format!("\"{url}\" is not an http:// or https:// URL with a host name"),
            ));
        }
    }
    if context.in_container
        && let Some(datadir) = get(config, "pretix", "datadir")
        && datadir.trim_end_matches('/') != "/data"
    {
        found.push(violation(
            "pretix",
            "datadir",
            format!("is {datadir}, but inside the container the data dir is /data: set /data"),
        ));
    }
    if context.datadir_parent_exists == Some(false) && !context.in_container {
        found.push(violation(
            "pretix",
            "datadir",
            "its parent directory does not exist, and pretix creates only the last level: create the parent",
        ));
    }

    if let Some(problem) = default_language_problem(config) {
        found.push(violation("locale", "default", problem));
    }

    if let Some(backend) = get(config, "database", "backend") {
        if backend.contains("mysql") {
            found.push(violation(
                "database",
                "backend",
                "pretix does no longer support running on MySQL/MariaDB and exits at start-up: migrate to postgresql",
            ));
        } else if !matches!(backend, "postgresql" | "postgresql_psycopg2" | "sqlite3") {
            found.push(violation(
                "database",
                "backend",
                format!("\"{backend}\" is not a backend pretix supports: use postgresql (or sqlite3 for tests)"),
            ));
        }
    }
    if let Some(advisory) = get(config, "database", "advisory_lock_index")
        .and_then(|value| value.trim().replace('_', "").parse::<i64>().ok())
        && !(0..=256).contains(&advisory)
    {
        found.push(violation(
            "database",
            "advisory_lock_index",
            "must be between 0 and 256",
        ));
    }
    let sslmode = get(config, "database", "sslmode").unwrap_or("disable");
    if sslmode != "disable" {
        if get(config, "database", "sslrootcert").is_none() {
            found.push(violation(
                "database",
                "sslrootcert",
                format!("sslmode {sslmode} turns TLS on, and then pretix needs sslrootcert (the CA file): set it"),
            ));
        }
        if get(config, "database", "sslcert").is_some() && get(config, "database", "sslkey").is_none() {
            found.push(violation(
                "database",
                "sslkey",
                "sslcert is set (client certificate), and then pretix needs sslkey: set it",
            ));
        }
    }
    let cert_reqs = get(config, "redis", "ssl_cert_reqs").unwrap_or("none");
    if cert_reqs != "none" {
        if get(config, "redis", "ssl_ca_certs").is_none() {
            found.push(violation(
                "redis",
                "ssl_ca_certs",
                format!("ssl_cert_reqs {cert_reqs} turns TLS on, and then pretix needs ssl_ca_certs: set it"),
            ));
        }
        if get(config, "redis", "ssl_certfile").is_some() && get(config, "redis", "ssl_keyfile").is_none() {
            found.push(violation(
                "redis",
                "ssl_keyfile",
                "ssl_certfile is set (client certificate), and then pretix needs ssl_keyfile: set it",
            ));
        }
    }
    if get(config, "celery", "broker").is_some() && get(config, "celery", "backend").is_none() {
        found.push(violation(
            "celery",
            "backend",
            "a celery broker needs a result backend, or pretix fails at start-up: set backend",
        ));
    }

    for (key, limit) in [
        ("order_code", 16),
        ("ticket_secret", 64),
        ("voucher_code", 255),
        ("customer_identifier", i64::MAX),
        ("giftcard_secret", i64::MAX),
    ] {
        if let Some(value) =
            get(config, "entropy", key).and_then(|value| value.trim().replace('_', "").parse::<i64>().ok())
            && (value < 1 || value >= limit)
        {
            let range = if limit == i64::MAX {
                "at least 1".to_owned()
            } else {
                format!("from 1 to {}", limit - 1)
            };
            found.push(violation(
                "entropy",
                key,
                format!("{value} is out of range: use {range}"),
            ));
        }
    }
    if let Some(from) = get(config, "mail", "from")
        && !from.contains('@')
    {
        found.push(violation("mail", "from", format!("\"{from}\" is not a mail address")));
    }
    found
}

/// Things that do not stop pretix but that a sysadmin should know.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    match get(config, "database", "backend") {
        None | Some("sqlite3") => warnings.push(
            "the database is sqlite3: pretix says never to use it in production; use postgresql (pretix-db)".to_owned(),
        ),
        Some("postgresql_psycopg2") => {
            warnings.push("[database] backend postgresql_psycopg2 is the old spelling: write postgresql".to_owned())
        }
        _ => {}
    }
    if get(config, "redis", "location").is_none() {
        warnings.push(
            "no [redis] location: without redis pretix is only fit for development (pretix-redis sets it up)"
                .to_owned(),
        );
    }
    if get(config, "celery", "broker").is_none() {
        warnings.push("no [celery] broker: every task (mails, exports) runs inside the web request".to_owned());
    }
    if get(config, "django", "debug").and_then(parse_bool) == Some(true) {
        warnings.push("[django] debug is on: never in production".to_owned());
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entries: &[(&str, &str, &str)]) -> Config {
        let mut config = Config::new();
        for (section, key, value) in entries {
            config
                .entry((*section).to_owned())
                .or_default()
                .insert((*key).to_owned(), (*value).to_owned());
        }
        config
    }

    fn keys_of(entries: &[(&str, &str, &str)]) -> Vec<String> {
        check_startup_rules(
            &config(entries),
            &RuleContext {
                in_container: true,
                datadir_parent_exists: None,
            },
        )
        .into_iter()
        .map(|found| format!("{}.{}", found.section, found.key))
        .collect()
    }

    #[test]
    fn each_rule_fails_and_passes() {
        let base = [("pretix", "url", "https://x.example"), ("mail", "from", "a@x.example")];
        assert!(keys_of(&base).is_empty());
        type Case<'a> = (&'a [(&'a str, &'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (&[("pretix", "request_id_header", "true")], "pretix.request_id_header"),
            (&[("pretix", "obligatory_2fa", "admins")], "pretix.obligatory_2fa"),
            (&[("pretix", "datadir", "/srv")], "pretix.datadir"),
            (&[("pretix", "url", "tickets.example")], "pretix.url"),
            (
                &[("locale", "default", "fr"), ("languages", "enabled", "de,en")],
                "locale.default",
            ),
            (
                &[("languages", "enabled", "de, en"), ("locale", "default", "de")],
                "languages.enabled",
            ),
            (&[("locale", "default", "DE")], "locale.default"),
            (&[("locale", "default", "fr-fr")], "locale.default"),
            (&[("locale", "default", "pt-br")], "locale.default"),
            (&[("languages", "enabled", "de")], "locale.default"),
            (&[("pretix", "loglevel", "info")], "pretix.loglevel"),
            (&[("database", "backend", "mysql")], "database.backend"),
            (&[("database", "backend", "oracle")], "database.backend"),
            (&[("database", "sslmode", "require")], "database.sslrootcert"),
            (
                &[
                    ("database", "sslmode", "require"),
                    ("database", "sslrootcert", "/ca"),
                    ("database", "sslcert", "/c"),
                ],
                "database.sslkey",
            ),
            (&[("replica", "sslmode", "require")], "replica.sslmode"),
            (&[("redis", "ssl_cert_reqs", "required")], "redis.ssl_ca_certs"),
            (
                &[
                    ("redis", "ssl_cert_reqs", "required"),
                    ("redis", "ssl_ca_certs", "/ca"),
                    ("redis", "ssl_certfile", "/c"),
                ],
                "redis.ssl_keyfile",
            ),
            (&[("celery", "broker", "redis://x/2")], "celery.backend"),
            (&[("entropy", "order_code", "16")], "entropy.order_code"),
            (
                &[("database", "advisory_lock_index", "300")],
                "database.advisory_lock_index",
            ),
            (&[("mail", "from", "nobody")], "mail.from"),
            (&[("mail", "port", "25 ; smtp")], "mail.port"),
        ];
        for (extra, expected) in cases {
            let mut entries = base.to_vec();
            entries.extend_from_slice(extra);
            assert_eq!(keys_of(&entries), [expected.to_string()], "{extra:?}");
        }
        let good: &[(&str, &str, &str)] = &[
            ("locale", "default", "pt-br"),
            ("languages", "enabled", "de,pt-br"),
            ("languages", "allow_incubating", "pt-br"),
            ("pretix", "loglevel", "WARNING"),
            ("database", "sslmode", "verify-full"),
            ("database", "sslrootcert", "/ca"),
            ("celery", "broker", "redis://x/2"),
            ("celery", "backend", "redis://x/1"),
            ("entropy", "order_code", "15"),
            ("pretix", "request_id_header", "X-Request-ID"),
            ("pretix", "datadir", "/data/"),
        ];
        let mut entries = base.to_vec();
        entries.extend_from_slice(good);
        assert!(keys_of(&entries).is_empty(), "{:?}", keys_of(&entries));
    }

    #[test]
    fn warnings_name_development_setups() {
        let found = warnings(&config(&[("database", "backend", "sqlite3")]));
        assert!(found.iter().any(|warning| warning.contains("sqlite3")));
        assert!(found.iter().any(|warning| warning.contains("[redis]")));
    }
}
