//! pretix.cfg's whole schema as typed data: every section and key that pretix 2026.8 reads in
//! `src/pretix/settings.py`, with its type and default.

use std::fmt;
use std::path::Path;

/// How pretix reads a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `config.get`: any text.
    Str,
    /// `config.getboolean`: configparser's boolean words.
    Bool,
    /// `config.getint`: Python's `int()`.
    Int,
    /// `config.getfloat`: Python's `float()`.
    Float,
    /// `json.loads` of the text.
    Json,
    /// A comma-separated list.
    CommaList,
    /// `[pretix] obligatory_2fa`: a boolean word or `staff`.
    Obligatory2fa,
    /// `[pretix] loglevel`: a name Python's `logging` knows, upper-case.
    LogLevel,
    /// `[locale] timezone`: a zone name of the tz database (Django checks /usr/share/zoneinfo).
    TimeZone,
}

/// One key pretix reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDef {
    pub name: &'static str,
    pub kind: ValueKind,
    /// pretix's fallback, as text (`None`: unset, the key's absence means something).
    pub default: Option<&'static str>,
    /// The value is a secret: it must come from a secret file, and is masked everywhere.
    pub secret: bool,
}

/// One section pretix reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionDef {
    pub name: &'static str,
    pub keys: &'static [KeyDef],
}

const fn def(name: &'static str, kind: ValueKind, default: Option<&'static str>) -> KeyDef {
    KeyDef {
        name,
        kind,
        default,
        secret: false,
    }
}

const fn secret(name: &'static str) -> KeyDef {
    KeyDef {
        name,
        kind: ValueKind::Str,
        default: None,
        secret: true,
    }
}

use ValueKind::{Bool, CommaList, Float, Int, Json, LogLevel, Obligatory2fa, Str, TimeZone};

