//! `verify` (read-only): the image and its digest, each unit installed and enabled (or each
//! container made from the spec), each container running on the right image, its port on
//! loopback only and `/healthcheck/` answering, what only the container can prove (pretix's
//! database login over the docker host address, Redis over the mounted socket as uid 15371),
//! and whether `pretix upgrade` ran since the image last changed.

use std::collections::BTreeMap;

use pretix_site::docker::{ContainerInfo, Docker, ExecOptions, ImageInfo};
use pretix_site::fs::CurrentFile;
use pretix_site::report::CheckStatus;
use pretix_site::sections::{Container, Supervisor};
use pretix_site::{Context, Document, ToolError};

use crate::apply::{announce, load};
use crate::exec::upgrade_marker;
use crate::host;
use crate::plan::{short_id, spec_difference};
use crate::spec::{Desired, Instance};
use crate::unit;

/// The Python the database probe runs in the container, through pretix's own settings.
pub const DATABASE_PROBE: &str = "from django.db import connection\nconnection.ensure_connection()\ns = connection.settings_dict\nprint('pretix-probe: database', s['NAME'], 'accepts', s['USER'], 'from the container via', s['HOST'] or 'the local socket')\n";

/// The Python the Redis probe runs: the same connection `/healthcheck/` uses.
pub const REDIS_PROBE: &str = "import os\nfrom django.conf import settings\nif not settings.HAS_REDIS:\n    print('pretix-probe: redis not configured')\nelse:\n    from django_redis import get_redis_connection\n    get_redis_connection('redis').ping()\n    print('pretix-probe: redis answers PING as uid', os.getuid())\n";

pub fn verify(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let (section, desired) = load(document)?;
    announce(ctx, &desired);
    let image_ref = desired.run_image();
    let docker = match host::connect(&desired) {
        Ok(docker) => {
            ctx.check_item(
                "docker",
                CheckStatus::Ok,
                format!("the daemon answers at {}", docker.endpoint()),
            );
            Some(docker)
        }
        Err(error) => {
            ctx.check_item("docker", CheckStatus::Failure, error.to_string());
            None
        }
    };
    let image = docker
        .as_ref()
        .and_then(|docker| check_image(ctx, docker, &section, &desired));
    let mut running = BTreeMap::new();
    for instance in &desired.instances {
        if desired.supervisor == Supervisor::Systemd {
            check_unit(ctx, &desired, instance, &image_ref)?;
        }
        let Some(docker) = &docker else { continue };
        if let Some(container) = check_container(ctx, docker, &section, &desired, instance, &image_ref, image.as_ref())?
        {
            running.insert(instance.unit.clone(), container);
        }
    }
    if let Some(docker) = &docker {
        let probe_target = section
            .task_container()
            .map(|instance| instance.unit)
            .filter(|unit| running.contains_key(unit))
            .or_else(|| running.keys().next().cloned());
        match probe_target {
            Some(target) => probes(ctx, docker, &target),
            None => ctx.check_item(
                "probes",
                CheckStatus::Failure,
                "no container runs, so the database and Redis could not be tried from inside: start it (pretix-unit apply)",
            ),
        }
    }

    ctx.verify_outcome("each failed item says what to do")
}

fn check_image(ctx: &mut Context, docker: &Docker, section: &Container, desired: &Desired) -> Option<ImageInfo> {
    let image_ref = desired.image.to_string();
    match docker.inspect_image(&image_ref) {
        Ok(Some(image)) => {
            let digest = image.digest_for(&desired.image.repository);
            let shown = digest
                .clone()
                .unwrap_or_else(|| "no registry digest (built here)".to_owned());
            match (&section.image_digest, &digest) {
                (Some(recorded), Some(found)) if recorded != found => ctx.check_item(
                    "image",
                    CheckStatus::Warning,
                    format!(
                        "{image_ref} is {shown}, but the document recorded {recorded}: someone pulled since; run \
                         pretix-unit apply to restart on it, then pretix-unit upgrade"
                    ),
                ),
                _ => ctx.check_item(
                    "image",
                    CheckStatus::Ok,
                    format!("{image_ref} is image {}, {shown}", short_id(&image.id)),
                ),
            }
            Some(image)
        }
        Ok(None) => {
            ctx.check_item(
                "image",
                CheckStatus::Failure,
                format!("{image_ref} is not on this host: run pretix-unit pull"),
            );
            None
        }
        Err(error) => {
            ctx.check_item("image", CheckStatus::Failure, error.to_string());
            None
        }
    }
}

