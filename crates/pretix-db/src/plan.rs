//! Planning: the current state in, the actions out. Pure, so every decision can be tested
//! without a server; everything that would stop the run is found here, before any change.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use pretix_site::sections::{AuthMethod, Database, HostPaths};

use crate::error::ProvisionDatabaseError;
use crate::hba::{DesiredRule, HbaPlan, plan_hba};
use crate::inspect::{ClusterState, DatabaseState, FileSetting, RoleState, ServerFacts};
use crate::listen::{ListenPlan, covers, plan_listen_addresses};
use crate::names::{NameKind, validate_name};
use crate::network::Network;
use crate::scram::{StoredPassword, check_stored};

/// The oldest PostgreSQL the guide accepts, and the oldest current pretix needs.
pub const MIN_MAJOR: u32 = 12;
pub const RECOMMENDED_MAJOR: u32 = 14;

/// The validated `database` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub role: String,
    pub database: String,
    pub docker_host: IpAddr,
    pub subnet: Network,
    pub method: AuthMethod,
    pub port: u16,
}

impl Desired {
    /// Checks the section before anything is contacted or changed.
    pub fn from_section(database: &Database) -> Result<Desired, ProvisionDatabaseError> {
        validate_name("database.user", &database.user, NameKind::Role)?;
        validate_name("database.name", &database.name, NameKind::Database)?;
        let docker_host: IpAddr = database.docker_host.trim().parse().map_err(|_| {
            ProvisionDatabaseError::input(
                "database.docker_host",
                format!(
                    "`{}` is not an IP address: give the docker host address, e.g. 172.17.0.1",
                    database.docker_host
                ),
            )
        })?;
        let subnet = Network::parse_cidr(database.docker_subnet.trim()).ok_or_else(|| {
            ProvisionDatabaseError::input(
                "database.docker_subnet",
                format!(
                    "`{}` is not a network in CIDR form: give one like 172.17.0.0/16",
                    database.docker_subnet
                ),
            )
        })?;
        // A rule for a network this wide would let most of the internet try passwords on the
        // pretix database; Docker's bridge networks are /16 to /24.
        let widest = if subnet.is_ipv4() { 8 } else { 32 };
        if subnet.prefix() < widest {
            return Err(ProvisionDatabaseError::input(
                "database.docker_subnet",
                format!(
                    "{subnet} is wider than /{widest}: pg_hba.conf would admit it to the pretix database; give the \
                     docker bridge's subnet, e.g. 172.17.0.0/16 (docker network inspect bridge)"
                ),
            ));
        }
        if !subnet.contains(docker_host) {
            return Err(ProvisionDatabaseError::input(
                "database.docker_subnet",
                format!(
                    "{subnet} does not contain database.docker_host {docker_host}: give the docker network the host \
                     address belongs to (docker network inspect bridge)"
                ),
            ));
        }
        pretix_site::service::validate_unit_name(&database.service, "database.service", "postgresql")?;
        database.validate_host_paths()?;
        let admin = &database.admin;
        if admin.connection.is_none() {
            if admin.user.is_empty() || admin.user.contains('\0') {
                return Err(ProvisionDatabaseError::input(
                    "database.admin.user",
                    "give the superuser role, e.g. postgres",
                ));
            }
            if admin.user == database.user {
                return Err(ProvisionDatabaseError::input(
                    "database.user",
                    format!(
                        "{} is the superuser role (database.admin.user): pretix needs a role of its own, e.g. pretix",
                        admin.user
                    ),
                ));
            }
        }
        Ok(Desired {
            role: database.user.clone(),
            database: database.name.clone(),
            docker_host,
            subnet,
            method: database.auth_method,
            port: database.port,
        })
    }

    pub fn rule(&self) -> DesiredRule {
        DesiredRule {
            database: self.database.clone(),
            user: self.role.clone(),
            subnet: self.subnet,
            method: self.method.as_str().to_owned(),
        }
    }