/// Every section, in the order pretix's documentation presents them.
pub static SECTIONS: &[SectionDef] = &[
    SectionDef {
        name: "pretix",
        keys: &[
            def("instance_name", Str, Some("pretix.de")),
            def("url", Str, Some("http://localhost:8000")),
            def("currency", Str, Some("EUR")),
            def("datadir", Str, Some("data")),
            def("logdir", Str, None),
            def("cachedir", Str, None),
            def(
                "plugins_default",
                CommaList,
                Some("pretix.plugins.sendmail,pretix.plugins.statistics,pretix.plugins.checkinlists"),
            ),
            def("plugins_organizer_default", CommaList, Some("")),
            def("plugins_exclude", CommaList, Some("")),
            def("plugins_show_meta", Bool, Some("on")),
            def("auth_backends", CommaList, Some("pretix.base.auth.NativeAuthBackend")),
            def("registration", Bool, Some("off")),
            def("password_reset", Bool, Some("on")),
            def("long_sessions", Bool, Some("on")),
            def("audit_comments", Bool, Some("off")),
            def("obligatory_2fa", Obligatory2fa, Some("False")),
            def("ecb_rates", Bool, Some("on")),
            def("trust_x_forwarded_for", Bool, Some("off")),
            def("trust_x_forwarded_proto", Bool, Some("off")),
            def("trust_x_forwarded_host", Bool, Some("off")),
            def("allow_http_to_private_networks", Bool, Some("off")),
            def("request_id_header", Str, None),
            def("csp_log", Bool, Some("off")),
            def("csp_additional_header", Str, Some("")),
            def("loglevel", LogLevel, Some("INFO")),
        ],
    },
    SectionDef {
        name: "locale",
        keys: &[def("default", Str, Some("en")), def("timezone", TimeZone, Some("UTC"))],
    },
    SectionDef {
        name: "languages",
        keys: &[
            def("enabled", CommaList, Some("")),
            def("allow_incubating", CommaList, Some("")),
            def("path", Str, None),
        ],
    },
    SectionDef {
        name: "database",
        keys: &[
            def("backend", Str, Some("sqlite3")),
            def("name", Str, None),
            def("user", Str, Some("")),
            secret("password"),
            def("host", Str, Some("")),
            def("port", Str, Some("")),
            def("advisory_lock_index", Int, Some("0")),
            def("disable_server_side_cursors", Bool, Some("off")),
            def("sslmode", Str, Some("disable")),
            def("sslrootcert", Str, None),
            def("sslcert", Str, None),
            def("sslkey", Str, None),
        ],
    },
    SectionDef {
        name: "replica",
        keys: &[
            def("name", Str, None),
            def("user", Str, None),
            secret("password"),
            def("host", Str, None),
            def("port", Str, None),
        ],
    },
    SectionDef {
        name: "dbreadonly",
        keys: &[
            def("name", Str, None),
            def("user", Str, None),
            secret("password"),
            def("host", Str, None),
            def("port", Str, None),
        ],
    },
    SectionDef {
        name: "urls",
        keys: &[def("static", Str, Some("/static/")), def("media", Str, Some("/media/"))],
    },
    SectionDef {
        name: "mail",
        keys: &[
            def("from", Str, Some("pretix@localhost")),
            def("from_notifications", Str, None),
            def("from_organizers", Str, None),
            def("host", Str, Some("localhost")),
            def("port", Int, Some("25")),
            def("user", Str, Some("")),
            secret("password"),
            def("tls", Bool, Some("off")),
            def("ssl", Bool, Some("off")),
            def("admins", CommaList, Some("")),
            def("custom_sender_verification_required", Bool, Some("on")),
            def("custom_sender_spf_string", Str, Some("")),
            def("custom_sender_dkim_selector", Str, Some("")),
            def("custom_sender_dkim_cname", Str, Some("")),
            def("custom_sender_dmarc_required", Bool, Some("off")),
            def("custom_smtp_allow_private_networks", Bool, None),
        ],
    },
    SectionDef {
        name: "django",
        keys: &[
            secret("secret"),
            secret("secret_fallback0"),
            secret("secret_fallback1"),
            secret("secret_fallback2"),
            secret("secret_fallback3"),
            secret("secret_fallback4"),
            secret("secret_fallback5"),
            secret("secret_fallback6"),
            secret("secret_fallback7"),
            secret("secret_fallback8"),
            secret("secret_fallback9"),
            def("debug", Bool, None),
            def("profile", Float, Some("0")),
            def("passwords_argon2", Bool, Some("on")),
        ],
    },
    SectionDef {
        name: "metrics",
        keys: &[
            def("enabled", Bool, Some("off")),
            def("user", Str, Some("metrics")),
            KeyDef {
                name: "passphrase",
                kind: Str,
                default: Some(""),
                secret: true,
            },
        ],
    },
    SectionDef {
        name: "memcached",
        keys: &[def("location", Str, None)],
    },
    SectionDef {
        name: "redis",
        keys: &[
            def("location", Str, None),
            def("sessions", Bool, Some("off")),
            def("sentinels", Json, None),
            secret("password"),
            def("ssl_cert_reqs", Str, Some("none")),
            def("ssl_ca_certs", Str, None),
            def("ssl_certfile", Str, None),
            def("ssl_keyfile", Str, None),
        ],
    },
    SectionDef {
        name: "celery",
        keys: &[
            def("backend", Str, None),
            def("broker", Str, None),
            def("broker_transport_options", Json, Some("{}")),
            def("backend_transport_options", Json, Some("{}")),
        ],
    },
    SectionDef {
        name: "cache",
        keys: &[def("tickets", Int, Some("72"))],
    },
    SectionDef {
        name: "entropy",
        keys: &[
            def("order_code", Int, Some("5")),
            def("ticket_secret", Int, Some("32")),
            def("voucher_code", Int, Some("16")),
            def("customer_identifier", Int, Some("7")),
            def("giftcard_secret", Int, Some("12")),
        ],
    },
    SectionDef {
        name: "geoip",
        keys: &[
            def("path", Str, None),
            def("filename_country", Str, Some("GeoLite2-Country.mmdb")),
        ],
    },
    SectionDef {
        name: "sentry",
        keys: &[
            def("dsn", Str, None),
            def("traces_sample_rate", Float, Some("0.0")),
            def("traces_sample_token", Str, Some("")),
            def("enable_logs", Bool, Some("off")),
        ],
    },
    SectionDef {
        name: "tools",
        keys: &[def("pdftk", Str, None)],
    },
    SectionDef {
        name: "pretix_file_upload",
        keys: &[
            def("max_size_image", Int, Some("10")),
            def("max_size_favicon", Int, Some("1")),
            def("max_size_email_attachment", Int, Some("5")),
            def("max_size_email_auto_attachment", Int, Some("1")),
            def("max_size_other", Int, Some("10")),
        ],
    },
];

/// A section or key pretix does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaError {
    UnknownSection {
        section: String,
        hint: Option<String>,
    },
    UnknownKey {
        section: String,
        key: String,
        hint: Option<String>,
    },
}

