//! `apply`: inspect, plan, then perform the plan as one transaction: whatever the run wrote
//! (site file, link, a staging certificate) is restored to what was there when `nginx -t`
//! refuses the configuration, certbot fails, or anything else fails before the reload; nginx is
//! reloaded only with a configuration `nginx -t` accepted.

use std::path::PathBuf;
use std::process::Command;

use pretix_site::exec::{self, ExecError};
use pretix_site::fs::{CurrentFile, DirSpec, FileSpec, write_atomically};
use pretix_site::nginx::{Nginx, ScratchTree, TestReport};
use pretix_site::sections::NginxReload;
use pretix_site::service::ServiceOutcome;
use pretix_site::{Context, Document, ToolError};

use crate::cert;
use crate::inspect::{self, CertState};
use crate::plan::{self, Plan, Step};
use crate::settings::{self, Desired};
use crate::site::{self, SiteForm};

pub fn apply(ctx: &mut Context, document: &mut Document) -> Result<String, ToolError> {
    let desired = settings::resolve(document)?;
    for warning in &desired.warnings {
        ctx.warn(warning.clone());
    }
    let now = unix_now();
    let state = inspect::read(ctx.root(), &desired).map_err(ToolError::failed)?;
    let plan = plan::plan(&desired, &state, now)?;
    for warning in &plan.warnings {
        ctx.warn(warning.clone());
    }
    if plan.steps.is_empty() {
        return Ok(format!(
            "{} is served at {} through {}; nothing to change",
            desired.upstream,
            desired.expected_url(),
            desired.site_file.display()
        ));
    }
    // Everything below ends in nginx -t: without nginx, change nothing.
    if !nginx_of(&desired).is_installed() {
        let error = pretix_site::nginx::NginxError::NotInstalled.to_string();
        if !ctx.is_check() {
            return Err(ToolError::failed(error));
        }
        ctx.warn(error);
    }
    if ctx.is_check() {
        show_plan(ctx, &desired, &plan)?;
        return Ok(format!("would change the site for {}", desired.server_name));
    }
    let mut transaction = Transaction::begin(ctx, &desired, &plan).map_err(ToolError::failed)?;
    match perform(ctx, &desired, &plan, &mut transaction, now) {
        Ok(reloaded) => Ok(format!(
            "{} serves pretix ({}) at {}{}",
            desired.site_file.display(),
            desired.upstream,
            desired.expected_url(),
            reloaded
        )),
        Err(error) => {
            let restored = transaction.rollback(ctx, &desired);
            Err(ToolError::Failed(anyhow::anyhow!("{error}; {restored}")))
        }
    }
}

/// `--check`: the plan, with the site's diff.
fn show_plan(ctx: &mut Context, desired: &Desired, plan: &Plan) -> Result<(), ToolError> {
    for step in &plan.steps {
        match step {
            Step::WriteSite => {
                ctx.file(&site_spec(desired, &plan.site_text))?;
            }
            Step::TestConfig => ctx.note(format!("would {}", step.describe(desired))),
            _ => ctx.changed(step.describe(desired)),
        }
    }
    // The planned site through nginx's own parser, alone in a scratch configuration, when its
    // certificate is already there: a site nginx refuses alone it refuses in the whole
    // configuration too, so the plan says so now rather than the apply later.
    let certificate_in_place = !plan.makes_self_signed() && !plan.has(&Step::ObtainAcme);
    if plan.has(&Step::WriteSite) && certificate_in_place && nginx_of(desired).is_installed() {
        let report = scratch_test(ctx, desired, SiteForm::Full)
            .map_err(|error| ToolError::failed(format!("the planned site would not go live: {error}")))?;
        for warning in report.warnings {
            ctx.warn(format!("nginx -t: {warning}"));
        }
        ctx.note("nginx -t accepts the planned site (checked alone in a scratch configuration)");
    }
    Ok(())
}

/// `nginx -t` on the site alone in a scratch configuration, its certificate and webroot paths
/// pointed into `--root` when there is one.
fn scratch_test(ctx: &Context, desired: &Desired, form: SiteForm) -> Result<TestReport, ToolError> {
    let root = ctx.root();
    let mapped = site::render(
        desired,
        form,
        &root.host_path(&desired.certificate),
        &root.host_path(&desired.certificate_key),
        &root.host_path(&desired.acme_webroot),
    )?;
    let scratch = ScratchTree::new(&mapped).map_err(|error| ToolError::failed(error.to_string()))?;
    scratch
        .nginx()
        .test(&mut |line| ctx.debug(line))
        .map_err(|error| ToolError::failed(error.to_string()))
}

