//! Reading the host and the daemon, and waiting for a started container: the side of
//! pretix-unit that touches the world (through the shared Docker and file seams).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use pretix_site::docker::{ContainerInfo, Docker, DockerError, PublishedPort};
use pretix_site::fs::CurrentFile;
use pretix_site::{Context, ToolError};

use crate::plan::{State, UnitFile};
use crate::spec::{Desired, Instance};

/// How many log lines a failure shows.
pub const LOG_LINES: usize = 20;

/// Connects to the daemon the document names.
pub fn connect(desired: &Desired) -> Result<Docker, ToolError> {
    Docker::connect(desired.docker_host.as_deref()).map_err(ToolError::from)
}

/// The unit files and containers as they are now.
pub fn read_state(
    ctx: &Context,
    desired: &Desired,
    docker: Option<&Docker>,
    image_id: Option<String>,
) -> Result<State, ToolError> {
    let mut state = State {
        image_id,
        ..State::default()
    };
    for instance in &desired.instances {
        state.units.insert(
            instance.unit.clone(),
            read_unit(ctx, &desired.unit_dir, &instance.unit)?,
        );
        if let Some(docker) = docker {
            state
                .containers
                .insert(instance.unit.clone(), docker.inspect_container(instance.name())?);
        }
    }
    Ok(state)
}

/// A unit file and whether it is enabled (the link `systemctl enable` makes for
/// `WantedBy=multi-user.target`).
pub fn read_unit(ctx: &Context, unit_dir: &Path, unit: &str) -> Result<UnitFile, ToolError> {
    let path = unit_dir.join(unit);
    let text = CurrentFile::read(&ctx.root().host_path(&path))
        .map_err(|error| {
            ToolError::failed(format!(
                "cannot read {} ({error}): it must be a regular file, not a link",
                path.display()
            ))
        })?
        .map(|file| String::from_utf8_lossy(&file.content).into_owned());
    let wants = unit_dir.join("multi-user.target.wants").join(unit);
    let enabled = std::fs::symlink_metadata(ctx.root().host_path(&wants)).is_ok();
    Ok(UnitFile { text, enabled })
}

