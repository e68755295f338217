//! The desired pretix.cfg: the document's `config` with the guide's fixed values added, secrets
//! read from their files, everything validated against pretix's schema and start-up rules.

use std::collections::BTreeMap;

use pretix_site::sections::{ConfigValue, Paths};
use pretix_site::{Context, Document, ToolError};

use crate::{ini, rules, schema};

/// The header of every rendered file.
pub const MANAGED_HEADER: &str = "managed by pretix-cfg (pretix toolkit): edit the site document, not this file.\n\
     Comments go on their own lines: pretix reads this file with RawConfigParser, which has no inline comments.";

/// Settings the guide fixes: the data dir as the container sees it and the proxy headers the
/// outer nginx sets. A document may not change `datadir`; the others it may switch off.
const GUIDE_DEFAULTS: &[(&str, &str, &str)] = &[
    ("pretix", "datadir", "/data"),
    ("pretix", "trust_x_forwarded_for", "on"),
    ("pretix", "trust_x_forwarded_proto", "on"),
    ("mail", "host", "172.17.0.1"),
];

/// section → key → (value, is it secret).
pub type Settings = BTreeMap<String, BTreeMap<String, (String, bool)>>;

/// One section's keys in schema order.
type OrderedSection<'a> = (&'a String, Vec<(&'a String, &'a (String, bool))>);

/// The settings to write: section → key → (value, is it secret).
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub settings: Settings,
}

impl Desired {
    pub fn setting_count(&self) -> usize {
        self.settings.values().map(BTreeMap::len).sum()
    }

    /// The plain section → key → value map the renderer and the rules take.
    pub fn plain(&self) -> ini::Config {
        let mut config = ini::Config::new();
        for (section, keys) in &self.settings {
            for (key, (value, _)) in keys {
                config
                    .entry(section.clone())
                    .or_default()
                    .insert(key.clone(), value.clone());
            }
        }
        config
    }

    pub fn render(&self) -> Result<String, ToolError> {
        ini::render(&self.plain(), MANAGED_HEADER).map_err(|error| ToolError::input(error.field(), error))
    }

    /// `PRETIX_<SECTION>_<KEY>=value` lines, as pretix's `EnvOrParserConfig` reads them, in
    /// `docker run --env-file` form. A secret is never in the file: its line is
    /// `FILE__PRETIX_<SECTION>_<KEY>=<path inside the container>`, and the secret goes to the
    /// file `secret_file_name` names, under the config dir (mounted at /etc/pretix).
    pub fn render_env(&self) -> Result<String, ToolError> {
        self.render()?;
        let mut text = String::from(
            "# managed by pretix-cfg env: pretix reads these as PRETIX_<SECTION>_<KEY>, and secrets from the\n\
             # files FILE__PRETIX_<SECTION>_<KEY> names (for docker run --env-file)\n",
        );
        for (section, keys) in ordered(&self.settings) {
            for (key, (value, secret)) in keys {
                if *secret {
                    text.push_str(&format!(
                        "FILE__{}={CONTAINER_CONFIG_DIR}/{ENV_SECRETS_DIR}/{}\n",
                        env_name(section, key),
                        secret_file_name(section, key)
                    ));
                } else {
                    text.push_str(&format!("{}={}\n", env_name(section, key), value));
                }
            }
        }
        Ok(text)
    }

    /// The secrets `render_env` refers to: (file name under `<config dir>/secrets`, value).
    pub fn env_secrets(&self) -> Vec<(String, String)> {
        ordered(&self.settings)
            .into_iter()
            .flat_map(|(section, keys)| {
                keys.into_iter()
                    .filter(|(_, (_, secret))| *secret)
                    .map(move |(key, (value, _))| (secret_file_name(section, key), value.clone()))
            })
            .collect()
    }
}

/// Sections and keys in the schema's order (the order pretix's docs use).
fn ordered(settings: &Settings) -> Vec<OrderedSection<'_>> {
    let section_rank = |name: &str| {
        schema::SECTIONS
            .iter()
            .position(|section| section.name == name)
            .unwrap_or(usize::MAX)
    };
    let mut sections: Vec<_> = settings.iter().collect();
    sections.sort_by_key(|(name, _)| section_rank(name));
    sections
        .into_iter()
        .map(|(section, keys)| {
            let key_rank = |key: &str| {
                schema::section(section)
                    .ok()
                    .and_then(|definition| definition.keys.iter().position(|candidate| candidate.name == key))
                    .unwrap_or(usize::MAX)
            };
            let mut keys: Vec<_> = keys.iter().collect();
            keys.sort_by_key(|(key, _)| key_rank(key));
            (section, keys)
        })
        .collect()
}

/// Where the config dir is mounted inside the container.
pub const CONTAINER_CONFIG_DIR: &str = "/etc/pretix";
/// The directory under the config dir that holds the secrets the env file refers to.
pub const ENV_SECRETS_DIR: &str = "secrets";

