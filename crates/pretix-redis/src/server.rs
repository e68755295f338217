//! The one adapter that talks to redis-server: PING, the `databases` setting, and the socket
//! file's owner and mode.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pretix_site::Secret;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

/// How long one connection attempt or one reply may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause between attempts while waiting for a restarted server.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Where redis-server is reached, and with which password.
#[derive(Clone)]
pub struct Target {
    address: Address,
    password: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    /// The socket as this machine sees it (mapped through `--root`), and as the host names it.
    Socket {
        path: PathBuf,
        shown: PathBuf,
    },
    Tcp {
        host: IpAddr,
        port: u16,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.address {
            Address::Socket { shown, .. } => write!(formatter, "{}", shown.display()),
            Address::Tcp {
                host: IpAddr::V6(host),
                port,
            } => write!(formatter, "[{host}]:{port}"),
            Address::Tcp { host, port } => write!(formatter, "{host}:{port}"),
        }
    }
}

impl Target {
    /// The unix socket at `path` (the path to open) which the host calls `shown`.
    pub fn socket(path: PathBuf, shown: &Path, password: Option<Secret>) -> Self {
        Target {
            address: Address::Socket {
                path,
                shown: shown.to_path_buf(),
            },
            password,
        }
    }

    pub fn tcp(host: IpAddr, port: u16, password: Option<Secret>) -> Self {
        Target {
            address: Address::Tcp { host, port },
            password,
        }
    }

    fn connection_info(&self) -> Result<ConnectionInfo, ServerError> {
        let addr = match &self.address {
            Address::Socket { path, .. } => ConnectionAddr::Unix(path.clone()),
            Address::Tcp { host, port } => ConnectionAddr::Tcp(host.to_string(), *port),
        };
        let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(password) = &self.password {
            settings = settings.set_password(password.expose());
        }
        Ok(addr
            .into_connection_info()
            .map_err(|error| ServerError::classify(&error))?
            .set_redis_settings(settings))
    }

    fn connect(&self, timeout: Duration) -> Result<redis::Connection, ServerError> {
        if let Address::Socket { path, .. } = &self.address {
            socket_preflight(path)?;
        }
        let client = redis::Client::open(self.connection_info()?).map_err(|error| ServerError::classify(&error))?;
        let connection = client
            .get_connection_with_timeout(timeout)
            .map_err(|error| ServerError::classify(&error))?;
        connection
            .set_read_timeout(Some(timeout))
            .and_then(|()| connection.set_write_timeout(Some(timeout)))
            .map_err(|error| ServerError::classify(&error))?;
        Ok(connection)
    }

    /// Connects and sends PING; the server must answer PONG.
    pub fn ping(&self) -> Result<(), ServerError> {
        self.ping_within(CONNECT_TIMEOUT)
    }

    fn ping_within(&self, timeout: Duration) -> Result<(), ServerError> {
        let mut connection = self.connect(timeout)?;
        let reply: String = redis::cmd("PING")
            .query(&mut connection)
            .map_err(|error| ServerError::classify(&error))?;
        if reply != "PONG" {
            return Err(ServerError::Other(format!("PING answered {reply:?} instead of PONG")));
        }
        Ok(())
    }

    /// PINGs until the server answers or `timeout` has passed. Returns how long it took.
    pub fn wait_until_answering(&self, timeout: Duration) -> Result<Duration, ServerError> {
        let start = Instant::now();
        loop {
            // One attempt never outlasts the time that is left (nor CONNECT_TIMEOUT).
            let left = timeout
                .saturating_sub(start.elapsed())
                .clamp(RETRY_PAUSE, CONNECT_TIMEOUT);
            match self.ping_within(left) {
                Ok(()) => return Ok(start.elapsed()),
                // A refused password or a wrong socket file does not heal by waiting.
                Err(
                    error @ (ServerError::AuthenticationFailed
                    | ServerError::PasswordRequired
                    | ServerError::NotASocket),
                ) => {
                    return Err(error);
                }
                Err(error) if start.elapsed() + RETRY_PAUSE >= timeout => return Err(error),
                Err(_) => std::thread::sleep(RETRY_PAUSE),
            }
        }
    }

    /// The server's `databases` setting; when `CONFIG` is renamed or refused, whether `SELECT 2`
    /// works, which is all pretix needs.
    pub fn databases(&self) -> Result<Databases, ServerError> {
        let mut connection = self.connect(CONNECT_TIMEOUT)?;
        let reply: redis::RedisResult<Vec<String>> =
            redis::cmd("CONFIG").arg("GET").arg("databases").query(&mut connection);
        if let Ok(pair) = reply
            && let [_, value] = pair.as_slice()
            && let Ok(count) = value.parse::<u32>()
        {
            return Ok(Databases::Count(count));
        }
        let mut connection = self.connect(CONNECT_TIMEOUT)?;
        match redis::cmd("SELECT").arg(2).query::<String>(&mut connection) {
            Ok(_) => Ok(Databases::AtLeastThree),
            Err(error) if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
                Ok(Databases::FewerThanThree)
            }
            Err(error) => Err(ServerError::classify(&error)),
        }
    }
}

