//! When `pretix cron` last ran, as pretix itself records it.
//!
//! pretix 2026.8's `runperiodic` (what the image's `pretix cron` runs) starts with
//! `cache.set("pretix_runperiodic_executed", True, 3600 * 12)`, and the control panel shows "The
//! cronjob component of pretix was not executed in the last hours" whenever that key is missing
//! (`pretix/control/context.py`). pretix records no time stamp anywhere (no setting, no table),
//! but the key's remaining lifetime is one: it was set `12 h - TTL` ago. With Redis as pretix's
//! cache (the guide's `[redis] location`, no `[memcached]`), django-redis stores it as
//! `:1:pretix_runperiodic_executed` (empty key prefix, version 1) in the location's database.
//!
//! The key is set when the run starts, and `runperiodic` exits 0 even when single tasks fail
//! (it prints their errors), so "ran" here means pretix cron started with a working database
//! connection and cache; the tasks' own errors are in the job's output (cron mail or journal).

use std::path::{Path, PathBuf};
use std::time::Duration;

use pretix_site::fs::Root;
use pretix_site::sections::{ConfigValue, Container};
use pretix_site::{Context, Document, Secret, ToolError};

/// The key as django-redis stores it.
pub const KEY: &str = ":1:pretix_runperiodic_executed";
/// The lifetime pretix gives the key.
pub const KEY_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long one connection attempt or reply may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where pretix's cache lives, as this host reaches it.
#[derive(Clone)]
pub struct CacheTarget {
    address: Address,
    database: i64,
    password: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    /// The socket on this machine (through `--root`), and as the host names it.
    Socket {
        path: PathBuf,
        shown: PathBuf,
    },
    Tcp {
        host: String,
        port: u16,
    },
}

impl std::fmt::Display for CacheTarget {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.address {
            Address::Socket { shown, .. } => write!(formatter, "{} db {}", shown.display(), self.database),
            Address::Tcp { host, port } => write!(formatter, "{host}:{port} db {}", self.database),
        }
    }
}

/// Where the mark can be read, or why it cannot.
pub enum Located {
    Redis(CacheTarget),
    /// pretix's cache is not a Redis this tool can read; the reason says what to do.
    Unknowable(String),
}

/// What the cache says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastRun {
    /// No key: pretix cron has not run in the last 12 hours, or never.
    Missing,
    /// Set this long ago.
    Ago(Duration),
    /// The key has no lifetime, so it says nothing about when.
    NoLifetime,
}

/// Finds pretix's cache from the document's `config.redis` (and `config.memcached`) settings.
pub fn locate(ctx: &mut Context, document: &Document) -> Result<Located, ToolError> {
    if document.config_value("memcached", "location")?.is_some() {
        return Ok(Located::Unknowable(
            "pretix's cache is memcached (config.memcached.location), where pretix-cron cannot read pretix's mark; \
             the dashboard shows whether the cronjob ran"
                .to_owned(),
        ));
    }
    let Some(location) = document.config_value("redis", "location")? else {
        return Ok(Located::Unknowable(
            "config.redis.location is not set: without a cache pretix remembers no run and its dashboard always \
             warns that the cronjob did not run; run pretix-redis apply (the guide's setup) and pretix-cfg apply"
                .to_owned(),
        ));
    };
    let location = match &location {
        ConfigValue::Secret(reference) => ctx.read_secret(reference, "config.redis.location")?.expose().to_owned(),
        other => other.as_plain_text().unwrap_or_default(),
    };
    let password = match document.config_value("redis", "password")? {
        Some(ConfigValue::Secret(reference)) => Some(ctx.read_secret(&reference, "config.redis.password")?),
        Some(other) => other.as_plain_text().map(Secret::new),
        None => None,
    };
    let container: Container = document.section("container")?;
    if let Some(password) = &password {
        ctx.register_secret(password);
    }
    match parse_location(&location, &container.volumes, ctx.root()) {
        Ok(mut target) => {
            if let Some(in_url) = &target.password {
                ctx.register_secret(in_url);
            }
            target.password = target.password.or(password);
            Ok(Located::Redis(target))
        }
        Err(problem) => Ok(Located::Unknowable(problem)),
    }
}

