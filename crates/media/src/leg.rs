//! One call leg's media: everything between the leg's sockets and the 20 ms tick.
//!
//! [`MediaLeg`] is sans-IO. The caller hands it each datagram its sockets received, with the
//! arrival time, and learns what became of it ([`Inbound`]: buffered for playout, a key
//! press, a packet to relay to the connected leg, an RTCP report). Once per tick it decodes
//! a frame for a conference room ([`MediaLeg::decode`]), or makes the leg's own media
//! ([`MediaLeg::produce`]: silence, echo, a prompt), or sends what the room made for it
//! ([`MediaLeg::room_frame`]); the packet to send is written into the caller's buffer and a
//! [`Transmit`] says where it goes. The leg keeps the RTP sender and RTCP state, answers
//! where the peer's media really comes from (symmetric RTP, RFC 4961), sends key presses
//! as RFC 4733 events and notices a peer that fell silent.
//!
//! The caller owns the sockets, the clocks, the channels and the conference room: time comes
//! in as arguments, and nothing on the per-packet or per-frame path allocates or locks.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::codec::{CodecError, CodecKind, Encoder};
use crate::dtmf::{DtmfReceiver, DtmfSender};
use crate::dtx::DtxSender;
use crate::jitter::JitterStats;
use crate::receiver::AudioReceiver;
use crate::relay::RelayStream;
use crate::rtcp::{LegQuality, RtcpReceived, RtcpSession};
use crate::rtp::{RtpError, RtpPacketInfo, RtpSender, audio_level, is_rtcp, parse_rtp};
use crate::tone::{ToneGenerator, ToneSpec};
use crate::wav::PromptPlayer;

/// Largest datagram a leg takes or writes (Ethernet MTU).
pub const MAX_PACKET: usize = 1500;
/// Samples in the longest frame a leg makes (60 ms at 48 kHz).
pub const MAX_FRAME_SAMPLES: usize = 2880;
/// Key presses waiting to be sent at most (a stuck key must not grow memory).
const DTMF_QUEUE: usize = 32;
/// How long each key press we send lasts (RFC 4733 events; 100 ms is what phones send).
const DTMF_MS: u32 = 100;

/// What a leg sends when it is not in a conference room.
#[derive(Debug)]
pub enum MediaMode {
    /// Send silence (keeps NAT bindings and the peer's jitter buffer fed).
    Silence,
    /// Send back what the caller says (echo test).
    Echo,
    /// Play a prompt, then fall back to silence and report [`Finished::Prompt`].
    Play(PromptPlayer),
    /// Play music on hold over and over until the mode changes (nothing is reported: the
    /// other party's resume ends it, not the music).
    Music(PromptPlayer),
}

/// Where and how to exchange media with the peer, as the SDP offer/answer settled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Where to send RTP (`None` without an address, e.g. `a=inactive`).
    pub rtp: Option<SocketAddr>,
    /// Where to send RTCP (`a=rtcp` or RTP port + 1; unused with rtcp-mux).
    pub rtcp: Option<SocketAddr>,
    /// We may send (false while the peer holds the call).
    pub send: bool,
    /// The peer both sends and receives; otherwise (hold, listen-only) it may legitimately
    /// send no RTP, and the on-hold media timeout applies.
    pub active: bool,
}

/// How a leg is set up: the offer/answer's codec and addresses, and the server's timeouts.
#[derive(Debug, Clone)]
pub struct LegConfig<'a> {
    /// Negotiated codec.
    pub codec: CodecKind,
    /// Its payload type.
    pub payload_type: u8,
    /// RFC 4733 payload type, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Packetisation time.
    pub ptime_ms: u32,
    /// RTP header extension id of the peer's RFC 6464 audio level, if it sends one.
    pub audio_level_ext: Option<u8>,
    /// RTP and RTCP share the RTP port (RFC 5761).
    pub rtcp_mux: bool,
    /// Our RTCP CNAME (RFC 3550 §6.5.1: user@host).
    pub cname: &'a str,
    /// Where the peer's SDP said to send RTP, until its own packets say otherwise.
    pub remote: Option<SocketAddr>,
    /// Where the peer's SDP said to send RTCP, until its own reports say otherwise.
    pub remote_rtcp: Option<SocketAddr>,
    /// Whether we may send (false while the peer holds the call).
    pub send: bool,
    /// How long the peer may send no RTP before it counts as gone; `None` = never.
    pub media_timeout: Option<Duration>,
    /// The same while the peer holds the call or only listens.
    pub media_timeout_on_hold: Option<Duration>,
    /// The peer asked for discontinuous transmission (Opus `usedtx=1`): silence goes out as
    /// a packet every [`DTX_KEEPALIVE_MS`](crate::dtx::DTX_KEEPALIVE_MS), not every frame.
    pub dtx: bool,
}

/// The random starting points of a leg's streams (RFC 3550 §5.1: SSRC, first sequence
/// number and timestamp; §6.3.1: the RTCP report intervals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegSeeds {
    /// Our SSRC.
    pub ssrc: u32,
    /// Sequence number of our first packet.
    pub sequence: u16,
    /// RTP timestamp of our first frame.
    pub timestamp: u32,
    /// Seeds the randomised RTCP intervals.
    pub rtcp: u64,
}

/// Why a leg cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum LegError {
    /// The packetisation time gives no frame, or one longer than [`MAX_FRAME_SAMPLES`].
    #[error("unsupported ptime {0} ms")]
    UnsupportedPtime(u32),
    /// The codec could not be set up.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Which of the leg's ports a datagram leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegPort {
    /// The RTP port (RTCP too with rtcp-mux).
    Rtp,
    /// The RTCP port (RTP port + 1).
    Rtcp,
}

/// A datagram the leg wrote at the start of the caller's buffer, and where to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The port to send from.
    pub port: LegPort,
    /// The peer's address.
    pub to: SocketAddr,
    /// Bytes written.
    pub len: usize,
}

/// What a received datagram turned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Audio, now in the jitter buffer.
    Buffered,
    /// An RFC 4733 event packet; the key the first time its press is seen.
    KeyPress(Option<char>),
    /// The leg relays (see [`MediaLeg::start_relay`]): the packet was written into the relay
    /// buffer as the connected leg's next packet, to send as `transmit` says (`None` when
    /// that leg does not send now, took no RFC 4733 events, or the relay dropped it). A key
    /// press is reported here too, once.
    Relayed {
        /// Where the rewritten packet goes, from the connected leg's port.
        transmit: Option<Transmit>,
        /// The key the first time its press is seen.
        digit: Option<char>,
    },
    /// An RTCP report on the shared port (rtcp-mux), taken.
    Rtcp(RtcpReceived),
    /// RTCP on the RTP port of a leg that did not agree to rtcp-mux: not looked at.
    StrayRtcp,
}

/// The leg a relaying leg's packets go out on, and the buffer to write them into.
#[derive(Debug)]
pub struct RelayTarget<'a> {
    /// The connected leg (same codec).
    pub leg: &'a mut MediaLeg,
    /// Where the rewritten packet is written.
    pub out: &'a mut [u8],
}

/// Why a received datagram was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// Not a well-formed RTP packet.
    #[error("malformed RTP packet: {0}")]
    Malformed(RtpError),
    /// A payload type the offer/answer did not settle on.
    #[error("RTP payload type {0} was not negotiated")]
    UnknownPayloadType(u8),
    /// An RTCP datagram on the shared port (rtcp-mux) that is no report we understand.
    #[error("RTCP rejected: {0}")]
    Rtcp(RtpError),
}

/// What the leg's frame of this tick turned into (see [`MediaLeg::decode`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Heard<'a> {
    /// Samples in the `heard` buffer, and the payload if it was exactly one frame.
    Pcm(usize, Option<&'a [u8]>),
    /// Not decoded: the sender reported this level (dBov) and the room could not hear it.
    LevelOnly(f32),
    /// Samples of silence in the `heard` buffer: the sender pauses between talk spurts
    /// (silence suppression or DTX), which is not a loss.
    Pause(usize),
}

