//! `pretix-db verify`: read-only. Reports each part of the setup as ok, warning or failure;
//! a failure makes the run fail (exit 1). Nothing is written, on the server or on disk.

use pretix_site::report::CheckStatus;
use pretix_site::sections::{ConfigValue, Database, Paths};
use pretix_site::{Context, Document, ToolError};

use crate::hba::{HbaAction, plan_hba};
use crate::inspect::{self, ClusterState, ServerFacts};
use crate::listen::covers;
use crate::plan::{self, Desired, MIN_MAJOR, RECOMMENDED_MAJOR};
use crate::provision::login;
use crate::resolve;
use crate::scram::{StoredPassword, check_stored};

/// Runs `verify`.
pub fn verify(ctx: &mut Context, document: &Document) -> Result<String, ToolError> {
    let section: Database = document.section("database")?;
    let paths: Paths = document.section("paths")?;
    let desired = Desired::from_section(&section)?;
    let password = match resolve::existing_password(ctx, &section, &paths) {
        Ok((secret, reference)) => {
            ctx.check_item(
                "password file",
                CheckStatus::Ok,
                format!("{} is readable by its owner only", reference.secret_file.display()),
            );
            Some(secret)
        }
        Err(error) => {
            ctx.check_item(
                "password file",
                CheckStatus::Failure,
                format!("{error} (pretix-db apply creates it)"),
            );
            None
        }
    };
    check_config(ctx, document, &desired);
    if ctx.is_offline() {
        ctx.note("unverified (--offline): everything on the server");
        return ctx.verify_outcome("pretix-db apply fixes what it owns");
    }
    let admin_password = resolve::admin_password(ctx, &section)?;
    let route = resolve::admin_route(&section, admin_password.as_ref())?;
    let mut session = match resolve::open_session(ctx, &route, &section.service) {
        Ok(session) => {
            ctx.check_item(
                "connection",
                CheckStatus::Ok,
                format!("connected to postgresql {}", route.target()),
            );
            session
        }
        Err(error) => {
            ctx.check_item("connection", CheckStatus::Failure, error.to_string());
            return ctx.verify_outcome("pretix-db apply fixes what it owns");
        }
    };
    let facts = match inspect::server_facts(session.as_mut()) {
        Ok(facts) => facts,
        Err(error) => {
            ctx.check_item("server", CheckStatus::Failure, error.to_string());
            return ctx.verify_outcome("pretix-db apply fixes what it owns");
        }
    };
    if !check_facts(ctx, &facts) {
        return ctx.verify_outcome("pretix-db apply fixes what it owns");
    }
    let state = match inspect::cluster_state(session.as_mut(), &desired.role, &desired.database) {
        Ok(state) => state,
        Err(error) => {
            ctx.check_item("server state", CheckStatus::Failure, error.to_string());
            return ctx.verify_outcome("pretix-db apply fixes what it owns");
        }
    };
    check_role(ctx, &state, &desired, password.as_ref().map(|secret| secret.expose()));
    check_database(ctx, &state, &desired);
    check_files(ctx, &section, &state, &desired);
    drop(session);
    check_login(ctx, &state, &desired, password.as_ref().map(|secret| secret.expose()));
    ctx.verify_outcome("pretix-db apply fixes what it owns")
}

fn check_config(ctx: &mut Context, document: &Document, desired: &Desired) {
    let expected = [
        ("backend", ConfigValue::Text("postgresql".to_owned())),
        ("name", ConfigValue::Text(desired.database.clone())),
        ("user", ConfigValue::Text(desired.role.clone())),
        ("host", ConfigValue::Text(desired.docker_host.to_string())),
        ("port", ConfigValue::Integer(i64::from(desired.port))),
    ];
    let mut off = Vec::new();
    for (key, value) in expected {
        match document.config_value("database", key) {
            Ok(Some(found)) if found.as_plain_text() == value.as_plain_text() => {}
            _ => off.push(key),
        }
    }
    if !matches!(
        document.config_value("database", "password"),
        Ok(Some(ConfigValue::Secret(_)))
    ) {
        off.push("password");
    }
    if off.is_empty() {
        ctx.check_item(
            "pretix.cfg settings",
            CheckStatus::Ok,
            "config.database matches the database section",
        );
    } else {
        ctx.check_item(
            "pretix.cfg settings",
            CheckStatus::Warning,
            format!(
                "config.database.{} missing or different from the database section (pretix-db apply sets them)",
                off.join(", config.database.")
            ),
        );
    }
}

