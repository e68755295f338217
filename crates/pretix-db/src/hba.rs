//! pg_hba.conf: the one rule that lets the container in, placed where no earlier rule decides
//! pretix's connections first, added once, and no other line moved.
//!
//! PostgreSQL uses the first rule that matches a connection's type, database, user and client
//! address. An earlier rule "shadows" ours when it could match a connection ours matches. Where
//! that cannot be decided from the file alone (group membership, included files, host names,
//! `samenet`), the rule counts as shadowing: putting our rule earlier only ever changes the
//! outcome for connections that our rule names exactly, so erring that way is safe.

use std::net::IpAddr;

use pretix_site::lineedit::Lines;

use crate::names::hba_field;
use crate::network::Network;

/// The comment line above the rule this tool adds.
pub const MARKER: &str = "# pretix (managed by pretix-db)";

/// The rule pretix needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRule {
    pub database: String,
    pub user: String,
    pub subnet: Network,
    pub method: String,
}

impl DesiredRule {
    /// The rule as a line, in the columns of Debian's pg_hba.conf.
    pub fn line(&self) -> String {
        let columns = [
            ("host".to_owned(), 8usize),
            (hba_field(&self.database), 16),
            (hba_field(&self.user), 16),
            (self.subnet.to_string(), 24),
        ];
        let mut line = String::new();
        for (text, width) in columns {
            line.push_str(&text);
            let padding = width.saturating_sub(text.chars().count()).max(1);
            line.push_str(&" ".repeat(padding));
        }
        line.push_str(&self.method);
        line
    }
}

/// What the file needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HbaAction {
    /// The rule is there and nothing before it shadows it (1-based line).
    Present { line: usize },
    /// A rule for exactly this database, user and network exists with another method: the
    /// method is rewritten in place.
    FixMethod { line: usize, old_method: String },
    /// The rule is added before the shadowing rule (1-based line and its text), or at the end.
    Insert { before: Option<(usize, String)> },
}

/// The planned edit of pg_hba.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaPlan {
    pub action: HbaAction,
    /// The new file text, when the file must change.
    pub new_text: Option<String>,
    /// Things the sysadmin should know (rules made unreachable, for instance).
    pub warnings: Vec<String>,
}

/// Plans the edit. Pure: the file text in, the plan out.
pub fn plan_hba(text: &str, desired: &DesiredRule) -> HbaPlan {
    let lines = Lines::parse(text);
    let entries = parse_entries(&lines);
    let mut warnings = Vec::new();
    for (position, entry) in entries.iter().enumerate() {
        let Entry::Rule(rule) = &entry.kind else {
            // An include may hold anything, and an unparsable line anything else.
            return insert_before(&lines, &entries, position, desired, warnings);
        };
        match classify(rule, desired) {
            Relation::Identical => {
                return HbaPlan {
                    action: HbaAction::Present {
                        line: entry.first_line + 1,
                    },
                    new_text: None,
                    warnings,
                };
            }
            Relation::SameKey => {
                if let Some(span) = rule.method_span.filter(|_| entry.first_line == entry.last_line) {
                    let line_text = lines.get(entry.first_line).unwrap_or_default();
                    let body = strip_terminator(line_text);
                    let rewritten = format!("{}{}{}", &body[..span.0], desired.method, &body[span.1..]);
                    let mut edited = lines.clone();
                    edited.replace(entry.first_line, &rewritten);
                    return HbaPlan {
                        action: HbaAction::FixMethod {
                            line: entry.first_line + 1,
                            old_method: rule.method.clone(),
                        },
                        new_text: Some(edited.render()),
                        warnings,
                    };
                }
                return insert_before(&lines, &entries, position, desired, warnings);
            }
            Relation::Shadows => return insert_before(&lines, &entries, position, desired, warnings),
            Relation::Unrelated => {}
        }
    }
    // No rule decides pretix's connections: append after the last rule.
    let index = entries.last().map_or(lines.len(), |entry| entry.last_line + 1);
    let mut edited = lines.clone();
    edited.insert(index, &desired.line());
    let previous = index
        .checked_sub(1)
        .and_then(|previous| lines.get(previous))
        .map(strip_terminator);
    if previous.map(str::trim) != Some(MARKER) {
        edited.insert(index, MARKER);
        if previous.is_some_and(|previous| !previous.trim().is_empty()) {
            edited.insert(index, "");
        }
    }
    warnings.extend(unreachable_duplicates(&entries, desired, None));
    HbaPlan {
        action: HbaAction::Insert { before: None },
        new_text: Some(edited.render()),
        warnings,
    }
}

