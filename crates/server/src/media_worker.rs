//! Media workers: threads that own RTP sockets and run every session on a fixed 20 ms tick.
//!
//! A session is a call leg's sockets and channels around a [`MediaLeg`], which holds all of
//! the leg's media state (codec, jitter buffer, RTP/RTCP, DTMF, what it plays): the worker
//! reads the sockets, hands each datagram to the leg with its arrival time, and sends what
//! the leg writes.
//!
//! The tick runs on an absolute schedule (start + k·20 ms), so jitter in one tick never turns
//! into drift. Control (start, stop, mode changes) arrives through a bounded channel drained
//! at the start of each tick; the per-packet and per-frame path allocates nothing and takes
//! no lock. A session moves between workers only to meet others: the members of a room, or
//! the two legs of a call, live on the worker their room or call hashes to. Two legs of a
//! call that share a codec relay each other's packets as they come (see
//! [`media::relay::RelayStream`]); otherwise they are mixed in a room of two, which transcodes.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use media::codec::CodecKind;
use media::leg::{
    Finished, FrameOut, FrameScratch, Heard, Inbound, InboundError, KeyRefused, LegConfig,
    LegError, LegPort, LegSeeds, MAX_FRAME_SAMPLES, MAX_PACKET, MediaLeg, RelayTarget, RoomFrame,
    RtcpPoll, Transmit,
};
use media::resample::Resampler;
use media::rtcp::{LegQuality, RtcpReceived};
use media::rtp::{RtpError, ntp_timestamp};
use media::secure::SecureLeg;
use media::wav::PromptPlayer;
use mixer::{MixerConfig, ParticipantId, ParticipantOptions, Room, RoomEvent};
use tokio::sync::mpsc::Sender as CallSender;
use tokio::sync::mpsc::error::TrySendError as ChannelFull;

use crate::browser_media::{
    BrowserCommand, BrowserParticipant, BrowserReport, Refused, SessionEnd,
};
use crate::tick_schedule::{TickSchedule, TickStart};
use crate::udp_arrival::{TickClock, enable_arrival_times, recv_with_arrival};

use crate::core_command::CoreCommand;

/// Reports one session may have waiting for its call (prompt ends, key presses, joins).
pub const MEDIA_EVENTS_QUEUE: usize = 64;
/// Media timeouts waiting for the core.
pub const CORE_COMMAND_QUEUE: usize = 1024;

/// One media tick.
pub const TICK: Duration = Duration::from_millis(20);
/// How far behind its schedule the worker catches up by running missed ticks back to back
/// (skipping them would cut a frame out of every listener's audio); further behind, it
/// skips them rather than burst out seconds of frames.
const MAX_CATCH_UP: Duration = Duration::from_millis(200);
/// Upper bound on packets read from one socket per tick, so a flood cannot starve the others.
const MAX_PACKETS_PER_TICK: usize = 32;
/// Ticks between looks at the RTCP sockets (500 ms).
const RTCP_DRAIN_TICKS: u32 = 25;

/// Identifies a media session (one call leg) across threads.
pub type SessionId = crate::ids::LegId;

// The leg's own types, named here too: call control builds them for `MediaCommand`s.
pub use media::leg::{MediaMode, RemoteMedia};

/// Everything the worker needs to run one call leg's media.
pub struct SessionSpec {
    /// Session id.
    pub id: SessionId,
    /// Bound RTP socket (even port).
    pub rtp: UdpSocket,
    /// Bound RTCP socket (RTP port + 1), unless RTCP is multiplexed on the RTP port.
    pub rtcp: UdpSocket,
    /// Where the peer's SDP said to send; replaced by the source of its RTP (symmetric RTP).
    pub remote: Option<SocketAddr>,
    /// Where the peer's SDP said to send RTCP (`a=rtcp` or RTP port + 1); replaced by the
    /// source of its RTCP. Unused with rtcp-mux.
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share the RTP port (RFC 5761).
    pub rtcp_mux: bool,
    /// Our RTCP CNAME (RFC 3550 §6.5.1: user@host).
    pub cname: String,
    /// How long the caller may send no RTP before the call is ended; `None` = never.
    pub media_timeout: Option<Duration>,
    /// The same while the caller holds the call (we do not send).
    pub media_timeout_on_hold: Option<Duration>,
    /// Where the session reports a media timeout.
    pub core: CallSender<CoreCommand>,
    /// The leg's RTCP statistics, for the call record.
    pub quality: Arc<QualityCell>,
    /// Whether we may send (false while the peer holds the call).
    pub send: bool,
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
    /// The peer asked for discontinuous transmission (Opus `usedtx=1`).
    pub dtx: bool,
    /// Where DTMF and playback events go.
    pub events: CallSender<MediaEvent>,
    /// SRTP keys when the leg's media is encrypted.
    pub srtp: Option<media::sdp::NegotiatedSrtp>,
}

/// Control messages from call control to a worker.
pub enum MediaCommand {
    /// Take over a new session.
    Start(Box<SessionSpec>),
    /// Change what the session sends.
    SetMode(SessionId, MediaMode),
    /// Where and how to exchange media, from an answer or a re-INVITE.
    SetRemote(SessionId, RemoteMedia),
    /// End the session and close its sockets.
    Stop(SessionId),
    /// Move the session to the worker that hosts `room` and join it there.
    JoinRoom(SessionId, RoomJoin),
    /// Connect the session with another one (both get this command): packets are relayed
    /// as they are when both legs use the same codec, else both are mixed in a room of two.
    Connect(SessionId, Connection),
    /// Leave the room the session is in (it stays on its worker, sending silence).
    LeaveRoom(SessionId),
    /// Undo `Connect` for this session (relay or room of two): it stays on its worker and
    /// sends what its own mode makes (music on hold while the other party holds). A
    /// `Connect` to both legs joins them again.
    Disconnect(SessionId),
    /// Mute or unmute a participant (not heard by the others).
    SetMuted(SessionId, bool),
    /// Start or stop recording the room into a WAV file.
    SetRecording(String, Option<RecordingSink>),
    /// Start or stop recording what the session's peer says (a voicemail message), outside
    /// a room. Stopping drops the sink, which ends the writer's file.
    Capture(SessionId, Option<RecordingSink>),
    /// Play a short sound to this session on top of what it hears (prompt, beep).
    Overlay(SessionId, PromptPlayer),
    /// Send a key press to the peer as RFC 4733 events (dropped if it negotiated none).
    SendDtmf(SessionId, char),
    /// The peer sends with a new SRTP key from now on (a re-INVITE rekeyed).
    RekeySrtp(SessionId, Box<media::sdp::NegotiatedSrtp>),
    /// A session handed over from another worker (room or call affinity).
    Adopt(Box<Session>, Placement),
    /// About a WebRTC session (always sent to the worker that hosts its room).
    Browser(BrowserCommand),
}

/// Where a session goes when it joins a conference.
pub struct RoomJoin {
    /// Room number.
    pub room: String,
    /// Joins muted (wait for the moderator, or listen-only).
    pub muted: bool,
}

/// Which two legs a call connects, and where they meet.
pub struct Connection {
    /// Names the call: both legs move to the worker this key hashes to, and a call that has
    /// to transcode is mixed in a room of this name.
    pub key: String,
    /// The other leg.
    pub peer: SessionId,
}

/// Where a session handed to another worker goes there.
pub enum Placement {
    /// Into a conference room.
    Room(RoomJoin),
    /// Into a call with another leg.
    Call(Connection),
}

impl Placement {
    fn key(&self) -> &str {
        match self {
            Placement::Room(join) => &join.room,
            Placement::Call(connection) => &connection.key,
        }
    }
}

