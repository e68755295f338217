//! The `proxy` section and what it must agree with (`config.pretix.url`, the container's
//! published port), checked in full before anything is read from or written to the host.
//! Every value that ends up in the nginx site or on certbot's command line is checked here, so
//! nothing from the document can add an nginx directive or an argument.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use pretix_site::fs::validate_host_path;
use pretix_site::nginx::validate_word;
use pretix_site::sections::{CertificateSource, ConfigValue, Container, HostPaths, NginxReload, Proxy};
use pretix_site::{Document, ToolError};

/// The request body limit of the container's own nginx: pretix accepts what it lets through.
pub const CLIENT_MAX_BODY_SIZE: &str = "100M";

/// The warning every run with a self-signed certificate carries.
pub const SELF_SIGNED_WARNING: &str = "proxy.certificate_source is self_signed: this is a STAGING certificate that \
                                       no browser trusts; every visitor gets a security warning and pretix's \
                                       payment providers will refuse the callbacks. Use certificate_source \
                                       existing or acme before you sell tickets";

/// The checked section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Lowercase.
    pub server_name: String,
    /// `host:port`, as written into `proxy_pass http://...`; unset in the document: the first
    /// container that publishes pretix's web port.
    pub upstream: String,
    pub source: CertificateSource,
    pub certificate: PathBuf,
    pub certificate_key: PathBuf,
    pub acme_webroot: PathBuf,
    pub acme_email: Option<String>,
    pub acme_server: Option<String>,
    pub site_file: PathBuf,
    pub site_link: PathBuf,
    pub sites_enabled: PathBuf,
    pub nginx_conf: Option<PathBuf>,
    pub nginx_prefix: Option<PathBuf>,
    pub listen_address: Option<Ipv4Addr>,
    pub ipv6: bool,
    pub http_port: u16,
    pub https_port: u16,
    pub default_server: bool,
    pub ipv6only: bool,
    pub hsts_max_age_seconds: u32,
    pub reload: NginxReload,
    pub service: String,
    /// Things to say that do not stop the run.
    pub warnings: Vec<String>,
}

impl Desired {
    /// The URL pretix must have, `https://<server_name>` (with the port when it is not 443).
    pub fn expected_url(&self) -> String {
        match self.https_port {
            443 => format!("https://{}", self.server_name),
            port => format!("https://{}:{port}", self.server_name),
        }
    }
}