fn check_unit(ctx: &mut Context, desired: &Desired, instance: &Instance, image_ref: &str) -> Result<(), ToolError> {
    let found = host::read_unit(ctx, &desired.unit_dir, &instance.unit)?;
    let path = desired.unit_dir.join(&instance.unit);
    let wanted = unit::render(desired, instance, image_ref)?;
    let name = format!("unit {}", instance.unit);
    match found.text {
        None => ctx.check_item(
            &name,
            CheckStatus::Failure,
            format!("{} is missing: run pretix-unit apply", path.display()),
        ),
        Some(text) if text != wanted => ctx.check_item(
            &name,
            CheckStatus::Failure,
            format!(
                "{} differs from what the document gives (edited by hand, or the document changed): run pretix-unit \
                 apply --check --diff to see how",
                path.display()
            ),
        ),
        Some(_) => ctx.check_item(
            &name,
            CheckStatus::Ok,
            format!("{} is as the document gives", path.display()),
        ),
    }
    let name = format!("enabled {}", instance.unit);
    if found.enabled {
        ctx.check_item(&name, CheckStatus::Ok, "starts at boot (multi-user.target)");
    } else {
        ctx.check_item(
            &name,
            CheckStatus::Failure,
            format!(
                "not enabled, so pretix does not come back after a reboot: systemctl enable {}",
                instance.unit
            ),
        );
    }
    Ok(())
}

fn check_container(
    ctx: &mut Context,
    docker: &Docker,
    section: &Container,
    desired: &Desired,
    instance: &Instance,
    image_ref: &str,
    image: Option<&ImageInfo>,
) -> Result<Option<ContainerInfo>, ToolError> {
    let name = format!("container {}", instance.unit);
    let container = match docker.inspect_container(instance.name()) {
        Ok(Some(container)) => container,
        Ok(None) => {
            ctx.check_item(&name, CheckStatus::Failure, "does not exist: run pretix-unit apply");
            return Ok(None);
        }
        Err(error) => {
            ctx.check_item(&name, CheckStatus::Failure, error.to_string());
            return Ok(None);
        }
    };
    let drift = match desired.supervisor {
        Supervisor::Docker => spec_difference(instance, image_ref, &container),
        Supervisor::Systemd => settings_difference(instance, &container),
    };
    match drift {
        Some(reason) => ctx.check_item(
            &format!("settings {}", instance.unit),
            CheckStatus::Failure,
            format!("the container differs from the document ({reason}): run pretix-unit apply"),
        ),
        None => ctx.check_item(
            &format!("settings {}", instance.unit),
            CheckStatus::Ok,
            "mounts, environment, port and command as the document gives",
        ),
    }
    if !container.running {
        let log = docker
            .log_tail(instance.name(), 5)
            .map(|lines| lines.join(" / "))
            .unwrap_or_default();
        ctx.check_item(
            &name,
            CheckStatus::Failure,
            format!(
                "is {} (exit code {}): start it (pretix-unit apply); its last log lines: {log}",
                container.status,
                container.exit_code.unwrap_or_default()
            ),
        );
        return Ok(None);
    }
    let since = container.started_at.clone().unwrap_or_default();
    if container.restart_count > 0 {
        ctx.check_item(
            &name,
            CheckStatus::Warning,
            format!(
                "running since {since}, but Docker restarted it {} time(s): see docker logs {}",
                container.restart_count, instance.unit
            ),
        );
    } else {
        ctx.check_item(&name, CheckStatus::Ok, format!("running since {since}"));
    }
    if let Some(image) = image {
        let item = format!("image of {}", instance.unit);
        if image.id == container.image_id {
            ctx.check_item(
                &item,
                CheckStatus::Ok,
                format!("runs {image_ref} ({})", short_id(&image.id)),
            );
        } else {
            ctx.check_item(
                &item,
                CheckStatus::Warning,
                format!(
                    "runs image {}, but {image_ref} is now {}: run pretix-unit apply to restart it on the new image, \
                     then pretix-unit upgrade",
                    short_id(&container.image_id),
                    short_id(&image.id)
                ),
            );
        }
    }
    check_port(ctx, section, instance, &container, desired.site_host.as_deref());
    check_upgrade(ctx, desired, instance, &container);
    Ok(Some(container))
}

