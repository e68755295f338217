//! `pretix-db apply`: inspect, plan, then apply, in an order where a run that stops half way is
//! finished by the next one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pretix_site::fs::FileSpec;
use pretix_site::sections::{AuthMethod, ConfigValue, Database, Paths};
use pretix_site::service::ServiceOutcome;
use pretix_site::{Context, Document, Secret, ToolError};
use serde_json::{Value, json};

use crate::error::ProvisionDatabaseError;
use crate::hba::HbaAction;
use crate::inspect::{self, statement_error};
use crate::listen::covers;
use crate::names::{quote_ident, quote_literal};
use crate::plan::{self, DatabaseAction, Desired, PasswordChange, RoleAction};
use crate::resolve::{self, ConfFile, PasswordChoice};
use crate::scram::make_verifier;
use crate::session::{AdminRoute, AdminSession, CONNECT_TIMEOUT, PgFailure};

/// How long to wait for PostgreSQL to accept connections after a restart.
const RESTART_WAIT: Duration = Duration::from_secs(60);

/// Runs `apply`.
pub fn apply(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let section: Database = document.section("database")?;
    let paths: Paths = document.section("paths")?;
    let desired = Desired::from_section(&section)?;
    if desired.method == AuthMethod::Md5 {
        ctx.warn(
            "database.auth_method is md5, which is for old clients only; the role's password is a scram-sha-256 \
             verifier, so postgresql still authenticates with scram-sha-256",
        );
    }
    let admin_password = resolve::admin_password(ctx, &section)?;
    let password = resolve::resolve_password(ctx, &section, &paths)?;
    if ctx.is_offline() {
        return apply_offline(ctx, document, &section, &paths, &desired, &password);
    }
    let route = resolve::admin_route(&section, admin_password.as_ref())?;
    if ctx.root().is_redirected() && !ctx.is_check() {
        ctx.warn(format!(
            "--root stages files only: the role and the database are changed on the live server {} (use --check to \
             see what would change there, --check --offline to contact no server)",
            route.target()
        ));
    }
    let mut session = resolve::open_session(ctx, &route, &section.service)?;

    // Inspect and plan: everything that can stop the run stops it here, before any change.
    let facts = inspect::server_facts(session.as_mut())?;
    for warning in plan::check_server(&facts)? {
        ctx.warn(warning);
    }
    if facts.current_user == desired.role {
        return Err(ProvisionDatabaseError::input(
            "database.user",
            format!(
                "{} is the role this tool connects as: pretix needs a role of its own, e.g. pretix",
                desired.role
            ),
        )
        .into());
    }
    let state = inspect::cluster_state(session.as_mut(), &desired.role, &desired.database)?;
    let role_action = plan::plan_role(state.role.as_ref(), password.secret.expose(), password.rotate);
    if state.role.as_ref().is_some_and(|role| role.password_expired) {
        ctx.warn(format!(
            "role {}'s password has expired (VALID UNTIL), so pretix cannot log in: ALTER ROLE {} VALID UNTIL 'infinity'",
            desired.role,
            quote_ident(&desired.role)
        ));
    }
    if state.role.as_ref().is_some_and(|role| role.superuser) {
        ctx.warn(format!(
            "role {} is a postgresql superuser; pretix does not need that: ALTER ROLE {} NOSUPERUSER",
            desired.role,
            quote_ident(&desired.role)
        ));
    }
    let database_action = plan::plan_database(
        state.database.as_ref(),
        state.template1_encoding.as_deref(),
        &desired.database,
        &desired.role,
    )?;
    let conf_path = section
        .postgresql_conf
        .clone()
        .unwrap_or_else(|| state.config_file.clone());
    let hba_path = section.pg_hba_conf.clone().unwrap_or_else(|| state.hba_file.clone());
    let conf = resolve::read_conf(ctx.root(), &conf_path, "database.postgresql_conf")?;
    let hba = resolve::read_conf(ctx.root(), &hba_path, "database.pg_hba_conf")?;
    // Under --root the files are staged elsewhere; the server's own files are not edited.
    let live_files = !ctx.root().is_redirected();
    let conf_is_live = live_files && plan::same_file(&conf_path, &state.config_file);
    let hba_is_live = live_files && plan::same_file(&hba_path, &state.hba_file);
    if live_files && !conf_is_live {
        ctx.warn(format!(
            "database.postgresql_conf is {} but the server reads {}: the edit there takes no effect",
            conf_path.display(),
            state.config_file.display()
        ));
    }
    if live_files && !hba_is_live {
        ctx.warn(format!(
            "database.pg_hba_conf is {} but the server reads {}: the rule there takes no effect",
            hba_path.display(),
            state.hba_file.display()
        ));
    }
    let required = desired.listen_required();
    let listen = plan::plan_listen(
        &conf.text,
        &conf_path,
        &required,
        &state.live_listen_addresses,
        &state.listen_source,
        if conf_is_live {
            plan::listen_override(&state, &conf_path)
        } else {
            None
        },
    )?;
    let hba_plan = plan::plan_pg_hba(
        &hba.text,
        &desired,
        hba_is_live.then_some(state.hba_errors.as_slice()),
        &hba_path,
    )?;

    // Apply. The secret file first: were the role changed and the file not written, nobody
    // would know the role's password.
    write_password(ctx, &password, &paths)?;
    apply_role(ctx, session.as_mut(), role_action, &desired, &password.secret)?;
    apply_database(ctx, session.as_mut(), &database_action, &desired)?;
    for warning in &listen.warnings {
        ctx.warn(warning.clone());
    }
    let conf_changed = match listen.file.as_ref().and_then(|file| file.new_text.as_deref()) {
        Some(text) => write_conf(ctx, &conf, text)?,
        None => false,
    };
    let hba_changed = match hba_plan.new_text.as_deref() {
        Some(text) => write_conf(ctx, &hba, text)?,
        None => false,
    };
    describe_hba(ctx, &hba_plan.action, hba_changed);
    for warning in &hba_plan.warnings {
        ctx.warn(warning.clone());
    }
    let mut reloaded = false;
    if conf_changed || hba_changed {
        reloaded = reload(ctx, session.as_mut(), live_files)?;
        if reloaded && hba_is_live {
            let errors = inspect::hba_errors(session.as_mut())?;
            if !errors.is_empty() {
                return Err(ProvisionDatabaseError::Server(format!(
                    "postgresql rejects {} after the edit (line {}): fix it; until then the server keeps its previous rules",
                    hba_path.display(),
                    errors.join("; line ")
                ))
                .into());
            }
        }
    }
    let mut live_listen = state.live_listen_addresses.clone();
    if listen.restart_needed {
        let (new_session, listening) = restart(ctx, session, &route, &section, &desired, &live_listen)?;
        session = new_session;
        live_listen = listening;
    }
    if !ctx.is_check() {
        verify(ctx, session.as_mut(), &desired, &password, &live_listen, reloaded)?;
    }
    drop(session);
    update_document(ctx, document, &section, &desired, &password)?;
    Ok(summary(ctx, &desired))
}

