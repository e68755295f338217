//! Reading the server's current state: two statements, each one round trip. Names go as bound
//! parameters.

use std::path::PathBuf;

use crate::error::ProvisionDatabaseError;
use crate::session::{AdminSession, PgFailure, Row};

/// What the server is, and who we are on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// `server_version_num`, e.g. 150004.
    pub version_num: u32,
    /// `server_version`, e.g. `15.4 (Debian 15.4-0+deb12u1)`.
    pub version: String,
    pub encoding: String,
    pub current_user: String,
    pub superuser: bool,
}

impl ServerFacts {
    pub fn major(&self) -> u32 {
        self.version_num / 10000
    }
}

/// The role pretix logs in as, as it is now.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleState {
    pub can_login: bool,
    pub superuser: bool,
    /// `pg_authid.rolpassword`: a verifier or hash, never shown.
    pub stored_password: Option<String>,
    /// `VALID UNTIL` lies in the past: password logins are refused.
    pub password_expired: bool,
}

impl std::fmt::Debug for RoleState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RoleState")
            .field("can_login", &self.can_login)
            .field("superuser", &self.superuser)
            .field("stored_password", &self.stored_password.as_ref().map(|_| "(set)"))
            .field("password_expired", &self.password_expired)
            .finish()
    }
}

/// pretix's database, as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseState {
    pub owner: String,
    pub encoding: String,
}

/// Where the effective `listen_addresses` line of the config files is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSetting {
    pub file: PathBuf,
    pub line: u32,
    pub value: String,
}

/// Everything else planning needs from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterState {
    pub config_file: PathBuf,
    pub hba_file: PathBuf,
    /// `listen_addresses` as the running server uses it.
    pub live_listen_addresses: String,
    /// `pg_settings.source` of it: `default`, `configuration file`, `command line`, ...
    pub listen_source: String,
    /// The last `listen_addresses` line of all config files (the one a restart would use).
    pub listen_file_setting: Option<FileSetting>,
    /// Lines of the current pg_hba.conf that the server rejects: `line: error`.
    pub hba_errors: Vec<String>,
    pub role: Option<RoleState>,
    pub database: Option<DatabaseState>,
    pub template1_encoding: Option<String>,
}

const SERVER_FACTS_SQL: &str = "SELECT current_setting('server_version_num'), current_setting('server_version'), \
     current_setting('server_encoding'), current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)";

const CLUSTER_STATE_SQL: &str = "SELECT current_setting('config_file'), current_setting('hba_file'), \
     current_setting('listen_addresses'), (SELECT source FROM pg_settings WHERE name = 'listen_addresses'), \
     role.rolcanlogin::text, role.rolsuper::text, role.rolpassword, \
     pg_get_userbyid(db.datdba)::text, pg_encoding_to_char(db.encoding)::text, \
     (SELECT pg_encoding_to_char(encoding)::text FROM pg_database WHERE datname = 'template1'), \
     (SELECT string_agg(line_number::text || ': ' || error, chr(10) ORDER BY line_number) FROM pg_hba_file_rules WHERE error IS NOT NULL), \
     setting.sourcefile, setting.sourceline::text, setting.setting, (role.rolvaliduntil < now())::text \
     FROM (SELECT 1) AS one \
     LEFT JOIN pg_authid AS role ON role.rolname = $1 \
     LEFT JOIN pg_database AS db ON db.datname = $2 \
     LEFT JOIN LATERAL (SELECT sourcefile, sourceline, setting FROM pg_file_settings \
                        WHERE name = 'listen_addresses' ORDER BY seqno DESC LIMIT 1) AS setting ON true";

/// Reads version, encoding and our own privileges. Works for any role.
pub fn server_facts(session: &mut dyn AdminSession) -> Result<ServerFacts, ProvisionDatabaseError> {
    let rows = session
        .query(SERVER_FACTS_SQL, &[])
        .map_err(|failure| statement_error(session, "read the server version", &failure))?;
    let row = single_row(session, rows, "read the server version")?;
    let text = |index: usize| row.get(index).cloned().flatten().unwrap_or_default();
    Ok(ServerFacts {
        version_num: text(0).parse().unwrap_or(0),
        version: text(1),
        encoding: text(2),
        current_user: text(3),
        superuser: is_true(&text(4)),
    })
}

