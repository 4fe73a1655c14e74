//! What a leg hands back to its media worker: datagrams to send, events, counters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// One UDP datagram the media worker sends from the leg's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Where to send it: the browser's address ICE nominated (or the one a STUN check came from).
    pub destination: SocketAddr,
    /// The bytes: STUN, DTLS or SRTP/SRTCP, ready for the wire.
    pub payload: Vec<u8>,
}

/// RFC 6464 client-to-mixer audio level of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevel {
    /// Level in -dBov, 0 (loudest) to 127 (silence), as on the wire.
    pub minus_dbov: u8,
    /// The sender's voice activity flag (the V bit).
    pub voice: bool,
}

/// One Opus packet from the browser, in arrival order: not reordered and gaps not filled (the
/// jitter buffer downstream does both, from the sequence number and timestamp). str0m drops
/// exact duplicates and packets behind its receive window, which starts at the first packet
/// received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAudio {
    /// The Opus packet as the browser encoded it (SRTP removed, RTP header stripped). Shared,
    /// not copied: it is the buffer the WebRTC stack decrypted into.
    pub payload: Arc<[u8]>,
    /// The RTP timestamp at 48 kHz, as the browser sent it.
    pub rtp_timestamp: u32,
    /// The RTP sequence number, as the browser sent it.
    pub sequence_number: u16,
    /// The RFC 6464 level, when negotiated and present in this packet.
    pub audio_level: Option<AudioLevel>,
    /// When the datagram carrying it was handed to [`handle_input`](crate::WebRtcLeg::handle_input).
    pub received_at: Instant,
}

/// Something the media worker must act on, polled with
/// [`poll_event`](crate::WebRtcLeg::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebRtcEvent {
    /// ICE and the DTLS-SRTP handshake are done: audio flows both ways from now on. Also
    /// reported again when a leg that was [`Disconnected`](Self::Disconnected) hears the browser
    /// again.
    Connected,
    /// The browser's ICE consent checks stopped (for 15 s, str0m's ICE-lite limit) or never
    /// came: nothing reaches it. The worker normally ends the leg; if it keeps it, a browser that
    /// comes back yields [`Connected`](Self::Connected) again.
    Disconnected,
    /// The leg is over for good: the browser closed DTLS, or the WebRTC stack failed (the
    /// reason says which). Nothing further is sent or received.
    Closed {
        /// Why, for the call's log.
        reason: String,
    },
    /// One Opus packet from the browser.
    Audio(ReceivedAudio),
}

/// Counters for the leg's metrics and log line; nothing resets them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    /// Datagrams dropped before the WebRTC stack: not STUN/DTLS/RTP/RTCP, from an address ICE
    /// does not know, sent to another port, or arriving after the leg closed.
    pub ignored_datagrams: u64,
    /// Datagrams the WebRTC stack took but rejected (a broken DTLS record, say).
    pub rejected_datagrams: u64,
    /// Errors the stack reported while draining its output (an RTP payload it could not read).
    pub output_errors: u64,
    /// Opus packets delivered as [`WebRtcEvent::Audio`].
    pub audio_received: u64,
    /// Media the browser sent that is not the negotiated Opus (another m-line or payload type).
    pub foreign_media: u64,
    /// Opus frames handed to the stack by [`send_opus`](crate::WebRtcLeg::send_opus).
    pub audio_sent: u64,
    /// Events or datagrams dropped because the worker let its queue fill
    /// (see [`MAX_QUEUED`](crate::WebRtcLeg::MAX_QUEUED)).
    pub queue_overflows: u64,
}
