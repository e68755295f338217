//! `verify`: read-only. The site file and its link, the certificate (key, name, days left),
//! `nginx -t`, and, when nginx answers, that port 80 redirects to the https URL and port 443
//! serves the configured certificate and proxies to a healthy pretix (`/healthcheck/`).
//! Any failure fails the run (exit 1); nothing on the host is changed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use pretix_site::nginx::ScratchTree;
use pretix_site::report::CheckStatus;
use pretix_site::{Context, Document, ToolError};

use crate::cert::WARN_DAYS;
use crate::inspect::{self, CertState, LinkState};
use crate::plan;
use crate::probe::{self, ProbeError};
use crate::settings::{self, Desired};
use crate::site::{self, SiteForm};

pub fn verify(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let desired = settings::resolve(document)?;
    for warning in &desired.warnings {
        ctx.check_item("proxy section", CheckStatus::Warning, warning.clone());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    let state = inspect::read(ctx.root(), &desired).map_err(ToolError::failed)?;
    let expected = site::render(
        &desired,
        SiteForm::Full,
        &desired.certificate,
        &desired.certificate_key,
        &desired.acme_webroot,
    )?;
    let (status, message) = match &state.site {
        None => (
            CheckStatus::Failure,
            format!("{} does not exist: run pretix-proxy apply", desired.site_file.display()),
        ),
        Some(current) if current.content == expected.as_bytes() => (
            CheckStatus::Ok,
            format!("{} is as apply writes it", desired.site_file.display()),
        ),
        Some(_) => (
            CheckStatus::Warning,
            format!(
                "{} differs from what apply writes (edited by hand, or the document changed): run pretix-proxy \
                 apply --check --diff",
                desired.site_file.display()
            ),
        ),
    };
    ctx.check_item("site file", status, message);
    let (status, message) = match &state.link {
        LinkState::ToSite => (CheckStatus::Ok, format!("{} is enabled", desired.site_file.display())),
        LinkState::Absent => (
            CheckStatus::Failure,
            format!(
                "{} is missing: the site is not enabled; run pretix-proxy apply",
                desired.site_link.display()
            ),
        ),
        LinkState::Elsewhere(target) => (
            CheckStatus::Failure,
            format!(
                "{} links to {}, not to the pretix site",
                desired.site_link.display(),
                target.display()
            ),
        ),
        LinkState::NotALink => (
            CheckStatus::Failure,
            format!(
                "{} is a file, not a link to the pretix site",
                desired.site_link.display()
            ),
        ),
    };
    ctx.check_item("site enabled", status, message);
    let leaf = check_certificate(ctx, &desired, &state.certificate, now);
    check_nginx(ctx, &desired);
    if ctx.root().is_redirected() || ctx.is_offline() {
        ctx.check_item(
            "answering",
            CheckStatus::Warning,
            "not checked (--root or --offline): nginx was not contacted",
        );
    } else {
        check_http(ctx, &desired);
        check_https(ctx, &desired, leaf.as_deref());
    }
    ctx.verify_outcome("pretix-proxy apply fixes the site and the certificate it makes; each item says what to do")
}

/// Returns the leaf certificate (DER) when it is usable, for the HTTPS probe.
fn check_certificate(ctx: &mut Context, desired: &Desired, state: &CertState, now: i64) -> Option<Vec<u8>> {
    match state {
        CertState::Missing { path, .. } => {
            ctx.check_item(
                "certificate",
                CheckStatus::Failure,
                format!("{} does not exist", path.display()),
            );
            None
        }
        CertState::Unusable { path, problem, .. } => {
            ctx.check_item(
                "certificate",
                CheckStatus::Failure,
                format!("{} {problem}", path.display()),
            );
            None
        }
        CertState::Present { info, .. } => {
            let mut warnings = Vec::new();
            let days = info.days_left(now);
            match plan::check_usable(desired, info, now, &mut warnings) {
                Err(error) => ctx.check_item("certificate", CheckStatus::Failure, error.to_string()),
                Ok(()) => {
                    let status = if days < WARN_DAYS || !warnings.is_empty() {
                        CheckStatus::Warning
                    } else {
                        CheckStatus::Ok
                    };
                    let mut message = format!(
                        "{} covers {}, {days} day(s) left",
                        desired.certificate.display(),
                        desired.server_name
                    );
                    for warning in warnings {
                        message.push_str("; ");
                        message.push_str(&warning);
                    }
                    ctx.check_item("certificate", status, message);
                }
            }
            Some(info.leaf_der.clone())
        }
    }
}

fn check_nginx(ctx: &mut Context, desired: &Desired) {
    let mut log = |_: &str| {};
    let result = if ctx.root().is_redirected() {
        let mapped = site::render(
            desired,
            SiteForm::Full,
            &ctx.root().host_path(&desired.certificate),
            &ctx.root().host_path(&desired.certificate_key),
            &ctx.root().host_path(&desired.acme_webroot),
        );
        match mapped
            .map_err(|error| error.to_string())
            .and_then(|text| ScratchTree::new(&text).map_err(|error| error.to_string()))
        {
            Ok(scratch) => scratch.nginx().test(&mut log).map_err(|error| error.to_string()),
            Err(error) => Err(error),
        }
    } else {
        crate::apply::nginx_of(desired)
            .test(&mut log)
            .map_err(|error| error.to_string())
    };
    match result {
        Ok(report) if report.warnings.is_empty() => {
            ctx.check_item("nginx -t", CheckStatus::Ok, "nginx accepts the configuration")
        }
        Ok(report) => ctx.check_item("nginx -t", CheckStatus::Warning, report.warnings.join("; ")),
        Err(error) => ctx.check_item("nginx -t", CheckStatus::Failure, error),
    }
}

fn address(desired: &Desired, port: u16) -> SocketAddr {
    let ip = desired.listen_address.unwrap_or(Ipv4Addr::LOCALHOST);
    SocketAddr::new(IpAddr::V4(ip), port)
}

fn host_header(desired: &Desired, port: u16, default: u16) -> String {
    if port == default {
        desired.server_name.clone()
    } else {
        format!("{}:{port}", desired.server_name)
    }
}

fn check_http(ctx: &mut Context, desired: &Desired) {
    let target = address(desired, desired.http_port);
    let host = host_header(desired, desired.http_port, 80);
    let wanted = format!("{}/pretix-proxy-verify", desired.expected_url());
    let (status, message) = match probe::http_get(target, &host, "/pretix-proxy-verify") {
        Ok(response) if response.status == 301 && response.header("Location") == Some(wanted.as_str()) => (
            CheckStatus::Ok,
            format!("http://{host}/ answers 301 to {}", desired.expected_url()),
        ),
        Ok(response) => (
            CheckStatus::Failure,
            format!(
                "http://{host}/ answers {} (Location {}), not 301 to {wanted}: another site may take the requests; \
                 see nginx -T",
                response.status,
                response.header("Location").unwrap_or("none")
            ),
        ),
        Err(ProbeError::Unreachable(address)) => (
            CheckStatus::Warning,
            format!("not checked: nothing answers on {address} (is nginx running?)"),
        ),
        Err(error) => (CheckStatus::Failure, error.to_string()),
    };
    ctx.check_item("http redirect", status, message);
}

fn check_https(ctx: &mut Context, desired: &Desired, leaf: Option<&[u8]>) {
    let Some(leaf) = leaf else {
        ctx.check_item(
            "pretix over https",
            CheckStatus::Warning,
            "not checked: no usable certificate",
        );
        return;
    };
    let target = address(desired, desired.https_port);
    let host = host_header(desired, desired.https_port, 443);
    let (status, message) = match probe::https_get(target, &desired.server_name, &host, "/healthcheck/", leaf) {
        Ok(response) if response.status == 200 => (
            CheckStatus::Ok,
            format!("{}/healthcheck/ answers 200 through nginx", desired.expected_url()),
        ),
        Ok(response) if matches!(response.status, 502 | 504) => (
            CheckStatus::Failure,
            format!(
                "nginx answers {} for {}/healthcheck/: pretix behind it ({}) does not answer; is the container \
                 running (systemctl status pretix)?",
                response.status,
                desired.expected_url(),
                desired.upstream
            ),
        ),
        Ok(response) => (
            CheckStatus::Failure,
            format!(
                "{}/healthcheck/ answers {} through nginx: {} (pretix's own health check: see journalctl -u \
                 pretix)",
                desired.expected_url(),
                response.status,
                response.body.lines().next().unwrap_or("(no body)")
            ),
        ),
        Err(ProbeError::Unreachable(address)) => (
            CheckStatus::Warning,
            format!("not checked: nothing answers on {address} (is nginx running?)"),
        ),
        Err(error) => (CheckStatus::Failure, error.to_string()),
    };
    ctx.check_item("pretix over https", status, message);
}
