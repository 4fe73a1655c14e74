//! IPv4 and IPv6 networks in CIDR notation and lists of them, for trusted networks ("skip
//! authentication") and a user's allowed source networks.
//!
//! Hand-written rather than `ipnet`: the arithmetic is a few lines, and we want two things
//! `ipnet` does not do for us: IPv4-mapped IPv6 sources (`::ffff:10.8.0.1`, what a dual-stack
//! socket reports) matching IPv4 networks, and a configuration error for `10.8.0.1/16` that
//! names the network the admin most likely meant instead of silently widening it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network: an address with all host bits zero and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// Not `address` or `address/prefix`.
    #[error("`{0}` is not an IP address or network (like 10.8.0.0/16 or 2001:db8::/32)")]
    Syntax(String),
    /// The prefix is longer than the address.
    #[error("prefix /{prefix} is longer than {max} bits")]
    PrefixTooLong {
        /// The prefix given.
        prefix: u8,
        /// 32 or 128.
        max: u8,
    },
    /// Bits beyond the prefix are set, e.g. `10.8.0.1/16`.
    #[error("host bits are set in `{given}`; did you mean {suggestion}?")]
    HostBitsSet {
        /// The text given.
        given: String,
        /// The network with the host bits cleared.
        suggestion: IpNetwork,
    },
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// `ip` with everything past `prefix` bits cleared (`prefix` at most the address length).
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

