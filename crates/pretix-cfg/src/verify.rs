//! `verify`: read-only. Parses the file on disk, validates it, reports owner and mode of the
//! file, the config dir and the data dir, and whether the file is what the document renders.

use std::path::Path;

use pretix_site::fs::CurrentFile;
use pretix_site::report::CheckStatus;
use pretix_site::sections::{DataDirAccess, Paths};
use pretix_site::{Context, Document, ToolError};

use crate::acl::has_web_server_acl;
use crate::secrets::register_secrets;
use crate::{config_file, desired_config, ini, rules};

pub fn verify(ctx: &mut Context, document: &mut Document, paths: &Paths) -> Result<String, ToolError> {
    let file = config_file(paths);
    let host_path = ctx.root().host_path(&file);
    let current = CurrentFile::read(&host_path)
        .map_err(|error| ToolError::failed(format!("read {}: {error}", file.display())))?;
    let Some(current) = current else {
        ctx.check_item(
            "config file",
            CheckStatus::Failure,
            format!("{} does not exist: run pretix-cfg apply", file.display()),
        );
        return Err(ToolError::failed(format!("{} does not exist", file.display())));
    };
    let text = String::from_utf8_lossy(&current.content).into_owned();
    match ini::parse(&text) {
        Ok(parsed) => {
            register_secrets(ctx, &parsed, None);
            let config = parsed.to_config();
            let problems = rules::check_startup_rules(
                &config,
                &rules::RuleContext {
                    in_container: true,
                    datadir_parent_exists: None,
                },
            );
            if problems.is_empty() {
                ctx.check_item(
                    "config file",
                    CheckStatus::Ok,
                    format!("{} parses and passes pretix's start-up rules", file.display()),
                );
            }
            for problem in problems {
                ctx.check_item(
                    "config file",
                    CheckStatus::Failure,
                    format!("[{}] {}: {}", problem.section, problem.key, problem.message),
                );
            }
            for warning in rules::warnings(&config) {
                ctx.check_item("config file", CheckStatus::Warning, warning);
            }
        }
        Err(error) => ctx.check_item(
            "config file",
            CheckStatus::Failure,
            format!("{}: {error}", file.display()),
        ),
    }
    let owner_ok = current.uid == paths.owner_uid && current.gid == paths.owner_gid;
    let mode_ok = current.mode & 0o077 == 0;
    match (owner_ok, mode_ok) {
        (true, true) => ctx.check_item(
            "config file owner and mode",
            CheckStatus::Ok,
            format!("{}:{} {:04o}", current.uid, current.gid, current.mode),
        ),
        _ => ctx.check_item(
            "config file owner and mode",
            CheckStatus::Failure,
            format!(
                "{}:{} {:04o}, want {}:{} and no access for others (0600): run pretix-cfg apply",
                current.uid, current.gid, current.mode, paths.owner_uid, paths.owner_gid
            ),
        ),
    }
    check_dir(ctx, DirRole::Config, &paths.config_dir, paths);
    check_dir(ctx, DirRole::Data, &paths.data_dir, paths);
    match desired_config(ctx, document, paths).and_then(|desired| desired.render()) {
        Ok(rendered) if rendered == text => ctx.check_item(
            "matches the document",
            CheckStatus::Ok,
            "the file is what the document renders",
        ),
        Ok(_) => ctx.check_item(
            "matches the document",
            CheckStatus::Warning,
            "the file differs from what the document renders: run pretix-cfg apply --check --diff",
        ),
        Err(error) => ctx.check_item(
            "matches the document",
            CheckStatus::Warning,
            format!("the document cannot be rendered: {error}"),
        ),
    }
    ctx.verify_outcome("pretix-cfg apply fixes what it owns")
}

/// Which directory `check_dir` looks at, and so what its mode must allow.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DirRole {
    /// The config dir: owner-only (it holds pretix.cfg and, for `env`, the secrets).
    Config,
    /// The data dir: the container's web server (uid 33) must read it, nobody may write to it.
    Data,
}

fn check_dir(ctx: &mut Context, role: DirRole, path: &Path, paths: &Paths) {
    use std::os::unix::fs::MetadataExt;
    let (name, want) = match (role, paths.data_dir_access) {
        (DirRole::Config, _) => ("config dir", "0700: owner only"),
        (DirRole::Data, DataDirAccess::Mode) => ("data dir", "0755: readable by uid 33, writable by the owner only"),
        (DirRole::Data, DataDirAccess::Acl) => ("data dir", "0750 and the ACL user:33:r-x"),
    };
    let host_path = ctx.root().host_path(path);
    match std::fs::metadata(&host_path) {
        Ok(metadata) if metadata.is_dir() => {
            let actual_mode = metadata.mode() & 0o7777;
            let owner_ok = metadata.uid() == paths.owner_uid && metadata.gid() == paths.owner_gid;
            let mode_ok = match (role, paths.data_dir_access) {
                (DirRole::Config, _) => actual_mode & 0o077 == 0,
                (DirRole::Data, DataDirAccess::Mode) => actual_mode & 0o022 == 0 && actual_mode & 0o005 == 0o005,
                (DirRole::Data, DataDirAccess::Acl) => {
                    actual_mode & 0o022 == 0 && has_web_server_acl(ctx, &host_path).unwrap_or(false)
                }
            };
            let status = if owner_ok && mode_ok {
                CheckStatus::Ok
            } else {
                CheckStatus::Failure
            };
            let fix = if status == CheckStatus::Ok {
                ""
            } else {
                ": run pretix-cfg apply"
            };
            ctx.check_item(
                name,
                status,
                format!(
                    "{} is {}:{} {:04o} (want {}:{} {want}){fix}",
                    path.display(),
                    metadata.uid(),
                    metadata.gid(),
                    actual_mode,
                    paths.owner_uid,
                    paths.owner_gid,
                ),
            );
        }
        Ok(_) => ctx.check_item(
            name,
            CheckStatus::Failure,
            format!("{} is not a directory", path.display()),
        ),
        Err(error) => ctx.check_item(name, CheckStatus::Failure, format!("{}: {error}", path.display())),
    }
}