fn site_spec(desired: &Desired, text: &str) -> FileSpec {
    FileSpec::new(&desired.site_file, text.as_bytes().to_vec())
        .owner(0, 0)
        .mode(0o644)
}

/// Performs the steps; returns how nginx was reloaded, for the summary.
fn perform(
    ctx: &mut Context,
    desired: &Desired,
    plan: &Plan,
    transaction: &mut Transaction,
    now: i64,
) -> Result<String, ToolError> {
    let mut reloaded = String::new();
    for step in &plan.steps {
        match step {
            Step::CreateWebroot => {
                ctx.ensure_parents(&desired.acme_webroot)?;
                ctx.dir(&DirSpec {
                    path: desired.acme_webroot.clone(),
                    uid: Some(0),
                    gid: Some(0),
                    mode: 0o755,
                })?;
            }
            Step::MakeSelfSigned { reason } => {
                let made = cert::make_self_signed(&desired.server_name, now).map_err(ToolError::failed)?;
                ctx.warn(format!(
                    "made a self-signed STAGING certificate for {} ({reason}): browsers will warn every visitor",
                    desired.server_name
                ));
                ctx.ensure_parents(&desired.certificate_key)?;
                ctx.file(
                    &FileSpec::new(&desired.certificate_key, made.key_pem.into_bytes())
                        .owner(0, 0)
                        .mode(0o600)
                        .secret(),
                )?;
                ctx.ensure_parents(&desired.certificate)?;
                ctx.file(
                    &FileSpec::new(&desired.certificate, made.certificate_pem.into_bytes())
                        .owner(0, 0)
                        .mode(0o644),
                )?;
            }
            Step::ObtainAcme => {
                obtain_acme(ctx, desired, transaction, now)?;
            }
            Step::WriteSite => {
                ctx.ensure_parents(&desired.site_file)?;
                ctx.file(&site_spec(desired, &plan.site_text))?;
            }
            Step::EnableSite => enable(ctx, desired)?,
            Step::TestConfig => test_config(ctx, desired, &plan.site_text)?,
            Step::Reload => {
                reloaded = reload(ctx, desired)?;
                transaction.reloaded = true;
            }
        }
    }
    Ok(reloaded)
}

/// Port 80 alone (with the ACME location), tested and reloaded, then certbot; the full site
/// follows in the next steps.
fn obtain_acme(ctx: &mut Context, desired: &Desired, transaction: &mut Transaction, now: i64) -> Result<(), ToolError> {
    if ctx.root().is_redirected() {
        return Err(ToolError::failed(
            "certificate_source acme needs certbot and a reachable port 80, which a --root run does not use: put \
             the certificate files under the root, or plan with --check",
        ));
    }
    let bootstrap = site::render(
        desired,
        SiteForm::AcmeBootstrap,
        &desired.certificate,
        &desired.certificate_key,
        &desired.acme_webroot,
    )?;
    ctx.ensure_parents(&desired.site_file)?;
    ctx.file(&site_spec(desired, &bootstrap))?;
    enable(ctx, desired)?;
    test_config(ctx, desired, &bootstrap)?;
    reload(ctx, desired)?;
    transaction.reloaded = true;

    let mut command = Command::new("certbot");
    command
        .args([
            "certonly",
            "--webroot",
            "--non-interactive",
            "--agree-tos",
            "--keep-until-expiring",
        ])
        .arg("--webroot-path")
        .arg(&desired.acme_webroot)
        .arg(format!("--domain={}", desired.server_name))
        .arg(format!("--cert-name={}", desired.server_name));
    match &desired.acme_email {
        Some(email) => command.arg(format!("--email={email}")),
        None => command.arg("--register-unsafely-without-email"),
    };
    if let Some(server) = &desired.acme_server {
        command.arg(format!("--server={server}"));
    }
    if let Some(hook) = deploy_hook(desired) {
        command.arg(format!("--deploy-hook={hook}"));
    }
    ctx.info("asking the ACME CA for a certificate (certbot, up to a minute)");
    exec::run(&mut command, None, &mut |line| ctx.debug(line)).map_err(|error| match error {
        ExecError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ToolError::failed(
            "certbot is not installed: install it with apt-get install certbot, or choose another \
             proxy.certificate_source",
        ),
        other => ToolError::failed(format!(
            "certbot could not obtain a certificate for {}: {other}; check that {} reaches this host on port 80 \
             (DNS, firewall) and see /var/log/letsencrypt/letsencrypt.log",
            desired.server_name, desired.server_name
        )),
    })?;
    ctx.changed(format!("obtain a certificate for {} (certbot)", desired.server_name));
    match inspect::read(ctx.root(), desired).map(|state| state.certificate) {
        Ok(CertState::Present { info, .. }) => {
            let mut warnings = Vec::new();
            plan::check_usable(desired, &info, now, &mut warnings)?;
            Ok(())
        }
        Ok(_) | Err(_) => Err(ToolError::failed(format!(
            "certbot succeeded but {} or {} is missing or unusable: see certbot certificates",
            desired.certificate.display(),
            desired.certificate_key.display()
        ))),
    }
}

