//! `pretix-cfg`: `/etc/pretix/pretix.cfg` and the data directory, the guide's "Data files" and
//! "Config file" sections, validated against pretix 2026.8's real option schema.
//!
//! - `apply`: renders pretix.cfg from the document's `config` (secrets read from their files),
//!   creates the config and data directories with the container's owner, and writes the file
//!   owner-only. Everything is validated first; nothing is written when anything is wrong.
//! - `verify`: read-only; parses the file on disk, validates it, reports owner/mode problems and
//!   differences from the document.
//! - `import FILE`: reads an existing pretix.cfg into the document (secrets moved to root-only
//!   secret files), so a hand-made install can be adopted.
//! - `env`: the same settings as `PRETIX_<SECTION>_<KEY>` variables in a root-only env file.

pub mod ini;
pub mod rules;
pub mod schema;

pub mod desired;

use std::path::{Path, PathBuf};

use clap::Subcommand;
use pretix_site::fs::{CurrentFile, DirSpec, FileSpec};
use pretix_site::report::CheckStatus;
use pretix_site::sections::{ConfigValue, DataDirAccess, Paths};
use pretix_site::{Context, Document, SecretRef, Tool, ToolError};

pub use desired::{Desired, MANAGED_HEADER, desired_config};

/// The verbs of `pretix-cfg`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Render pretix.cfg and create the config and data directories
    Apply,
    /// Read-only: validate the file on disk, its owner and mode, and compare it with the document
    Verify,
    /// Read an existing pretix.cfg into the document's `config` (secrets go to secret files)
    Import {
        /// The file to import; default: pretix.cfg in paths.config_dir
        file: Option<PathBuf>,
    },
    /// Write the settings as PRETIX_<SECTION>_<KEY> variables to paths.env_file (root-only)
    Env,
}

/// The `pretix-cfg` tool.
pub struct CfgTool;

impl Tool for CfgTool {
    type Command = Command;
    const NAME: &'static str = "pretix-cfg";
    const ABOUT: &'static str = "pretix.cfg and the data directory, validated against pretix's real option schema";

    fn is_read_only(command: &Command) -> bool {
        matches!(command, Command::Verify)
    }

    fn run(command: &Command, ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
        let paths: Paths = document.section("paths")?;
        validate_paths(&paths)?;
        match command {
            Command::Apply => apply(ctx, document, &paths),
            Command::Verify => verify(ctx, document, &paths),
            Command::Import { file } => import(ctx, document, &paths, file.as_deref()),
            Command::Env => env(ctx, document, &paths),
        }
    }
}

/// The file inside the config dir.
pub fn config_file(paths: &Paths) -> PathBuf {
    paths.config_dir.join("pretix.cfg")
}

/// A directory owned by the container's user.
fn owned_dir(paths: &Paths, path: &Path, mode: u32) -> DirSpec {
    DirSpec {
        path: path.to_path_buf(),
        uid: Some(paths.owner_uid),
        gid: Some(paths.owner_gid),
        mode,
    }
}

fn validate_paths(paths: &Paths) -> Result<(), ToolError> {
    paths.validate()?;
    for (field, path) in [
        ("paths.config_dir", &paths.config_dir),
        ("paths.data_dir", &paths.data_dir),
    ] {
        if path.parent().is_none() {
            return Err(ToolError::input(field, "must not be / itself"));
        }
    }
    if paths.owner_uid == 0 {
        return Err(ToolError::input(
            "paths.owner_uid",
            "0 would make root own pretix's files: the container runs as 15371, keep that",
        ));
    }
    Ok(())
}

