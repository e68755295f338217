//! [`TestHost`]: a fresh Debian 12 server, as a container of [`images::test_host_image`] with
//! systemd as PID 1, for the tests that need the real `systemctl`, real `/etc` and real
//! services (PostgreSQL 15, redis-server, nginx, cron).
//!
//! How it is wired (ARCHITECTURE.md explains why):
//! - systemd runs unprivileged: `--tmpfs /run --tmpfs /run/lock`, `/sys/fs/cgroup` bound
//!   read-write with the host's cgroup namespace, command `/sbin/init`, stop signal
//!   `SIGRTMIN+3` (`--privileged` is refused on these machines);
//! - no Docker daemon runs inside: the machine's socket is mounted at `/run/docker.sock`, so the
//!   pretix container a unit on the test host starts runs on the machine's engine, next to the
//!   test host, and `docker.service` there only checks that engine answers;
//! - so every path such a container bind-mounts must be the same directory on both sides:
//!   [`TestHost::shared_dir`] is a fresh directory on the machine (under [`SHARED_PARENT`]),
//!   mounted into the test host at the identical path. Put the data dir, the config dir and the
//!   Redis socket dir under it (redis-server's sandbox then needs `ReadWritePaths=` for the
//!   socket dir, as on a real server with a socket outside `/run/redis`);
//! - the test host is on Docker's default bridge, and so is a container it starts without
//!   `--network`: that container reaches the test host's PostgreSQL at [`TestHost::address`]
//!   (the site's `database.docker_host`), from [`TestHost::docker_subnet`]
//!   (`database.docker_subnet`), the way the guide's container reaches its host at 172.17.0.1
//!   (PostgreSQL must restart to listen there: `database.restart: true`).
//!
//! `xtask/tests/real_pretix.rs` is the worked example: tools installed with
//! [`TestHost::install_binaries`], run with [`TestHost::exec_with_stdin`], the real image
//! started next to the test host with the document's volumes.
//!
//! Dropping a `TestHost` removes it, every container on the engine that mounts something from
//! its shared dir or whose name starts with [`TestHost::name`], and the shared dir.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigCgroupnsModeEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;

use crate::image::{Error, connect};
use crate::images;

/// What a command run in the test host gave.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// The exit code (-1 if Docker reported none).
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Exit code and both outputs, for assertion messages.
    pub fn describe(&self) -> String {
        format!("exit {}\nstdout: {}\nstderr: {}", self.code, self.stdout, self.stderr)
    }
}

/// A booted Debian 12 server with systemd as PID 1; removed on drop (see the module docs).
pub struct TestHost {
    name: String,
    id: String,
    address: String,
    docker_subnet: String,
    shared: Option<tempfile::TempDir>,
    runtime: tokio::runtime::Runtime,
    docker: Docker,
}

/// Where the shared dirs live on the machine. Not under /tmp or /var/tmp: Debian's units
/// (redis-server, postgresql) run with `PrivateTmp=true` and would not see them there.
pub const SHARED_PARENT: &str = "/var/lib/pretix-testkit/shared";

/// How long systemd may take to finish booting.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

