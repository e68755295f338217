//! The superuser session: the one seam through which this tool talks to PostgreSQL as its
//! superuser.
//!
//! It is reached one of three ways, and plan/apply code does not know which:
//! - a connection string (`database.admin.connection`): in this process;
//! - the unix socket, when this process is not root (or `database.admin.password` is given):
//!   in this process, as whatever role peer authentication maps the current user to;
//! - the unix socket, when this process is root: the way `sudo -u postgres psql` connects. Peer
//!   authentication checks the connecting process's uid, so the session runs in a child process
//!   of this very binary (`pretix-db admin-session`) switched to `database.admin.system_user`.
//!   It speaks JSON lines over its stdin/stdout: a request is SQL text with `$1..` parameters, a
//!   reply is rows of nullable strings or an error. No password or verifier ever goes into its
//!   argv or environment (which other users can read in /proc).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{Client, Config, NoTls, SimpleQueryMessage};
use serde::{Deserialize, Serialize};

use crate::error::ProvisionDatabaseError;

/// One row: every column as text, NULL as `None`.
pub type Row = Vec<Option<String>>;

/// What PostgreSQL (or the way to it) said when something failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgFailure {
    /// The SQLSTATE, when the server answered with an error.
    pub code: Option<String>,
    pub message: String,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub hint: Option<String>,
}