fn insert_before(
    lines: &Lines,
    entries: &[ParsedEntry],
    position: usize,
    desired: &DesiredRule,
    mut warnings: Vec<String>,
) -> HbaPlan {
    let shadowing = &entries[position];
    // Go above the comment block that belongs to the shadowing rule, so that comment keeps
    // describing its rule.
    let mut index = shadowing.first_line;
    while index > 0
        && lines
            .get(index - 1)
            .is_some_and(|line| strip_terminator(line).trim_start().starts_with('#'))
    {
        index -= 1;
    }
    let mut edited = lines.clone();
    edited.insert(index, &desired.line());
    let previous = index
        .checked_sub(1)
        .and_then(|previous| lines.get(previous))
        .map(strip_terminator);
    if previous.map(str::trim) != Some(MARKER) {
        edited.insert(index, MARKER);
    }
    let shadow_text = strip_terminator(lines.get(shadowing.first_line).unwrap_or_default())
        .trim()
        .to_owned();
    warnings.extend(unreachable_duplicates(entries, desired, Some(position)));
    HbaPlan {
        action: HbaAction::Insert {
            before: Some((shadowing.first_line + 1, shadow_text)),
        },
        new_text: Some(edited.render()),
        warnings,
    }
}

/// Rules for exactly pretix's connections after `after` that the new rule makes unreachable.
fn unreachable_duplicates(entries: &[ParsedEntry], desired: &DesiredRule, after: Option<usize>) -> Vec<String> {
    let Some(after) = after else { return Vec::new() };
    entries.get(after + 1..).unwrap_or_default()
        .iter()
        .filter_map(|entry| match &entry.kind {
            Entry::Rule(rule) if matches!(classify(rule, desired), Relation::Identical | Relation::SameKey) => Some(format!(
                "pg_hba.conf: the rule for pretix that was on line {} came after a rule that shadowed it; the new pretix rule goes before both, so the old one is unused now: remove it",
                entry.first_line + 1
            )),
            _ => None,
        })
        .collect()
}

/// How an existing rule relates to ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Identical,
    /// Same type, database, user and network; another method.
    SameKey,
    Shadows,
    Unrelated,
}

fn classify(rule: &Rule, desired: &DesiredRule) -> Relation {
    let is_host = rule.conn_type == "host";
    let exactly = |tokens: &[Token], name: &str| tokens.len() == 1 && tokens[0].is_name(name);
    if is_host
        && exactly(&rule.databases, &desired.database)
        && exactly(&rule.users, &desired.user)
        && rule.address == Address::Net(desired.subnet)
    {
        // A rule with options (`clientcert=verify-full`) asks more of pretix than ours: it is
        // not ours, and ours goes before it rather than editing it.
        return if rule.has_options {
            Relation::Shadows
        } else if rule.method == desired.method {
            Relation::Identical
        } else {
            Relation::SameKey
        };
    }
    if shadows(rule, desired) {
        Relation::Shadows
    } else {
        Relation::Unrelated
    }
}