/// `--check --offline`: no server; the files are planned when the document names them.
fn apply_offline(
    ctx: &mut Context,
    document: &mut Document,
    section: &Database,
    paths: &Paths,
    desired: &Desired,
    password: &PasswordChoice,
) -> Result<String, ToolError> {
    ctx.note("unverified (--offline): the server's version and encoding, the role, the database, the running server's listen_addresses, the login over tcp");
    write_password(ctx, password, paths)?;
    let postgresql_conf = section
        .postgresql_conf
        .clone()
        .or_else(|| debian_cluster_file(ctx, "postgresql.conf"));
    let pg_hba_conf = section
        .pg_hba_conf
        .clone()
        .or_else(|| debian_cluster_file(ctx, "pg_hba.conf"));
    match &postgresql_conf {
        Some(path) => {
            let conf = resolve::read_conf(ctx.root(), path, "database.postgresql_conf")?;
            let listen = plan::plan_listen(&conf.text, path, &desired.listen_required(), "*", "offline", None)?;
            if let Some(text) = listen.file.as_ref().and_then(|file| file.new_text.as_deref()) {
                write_conf(ctx, &conf, text)?;
            }
        }
        None => ctx.note(
            "unverified (--offline): postgresql.conf (set database.postgresql_conf to plan it without the server)",
        ),
    }
    match &pg_hba_conf {
        Some(path) => {
            let hba = resolve::read_conf(ctx.root(), path, "database.pg_hba_conf")?;
            let hba_plan = plan::plan_pg_hba(&hba.text, desired, None, path)?;
            let changed = match hba_plan.new_text.as_deref() {
                Some(text) => write_conf(ctx, &hba, text)?,
                None => false,
            };
            describe_hba(ctx, &hba_plan.action, changed);
            for warning in &hba_plan.warnings {
                ctx.warn(warning.clone());
            }
        }
        None => {
            ctx.note("unverified (--offline): pg_hba.conf (set database.pg_hba_conf to plan it without the server)")
        }
    }
    update_document(ctx, document, section, desired, password)?;
    Ok(format!(
        "planned from the files alone (--offline): role {}, database {}",
        desired.role, desired.database
    ))
}