impl PgFailure {
    pub fn other(message: impl Into<String>) -> Self {
        PgFailure {
            code: None,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// From the client library's error: the server's own words when it answered.
    pub fn from_postgres(error: &postgres::Error) -> Self {
        if let Some(db) = error.as_db_error() {
            return PgFailure {
                code: Some(db.code().code().to_owned()),
                message: db.message().to_owned(),
                detail: db.detail().map(str::to_owned),
                hint: db.hint().map(str::to_owned),
            };
        }
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        PgFailure::other(message)
    }

    /// Whether the server itself answered (as opposed to no server being reached).
    pub fn server_answered(&self) -> bool {
        self.code.is_some()
    }
}

impl std::fmt::Display for PgFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.message)?;
        if let Some(detail) = &self.detail {
            write!(formatter, " ({detail})")?;
        }
        if let Some(hint) = &self.hint {
            write!(formatter, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// A session as the PostgreSQL superuser.
pub trait AdminSession {
    /// Runs one statement. Parameters are text and bound as `$1, $2, ..` (never spliced into
    /// the SQL); every column comes back as text.
    fn query(&mut self, sql: &str, params: &[&str]) -> Result<Vec<Row>, PgFailure>;

    /// Where and as whom, for messages: `at /var/run/postgresql port 5432 as postgres`.
    fn target(&self) -> &str;
}

/// How long to wait for the server to answer a connection attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Session settings: wait at most this long for a lock (another session holding the role or
/// the database) instead of hanging the run.
const SESSION_OPTIONS: &str = "-c lock_timeout=30s";

/// How to reach the superuser, resolved from the `database.admin` section.
#[derive(Debug, Clone)]
pub enum AdminRoute {
    /// In this process, with a parsed connection config.
    InProcess { config: Box<Config>, target: String },
    /// In a child process switched to this user (peer authentication as root).
    SwitchUser {
        socket_dir: PathBuf,
        port: u16,
        user: String,
        uid: u32,
        gid: u32,
        system_user: String,
        target: String,
    },
}

impl AdminRoute {
    pub fn target(&self) -> &str {
        match self {
            AdminRoute::InProcess { target, .. } | AdminRoute::SwitchUser { target, .. } => target,
        }
    }
}

/// The config for the superuser over the unix socket.
pub fn socket_config(socket_dir: &Path, port: u16, user: &str) -> Config {
    let mut config = Config::new();
    config
        .host_path(socket_dir)
        .port(port)
        .user(user)
        .dbname("postgres")
        .application_name("pretix-db")
        .connect_timeout(CONNECT_TIMEOUT)
        .options(SESSION_OPTIONS);
    config
}

/// `at HOST port PORT as USER` for a config.
pub fn describe_config(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost".to_owned()
    } else {
        hosts.join(",")
    };
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    let ports = if ports.is_empty() {
        "5432".to_owned()
    } else {
        ports.join(",")
    };
    format!(
        "at {hosts} port {ports} as {}",
        config.get_user().unwrap_or("(the default user)")
    )
}

/// Opens the session the route names. `service` only goes into the error message.
pub fn open(
    route: &AdminRoute,
    service: &str,
    log: &mut dyn FnMut(&str),
) -> Result<Box<dyn AdminSession>, ProvisionDatabaseError> {
    match route {
        AdminRoute::InProcess { config, target } => {
            let client = config
                .connect(NoTls)
                .map_err(|error| connect_error(target, service, &PgFailure::from_postgres(&error)))?;
            Ok(Box::new(InProcessSession {
                client,
                target: target.clone(),
            }))
        }
        AdminRoute::SwitchUser { .. } => Ok(Box::new(ChildSession::spawn(route, service, log)?)),
    }
}

/// Turns a failed connection into the error a sysadmin can act on.
pub fn connect_error(target: &str, service: &str, failure: &PgFailure) -> ProvisionDatabaseError {
    if failure.server_answered() {
        ProvisionDatabaseError::LoginRefused {
            target: target.to_owned(),
            reason: failure.to_string(),
            fix: "check database.admin (the superuser role, the system user peer authentication maps to it, or a \
                  connection string with database.admin.password)"
                .to_owned(),
        }
    } else {
        ProvisionDatabaseError::Unreachable {
            target: target.to_owned(),
            reason: failure.to_string(),
            service: service.to_owned(),
        }
    }
}

/// The session in this process.
pub struct InProcessSession {
    client: Client,
    target: String,
}

impl AdminSession for InProcessSession {
    fn query(&mut self, sql: &str, params: &[&str]) -> Result<Vec<Row>, PgFailure> {
        run_query(&mut self.client, sql, params)
    }

    fn target(&self) -> &str {
        &self.target
    }
}

fn run_query(client: &mut Client, sql: &str, params: &[&str]) -> Result<Vec<Row>, PgFailure> {
    if params.is_empty() {
        // The simple protocol: one round trip. DDL (which cannot take parameters anyway) goes
        // this way, each statement on its own, outside any transaction block, as psql sends it.
        let messages = client
            .simple_query(sql)
            .map_err(|error| PgFailure::from_postgres(&error))?;
        return Ok(messages
            .into_iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => {
                    Some((0..row.len()).map(|index| row.get(index).map(str::to_owned)).collect())
                }
                _ => None,
            })
            .collect());
    }
    let typed: Vec<(&(dyn ToSql + Sync), Type)> = params
        .iter()
        .map(|param| (param as &(dyn ToSql + Sync), Type::TEXT))
        .collect();
    let rows = client
        .query_typed(sql, &typed)
        .map_err(|error| PgFailure::from_postgres(&error))?;
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|index| {
                    let column_type = row.columns()[index].type_();
                    let value = match *column_type {
                        Type::BOOL => row
                            .try_get::<_, Option<bool>>(index)
                            .map(|value| value.map(|flag| flag.to_string())),
                        Type::INT2 => row
                            .try_get::<_, Option<i16>>(index)
                            .map(|value| value.map(|number| number.to_string())),
                        Type::INT4 => row
                            .try_get::<_, Option<i32>>(index)
                            .map(|value| value.map(|number| number.to_string())),
                        Type::INT8 => row
                            .try_get::<_, Option<i64>>(index)
                            .map(|value| value.map(|number| number.to_string())),
                        Type::OID => row
                            .try_get::<_, Option<u32>>(index)
                            .map(|value| value.map(|number| number.to_string())),
                        _ => row.try_get::<_, Option<String>>(index),
                    };
                    value.map_err(|error| PgFailure::other(format!("column {index} ({column_type}): {error}")))
                })
                .collect()
        })
        .collect()
}

/// One request to the child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    sql: String,
    params: Vec<String>,
}

/// One reply from the child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum Reply {
    /// Connected; requests may follow.
    Ready,
    Rows(Vec<Row>),
    Error(PgFailure),
}