/// What differs between a container that a unit started and the document's spec: the mounts,
/// the environment the spec sets (the image adds its own), the published port and the command.
pub fn settings_difference(instance: &Instance, container: &ContainerInfo) -> Option<String> {
    let mut differs = Vec::new();
    let mounts;
    // As a set: the docker CLI that the unit runs collects `-v` options through a map, so the
    // order Docker reports them in varies from start to start.
    let sorted = |binds: &[String]| {
        let mut binds = binds.to_vec();
        binds.sort();
        binds
    };
    if sorted(&container.binds) != sorted(&instance.binds) {
        mounts = format!(
            "mounts (the document's {} against the container's {})",
            instance.binds.join(" "),
            container.binds.join(" ")
        );
        differs.push(mounts.as_str());
    }
    let env_missing = instance
        .env
        .iter()
        .any(|(name, value)| !container.env.contains(&format!("{name}={value}")));
    let managed = ["AUTOMIGRATE=", "NUM_WORKERS="];
    let env_extra = container.env.iter().any(|entry| {
        (managed.iter().any(|prefix| entry.starts_with(prefix))
            || entry.starts_with("PRETIX_")
            || entry.starts_with("FILE__PRETIX_"))
            && !instance
                .env
                .iter()
                .any(|(name, value)| *entry == format!("{name}={value}"))
    });
    if env_missing || env_extra {
        differs.push("environment");
    }
    if container.ports != instance.port.iter().cloned().collect::<Vec<_>>() {
        differs.push("published port");
    }
    if container.command != instance.args {
        differs.push("command");
    }
    if container.group_add != instance.group_add {
        differs.push("groups");
    }
    (!differs.is_empty()).then(|| format!("{} changed", differs.join(", ")))
}

fn check_port(
    ctx: &mut Context,
    section: &Container,
    instance: &Instance,
    container: &ContainerInfo,
    site_host: Option<&str>,
) {
    let item = format!("port {}", instance.unit);
    let public: Vec<String> = container
        .ports
        .iter()
        .filter(|port| {
            !port
                .host_ip
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_loopback())
        })
        .map(|port| {
            format!(
                "{}:{}",
                if port.host_ip.is_empty() {
                    "0.0.0.0"
                } else {
                    &port.host_ip
                },
                port.host_port
            )
        })
        .collect();
    if !public.is_empty() {
        let status = if section.allow_public_bind {
            CheckStatus::Warning
        } else {
            CheckStatus::Failure
        };
        ctx.check_item(
            &item,
            status,
            format!(
                "published beyond loopback on {}: Docker's ports bypass ufw; bind 127.0.0.1 (container.bind_address)",
                public.join(", ")
            ),
        );
    } else if let Some(port) = &instance.port {
        if !container.ports.contains(port) {
            ctx.check_item(
                &item,
                CheckStatus::Failure,
                format!(
                    "not published on {}:{} as the document says: run pretix-unit apply",
                    port.host_ip, port.host_port
                ),
            );
            return;
        }
        match host::healthcheck(port, site_host) {
            Ok(200) => ctx.check_item(
                &item,
                CheckStatus::Ok,
                format!("loopback only; /healthcheck/ on {} answers 200", host::reach_address(port)),
            ),
            Ok(status) => ctx.check_item(
                &item,
                CheckStatus::Failure,
                format!(
                    "/healthcheck/ on {} answers {status}: pretix cannot reach its database, Redis or cache; see docker \
                     logs {}",
                    host::reach_address(port),
                    instance.unit
                ),
            ),
            Err(error) => ctx.check_item(
                &item,
                CheckStatus::Failure,
                format!("/healthcheck/ does not answer ({error}): see docker logs {}", instance.unit),
            ),
        }
    } else {
        ctx.check_item(&item, CheckStatus::Ok, "publishes no port");
    }
}

fn check_upgrade(ctx: &mut Context, desired: &Desired, instance: &Instance, container: &ContainerInfo) {
    let marker = upgrade_marker(desired, &instance.unit);
    let recorded = CurrentFile::read(&ctx.root().host_path(&marker))
        .ok()
        .flatten()
        .map(|file| String::from_utf8_lossy(&file.content).trim().to_owned());
    let item = format!("upgrade {}", instance.unit);
    match recorded {
        Some(id) if id == container.image_id => ctx.check_item(
            &item,
            CheckStatus::Ok,
            format!("pretix upgrade ran on this image ({})", short_id(&id)),
        ),
        Some(id) => ctx.check_item(
            &item,
            CheckStatus::Warning,
            format!(
                "pretix upgrade last ran on image {}, the container runs {}: run pretix-unit upgrade",
                short_id(&id),
                short_id(&container.image_id)
            ),
        ),
        None => ctx.check_item(
            &item,
            CheckStatus::Warning,
            format!(
                "no record that pretix upgrade ran on image {} ({} is missing): run pretix-unit upgrade",
                short_id(&container.image_id),
                marker.display()
            ),
        ),
    }
}

/// The answer of [`ADMIN_PROBE`] while the guide's first login still works.
const DEFAULT_ADMIN: &str = "admin@localhost still logs in with the password admin";

