//! Rendering and parsing pretix.cfg exactly as pretix's `configparser.RawConfigParser` reads it:
//! no interpolation (a `%` is fine), no inline comments (`x=1 ; c` is the value `1 ; c`), full-line
//! comments starting with `#` or `;`, `=` or `:` as delimiter, option names lower-cased, values
//! stripped, indented lines continuing a value, and duplicate sections or options refused.

use std::collections::BTreeMap;
use std::fmt;

use crate::schema;

/// section → key → value.
pub type Config = BTreeMap<String, BTreeMap<String, String>>;

/// A value or key that RawConfigParser would read differently from what was meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    pub section: String,
    pub key: String,
    pub reason: String,
}

impl RenderError {
    /// The document path of the culprit.
    pub fn field(&self) -> String {
        format!("config.{}.{}", self.section, self.key)
    }
}

impl fmt::Display for RenderError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.reason)
    }
}

impl std::error::Error for RenderError {}

fn check_renderable(section: &str, key: &str, value: &str) -> Result<(), RenderError> {
    let fail = |reason: &str| RenderError {
        section: section.to_owned(),
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    if section.is_empty() || section.contains([']', '\n', '\r', '\0']) {
        return Err(fail("a section name must not be empty or hold ] or a line break"));
    }
    if key.is_empty()
        || key.contains(['=', ':', '[', '\n', '\r', '\0'])
        || key.starts_with([';', '#'])
        || py_strip(key) != key
    {
        return Err(fail(
            "a key must not be empty, hold = : [ or a line break, start with ; or #, or have spaces around it",
        ));
    }
    if value.contains(['\n', '\r', '\0']) {
        return Err(fail(
            "the value holds a line break or NUL byte, which pretix.cfg cannot hold: keep it on one line",
        ));
    }
    if py_strip(value) != value {
        return Err(fail(
            "the value starts or ends with whitespace, which pretix's parser strips: remove it",
        ));
    }
    Ok(())
}

/// Whether Python's `str.strip()` strips this character: Unicode whitespace plus the
/// information separators U+001C..U+001F, which Rust's `trim` keeps.
fn is_python_space(character: char) -> bool {
    character.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&character)
}

/// Python's `str.strip()`.
pub fn py_strip(text: &str) -> &str {
    text.trim_matches(is_python_space)
}

fn rank_of_section(name: &str) -> usize {
    schema::SECTIONS
        .iter()
        .position(|section| section.name == name)
        .unwrap_or(usize::MAX)
}

fn rank_of_key(section: &str, key: &str) -> usize {
    schema::section(section)
        .ok()
        .and_then(|definition| definition.keys.iter().position(|candidate| candidate.name == key))
        .unwrap_or(usize::MAX)
}

/// Renders a config in a stable order (pretix's section and key order), `key=value` lines like
/// the guide, a blank line between sections, and `header` as `#` comment lines on top.
pub fn render(config: &Config, header: &str) -> Result<String, RenderError> {
    let mut sections: Vec<(&String, &BTreeMap<String, String>)> =
        config.iter().filter(|(_, keys)| !keys.is_empty()).collect();
    sections.sort_by_key(|(name, _)| (rank_of_section(name), (*name).clone()));
    let mut text = String::new();
    for line in header.lines() {
        text.push_str(format!("# {line}").trim_end());
        text.push('\n');
    }
    for (index, (section, keys)) in sections.into_iter().enumerate() {
        if index > 0 || !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("[{section}]\n"));
        let mut keys: Vec<(&String, &String)> = keys.iter().collect();
        keys.sort_by_key(|(key, _)| (rank_of_key(section, key), (*key).clone()));
        for (key, value) in keys {
            check_renderable(section, key, value)?;
            text.push_str(&format!("{key}={value}\n"));
        }
    }
    Ok(text)
}

/// A file that RawConfigParser would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// A parsed file, entries in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedConfig {
    entries: Vec<(String, String, String)>,
}

impl ParsedConfig {
    /// (section, key, value) in file order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.entries
            .iter()
            .map(|(section, key, value)| (section.as_str(), key.as_str(), value.as_str()))
    }

    pub fn to_config(&self) -> Config {
        let mut config = Config::new();
        for (section, key, value) in &self.entries {
            config
                .entry(section.clone())
                .or_default()
                .insert(key.clone(), value.clone());
        }
        config
    }
}