impl fmt::Display for SchemaError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaError::UnknownSection { section, hint } => {
                write!(formatter, "pretix has no section [{section}]")?;
                match hint {
                    Some(hint) => write!(formatter, ": {hint}"),
                    None => write!(formatter, "; its sections are {}", section_names().join(", ")),
                }
            }
            SchemaError::UnknownKey { section, key, hint } => {
                write!(formatter, "pretix reads no key \"{key}\" in [{section}]")?;
                match hint {
                    Some(hint) => write!(formatter, ": {hint}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for SchemaError {}

fn section_names() -> Vec<&'static str> {
    SECTIONS.iter().map(|section| section.name).collect()
}

/// A section by name (section names are case-sensitive in configparser).
pub fn section(name: &str) -> Result<&'static SectionDef, SchemaError> {
    if let Some(found) = SECTIONS.iter().find(|section| section.name == name) {
        return Ok(found);
    }
    let hint = match name {
        "logging" => Some("logging is configured with [pretix] loglevel and logdir".to_owned()),
        "files" => Some("upload sizes are in [pretix_file_upload]".to_owned()),
        _ => closest(name, SECTIONS.iter().map(|section| section.name)).map(|found| format!("did you mean [{found}]?")),
    };
    Err(SchemaError::UnknownSection {
        section: name.to_owned(),
        hint,
    })
}

/// A key by section and name (option names are case-insensitive: configparser lower-cases them).
pub fn key(section_name: &str, key_name: &str) -> Result<&'static KeyDef, SchemaError> {
    let section = section(section_name)?;
    let lowered = key_name.to_ascii_lowercase();
    if let Some(found) = section.keys.iter().find(|definition| definition.name == lowered) {
        return Ok(found);
    }
    let hint = match (section_name, lowered.as_str()) {
        ("pretix", "cookie_domain") => Some("pretix no longer reads cookie_domain; remove it".to_owned()),
        ("django", "passwords_argon") => Some("did you mean \"passwords_argon2\"? (the docs misspell it)".to_owned()),
        _ => closest(&lowered, section.keys.iter().map(|definition| definition.name))
            .map(|found| format!("did you mean \"{found}\"?")),
    };
    Err(SchemaError::UnknownKey {
        section: section_name.to_owned(),
        key: key_name.to_owned(),
        hint,
    })
}

fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|left, right| left.0.total_cmp(&right.0))
        .map(|(_, candidate)| candidate)
}

/// configparser's `BOOLEAN_STATES`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Python's `int()` on a string: optional sign, digits with single underscores between them,
/// surrounding whitespace allowed.
fn is_python_int(value: &str) -> bool {
    let digits = value.trim().trim_start_matches(['+', '-']);
    !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits
            .chars()
            .all(|character| character.is_ascii_digit() || character == '_')
        && value.trim().len() - digits.len() <= 1
}

/// Python's `float()` on a string, closely enough: Rust's parser plus Python's spellings.
fn is_python_float(value: &str) -> bool {
    let text = value.trim().replace('_', "");
    let lowered = text.to_ascii_lowercase();
    let bare = lowered.trim_start_matches(['+', '-']);
    matches!(bare, "inf" | "infinity" | "nan") || (!text.is_empty() && text.parse::<f64>().is_ok())
}

