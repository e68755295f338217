//! The real images the slow tests run, built locally once per machine and reused:
//!
//! - [`debian_base`]: Debian 12 made by `debootstrap --variant=minbase bookworm`, imported as an
//!   image (no registry can be pulled from here);
//! - [`real_image`]: the real `pretix/standalone`, built from `images/pretix-standalone/` on that
//!   base, with pretix 2026.8.0 and gunicorn from PyPI;
//! - [`test_host_image`]: a Debian 12 server with systemd, PostgreSQL 15, Redis, nginx, cron and
//!   the Docker CLI, built from `images/test-host/`, booted by [`crate::TestHost`].
//!
//! Each tag is `pretix-testkit/<name>:<hash>`, the hash covering every input (the recipe files,
//! the pinned versions, the base's tag), so a changed input builds a new image and an unchanged
//! one is found and reused: the first run on a machine builds, every later run (and every other
//! test) only looks the tag up. A build takes an exclusive lock on a file per image name
//! ([`build_lock_path`]), so concurrent test processes never build the same image twice at the
//! same time; a waiting process finds the image built when it gets the lock.
//!
//! Builds need root (debootstrap), the `debootstrap` package (`scripts/install-test-deps`),
//! Debian's mirror and PyPI. Inside a build, pip trusts the host's CA bundle
//! (`/etc/ssl/certs/ca-certificates.crt`, copied into the build context and named by
//! `PIP_CERT`) for that one step only; the images themselves trust Debian's CAs only. Every build
//! writes its full log to a file in the temp dir and names it in an error.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, CreateImageOptionsBuilder};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::INSTALL_SCRIPT;
use crate::image::{Error, connect};

/// The pretix version the real image installs from PyPI.
pub const PRETIX_VERSION: &str = "2026.8.0";
/// The gunicorn version the real image installs from PyPI (upstream leaves it unpinned).
pub const GUNICORN_VERSION: &str = "27.0.1";

/// pip, setuptools and wheel in the real image's venv (upgraded from Debian's before pretix).
pub const PIP_VERSION: &str = "26.3";
pub const SETUPTOOLS_VERSION: &str = "84.2.1";
pub const WHEEL_VERSION: &str = "0.48.0";

/// The host's CA bundle, trusted by pip inside image builds only.
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Debian 12 for the base: suite, variant and mirror of `debootstrap`.
const BASE_SUITE: &str = "bookworm";
const BASE_VARIANT: &str = "minbase";
const BASE_MIRROR: &str = "http://deb.debian.org/debian";
/// The base's apt sources: the release, its updates and the security archive.
const BASE_SOURCES_LIST: &str = "deb http://deb.debian.org/debian bookworm main\n\
deb http://deb.debian.org/debian bookworm-updates main\n\
deb http://deb.debian.org/debian-security bookworm-security main\n";
/// Bumped when the way the base is made changes in a way the constants above do not show.
const BASE_RECIPE_VERSION: &str = "1";

/// One file of an image's build context.
struct ContextFile {
    name: &'static str,
    bytes: &'static [u8],
    mode: u32,
}

macro_rules! context_file {
    ($dir:literal, $name:literal, $mode:literal) => {
        ContextFile {
            name: $name,
            bytes: include_bytes!(concat!("../../../images/", $dir, "/", $name)),
            mode: $mode,
        }
    };
}

