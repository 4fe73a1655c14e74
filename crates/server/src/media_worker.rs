//! Media workers: threads that own RTP sockets and run every session on a fixed 20 ms tick.
//!
//! The tick runs on an absolute schedule (start + k·20 ms), so jitter in one tick never turns
//! into drift. Control (start, stop, mode changes) arrives through a bounded channel drained
//! at the start of each tick; the per-packet and per-frame path allocates nothing and takes
//! no lock. Sessions never move between workers.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use media::codec::{CodecKind, Decoder, Encoder};
use media::dtmf::DtmfReceiver;
use media::jitter::{JitterBuffer, JitterConfig, Playout};
use media::rtp::{RtpSender, is_rtcp, parse_rtp};
use media::wav::PromptPlayer;
use tokio::sync::mpsc::UnboundedSender;

/// One media tick.
pub const TICK: Duration = Duration::from_millis(20);
/// Upper bound on packets read from one socket per tick, so a flood cannot starve the others.
const MAX_PACKETS_PER_TICK: usize = 32;
/// Largest RTP packet we accept (Ethernet MTU).
const MAX_PACKET: usize = 1500;
/// Samples in the longest frame we produce (60 ms at 48 kHz).
const MAX_FRAME_SAMPLES: usize = 2880;

/// Identifies a media session (one call leg) across threads.
pub type SessionId = u64;

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
    /// Bound RTCP socket (RTP port + 1); drained so peers' reports never pile up.
    pub rtcp: UdpSocket,
    /// Where the peer's SDP said to send; replaced by the source of its RTP (symmetric RTP).
    pub remote: Option<SocketAddr>,
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
    /// Where DTMF and playback events go.
    pub events: UnboundedSender<MediaEvent>,
}

/// Control messages from call tasks to a worker.
pub enum MediaCommand {
    /// Take over a new session.
    Start(Box<SessionSpec>),
    /// Change what the session sends.
    SetMode(SessionId, MediaMode),
    /// New remote address or hold state from a re-INVITE.
    SetRemote(SessionId, Option<SocketAddr>, bool),
    /// End the session and close its sockets.
    Stop(SessionId),
}

/// Events from a session to its call task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF digit (RFC 4733), reported once per key press.
    Dtmf(char),
    /// The prompt started with `MediaMode::Play` has ended.
    PlayFinished,
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
}

/// Handle to all media workers.
#[derive(Clone)]
pub struct MediaWorkers {
    senders: Arc<[Sender<MediaCommand>]>,
    stats: Arc<MediaStats>,
}