fn apply(ctx: &mut Context, document: &mut Document, paths: &Paths) -> Result<String, ToolError> {
    let desired = desired_config(ctx, document, paths)?;
    let rendered = desired.render()?;
    let data_dir_mode = match paths.data_dir_access {
        DataDirAccess::Mode => 0o755,
        DataDirAccess::Acl => 0o750,
    };
    // pretix, like this tool, creates only the last level of the data dir.
    let data_parent_exists = paths
        .data_dir
        .parent()
        .is_some_and(|parent| ctx.root().host_path(parent).is_dir());
    if !data_parent_exists {
        let message = format!(
            "the parent of the data dir {} does not exist: create it first",
            paths.data_dir.display()
        );
        if !ctx.is_check() {
            return Err(ToolError::failed(message));
        }
        ctx.warn(message);
    }
    // Nothing above wrote anything; from here on the plan is carried out.
    ctx.dir(&owned_dir(paths, &paths.config_dir, 0o700))?;
    ctx.dir(&owned_dir(paths, &paths.data_dir, data_dir_mode))?;
    if paths.data_dir_access == DataDirAccess::Acl {
        ensure_web_server_acl(ctx, &paths.data_dir)?;
    }
    let file = config_file(paths);
    register_secrets_on_disk(ctx, &desired, &file)?;
    let outcome = ctx.file(
        &FileSpec::new(&file, rendered.as_bytes())
            .owner(paths.owner_uid, paths.owner_gid)
            .mode(0o600)
            .backup(true),
    )?;
    let verb = if ctx.is_check() { "would be" } else { "is" };
    Ok(if outcome.changed() || ctx.has_changed() {
        format!(
            "{} {verb} up to date now ({} settings)",
            file.display(),
            desired.setting_count()
        )
    } else {
        format!(
            "{} and the data dir {} were already right",
            file.display(),
            paths.data_dir.display()
        )
    })
}

/// The secrets in the pretix.cfg on disk (the old password a rotation replaces, say) are
/// masked like the new ones: the diff of a rewrite shows its removed lines too.
fn register_secrets_on_disk(ctx: &mut Context, desired: &Desired, file: &Path) -> Result<(), ToolError> {
    let current = CurrentFile::read(&ctx.root().host_path(file))
        .map_err(|error| ToolError::failed(format!("read {}: {error}", file.display())))?;
    if let Some(current) = current
        && let Ok(parsed) = ini::parse(&String::from_utf8_lossy(&current.content))
    {
        register_secrets(ctx, &parsed, Some(desired));
    }
    Ok(())
}

/// Registers every value on disk that is secret by the schema, or by the document (a key given
/// as a secret reference, such as a Redis URL holding a password).
fn register_secrets(ctx: &mut Context, parsed: &ini::ParsedConfig, desired: Option<&Desired>) {
    for (section, key, value) in parsed.entries() {
        let secret_by_schema = schema::key(section, key).is_ok_and(|definition| definition.secret);
        let secret_by_document = desired
            .and_then(|desired| desired.settings.get(section))
            .and_then(|keys| keys.get(key))
            .is_some_and(|(_, secret)| *secret);
        if (secret_by_schema || secret_by_document) && !value.is_empty() {
            ctx.register_secret(&pretix_site::Secret::new(value));
        }
    }
}

/// The ACL entry that lets the container's web server (uid 33) read the data dir.
const WEB_SERVER_ACL: &str = "user:33:r-x";

/// Whether the data dir has `WEB_SERVER_ACL` (getfacl, from the acl package).
fn has_web_server_acl(ctx: &mut Context, host_path: &Path) -> Result<bool, ToolError> {
    let mut log = |line: &str| ctx.debug(line);
    let output = pretix_site::exec::run(
        std::process::Command::new("getfacl")
            .args(["--omit-header", "--absolute-names", "--numeric"])
            .arg(host_path),
        None,
        &mut log,
    )
    .map_err(|error| {
        ToolError::failed(format!(
            "{error}: install the acl package or use data_dir_access \"mode\""
        ))
    })?;
    let current = String::from_utf8_lossy(&output.stdout);
    Ok(current.lines().any(|line| line.trim() == WEB_SERVER_ACL))
}