/// What certbot runs after each renewal, so nginx serves the new certificate. Every word was
/// checked by `settings` (no quotes, no whitespace), so single quotes keep it one word each.
fn deploy_hook(desired: &Desired) -> Option<String> {
    match desired.reload {
        NginxReload::Systemd => Some(format!("systemctl reload {}", desired.service)),
        NginxReload::Signal => {
            let mut words = vec![format!("'{}'", pretix_site::nginx::DEBIAN_BINARY)];
            if let Some(prefix) = &desired.nginx_prefix {
                words.push(format!("-p '{}/'", prefix.display()));
            }
            if let Some(conf) = &desired.nginx_conf {
                words.push(format!("-c '{}'", conf.display()));
            }
            words.push("-s reload".to_owned());
            Some(words.join(" "))
        }
        NginxReload::None => None,
    }
}

/// The link in `sites-enabled`, made under a temp name and renamed into place.
fn enable(ctx: &mut Context, desired: &Desired) -> Result<(), ToolError> {
    let link = ctx.root().host_path(&desired.site_link);
    if std::fs::read_link(&link).is_ok_and(|target| target == desired.site_file) {
        return Ok(());
    }
    ctx.ensure_parents(&desired.site_link)?;
    let dir = link
        .parent()
        .ok_or_else(|| ToolError::failed(format!("{} has no directory", desired.site_link.display())))?;
    let temp = dir.join(format!(".{}.{}.tmp", desired.site_name_of_link(), std::process::id()));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(&desired.site_file, &temp)
        .and_then(|()| std::fs::rename(&temp, &link))
        .map_err(|error| {
            let _ = std::fs::remove_file(&temp);
            ToolError::failed(format!("link {}: {error}", desired.site_link.display()))
        })?;
    ctx.changed(format!(
        "enable the site: link {} -> {}",
        desired.site_link.display(),
        desired.site_file.display()
    ));
    Ok(())
}

/// `nginx -t`: the host's whole configuration; with `--root`, the site alone in a scratch
/// configuration, its paths pointed into the root (the staged `nginx.conf` includes the
/// machine's own absolute paths, so the staged tree cannot be tested as a whole).
fn test_config(ctx: &mut Context, desired: &Desired, site_text: &str) -> Result<(), ToolError> {
    let report = if ctx.root().is_redirected() {
        let form = if site_text.contains("ssl_certificate") {
            SiteForm::Full
        } else {
            SiteForm::AcmeBootstrap
        };
        let report = scratch_test(ctx, desired, form)?;
        ctx.note("--root: nginx -t checked the site alone in a scratch configuration, not the staged host's whole one");
        report
    } else {
        let nginx = nginx_of(desired);
        let report = nginx
            .test(&mut |line| ctx.debug(line))
            .map_err(|error| ToolError::failed(error.to_string()))?;
        // A configuration without `include <sites_enabled>/*` (nginx.org's packages use conf.d)
        // passes nginx -t and serves nothing of ours: ask nginx what it really reads.
        let dump = nginx
            .dump(&mut |line| ctx.debug(line))
            .map_err(|error| ToolError::failed(error.to_string()))?;
        let included = [&desired.site_link, &desired.site_file]
            .iter()
            .any(|path| dump.contains(&format!("# configuration file {}:", path.display())));
        if !included {
            return Err(ToolError::failed(format!(
                "nginx's configuration does not include {}: add `include {}/*;` inside http {{ }} of {}, or set \
                 proxy.sites_enabled to a directory it includes",
                desired.site_link.display(),
                desired.sites_enabled.display(),
                desired
                    .nginx_conf
                    .as_ref()
                    .map_or_else(|| "nginx.conf".to_owned(), |conf| conf.display().to_string())
            )));
        }
        report
    };
    for warning in report.warnings {
        ctx.warn(format!("nginx -t: {warning}"));
    }
    ctx.note("nginx -t accepted the configuration");
    Ok(())
}