/// Without a server to ask (`SHOW config_file`), Debian's layout: the one cluster's
/// `/etc/postgresql/<version>/main/<name>`, when there is exactly one.
fn debian_cluster_file(ctx: &mut Context, name: &str) -> Option<PathBuf> {
    let base = Path::new("/etc/postgresql");
    let entries = std::fs::read_dir(ctx.root().host_path(base)).ok()?;
    let found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| base.join(entry.file_name()).join("main").join(name))
        .filter(|candidate| ctx.root().host_path(candidate).is_file())
        .collect();
    match found.as_slice() {
        [only] => {
            ctx.note(format!(
                "--offline: planning {} (Debian's layout; set database.{} to choose)",
                only.display(),
                name.replace('.', "_")
            ));
            Some(only.clone())
        }
        _ => None,
    }
}

/// Writes the generated or rotated password into its root-only file.
fn write_password(ctx: &mut Context, password: &PasswordChoice, paths: &Paths) -> Result<(), ToolError> {
    if !password.write {
        return Ok(());
    }
    ctx.store_secret(&paths.secrets_dir, &password.reference.secret_file, &password.secret)
}

fn apply_role(
    ctx: &mut Context,
    session: &mut dyn AdminSession,
    action: RoleAction,
    desired: &Desired,
    password: &Secret,
) -> Result<(), ToolError> {
    let role = quote_ident(&desired.role);
    // The verifier is computed here, with a fresh salt, and only when it is sent; the
    // plaintext never leaves this process.
    let check = ctx.is_check();
    let verifier = || {
        if check {
            String::new()
        } else {
            make_verifier(password.expose())
        }
    };
    let (sql, message) = match action {
        RoleAction::Nothing => return Ok(()),
        RoleAction::Create => (
            format!("CREATE ROLE {role} WITH LOGIN PASSWORD {}", quote_literal(&verifier())),
            format!("create role {} (login, scram-sha-256 password)", desired.role),
        ),
        RoleAction::Alter { login, password } => {
            let mut clauses = Vec::new();
            let mut parts = Vec::new();
            if login {
                clauses.push("LOGIN".to_owned());
                parts.push("allow it to log in".to_owned());
            }
            if let Some(change) = password {
                if change == PasswordChange::Md5 {
                    ctx.warn(format!(
                        "role {} had an md5 password hash; md5 is deprecated in postgresql, so it is replaced by a scram-sha-256 verifier",
                        desired.role
                    ));
                }
                clauses.push(format!("PASSWORD {}", quote_literal(&verifier())));
                parts.push(format!("set its password ({})", change.describe()));
            }
            (
                format!("ALTER ROLE {role} WITH {}", clauses.join(" ")),
                format!("role {}: {}", desired.role, parts.join(", ")),
            )
        }
    };
    execute(ctx, session, &sql, &message)
}