/// Gives the container's web server (uid 33, www-data in the image) read access by ACL.
fn ensure_web_server_acl(ctx: &mut Context, data_dir: &Path) -> Result<(), ToolError> {
    const ENTRY: &str = WEB_SERVER_ACL;
    let host_path = ctx.root().host_path(data_dir);
    if !host_path.exists() {
        ctx.changed(format!("add ACL {ENTRY} to {}", data_dir.display()));
        return Ok(());
    }
    if has_web_server_acl(ctx, &host_path)? {
        return Ok(());
    }
    if !ctx.is_check() {
        let mut log = |line: &str| ctx.debug(line);
        pretix_site::exec::run(
            std::process::Command::new("setfacl")
                .args(["-m", "u:33:rx"])
                .arg(&host_path),
            None,
            &mut log,
        )
        .map_err(|error| ToolError::failed(error.to_string()))?;
    }
    ctx.changed(format!("add ACL {ENTRY} to {}", data_dir.display()));
    Ok(())
}

fn verify(ctx: &mut Context, document: &mut Document, paths: &Paths) -> Result<String, ToolError> {
    let file = config_file(paths);
    let host_path = ctx.root().host_path(&file);
    let current = CurrentFile::read(&host_path)
        .map_err(|error| ToolError::failed(format!("read {}: {error}", file.display())))?;
    let Some(current) = current else {
        ctx.check_item(
            "config file",
            CheckStatus::Failure,
            format!("{} does not exist: run pretix-cfg apply", file.display()),
        );
        return Err(ToolError::failed(format!("{} does not exist", file.display())));
    };
    let text = String::from_utf8_lossy(&current.content).into_owned();
    match ini::parse(&text) {
        Ok(parsed) => {
            register_secrets(ctx, &parsed, None);
            let config = parsed.to_config();
            let problems = rules::check_startup_rules(
                &config,
                &rules::RuleContext {
                    in_container: true,
                    datadir_parent_exists: None,
                },
            );
            if problems.is_empty() {
                ctx.check_item(
                    "config file",
                    CheckStatus::Ok,
                    format!("{} parses and passes pretix's start-up rules", file.display()),
                );
            }
            for problem in problems {
                ctx.check_item(
                    "config file",
                    CheckStatus::Failure,
                    format!("[{}] {}: {}", problem.section, problem.key, problem.message),
                );
            }
            for warning in rules::warnings(&config) {
                ctx.check_item("config file", CheckStatus::Warning, warning);
            }
        }
        Err(error) => ctx.check_item(
            "config file",
            CheckStatus::Failure,
            format!("{}: {error}", file.display()),
        ),
    }
    let owner_ok = current.uid == paths.owner_uid && current.gid == paths.owner_gid;
    let mode_ok = current.mode & 0o077 == 0;
    match (owner_ok, mode_ok) {
        (true, true) => ctx.check_item(
            "config file owner and mode",
            CheckStatus::Ok,
            format!("{}:{} {:04o}", current.uid, current.gid, current.mode),
        ),
        _ => ctx.check_item(
            "config file owner and mode",
            CheckStatus::Failure,
            format!(
                "{}:{} {:04o}, want {}:{} and no access for others (0600): run pretix-cfg apply",
                current.uid, current.gid, current.mode, paths.owner_uid, paths.owner_gid
            ),
        ),
    }
    check_dir(ctx, DirRole::Config, &paths.config_dir, paths);
    check_dir(ctx, DirRole::Data, &paths.data_dir, paths);
    match desired_config(ctx, document, paths).and_then(|desired| desired.render()) {
        Ok(rendered) if rendered == text => ctx.check_item(
            "matches the document",
            CheckStatus::Ok,
            "the file is what the document renders",
        ),
        Ok(_) => ctx.check_item(
            "matches the document",
            CheckStatus::Warning,
            "the file differs from what the document renders: run pretix-cfg apply --check --diff",
        ),
        Err(error) => ctx.check_item(
            "matches the document",
            CheckStatus::Warning,
            format!("the document cannot be rendered: {error}"),
        ),
    }
    let failures = ctx_failures(ctx);
    if failures > 0 {
        return Err(ToolError::failed(format!("{failures} check(s) failed")));
    }
    Ok(format!("{} checked", file.display()))
}

fn ctx_failures(ctx: &Context) -> usize {
    ctx.checks()
        .iter()
        .filter(|item| item.status == CheckStatus::Failure)
        .count()
}