/// Parses text the way RawConfigParser (strict, default delimiters and comment prefixes) does.
pub fn parse(text: &str) -> Result<ParsedConfig, ParseError> {
    let mut parsed = ParsedConfig::default();
    let mut seen_sections: Vec<String> = Vec::new();
    let mut section: Option<String> = None;
    // The entry a continuation line extends, the indentation of its key line, and the empty
    // lines seen since its last line (configparser keeps them inside the value when an indented
    // line follows: `empty_lines_in_values`).
    let mut open_entry: Option<(usize, usize)> = None;
    let mut empty_lines = 0;
    // Python reads the file with universal newlines: \r\n, \r and \n all end a line.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let stripped = py_strip(line);
        let indent = line.len() - line.trim_start_matches(is_python_space).len();
        if stripped.starts_with('#') || stripped.starts_with(';') {
            continue;
        }
        if stripped.is_empty() {
            if open_entry.is_some() {
                empty_lines += 1;
            }
            continue;
        }
        if let Some((entry_index, key_indent)) = open_entry
            && indent > key_indent
        {
            let value = &mut parsed.entries[entry_index].2;
            for _ in 0..=empty_lines {
                value.push('\n');
            }
            value.push_str(stripped);
            empty_lines = 0;
            continue;
        }
        empty_lines = 0;
        if stripped.starts_with('[') {
            // configparser's `\[(?P<header>.+)\]`: the name runs to the line's last `]`.
            let Some(name) = stripped
                .strip_prefix('[')
                .and_then(|rest| rest.rsplit_once(']'))
                .map(|(name, _)| name)
                .filter(|name| !name.is_empty())
            else {
                return Err(ParseError {
                    line: number,
                    reason: format!("a section header without ]: {stripped}"),
                });
            };
            if name == "DEFAULT" {
                return Err(ParseError {
                    line: number,
                    reason: "[DEFAULT] is configparser's defaults section, which pretix does not use: move its keys into real sections".to_owned(),
                });
            }
            if seen_sections.iter().any(|seen| seen == name) {
                return Err(ParseError {
                    line: number,
                    reason: format!("section [{name}] appears twice"),
                });
            }
            seen_sections.push(name.to_owned());
            section = Some(name.to_owned());
            open_entry = None;
            continue;
        }
        let Some(current) = &section else {
            return Err(ParseError {
                line: number,
                reason: "a setting before the first [section] header".to_owned(),
            });
        };
        let delimiter = stripped.find(['=', ':']).ok_or_else(|| ParseError {
            line: number,
            reason: format!("\"{stripped}\" has no = or : (pretix's parser refuses keys without values)"),
        })?;
        let key = py_strip(&stripped[..delimiter]).to_lowercase();
        let value = py_strip(&stripped[delimiter + 1..]).to_owned();
        if key.is_empty() {
            return Err(ParseError {
                line: number,
                reason: "a setting without a key".to_owned(),
            });
        }
        if parsed
            .entries
            .iter()
            .any(|(entry_section, entry_key, _)| entry_section == current && *entry_key == key)
        {
            return Err(ParseError {
                line: number,
                reason: format!("key \"{key}\" appears twice in [{current}]"),
            });
        }
        parsed.entries.push((current.clone(), key, value));
        open_entry = Some((parsed.entries.len() - 1, indent));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entries: &[(&str, &str, &str)]) -> Config {
        let mut config = Config::new();
        for (section, key, value) in entries {
            config
                .entry((*section).to_owned())
                .or_default()
                .insert((*key).to_owned(), (*value).to_owned());
        }
        config
    }

    #[test]
    fn render_is_stable_in_pretix_order_and_round_trips() {
        let input = config(&[
            ("mail", "from", "a@b.c"),
            ("pretix", "url", "https://x"),
            ("pretix", "instance_name", "X %s ; not a comment"),
            ("database", "password", "p%w ; # '\""),
        ]);
        let text = render(&input, "managed").expect("render");
        assert_eq!(
            text,
            "# managed\n\n[pretix]\ninstance_name=X %s ; not a comment\nurl=https://x\n\n[database]\npassword=p%w ; # '\"\n\n[mail]\nfrom=a@b.c\n"
        );
        assert_eq!(parse(&text).expect("parse").to_config(), input);
    }

    #[test]
    fn values_the_parser_would_misread_are_refused() {
        for value in ["two\nlines", " leading", "trailing ", "nul\0"] {
            let error = render(&config(&[("pretix", "instance_name", value)]), "").expect_err(value);
            assert_eq!(error.field(), "config.pretix.instance_name");
        }
        assert!(render(&config(&[("pretix", "a=b", "x")]), "").is_err());
    }

    #[test]
    fn parse_reads_real_world_spacing_comments_and_continuations() {
        let text = "# top\n[pretix]\nURL = https://x\ncurrency:EUR
instance_name	=	A
; comment\n[mail]\nadmins = a@b.c,\n  d@e.f\n";
        let parsed = parse(text).expect("parse");
        let entries: Vec<_> = parsed.entries().collect();
        assert_eq!(
            entries,
            [
                ("pretix", "url", "https://x"),
                ("pretix", "currency", "EUR"),
                ("pretix", "instance_name", "A"),
                ("mail", "admins", "a@b.c,\nd@e.f")
            ]
        );
    }

    #[test]
    fn parse_refuses_what_configparser_refuses() {
        assert_eq!(parse("url=x\n").expect_err("no section").line, 1);
        assert!(
            parse("[a]\nx=1\n[a]\n")
                .expect_err("dup section")
                .reason
                .contains("twice")
        );
        assert!(parse("[a]\nx=1\nX=2\n").expect_err("dup key").reason.contains("twice"));
        assert!(parse("[DEFAULT]\nx=1\n").is_err());
        assert!(parse("[a]\njustakey\n").is_err());
    }
}