    /// The addresses postgresql.conf must list.
    pub fn listen_required(&self) -> [String; 2] {
        ["localhost".to_owned(), self.docker_host.to_string()]
    }
}

/// Refuses a server pretix cannot use; returns warnings for one it can use with care.
pub fn check_server(facts: &ServerFacts) -> Result<Vec<String>, ProvisionDatabaseError> {
    if facts.major() < MIN_MAJOR {
        return Err(ProvisionDatabaseError::Server(format!(
            "postgresql {} is too old, pretix needs {MIN_MAJOR} or newer ({RECOMMENDED_MAJOR} or newer for current pretix): upgrade postgresql",
            facts.version
        )));
    }
    if !facts.encoding.eq_ignore_ascii_case("UTF8") {
        return Err(ProvisionDatabaseError::Server(format!(
            "postgres server encoding is {}, pretix needs UTF8: recreate the cluster with initdb -E UTF8 (or pg_createcluster --encoding UTF8)",
            facts.encoding
        )));
    }
    if !facts.superuser {
        return Err(ProvisionDatabaseError::Server(format!(
            "connected to postgresql as {}, which is not a superuser: connect as the superuser (database.admin.user, or database.admin.connection)",
            facts.current_user
        )));
    }
    let mut warnings = Vec::new();
    if facts.major() < RECOMMENDED_MAJOR {
        warnings.push(format!(
            "postgresql {} is older than {RECOMMENDED_MAJOR}, which current pretix requires: plan an upgrade before updating pretix",
            facts.version
        ));
    }
    Ok(warnings)
}

/// Why the role's password is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChange {
    /// The role has no password.
    Missing,
    /// The role has an md5 hash, replaced by a SCRAM verifier.
    Md5,
    /// The stored verifier is not the password's.
    Differs,
    /// The stored value is not a verifier this tool can check.
    Unknown,
    /// `rotate_password` asked for a new one.
    Rotate,
}

impl PasswordChange {
    pub fn describe(self) -> &'static str {
        match self {
            PasswordChange::Missing => "it had none",
            PasswordChange::Md5 => "replacing its md5 hash with scram-sha-256",
            PasswordChange::Differs => "the stored one is not the password in the secret file",
            PasswordChange::Unknown => "the stored one is not a scram-sha-256 verifier",
            PasswordChange::Rotate => "rotate_password",
        }
    }
}

/// What happens to the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleAction {
    Nothing,
    Create,
    Alter {
        login: bool,
        password: Option<PasswordChange>,
    },
}

/// Decides about the role without ever reading a password back: the stored verifier is
/// recomputed from the password we hold.
pub fn plan_role(state: Option<&RoleState>, password: &str, rotate: bool) -> RoleAction {
    let Some(state) = state else { return RoleAction::Create };
    let password_change = if rotate {
        Some(PasswordChange::Rotate)
    } else {
        match check_stored(state.stored_password.as_deref(), password) {
            StoredPassword::Matches => None,
            StoredPassword::Differs => Some(PasswordChange::Differs),
            StoredPassword::Md5 => Some(PasswordChange::Md5),
            StoredPassword::Missing => Some(PasswordChange::Missing),
            StoredPassword::Unknown => Some(PasswordChange::Unknown),
        }
    };
    if state.can_login && password_change.is_none() {
        RoleAction::Nothing
    } else {
        RoleAction::Alter {
            login: !state.can_login,
            password: password_change,
        }
    }
}

/// What happens to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseAction {
    Nothing,
    Create,
    FixOwner { from: String },
}

