//! `pretix-proxy`: the "SSL" step of pretix's Docker guide, nginx as the TLS reverse proxy in
//! front of the container, validated by nginx itself before it goes live.
//!
//! - the site, rendered from `templates/site.conf.hbs`: port 80 answering 301 to the https URL
//!   except the ACME challenge path, port 443 with TLS (Mozilla's intermediate profile) and
//!   HTTP/2, `proxy_pass` to the container with the forwarded headers pretix trusts;
//! - written to `sites-available`, enabled by a link in `sites-enabled`, then `nginx -t` on the
//!   whole configuration: kept and reloaded only when it passes, otherwise restored;
//! - the certificate: checked (files, key, name, days left), or made (self-signed, staging), or
//!   obtained (certbot's webroot method).
//!
//! The modules follow inspect → pure plan → apply: `settings` (the section, checked), `site` and
//! `cert` (pure), `inspect` (reading the host), `plan`, `apply` and `verify` (the verbs), and
//! `probe` (the HTTP/HTTPS client of `verify`).

use clap::Subcommand;
use pretix_site::{Context, Document, Tool, ToolError};

pub mod apply;
pub mod cert;
pub mod inspect;
pub mod plan;
pub mod probe;
pub mod settings;
pub mod site;
pub mod verify;

/// The verbs of `pretix-proxy`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Write the nginx site (and a staging or ACME certificate when asked), enable it, test the whole
    /// configuration with nginx -t, and reload nginx only when the test passes
    Apply,
    /// Read-only: the site and its link, the certificate, nginx -t, and when nginx answers, the redirect
    /// on port 80 and pretix's health check through port 443
    Verify,
}

/// The `pretix-proxy` tool.
pub struct ProxyTool;

impl Tool for ProxyTool {
    type Command = Command;
    const NAME: &'static str = "pretix-proxy";
    const ABOUT: &'static str =
        "nginx as pretix's TLS reverse proxy: the site, the certificate, nginx -t before reload";

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
        pretix_site::run::command::<ProxyTool>().debug_assert();
    }
}
