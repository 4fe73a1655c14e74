//! Media workers: threads that own RTP sockets and run every session on a fixed 20 ms tick.
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
use media::codec::{CodecKind, Decoder, Encoder};
use media::dtmf::{DtmfReceiver, DtmfSender};
use media::jitter::{JitterBuffer, JitterConfig, Playout};
use media::relay::RelayStream;
use media::resample::Resampler;
use media::rtcp::{LegQuality, RtcpSession};
use media::rtp::{RtpSender, audio_level, is_rtcp, ntp_timestamp, parse_rtp};
use media::tone::{ToneGenerator, ToneSpec};
use media::wav::PromptPlayer;
use mixer::{MixerConfig, ParticipantId, ParticipantOptions, Room};
use tokio::sync::mpsc::UnboundedSender;

use crate::udp_arrival::{TickClock, enable_arrival_times, recv_with_arrival};

use crate::core_command::CoreCommand;

/// One media tick.
pub const TICK: Duration = Duration::from_millis(20);
/// Upper bound on packets read from one socket per tick, so a flood cannot starve the others.
const MAX_PACKETS_PER_TICK: usize = 32;
/// Ticks between looks at the RTCP sockets (500 ms).
const RTCP_DRAIN_TICKS: u32 = 25;
/// Largest RTP packet we accept (Ethernet MTU).
const MAX_PACKET: usize = 1500;
/// Samples in the longest frame we produce (60 ms at 48 kHz).
const MAX_FRAME_SAMPLES: usize = 2880;

/// Identifies a media session (one call leg) across threads.
pub type SessionId = crate::ids::LegId;

/// What a session does with audio.
pub enum MediaMode {
    /// Send silence (keeps NAT bindings and the peer's jitter buffer fed).
    Silence,
    /// Send back what the caller says (echo test).
    Echo,
    /// Play a prompt, then fall back to silence and report `PlayFinished`.
    Play(PromptPlayer),
}

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
    pub core: UnboundedSender<CoreCommand>,
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
    /// Where DTMF and playback events go.
    pub events: UnboundedSender<MediaEvent>,
}

