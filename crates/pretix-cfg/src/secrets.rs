//! The secrets of a pretix.cfg on disk, masked like the document's own.

use std::path::Path;

use pretix_site::fs::CurrentFile;
use pretix_site::{Context, ToolError};

use crate::desired::Desired;
use crate::{ini, schema};

/// The secrets in the pretix.cfg on disk (the old password a rotation replaces, say) are
/// masked like the new ones: the diff of a rewrite shows its removed lines too.
pub fn register_secrets_on_disk(ctx: &mut Context, desired: &Desired, file: &Path) -> Result<(), ToolError> {
    let current = CurrentFile::read(&ctx.root().host_path(file))
        .map_err(|error| ToolError::failed(format!("read {}: {error}", file.display())))?;
    if let Some(current) = current
        && let Ok(parsed) = ini::parse(&String::from_utf8_lossy(&current.content))
    {
        register_secrets(ctx, &parsed, Some(desired));
    }
    Ok(())
}

/// Registers every value on disk that is secret by the schema, or by the document (a key given
/// as a secret reference, such as a Redis URL holding a password).
pub fn register_secrets(ctx: &mut Context, parsed: &ini::ParsedConfig, desired: Option<&Desired>) {
    for (section, key, value) in parsed.entries() {
        let secret_by_schema = schema::key(section, key).is_ok_and(|definition| definition.secret);
        let secret_by_document = desired
            .and_then(|desired| desired.settings.get(section))
            .and_then(|keys| keys.get(key))
            .is_some_and(|(_, secret)| *secret);
        if (secret_by_schema || secret_by_document) && !value.is_empty() {
            ctx.register_secret(&pretix_site::Secret::new(value));
        }
    }
}
