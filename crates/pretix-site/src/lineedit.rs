//! Line-preserving edits of existing config files (postgresql.conf, pg_hba.conf, redis.conf).
//!
//! A tool changes only the directives it owns; every other line, comment, blank line and line
//! ending stays byte for byte. The text is held as lines *with* their terminators, so joining
//! them gives back exactly the input.

/// How a directive line separates its name from its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// `name = value  # comment` (postgresql.conf; the `=` is optional there).
    PostgresConf,
    /// `name value` (redis.conf).
    RedisConf,
}

/// A config file as lines with their terminators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    lines: Vec<String>,
}

/// One active (not commented) directive found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// 0-based line index.
    pub index: usize,
    /// The value as written (quotes kept).
    pub raw_value: String,
    /// The value unquoted.
    pub value: String,
}

impl Lines {
    pub fn parse(text: &str) -> Lines {
        Lines {
            lines: text.split_inclusive('\n').map(str::to_owned).collect(),
        }
    }

    pub fn render(&self) -> String {
        self.lines.concat()
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&str> {
        self.lines.get(index).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    /// Inserts a line (a terminator is added) before `index`; `index == len()` appends.
    pub fn insert(&mut self, index: usize, line: &str) {
        let index = index.min(self.lines.len());
        if index == self.lines.len() {
            self.ensure_final_newline();
        }
        let terminator = self.line_ending();
        self.lines.insert(index, format!("{line}{terminator}"));
    }

    /// Appends a line at the end.
    pub fn push(&mut self, line: &str) {
        let end = self.lines.len();
        self.insert(end, line);
    }

    /// Replaces one line, keeping its terminator.
    pub fn replace(&mut self, index: usize, line: &str) {
        if let Some(existing) = self.lines.get_mut(index) {
            let terminator = line_terminator(existing).to_owned();
            *existing = format!("{line}{terminator}");
        }
    }

    fn ensure_final_newline(&mut self) {
        let terminator = self.line_ending();
        if let Some(last) = self.lines.last_mut()
            && !last.ends_with('\n')
        {
            last.push_str(&terminator);
        }
    }

    /// The file's own line ending, so an added line matches a CRLF file.
    fn line_ending(&self) -> String {
        match self.lines.first() {
            Some(first) if first.ends_with("\r\n") => "\r\n".to_owned(),
            _ => "\n".to_owned(),
        }
    }

    /// Every active occurrence of `name` (compared case-insensitively, as both PostgreSQL and
    /// Redis do), in file order.
    pub fn find_directives(&self, syntax: Syntax, name: &str) -> Vec<Directive> {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(index, line)| {
                let parsed = parse_directive(syntax, strip_terminator(line))?;
                parsed.name.eq_ignore_ascii_case(name).then(|| Directive {
                    index,
                    raw_value: parsed.raw_value.to_owned(),
                    value: unquote(syntax, parsed.raw_value),
                })
            })
            .collect()
    }

    /// The effective value of a directive: the last active occurrence wins, as in both servers.
    pub fn directive(&self, syntax: Syntax, name: &str) -> Option<Directive> {
        self.find_directives(syntax, name).pop()
    }

    /// Sets a directive to `raw_value` (already quoted as the syntax needs). The last active
    /// occurrence is rewritten in place, keeping its indentation, spacing and trailing comment;
    /// without one, the line goes right after a commented-out example of it (`#name = ...`),
    /// else at the end. Returns whether the text changed.
    pub fn set_directive(&mut self, syntax: Syntax, name: &str, raw_value: &str) -> bool {
        if let Some(found) = self.directive(syntax, name) {
            // The same value quoted differently is the same setting: rewriting it would count as
            // a change (and restart a server) for nothing.
            if found.raw_value == raw_value || unquote(syntax, &found.raw_value) == unquote(syntax, raw_value) {
                return false;
            }
            let line = strip_terminator(&self.lines[found.index]).to_owned();
            if let Some(parsed) = parse_directive(syntax, &line) {
                let head = &line[..parsed.value_start];
                // A bare `name` line gets its separator.
                let separator = if head.ends_with([' ', '\t', '=']) { "" } else { " " };
                let rewritten = format!("{head}{separator}{raw_value}{}", &line[parsed.value_end..]);
                self.replace(found.index, &rewritten);
                return true;
            }
        }
        let new_line = match syntax {
            Syntax::PostgresConf => format!("{name} = {raw_value}"),
            Syntax::RedisConf => format!("{name} {raw_value}"),
        };
        match self.commented_example(syntax, name) {
            Some(index) => self.insert(index + 1, &new_line),
            None => self.push(&new_line),
        }
        true
    }

    fn commented_example(&self, syntax: Syntax, name: &str) -> Option<usize> {
        self.lines.iter().enumerate().rev().find_map(|(index, line)| {
            let body = strip_terminator(line).trim_start();
            let uncommented = body.strip_prefix('#')?.trim_start();
            let parsed = parse_directive(syntax, uncommented)?;
            parsed.name.eq_ignore_ascii_case(name).then_some(index)
        })
    }
}

fn strip_terminator(line: &str) -> &str {
    line.strip_suffix("\r\n")
        .or_else(|| line.strip_suffix('\n'))
        .unwrap_or(line)
}

fn line_terminator(line: &str) -> &str {
    &line[strip_terminator(line).len()..]
}

struct ParsedDirective<'a> {
    name: &'a str,
    raw_value: &'a str,
    /// Byte offsets of the value within the line.
    value_start: usize,
    value_end: usize,
}

