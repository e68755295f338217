//! The `redis` section, validated into what both verbs work with. Pure: nothing is read here.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use pretix_site::SecretRef;
use pretix_site::sections::{HostPaths, Paths, Redis, RedisSocketMode};

use crate::error::RedisSetupError;

/// The drop-in's file name: not `override.conf`, which `systemctl edit` writes and owns.
pub const DROPIN_FILE_NAME: &str = "pretix.conf";
/// Where a generated tcp-mode password is kept, under `paths.secrets_dir`.
pub const PASSWORD_FILE_NAME: &str = "redis-password";
/// The celery result-backend URL (it embeds the password), under `paths.secrets_dir`.
pub const CELERY_BACKEND_FILE_NAME: &str = "redis-celery-backend-url";
/// The celery broker URL (it embeds the password), under `paths.secrets_dir`.
pub const CELERY_BROKER_FILE_NAME: &str = "redis-celery-broker-url";
/// The group Debian's redis-server unit runs as (`Group=redis`), hence the socket's group.
pub const REDIS_GROUP: &str = "redis";
/// The longest unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Directories that hold more than Redis: mounting one into the container would hand it other
/// services' sockets (Docker's own among them, which is root on the host).
const SHARED_DIRECTORIES: &[&str] = &[
    "/run/lock",
    "/run/user",
    "/run/systemd",
    "/var/run",
    "/var/lock",
    "/var/tmp",
    "/var/lib",
    "/var/log",
    "/var/cache",
    "/var/spool",
    "/var/lib/docker",
    "/dev/shm",
    "/etc/redis",
    "/usr/lib",
    "/usr/bin",
    "/usr/sbin",
    "/usr/share",
    "/usr/local",
];

/// Trees whose every directory belongs to someone else (user sessions, systemd, D-Bus, Docker):
/// a socket directory inside one is refused too.
const SHARED_TREES: &[&str] = &[
    "/run/user",
    "/run/systemd",
    "/run/dbus",
    "/var/run/dbus",
    "/run/docker",
    "/var/run/docker",
    "/var/lib/docker",
    "/etc/pretix",
    "/var/pretix-data",
];

/// The directories redis-server may create its socket in under Debian's unit
/// (`RuntimeDirectory=redis`, `ProtectSystem=strict`, `ReadWritePaths=-/var/run/redis`).
const DEBIAN_RUNTIME_DIRECTORIES: &[&str] = &["/run/redis", "/var/run/redis"];

/// What the document asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub config_file: PathBuf,
    pub socket: PathBuf,
    /// The socket's directory: the container mounts it at the same path.
    pub socket_dir: PathBuf,
    pub mode: RedisSocketMode,
    pub service: String,
    pub dropin_dir: PathBuf,
    pub dropin_file: PathBuf,
    pub restart: bool,
    pub restart_timeout_seconds: u32,
    pub tcp: Option<TcpDesired>,
    /// Things worth telling that do not stop the run.
    pub warnings: Vec<String>,
}

/// tcp mode: where Redis listens for the container, and the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpDesired {
    pub bind: IpAddr,
    pub port: u16,
    pub password: SecretRef,
    /// Whether the document named the password file (otherwise it is generated on first use).
    pub password_given: bool,
    pub celery_backend_file: PathBuf,
    pub celery_broker_file: PathBuf,
}

impl Desired {
    pub fn restart_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.restart_timeout_seconds))
    }

    /// `unixsocketperm` for the mode: 777 only in the guide's `world` mode.
    pub fn socket_perm(&self) -> u32 {
        socket_perm(self.mode)
    }
}

/// `unixsocketperm` for a mode.
pub fn socket_perm(mode: RedisSocketMode) -> u32 {
    match mode {
        RedisSocketMode::World => 0o777,
        RedisSocketMode::Group | RedisSocketMode::Tcp => 0o770,
    }
}

/// The mode's name as the document spells it.
pub fn mode_name(mode: RedisSocketMode) -> &'static str {
    match mode {
        RedisSocketMode::World => "world",
        RedisSocketMode::Group => "group",
        RedisSocketMode::Tcp => "tcp",
    }
}