pub(crate) fn nginx_of(desired: &Desired) -> Nginx {
    Nginx::new(desired.nginx_prefix.clone(), desired.nginx_conf.clone())
}

/// Reloads nginx the configured way; returns a phrase for the summary.
fn reload(ctx: &mut Context, desired: &Desired) -> Result<String, ToolError> {
    // The caller restores the previous site, so a re-run after the cause is fixed (nginx not
    // running, say) writes, tests and reloads again instead of finding nothing to do.
    let failed = |error: String| {
        ToolError::failed(format!(
            "nginx -t accepted the new site, but reloading nginx failed: {error}; make sure nginx runs \
             (systemctl status {}), then run pretix-proxy apply again",
            desired.service
        ))
    };
    match desired.reload {
        NginxReload::Systemd => match ctx.systemctl(&["reload", &desired.service]) {
            Ok(ServiceOutcome::Performed) => Ok(format!(" (systemctl reload {})", desired.service)),
            Ok(ServiceOutcome::Skipped { reason }) => Ok(format!(" (not reloaded: {reason})")),
            Err(error) => Err(failed(error.to_string())),
        },
        NginxReload::Signal if ctx.root().is_redirected() => {
            ctx.note("skipped (--root): nginx -s reload");
            Ok(" (not reloaded: --root)".to_owned())
        }
        NginxReload::Signal => {
            nginx_of(desired)
                .reload_signal(&mut |line| ctx.debug(line))
                .map_err(|error| failed(error.to_string()))?;
            ctx.changed("reload nginx (nginx -s reload)");
            Ok(" (nginx -s reload)".to_owned())
        }
        NginxReload::None => {
            ctx.warn(format!(
                "proxy.reload is none: nginx still serves the previous configuration; reload it (systemctl reload {})",
                desired.service
            ));
            Ok(" (not reloaded: proxy.reload is none)".to_owned())
        }
    }
}

/// What was there before the run, for a rollback.
struct Transaction {
    files: Vec<(PathBuf, Option<CurrentFile>)>,
    link_was_there: bool,
    reloaded: bool,
}

impl Transaction {
    fn begin(ctx: &Context, desired: &Desired, plan: &Plan) -> Result<Transaction, String> {
        let mut paths = vec![desired.site_file.clone()];
        if plan.makes_self_signed() {
            paths.push(desired.certificate.clone());
            paths.push(desired.certificate_key.clone());
        }
        let mut files = Vec::new();
        for path in paths {
            let current = CurrentFile::read(&ctx.root().host_path(&path))
                .map_err(|error| format!("read {}: {error}", path.display()))?;
            files.push((path, current));
        }
        Ok(Transaction {
            files,
            link_was_there: !plan.has(&Step::EnableSite),
            reloaded: false,
        })
    }

    /// Puts back what was there; says what it did (or could not do) for the error message.
    fn rollback(&self, ctx: &mut Context, desired: &Desired) -> String {
        let mut problems = Vec::new();
        for (path, previous) in &self.files {
            let host = ctx.root().host_path(path);
            let result = match previous {
                Some(previous) => write_atomically(
                    &host,
                    &previous.content,
                    Some(previous.uid),
                    Some(previous.gid),
                    previous.mode,
                ),
                None => match std::fs::remove_file(&host) {
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    other => other,
                },
            };
            if let Err(error) = result {
                problems.push(format!("{}: {error}", path.display()));
            }
        }
        if !self.link_was_there {
            let link = ctx.root().host_path(&desired.site_link);
            if std::fs::symlink_metadata(&link).is_ok_and(|metadata| metadata.file_type().is_symlink())
                && let Err(error) = std::fs::remove_file(&link)
            {
                problems.push(format!("{}: {error}", desired.site_link.display()));
            }
        }
        let mut said = if problems.is_empty() {
            "the previous site was restored".to_owned()
        } else {
            format!(
                "restoring the previous site FAILED ({}): check {} before nginx reloads",
                problems.join("; "),
                desired.site_file.display()
            )
        };
        if self.reloaded {
            // The bootstrap site went live: the restored configuration goes live again the same way.
            let again = test_config(ctx, desired, "").and_then(|()| reload(ctx, desired).map(drop));
            match again {
                Ok(()) => said.push_str(" and nginx reloaded with it"),
                Err(error) => said.push_str(&format!("; reloading it failed too: {error}")),
            }
        } else {
            said.push_str(" and nginx was not reloaded");
        }
        ctx.note(said.clone());
        said
    }
}

impl Desired {
    fn site_name_of_link(&self) -> String {
        self.site_link
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