fn parse_directive(syntax: Syntax, line: &str) -> Option<ParsedDirective<'_>> {
    let trimmed_start = line.len() - line.trim_start().len();
    let body = &line[trimmed_start..];
    if body.is_empty() || body.starts_with('#') {
        return None;
    }
    let name_len = body
        .find(|character: char| {
            !(character.is_ascii_alphanumeric() || character == '_' || character == '.' || character == '-')
        })
        .unwrap_or(body.len());
    if name_len == 0 {
        return None;
    }
    let name = &body[..name_len];
    let mut cursor = trimmed_start + name_len;
    let after_name = &line[cursor..];
    let spaces = after_name.len() - after_name.trim_start_matches([' ', '\t']).len();
    cursor += spaces;
    if syntax == Syntax::PostgresConf && line[cursor..].starts_with('=') {
        cursor += 1;
        let rest = &line[cursor..];
        cursor += rest.len() - rest.trim_start_matches([' ', '\t']).len();
    } else if spaces == 0 && cursor < line.len() {
        // `name#` or `name=` glued to something else is not a directive this editor owns.
        return None;
    }
    let value_start = cursor;
    let value_end = value_end(syntax, line, value_start);
    Some(ParsedDirective {
        name,
        raw_value: &line[value_start..value_end],
        value_start,
        value_end,
    })
}

/// Where a value ends: before a trailing comment (postgresql.conf) and trailing whitespace.
fn value_end(syntax: Syntax, line: &str, start: usize) -> usize {
    let rest = &line[start..];
    let mut end = rest.len();
    if syntax == Syntax::PostgresConf {
        let mut in_quotes = false;
        for (offset, character) in rest.char_indices() {
            match character {
                '\'' => in_quotes = !in_quotes,
                '#' if !in_quotes => {
                    end = offset;
                    break;
                }
                _ => {}
            }
        }
    }
    start + rest[..end].trim_end().len()
}

fn unquote(syntax: Syntax, raw: &str) -> String {
    match syntax {
        Syntax::PostgresConf => match raw.strip_prefix('\'').and_then(|inner| inner.strip_suffix('\'')) {
            Some(inner) => inner.replace("''", "'").replace("\\'", "'"),
            None => raw.to_owned(),
        },
        // Redis's sdssplitargs takes "double" (with backslash escapes) and 'single' quotes.
        Syntax::RedisConf => {
            if let Some(inner) = raw.strip_prefix('"').and_then(|inner| inner.strip_suffix('"')) {
                inner.replace("\\\"", "\"")
            } else if let Some(inner) = raw.strip_prefix('\'').and_then(|inner| inner.strip_suffix('\'')) {
                inner.replace("\\'", "'")
            } else {
                raw.to_owned()
            }
        }
    }
}