/// `database_password` for `[database] password`.
pub fn secret_file_name(section: &str, key: &str) -> String {
    format!("{section}_{key}")
}

/// pretix's mapping: upper-case, every character outside `[A-Za-z0-9]` becomes `_`.
pub fn env_name(section: &str, key: &str) -> String {
    let clean = |text: &str| -> String {
        text.chars()
            .map(|character| {
                if character.is_ascii_alphanumeric() {
                    character.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("PRETIX_{}_{}", clean(section), clean(key))
}

/// Builds and validates the desired config. Reads secret files; writes nothing.
pub fn desired_config(ctx: &mut Context, document: &Document, paths: &Paths) -> Result<Desired, ToolError> {
    let config = document.config()?;
    let mut settings = Settings::new();
    for (section, keys) in &config {
        let section_definition =
            schema::section(section).map_err(|error| ToolError::input(format!("config.{section}"), error))?;
        for (key, value) in keys {
            let field = format!("config.{section}.{key}");
            let definition = schema::key(section, key).map_err(|error| ToolError::input(&field, error))?;
            if key != definition.name {
                return Err(ToolError::input(
                    &field,
                    format!("write the key in lower case: `{}`", definition.name),
                ));
            }
            let (text, secret) = match value {
                ConfigValue::Secret(reference) => (read_secret_value(ctx, reference, &field)?, true),
                plain => (plain.as_plain_text().unwrap_or_default(), definition.secret),
            };
            if definition.secret && !matches!(value, ConfigValue::Secret(_)) && !text.is_empty() {
                return Err(ToolError::input(
                    &field,
                    "secrets must not be in the document in plain text: put it in a root-only file and write {\"secret_file\": \"/path\"}",
                ));
            }
            let _ = section_definition;
            settings
                .entry(section.clone())
                .or_default()
                .insert(key.clone(), (text, secret));
        }
    }
    for (section, key, value) in GUIDE_DEFAULTS {
        let entry = settings.entry((*section).to_owned()).or_default();
        match entry.get(*key) {
            Some((existing, _)) if *key == "datadir" && existing.trim_end_matches('/') != *value => {
                return Err(ToolError::input(
                    "config.pretix.datadir",
                    format!(
                        "is {existing}, but inside the container the data dir is /data (the host's paths.data_dir is mounted there): remove it or set /data"
                    ),
                ));
            }
            Some(_) => {}
            None => {
                entry.insert((*key).to_owned(), ((*value).to_owned(), false));
            }
        }
    }
    for (section, key, what) in [
        ("pretix", "url", "the public URL, e.g. https://tickets.example.org"),
        ("mail", "from", "the sender address, e.g. tickets@example.org"),
    ] {
        let present = settings
            .get(section)
            .and_then(|keys| keys.get(key))
            .is_some_and(|(value, _)| !value.trim().is_empty());
        if !present {
            return Err(ToolError::input(
                format!("config.{section}.{key}"),
                format!("missing: set {what}"),
            ));
        }
    }
    let desired = Desired { settings };
    let plain = desired.plain();
    let data_dir_parent_exists = paths
        .data_dir
        .parent()
        .map(|parent| ctx.root().host_path(parent).is_dir());
    let violations = rules::check_startup_rules(
        &plain,
        &rules::RuleContext {
            in_container: true,
            datadir_parent_exists: data_dir_parent_exists,
        },
    );
    if let Some(first) = violations.first() {
        let mut message = first.message.clone();
        if violations.len() > 1 {
            let rest: Vec<String> = violations[1..]
                .iter()
                .map(|violation| format!("config.{}.{}: {}", violation.section, violation.key, violation.message))
                .collect();
            message.push_str(&format!(" (and: {})", rest.join("; ")));
        }
        return Err(ToolError::input(
            format!("config.{}.{}", first.section, first.key),
            message,
        ));
    }
    for warning in rules::warnings(&plain) {
        ctx.warn(warning);
    }
    // Rendering checks what RawConfigParser would misread; do it now so apply fails before any
    // directory is created.
    desired.render()?;
    Ok(desired)
}

/// A secret's value; in check mode a secret file that an earlier tool in the same dry run
/// would have created does not exist yet, so a placeholder stands in.
fn read_secret_value(ctx: &mut Context, reference: &pretix_site::SecretRef, field: &str) -> Result<String, ToolError> {
    let exists = ctx.root().host_path(&reference.secret_file).exists();
    if !exists && ctx.is_check() {
        ctx.warn(format!(
            "{field}: {} does not exist yet (an earlier tool would create it); the plan shows a placeholder",
            reference.secret_file.display()
        ));
        return Ok(pretix_site::secret::Redactor::MASK.to_owned());
    }
    Ok(ctx.read_secret(reference, field)?.expose().to_owned())
}