/// Checks the section. Every problem is an input error naming the field and the fix.
pub fn resolve(section: &Redis, paths: &Paths) -> Result<Desired, RedisSetupError> {
    let mut warnings = Vec::new();
    check_socket_path(&section.socket)?;
    let socket_dir = section
        .socket
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| RedisSetupError::input("redis.socket", "give a file name in a directory"))?;
    check_socket_dir(&socket_dir)?;
    if !DEBIAN_RUNTIME_DIRECTORIES
        .iter()
        .any(|dir| socket_dir == Path::new(dir))
    {
        warnings.push(format!(
            "redis.socket: {} is not in /var/run/redis: Debian's redis-server unit may write only there \
             (ProtectSystem=strict) and RuntimeDirectoryPreserve keeps only that directory; make sure your unit \
             allows and keeps {}",
            section.socket.display(),
            socket_dir.display()
        ));
    }
    section.validate_host_paths()?;
    pretix_site::service::validate_unit_name(&section.service, "redis.service", "redis-server")?;
    if section.restart_timeout_seconds == 0 {
        return Err(RedisSetupError::input(
            "redis.restart_timeout_seconds",
            "must be at least 1: the seconds to wait for the socket to answer after a restart (default 30)",
        ));
    }
    let tcp = match section.socket_mode {
        RedisSocketMode::Tcp => Some(resolve_tcp(section, paths)?),
        RedisSocketMode::World | RedisSocketMode::Group => {
            if section.password.is_some() {
                warnings.push(format!(
                    "redis.password is only used in socket_mode tcp; socket_mode is {}, so it is ignored",
                    mode_name(section.socket_mode)
                ));
            }
            None
        }
    };
    Ok(Desired {
        config_file: section.config_file.clone(),
        socket: section.socket.clone(),
        socket_dir,
        mode: section.socket_mode,
        service: section.service.clone(),
        dropin_file: section.dropin_dir.join(DROPIN_FILE_NAME),
        dropin_dir: section.dropin_dir.clone(),
        restart: section.restart,
        restart_timeout_seconds: section.restart_timeout_seconds,
        tcp,
        warnings,
    })
}

fn resolve_tcp(section: &Redis, paths: &Paths) -> Result<TcpDesired, RedisSetupError> {
    let bind: IpAddr = section.tcp_bind.trim().parse().map_err(|_| {
        RedisSetupError::input(
            "redis.tcp_bind",
            format!(
                "`{}` is not an IP address: give the docker host address, e.g. 172.17.0.1 (see `ip addr show docker0`)",
                section.tcp_bind
            ),
        )
    })?;
    if bind.is_unspecified() {
        return Err(RedisSetupError::input(
            "redis.tcp_bind",
            format!("{bind} would make Redis listen on every interface: give the docker host address, e.g. 172.17.0.1"),
        ));
    }
    if !paths.secrets_dir.is_absolute() {
        return Err(RedisSetupError::input(
            "paths.secrets_dir",
            "give an absolute path, e.g. /etc/pretix-toolkit/secrets",
        ));
    }
    let (password, password_given) = match &section.password {
        Some(reference) => {
            if !reference.secret_file.is_absolute() {
                return Err(RedisSetupError::input(
                    "redis.password",
                    format!(
                        "secret_file {} is relative: give an absolute path to a root-only file",
                        reference.secret_file.display()
                    ),
                ));
            }
            (reference.clone(), true)
        }
        None => (SecretRef::new(paths.secrets_dir.join(PASSWORD_FILE_NAME)), false),
    };
    Ok(TcpDesired {
        bind,
        port: section.tcp_port,
        password,
        password_given,
        celery_backend_file: paths.secrets_dir.join(CELERY_BACKEND_FILE_NAME),
        celery_broker_file: paths.secrets_dir.join(CELERY_BROKER_FILE_NAME),
    })
}