/// Checks the section against the document and fills in the defaults.
pub fn resolve(document: &Document) -> Result<Desired, ToolError> {
    let section: Proxy = document.section("proxy")?;
    let container: Container = document.section("container")?;
    let mut warnings = Vec::new();

    let url = pretix_url(document)?;
    let url_host = url_host_and_port(&url)?;
    let server_name = match &section.server_name {
        Some(name) => {
            validate_server_name(name, "proxy.server_name")?;
            name.to_ascii_lowercase()
        }
        None => {
            validate_server_name(&url_host.0, "config.pretix.url")?;
            url_host.0.clone()
        }
    };
    check_ports(&section)?;
    if url_host.0 != server_name {
        return Err(ToolError::input(
            "config.pretix.url",
            format!(
                "{url} names host {}, but proxy.server_name is {server_name}: pretix then refuses requests for \
                 {server_name} (400 \"Unknown host\") and logins fail the CSRF check; make them the same",
                url_host.0
            ),
        ));
    }
    if url_host.1 != section.https_port {
        return Err(ToolError::input(
            "config.pretix.url",
            format!(
                "{url} is on port {}, but nginx serves HTTPS on proxy.https_port {}: set config.pretix.url to \
                 https://{server_name}{}",
                url_host.1,
                section.https_port,
                if section.https_port == 443 {
                    String::new()
                } else {
                    format!(":{}", section.https_port)
                }
            ),
        ));
    }
    check_forwarded_settings(document, &mut warnings)?;

    let upstream = match &section.upstream {
        Some(upstream) => {
            validate_upstream(upstream, "proxy.upstream")?;
            upstream.clone()
        }
        None => {
            let host = match container.bind_address.as_str() {
                "0.0.0.0" => "127.0.0.1".to_owned(),
                "::" | "[::]" => "[::1]".to_owned(),
                address if address.parse::<Ipv6Addr>().is_ok() => format!("[{address}]"),
                address => address.to_owned(),
            };
            let web: Vec<u16> = container
                .resolved_instances()
                .iter()
                .filter_map(|instance| instance.published_port)
                .collect();
            let Some(port) = web.first() else {
                return Err(ToolError::input(
                    "proxy.upstream",
                    "is unset and no container publishes pretix's web port (roles all or web): set proxy.upstream \
                     to the host:port nginx should forward to",
                ));
            };
            if web.len() > 1 {
                warnings.push(format!(
                    "several containers publish pretix's web port ({}): nginx forwards to the first, {port}; set \
                     proxy.upstream to choose",
                    web.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
                ));
            }
            let upstream = format!("{host}:{port}");
            validate_upstream(&upstream, "container.bind_address")?;
            upstream
        }
    };

    let (certificate, certificate_key) = match section.certificate_source {
        CertificateSource::Acme => {
            if section.certificate.is_some() || section.certificate_key.is_some() {
                return Err(ToolError::input(
                    "proxy.certificate",
                    "is set together with certificate_source acme: certbot keeps its certificates in \
                     /etc/letsencrypt/live/<server_name>/; leave certificate and certificate_key unset",
                ));
            }
            let live = PathBuf::from("/etc/letsencrypt/live").join(&server_name);
            (live.join("fullchain.pem"), live.join("privkey.pem"))
        }
        CertificateSource::Existing | CertificateSource::SelfSigned => (
            section
                .certificate
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("/etc/ssl/certs/{server_name}.pem"))),
            section
                .certificate_key
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("/etc/ssl/private/{server_name}.key"))),
        ),
    };
    if section.certificate_source == CertificateSource::SelfSigned {
        warnings.push(SELF_SIGNED_WARNING.to_owned());
    }
    validate_site_name(&section.site_name)?;
    // The shared check (absolute, no `..`, no control characters) for every path the document
    // gives, then the derived certificate paths; and nothing nginx reads as syntax in any of them.
    section.validate_host_paths()?;
    let mut paths: Vec<(&str, &Path)> = section.host_paths();
    paths.push(("proxy.certificate", &certificate));
    paths.push(("proxy.certificate_key", &certificate_key));
    for (field, path) in paths {
        validate_host_path(path, field)?;
        validate_word(&path.to_string_lossy(), field)?;
        if path.parent().is_none() {
            return Err(ToolError::input(field, "is / : give a file or directory below it"));
        }
    }
    if certificate == certificate_key {
        return Err(ToolError::input(
            "proxy.certificate_key",
            "is the same file as proxy.certificate: keep the private key in its own root-only file",
        ));
    }
    if let Some(email) = &section.acme_email {
        validate_email(email)?;
    }
    if let Some(server) = &section.acme_server {
        validate_word(server, "proxy.acme_server")?;
        if !server.starts_with("https://") {
            return Err(ToolError::input(
                "proxy.acme_server",
                format!(
                    "{} is not an https:// URL: give the ACME directory URL",
                    server.escape_debug()
                ),
            ));
        }
    }
    pretix_site::service::validate_unit_name(&section.service, "proxy.service", "nginx")?;
    let listen_address = match &section.listen_address {
        Some(address) => Some(address.parse::<Ipv4Addr>().map_err(|_| {
            ToolError::input(
                "proxy.listen_address",
                format!(
                    "{} is not an IPv4 address: give one such as 203.0.113.7, or leave it unset to listen on \
                     every address",
                    address.escape_debug()
                ),
            )
        })?),
        None => None,
    };
    if section.ipv6only && !section.ipv6 {
        return Err(ToolError::input(
            "proxy.ipv6only",
            "is on while proxy.ipv6 is off: ipv6only applies only to the IPv6 listens; turn one of them around",
        ));
    }
    if section.default_server {
        warnings.push(format!(
            "proxy.default_server is on: this site answers every request on ports {} and {} that names no other \
             site; nginx refuses a second default server there",
            section.http_port, section.https_port
        ));
    }
    Ok(Desired {
        server_name,
        upstream,
        source: section.certificate_source,
        certificate,
        certificate_key,
        acme_webroot: section.acme_webroot.clone(),
        acme_email: section.acme_email.clone(),
        acme_server: section.acme_server.clone(),
        site_file: section.sites_available.join(&section.site_name),
        site_link: section.sites_enabled.join(&section.site_name),
        sites_enabled: section.sites_enabled.clone(),
        nginx_conf: section.nginx_conf.clone(),
        nginx_prefix: section.nginx_prefix.clone(),
        listen_address,
        ipv6: section.ipv6,
        http_port: section.http_port,
        https_port: section.https_port,
        default_server: section.default_server,
        ipv6only: section.ipv6only,
        hsts_max_age_seconds: section.hsts_max_age_seconds,
        reload: section.reload,
        service: section.service.clone(),
        warnings,
    })
}