/// The session in a child process running as the system user.
pub struct ChildSession {
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    stdout: BufReader<ChildStdout>,
    target: String,
    /// A copy of this binary the system user may execute, when the original is not (Ansible
    /// uploads modules as 0700/0744 files into a root-only directory). Removed on drop.
    _staged: Option<tempfile::TempDir>,
}

impl ChildSession {
    fn spawn(
        route: &AdminRoute,
        service: &str,
        log: &mut dyn FnMut(&str),
    ) -> Result<ChildSession, ProvisionDatabaseError> {
        let AdminRoute::SwitchUser {
            socket_dir,
            port,
            user,
            uid,
            gid,
            system_user,
            target,
        } = route
        else {
            return Err(ProvisionDatabaseError::Session {
                target: route.target().to_owned(),
                reason: "not a child route".to_owned(),
            });
        };
        let session_error = |reason: String| ProvisionDatabaseError::Session {
            target: target.clone(),
            reason,
        };
        // /proc/self/exe is our own binary even when the path we were started from is not
        // reachable for the system user (under /root, say): the kernel follows that link
        // without walking the directories. The file itself must still be executable for it.
        let own = PathBuf::from("/proc/self/exe");
        let metadata =
            std::fs::metadata(&own).map_err(|error| session_error(format!("cannot inspect this program: {error}")))?;
        let stage = || {
            stage_copy(&own).map_err(|error| {
                session_error(format!(
                    "this program is not executable by {system_user}, and a copy for it could not be made: {error}: install \
                     pretix-db where {system_user} may run it (e.g. /usr/local/bin, mode 0755) or set database.admin.connection"
                ))
            })
        };
        let mut staged = if executable_by(&metadata, *uid, *gid) {
            None
        } else {
            Some(stage()?)
        };
        let spawn = |program: &Path, log: &mut dyn FnMut(&str)| {
            let mut command = Command::new(program);
            command
                .arg0("pretix-db")
                .arg("admin-session")
                .arg("--socket-dir")
                .arg(socket_dir)
                .arg("--port")
                .arg(port.to_string())
                .arg("--user")
                .arg(user)
                .uid(*uid)
                .gid(*gid)
                .current_dir("/")
                .env_clear()
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            // Our own binary kept open for a conversation, as the system user. With a uid set and
            // no groups given, std drops the supplementary groups (setgroups(0)) before setuid,
            // so the child holds exactly the system user's ids.
            let mut log_as = |line: &str| log(&line.replacen("run: ", &format!("run as {system_user}: "), 1));
            pretix_site::exec::spawn_conversation(&mut command, &mut log_as)
        };
        let program = staged.as_ref().map_or(own.clone(), |(path, _)| path.clone());
        let mut spawned = spawn(&program, log);
        if staged.is_none()
            && spawned
                .as_ref()
                .is_err_and(|error| error.kind() == std::io::ErrorKind::PermissionDenied)
        {
            // The mode bits allowed it, yet exec was refused (a noexec mount, an ACL): a copy
            // in the temporary directory may still run.
            let copy = stage()?;
            spawned = spawn(&copy.0, log);
            staged = Some(copy);
        }
        let mut child = spawned.map_err(|error| {
            session_error(format!(
                "cannot start the session as {system_user}: {error}: install pretix-db where {system_user} may run it, \
                 or set database.admin.connection"
            ))
        })?;
        let staged = staged.map(|(_, dir)| dir);
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(session_error("the session's pipes are missing".to_owned()));
        };
        let mut session = ChildSession {
            child,
            stdin: Some(BufWriter::new(stdin)),
            stdout: BufReader::new(stdout),
            target: target.clone(),
            _staged: staged,
        };
        match session.read_reply() {
            Ok(Reply::Ready) => Ok(session),
            Ok(Reply::Error(failure)) => Err(connect_error(target, service, &failure)),
            Ok(Reply::Rows(_)) => Err(session_error("the session answered before it was asked".to_owned())),
            Err(failure) => Err(session_error(failure.to_string())),
        }
    }

    fn read_reply(&mut self) -> Result<Reply, PgFailure> {
        let mut line = String::new();
        let read = self
            .stdout
            .read_line(&mut line)
            .map_err(|error| PgFailure::other(format!("reading from the session: {error}")))?;
        if read == 0 {
            let status = self
                .child
                .wait()
                .map(|status| status.to_string())
                .unwrap_or_else(|error| error.to_string());
            return Err(PgFailure::other(format!("the session process ended ({status})")));
        }
        serde_json::from_str(&line)
            .map_err(|error| PgFailure::other(format!("the session sent something unreadable: {error}")))
    }
}