/// The socket path goes into redis.conf, into `redis+socket://` URLs and into a docker volume
/// (`dir:dir`), so only characters that need no quoting in any of them are taken.
pub fn check_socket_path(socket: &Path) -> Result<(), RedisSetupError> {
    let field = "redis.socket";
    let Some(text) = socket.to_str() else {
        return Err(RedisSetupError::input(
            field,
            "the path is not UTF-8: use a plain ASCII path",
        ));
    };
    if text.is_empty() {
        return Err(RedisSetupError::input(
            field,
            "is empty: give the socket's absolute path, e.g. /var/run/redis/redis.sock",
        ));
    }
    if let Some(bad) = text
        .chars()
        .find(|character| character.is_whitespace() || character.is_control())
    {
        return Err(RedisSetupError::input(
            field,
            format!(
                "{text:?} holds a space or control character ({bad:?}): use only letters, digits, '/', '.', '_' and '-'"
            ),
        ));
    }
    if !socket.is_absolute() {
        return Err(RedisSetupError::input(
            field,
            format!("{text} is relative: give an absolute path, e.g. /var/run/redis/redis.sock"),
        ));
    }
    if let Some(bad) = text
        .chars()
        .find(|character| !(character.is_ascii_alphanumeric() || matches!(character, '/' | '.' | '_' | '-')))
    {
        return Err(RedisSetupError::input(
            field,
            format!(
                "{text} holds {bad:?}, which a redis+socket:// URL or a docker volume would misread: use only \
                 letters, digits, '/', '.', '_' and '-'"
            ),
        ));
    }
    if text.ends_with('/') || text.contains("//") {
        return Err(RedisSetupError::input(
            field,
            format!("{text} must name the socket file, e.g. /var/run/redis/redis.sock"),
        ));
    }
    if socket
        .components()
        .any(|component| matches!(component, Component::ParentDir | Component::CurDir))
        || text.split('/').any(|part| part == "." || part == "..")
    {
        return Err(RedisSetupError::input(
            field,
            format!("{text} holds '.' or '..': give the path without them, e.g. /var/run/redis/redis.sock"),
        ));
    }
    if text.len() > MAX_SOCKET_PATH_BYTES {
        return Err(RedisSetupError::input(
            field,
            format!(
                "{text} is {} bytes, unix sockets take at most {MAX_SOCKET_PATH_BYTES}: use a shorter path",
                text.len()
            ),
        ));
    }
    Ok(())
}