fn pretix_url(document: &Document) -> Result<String, ToolError> {
    match document.config_value("pretix", "url")? {
        Some(ConfigValue::Text(url)) => Ok(url),
        Some(_) => Err(ToolError::input(
            "config.pretix.url",
            "must be a string such as https://tickets.example.org",
        )),
        None => Err(ToolError::input(
            "config.pretix.url",
            "missing: set it to https://<the public host name>; the proxy serves pretix there",
        )),
    }
}

/// The host (lowercase) and port of an `https://host[:port][/]` URL; anything else is refused.
fn url_host_and_port(url: &str) -> Result<(String, u16), ToolError> {
    let field = "config.pretix.url";
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(ToolError::input(
            field,
            format!(
                "{} does not start with https://: behind the TLS proxy pretix must know its URL as https, or it \
                 builds http links and its CSRF check fails; use https://<host>",
                url.escape_debug()
            ),
        ));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(ToolError::input(
            field,
            format!(
                "{} is not just https://<host>: pretix is served at the root of its host name; remove the path, \
                 query or user",
                url.escape_debug()
            ),
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let port = match port {
        None => 443,
        Some(text) => text.parse::<u16>().ok().filter(|port| *port != 0).ok_or_else(|| {
            ToolError::input(
                field,
                format!("{} has a bad port: give 1-65535 or none", url.escape_debug()),
            )
        })?,
    };
    Ok((host.to_ascii_lowercase(), port))
}

/// A DNS host name: letters, digits and hyphens in dot-separated labels of 1-63, at most 253 in
/// all (an internationalised name in its xn-- form).
pub fn validate_server_name(name: &str, field: &str) -> Result<(), ToolError> {
    validate_word(name, field)?;
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(ToolError::input(
            field,
            format!(
                "{} is not a host name: give one such as tickets.example.org (letters, digits, hyphens and dots; \
                 an internationalised name in its xn-- form)",
                name.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// `host:port` with an IPv4 address, a bracketed IPv6 address or a host name.
pub fn validate_upstream(upstream: &str, field: &str) -> Result<(), ToolError> {
    validate_word(upstream, field)?;
    let bad = || {
        ToolError::input(
            field,
            format!(
                "{} is not host:port: give the container's published address, such as 127.0.0.1:8345 or \
                 [::1]:8345",
                upstream.escape_debug()
            ),
        )
    };
    let (host, port) = upstream.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().ok().filter(|port| *port != 0).ok_or_else(bad)?;
    if let Some(inner) = host.strip_prefix('[').and_then(|host| host.strip_suffix(']')) {
        inner.parse::<Ipv6Addr>().map_err(|_| bad())?;
    } else if host.parse::<Ipv4Addr>().is_err() {
        validate_server_name(host, field).map_err(|_| bad())?;
    }
    Ok(())
}

fn validate_site_name(name: &str) -> Result<(), ToolError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ToolError::input(
            "proxy.site_name",
            format!(
                "{} is not a plain file name: use letters, digits, dots, hyphens and underscores, such as pretix",
                name.escape_debug()
            ),
        ))
    }
}

fn validate_email(email: &str) -> Result<(), ToolError> {
    validate_word(email, "proxy.acme_email")?;
    let ok = !email.starts_with('-')
        && email
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && validate_server_name(domain, "proxy.acme_email").is_ok())
        && email.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ToolError::input(
            "proxy.acme_email",
            format!(
                "{} is not an e-mail address: give one such as admin@example.org",
                email.escape_debug()
            ),
        ))
    }
}

