//! RTP I/O threads: one paced sender for all participants, one polling receiver.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use media::codec::{CodecKind, DEFAULT_PTIME_MS, Decoder, Encoder};
use media::rtp::{AudioLevel, RtpStats, add_audio_level, is_rtcp, parse_rtp, write_rtp};
use media::tone::{ToneGenerator, ToneSpec};

use crate::latency::{BURST_MS, CYCLE_MS, Onset, OnsetDetector, RealtimeNs, realtime_now};
use crate::measure;
use crate::sip_text::{AUDIO_LEVEL_EXT_ID, offer_pt};
use crate::udp_rx::{self, TimestampedRx};

/// Frame period (RFC 3551 §4.5 default packetisation).
const FRAME: Duration = Duration::from_millis(DEFAULT_PTIME_MS as u64);
/// Pre-encoded frames per cycle: 1 s, so tone and codec state repeat seamlessly enough.
pub(crate) const CYCLE_FRAMES: usize = (CYCLE_MS / DEFAULT_PTIME_MS) as usize;
/// A frame sent later than this after its slot counts as late (loadgen overloaded).
const LATE_SEND: Duration = Duration::from_millis(5);

/// Sender counters, read by the main thread at the marks.
#[derive(Debug, Default)]
pub struct TxCounters {
    sent: AtomicU64,
    /// UDP payload bytes of the RTP packets sent.
    bytes: AtomicU64,
    errors: AtomicU64,
    late: AtomicU64,
    max_lag_us: AtomicU64,
}

/// Sender counters over a window.
#[derive(Debug, Clone, Default)]
pub struct TxSummary {
    /// RTP packets sent.
    pub sent_window: u64,
    /// Their UDP payload bytes.
    pub bytes_window: u64,
    /// Sends that failed (would block, buffer full).
    pub send_errors: u64,
    /// Frame slots served more than [`LATE_SEND`] late.
    pub late_frames: u64,
    /// Worst lag of a frame slot behind its schedule, ms.
    pub max_lag_ms: f64,
}

impl TxCounters {
    /// Current totals; resets the max-lag tracker so the next mark sees only its window.
    pub fn mark(&self) -> TxSummary {
        TxSummary {
            sent_window: self.sent.load(Ordering::Relaxed),
            bytes_window: self.bytes.load(Ordering::Relaxed),
            send_errors: self.errors.load(Ordering::Relaxed),
            late_frames: self.late.load(Ordering::Relaxed),
            max_lag_ms: self.max_lag_us.swap(0, Ordering::Relaxed) as f64 / 1000.0,
        }
    }

    /// A send slot served `lag` behind its schedule.
    pub fn record_slot(&self, lag: Duration) {
        if lag > LATE_SEND {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        self.max_lag_us
            .fetch_max(lag.as_micros() as u64, Ordering::Relaxed);
    }

    /// One slot's sends: packets and their bytes sent, sends that failed.
    pub fn record_sends(&self, sent: u64, bytes: u64, errors: u64) {
        self.sent.fetch_add(sent, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.errors.fetch_add(errors, Ordering::Relaxed);
    }
}

impl TxSummary {
    /// Counts between an earlier mark and this one (max lag is already per window).
    pub fn since(&self, earlier: &TxSummary) -> TxSummary {
        TxSummary {
            sent_window: self.sent_window - earlier.sent_window,
            bytes_window: self.bytes_window - earlier.bytes_window,
            send_errors: self.send_errors - earlier.send_errors,
            late_frames: self.late_frames - earlier.late_frames,
            max_lag_ms: self.max_lag_ms,
        }
    }
}

/// How talkers talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TalkPattern {
    /// A steady tone, all the time.
    Continuous,
    /// 300 ms tone bursts on a 1 s cycle, staggered per talker (the latency probe).
    Bursts,
    /// The talkers of a room take turns of [`TURN_MS`] each: a conversation, mostly one
    /// voice at a time, with the mixer's hang-over overlapping at each hand-over.
    Turns,
}

/// Length of one talker's turn in the `turns` pattern.
pub const TURN_MS: u32 = 3000;

/// Frames in the talkers' cycle: one second, or one turn per talker.
pub fn talk_cycle_frames(pattern: TalkPattern, talkers: usize) -> usize {
    match pattern {
        TalkPattern::Continuous | TalkPattern::Bursts => CYCLE_FRAMES,
        TalkPattern::Turns => (TURN_MS / DEFAULT_PTIME_MS) as usize * talkers.max(1),
    }
}

/// What one participant sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Encoded silence.
    Listener,
    /// The talk pattern's tone.
    Talker {
        /// Frame of the cycle at which this talker's burst starts.
        offset_frames: usize,
        /// Index into the burst log if this talker's room is probed for latency.
        probe_room: Option<usize>,
    },
}

