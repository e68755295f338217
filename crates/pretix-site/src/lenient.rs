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