fn check_ports(section: &Proxy) -> Result<(), ToolError> {
    for (field, port) in [
        ("proxy.http_port", section.http_port),
        ("proxy.https_port", section.https_port),
    ] {
        if port == 0 {
            return Err(ToolError::input(field, "is 0: give a port from 1 to 65535"));
        }
    }
    if section.http_port == section.https_port {
        return Err(ToolError::input(
            "proxy.https_port",
            "is the same as proxy.http_port: HTTP and HTTPS need ports of their own",
        ));
    }
    Ok(())
}

/// pretix believes the forwarded headers only when told to; pretix-cfg turns both on by default,
/// so only an explicit `off` is a contradiction.
fn check_forwarded_settings(document: &Document, warnings: &mut Vec<String>) -> Result<(), ToolError> {
    let is_off = |value: Option<ConfigValue>| match value {
        Some(ConfigValue::Bool(false)) => true,
        Some(ConfigValue::Text(text)) => matches!(text.to_ascii_lowercase().as_str(), "off" | "no" | "false" | "0"),
        Some(ConfigValue::Integer(0)) => true,
        _ => false,
    };
    if is_off(document.config_value("pretix", "trust_x_forwarded_proto")?) {
        return Err(ToolError::input(
            "config.pretix.trust_x_forwarded_proto",
            "is off, but the proxy tells pretix the request came over https with X-Forwarded-Proto: pretix would \
             think every request is plain http, and logins fail the CSRF check; turn it on (the guide does)",
        ));
    }
    if is_off(document.config_value("pretix", "trust_x_forwarded_for")?) {
        warnings.push(
            "config.pretix.trust_x_forwarded_for is off: pretix logs and rate-limits every visitor as the proxy's \
             address; turn it on (the guide does)"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams() {
        for good in ["127.0.0.1:8345", "[::1]:8345", "pretix.internal:80"] {
            assert!(validate_upstream(good, "proxy.upstream").is_ok(), "{good} refused");
        }
        for bad in [
            "127.0.0.1",
            "127.0.0.1:0",
            "x:8345;",
            "[::1:8345",
            "a b:1",
            "http://x:1",
            "::1:8345",
        ] {
            assert!(validate_upstream(bad, "proxy.upstream").is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn server_names() {
        for good in ["tickets.example.org", "localhost", "xn--bcher-kva.example"] {
            assert!(validate_server_name(good, "f").is_ok(), "{good} refused");
        }
        for bad in [
            "-a.example",
            "a..b",
            "a_b.example",
            "*.example.org",
            "a.example;",
            "x$host",
            "",
        ] {
            assert!(validate_server_name(bad, "f").is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            url_host_and_port("https://Tickets.Example.org/").ok(),
            Some(("tickets.example.org".to_owned(), 443))
        );
        assert_eq!(
            url_host_and_port("https://t.example:8443").ok(),
            Some(("t.example".to_owned(), 8443))
        );
        for bad in [
            "http://t.example",
            "https://t.example/shop",
            "https://u@t.example",
            "https://t.example:x",
        ] {
            assert!(url_host_and_port(bad).is_err(), "{bad} accepted");
        }
    }
}
