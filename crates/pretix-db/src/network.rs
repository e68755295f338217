//! IP networks as pg_hba.conf writes them: `address/prefix` or `address` plus a netmask.

use std::fmt;
use std::net::IpAddr;

/// An IP network with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `address/prefix` (host bits are allowed and cleared, as PostgreSQL ignores them).
    pub fn parse_cidr(text: &str) -> Option<Network> {
        let (address, prefix) = text.split_once('/')?;
        let address: IpAddr = address.parse().ok()?;
        if prefix.is_empty() || !prefix.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        let prefix: u8 = prefix.parse().ok()?;
        Network::new(address, prefix)
    }

    /// Parses the old `address netmask` form.
    pub fn parse_with_mask(address: &str, mask: &str) -> Option<Network> {
        let address: IpAddr = address.parse().ok()?;
        let mask: IpAddr = mask.parse().ok()?;
        if address.is_ipv4() != mask.is_ipv4() {
            return None;
        }
        let mask_bits = bits(mask);
        let ones = mask_bits.leading_ones();
        // A netmask must be contiguous ones followed by zeros.
        if mask_bits.checked_shl(ones).unwrap_or(0) != 0 {
            return None;
        }
        Network::new(address, u8::try_from(ones).ok()?)
    }

    /// A single address.
    pub fn host(address: IpAddr) -> Network {
        let prefix = if address.is_ipv4() { 32 } else { 128 };
        Network { address, prefix }
    }

    fn new(address: IpAddr, prefix: u8) -> Option<Network> {
        if u32::from(prefix) > width(address) {
            return None;
        }
        let masked = from_bits(address.is_ipv4(), bits(address) & mask_bits(address.is_ipv4(), prefix));
        Some(Network {
            address: masked,
            prefix,
        })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.address.is_ipv4()
            && bits(address) & mask_bits(address.is_ipv4(), self.prefix) == bits(self.address)
    }

    /// Whether some address lies in both (for CIDR networks: one contains the other).
    pub fn overlaps(&self, other: &Network) -> bool {
        if self.address.is_ipv4() != other.address.is_ipv4() {
            return false;
        }
        let prefix = self.prefix.min(other.prefix);
        let mask = mask_bits(self.address.is_ipv4(), prefix);
        bits(self.address) & mask == bits(other.address) & mask
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(&self) -> bool {
        self.address.is_ipv4()
    }
}

impl fmt::Display for Network {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.address, self.prefix)
    }
}

/// The address as a 128-bit number; IPv4 addresses sit in the high 32 bits so that masks
/// work the same for both families.
fn bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(ipv4: bool, bits: u128) -> IpAddr {
    if ipv4 {
        IpAddr::from(u32::try_from(bits >> 96).unwrap_or(0).to_be_bytes())
    } else {
        IpAddr::from(bits.to_be_bytes())
    }
}

fn width(address: IpAddr) -> u32 {
    if address.is_ipv4() { 32 } else { 128 }
}

fn mask_bits(_ipv4: bool, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Network {
        Network::parse_cidr(text).unwrap_or_else(|| Network::host(IpAddr::from([255, 255, 255, 255])))
    }

    #[test]
    fn cidr_parsing_clears_host_bits() {
        assert_eq!(net("172.17.0.1/16").to_string(), "172.17.0.0/16");
        assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(net("fd00::1/8").to_string(), "fd00::/8");
        assert_eq!(Network::parse_cidr("172.17.0.0/33"), None);
        assert_eq!(Network::parse_cidr("172.17.0.0/"), None);
        assert_eq!(Network::parse_cidr("172.17.0.0/+8"), None);
        assert_eq!(Network::parse_cidr("localhost/8"), None);
    }

    #[test]
    fn netmask_form() {
        let parsed = Network::parse_with_mask("172.16.0.0", "255.240.0.0");
        assert_eq!(
            parsed.map(|network| network.to_string()).as_deref(),
            Some("172.16.0.0/12")
        );
        let parsed = Network::parse_with_mask("127.0.0.1", "255.255.255.255");
        assert_eq!(
            parsed.map(|network| network.to_string()).as_deref(),
            Some("127.0.0.1/32")
        );
        assert_eq!(Network::parse_with_mask("10.0.0.0", "255.0.255.0"), None);
        let parsed = Network::parse_with_mask("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        assert_eq!(parsed.map(|network| network.to_string()).as_deref(), Some("::1/128"));
    }

    #[test]
    fn overlap_and_containment() {
        let docker = net("172.17.0.0/16");
        assert!(net("172.16.0.0/12").overlaps(&docker));
        assert!(net("172.17.0.5/32").overlaps(&docker));
        assert!(net("0.0.0.0/0").overlaps(&docker));
        assert!(!net("127.0.0.1/32").overlaps(&docker));
        assert!(!net("::/0").overlaps(&docker));
        assert!(docker.contains(IpAddr::from([172, 17, 0, 1])));
        assert!(!docker.contains(IpAddr::from([172, 18, 0, 1])));
    }
}
