//! `apply`: inspect, plan, and perform the plan.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use pretix_site::docker::{BuildSpec, Docker};
use pretix_site::run::{Output, Verbosity};
use pretix_site::sections::BuiltImage;
use pretix_site::{Context, Document, ToolError};

use crate::dockerfile::{BasePin, BuildInputs};
use crate::inspect::{self, BaseLookup, Request};
use crate::loaded::{self, Finding};
use crate::plan::{self, Plan, Step};
use crate::throwaway;

/// The labels every custom image carries, so `docker inspect` says what it is.
pub const LABEL_BASE: &str = "org.pretix-toolkit.plugins.base";
pub const LABEL_PLUGINS: &str = "org.pretix-toolkit.plugins.packages";
pub const LABEL_INPUTS: &str = "org.pretix-toolkit.plugins.inputs";

pub fn apply(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let request = inspect::request(ctx, document)?;
    if request.desired.packages.is_empty() {
        let state = plan::State {
            base: String::new(),
            existing: None,
            recorded: request.section.built.clone(),
        };
        let plan = plan::plan(None, &state);
        perform_without_image(ctx, document, &request, &plan)?;
        return Ok(if plan.steps.is_empty() {
            "no plugins listed: pretix-unit runs the base image".to_owned()
        } else {
            "no plugins listed any more: pretix-unit runs the base image again".to_owned()
        });
    }
    let docker = if ctx.is_offline() {
        None
    } else {
        Some(inspect::connect(&request.container)?)
    };
    let base = match (inspect::base_pin(docker.as_ref(), &request)?, &docker) {
        (BaseLookup::Pinned(base), _) => base,
        (BaseLookup::NeedsPull { reference }, Some(docker)) if !ctx.is_check() => {
            inspect::pull_base(ctx, docker, &request, &reference)?
        }
        (BaseLookup::NeedsPull { reference }, _) => {
            ctx.changed(format!(
                "pull {reference}, the base of the custom image (not on this host yet)"
            ));
            ctx.changed(format!(
                "build {}:<hash> on it (the tag depends on the digest the pull gives)",
                request.desired.repository
            ));
            return Ok(format!(
                "the base {reference} would be pulled and {} built on it",
                request.desired.repository
            ));
        }
    };
    let inputs = request.inputs(base.clone());
    let image = inspect::image_reference(&request.desired.repository, &inputs);
    let state = inspect::state(docker.as_ref(), &base, &image, &request)?;
    let plan = plan::plan(Some(&image), &state);
    ctx.debug(&format!("plan: {plan:?}"));
    let names = request.names();
    if plan.steps.is_empty() {
        return Ok(format!(
            "{image} is up to date: built on {}, pretix loads {} plugin{}",
            base.pinned,
            names.len(),
            if names.len() == 1 { "" } else { "s" }
        ));
    }
    let mut built_now = false;
    let mut verified: Option<(String, Vec<String>)> = None;
    let mut rebuilt_for_new_base = None;
    for step in &plan.steps {
        match step {
            Step::Build { image, reason } => {
                if let plan::BuildReason::NewBase { previous, current } = reason {
                    rebuilt_for_new_base = Some((previous.clone(), current.clone()));
                }
                ctx.changed(format!("build {image} on {} ({})", base.pinned, reason.describe()));
                if let Some(docker) = &docker
                    && !ctx.is_check()
                {
                    build(ctx, docker, &inputs, image, &base)?;
                    built_now = true;
                }
            }
            Step::Verify { image } => match &docker {
                Some(docker) if !ctx.is_check() => {
                    let (id, modules) = verify_loaded(ctx, docker, image, &names, built_now)?;
                    verified = Some((id, modules));
                }
                _ => ctx.note(format!("would ask pretix in {image} which plugins it loads")),
            },
            Step::Record { image } => {
                if let Some((id, modules)) = &verified {
                    let mut section = request.section.clone();
                    section.built = Some(BuiltImage {
                        image: image.clone(),
                        id: id.clone(),
                        base: base.pinned.clone(),
                        loaded_plugins: modules.clone(),
                    });
                    document.set_section("plugins", &section)?;
                }
                ctx.changed(format!("record {image} in plugins.built for pretix-unit"));
            }
            Step::Forget { .. } => {}
        }
    }
    let mut message = if ctx.is_check() {
        format!("{image} would be built and checked")
    } else {
        format!(
            "{image} on {}: pretix loads {}",
            base.pinned,
            verified.map(|(_, modules)| modules.join(", ")).unwrap_or_default()
        )
    };
    if let Some((previous, current)) = rebuilt_for_new_base {
        message.push_str(&format!(
            "; rebuilt because the base changed from {previous} to {current}"
        ));
    }
    Ok(message)
}

fn perform_without_image(
    ctx: &mut Context,
    document: &mut Document,
    request: &Request,
    plan: &Plan,
) -> Result<(), ToolError> {
    for step in &plan.steps {
        if let Step::Forget { previous } = step {
            ctx.changed(format!(
                "remove {previous} from plugins.built (the image stays on the host for a rollback)"
            ));
            if !ctx.is_check() {
                let mut section = request.section.clone();
                section.built = None;
                document.set_section("plugins", &section)?;
            }
        }
    }
    Ok(())
}

