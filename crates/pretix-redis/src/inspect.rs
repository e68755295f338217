//! Reading what is on the host: redis.conf, the redis group, the tcp-mode password.

use std::path::Path;

use pretix_site::fs::Root;
use pretix_site::{Context, ToolError};

use crate::error::RedisSetupError;
use crate::settings::{self, REDIS_GROUP, TcpDesired};

/// redis.conf as it is.
pub type CurrentConf = pretix_site::fs::HostFile;

/// Reads redis.conf the shared way (`fs::read_host_file`: one descriptor, no link followed, a
/// regular file with one link: /etc/redis belongs to the redis account, which must not swap in a
/// link or a FIFO). Every link is refused (`LinkPolicy::Refuse`): the atomic rewrite would
/// replace it. Each failure says what to do.
pub fn read_conf(root: &Root, path: &Path) -> Result<CurrentConf, RedisSetupError> {
    use pretix_site::fs::{HostFileError, LinkPolicy, read_host_file};
    read_host_file(root, path, LinkPolicy::Refuse).map_err(|error| {
        let message = match &error {
            HostFileError::Missing => "does not exist: install redis-server (apt-get install redis-server), or set \
                                       redis.config_file to your redis.conf"
                .to_owned(),
            HostFileError::Link { .. } | HostFileError::UntrustedLink { .. } => format!(
                "{}: set redis.config_file to the real file, so the rewrite does not replace the link",
                error.to_string().replace("is a symbolic link", "is a symlink")
            ),
            HostFileError::PermissionDenied(_) => format!("{error}: run pretix-redis as root"),
            HostFileError::Unreadable(_) => error.to_string(),
            HostFileError::NotUtf8 => {
                "is not UTF-8 text: fix the file's encoding (redis.conf is plain ASCII)".to_owned()
            }
        };
        RedisSetupError::ConfigFile {
            path: path.display().to_string(),
            message,
        }
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

pub use pretix_site::secret::PasswordChoice;

/// The referenced password; else the one an earlier run generated; else a new strong one, by
/// the toolkit's one rule (`secret::choose_password`). Nothing is written here.
pub fn resolve_password(ctx: &mut Context, tcp: &TcpDesired) -> Result<PasswordChoice, ToolError> {
    let given = tcp.password_given.then_some(&tcp.password);
    let choice = pretix_site::secret::choose_password(ctx, given, &tcp.password.secret_file, false, "redis.password")?;
    if !choice.write {
        settings::check_password_text(choice.secret.expose(), "redis.password")?;
    }
    Ok(choice)
}