fn shadows(rule: &Rule, desired: &DesiredRule) -> bool {
    // Every host* type can see pretix's TCP connections (libpq tries TLS first when the server
    // offers it, and GSS encryption likewise), so all count.
    if !rule.conn_type.starts_with("host") {
        return false;
    }
    let database_matches = rule.databases.iter().any(|token| {
        if token.quoted {
            return token.text == desired.database;
        }
        match token.text.as_str() {
            "all" | "samerole" | "samegroup" => true,
            "sameuser" => desired.database == desired.user,
            "replication" => false,
            text if text.starts_with('@') || text.starts_with('/') => true,
            text => text == desired.database,
        }
    });
    let user_matches = rule.users.iter().any(|token| {
        if token.quoted {
            return token.text == desired.user;
        }
        match token.text.as_str() {
            "all" => true,
            text if text.starts_with('+') || text.starts_with('@') || text.starts_with('/') => true,
            text => text == desired.user,
        }
    });
    let address_matches = match &rule.address {
        Address::Net(network) => network.overlaps(&desired.subnet),
        Address::All | Address::SameHost | Address::SameNet | Address::Hostname | Address::Unknown => true,
    };
    database_matches && user_matches && address_matches
}

/// One token of a pg_hba.conf field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    quoted: bool,
    /// Byte offsets in the line (quotes included).
    start: usize,
    end: usize,
}

impl Token {
    /// Whether this token names exactly `name` (a keyword only counts when quoted).
    fn is_name(&self, name: &str) -> bool {
        self.text == name
            && (self.quoted || !["all", "sameuser", "samerole", "samegroup", "replication"].contains(&name))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    All,
    SameHost,
    SameNet,
    Net(Network),
    Hostname,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    conn_type: String,
    databases: Vec<Token>,
    users: Vec<Token>,
    address: Address,
    method: String,
    method_span: Option<(usize, usize)>,
    /// Auth options after the method (`clientcert=verify-full`, ...).
    has_options: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Rule(Rule),
    /// `include`, `include_if_exists`, `include_dir`, or a line PostgreSQL would reject.
    Opaque,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ParsedEntry {
    /// 0-based first and last line (a line ending in a backslash continues on the next).
    first_line: usize,
    last_line: usize,
    kind: Entry,
}

fn strip_terminator(line: &str) -> &str {
    line.strip_suffix("\r\n")
        .or_else(|| line.strip_suffix('\n'))
        .unwrap_or(line)
}

fn parse_entries(lines: &Lines) -> Vec<ParsedEntry> {
    let mut entries = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let first_line = index;
        let mut logical = strip_terminator(lines.get(index).unwrap_or_default()).to_owned();
        while logical.ends_with('\\') && index + 1 < lines.len() {
            logical.pop();
            index += 1;
            logical.push_str(strip_terminator(lines.get(index).unwrap_or_default()));
        }
        let last_line = index;
        index += 1;
        let fields = tokenize(&logical);
        if fields.is_empty() {
            continue;
        }
        entries.push(ParsedEntry {
            first_line,
            last_line,
            kind: parse_rule(fields).map_or(Entry::Opaque, Entry::Rule),
        });
    }
    entries
}

/// Splits a line into fields, each a list of comma-separated tokens, as PostgreSQL's hba
/// tokenizer does: `#` outside quotes starts a comment, double quotes group, a trailing comma
/// continues the list into the next whitespace-separated token.
fn tokenize(line: &str) -> Vec<Vec<Token>> {
    let mut fields: Vec<Vec<Token>> = Vec::new();
    let mut continuing = false;
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.peek().is_some_and(|(_, character)| character.is_whitespace()) {
            chars.next();
        }
        let Some(&(start, first)) = chars.peek() else { break };
        if first == '#' {
            break;
        }
        let mut text = String::new();
        let mut quoted = false;
        let mut in_quote = false;
        let mut end = start;
        let mut comma = false;
        while let Some(&(offset, character)) = chars.peek() {
            if !in_quote && (character.is_whitespace() || character == '#') {
                break;
            }
            chars.next();
            end = offset + character.len_utf8();
            match character {
                '"' => {
                    in_quote = !in_quote;
                    quoted = true;
                }
                ',' if !in_quote => {
                    comma = true;
                    break;
                }
                other => text.push(other),
            }
        }
        let token_end = if comma { end - 1 } else { end };
        let token = Token {
            text,
            quoted,
            start,
            end: token_end,
        };
        match fields.last_mut() {
            Some(field) if continuing => field.push(token),
            _ => fields.push(vec![token]),
        }
        continuing = comma;
    }
    fields
}

