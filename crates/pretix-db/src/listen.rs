//! `listen_addresses`: PostgreSQL must listen on localhost and on the docker host address, so
//! the container can reach it. What is there already is kept, in its order.

use std::net::IpAddr;

use pretix_site::lineedit::{Lines, Syntax, quote_postgres};

/// PostgreSQL's default when the setting is absent.
pub const DEFAULT_LISTEN_ADDRESSES: &str = "localhost";

/// The planned edit of postgresql.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenPlan {
    /// The value the file gives now (the default when it sets none).
    pub current: String,
    /// The value to write, when the file must change.
    pub new_value: Option<String>,
    /// The new file text, when the file must change.
    pub new_text: Option<String>,
}

/// Plans postgresql.conf: merges `required` into the file's `listen_addresses` (the last active
/// line wins, as in PostgreSQL), changing only that line (or adding one after the commented
/// example).
pub fn plan_listen_addresses(conf_text: &str, required: &[&str]) -> ListenPlan {
    let mut lines = Lines::parse(conf_text);
    let current = lines
        .directive(Syntax::PostgresConf, "listen_addresses")
        .map(|directive| directive.value)
        .unwrap_or_else(|| DEFAULT_LISTEN_ADDRESSES.to_owned());
    let Some(new_value) = merge_listen_addresses(&current, required) else {
        return ListenPlan {
            current,
            new_value: None,
            new_text: None,
        };
    };
    lines.set_directive(Syntax::PostgresConf, "listen_addresses", &quote_postgres(&new_value));
    ListenPlan {
        current,
        new_value: Some(new_value.clone()),
        new_text: Some(lines.render()),
    }
}

/// The entries of a `listen_addresses` value.
pub fn entries(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether the listed addresses already include `wanted`.
pub fn covers(value: &str, wanted: &str) -> bool {
    let listed = entries(value);
    let wanted_ip = wanted.parse::<IpAddr>().ok();
    listed.iter().any(|entry| {
        if entry == "*" {
            return true;
        }
        match (entry.parse::<IpAddr>().ok(), wanted_ip) {
            (Some(listed_ip), Some(wanted_ip)) => {
                listed_ip == wanted_ip
                    // 0.0.0.0 is every IPv4 address of the host, :: every IPv6 one (PostgreSQL
                    // sets IPV6_V6ONLY, so :: never covers IPv4).
                    || (listed_ip.is_unspecified() && listed_ip.is_ipv4() == wanted_ip.is_ipv4())
            }
            (Some(listed_ip), None) => {
                listed_ip == IpAddr::from([0, 0, 0, 0]) && wanted.eq_ignore_ascii_case("localhost")
            }
            // `localhost` makes PostgreSQL listen on the loopback addresses it resolves to.
            (None, Some(wanted_ip)) => entry.eq_ignore_ascii_case("localhost") && is_localhost_address(wanted_ip),
            (None, None) => entry.eq_ignore_ascii_case(wanted),
        }
    })
}

fn is_localhost_address(address: IpAddr) -> bool {
    address == IpAddr::from([127, 0, 0, 1]) || address == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
}

/// The merged value, or `None` when `current` already covers every required address.
pub fn merge_listen_addresses(current: &str, required: &[&str]) -> Option<String> {
    let mut merged = entries(current);
    let mut changed = false;
    for wanted in required {
        if !covers(&merged.join(","), wanted) {
            merged.push((*wanted).to_owned());
            changed = true;
        }
    }
    changed.then(|| merged.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: &[&str] = &["localhost", "172.17.0.1"];

    #[test]
    fn merging_keeps_what_is_there() {
        assert_eq!(
            merge_listen_addresses("localhost", REQUIRED).as_deref(),
            Some("localhost,172.17.0.1")
        );
        assert_eq!(
            merge_listen_addresses("", REQUIRED).as_deref(),
            Some("localhost,172.17.0.1")
        );
        assert_eq!(
            merge_listen_addresses("10.0.0.5, localhost", REQUIRED).as_deref(),
            Some("10.0.0.5,localhost,172.17.0.1")
        );
        assert_eq!(
            merge_listen_addresses("172.17.0.1", REQUIRED).as_deref(),
            Some("172.17.0.1,localhost")
        );
        assert_eq!(merge_listen_addresses("localhost,172.17.0.1", REQUIRED), None);
        assert_eq!(merge_listen_addresses("LOCALHOST , 172.17.0.1", REQUIRED), None);
        assert_eq!(merge_listen_addresses("*", REQUIRED), None);
        assert_eq!(merge_listen_addresses("0.0.0.0", REQUIRED), None);
        assert_eq!(
            merge_listen_addresses("::", REQUIRED).as_deref(),
            Some("::,localhost,172.17.0.1")
        );
        assert_eq!(merge_listen_addresses("localhost", &["localhost", "127.0.0.1"]), None);
        assert_eq!(
            merge_listen_addresses("localhost", &["localhost", "127.0.0.2"]).as_deref(),
            Some("localhost,127.0.0.2")
        );
    }

    #[test]
    fn commented_default_gets_a_line_after_it() {
        let text = "# head\n#listen_addresses = 'localhost'\t\t# what IP address(es) to listen on;\n\t\t\t\t\t# more\nport = 5432\n";
        let plan = plan_listen_addresses(text, REQUIRED);
        assert_eq!(plan.current, "localhost");
        assert_eq!(
            plan.new_text.as_deref(),
            Some(
                "# head\n#listen_addresses = 'localhost'\t\t# what IP address(es) to listen on;\nlisten_addresses = 'localhost,172.17.0.1'\n\t\t\t\t\t# more\nport = 5432\n"
            )
        );
    }

    #[test]
    fn the_last_active_line_is_edited_in_place() {
        let text = "listen_addresses = '10.0.0.5'\nlisten_addresses = 'localhost'   # mine\n";
        let plan = plan_listen_addresses(text, REQUIRED);
        assert_eq!(
            plan.new_text.as_deref(),
            Some("listen_addresses = '10.0.0.5'\nlisten_addresses = 'localhost,172.17.0.1'   # mine\n")
        );
        let again = plan_listen_addresses(plan.new_text.as_deref().unwrap_or_default(), REQUIRED);
        assert_eq!(again.new_text, None);
    }
}