impl MediaWorkers {
    /// Starts `count` worker threads.
    pub fn start(count: usize) -> std::io::Result<Self> {
        let stats = Arc::new(MediaStats::default());
        let mut senders = Vec::with_capacity(count);
        for index in 0..count.max(1) {
            // Bounded: a stuck worker must push back on call setup, not grow memory.
            let (tx, rx) = bounded(4096);
            let stats = stats.clone();
            std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || Worker::new(rx, stats).run())?;
            senders.push(tx);
        }
        Ok(Self {
            senders: senders.into(),
            stats,
        })
    }

    /// Sends a command to the worker that owns `id`.
    pub fn send(&self, id: SessionId, command: MediaCommand) -> bool {
        let worker = &self.senders[(id % self.senders.len() as u64) as usize];
        match worker.try_send(command) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::error!(session = id, "media worker queue full; command dropped");
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

struct Session {
    spec: SessionSpec,
    mode: MediaMode,
    decoder: Decoder,
    encoder: Encoder,
    jitter: JitterBuffer,
    dtmf: DtmfReceiver,
    sender: RtpSender,
    samples_per_frame: usize,
    rtp_ticks_per_frame: u32,
    heard_anything: bool,
}

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
            heard_anything: false,
        })
    }

    fn receive(&mut self, now: Instant, buf: &mut [u8; MAX_PACKET], stats: &MediaStats) {
        for _ in 0..MAX_PACKETS_PER_TICK {
            let (len, from) = match self.spec.rtp.recv_from(buf) {
                Ok(x) => x,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                // ICMP port unreachable from an earlier send shows up here on Linux; harmless.
                Err(_) => continue,
            };
            let packet = &buf[..len];
            if is_rtcp(packet) {
                continue;
            }
            let Ok(rtp) = parse_rtp(packet) else {
                stats.packets_rejected.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            stats.packets_in.fetch_add(1, Ordering::Relaxed);
            if Some(rtp.payload_type) == self.spec.telephone_event_pt {
                if let Some(digit) = self.dtmf.push(rtp.timestamp, rtp.payload) {
                    let _ = self.spec.events.send(MediaEvent::Dtmf(digit));
                }
            } else if rtp.payload_type == self.spec.payload_type {
                // Symmetric RTP (RFC 4961): answer to where the media really comes from, which
                // is what gets audio through NAT and VPN concentrators.
                if self.spec.remote != Some(from) && self.spec.send {
                    self.spec.remote = Some(from);
                }
                self.heard_anything = true;
                self.jitter
                    .push(rtp.sequence, rtp.timestamp, rtp.payload, now);
            } else {
                stats.packets_rejected.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut rtcp_buf = [0u8; 256];
        for _ in 0..MAX_PACKETS_PER_TICK {
            match self.spec.rtcp.recv_from(&mut rtcp_buf) {
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(_) => continue,
            }
        }
    }

    fn produce(
        &mut self,
        now: Instant,
        pcm: &mut [i16],
        heard: &mut [i16],
        out: &mut [u8; MAX_PACKET],
        payload: &mut [u8; MAX_PACKET],
        stats: &MediaStats,
    ) {
        let n = self.samples_per_frame;
        let heard = &mut heard[..n];
        let decoded = match self.jitter.pop(now) {
            Playout::Frame { payload, .. } => self.decoder.decode(payload, heard).unwrap_or(0),
            Playout::Lost => self.decoder.conceal(heard),
            Playout::Empty => 0,
        };
        if decoded < n {
            heard[decoded..].fill(0);
        }
        let pcm = &mut pcm[..n];
        match &mut self.mode {
            MediaMode::Silence => pcm.fill(0),
            MediaMode::Echo => pcm.copy_from_slice(heard),
            MediaMode::Play(player) => {
                if !player.fill(pcm) {
                    self.mode = MediaMode::Silence;
                    let _ = self.spec.events.send(MediaEvent::PlayFinished);
                }
            }
        }
        let (Some(remote), true) = (self.spec.remote, self.spec.send) else {
            return;
        };
        let Ok(len) = self.encoder.encode(pcm, payload) else {
            return;
        };
        let Ok(size) = self.sender.write(
            out,
            self.spec.payload_type,
            false,
            &payload[..len],
            self.rtp_ticks_per_frame,
        ) else {
            return;
        };
        if self.spec.rtp.send_to(&out[..size], remote).is_ok() {
            stats.packets_out.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Worker {
    commands: Receiver<MediaCommand>,
    sessions: Vec<Session>,
    stats: Arc<MediaStats>,
}

impl Worker {
    fn new(commands: Receiver<MediaCommand>, stats: Arc<MediaStats>) -> Self {
        Self {
            commands,
            sessions: Vec::with_capacity(1024),
            stats,
        }
    }

    fn run(mut self) {
        let mut recv_buf = [0u8; MAX_PACKET];
        let mut out_buf = [0u8; MAX_PACKET];
        let mut payload_buf = [0u8; MAX_PACKET];
        let mut pcm = [0i16; MAX_FRAME_SAMPLES];
        let mut heard = [0i16; MAX_FRAME_SAMPLES];
        let mut next_tick = Instant::now() + TICK;
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
            let now = Instant::now();
            next_tick += TICK;
            self.stats.ticks.fetch_add(1, Ordering::Relaxed);
            if !self.apply_commands() {
                return;
            }
            for session in &mut self.sessions {
                session.receive(now, &mut recv_buf, &self.stats);
                session.produce(
                    now,
                    &mut pcm,
                    &mut heard,
                    &mut out_buf,
                    &mut payload_buf,
                    &self.stats,
                );
            }
        }
    }

    /// Returns false when every handle is gone (server shutting down).
    fn apply_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(MediaCommand::Start(spec)) => {
                    let id = spec.id;
                    match Session::new(*spec) {
                        Ok(session) => self.sessions.push(session),
                        Err(err) => tracing::error!(session = id, "cannot start media: {err}"),
                    }
                }
                Ok(MediaCommand::SetMode(id, mode)) => {
                    if let Some(s) = self.sessions.iter_mut().find(|s| s.spec.id == id) {
                        s.mode = mode;
                    }
                }
                Ok(MediaCommand::SetRemote(id, remote, send)) => {
                    if let Some(s) = self.sessions.iter_mut().find(|s| s.spec.id == id) {
                        s.spec.remote = remote;
                        s.spec.send = send;
                    }
                }
                Ok(MediaCommand::Stop(id)) => self.sessions.retain(|s| s.spec.id != id),
                Err(crossbeam_channel::TryRecvError::Empty) => return true,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return false,
            }
        }
    }
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
            return Ok((rtp, rtcp));
        }
        Err(std::io::Error::new(
            ErrorKind::AddrInUse,
            "no free RTP port pair in the configured range",
        ))
    }
}