fn apply_database(
    ctx: &mut Context,
    session: &mut dyn AdminSession,
    action: &DatabaseAction,
    desired: &Desired,
) -> Result<(), ToolError> {
    let (database, role) = (quote_ident(&desired.database), quote_ident(&desired.role));
    match action {
        DatabaseAction::Nothing => Ok(()),
        DatabaseAction::Create => execute(
            ctx,
            session,
            &format!("CREATE DATABASE {database} WITH OWNER {role} ENCODING 'UTF8'"),
            &format!("create database {} (owner {}, UTF8)", desired.database, desired.role),
        ),
        DatabaseAction::FixOwner { from } => {
            execute(
                ctx,
                session,
                &format!("ALTER DATABASE {database} OWNER TO {role}"),
                &format!(
                    "database {}: change its owner from {from} to {}",
                    desired.database, desired.role
                ),
            )?;
            ctx.warn(format!(
                "database {} belonged to {from}: tables and schemas inside it still do; if pretix must own them, run \
                 REASSIGN OWNED BY {} TO {role} while connected to that database",
                desired.database,
                quote_ident(from)
            ));
            Ok(())
        }
    }
}

/// Runs one changing statement (not in check mode) and records it.
fn execute(ctx: &mut Context, session: &mut dyn AdminSession, sql: &str, message: &str) -> Result<(), ToolError> {
    if !ctx.is_check() {
        session
            .query(sql, &[])
            .map_err(|failure| statement_error(session, message, &failure))?;
    }
    ctx.changed(message);
    Ok(())
}

/// Writes a config file, keeping its owner and mode and a backup of the old version.
fn write_conf(ctx: &mut Context, file: &ConfFile, new_text: &str) -> Result<bool, ToolError> {
    let spec = FileSpec::new(&file.path, new_text)
        .owner(file.uid, file.gid)
        .mode(file.mode)
        .backup(true);
    Ok(ctx.file(&spec)?.changed())
}

fn describe_hba(ctx: &mut Context, action: &HbaAction, changed: bool) {
    if !changed {
        return;
    }
    match action {
        // Going before a rule that rejects, or asks more (options), overrides a decision someone
        // made on purpose: that is a warning, not a note.
        HbaAction::Insert {
            before: Some((line, text)),
        } => {
            let message = format!(
                "pg_hba.conf: the pretix rule goes before line {line} (`{text}`), which would otherwise decide pretix's \
                 connections"
            );
            let deliberate = text.split('#').next().is_some_and(|rule| {
                rule.split_whitespace()
                    .any(|field| field == "reject" || field.contains('='))
            });
            if deliberate {
                ctx.warn(format!(
                    "{message}: it overrides that rule for pretix's role and database"
                ));
            } else {
                ctx.note(message);
            }
        }
        HbaAction::FixMethod { line, old_method } => {
            ctx.note(format!(
                "pg_hba.conf: line {line} is the pretix rule with method {old_method}; its method is changed"
            ));
        }
        HbaAction::Insert { before: None } | HbaAction::Present { .. } => {}
    }
}

/// `pg_reload_conf()`, so pg_hba.conf takes effect. Returns whether it was done.
fn reload(ctx: &mut Context, session: &mut dyn AdminSession, live_files: bool) -> Result<bool, ToolError> {
    if ctx.is_check() {
        ctx.note("would reload the postgresql configuration (pg_reload_conf)");
        return Ok(false);
    }
    if !live_files {
        ctx.note("skipped (--root): reload of the postgresql configuration");
        return Ok(false);
    }
    session
        .query("SELECT pg_reload_conf()", &[])
        .map_err(|failure| statement_error(session, "reload the configuration", &failure))?;
    // The postmaster re-reads the files asynchronously after the signal; give it a moment so
    // the next connection sees the new rules.
    std::thread::sleep(Duration::from_millis(100));
    ctx.note("reloaded the postgresql configuration (pg_reload_conf)");
    Ok(true)
}

