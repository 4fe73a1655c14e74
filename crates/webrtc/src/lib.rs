//! The WebRTC audio endpoint for browser legs (the join page, WHIP ingest, WHEP egress): one
//! [`WebRtcLeg`] answers one browser's SDP offer as an ICE-lite server with a single host
//! candidate, runs DTLS-SRTP, and carries one Opus 48000/2 audio stream each way, with the
//! RFC 6464 audio level when the browser offers it. The media workers drive it like every other
//! sans-IO core here: datagrams and the current `Instant` in, datagrams, events and the next
//! deadline out.
//!
//! The server can also be the client: [`WebRtcLeg::offer`] writes the offer for a meeting's
//! WHIP or WHEP endpoint, and [`PendingClientLeg::accept_answer`] turns the endpoint's answer
//! into the same [`WebRtcLeg`], this time a full ICE agent in the controlling role.
//!
//! Deliberately not here: sockets, threads, tasks or clocks (the `server` crate's media workers
//! own those); Opus coding, jitter buffering and mixing (`media` and `mixer`: the leg hands on
//! packets in arrival order and sends what it is given); video, data channels, simulcast, TURN,
//! trickle ICE, ICE restarts and renegotiation; WHIP/WHEP HTTP (the server's side of it and
//! the client's). The WebRTC stack underneath is
//! `str0m`, kept out of the public API so that it can be swapped (webrtc-rs's sans-IO `rtc` is
//! the alternative named in DEPENDENCIES.md).

#![warn(missing_docs)]

mod client;
mod config;
mod error;
mod event;
mod leg;
mod offer;

pub use client::{ClientRole, PendingClientLeg};
pub use config::WebRtcConfig;
pub use error::{SendError, WebRtcError};
pub use event::{AudioLevel, Datagram, LegStats, ReceivedAudio, WebRtcEvent};
pub use leg::{MAX_OPUS_PACKET, WebRtcLeg};

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod tests;