/// What the server says about its databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Databases {
    Count(u32),
    /// `CONFIG` is not available, but `SELECT 2` works.
    AtLeastThree,
    /// `CONFIG` is not available, and `SELECT 2` is refused.
    FewerThanThree,
}

impl Databases {
    pub fn enough(self) -> bool {
        match self {
            Databases::Count(count) => count >= crate::conf::PRETIX_DATABASES,
            Databases::AtLeastThree => true,
            Databases::FewerThanThree => false,
        }
    }
}

impl fmt::Display for Databases {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Databases::Count(count) => write!(formatter, "databases {count}"),
            Databases::AtLeastThree => formatter.write_str("SELECT 2 works (CONFIG is not available)"),
            Databases::FewerThanThree => formatter.write_str("SELECT 2 is refused (CONFIG is not available)"),
        }
    }
}

/// Why the server did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerError {
    NoSocket,
    NotASocket,
    PermissionDenied,
    Refused,
    TimedOut,
    AuthenticationFailed,
    PasswordRequired,
    Other(String),
}

impl ServerError {
    fn classify(error: &redis::RedisError) -> ServerError {
        let text = error.to_string();
        if error.kind() == redis::ErrorKind::AuthenticationFailed
            || text.contains("WRONGPASS")
            || text.contains("invalid password")
            || text.contains("invalid username-password")
        {
            return ServerError::AuthenticationFailed;
        }
        if text.contains("NOAUTH") {
            return ServerError::PasswordRequired;
        }
        if error.is_timeout() {
            return ServerError::TimedOut;
        }
        if error.is_connection_refusal() {
            return ServerError::Refused;
        }
        if text.contains("Permission denied") {
            return ServerError::PermissionDenied;
        }
        ServerError::Other(text)
    }

    /// What to do about it.
    pub fn fix(&self, service: &str) -> String {
        match self {
            ServerError::NoSocket | ServerError::Refused | ServerError::TimedOut | ServerError::Other(_) => {
                format!("is it running with this redis.conf? (systemctl status {service}; journalctl -u {service})")
            }
            ServerError::NotASocket => "move the file away and restart redis-server".to_owned(),
            ServerError::PermissionDenied => {
                "this process may not open the socket: run as root, or check the socket's mode and group".to_owned()
            }
            ServerError::AuthenticationFailed => {
                "the password in the secret file is not the requirepass in redis.conf: run pretix-redis apply and let \
                 it restart redis-server"
                    .to_owned()
            }
            ServerError::PasswordRequired => {
                "redis-server asks for a password (requirepass) that this connection did not give: with socket_mode \
                 world or group, remove requirepass from redis.conf and restart redis-server (or use socket_mode tcp); \
                 with tcp, check that the password file redis.password names is readable and run pretix-redis apply"
                    .to_owned()
            }
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::NoSocket => formatter.write_str("the socket does not exist"),
            ServerError::NotASocket => formatter.write_str("the path exists but is not a socket"),
            ServerError::PermissionDenied => formatter.write_str("permission denied"),
            ServerError::Refused => formatter.write_str("connection refused"),
            ServerError::TimedOut => formatter.write_str("no answer in time"),
            ServerError::AuthenticationFailed => formatter.write_str("the password was refused"),
            ServerError::PasswordRequired => formatter.write_str("a password is required (NOAUTH)"),
            ServerError::Other(text) => formatter.write_str(text),
        }
    }
}

fn socket_preflight(path: &Path) -> Result<(), ServerError> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => Ok(()),
        Ok(_) => Err(ServerError::NotASocket),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(ServerError::NoSocket),
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => Err(ServerError::PermissionDenied),
        Err(error) => Err(ServerError::Other(error.to_string())),
    }
}

/// Whether redis-server could listen where tcp mode puts it: `address` must be an address of
/// this host (else Redis fails to start after the restart), and a new `port` must be free on it
/// and on 127.0.0.1. Binds and at once closes throwaway listeners; talks to nobody.
pub fn tcp_preflight(address: IpAddr, port: u16, port_changes: bool) -> Result<(), String> {
    if let Err(error) = std::net::TcpListener::bind((address, 0))
        && error.kind() == io::ErrorKind::AddrNotAvailable
    {
        return Err(format!(
            "redis.tcp_bind {address} is not an address of this host, so redis-server would fail to start: is Docker running (ip addr show docker0)? give the docker host address"
        ));
    }
    if port_changes {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        for host in [loopback, address] {
            if let Err(error) = std::net::TcpListener::bind((host, port))
                && error.kind() == io::ErrorKind::AddrInUse
            {
                return Err(format!(
                    "port {port} is in use on {host}, so redis-server would fail to start: choose another redis.tcp_port (ss -ltnp shows who listens)"
                ));
            }
        }
    }
    Ok(())
}

/// The socket file as it is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketFile {
    Missing,
    NotASocket,
    Socket { mode: u32, uid: u32, gid: u32 },
}

/// Looks at the socket file (no connection).
pub fn socket_file(path: &Path) -> io::Result<SocketFile> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => Ok(SocketFile::Socket {
            mode: metadata.mode() & 0o7777,
            uid: metadata.uid(),
            gid: metadata.gid(),
        }),
        Ok(_) => Ok(SocketFile::NotASocket),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(SocketFile::Missing),
        Err(error) => Err(error),
    }
}