const PRETIX_CONTEXT: &[ContextFile] = &[
    context_file!("pretix-standalone", "Dockerfile", 0o644),
    context_file!("pretix-standalone", "rootfs/usr/local/bin/pretix", 0o755),
    context_file!("pretix-standalone", "rootfs/etc/sudoers.d/pretixuser", 0o440),
    context_file!("pretix-standalone", "rootfs/etc/nginx/nginx.conf", 0o644),
    context_file!(
        "pretix-standalone",
        "rootfs/etc/nginx/conf.d/nginx-max-body-size.conf",
        0o644
    ),
    context_file!("pretix-standalone", "rootfs/etc/supervisord.all.conf", 0o644),
    context_file!("pretix-standalone", "rootfs/etc/supervisord.web.conf", 0o644),
    context_file!("pretix-standalone", "rootfs/etc/supervisord/base.conf", 0o644),
    context_file!("pretix-standalone", "rootfs/etc/supervisord/nginx.conf", 0o644),
    context_file!("pretix-standalone", "rootfs/etc/supervisord/pretixweb.conf", 0o644),
    context_file!("pretix-standalone", "rootfs/etc/supervisord/pretixtask.conf", 0o644),
    context_file!("pretix-standalone", "src/Makefile", 0o644),
    context_file!("pretix-standalone", "src/manage.py", 0o755),
    context_file!("pretix-standalone", "src/production_settings.py", 0o644),
];

const TEST_HOST_CONTEXT: &[ContextFile] = &[
    context_file!("test-host", "Dockerfile", 0o644),
    context_file!("test-host", "rootfs/etc/systemd/system/docker.service", 0o644),
    context_file!(
        "test-host",
        "rootfs/etc/systemd/system/redis-server.service.d/10-test-host-no-user-namespace.conf",
        0o644
    ),
];

/// The Debian 12 base image, built on first use (about 30 s of debootstrap), as its tag.
pub fn debian_base() -> Result<String, Error> {
    blocking(|| async {
        let docker = connect().await?;
        ensure_base(&docker).await
    })
}

/// The real `pretix/standalone` image, built on first use (a few minutes, see README.md), as its
/// tag, e.g. `pretix-testkit/standalone:3f1c…`. Run it like upstream's image: entrypoint
/// `pretix`, command `all` by default, volumes `/etc/pretix` and `/data`, port 80, uid/gid 15371.
/// A plugin Dockerfile in the guide's shape (`FROM <tag>`, `USER root`, `RUN pip3 install X`,
/// `USER pretixuser`, `RUN cd /pretix/src && make production`) builds on top of it; its
/// `pip3` reaches PyPI from a build here only with `PIP_CERT` pointing at a copied CA bundle.
pub fn real_image() -> Result<String, Error> {
    blocking(|| async {
        let docker = connect().await?;
        let base = ensure_base(&docker).await?;
        ensure_built(&docker, "standalone", PRETIX_CONTEXT, &pretix_build_args(&base)).await
    })
}

/// The test host image [`crate::TestHost`] boots, built on first use, as its tag.
pub fn test_host_image() -> Result<String, Error> {
    blocking(|| async {
        let docker = connect().await?;
        let base = ensure_base(&docker).await?;
        ensure_built(&docker, "test-host", TEST_HOST_CONTEXT, &[("BASE", base)]).await
    })
}

/// The file whose exclusive lock serialises the builds of `tag` across test processes (one
/// file per image name, so the pretix image and the test host can build side by side).
pub fn build_lock_path(tag: &str) -> PathBuf {
    let name = tag
        .split_once(':')
        .map_or(tag, |(repository, _)| repository)
        .replace('/', "-");
    std::env::temp_dir().join(format!("{name}.build.lock"))
}

fn pretix_build_args(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("BASE", base.to_owned()),
        ("PRETIX_VERSION", PRETIX_VERSION.to_owned()),
        ("GUNICORN_VERSION", GUNICORN_VERSION.to_owned()),
        ("PIP_VERSION", PIP_VERSION.to_owned()),
        ("SETUPTOOLS_VERSION", SETUPTOOLS_VERSION.to_owned()),
        ("WHEEL_VERSION", WHEEL_VERSION.to_owned()),
    ]
}

/// Runs `future` to completion on a runtime of its own, on a thread of its own, so the blocking
/// API also works when called from inside another runtime.
pub(crate) fn blocking<T, F>(make_future: impl FnOnce() -> F + Send) -> Result<T, Error>
where
    T: Send,
    F: std::future::Future<Output = Result<T, Error>>,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(make_future())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn hex_digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn base_tag() -> String {
    let hash = hex_digest(&[
        BASE_SUITE.as_bytes(),
        BASE_VARIANT.as_bytes(),
        BASE_MIRROR.as_bytes(),
        BASE_SOURCES_LIST.as_bytes(),
        BASE_RECIPE_VERSION.as_bytes(),
    ]);
    format!("pretix-testkit/debian12:{hash}")
}

