//! The site document as it travels between tools: a JSON object whose sections a tool either
//! owns (and parses strictly) or passes through untouched, byte-for-byte in meaning.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{ToolError, closest, from_serde_error};
use crate::report::ToolResult;
use crate::sections::{ConfigValue, FORMAT_VERSION};

/// The top-level keys of a site document.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "$schema",
    "version",
    "config",
    "paths",
    "database",
    "redis",
    "container",
    "proxy",
    "plugins",
    "cron",
    "results",
];

/// A site document. Only the top level is checked on parsing; each tool parses the sections it
/// owns with `section`, so a section it does not own passes through exactly as it came.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    raw: Map<String, Value>,
}

impl Document {
    /// Parses a document, checking only what every tool must agree on: a JSON object with known
    /// top-level keys, a known version and a well-formed `results` list.
    pub fn parse(text: &str) -> Result<Document, ToolError> {
        if text.trim().is_empty() {
            return Err(ToolError::input(
                "(document)",
                "the site document is empty: pipe a JSON object on stdin or pass --site FILE",
            ));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|error| ToolError::input("(document)", format!("the site document is not valid JSON: {error}")))?;
        Document::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Document, ToolError> {
        let Value::Object(raw) = value else {
            return Err(ToolError::input(
                "(document)",
                "the site document must be a JSON object",
            ));
        };
        for key in raw.keys() {
            if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
                let hint = match closest(key, TOP_LEVEL_KEYS.iter().copied()) {
                    Some(suggestion) => format!("; did you mean `{suggestion}`?"),
                    None => format!("; the known keys are {}", TOP_LEVEL_KEYS.join(", ")),
                };
                return Err(ToolError::input(key.clone(), format!("unknown top-level key{hint}")));
            }
        }
        let document = Document { raw };
        if let Some(version) = document.raw.get("version")
            && version.as_u64() != Some(u64::from(FORMAT_VERSION))
        {
            return Err(ToolError::input(
                "version",
                format!("this toolkit reads document version {FORMAT_VERSION}, got {version}"),
            ));
        }
        if let Some(schema) = document.raw.get("$schema")
            && !schema.is_string()
        {
            return Err(ToolError::input(
                "$schema",
                "must be the URL or path of the schema, as a string",
            ));
        }
        document.results()?;
        if let Some(config) = document.raw.get("config") {
            let config: std::collections::BTreeMap<String, std::collections::BTreeMap<String, ConfigValue>> =
                parse_value("config", config.clone())?;
            drop(config);
        }
        Ok(document)
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.raw.clone())
    }

    /// The document as pretty JSON with a trailing newline, the form every tool prints.
    pub fn to_json_pretty(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.raw).unwrap_or_else(|_| "{}".to_owned());
        text.push('\n');
        text
    }

    /// Parses an owned section strictly; a missing section gives its defaults.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, ToolError> {
        match self.raw.get(name) {
            None | Some(Value::Null) => Ok(T::default()),
            // serde would read a struct from an array by position: `{"redis": ["/etc/shadow"]}`
            // must not set the first field.
            Some(Value::Object(_)) => parse_value(name, self.raw[name].clone()),
            Some(other) => Err(ToolError::input(
                name,
                format!("expected an object of settings, got {}", json_kind(other)),
            )),
        }
    }

    /// The raw value of a section, for passing it on.
    pub fn raw_section(&self, name: &str) -> Option<&Value> {
        self.raw.get(name)
    }

    /// The value of `config.<section>.<key>`, if set.
    pub fn config_value(&self, section: &str, key: &str) -> Result<Option<ConfigValue>, ToolError> {
        let Some(value) = self
            .raw
            .get("config")
            .and_then(|config| config.get(section))
            .and_then(|s| s.get(key))
        else {
            return Ok(None);
        };
        parse_value(&format!("config.{section}.{key}"), value.clone()).map(Some)
    }

    /// All of `config`, typed.
    pub fn config(
        &self,
    ) -> Result<std::collections::BTreeMap<String, std::collections::BTreeMap<String, ConfigValue>>, ToolError> {
        match self.raw.get("config") {
            None | Some(Value::Null) => Ok(Default::default()),
            Some(value) => parse_value("config", value.clone()),
        }
    }

    /// Sets `config.<section>.<key>`, what a tool learned for pretix-cfg. Returns the previous
    /// value when it was different, so the tool can say it replaced a value the user gave.
    pub fn set_config_value(&mut self, section: &str, key: &str, value: ConfigValue) -> Option<ConfigValue> {
        let config = self.raw.entry("config").or_insert_with(|| Value::Object(Map::new()));
        if !config.is_object() {
            *config = Value::Object(Map::new());
        }
        let Value::Object(config) = config else {
            return None;
        };
        let section_value = config.entry(section).or_insert_with(|| Value::Object(Map::new()));
        if !section_value.is_object() {
            *section_value = Value::Object(Map::new());
        }
        let Value::Object(section_map) = section_value else {
            return None;
        };
        let new_value = serde_json::to_value(&value).unwrap_or(Value::Null);
        let previous = section_map.insert(key.to_owned(), new_value.clone());
        previous
            .filter(|previous| *previous != new_value)
            .and_then(|previous| serde_json::from_value(previous).ok())
    }

    /// Adds `item` to the list at `<section>.<key>` unless it is there already. This is the one
    /// way a tool writes into a section it does not own: it adds, it never removes or rewrites.
    pub fn add_to_list(&mut self, section: &str, key: &str, item: &str) -> bool {
        let section_value = self.raw.entry(section).or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(section_map) = section_value else {
            return false;
        };
        let list = section_map.entry(key).or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(items) = list else {
            return false;
        };
        if items.iter().any(|existing| existing.as_str() == Some(item)) {
            return false;
        }
        items.push(Value::String(item.to_owned()));
        true
    }

    /// Replaces an owned section.
    pub fn set_section<T: Serialize>(&mut self, name: &str, value: &T) -> Result<(), ToolError> {
        let value =
            serde_json::to_value(value).map_err(|error| ToolError::failed(format!("serialize {name}: {error}")))?;
        self.raw.insert(name.to_owned(), value);
        Ok(())
    }

    pub fn results(&self) -> Result<Vec<ToolResult>, ToolError> {
        match self.raw.get("results") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(value) => parse_value("results", value.clone()),
        }
    }

    pub fn push_result(&mut self, result: &ToolResult) {
        let entry = serde_json::to_value(result).unwrap_or(Value::Null);
        match self.raw.get_mut("results") {
            Some(Value::Array(items)) => items.push(entry),
            _ => {
                self.raw.insert("results".to_owned(), Value::Array(vec![entry]));
            }
        }
    }
}

/// Deserializes a value, turning errors into input errors with the full JSON path.
pub fn parse_value<T: DeserializeOwned>(prefix: &str, value: Value) -> Result<T, ToolError> {
    serde_path_to_error::deserialize(value).map_err(|error| from_serde_error(prefix, error))
}

/// What kind of JSON value this is, for messages (never the value itself: it may be a secret).
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
