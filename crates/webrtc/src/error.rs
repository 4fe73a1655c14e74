//! What can go wrong answering an offer or sending audio, in terms of what the peer or the
//! caller did. str0m's own error types stay inside the crate; their text is carried along.

use std::net::SocketAddr;

/// Why an offer could not be answered. Each is the browser's (or the configuration's) doing,
/// so the HTTP layer can turn it into a 400 with this text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebRtcError {
    /// The offer is not SDP that can be read at all.
    #[error("the offer is not valid SDP: {reason}")]
    MalformedSdp {
        /// The parser's complaint.
        reason: String,
    },
    /// The offer has no audio m-line (or only rejected ones) to answer.
    #[error("the offer has no audio m-line to answer (it offers: {offered})")]
    NoAudio {
        /// The m-lines the offer has, e.g. `video (VP8, H264)`.
        offered: String,
    },
    /// The offer's audio does not include Opus 48000/2, the only codec a browser leg speaks.
    #[error(
        "the offer's audio has no Opus 48000/2, which every WebRTC browser offers \
         (it offers: {offered})"
    )]
    NoOpus {
        /// The m-lines the offer has, e.g. `audio (PCMU, PCMA)`.
        offered: String,
    },
    /// The SDP is readable but breaks an ICE or DTLS rule (no fingerprint, no ICE
    /// credentials, both sides ICE-lite, a DTLS role that cannot be answered, ...).
    #[error("the offer cannot be answered: {reason}")]
    Refused {
        /// What the WebRTC stack found wrong with it.
        reason: String,
    },
    /// The configured address cannot be a host candidate a browser could send to.
    #[error("cannot advertise {addr} as the ICE host candidate: {reason}")]
    UnusableAddress {
        /// The address that would have been advertised.
        addr: SocketAddr,
        /// Why it is unusable.
        reason: String,
    },
}

/// Why an Opus frame was not sent. None of these harm the leg: the caller drops the frame
/// (a room's mix goes on for the others) and tries the next one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// ICE and DTLS are not (or no longer) up, so there are no SRTP keys or no path yet.
    #[error("the browser leg is not connected")]
    NotConnected,
    /// The browser offered `sendonly` or `inactive` audio (WHIP ingest), so it takes none.
    #[error("the browser does not receive audio on this leg")]
    NotReceiving,
    /// The leg is closed or failed and will not carry media again.
    #[error("the browser leg is closed")]
    Closed,
    /// The payload is empty or larger than one Opus frame can be.
    #[error("an Opus packet of {len} bytes is not one 20 ms frame (1..={max} bytes)")]
    BadPayload {
        /// The payload length given.
        len: usize,
        /// The largest accepted.
        max: usize,
    },
    /// The WebRTC stack refused the frame (its send queue is full, or a state it reports).
    #[error("the frame was refused: {reason}")]
    Refused {
        /// The stack's reason.
        reason: String,
    },
}