/// Reads `config.redis.location` as pretix (redis-py) does: `unix://[:pw@]/path?db=N` or
/// `redis://[:pw@]host:port/N`. The socket path is the container's; `volumes`
/// (`host:container[:options]`) map it back to the host.
fn parse_location(location: &str, volumes: &[String], root: &Root) -> Result<CacheTarget, String> {
    let (scheme, rest) = location
        .split_once("://")
        .ok_or_else(|| "config.redis.location is not a URL: pretix-cron cannot find pretix's cache".to_owned())?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, rest),
    };
    let password = userinfo
        .and_then(|userinfo| userinfo.split_once(':').map(|(_, password)| password))
        .filter(|password| !password.is_empty())
        .map(|password| Secret::new(percent_decode(password)));
    let query_db = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("db=").and_then(|number| number.parse::<i64>().ok()));
    match scheme {
        "unix" => {
            let in_container = PathBuf::from(rest);
            let on_host = host_path_of(&in_container, volumes).ok_or_else(|| {
                format!(
                    "the Redis socket {} is not mounted into the container from the host (container.volumes), so \
                     pretix-cron cannot reach it",
                    in_container.display()
                )
            })?;
            Ok(CacheTarget {
                address: Address::Socket {
                    path: root.host_path(&on_host),
                    shown: on_host,
                },
                database: query_db.unwrap_or(0),
                password,
            })
        }
        "redis" => {
            let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (host, port_text) = match hostport.strip_prefix('[') {
                Some(bracketed) => {
                    let (host, after) = bracketed
                        .split_once(']')
                        .ok_or_else(|| "config.redis.location has an unclosed [ in its host".to_owned())?;
                    (host, after.strip_prefix(':'))
                }
                None => match hostport.split_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (hostport, None),
                },
            };
            let port = match port_text {
                Some(port) => port
                    .parse::<u16>()
                    .map_err(|_| format!("config.redis.location has the port {port:?}"))?,
                None => 6379,
            };
            let host = host.to_owned();
            let database = path.parse::<i64>().ok().or(query_db).unwrap_or(0);
            Ok(CacheTarget {
                address: Address::Tcp { host, port },
                database,
                password,
            })
        }
        other => Err(format!(
            "config.redis.location uses {other}://, which pretix-cron does not read (unix:// and redis:// only); \
             the dashboard shows whether the cronjob ran"
        )),
    }
}

/// The host path of a container path, through the longest matching bind mount.
fn host_path_of(in_container: &Path, volumes: &[String]) -> Option<PathBuf> {
    volumes
        .iter()
        .filter_map(|volume| {
            let mut parts = volume.split(':');
            let host = parts.next()?;
            let container = parts.next()?;
            let relative = in_container.strip_prefix(container).ok()?;
            Some((container.len(), Path::new(host).join(relative)))
        })
        .max_by_key(|(length, _)| *length)
        .map(|(_, path)| path)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex) = text.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl CacheTarget {
    /// Reads the key's remaining lifetime.
    pub fn read(&self) -> Result<LastRun, String> {
        let addr = match &self.address {
            Address::Socket { path, .. } => redis::ConnectionAddr::Unix(path.clone()),
            Address::Tcp { host, port } => redis::ConnectionAddr::Tcp(host.clone(), *port),
        };
        let mut settings = redis::RedisConnectionInfo::default()
            .set_skip_set_lib_name()
            .set_db(self.database);
        if let Some(password) = &self.password {
            settings = settings.set_password(password.expose());
        }
        let info = redis::IntoConnectionInfo::into_connection_info(addr)
            .map_err(|error| error.to_string())?
            .set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|error| error.to_string())?;
        let mut connection = client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(|error| format!("cannot connect to Redis at {self}: {error}"))?;
        connection
            .set_read_timeout(Some(TIMEOUT))
            .map_err(|error| error.to_string())?;
        let milliseconds: i64 = redis::cmd("PTTL")
            .arg(KEY)
            .query(&mut connection)
            .map_err(|error| format!("Redis at {self} refused PTTL: {error}"))?;
        Ok(last_run_from_pttl(milliseconds))
    }
}

/// Redis's PTTL: -2 no key, -1 no lifetime, else milliseconds left.
pub fn last_run_from_pttl(milliseconds: i64) -> LastRun {
    match u64::try_from(milliseconds) {
        Err(_) if milliseconds == -1 => LastRun::NoLifetime,
        Err(_) => LastRun::Missing,
        Ok(left) => LastRun::Ago(KEY_LIFETIME.saturating_sub(Duration::from_millis(left))),
    }
}