/// Who talks how, and which rooms' bursts are logged for the latency probe.
#[derive(Debug, Clone)]
pub struct TalkPlan {
    /// Continuous tone or bursts.
    pub pattern: TalkPattern,
    /// Per participant.
    pub roles: Vec<Role>,
    /// Rooms 0..probe_rooms have their burst starts logged.
    pub probe_rooms: usize,
    /// Talkers per room (sets the `turns` cycle).
    pub talkers: usize,
    /// Send each frame's RFC 6464 audio level in a header extension.
    pub audio_level: bool,
}

/// RFC 6464 §3 level of a frame: its RMS in -dBov, 0..=127 (127 also for digital silence);
/// no voice-activity decision (V clear).
fn frame_level(pcm: &[i16]) -> AudioLevel {
    let energy: f64 = pcm.iter().map(|&s| f64::from(s).powi(2)).sum();
    let rms = (energy / pcm.len().max(1) as f64).sqrt();
    let dbov = if rms < 1.0 {
        127
    } else {
        (-20.0 * (rms / 32768.0).log10()).round().clamp(0.0, 127.0) as u8
    };
    AudioLevel { voice: false, dbov }
}

/// Encodes one cycle of frames from `tone` (silence if None) with a fresh encoder, and each
/// frame's RFC 6464 level: sending the same pre-encoded cycle from every participant keeps
/// the load generator's CPU off the box the server is measured on.
pub(crate) fn encode_frames_with_levels(
    mut enc: Encoder,
    tone: Option<ToneSpec>,
    cycle_frames: usize,
) -> anyhow::Result<(Vec<Vec<u8>>, Vec<AudioLevel>)> {
    let codec = enc.kind();
    let samples = codec.samples_per_frame(DEFAULT_PTIME_MS);
    let mut generator = tone.map(|t| ToneGenerator::new(codec.sample_rate(), t));
    let mut pcm = vec![0i16; samples];
    let mut out = vec![0u8; 1500];
    let mut frames = Vec::with_capacity(cycle_frames);
    let mut levels = Vec::with_capacity(cycle_frames);
    for _ in 0..cycle_frames {
        if let Some(g) = generator.as_mut() {
            g.fill(&mut pcm);
        }
        let n = enc.encode(&pcm, &mut out)?;
        frames.push(out[..n].to_vec());
        levels.push(frame_level(&pcm));
    }
    Ok((frames, levels))
}

/// The talkers' cycle, a steady tone or a burst (or turn) starting at sample 0 of frame 0,
/// with each frame's level.
pub(crate) fn talker_cycle_with_levels(
    enc: Encoder,
    pattern: TalkPattern,
    talkers: usize,
) -> anyhow::Result<(Vec<Vec<u8>>, Vec<AudioLevel>)> {
    // -16 dBFS, 440 Hz: a speech-level stand-in the mixer's talker detection sees.
    let tone = ToneSpec::single(440.0, -16.0);
    let cycle_frames = talk_cycle_frames(pattern, talkers);
    let tone = match pattern {
        TalkPattern::Continuous => tone,
        TalkPattern::Bursts => tone.with_cadence(BURST_MS, CYCLE_MS - BURST_MS),
        TalkPattern::Turns => {
            let cycle_ms = cycle_frames as u32 * DEFAULT_PTIME_MS;
            tone.with_cadence(TURN_MS, cycle_ms - TURN_MS)
        }
    };
    encode_frames_with_levels(enc, Some(tone), cycle_frames)
}

struct TxStream {
    dest: SocketAddr,
    seq: u16,
    ts: u32,
    ssrc: u32,
}

/// Send instants (CLOCK_REALTIME ns) of every burst's first frame, per probed room.
pub type BurstLog = Vec<Vec<RealtimeNs>>;