/// What a conference room made for this leg on this tick. This crate does not know the
/// mixer; the caller looks these up in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoomFrame<'a> {
    /// The encoded frame the room made for the leg, ready to send.
    pub payload: Option<&'a [u8]>,
    /// The same as PCM at the leg's sample rate, for a prompt to be mixed on top.
    pub pcm: Option<&'a [i16]>,
    /// The talker forwarded to this leg lost this tick's packet upstream: pass the loss on.
    pub lost_upstream: bool,
    /// The leg is alone in the room.
    pub alone: bool,
    /// `payload` is the room's silence frame: nothing to hear.
    pub silence: bool,
}

/// Something the leg played to its end on this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The prompt of [`MediaMode::Play`]; the leg sends silence now.
    Prompt,
    /// The sound set with [`MediaLeg::set_overlay`].
    Overlay,
}

/// What one tick's frame came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameOut {
    /// The packet to send, if the leg sends (it has an address and may send).
    pub transmit: Option<Transmit>,
    /// A prompt or overlay that ended.
    pub finished: Option<Finished>,
}

/// What a look at the RTCP schedule came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPoll {
    /// No report due, or the call is not answered yet.
    NotDue,
    /// A report is in the buffer, to send as the [`Transmit`] says; `None` when the peer
    /// gave no address to send it to. The leg's [`quality`](MediaLeg::quality) moved on.
    Written(Option<Transmit>),
}

/// The peer sent nothing for longer than the configured timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaTimeout {
    /// The peer held the call (the on-hold timeout applied).
    pub held: bool,
    /// The timeout that ran out.
    pub silent_for: Duration,
}

/// Why a key press is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefused {
    /// The peer negotiated no RFC 4733 events.
    #[error("the peer takes no RFC 4733 events")]
    NoTelephoneEvents,
    /// The leg relays the connected leg's packets, its key presses included.
    #[error("the leg relays the other leg's key presses")]
    Relaying,
    /// Too many key presses are waiting already.
    #[error("too many key presses waiting")]
    QueueFull,
}

/// Sample and payload buffers a leg works in while it makes a frame: one set per caller,
/// reused for every leg, so legs stay small and nothing is allocated per frame.
#[derive(Debug, Clone)]
pub struct FrameScratch {
    heard: [i16; MAX_FRAME_SAMPLES],
    pcm: [i16; MAX_FRAME_SAMPLES],
    overlay: [i16; MAX_FRAME_SAMPLES],
    payload: [u8; MAX_PACKET],
}

impl FrameScratch {
    /// Zeroed buffers.
    pub fn new() -> Self {
        Self {
            heard: [0; MAX_FRAME_SAMPLES],
            pcm: [0; MAX_FRAME_SAMPLES],
            overlay: [0; MAX_FRAME_SAMPLES],
            payload: [0; MAX_PACKET],
        }
    }

    /// The first `n` samples of what the peer said in the frame last made by
    /// [`MediaLeg::produce`] (at the leg's codec rate): what a voicemail records.
    pub fn heard(&self, n: usize) -> &[i16] {
        &self.heard[..n.min(MAX_FRAME_SAMPLES)]
    }
}

impl Default for FrameScratch {
    fn default() -> Self {
        Self::new()
    }
}

/// One call leg's media state: codec, jitter buffer, RTP and RTCP, DTMF both ways, the
/// peer's addresses, and what the leg plays.
#[derive(Debug)]
pub struct MediaLeg {
    codec: CodecKind,
    payload_type: u8,
    telephone_event_pt: Option<u8>,
    ptime_ms: u32,
    audio_level_ext: Option<u8>,
    samples_per_frame: usize,
    rtp_ticks_per_frame: u32,
    /// The peer's audio: jitter buffer and decoder.
    receiver: AudioReceiver,
    encoder: Encoder,
    dtmf_in: DtmfReceiver,
    /// The key press being sent, with the timestamp it started at (all its packets carry
    /// it, RFC 4733 §2.5.1.2).
    dtmf_out: Option<(DtmfSender, u32)>,
    /// Key presses waiting, oldest first; capacity reserved at construction.
    dtmf_queue: VecDeque<char>,
    sender: RtpSender,
    rtcp: RtcpSession,
    /// Where RTP goes: the SDP's address, then where the peer's RTP comes from.
    remote: Option<SocketAddr>,
    /// Where RTCP goes without rtcp-mux: the SDP's address, then where reports come from.
    remote_rtcp: Option<SocketAddr>,
    rtcp_mux: bool,
    /// We may send (the peer does not hold the call).
    send: bool,
    /// Media was agreed: RTCP goes out from then on, hold or not.
    answered: bool,
    /// The peer sends and receives: the normal media timeout applies.
    peer_active: bool,
    media_timeout: Option<Duration>,
    media_timeout_on_hold: Option<Duration>,
    /// When the peer was last heard (RTP; on hold RTCP too), or the media last changed.
    last_heard: Instant,
    /// The media timeout was reported (once is enough: the call ends).
    timed_out: bool,
    /// The peer's packets go out on the connected leg, rewritten as its stream.
    relay: Option<RelayStream>,
    mode: MediaMode,
    /// A prompt or beep heard on top of the conference mix.
    overlay: Option<PromptPlayer>,
    /// Soft tone heard while alone in a room (made on joining, so frames never allocate).
    alone_tone: Option<ToneGenerator>,
    /// Discontinuous transmission, for a peer that asked for it.
    dtx: Option<DtxSender>,
}

impl MediaLeg {
    /// A leg as `config` sets it up, its streams starting from `seeds`, at `now`; it sends
    /// silence until told otherwise.
    pub fn new(config: &LegConfig<'_>, seeds: LegSeeds, now: Instant) -> Result<Self, LegError> {
        let codec = config.codec;
        let receiver = AudioReceiver::new(codec, config.ptime_ms)?;
        let samples_per_frame = receiver.samples_per_frame();
        let sender = RtpSender::new(seeds.ssrc, seeds.sequence, seeds.timestamp);
        let rtcp = RtcpSession::new(
            sender.ssrc,
            config.cname,
            codec.clock_rate(),
            session_bandwidth(codec, config.ptime_ms),
            seeds.rtcp,
            now,
        );
        Ok(Self {
            codec,
            payload_type: config.payload_type,
            telephone_event_pt: config.telephone_event_pt,
            ptime_ms: config.ptime_ms,
            audio_level_ext: config.audio_level_ext,
            samples_per_frame,
            rtp_ticks_per_frame: codec.clock_rate() * config.ptime_ms / 1000,
            receiver,
            encoder: Encoder::new(codec)?,
            dtmf_in: DtmfReceiver::new(),
            dtmf_out: None,
            dtmf_queue: VecDeque::with_capacity(DTMF_QUEUE),
            sender,
            rtcp,
            remote: config.remote,
            remote_rtcp: config.remote_rtcp,
            rtcp_mux: config.rtcp_mux,
            send: config.send,
            answered: false,
            peer_active: false,
            media_timeout: config.media_timeout,
            media_timeout_on_hold: config.media_timeout_on_hold,
            last_heard: now,
            timed_out: false,
            relay: None,
            mode: MediaMode::Silence,
            overlay: None,
            alone_tone: None,
            dtx: config.dtx.then(|| DtxSender::new(config.ptime_ms)),
        })
    }

    /// Samples in one frame at the codec's rate.
    pub fn samples_per_frame(&self) -> usize {
        self.samples_per_frame
    }

    /// The negotiated codec.
    pub fn codec(&self) -> CodecKind {
        self.codec
    }

