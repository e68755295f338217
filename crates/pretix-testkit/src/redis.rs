//! A throwaway redis-server: with a temp config ([`Redis::start`]) or on a config file a test
//! prepared, e.g. an edited copy of Debian's ([`Redis::start_with_config_file`]). It can run as
//! Debian's `redis` user (so the socket's group is the one the redis-server unit gives it), and
//! [`Redis::kill`] leaves a stale socket behind, as a crashed server does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{INSTALL_SCRIPT, find_program, shared_tempdir, system_user};

/// How to run a redis-server on a prepared config file.
pub struct RedisOptions {
    /// Where the socket goes (overrides the file's `unixsocket`; its `unixsocketperm` applies).
    pub socket: PathBuf,
    /// Working directory, pid file and log.
    pub dir: PathBuf,
    /// Run as Debian's `redis` user and group, as the redis-server unit does.
    pub as_redis_user: bool,
    /// Overrides the file's `port` (0: no TCP); `None` keeps the file's.
    pub port: Option<u16>,
}

/// A redis-server of a test; killed on drop.
pub struct Redis {
    child: Option<std::process::Child>,
    socket: PathBuf,
    /// The temp dir of a server started with [`Redis::start`].
    _dir: Option<tempfile::TempDir>,
}

impl Redis {
    /// A redis-server on a temp config: no TCP, a unix socket with mode `socket_perm` in a
    /// temp dir, running as the current user.
    pub fn start(socket_perm: &str) -> Redis {
        let dir = shared_tempdir("pretix-testkit-redis.");
        let config = dir.path().join("redis.conf");
        std::fs::write(&config, format!("port 0\nunixsocketperm {socket_perm}\ndatabases 16\n"))
            .expect("write redis.conf");
        let socket = dir.path().join("redis.sock");
        let mut redis = Redis::start_with_config_file(
            &config,
            RedisOptions {
                socket,
                dir: dir.path().to_path_buf(),
                as_redis_user: false,
                port: Some(0),
            },
        );
        redis._dir = Some(dir);
        redis
    }

    /// Starts redis-server on `config_file`: its own directives apply (unixsocketperm, bind,
    /// requirepass, databases), overridden only as `options` say and to run in the foreground
    /// without a log or pid file in /var.
    pub fn start_with_config_file(config_file: &Path, options: RedisOptions) -> Redis {
        let RedisOptions {
            socket,
            dir,
            as_redis_user,
            port,
        } = options;
        let (socket, dir) = (socket.as_path(), dir.as_path());
        let mut command = if as_redis_user {
            let (uid, gid) = system_user("redis");
            let mut command = Command::new(find_program("setpriv", &[]));
            command.args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".to_owned(),
                find_program("redis-server", &[]).display().to_string(),
            ]);
            command
        } else {
            Command::new(find_program("redis-server", &[]))
        };
        command.arg(config_file).args([
            "--daemonize",
            "no",
            "--supervised",
            "no",
            "--logfile",
            "",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        command.arg("--pidfile").arg(dir.join("redis-server.pid"));
        command.arg("--dir").arg(dir);
        command.arg("--unixsocket").arg(socket);
        if let Some(port) = port {
            command.args(["--port", &port.to_string()]);
        }
        let log = dir.join("redis-server.log");
        let log_file = std::fs::File::create(&log).expect("create the redis-server log");
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).expect("chmod log");
        let child = command
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|error| panic!("start redis-server: {error} (run {INSTALL_SCRIPT})"));
        let mut redis = Redis {
            child: Some(child),
            socket: socket.to_path_buf(),
            _dir: None,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        // The socket file appears at bind(), before listen(): wait until a connect succeeds.
        while std::os::unix::net::UnixStream::connect(&redis.socket).is_err() {
            let exited = redis.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "redis-server did not answer on {} ({exited:?}): {}",
                    redis.socket.display(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Stops redis-server the way systemctl stop does (SIGTERM; it removes its socket).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    /// Kills redis-server hard: the socket file stays behind, nobody listens.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
