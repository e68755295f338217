//! `pretix-redis`: the "Redis" step of pretix's Docker guide, against a real redis-server.
//!
//! - redis.conf: `unixsocket` and `unixsocketperm` (plus `bind`, `port`, `requirepass` in tcp
//!   mode), every other byte kept;
//! - the systemd drop-in `RuntimeDirectoryPreserve=yes` (then a daemon-reload);
//! - a restart of redis-server only when redis.conf changed, then a bounded wait for the socket;
//! - verification: PING, the socket's mode and group, and `databases` covering 0, 1 and 2;
//! - the document gets `config.redis`, `config.celery`, `container.volumes` and
//!   `container.group_add`.
//!
//! The modules follow inspect → pure plan → apply: `settings` (the section, checked), `conf` and
//! `dropin` (pure planning), `inspect` (reading the host), `server` (the one Redis adapter),
//! `pretix_config` (the document), `apply` and `verify` (the verbs).

use clap::Subcommand;
use pretix_site::{Context, Document, Tool, ToolError};

pub mod apply;
pub mod conf;
pub mod dropin;
pub mod error;
pub mod inspect;
pub mod pretix_config;
pub mod server;
pub mod settings;
pub mod verify;

pub use error::RedisSetupError;

/// The verbs of `pretix-redis`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Edit redis.conf (unixsocket, unixsocketperm), write the systemd drop-in, restart redis-server when
    /// redis.conf changed, verify it answers, and add pretix's [redis] and [celery] settings to the document
    Apply,
    /// Read-only: report redis.conf, the drop-in, the socket and the server as ok, warning or failure
    Verify,
}

/// The `pretix-redis` tool.
pub struct RedisTool;

impl Tool for RedisTool {
    type Command = Command;
    const NAME: &'static str = "pretix-redis";
    const ABOUT: &'static str =
        "Redis for pretix: the unix socket (world, group or tcp mode), the systemd drop-in, verification";
    const EXAMPLES: &'static str = "pretix-redis apply --check --diff < site.json     # what would change, touching nothing\n\
                                    pretix-redis apply < site.json > site.redis.json  # as root: redis.conf, the drop-in, a restart if needed\n\
                                    pretix-redis verify --site site.redis.json > /dev/null\n\
                                    echo '{\"redis\": {\"socket_mode\": \"tcp\"}}' | pretix-redis apply --check\n";

    fn is_read_only(command: &Command) -> bool {
        matches!(command, Command::Verify)
    }

    fn run(command: &Command, ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
        match command {
            Command::Apply => apply::apply(ctx, document),
            Command::Verify => verify::verify(ctx, document),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        pretix_site::run::command::<RedisTool>().debug_assert();
    }
}
