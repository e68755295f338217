//! The ACL entry that lets the container's web server read the data dir (`data_dir_access: acl`),
//! through getfacl and setfacl from the acl package.

use std::path::Path;

use pretix_site::{Context, ToolError};

/// The ACL entry that lets the container's web server (uid 33) read the data dir.
pub const WEB_SERVER_ACL: &str = "user:33:r-x";

/// Whether the data dir has `WEB_SERVER_ACL` (getfacl, from the acl package).
pub fn has_web_server_acl(ctx: &mut Context, host_path: &Path) -> Result<bool, ToolError> {
    let mut log = |line: &str| ctx.debug(line);
    let output = pretix_site::exec::run(
        std::process::Command::new("getfacl")
            .args(["--omit-header", "--absolute-names", "--numeric"])
            .arg(host_path),
        None,
        &mut log,
    )
    .map_err(|error| {
        ToolError::failed(format!(
            "{error}: install the acl package or use data_dir_access \"mode\""
        ))
    })?;
    let current = String::from_utf8_lossy(&output.stdout);
    Ok(current.lines().any(|line| line.trim() == WEB_SERVER_ACL))
}

/// Gives the container's web server (uid 33, www-data in the image) read access by ACL.
pub fn ensure_web_server_acl(ctx: &mut Context, data_dir: &Path) -> Result<(), ToolError> {
    const ENTRY: &str = WEB_SERVER_ACL;
    let host_path = ctx.root().host_path(data_dir);
    if !host_path.exists() {
        ctx.changed(format!("add ACL {ENTRY} to {}", data_dir.display()));
        return Ok(());
    }
    if has_web_server_acl(ctx, &host_path)? {
        return Ok(());
    }
    if !ctx.is_check() {
        let mut log = |line: &str| ctx.debug(line);
        pretix_site::exec::run(
            std::process::Command::new("setfacl")
                .args(["-m", "u:33:rx"])
                .arg(&host_path),
            None,
            &mut log,
        )
        .map_err(|error| ToolError::failed(error.to_string()))?;
    }
    ctx.changed(format!("add ACL {ENTRY} to {}", data_dir.display()));
    Ok(())
}
