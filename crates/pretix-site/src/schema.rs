//! The JSON Schema of the site document, generated from the types. `cargo xtask schema`
//! writes it to `schema/site.schema.json`; a test fails when that file is stale.

use crate::sections::Site;

/// The schema as pretty JSON with a trailing newline.
pub fn site_schema_json() -> String {
    let schema = schemars::schema_for!(Site);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