fn parse_rule(fields: Vec<Vec<Token>>) -> Option<Rule> {
    let mut fields = fields.into_iter();
    let conn_type = single(fields.next()?)?;
    if conn_type.quoted {
        return None;
    }
    let conn_type = conn_type.text;
    let is_host = match conn_type.as_str() {
        "local" => false,
        "host" | "hostssl" | "hostnossl" | "hostgssenc" | "hostnogssenc" => true,
        _ => return None,
    };
    let databases = fields.next()?;
    let users = fields.next()?;
    let address = if is_host {
        let address = single(fields.next()?)?;
        match address.text.as_str() {
            _ if address.quoted => Address::Hostname,
            "all" => Address::All,
            "samehost" => Address::SameHost,
            "samenet" => Address::SameNet,
            text if text.contains('/') => Network::parse_cidr(text).map_or(Address::Unknown, Address::Net),
            text => match text.parse::<IpAddr>() {
                Ok(_) => {
                    let mask = single(fields.next()?)?;
                    Network::parse_with_mask(text, &mask.text).map_or(Address::Unknown, Address::Net)
                }
                Err(_) => Address::Hostname,
            },
        }
    } else {
        Address::Unknown
    };
    let method = single(fields.next()?)?;
    let has_options = fields.next().is_some();
    Some(Rule {
        conn_type,
        databases,
        users,
        address,
        method: method.text,
        method_span: (!method.quoted).then_some((method.start, method.end)),
        has_options,
    })
}

