//! The nginx site, rendered from `templates/site.conf.hbs`. Pure: the values were checked in
//! `settings` (nothing in them can end an nginx directive), so the template escapes nothing.

use std::path::Path;

use handlebars::Handlebars;
use pretix_site::ToolError;
use serde::Serialize;

use crate::settings::{CLIENT_MAX_BODY_SIZE, Desired};

const TEMPLATE: &str = include_str!("../templates/site.conf.hbs");

/// Which form of the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteForm {
    /// Port 80 and port 443 with TLS: the site pretix runs behind.
    Full,
    /// Port 80 alone (redirect and ACME challenge), while certbot obtains the first certificate.
    AcmeBootstrap,
}

#[derive(Serialize)]
struct Values<'a> {
    tls: bool,
    server_name: &'a str,
    http_listen: String,
    https_listen: String,
    http_port: u16,
    https_port: u16,
    ipv6: bool,
    ipv6only: bool,
    default_server: bool,
    https_url: String,
    acme_webroot: String,
    certificate: String,
    certificate_key: String,
    hsts_max_age: u32,
    client_max_body_size: &'static str,
    upstream: &'a str,
}

/// The site's text. `certificate`/`certificate_key` are given separately so a `--root` check can
/// render a copy whose paths point into the staging directory.
pub fn render(
    desired: &Desired,
    form: SiteForm,
    certificate: &Path,
    certificate_key: &Path,
    webroot: &Path,
) -> Result<String, ToolError> {
    let listen = |port: u16| match desired.listen_address {
        Some(address) => format!("{address}:{port}"),
        None => port.to_string(),
    };
    let values = Values {
        tls: form == SiteForm::Full,
        server_name: &desired.server_name,
        http_listen: listen(desired.http_port),
        https_listen: listen(desired.https_port),
        http_port: desired.http_port,
        https_port: desired.https_port,
        ipv6: desired.ipv6,
        ipv6only: desired.ipv6only,
        default_server: desired.default_server,
        https_url: desired.expected_url(),
        acme_webroot: webroot.display().to_string(),
        certificate: certificate.display().to_string(),
        certificate_key: certificate_key.display().to_string(),
        hsts_max_age: desired.hsts_max_age_seconds,
        client_max_body_size: CLIENT_MAX_BODY_SIZE,
        upstream: &desired.upstream,
    };
    let mut handlebars = Handlebars::new();
    handlebars.set_strict_mode(true);
    handlebars.register_escape_fn(handlebars::no_escape);
    handlebars
        .render_template(TEMPLATE, &values)
        .map_err(|error| ToolError::failed(format!("render the nginx site: {error}")))
}
