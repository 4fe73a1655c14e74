//! RTP I/O threads: one paced sender for all participants, one epoll receiver.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use media::codec::{CodecKind, DEFAULT_PTIME_MS, Encoder};
use media::rtp::{RtpStats, is_rtcp, parse_rtp, write_rtp};
use media::tone::{ToneGenerator, ToneSpec};

use crate::measure;
use crate::sip_text::offer_pt;

/// Frame period (RFC 3551 §4.5 default packetisation).
const FRAME: Duration = Duration::from_millis(DEFAULT_PTIME_MS as u64);
/// Pre-encoded frames per cycle: 1 s, so tone and codec state repeat seamlessly enough.
const CYCLE_FRAMES: usize = 50;
/// A frame sent later than this after its slot counts as late (loadgen overloaded).
const LATE_SEND: Duration = Duration::from_millis(5);

/// Sender counters, read by the main thread at the marks.
#[derive(Debug, Default)]
pub struct TxCounters {
    sent: AtomicU64,
    errors: AtomicU64,
    late: AtomicU64,
    max_lag_us: AtomicU64,
}

/// Sender counters over a window.
#[derive(Debug, Clone, Default)]
pub struct TxSummary {
    /// RTP packets sent.
    pub sent_window: u64,
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
            send_errors: self.errors.load(Ordering::Relaxed),
            late_frames: self.late.load(Ordering::Relaxed),
            max_lag_ms: self.max_lag_us.swap(0, Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

impl TxSummary {
    /// Counts between an earlier mark and this one (max lag is already per window).
    pub fn since(&self, earlier: &TxSummary) -> TxSummary {
        TxSummary {
            sent_window: self.sent_window - earlier.sent_window,
            send_errors: self.send_errors - earlier.send_errors,
            late_frames: self.late_frames - earlier.late_frames,
            max_lag_ms: self.max_lag_ms,
        }
    }
}

/// Encodes one second of frames from `pcm_source` with a fresh encoder: sending the same
/// pre-encoded cycle from every participant keeps the load generator's CPU off the box
/// the server is measured on.
fn encode_cycle(codec: CodecKind, tone: Option<ToneSpec>) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut enc = Encoder::new(codec)?;
    let samples = codec.samples_per_frame(DEFAULT_PTIME_MS);
    let mut generator = tone.map(|t| ToneGenerator::new(codec.sample_rate(), t));
    let mut pcm = vec![0i16; samples];
    let mut out = vec![0u8; 1500];
    let mut frames = Vec::with_capacity(CYCLE_FRAMES);
    for _ in 0..CYCLE_FRAMES {
        if let Some(g) = generator.as_mut() {
            g.fill(&mut pcm);
        }
        let n = enc.encode(&pcm, &mut out)?;
        frames.push(out[..n].to_vec());
    }
    Ok(frames)
}

struct TxStream {
    dest: SocketAddr,
    seq: u16,
    ts: u32,
    ssrc: u32,
}

/// Starts the sender: every 20 ms (absolute schedule) one packet per answered participant,
/// a tone for talkers and encoded silence for listeners, until `stop`.
pub fn spawn_sender(
    codec: CodecKind,
    socks: Arc<Vec<UdpSocket>>,
    speakers: Vec<bool>,
    answered: mpsc::Receiver<(usize, Option<SocketAddr>)>,
    stop: Arc<AtomicBool>,
    counters: Arc<TxCounters>,
) -> anyhow::Result<JoinHandle<()>> {
    // -16 dBFS, 440 Hz: a steady speech-level stand-in the mixer's talker detection sees.
    let tone = encode_cycle(codec, Some(ToneSpec::single(440.0, -16.0)))?;
    let silence = encode_cycle(codec, None)?;
    let pt = offer_pt(codec);
    let ticks = codec.rtp_ticks_per_frame(DEFAULT_PTIME_MS);
    std::thread::Builder::new()
        .name("rtp-sender".into())
        .spawn(move || {
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
                let lag = Instant::now().saturating_duration_since(slot);
                if lag > LATE_SEND {
                    counters.late.fetch_add(1, Ordering::Relaxed);
                }
                counters
                    .max_lag_us
                    .fetch_max(lag.as_micros() as u64, Ordering::Relaxed);
                let f = (k % CYCLE_FRAMES as u64) as usize;
                let mut sent = 0;
                let mut errors = 0;
                for (i, st) in streams.iter_mut().enumerate() {
                    let Some(st) = st else { continue };
                    let payload = if speakers[i] { &tone[f] } else { &silence[f] };
                    let marker = k == 0;
                    if let Ok(n) = write_rtp(&mut pkt, pt, marker, st.seq, st.ts, st.ssrc, payload)
                    {
                        match socks[i].send_to(&pkt[..n], st.dest) {
                            Ok(_) => sent += 1,
                            Err(_) => errors += 1,
                        }
                    }
                    st.seq = st.seq.wrapping_add(1);
                    st.ts = st.ts.wrapping_add(ticks);
                }
                counters.sent.fetch_add(sent, Ordering::Relaxed);
                counters.errors.fetch_add(errors, Ordering::Relaxed);
                k += 1;
            }
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

struct RxStream {
    stats: RtpStats,
    ssrc: Option<u32>,
    packets: u64,
    restarts: u32,
    jitter_max_ms: f64,
    /// (packets, extended max seq, restarts) at the window start.
    start: Option<(u64, u32, u32)>,
    /// (packets, expected delta, jitter ms, restarted) at the window end.
    end: Option<(u64, u64, f64, bool)>,
}

impl RxStream {
    fn new(clock: u32) -> Self {
        Self {
            stats: RtpStats::new(clock),
            ssrc: None,
            packets: 0,
            restarts: 0,
            jitter_max_ms: 0.0,
            start: None,
            end: None,
        }
    }

    fn on_packet(&mut self, buf: &[u8], clock: u32, now: Instant) {
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
        if self.start.is_some() && self.end.is_none() {
            let j = self.stats.jitter_duration().as_secs_f64() * 1000.0;
            self.jitter_max_ms = self.jitter_max_ms.max(j);
        }
    }

    fn mark(&mut self) {
        let seq = self.stats.extended_max_seq();
        if let Some((p0, s0, r0)) = self.start {
            if self.end.is_none() {
                let restarted = self.restarts != r0;
                let expected = u64::from(seq.wrapping_sub(s0));
                let jitter = self.stats.jitter_duration().as_secs_f64() * 1000.0;
                self.end = Some((self.packets - p0, expected, jitter, restarted));
            }
        } else {
            self.start = Some((self.packets, seq, self.restarts));
        }
    }
}

/// Summarises per-participant window results.
fn summarise(streams: &[RxStream]) -> RxSummary {
    let mut s = RxSummary::default();
    let (mut expected, mut received_ok, mut jitter_sum, mut jitter_n) = (0u64, 0u64, 0.0, 0u32);
    for st in streams {
        let Some((packets, exp, jitter, restarted)) = st.end else {
            continue;
        };
        s.received_window += packets;
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

/// Owns an epoll instance; closed on drop.
struct Epoll(i32);

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: the fd was returned by epoll_create1 and is closed exactly once.
        unsafe { libc::close(self.0) };
    }
}

/// Starts the receiver: epoll over every participant socket, RTP stats per participant.
pub fn spawn_receiver(
    codec: CodecKind,
    socks: Arc<Vec<UdpSocket>>,
    commands: mpsc::Receiver<RxCommand>,
) -> anyhow::Result<JoinHandle<RxSummary>> {
    // SAFETY: plain syscall, no pointers.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("epoll_create1");
    }
    let ep = Epoll(fd);
    for (i, s) in socks.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: ep.0 and the socket fd are open; ev lives across the call.
        let rc = unsafe { libc::epoll_ctl(ep.0, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error()).context("epoll_ctl");
        }
    }
    let clock = codec.clock_rate();
    std::thread::Builder::new()
        .name("rtp-receiver".into())
        .spawn(move || {
            // Move the whole Epoll in (a closure would capture only the Copy field, and the
            // fd would be closed when this function returns).
            let ep = ep;
            let mut streams: Vec<RxStream> =
                (0..socks.len()).map(|_| RxStream::new(clock)).collect();
            let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
            let mut buf = vec![0u8; 2048];
            loop {
                match commands.try_recv() {
                    Ok(RxCommand::Mark) => streams.iter_mut().for_each(RxStream::mark),
                    Ok(RxCommand::Stop) | Err(mpsc::TryRecvError::Disconnected) => break,
                    Err(mpsc::TryRecvError::Empty) => {}
                }
                // SAFETY: events has room for its length; ep.0 is open.
                let n =
                    unsafe { libc::epoll_wait(ep.0, events.as_mut_ptr(), events.len() as i32, 10) };
                for ev in events.iter().take(n.max(0) as usize) {
                    let i = ev.u64 as usize;
                    let (Some(sock), Some(st)) = (socks.get(i), streams.get_mut(i)) else {
                        continue;
                    };
                    loop {
                        match sock.recv_from(&mut buf) {
                            Ok((len, _)) => st.on_packet(&buf[..len], clock, Instant::now()),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(_) => break,
                        }
                    }
                }
            }
            summarise(&streams)
        })
        .context("spawning receiver thread")
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn tone_cycle_differs_from_silence_cycle() {
        let tone = encode_cycle(CodecKind::Pcmu, Some(ToneSpec::single(440.0, -16.0))).unwrap();
        let silence = encode_cycle(CodecKind::Pcmu, None).unwrap();
        assert_eq!(tone.len(), CYCLE_FRAMES);
        assert_eq!(tone[0].len(), 160);
        assert_ne!(tone[3], silence[3]);
    }
}