fn context_tag(name: &str, files: &[ContextFile], build_args: &[(&str, String)]) -> String {
    let mut parts: Vec<Vec<u8>> = vec![name.as_bytes().to_vec()];
    for file in files {
        parts.push(file.name.as_bytes().to_vec());
        parts.push(file.mode.to_le_bytes().to_vec());
        parts.push(file.bytes.to_vec());
    }
    for (key, value) in build_args {
        parts.push(format!("{key}={value}").into_bytes());
    }
    let borrowed: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    format!("pretix-testkit/{name}:{}", hex_digest(&borrowed))
}

async fn image_exists(docker: &Docker, tag: &str) -> bool {
    docker.inspect_image(tag).await.is_ok()
}

/// The exclusive build lock, held until dropped (closing the file releases it).
fn take_build_lock(tag: &str) -> Result<std::fs::File, Error> {
    let path = build_lock_path(tag);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| format!("open the image build lock {} ({error})", path.display()))?;
    file.lock()
        .map_err(|error| format!("lock {} ({error})", path.display()))?;
    Ok(file)
}

/// Runs `build` unless `tag` exists, under the build lock, checking again once it holds the lock.
async fn ensure<F>(docker: &Docker, tag: &str, build: F) -> Result<String, Error>
where
    F: AsyncFnOnce() -> Result<(), Error>,
{
    if image_exists(docker, tag).await {
        return Ok(tag.to_owned());
    }
    // Blocking here is fine: the runtime is this thread's own (see `blocking`).
    let _lock = take_build_lock(tag)?;
    if image_exists(docker, tag).await {
        return Ok(tag.to_owned());
    }
    let started = Instant::now();
    progress(&format!(
        "building {tag} (once per machine; later runs reuse it; log in {})",
        std::env::temp_dir().display()
    ));
    build().await?;
    if !image_exists(docker, tag).await {
        return Err(format!("the build of {tag} ended without the image: see the build log in the temp dir").into());
    }
    progress(&format!("built {tag} in {:.0?}", started.elapsed()));
    Ok(tag.to_owned())
}

async fn ensure_base(docker: &Docker) -> Result<String, Error> {
    let tag = base_tag();
    ensure(docker, &tag, async || build_base(docker, &tag).await).await
}

