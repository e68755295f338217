//! `apply`: pretix.cfg, the config dir and the data dir, as inspect → plan → apply.
//!
//! `inspect` reads what the plan depends on, `plan` (pure) turns the rendered file and that
//! state into steps, `apply` carries them out through `Context` (which in check mode only
//! reports them, with diffs). Everything that can be wrong is found before the first step.

use std::path::PathBuf;

use pretix_site::fs::{DirSpec, FileSpec};
use pretix_site::sections::{DataDirAccess, Paths};
use pretix_site::{Context, Document, ToolError};

use crate::acl::ensure_web_server_acl;
use crate::secrets::register_secrets_on_disk;
use crate::{config_file, desired_config, owned_dir};

/// What the plan depends on besides the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Whether the data dir's parent exists (or this run's plan creates it): pretix, like this
    /// tool, creates only the last level of the data dir.
    pub data_dir_parent_exists: bool,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A directory owned by the container's user.
    Dir(DirSpec),
    /// The ACL entry for the container's web server on the data dir.
    WebServerAcl(PathBuf),
    /// pretix.cfg itself.
    File(FileSpec),
}

/// The steps, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// Reads what the plan depends on.
pub fn inspect(ctx: &Context, paths: &Paths) -> State {
    State {
        data_dir_parent_exists: paths.data_dir.parent().is_some_and(|parent| ctx.exists(parent)),
    }
}

/// The steps that bring the host to `rendered` (pure).
pub fn plan(paths: &Paths, rendered: &str, state: &State) -> Result<Plan, ToolError> {
    if !state.data_dir_parent_exists {
        return Err(ToolError::failed(format!(
            "the parent of the data dir {} does not exist: create it first",
            paths.data_dir.display()
        )));
    }
    let data_dir_mode = match paths.data_dir_access {
        DataDirAccess::Mode => 0o755,
        DataDirAccess::Acl => 0o750,
    };
    let mut steps = vec![
        Step::Dir(owned_dir(paths, &paths.config_dir, 0o700)),
        Step::Dir(owned_dir(paths, &paths.data_dir, data_dir_mode)),
    ];
    if paths.data_dir_access == DataDirAccess::Acl {
        steps.push(Step::WebServerAcl(paths.data_dir.clone()));
    }
    steps.push(Step::File(
        FileSpec::new(config_file(paths), rendered.as_bytes())
            .owner(paths.owner_uid, paths.owner_gid)
            .mode(0o600)
            .backup(true),
    ));
    Ok(Plan { steps })
}

/// Carries out the plan (in check mode: reports it). Returns whether anything changed.
pub fn apply_plan(ctx: &mut Context, plan: &Plan) -> Result<bool, ToolError> {
    for step in &plan.steps {
        match step {
            Step::Dir(spec) => {
                ctx.dir(spec)?;
            }
            Step::WebServerAcl(data_dir) => ensure_web_server_acl(ctx, data_dir)?,
            Step::File(spec) => {
                ctx.file(spec)?;
            }
        }
    }
    Ok(ctx.has_changed())
}

/// The `apply` verb.
pub fn apply(ctx: &mut Context, document: &mut Document, paths: &Paths) -> Result<String, ToolError> {
    let desired = desired_config(ctx, document, paths)?;
    let rendered = desired.render()?;
    let file = config_file(paths);
    // The old secrets of the file on disk are masked in the diff too.
    register_secrets_on_disk(ctx, &desired, &file)?;
    let state = inspect(ctx, paths);
    let plan = plan(paths, &rendered, &state)?;
    let changed = apply_plan(ctx, &plan)?;
    let verb = if ctx.is_check() { "would be" } else { "is" };
    Ok(if changed {
        format!(
            "{} {verb} up to date now ({} settings)",
            file.display(),
            desired.setting_count()
        )
    } else {
        format!(
            "{} and the data dir {} were already right",
            file.display(),
            paths.data_dir.display()
        )
    })
}
