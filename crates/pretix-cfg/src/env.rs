//! `env`: the settings as `PRETIX_<SECTION>_<KEY>` variables in a root-only env file, secrets as
//! `FILE__` variables pointing at files the container can read.

use pretix_site::fs::FileSpec;
use pretix_site::sections::Paths;
use pretix_site::{Context, Document, ToolError};

use crate::{desired, desired_config, owned_dir};

pub fn env(ctx: &mut Context, document: &mut Document, paths: &Paths) -> Result<String, ToolError> {
    let desired = desired_config(ctx, document, paths)?;
    let text = desired.render_env()?;
    let secrets = desired.env_secrets();
    // Nothing above wrote anything. The secrets go where the container (uid 15371) can read
    // them and no one else can: <config dir>/secrets, 0700, files 0600, all owned by the
    // container's user.
    if !secrets.is_empty() {
        ctx.dir(&owned_dir(paths, &paths.config_dir, 0o700))?;
        let secrets_dir = paths.config_dir.join(desired::ENV_SECRETS_DIR);
        ctx.dir(&owned_dir(paths, &secrets_dir, 0o700))?;
        for (name, value) in &secrets {
            ctx.file(
                &FileSpec::new(secrets_dir.join(name), format!("{value}\n"))
                    .owner(paths.owner_uid, paths.owner_gid)
                    .mode(0o600)
                    .secret(),
            )?;
        }
    }
    ctx.ensure_parents(&paths.env_file)?;
    ctx.file(&FileSpec::new(&paths.env_file, text).owner(0, 0).mode(0o600))?;
    Ok(format!(
        "{} holds {} settings as PRETIX_<SECTION>_<KEY> variables, {} of them secrets in files under {}/{} \
         (use it with docker run --env-file, with {} mounted at {})",
        paths.env_file.display(),
        desired.setting_count(),
        secrets.len(),
        paths.config_dir.display(),
        desired::ENV_SECRETS_DIR,
        paths.config_dir.display(),
        desired::CONTAINER_CONFIG_DIR
    ))
}