/// Whether the last run is recent enough: a failure when it is older than twice the schedule's
/// longest gap. Pure.
pub fn judge(last: LastRun, interval_minutes: u32) -> (bool, String) {
    let limit = Duration::from_secs(u64::from(interval_minutes) * 2 * 60);
    match last {
        LastRun::Missing => (
            false,
            "pretix has no record of pretix cron in the last 12 hours (it keeps the mark that long), so the job has \
             not run: check the cron file or timer with pretix-cron verify, run it once with pretix-cron run and \
             read its output"
                .to_owned(),
        ),
        LastRun::NoLifetime => (
            false,
            format!(
                "{KEY} has no lifetime, so it says nothing about when pretix cron last ran: DEL it, then run pretix-cron run"
            ),
        ),
        LastRun::Ago(age) if age <= limit => (
            true,
            format!(
                "pretix cron last ran {} ago (at most {} min allowed: twice the schedule's {} min)",
                human(age),
                interval_minutes * 2,
                interval_minutes
            ),
        ),
        LastRun::Ago(age) => (
            false,
            format!(
                "pretix cron last ran {} ago, more than twice the schedule's {} min: the job is not running on \
                 schedule; check the cron file or timer, the cron daemon, and the job's output (cron mail or \
                 journalctl)",
                human(age),
                interval_minutes
            ),
        ),
    }
}

fn human(age: Duration) -> String {
    let seconds = age.as_secs();
    if seconds < 120 {
        format!("{seconds} s")
    } else if seconds < 2 * 3600 {
        format!("{} min", seconds / 60)
    } else {
        format!("{} h {} min", seconds / 3600, seconds % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_socket_maps_through_its_volume() {
        let target = parse_location(
            "unix:///var/run/redis/redis.sock?db=0",
            &["/var/run/redis:/var/run/redis".to_owned()],
            &Root::system(),
        )
        .expect("parsed");
        assert_eq!(target.to_string(), "/var/run/redis/redis.sock db 0");
        let target = parse_location(
            "unix:///redis/redis.sock?db=3",
            &["/srv/redis:/redis:ro".to_owned(), "/srv:/".to_owned()],
            &Root::system(),
        )
        .expect("parsed");
        assert_eq!(target.to_string(), "/srv/redis/redis.sock db 3");
    }

    #[test]
    fn an_unmounted_socket_cannot_be_reached() {
        let problem = parse_location("unix:///var/run/redis/redis.sock?db=0", &[], &Root::system())
            .err()
            .expect("refused");
        assert!(problem.contains("is not mounted into the container"), "{problem}");
    }

    #[test]
    fn tcp_locations_with_and_without_passwords() {
        let target = parse_location("redis://172.17.0.1:6380/0", &[], &Root::system()).expect("parsed");
        assert_eq!(target.to_string(), "172.17.0.1:6380 db 0");
        assert!(target.password.is_none());
        let target = parse_location("redis://:p%40ss@[fd00::1]/2", &[], &Root::system()).expect("parsed");
        assert_eq!(target.to_string(), "fd00::1:6379 db 2");
        assert_eq!(target.password.as_ref().map(Secret::expose), Some("p@ss"));
    }

    #[test]
    fn the_remaining_lifetime_gives_the_age() {
        assert_eq!(last_run_from_pttl(-2), LastRun::Missing);
        assert_eq!(last_run_from_pttl(-1), LastRun::NoLifetime);
        assert_eq!(
            last_run_from_pttl(43_200_000 - 600_000),
            LastRun::Ago(Duration::from_secs(600))
        );
    }

    #[test]
    fn older_than_twice_the_interval_fails() {
        let (ok, message) = judge(LastRun::Ago(Duration::from_secs(59 * 60)), 30);
        assert!(ok, "{message}");
        assert!(message.contains("59 min ago"), "{message}");
        let (ok, message) = judge(LastRun::Ago(Duration::from_secs(61 * 60)), 30);
        assert!(!ok);
        assert!(message.contains("more than twice the schedule's 30 min"), "{message}");
        assert!(!judge(LastRun::Missing, 30).0);
        assert!(!judge(LastRun::NoLifetime, 30).0);
    }
}