impl TestHost {
    /// Builds the image on first use ([`images::test_host_image`]), starts a test host and waits
    /// until `systemctl is-system-running` says `running` or `degraded`
    /// ([`TestHost::failed_units`] names what failed).
    pub fn boot() -> Result<TestHost, Error> {
        let image = images::test_host_image()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let docker = runtime.block_on(connect())?;
        std::fs::create_dir_all(SHARED_PARENT)
            .map_err(|error| format!("create {SHARED_PARENT} ({error}): the tests run as root"))?;
        let shared = tempfile::Builder::new()
            .prefix("pretix-th.")
            .tempdir_in(SHARED_PARENT)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755))?;
        }
        let suffix: String = shared
            .path()
            .file_name()
            .map(|name| name.to_string_lossy().trim_start_matches("pretix-th.").to_lowercase())
            .unwrap_or_default();
        let name = format!("pretix-th-{}-{suffix}", std::process::id());
        let shared_path = shared.path().display().to_string();
        let body = ContainerCreateBody {
            image: Some(image),
            hostname: Some("testhost".to_owned()),
            stop_signal: Some("SIGRTMIN+3".to_owned()),
            host_config: Some(HostConfig {
                binds: Some(vec![
                    format!("{shared_path}:{shared_path}"),
                    "/var/run/docker.sock:/run/docker.sock".to_owned(),
                    "/sys/fs/cgroup:/sys/fs/cgroup:rw".to_owned(),
                ]),
                tmpfs: Some(
                    [("/run", "rw,exec,mode=755"), ("/run/lock", "rw,mode=1777")]
                        .into_iter()
                        .map(|(path, options)| (path.to_owned(), options.to_owned()))
                        .collect(),
                ),
                cgroupns_mode: Some(HostConfigCgroupnsModeEnum::HOST),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let created = runtime.block_on(
            docker.create_container(Some(CreateContainerOptionsBuilder::default().name(&name).build()), body),
        )?;
        let mut host = TestHost {
            name,
            id: created.id,
            address: String::new(),
            docker_subnet: String::new(),
            shared: Some(shared),
            runtime,
            docker,
        };
        host.runtime.block_on(host.docker.start_container(&host.id, None))?;
        host.address = host.read_address()?;
        host.docker_subnet = host.read_bridge_subnet()?;
        host.wait_for_boot()?;
        Ok(host)
    }

    fn read_address(&self) -> Result<String, Error> {
        let inspect = self.runtime.block_on(self.docker.inspect_container(&self.id, None))?;
        inspect
            .network_settings
            .and_then(|settings| settings.networks)
            .and_then(|networks| networks.get("bridge").cloned())
            .and_then(|bridge| bridge.ip_address)
            .filter(|address| !address.is_empty())
            .ok_or_else(|| format!("the test host {} has no address on Docker's default bridge", self.name).into())
    }

    fn read_bridge_subnet(&self) -> Result<String, Error> {
        let network = self.runtime.block_on(self.docker.inspect_network("bridge", None))?;
        network
            .ipam
            .and_then(|ipam| ipam.config)
            .and_then(|configs| configs.into_iter().find_map(|config| config.subnet))
            .ok_or_else(|| "Docker's default bridge network has no subnet".into())
    }

    fn wait_for_boot(&self) -> Result<(), Error> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            // `--wait` blocks until start-up is over (systemd 240+).
            let state = self.exec(&["systemctl", "is-system-running", "--wait"])?;
            match state.stdout.trim() {
                "running" | "degraded" => return Ok(()),
                _ if Instant::now() > deadline => {
                    let jobs = self.exec(&["systemctl", "list-jobs", "--no-pager"])?;
                    return Err(format!(
                        "the test host {} did not finish booting within {BOOT_TIMEOUT:?}: {}\npending jobs: {}",
                        self.name,
                        state.describe(),
                        jobs.stdout
                    )
                    .into());
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// The container's name: unique, and a prefix that [`Drop`] also cleans up, so containers a
    /// test starts through the test host should carry it (e.g. as the unit name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A directory that exists at this same path on the machine and in the test host (mode
    /// 0755, owned by root): where data dirs, config dirs and Redis socket dirs that a
    /// container started from the test host mounts must live.
    pub fn shared_dir(&self) -> &Path {
        self.shared.as_ref().map_or(Path::new("/nonexistent"), |dir| dir.path())
    }

    /// The test host's IPv4 address on Docker's default bridge: where a container started from
    /// it reaches its PostgreSQL (`database.docker_host`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The default bridge's subnet, e.g. `172.17.0.0/16` (`database.docker_subnet`).
    pub fn docker_subnet(&self) -> &str {
        &self.docker_subnet
    }

    /// Runs `argv` as root in the test host (no shell) and waits for it.
    pub fn exec(&self, argv: &[&str]) -> Result<ExecOutput, Error> {
        self.runtime.block_on(self.exec_async(argv))
    }

    /// Runs `script` with `bash -c` as root.
    pub fn sh(&self, script: &str) -> Result<ExecOutput, Error> {
        self.exec(&["bash", "-c", script])
    }

    /// Runs `argv` as root with `stdin` as its standard input (kept in a root-only file in the
    /// test host for the run, then removed).
    pub fn exec_with_stdin(&self, argv: &[&str], stdin: &[u8]) -> Result<ExecOutput, Error> {
        let path = format!("/root/.pretix-testkit-stdin-{}", unique_counter());
        self.write_file(&path, stdin, 0o600)?;
        let mut command = vec![
            "sh",
            "-c",
            "input=$1; shift; \"$@\" < \"$input\"; code=$?; rm -f \"$input\"; exit $code",
            "sh",
            path.as_str(),
        ];
        command.extend_from_slice(argv);
        self.exec(&command)
    }

    async fn exec_async(&self, argv: &[&str]) -> Result<ExecOutput, Error> {
        let exec = self
            .docker
            .create_exec(
                &self.id,
                CreateExecOptions {
                    cmd: Some(argv.iter().map(|word| (*word).to_owned()).collect()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    user: Some("root".to_owned()),
                    ..CreateExecOptions::default()
                },
            )
            .await?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let StartExecResults::Attached { mut output, .. } = self.docker.start_exec(&exec.id, None).await? {
            while let Some(chunk) = output.next().await {
                match chunk? {
                    bollard::container::LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
                    bollard::container::LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    _ => {}
                }
            }
        }
        let inspect = self.docker.inspect_exec(&exec.id).await?;
        Ok(ExecOutput {
            code: inspect.exit_code.unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Writes `bytes` to the absolute `path` in the test host (root-owned, `mode`); the parent
    /// directory must exist.
    pub fn write_file(&self, path: &str, bytes: &[u8], mode: u32) -> Result<(), Error> {
        let (dir, file) = path
            .rsplit_once('/')
            .filter(|(_, file)| !file.is_empty())
            .ok_or_else(|| format!("write_file needs an absolute file path, not {path:?}"))?;
        let mut archive = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(u64::try_from(bytes.len())?);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        archive.append_data(&mut header, file, bytes)?;
        let options = UploadToContainerOptionsBuilder::default()
            .path(if dir.is_empty() { "/" } else { dir })
            .build();
        self.runtime.block_on(self.docker.upload_to_container(
            &self.id,
            Some(options),
            bollard::body_full(archive.into_inner()?.into()),
        ))?;
        Ok(())
    }

    /// Copies the binaries at `paths` (e.g. from [`crate::toolkit_binary`]) into the test host's
    /// `/usr/local/bin`, mode 0755, where a sysadmin would put them.
    pub fn install_binaries(&self, paths: &[PathBuf]) -> Result<(), Error> {
        for path in paths {
            let name = path
                .file_name()
                .ok_or_else(|| format!("{} names no file", path.display()))?
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(path).map_err(|error| format!("read {} ({error})", path.display()))?;
            self.write_file(&format!("/usr/local/bin/{name}"), &bytes, 0o755)?;
        }
        Ok(())
    }

    /// The units systemd reports as failed (empty on a healthy boot).
    pub fn failed_units(&self) -> Result<Vec<String>, Error> {
        let output = self.exec(&[
            "systemctl",
            "list-units",
            "--failed",
            "--plain",
            "--no-legend",
            "--no-pager",
        ])?;
        Ok(output
            .stdout
            .lines()
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .collect())
    }

    /// The unit's journal, for assertion messages.
    pub fn journal(&self, unit: &str) -> String {
        self.exec(&["journalctl", "--no-pager", "-n", "200", "-u", unit])
            .map(|output| output.stdout + &output.stderr)
            .unwrap_or_else(|error| format!("(journalctl failed: {error})"))
    }

    async fn remove_started_containers(&self) {
        let Ok(containers) = self
            .docker
            .list_containers(Some(ListContainersOptionsBuilder::default().all(true).build()))
            .await
        else {
            return;
        };
        let shared = self.shared_dir().display().to_string();
        for container in containers {
            let named_ours = container
                .names
                .iter()
                .flatten()
                .any(|name| name.trim_start_matches('/').starts_with(&self.name));
            let mounts_ours = container.mounts.iter().flatten().any(|mount| {
                mount
                    .source
                    .as_deref()
                    .is_some_and(|source| Path::new(source).starts_with(&shared))
            });
            if let Some(id) = container.id
                && (named_ours || mounts_ours)
            {
                let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
                let _ = self.docker.remove_container(&id, Some(options)).await;
            }
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let _ = self
            .runtime
            .block_on(self.docker.remove_container(&self.id, Some(options)));
        self.runtime.block_on(self.remove_started_containers());
        // The test host's services wrote files as their own uids; root removes them all.
        if let Some(shared) = self.shared.take() {
            let _ = shared.close();
        }
    }
}

fn unique_counter() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