/// Starts the sender: every 20 ms (absolute schedule) one packet per answered participant,
/// the talk pattern for talkers and encoded silence for listeners, until `stop`. Returns
/// the burst log of `probe_rooms` rooms.
pub fn spawn_sender(
    codec: CodecKind,
    socks: Arc<Vec<UdpSocket>>,
    plan: TalkPlan,
    answered: mpsc::Receiver<(usize, Option<SocketAddr>)>,
    stop: Arc<AtomicBool>,
    counters: Arc<TxCounters>,
) -> anyhow::Result<JoinHandle<BurstLog>> {
    let TalkPlan {
        pattern,
        roles,
        probe_rooms,
        talkers,
        audio_level,
    } = plan;
    let (tone, tone_levels) = talker_cycle_with_levels(Encoder::new(codec)?, pattern, talkers)?;
    let tone_frames = tone.len() as u64;
    let (silence, silence_levels) =
        encode_frames_with_levels(Encoder::new(codec)?, None, CYCLE_FRAMES)?;
    let pt = offer_pt(codec);
    let ticks = codec.rtp_ticks_per_frame(DEFAULT_PTIME_MS);
    let log_bursts = pattern == TalkPattern::Bursts;
    std::thread::Builder::new()
        .name("rtp-sender".into())
        .spawn(move || {
            let mut bursts: BurstLog = vec![Vec::new(); probe_rooms];
            let mut streams: Vec<Option<TxStream>> = (0..socks.len()).map(|_| None).collect();
            let mut pkt = vec![0u8; 1500];
            let t0 = Instant::now();
            let mut k: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                while let Ok((i, dest)) = answered.try_recv() {
                    if let Some(slot) = streams.get_mut(i) {
                        let seed = (i as u32).wrapping_mul(2_654_435_761) ^ std::process::id();
                        let Some(dest) = dest else {
                            *slot = None;
                            continue;
                        };
                        *slot = Some(TxStream {
                            dest,
                            seq: (seed >> 16) as u16,
                            ts: seed.rotate_left(7),
                            ssrc: seed | 1,
                        });
                    }
                }
                let slot = t0 + FRAME * (k as u32);
                let now = Instant::now();
                if slot > now {
                    std::thread::sleep(slot - now);
                }
                // Measured after the sleep: oversleeping is lag too.
                counters.record_slot(Instant::now().saturating_duration_since(slot));
                let f = (k % CYCLE_FRAMES as u64) as usize;
                let (mut sent, mut bytes, mut errors) = (0, 0, 0);
                for (i, st) in streams.iter_mut().enumerate() {
                    let Some(st) = st else { continue };
                    let (payload, level, burst_room) = match roles.get(i) {
                        Some(Role::Talker {
                            offset_frames,
                            probe_room,
                        }) => {
                            let g = ((k + tone_frames - *offset_frames as u64 % tone_frames)
                                % tone_frames) as usize;
                            let room = if log_bursts && g == 0 {
                                *probe_room
                            } else {
                                None
                            };
                            (&tone[g], tone_levels[g], room)
                        }
                        _ => (&silence[f], silence_levels[f], None),
                    };
                    let marker = k == 0;
                    let written = write_rtp(&mut pkt, pt, marker, st.seq, st.ts, st.ssrc, payload)
                        .and_then(|n| {
                            if audio_level {
                                add_audio_level(&mut pkt, n, AUDIO_LEVEL_EXT_ID, level)
                            } else {
                                Ok(n)
                            }
                        })
                        .ok();
                    if let Some(n) = written {
                        // The burst's onset is sample 0 of this frame: stamp right at its send.
                        if let Some(log) = burst_room.and_then(|r| bursts.get_mut(r)) {
                            log.push(realtime_now());
                        }
                        match socks[i].send_to(&pkt[..n], st.dest) {
                            Ok(_) => {
                                sent += 1;
                                bytes += n as u64;
                            }
                            Err(_) => errors += 1,
                        }
                    }
                    st.seq = st.seq.wrapping_add(1);
                    st.ts = st.ts.wrapping_add(ticks);
                }
                counters.record_sends(sent, bytes, errors);
                k += 1;
            }
            bursts
        })
        .context("spawning sender thread")
}

/// Commands to the receiver thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxCommand {
    /// Snapshot counters now (first: window start, second: window end).
    Mark,
    /// Return the summary.
    Stop,
}

