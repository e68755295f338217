//! Resolving the document into what both verbs work with: the superuser route, the role's
//! password, and the two config files as they are on disk.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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

/// Where the role's password comes from this run.
#[derive(Debug, Clone)]
pub struct PasswordChoice {
    pub secret: Secret,
    pub reference: SecretRef,
    /// The secret file must be written (generated or rotated).
    pub write: bool,
    /// `rotate_password` asked for a new one.
    pub rotate: bool,
}

/// The default reference for the generated password.
pub fn default_password_ref(paths: &Paths) -> SecretRef {
    SecretRef::new(paths.secrets_dir.join(PASSWORD_FILE_NAME))
}

/// Decides the role's password: the referenced file; else the file an earlier run generated;
/// else a new strong random one. Rotation makes a new one in either file. Nothing is written.
pub fn resolve_password(ctx: &mut Context, section: &Database, paths: &Paths) -> Result<PasswordChoice, ToolError> {
    let reference = match &section.password {
        Some(reference) => reference.clone(),
        None => {
            if !paths.secrets_dir.is_absolute() {
                return Err(ToolError::input(
                    "paths.secrets_dir",
                    "give an absolute path, e.g. /etc/pretix-toolkit/secrets",
                ));
            }
            default_password_ref(paths)
        }
    };
    if section.rotate_password {
        if !reference.secret_file.is_absolute() {
            return Err(ToolError::input(
                "database.password",
                "secret_file must be an absolute path",
            ));
        }
        return Ok(PasswordChoice {
            secret: generate(ctx),
            reference,
            write: true,
            rotate: true,
        });
    }
    if section.password.is_some() {
        let secret = ctx.read_secret(&reference, "database.password")?;
        return Ok(PasswordChoice {
            secret,
            reference,
            write: false,
            rotate: false,
        });
    }
    match std::fs::symlink_metadata(ctx.root().host_path(&reference.secret_file)) {
        Ok(_) => {
            let secret = ctx.read_secret(&reference, "database.password")?;
            Ok(PasswordChoice {
                secret,
                reference,
                write: false,
                rotate: false,
            })
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(PasswordChoice {
            secret: generate(ctx),
            reference,
            write: true,
            rotate: false,
        }),
        Err(error) => Err(ToolError::input(
            "database.password",
            format!("cannot inspect {}: {error}", reference.secret_file.display()),
        )),
    }
}

fn generate(ctx: &mut Context) -> Secret {
    let secret = Secret::generate();
    ctx.register_secret(&secret);
    secret
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

/// A config file as it is on disk: its text, owner and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfFile {
    /// The path on the managed host (as the server names it).
    pub path: PathBuf,
    pub text: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// Reads one of the two config files. `field` names the document key that would fix a wrong
/// path.
///
/// The directory holding them belongs to postgres on Debian, and whoever has the postgres
/// account must not make root read or rewrite another file through a link. So the file is read
/// through `fs::open_regular` (no link followed, a regular file with one link), and a symlink at
/// the path is followed only when root owns both the link and a directory no one else can write
/// to (a configuration manager's link): the file is then edited where it really is, and the link
/// stays a link.
pub fn read_conf(root: &Root, path: &Path, field: &str) -> Result<ConfFile, ProvisionDatabaseError> {
    let fail_at = |at: &Path, message: String| ProvisionDatabaseError::File {
        path: at.display().to_string(),
        message,
    };
    let linked = root.host_path(path);
    let is_link = std::fs::symlink_metadata(&linked).is_ok_and(|metadata| metadata.file_type().is_symlink());
    let path = if is_link && !root.is_redirected() {
        trusted_link_target(&linked).map_err(|message| fail_at(&linked, message))?
    } else {
        path.to_path_buf()
    };
    let path = path.as_path();
    let host_path = root.host_path(path);
    let fail = |message: String| fail_at(&host_path, message);
    let opened = pretix_site::fs::open_regular(&host_path).map_err(|error| fail(format!("cannot read it: {error}")))?;
    let Some((mut file, metadata)) = opened else {
        return Err(fail(format!("not found: set {field} to the file the server reads")));
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|error| fail(format!("cannot read it: {error}")))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        fail(
            "is not UTF-8 text, so it cannot be edited line by line safely: convert it (iconv) and run again"
                .to_owned(),
        )
    })?;
    Ok(ConfFile {
        path: path.to_path_buf(),
        text,
        uid: metadata.uid(),
        gid: metadata.gid(),
        mode: metadata.mode() & 0o7777,
    })
}

/// Where a symlinked config file really is, when the link can be trusted: the link and its
/// directory are root's, and no one else may write to that directory.
fn trusted_link_target(link: &Path) -> Result<PathBuf, String> {
    let link_metadata = std::fs::symlink_metadata(link).map_err(|error| format!("cannot inspect it: {error}"))?;
    let directory = link.parent().unwrap_or(Path::new("/"));
    let directory_metadata =
        std::fs::metadata(directory).map_err(|error| format!("cannot inspect its directory: {error}"))?;
    let trusted = link_metadata.uid() == 0 && directory_metadata.uid() == 0 && directory_metadata.mode() & 0o022 == 0;
    if !trusted {
        return Err(format!(
            "is a symbolic link (owned by uid {}) in a directory uid {} can change (mode {:04o}): the toolkit \
             follows a link to a config file only when root owns the link and its directory; replace the link \
             with the file",
            link_metadata.uid(),
            directory_metadata.uid(),
            directory_metadata.mode() & 0o7777
        ));
    }
    std::fs::canonicalize(link).map_err(|error| format!("cannot follow it: {error}"))
}