/// How a session is tied to another one outside a conference room.
enum Link {
    /// Not at all.
    None,
    /// Connected, waiting for the peer to arrive on this worker.
    Waiting(SessionId),
    /// Connected and sharing a codec: every packet from this leg goes out on `peer`'s (its
    /// [`MediaLeg`] relays meanwhile).
    Relay {
        /// The peer's position in the worker's session list (kept up to date as sessions
        /// come and go, so the tick finds it without a search).
        index: usize,
    },
}

/// Receives a room's recording mix (16-bit PCM at the room rate) on a writer thread.
pub struct RecordingSink {
    /// Frames to the writer; bounded and preallocated, so the tick never blocks or allocates.
    pub frames: crossbeam_channel::Sender<RecordingFrame>,
}

/// One tick of a room's full mix.
pub type RecordingFrame = [i16; RECORDING_FRAME];
/// Samples per recorded frame (20 ms at 16 kHz, the room rate).
pub const RECORDING_FRAME: usize = 320;
/// Rate rooms record at, and the highest they mix at.
pub const ROOM_RATE: u32 = 16_000;
/// Rate a room of telephones mixes at.
const NARROWBAND_RATE: u32 = 8000;

/// Events from a session to its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF digit (RFC 4733), reported once per key press.
    Dtmf(char),
    /// The prompt started with `MediaMode::Play` has ended.
    PlayFinished,
    /// The session is in the room now (after a possible move between workers).
    Joined {
        /// Participants in the room, this one included.
        participants: usize,
    },
    /// The room could not take the session.
    JoinFailed(String),
    /// An overlay sound has ended.
    OverlayFinished,
    /// The caller said nothing for the voicemail's silence limit while being recorded.
    CallerSilent,
}

/// A leg's media quality, published by its worker when RTCP goes out or comes in and when
/// the session stops; read by the core for the call record. Atomics, so the tick never locks.
#[derive(Debug, Default)]
pub struct QualityCell {
    packets_received: AtomicU64,
    packets_expected: AtomicU64,
    packets_lost: AtomicI64,
    jitter_us: AtomicU64,
    packets_sent: AtomicU64,
    peer_packets_lost: AtomicI64,
    peer_loss_permille: AtomicI64,
    peer_jitter_us: AtomicI64,
    round_trip_us: AtomicI64,
    rtcp_sent: AtomicU64,
    rtcp_received: AtomicU64,
    stopped: AtomicBool,
}

/// Stored in the `Option` fields of [`QualityCell`] for "not reported".
const NOT_REPORTED: i64 = i64::MIN;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl QualityCell {
    fn publish(&self, q: &LegQuality) {
        let option = |v: Option<i64>| v.unwrap_or(NOT_REPORTED);
        self.packets_received
            .store(u64::from(q.packets_received), Ordering::Relaxed);
        self.packets_expected
            .store(u64::from(q.packets_expected), Ordering::Relaxed);
        self.packets_lost.store(q.packets_lost, Ordering::Relaxed);
        self.jitter_us
            .store(micros(q.jitter).max(0) as u64, Ordering::Relaxed);
        self.packets_sent
            .store(u64::from(q.packets_sent), Ordering::Relaxed);
        self.peer_packets_lost
            .store(option(q.peer_packets_lost), Ordering::Relaxed);
        self.peer_loss_permille.store(
            option(q.peer_fraction_lost.map(|f| (f * 1000.0).round() as i64)),
            Ordering::Relaxed,
        );
        self.peer_jitter_us
            .store(option(q.peer_jitter.map(micros)), Ordering::Relaxed);
        self.round_trip_us
            .store(option(q.round_trip.map(micros)), Ordering::Relaxed);
        self.rtcp_sent
            .store(u64::from(q.reports_sent), Ordering::Relaxed);
        self.rtcp_received
            .store(u64::from(q.reports_received), Ordering::Relaxed);
    }

    /// Whether the worker has published the leg's final figures (its session stopped).
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The figures as the call record keeps them.
    pub fn to_call_media(&self) -> store::CallMedia {
        let get = |a: &AtomicU64| i64::try_from(a.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let option = |a: &AtomicI64| Some(a.load(Ordering::Relaxed)).filter(|v| *v != NOT_REPORTED);
        store::CallMedia {
            packets_received: get(&self.packets_received),
            packets_expected: get(&self.packets_expected),
            packets_lost: self.packets_lost.load(Ordering::Relaxed),
            jitter_us: get(&self.jitter_us),
            packets_sent: get(&self.packets_sent),
            peer_packets_lost: option(&self.peer_packets_lost),
            peer_loss_permille: option(&self.peer_loss_permille),
            peer_jitter_us: option(&self.peer_jitter_us),
            round_trip_us: option(&self.round_trip_us),
            rtcp_sent: get(&self.rtcp_sent),
            rtcp_received: get(&self.rtcp_received),
        }
    }

    /// A cell with nothing reported yet.
    pub fn new() -> Self {
        let cell = Self::default();
        for field in [
            &cell.peer_packets_lost,
            &cell.peer_loss_permille,
            &cell.peer_jitter_us,
            &cell.round_trip_us,
        ] {
            field.store(NOT_REPORTED, Ordering::Relaxed);
        }
        cell
    }
}

/// Counters shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct MediaStats {
    /// Ticks run.
    pub ticks: AtomicU64,
    /// Ticks that started more than one tick period late.
    pub late_ticks: AtomicU64,
    /// RTP packets received.
    pub packets_in: AtomicU64,
    /// RTP packets sent.
    pub packets_out: AtomicU64,
    /// Packets dropped as not parseable or of an unknown payload type.
    pub packets_rejected: AtomicU64,
    /// Conference frames not decoded: their RFC 6464 level said nobody could hear them.
    pub frames_not_decoded: AtomicU64,
    /// Listener frames that were a lone talker's payload, forwarded unchanged.
    pub frames_forwarded: AtomicU64,
    /// RTP packets relayed from one leg of a call to the other without decoding.
    pub packets_relayed: AtomicU64,
    /// Encoder runs of the conference mixers (shared and own mixes).
    pub mixer_encodes: AtomicU64,
    /// Tick work durations: counts per bucket of [`TICK_BUCKETS_US`] (cumulative at render).
    pub tick_buckets: [AtomicU64; TICK_BUCKETS_US.len()],
    /// Sum of tick work durations in microseconds.
    pub tick_work_us: AtomicU64,
    /// RTCP compound packets sent.
    pub rtcp_sent: AtomicU64,
    /// RTCP reports received and understood.
    pub rtcp_received: AtomicU64,
    /// RTCP datagrams that did not parse.
    pub rtcp_rejected: AtomicU64,
    /// Calls ended because the caller's RTP stopped.
    pub media_timeouts: AtomicU64,
    /// Packets callers sent that never reached us, over ended legs (RFC 3550 A.3).
    pub legs_packets_lost: AtomicU64,
    /// Packets callers' sequence numbers say they sent, over ended legs.
    pub legs_packets_expected: AtomicU64,
    /// Sum of the last round-trip time of ended legs that had one, in microseconds.
    pub legs_round_trip_us: AtomicU64,
    /// Ended legs with a round-trip time.
    pub legs_with_round_trip: AtomicU64,
    /// Datagrams sent to WebRTC clients (STUN, DTLS, SRTP and SRTCP).
    pub webrtc_datagrams_sent: AtomicU64,
}

/// Upper bounds (µs) of the tick-duration histogram buckets; the last catches the rest.
pub const TICK_BUCKETS_US: [u64; 9] =
    [100, 250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, u64::MAX];

