//! `pretix-unit`: the guide's "Docker image and service" section, the update steps that touch
//! the container, and "Scaling up".
//!
//! - `spec`: the `container` section validated and resolved into one spec per container (pure);
//!   `workers`: `NUM_WORKERS` from the host's memory when unset;
//! - `unit`: the systemd unit rendered from a handlebars template, every `docker run` word quoted
//!   the way systemd splits `ExecStart`, `systemd-analyze verify` before it is kept;
//! - `plan`: the steps from the desired spec and the state (pure);
//! - `host`: reading the host and the daemon, waiting for a started container;
//! - the verbs: `apply` and `pull` (`apply.rs`), `exec`/`migrate`/`upgrade` (`exec.rs`),
//!   `verify` (`verify.rs`).
//!
//! Every Docker call goes through `pretix_site::docker`, every systemctl call through
//! `pretix_site::service`.

use clap::Subcommand;
use pretix_site::{Context, Document, Tool, ToolError};

pub mod apply;
pub mod exec;
pub mod host;
pub mod plan;
pub mod spec;
pub mod unit;
pub mod verify;
pub mod workers;

/// The verbs of `pretix-unit`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Pull the image when the host lacks it (recording its digest), write and verify the unit(s),
    /// daemon-reload, enable, and restart what changed (or, with supervisor docker, create or
    /// recreate the containers); wait until each answers
    Apply,
    /// Pull the image now (progress on stderr) and record its digest in the document; restart
    /// nothing (apply does that)
    Pull,
    /// Read-only: image and digest, units, containers, loopback port, /healthcheck/, the database and
    /// Redis tried from inside the container, and whether pretix upgrade ran on this image
    Verify,
    /// Run a pretix command in the running container, streaming its output to stderr, and fail with
    /// its exit code (e.g. `pretix-unit exec -- shell -c '...'`)
    Exec {
        /// The container (its unit name); default: the one running the task worker
        #[arg(long, value_name = "UNIT")]
        container: Option<String>,
        /// The pretix command and its arguments
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// `pretix migrate` in the running container (once, after an upgrade, when automigrate is off)
    Migrate {
        /// The container (its unit name); default: the one running the task worker
        #[arg(long, value_name = "UNIT")]
        container: Option<String>,
    },
    /// `pretix upgrade` (migrate, then regenerate the assets) in the running container, after a new
    /// image; remembers the image it ran on for verify
    Upgrade {
        /// The container (its unit name); default: the one running the task worker
        #[arg(long, value_name = "UNIT")]
        container: Option<String>,
    },
}

/// The `pretix-unit` tool.
pub struct UnitTool;

impl Tool for UnitTool {
    type Command = Command;
    const NAME: &'static str = "pretix-unit";
    const ABOUT: &'static str = "the pretix container: image pull with digest, systemd unit (or docker restart policy), \
                                 roles and scaling, exec/migrate/upgrade, verification from inside";

    fn is_read_only(command: &Command) -> bool {
        matches!(command, Command::Verify)
    }

    fn run(command: &Command, ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
        match command {
            Command::Apply => apply::apply(ctx, document),
            Command::Pull => apply::pull(ctx, document),
            Command::Verify => verify::verify(ctx, document),
            Command::Exec { container, args } => exec::exec(ctx, document, container.as_deref(), args),
            Command::Migrate { container } => exec::exec(ctx, document, container.as_deref(), &["migrate".to_owned()]),
            Command::Upgrade { container } => exec::exec(ctx, document, container.as_deref(), &["upgrade".to_owned()]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        pretix_site::run::command::<UnitTool>().debug_assert();
    }
}