/// What the receivers saw in the measurement window.
#[derive(Debug, Clone, Default)]
pub struct RxSummary {
    /// RTP packets received by all participants.
    pub received_window: u64,
    /// Their UDP payload bytes.
    pub received_bytes_window: u64,
    /// Participants that received nothing in the window.
    pub silent_receivers: usize,
    /// Packets missing by sequence number, percent of expected.
    pub loss_percent: f64,
    /// Mean over participants of the RFC 3550 jitter at window end, ms.
    pub jitter_mean_ms: f64,
    /// Highest RFC 3550 jitter any participant had during the window, ms.
    pub jitter_max_ms: f64,
    /// Participants whose stream restarted (new SSRC) in the window: left out of loss.
    pub restarted_streams: usize,
}

/// One participant's received stream: loss, jitter and restarts over the window.
pub(crate) struct RxStream {
    stats: RtpStats,
    ssrc: Option<u32>,
    packets: u64,
    /// UDP payload bytes of the RTP packets, and their count at the window start and end.
    bytes: u64,
    bytes_start: u64,
    bytes_window: u64,
    restarts: u32,
    jitter_max_ms: f64,
    /// (packets, extended max seq, restarts) at the window start.
    start: Option<(u64, u32, u32)>,
    /// (packets, expected delta, jitter ms, restarted) at the window end.
    end: Option<(u64, u64, f64, bool)>,
}

impl RxStream {
    pub(crate) fn new(clock: u32) -> Self {
        Self {
            stats: RtpStats::new(clock),
            ssrc: None,
            packets: 0,
            bytes: 0,
            bytes_start: 0,
            bytes_window: 0,
            restarts: 0,
            jitter_max_ms: 0.0,
            start: None,
            end: None,
        }
    }

    /// One datagram that arrived at `now` (RTCP and anything not RTP is skipped). Only the
    /// RTP header is read, which SRTP leaves in the clear.
    pub(crate) fn on_packet(&mut self, buf: &[u8], clock: u32, now: Instant) {
        if is_rtcp(buf) {
            return;
        }
        let Ok(p) = parse_rtp(buf) else { return };
        if self.ssrc != Some(p.ssrc) {
            if self.ssrc.is_some() {
                self.restarts += 1;
            }
            self.ssrc = Some(p.ssrc);
            self.stats = RtpStats::new(clock);
        }
        self.stats.on_packet(p.sequence, p.timestamp, now);
        self.packets += 1;
        self.bytes += buf.len() as u64;
        if self.start.is_some() && self.end.is_none() {
            let j = self.stats.jitter_duration().as_secs_f64() * 1000.0;
            self.jitter_max_ms = self.jitter_max_ms.max(j);
        }
    }

    /// The window starts (first call) or ends (second call) now.
    pub(crate) fn mark(&mut self) {
        let seq = self.stats.extended_max_seq();
        if let Some((p0, s0, r0)) = self.start {
            if self.end.is_none() {
                self.bytes_window = self.bytes - self.bytes_start;
                let restarted = self.restarts != r0;
                let expected = u64::from(seq.wrapping_sub(s0));
                let jitter = self.stats.jitter_duration().as_secs_f64() * 1000.0;
                self.end = Some((self.packets - p0, expected, jitter, restarted));
            }
        } else {
            self.start = Some((self.packets, seq, self.restarts));
            self.bytes_start = self.bytes;
        }
    }
}

/// Summarises per-participant window results.
pub(crate) fn summarise<'a>(streams: impl IntoIterator<Item = &'a RxStream>) -> RxSummary {
    let mut s = RxSummary::default();
    let (mut expected, mut received_ok, mut jitter_sum, mut jitter_n) = (0u64, 0u64, 0.0, 0u32);
    for st in streams {
        let Some((packets, exp, jitter, restarted)) = st.end else {
            continue;
        };
        s.received_window += packets;
        s.received_bytes_window += st.bytes_window;
        if packets == 0 {
            s.silent_receivers += 1;
            continue;
        }
        if restarted {
            s.restarted_streams += 1;
        } else {
            expected += exp;
            received_ok += packets;
        }
        jitter_sum += jitter;
        jitter_n += 1;
        s.jitter_max_ms = s.jitter_max_ms.max(st.jitter_max_ms);
    }
    s.loss_percent = measure::loss_percent(expected, received_ok);
    if jitter_n > 0 {
        s.jitter_mean_ms = jitter_sum / f64::from(jitter_n);
    }
    s
}

