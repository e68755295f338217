//! `import FILE`: an existing pretix.cfg into the document. Everything is validated as pretix
//! reads it before any secret file is written; secrets (and URLs holding passwords) move into
//! root-only secret files under names of their own.

use std::path::Path;

use pretix_site::fs::CurrentFile;
use pretix_site::sections::{ConfigValue, Paths};
use pretix_site::{Context, Document, SecretRef, ToolError};

use crate::secrets::register_secrets;
use crate::{config_file, ini, rules, schema};

pub fn import(
    ctx: &mut Context,
    document: &mut Document,
    paths: &Paths,
    file: Option<&Path>,
) -> Result<String, ToolError> {
    let file = file.map_or_else(|| config_file(paths), Path::to_path_buf);
    let host_path = ctx.root().host_path(&file);
    // Not through a link: /etc/pretix belongs to the container's user.
    let current = CurrentFile::read(&host_path)
        .map_err(|error| ToolError::input("import", format!("cannot read {}: {error}", file.display())))?
        .ok_or_else(|| ToolError::input("import", format!("{} does not exist", file.display())))?;
    let text = String::from_utf8(current.content)
        .map_err(|_| ToolError::input("import", format!("{} is not UTF-8 text", file.display())))?;
    let parsed =
        ini::parse(&text).map_err(|error| ToolError::input("import", format!("{}: {error}", file.display())))?;
    // The secrets first, so that no message below shows one.
    register_secrets(ctx, &parsed, None);
    for (_, _, value) in parsed.entries() {
        if holds_url_credentials(value) {
            ctx.register_secret(&pretix_site::Secret::new(value));
        }
    }
    // Validate everything before writing any secret file: the schema, what pretix.cfg can hold,
    // and pretix's start-up rules, all on the file as pretix reads it.
    let mut config = parsed.to_config();
    let host_datadir = config
        .get_mut("pretix")
        .and_then(|keys| keys.remove_entry("datadir"))
        .filter(|(_, datadir)| datadir.trim_end_matches('/') != "/data");
    for (section, key, value) in parsed.entries() {
        let definition =
            schema::key(section, key).map_err(|error| ToolError::input(format!("config.{section}.{key}"), error))?;
        schema::check_value(definition, value)
            .map_err(|message| ToolError::input(format!("config.{section}.{key}"), message))?;
    }
    ini::render(&config, "").map_err(|error| {
        ToolError::input(
            error.field(),
            format!(
                "{error} (in {}; pretix would read it with the line break)",
                file.display()
            ),
        )
    })?;
    let violations = rules::check_startup_rules(
        &config,
        &rules::RuleContext {
            in_container: true,
            datadir_parent_exists: None,
        },
    );
    if let Some(first) = violations.first() {
        return Err(ToolError::input(
            format!("config.{}.{}", first.section, first.key),
            format!(
                "{} (in {}: pretix would not start with it)",
                first.message,
                file.display()
            ),
        ));
    }
    if let Some((_, datadir)) = &host_datadir {
        ctx.warn(format!(
            "config.pretix.datadir: not imported: it is {datadir}, a host path, but inside the container the data dir \
             is /data; set paths.data_dir to {datadir} if that is where the data stays"
        ));
    }
    // Then the secret files, each under a name of its own: never over a file another tool made.
    let mut planned = Vec::new();
    for (section, keys) in &config {
        for (key, value) in keys {
            let definition = schema::key(section, key)
                .map_err(|error| ToolError::input(format!("config.{section}.{key}"), error))?;
            let secret = (definition.secret || holds_url_credentials(value)) && !value.is_empty();
            let secret_path = paths.secrets_dir.join(format!("imported-{section}-{key}"));
            if secret {
                refuse_a_different_secret(ctx, &secret_path, value, &format!("config.{section}.{key}"))?;
            }
            planned.push((
                section.clone(),
                definition.name,
                value.clone(),
                secret.then_some(secret_path),
            ));
        }
    }
    let mut imported = 0;
    for (section, key, value, secret_path) in planned {
        let config_value = match secret_path {
            Some(secret_path) => {
                ctx.store_secret(&paths.secrets_dir, &secret_path, &pretix_site::Secret::new(value))?;
                ConfigValue::Secret(SecretRef::new(secret_path))
            }
            None => ConfigValue::Text(value),
        };
        if document.set_config_value(&section, key, config_value).is_some() {
            ctx.warn(format!(
                "config.{section}.{key}: the document's value was replaced with the imported one"
            ));
        }
        imported += 1;
    }
    Ok(format!("imported {imported} settings from {}", file.display()))
}

/// A URL with a password in it (`redis://:pw@host`, `redis://user:pw@host`, `?password=`): it is
/// moved into a secret file like a password.
fn holds_url_credentials(value: &str) -> bool {
    let Some((_, rest)) = value.split_once("://") else {
        return false;
    };
    // A password may hold a `/` too, so the userinfo is all before the last `@`. A false
    // positive only moves a harmless value into a secret file.
    let userinfo_with_password = rest
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let query_password = value.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.to_ascii_lowercase().starts_with("password="))
    });
    userinfo_with_password || query_password
}

/// An import never overwrites a secret file that holds another value.
fn refuse_a_different_secret(ctx: &Context, path: &Path, value: &str, field: &str) -> Result<(), ToolError> {
    let existing = CurrentFile::read(&ctx.root().host_path(path))
        .map_err(|error| ToolError::failed(format!("read {}: {error}", path.display())))?;
    match existing {
        Some(existing) if String::from_utf8_lossy(&existing.content).trim() != value => Err(ToolError::input(
            field,
            format!(
                "{} already holds another value (from an earlier import?): move it away to import this file",
                path.display()
            ),
        )),
        _ => Ok(()),
    }
}
