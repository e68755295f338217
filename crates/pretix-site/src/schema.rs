//! The JSON Schema of the site document, generated from the types. `cargo xtask schema`
//! writes it to `schema/site.schema.json`, with `config` typed from pretix-cfg's option schema
//! (`with_config`); a test fails when that file is stale, another when the schema and the
//! parser disagree on a corpus of documents.

use serde_json::Value;

use crate::sections::Site;

/// The schema of the document types as pretty JSON with a trailing newline (`config` untyped:
/// any section, any key, any `ConfigValue`).
pub fn site_schema_json() -> String {
    render(&site_schema())
}

/// The schema of the document types as a value.
pub fn site_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Site)).unwrap_or(Value::Null)
}

/// The schema with `config` replaced by `config_schema` (pretix-cfg's typed sections and keys),
/// as pretty JSON with a trailing newline.
pub fn with_config(config_schema: Value) -> String {
    let mut schema = site_schema();
    if let Some(config) = schema.pointer_mut("/properties/config") {
        let description = config.get("description").cloned();
        *config = config_schema;
        if let (Some(description), Some(map)) = (description, config.as_object_mut()) {
            map.entry("description").or_insert(description);
        }
    }
    render(&schema)
}

fn render(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