/// Control messages from call tasks to a worker.
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
    /// Mute or unmute a participant (not heard by the others).
    SetMuted(SessionId, bool),
    /// Start or stop recording the room into a WAV file.
    SetRecording(String, Option<RecordingSink>),
    /// Play a short sound to this session on top of what it hears (prompt, beep).
    Overlay(SessionId, PromptPlayer),
    /// Send a key press to the peer as RFC 4733 events (dropped if it negotiated none).
    SendDtmf(SessionId, char),
    /// A session handed over from another worker (room or call affinity).
    Adopt(Box<Session>, Placement),
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
    /// Connected and sharing a codec: every packet from this leg goes out on `peer`'s.
    Relay {
        /// The peer's position in the worker's session list (kept up to date as sessions
        /// come and go, so the tick finds it without a search).
        index: usize,
        /// This leg's packets rewritten as the peer's outgoing stream.
        stream: RelayStream,
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

/// Events from a session to its call task.
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

/// Handle to all media workers.
#[derive(Clone)]
pub struct MediaWorkers {
    senders: Arc<[Sender<MediaCommand>]>,
    stats: Arc<MediaStats>,
}

impl MediaWorkers {
    /// Starts `count` worker threads; rooms they open mix as `rooms` says.
    pub fn start(count: usize, rooms: MixerConfig) -> std::io::Result<Self> {
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
            std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || Worker::new(index, rx, peers, stats, rooms).run())?;
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

/// One call leg's media, owned by exactly one worker at a time.
pub struct Session {
    spec: SessionSpec,
    mode: MediaMode,
    decoder: Decoder,
    encoder: Encoder,
    jitter: JitterBuffer,
    dtmf: DtmfReceiver,
    sender: RtpSender,
    samples_per_frame: usize,
    rtp_ticks_per_frame: u32,
    /// Room slot and participant id while in a conference.
    conference: Option<(usize, ParticipantId)>,
    /// A prompt or beep heard on top of the conference mix.
    overlay: Option<PromptPlayer>,
    /// Soft tone heard while alone in a room (made at join, so the tick never allocates).
    alone_tone: Option<ToneGenerator>,
    /// RTCP: our reports, the peer's, and receive statistics.
    rtcp: RtcpSession,
    /// When the caller was last heard (RTP; on hold RTCP too), or the media last changed.
    last_heard: Instant,
    /// The media timeout was reported (once is enough: the core ends the call).
    timed_out: bool,
    /// The peer sends and receives (answered, not on hold): the normal media timeout applies.
    peer_active: bool,
    /// The call was answered (media agreed): RTCP goes out from then on, hold or not.
    answered: bool,
    /// Key presses to send as RFC 4733 events: the one being sent (with its start
    /// timestamp) and those waiting, oldest first.
    dtmf_out: Option<(DtmfSender, u32)>,
    dtmf_queue: std::collections::VecDeque<char>,
    /// Another leg this one is connected with, outside a conference room.
    link: Link,
}

/// Key presses waiting to be sent at most (a stuck key must not grow memory).
const DTMF_QUEUE: usize = 32;
/// How long each relayed key press lasts (RFC 4733 events; 100 ms is what phones send).
const DTMF_MS: u32 = 100;

impl Session {
    fn new(spec: SessionSpec) -> Result<Self, String> {
        let codec = spec.codec;
        let samples_per_frame = (codec.sample_rate() * spec.ptime_ms / 1000) as usize;
        if samples_per_frame == 0 || samples_per_frame > MAX_FRAME_SAMPLES {
            return Err(format!("unsupported ptime {} ms", spec.ptime_ms));
        }
        let rtp_ticks_per_frame = codec.clock_rate() * spec.ptime_ms / 1000;
        let decoder = Decoder::new(codec).map_err(|e| e.to_string())?;
        let encoder = Encoder::new(codec).map_err(|e| e.to_string())?;
        let jitter = JitterBuffer::new(JitterConfig::new(codec.clock_rate(), spec.ptime_ms));
        let sender = RtpSender::new(rand::random(), rand::random(), rand::random());
        let now = Instant::now();
        let rtcp = RtcpSession::new(
            sender.ssrc,
            &spec.cname,
            codec.clock_rate(),
            session_bandwidth(codec, spec.ptime_ms),
            rand::random(),
            now,
        );
        Ok(Self {
            spec,
            mode: MediaMode::Silence,
            decoder,
            encoder,
            jitter,
            dtmf: DtmfReceiver::new(),
            sender,
            samples_per_frame,
            rtp_ticks_per_frame,
            conference: None,
            overlay: None,
            alone_tone: None,
            rtcp,
            last_heard: now,
            timed_out: false,
            peer_active: false,
            answered: false,
            dtmf_out: None,
            dtmf_queue: std::collections::VecDeque::with_capacity(DTMF_QUEUE),
            link: Link::None,
        })
    }

    /// Queues a key press for the peer.
    fn queue_dtmf(&mut self, digit: char) {
        if self.spec.telephone_event_pt.is_none() {
            tracing::debug!(session = %self.spec.id, %digit, "peer takes no RFC 4733 events; key not sent");
            return;
        }
        if matches!(self.link, Link::Relay { .. }) {
            // The caller's own event packets are relayed to this leg already.
            return;
        }
        if self.dtmf_queue.len() < DTMF_QUEUE {
            self.dtmf_queue.push_back(digit);
        }
    }

    /// This tick's RFC 4733 packet, if a key press is being sent: it replaces the audio
    /// frame (RFC 4733 §2.5.1.2), carries the event's start timestamp, and the audio
    /// timeline goes on underneath.
    fn send_dtmf_packet(&mut self, packet: &mut [u8; MAX_PACKET], counts: &mut TickCounts) -> bool {
        let Some(pt) = self.spec.telephone_event_pt else {
            return false;
        };
        if self.dtmf_out.is_none() {
            let Some(digit) = self.dtmf_queue.pop_front() else {
                return false;
            };
            let rate = self.spec.codec.clock_rate();
            self.dtmf_out = DtmfSender::new(digit, DTMF_MS, rate, self.spec.ptime_ms)
                .map(|sender| (sender, self.sender.ts));
        }
        let Some((events, start)) = self.dtmf_out.as_mut() else {
            return false;
        };
        let Some(event) = events.next() else {
            self.dtmf_out = None;
            return false;
        };
        let (start, frame_end) = (
            *start,
            self.sender.ts.wrapping_add(self.rtp_ticks_per_frame),
        );
        self.sender.ts = start;
        let written = self
            .sender
            .write(packet, pt, event.marker, &event.payload, 0);
        self.sender.ts = frame_end;
        if let (Ok(size), Some(remote)) = (written, self.spec.remote)
            && self.spec.rtp.send_to(&packet[..size], remote).is_ok()
        {
            counts.sent += 1;
        }
        true
    }

    /// Per tick: sends RTCP when due and notices a caller that fell silent. Both are one
    /// comparison of instants unless something is due.
    fn keep_alive(
        &mut self,
        clock: &TickClock,
        scratch: &mut [u8; MAX_PACKET],
        counts: &mut TickCounts,
    ) {
        let now = clock.now;
        if self.answered && now >= self.rtcp.next_report() {
            let ntp = ntp_timestamp(clock.wall);
            match self.rtcp.poll_report(now, ntp, &self.sender, scratch) {
                Some(Ok(len)) => {
                    if self.send_rtcp(&scratch[..len]) {
                        counts.rtcp_sent += 1;
                    }
                    self.spec.quality.publish(&self.rtcp.quality(&self.sender));
                }
                Some(Err(err)) => tracing::debug!(session = %self.spec.id, "RTCP not built: {err}"),
                None => {}
            }
        }
        let held = !self.peer_active;
        let timeout = if held {
            self.spec.media_timeout_on_hold
        } else {
            self.spec.media_timeout
        };
        if let Some(timeout) = timeout
            && !self.timed_out
            && now.saturating_duration_since(self.last_heard) >= timeout
        {
            self.timed_out = true;
            counts.media_timeouts += 1;
            tracing::info!(session = %self.spec.id, held, silent_for = ?timeout, "no RTP from the caller: media timeout");
            let _ = self.spec.core.send(CoreCommand::MediaTimeout(self.spec.id));
        }
    }

    /// Sends one RTCP compound: on the RTP port with rtcp-mux, else from the RTCP port to
    /// where the peer's RTCP comes from (or its SDP said). Not while the peer holds the call
    /// without an address to send to.
    fn send_rtcp(&self, packet: &[u8]) -> bool {
        if self.spec.rtcp_mux {
            let Some(remote) = self.spec.remote else {
                return false;
            };
            self.spec.rtp.send_to(packet, remote).is_ok()
        } else {
            let Some(remote) = self.spec.remote_rtcp else {
                return false;
            };
            self.spec.rtcp.send_to(packet, remote).is_ok()
        }
    }

    /// Takes one RTCP datagram from the peer that arrived at `now` (`now_ntp` on the wall
    /// clock).
    fn take_rtcp(
        &mut self,
        packet: &[u8],
        from: SocketAddr,
        now: Instant,
        now_ntp: u64,
        counts: &mut TickCounts,
    ) {
        match self.rtcp.on_rtcp(packet, now, now_ntp) {
            Ok(received) => {
                counts.rtcp_received += 1;
                // Symmetric RTCP (RFC 4961), as for RTP: answer where reports come from.
                if !self.spec.rtcp_mux && self.spec.send {
                    self.spec.remote_rtcp = Some(from);
                }
                // A held phone that still reports is alive.
                if !self.peer_active {
                    self.last_heard = now;
                }
                if received.bye {
                    tracing::debug!(session = %self.spec.id, "RTCP BYE from the peer");
                }
                self.spec.quality.publish(&self.rtcp.quality(&self.sender));
            }
            Err(err) => {
                counts.rtcp_rejected += 1;
                tracing::debug!(session = %self.spec.id, %from, "RTCP rejected: {err}");
            }
        }
    }

    /// The leg ends: a last report with BYE (RFC 3550 §6.6), final figures published.
    fn stop(&mut self, stats: &MediaStats) {
        let clock = TickClock::read();
        let mut packet = [0u8; 256];
        if let Ok(len) = self.rtcp.write_bye(
            clock.now,
            ntp_timestamp(clock.wall),
            &self.sender,
            &mut packet,
        ) && self.send_rtcp(&packet[..len])
        {
            stats.rtcp_sent.fetch_add(1, Ordering::Relaxed);
        }
        let quality = self.rtcp.quality(&self.sender);
        self.spec.quality.publish(&quality);
        self.spec.quality.stopped.store(true, Ordering::Release);
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
            let (len, from, stamp) = match recv_with_arrival(&self.spec.rtp, buf) {
                Ok(x) => x,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                // ICMP port unreachable from an earlier send shows up here on Linux; harmless.
                Err(_) => continue,
            };
            let arrival = clock.arrival(stamp);
            let arrival_wall = stamp.unwrap_or(clock.wall);
            let relay = relay.as_mut().map(|(peer, out)| (&mut **peer, &mut **out));
            self.take_packet(&buf[..len], from, arrival, arrival_wall, relay, counts);
        }
        if !drain_rtcp || self.spec.rtcp_mux {
            return;
        }
        for _ in 0..MAX_PACKETS_PER_TICK {
            match recv_with_arrival(&self.spec.rtcp, buf) {
                Ok((len, from, stamp)) => {
                    // Read up to half a second late: date the report by the kernel's stamp.
                    let arrival_ntp = ntp_timestamp(stamp.unwrap_or(clock.wall));
                    self.take_rtcp(&buf[..len], from, clock.arrival(stamp), arrival_ntp, counts);
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(_) => continue,
            }
        }
    }

    fn take_packet(
        &mut self,
        packet: &[u8],
        from: SocketAddr,
        now: Instant,
        arrival_wall: Duration,
        relay: Option<(&mut Session, &mut [u8; MAX_PACKET])>,
        counts: &mut TickCounts,
    ) {
        if is_rtcp(packet) {
            if self.spec.rtcp_mux {
                self.take_rtcp(packet, from, now, ntp_timestamp(arrival_wall), counts);
            }
            return;
        }
        let Ok(rtp) = parse_rtp(packet) else {
            counts.rejected += 1;
            return;
        };
        counts.received += 1;
        self.last_heard = now;
        self.rtcp.on_rtp(rtp.ssrc, rtp.sequence, rtp.timestamp, now);
        if Some(rtp.payload_type) == self.spec.telephone_event_pt {
            if let Some(digit) = self.dtmf.push(rtp.timestamp, rtp.payload) {
                tracing::debug!(session = %self.spec.id, %digit, "DTMF received (RFC 4733)");
                let _ = self.spec.events.send(MediaEvent::Dtmf(digit));
            }
            if let Some((peer, out)) = relay
                && let Some(pt) = peer.spec.telephone_event_pt
            {
                self.relay_to(peer, &rtp, pt, out, counts);
            }
        } else if rtp.payload_type == self.spec.payload_type {
            // Symmetric RTP (RFC 4961): answer to where the media really comes from, which
            // is what gets audio through NAT and VPN concentrators.
            if self.spec.remote != Some(from) && self.spec.send {
                self.spec.remote = Some(from);
            }
            if let Some((peer, out)) = relay {
                let pt = peer.spec.payload_type;
                self.relay_to(peer, &rtp, pt, out, counts);
                return;
            }
            let level = self
                .spec
                .audio_level_ext
                .and_then(|id| audio_level(&rtp, id))
                .map(|l| l.dbov);
            self.jitter
                .push_with_level(rtp.sequence, rtp.timestamp, rtp.payload, level, now);
        } else {
            counts.rejected += 1;
        }
    }

    /// Sends one of our peer's packets on `peer`'s leg as `payload_type`, unchanged but for
    /// its header (see [`RelayStream`]).
    fn relay_to(
        &mut self,
        peer: &mut Session,
        rtp: &media::rtp::RtpPacketInfo<'_>,
        payload_type: u8,
        out: &mut [u8; MAX_PACKET],
        counts: &mut TickCounts,
    ) {
        let Link::Relay { stream, .. } = &mut self.link else {
            return;
        };
        let (Some(remote), true) = (peer.spec.remote, peer.spec.send) else {
            return;
        };
        let ticks = peer.rtp_ticks_per_frame;
        let Ok(Some(len)) = stream.forward(rtp, payload_type, ticks, &mut peer.sender, out) else {
            return;
        };
        if peer.spec.rtp.send_to(&out[..len], remote).is_ok() {
            counts.sent += 1;
            counts.relayed += 1;
        }
    }

    /// Decodes this tick's frame (or conceals a loss) into `heard`; returns its length, and
    /// the payload when it decoded to exactly one frame (a conference may forward it as is).
    /// An Opus frame whose reported level `skip_decode` rejects is not decoded at all: see
    /// [`Heard::LevelOnly`].
    fn decode(
        &mut self,
        now: Instant,
        heard: &mut [i16],
        skip_decode: impl FnOnce(f32) -> bool,
    ) -> Heard<'_> {
        let n = self.samples_per_frame;
        let heard = &mut heard[..n];
        let (decoded, received) = match self.jitter.pop(now) {
            // Only Opus is skipped: libopus takes up after a gap cleanly, while G.722's
            // ADPCM state would be stale, and G.711 costs nothing to decode.
            Playout::Frame {
                level: Some(level), ..
            } if self.spec.codec == CodecKind::Opus && skip_decode(-f32::from(level)) => {
                return Heard::LevelOnly(-f32::from(level));
            }
            Playout::Frame { payload, .. } => {
                let decoded = self.decoder.decode(payload, heard).unwrap_or(0);
                (decoded, (decoded == n).then_some(payload))
            }
            // Opus recovers a lost frame from the next packet's in-band FEC when that is here.
            Playout::Lost { next: Some(next) } => (self.decoder.conceal_before(next, heard), None),
            Playout::Lost { next: None } => (self.decoder.conceal(heard), None),
            Playout::Empty => (0, None),
        };
        if decoded < n {
            heard[decoded..].fill(0);
        }
        Heard::Pcm(n, received)
    }

    /// Two-party media (echo, prompts, silence): builds this tick's PCM and sends it.
    fn produce(
        &mut self,
        heard: &[i16],
        pcm: &mut [i16],
        bufs: &mut SendBuffers,
        counts: &mut TickCounts,
    ) {
        let n = self.samples_per_frame;
        let pcm = &mut pcm[..n];
        match &mut self.mode {
            MediaMode::Silence => pcm.fill(0),
            MediaMode::Echo => pcm.copy_from_slice(&heard[..n]),
            MediaMode::Play(player) => {
                if !player.fill(pcm) {
                    self.mode = MediaMode::Silence;
                    let _ = self.spec.events.send(MediaEvent::PlayFinished);
                }
            }
        }
        self.encode_and_send(pcm, bufs, counts);
    }

    fn encode_and_send(&mut self, pcm: &[i16], bufs: &mut SendBuffers, counts: &mut TickCounts) {
        if self.spec.remote.is_none() || !self.spec.send {
            return;
        }
        let Ok(len) = self.encoder.encode(pcm, &mut bufs.payload) else {
            return;
        };
        let SendBuffers { payload, packet } = bufs;
        self.send_payload(&payload[..len], packet, counts);
    }

    fn send_payload(
        &mut self,
        payload: &[u8],
        packet: &mut [u8; MAX_PACKET],
        counts: &mut TickCounts,
    ) {
        let (Some(remote), true) = (self.spec.remote, self.spec.send) else {
            return;
        };
        if (self.dtmf_out.is_some() || !self.dtmf_queue.is_empty())
            && self.send_dtmf_packet(packet, counts)
        {
            return;
        }
        let Ok(size) = self.sender.write(
            packet,
            self.spec.payload_type,
            false,
            payload,
            self.rtp_ticks_per_frame,
        ) else {
            return;
        };
        if self.spec.rtp.send_to(&packet[..size], remote).is_ok() {
            counts.sent += 1;
        }
    }

    /// Conference output: the room's payload, or the room's mix with a prompt, beep or the
    /// alone tone on top (encoded with the session's own encoder while that lasts).
    fn send_conference(
        &mut self,
        room: &Room,
        alone: bool,
        pcm: &mut [i16],
        bufs: &mut SendBuffers,
        counts: &mut TickCounts,
    ) {
        let Some((_, pid)) = self.conference else {
            return;
        };
        let n = self.samples_per_frame;
        if let Some(overlay) = self.overlay.as_mut() {
            let pcm = &mut pcm[..n];
            let mut extra = [0i16; MAX_FRAME_SAMPLES];
            let playing = overlay.fill(&mut extra[..n]);
            match room.output_pcm(pid) {
                Some(mix) if mix.len() == n => pcm.copy_from_slice(mix),
                _ => pcm.fill(0),
            }
            for (out, add) in pcm.iter_mut().zip(&extra[..n]) {
                *out = out.saturating_add(*add);
            }
            if !playing {
                self.overlay = None;
                let _ = self.spec.events.send(MediaEvent::OverlayFinished);
            }
            self.encode_and_send(pcm, bufs, counts);
        } else if let (true, Some(tone)) = (alone, self.alone_tone.as_mut()) {
            let pcm = &mut pcm[..n];
            tone.fill(pcm);
            self.encode_and_send(pcm, bufs, counts);
        } else if let Some(frame) = room.output(pid) {
            self.send_payload(frame.payload, &mut bufs.packet, counts);
        } else if room.lost_upstream(pid) {
            // The forwarded talker's packet was lost: pass the loss on (see `Room`).
            self.sender.skip_lost(self.rtp_ticks_per_frame);
        }
    }
}

/// What a session's frame of this tick turned into.
enum Heard<'a> {
    /// Samples in the `heard` buffer, and the payload if it was exactly one frame.
    Pcm(usize, Option<&'a [u8]>),
    /// Not decoded: the sender reported this level (dBov) and the room could not hear it.
    LevelOnly(f32),
}

/// Packet counters of one tick, added to the shared [`MediaStats`] once per tick: an atomic
/// add per packet on counters both workers write was a cache line bouncing between cores.
#[derive(Debug, Default)]
struct TickCounts {
    received: u64,
    rejected: u64,
    sent: u64,
    not_decoded: u64,
    forwarded: u64,
    relayed: u64,
    encodes: u64,
    rtcp_sent: u64,
    rtcp_received: u64,
    rtcp_rejected: u64,
    media_timeouts: u64,
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
        ] {
            if *value > 0 {
                counter.fetch_add(*value, Ordering::Relaxed);
                *value = 0;
            }
        }
    }
}