/// Decides about the database. A database with the wrong encoding is never touched.
pub fn plan_database(
    state: Option<&DatabaseState>,
    template1_encoding: Option<&str>,
    database: &str,
    role: &str,
) -> Result<DatabaseAction, ProvisionDatabaseError> {
    let Some(state) = state else {
        if let Some(encoding) = template1_encoding.filter(|encoding| !encoding.eq_ignore_ascii_case("UTF8")) {
            return Err(ProvisionDatabaseError::Server(format!(
                "template1 has encoding {encoding}, so database {database} cannot be created as UTF8 from it: create it \
                 from template0 by hand (createdb -E UTF8 -T template0 -O {role} {database}), then run pretix-db again"
            )));
        }
        return Ok(DatabaseAction::Create);
    };
    if !state.encoding.eq_ignore_ascii_case("UTF8") {
        return Err(ProvisionDatabaseError::Server(format!(
            "database {database} has encoding {}, pretix needs UTF8; it was left untouched: if it holds nothing of value, \
             drop it (dropdb {database}) and run pretix-db again, otherwise dump it and restore it into a UTF8 database",
            state.encoding
        )));
    }
    if state.owner != role {
        return Ok(DatabaseAction::FixOwner {
            from: state.owner.clone(),
        });
    }
    Ok(DatabaseAction::Nothing)
}

/// The decision about `listen_addresses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenDecision {
    /// The edit of the file, when it is the one that decides (`None` when another file already
    /// lists the addresses).
    pub file: Option<ListenPlan>,
    /// The running server does not listen where it must, and a restart would fix that.
    pub restart_needed: bool,
    pub warnings: Vec<String>,
}

/// Decides about `listen_addresses`. `override_setting` is the effective line when it lives
/// in another file than `conf_path` (conf.d, or postgresql.auto.conf from ALTER SYSTEM).
pub fn plan_listen(
    conf_text: &str,
    conf_path: &Path,
    required: &[String],
    live: &str,
    live_source: &str,
    override_setting: Option<&FileSetting>,
) -> Result<ListenDecision, ProvisionDatabaseError> {
    let required: Vec<&str> = required.iter().map(String::as_str).collect();
    let mut warnings = Vec::new();
    let file = match override_setting {
        Some(setting) if required.iter().all(|wanted| covers(&setting.value, wanted)) => None,
        Some(setting) => {
            let fix = if setting
                .file
                .file_name()
                .is_some_and(|name| name == "postgresql.auto.conf")
            {
                format!(
                    "it was set with ALTER SYSTEM: run ALTER SYSTEM SET listen_addresses = '{}' (or ALTER SYSTEM RESET listen_addresses)",
                    merged_or(&setting.value, &required)
                )
            } else {
                format!("list {} there too, or remove that line", required.join(" and "))
            };
            return Err(ProvisionDatabaseError::Server(format!(
                "listen_addresses is set to '{}' in {} line {}, which overrides {}: {fix}",
                setting.value,
                setting.file.display(),
                setting.line,
                conf_path.display()
            )));
        }
        None => Some(plan_listen_addresses(conf_text, &required)),
    };
    let live_covers = required.iter().all(|wanted| covers(live, wanted));
    let from_command_line = live_source == "command line";
    if !live_covers && from_command_line {
        warnings.push(format!(
            "the running server's listen_addresses ('{live}') is given on the postgres command line, which overrides \
             the config files: add {} there",
            required.join(" and ")
        ));
    }
    Ok(ListenDecision {
        file,
        restart_needed: !live_covers && !from_command_line,
        warnings,
    })
}

fn merged_or(current: &str, required: &[&str]) -> String {
    crate::listen::merge_listen_addresses(current, required).unwrap_or_else(|| current.to_owned())
}

/// Decides about pg_hba.conf; refuses a file the server already rejects (a reload would then
/// keep the old rules, and our rule would never take effect).
pub fn plan_pg_hba(
    text: &str,
    desired: &Desired,
    server_errors: Option<&[String]>,
    hba_path: &Path,
) -> Result<HbaPlan, ProvisionDatabaseError> {
    if let Some(errors) = server_errors.filter(|errors| !errors.is_empty()) {
        return Err(ProvisionDatabaseError::Server(format!(
            "{} has lines the server rejects (line {}): fix them first, until then postgresql ignores the whole file on reload",
            hba_path.display(),
            errors.join("; line ")
        )));
    }
    Ok(plan_hba(text, &desired.rule()))
}

