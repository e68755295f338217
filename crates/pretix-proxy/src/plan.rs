//! `plan(desired, state, now) -> Plan`: pure. Decides what the certificate needs, whether the
//! site file and its link change, and whether nginx must be tested and reloaded.

use pretix_site::ToolError;
use pretix_site::sections::CertificateSource;

use crate::cert::{CertInfo, WARN_DAYS};
use crate::inspect::{CertState, LinkState, State};
use crate::settings::Desired;
use crate::site::{self, SiteForm};

/// One thing `apply` does, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the ACME webroot directory (root, 0755: nginx's workers read it).
    CreateWebroot,
    /// Make a new self-signed certificate and key (the key root-only).
    MakeSelfSigned { reason: String },
    /// Serve port 80 alone, then obtain the certificate with certbot's webroot method.
    ObtainAcme,
    /// Write the site file.
    WriteSite,
    /// Link it into `sites-enabled`.
    EnableSite,
    /// `nginx -t` on the whole configuration; a refusal restores what was there.
    TestConfig,
    /// Reload nginx, only after `TestConfig` passed.
    Reload,
}

impl Step {
    pub fn describe(&self, desired: &Desired) -> String {
        match self {
            Step::CreateWebroot => format!("create the ACME webroot {}", desired.acme_webroot.display()),
            Step::MakeSelfSigned { reason } => format!(
                "make a self-signed STAGING certificate for {} ({reason})",
                desired.server_name
            ),
            Step::ObtainAcme => format!(
                "obtain a certificate for {} with certbot --webroot",
                desired.server_name
            ),
            Step::WriteSite => format!("write {}", desired.site_file.display()),
            Step::EnableSite => format!(
                "enable the site: link {} -> {}",
                desired.site_link.display(),
                desired.site_file.display()
            ),
            Step::TestConfig => "test the whole nginx configuration (nginx -t)".to_owned(),
            Step::Reload => "reload nginx".to_owned(),
        }
    }
}

/// What `apply` will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// The full site, as it will be written.
    pub site_text: String,
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn has(&self, step: &Step) -> bool {
        self.steps.contains(step)
    }

    pub fn makes_self_signed(&self) -> bool {
        self.steps
            .iter()
            .any(|step| matches!(step, Step::MakeSelfSigned { .. }))
    }
}

/// The plan. A problem that must stop the run (a missing or expired certificate, somebody
/// else's site under our name) is an error here, before anything changes.
pub fn plan(desired: &Desired, state: &State, now: i64) -> Result<Plan, ToolError> {
    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    if !state.webroot_exists {
        steps.push(Step::CreateWebroot);
    }
    if let Some(step) = certificate_step(desired, &state.certificate, now, &mut warnings)? {
        steps.push(step);
    }
    let site_text = site::render(
        desired,
        SiteForm::Full,
        &desired.certificate,
        &desired.certificate_key,
        &desired.acme_webroot,
    )?;
    let site_changes = match &state.site {
        None => true,
        Some(current) => current.content != site_text.as_bytes() || current.mode != 0o644 || current.uid != 0,
    };
    if site_changes {
        steps.push(Step::WriteSite);
    }
    match &state.link {
        LinkState::ToSite => {}
        LinkState::Absent => steps.push(Step::EnableSite),
        LinkState::Elsewhere(target) => {
            return Err(ToolError::failed(format!(
                "{} is a link to {}, not to {}: another site uses the name; remove the link or choose another \
                 proxy.site_name",
                desired.site_link.display(),
                target.display(),
                desired.site_file.display()
            )));
        }
        LinkState::NotALink => {
            return Err(ToolError::failed(format!(
                "{} is a file, not a link: the toolkit enables its site with a link to {}; move the file away \
                 (it may be an older copy of this site)",
                desired.site_link.display(),
                desired.site_file.display()
            )));
        }
    }
    let changes_nginx = steps.iter().any(|step| {
        matches!(
            step,
            Step::WriteSite | Step::EnableSite | Step::MakeSelfSigned { .. } | Step::ObtainAcme
        )
    });
    if changes_nginx {
        steps.push(Step::TestConfig);
        steps.push(Step::Reload);
    }
    Ok(Plan {
        steps,
        site_text,
        warnings,
    })
}