impl MediaStats {
    fn record_tick(&self, work: Duration) {
        let us = u64::try_from(work.as_micros()).unwrap_or(u64::MAX);
        let bucket = TICK_BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(TICK_BUCKETS_US.len() - 1);
        self.tick_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.tick_work_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// Talker detection turned on or off for a room member (a caller's leg or a WebRTC
/// participant), for the registry that the join page reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TalkChange {
    /// The member.
    pub member: SessionId,
    /// Talking now.
    pub talking: bool,
}

/// Talk changes waiting for the registry at most; a change that finds the queue full is
/// dropped (the next one for that member puts it right).
pub const TALK_CHANGES_QUEUE: usize = 1024;

/// Handle to all media workers.
#[derive(Clone)]
pub struct MediaWorkers {
    senders: Arc<[Sender<MediaCommand>]>,
    stats: Arc<MediaStats>,
}

impl MediaWorkers {
    /// Starts `count` worker threads; rooms they open mix as `rooms` says, and who starts
    /// or stops talking in them goes to `talk`.
    pub fn start(
        count: usize,
        rooms: MixerConfig,
        talk: CallSender<TalkChange>,
    ) -> std::io::Result<Self> {
        let stats = Arc::new(MediaStats::default());
        let count = count.max(1);
        let mut senders = Vec::with_capacity(count);
        let mut receivers = Vec::with_capacity(count);
        for _ in 0..count {
            // Bounded: a stuck worker must push back on call setup, not grow memory.
            let (tx, rx) = bounded(4096);
            senders.push(tx);
            receivers.push(rx);
        }
        let senders: Arc<[Sender<MediaCommand>]> = senders.into();
        for (index, rx) in receivers.into_iter().enumerate() {
            let stats = stats.clone();
            let peers = senders.clone();
            let talk = talk.clone();
            std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || Worker::new(index, rx, peers, stats, rooms, talk).run())?;
        }
        Ok(Self { senders, stats })
    }

    /// The worker that hosts room `number` (rooms never span workers).
    pub fn worker_of_room(&self, number: &str) -> usize {
        worker_index_of_room(number, self.senders.len())
    }

    /// Sends a command to the worker that owns `id`. Commands for a session always go to
    /// its home worker (where it started); when the session has moved to a room's worker,
    /// the home worker forwards them, after the handover, so their order is kept.
    pub fn send(&self, id: SessionId, command: MediaCommand) -> bool {
        let index = match &command {
            MediaCommand::SetRecording(room, _) => self.worker_of_room(room),
            _ => (id.get() % self.senders.len() as u64) as usize,
        };
        self.send_to(index, command)
    }

    /// Sends a command about a WebRTC session to the worker that hosts its room (browser
    /// sessions start there and never move).
    pub fn send_browser(&self, command: BrowserCommand) -> bool {
        let index = self.worker_of_room(command.room());
        self.send_to(index, MediaCommand::Browser(command))
    }

    fn send_to(&self, index: usize, command: MediaCommand) -> bool {
        let worker = &self.senders[index];
        match worker.try_send(command) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::error!(worker = index, "media worker queue full; command dropped");
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Shared counters.
    pub fn stats(&self) -> &MediaStats {
        &self.stats
    }
}

/// One call leg's media, owned by exactly one worker at a time: its sockets and channels
/// here, everything else in its [`MediaLeg`].
pub struct Session {
    id: SessionId,
    /// Bound RTP socket (RTCP too with rtcp-mux).
    rtp: UdpSocket,
    /// Bound RTCP socket (RTP port + 1).
    rtcp: UdpSocket,
    /// Where the session reports a media timeout.
    core: CallSender<CoreCommand>,
    /// Where DTMF and playback events go.
    events: CallSender<MediaEvent>,
    /// A media timeout the core's queue had no room for: sent again next tick.
    timeout_unsent: bool,
    /// The leg's RTCP statistics, for the call record.
    quality: Arc<QualityCell>,
    leg: MediaLeg,
    /// Room slot and participant id while in a conference.
    conference: Option<(usize, ParticipantId)>,
    /// Another leg this one is connected with, outside a conference room.
    link: Link,
    /// SRTP contexts when the leg's media is encrypted.
    secure: Option<Box<SecureLeg>>,
    /// Where what the peer says goes while a voicemail records it.
    capture: Option<LegCapture>,
}

/// A session's voicemail recording: the writer's queue, and the resampler from the leg's
/// rate to [`ROOM_RATE`] (made when recording starts, so the tick does not allocate).
struct LegCapture {
    sink: RecordingSink,
    resampler: Option<Resampler>,
}

impl Session {
    fn set_capture(&mut self, sink: Option<RecordingSink>) {
        self.capture = sink.map(|sink| {
            let rate = self.leg.codec().sample_rate();
            let resampler = if rate == ROOM_RATE {
                None
            } else {
                match Resampler::new(rate, ROOM_RATE) {
                    Ok(r) => Some(r),
                    Err(err) => {
                        tracing::error!(session = %self.id, "voicemail cannot resample {rate} Hz: {err}");
                        None
                    }
                }
            };
            LegCapture { sink, resampler }
        });
    }

    /// Hands what the peer said this tick (decoded into `scratch` by `produce`) to the
    /// voicemail writer, at [`ROOM_RATE`].
    fn capture_tick(&mut self, scratch: &FrameScratch) {
        let Some(capture) = &mut self.capture else {
            return;
        };
        let heard = scratch.heard(self.leg.samples_per_frame());
        let mut frame = [0i16; RECORDING_FRAME];
        match &mut capture.resampler {
            Some(r) => {
                r.process(heard, &mut frame);
            }
            None => {
                let n = heard.len().min(RECORDING_FRAME);
                frame[..n].copy_from_slice(&heard[..n]);
            }
        }
        // A slow disk loses message frames, never call audio.
        let _ = capture.sink.frames.try_send(frame);
    }

    fn new(spec: SessionSpec, now: Instant) -> Result<Self, LegError> {
        let config = LegConfig {
            codec: spec.codec,
            payload_type: spec.payload_type,
            telephone_event_pt: spec.telephone_event_pt,
            ptime_ms: spec.ptime_ms,
            audio_level_ext: spec.audio_level_ext,
            rtcp_mux: spec.rtcp_mux,
            cname: &spec.cname,
            remote: spec.remote,
            remote_rtcp: spec.remote_rtcp,
            send: spec.send,
            media_timeout: spec.media_timeout,
            media_timeout_on_hold: spec.media_timeout_on_hold,
            dtx: spec.dtx,
        };
        let seeds = LegSeeds {
            ssrc: rand::random(),
            sequence: rand::random(),
            timestamp: rand::random(),
            rtcp: rand::random(),
        };
        let leg = MediaLeg::new(&config, seeds, now)?;
        Ok(Self {
            id: spec.id,
            rtp: spec.rtp,
            rtcp: spec.rtcp,
            core: spec.core,
            events: spec.events,
            timeout_unsent: false,
            quality: spec.quality,
            leg,
            conference: None,
            link: Link::None,
            secure: spec
                .srtp
                .as_ref()
                .map(|keys| Box::new(SecureLeg::new(keys))),
            capture: None,
        })
    }

    /// Ties the session to another one (or to none); the leg relays exactly while the link
    /// says so, each relay starting a fresh stream.
    fn set_link(&mut self, link: Link) {
        match link {
            Link::Relay { .. } => self.leg.start_relay(),
            Link::None | Link::Waiting(_) => self.leg.stop_relay(),
        }
        self.link = link;
    }

    /// Sends what the leg wrote into `buf` as `transmit` says, protected first on an SRTP
    /// leg; true if the kernel took it.
    fn transmit(&mut self, transmit: Transmit, buf: &[u8]) -> bool {
        let socket = match transmit.port {
            LegPort::Rtp => &self.rtp,
            LegPort::Rtcp => &self.rtcp,
        };
        let Some(packet) = buf.get(..transmit.len) else {
            return false;
        };
        let packet = match self.secure.as_deref_mut() {
            None => packet,
            Some(secure) => match secure.protect(packet) {
                Ok(protected) => protected,
                Err(err) => {
                    tracing::debug!(session = %self.id, "SRTP protect failed: {err}");
                    return false;
                }
            },
        };
        socket.send_to(packet, transmit.to).is_ok()
    }