/// Whether the guide's default admin (admin@localhost / admin) still has its password: anyone who
/// reaches the site could log in as the administrator.
pub const ADMIN_PROBE: &str = "from pretix.base.models import User\nuser = User.objects.filter(email='admin@localhost', is_active=True).first()\nif user is not None and user.check_password('admin'):\n    print('pretix-probe: admin admin@localhost still logs in with the password admin: log in at /control/ and change it now')\nelse:\n    print('pretix-probe: admin the default password admin no longer works')\n";

/// What only the container can prove: pretix logs in to the database over the docker host
/// address (Docker's NAT keeps the host from proving the pg_hba rule), and Redis answers over the
/// mounted socket as the container's uid.
fn probes(ctx: &mut Context, docker: &Docker, target: &str) {
    let options = ExecOptions {
        // A probe must never migrate: the entrypoint migrates first unless told to skip.
        env: vec!["AUTOMIGRATE=skip".to_owned()],
        ..ExecOptions::default()
    };
    for (item, code, expected) in [
        ("database from the container", DATABASE_PROBE, "pretix-probe: database"),
        ("redis from the container", REDIS_PROBE, "pretix-probe: redis"),
        ("default admin password", ADMIN_PROBE, "pretix-probe: admin"),
    ] {
        let mut output = String::new();
        let command = ["pretix", "shell", "-c", code].map(str::to_owned);
        let outcome = docker.exec(target, &command, &options, &mut |_, bytes| {
            output.push_str(&String::from_utf8_lossy(bytes));
        });
        let found = output
            .lines()
            .find(|line| line.starts_with(expected))
            .map(str::to_owned);
        let last = || {
            let lines: Vec<&str> = output.lines().collect();
            lines[lines.len().saturating_sub(5)..].join(" / ")
        };
        match (outcome, found) {
            (Ok(0), Some(line)) if line.contains("not configured") => ctx.check_item(
                item,
                CheckStatus::Warning,
                format!("{target}: pretix has no [redis] location; run pretix-redis apply and pretix-cfg apply"),
            ),
            (Ok(0), Some(line)) => {
                let line = line.trim_start_matches("pretix-probe: ").to_owned();
                let status = if (item.starts_with("redis") && !line.ends_with(" 15371")) || line.contains(DEFAULT_ADMIN)
                {
                    CheckStatus::Warning
                } else {
                    CheckStatus::Ok
                };
                ctx.check_item(item, status, format!("{target}: {line}"));
            }
            (Ok(0), None) => ctx.check_item(
                item,
                CheckStatus::Failure,
                format!(
                    "{target}: pretix shell printed no answer (is this the pretix image?); its output: {}",
                    last()
                ),
            ),
            (Ok(code), _) => ctx.check_item(
                item,
                CheckStatus::Failure,
                format!(
                    "{target}: failed (exit code {code}); for the database check pg_hba.conf and listen_addresses \
                     (pretix-db apply), for Redis the socket's mode and mount (pretix-redis apply): {}",
                    last()
                ),
            ),
            (Err(error), _) => ctx.check_item(item, CheckStatus::Failure, format!("{target}: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::HostFacts;
    use pretix_site::sections::Paths;

    fn instance() -> Instance {
        let container: Container =
            serde_json::from_value(serde_json::json!({"num_workers": 2})).unwrap_or_else(|error| panic!("{error}"));
        let host = HostFacts {
            memory_bytes: None,
            cpus: 1,
        };
        let desired =
            crate::spec::resolve(&container, &Paths::default(), None, &host).unwrap_or_else(|error| panic!("{error}"));
        desired.instances[0].clone()
    }

    #[test]
    fn a_container_started_from_the_unit_matches_and_a_stale_one_is_named() {
        let instance = instance();
        let mut container = ContainerInfo {
            binds: instance.binds.clone(),
            env: vec!["PATH=/usr/bin".to_owned(), "NUM_WORKERS=2".to_owned()],
            ports: instance.port.iter().cloned().collect(),
            command: instance.args.clone(),
            ..ContainerInfo::default()
        };
        assert_eq!(settings_difference(&instance, &container), None);
        container.binds.reverse();
        assert_eq!(
            settings_difference(&instance, &container),
            None,
            "the order of the mounts is Docker's"
        );
        container.env.push("AUTOMIGRATE=skip".to_owned());
        container.binds.pop();
        let difference = settings_difference(&instance, &container).unwrap_or_default();
        assert!(
            difference.starts_with("mounts (the document's ") && difference.ends_with("), environment changed"),
            "{difference}"
        );
    }
}
