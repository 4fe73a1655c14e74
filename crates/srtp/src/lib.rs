//! SRTP and SRTCP (RFC 3711, RFC 7714) with keys exchanged by SDES (RFC 4568), for the calls
//! whose phones ask for `RTP/SAVP`: [`CryptoAttribute`] reads and writes `a=crypto:` lines and
//! [`SrtpContext`] protects or unprotects packets in place, one context per direction.
//!
//! Deliberately sans-IO and small: no sockets, no clocks, no SDP offer/answer logic (the caller
//! picks a line and makes the answer; [`SrtpPolicy`] is only the admin's word for it), no DTLS-SRTP, no MKI on the wire, no key derivation rate
//! other than 0, no AES-256 or F8 suites. Protect and unprotect allocate nothing; key bytes
//! never reach `Debug` output and are zeroed when dropped.

#![warn(missing_docs)]

mod context;
mod kdf;
mod key;
mod policy;
mod replay;
mod sdes;
mod suite;

pub use context::{MAX_STREAMS, SrtpContext, SrtpError};
pub use key::MasterKey;
pub use policy::{SrtpPolicy, UnknownSrtpPolicy};
pub use sdes::{CryptoAttribute, SdesError};
pub use suite::Suite;

#[cfg(test)]
mod vectors;