/// Scratch buffers for building packets, owned by the worker.
struct SendBuffers {
    payload: [u8; MAX_PACKET],
    packet: [u8; MAX_PACKET],
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
}

impl Worker {
    fn new(
        index: usize,
        commands: Receiver<MediaCommand>,
        peers: Arc<[Sender<MediaCommand>]>,
        stats: Arc<MediaStats>,
        room_config: MixerConfig,
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
        }
    }

    fn run(mut self) {
        let mut recv_buf = [0u8; MAX_PACKET];
        let mut counts = TickCounts::default();
        let mut bufs = SendBuffers {
            payload: [0u8; MAX_PACKET],
            packet: [0u8; MAX_PACKET],
        };
        let mut pcm = [0i16; MAX_FRAME_SAMPLES];
        let mut heard = [0i16; MAX_FRAME_SAMPLES];
        let mut next_tick = Instant::now() + TICK;
        let mut tick_count: u32 = 0;
        loop {
            let now = Instant::now();
            if now < next_tick {
                std::thread::sleep(next_tick - now);
            } else if now - next_tick > TICK {
                self.stats.late_ticks.fetch_add(1, Ordering::Relaxed);
                // More than a whole tick behind (machine suspended, debugger): resynchronise
                // rather than burst out every missed tick at once.
                next_tick = now;
            }
            let clock = TickClock::read();
            let now = clock.now;
            next_tick += TICK;
            self.stats.ticks.fetch_add(1, Ordering::Relaxed);
            if !self.apply_commands() {
                return;
            }
            // Receive and decode everyone first, so each room mixes this tick's frames.
            // RTCP comes every few seconds: looking for it every tick would be a wasted
            // syscall per call and tick.
            tick_count = tick_count.wrapping_add(1);
            let drain_rtcp = tick_count.is_multiple_of(RTCP_DRAIN_TICKS);
            for index in 0..self.sessions.len() {
                if let Link::Relay { index: peer, .. } = self.sessions[index].link
                    && let Ok([session, peer]) = self.sessions.get_disjoint_mut([index, peer])
                {
                    let relay = Some((peer, &mut bufs.packet));
                    session.receive(&clock, &mut recv_buf, drain_rtcp, relay, &mut counts);
                    session.keep_alive(&clock, &mut recv_buf, &mut counts);
                    continue;
                }
                let session = &mut self.sessions[index];
                session.receive(&clock, &mut recv_buf, drain_rtcp, None, &mut counts);
                session.keep_alive(&clock, &mut recv_buf, &mut counts);
                let Some((slot, pid)) = session.conference else {
                    if let Heard::Pcm(n, _) = session.decode(now, &mut heard, |_| false) {
                        session.produce(&heard[..n], &mut pcm, &mut bufs, &mut counts);
                    }
                    continue;
                };
                let Some(Some(room)) = self.rooms.get_mut(slot) else {
                    continue;
                };
                let room = &mut room.room;
                match session.decode(now, &mut heard, |level| !room.needs_pcm(pid, level)) {
                    Heard::Pcm(n, Some(payload)) => {
                        room.put_encoded_frame(pid, &heard[..n], payload)
                    }
                    Heard::Pcm(n, None) => room.put_frame(pid, &heard[..n]),
                    Heard::LevelOnly(level) => {
                        room.put_level(pid, level);
                        counts.not_decoded += 1;
                    }
                }
            }
            for room in self.rooms.iter_mut().flatten() {
                room.room.tick();
                let plan = room.room.stats().mix_plan;
                counts.forwarded += u64::from(plan.forwarded);
                counts.encodes += u64::from(plan.encodes);
                while room.room.poll_event().is_some() {}
                room.record_tick();
            }
            for session in &mut self.sessions {
                if let Some((slot, _)) = session.conference
                    && let Some(Some(room)) = self.rooms.get(slot)
                {
                    let alone = room.members == 1;
                    session.send_conference(&room.room, alone, &mut pcm, &mut bufs, &mut counts);
                }
            }
            counts.flush(&self.stats);
            self.stats.record_tick(now.elapsed());
        }
    }

    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.sessions.iter_mut().find(|s| s.spec.id == id)
    }

    /// Takes the session at `index` out of the list. A leg it relayed with goes back to
    /// making its own media; the session moved into its place keeps its relay peer pointing
    /// at it.
    fn remove_session(&mut self, index: usize) -> Session {
        if let Link::Relay { index: peer, .. } = self.sessions[index].link
            && let Some(peer) = self.sessions.get_mut(peer)
        {
            peer.link = Link::None;
        }
        let mut session = self.sessions.swap_remove(index);
        session.link = Link::None;
        if let Some(moved) = self.sessions.get(index)
            && let Link::Relay { index: peer, .. } = moved.link
            && let Some(Session {
                link: Link::Relay { index: back, .. },
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
        let id = session.spec.id;
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
                    let _ = session
                        .spec
                        .events
                        .send(MediaEvent::JoinFailed("media worker busy".into()));
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
        let id = session.spec.id;
        session.mode = MediaMode::Silence;
        let waiting = self.sessions.iter().position(|s| {
            s.spec.id == connection.peer && matches!(s.link, Link::Waiting(p) if p == id)
        });
        let Some(peer_index) = waiting else {
            session.link = Link::Waiting(connection.peer);
            self.sessions.push(session);
            return;
        };
        let peer_codec = self.sessions[peer_index].spec.codec;
        if peer_codec == session.spec.codec {
            let clock_rate = peer_codec.clock_rate();
            tracing::debug!(session = %id, peer = %connection.peer, codec = ?peer_codec, "call legs relayed packet for packet");
            session.link = Link::Relay {
                index: peer_index,
                stream: RelayStream::new(clock_rate),
            };
            self.sessions[peer_index].link = Link::Relay {
                index: self.sessions.len(),
                stream: RelayStream::new(clock_rate),
            };
            self.sessions.push(session);
        } else {
            tracing::debug!(session = %id, peer = %connection.peer, codec = ?session.spec.codec, ?peer_codec, "call legs transcoded in a room of two");
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

    fn join(&mut self, mut session: Session, join: RoomJoin) {
        let slot = match self
            .rooms
            .iter()
            .position(|r| r.as_ref().is_some_and(|r| r.number == join.room))
        {
            Some(slot) => slot,
            None => {
                let room = WorkerRoom {
                    number: join.room.clone(),
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
        };
        let Some(Some(room)) = self.rooms.get_mut(slot) else {
            return;
        };
        let mut options = ParticipantOptions::new(session.spec.codec);
        options.muted = join.muted;
        match room.room.add(options) {
            Ok(pid) => {
                room.members += 1;
                session.conference = Some((slot, pid));
                session.mode = MediaMode::Silence;
                // A soft 440 Hz chime, 0.4 s every 4 s, at -32 dBFS: "you are connected".
                session.alone_tone = Some(ToneGenerator::new(
                    session.spec.codec.sample_rate(),
                    ToneSpec::single(440.0, -32.0).with_cadence(400, 3600),
                ));
                let _ = session.spec.events.send(MediaEvent::Joined {
                    participants: room.members,
                });
            }
            Err(err) => {
                let _ = session
                    .spec
                    .events
                    .send(MediaEvent::JoinFailed(err.to_string()));
            }
        }
        self.sessions.push(session);
    }

    fn leave(&mut self, id: SessionId) {
        let Some(session) = self.sessions.iter_mut().find(|s| s.spec.id == id) else {
            return;
        };
        let Some((slot, pid)) = session.conference.take() else {
            return;
        };
        session.overlay = None;
        session.alone_tone = None;
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

    /// Takes a session out of whatever room or call it is in and settles it as `placement`
    /// says.
    fn move_session(&mut self, id: SessionId, placement: Placement) {
        let Some(index) = self.sessions.iter().position(|s| s.spec.id == id) else {
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
            | MediaCommand::SetMuted(id, _)
            | MediaCommand::Overlay(id, _)
            | MediaCommand::SendDtmf(id, _) => *id,
            MediaCommand::Start(_) | MediaCommand::SetRecording(..) | MediaCommand::Adopt(..) => {
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
    fn apply_commands(&mut self) -> bool {
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
                    match Session::new(*spec) {
                        Ok(session) => {
                            tracing::debug!(session = %id, codec = ?session.spec.codec, pt = session.spec.payload_type, dtmf_pt = ?session.spec.telephone_event_pt, "media session started");
                            self.sessions.push(session);
                        }
                        Err(err) => tracing::error!(session = %id, "cannot start media: {err}"),
                    }
                }
                MediaCommand::SetMode(id, mode) => {
                    if let Some(s) = self.session_mut(id) {
                        s.mode = mode;
                    }
                }
                MediaCommand::SetRemote(id, remote) => {
                    if let Some(s) = self.session_mut(id) {
                        s.spec.remote = remote.rtp;
                        s.spec.send = remote.send;
                        s.peer_active = remote.active;
                        s.answered = true;
                        if remote.rtcp.is_some() || remote.rtp.is_none() {
                            s.spec.remote_rtcp = remote.rtcp;
                        }
                        // Silence before an answer or a resume is not the caller's fault.
                        s.last_heard = Instant::now();
                    }
                }
                MediaCommand::Stop(id) => {
                    self.leave(id);
                    if let Some(index) = self.sessions.iter().position(|s| s.spec.id == id) {
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
                    self.forwarded.remove(&session.spec.id);
                    self.place(*session, placement);
                }
                MediaCommand::LeaveRoom(id) => self.leave(id),
                MediaCommand::SendDtmf(id, digit) => {
                    if let Some(s) = self.sessions.iter_mut().find(|s| s.spec.id == id) {
                        s.queue_dtmf(digit);
                    }
                }
                MediaCommand::SetMuted(id, muted) => {
                    if let Some(s) = self.sessions.iter().find(|s| s.spec.id == id)
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
                            s.overlay = Some(player);
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

/// The worker index hosting room `number` among `workers`.
fn worker_index_of_room(number: &str, workers: usize) -> usize {
    // FNV-1a: stable across runs, so a room's worker is predictable in logs.
    let hash = number.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % workers.max(1) as u64) as usize
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
            let Ok(rtcp) = UdpSocket::bind((ip, port + 1)) else {
                continue;
            };
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            // Without stamps, jitter and round-trip times would include how late the worker
            // looked.
            for socket in [&rtp, &rtcp] {
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
