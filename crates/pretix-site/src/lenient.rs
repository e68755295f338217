//! Deserializers that accept what Ansible sends: binary modules get no argument spec, so an
//! ad-hoc `-a 'port=5'` arrives as the string `"5"` and `yes` as a string. JSON numbers and
//! booleans are accepted as they are.

use serde::Deserialize;
use serde::de::{Deserializer, Error, Unexpected};

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrText {
    Bool(bool),
    Number(u64),
    Text(String),
}

fn unsigned<'de, D: Deserializer<'de>>(deserializer: D, max: u64, what: &str) -> Result<u64, D::Error> {
    let number = match NumberOrText::deserialize(deserializer)? {
        NumberOrText::Number(number) => number,
        NumberOrText::Text(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|_| D::Error::invalid_value(Unexpected::Str(&text), &what))?,
    };
    if number > max {
        return Err(D::Error::invalid_value(Unexpected::Unsigned(number), &what));
    }
    Ok(number)
}

/// A TCP port, 1–65535.
pub fn port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let number = unsigned(deserializer, u64::from(u16::MAX), "a port number from 1 to 65535")?;
    if number == 0 {
        return Err(D::Error::invalid_value(
            Unexpected::Unsigned(0),
            &"a port number from 1 to 65535",
        ));
    }
    u16::try_from(number).map_err(D::Error::custom)
}

/// A number of seconds.
pub fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = unsigned(deserializer, u64::from(u32::MAX), "a number of seconds")?;
    u32::try_from(number).map_err(D::Error::custom)
}

/// A boolean, also spelt the way Ansible's `convert_bool` accepts it.
pub fn boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    match BoolOrText::deserialize(deserializer)? {
        BoolOrText::Bool(value) => Ok(value),
        BoolOrText::Number(1) => Ok(true),
        BoolOrText::Number(0) => Ok(false),
        BoolOrText::Number(other) => Err(D::Error::invalid_value(Unexpected::Unsigned(other), &"true or false")),
        BoolOrText::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" => Ok(true),
            "n" | "no" | "off" | "0" | "false" | "f" => Ok(false),
            _ => Err(D::Error::invalid_value(Unexpected::Str(&text), &"true or false")),
        },
    }
}

/// An optional boolean: `null` or absent is unset; otherwise as [`boolean`].
pub fn optional_boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "boolean")] bool);
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(value)| value))
}

/// An optional count (a non-negative whole number that fits 32 bits); `null` or absent is unset.
pub fn optional_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "count")] u32);
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(value)| value))
}

/// A count: a non-negative whole number that fits 32 bits.
pub fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = unsigned(deserializer, u64::from(u32::MAX), "a whole number")?;
    u32::try_from(number).map_err(D::Error::custom)
}

/// An optional port; `null` or absent is unset.
pub fn optional_port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "port")] u16);
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(value)| value))
}

/// The JSON Schema of what these deserializers accept, for `#[schemars(with = ...)]`: the schema
/// must accept exactly what the parser does (a test compares them on a corpus).
pub mod schema {
    use std::borrow::Cow;

    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

    /// A port: 1–65535, as a number or as text (Ansible's `port=5432`).
    pub struct Port;
    /// Seconds: a whole number that fits 32 bits, as a number or as text.
    pub struct Seconds;
    /// A count: a whole number that fits 32 bits, as a number or as text.
    pub struct Count;
    /// A boolean: `true`/`false`, 0/1, or Ansible's words (`yes`, `no`, `on`, `off`, ...).
    pub struct Flag;

    const PORT_TEXT: &str =
        r"^\s*\+?0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])\s*$";
    const U32_TEXT: &str = r"^\s*\+?0*([0-9]{1,9}|[1-3][0-9]{9}|4[01][0-9]{8}|42[0-8][0-9]{7}|429[0-3][0-9]{6}|4294[0-8][0-9]{5}|42949[0-5][0-9]{4}|429496[0-6][0-9]{3}|4294967[01][0-9]{2}|42949672[0-8][0-9]|429496729[0-5])\s*$";
    const FLAG_TEXT: &str = r"^\s*([yY]|[yY][eE][sS]|[oO][nN]|1|[tT][rR][uU][eE]|[tT]|[nN]|[nN][oO]|[oO][fF][fF]|0|[fF][aA][lL][sS][eE]|[fF])\s*$";

    impl JsonSchema for Port {
        fn schema_name() -> Cow<'static, str> {
            "Port".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "A TCP port, 1 to 65535 (text such as \"5432\" is accepted too)",
                "anyOf": [
                    {"type": "integer", "minimum": 1, "maximum": 65535},
                    {"type": "string", "pattern": PORT_TEXT}
                ]
            })
        }
    }

    impl JsonSchema for Seconds {
        fn schema_name() -> Cow<'static, str> {
            "Seconds".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "A number of seconds (text such as \"30\" is accepted too)",
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 4294967295u64},
                    {"type": "string", "pattern": U32_TEXT}
                ]
            })
        }
    }

    impl JsonSchema for Count {
        fn schema_name() -> Cow<'static, str> {
            "Count".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "A whole number (text such as \"4\" is accepted too)",
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 4294967295u64},
                    {"type": "string", "pattern": U32_TEXT}
                ]
            })
        }
    }

    impl JsonSchema for Flag {
        fn schema_name() -> Cow<'static, str> {
            "Flag".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "true or false (also 0/1 and yes/no, on/off, true/false as text)",
                "anyOf": [
                    {"type": "boolean"},
                    {"type": "integer", "enum": [0, 1]},
                    {"type": "string", "pattern": FLAG_TEXT}
                ]
            })
        }
    }
}