/// Builds through the seam: a spinner with the current build step on a terminal, each log line
/// with `-v`, and the end of the log in the error when the build fails.
fn build(
    ctx: &mut Context,
    docker: &Docker,
    inputs: &BuildInputs,
    image: &str,
    base: &BasePin,
) -> Result<(), ToolError> {
    let context = inputs
        .context_tar()
        .map_err(|error| ToolError::failed(format!("make the build context: {error}")))?;
    let mut spec = BuildSpec::new(image);
    spec.labels = BTreeMap::from([
        (LABEL_BASE.to_owned(), base.pinned.clone()),
        (
            LABEL_PLUGINS.to_owned(),
            inputs
                .items
                .iter()
                .map(|item| item.argument.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (LABEL_INPUTS.to_owned(), inputs.content_hash()),
    ]);
    let show_progress = ctx.options().output == Output::Stderr
        && ctx.verbosity() == Verbosity::Normal
        && std::io::stderr().is_terminal();
    let spinner = show_progress.then(|| {
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        spinner.set_message(format!("building {image}"));
        spinner
    });
    let verbose = ctx.options().output == Output::Stderr && ctx.verbosity() >= Verbosity::Verbose;
    let started = std::time::Instant::now();
    let outcome = docker.build(context, &spec, &mut |line: &str| {
        if let Some(spinner) = &spinner
            && line.starts_with("Step ")
        {
            spinner.set_message(line.to_owned());
        }
        if verbose {
            eprintln!("pretix-plugin: build: {line}");
        }
    });
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let built = outcome?;
    ctx.info(&format!(
        "built {image} ({}) in {} s",
        built.id,
        started.elapsed().as_secs()
    ));
    // The build-only stage's image holds the CA bundle in a layer; the builder keeps it as an
    // untagged cache image. Remove it, so the bundle is not left in the host's image store either.
    if inputs.ca_bundle.is_some()
        && let Some(stage) = fetch_stage_image(&built.log)
    {
        match docker.remove_image(&stage) {
            Ok(_) => ctx.debug(&format!("removed the build-only stage's image {stage}")),
            Err(error) => ctx.warn(format!(
                "the build-only stage's image {stage} (it holds the CA bundle) could not be removed: {error}; \
                 docker image rm {stage} removes it"
            )),
        }
    }
    Ok(())
}

/// The image the first stage ended with, from a classic-builder log: the last ` ---> <id>` before
/// the second `FROM` step.
pub fn fetch_stage_image(log: &str) -> Option<String> {
    let mut froms = 0;
    let mut last_id = None;
    for line in log.lines() {
        let line = line.trim();
        if line.starts_with("Step ") && line.contains(" : FROM ") {
            froms += 1;
            if froms == 2 {
                return last_id;
            }
        } else if let Some(id) = line.strip_prefix("---> ") {
            let id = id.trim();
            if !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                last_id = Some(id.to_owned());
            }
        }
    }
    None
}

/// Asks pretix in a throwaway container of `image` which plugins it loaded; fails naming each
/// listed plugin it did not load. An image built in this run that fails is removed, so its
/// content-hash tag never names an image that was not verified.
pub fn verify_loaded(
    ctx: &mut Context,
    docker: &Docker,
    image: &str,
    names: &[String],
    remove_on_failure: bool,
) -> Result<(String, Vec<String>), ToolError> {
    let outcome = ask_pretix(docker, image, names);
    let failure = match outcome {
        Ok(Ok(findings)) => {
            let id = docker
                .inspect_image(image)?
                .map(|info| info.id)
                .ok_or_else(|| ToolError::failed(format!("{image} vanished from this host")))?;
            let modules: Vec<String> = findings
                .iter()
                .flat_map(|finding| match finding {
                    Finding::Loaded { modules, .. } => modules.clone(),
                    _ => Vec::new(),
                })
                .collect();
            ctx.note(format!("pretix in {image} loads {}", modules.join(", ")));
            return Ok((id, modules));
        }
        Ok(Err(message)) => ToolError::failed(message),
        Err(error) => error,
    };
    if remove_on_failure {
        let _ = docker.remove_image(image);
        ctx.info(&format!("removed {image}: it does not load the listed plugins"));
    }
    Err(failure)
}

/// `Ok(Err(message))` when pretix answered but a plugin is missing, or did not start.
pub fn ask_pretix(docker: &Docker, image: &str, names: &[String]) -> Result<Result<Vec<Finding>, String>, ToolError> {
    let finished = throwaway::run(
        docker,
        image,
        vec!["shell".to_owned(), "-c".to_owned(), loaded::script(names)],
        vec!["AUTOMIGRATE=skip".to_owned()],
    )?;
    let Some(answer) = loaded::parse(&finished.output) else {
        let tail: Vec<&str> = finished.output.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Ok(Err(format!(
            "pretix in {image} did not start (exit {}), so no plugin is loaded; its last lines:\n{}",
            finished.exit_code,
            tail.join("\n")
        )));
    };
    let findings = loaded::compare(names, &answer);
    let missing: Vec<String> = findings
        .iter()
        .filter(|finding| !finding.is_loaded())
        .map(Finding::message)
        .collect();
    if missing.is_empty() {
        Ok(Ok(findings))
    } else {
        Ok(Err(format!(
            "pretix {} in {image} does not load every listed plugin: {}",
            answer.pretix,
            missing.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_stage_image_is_found_in_the_build_log() {
        let log = "Step 1/9 : FROM sha256:d9 AS pretix-toolkit-fetch\n ---> d9fca4540bc8\nStep 2/9 : USER root\n \
                   ---> Running in 1234\n ---> 5353f0c29a69\nStep 5/9 : RUN PIP_CERT=/tmp/x python3 y\n ---> \
                   Using cache\n ---> 77aa00bb11cc\nStep 6/9 : FROM sha256:d9\n ---> d9fca4540bc8\n";
        assert_eq!(fetch_stage_image(log), Some("77aa00bb11cc".to_owned()));
        assert_eq!(fetch_stage_image("Step 1/2 : FROM x\n ---> aa\n"), None);
    }
}