fn single(mut field: Vec<Token>) -> Option<Token> {
    (field.len() == 1).then(|| field.pop()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> DesiredRule {
        DesiredRule {
            database: "pretix".to_owned(),
            user: "pretix".to_owned(),
            subnet: Network::parse_cidr("172.17.0.0/16").unwrap_or_else(|| Network::host(IpAddr::from([0, 0, 0, 0]))),
            method: "scram-sha-256".to_owned(),
        }
    }

    fn new_text(plan: &HbaPlan) -> &str {
        plan.new_text.as_deref().unwrap_or("(unchanged)")
    }

    #[test]
    fn the_rule_line_uses_debians_columns() {
        assert_eq!(
            desired().line(),
            "host    pretix          pretix          172.17.0.0/16           scram-sha-256"
        );
        let odd = DesiredRule {
            database: "tickets shop".to_owned(),
            user: "all".to_owned(),
            ..desired()
        };
        assert_eq!(
            odd.line(),
            "host    \"tickets shop\"  \"all\"           172.17.0.0/16           scram-sha-256"
        );
    }

    #[test]
    fn appended_after_the_last_rule_once() {
        let text = "# comment\nlocal all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n\n# trailing comment\n";
        let plan = plan_hba(text, &desired());
        assert_eq!(plan.action, HbaAction::Insert { before: None });
        assert_eq!(
            new_text(&plan),
            "# comment\nlocal all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n\n# pretix (managed by pretix-db)\nhost    pretix          pretix          172.17.0.0/16           scram-sha-256\n\n# trailing comment\n"
        );
        let again = plan_hba(new_text(&plan), &desired());
        assert_eq!(again.action, HbaAction::Present { line: 6 });
        assert_eq!(again.new_text, None);
    }

    #[test]
    fn inserted_before_a_shadowing_rule_and_its_comment() {
        let text = "local all all peer\n\n# nothing else gets in\nhost all all 0.0.0.0/0 reject\n";
        let plan = plan_hba(text, &desired());
        assert_eq!(
            plan.action,
            HbaAction::Insert {
                before: Some((4, "host all all 0.0.0.0/0 reject".to_owned()))
            }
        );
        assert_eq!(
            new_text(&plan),
            "local all all peer\n\n# pretix (managed by pretix-db)\nhost    pretix          pretix          172.17.0.0/16           scram-sha-256\n# nothing else gets in\nhost all all 0.0.0.0/0 reject\n"
        );
        assert_eq!(plan_hba(new_text(&plan), &desired()).new_text, None);
    }

    #[test]
    fn what_shadows_and_what_does_not() {
        let shadowing = [
            "host all all 172.16.0.0/12 md5",
            "hostssl all all 172.17.0.9/32 cert",
            "host all all 172.16.0.0 255.240.0.0 md5",
            "host pretix all all reject",
            "host \"pretix\" pretix samenet trust",
            "host sameuser all samehost md5",
            "host samerole all 0.0.0.0/0 md5",
            "host all +staff 0.0.0.0/0 md5",
            "host @dbs all 0.0.0.0/0 md5",
            "host all all .example.com md5",
            "host shop,pretix all 0.0.0.0/0 md5",
            "host shop, pretix all 0.0.0.0/0 md5",
            "include_dir hba.d",
            "host pretix pretix 172.17.0.0/16 md5 \\\n  clientcert=verify-ca",
            "not a rule",
        ];
        for line in shadowing {
            let plan = plan_hba(&format!("{line}\n"), &desired());
            assert!(
                matches!(plan.action, HbaAction::Insert { before: Some(_) }),
                "{line}: {:?}",
                plan.action
            );
        }
        let unrelated = [
            "local all all peer",
            "host all all 127.0.0.1/32 scram-sha-256",
            "host all all ::/0 reject",
            "host replication all 0.0.0.0/0 md5",
            "host \"all\" all 0.0.0.0/0 md5",
            "host all \"all\" 0.0.0.0/0 md5",
            "host shop all 0.0.0.0/0 md5",
            "host all postgres 0.0.0.0/0 md5",
            "# host all all 0.0.0.0/0 reject",
            "host all all 10.0.0.0/8 md5 # 172.17.0.0/16",
        ];
        for line in unrelated {
            let plan = plan_hba(&format!("{line}\n"), &desired());
            assert_eq!(plan.action, HbaAction::Insert { before: None }, "{line}");
        }
    }

    #[test]
    fn same_rule_with_another_method_gets_the_method_fixed_in_place() {
        let text = "host\tpretix\tpretix\t172.17.0.1/16\tmd5   # the guide's line\n";
        let plan = plan_hba(text, &desired());
        assert_eq!(
            plan.action,
            HbaAction::FixMethod {
                line: 1,
                old_method: "md5".to_owned()
            }
        );
        assert_eq!(
            new_text(&plan),
            "host\tpretix\tpretix\t172.17.0.1/16\tscram-sha-256   # the guide's line\n"
        );
        assert_eq!(plan_hba(new_text(&plan), &desired()).new_text, None);
    }

    #[test]
    fn the_same_rule_with_auth_options_is_not_ours_and_ours_goes_before_it() {
        let text = "host pretix pretix 172.17.0.0/16 scram-sha-256 clientcert=verify-full\n";
        let plan = plan_hba(text, &desired());
        assert!(
            matches!(plan.action, HbaAction::Insert { before: Some((1, _)) }),
            "{:?}",
            plan.action
        );
        let again = plan_hba(new_text(&plan), &desired());
        assert!(matches!(again.action, HbaAction::Present { .. }), "{:?}", again.action);
        assert!(new_text(&plan).ends_with(text), "their line stays as it was");
    }

    #[test]
    fn an_identical_rule_behind_a_shadowing_one_is_reported() {
        let text = "host all all 0.0.0.0/0 reject\nhost pretix pretix 172.17.0.0/16 scram-sha-256\n";
        let plan = plan_hba(text, &desired());
        assert!(matches!(plan.action, HbaAction::Insert { before: Some((1, _)) }));
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert!(plan.warnings[0].contains("line 2"), "{:?}", plan.warnings);
    }

    #[test]
    fn quoted_hash_is_not_a_comment_and_crlf_is_kept() {
        let text = "host \"a#b\" all 0.0.0.0/0 md5\r\n";
        let plan = plan_hba(
            text,
            &DesiredRule {
                database: "a#b".to_owned(),
                ..desired()
            },
        );
        assert!(matches!(plan.action, HbaAction::Insert { before: Some(_) }));
        assert!(
            new_text(&plan).ends_with("scram-sha-256\r\nhost \"a#b\" all 0.0.0.0/0 md5\r\n"),
            "{:?}",
            new_text(&plan)
        );
    }
}