fn certificate_step(
    desired: &Desired,
    state: &CertState,
    now: i64,
    warnings: &mut Vec<String>,
) -> Result<Option<Step>, ToolError> {
    match (desired.source, state) {
        (CertificateSource::SelfSigned, CertState::Missing { path, .. }) => Ok(Some(Step::MakeSelfSigned {
            reason: format!("{} does not exist", path.display()),
        })),
        (CertificateSource::SelfSigned, CertState::Present { info, .. }) if info.self_signed => {
            let reason = if !info.covers(&desired.server_name) {
                Some(format!("the old one is for {}", info.names.join(", ")))
            } else if info.days_left(now) < WARN_DAYS {
                Some(format!("the old one has {} days left", info.days_left(now)))
            } else {
                None
            };
            Ok(reason.map(|reason| Step::MakeSelfSigned { reason }))
        }
        (CertificateSource::SelfSigned, CertState::Present { .. }) => Err(ToolError::failed(format!(
            "{} holds a certificate a CA issued: certificate_source self_signed never replaces it; use \
             certificate_source existing, or give other paths for the staging certificate",
            desired.certificate.display()
        ))),
        (CertificateSource::Acme, CertState::Missing { .. }) => Ok(Some(Step::ObtainAcme)),
        (_, CertState::Missing { field, path }) => Err(ToolError::input(
            *field,
            format!(
                "{} does not exist: put the certificate (with its chain) and its key there, or choose \
                 proxy.certificate_source acme (certbot) or self_signed (staging only)",
                path.display()
            ),
        )),
        (_, CertState::Unusable { field, path, problem }) => {
            Err(ToolError::input(*field, format!("{} {problem}", path.display())))
        }
        (_, CertState::Present { info, key_mode }) => {
            check_usable(desired, info, now, warnings)?;
            if key_mode & 0o077 != 0 {
                warnings.push(format!(
                    "{} is mode {key_mode:04o}: a private key should be readable by root alone; chmod 600 it",
                    desired.certificate_key.display()
                ));
            }
            Ok(None)
        }
    }
}

/// A certificate that is there must cover the name and be valid now.
pub fn check_usable(desired: &Desired, info: &CertInfo, now: i64, warnings: &mut Vec<String>) -> Result<(), ToolError> {
    if !info.covers(&desired.server_name) {
        return Err(ToolError::input(
            "proxy.certificate",
            format!(
                "{} is for {}, not for {}: browsers would refuse it; give the certificate for {}",
                desired.certificate.display(),
                info.names.join(", "),
                desired.server_name,
                desired.server_name
            ),
        ));
    }
    let days = info.days_left(now);
    if info.not_after <= now {
        return Err(ToolError::failed(format!(
            "{} expired {} day(s) ago: renew it{}",
            desired.certificate.display(),
            -days,
            renew_hint(desired)
        )));
    }
    if info.not_before > now {
        return Err(ToolError::failed(format!(
            "{} is not valid yet: check the clock of this host, or the certificate",
            desired.certificate.display()
        )));
    }
    if days < WARN_DAYS {
        warnings.push(format!(
            "{} expires in {days} day(s): renew it{}",
            desired.certificate.display(),
            renew_hint(desired)
        ));
    }
    if info.self_signed && desired.source != CertificateSource::SelfSigned {
        warnings.push(format!(
            "{} is self-signed: browsers warn every visitor; use a certificate from a CA",
            desired.certificate.display()
        ));
    }
    Ok(())
}

fn renew_hint(desired: &Desired) -> &'static str {
    match desired.source {
        CertificateSource::Acme => {
            " (certbot renew; check that certbot.timer runs: systemctl list-timers certbot.timer)"
        }
        CertificateSource::SelfSigned => " (pretix-proxy apply makes a new one)",
        CertificateSource::Existing => "",
    }
}