/// Reads the rest; needs a superuser (pg_authid, pg_file_settings, pg_hba_file_rules).
pub fn cluster_state(
    session: &mut dyn AdminSession,
    role: &str,
    database: &str,
) -> Result<ClusterState, ProvisionDatabaseError> {
    let action = "read the role, the database and the config file locations";
    let rows = session
        .query(CLUSTER_STATE_SQL, &[role, database])
        .map_err(|failure| statement_error(session, action, &failure))?;
    let row = single_row(session, rows, action)?;
    let cell = |index: usize| row.get(index).cloned().flatten();
    let role = cell(4).map(|can_login| RoleState {
        can_login: is_true(&can_login),
        superuser: cell(5).is_some_and(|value| is_true(&value)),
        stored_password: cell(6),
        password_expired: cell(14).is_some_and(|value| is_true(&value)),
    });
    let database = cell(7).map(|owner| DatabaseState {
        owner,
        encoding: cell(8).unwrap_or_default(),
    });
    let listen_file_setting = cell(11).map(|file| FileSetting {
        file: PathBuf::from(file),
        line: cell(12).and_then(|line| line.parse().ok()).unwrap_or(0),
        value: cell(13).unwrap_or_default(),
    });
    Ok(ClusterState {
        config_file: PathBuf::from(cell(0).unwrap_or_default()),
        hba_file: PathBuf::from(cell(1).unwrap_or_default()),
        live_listen_addresses: cell(2).unwrap_or_default(),
        listen_source: cell(3).unwrap_or_default(),
        listen_file_setting,
        hba_errors: cell(10)
            .map(|errors| errors.lines().map(str::to_owned).collect())
            .unwrap_or_default(),
        role,
        database,
        template1_encoding: cell(9),
    })
}

/// The errors the server finds in its pg_hba.conf now (after a reload, say).
pub fn hba_errors(session: &mut dyn AdminSession) -> Result<Vec<String>, ProvisionDatabaseError> {
    let sql =
        "SELECT line_number::text || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL ORDER BY line_number";
    let rows = session
        .query(sql, &[])
        .map_err(|failure| statement_error(session, "read pg_hba_file_rules", &failure))?;
    Ok(rows
        .into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect())
}

/// `listen_addresses` of the running server.
pub fn live_listen_addresses(session: &mut dyn AdminSession) -> Result<String, ProvisionDatabaseError> {
    let rows = session
        .query("SELECT current_setting('listen_addresses')", &[])
        .map_err(|failure| statement_error(session, "read listen_addresses", &failure))?;
    Ok(single_row(session, rows, "read listen_addresses")?
        .into_iter()
        .next()
        .flatten()
        .unwrap_or_default())
}

/// Booleans arrive as `t`/`f` (simple protocol) or `true`/`false` (a cast to text).
pub fn is_true(value: &str) -> bool {
    matches!(value, "t" | "true")
}

fn single_row(session: &dyn AdminSession, rows: Vec<Row>, action: &str) -> Result<Row, ProvisionDatabaseError> {
    rows.into_iter()
        .next()
        .ok_or_else(|| ProvisionDatabaseError::Statement {
            action: format!("{action} {}", session.target()),
            reason: "the server returned no row".to_owned(),
        })
}

pub fn statement_error(session: &dyn AdminSession, action: &str, failure: &PgFailure) -> ProvisionDatabaseError {
    let reason = match failure.code.as_deref() {
        // insufficient_privilege
        Some("42501") => format!("{failure}: connect as a superuser (database.admin)"),
        _ => failure.to_string(),
    };
    ProvisionDatabaseError::Statement {
        action: format!("{action} ({})", session.target()),
        reason,
    }
}