    /// Checks and decrypts a datagram on an SRTP leg; `None` (counted as rejected) when it
    /// fails authentication or replays. Plain legs pass it through.
    fn unprotect(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        match self.secure.as_deref_mut() {
            None => Some(len),
            Some(secure) => match secure.unprotect(buf, len) {
                Ok(len) => Some(len),
                Err(err) => {
                    tracing::trace!(session = %self.id, "SRTP packet dropped: {err}");
                    None
                }
            },
        }
    }

    /// Sends this tick's frame and reports a prompt or overlay that ended.
    fn send_frame(&mut self, frame: FrameOut, buf: &[u8], counts: &mut TickCounts) {
        if let Some(transmit) = frame.transmit
            && self.transmit(transmit, buf)
        {
            counts.sent += 1;
        }
        let event = match frame.finished {
            None => return,
            Some(Finished::Prompt) => MediaEvent::PlayFinished,
            Some(Finished::Overlay) => MediaEvent::OverlayFinished,
        };
        self.report(event);
    }

    /// Queues a key press for the peer.
    fn queue_dtmf(&mut self, digit: char) {
        match self.leg.queue_dtmf(digit) {
            Err(KeyRefused::NoTelephoneEvents) => {
                tracing::debug!(session = %self.id, %digit, "peer takes no RFC 4733 events; key not sent");
            }
            // The caller's own event packets are relayed to this leg already; a stuck key
            // must not grow memory.
            Ok(()) | Err(KeyRefused::Relaying | KeyRefused::QueueFull) => {}
        }
    }

    /// Per tick: sends RTCP when due and notices a caller that fell silent. Both are one
    /// comparison of instants unless something is due.
    fn keep_alive(
        &mut self,
        now: Instant,
        now_ntp: u64,
        scratch: &mut [u8; MAX_PACKET],
        counts: &mut TickCounts,
    ) {
        match self.leg.poll_rtcp(now, now_ntp, scratch) {
            Ok(RtcpPoll::NotDue) => {}
            Ok(RtcpPoll::Written(transmit)) => {
                if let Some(transmit) = transmit
                    && self.transmit(transmit, scratch)
                {
                    counts.rtcp_sent += 1;
                }
                self.quality.publish(&self.leg.quality());
            }
            Err(err) => tracing::debug!(session = %self.id, "RTCP not built: {err}"),
        }
        if let Some(timeout) = self.leg.poll_media_timeout(now) {
            counts.media_timeouts += 1;
            tracing::info!(session = %self.id, held = timeout.held, silent_for = ?timeout.silent_for, "no RTP from the caller: media timeout");
            self.timeout_unsent = true;
        }
        // The tick never waits for the core: a full queue gets the timeout next tick.
        if self.timeout_unsent {
            self.timeout_unsent = matches!(
                self.core.try_send(CoreCommand::MediaTimeout(self.id)),
                Err(ChannelFull::Full(_))
            );
        }
    }

    /// Notes an RTCP report the leg took (or why not).
    fn rtcp_taken(
        &self,
        taken: Result<RtcpReceived, RtpError>,
        from: SocketAddr,
        counts: &mut TickCounts,
    ) {
        match taken {
            Ok(received) => {
                counts.rtcp_received += 1;
                if received.bye {
                    tracing::debug!(session = %self.id, "RTCP BYE from the peer");
                }
                self.quality.publish(&self.leg.quality());
            }
            Err(err) => {
                counts.rtcp_rejected += 1;
                tracing::debug!(session = %self.id, %from, "RTCP rejected: {err}");
            }
        }
    }

    /// Tells the call; the tick never waits for it, so a call whose queue is full (a core
    /// stalled for seconds, or a key flood) loses the report, logged.
    fn report(&self, event: MediaEvent) {
        if let Err(ChannelFull::Full(event)) = self.events.try_send(event) {
            tracing::warn!(session = %self.id, ?event, "media event queue full; report dropped");
        }
    }

    fn key_pressed(&self, digit: char) {
        tracing::debug!(session = %self.id, %digit, "DTMF received (RFC 4733)");
        self.report(MediaEvent::Dtmf(digit));
    }

