//! One leg's SRTP: the two contexts its SDES keys make, and which packets they apply to.
//!
//! The leg hands over every datagram it received and every packet it is about to send;
//! RTP and RTCP are told apart by the packet type byte (RFC 5761 §4), so the same code
//! serves legs with and without rtcp-mux. Nothing here allocates per packet.

use srtp::{SrtpContext, SrtpError, Suite};

use crate::leg::MAX_PACKET;
use crate::rtp::is_rtcp;
use crate::sdp::NegotiatedSrtp;

/// Largest number of bytes SRTP adds to a packet (SRTCP index and a 16-byte GCM tag).
const MAX_OVERHEAD: usize = 4 + 16;

/// The SRTP state of one leg: what we send is protected with our key, what we receive is
/// checked and decrypted with the peer's.
pub struct SecureLeg {
    send: SrtpContext,
    /// The suite of what we send: a rekey to another suite takes our key for that one.
    send_suite: Suite,
    receive: SrtpContext,
    /// A protected packet is built here, so the caller's buffer stays as the leg wrote it.
    out: Box<[u8; MAX_PACKET + MAX_OVERHEAD]>,
}

impl SecureLeg {
    /// Contexts for the negotiated keys.
    pub fn new(keys: &NegotiatedSrtp) -> Self {
        Self {
            send: SrtpContext::new(keys.local.suite, &keys.local.key),
            send_suite: keys.local.suite,
            receive: SrtpContext::new(keys.remote.suite, &keys.remote.key),
            out: Box::new([0; MAX_PACKET + MAX_OVERHEAD]),
        }
    }

    /// The peer rekeyed (a re-INVITE with a new key): what it sends from now on is checked
    /// with `keys`. Our own key, and the sending context's rollover count with it, stays
    /// unless the suite changed.
    pub fn rekey(&mut self, keys: &NegotiatedSrtp) {
        self.receive = SrtpContext::new(keys.remote.suite, &keys.remote.key);
        if keys.local.suite != self.send_suite {
            self.send = SrtpContext::new(keys.local.suite, &keys.local.key);
            self.send_suite = keys.local.suite;
        }
    }

    /// Checks and decrypts the datagram in `buf[..len]` in place; returns its plain length.
    pub fn unprotect(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if is_rtcp(buf.get(..len).unwrap_or_default()) {
            self.receive.unprotect_rtcp(buf, len)
        } else {
            self.receive.unprotect_rtp(buf, len)
        }
    }

    /// The protected form of `packet`, ready to send.
    pub fn protect(&mut self, packet: &[u8]) -> Result<&[u8], SrtpError> {
        let available = self.out.len();
        let Some(room) = self.out.get_mut(..packet.len()) else {
            return Err(SrtpError::PacketTooLong { len: packet.len() });
        };
        room.copy_from_slice(packet);
        let len = if is_rtcp(packet) {
            self.send.protect_rtcp(&mut self.out[..], packet.len())?
        } else {
            self.send.protect_rtp(&mut self.out[..], packet.len())?
        };
        self.out.get(..len).ok_or(SrtpError::BufferTooSmall {
            needed: len,
            available,
        })
    }
}