impl AdminSession for ChildSession {
    fn query(&mut self, sql: &str, params: &[&str]) -> Result<Vec<Row>, PgFailure> {
        let request = Request {
            sql: sql.to_owned(),
            params: params.iter().map(|param| (*param).to_owned()).collect(),
        };
        let mut line = serde_json::to_string(&request).map_err(|error| PgFailure::other(error.to_string()))?;
        line.push('\n');
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| PgFailure::other("the session is closed"))?;
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|error| PgFailure::other(format!("writing to the session: {error}")))?;
        match self.read_reply()? {
            Reply::Rows(rows) => Ok(rows),
            Reply::Error(failure) => Err(failure),
            Reply::Ready => Err(PgFailure::other("the session answered out of turn")),
        }
    }

    fn target(&self) -> &str {
        &self.target
    }
}

impl Drop for ChildSession {
    fn drop(&mut self) {
        // Closing stdin ends the child's loop; it closes its connection and exits.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Whether a file may be executed by `uid`/`gid` (supplementary groups are dropped).
fn executable_by(metadata: &std::fs::Metadata, uid: u32, gid: u32) -> bool {
    let mode = metadata.permissions().mode();
    if metadata.uid() == uid {
        mode & 0o100 != 0
    } else if metadata.gid() == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// Copies this binary into a fresh root-owned directory (mode 0711) as a 0755 file, so the
/// system user can execute it but nobody can replace it.
fn stage_copy(own: &Path) -> std::io::Result<(PathBuf, tempfile::TempDir)> {
    let dir = tempfile::Builder::new().prefix("pretix-db-session.").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    let path = dir.path().join("pretix-db");
    std::fs::copy(own, &path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok((path, dir))
}

/// The arguments of the hidden `admin-session` verb.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminSessionArgs {
    /// The unix socket directory
    #[arg(long, value_name = "DIR")]
    pub socket_dir: PathBuf,
    /// The server port
    #[arg(long)]
    pub port: u16,
    /// The superuser role
    #[arg(long)]
    pub user: String,
}

/// The child's side: connect, say so, then answer requests until stdin closes. Returns the
/// exit code.
pub fn serve(args: &AdminSessionArgs) -> i32 {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    let mut send = |reply: &Reply| -> bool {
        let Ok(mut line) = serde_json::to_string(reply) else {
            return false;
        };
        line.push('\n');
        stdout.write_all(line.as_bytes()).and_then(|()| stdout.flush()).is_ok()
    };
    let mut client = match socket_config(&args.socket_dir, args.port, &args.user).connect(NoTls) {
        Ok(client) => client,
        Err(error) => {
            send(&Reply::Error(PgFailure::from_postgres(&error)));
            return 1;
        }
    };
    if !send(&Reply::Ready) {
        return 1;
    }
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return 1 };
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                let params: Vec<&str> = request.params.iter().map(String::as_str).collect();
                match run_query(&mut client, &request.sql, &params) {
                    Ok(rows) => Reply::Rows(rows),
                    Err(failure) => Reply::Error(failure),
                }
            }
            Err(error) => Reply::Error(PgFailure::other(format!("unreadable request: {error}"))),
        };
        if !send(&reply) {
            return 1;
        }
    }
    0
}

/// Whether argv asks for the hidden session verb (checked before the document is read, since
/// the session's stdin carries requests, not a document).
pub fn is_session_invocation(args: &[std::ffi::OsString]) -> bool {
    args.get(1).map(|arg| arg.as_os_str()) == Some(OsStr::new("admin-session"))
}