    /// The leg ends: a last report with BYE (RFC 3550 §6.6), final figures published.
    fn stop(&mut self, stats: &MediaStats) {
        let clock = TickClock::read();
        let mut packet = [0u8; 256];
        if let Ok(Some(transmit)) = self
            .leg
            .bye(clock.now, ntp_timestamp(clock.wall), &mut packet)
            && self.transmit(transmit, &packet)
        {
            stats.rtcp_sent.fetch_add(1, Ordering::Relaxed);
        }
        let quality = self.leg.quality();
        let jitter = self.leg.jitter_stats();
        tracing::info!(
            received = jitter.received,
            lost = jitter.lost,
            late = jitter.late,
            concealed = jitter.concealed,
            target_delay_ms = jitter.target_delay.as_millis() as u64,
            "media leg ended"
        );
        self.quality.publish(&quality);
        self.quality.stopped.store(true, Ordering::Release);
        if quality.packets_lost > 0 {
            stats
                .legs_packets_lost
                .fetch_add(quality.packets_lost as u64, Ordering::Relaxed);
        }
        stats
            .legs_packets_expected
            .fetch_add(u64::from(quality.packets_expected), Ordering::Relaxed);
        if let Some(rtt) = quality.round_trip {
            stats
                .legs_round_trip_us
                .fetch_add(micros(rtt).max(0) as u64, Ordering::Relaxed);
            stats.legs_with_round_trip.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reads what the peer sent since the last tick; with `relay`, its audio and key presses
    /// go straight out on that leg instead of into our jitter buffer.
    fn receive(
        &mut self,
        clock: &TickClock,
        buf: &mut [u8; MAX_PACKET],
        drain_rtcp: bool,
        mut relay: Option<(&mut Session, &mut [u8; MAX_PACKET])>,
        counts: &mut TickCounts,
    ) {
        // One `recvmsg` per packet until "would block": measured cheaper here than
        // `recvmmsg`, whose per-message header copies cost more than the one extra call that
        // finds the socket empty. Each packet is dated by its kernel arrival stamp, so the
        // jitter buffer and the RTCP jitter see when it came, not where in the tick its socket
        // was read.
        for _ in 0..MAX_PACKETS_PER_TICK {
            let (len, from, stamp) = match recv_with_arrival(&self.rtp, buf) {
                Ok(x) => x,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                // ICMP port unreachable from an earlier send shows up here on Linux; harmless.
                Err(_) => continue,
            };
            let arrival = clock.arrival(stamp);
            let arrival_ntp = ntp_timestamp(stamp.unwrap_or(clock.wall));
            let Some(len) = self.unprotect(&mut buf[..], len) else {
                counts.rejected += 1;
                continue;
            };
            let Some(datagram) = buf.get(..len) else {
                continue;
            };
            let target = relay.as_mut().map(|(peer, out)| RelayTarget {
                leg: &mut peer.leg,
                out: &mut out[..],
            });
            match self
                .leg
                .receive(datagram, from, arrival, arrival_ntp, target)
            {
                Ok(Inbound::Buffered) => counts.received += 1,
                Ok(Inbound::KeyPress(digit)) => {
                    counts.received += 1;
                    if let Some(digit) = digit {
                        self.key_pressed(digit);
                    }
                }
                Ok(Inbound::Relayed { transmit, digit }) => {
                    counts.received += 1;
                    if let Some(digit) = digit {
                        self.key_pressed(digit);
                    }
                    if let Some(transmit) = transmit
                        && let Some((peer, out)) = relay.as_mut()
                        && peer.transmit(transmit, &out[..])
                    {
                        counts.sent += 1;
                        counts.relayed += 1;
                    }
                }
                Ok(Inbound::Rtcp(received)) => self.rtcp_taken(Ok(received), from, counts),
                Ok(Inbound::StrayRtcp) => {}
                Err(InboundError::Malformed(_)) => counts.rejected += 1,
                Err(InboundError::UnknownPayloadType(_)) => {
                    counts.received += 1;
                    counts.rejected += 1;
                }
                Err(InboundError::Rtcp(err)) => self.rtcp_taken(Err(err), from, counts),
            }
        }
        if !drain_rtcp || self.leg.rtcp_mux() {
            return;
        }
        for _ in 0..MAX_PACKETS_PER_TICK {
            match recv_with_arrival(&self.rtcp, buf) {
                Ok((len, from, stamp)) => {
                    let Some(len) = self.unprotect(&mut buf[..], len) else {
                        counts.rtcp_rejected += 1;
                        continue;
                    };
                    // Read up to half a second late: date the report by the kernel's stamp.
                    let arrival_ntp = ntp_timestamp(stamp.unwrap_or(clock.wall));
                    let datagram = buf.get(..len).unwrap_or_default();
                    let taken =
                        self.leg
                            .receive_rtcp(datagram, from, clock.arrival(stamp), arrival_ntp);
                    self.rtcp_taken(taken, from, counts);
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(_) => continue,
            }
        }
    }

    /// Conference output: what the room made for this session, or its mix with a prompt,
    /// beep or the alone tone on top.
    fn send_conference(
        &mut self,
        room: &Room,
        alone: bool,
        scratch: &mut FrameScratch,
        packet: &mut [u8; MAX_PACKET],
        counts: &mut TickCounts,
    ) {
        let Some((_, pid)) = self.conference else {
            return;
        };
        let output = room.output(pid);
        let frame = RoomFrame {
            payload: output.map(|frame| frame.payload),
            pcm: room.output_pcm(pid),
            lost_upstream: room.lost_upstream(pid),
            alone,
            silence: output.is_some_and(|frame| frame.silence),
        };
        let frame = self.leg.room_frame(frame, scratch, packet);
        self.send_frame(frame, packet, counts);
    }
}

/// Packet counters of one tick, added to the shared [`MediaStats`] once per tick: an atomic
/// add per packet on counters both workers write was a cache line bouncing between cores.
#[derive(Debug, Default)]
pub(crate) struct TickCounts {
    pub(crate) received: u64,
    rejected: u64,
    pub(crate) sent: u64,
    pub(crate) not_decoded: u64,
    forwarded: u64,
    relayed: u64,
    encodes: u64,
    rtcp_sent: u64,
    rtcp_received: u64,
    rtcp_rejected: u64,
    media_timeouts: u64,
    pub(crate) datagrams_sent: u64,
}

impl TickCounts {
    fn flush(&mut self, stats: &MediaStats) {
        for (counter, value) in [
            (&stats.packets_in, &mut self.received),
            (&stats.packets_rejected, &mut self.rejected),
            (&stats.packets_out, &mut self.sent),
            (&stats.frames_not_decoded, &mut self.not_decoded),
            (&stats.frames_forwarded, &mut self.forwarded),
            (&stats.packets_relayed, &mut self.relayed),
            (&stats.mixer_encodes, &mut self.encodes),
            (&stats.rtcp_sent, &mut self.rtcp_sent),
            (&stats.rtcp_received, &mut self.rtcp_received),
            (&stats.rtcp_rejected, &mut self.rtcp_rejected),
            (&stats.media_timeouts, &mut self.media_timeouts),
            (&stats.webrtc_datagrams_sent, &mut self.datagrams_sent),
        ] {
            if *value > 0 {
                counter.fetch_add(*value, Ordering::Relaxed);
                *value = 0;
            }
        }
    }
}

/// A conference room hosted by this worker.
struct WorkerRoom {
    number: String,
    room: Room,
    members: usize,
    recording: Option<RecordingSink>,
    /// Brings an 8 kHz room mix (a room of telephones) up to the recording rate; made when
    /// recording starts, so the tick does not allocate.
    recording_upsampler: Option<Resampler>,
}

impl WorkerRoom {
    /// Hands this tick's full mix to the recording writer, at [`ROOM_RATE`].
    fn record_tick(&mut self) {
        let (Some(sink), Some(mix)) = (&self.recording, self.room.recording_mix()) else {
            return;
        };
        let mut frame = [0i16; RECORDING_FRAME];
        match &mut self.recording_upsampler {
            Some(up) if self.room.mix_rate() == up.input_rate() => {
                up.process(mix, &mut frame);
            }
            _ => {
                let n = mix.len().min(RECORDING_FRAME);
                frame[..n].copy_from_slice(&mix[..n]);
            }
        }
        // A slow disk loses recording frames, never call audio.
        let _ = sink.frames.try_send(frame);
    }
}

struct Worker {
    index: usize,
    commands: Receiver<MediaCommand>,
    peers: Arc<[Sender<MediaCommand>]>,
    sessions: Vec<Session>,
    rooms: Vec<Option<WorkerRoom>>,
    /// Sessions this worker handed to another worker, and where: their commands follow them.
    forwarded: std::collections::HashMap<SessionId, usize>,
    stats: Arc<MediaStats>,
    room_config: MixerConfig,
    /// WebRTC clients in this worker's rooms.
    browsers: Vec<BrowserParticipant>,
    /// Reports of WebRTC sessions that ended, until the HTTP side's queue takes them.
    browser_reports: Vec<(CallSender<BrowserReport>, BrowserReport)>,
    /// Where talker detection's changes go.
    talk: CallSender<TalkChange>,
}

impl Worker {
    fn new(
        index: usize,
        commands: Receiver<MediaCommand>,
        peers: Arc<[Sender<MediaCommand>]>,
        stats: Arc<MediaStats>,
        room_config: MixerConfig,
        talk: CallSender<TalkChange>,
    ) -> Self {
        Self {
            index,
            commands,
            peers,
            sessions: Vec::with_capacity(1024),
            rooms: Vec::with_capacity(64),
            forwarded: std::collections::HashMap::new(),
            stats,
            room_config,
            browsers: Vec::with_capacity(64),
            browser_reports: Vec::with_capacity(64),
            talk,
        }
    }

    fn run(mut self) {
        let mut recv_buf = [0u8; MAX_PACKET];
        let mut counts = TickCounts::default();
        let mut packet = [0u8; MAX_PACKET];
        let mut scratch = FrameScratch::new();
        let mut heard = [0i16; MAX_FRAME_SAMPLES];
        let mut schedule = TickSchedule::new(Instant::now(), TICK, MAX_CATCH_UP);
        let mut tick_count: u32 = 0;
        loop {
            let (at, late) = match schedule.poll(Instant::now()) {
                TickStart::Wait(time) => {
                    std::thread::sleep(time);
                    continue;
                }
                TickStart::Run { at, late } => (at, late),
            };
            let clock = TickClock::read();
            // A tick that catches up plays out at its own time, so that jitter buffers see a
            // frame per 20 ms and do not drop the backlog of the stall; the others at the
            // time they run, as the arrival stamps are.
            let now = if late {
                self.stats.late_ticks.fetch_add(1, Ordering::Relaxed);
                at
            } else {
                clock.now
            };
            let now_ntp = ntp_timestamp(clock.wall);
            self.stats.ticks.fetch_add(1, Ordering::Relaxed);
            // Set-up, and str0m's sessions, run on the real clock (str0m holds its time
            // from going backwards).
            if !self.apply_commands(clock.now) {
                return;
            }
            // Receive and decode everyone first, so each room mixes this tick's frames.
            // RTCP comes every few seconds: looking for it every tick would be a wasted
            // syscall per call and tick.
            tick_count = tick_count.wrapping_add(1);
            let drain_rtcp = tick_count.is_multiple_of(RTCP_DRAIN_TICKS);
            for index in 0..self.sessions.len() {
                if let Link::Relay { index: peer } = self.sessions[index].link
                    && let Ok([session, peer]) = self.sessions.get_disjoint_mut([index, peer])
                {
                    let relay = Some((peer, &mut packet));
                    session.receive(&clock, &mut recv_buf, drain_rtcp, relay, &mut counts);
                    session.keep_alive(now, now_ntp, &mut recv_buf, &mut counts);
                    continue;
                }
                let session = &mut self.sessions[index];
                session.receive(&clock, &mut recv_buf, drain_rtcp, None, &mut counts);
                session.keep_alive(now, now_ntp, &mut recv_buf, &mut counts);
                let Some((slot, pid)) = session.conference else {
                    let frame = session.leg.produce(now, &mut scratch, &mut packet);
                    session.capture_tick(&scratch);
                    session.send_frame(frame, &packet, &mut counts);
                    continue;
                };
                let Some(Some(room)) = self.rooms.get_mut(slot) else {
                    continue;
                };
                let room = &mut room.room;
                match session
                    .leg
                    .decode(now, &mut heard, |level| !room.needs_pcm(pid, level))
                {
                    Heard::Pcm(n, Some(payload)) => {
                        room.put_encoded_frame(pid, &heard[..n], payload)
                    }
                    Heard::Pcm(n, None) => room.put_frame(pid, &heard[..n]),
                    Heard::Pause(n) => room.put_pause(pid, &heard[..n]),
                    Heard::LevelOnly(level) => {
                        room.put_level(pid, level);
                        counts.not_decoded += 1;
                    }
                }
            }
            for browser in &mut self.browsers {
                browser.receive(&clock, &mut recv_buf, &mut counts);
                if let Some(Some(room)) = self.rooms.get_mut(browser.slot()) {
                    browser.put_into(now, &mut room.room, &mut heard, &mut counts);
                }
            }
            for (slot, room) in self.rooms.iter_mut().enumerate() {
                let Some(room) = room else { continue };
                room.room.tick();
                let plan = room.room.stats().mix_plan;
                counts.forwarded += u64::from(plan.forwarded);
                counts.encodes += u64::from(plan.encodes);
                while let Some(event) = room.room.poll_event() {
                    report_talk(event, slot, &self.sessions, &self.browsers, &self.talk);
                }
                room.record_tick();
            }
            for session in &mut self.sessions {
                if let Some((slot, _)) = session.conference
                    && let Some(Some(room)) = self.rooms.get(slot)
                {
                    let alone = room.members == 1;
                    session.send_conference(
                        &room.room,
                        alone,
                        &mut scratch,
                        &mut packet,
                        &mut counts,
                    );
                }
            }
            for browser in &mut self.browsers {
                if let Some(Some(room)) = self.rooms.get(browser.slot()) {
                    browser.send_from(clock.now, &room.room, &mut counts);
                }
            }
            self.end_browser_sessions();
            counts.flush(&self.stats);
            self.stats.record_tick(clock.now.elapsed());
        }
    }

    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.sessions.iter_mut().find(|s| s.id == id)
    }

    /// Takes the session at `index` out of the list. A leg it relayed with goes back to
    /// making its own media; the session moved into its place keeps its relay peer pointing
    /// at it.
    fn remove_session(&mut self, index: usize) -> Session {
        if let Link::Relay { index: peer } = self.sessions[index].link
            && let Some(peer) = self.sessions.get_mut(peer)
        {
            peer.set_link(Link::None);
        }
        let mut session = self.sessions.swap_remove(index);
        session.set_link(Link::None);
        if let Some(moved) = self.sessions.get(index)
            && let Link::Relay { index: peer } = moved.link
            && let Some(Session {
                link: Link::Relay { index: back },
                ..
            }) = self.sessions.get_mut(peer)
        {
            *back = index;
        }
        session
    }

    /// Puts a session where `placement` says, on the worker its key belongs to: here, or
    /// handed over (later commands for it follow it there, in order).
    fn settle(&mut self, session: Session, placement: Placement) {
        let id = session.id;
        let target = worker_index_of_room(placement.key(), self.peers.len());
        if target == self.index {
            self.place(session, placement);
            return;
        }
        match self.peers[target].try_send(MediaCommand::Adopt(Box::new(session), placement)) {
            Ok(()) => {
                self.forwarded.insert(id, target);
            }
            Err(err) => {
                if let MediaCommand::Adopt(session, _) = err.into_inner() {
                    session.report(MediaEvent::JoinFailed("media worker busy".into()));
                }
            }
        }
    }

    fn place(&mut self, session: Session, placement: Placement) {
        match placement {
            Placement::Room(join) => self.join(session, join),
            Placement::Call(connection) => self.connect(session, connection),
        }
    }

    /// Connects `session` with its peer once both are here: a relay when they share a codec
    /// (nothing decoded, nothing encoded, no jitter buffer: the far ends' own buffers see
    /// the network as it is), else a room of two that transcodes.
    fn connect(&mut self, mut session: Session, connection: Connection) {
        let id = session.id;
        session.leg.set_mode(MediaMode::Silence);
        let waiting = self
            .sessions
            .iter()
            .position(|s| s.id == connection.peer && matches!(s.link, Link::Waiting(p) if p == id));
        let Some(peer_index) = waiting else {
            session.set_link(Link::Waiting(connection.peer));
            self.sessions.push(session);
            return;
        };
        let peer_codec = self.sessions[peer_index].leg.codec();
        if peer_codec == session.leg.codec() {
            tracing::debug!(session = %id, peer = %connection.peer, codec = ?peer_codec, "call legs relayed packet for packet");
            session.set_link(Link::Relay { index: peer_index });
            let index = self.sessions.len();
            self.sessions[peer_index].set_link(Link::Relay { index });
            self.sessions.push(session);
        } else {
            tracing::debug!(session = %id, peer = %connection.peer, codec = ?session.leg.codec(), ?peer_codec, "call legs transcoded in a room of two");
            let peer = self.remove_session(peer_index);
            for leg in [peer, session] {
                let join = RoomJoin {
                    room: connection.key.clone(),
                    muted: false,
                };
                self.join(leg, join);
            }
        }
    }

    /// The slot of room `number`, opened (empty) if it is not open here yet.
    fn room_slot(&mut self, number: &str) -> usize {
        if let Some(slot) = self
            .rooms
            .iter()
            .position(|r| r.as_ref().is_some_and(|r| r.number == number))
        {
            return slot;
        }
        let room = WorkerRoom {
            number: number.to_owned(),
            room: Room::new(self.room_config),
            members: 0,
            recording: None,
            recording_upsampler: None,
        };
        match self.rooms.iter().position(Option::is_none) {
            Some(free) => {
                self.rooms[free] = Some(room);
                free
            }
            None => {
                self.rooms.push(Some(room));
                self.rooms.len() - 1
            }
        }
    }

    /// Takes participant `pid` out of the room in `slot`; the room closes when it was the last.
    fn leave_slot(&mut self, slot: usize, pid: ParticipantId) {
        if let Some(entry) = self.rooms.get_mut(slot)
            && let Some(room) = entry.as_mut()
        {
            let stats = room.room.stats();
            tracing::debug!(room = %room.number, ?stats, "participant leaves");
            room.room.remove(pid);
            room.members = room.members.saturating_sub(1);
            if room.members == 0 {
                *entry = None;
            }
        }
    }

    fn join(&mut self, mut session: Session, join: RoomJoin) {
        let slot = self.room_slot(&join.room);
        let Some(Some(room)) = self.rooms.get_mut(slot) else {
            return;
        };
        let mut options = ParticipantOptions::new(session.leg.codec());
        options.muted = join.muted;
        match room.room.add(options) {
            Ok(pid) => {
                room.members += 1;
                session.conference = Some((slot, pid));
                session.leg.join_room();
                session.report(MediaEvent::Joined {
                    participants: room.members,
                });
            }
            Err(err) => {
                session.report(MediaEvent::JoinFailed(err.to_string()));
            }
        }
        self.sessions.push(session);
    }

    fn leave(&mut self, id: SessionId) {
        let Some(session) = self.sessions.iter_mut().find(|s| s.id == id) else {
            return;
        };
        let Some((slot, pid)) = session.conference.take() else {
            return;
        };
        session.leg.leave_room();
        self.leave_slot(slot, pid);
    }

    /// Ends the session's part in a call with another leg: out of the room of two, or no
    /// longer relaying (its peer then makes its own media too), or no longer waiting.
    fn disconnect(&mut self, id: SessionId) {
        self.leave(id);
        let Some(index) = self.sessions.iter().position(|s| s.id == id) else {
            return;
        };
        if let Link::Relay { index: peer } = self.sessions[index].link
            && let Some(peer) = self.sessions.get_mut(peer)
        {
            peer.set_link(Link::None);
        }
        self.sessions[index].set_link(Link::None);
        tracing::debug!(session = %id, "disconnected from its call's other leg");
    }

    /// Carries out a command about a WebRTC session.
    fn browser_command(&mut self, command: BrowserCommand, now: Instant) {
        match command {
            BrowserCommand::Start(start) => self.start_browser(*start),
            BrowserCommand::Stop { session, .. } => {
                let mut counts = TickCounts::default();
                if let Some(index) = self.browsers.iter().position(|b| b.has_session(session)) {
                    self.browsers[index].stop(session, now, &mut counts);
                    self.browser_left(index);
                }
                counts.flush(&self.stats);
            }
            BrowserCommand::SetMuted {
                participant, muted, ..
            } => {
                if let Some(browser) = self.browsers.iter().find(|b| b.id() == participant)
                    && let Some(Some(room)) = self.rooms.get_mut(browser.slot())
                {
                    room.room.set_muted(browser.pid(), muted);
                    tracing::debug!(%participant, muted, "WebRTC participant mute changed");
                }
            }
        }
    }

    /// Puts a WebRTC session into its room: a new participant, or the second session (the
    /// other direction) of one that is there.
    fn start_browser(&mut self, start: crate::browser_media::BrowserStart) {
        use crate::browser_media::BrowserDirection;
        let refused = if let Some(browser) = self
            .browsers
            .iter_mut()
            .find(|b| b.id() == start.participant)
        {
            let listens = start.direction == BrowserDirection::Subscribe;
            let (slot, pid) = (browser.slot(), browser.pid());
            match browser.attach(start) {
                Ok(()) => {
                    if listens && let Some(Some(room)) = self.rooms.get_mut(slot) {
                        room.room.set_deaf(pid, false);
                    }
                    None
                }
                Err(refused) => Some(refused),
            }
        } else if start.participant != start.session {
            Some(Refused::new(
                start,
                "the WHIP session it is tied to has ended".to_owned(),
            ))
        } else {
            let slot = self.room_slot(&start.room);
            let Some(Some(room)) = self.rooms.get_mut(slot) else {
                return;
            };
            let mut options = ParticipantOptions::new(CodecKind::Opus);
            options.muted = start.muted;
            // Nothing is encoded for a client that only publishes.
            options.deaf = start.direction == BrowserDirection::Publish;
            match room.room.add(options) {
                Ok(pid) => {
                    room.members += 1;
                    match BrowserParticipant::new(start, slot, pid) {
                        Ok(browser) => {
                            self.browsers.push(browser);
                            None
                        }
                        Err(refused) => {
                            self.leave_slot(slot, pid);
                            Some(refused)
                        }
                    }
                }
                Err(err) => {
                    if room.members == 0 {
                        self.rooms[slot] = None;
                    }
                    Some(Refused::new(start, err.to_string()))
                }
            }
        };
        if let Some(refused) = refused {
            tracing::warn!(session = %refused.session, reason = %refused.reason, "WebRTC session not joined");
            self.browser_reports.push((
                refused.reports,
                BrowserReport {
                    session: refused.session,
                    end: SessionEnd::NotJoined(refused.reason),
                },
            ));
        }
    }

    /// The participant at `index` lost a session: it leaves the room when it has none left;
    /// when the one it lost was its listening one, it goes deaf (nothing is encoded for it).
    fn browser_left(&mut self, index: usize) {
        let browser = &self.browsers[index];
        let (slot, pid) = (browser.slot(), browser.pid());
        if browser.is_empty() {
            self.browsers.swap_remove(index);
            self.leave_slot(slot, pid);
        } else if !browser.listens()
            && let Some(Some(room)) = self.rooms.get_mut(slot)
        {
            room.room.set_deaf(pid, true);
        }
    }

    /// Takes out the WebRTC sessions that ended by themselves this tick and reports them;
    /// reports the HTTP side's queue has no room for wait for the next tick.
    fn end_browser_sessions(&mut self) {
        let mut index = 0;
        while index < self.browsers.len() {
            let before = self.browser_reports.len();
            self.browsers[index].take_ended(&mut self.browser_reports);
            let emptied = self.browsers[index].is_empty();
            if self.browser_reports.len() > before {
                self.browser_left(index);
            }
            if !emptied {
                index += 1;
            }
        }
        self.browser_reports
            .retain(|(reports, report)| match reports.try_send(report.clone()) {
                Ok(()) => false,
                Err(ChannelFull::Full(_)) => true,
                // The server is stopping: nobody is left to tell.
                Err(ChannelFull::Closed(_)) => false,
            });
    }

    /// Takes a session out of whatever room or call it is in and settles it as `placement`
    /// says.
    fn move_session(&mut self, id: SessionId, placement: Placement) {
        let Some(index) = self.sessions.iter().position(|s| s.id == id) else {
            return;
        };
        self.leave(id);
        let session = self.remove_session(index);
        self.settle(session, placement);
    }

    /// Passes a command on to the worker its session moved to; returns it if it is ours.
    fn forward(&mut self, command: MediaCommand) -> Option<MediaCommand> {
        let id = match &command {
            MediaCommand::SetMode(id, _)
            | MediaCommand::SetRemote(id, _)
            | MediaCommand::Stop(id)
            | MediaCommand::JoinRoom(id, _)
            | MediaCommand::Connect(id, _)
            | MediaCommand::LeaveRoom(id)
            | MediaCommand::Disconnect(id)
            | MediaCommand::SetMuted(id, _)
            | MediaCommand::Overlay(id, _)
            | MediaCommand::SendDtmf(id, _)
            | MediaCommand::Capture(id, _)
            | MediaCommand::RekeySrtp(id, _) => *id,
            MediaCommand::Start(_)
            | MediaCommand::SetRecording(..)
            | MediaCommand::Adopt(..)
            | MediaCommand::Browser(_) => {
                return Some(command);
            }
        };
        let Some(&target) = self.forwarded.get(&id) else {
            return Some(command);
        };
        if matches!(command, MediaCommand::Stop(_)) {
            self.forwarded.remove(&id);
        }
        if self.peers[target].try_send(command).is_err() {
            tracing::error!(
                session = %id,
                worker = target,
                "media worker queue full; command dropped"
            );
        }
        None
    }

    /// Returns false when every handle is gone (server shutting down).
    fn apply_commands(&mut self, now: Instant) -> bool {
        loop {
            let command = match self.commands.try_recv() {
                Ok(command) => self.forward(command),
                Err(crossbeam_channel::TryRecvError::Empty) => return true,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return false,
            };
            let Some(command) = command else {
                continue;
            };
            match command {
                MediaCommand::Start(spec) => {
                    let id = spec.id;
                    match Session::new(*spec, now) {
                        Ok(session) => {
                            let leg = &session.leg;
                            tracing::debug!(session = %id, codec = ?leg.codec(), pt = leg.payload_type(), dtmf_pt = ?leg.telephone_event_pt(), "media session started");
                            self.sessions.push(session);
                        }
                        Err(err) => tracing::error!(session = %id, "cannot start media: {err}"),
                    }
                }
                MediaCommand::SetMode(id, mode) => {
                    if let Some(s) = self.session_mut(id) {
                        s.leg.set_mode(mode);
                    }
                }
                MediaCommand::Capture(id, sink) => {
                    if let Some(s) = self.session_mut(id) {
                        s.set_capture(sink);
                    }
                }
                MediaCommand::SetRemote(id, remote) => {
                    if let Some(s) = self.session_mut(id) {
                        s.leg.set_remote(remote, now);
                    }
                }
                MediaCommand::Stop(id) => {
                    self.leave(id);
                    if let Some(index) = self.sessions.iter().position(|s| s.id == id) {
                        let mut session = self.remove_session(index);
                        session.stop(&self.stats);
                    }
                }
                MediaCommand::JoinRoom(id, join) => self.move_session(id, Placement::Room(join)),
                MediaCommand::Connect(id, connection) => {
                    self.move_session(id, Placement::Call(connection))
                }
                MediaCommand::Adopt(session, placement) => {
                    // It may come back to a room of ours after living elsewhere.
                    self.forwarded.remove(&session.id);
                    self.place(*session, placement);
                }
                MediaCommand::LeaveRoom(id) => self.leave(id),
                MediaCommand::Disconnect(id) => self.disconnect(id),
                MediaCommand::SendDtmf(id, digit) => {
                    if let Some(s) = self.sessions.iter_mut().find(|s| s.id == id) {
                        s.queue_dtmf(digit);
                    }
                }
                MediaCommand::RekeySrtp(id, keys) => {
                    if let Some(s) = self.session_mut(id)
                        && let Some(secure) = s.secure.as_deref_mut()
                    {
                        secure.rekey(&keys);
                    }
                }
                MediaCommand::SetMuted(id, muted) => {
                    if let Some(s) = self.sessions.iter().find(|s| s.id == id)
                        && let Some((slot, pid)) = s.conference
                        && let Some(Some(room)) = self.rooms.get_mut(slot)
                    {
                        room.room.set_muted(pid, muted);
                        tracing::debug!(session = %id, muted, "participant mute changed");
                    }
                }
                MediaCommand::Overlay(id, player) => {
                    let worker = self.index;
                    match self.session_mut(id) {
                        Some(s) => {
                            s.leg.set_overlay(player);
                            tracing::debug!(
                                session = %id,
                                worker,
                                in_room = s.conference.is_some(),
                                "overlay set"
                            );
                        }
                        None => {
                            tracing::debug!(session = %id, worker, "overlay for unknown session")
                        }
                    }
                }
                MediaCommand::Browser(command) => self.browser_command(command, now),
                MediaCommand::SetRecording(number, sink) => {
                    if let Some(room) = self.rooms.iter_mut().flatten().find(|r| r.number == number)
                    {
                        room.room.set_recording(sink.is_some());
                        room.recording_upsampler = sink
                            .is_some()
                            .then(|| Resampler::new(NARROWBAND_RATE, ROOM_RATE).ok())
                            .flatten();
                        room.recording = sink;
                    }
                }
            }
        }
    }
}

/// Tells the registry of a talk change in room `slot`. Changes come a few times a second
/// per room at most, so finding the member by a search costs nothing that matters; a member
/// that already left (its last `TalkingStopped`) is not found and not reported.
fn report_talk(
    event: RoomEvent,
    slot: usize,
    sessions: &[Session],
    browsers: &[BrowserParticipant],
    talk: &CallSender<TalkChange>,
) {
    let (pid, talking) = match event {
        RoomEvent::TalkingStarted(pid) => (pid, true),
        RoomEvent::TalkingStopped(pid) => (pid, false),
    };
    let member = sessions
        .iter()
        .find(|s| s.conference == Some((slot, pid)))
        .map(|s| s.id)
        .or_else(|| {
            browsers
                .iter()
                .find(|b| b.slot() == slot && b.pid() == pid)
                .map(BrowserParticipant::id)
        });
    if let Some(member) = member {
        // A full queue drops the change: the page shows a stale talking state for a moment.
        let _ = talk.try_send(TalkChange { member, talking });
    }
}

/// The worker index hosting room `number` among `workers`.
fn worker_index_of_room(number: &str, workers: usize) -> usize {
    // FNV-1a: stable across runs, so a room's worker is predictable in logs.
    let hash = number.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % workers.max(1) as u64) as usize
}

/// Hands out RTP/RTCP port pairs from the configured range.
pub struct PortAllocator {
    low: u16,
    high: u16,
    next: std::sync::Mutex<u16>,
}

impl PortAllocator {
    /// A new allocator over `low..=high` (RTP on even ports).
    pub fn new(low: u16, high: u16) -> Self {
        let low = low + (low % 2);
        Self {
            low,
            high,
            next: std::sync::Mutex::new(low),
        }
    }

