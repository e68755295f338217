//! `verify` (read-only): is the custom image built on the current base, with the listed plugins,
//! does pretix load them, and is it what the containers run?

use pretix_site::report::CheckStatus;
use pretix_site::{Context, Document, ToolError};

use crate::apply;
use crate::inspect::{self, BaseLookup};

pub fn verify(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let request = inspect::request(ctx, document)?;
    let recorded = request.section.built.clone();
    if request.desired.packages.is_empty() {
        match &recorded {
            None => ctx.check_item("plugins", CheckStatus::Ok, "no plugins listed: the base image is run"),
            Some(built) => ctx.check_item(
                "plugins",
                CheckStatus::Failure,
                format!(
                    "no plugins listed, but plugins.built still names {}: run pretix-plugin apply",
                    built.image
                ),
            ),
        }
        return finish(ctx);
    }
    let docker = inspect::connect(&request.container)?;
    let base = match inspect::base_pin(Some(&docker), &request)? {
        BaseLookup::Pinned(base) => base,
        BaseLookup::NeedsPull { reference } => {
            ctx.check_item(
                "base",
                CheckStatus::Failure,
                format!("the base {reference} is not on this host: pretix-unit apply pulls it"),
            );
            return finish(ctx);
        }
    };
    let inputs = request.inputs(base.clone());
    let image = inspect::image_reference(&request.desired.repository, &inputs);
    let Some(built) = recorded else {
        ctx.check_item(
            "image",
            CheckStatus::Failure,
            "no custom image recorded (plugins.built): run pretix-plugin apply",
        );
        return finish(ctx);
    };
    if built.base == base.pinned {
        ctx.check_item(
            "base",
            CheckStatus::Ok,
            format!("built on {}, the current base", base.pinned),
        );
    } else {
        ctx.check_item(
            "base",
            CheckStatus::Failure,
            format!(
                "{} was built on {}, but the current base is {}: its plugins run on an old pretix; run \
                 pretix-plugin apply",
                built.image, built.base, base.pinned
            ),
        );
    }
    if built.image == image {
        ctx.check_item("plugins", CheckStatus::Ok, format!("{image} holds the listed plugins"));
    } else if built.base == base.pinned {
        ctx.check_item(
            "plugins",
            CheckStatus::Failure,
            format!(
                "the plugin list changed since {} was built (it would be {image}): run pretix-plugin apply",
                built.image
            ),
        );
    }
    match docker.inspect_image(&built.image)? {
        Some(info) if info.id == built.id => {
            ctx.check_item(
                "image",
                CheckStatus::Ok,
                format!("{} is on this host ({})", built.image, info.id),
            );
            let names = request.names();
            match apply::ask_pretix(&docker, &built.image, &names)? {
                Ok(findings) => {
                    let loaded: Vec<String> = findings.iter().map(|finding| finding.message()).collect();
                    ctx.check_item("loaded", CheckStatus::Ok, loaded.join("; "));
                }
                Err(message) => ctx.check_item("loaded", CheckStatus::Failure, message),
            }
        }
        Some(info) => ctx.check_item(
            "image",
            CheckStatus::Failure,
            format!(
                "{} is {} on this host, not the verified {}: run pretix-plugin apply",
                built.image, info.id, built.id
            ),
        ),
        None => ctx.check_item(
            "image",
            CheckStatus::Failure,
            format!("{} is not on this host: run pretix-plugin apply", built.image),
        ),
    }
    for instance in request.container.resolved_instances() {
        let name = instance.container_name();
        match docker.inspect_container(name)? {
            Some(info) if info.image_id == built.id => ctx.check_item(
                &format!("container {name}"),
                CheckStatus::Ok,
                format!("runs {}", built.image),
            ),
            Some(info) => ctx.check_item(
                &format!("container {name}"),
                CheckStatus::Failure,
                format!(
                    "runs {} ({}), not {}: run pretix-unit apply to run the custom image",
                    info.image, info.image_id, built.image
                ),
            ),
            None => ctx.check_item(
                &format!("container {name}"),
                CheckStatus::Warning,
                format!("there is no container {name} on this host yet: pretix-unit apply starts it"),
            ),
        }
    }
    finish(ctx)
}

fn finish(ctx: &Context) -> Result<String, ToolError> {
    ctx.verify_outcome("pretix-plugin apply builds what is missing, pretix-unit apply runs it")
}
