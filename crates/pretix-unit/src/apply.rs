//! `apply` and `pull`: validate, make sure the image is here (pulling it with progress and
//! recording its digest), then inspect → plan → apply the units (systemd) or containers (docker).

use std::collections::BTreeMap;

use pretix_site::docker::{Docker, ImageInfo, StderrProgress};
use pretix_site::fs::FileSpec;
use pretix_site::run::{Output, Verbosity};
use pretix_site::sections::{Container, Paths, Supervisor};
use pretix_site::service::ServiceOutcome;
use pretix_site::{Context, Document, ToolError};
use serde_json::Value;

use crate::host::{self, docker_failed};
use crate::plan::{self, ImageStep, Step, short_id};
use crate::spec::{self, Desired};
use crate::unit;
use crate::workers::HostFacts;

/// Reads and validates everything this tool uses from the document. Pure but for the host's
/// memory and CPU count.
pub fn load(document: &Document) -> Result<(Container, Desired), ToolError> {
    let section: Container = document.section("container")?;
    let paths: Paths = document.section("paths")?;
    let redis_mode = document
        .raw_section("redis")
        .and_then(|redis| redis.get("socket_mode"))
        .and_then(Value::as_str);
    let mut desired = spec::resolve(&section, &paths, redis_mode, &HostFacts::of_this_host())?;
    desired.plugin_image = spec::plugin_image(document.raw_section("plugins"))?;
    desired.site_host = document
        .raw_section("config")
        .and_then(|config| config.get("pretix"))
        .and_then(|pretix| pretix.get("url"))
        .and_then(Value::as_str)
        .and_then(spec::site_host);
    Ok((section, desired))
}

/// Says the warnings and notes every run carries.
pub fn announce(ctx: &mut Context, desired: &Desired) {
    for warning in &desired.warnings {
        ctx.warn(warning.clone());
    }
    for note in &desired.notes {
        ctx.info(note);
    }
}

/// `pretix-unit pull`: fetch the image now and record its digest; nothing else.
pub fn pull(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let (section, desired) = load(document)?;
    announce(ctx, &desired);
    if ctx.is_offline() {
        ctx.changed(format!("pull {}", desired.image));
        return Ok(format!(
            "would pull {} (offline: the registry was not asked)",
            desired.image
        ));
    }
    let docker = host::connect(&desired)?;
    let image = ensure_image(ctx, document, &section, &desired, &docker, true)?;
    Ok(match image {
        Some(image) => format!(
            "{} is image {}{}",
            desired.image,
            short_id(&image.id),
            image
                .digest_for(&desired.image.repository)
                .map(|digest| format!(", digest {digest}"))
                .unwrap_or_default()
        ),
        None => format!("would pull {}", desired.image),
    })
}