/// A restart for `listen_addresses`, when allowed; otherwise a warning. Returns the session
/// (a new one after a restart) and the running server's `listen_addresses`.
fn restart(
    ctx: &mut Context,
    session: Box<dyn AdminSession>,
    route: &AdminRoute,
    section: &Database,
    desired: &Desired,
    live: &str,
) -> Result<(Box<dyn AdminSession>, String), ToolError> {
    let wanted = desired.listen_required().join(" and ");
    if !section.restart {
        ctx.warn(format!(
            "postgresql must be restarted to listen on {wanted}: systemctl restart {} (or set database.restart to true)",
            section.service
        ));
        return Ok((session, live.to_owned()));
    }
    if ctx.is_check() || ctx.root().is_redirected() {
        // The seam only reports it (check mode, --root): the server and the session stay.
        ctx.systemctl(&["restart", &section.service])?;
        return Ok((session, live.to_owned()));
    }
    // The old session would only hold up a shutdown.
    drop(session);
    let outcome = ctx.systemctl(&["restart", &section.service])?;
    let mut session = resolve::reopen_after_restart(ctx, route, &section.service, RESTART_WAIT)?;
    let live = inspect::live_listen_addresses(session.as_mut())?;
    if outcome == ServiceOutcome::Performed && !desired.listen_required().iter().all(|wanted| covers(&live, wanted)) {
        ctx.warn(format!(
            "postgresql still listens on '{live}' after the restart, not on {wanted}: check which file sets listen_addresses \
             (SELECT * FROM pg_file_settings WHERE name = 'listen_addresses')"
        ));
    }
    Ok((session, live))
}

/// Logs in as the pretix role over TCP, where pretix will connect.
fn verify(
    ctx: &mut Context,
    session: &mut dyn AdminSession,
    desired: &Desired,
    password: &PasswordChoice,
    live_listen: &str,
    reloaded: bool,
) -> Result<(), ToolError> {
    if ctx.root().is_redirected() {
        ctx.note("not verified (--root): the login over tcp tests the server's own files, which this run did not edit");
        return Ok(());
    }
    let host = desired.docker_host.to_string();
    if !covers(live_listen, &host) {
        ctx.warn(format!(
            "not verified: postgresql does not listen on {host} until it is restarted, so pretix cannot connect yet"
        ));
        return Ok(());
    }
    let refused = |outcome: &Result<String, PgFailure>| {
        outcome
            .as_ref()
            .is_err_and(|failure| failure.code.as_deref() == Some("28000"))
    };
    let mut outcome = login(desired, password.secret.expose());
    let mut reloaded = reloaded;
    if !reloaded && refused(&outcome) {
        // pg_hba.conf may be right on disk but not loaded (an earlier run stopped before its
        // reload, or someone edited it by hand): load it, then try again.
        session
            .query("SELECT pg_reload_conf()", &[])
            .map_err(|failure| statement_error(session, "reload the configuration", &failure))?;
        ctx.note("reloaded the postgresql configuration (pg_reload_conf): pg_hba.conf had not been loaded");
        reloaded = true;
    }
    // pg_reload_conf() only signals the postmaster, which loads the files a moment later.
    let deadline = Instant::now() + Duration::from_secs(3);
    if reloaded && refused(&outcome) {
        ctx.info("the login was refused; waiting up to 3s for postgresql to load the reloaded pg_hba.conf");
    }
    while reloaded && refused(&outcome) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        outcome = login(desired, password.secret.expose());
    }
    if let Err(failure) = &outcome
        && let Some(client) = nat_rewritten_client(desired, failure)
    {
        ctx.warn(nat_warning(desired, client));
        return Ok(());
    }
    match outcome {
        Ok(user) if user == desired.role => {
            ctx.note(format!(
                "logged in as {} over tcp at {host}:{} to database {} with the password",
                desired.role, desired.port, desired.database
            ));
            Ok(())
        }
        Ok(user) => Err(ProvisionDatabaseError::Verification(format!(
            "the login over tcp at {host}:{} came back as {user}, not {}",
            desired.port, desired.role
        ))
        .into()),
        Err(failure) => Err(ProvisionDatabaseError::Verification(format!(
            "{} cannot log in over tcp at {host}:{} to database {}: {failure}: check pg_hba.conf for an earlier rule that \
             matches (SELECT * FROM pg_hba_file_rules) and that database.port is the server's port",
            desired.role, desired.port, desired.database
        ))
        .into()),
    }
}