/// A sampled listener: decodes what it receives and finds the burst onsets in it.
struct Probe {
    room: usize,
    decoder: Decoder,
    detector: OnsetDetector,
}

/// Maps CLOCK_REALTIME kernel stamps onto the `Instant` base `RtpStats` works in, from one
/// pair of readings taken together (RFC 3550 jitter only uses differences of arrivals).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClockMap {
    instant: Instant,
    real: RealtimeNs,
}

impl ClockMap {
    pub(crate) fn now() -> Self {
        Self {
            instant: Instant::now(),
            real: realtime_now(),
        }
    }

    pub(crate) fn to_instant(self, real: RealtimeNs) -> Instant {
        let d = Duration::from_nanos((real - self.real).unsigned_abs());
        if real >= self.real {
            self.instant + d
        } else {
            self.instant.checked_sub(d).unwrap_or(self.instant)
        }
    }
}

/// Everything the receiver thread keeps: per-participant stats, the probes, their onsets.
struct RxState {
    clock: u32,
    pt: u8,
    sample_rate: u32,
    map: ClockMap,
    streams: Vec<RxStream>,
    probes: Vec<Option<Probe>>,
    onsets: Vec<Onset>,
    pcm: Vec<i16>,
}

impl RxState {
    fn new(
        codec: CodecKind,
        participants: usize,
        probes: &[(usize, usize)],
        map: ClockMap,
    ) -> anyhow::Result<Self> {
        let mut slots: Vec<Option<Probe>> = (0..participants).map(|_| None).collect();
        for &(i, room) in probes {
            if let Some(slot) = slots.get_mut(i) {
                *slot = Some(Probe {
                    room,
                    decoder: Decoder::new(codec)?,
                    detector: OnsetDetector::new(codec.sample_rate()),
                });
            }
        }
        Ok(Self {
            clock: codec.clock_rate(),
            pt: offer_pt(codec),
            sample_rate: codec.sample_rate(),
            map,
            streams: (0..participants)
                .map(|_| RxStream::new(codec.clock_rate()))
                .collect(),
            probes: slots,
            onsets: Vec::new(),
            // 120 ms at 48 kHz: the longest Opus frame.
            pcm: vec![0; 5760],
        })
    }

    /// One datagram for participant `i`. Its arrival is the kernel stamp; `polled` (when
    /// the receiver got round to it, up to a poll period later) only stands in if the
    /// kernel gave no stamp.
    fn on_datagram(
        &mut self,
        i: usize,
        buf: &[u8],
        kernel: Option<RealtimeNs>,
        polled: RealtimeNs,
    ) {
        let arrival = kernel.unwrap_or(polled);
        let Some(st) = self.streams.get_mut(i) else {
            return;
        };
        st.on_packet(buf, self.clock, self.map.to_instant(arrival));
        let Some(probe) = self.probes.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if is_rtcp(buf) {
            return;
        }
        let Ok(p) = parse_rtp(buf) else { return };
        if p.payload_type != self.pt {
            return;
        }
        let Ok(n) = probe.decoder.decode(p.payload, &mut self.pcm) else {
            return;
        };
        if let Some(idx) = self.pcm.get(..n).and_then(|pcm| probe.detector.feed(pcm)) {
            let offset = idx as i64 * 1_000_000_000 / i64::from(self.sample_rate);
            self.onsets.push(Onset {
                room: probe.room,
                at: arrival + offset,
            });
        }
    }
}

/// What the receiver thread hands back.
#[derive(Debug, Clone, Default)]
pub struct RxResult {
    /// Loss and jitter.
    pub summary: RxSummary,
    /// Every onset the probe listeners heard (filter by the window later).
    pub onsets: Vec<Onset>,
}

/// Receiver poll period: half a frame, so a packet waits at most 10 ms in its socket.
const POLL: Duration = Duration::from_millis(10);