/// Whether pretix would accept this value for this key.
pub fn check_value(definition: &KeyDef, value: &str) -> Result<(), String> {
    match definition.kind {
        ValueKind::Str => Ok(()),
        ValueKind::CommaList => {
            // pretix splits on "," and strips nothing: "de, en" enables " en", which is no language.
            match value.split(',').find(|item| item.trim() != *item) {
                Some(item) => Err(format!(
                    "\"{value}\": the item \"{item}\" has spaces around it, and pretix splits on commas \
                     without stripping them: write \"{}\"",
                    value.split(',').map(str::trim).collect::<Vec<_>>().join(",")
                )),
                None => Ok(()),
            }
        }
        ValueKind::LogLevel => {
            const LEVELS: &[&str] = &[
                "CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET",
            ];
            if LEVELS.contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "\"{value}\" is not a log level Python knows (they are case-sensitive): use one of {}",
                    LEVELS.join(", ")
                ))
            }
        }
        ValueKind::TimeZone => check_time_zone(value, Path::new(ZONEINFO)),
        ValueKind::Bool => parse_bool(value)
            .map(drop)
            .ok_or_else(|| format!("\"{value}\" is not a boolean: use on/off, true/false, yes/no or 1/0")),
        ValueKind::Obligatory2fa => {
            if parse_bool(value).is_some() || value.eq_ignore_ascii_case("staff") {
                Ok(())
            } else {
                Err(format!(
                    "\"{value}\" is not allowed: use on/off (or true/false, yes/no, 1/0) or staff"
                ))
            }
        }
        ValueKind::Int => {
            if is_python_int(value) {
                Ok(())
            } else {
                Err(format!(
                    "\"{value}\" is not a whole number (comments must go on their own line, not after the value)"
                ))
            }
        }
        ValueKind::Float => {
            if is_python_float(value) {
                Ok(())
            } else {
                Err(format!("\"{value}\" is not a number"))
            }
        }
        ValueKind::Json => {
            let parsed: serde_json::Value =
                serde_json::from_str(value).map_err(|error| format!("\"{value}\" is not valid JSON: {error}"))?;
            match definition.name {
                "sentinels" => {
                    let valid = parsed.as_array().is_some_and(|pairs| {
                        pairs
                            .iter()
                            .all(|pair| pair.as_array().is_some_and(|pair| pair.len() == 2))
                    });
                    if valid {
                        Ok(())
                    } else {
                        Err("must be a JSON list of [host, port] pairs".to_owned())
                    }
                }
                _ if definition.name.ends_with("_transport_options") && !parsed.is_object() => {
                    Err("must be a JSON object, e.g. {\"master_name\": \"mymaster\"}".to_owned())
                }
                _ => Ok(()),
            }
        }
    }
}

/// Where Django looks for zone files (in the container; the host's copy stands in for it).
pub const ZONEINFO: &str = "/usr/share/zoneinfo";

/// Django refuses a `TIME_ZONE` without a file under /usr/share/zoneinfo ("Incorrect timezone
/// setting"). The name is checked for shape, then against the zone files under `zoneinfo` when
/// that directory exists.
pub fn check_time_zone(value: &str, zoneinfo: &Path) -> Result<(), String> {
    let well_formed = !value.is_empty()
        && !value.starts_with('/')
        && value
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && value
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "/_+-".contains(character));
    if !well_formed {
        return Err(format!(
            "\"{value}\" is not a time zone name: use one like Europe/Berlin or UTC"
        ));
    }
    if zoneinfo.is_dir() && !zoneinfo.join(value).is_file() {
        return Err(format!(
            "\"{value}\" is not a known time zone (no {}/{value}), and Django refuses to start with it: \
             use one like Europe/Berlin or UTC (names are case-sensitive)",
            zoneinfo.display()
        ));
    }
    Ok(())
}