    /// Its payload type.
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// The RFC 4733 payload type, if negotiated.
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.telephone_event_pt
    }

    /// RTP and RTCP share the RTP port: there is no RTCP port to read.
    pub fn rtcp_mux(&self) -> bool {
        self.rtcp_mux
    }

    /// Where RTP goes now.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// Where RTCP goes now without rtcp-mux.
    pub fn remote_rtcp(&self) -> Option<SocketAddr> {
        self.remote_rtcp
    }

    /// The media agreed by an answer or a re-INVITE, at `now`. Silence before an answer or
    /// a resume is not the peer's fault, so the media timeout starts over.
    pub fn set_remote(&mut self, remote: RemoteMedia, now: Instant) {
        self.remote = remote.rtp;
        self.send = remote.send;
        self.peer_active = remote.active;
        self.answered = true;
        // Without `a=rtcp` the address learnt from the peer's reports stays, unless the
        // peer took its RTP address away too.
        if remote.rtcp.is_some() || remote.rtp.is_none() {
            self.remote_rtcp = remote.rtcp;
        }
        self.last_heard = now;
    }

    /// What the leg sends outside a conference room from the next frame on.
    pub fn set_mode(&mut self, mode: MediaMode) {
        self.mode = mode;
    }

    /// Plays `player` on top of the room's mix (heard only in a room).
    pub fn set_overlay(&mut self, player: PromptPlayer) {
        self.overlay = Some(player);
    }

    /// The leg is in a conference room now: it sends what the room makes for it, with the
    /// alone tone while nobody else is there.
    pub fn join_room(&mut self) {
        self.mode = MediaMode::Silence;
        // A soft 440 Hz chime, 0.4 s every 4 s, at -32 dBFS: "you are connected".
        self.alone_tone = Some(ToneGenerator::new(
            self.codec.sample_rate(),
            ToneSpec::single(440.0, -32.0).with_cadence(400, 3600),
        ));
    }

    /// The leg left its conference room: overlay and alone tone end with it.
    pub fn leave_room(&mut self) {
        self.overlay = None;
        self.alone_tone = None;
    }

    /// From now on the peer's packets go out on the connected leg (which shares the codec)
    /// as they come: [`receive`](Self::receive) writes them for the [`RelayTarget`] it is
    /// given and reports [`Inbound::Relayed`] instead of buffering them.
    pub fn start_relay(&mut self) {
        self.relay = Some(RelayStream::new(self.codec.clock_rate()));
    }

    /// The connected leg is gone: the peer's packets are buffered again.
    pub fn stop_relay(&mut self) {
        self.relay = None;
    }

    /// Whether the leg relays the peer's packets to a connected leg.
    pub fn relaying(&self) -> bool {
        self.relay.is_some()
    }

    /// Queues a key press to send to the peer as RFC 4733 events.
    pub fn queue_dtmf(&mut self, digit: char) -> Result<(), KeyRefused> {
        if self.telephone_event_pt.is_none() {
            return Err(KeyRefused::NoTelephoneEvents);
        }
        if self.relay.is_some() {
            return Err(KeyRefused::Relaying);
        }
        if self.dtmf_queue.len() >= DTMF_QUEUE {
            return Err(KeyRefused::QueueFull);
        }
        self.dtmf_queue.push_back(digit);
        Ok(())
    }

    /// Takes a datagram from the RTP port that came from `from` at `arrival` (`arrival_ntp`
    /// on the wall clock, for RTCP on a shared port). While the leg relays, the peer's RTP
    /// goes out on `relay` (dropped without one).
    // Inlined (as are the per-frame methods) so the worker's match on the outcome fuses
    // with building it: callgrind counted 3 to 84 fewer instructions per packet or frame
    // than out-of-line calls from the server crate. The relayed packet is written here, not
    // handed back, for the same reason.
    #[inline]
    pub fn receive(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        arrival: Instant,
        arrival_ntp: u64,
        relay: Option<RelayTarget<'_>>,
    ) -> Result<Inbound, InboundError> {
        if is_rtcp(datagram) {
            if !self.rtcp_mux {
                return Ok(Inbound::StrayRtcp);
            }
            return self
                .receive_rtcp(datagram, from, arrival, arrival_ntp)
                .map(Inbound::Rtcp)
                .map_err(InboundError::Rtcp);
        }
        let rtp = parse_rtp(datagram).map_err(InboundError::Malformed)?;
        self.last_heard = arrival;
        self.rtcp
            .on_rtp(rtp.ssrc, rtp.sequence, rtp.timestamp, arrival);
        if Some(rtp.payload_type) == self.telephone_event_pt {
            let digit = self.dtmf_in.push(rtp.timestamp, rtp.payload);
            if self.relay.is_some() {
                let transmit = relay.and_then(|to| self.relay_to(to, &rtp, true));
                return Ok(Inbound::Relayed { transmit, digit });
            }
            return Ok(Inbound::KeyPress(digit));
        }
        if rtp.payload_type != self.payload_type {
            return Err(InboundError::UnknownPayloadType(rtp.payload_type));
        }
        // Symmetric RTP (RFC 4961): answer to where the media really comes from, which is
        // what gets audio through NAT and VPN concentrators. Not while the peer holds the
        // call: its SDP may point somewhere else on purpose.
        if self.remote != Some(from) && self.send {
            self.remote = Some(from);
        }
        if self.relay.is_some() {
            let transmit = relay.and_then(|to| self.relay_to(to, &rtp, false));
            return Ok(Inbound::Relayed {
                transmit,
                digit: None,
            });
        }
        let level = self
            .audio_level_ext
            .and_then(|id| audio_level(&rtp, id))
            .map(|l| l.dbov);
        self.receiver
            .push(rtp.sequence, rtp.timestamp, rtp.payload, level, arrival);
        Ok(Inbound::Buffered)
    }

    /// Takes an RTCP datagram from the RTCP port (or the shared one) that came from `from`
    /// at `arrival` (`arrival_ntp` on the wall clock, for the round-trip time).
    pub fn receive_rtcp(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        arrival: Instant,
        arrival_ntp: u64,
    ) -> Result<RtcpReceived, RtpError> {
        let received = self.rtcp.on_rtcp(datagram, arrival, arrival_ntp)?;
        // Symmetric RTCP (RFC 4961), as for RTP: answer where reports come from.
        if !self.rtcp_mux && self.send {
            self.remote_rtcp = Some(from);
        }
        // A held phone that still reports is alive.
        if !self.peer_active {
            self.last_heard = arrival;
        }
        Ok(received)
    }

    /// Writes `packet` from our peer into `target.out` as the next packet of the connected
    /// leg's stream (see [`RelayStream`]); `None` when that leg does not send now, took no
    /// RFC 4733 events, or the relay drops the packet.
    #[inline]
    fn relay_to(
        &mut self,
        target: RelayTarget<'_>,
        packet: &RtpPacketInfo<'_>,
        key_press: bool,
    ) -> Option<Transmit> {
        let RelayTarget { leg: peer, out } = target;
        let stream = self.relay.as_mut()?;
        let payload_type = if key_press {
            peer.telephone_event_pt?
        } else {
            peer.payload_type
        };
        let to = peer.remote.filter(|_| peer.send)?;
        let ticks = peer.rtp_ticks_per_frame;
        let len = stream
            .forward(packet, payload_type, ticks, &mut peer.sender, out)
            .ok()??;
        Some(Transmit {
            port: LegPort::Rtp,
            to,
            len,
        })
    }

    /// Decodes this tick's frame of the peer's audio into `heard`, as
    /// [`AudioReceiver::decode`] does.
    #[inline]
    pub fn decode(
        &mut self,
        now: Instant,
        heard: &mut [i16],
        skip_decode: impl FnOnce(f32) -> bool,
    ) -> Heard<'_> {
        self.receiver.decode(now, heard, skip_decode)
    }

    /// This tick's frame outside a room: decodes what the peer sent (the echo needs it),
    /// makes silence, the echo or the prompt, and writes it as the next RTP packet into
    /// `out`.
    #[inline]
    pub fn produce(
        &mut self,
        now: Instant,
        scratch: &mut FrameScratch,
        out: &mut [u8],
    ) -> FrameOut {
        let n = self.samples_per_frame;
        if let Heard::LevelOnly(_) = self.decode(now, &mut scratch.heard, |_| false) {
            return FrameOut::default();
        }
        if matches!(self.mode, MediaMode::Silence) && self.leave_out_silent_frame() {
            return FrameOut::default();
        }
        let pcm = &mut scratch.pcm[..n];
        let mut finished = None;
        match &mut self.mode {
            MediaMode::Silence => pcm.fill(0),
            MediaMode::Echo => pcm.copy_from_slice(&scratch.heard[..n]),
            MediaMode::Play(player) => {
                if !player.fill(pcm) {
                    self.mode = MediaMode::Silence;
                    finished = Some(Finished::Prompt);
                }
            }
            MediaMode::Music(player) => {
                // The frame that ran past the end is silence: start over at once, so the
                // loop has no gap longer than the resampler's tail.
                if !player.fill(pcm) {
                    player.rewind();
                    player.fill(pcm);
                }
            }
        }
        if !matches!(self.mode, MediaMode::Silence) || finished.is_some() {
            self.sound_frame();
        }
        FrameOut {
            transmit: self.encode_and_write(&scratch.pcm[..n], &mut scratch.payload, out),
            finished,
        }
    }

    /// This tick's frame in a room: what the room made for the leg, or the room's mix with
    /// the overlay or the alone tone on top (encoded with the leg's own encoder while that
    /// lasts).
    #[inline]
    pub fn room_frame(
        &mut self,
        room: RoomFrame<'_>,
        scratch: &mut FrameScratch,
        out: &mut [u8],
    ) -> FrameOut {
        let n = self.samples_per_frame;
        let quiet =
            room.silence && self.overlay.is_none() && !(room.alone && self.alone_tone.is_some());
        if quiet {
            if self.leave_out_silent_frame() {
                return FrameOut::default();
            }
        } else {
            self.sound_frame();
        }
        if let Some(overlay) = self.overlay.as_mut() {
            let pcm = &mut scratch.pcm[..n];
            let extra = &mut scratch.overlay[..n];
            let playing = overlay.fill(extra);
            match room.pcm {
                Some(mix) if mix.len() == n => pcm.copy_from_slice(mix),
                _ => pcm.fill(0),
            }
            for (out, add) in pcm.iter_mut().zip(extra.iter()) {
                *out = out.saturating_add(*add);
            }
            let finished = if playing {
                None
            } else {
                self.overlay = None;
                Some(Finished::Overlay)
            };
            let transmit = self.encode_and_write(&scratch.pcm[..n], &mut scratch.payload, out);
            FrameOut { transmit, finished }
        } else if let (true, Some(tone)) = (room.alone, self.alone_tone.as_mut()) {
            tone.fill(&mut scratch.pcm[..n]);
            FrameOut {
                transmit: self.encode_and_write(&scratch.pcm[..n], &mut scratch.payload, out),
                finished: None,
            }
        } else if let Some(payload) = room.payload {
            FrameOut {
                transmit: self.write_payload(payload, out),
                finished: None,
            }
        } else {
            if room.lost_upstream {
                // The forwarded talker's packet was lost: the far end sees the gap and
                // conceals it (or recovers it from the next packet's FEC).
                self.sender.skip_lost(self.rtp_ticks_per_frame);
            }
            FrameOut::default()
        }
    }

    /// Writes the RTCP report into `out` when one is due at `now` (`now_ntp` on the wall
    /// clock). Both checks are one comparison unless a report is due.
    pub fn poll_rtcp(
        &mut self,
        now: Instant,
        now_ntp: u64,
        out: &mut [u8],
    ) -> Result<RtcpPoll, RtpError> {
        if !self.answered || now < self.rtcp.next_report() {
            return Ok(RtcpPoll::NotDue);
        }
        match self.rtcp.poll_report(now, now_ntp, &self.sender, out) {
            None => Ok(RtcpPoll::NotDue),
            Some(Ok(len)) => Ok(RtcpPoll::Written(self.rtcp_transmit(len))),
            Some(Err(err)) => Err(err),
        }
    }

    /// Reports, once, that the peer has been silent at `now` for longer than the timeout
    /// that applies (the on-hold one while the peer holds the call or only listens).
    pub fn poll_media_timeout(&mut self, now: Instant) -> Option<MediaTimeout> {
        let held = !self.peer_active;
        let timeout = if held {
            self.media_timeout_on_hold
        } else {
            self.media_timeout
        }?;
        if self.timed_out || now.saturating_duration_since(self.last_heard) < timeout {
            return None;
        }
        self.timed_out = true;
        Some(MediaTimeout {
            held,
            silent_for: timeout,
        })
    }

    /// The leg ends: writes its last RTCP compound, a report with BYE (RFC 3550 §6.6), into
    /// `out`; `None` when there is no address to send it to.
    pub fn bye(
        &mut self,
        now: Instant,
        now_ntp: u64,
        out: &mut [u8],
    ) -> Result<Option<Transmit>, RtpError> {
        let len = self.rtcp.write_bye(now, now_ntp, &self.sender, out)?;
        Ok(self.rtcp_transmit(len))
    }

    /// What the jitter buffer did with the peer's stream: late packets, concealed frames and
    /// the delay it plays at.
    pub fn jitter_stats(&self) -> JitterStats {
        self.receiver.stats()
    }

    /// Where the leg's quality stands: our statistics of the peer's stream, and its of ours.
    pub fn quality(&self) -> LegQuality {
        self.rtcp.quality(&self.sender)
    }

    /// Where an RTCP compound of `len` bytes goes: on the RTP port with rtcp-mux, else from
    /// the RTCP port. Nowhere while the peer holds the call without an address.
    fn rtcp_transmit(&self, len: usize) -> Option<Transmit> {
        let (port, to) = if self.rtcp_mux {
            (LegPort::Rtp, self.remote?)
        } else {
            (LegPort::Rtcp, self.remote_rtcp?)
        };
        Some(Transmit { port, to, len })
    }

    #[inline]
    fn encode_and_write(
        &mut self,
        pcm: &[i16],
        payload: &mut [u8],
        out: &mut [u8],
    ) -> Option<Transmit> {
        // Not sending, not encoding: an encode is the dearest part of a frame.
        if self.remote.is_none() || !self.send {
            return None;
        }
        let len = self.encoder.encode(pcm, payload).ok()?;
        self.write_payload(&payload[..len], out)
    }

    /// Writes `payload` as the next RTP packet, unless a key press is being sent: its event
    /// packet takes the frame's place.
    #[inline]
    fn write_payload(&mut self, payload: &[u8], out: &mut [u8]) -> Option<Transmit> {
        let to = self.remote.filter(|_| self.send)?;
        let len = if self.dtmf_out.is_some() || !self.dtmf_queue.is_empty() {
            match self.write_key_press(out) {
                Some(written) => written.ok()?,
                None => self.write_audio(payload, out)?,
            }
        } else {
            self.write_audio(payload, out)?
        };
        Some(Transmit {
            port: LegPort::Rtp,
            to,
            len,
        })
    }

    fn write_audio(&mut self, payload: &[u8], out: &mut [u8]) -> Option<usize> {
        let marker = self.dtx.as_mut().is_some_and(DtxSender::take_marker);
        self.sender
            .write(
                out,
                self.payload_type,
                marker,
                payload,
                self.rtp_ticks_per_frame,
            )
            .ok()
    }

    /// Whether this silent frame is left out (the peer asked for DTX): if so, the RTP
    /// timestamp moves on without a packet. A key press being sent is never left out, and
    /// nothing is while we do not send at all.
    fn leave_out_silent_frame(&mut self) -> bool {
        let sending = self.remote.is_some() && self.send;
        let keying = self.dtmf_out.is_some() || !self.dtmf_queue.is_empty();
        let Some(dtx) = self.dtx.as_mut().filter(|_| sending && !keying) else {
            return false;
        };
        if dtx.silent_frame() {
            return false;
        }
        self.sender.skip(self.rtp_ticks_per_frame);
        true
    }

    fn sound_frame(&mut self) {
        if let Some(dtx) = self.dtx.as_mut() {
            dtx.sound_frame();
        }
    }

    /// This frame's RFC 4733 packet, if a key press is being sent: it replaces the audio
    /// frame (RFC 4733 §2.5.1.2), carries the event's start timestamp, and the audio
    /// timeline goes on underneath. `None` when no key press is being sent.
    fn write_key_press(&mut self, out: &mut [u8]) -> Option<Result<usize, RtpError>> {
        let pt = self.telephone_event_pt?;
        if self.dtmf_out.is_none() {
            let digit = self.dtmf_queue.pop_front()?;
            let rate = self.codec.clock_rate();
            self.dtmf_out = DtmfSender::new(digit, DTMF_MS, rate, self.ptime_ms)
                .map(|sender| (sender, self.sender.ts));
        }
        let (events, start) = self.dtmf_out.as_mut()?;
        let Some(event) = events.next() else {
            self.dtmf_out = None;
            return None;
        };
        let frame_end = self.sender.ts.wrapping_add(self.rtp_ticks_per_frame);
        self.sender.ts = *start;
        let written = self.sender.write(out, pt, event.marker, &event.payload, 0);
        self.sender.ts = frame_end;
        Some(written)
    }
}