/// When the login from this host was refused because it arrived from an address outside the
/// docker subnet: Docker's `MASQUERADE` rule (`-s 172.17.0.0/16 ! -o docker0`) rewrites the
/// host's own connections to its docker0 address, so they come from the host's main address,
/// which our rule rightly does not admit. Containers connect through docker0 and are not
/// rewritten. Returns the address the server saw.
pub fn nat_rewritten_client(desired: &Desired, failure: &PgFailure) -> Option<std::net::IpAddr> {
    if failure.code.as_deref() != Some("28000") {
        return None;
    }
    let rest = failure.message.split_once("no pg_hba.conf entry for host \"")?.1;
    let client: std::net::IpAddr = rest.split('"').next()?.parse().ok()?;
    (!desired.subnet.contains(client)).then_some(client)
}

/// What to say when the login cannot prove the rule from this host.
pub fn nat_warning(desired: &Desired, client: std::net::IpAddr) -> String {
    format!(
        "not verified over tcp: the login from this host to {}:{} arrived from {client}, outside {} (Docker's NAT \
         rewrites the host's own connections to its docker0 address), so only a connection from a container can \
         prove the pg_hba.conf rule",
        desired.docker_host, desired.port, desired.subnet
    )
}

/// One login as the pretix role; returns `current_user`.
pub fn login(desired: &Desired, password: &str) -> Result<String, PgFailure> {
    let mut config = postgres::Config::new();
    config
        .host(&desired.docker_host.to_string())
        .port(desired.port)
        .user(&desired.role)
        .dbname(&desired.database)
        .password(password)
        .application_name("pretix-db")
        .connect_timeout(CONNECT_TIMEOUT);
    let mut client = config
        .connect(postgres::NoTls)
        .map_err(|error| PgFailure::from_postgres(&error))?;
    let rows = client
        .simple_query("SELECT current_user")
        .map_err(|error| PgFailure::from_postgres(&error))?;
    let user = rows.into_iter().find_map(|message| match message {
        postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    });
    let _ = client.close();
    user.ok_or_else(|| PgFailure::other("SELECT current_user returned no row"))
}

/// Records the password reference in the `database` section (when generated) and the settings
/// pretix-cfg writes into pretix.cfg's `[database]`.
fn update_document(
    ctx: &mut Context,
    document: &mut Document,
    section: &Database,
    desired: &Desired,
    password: &PasswordChoice,
) -> Result<(), ToolError> {
    if section.password.is_none() || (section.rotate_password && !ctx.is_check()) {
        let mut raw = match document.raw_section("database") {
            Some(Value::Object(map)) => Value::Object(map.clone()),
            _ => json!({}),
        };
        if let Value::Object(map) = &mut raw {
            map.insert(
                "password".to_owned(),
                json!({ "secret_file": password.reference.secret_file }),
            );
            if section.rotate_password && !ctx.is_check() {
                // Rotation is a one-off: the document that comes out must not rotate again.
                map.insert("rotate_password".to_owned(), Value::Bool(false));
            }
        }
        document.set_section("database", &raw)?;
    }
    let values = [
        ("backend", ConfigValue::Text("postgresql".to_owned())),
        ("name", ConfigValue::Text(desired.database.clone())),
        ("user", ConfigValue::Text(desired.role.clone())),
        ("host", ConfigValue::Text(desired.docker_host.to_string())),
        ("port", ConfigValue::Integer(i64::from(desired.port))),
        ("password", ConfigValue::Secret(password.reference.clone())),
    ];
    for (key, value) in values {
        if let Some(previous) = document.set_config_value("database", key, value.clone()) {
            let shown = |value: &ConfigValue| match value {
                ConfigValue::Secret(reference) => format!("the secret file {}", reference.secret_file.display()),
                _ if key == "password" => "a password in plain text".to_owned(),
                other => format!("`{}`", other.as_plain_text().unwrap_or_default()),
            };
            ctx.warn(format!(
                "config.database.{key} was {}; replaced by {} from the database section",
                shown(&previous),
                shown(&value)
            ));
        }
    }
    Ok(())
}

fn summary(ctx: &Context, desired: &Desired) -> String {
    let what = format!(
        "role {}, database {}, reachable at {}:{} from {}",
        desired.role, desired.database, desired.docker_host, desired.port, desired.subnet
    );
    match (ctx.is_check(), ctx.has_changed()) {
        (true, true) => format!("planned changes for {what}"),
        (_, false) => format!("postgresql is ready for pretix: {what}"),
        (false, true) => format!("postgresql provisioned for pretix: {what}"),
    }
}