/// Returns whether the server can be inspected further.
fn check_facts(ctx: &mut Context, facts: &ServerFacts) -> bool {
    let version = format!("postgresql {}", facts.version);
    if facts.major() < MIN_MAJOR {
        ctx.check_item(
            "server version",
            CheckStatus::Failure,
            format!("{version} is too old, pretix needs {MIN_MAJOR} or newer"),
        );
    } else if facts.major() < RECOMMENDED_MAJOR {
        ctx.check_item(
            "server version",
            CheckStatus::Warning,
            format!("{version} is older than {RECOMMENDED_MAJOR}, which current pretix requires"),
        );
    } else {
        ctx.check_item("server version", CheckStatus::Ok, version);
    }
    if facts.encoding.eq_ignore_ascii_case("UTF8") {
        ctx.check_item("server encoding", CheckStatus::Ok, "UTF8");
    } else {
        ctx.check_item(
            "server encoding",
            CheckStatus::Failure,
            format!(
                "{}, pretix needs UTF8: recreate the cluster with initdb -E UTF8 (or pg_createcluster --encoding UTF8)",
                facts.encoding
            ),
        );
    }
    if facts.superuser {
        ctx.check_item(
            "superuser",
            CheckStatus::Ok,
            format!("connected as {}, a superuser", facts.current_user),
        );
        true
    } else {
        ctx.check_item(
            "superuser",
            CheckStatus::Failure,
            format!(
                "connected as {}, which is not a superuser: the rest cannot be checked",
                facts.current_user
            ),
        );
        false
    }
}

fn check_role(ctx: &mut Context, state: &ClusterState, desired: &Desired, password: Option<&str>) {
    let Some(role) = &state.role else {
        ctx.check_item(
            "role",
            CheckStatus::Failure,
            format!("role {} does not exist", desired.role),
        );
        return;
    };
    if role.password_expired {
        ctx.check_item(
            "role",
            CheckStatus::Failure,
            format!("role {}'s password has expired (VALID UNTIL)", desired.role),
        );
        return;
    }
    match (role.can_login, role.superuser) {
        (false, _) => ctx.check_item(
            "role",
            CheckStatus::Failure,
            format!("role {} exists but cannot log in", desired.role),
        ),
        (true, true) => ctx.check_item(
            "role",
            CheckStatus::Warning,
            format!("role {} is a superuser, which pretix does not need", desired.role),
        ),
        (true, false) => ctx.check_item(
            "role",
            CheckStatus::Ok,
            format!("role {} exists and can log in", desired.role),
        ),
    }
    let Some(password) = password else {
        ctx.check_item(
            "role password",
            CheckStatus::Failure,
            "not checked: the password file cannot be read",
        );
        return;
    };
    let (status, message) = match check_stored(role.stored_password.as_deref(), password) {
        StoredPassword::Matches => (
            CheckStatus::Ok,
            "the stored scram-sha-256 verifier matches the password file (checked without reading any password back)",
        ),
        StoredPassword::Differs => (
            CheckStatus::Failure,
            "the stored verifier does not match the password file",
        ),
        StoredPassword::Md5 => (
            CheckStatus::Failure,
            "the role has an md5 password hash; apply replaces it with scram-sha-256",
        ),
        StoredPassword::Missing => (CheckStatus::Failure, "the role has no password"),
        StoredPassword::Unknown => (
            CheckStatus::Failure,
            "the stored password is not a scram-sha-256 verifier",
        ),
    };
    ctx.check_item("role password", status, message);
}

fn check_database(ctx: &mut Context, state: &ClusterState, desired: &Desired) {
    let (status, message) = match &state.database {
        None => (
            CheckStatus::Failure,
            format!("database {} does not exist", desired.database),
        ),
        Some(database) if !database.encoding.eq_ignore_ascii_case("UTF8") => (
            CheckStatus::Failure,
            format!(
                "database {} has encoding {}, pretix needs UTF8",
                desired.database, database.encoding
            ),
        ),
        Some(database) if database.owner != desired.role => (
            CheckStatus::Failure,
            format!(
                "database {} belongs to {}, not {}",
                desired.database, database.owner, desired.role
            ),
        ),
        Some(_) => (
            CheckStatus::Ok,
            format!("database {} exists, owned by {}, UTF8", desired.database, desired.role),
        ),
    };
    ctx.check_item("database", status, message);
}

