//! Resolving the document into what both verbs work with: the superuser route, the role's
//! password, and the two config files as they are on disk.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use pretix_site::fs::Root;
use pretix_site::sections::{Database, Paths};
use pretix_site::{Context, Secret, SecretRef, ToolError};

use crate::error::ProvisionDatabaseError;
use crate::session::{self, AdminRoute, AdminSession, CONNECT_TIMEOUT, describe_config, socket_config};

/// Where the generated password is kept, under `paths.secrets_dir`.
pub const PASSWORD_FILE_NAME: &str = "database-password";

/// Works out how to reach the superuser. Nothing is contacted yet.
pub fn admin_route(section: &Database, admin_password: Option<&Secret>) -> Result<AdminRoute, ProvisionDatabaseError> {
    let admin = &section.admin;
    if let Some(connection) = &admin.connection {
        let mut config = postgres::Config::from_str(connection).map_err(|error| {
            ProvisionDatabaseError::input(
                "database.admin.connection",
                format!("not a valid libpq connection string: {error}"),
            )
        })?;
        if config.get_password().is_some() {
            return Err(ProvisionDatabaseError::input(
                "database.admin.connection",
                "the connection string holds a password: remove it and put the password in a root-only file referenced \
                 by database.admin.password",
            ));
        }
        if let Some(password) = admin_password {
            config.password(password.expose());
        }
        if config.get_application_name().is_none() {
            config.application_name("pretix-db");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let target = describe_config(&config);
        return Ok(AdminRoute::InProcess {
            config: Box::new(config),
            target,
        });
    }
    let target = format!(
        "at {} port {} as {}",
        admin.socket_dir.display(),
        admin.port,
        admin.user
    );
    let in_process = |password: Option<&Secret>| {
        let mut config = socket_config(&admin.socket_dir, admin.port, &admin.user);
        if let Some(password) = password {
            config.password(password.expose());
        }
        AdminRoute::InProcess {
            config: Box::new(config),
            target: target.clone(),
        }
    };
    // A password needs no particular OS identity; and a process that is not root cannot
    // switch: it connects as itself (peer authentication then wants a role of its name).
    if admin_password.is_some() || !pretix_site::users::is_root() {
        return Ok(in_process(admin_password));
    }
    // The system user of this machine, also under --root: the server runs here.
    let entry = pretix_site::users::lookup_user(&Root::system(), &admin.system_user)
        .map_err(|error| ProvisionDatabaseError::Session {
            target: target.clone(),
            reason: format!("cannot read /etc/passwd: {error}"),
        })?
        .ok_or_else(|| ProvisionDatabaseError::Session {
            target: target.clone(),
            reason: format!(
                "there is no system user {} for peer authentication: is postgresql installed here? set \
                 database.admin.system_user, or database.admin.connection",
                admin.system_user
            ),
        })?;
    if entry.uid == 0 {
        return Ok(in_process(None));
    }
    Ok(AdminRoute::SwitchUser {
        socket_dir: admin.socket_dir.clone(),
        port: admin.port,
        user: admin.user.clone(),
        uid: entry.uid,
        gid: entry.gid,
        system_user: admin.system_user.clone(),
        target,
    })
}

/// Opens the superuser session, logging how.
pub fn open_session(
    ctx: &Context,
    route: &AdminRoute,
    service: &str,
) -> Result<Box<dyn AdminSession>, ProvisionDatabaseError> {
    ctx.debug(&format!("connecting to postgresql {}", route.target()));
    let mut log = |line: &str| ctx.debug(line);
    session::open(route, service, &mut log)
}

/// Opens the session again after a restart, waiting for the server to accept connections.
pub fn reopen_after_restart(
    ctx: &Context,
    route: &AdminRoute,
    service: &str,
    wait: Duration,
) -> Result<Box<dyn AdminSession>, ProvisionDatabaseError> {
    let deadline = Instant::now() + wait;
    ctx.info(&format!(
        "waiting up to {}s for postgresql {} to accept connections after the restart",
        wait.as_secs(),
        route.target()
    ));
    loop {
        match open_session(ctx, route, service) {
            Ok(session) => return Ok(session),
            Err(error) if Instant::now() < deadline => {
                ctx.debug(&format!("waiting for postgresql to come back: {error}"));
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Reads the superuser's password, when the document names one.
pub fn admin_password(ctx: &mut Context, section: &Database) -> Result<Option<Secret>, ToolError> {
    section
        .admin
        .password
        .as_ref()
        .map(|reference| ctx.read_secret(reference, "database.admin.password"))
        .transpose()
}

pub use pretix_site::secret::PasswordChoice;

/// The default reference for the generated password.
pub fn default_password_ref(paths: &Paths) -> SecretRef {
    SecretRef::new(paths.secrets_dir.join(PASSWORD_FILE_NAME))
}

/// Decides the role's password by the toolkit's one rule (`secret::choose_password`): the
/// referenced file; else the file an earlier run generated; else a new strong random one;
/// `rotate_password` makes a new one in either file. Nothing is written.
pub fn resolve_password(ctx: &mut Context, section: &Database, paths: &Paths) -> Result<PasswordChoice, ToolError> {
    pretix_site::secret::choose_password(
        ctx,
        section.password.as_ref(),
        &default_password_ref(paths).secret_file,
        section.rotate_password,
        "database.password",
    )
}

/// The password as the secrets file holds it, if it can be had without writing anything
/// (for the read-only `verify`).
pub fn existing_password(
    ctx: &mut Context,
    section: &Database,
    paths: &Paths,
) -> Result<(Secret, SecretRef), ToolError> {
    let reference = section.password.clone().unwrap_or_else(|| default_password_ref(paths));
    let secret = ctx.read_secret(&reference, "database.password")?;
    Ok((secret, reference))
}

/// A config file as it is on disk: where it really is, its text, owner and mode.
pub type ConfFile = pretix_site::fs::HostFile;

/// Reads one of the two config files. `field` names the document key that would fix a wrong
/// path.
///
/// The directory holding them belongs to postgres on Debian, and whoever has the postgres
/// account must not make root read or rewrite another file through a link. So the file is read
/// the shared way (`fs::read_host_file`: one descriptor, no link followed, a regular file with
/// one link), and a symlink at the path is followed only when root owns both the link and a
/// directory no one else can write to (`LinkPolicy::FollowRootOwned`): the file is then edited
/// where it really is, and the link stays a link.
pub fn read_conf(root: &Root, path: &Path, field: &str) -> Result<ConfFile, ProvisionDatabaseError> {
    use pretix_site::fs::{HostFileError, LinkPolicy, read_host_file};
    read_host_file(root, path, LinkPolicy::FollowRootOwned).map_err(|error| {
        let message = match &error {
            HostFileError::Missing => format!("not found: set {field} to the file the server reads"),
            HostFileError::UntrustedLink { .. } => format!("{error}; replace the link with the file"),
            HostFileError::Link { .. } => {
                format!("{error}: under --root no link is followed; put the file itself there")
            }
            HostFileError::PermissionDenied(io) | HostFileError::Unreadable(io) => format!("cannot read it: {io}"),
            HostFileError::NotUtf8 => {
                "is not UTF-8 text, so it cannot be edited line by line safely: convert it (iconv) and run again"
                    .to_owned()
            }
        };
        ProvisionDatabaseError::File {
            path: root.host_path(path).display().to_string(),
            message,
        }
    })
}
