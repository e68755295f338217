//! Reading what is on the host: redis.conf, the redis group, the tcp-mode password.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use pretix_site::fs::Root;
use pretix_site::{Context, Secret, SecretRef, ToolError};

use crate::error::RedisSetupError;
use crate::settings::{self, REDIS_GROUP, TcpDesired};

/// redis.conf as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentConf {
    pub text: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// Reads redis.conf. A missing, unreadable, non-regular or non-UTF-8 file is an error that says
/// what to do; a symlink is refused because the atomic rewrite would replace the link.
pub fn read_conf(root: &Root, path: &Path) -> Result<CurrentConf, RedisSetupError> {
    let shown = path.display().to_string();
    let error = |message: String| RedisSetupError::ConfigFile {
        path: shown.clone(),
        message,
    };
    let host_path = root.host_path(path);
    let metadata = match std::fs::symlink_metadata(&host_path) {
        Ok(metadata) => metadata,
        Err(failure) if failure.kind() == io::ErrorKind::NotFound => {
            return Err(error(
                "does not exist: install redis-server (apt-get install redis-server), or set redis.config_file to \
                 your redis.conf"
                    .to_owned(),
            ));
        }
        Err(failure) => return Err(error(format!("cannot inspect it: {failure}: run pretix-redis as root"))),
    };
    if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(&host_path)
            .map(|target| target.display().to_string())
            .unwrap_or_else(|_| "its target".to_owned());
        return Err(error(format!(
            "is a symlink (to {target}): set redis.config_file to the real file, so the rewrite does not replace \
             the link"
        )));
    }
    if !metadata.is_file() {
        return Err(error(
            "is not a regular file: set redis.config_file to redis-server's config file".to_owned(),
        ));
    }
    // Read through one descriptor opened without following a link: /etc/redis belongs to the
    // redis account, which must not swap in a link or a FIFO between the check above and the read.
    let opened = pretix_site::fs::open_regular(&host_path).map_err(|failure| match failure.kind() {
        io::ErrorKind::PermissionDenied => {
            error("cannot be read (permission denied): run pretix-redis as root".to_owned())
        }
        _ => error(format!("cannot be read: {failure}")),
    })?;
    let Some((mut file, metadata)) = opened else {
        return Err(error("disappeared while it was being read: run again".to_owned()));
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes).map_err(|failure| error(format!("cannot be read: {failure}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| error("is not UTF-8 text: fix the file's encoding (redis.conf is plain ASCII)".to_owned()))?;
    Ok(CurrentConf {
        text,
        uid: metadata.uid(),
        gid: metadata.gid(),
        mode: metadata.mode() & 0o7777,
    })
}

/// The gid of the group redis-server runs as, which owns the socket.
pub fn redis_gid(root: &Root) -> Result<u32, RedisSetupError> {
    match pretix_site::users::lookup_group(root, REDIS_GROUP) {
        Ok(Some(gid)) => Ok(gid),
        Ok(None) => Err(RedisSetupError::Group(format!(
            "socket_mode group needs the group redis-server runs as (`{REDIS_GROUP}` on Debian), and /etc/group has \
             none: install Debian's redis-server package, or use socket_mode world or tcp"
        ))),
        Err(error) => Err(RedisSetupError::Group(format!("cannot read /etc/group: {error}"))),
    }
}

/// The tcp-mode password for this run.
#[derive(Debug, Clone)]
pub struct PasswordChoice {
    pub secret: Secret,
    pub reference: SecretRef,
    /// The secret file must be written (a new password was generated).
    pub generate: bool,
}

/// The referenced password; else the one an earlier run generated; else a new strong one.
/// Nothing is written here.
pub fn resolve_password(ctx: &mut Context, tcp: &TcpDesired) -> Result<PasswordChoice, ToolError> {
    let reference = tcp.password.clone();
    let exists = match std::fs::symlink_metadata(ctx.root().host_path(&reference.secret_file)) {
        Ok(_) => true,
        Err(error) if error.kind() == io::ErrorKind::NotFound => false,
        Err(error) => {
            return Err(ToolError::input(
                "redis.password",
                format!("cannot inspect {}: {error}", reference.secret_file.display()),
            ));
        }
    };
    if tcp.password_given || exists {
        let secret = ctx.read_secret(&reference, "redis.password")?;
        settings::check_password_text(secret.expose(), "redis.password")?;
        return Ok(PasswordChoice {
            secret,
            reference,
            generate: false,
        });
    }
    let secret = Secret::generate();
    ctx.register_secret(&secret);
    Ok(PasswordChoice {
        secret,
        reference,
        generate: true,
    })
}