/// The socket's directory is mounted into the container: it must be Redis's own.
fn check_socket_dir(dir: &Path) -> Result<(), RedisSetupError> {
    let depth = dir
        .components()
        .filter(|component| matches!(component, Component::Normal(_)))
        .count();
    let shared = SHARED_DIRECTORIES.iter().any(|shared| dir == Path::new(shared))
        || SHARED_TREES.iter().any(|tree| dir.starts_with(tree));
    if depth < 2 || shared {
        return Err(RedisSetupError::input(
            "redis.socket",
            format!(
                "the socket's directory {} is mounted into the pretix container, and it is a shared system \
                 directory: put the socket in a directory of its own, e.g. /var/run/redis/redis.sock",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// A tcp-mode password goes into redis.conf unquoted and into URLs percent-encoded: refuse what
/// redis.conf would split or unquote.
pub fn check_password_text(password: &str, field: &str) -> Result<(), RedisSetupError> {
    if password
        .chars()
        .any(|character| character.is_whitespace() || character.is_control() || matches!(character, '"' | '\'' | '\\'))
    {
        return Err(RedisSetupError::input(
            field,
            "the password holds a space, quote or backslash, which redis.conf would split or unquote: use letters, \
             digits and punctuation other than quotes and backslash (or remove the reference and let pretix-redis \
             generate one)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> Redis {
        Redis::default()
    }

    fn socket_error(path: &str) -> String {
        let mut redis = section();
        redis.socket = PathBuf::from(path);
        match resolve(&redis, &Paths::default()) {
            Err(RedisSetupError::Input { field, message }) => {
                assert_eq!(field, "redis.socket");
                message
            }
            other => panic!("{path}: expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn the_guides_defaults_resolve_without_warnings() {
        let desired = resolve(&section(), &Paths::default()).expect("defaults");
        assert_eq!(desired.socket_dir, PathBuf::from("/var/run/redis"));
        assert_eq!(
            desired.dropin_file,
            PathBuf::from("/etc/systemd/system/redis-server.service.d/pretix.conf")
        );
        assert_eq!(desired.socket_perm(), 0o777);
        assert!(desired.tcp.is_none());
        assert!(desired.warnings.is_empty(), "{:?}", desired.warnings);
    }

    #[test]
    fn bad_socket_paths_are_refused_with_the_fix() {
        assert!(socket_error("var/run/redis/redis.sock").contains("relative"));
        assert!(socket_error("/var/run/redis/my redis.sock").contains("space or control"));
        assert!(socket_error("/var/run/redis/re\ndis.sock").contains("space or control"));
        assert!(socket_error("/var/run/redis/re\u{7}dis.sock").contains("space or control"));
        assert!(socket_error("/var/run/redis/../redis.sock").contains("'..'"));
        assert!(socket_error("/var/run/redis/./redis.sock").contains("'..'"));
        assert!(socket_error("/var/run/redis/").contains("name the socket file"));
        assert!(socket_error("/var/run/redis//redis.sock").contains("name the socket file"));
        assert!(socket_error("/var/run/redis/redis.sock?db=1").contains("'?'"));
        assert!(socket_error("/var/run/redis:x/redis.sock").contains("':'"));
        assert!(socket_error("").contains("is empty"));
        assert!(socket_error(&format!("/var/run/redis/{}.sock", "x".repeat(100))).contains("at most 107"));
    }

    #[test]
    fn shared_directories_are_not_mounted_into_the_container() {
        for path in [
            "/redis.sock",
            "/run/redis.sock",
            "/var/run/redis.sock",
            "/tmp/redis.sock",
            "/run/dbus/redis.sock",
            "/run/user/1000/redis.sock",
            "/etc/pretix/redis.sock",
        ] {
            assert!(socket_error(path).contains("shared system directory"), "{path}");
        }
    }

    #[test]
    fn a_socket_outside_debians_runtime_directory_is_a_warning() {
        let mut redis = section();
        redis.socket = PathBuf::from("/srv/redis-pretix/redis.sock");
        let desired = resolve(&redis, &Paths::default()).expect("valid");
        assert!(
            desired.warnings[0].contains("not in /var/run/redis"),
            "{:?}",
            desired.warnings
        );
        redis.socket = PathBuf::from("/run/redis/redis-server.sock");
        assert!(resolve(&redis, &Paths::default()).expect("valid").warnings.is_empty());
    }

    #[test]
    fn other_fields_are_checked() {
        let mut redis = section();
        redis.config_file = PathBuf::from("redis.conf");
        assert!(
            matches!(resolve(&redis, &Paths::default()), Err(RedisSetupError::Input { field, .. }) if field == "redis.config_file")
        );
        let mut redis = section();
        redis.service = "--now".to_owned();
        assert!(
            matches!(resolve(&redis, &Paths::default()), Err(RedisSetupError::Input { field, .. }) if field == "redis.service")
        );
        let mut redis = section();
        redis.restart_timeout_seconds = 0;
        assert!(
            matches!(resolve(&redis, &Paths::default()), Err(RedisSetupError::Input { field, .. }) if field == "redis.restart_timeout_seconds")
        );
        let mut redis = section();
        redis.socket_mode = RedisSocketMode::Tcp;
        redis.tcp_bind = "docker0".to_owned();
        assert!(
            matches!(resolve(&redis, &Paths::default()), Err(RedisSetupError::Input { field, .. }) if field == "redis.tcp_bind")
        );
        redis.tcp_bind = "0.0.0.0".to_owned();
        assert!(
            matches!(resolve(&redis, &Paths::default()), Err(RedisSetupError::Input { field, .. }) if field == "redis.tcp_bind")
        );
    }

    #[test]
    fn tcp_mode_generates_its_password_under_the_secrets_dir() {
        let mut redis = section();
        redis.socket_mode = RedisSocketMode::Tcp;
        let tcp = resolve(&redis, &Paths::default())
            .expect("tcp")
            .tcp
            .expect("tcp settings");
        assert_eq!(
            tcp.password.secret_file,
            PathBuf::from("/etc/pretix-toolkit/secrets/redis-password")
        );
        assert!(!tcp.password_given);
        assert_eq!(tcp.bind.to_string(), "172.17.0.1");
    }

    #[test]
    fn passwords_redis_conf_would_misread_are_refused() {
        assert!(check_password_text("abc def12345", "redis.password").is_err());
        assert!(check_password_text("abc\"def12345", "redis.password").is_err());
        assert!(check_password_text("abc\\def12345", "redis.password").is_err());
        assert!(check_password_text("Abc#d%f@1:2/3?", "redis.password").is_ok());
    }
}
