//! Where a leg can be reached: the address its ICE host candidate advertises.

use std::net::{IpAddr, SocketAddr};

use crate::error::WebRtcError;

/// Where the server's WebRTC UDP socket is and how browsers reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebRtcConfig {
    /// The UDP socket the media worker receives this leg's datagrams on.
    pub local: SocketAddr,
    /// The address browsers must send to when `local` sits behind a 1:1 NAT (a cloud VM's
    /// public address): the host candidate advertises it with `local`'s port instead of
    /// `local`'s own address. Also required when `local` is a wildcard address, which no
    /// browser can send to.
    pub public_ip: Option<IpAddr>,
}

impl WebRtcConfig {
    /// A leg reachable at `local` itself (no NAT in between).
    pub fn new(local: SocketAddr) -> Self {
        WebRtcConfig {
            local,
            public_ip: None,
        }
    }

    /// The same, advertising `public_ip` (with `local`'s port) as the host candidate.
    pub fn with_public_ip(mut self, public_ip: IpAddr) -> Self {
        self.public_ip = Some(public_ip);
        self
    }

    /// The address of the one host candidate put in the answer.
    ///
    /// A wildcard address (`0.0.0.0`, `::`) or port 0 cannot be sent to, so a browser given
    /// it would never connect; that is refused here rather than found out 15 s later.
    pub fn advertised(&self) -> Result<SocketAddr, WebRtcError> {
        let ip = self.public_ip.unwrap_or(self.local.ip());
        let addr = SocketAddr::new(ip, self.local.port());
        if ip.is_unspecified() || ip.is_multicast() || addr.port() == 0 {
            return Err(WebRtcError::UnusableAddress {
                addr,
                reason: "a browser cannot send to a wildcard or multicast address or to port 0; \
                         set public_ip or bind a concrete address"
                    .to_owned(),
            });
        }
        Ok(addr)
    }
}