    /// Binds a free even/odd pair on `ip`; tries the whole range once.
    pub fn bind_pair(&self, ip: std::net::IpAddr) -> std::io::Result<(UdpSocket, UdpSocket)> {
        match self.bind_even(ip, true)? {
            (rtp, Some(rtcp)) => Ok((rtp, rtcp)),
            (_, None) => Err(std::io::Error::other("RTCP port not bound")),
        }
    }

    /// Binds one free even port on `ip` (a WebRTC session multiplexes everything on one
    /// port, RFC 8843 and RFC 5761), the odd one after it left unused so that pairs stay
    /// aligned; tries the whole range once.
    pub fn bind_one(&self, ip: std::net::IpAddr) -> std::io::Result<UdpSocket> {
        self.bind_even(ip, false).map(|(socket, _)| socket)
    }

    fn bind_even(
        &self,
        ip: std::net::IpAddr,
        pair: bool,
    ) -> std::io::Result<(UdpSocket, Option<UdpSocket>)> {
        let pairs = ((self.high - self.low) / 2).max(1);
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..pairs {
            let port = *next;
            *next = if port + 3 > self.high {
                self.low
            } else {
                port + 2
            };
            let Ok(rtp) = UdpSocket::bind((ip, port)) else {
                continue;
            };
            let rtcp = if pair {
                let Ok(rtcp) = UdpSocket::bind((ip, port + 1)) else {
                    continue;
                };
                Some(rtcp)
            } else {
                None
            };
            // Without stamps, jitter and round-trip times would include how late the worker
            // looked.
            for socket in std::iter::once(&rtp).chain(rtcp.as_ref()) {
                socket.set_nonblocking(true)?;
                if let Err(err) = enable_arrival_times(socket) {
                    tracing::warn!("arrival times unavailable: {err}");
                }
            }
            return Ok((rtp, rtcp));
        }
        Err(std::io::Error::new(
            ErrorKind::AddrInUse,
            "no free RTP port pair in the configured range",
        ))
    }
}
