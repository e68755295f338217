//! Role and database names: what is accepted, and how a name is quoted in SQL and in
//! pg_hba.conf. SQL never carries a name as built-up text: it goes as a bound parameter where
//! PostgreSQL allows one, and through `quote_ident` in DDL, which cannot take parameters.

use crate::error::ProvisionDatabaseError;

/// PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes.
pub const MAX_NAME_BYTES: usize = 63;

/// What a name names: the rules differ a little.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Role,
    Database,
}

/// Checks a role or database name before anything is changed. The name must be usable in SQL
/// (with quoting), in pg_hba.conf (with quoting) and in pretix.cfg (an INI value on one line,
/// stripped of surrounding whitespace).
pub fn validate_name(field: &str, name: &str, kind: NameKind) -> Result<(), ProvisionDatabaseError> {
    let what = match kind {
        NameKind::Role => "role",
        NameKind::Database => "database",
    };
    let fail = |message: String| Err(ProvisionDatabaseError::input(field, message));
    if name.is_empty() {
        return fail(format!("the {what} name is empty: give a name such as pretix"));
    }
    if name.len() > MAX_NAME_BYTES {
        return fail(format!(
            "the {what} name is {} bytes long, postgresql keeps only {MAX_NAME_BYTES}: use a shorter name",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return fail(format!(
            "the {what} name holds a control character (a line break, tab or NUL): use letters, digits and _"
        ));
    }
    if name.trim() != name {
        return fail(format!(
            "the {what} name starts or ends with whitespace, which pretix.cfg would drop: remove it"
        ));
    }
    if name.contains('"') {
        return fail(format!(
            "the {what} name holds a double quote, which pg_hba.conf cannot express: remove it"
        ));
    }
    if name.contains(',') {
        return fail(format!(
            "the {what} name holds a comma, which pg_hba.conf reads as a list: remove it"
        ));
    }
    if let Some(first) = name.chars().next().filter(|first| matches!(first, '+' | '@' | '/')) {
        let meaning = match first {
            '+' => "a group",
            '@' => "a file of names",
            _ => "a regular expression",
        };
        return fail(format!(
            "the {what} name starts with {first}, which pg_hba.conf reads as {meaning}: start it with a letter"
        ));
    }
    match kind {
        NameKind::Role => {
            if name.starts_with("pg_") {
                return fail("role names starting with pg_ are reserved by postgresql: choose another name".to_owned());
            }
            let lower = name.to_ascii_lowercase();
            if ["public", "none", "current_user", "session_user", "current_role"].contains(&lower.as_str()) {
                return fail(format!(
                    "{name} is a reserved role name in postgresql: choose another name"
                ));
            }
        }
        NameKind::Database => {
            if ["postgres", "template0", "template1"].contains(&name) {
                return fail(format!(
                    "{name} is one of postgresql's own databases, pretix needs a database of its own: use pretix"
                ));
            }
        }
    }
    Ok(())
}

/// An identifier for SQL, always quoted (so case, spaces, unicode and keywords survive).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal for SQL, for the one place a value cannot be a bound parameter: the
/// password verifier in `CREATE/ALTER ROLE ... PASSWORD`, exactly as psql's `\password` does.
/// Quotes are doubled; a value with a backslash becomes an escape string, as PostgreSQL's own
/// `quote_literal` does, so the result is right whatever `standard_conforming_strings` says.
pub fn quote_literal(value: &str) -> String {
    if value.contains('\\') {
        format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

/// Words that pg_hba.conf reads as keywords when they are not quoted.
const HBA_KEYWORDS: &[&str] = &["all", "sameuser", "samerole", "samegroup", "replication"];

/// A name as a pg_hba.conf field: bare when it is plain, double-quoted otherwise. Names that
/// pg_hba.conf cannot express at all are refused by `validate_name` first.
pub fn hba_field(name: &str) -> String {
    let plain = name
        .chars()
        .all(|character| character.is_ascii_alphanumeric() || character == '_');
    if plain && !HBA_KEYWORDS.contains(&name) {
        name.to_owned()
    } else {
        format!("\"{name}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<(), ProvisionDatabaseError>) -> String {
        match result {
            Ok(()) => String::new(),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn plain_and_unusual_but_safe_names_pass() {
        for name in [
            "pretix",
            "Pretix_2",
            "tickets shop",
            "bühne",
            "it's",
            "back\\slash",
            "drop table x;--",
            "all",
        ] {
            assert_eq!(
                message(validate_name("database.user", name, NameKind::Role)),
                "",
                "{name}"
            );
        }
    }

    #[test]
    fn unsafe_names_are_refused_naming_the_field() {
        let cases = [
            ("", "empty"),
            ("a\"b", "double quote"),
            ("a,b", "comma"),
            ("a\nb", "control character"),
            ("a\0b", "control character"),
            ("+admins", "group"),
            ("@names", "file of names"),
            ("/^p.*", "regular expression"),
            (" pretix", "whitespace"),
            ("pg_pretix", "reserved"),
            ("public", "reserved"),
        ];
        for (name, expected) in cases {
            let text = message(validate_name("database.user", name, NameKind::Role));
            assert!(text.starts_with("database.user: "), "{name}: {text}");
            assert!(text.contains(expected), "{name}: {text}");
        }
        let long = "x".repeat(64);
        assert!(message(validate_name("database.name", &long, NameKind::Database)).contains("64 bytes"));
        assert!(message(validate_name("database.name", &"x".repeat(63), NameKind::Database)).is_empty());
        assert!(message(validate_name("database.name", "template1", NameKind::Database)).contains("own databases"));
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("pretix"), "\"pretix\"");
        assert_eq!(quote_ident("a\"; DROP ROLE x; --"), "\"a\"\"; DROP ROLE x; --\"");
        assert_eq!(
            quote_literal("SCRAM-SHA-256$4096:c2FsdA==$a:b"),
            "'SCRAM-SHA-256$4096:c2FsdA==$a:b'"
        );
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
    }

    #[test]
    fn hba_fields_quote_what_is_not_plain() {
        assert_eq!(hba_field("pretix"), "pretix");
        assert_eq!(hba_field("all"), "\"all\"");
        assert_eq!(hba_field("tickets shop"), "\"tickets shop\"");
        assert_eq!(hba_field("bühne"), "\"bühne\"");
        assert_eq!(hba_field("a#b"), "\"a#b\"");
    }
}