/// `pretix-unit apply`.
pub fn apply(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let (section, desired) = load(document)?;
    announce(ctx, &desired);
    let image_ref = desired.run_image();
    if desired.supervisor == Supervisor::Docker && !ctx.is_offline() {
        for instance in &desired.instances {
            let unit_file = host::read_unit(ctx, &desired.unit_dir, &instance.unit)?;
            if unit_file.text.is_some() {
                ctx.warn(format!(
                    "{} exists although container.supervisor is docker: systemd would start a second {} container; \
                     run systemctl disable --now {} and remove the file",
                    desired.unit_dir.join(&instance.unit).display(),
                    instance.unit,
                    instance.unit
                ));
            }
        }
    }

    // The image first: whether the containers need a restart depends on which image is here.
    let docker = if ctx.is_offline() {
        None
    } else {
        Some(host::connect(&desired)?)
    };
    let image = match &docker {
        Some(docker) => {
            let base = ensure_image(ctx, document, &section, &desired, docker, false)?;
            match &desired.plugin_image {
                Some(plugin) => Some(plugin_image(ctx, docker, plugin, base.as_ref(), &desired)?),
                None => base,
            }
        }
        None => {
            ctx.note(format!(
                "offline: the image {image_ref} and the containers were not inspected; the plan assumes none exist"
            ));
            None
        }
    };

    // Render and verify every unit before anything is written.
    let mut rendered = BTreeMap::new();
    if desired.supervisor == Supervisor::Systemd {
        for instance in &desired.instances {
            let text = unit::render(&desired, instance, &image_ref)?;
            unit::verify(&instance.unit, &text, &mut |line| ctx.debug(line))?;
            rendered.insert(instance.unit.clone(), text);
        }
    }
    let state = host::read_state(
        ctx,
        &desired,
        docker.as_ref(),
        image.as_ref().map(|image| image.id.clone()),
    )?;
    let steps = plan::plan(&desired, &image_ref, &rendered, &state);
    let before = host::container_ids(&state);
    perform(ctx, &desired, &image_ref, docker.as_ref(), &steps, &before)?;

    let changed = steps.iter().filter(|step| !matches!(step, Step::Wait { .. })).count();
    let units = desired
        .instances
        .iter()
        .map(|instance| instance.unit.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(match (changed, ctx.is_check()) {
        (0, _) => format!("{units} up to date, running {image_ref}"),
        (_, true) => format!("{changed} step(s) planned for {units}"),
        (_, false) => format!("{units} running {image_ref}"),
    })
}

/// Makes sure the image is on the host (pulling it when `always` or when it is missing) and
/// records its registry digest in the document. `None` when a pull was only planned.
fn ensure_image(
    ctx: &mut Context,
    document: &mut Document,
    section: &Container,
    desired: &Desired,
    docker: &Docker,
    always: bool,
) -> Result<Option<ImageInfo>, ToolError> {
    let image_ref = desired.image.to_string();
    let local = docker.inspect_image(&image_ref)?;
    let info = match plan::plan_image(local.as_ref(), always) {
        ImageStep::Keep(info) => info,
        ImageStep::Pull { reason } => {
            if ctx.is_check() || ctx.root().is_redirected() {
                let what = format!("pull {image_ref} ({reason})");
                if ctx.is_check() {
                    ctx.changed(what);
                } else {
                    ctx.note(format!("skipped (--root): {what}"));
                }
                return Ok(local);
            }
            ctx.info(&format!("pulling {image_ref} ({reason})"));
            let mut progress = if !shows_live_output(ctx) {
                StderrProgress::hidden()
            } else {
                StderrProgress::new("pretix-unit")
            };
            let pulled = docker
                .pull(&desired.image, &mut progress)
                .map_err(|error| docker_failed(&format!("pull {image_ref}"), error))?;
            let info = docker.inspect_image(&image_ref)?.ok_or_else(|| {
                ToolError::failed(format!(
                    "{image_ref} was pulled but the daemon does not list it: pull it again"
                ))
            })?;
            let is_new = local.as_ref().is_none_or(|old| old.id != info.id);
            if is_new {
                ctx.changed(format!("pull {image_ref} (digest {})", pulled.digest));
            } else {
                ctx.note(format!("pulled {image_ref}: unchanged, digest {}", pulled.digest));
            }
            info
        }
    };
    if let Some(digest) = info.digest_for(&desired.image.repository) {
        record_digest(document, section, &digest)?;
    }
    Ok(Some(info))
}

/// The custom image pretix-plugin built: it must be on the host; a warning when it was built on
/// another base than the one here now (the plugins would run on a stale pretix).
fn plugin_image(
    ctx: &mut Context,
    docker: &Docker,
    plugin: &spec::PluginImage,
    base: Option<&ImageInfo>,
    desired: &Desired,
) -> Result<ImageInfo, ToolError> {
    let reference = plugin.reference.to_string();
    let info = docker.inspect_image(&reference)?.ok_or_else(|| {
        ToolError::failed(format!(
            "the plugin image {reference} (plugins.built) is not on this host: run pretix-plugin apply"
        ))
    })?;
    if let Some(base) = base {
        let current = base
            .digest_for(&desired.image.repository)
            .map(|digest| desired.image.pinned(&digest))
            .unwrap_or_else(|| base.id.clone());
        if !plugin.base.is_empty() && plugin.base != current && plugin.base != base.id {
            ctx.warn(format!(
                "the plugin image {reference} was built on {}, but {} is now {current}: run pretix-plugin apply to \
                 rebuild it on the current base, then pretix-unit apply",
                plugin.base, desired.image
            ));
        }
    }
    Ok(info)
}

/// Writes `container.image_digest`, keeping the one before as `previous_image_digest`.
fn record_digest(document: &mut Document, section: &Container, digest: &str) -> Result<(), ToolError> {
    if section.image_digest.as_deref() == Some(digest) {
        return Ok(());
    }
    let mut raw = document
        .raw_section("container")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(old) = &section.image_digest {
        raw.insert("previous_image_digest".to_owned(), Value::String(old.clone()));
    }
    raw.insert("image_digest".to_owned(), Value::String(digest.to_owned()));
    document.set_section("container", &Value::Object(raw))
}

fn perform(
    ctx: &mut Context,
    desired: &Desired,
    image_ref: &str,
    docker: Option<&Docker>,
    steps: &[Step],
    before: &BTreeMap<String, String>,
) -> Result<(), ToolError> {
    let mut started_by_systemd = BTreeMap::new();
    for step in steps {
        match step {
            Step::WriteUnit { path, text, .. } => {
                ctx.ensure_parents(path)?;
                ctx.file(&FileSpec::new(path, text.as_bytes()).owner(0, 0).mode(0o644))?;
            }
            Step::DaemonReload => {
                ctx.systemctl(&["daemon-reload"])?;
            }
            Step::Enable { unit } => {
                ctx.systemctl(&["enable", unit])?;
            }
            Step::Restart { unit, reason } => {
                ctx.info(&format!("restarting {unit}: {reason}"));
                let outcome = ctx.systemctl(&["restart", unit]).map_err(|error| {
                    ToolError::failed(format!(
                        "{error}: see systemctl status {unit} and journalctl -u {unit}; a re-run restarts it again"
                    ))
                })?;
                started_by_systemd.insert(unit.clone(), outcome);
            }
            Step::Create { name } | Step::Recreate { name, .. } | Step::Start { name } => {
                let what = step.describe();
                if ctx.is_check() {
                    ctx.changed(what);
                    continue;
                }
                if ctx.root().is_redirected() {
                    ctx.note(format!("skipped (--root): {what}"));
                    continue;
                }
                let Some(docker) = docker else { continue };
                let instance = instance(desired, name)?;
                let result = match step {
                    Step::Start { .. } => docker.start_container(name).map(drop),
                    _ => docker.recreate_container(&instance.container_spec(image_ref)).map(drop),
                };
                result.map_err(|error| docker_failed(&what, error))?;
                ctx.changed(what);
            }
            Step::Wait { name } => {
                if ctx.is_check() || ctx.root().is_redirected() {
                    continue;
                }
                let Some(docker) = docker else { continue };
                if let Some(ServiceOutcome::Performed) = started_by_systemd.get(name)
                    && let Some(record) = ctx.systemctl_recorded_to()
                {
                    let record = record.display().to_string();
                    ctx.note(format!(
                        "not waited for {name}: systemctl calls are only recorded to {record}"
                    ));
                    continue;
                }
                let instance = instance(desired, name)?;
                let message = host::wait_started(
                    ctx,
                    docker,
                    instance,
                    before.get(name).map(String::as_str),
                    desired.start_timeout,
                    desired.site_host.as_deref(),
                )?;
                ctx.note(message);
            }
        }
    }
    Ok(())
}

/// Whether live output (pull progress, a command's output) may go to stderr: not with `-q`, and
/// not in Ansible mode, where stderr is Ansible's.
pub fn shows_live_output(ctx: &Context) -> bool {
    ctx.verbosity() >= Verbosity::Normal && ctx.options().output == Output::Stderr
}

fn instance<'a>(desired: &'a Desired, name: &str) -> Result<&'a spec::Instance, ToolError> {
    desired
        .instances
        .iter()
        .find(|instance| instance.unit == name)
        .ok_or_else(|| ToolError::failed(format!("no container {name} in the plan")))
}