impl IpNetwork {
    /// The network `addr/prefix`; the host bits of `addr` must be zero.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, NetworkError> {
        let addr = canonical(addr);
        let max = max_prefix(addr);
        if prefix > max {
            return Err(NetworkError::PrefixTooLong { prefix, max });
        }
        let network = Self {
            addr: masked(addr, prefix),
            prefix,
        };
        if network.addr != addr {
            return Err(NetworkError::HostBitsSet {
                given: format!("{addr}/{prefix}"),
                suggestion: network,
            });
        }
        Ok(network)
    }

    /// The single-address network of `ip`.
    pub fn host(ip: IpAddr) -> Self {
        let addr = canonical(ip);
        Self {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// The unit a source is counted, limited and banned by: the IPv4 address, or the IPv6
    /// address's /64.
    pub fn source_of(ip: IpAddr) -> Self {
        let addr = canonical(ip);
        let prefix = if addr.is_ipv4() { 32 } else { 64 };
        Self {
            addr: masked(addr, prefix),
            prefix,
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && masked(ip, self.prefix) == self.addr
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpNetwork {
    type Err = NetworkError;

    /// `10.8.0.0/16`, `2001:db8::/32`, or a bare address (one host).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let syntax = || NetworkError::Syntax(text.to_string());
        match text.split_once('/') {
            None => text.parse::<IpAddr>().map(Self::host).map_err(|_| syntax()),
            Some((addr, prefix)) => {
                let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
                if prefix.is_empty()
                    || prefix.len() > 3
                    || !prefix.bytes().all(|c| c.is_ascii_digit())
                {
                    return Err(syntax());
                }
                let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
                Self::new(addr, prefix).map_err(|e| match e {
                    NetworkError::HostBitsSet { suggestion, .. } => NetworkError::HostBitsSet {
                        given: text.to_string(),
                        suggestion,
                    },
                    other => other,
                })
            }
        }
    }
}

/// A set of networks; empty matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkList {
    networks: Vec<IpNetwork>,
}

impl NetworkList {
    /// Parses each entry; the first bad one is the error.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, NetworkError> {
        let networks = entries
            .into_iter()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }

    /// Whether any network contains `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// Whether the list has no networks.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The networks, in the order given.
    pub fn networks(&self) -> &[IpNetwork] {
        &self.networks
    }
}

impl FromIterator<IpNetwork> for NetworkList {
    fn from_iter<T: IntoIterator<Item = IpNetwork>>(iter: T) -> Self {
        Self {
            networks: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_network_contains_its_range_only() {
        let n: IpNetwork = "10.8.0.0/16".parse().unwrap();
        assert!(n.contains(ip("10.8.0.0")));
        assert!(n.contains(ip("10.8.255.255")));
        assert!(!n.contains(ip("10.9.0.0")));
        assert!(!n.contains(ip("10.7.255.255")));
        assert!(
            !n.contains(ip("::a08:1")),
            "an IPv6 address is not in an IPv4 network"
        );
    }

    #[test]
    fn ipv4_mapped_sources_match_ipv4_networks() {
        let n: IpNetwork = "10.8.0.0/16".parse().unwrap();
        assert!(n.contains(ip("::ffff:10.8.1.2")));
        assert!(!n.contains(ip("::ffff:10.9.1.2")));
    }

    #[test]
    fn ipv6_network_contains_its_range_only() {
        let n: IpNetwork = "2001:db8:1::/48".parse().unwrap();
        assert!(n.contains(ip("2001:db8:1:ffff::1")));
        assert!(!n.contains(ip("2001:db8:2::1")));
        assert!(!n.contains(ip("10.0.0.1")));
    }

    #[test]
    fn zero_and_full_prefixes() {
        let all4: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(all4.contains(ip("255.255.255.255")));
        assert!(!all4.contains(ip("::1")));
        let all6: IpNetwork = "::/0".parse().unwrap();
        assert!(all6.contains(ip("2001:db8::1")));
        let one: IpNetwork = "192.0.2.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.6")));
        let one6: IpNetwork = "2001:db8::1/128".parse().unwrap();
        assert!(one6.contains(ip("2001:db8::1")));
        assert!(!one6.contains(ip("2001:db8::2")));
    }

    #[test]
    fn host_bits_set_is_an_error_that_suggests_the_network() {
        let err = "10.8.0.1/16".parse::<IpNetwork>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "host bits are set in `10.8.0.1/16`; did you mean 10.8.0.0/16?"
        );
    }

    #[test]
    fn syntax_errors_are_reported() {
        for bad in [
            "",
            "10.8.0.0/",
            "10.8.0.0/x",
            "10.8.0/16",
            "host/8",
            "10.8.0.0/+8",
            "10.0.0.0/0016",
        ] {
            assert!(
                matches!(bad.parse::<IpNetwork>(), Err(NetworkError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(
            "10.0.0.0/33".parse::<IpNetwork>(),
            Err(NetworkError::PrefixTooLong {
                prefix: 33,
                max: 32
            })
        );
        assert_eq!(
            "::/129".parse::<IpNetwork>(),
            Err(NetworkError::PrefixTooLong {
                prefix: 129,
                max: 128
            })
        );
    }

    #[test]
    fn source_unit_is_ipv4_address_or_ipv6_slash_64() {
        assert_eq!(
            IpNetwork::source_of(ip("192.0.2.1")).to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(
            IpNetwork::source_of(ip("2001:db8:1:2:aaaa::1")),
            IpNetwork::source_of(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_eq!(
            IpNetwork::source_of(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            IpNetwork::source_of(ip("::ffff:192.0.2.1")),
            IpNetwork::source_of(ip("192.0.2.1"))
        );
    }

    #[test]
    fn list_matches_any_member_and_empty_matches_nothing() {
        let list = NetworkList::parse(["10.8.0.0/16", "2001:db8::/32"]).unwrap();
        assert!(list.contains(ip("10.8.3.4")));
        assert!(list.contains(ip("2001:db8::5")));
        assert!(!list.contains(ip("192.0.2.1")));
        assert!(!NetworkList::default().contains(ip("10.8.3.4")));
        assert!(NetworkList::parse(["10.8.0.0/16", "nonsense"]).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = s.parse::<IpNetwork>();
        }

        #[test]
        fn network_contains_exactly_addresses_sharing_the_prefix(a: u32, b: u32, prefix in 0u8..=32) {
            let net = IpNetwork::new(masked(IpAddr::V4(a.into()), prefix), prefix).unwrap();
            let shift = 32 - u32::from(prefix);
            let same = a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0);
            prop_assert_eq!(net.contains(IpAddr::V4(b.into())), same);
        }
    }
}