fn check_files(ctx: &mut Context, section: &Database, state: &ClusterState, desired: &Desired) {
    let conf_path = section
        .postgresql_conf
        .clone()
        .unwrap_or_else(|| state.config_file.clone());
    let live_files = !ctx.root().is_redirected();
    match resolve::read_conf(ctx.root(), &conf_path, "database.postgresql_conf") {
        Err(error) => ctx.check_item("postgresql.conf", CheckStatus::Failure, error.to_string()),
        Ok(conf) => {
            let override_setting = if live_files && plan::same_file(&conf_path, &state.config_file) {
                plan::listen_override(state, &conf_path)
            } else {
                None
            };
            let required = desired.listen_required();
            match plan::plan_listen(
                &conf.text,
                &conf_path,
                &required,
                &state.live_listen_addresses,
                &state.listen_source,
                override_setting,
            ) {
                Err(error) => ctx.check_item("postgresql.conf", CheckStatus::Failure, error.to_string()),
                Ok(decision) => {
                    match decision
                        .file
                        .as_ref()
                        .and_then(|file| file.new_value.as_ref().map(|new| (&file.current, new)))
                    {
                        Some((current, new)) => ctx.check_item(
                            "postgresql.conf",
                            CheckStatus::Failure,
                            format!(
                                "listen_addresses is '{current}' in {}, it must be '{new}'",
                                conf_path.display()
                            ),
                        ),
                        None => ctx.check_item(
                            "postgresql.conf",
                            CheckStatus::Ok,
                            format!("listen_addresses lists {}", required.join(" and ")),
                        ),
                    }
                    if decision.restart_needed {
                        ctx.check_item(
                            "listening",
                            CheckStatus::Warning,
                            format!(
                                "the running server listens on '{}', not on {}: restart it (systemctl restart {})",
                                state.live_listen_addresses,
                                required.join(" and "),
                                section.service
                            ),
                        );
                    } else if let Some(warning) = decision.warnings.first() {
                        ctx.check_item("listening", CheckStatus::Warning, warning.clone());
                    } else {
                        ctx.check_item(
                            "listening",
                            CheckStatus::Ok,
                            format!("the running server listens on '{}'", state.live_listen_addresses),
                        );
                    }
                }
            }
        }
    }
    let hba_path = section.pg_hba_conf.clone().unwrap_or_else(|| state.hba_file.clone());
    match resolve::read_conf(ctx.root(), &hba_path, "database.pg_hba_conf") {
        Err(error) => ctx.check_item("pg_hba.conf", CheckStatus::Failure, error.to_string()),
        Ok(hba) => {
            let plan = plan_hba(&hba.text, &desired.rule());
            let rule = desired.rule().line().split_whitespace().collect::<Vec<_>>().join(" ");
            let (status, message) = match plan.action {
                HbaAction::Present { line } => (CheckStatus::Ok, format!("line {line} lets pretix in: {rule}")),
                HbaAction::FixMethod { line, old_method } => (
                    CheckStatus::Failure,
                    format!(
                        "line {line} is the pretix rule with method {old_method}, not {}",
                        desired.method.as_str()
                    ),
                ),
                HbaAction::Insert {
                    before: Some((line, text)),
                } => (
                    CheckStatus::Failure,
                    format!("line {line} (`{text}`) decides pretix's connections before any rule `{rule}`"),
                ),
                HbaAction::Insert { before: None } => (CheckStatus::Failure, format!("no rule `{rule}`")),
            };
            ctx.check_item("pg_hba.conf", status, message);
            if live_files && plan::same_file(&hba_path, &state.hba_file) && !state.hba_errors.is_empty() {
                ctx.check_item(
                    "pg_hba.conf errors",
                    CheckStatus::Failure,
                    format!("the server rejects line {}", state.hba_errors.join("; line ")),
                );
            }
        }
    }
}

fn check_login(ctx: &mut Context, state: &ClusterState, desired: &Desired, password: Option<&str>) {
    let host = desired.docker_host.to_string();
    let skipped = if state.role.is_none() {
        Some("the role does not exist")
    } else if state.database.is_none() {
        Some("the database does not exist")
    } else if password.is_none() {
        Some("the password file cannot be read")
    } else if !covers(&state.live_listen_addresses, &host) {
        Some("the server does not listen there")
    } else {
        None
    };
    if let Some(reason) = skipped {
        ctx.check_item(
            "login over tcp",
            CheckStatus::Failure,
            format!("not tried at {host}:{}: {reason}", desired.port),
        );
        return;
    }
    match login(desired, password.unwrap_or_default()) {
        Ok(user) => ctx.check_item(
            "login over tcp",
            CheckStatus::Ok,
            format!(
                "logged in as {user} at {host}:{} to database {}",
                desired.port, desired.database
            ),
        ),
        Err(failure) => match crate::provision::nat_rewritten_client(desired, &failure) {
            Some(client) => ctx.check_item(
                "login over tcp",
                CheckStatus::Warning,
                crate::provision::nat_warning(desired, client),
            ),
            None => ctx.check_item(
                "login over tcp",
                CheckStatus::Failure,
                format!("at {host}:{}: {failure}", desired.port),
            ),
        },
    }
}
