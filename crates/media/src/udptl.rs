//! Relaying T.38 fax datagrams (UDPTL, ITU-T T.38 §9.1) between the two legs of a call.
//!
//! Once a call has switched to T.38, each fax machine sends UDPTL datagrams to the port the
//! server gave it in SDP. They are not RTP (no version bits, no SSRC), so they never go near
//! the RTP parser or a jitter buffer: each datagram goes out unchanged to the other machine,
//! from the port the server gave that one. This type only decides where; the server owns the
//! sockets. As with RTP (RFC 4961), a machine is answered where its datagrams really come
//! from, which is what gets fax through NAT and VPN concentrators.

use std::net::SocketAddr;
use std::time::Instant;

/// Largest UDPTL datagram passed on. T.38 machines announce far less (`T38FaxMaxDatagram`
/// is typically 72 to 400 bytes); anything near a full Ethernet frame is not fax.
pub const MAX_UDPTL_DATAGRAM: usize = 1472;

/// Which leg's fax machine a socket faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UdptlSide {
    /// The leg that offered T.38 (or the caller's, once running).
    First,
    /// The other leg.
    Second,
}

impl UdptlSide {
    /// The side a datagram from this one goes to.
    pub const fn other(self) -> UdptlSide {
        match self {
            UdptlSide::First => UdptlSide::Second,
            UdptlSide::Second => UdptlSide::First,
        }
    }

    const fn index(self) -> usize {
        match self {
            UdptlSide::First => 0,
            UdptlSide::Second => 1,
        }
    }
}

/// Where the two fax machines of a call take UDPTL, and what has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdptlRelay {
    remote: [SocketAddr; 2],
    relayed: [u64; 2],
    last_heard: Option<Instant>,
}

impl UdptlRelay {
    /// A relay between the machines at `first` and `second`, as their SDP says.
    pub fn new(first: SocketAddr, second: SocketAddr) -> Self {
        Self {
            remote: [first, second],
            relayed: [0, 0],
            last_heard: None,
        }
    }

    /// A datagram of `len` bytes came from `from` to the socket facing `side`: where it goes,
    /// out of the socket facing the other side, or `None` to drop it (empty or too large).
    pub fn receive(
        &mut self,
        side: UdptlSide,
        from: SocketAddr,
        len: usize,
        now: Instant,
    ) -> Option<SocketAddr> {
        if len == 0 || len > MAX_UDPTL_DATAGRAM {
            return None;
        }
        self.remote[side.index()] = from;
        self.relayed[side.index()] += 1;
        self.last_heard = Some(now);
        Some(self.remote[side.other().index()])
    }

    /// The machine facing `side` takes UDPTL at `remote` now (its re-INVITE said so).
    pub fn set_remote(&mut self, side: UdptlSide, remote: SocketAddr) {
        self.remote[side.index()] = remote;
    }

    /// Where the machine facing `side` is sent to.
    pub fn remote(&self, side: UdptlSide) -> SocketAddr {
        self.remote[side.index()]
    }

    /// Datagrams passed on from the machine facing `side`.
    pub fn relayed_from(&self, side: UdptlSide) -> u64 {
        self.relayed[side.index()]
    }

    /// When the last datagram came, from either side.
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_datagram_from_either_machine_goes_to_the_other_one() {
        let now = Instant::now();
        let mut relay = UdptlRelay::new(addr("10.0.0.70:4002"), addr("10.0.0.80:5004"));
        assert_eq!(
            relay.receive(UdptlSide::First, addr("10.0.0.70:4002"), 40, now),
            Some(addr("10.0.0.80:5004"))
        );
        assert_eq!(
            relay.receive(UdptlSide::Second, addr("10.0.0.80:5004"), 40, now),
            Some(addr("10.0.0.70:4002"))
        );
        assert_eq!(
            (
                relay.relayed_from(UdptlSide::First),
                relay.relayed_from(UdptlSide::Second)
            ),
            (1, 1)
        );
        assert_eq!(relay.last_heard(), Some(now));
    }

    #[test]
    fn a_machine_behind_nat_is_answered_where_its_datagrams_come_from() {
        let now = Instant::now();
        let mut relay = UdptlRelay::new(addr("192.168.1.20:4002"), addr("10.0.0.80:5004"));
        relay.receive(UdptlSide::First, addr("198.51.100.7:61002"), 40, now);
        assert_eq!(
            relay.receive(
                UdptlSide::Second,
                addr("10.0.0.80:5004"),
                40,
                now + Duration::from_millis(20)
            ),
            Some(addr("198.51.100.7:61002"))
        );
    }

    #[test]
    fn empty_and_oversized_datagrams_are_dropped_and_change_nothing() {
        let now = Instant::now();
        let mut relay = UdptlRelay::new(addr("10.0.0.70:4002"), addr("10.0.0.80:5004"));
        for len in [0, MAX_UDPTL_DATAGRAM + 1, 65_507] {
            assert_eq!(
                relay.receive(UdptlSide::First, addr("10.9.9.9:1"), len, now),
                None
            );
        }
        assert_eq!(relay.remote(UdptlSide::First), addr("10.0.0.70:4002"));
        assert_eq!(relay.relayed_from(UdptlSide::First), 0);
        assert_eq!(relay.last_heard(), None);
    }

    #[test]
    fn a_new_address_from_a_reinvite_is_used_until_the_machine_sends() {
        let now = Instant::now();
        let mut relay = UdptlRelay::new(addr("10.0.0.70:4002"), addr("10.0.0.80:5004"));
        relay.set_remote(UdptlSide::Second, addr("10.0.0.80:6000"));
        assert_eq!(
            relay.receive(UdptlSide::First, addr("10.0.0.70:4002"), 12, now),
            Some(addr("10.0.0.80:6000"))
        );
    }
}
