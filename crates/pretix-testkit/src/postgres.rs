//! A real throwaway PostgreSQL cluster, run as the `postgres` system user: peer authentication
//! on its own unix socket (so a tool's root → postgres switch really runs), scram-sha-256 over
//! TCP on a free loopback port, and `listen_addresses = 'localhost'` in its postgresql.conf (not
//! on the command line, so a tool editing that file is what decides).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::{find_program, postgres_bin_dirs, shared_tempdir, system_user};

/// How to initialise a cluster.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// `initdb -E`; UTF8 when unset.
    pub encoding: Option<String>,
    /// `log_statement = 'all'`.
    pub log_statement_all: bool,
}

pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    uid: u32,
    gid: u32,
}

/// The superuser's password for TCP logins from the tests (peer authentication refuses root).
pub const SUPERUSER_PASSWORD: &str = "test-superuser-password";

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(PostgresOptions::default())
    }

    pub fn start_with(options: PostgresOptions) -> Postgres {
        let (uid, gid) = system_user("postgres");
        let dir = shared_tempdir("pretix-testkit-pg.");
        for (name, mode) in [("data", 0o700), ("socket", 0o755), ("log", 0o755), ("init", 0o700)] {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).expect("mkdir");
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let cluster = Postgres { dir, port: 0, uid, gid };
        let password_file = cluster.dir.path().join("init/superuser-password");
        std::fs::write(&password_file, SUPERUSER_PASSWORD).expect("write password file");
        std::os::unix::fs::chown(&password_file, Some(uid), Some(gid)).expect("chown");
        let encoding = options.encoding.clone().unwrap_or_else(|| "UTF8".to_owned());
        let locale = if encoding.eq_ignore_ascii_case("UTF8") {
            "C.UTF-8"
        } else {
            "C"
        };
        cluster.as_postgres(
            Command::new(find_program("initdb", &postgres_bin_dirs()))
                .arg("-D")
                .arg(cluster.data_dir())
                .args([
                    "-U",
                    "postgres",
                    "-E",
                    &encoding,
                    "--locale",
                    locale,
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "-N",
                ])
                .arg(format!("--pwfile={}", password_file.display())),
        );
        let mut conf = format!(
            "\n# test cluster\nunix_socket_directories = '{}'\nlisten_addresses = 'localhost'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            cluster.socket_dir().display()
        );
        if options.log_statement_all {
            conf.push_str("log_statement = 'all'\n");
        }
        let conf_path = cluster.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&conf_path, text).expect("write postgresql.conf");
        let mut cluster = cluster;
        // A free port, found by asking the kernel; another process may take it before the
        // server binds it, so try a few.
        for _ in 0..5 {
            cluster.port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("free port")
                .port();
            cluster.set_port_line();
            if cluster.try_start() {
                return cluster;
            }
        }
        panic!("the test cluster did not start: {}", cluster.server_log());
    }

    fn set_port_line(&self) {
        let conf_path = self.data_dir().join("postgresql.conf");
        let text = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        let kept: String = text
            .split_inclusive('\n')
            .filter(|line| !line.starts_with("port = "))
            .collect();
        std::fs::write(&conf_path, format!("{kept}port = {}\n", self.port)).expect("write postgresql.conf");
    }

    fn try_start(&self) -> bool {
        let output = self.pg_ctl(&["-w", "-t", "30", "-l", &self.log_path().display().to_string(), "start"]);
        output.status.success()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log/server.log")
    }

    /// Everything the server logged so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The unix-socket connection string `sudo -u postgres psql` would use (peer authentication:
    /// only a process running as the postgres user gets in).
    pub fn socket_conn_string(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.socket_dir().display(),
            self.port
        )
    }

    /// A connection string for the superuser over TCP (with its password).
    pub fn superuser_conn_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres password={SUPERUSER_PASSWORD}",
            self.port
        )
    }

    pub fn superuser(&self) -> postgres::Client {
        postgres::Client::connect(&self.superuser_conn_string(), postgres::NoTls).expect("superuser connection")
    }

    pub fn stop(&self) {
        let output = self.pg_ctl(&["-w", "-m", "fast", "stop"]);
        assert!(
            output.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn start_again(&self) {
        assert!(self.try_start(), "pg_ctl start: {}", self.server_log());
    }

    pub fn restart(&self) {
        let output = self.pg_ctl(&[
            "-w",
            "-m",
            "fast",
            "-l",
            &self.log_path().display().to_string(),
            "restart",
        ]);
        assert!(
            output.status.success(),
            "pg_ctl restart: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while postgres::Client::connect(&self.superuser_conn_string(), postgres::NoTls).is_err() {
            assert!(
                Instant::now() < deadline,
                "the test cluster did not come back: {}",
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let mut command = Command::new(find_program("pg_ctl", &postgres_bin_dirs()));
        command.arg("-D").arg(self.data_dir()).args(args);
        self.run_as_postgres(&mut command)
    }

    fn as_postgres(&self, command: &mut Command) {
        let output = self.run_as_postgres(command);
        assert!(
            output.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn run_as_postgres(&self, command: &mut Command) -> Output {
        use std::os::unix::process::CommandExt;
        command
            .uid(self.uid)
            .gid(self.gid)
            .current_dir(Path::new("/"))
            .output()
            .expect("run a postgres program")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}