/// The effective `listen_addresses` line when it is in another file than `conf_path`.
pub fn listen_override<'a>(state: &'a ClusterState, conf_path: &Path) -> Option<&'a FileSetting> {
    state
        .listen_file_setting
        .as_ref()
        .filter(|setting| !same_file(&setting.file, conf_path))
}

/// Whether two paths name the same file (through symlinks too).
pub fn same_file(left: &Path, right: &Path) -> bool {
    let canonical = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
    canonical(left) == canonical(right)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scram::make_verifier;

    fn facts(version_num: u32, encoding: &str, superuser: bool) -> ServerFacts {
        ServerFacts {
            version_num,
            version: format!("{}.0", version_num / 10000),
            encoding: encoding.to_owned(),
            current_user: "postgres".to_owned(),
            superuser,
        }
    }

    fn error_text<T: std::fmt::Debug>(result: Result<T, ProvisionDatabaseError>) -> String {
        match result {
            Ok(value) => format!("unexpectedly ok: {value:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn server_checks() {
        assert_eq!(
            check_server(&facts(150004, "UTF8", true)).map(|w| w.len()).ok(),
            Some(0)
        );
        assert_eq!(
            check_server(&facts(130011, "UTF8", true)).map(|w| w.len()).ok(),
            Some(1)
        );
        assert!(error_text(check_server(&facts(110000, "UTF8", true))).contains("too old"));
        assert_eq!(
            error_text(check_server(&facts(150004, "SQL_ASCII", true))),
            "postgres server encoding is SQL_ASCII, pretix needs UTF8: recreate the cluster with initdb -E UTF8 (or pg_createcluster --encoding UTF8)"
        );
        assert!(error_text(check_server(&facts(150004, "UTF8", false))).contains("not a superuser"));
    }

    #[test]
    fn role_decisions_never_need_the_stored_plaintext() {
        let password = "s3cret-enough";
        let role = |can_login: bool, stored: Option<String>| RoleState {
            can_login,
            superuser: false,
            stored_password: stored,
            password_expired: false,
        };
        assert_eq!(plan_role(None, password, false), RoleAction::Create);
        assert_eq!(
            plan_role(Some(&role(true, Some(make_verifier(password)))), password, false),
            RoleAction::Nothing
        );
        assert_eq!(
            plan_role(Some(&role(true, Some(make_verifier(password)))), password, true),
            RoleAction::Alter {
                login: false,
                password: Some(PasswordChange::Rotate)
            }
        );
        assert_eq!(
            plan_role(Some(&role(false, Some(make_verifier(password)))), password, false),
            RoleAction::Alter {
                login: true,
                password: None
            }
        );
        assert_eq!(
            plan_role(Some(&role(true, Some(make_verifier("other one")))), password, false),
            RoleAction::Alter {
                login: false,
                password: Some(PasswordChange::Differs)
            }
        );
        assert_eq!(
            plan_role(
                Some(&role(true, Some("md5a3556571e93b0d20722ba62be61e8c2d".to_owned()))),
                password,
                false
            ),
            RoleAction::Alter {
                login: false,
                password: Some(PasswordChange::Md5)
            }
        );
        assert_eq!(
            plan_role(Some(&role(true, None)), password, false),
            RoleAction::Alter {
                login: false,
                password: Some(PasswordChange::Missing)
            }
        );
    }

    #[test]
    fn database_decisions() {
        let state = |owner: &str, encoding: &str| DatabaseState {
            owner: owner.to_owned(),
            encoding: encoding.to_owned(),
        };
        assert_eq!(
            plan_database(None, Some("UTF8"), "pretix", "pretix").ok(),
            Some(DatabaseAction::Create)
        );
        assert!(error_text(plan_database(None, Some("LATIN1"), "pretix", "pretix")).contains("template0"));
        assert_eq!(
            plan_database(Some(&state("pretix", "UTF8")), None, "pretix", "pretix").ok(),
            Some(DatabaseAction::Nothing)
        );
        assert_eq!(
            plan_database(Some(&state("postgres", "UTF8")), None, "pretix", "pretix").ok(),
            Some(DatabaseAction::FixOwner {
                from: "postgres".to_owned()
            })
        );
        let text = error_text(plan_database(
            Some(&state("pretix", "LATIN1")),
            None,
            "pretix",
            "pretix",
        ));
        assert!(
            text.starts_with("database pretix has encoding LATIN1, pretix needs UTF8"),
            "{text}"
        );
    }

    #[test]
    fn listen_decisions() {
        let required = ["localhost".to_owned(), "172.17.0.1".to_owned()];
        let conf = Path::new("/etc/postgresql/15/main/postgresql.conf");
        let text = "#listen_addresses = 'localhost'\n";
        let decision = plan_listen(text, conf, &required, "localhost", "default", None).ok();
        let decision = decision.as_ref();
        assert!(decision.is_some_and(|d| {
            d.restart_needed
                && d.file
                    .as_ref()
                    .is_some_and(|f| f.new_value.as_deref() == Some("localhost,172.17.0.1"))
        }));
        let done = plan_listen(
            "listen_addresses = 'localhost,172.17.0.1'\n",
            conf,
            &required,
            "localhost,172.17.0.1",
            "configuration file",
            None,
        );
        assert!(done.is_ok_and(|d| !d.restart_needed && d.file.is_some_and(|f| f.new_text.is_none())));
        let conf_d = FileSetting {
            file: PathBuf::from("/etc/postgresql/15/main/conf.d/net.conf"),
            line: 3,
            value: "*".to_owned(),
        };
        let covered = plan_listen(text, conf, &required, "*", "configuration file", Some(&conf_d));
        assert!(covered.is_ok_and(|d| d.file.is_none() && !d.restart_needed));
        let auto = FileSetting {
            file: PathBuf::from("/var/lib/postgresql/15/main/postgresql.auto.conf"),
            line: 3,
            value: "localhost".to_owned(),
        };
        let refused = error_text(plan_listen(
            text,
            conf,
            &required,
            "localhost",
            "configuration file",
            Some(&auto),
        ));
        assert!(
            refused.contains("ALTER SYSTEM SET listen_addresses = 'localhost,172.17.0.1'"),
            "{refused}"
        );
        let command_line = plan_listen(text, conf, &required, "127.0.0.1", "command line", None);
        assert!(command_line.is_ok_and(|d| !d.restart_needed && d.warnings.len() == 1));
    }

    #[test]
    fn section_validation_names_the_field() {
        let mut section = Database::default();
        assert!(Desired::from_section(&section).is_ok());
        section.docker_host = "docker0".to_owned();
        assert!(error_text(Desired::from_section(&section)).starts_with("database.docker_host: "));
        section.docker_host = "10.0.0.1".to_owned();
        assert!(
            error_text(Desired::from_section(&section))
                .starts_with("database.docker_subnet: 172.17.0.0/16 does not contain")
        );
        section.docker_subnet = "0.0.0.0/0".to_owned();
        assert!(error_text(Desired::from_section(&section)).contains("is wider than /8"));
        section.docker_subnet = "10.0.0.0/8".to_owned();
        assert!(Desired::from_section(&section).is_ok(), "/8 is the widest accepted");
        let mut section = Database {
            user: "postgres".to_owned(),
            ..Database::default()
        };
        assert!(
            error_text(Desired::from_section(&section)).starts_with("database.user: postgres is the superuser role")
        );
        section.user = "pretix".to_owned();
        section.service = "postgresql; rm -rf /".to_owned();
        assert!(error_text(Desired::from_section(&section)).starts_with("database.service: "));
    }
}