/// RTP session bandwidth in bit/s (RFC 3550 §6.2: the senders' nominal bandwidths summed):
/// two senders, each the codec's rate plus IPv4/UDP/RTP headers per packet.
fn session_bandwidth(codec: CodecKind, ptime_ms: u32) -> u32 {
    let payload = match codec {
        CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => 64_000,
        // Opus as telephones and browsers send it for speech.
        CodecKind::Opus => 32_000,
    };
    let packets_per_second = 1000 / ptime_ms.max(1);
    2 * (payload + packets_per_second * 40 * 8)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::g711::ulaw_decode;
    use crate::rtp::{build_receiver_report, parse_rtcp_report, write_rtp};

    const SEEDS: LegSeeds = LegSeeds {
        ssrc: 0x1234_5678,
        sequence: 100,
        timestamp: 1000,
        rtcp: 7,
    };
    const PEER_SSRC: u32 = 0xABCD_0001;
    const PCMU: u8 = 0;
    const EVENTS: u8 = 101;
    const FRAME: Duration = Duration::from_millis(20);

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    /// Where the peer's SDP says to send.
    fn sdp_rtp() -> SocketAddr {
        addr("192.0.2.10:4000")
    }

    fn sdp_rtcp() -> SocketAddr {
        addr("192.0.2.10:4001")
    }

    /// Where the peer's packets really come from (behind NAT).
    fn nat() -> SocketAddr {
        addr("198.51.100.7:31000")
    }

    fn config() -> LegConfig<'static> {
        LegConfig {
            codec: CodecKind::Pcmu,
            payload_type: PCMU,
            telephone_event_pt: Some(EVENTS),
            ptime_ms: 20,
            audio_level_ext: None,
            rtcp_mux: false,
            cname: "leg@test",
            remote: Some(sdp_rtp()),
            remote_rtcp: Some(sdp_rtcp()),
            send: true,
            media_timeout: Some(Duration::from_secs(10)),
            media_timeout_on_hold: Some(Duration::from_secs(60)),
            dtx: false,
        }
    }

    fn leg_with(config: &LegConfig<'_>) -> (MediaLeg, Instant) {
        let t0 = Instant::now();
        (MediaLeg::new(config, SEEDS, t0).expect("valid config"), t0)
    }

    /// A leg whose call was answered at `t0`, the peer sending and receiving.
    fn answered() -> (MediaLeg, Instant) {
        let (mut leg, t0) = leg_with(&config());
        leg.set_remote(remote(true, true), t0);
        (leg, t0)
    }

    fn remote(send: bool, active: bool) -> RemoteMedia {
        RemoteMedia {
            rtp: Some(sdp_rtp()),
            rtcp: Some(sdp_rtcp()),
            send,
            active,
        }
    }

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 12 + payload.len()];
        let n = write_rtp(&mut buf, pt, false, seq, ts, PEER_SSRC, payload).expect("fits");
        buf.truncate(n);
        buf
    }

    /// An RFC 4733 packet for `event` that started at `ts`, `duration` long so far.
    fn key(event: u8, ts: u32, duration: u16, end: bool) -> Vec<u8> {
        let [d0, d1] = duration.to_be_bytes();
        let flags = if end { 0x80 | 10 } else { 10 };
        // Numbered by its duration, so packets of a press follow each other.
        rtp(EVENTS, duration / 160, ts, &[event, flags, d0, d1])
    }

    fn receiver_report() -> Vec<u8> {
        let mut buf = vec![0u8; 64];
        let n = build_receiver_report(&mut buf, PEER_SSRC, &[]).expect("fits");
        buf.truncate(n);
        buf
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// The leg's own frame at `now`, parsed: (payload type, marker, seq, ts, payload).
    fn sent_frame(
        leg: &mut MediaLeg,
        now: Instant,
        scratch: &mut FrameScratch,
    ) -> (Transmit, u8, bool, u16, u32, Vec<u8>) {
        let mut out = [0u8; MAX_PACKET];
        let transmit = leg
            .produce(now, scratch, &mut out)
            .transmit
            .expect("a packet");
        let p = parse_rtp(&out[..transmit.len]).expect("valid RTP");
        assert_eq!(p.ssrc, SEEDS.ssrc);
        (
            transmit,
            p.payload_type,
            p.marker,
            p.sequence,
            p.timestamp,
            p.payload.to_vec(),
        )
    }

    #[test]
    fn a_pcmu_packet_comes_out_decoded_after_the_jitter_delay() {
        let (mut leg, t0) = answered();
        let mut heard = [1i16; MAX_FRAME_SAMPLES];
        let first = rtp(PCMU, 1, 0, &[0x00; 160]);
        assert_eq!(
            leg.receive(&first, nat(), t0, 0, None),
            Ok(Inbound::Buffered)
        );
        // The buffer waits out its minimum delay: this tick plays silence.
        assert_eq!(leg.decode(t0, &mut heard, |_| false), Heard::Pcm(160, None));
        assert!(heard[..160].iter().all(|s| *s == 0));
        let second = rtp(PCMU, 2, 160, &[0xFF; 160]);
        assert_eq!(
            leg.receive(&second, nat(), at(t0, 20), 0, None),
            Ok(Inbound::Buffered)
        );
        assert_eq!(
            leg.decode(at(t0, 20), &mut heard, |_| false),
            Heard::Pcm(160, Some(&[0x00; 160][..]))
        );
        assert!(heard[..160].iter().all(|s| *s == ulaw_decode(0x00)));
        assert_ne!(ulaw_decode(0x00), 0);
    }

    #[test]
    fn frames_go_out_as_rtp_with_rising_sequence_and_timestamp() {
        let (mut leg, t0) = answered();
        let mut scratch = FrameScratch::new();
        for k in 0..3u16 {
            let (transmit, pt, marker, seq, ts, payload) =
                sent_frame(&mut leg, at(t0, 20 * u64::from(k)), &mut scratch);
            assert_eq!(transmit.port, LegPort::Rtp);
            assert_eq!(transmit.to, sdp_rtp());
            assert_eq!((pt, marker), (PCMU, false));
            assert_eq!(seq, SEEDS.sequence + k);
            assert_eq!(ts, SEEDS.timestamp + 160 * u32::from(k));
            // µ-law silence.
            assert_eq!(payload, vec![0xFF; 160]);
        }
        assert_eq!(leg.quality().packets_sent, 3);
    }

    #[test]
    fn a_leg_that_may_not_send_sends_nothing() {
        let (mut leg, t0) = leg_with(&config());
        leg.set_remote(remote(false, false), t0);
        let mut out = [0u8; MAX_PACKET];
        let frame = leg.produce(t0, &mut FrameScratch::new(), &mut out);
        assert_eq!(frame, FrameOut::default());
    }

    #[test]
    fn echo_sends_back_what_the_peer_said() {
        let (mut leg, t0) = answered();
        leg.set_mode(MediaMode::Echo);
        let mut scratch = FrameScratch::new();
        leg.receive(&rtp(PCMU, 1, 0, &[0x10; 160]), nat(), t0, 0, None)
            .expect("taken");
        sent_frame(&mut leg, t0, &mut scratch);
        leg.receive(&rtp(PCMU, 2, 160, &[0x20; 160]), nat(), at(t0, 20), 0, None)
            .expect("taken");
        let (.., payload) = sent_frame(&mut leg, at(t0, 20), &mut scratch);
        assert_eq!(payload, vec![0x10; 160]);
    }

    #[test]
    fn a_prompt_plays_then_the_leg_falls_silent_and_says_so_once() {
        let (mut leg, t0) = answered();
        // 30 ms of prompt at 16 kHz: two frames of it at 8 kHz (the second partly).
        let prompt: Arc<[i16]> = vec![8000i16; 480].into();
        leg.set_mode(MediaMode::Play(
            PromptPlayer::new(prompt, 8000).expect("rate"),
        ));
        let mut scratch = FrameScratch::new();
        let mut out = [0u8; MAX_PACKET];
        let finished: Vec<_> = (0..5)
            .map(|k| leg.produce(at(t0, 20 * k), &mut scratch, &mut out).finished)
            .collect();
        assert_eq!(
            finished,
            [None, None, Some(Finished::Prompt), None, None],
            "the prompt's last frame, then silence"
        );
    }

    #[test]
    fn music_on_hold_starts_over_at_its_end_and_never_reports_an_end() {
        let (mut leg, t0) = answered();
        // 30 ms of music at 16 kHz: it runs out within every second frame at 8 kHz.
        let music: Arc<[i16]> = vec![8000i16; 480].into();
        leg.set_mode(MediaMode::Music(
            PromptPlayer::new(music, 8000).expect("rate"),
        ));
        let mut scratch = FrameScratch::new();
        let mut out = [0u8; MAX_PACKET];
        for k in 0..10 {
            let frame = leg.produce(at(t0, 20 * k), &mut scratch, &mut out);
            assert_eq!(frame.finished, None, "frame {k}");
            let transmit = frame.transmit.expect("a packet every frame");
            let packet = parse_rtp(&out[..transmit.len]).expect("valid RTP");
            // PCMU of silence is 0xFF throughout; the music is never silent for a frame.
            assert!(
                packet.payload.iter().any(|&b| b != 0xFF),
                "frame {k} is silence: the music did not start over"
            );
        }
    }

    #[test]
    fn rtp_from_another_address_becomes_where_we_send() {
        let (mut leg, t0) = answered();
        leg.receive(&rtp(PCMU, 1, 0, &[0xFF; 160]), nat(), t0, 0, None)
            .expect("taken");
        assert_eq!(leg.remote(), Some(nat()));
        let (transmit, ..) = sent_frame(&mut leg, t0, &mut FrameScratch::new());
        assert_eq!(transmit.to, nat());
        leg.receive_rtcp(&receiver_report(), addr("198.51.100.7:31001"), t0, 0)
            .expect("a report");
        assert_eq!(leg.remote_rtcp(), Some(addr("198.51.100.7:31001")));
    }

    #[test]
    fn a_leg_on_hold_does_not_learn_addresses() {
        let (mut leg, t0) = leg_with(&config());
        leg.set_remote(remote(false, false), t0);
        leg.receive(&rtp(PCMU, 1, 0, &[0xFF; 160]), nat(), t0, 0, None)
            .expect("taken");
        leg.receive_rtcp(&receiver_report(), nat(), t0, 0)
            .expect("a report");
        assert_eq!(leg.remote(), Some(sdp_rtp()));
        assert_eq!(leg.remote_rtcp(), Some(sdp_rtcp()));
    }

    #[test]
    fn a_key_press_is_reported_once() {
        let (mut leg, t0) = answered();
        let packets = [
            key(5, 8000, 160, false),
            key(5, 8000, 320, false),
            key(5, 8000, 480, true),
            key(5, 8000, 480, true),
            key(5, 8000, 480, true),
            key(11, 9600, 160, false),
        ];
        let digits: Vec<_> = packets
            .iter()
            .map(|p| leg.receive(p, nat(), t0, 0, None))
            .collect();
        let none = Ok(Inbound::KeyPress(None));
        assert_eq!(
            digits,
            [
                Ok(Inbound::KeyPress(Some('5'))),
                none.clone(),
                none.clone(),
                none.clone(),
                none,
                Ok(Inbound::KeyPress(Some('#'))),
            ]
        );
    }

    #[test]
    fn a_queued_key_replaces_audio_frames_with_events_stamped_at_its_start() {
        let (mut leg, t0) = answered();
        let mut scratch = FrameScratch::new();
        let (.., ts0, _) = sent_frame(&mut leg, t0, &mut scratch);
        assert_eq!(leg.queue_dtmf('1'), Ok(()));
        let start = ts0 + 160;
        // 100 ms at 20 ms a packet, the last (end) packet sent three times.
        for k in 0..7u16 {
            let (_, pt, marker, seq, ts, payload) =
                sent_frame(&mut leg, at(t0, 20 + 20 * u64::from(k)), &mut scratch);
            assert_eq!((pt, marker, ts), (EVENTS, k == 0, start), "packet {k}");
            assert_eq!(seq, SEEDS.sequence + 1 + k);
            assert_eq!(payload[0], 1, "event 1");
            assert_eq!(payload[1] & 0x80 != 0, k >= 4, "end bit of packet {k}");
        }
        // Audio goes on where its timeline went underneath.
        let (_, pt, _, seq, ts, _) = sent_frame(&mut leg, at(t0, 160), &mut scratch);
        assert_eq!((pt, seq, ts), (PCMU, SEEDS.sequence + 8, start + 7 * 160));
    }

    #[test]
    fn keys_are_not_queued_for_a_peer_without_events_or_while_relaying() {
        let (mut leg, _) = leg_with(&LegConfig {
            telephone_event_pt: None,
            ..config()
        });
        assert_eq!(leg.queue_dtmf('1'), Err(KeyRefused::NoTelephoneEvents));
        let (mut leg, _) = answered();
        leg.start_relay();
        assert_eq!(leg.queue_dtmf('1'), Err(KeyRefused::Relaying));
        leg.stop_relay();
        for _ in 0..DTMF_QUEUE {
            assert_eq!(leg.queue_dtmf('1'), Ok(()));
        }
        assert_eq!(leg.queue_dtmf('1'), Err(KeyRefused::QueueFull));
    }

    #[test]
    fn the_media_timeout_fires_once_after_the_configured_silence() {
        let (mut leg, t0) = answered();
        assert_eq!(leg.poll_media_timeout(at(t0, 4_999)), None);
        // RTP keeps the peer alive.
        leg.receive(
            &rtp(PCMU, 1, 0, &[0xFF; 160]),
            nat(),
            at(t0, 5_000),
            0,
            None,
        )
        .expect("taken");
        assert_eq!(leg.poll_media_timeout(at(t0, 14_999)), None);
        let fired = MediaTimeout {
            held: false,
            silent_for: Duration::from_secs(10),
        };
        assert_eq!(leg.poll_media_timeout(at(t0, 15_000)), Some(fired));
        assert_eq!(leg.poll_media_timeout(at(t0, 16_000)), None);
        assert_eq!(leg.poll_media_timeout(at(t0, 60_000)), None);
    }

    #[test]
    fn a_held_peer_gets_the_on_hold_timeout_and_its_rtcp_keeps_it_alive() {
        let (mut leg, t0) = leg_with(&config());
        leg.set_remote(remote(false, false), t0);
        assert_eq!(leg.poll_media_timeout(at(t0, 10_000)), None);
        leg.receive_rtcp(&receiver_report(), sdp_rtcp(), at(t0, 50_000), 0)
            .expect("a report");
        assert_eq!(leg.poll_media_timeout(at(t0, 60_000)), None);
        let fired = MediaTimeout {
            held: true,
            silent_for: Duration::from_secs(60),
        };
        assert_eq!(leg.poll_media_timeout(at(t0, 110_000)), Some(fired));
        assert_eq!(leg.poll_media_timeout(at(t0, 111_000)), None);
    }

    #[test]
    fn rtcp_keeps_an_active_peer_alive_only_with_rtp() {
        let (mut leg, t0) = answered();
        leg.receive_rtcp(&receiver_report(), sdp_rtcp(), at(t0, 9_000), 0)
            .expect("a report");
        assert!(leg.poll_media_timeout(at(t0, 10_000)).is_some());
    }

    #[test]
    fn no_timeout_configured_never_fires() {
        let (mut leg, t0) = leg_with(&LegConfig {
            media_timeout: None,
            media_timeout_on_hold: None,
            ..config()
        });
        leg.set_remote(remote(true, true), t0);
        assert_eq!(leg.poll_media_timeout(at(t0, 86_400_000)), None);
    }

    #[test]
    fn garbage_is_rejected() {
        let (mut leg, t0) = answered();
        let short = [0x80u8, 0x00, 0x00];
        let version_one = [0x40u8; 20];
        for datagram in [&[][..], &[0x80][..], &short[..], &version_one[..]] {
            assert!(
                matches!(
                    leg.receive(datagram, nat(), t0, 0, None),
                    Err(InboundError::Malformed(_))
                ),
                "{datagram:?}"
            );
        }
        assert_eq!(
            leg.receive(&rtp(8, 1, 0, &[0; 160]), nat(), t0, 0, None),
            Err(InboundError::UnknownPayloadType(8))
        );
        // An RTCP-looking datagram: not looked at without rtcp-mux, rejected with it.
        let rtcp_like = [0x80u8, 200, 0x00, 0x09];
        assert_eq!(
            leg.receive(&rtcp_like, nat(), t0, 0, None),
            Ok(Inbound::StrayRtcp)
        );
        assert!(leg.receive_rtcp(&rtcp_like, nat(), t0, 0).is_err());
        let (mut muxed, t0) = leg_with(&LegConfig {
            rtcp_mux: true,
            ..config()
        });
        assert!(matches!(
            muxed.receive(&rtcp_like, nat(), t0, 0, None),
            Err(InboundError::Rtcp(_))
        ));
        // Nothing rejected moved the address.
        assert_eq!(leg.remote(), Some(sdp_rtp()));
    }

    #[test]
    fn an_rtcp_report_goes_out_when_due_and_not_before_the_answer() {
        let (mut leg, t0) = leg_with(&config());
        let mut out = [0u8; MAX_PACKET];
        assert_eq!(
            leg.poll_rtcp(at(t0, 30_000), 0, &mut out),
            Ok(RtcpPoll::NotDue)
        );
        leg.set_remote(remote(true, true), t0);
        assert_eq!(leg.poll_rtcp(t0, 0, &mut out), Ok(RtcpPoll::NotDue));
        let RtcpPoll::Written(Some(transmit)) =
            leg.poll_rtcp(at(t0, 30_000), 0, &mut out).expect("written")
        else {
            panic!("a report with an address");
        };
        assert_eq!((transmit.port, transmit.to), (LegPort::Rtcp, sdp_rtcp()));
        let report = parse_rtcp_report(&out[..transmit.len]).expect("valid RTCP");
        assert_eq!((report.ssrc, report.bye), (SEEDS.ssrc, false));
        assert_eq!(
            leg.poll_rtcp(at(t0, 30_000), 0, &mut out),
            Ok(RtcpPoll::NotDue)
        );
        assert_eq!(leg.quality().reports_sent, 1);
    }

    #[test]
    fn with_rtcp_mux_reports_go_out_and_come_in_on_the_rtp_port() {
        let (mut leg, t0) = leg_with(&LegConfig {
            rtcp_mux: true,
            ..config()
        });
        leg.set_remote(remote(true, true), t0);
        let mut out = [0u8; MAX_PACKET];
        let Ok(RtcpPoll::Written(Some(transmit))) = leg.poll_rtcp(at(t0, 30_000), 0, &mut out)
        else {
            panic!("a report with an address");
        };
        assert_eq!((transmit.port, transmit.to), (LegPort::Rtp, sdp_rtp()));
        assert_eq!(
            leg.receive(&receiver_report(), nat(), t0, 0, None),
            Ok(Inbound::Rtcp(RtcpReceived { bye: false }))
        );
        assert_eq!(leg.quality().reports_received, 1);
    }

    #[test]
    fn bye_ends_the_leg_with_a_report_and_a_bye() {
        let (mut leg, t0) = answered();
        let mut out = [0u8; 256];
        let transmit = leg
            .bye(at(t0, 1_000), 0, &mut out)
            .expect("fits")
            .expect("an address");
        let report = parse_rtcp_report(&out[..transmit.len]).expect("valid RTCP");
        assert!(report.bye);
        assert_eq!(transmit.to, sdp_rtcp());
    }

    #[test]
    fn relayed_packets_go_out_as_the_connected_legs_stream() {
        let (mut caller, t0) = answered();
        let (mut callee, _) = leg_with(&LegConfig {
            payload_type: 96,
            telephone_event_pt: Some(97),
            ..config()
        });
        callee.set_remote(remote(true, true), t0);
        caller.start_relay();
        let mut out = [0u8; MAX_PACKET];
        let audio = rtp(PCMU, 40, 4000, &[0x55; 160]);
        let target = RelayTarget {
            leg: &mut callee,
            out: &mut out,
        };
        let Ok(Inbound::Relayed {
            transmit: Some(transmit),
            digit: None,
        }) = caller.receive(&audio, nat(), t0, 0, Some(target))
        else {
            panic!("relayed");
        };
        assert_eq!(transmit.to, sdp_rtp());
        let sent = parse_rtp(&out[..transmit.len]).expect("valid RTP");
        assert_eq!((sent.ssrc, sent.payload_type), (SEEDS.ssrc, 96));
        assert_eq!(sent.payload, &[0x55; 160]);
        // A key press is relayed as the callee's events, and still reported.
        let press = rtp(EVENTS, 41, 4160, &[5, 10, 0, 160]);
        let target = RelayTarget {
            leg: &mut callee,
            out: &mut out,
        };
        let Ok(Inbound::Relayed {
            transmit: Some(transmit),
            digit: Some('5'),
        }) = caller.receive(&press, nat(), t0, 0, Some(target))
        else {
            panic!("relayed and reported");
        };
        assert_eq!(
            parse_rtp(&out[..transmit.len]).map(|p| p.payload_type),
            Ok(97)
        );
        // Without a connected leg to send on, the packet is dropped, not buffered.
        assert_eq!(
            caller.receive(&rtp(PCMU, 42, 4320, &[0x55; 160]), nat(), t0, 0, None),
            Ok(Inbound::Relayed {
                transmit: None,
                digit: None
            })
        );
        let mut heard = [0i16; MAX_FRAME_SAMPLES];
        assert_eq!(
            caller.decode(at(t0, 100), &mut heard, |_| false),
            Heard::Pcm(160, None)
        );
    }

    #[test]
    fn in_a_room_the_rooms_frame_goes_out_with_an_overlay_on_top_until_it_ends() {
        let (mut leg, _) = answered();
        leg.join_room();
        let mut scratch = FrameScratch::new();
        let mut out = [0u8; MAX_PACKET];
        let mix = [0i16; 160];
        let room = RoomFrame {
            payload: Some(&[0x42; 160]),
            pcm: Some(&mix),
            lost_upstream: false,
            alone: false,
            silence: false,
        };
        let frame = leg.room_frame(room, &mut scratch, &mut out);
        let transmit = frame.transmit.expect("sent");
        assert_eq!(
            parse_rtp(&out[..transmit.len]).map(|p| p.payload),
            Ok(&[0x42; 160][..])
        );
        // 20 ms of a loud prompt: the next frame carries it, the one after ends it.
        leg.set_overlay(PromptPlayer::new(vec![16000i16; 320].into(), 8000).expect("rate"));
        let frame = leg.room_frame(room, &mut scratch, &mut out);
        let transmit = frame.transmit.expect("sent");
        let payload = parse_rtp(&out[..transmit.len])
            .expect("valid")
            .payload
            .to_vec();
        assert_ne!(payload, vec![0x42; 160]);
        let ends: Vec<_> = (0..3)
            .map(|_| leg.room_frame(room, &mut scratch, &mut out).finished)
            .collect();
        assert_eq!(
            ends.iter()
                .filter(|f| **f == Some(Finished::Overlay))
                .count(),
            1
        );
    }

    /// Sends `frame` `n` times; the RTP header of each packet that went out, `None` for a
    /// frame left out.
    fn send_room_frames(
        leg: &mut MediaLeg,
        frame: RoomFrame<'_>,
        n: usize,
    ) -> Vec<Option<(u16, u32, bool)>> {
        let mut scratch = FrameScratch::new();
        let mut out = [0u8; MAX_PACKET];
        (0..n)
            .map(|_| {
                let transmit = leg.room_frame(frame, &mut scratch, &mut out).transmit?;
                let p = parse_rtp(&out[..transmit.len]).expect("valid");
                Some((p.sequence, p.timestamp, p.marker))
            })
            .collect()
    }

    #[test]
    fn a_peer_that_asked_for_dtx_gets_silence_every_400_ms_and_a_marked_resume() {
        let (mut leg, t0) = leg_with(&LegConfig {
            dtx: true,
            ..config()
        });
        leg.set_remote(remote(true, true), t0);
        leg.join_room();
        let silence = RoomFrame {
            payload: Some(&[0xFF; 160]),
            silence: true,
            ..RoomFrame::default()
        };
        let sound = RoomFrame {
            payload: Some(&[0x42; 160]),
            ..RoomFrame::default()
        };
        let talk = send_room_frames(&mut leg, sound, 2);
        let (seq0, ts0, _) = talk[0].expect("sound goes out");
        let quiet = send_room_frames(&mut leg, silence, 45);
        let sent: Vec<usize> = (0..45).filter(|&i| quiet[i].is_some()).collect();
        assert_eq!(
            sent,
            [0, 20, 40],
            "the first silent frame, then one per 400 ms"
        );
        for (k, &i) in sent.iter().enumerate() {
            let (seq, ts, marker) = quiet[i].expect("sent");
            assert_eq!(
                seq,
                seq0.wrapping_add(2 + k as u16),
                "no sequence gap: no loss"
            );
            assert_eq!(ts, ts0.wrapping_add(160 * (2 + i as u32)), "time runs on");
            assert_eq!(marker, k > 0, "a packet after left-out frames is marked");
        }
        let back = send_room_frames(&mut leg, sound, 2);
        let (seq, ts, marker) = back[0].expect("sound goes out");
        assert_eq!(
            (seq, ts, marker),
            (seq0.wrapping_add(5), ts0.wrapping_add(160 * 47), true)
        );
        assert!(
            !back[1].expect("sent").2,
            "only the first packet of a spurt is marked"
        );
        // A key press pressed during a silence goes out at once.
        send_room_frames(&mut leg, silence, 3);
        leg.queue_dtmf('5').expect("queued");
        assert!(send_room_frames(&mut leg, silence, 1)[0].is_some());
        // Without `usedtx=1` every frame goes out.
        let (mut plain, t0) = answered();
        plain.set_remote(remote(true, true), t0);
        plain.join_room();
        assert!(
            send_room_frames(&mut plain, silence, 45)
                .iter()
                .all(Option::is_some)
        );
    }

    #[test]
    fn outside_a_room_a_dtx_peer_gets_silence_every_400_ms_and_prompts_whole() {
        let (mut leg, t0) = leg_with(&LegConfig {
            dtx: true,
            ..config()
        });
        leg.set_remote(remote(true, true), t0);
        let mut scratch = FrameScratch::new();
        let mut out = [0u8; MAX_PACKET];
        let mut produced = |leg: &mut MediaLeg, n: usize| -> usize {
            (0..n)
                .filter(|k| {
                    leg.produce(at(t0, 20 * *k as u64), &mut scratch, &mut out)
                        .transmit
                        .is_some()
                })
                .count()
        };
        assert_eq!(produced(&mut leg, 40), 2, "silence: one packet per 400 ms");
        leg.set_mode(MediaMode::Play(
            PromptPlayer::new(vec![8000i16; 16_000].into(), 8000).expect("rate"),
        ));
        assert_eq!(produced(&mut leg, 10), 10, "a prompt goes out whole");
    }

    #[test]
    fn alone_in_a_room_the_leg_hears_its_tone_and_a_lost_talker_packet_leaves_a_gap() {
        let (mut leg, _) = answered();
        leg.join_room();
        let mut scratch = FrameScratch::new();
        let mut out = [0u8; MAX_PACKET];
        let alone = RoomFrame {
            alone: true,
            ..RoomFrame::default()
        };
        let transmit = leg
            .room_frame(alone, &mut scratch, &mut out)
            .transmit
            .expect("the tone");
        let first = parse_rtp(&out[..transmit.len]).expect("valid").sequence;
        let gap = RoomFrame {
            lost_upstream: true,
            ..RoomFrame::default()
        };
        assert_eq!(
            leg.room_frame(gap, &mut scratch, &mut out),
            FrameOut::default()
        );
        let with_payload = RoomFrame {
            payload: Some(&[0x42; 160]),
            ..RoomFrame::default()
        };
        let transmit = leg
            .room_frame(with_payload, &mut scratch, &mut out)
            .transmit
            .expect("sent");
        let next = parse_rtp(&out[..transmit.len]).expect("valid").sequence;
        assert_eq!(
            next,
            first.wrapping_add(2),
            "the lost packet's number is skipped"
        );
    }

    #[test]
    fn a_ptime_without_a_frame_is_refused() {
        let result = MediaLeg::new(
            &LegConfig {
                ptime_ms: 0,
                ..config()
            },
            SEEDS,
            Instant::now(),
        );
        assert!(matches!(result, Err(LegError::UnsupportedPtime(0))));
    }

    proptest! {
        #[test]
        fn any_datagram_is_taken_or_rejected_without_panicking(
            datagrams in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..200), 1..20),
            mux in any::<bool>(),
        ) {
            let (mut leg, t0) = leg_with(&LegConfig { rtcp_mux: mux, ..config() });
            leg.set_remote(remote(true, true), t0);
            let mut scratch = FrameScratch::new();
            let mut out = [0u8; MAX_PACKET];
            for (k, datagram) in datagrams.iter().enumerate() {
                let now = t0 + FRAME * k as u32;
                let _ = leg.receive(datagram, nat(), now, 0, None);
                let _ = leg.receive_rtcp(datagram, nat(), now, 0);
                let _ = leg.produce(now, &mut scratch, &mut out);
            }
        }
    }
}