/// Quotes a value for postgresql.conf.
pub fn quote_postgres(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_text_round_trips_byte_for_byte() {
        let text = "a = 1\r\n\n# comment\n  b\t=  'x' # trailing\nno_newline";
        assert_eq!(Lines::parse(text).render(), text);
    }

    #[test]
    fn set_directive_keeps_spacing_and_comment() {
        let mut lines = Lines::parse("x = 1\nlisten_addresses\t=  'localhost'\t\t# what IP\ny = 2\n");
        assert!(lines.set_directive(Syntax::PostgresConf, "listen_addresses", "'localhost,172.17.0.1'"));
        assert_eq!(
            lines.render(),
            "x = 1\nlisten_addresses\t=  'localhost,172.17.0.1'\t\t# what IP\ny = 2\n"
        );
        assert!(!lines.set_directive(Syntax::PostgresConf, "listen_addresses", "'localhost,172.17.0.1'"));
    }

    #[test]
    fn set_directive_goes_after_commented_example() {
        let mut lines = Lines::parse("#listen_addresses = 'localhost'\t# what\nport = 5432\n");
        lines.set_directive(Syntax::PostgresConf, "listen_addresses", "'*'");
        assert_eq!(
            lines.render(),
            "#listen_addresses = 'localhost'\t# what\nlisten_addresses = '*'\nport = 5432\n"
        );
    }

    #[test]
    fn the_same_value_quoted_differently_is_no_change() {
        for text in [
            "unixsocket \"/var/run/redis/redis.sock\"\n",
            "unixsocket '/var/run/redis/redis.sock'\n",
        ] {
            let mut lines = Lines::parse(text);
            assert!(
                !lines.set_directive(Syntax::RedisConf, "unixsocket", "/var/run/redis/redis.sock"),
                "{text}"
            );
            assert_eq!(lines.render(), text);
        }
        let lines = Lines::parse("requirepass ''\n");
        assert_eq!(
            lines.directive(Syntax::RedisConf, "requirepass").expect("found").value,
            ""
        );
    }

    #[test]
    fn a_bare_directive_gets_its_separator() {
        let mut lines = Lines::parse("unixsocket\n");
        assert!(lines.set_directive(Syntax::RedisConf, "unixsocket", "/var/run/redis/redis.sock"));
        assert_eq!(lines.render(), "unixsocket /var/run/redis/redis.sock\n");
    }

    #[test]
    fn set_directive_appends_with_newline_fix() {
        let mut lines = Lines::parse("port 6379");
        lines.set_directive(Syntax::RedisConf, "unixsocket", "/run/redis.sock");
        assert_eq!(lines.render(), "port 6379\nunixsocket /run/redis.sock\n");
    }

    #[test]
    fn last_occurrence_wins() {
        let lines = Lines::parse("port 1\nPORT 2\n# port 3\n");
        assert_eq!(
            lines.directive(Syntax::RedisConf, "port").map(|found| found.value),
            Some("2".to_owned())
        );
    }

    #[test]
    fn quoted_hash_is_not_a_comment() {
        let lines = Lines::parse("x = 'a#b' # c\n");
        assert_eq!(
            lines.directive(Syntax::PostgresConf, "x").map(|found| found.value),
            Some("a#b".to_owned())
        );
    }

    #[test]
    fn crlf_files_get_crlf_lines() {
        let mut lines = Lines::parse("a 1\r\n");
        lines.set_directive(Syntax::RedisConf, "b", "2");
        assert_eq!(lines.render(), "a 1\r\nb 2\r\n");
    }
}