/// Which directory `check_dir` looks at, and so what its mode must allow.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DirRole {
    /// The config dir: owner-only (it holds pretix.cfg and, for `env`, the secrets).
    Config,
    /// The data dir: the container's web server (uid 33) must read it, nobody may write to it.
    Data,
}

fn check_dir(ctx: &mut Context, role: DirRole, path: &Path, paths: &Paths) {
    use std::os::unix::fs::MetadataExt;
    let (name, want) = match (role, paths.data_dir_access) {
        (DirRole::Config, _) => ("config dir", "0700: owner only"),
        (DirRole::Data, DataDirAccess::Mode) => ("data dir", "0755: readable by uid 33, writable by the owner only"),
        (DirRole::Data, DataDirAccess::Acl) => ("data dir", "0750 and the ACL user:33:r-x"),
    };
    let host_path = ctx.root().host_path(path);
    match std::fs::metadata(&host_path) {
        Ok(metadata) if metadata.is_dir() => {
            let actual_mode = metadata.mode() & 0o7777;
            let owner_ok = metadata.uid() == paths.owner_uid && metadata.gid() == paths.owner_gid;
            let mode_ok = match (role, paths.data_dir_access) {
                (DirRole::Config, _) => actual_mode & 0o077 == 0,
                (DirRole::Data, DataDirAccess::Mode) => actual_mode & 0o022 == 0 && actual_mode & 0o005 == 0o005,
                (DirRole::Data, DataDirAccess::Acl) => {
                    actual_mode & 0o022 == 0 && has_web_server_acl(ctx, &host_path).unwrap_or(false)
                }
            };
            let status = if owner_ok && mode_ok {
                CheckStatus::Ok
            } else {
                CheckStatus::Failure
            };
            let fix = if status == CheckStatus::Ok {
                ""
            } else {
                ": run pretix-cfg apply"
            };
            ctx.check_item(
                name,
                status,
                format!(
                    "{} is {}:{} {:04o} (want {}:{} {want}){fix}",
                    path.display(),
                    metadata.uid(),
                    metadata.gid(),
                    actual_mode,
                    paths.owner_uid,
                    paths.owner_gid,
                ),
            );
        }
        Ok(_) => ctx.check_item(
            name,
            CheckStatus::Failure,
            format!("{} is not a directory", path.display()),
        ),
        Err(error) => ctx.check_item(name, CheckStatus::Failure, format!("{}: {error}", path.display())),
    }
}

fn import(ctx: &mut Context, document: &mut Document, paths: &Paths, file: Option<&Path>) -> Result<String, ToolError> {
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

fn env(ctx: &mut Context, document: &mut Document, paths: &Paths) -> Result<String, ToolError> {
    let desired = desired_config(ctx, document, paths)?;
    let text = desired.render_env()?;
    let secrets = desired.env_secrets();
    // Nothing above wrote anything. The secrets go where the container (uid 15371) can read
    // them and no one else can: <config dir>/secrets, 0700, files 0600, all owned by the
    // container's user.
    if !secrets.is_empty() {
        ctx.dir(&owned_dir(paths, &paths.config_dir, 0o700))?;
        let secrets_dir = paths.config_dir.join(desired::ENV_SECRETS_DIR);
        ctx.dir(&owned_dir(paths, &secrets_dir, 0o700))?;
        for (name, value) in &secrets {
            ctx.file(
                &FileSpec::new(secrets_dir.join(name), format!("{value}\n"))
                    .owner(paths.owner_uid, paths.owner_gid)
                    .mode(0o600)
                    .secret(),
            )?;
        }
    }
    ctx.ensure_parents(&paths.env_file)?;
    ctx.file(&FileSpec::new(&paths.env_file, text).owner(0, 0).mode(0o600))?;
    Ok(format!(
        "{} holds {} settings as PRETIX_<SECTION>_<KEY> variables, {} of them secrets in files under {}/{} \
         (use it with docker run --env-file, with {} mounted at {})",
        paths.env_file.display(),
        desired.setting_count(),
        secrets.len(),
        paths.config_dir.display(),
        desired::ENV_SECRETS_DIR,
        paths.config_dir.display(),
        desired::CONTAINER_CONFIG_DIR
    ))
}