/// The JSON Schema of the document's `config`, from this option schema: every section and key
/// pretix reads, each value typed as pretix-cfg accepts it (or a secret reference; a secret key
/// only as a secret reference). `cargo xtask schema` puts it into `schema/site.schema.json`.
pub fn config_json_schema() -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let secret = json!({"$ref": "#/$defs/SecretRef"});
    let text_like = json!([{"type": "string"}, {"type": "number"}, {"type": "boolean"}]);
    let mut sections = Map::new();
    for section in SECTIONS {
        let mut keys = Map::new();
        for key in section.keys {
            let value = if key.secret {
                secret.clone()
            } else {
                let mut choices = match key.kind {
                    ValueKind::Bool => vec![
                        json!({"type": "boolean"}),
                        json!({"type": "integer", "enum": [0, 1]}),
                        json!({"type": "string", "pattern": "^([oO][nN]|[oO][fF][fF]|[tT][rR][uU][eE]|[fF][aA][lL][sS][eE]|[yY][eE][sS]|[nN][oO]|1|0)$"}),
                    ],
                    ValueKind::Int => vec![
                        json!({"type": "integer"}),
                        json!({"type": "string", "pattern": "^\\s*[+-]?[0-9](_?[0-9])*\\s*$"}),
                    ],
                    ValueKind::Float => vec![json!({"type": "number"}), json!({"type": "string"})],
                    ValueKind::LogLevel => vec![json!({"type": "string", "enum": [
                        "CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET"
                    ]})],
                    ValueKind::Str
                    | ValueKind::CommaList
                    | ValueKind::Json
                    | ValueKind::Obligatory2fa
                    | ValueKind::TimeZone => text_like.as_array().cloned().unwrap_or_default(),
                };
                choices.push(secret.clone());
                json!({"anyOf": choices})
            };
            let mut value = value;
            if let (Some(default), Some(map)) =
                (key.default.filter(|default| !default.is_empty()), value.as_object_mut())
            {
                map.insert(
                    "description".to_owned(),
                    Value::String(format!("pretix's default: {default}")),
                );
            }
            keys.insert(key.name.to_owned(), value);
        }
        sections.insert(
            section.name.to_owned(),
            json!({"type": "object", "properties": keys, "additionalProperties": false}),
        );
    }
    json!({"type": "object", "properties": sections, "additionalProperties": false, "default": {}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_the_real_name() {
        let error = key("mail", "form").expect_err("unknown").to_string();
        assert!(error.contains("did you mean \"from\"?"), "{error}");
        let error = section("databse").expect_err("unknown").to_string();
        assert!(error.contains("did you mean [database]?"), "{error}");
        assert!(
            section("logging")
                .expect_err("unknown")
                .to_string()
                .contains("loglevel")
        );
        assert!(
            key("django", "passwords_argon")
                .expect_err("unknown")
                .to_string()
                .contains("passwords_argon2")
        );
    }

    #[test]
    fn option_names_are_case_insensitive_sections_are_not() {
        assert!(key("mail", "FROM").is_ok());
        assert!(section("Mail").is_err());
    }

    #[test]
    fn every_documented_section_is_known() {
        for name in [
            "pretix",
            "locale",
            "languages",
            "database",
            "replica",
            "dbreadonly",
            "urls",
            "mail",
            "django",
            "metrics",
            "memcached",
            "redis",
            "celery",
            "cache",
            "entropy",
            "geoip",
            "sentry",
            "tools",
            "pretix_file_upload",
        ] {
            assert!(section(name).is_ok(), "{name}");
        }
        assert_eq!(SECTIONS.len(), 19);
        assert!(key("django", "secret_fallback9").expect("fallback").secret);
    }

    #[test]
    fn values_are_type_checked_like_pretix() {
        let port = key("mail", "port").expect("port");
        assert!(check_value(port, "25").is_ok());
        assert!(check_value(port, " 2_5 ").is_ok());
        assert!(check_value(port, "25 ; smtp").is_err());
        let tls = key("mail", "tls").expect("tls");
        assert!(check_value(tls, "On").is_ok());
        assert!(check_value(tls, "enabled").is_err());
        let two_factor = key("pretix", "obligatory_2fa").expect("2fa");
        assert!(check_value(two_factor, "staff").is_ok());
        assert!(check_value(two_factor, "sometimes").is_err());
        let sentinels = key("redis", "sentinels").expect("sentinels");
        assert!(check_value(sentinels, r#"[["10.0.0.1", 26379]]"#).is_ok());
        assert!(check_value(sentinels, r#"{"a": 1}"#).is_err());
        let enabled = key("languages", "enabled").expect("enabled");
        assert!(check_value(enabled, "de,en").is_ok());
        let error = check_value(enabled, "de, en").expect_err("pretix would not strip the space");
        assert!(error.contains("write \"de,en\""), "{error}");
        let loglevel = key("pretix", "loglevel").expect("loglevel");
        assert!(check_value(loglevel, "WARNING").is_ok());
        assert!(check_value(loglevel, "info").is_err() && check_value(loglevel, "VERBOSE").is_err());
        let zoneinfo = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(zoneinfo.path().join("Europe")).expect("mkdir");
        std::fs::write(zoneinfo.path().join("Europe/Berlin"), "TZif").expect("write");
        assert!(check_time_zone("Europe/Berlin", zoneinfo.path()).is_ok());
        assert!(check_time_zone("Europe/Berln", zoneinfo.path()).is_err());
        assert!(
            check_time_zone("Europe", zoneinfo.path()).is_err(),
            "a directory is no zone"
        );
        assert!(check_time_zone("../../etc/passwd", zoneinfo.path()).is_err());
        assert!(
            check_time_zone("Europe/Berln", Path::new("/nonexistent")).is_ok(),
            "no database: shape only"
        );
        let rate = key("sentry", "traces_sample_rate").expect("rate");
        assert!(
            check_value(rate, "0.25").is_ok() && check_value(rate, "1e-2").is_ok() && check_value(rate, "a").is_err()
        );
    }
}