async fn build_base(docker: &Docker, tag: &str) -> Result<(), Error> {
    let debootstrap = ["/usr/sbin/debootstrap", "/sbin/debootstrap"]
        .into_iter()
        .map(Path::new)
        .find(|path| path.is_file())
        .ok_or_else(|| format!("debootstrap is not installed: run {INSTALL_SCRIPT} (as root)"))?;
    let work = tempfile::Builder::new()
        .prefix("pretix-testkit-debootstrap.")
        .tempdir()?;
    let rootfs = work.path().join("rootfs");
    let log_path = log_path("debian12");
    let log = std::fs::File::create(&log_path)?;
    let status = Command::new(debootstrap)
        .arg(format!("--variant={BASE_VARIANT}"))
        .arg(BASE_SUITE)
        .arg(&rootfs)
        .arg(BASE_MIRROR)
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .map_err(|error| format!("run debootstrap ({error})"))?;
    if !status.success() {
        return Err(format!(
            "debootstrap failed ({status}); it needs root and {BASE_MIRROR}: {}",
            log_tail(&log_path)
        )
        .into());
    }
    std::fs::write(rootfs.join("etc/apt/sources.list"), BASE_SOURCES_LIST)?;
    for entry in std::fs::read_dir(rootfs.join("var/cache/apt/archives"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == "deb") {
            std::fs::remove_file(path)?;
        }
    }
    // Docker makes /dev, /etc/hostname and /etc/resolv.conf itself.
    let output = Command::new("tar")
        .args(["--numeric-owner", "--exclude=./dev/*", "-C"])
        .arg(&rootfs)
        .args(["-cf", "-", "."])
        .output()
        .map_err(|error| format!("run tar ({error})"))?;
    if !output.status.success() {
        return Err(format!(
            "tar of the base rootfs failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let (repository, image_tag) = tag.rsplit_once(':').ok_or("an image tag needs a :")?;
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repository)
        .tag(image_tag)
        .changes(vec![r#"CMD ["/bin/bash"]"#.to_owned()])
        .build();
    let mut stream = docker.create_image(Some(options), Some(bollard::body_full(output.stdout.into())), None);
    while let Some(message) = stream.next().await {
        message.map_err(|error| format!("import the Debian 12 base as {tag} ({error})"))?;
    }
    Ok(())
}

async fn ensure_built(
    docker: &Docker,
    name: &str,
    files: &'static [ContextFile],
    build_args: &[(&'static str, String)],
) -> Result<String, Error> {
    let tag = context_tag(name, files, build_args);
    ensure(docker, &tag, async || {
        build_context_image(docker, name, &tag, files, build_args).await
    })
    .await
}

fn build_context(files: &[ContextFile]) -> Result<Vec<u8>, Error> {
    let ca = std::fs::read(HOST_CA_BUNDLE)
        .map_err(|error| format!("read {HOST_CA_BUNDLE} ({error}): install ca-certificates"))?;
    let mut archive = tar::Builder::new(Vec::new());
    // Every parent directory explicitly, root-owned 0755, so COPY never guesses their modes.
    let mut dirs: Vec<&Path> = files
        .iter()
        .flat_map(|file| Path::new(file.name).ancestors().skip(1))
        .filter(|dir| !dir.as_os_str().is_empty())
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        header.set_mtime(0);
        header.set_cksum();
        archive.append_data(&mut header, dir, std::io::empty())?;
    }
    let ca_file = ContextFile {
        name: "ca.crt",
        bytes: &[],
        mode: 0o644,
    };
    for (file, bytes) in files
        .iter()
        .map(|file| (file, file.bytes))
        .chain(std::iter::once((&ca_file, ca.as_slice())))
    {
        let mut header = tar::Header::new_gnu();
        header.set_size(u64::try_from(bytes.len())?);
        header.set_mode(file.mode);
        header.set_mtime(0);
        header.set_cksum();
        archive.append_data(&mut header, file.name, bytes)?;
    }
    Ok(archive.into_inner()?)
}

async fn build_context_image(
    docker: &Docker,
    name: &str,
    tag: &str,
    files: &[ContextFile],
    build_args: &[(&str, String)],
) -> Result<(), Error> {
    let args: HashMap<String, String> = build_args
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect();
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .buildargs(&args)
        .build();
    let log_path = log_path(name);
    let mut log = std::fs::File::create(&log_path)?;
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(build_context(files)?.into())));
    while let Some(message) = stream.next().await {
        let info = match message {
            Ok(info) => info,
            Err(error) => {
                return Err(format!("building {tag} failed: {error}; {}", log_tail(&log_path)).into());
            }
        };
        if let Some(text) = &info.stream {
            log.write_all(text.as_bytes())?;
        }
        if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
            writeln!(log, "{error}")?;
            return Err(format!("building {tag} failed: {error}; {}", log_tail(&log_path)).into());
        }
    }
    Ok(())
}

/// Writes to stderr directly, past the test harness's output capture: a first run's build takes
/// minutes, and whoever waits should see why.
fn progress(message: &str) {
    let _ = writeln!(std::io::stderr(), "pretix-testkit: {message}");
}

fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pretix-testkit-build-{name}-{}.log", std::process::id()))
}

/// The last lines of a build log and where the whole log is.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    format!("the whole log is {}; its end:\n{tail}", path.display())
}