/// Waits until the container `instance` runs (a new one, when `before` names the old one) and,
/// when it serves HTTP, answers `/healthcheck/` with 200. A container that exits is a failure
/// showing the end of its log.
pub fn wait_started(
    ctx: &Context,
    docker: &Docker,
    instance: &Instance,
    before: Option<&str>,
    timeout: Duration,
    site_host: Option<&str>,
) -> Result<String, ToolError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut next_note = started + Duration::from_secs(15);
    let what = match &instance.port {
        Some(port) => format!("{} to answer /healthcheck/ on {}", instance.unit, address_text(port)),
        None => format!("{} to run", instance.unit),
    };
    ctx.info(&format!(
        "waiting up to {} s for {what} (a first start migrates the database first)",
        timeout.as_secs()
    ));
    // (container id, restart count, since when) of the first sighting of it running.
    let mut running_since: Option<(String, i64, Instant)> = None;
    loop {
        let container = docker.inspect_container(instance.name())?;
        let fresh = container
            .as_ref()
            .filter(|container| before.is_none_or(|old| old != container.id));
        if let Some(container) = fresh {
            // Docker's restart policy brings an exited container back at once: a restart or a
            // "restarting" state is how an exit shows then.
            let restarted = running_since
                .as_ref()
                .is_some_and(|(id, count, _)| *id != container.id || *count != container.restart_count);
            if exited(container) || restarted || container.status == "restarting" {
                return Err(exited_error(docker, instance, container));
            }
            if container.running {
                let since = running_since
                    .get_or_insert_with(|| (container.id.clone(), container.restart_count, Instant::now()))
                    .2;
                match &instance.port {
                    Some(port) if healthcheck(port, site_host) == Ok(200) => {
                        return Ok(format!(
                            "{} answers /healthcheck/ on {} ({} s)",
                            instance.unit,
                            address_text(port),
                            started.elapsed().as_secs()
                        ));
                    }
                    Some(_) => {}
                    // No HTTP to ask: running for a few seconds without exiting is the proof.
                    None if since.elapsed() >= Duration::from_secs(3) => {
                        return Ok(format!("{} runs", instance.unit));
                    }
                    None => {}
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let log = docker
                .log_tail(instance.name(), LOG_LINES)
                .map(|lines| lines.join("\n"))
                .unwrap_or_default();
            return Err(ToolError::failed(format!(
                "{what} did not happen within {} s: see its log (docker logs {}), raise container.start_timeout_seconds \
                 if the first migration is still running{}",
                timeout.as_secs(),
                instance.unit,
                if log.is_empty() {
                    String::new()
                } else {
                    format!("; its last lines:\n{log}")
                }
            )));
        }
        if now >= next_note {
            ctx.info(&format!("still waiting for {what} ({} s)", started.elapsed().as_secs()));
            next_note = now + Duration::from_secs(15);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn exited(container: &ContainerInfo) -> bool {
    matches!(container.status.as_str(), "exited" | "dead")
}

fn exited_error(docker: &Docker, instance: &Instance, container: &ContainerInfo) -> ToolError {
    let log = docker
        .log_tail(instance.name(), LOG_LINES)
        .map(|lines| lines.join("\n"))
        .unwrap_or_else(|error| format!("(its log could not be read: {error})"));
    let how = if exited(container) {
        format!("exit code {}", container.exit_code.unwrap_or_default())
    } else {
        format!(
            "Docker restarts it: {}, restarted {} time(s)",
            container.status, container.restart_count
        )
    };
    let error = container
        .error
        .as_ref()
        .map(|error| format!(", {error}"))
        .unwrap_or_default();
    ToolError::failed(format!(
        "container {} exited at once ({how}{error}): fix the cause its log shows, then run pretix-unit apply again; \
         its last lines:\n{log}",
        instance.unit,
    ))
}

/// Where the published port is reached from this host (a wildcard bind is reached on loopback).
pub fn reach_address(port: &PublishedPort) -> SocketAddr {
    let ip: IpAddr = port.host_ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let ip = match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        other => other,
    };
    SocketAddr::new(ip, port.host_port)
}

fn address_text(port: &PublishedPort) -> String {
    reach_address(port).to_string()
}

/// `GET /healthcheck/` on the published port, for the site's host name (pretix refuses any other
/// `Host` with 400); the HTTP status.
pub fn healthcheck(port: &PublishedPort, site_host: Option<&str>) -> Result<u16, String> {
    let address = reach_address(port);
    let mut stream =
        TcpStream::connect_timeout(&address, Duration::from_secs(3)).map_err(|error| format!("{address}: {error}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(3))))
        .map_err(|error| error.to_string())?;
    write!(
        stream,
        "GET /healthcheck/ HTTP/1.0\r\nHost: {}\r\nUser-Agent: pretix-unit\r\n\r\n",
        site_host.map_or_else(|| address.to_string(), str::to_owned)
    )
    .map_err(|error| format!("{address}: {error}"))?;
    let mut head = [0u8; 64];
    let read = stream.read(&mut head).map_err(|error| format!("{address}: {error}"))?;
    let text = String::from_utf8_lossy(&head[..read]);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{address}: not an HTTP answer"))
}

/// The containers' current ids, to tell a restarted container from the old one.
pub fn container_ids(state: &State) -> BTreeMap<String, String> {
    state
        .containers
        .iter()
        .filter_map(|(name, container)| Some((name.clone(), container.as_ref()?.id.clone())))
        .collect()
}

/// A Docker error with the context of what was being done.
pub fn docker_failed(action: &str, error: DockerError) -> ToolError {
    ToolError::Failed(anyhow::Error::new(error).context(action.to_owned()))
}