/// Starts the receiver: on an absolute 10 ms schedule it drains every participant socket
/// without blocking and feeds RTP stats (arrival = kernel stamp) and the probe listeners
/// `probes` (participant, room). Nobody waits on the sockets, so the server's sendto never
/// has to wake a waiter: on loopback that softirq work would be charged to the server.
pub fn spawn_receiver(
    codec: CodecKind,
    socks: Arc<Vec<UdpSocket>>,
    probes: Vec<(usize, usize)>,
    commands: mpsc::Receiver<RxCommand>,
) -> anyhow::Result<JoinHandle<RxResult>> {
    for s in socks.iter() {
        udp_rx::enable_rx_timestamps(s).context("setsockopt SO_TIMESTAMPNS")?;
    }
    let mut state = RxState::new(codec, socks.len(), &probes, ClockMap::now())?;
    std::thread::Builder::new()
        .name("rtp-receiver".into())
        .spawn(move || {
            let mut rx = TimestampedRx::new();
            let t0 = Instant::now();
            let mut k: u32 = 0;
            loop {
                match commands.try_recv() {
                    Ok(RxCommand::Mark) => state.streams.iter_mut().for_each(RxStream::mark),
                    Ok(RxCommand::Stop) | Err(mpsc::TryRecvError::Disconnected) => break,
                    Err(mpsc::TryRecvError::Empty) => {}
                }
                k += 1;
                let slot = t0 + POLL * k;
                let now = Instant::now();
                if slot > now {
                    std::thread::sleep(slot - now);
                } else {
                    // Fell behind: skip the missed slots rather than spin through them.
                    k = (now.duration_since(t0).as_millis() / POLL.as_millis()) as u32;
                }
                let polled = realtime_now();
                for (i, sock) in socks.iter().enumerate() {
                    let fd = sock.as_raw_fd();
                    // A receive error (none expected on a bound UDP socket) skips the socket
                    // for this slot.
                    while let Ok(n) = rx.recv(fd) {
                        for j in 0..n {
                            if let Some((buf, stamp)) = rx.datagram(j) {
                                state.on_datagram(i, buf, stamp, polled);
                            }
                        }
                        if n < udp_rx::BATCH {
                            break;
                        }
                    }
                }
            }
            RxResult {
                summary: summarise(&state.streams),
                onsets: state.onsets,
            }
        })
        .context("spawning receiver thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_cycle(codec: CodecKind, tone: Option<ToneSpec>) -> anyhow::Result<Vec<Vec<u8>>> {
        Ok(encode_frames_with_levels(Encoder::new(codec)?, tone, CYCLE_FRAMES)?.0)
    }

    fn talker_cycle(
        codec: CodecKind,
        pattern: TalkPattern,
        talkers: usize,
    ) -> anyhow::Result<Vec<Vec<u8>>> {
        Ok(talker_cycle_with_levels(Encoder::new(codec)?, pattern, talkers)?.0)
    }

    fn rtp(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut b = vec![0u8; 200];
        let n = write_rtp(&mut b, 0, false, seq, ts, ssrc, &[0xff; 160]).unwrap();
        b.truncate(n);
        b
    }

    #[test]
    fn window_counts_gap_as_loss_and_ignores_warmup_packets() {
        let t0 = Instant::now();
        let mut st = RxStream::new(8000);
        for s in 0..10u16 {
            st.on_packet(
                &rtp(s, u32::from(s) * 160, 7),
                8000,
                t0 + FRAME * u32::from(s),
            );
        }
        st.mark();
        // 100 more frames with seq 20 and 21 missing: 98 received of 100 expected.
        for s in 10..110u16 {
            if s == 20 || s == 21 {
                continue;
            }
            st.on_packet(
                &rtp(s, u32::from(s) * 160, 7),
                8000,
                t0 + FRAME * u32::from(s),
            );
        }
        st.mark();
        let sum = summarise(&[st]);
        assert_eq!(sum.received_window, 98);
        assert!(
            (sum.loss_percent - 2.0).abs() < 1e-9,
            "{}",
            sum.loss_percent
        );
        assert!(sum.jitter_max_ms < 0.5);
    }

    #[test]
    fn ssrc_change_in_window_is_reported_not_counted_as_loss() {
        let t0 = Instant::now();
        let mut st = RxStream::new(8000);
        st.on_packet(&rtp(1, 0, 1), 8000, t0);
        st.mark();
        st.on_packet(&rtp(50_000, 0, 2), 8000, t0 + FRAME);
        st.on_packet(&rtp(50_001, 160, 2), 8000, t0 + FRAME * 2);
        st.mark();
        let sum = summarise(&[st]);
        assert_eq!(sum.restarted_streams, 1);
        assert_eq!(sum.loss_percent, 0.0);
    }

    #[test]
    fn receiver_without_packets_in_window_is_silent() {
        let mut st = RxStream::new(8000);
        st.mark();
        st.mark();
        assert_eq!(summarise(&[st]).silent_receivers, 1);
    }

    #[test]
    fn jittery_arrivals_raise_jitter() {
        let t0 = Instant::now();
        let mut st = RxStream::new(8000);
        st.mark();
        for s in 0..50u16 {
            // Every other packet arrives 10 ms late.
            let late = if s % 2 == 1 {
                Duration::from_millis(10)
            } else {
                Duration::ZERO
            };
            st.on_packet(
                &rtp(s, u32::from(s) * 160, 7),
                8000,
                t0 + FRAME * u32::from(s) + late,
            );
        }
        st.mark();
        assert!(summarise(&[st]).jitter_max_ms > 5.0);
    }

    #[test]
    fn jitter_comes_from_kernel_stamps_not_from_the_poll_time() {
        const MS: i64 = 1_000_000;
        let map = ClockMap::now();
        let mut stamped = RxState::new(CodecKind::Pcmu, 1, &[], map).unwrap();
        let mut unstamped = RxState::new(CodecKind::Pcmu, 1, &[], map).unwrap();
        stamped.streams[0].mark();
        unstamped.streams[0].mark();
        for s in 0..60u16 {
            // Perfectly paced packets, drained two at a time at a 40 ms poll.
            let sent = map.real + i64::from(s) * 20 * MS;
            let polled = map.real + (i64::from(s) / 2 + 1) * 40 * MS;
            let pkt = rtp(s, u32::from(s) * 160, 7);
            stamped.on_datagram(0, &pkt, Some(sent), polled);
            unstamped.on_datagram(0, &pkt, None, polled);
        }
        stamped.streams[0].mark();
        unstamped.streams[0].mark();
        let with_stamps = summarise(&stamped.streams);
        let from_polls = summarise(&unstamped.streams);
        assert!(with_stamps.jitter_max_ms < 0.01, "{with_stamps:?}");
        // The same packets timed by the poll look jittery: the stamps are what counts.
        assert!(from_polls.jitter_max_ms > 5.0, "{from_polls:?}");
    }

    #[test]
    fn probe_listener_reports_onset_at_arrival_plus_sample_offset() {
        const MS: i64 = 1_000_000;
        let map = ClockMap::now();
        let mut st = RxState::new(CodecKind::Pcmu, 2, &[(1, 4)], map).unwrap();
        let mut enc = Encoder::new(CodecKind::Pcmu).unwrap();
        let mut payload = [0u8; 160];
        let mut tone = ToneGenerator::new(8000, ToneSpec::single(440.0, -16.0));
        let mut pkt = vec![0u8; 200];
        for s in 0..20u16 {
            // 200 ms of silence, then the tone starts 80 samples (10 ms) into frame 10.
            let mut pcm = [0i16; 160];
            match s {
                0..10 => {}
                10 => {
                    tone.fill(&mut pcm[80..]);
                }
                _ => {
                    tone.fill(&mut pcm);
                }
            }
            enc.encode(&pcm, &mut payload).unwrap();
            let n = write_rtp(&mut pkt, 0, false, s, u32::from(s) * 160, 9, &payload).unwrap();
            let arrival = map.real + i64::from(s) * 20 * MS;
            // Participant 0 is no probe: it must not produce onsets.
            st.on_datagram(0, &pkt[..n], Some(arrival), arrival + 5 * MS);
            st.on_datagram(1, &pkt[..n], Some(arrival), arrival + 5 * MS);
        }
        assert_eq!(st.onsets.len(), 1, "{:?}", st.onsets);
        assert_eq!(st.onsets[0].room, 4);
        let after_burst_start = st.onsets[0].at - (map.real + 210 * MS);
        assert!(
            (0..MS).contains(&after_burst_start),
            "onset {after_burst_start} ns after the burst start"
        );
    }

    #[test]
    fn burst_cycle_is_tone_then_silence() {
        let bursts = talker_cycle(CodecKind::Pcmu, TalkPattern::Bursts, 3).unwrap();
        let silence = encode_cycle(CodecKind::Pcmu, None).unwrap();
        let burst_frames = (BURST_MS / DEFAULT_PTIME_MS) as usize;
        assert!(bursts[..burst_frames].iter().all(|f| !silence.contains(f)));
        assert_eq!(bursts[burst_frames..], silence[burst_frames..]);
    }

    #[test]
    fn own_codec_chain_puts_the_onset_within_codec_delay_of_the_burst_start() {
        // Our encoder straight into a decoder, no server: what the probe adds by itself
        // (ramp, threshold crossing, codec look-ahead). Opus: 6.5 ms encoder look-ahead.
        for (codec, max_ms) in [
            (CodecKind::Pcmu, 1.0),
            (CodecKind::G722, 3.0),
            (CodecKind::Opus, 8.0),
        ] {
            let cycle = talker_cycle(codec, TalkPattern::Bursts, 3).unwrap();
            let mut dec = Decoder::new(codec).unwrap();
            let mut det = OnsetDetector::new(codec.sample_rate());
            let mut pcm = vec![0i16; 5760];
            let mut onsets = Vec::new();
            for rep in 0..3 {
                for (f, frame) in cycle.iter().enumerate() {
                    let n = dec.decode(frame, &mut pcm).unwrap();
                    if let Some(i) = det.feed(&pcm[..n]) {
                        let ms = (f * n + i) as f64 * 1000.0 / f64::from(codec.sample_rate());
                        onsets.push((rep, ms));
                    }
                }
            }
            // The first burst has no quiet before it; every later one is found, early.
            assert_eq!(onsets.len(), 2, "{codec:?} {onsets:?}");
            assert!(
                onsets.iter().all(|&(_, ms)| ms < max_ms),
                "{codec:?} {onsets:?}"
            );
        }
    }

    #[test]
    fn tone_cycle_differs_from_silence_cycle() {
        let tone = talker_cycle(CodecKind::Pcmu, TalkPattern::Continuous, 3).unwrap();
        let silence = encode_cycle(CodecKind::Pcmu, None).unwrap();
        assert_eq!(tone.len(), CYCLE_FRAMES);
        assert_eq!(tone[0].len(), 160);
        assert_ne!(tone[3], silence[3]);
    }

    #[test]
    fn level_extension_carries_the_level_and_leaves_the_payload_intact() {
        let mut pkt = [0u8; 64];
        let n = write_rtp(&mut pkt, 0, false, 7, 160, 9, &[1, 2, 3]).unwrap();
        let n = add_audio_level(
            &mut pkt,
            n,
            AUDIO_LEVEL_EXT_ID,
            AudioLevel {
                voice: false,
                dbov: 42,
            },
        )
        .unwrap();
        let info = parse_rtp(&pkt[..n]).unwrap();
        assert_eq!(info.payload, &[1, 2, 3]);
        assert_eq!(info.sequence, 7);
        assert_eq!(&pkt[12..20], &[0xBE, 0xDE, 0, 1, 0x10, 42, 0, 0]);
        assert_eq!(frame_level(&[0; 160]).dbov, 127);
        assert_eq!(frame_level(&[i16::MAX; 160]).dbov, 0);
        // The talkers' -16 dBFS sine has an RMS 3 dB lower.
        let (_, levels) = talker_cycle_with_levels(
            Encoder::new(CodecKind::Pcmu).unwrap(),
            TalkPattern::Continuous,
            3,
        )
        .unwrap();
        assert!(levels.iter().all(|l| l.dbov == 19), "{levels:?}");
    }

    #[test]
    fn turns_cycle_is_one_turn_of_tone_then_the_others_turns_of_silence() {
        let turns = talker_cycle(CodecKind::Pcmu, TalkPattern::Turns, 3).unwrap();
        let turn = (TURN_MS / DEFAULT_PTIME_MS) as usize;
        assert_eq!(turns.len(), 3 * turn);
        let silent = encode_cycle(CodecKind::Pcmu, None).unwrap()[0].clone();
        assert!(turns[..turn].iter().all(|f| *f != silent));
        assert!(turns[turn..].iter().all(|f| *f == silent));
    }
}
