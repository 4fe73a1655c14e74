//! Adaptive jitter buffer: packets in as they arrive, one frame out per playout tick.
//!
//! Playout is scheduled on RTP timestamps. Each packet's transit time (arrival minus RTP
//! timestamp) is kept over a window; the target delay is the 95th percentile of transit
//! above the minimum (the spread the network adds), held up by a slowly decaying peak that a
//! late packet raises at once. A talk spurt starts once its first packet is `target` past its
//! earliest possible arrival; inside a spurt the buffer stretches (emits `Lost` without
//! consuming a packet) when the target grows, and drops at most one frame a second when it is
//! far too deep (clock drift). Silence gaps (RFC 3551 §4.1: timestamp jumps, sequence numbers
//! do not) restart scheduling, which is where a shrunk target takes effect.
//!
//! All storage is allocated in [`JitterBuffer::new`]; `push` and `pop` do not allocate.

use std::time::{Duration, Instant};

use crate::rtp::RtpPacketInfo;

/// Transit samples kept for the delay estimate (about 2.5 s of 20 ms packets).
const TRANSIT_WINDOW: usize = 128;
/// A packet this far behind the playout point is late, further behind it is a restart.
const MAX_MISORDER: u16 = 1000;
/// A forward jump beyond this is a new stream, not an outage (RFC 3550 A.1 MAX_DROPOUT).
const MAX_DROPOUT: u16 = 3000;
/// Pops between two shrinking frame drops (one per second at 20 ms).
const SHRINK_INTERVAL_POPS: u32 = 50;
/// More than this many frames above the target is a backlog, not drift.
const FAST_SHRINK_EXCESS_FRAMES: i64 = 4;
/// Pops the loss lookahead is kept after the last lost packet (10 s at 20 ms): a loss burst
/// every few seconds keeps it, a clean network gives the frame of delay back.
const LOSS_LOOKAHEAD_POPS: u32 = 500;
/// Pops between two frame drops while draining a backlog (100 ms of delay per second).
const FAST_SHRINK_INTERVAL_POPS: u32 = 10;
/// A timestamp gap of more than this many frames, without a sequence gap, ends a talk spurt.
const SPURT_GAP_FRAMES: i64 = 4;
/// The p95 is recomputed every this many transit samples (and on every sample while fewer
/// are known, and at once for a late packet). Recomputing it on every push and pop was ~10 %
/// of server CPU at 1000 calls; a 16-sample (320 ms) lag is far below the 2.5 s window, and
/// a late packet still raises the target at once through the peak.
const PERCENTILE_EVERY: usize = 16;
/// Largest count of samples at or above the p95 rank in a full window (8 of 128), sized with
/// headroom; checked below so that a larger window cannot silently break the p95.
const P95_TOP: usize = TRANSIT_WINDOW / 16 + 2;
const _: () = assert!(TRANSIT_WINDOW - (TRANSIT_WINDOW - 1) * 95 / 100 <= P95_TOP);

/// Jitter buffer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream.
    pub clock_rate: u32,
    /// Frame duration the caller pops at, in ms.
    pub ptime_ms: u32,
    /// Packets the buffer can hold (also the largest sequence span it reorders over).
    pub slots: usize,
    /// Largest payload stored; longer payloads are discarded.
    pub max_payload: usize,
    /// Lower bound of the target delay.
    pub min_delay: Duration,
    /// Upper bound of the target delay.
    pub max_delay: Duration,
    /// Frames concealed while the buffer is empty before it declares the spurt over.
    pub max_underrun_frames: u32,
    /// The decoder makes a lost frame far better from the packet after it: Opus from that
    /// packet's in-band FEC (RFC 6716 §2.1.7), G.711 and G.722 by concealing from both
    /// sides of the gap. While the stream is losing packets, the buffer holds one frame more,
    /// so that the next packet is usually here when a lost frame is due.
    pub loss_lookahead: bool,
}

impl JitterConfig {
    /// Defaults for a stream: 64 slots of 1500 bytes, 10..200 ms target, 60 ms of
    /// concealment on underrun (the PLC mutes after 60 ms anyway).
    pub fn new(clock_rate: u32, ptime_ms: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1000),
            ptime_ms: ptime_ms.clamp(10, 120),
            slots: 64,
            max_payload: 1500,
            // Our playout runs on a 20 ms tick, which adds 0-20 ms of its own; a 10 ms floor
            // keeps mouth-to-ear through a room near 20 ms on a clean network (20 ms made it 40).
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
            max_underrun_frames: 3,
            loss_lookahead: false,
        }
    }
}

/// What the caller plays for this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<'a> {
    /// The next frame's payload, to decode.
    Frame {
        /// The payload, valid until the next `push`/`pop`.
        payload: &'a [u8],
        /// Its RTP timestamp.
        rtp_ts: u32,
        /// The audio level its sender reported (RFC 6464: 0..=127 meaning -dBov), if any.
        level: Option<u8>,
    },
    /// A frame is missing (lost, late, or the buffer is stretching): conceal one frame.
    Lost {
        /// The payload due right after the missing frame, if it is already here: Opus can
        /// recover the missing frame from its in-band FEC (RFC 6716 §2.1.7).
        next: Option<&'a [u8]>,
    },
    /// Nothing to play: not started, or a longer packet still covers this tick.
    Empty,
    /// Nothing to play: the sender pauses between talk spurts (silence suppression, RFC 3551
    /// §4.1, or Opus DTX, RFC 7587 §3.1.3). Not a loss: nothing to conceal.
    Paused,
}

/// What `push` did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Buffered,
    /// Already buffered or played: ignored.
    Duplicate,
    /// Its playout time has passed: dropped.
    Late,
    /// Larger than `max_payload`: dropped.
    TooLarge,
    /// A far jump not yet confirmed by a second packet (RFC 3550 A.1): dropped.
    Stray,
    /// The stream restarted (SSRC change or confirmed jump): buffer reset, packet stored.
    Restarted,
}

/// Counters and the current delay, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JitterStats {
    /// Packets stored.
    pub received: u64,
    /// Frames that never arrived in time and were not covered by a later packet.
    pub lost: u64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Packets discarded (too large, stray, overflow, or dropped to shrink the delay).
    pub discarded: u64,
    /// `Lost` ticks emitted without a lost packet (underrun or stretching).
    pub concealed: u64,
    /// Stream restarts (SSRC change, sequence jump).
    pub restarts: u64,
    /// Target playout delay.
    pub target_delay: Duration,
    /// Delay the current spurt is playing at (above the fastest packet).
    pub current_delay: Duration,
    /// Packets currently buffered.
    pub buffered: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    Buffered,
    Played,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: SlotState,
    seq: u16,
    rtp_ts: u32,
    /// Timestamp unwrapped to 64 bits.
    ts: i64,
    len: usize,
    level: Option<u8>,
}

const FREE_SLOT: Slot = Slot {
    state: SlotState::Free,
    seq: 0,
    rtp_ts: 0,
    ts: 0,
    len: 0,
    level: None,
};

/// Transit samples of the last [`TRANSIT_WINDOW`] packets with their exact running minimum.
#[derive(Debug, Clone)]
struct TransitWindow {
    samples: Box<[i64]>,
    len: usize,
    pos: usize,
    /// Candidates for the window minimum as (sample number, transit), a ring used as a
    /// monotonic deque: transits strictly rise from front to back, so the front is the
    /// minimum; amortised O(1) per sample instead of a 128-sample scan.
    min_q: Box<[(u64, i64)]>,
    min_head: usize,
    min_len: usize,
    /// Samples recorded since the last clear (numbers the deque entries).
    count: u64,
}

impl TransitWindow {
    fn new() -> Self {
        Self {
            samples: vec![0; TRANSIT_WINDOW].into_boxed_slice(),
            len: 0,
            pos: 0,
            min_q: vec![(0, 0); TRANSIT_WINDOW].into_boxed_slice(),
            min_head: 0,
            min_len: 0,
            count: 0,
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.pos = 0;
        self.min_head = 0;
        self.min_len = 0;
        self.count = 0;
    }

    fn record(&mut self, transit: i64) {
        let w = TRANSIT_WINDOW;
        self.samples[self.pos] = transit;
        self.pos = (self.pos + 1) % w;
        self.len = (self.len + 1).min(w);
        // Expire first, so that at most w - 1 entries remain before the push below.
        if self.min_len > 0 && self.min_q[self.min_head].0 + w as u64 <= self.count {
            self.min_head = (self.min_head + 1) % w;
            self.min_len -= 1;
        }
        while self.min_len > 0 && self.min_q[(self.min_head + self.min_len - 1) % w].1 >= transit {
            self.min_len -= 1;
        }
        self.min_q[(self.min_head + self.min_len) % w] = (self.count, transit);
        self.min_len += 1;
        self.count += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Smallest transit in the window (0 while empty).
    fn min(&self) -> i64 {
        if self.min_len == 0 {
            0
        } else {
            self.min_q[self.min_head].1
        }
    }

    /// 95th percentile: the element of rank `(len - 1) * 95 / 100`, as `select_nth_unstable`
    /// would return it.
    fn p95(&self) -> Option<i64> {
        let len = self.len;
        upper_rank(&self.samples[..len], len.checked_sub(1)? * 95 / 100)
    }
}

/// The element of rank `k` (0-based, ascending) of `values`, for ranks within [`P95_TOP`] of
/// the top: one pass keeping the largest few in a small sorted array, no copy of the window
/// and no partition (the p95 of 128 is the 8th largest).
fn upper_rank(values: &[i64], k: usize) -> Option<i64> {
    let m = values
        .len()
        .checked_sub(k)
        .filter(|m| (1..=P95_TOP).contains(m))?;
    // Descending; starting at i64::MIN is exact because `values` holds at least m elements.
    let mut top = [i64::MIN; P95_TOP];
    let top = &mut top[..m];
    for &v in values {
        if v <= top[m - 1] {
            continue;
        }
        let at = top.iter().position(|&t| t < v).unwrap_or(m - 1);
        top.copy_within(at..m - 1, at + 1);
        top[at] = v;
    }
    Some(top[m - 1])
}

/// Adaptive jitter buffer for one RTP stream.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    frame: i64,
    min_ticks: i64,
    max_ticks: i64,
    slots: Box<[Slot]>,
    storage: Box<[u8]>,
    epoch: Option<Instant>,
    ts_ref: Option<(u32, i64)>,
    ssrc: Option<u32>,
    /// `next_seq` is meaningful (a packet has been seen since the last reset).
    anchored: bool,
    next_seq: u16,
    consumed_any: bool,
    playing: bool,
    play_ts: i64,
    underruns: u32,
    pending_jump: Option<u16>,
    transits: TransitWindow,
    /// Samples recorded since `spread` was last computed.
    since_percentile: usize,
    /// p95 minus minimum of the window when last computed (the part of the target that
    /// does not decay).
    spread: i64,
    min_transit: i64,
    /// Slots in state `Buffered`, kept so that `stats` and an empty buffer's `pop` (every
    /// tick between talk spurts) do not scan all slots.
    buffered: usize,
    target: i64,
    peak: i64,
    pops_since_shrink: u32,
    lag: i64,
    /// Pops left of the loss lookahead (see [`JitterConfig::loss_lookahead`]).
    lookahead_pops: u32,
    /// The lookahead has just started: stretch by its frame at the next pop, even where the
    /// spurt already plays up to half a frame above the old target (the tick's phase), which
    /// the usual half-frame tolerance would leave without the extra frame.
    lookahead_stretch: bool,
    stats: JitterStats,
}

impl JitterBuffer {
    /// Creates a buffer, allocating all slots now.
    pub fn new(cfg: JitterConfig) -> Self {
        let slots = cfg.slots.clamp(4, 1024);
        let frame = i64::from(cfg.clock_rate) * i64::from(cfg.ptime_ms) / 1000;
        let to_ticks = |d: Duration| (d.as_micros() as i64) * i64::from(cfg.clock_rate) / 1_000_000;
        let min_ticks = to_ticks(cfg.min_delay);
        let max_ticks = to_ticks(cfg.max_delay).max(min_ticks);
        Self {
            frame,
            min_ticks,
            max_ticks,
            slots: vec![FREE_SLOT; slots].into_boxed_slice(),
            storage: vec![0; slots * cfg.max_payload].into_boxed_slice(),
            epoch: None,
            ts_ref: None,
            ssrc: None,
            anchored: false,
            next_seq: 0,
            consumed_any: false,
            playing: false,
            play_ts: 0,
            underruns: 0,
            pending_jump: None,
            transits: TransitWindow::new(),
            since_percentile: 0,
            spread: 0,
            min_transit: 0,
            buffered: 0,
            target: min_ticks,
            peak: 0,
            pops_since_shrink: 0,
            lag: 0,
            lookahead_pops: 0,
            lookahead_stretch: false,
            stats: JitterStats::default(),
            cfg,
        }
    }

    /// Convenience constructor with defaults for `clock_rate` and `ptime_ms`.
    pub fn with_rate(clock_rate: u32, ptime_ms: u32) -> Self {
        Self::new(JitterConfig::new(clock_rate, ptime_ms))
    }

    /// Counters and delays.
    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.target_delay = self.ticks_to_duration(self.target);
        s.current_delay = self.ticks_to_duration(self.lag.max(0));
        s.buffered = self.buffered;
        s
    }

    /// Current target delay.
    pub fn target_delay(&self) -> Duration {
        self.ticks_to_duration(self.target)
    }

    fn ticks_to_duration(&self, ticks: i64) -> Duration {
        Duration::from_micros((ticks.max(0) as u64) * 1_000_000 / u64::from(self.cfg.clock_rate))
    }

    fn ticks_since_epoch(&self, epoch: Instant, t: Instant) -> i64 {
        let d = t.saturating_duration_since(epoch);
        let rate = u64::from(self.cfg.clock_rate);
        // Whole seconds and the fraction apart, in u64: the same floor as one u128
        // `nanos * rate / 1e9` (whole seconds divide exactly) without the slow u128 division,
        // which runs twice per stream-frame. subsec_nanos < 1e9 and rate < 2^32 fit in u64.
        let whole = d.as_secs().saturating_mul(rate);
        let frac = u64::from(d.subsec_nanos()) * rate / 1_000_000_000;
        i64::try_from(whole.saturating_add(frac)).unwrap_or(i64::MAX)
    }

    fn slot_index(&self, seq: u16) -> usize {
        usize::from(seq) % self.slots.len()
    }

    /// Forgets all packets and timing (new stream); counters are kept.
    pub fn reset(&mut self) {
        self.slots.fill(FREE_SLOT);
        self.ts_ref = None;
        self.anchored = false;
        self.consumed_any = false;
        self.playing = false;
        self.underruns = 0;
        self.pending_jump = None;
        self.transits.clear();
        self.since_percentile = 0;
        self.spread = 0;
        self.min_transit = 0;
        self.buffered = 0;
        self.target = self.min_ticks;
        self.peak = 0;
        self.lag = 0;
        self.lookahead_pops = 0;
        self.lookahead_stretch = false;
    }

    /// Counts frames that never arrived; with loss lookahead on, they start (or prolong) it.
    fn count_lost(&mut self, frames: u64) {
        self.stats.lost += frames;
        if frames > 0 && self.cfg.loss_lookahead {
            self.lookahead_stretch |= self.lookahead_pops == 0;
            self.lookahead_pops = LOSS_LOOKAHEAD_POPS;
        }
    }

    /// Stores a parsed RTP packet; an SSRC change restarts the buffer.
    pub fn push_rtp(&mut self, pkt: &RtpPacketInfo<'_>, arrival: Instant) -> PushOutcome {
        let restarted = match self.ssrc {
            Some(s) if s != pkt.ssrc => {
                self.reset();
                self.stats.restarts += 1;
                true
            }
            _ => false,
        };
        self.ssrc = Some(pkt.ssrc);
        let outcome = self.push(pkt.sequence, pkt.timestamp, pkt.payload, arrival);
        if restarted && outcome == PushOutcome::Buffered {
            PushOutcome::Restarted
        } else {
            outcome
        }
    }

    /// Stores a packet that arrived at `arrival`.
    pub fn push(&mut self, seq: u16, rtp_ts: u32, payload: &[u8], arrival: Instant) -> PushOutcome {
        self.push_with_level(seq, rtp_ts, payload, None, arrival)
    }

    /// [`push`](Self::push) with the audio level the sender reported for this packet, handed
    /// back with the frame at playout, so that the caller can skip decoding a silent one.
    pub fn push_with_level(
        &mut self,
        seq: u16,
        rtp_ts: u32,
        payload: &[u8],
        level: Option<u8>,
        arrival: Instant,
    ) -> PushOutcome {
        let epoch = *self.epoch.get_or_insert(arrival);
        let arrival_ticks = self.ticks_since_epoch(epoch, arrival);
        if payload.len() > self.cfg.max_payload {
            self.stats.discarded += 1;
            return PushOutcome::TooLarge;
        }
        let n = self.slots.len();
        if !self.anchored {
            self.anchored = true;
            self.next_seq = seq;
            self.consumed_any = false;
        }
        let ahead = seq.wrapping_sub(self.next_seq);
        let behind = self.next_seq.wrapping_sub(seq);
        let mut outcome = PushOutcome::Buffered;
        if usize::from(ahead) < n {
            // Within the window: the normal case.
        } else if behind <= MAX_MISORDER {
            if !self.consumed_any && self.fits_before_start(seq) {
                // Reordered before anything was played: start earlier.
                self.next_seq = seq;
            } else {
                let slot = self.slots[self.slot_index(seq)];
                if slot.state == SlotState::Played && slot.seq == seq {
                    self.stats.duplicates += 1;
                    return PushOutcome::Duplicate;
                }
                self.stats.late += 1;
                let ts = self.unwrap_ts(rtp_ts);
                let transit = arrival_ticks - ts;
                // Grow at once (§ module doc): this packet would have needed this much delay.
                self.peak = self.peak.max(transit - self.min_transit);
                // A late packet is the spread changing under us: refresh the p95 now too.
                self.record_transit(transit, true);
                return PushOutcome::Late;
            }
        } else if ahead < MAX_DROPOUT {
            // An outage longer than the buffer: skip ahead, keeping the stream's timing.
            let buffered = self.buffered as u64;
            self.count_lost(u64::from(ahead).saturating_sub(buffered));
            self.stats.discarded += buffered;
            self.slots.fill(FREE_SLOT);
            self.buffered = 0;
            self.next_seq = seq;
            self.consumed_any = false;
            self.playing = false;
        } else if self.pending_jump == Some(seq) {
            // Second sequential packet after a far jump: the sender restarted (RFC 3550 A.1).
            self.reset();
            self.stats.restarts += 1;
            self.anchored = true;
            self.next_seq = seq;
            outcome = PushOutcome::Restarted;
        } else {
            self.pending_jump = Some(seq.wrapping_add(1));
            self.stats.discarded += 1;
            return PushOutcome::Stray;
        }
        self.pending_jump = None;

        let idx = self.slot_index(seq);
        let slot = self.slots[idx];
        if slot.state == SlotState::Buffered && slot.seq == seq {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        let ts = self.unwrap_ts(rtp_ts);
        // Only the payload is copied; the rest of the max_payload stride is never touched.
        let start = idx * self.cfg.max_payload;
        self.storage[start..start + payload.len()].copy_from_slice(payload);
        if slot.state != SlotState::Buffered {
            self.buffered += 1;
        }
        self.slots[idx] = Slot {
            state: SlotState::Buffered,
            seq,
            rtp_ts,
            ts,
            len: payload.len(),
            level,
        };
        self.stats.received += 1;
        self.record_transit(arrival_ticks - ts, false);
        outcome
    }

    /// Whether moving `next_seq` back to `seq` keeps every buffered packet in the window.
    fn fits_before_start(&self, seq: u16) -> bool {
        let n = self.slots.len();
        self.slots
            .iter()
            .filter(|s| s.state == SlotState::Buffered)
            .all(|s| usize::from(s.seq.wrapping_sub(seq)) < n)
    }

    fn unwrap_ts(&mut self, rtp_ts: u32) -> i64 {
        let ext = match self.ts_ref {
            Some((raw, ext)) => ext + i64::from(rtp_ts.wrapping_sub(raw) as i32),
            None => i64::from(rtp_ts),
        };
        self.ts_ref = Some((rtp_ts, ext));
        ext
    }

    /// Adds a transit sample; the minimum is exact at once, the p95 is refreshed every
    /// [`PERCENTILE_EVERY`] samples (or now, if `refresh`).
    fn record_transit(&mut self, transit: i64, refresh: bool) {
        self.transits.record(transit);
        self.min_transit = self.transits.min();
        self.since_percentile += 1;
        if refresh
            || self.transits.len() < PERCENTILE_EVERY
            || self.since_percentile >= PERCENTILE_EVERY
        {
            self.since_percentile = 0;
            if let Some(p95) = self.transits.p95() {
                self.spread = p95 - self.min_transit;
            }
        }
        self.apply_target();
    }

    /// O(1): the window statistics are cached, so the per-pop peak decay costs nothing.
    fn apply_target(&mut self) {
        let lookahead = if self.lookahead_pops > 0 {
            self.frame
        } else {
            0
        };
        self.target =
            (self.spread.max(self.peak) + lookahead).clamp(self.min_ticks, self.max_ticks);
    }

    /// The first buffered packet at or after `next_seq`.
    fn first_buffered(&self) -> Option<Slot> {
        // Between talk spurts every tick would otherwise scan all slots for nothing.
        if self.buffered == 0 {
            return None;
        }
        // Steady state finds `next_seq` itself at k = 0; longer scans only cross loss gaps.
        let n = self.slots.len() as u16;
        (0..n).find_map(|k| {
            let seq = self.next_seq.wrapping_add(k);
            let s = self.slots[self.slot_index(seq)];
            (s.state == SlotState::Buffered && s.seq == seq).then_some(s)
        })
    }

    /// A `Lost` playout with the payload due right after the concealed frame, if here.
    fn lost(&self) -> Playout<'_> {
        Playout::Lost {
            next: self.next_payload(),
        }
    }

    /// The payload due right after a frame `pop` has just concealed (as in `Playout::Lost`).
    fn next_payload(&self) -> Option<&[u8]> {
        if !self.playing {
            return None;
        }
        let s = self.slots[self.slot_index(self.next_seq)];
        let half = self.frame / 2;
        let due = (self.play_ts - half..=self.play_ts + half).contains(&s.ts);
        (s.state == SlotState::Buffered && s.seq == self.next_seq && due).then(|| {
            let start = self.slot_index(s.seq) * self.cfg.max_payload;
            &self.storage[start..start + s.len]
        })
    }

    /// Returns what to play for the tick at `now`; call once per frame.
    pub fn pop(&mut self, now: Instant) -> Playout<'_> {
        let Some(epoch) = self.epoch else {
            return Playout::Empty;
        };
        let now_ticks = self.ticks_since_epoch(epoch, now);
        // Shrinks slowly: 1 ms of peak per 100 ms of playout at 20 ms frames.
        self.peak = (self.peak - self.frame / 100).max(0);
        self.lookahead_pops = self.lookahead_pops.saturating_sub(1);
        self.apply_target();
        if !self.anchored {
            return Playout::Empty;
        }
        let Some(mut p) = self.first_buffered() else {
            if !self.playing {
                return self.idle();
            }
            self.underruns += 1;
            if self.underruns > self.cfg.max_underrun_frames {
                self.playing = false;
                return self.idle();
            }
            self.play_ts += self.frame;
            self.stats.concealed += 1;
            return self.lost();
        };
        let half = self.frame / 2;
        if self.playing {
            let gap = i64::from(p.seq.wrapping_sub(self.next_seq));
            let expected_next_ts = p.ts - gap * self.frame;
            if expected_next_ts > self.play_ts + SPURT_GAP_FRAMES * self.frame {
                // Silence between talk spurts: schedule the new spurt afresh.
                self.playing = false;
            }
        }
        if !self.playing {
            let lag = now_ticks - (p.ts + self.min_transit);
            if lag < self.target {
                return self.idle();
            }
            self.count_lost(u64::from(p.seq.wrapping_sub(self.next_seq)));
            self.next_seq = p.seq;
            self.playing = true;
            self.play_ts = p.ts;
            self.pops_since_shrink = 0;
            self.lag = lag;
            return self.emit(p);
        }

        self.lag = now_ticks - (self.play_ts + self.min_transit);
        self.pops_since_shrink = self.pops_since_shrink.saturating_add(1);
        let stretch_below = if std::mem::take(&mut self.lookahead_stretch) {
            self.target
        } else {
            self.target - half
        };
        if self.lag < stretch_below {
            // Target grew: play this tick from concealment and keep the packet.
            self.stats.concealed += 1;
            return self.lost();
        }
        // Far too deep (e.g. after the worker skipped ticks while the box was overloaded):
        // drain faster than the inaudible once-a-second drop, or the backlog stays for minutes.
        let excess = self.lag - self.target;
        let interval = if excess > FAST_SHRINK_EXCESS_FRAMES * self.frame {
            FAST_SHRINK_INTERVAL_POPS
        } else {
            SHRINK_INTERVAL_POPS
        };
        if excess > 2 * self.frame && self.pops_since_shrink >= interval {
            self.pops_since_shrink = 0;
            let idx = self.slot_index(self.next_seq);
            if p.seq == self.next_seq {
                self.slots[idx].state = SlotState::Free;
                self.buffered = self.buffered.saturating_sub(1);
                self.stats.discarded += 1;
            } else {
                self.count_lost(1);
            }
            self.next_seq = self.next_seq.wrapping_add(1);
            self.play_ts += self.frame;
            match self.first_buffered() {
                Some(next) => p = next,
                None => {
                    self.play_ts += self.frame;
                    self.stats.concealed += 1;
                    return self.lost();
                }
            }
        }
        // Missing packets whose time an underrun already concealed are just counted.
        while self.next_seq != p.seq {
            let gap = i64::from(p.seq.wrapping_sub(self.next_seq));
            let expected = p.ts - gap * self.frame;
            if expected >= self.play_ts - half {
                break;
            }
            self.count_lost(1);
            self.next_seq = self.next_seq.wrapping_add(1);
        }
        if self.next_seq != p.seq {
            let gap = i64::from(p.seq.wrapping_sub(self.next_seq));
            let expected = p.ts - gap * self.frame;
            self.play_ts += self.frame;
            if expected <= self.play_ts - self.frame + half {
                self.count_lost(1);
                self.next_seq = self.next_seq.wrapping_add(1);
                return self.lost();
            }
            return Playout::Empty;
        }
        if p.ts <= self.play_ts + half {
            self.emit(p)
        } else {
            // The previous packet was longer than one frame.
            self.play_ts += self.frame;
            Playout::Empty
        }
    }

    /// Nothing plays between talk spurts: the sender pauses once a spurt has played, or the
    /// first has not started yet.
    fn idle(&self) -> Playout<'static> {
        if self.consumed_any {
            Playout::Paused
        } else {
            Playout::Empty
        }
    }

    fn emit(&mut self, p: Slot) -> Playout<'_> {
        let idx = self.slot_index(p.seq);
        self.slots[idx].state = SlotState::Played;
        self.buffered = self.buffered.saturating_sub(1);
        self.next_seq = p.seq.wrapping_add(1);
        self.play_ts = p.ts + self.frame;
        self.consumed_any = true;
        self.underruns = 0;
        let start = idx * self.cfg.max_payload;
        Playout::Frame {
            payload: &self.storage[start..start + p.len],
            rtp_ts: p.rtp_ts,
            level: p.level,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FRAME_MS: u64 = 20;

    /// A seeded xorshift: `rnd(m)` is uniform-ish in 0..m, the same sequence every run.
    fn seeded_random() -> impl FnMut(u64) -> u64 {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        move |m| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        }
    }

    /// What a pop returned, owned, for assertions.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Out {
        Frame(u8, u32),
        Lost,
        Empty,
    }

    fn take(p: Playout<'_>) -> Out {
        match p {
            Playout::Frame {
                payload, rtp_ts, ..
            } => Out::Frame(payload[0], rtp_ts),
            Playout::Lost { .. } => Out::Lost,
            Playout::Empty | Playout::Paused => Out::Empty,
        }
    }

    /// Runs a scenario: packets `(index, arrival_ms)` with seq = base + index, ts = 160 ×
    /// index; pops every 20 ms from `pop_offset_ms` for `ticks`. Payload byte = index.
    fn run(
        jb: &mut JitterBuffer,
        base_seq: u16,
        base_ts: u32,
        packets: &[(u16, u64)],
        ticks: u64,
    ) -> Vec<Out> {
        let t0 = Instant::now();
        let mut events: Vec<(u64, u8, usize)> = packets
            .iter()
            .enumerate()
            .map(|(k, &(_, at))| (at, 0, k))
            .collect();
        for t in 0..ticks {
            events.push((t * FRAME_MS + 5, 1, 0));
        }
        // Pushes before pops at the same instant.
        events.sort();
        let mut out = Vec::new();
        for (at, kind, k) in events {
            let now = t0 + Duration::from_millis(at);
            if kind == 0 {
                let idx = packets[k].0;
                let seq = base_seq.wrapping_add(idx);
                let ts = base_ts.wrapping_add(u32::from(idx) * 160);
                jb.push(seq, ts, &[idx as u8; 160], now);
            } else {
                out.push(take(jb.pop(now)));
            }
        }
        out
    }

    fn frames(out: &[Out]) -> Vec<u8> {
        out.iter()
            .filter_map(|o| match o {
                Out::Frame(i, _) => Some(*i),
                _ => None,
            })
            .collect()
    }

    fn count_lost(out: &[Out]) -> usize {
        out.iter().filter(|o| **o == Out::Lost).count()
    }

    fn regular(n: u16) -> Vec<(u16, u64)> {
        (0..n).map(|i| (i, u64::from(i) * FRAME_MS)).collect()
    }

    #[test]
    fn in_order_stream_plays_every_frame_once_in_order() {
        let mut jb = JitterBuffer::with_rate(8000, 20);
        let out = run(&mut jb, 1000, 5000, &regular(50), 60);
        assert_eq!(frames(&out), (0..50).collect::<Vec<u8>>());
        assert_eq!(count_lost(&out[..50]), 0);
        assert!(matches!(out[0], Out::Empty), "buffers before playing");
        assert_eq!(out[1], Out::Frame(0, 5000));
        let st = jb.stats();
        assert_eq!(st.received, 50);
        assert_eq!((st.lost, st.late, st.duplicates), (0, 0, 0));
        assert_eq!(st.target_delay, Duration::from_millis(10));
    }

    /// A concealed gap offers the packet after it (for Opus FEC) once that has arrived,
    /// and nothing while it has not.
    #[test]
    fn after_a_loss_the_next_packet_is_offered_when_it_is_here() {
        let mut jb = JitterBuffer::with_rate(8000, 20);
        let t0 = Instant::now();
        let mut offered = Vec::new();
        for tick in 0..30u16 {
            let now = t0 + Duration::from_millis(u64::from(tick) * FRAME_MS);
            // Packet 10 never comes; packet 20 is lost and 21 comes 30 ms late.
            for i in [tick, tick.wrapping_sub(2)] {
                let late = i == 21;
                if i != 10 && i != 20 && (i == tick) != late && i < 30 {
                    jb.push(i, u32::from(i) * 160, &[i as u8; 160], now);
                }
            }
            if let Playout::Lost { next } = jb.pop(now) {
                offered.push((tick, next.map(|p| p[0])));
            }
        }
        // Packet 11 is waiting when 10 is concealed; 21 is not yet when 20 is (what follows
        // is the buffer stretching for the late 21).
        assert_eq!(offered[..2], [(11, Some(11)), (21, None)], "{offered:?}");
    }

    /// Frames concealed for lost packets of a stream with 0..30 ms of jitter, split into
    /// those offered the packet after them and those not, and the
    /// target delay at the end, after 11 s without loss.
    fn lost_frames_offered_their_next_packet(loss_lookahead: bool) -> (usize, usize, Duration) {
        let mut jb = JitterBuffer::new(JitterConfig {
            loss_lookahead,
            ..JitterConfig::new(8000, 20)
        });
        let mut rnd = seeded_random();
        let lossy = 600u16;
        let total = lossy + 550;
        let mut events: Vec<(u64, Option<u16>)> = (0..total)
            .filter(|i| *i >= lossy || i % 25 != 12)
            .map(|i| (u64::from(i) * FRAME_MS + rnd(30), Some(i)))
            .collect();
        // Ticks 17 ms into each frame: the spurt starts playing just above the target.
        events.extend((0..u64::from(total)).map(|t| (t * FRAME_MS + 17, None)));
        events.sort();
        let t0 = Instant::now();
        let (mut offered, mut not) = (0, 0);
        for (at, packet) in events {
            let now = t0 + Duration::from_millis(at);
            match packet {
                Some(i) => {
                    jb.push(i, u32::from(i) * 160, &[i as u8; 160], now);
                }
                None => match jb.pop(now) {
                    Playout::Lost { next: Some(_) } => offered += 1,
                    Playout::Lost { next: None } => not += 1,
                    _ => {}
                },
            }
        }
        (offered, not, jb.target_delay())
    }

    /// Opus carries each frame's FEC in the next packet: while packets are being lost, the
    /// buffer waits one frame more so that the next packet is here when a lost frame is due,
    /// and gives the frame back once the loss has stopped for a while.
    #[test]
    fn loss_lookahead_holds_a_frame_more_while_packets_are_lost() {
        let (offered, not, clean_target) = lost_frames_offered_their_next_packet(true);
        let (offered_plain, not_plain, plain_target) = lost_frames_offered_their_next_packet(false);
        assert!(
            offered >= 20 && not <= 4,
            "with lookahead: {offered} lost frames offered their next packet, {not} not"
        );
        assert!(
            not_plain >= 8,
            "without lookahead: {offered_plain} offered, {not_plain} not"
        );
        assert_eq!(clean_target, plain_target, "the extra frame is given back");
    }

    #[test]
    fn each_frame_comes_back_with_the_level_pushed_with_it() {
        let mut jb = JitterBuffer::with_rate(8000, 20);
        let t0 = Instant::now();
        let mut levels = Vec::new();
        for i in 0..20u16 {
            let at = t0 + Duration::from_millis(u64::from(i) * FRAME_MS);
            // Reported levels vary per packet; every third packet carries none.
            let level = (i % 3 != 0).then_some(u8::try_from(i * 5).unwrap_or(127));
            jb.push_with_level(i, u32::from(i) * 160, &[i as u8; 160], level, at);
            if let Playout::Frame { payload, level, .. } = jb.pop(at) {
                levels.push((payload[0], level));
            }
        }
        assert!(levels.len() >= 15, "{levels:?}");
        for (frame, level) in levels {
            let i = u16::from(frame);
            assert_eq!(level, (i % 3 != 0).then_some((i * 5) as u8), "frame {i}");
        }
    }

    #[test]
    fn reordered_packets_within_depth_play_in_order() {
        let mut jb = JitterBuffer::with_rate(8000, 20);
        // Odd packets overtake the even ones by 10 ms.
        let packets: Vec<(u16, u64)> = (0..40u16)
            .map(|i| {
                let at = u64::from(i) * FRAME_MS;
                if i % 2 == 0 { (i, at + 15) } else { (i, at) }
            })
            .collect();
        let out = run(&mut jb, 7, 0, &packets, 50);
        assert_eq!(frames(&out), (0..40).collect::<Vec<u8>>());
        assert_eq!(jb.stats().late, 0);
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn loss_yields_lost_exactly_once_per_missing_frame() {
        let mut jb = JitterBuffer::with_rate(8000, 20);
        let packets: Vec<(u16, u64)> = regular(40)
            .into_iter()
            .filter(|(i, _)| ![10, 20, 21].contains(i))
            .collect();
        let out = run(&mut jb, 0, 0, &packets, 45);
        let expected: Vec<u8> = (0..40).filter(|i| ![10, 20, 21].contains(i)).collect();
        assert_eq!(frames(&out), expected);
        let played: Vec<&Out> = out
            .iter()
            .skip_while(|o| **o == Out::Empty)
            .take(40)
            .collect();
        assert_eq!(played.iter().filter(|o| ***o == Out::Lost).count(), 3);
        // The Lost ticks sit exactly where the missing frames belong.
        assert_eq!(*played[10], Out::Lost);
        assert_eq!(*played[20], Out::Lost);
        assert_eq!(*played[21], Out::Lost);
        assert_eq!(jb.stats().lost, 3);
    }

    #[test]
    fn sequence_and_timestamp_wrap_around() {
        let mut jb = JitterBuffer::with_rate(8000, 20);
        let out = run(&mut jb, 65530, u32::MAX - 800, &regular(20), 25);
        assert_eq!(frames(&out), (0..20).collect::<Vec<u8>>());
        assert_eq!(jb.stats().lost, 0);
        assert_eq!(count_lost(&out[..21]), 0);
    }

    #[test]
    fn duplicate_is_ignored() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::with_rate(8000, 20);
        assert_eq!(jb.push(1, 0, &[1], t0), PushOutcome::Buffered);
        assert_eq!(jb.push(1, 0, &[1], t0), PushOutcome::Duplicate);
        assert_eq!(
            jb.push(2, 160, &[2], t0 + Duration::from_millis(20)),
            PushOutcome::Buffered
        );
        let first = take(jb.pop(t0 + Duration::from_millis(25)));
        assert_eq!(first, Out::Frame(1, 0));
        // A copy of an already played packet is a duplicate too, not a late packet.
        assert_eq!(
            jb.push(1, 0, &[1], t0 + Duration::from_millis(30)),
            PushOutcome::Duplicate
        );
        assert_eq!(
            take(jb.pop(t0 + Duration::from_millis(45))),
            Out::Frame(2, 160)
        );
        let st = jb.stats();
        assert_eq!((st.duplicates, st.late, st.received), (2, 0, 2));
    }

    #[test]
    fn late_packet_is_dropped_counted_and_raises_the_target() {
        let mut jb = JitterBuffer::with_rate(8000, 20);
        // Packet 10 arrives 100 ms late, after 11 and 12 have been played around it.
        let packets: Vec<(u16, u64)> = regular(30)
            .into_iter()
            .map(|(i, at)| if i == 10 { (i, at + 100) } else { (i, at) })
            .collect();
        let before = jb.target_delay();
        let out = run(&mut jb, 0, 0, &packets, 35);
        assert!(!frames(&out).contains(&10));
        let st = jb.stats();
        assert_eq!(st.late, 1);
        assert_eq!(st.lost, 1);
        assert!(
            st.target_delay >= before + Duration::from_millis(60),
            "{st:?}"
        );
    }

    /// Deterministic pseudo-random delays 0..max_ms.
    fn jittered(n: u16, max_ms: u64) -> Vec<(u16, u64)> {
        let mut rnd = seeded_random();
        (0..n)
            .map(|i| (i, u64::from(i) * FRAME_MS + rnd(max_ms)))
            .collect()
    }

    #[test]
    fn target_delay_grows_with_jitter_and_few_packets_are_late() {
        let mut calm = JitterBuffer::with_rate(8000, 20);
        run(&mut calm, 0, 0, &jittered(300, 2), 310);
        let mut rough = JitterBuffer::with_rate(8000, 20);
        let out = run(&mut rough, 0, 0, &jittered(300, 60), 320);
        let (c, r) = (calm.stats(), rough.stats());
        assert_eq!(c.target_delay, Duration::from_millis(10));
        assert!(r.target_delay >= Duration::from_millis(45), "{r:?}");
        assert!(r.target_delay <= Duration::from_millis(200));
        // Once adapted, only the early packets (before the window filled) may be late.
        assert!(r.late + r.lost < 15, "{r:?}");
        let played = frames(&out);
        // Payload bytes wrap at 256.
        assert!(
            played
                .windows(2)
                .all(|w| (1..128).contains(&w[1].wrapping_sub(w[0]))),
            "in order"
        );
    }

    #[test]
    fn silence_gap_restarts_scheduling_without_counting_loss() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::with_rate(8000, 20);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut out = Vec::new();
        let mut paused = Vec::new();
        // Spurt 1: seq 0..5; silence of 1 s (ts jumps 8000), spurt 2: seq 5..10.
        for tick in 0..80u64 {
            let now_ms = tick * FRAME_MS;
            for i in 0..10u16 {
                let (ts, arrive) = if i < 5 {
                    (u32::from(i) * 160, u64::from(i) * FRAME_MS)
                } else {
                    (8000 + u32::from(i) * 160, 1000 + u64::from(i) * FRAME_MS)
                };
                if arrive == now_ms {
                    jb.push(i, ts, &[i as u8], at(arrive));
                }
            }
            let playout = jb.pop(at(now_ms + 5));
            paused.push(matches!(playout, Playout::Paused));
            out.push(take(playout));
        }
        assert_eq!(frames(&out), (0..10).collect::<Vec<u8>>());
        let st = jb.stats();
        assert_eq!(st.lost, 0);
        // Only the underrun concealment after each spurt (3 frames = 60 ms).
        assert_eq!(count_lost(&out), 6, "{out:?}");
        assert_eq!(st.concealed, 6);
        // Nothing plays before the first spurt (not a pause), then the sender pauses from
        // the end of the first spurt's concealment to the start of the second.
        let first = out
            .iter()
            .position(|o| matches!(o, Out::Frame(..)))
            .expect("played");
        assert!(!paused[..first].iter().any(|&p| p), "{paused:?}");
        let second = out
            .iter()
            .position(|o| *o == Out::Frame(5, 8000 + 5 * 160))
            .expect("second spurt");
        let pause_start = first + 5 + 3;
        assert!(
            paused[pause_start..second].iter().all(|&p| p) && second - pause_start > 30,
            "{paused:?}"
        );
        assert!(!paused[second..].iter().take(5).any(|&p| p));
    }

    #[test]
    fn ssrc_change_restarts_the_buffer() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::with_rate(8000, 20);
        let pkt = |ssrc, seq, ts| RtpPacketInfo {
            payload_type: 0,
            marker: false,
            sequence: seq,
            timestamp: ts,
            ssrc,
            csrc_count: 0,
            payload: &[9],
            extension: None,
        };
        assert_eq!(jb.push_rtp(&pkt(1, 100, 0), t0), PushOutcome::Buffered);
        assert_eq!(jb.push_rtp(&pkt(2, 40000, 123), t0), PushOutcome::Restarted);
        assert_eq!(jb.stats().restarts, 1);
        assert_eq!(jb.stats().buffered, 1);
        let p = take(jb.pop(t0 + Duration::from_millis(30)));
        assert_eq!(p, Out::Frame(9, 123));
    }

    #[test]
    fn far_sequence_jump_needs_two_packets_to_restart() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::with_rate(8000, 20);
        jb.push(10, 0, &[1], t0);
        assert_eq!(jb.push(30000, 0, &[2], t0), PushOutcome::Stray);
        assert_eq!(jb.push(30001, 160, &[3], t0), PushOutcome::Restarted);
        assert_eq!(jb.stats().restarts, 1);
        assert_eq!(
            take(jb.pop(t0 + Duration::from_millis(25))),
            Out::Frame(3, 160)
        );
    }

    #[test]
    fn a_backlog_from_skipped_pops_drains_within_seconds() {
        let mut jb = JitterBuffer::with_rate(8000, 20);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut next = 0u16;
        let mut deliver = |jb: &mut JitterBuffer, until_ms: u64| {
            while u64::from(next) * FRAME_MS <= until_ms {
                jb.push(
                    next,
                    u32::from(next) * 160,
                    &[0; 160],
                    at(u64::from(next) * FRAME_MS),
                );
                next += 1;
            }
        };
        for t in 0..100u64 {
            deliver(&mut jb, t * FRAME_MS);
            jb.pop(at(t * FRAME_MS + 5));
        }
        let settled = jb.stats().current_delay;
        // The popper stalls for 300 ms (an overloaded worker skips its ticks), then resumes.
        deliver(&mut jb, 2300);
        let mut t = 116u64;
        jb.pop(at(t * FRAME_MS + 5));
        let backlog = jb.stats().current_delay;
        assert!(
            backlog >= settled + Duration::from_millis(250),
            "{settled:?} -> {backlog:?}"
        );
        for _ in 0..150 {
            t += 1;
            deliver(&mut jb, t * FRAME_MS);
            jb.pop(at(t * FRAME_MS + 5));
        }
        // 3 s later it is back within three frames of where it was, not 250 ms deep.
        let drained = jb.stats().current_delay;
        assert!(
            drained <= settled + Duration::from_millis(60),
            "{settled:?} -> {drained:?}"
        );
    }

    #[test]
    fn outage_longer_than_buffer_skips_ahead_and_counts_loss() {
        let mut jb = JitterBuffer::with_rate(8000, 20);
        let packets: Vec<(u16, u64)> = regular(200)
            .into_iter()
            .filter(|(i, _)| *i < 10 || *i >= 110)
            .collect();
        let out = run(&mut jb, 0, 0, &packets, 205);
        let f = frames(&out);
        assert_eq!(f.len(), 100);
        assert_eq!(jb.stats().lost, 100);
    }

    #[test]
    fn oversized_payload_is_rejected() {
        let t0 = Instant::now();
        let mut cfg = JitterConfig::new(8000, 20);
        cfg.max_payload = 100;
        let mut jb = JitterBuffer::new(cfg);
        assert_eq!(jb.push(1, 0, &[0; 101], t0), PushOutcome::TooLarge);
        assert_eq!(jb.push(1, 0, &[0; 100], t0), PushOutcome::Buffered);
    }

    #[test]
    fn longer_packets_are_followed_by_empty_ticks() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::with_rate(8000, 20);
        let mut out = Vec::new();
        for tick in 0..20u64 {
            let now = t0 + Duration::from_millis(tick * 20);
            if tick % 2 == 0 {
                let i = (tick / 2) as u16;
                jb.push(i, u32::from(i) * 320, &[i as u8], now);
            }
            out.push(take(jb.pop(now + Duration::from_millis(5))));
        }
        assert_eq!(frames(&out), (0..10).collect::<Vec<u8>>());
        assert_eq!(jb.stats().lost, 0);
        assert_eq!(count_lost(&out), 0, "{out:?}");
    }

    /// Pushes packet `i` of a 20 ms stream `delay_ms` after its nominal time, then pops the
    /// tick 5 ms after that nominal time (as a 20 ms playout clock would).
    fn step(jb: &mut JitterBuffer, t0: Instant, i: u16, delay_ms: u64) -> Out {
        let nominal = u64::from(i) * FRAME_MS;
        jb.push(
            i,
            u32::from(i) * 160,
            &[i as u8],
            t0 + Duration::from_millis(nominal + delay_ms),
        );
        take(jb.pop(t0 + Duration::from_millis(nominal + 5)))
    }

    #[test]
    fn target_follows_a_jump_in_jitter_within_a_second() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::with_rate(8000, 20);
        let mut rnd = seeded_random();
        for i in 0..300 {
            step(&mut jb, t0, i, rnd(2));
        }
        assert_eq!(jb.target_delay(), Duration::from_millis(10));
        // One second of packets with 0..60 ms of jitter.
        for i in 300..350 {
            step(&mut jb, t0, i, rnd(60));
        }
        let ms = |ticks: i64| ticks / 8;
        // The percentile itself has moved, not only the peak raised by late packets.
        assert!(ms(jb.spread) >= 35, "spread {} ms", ms(jb.spread));
        assert!(jb.target_delay() >= Duration::from_millis(35));
        // And it comes down again once the jittery second has left the 2.5 s window.
        for i in 350..500 {
            step(&mut jb, t0, i, rnd(2));
        }
        assert!(ms(jb.spread) <= 5, "spread {} ms", ms(jb.spread));
    }

    #[test]
    fn single_late_packet_raises_the_target_at_once() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::with_rate(8000, 20);
        // Packet 60 is held back and arrives 121 ms late, 4 samples after a refresh.
        for i in 0..68 {
            if i != 60 {
                step(&mut jb, t0, i, 0);
            }
        }
        assert_eq!(jb.target_delay(), Duration::from_millis(10));
        assert_ne!(jb.since_percentile, PERCENTILE_EVERY - 1);
        let outcome = jb.push(60, 60 * 160, &[60], t0 + Duration::from_millis(1321));
        assert_eq!(outcome, PushOutcome::Late);
        // Before any further pop: the next spurt would need the delay this packet needed.
        assert!(
            jb.target_delay() >= Duration::from_millis(115),
            "{:?}",
            jb.target_delay()
        );
        assert_eq!(
            jb.since_percentile, 0,
            "p95 refreshed at once for a late packet"
        );
    }

    #[test]
    fn transit_window_minimum_is_exact_as_samples_expire() {
        let mut w = TransitWindow::new();
        // A falling then rising ramp makes every sample the minimum once and expire.
        let values: Vec<i64> = (0..400i64).map(|i| (i - 200).abs() * 7 % 500).collect();
        for (n, &v) in values.iter().enumerate() {
            w.record(v);
            let lo = (n + 1).saturating_sub(TRANSIT_WINDOW);
            let expected = values[lo..=n].iter().copied().min();
            assert_eq!(Some(w.min()), expected, "after sample {n}");
        }
        w.clear();
        assert_eq!(w.min(), 0);
        assert_eq!(w.p95(), None);
    }

    proptest! {
        #[test]
        fn p95_equals_select_nth_unstable(
            values in proptest::collection::vec(-50i64..50, 1..=TRANSIT_WINDOW)
        ) {
            let k = (values.len() - 1) * 95 / 100;
            let mut sorted = values.clone();
            let (_, expected, _) = sorted.select_nth_unstable(k);
            prop_assert_eq!(upper_rank(&values, k), Some(*expected));
            let mut w = TransitWindow::new();
            for &v in &values {
                w.record(v);
            }
            prop_assert_eq!(w.p95(), Some(*expected));
        }

        #[test]
        fn arbitrary_packet_streams_never_panic(
            ops in proptest::collection::vec(
                (any::<u16>(), any::<u32>(), 0usize..1600, 0u64..50, any::<bool>()), 0..300)
        ) {
            let t0 = Instant::now();
            let mut jb = JitterBuffer::with_rate(8000, 20);
            let mut t = 0u64;
            let payload = [0u8; 1600];
            for (seq, ts, len, dt, pop) in ops {
                t += dt;
                let now = t0 + Duration::from_millis(t);
                if pop {
                    if let Playout::Frame { payload, .. } = jb.pop(now) {
                        prop_assert!(payload.len() <= 1500);
                    }
                } else {
                    jb.push(seq, ts, &payload[..len], now);
                }
                let scanned = jb.slots.iter().filter(|s| s.state == SlotState::Buffered).count();
                prop_assert_eq!(jb.stats().buffered, scanned);
                let w = &jb.transits;
                let window_min = w.samples[..w.len].iter().copied().min().unwrap_or(0);
                prop_assert_eq!(jb.min_transit, window_min);
            }
            let st = jb.stats();
            prop_assert!(st.target_delay <= Duration::from_millis(200));
        }

        #[test]
        fn near_sequential_streams_play_in_order(
            ops in proptest::collection::vec((0u16..3, 0u64..40, any::<bool>()), 0..200)
        ) {
            let t0 = Instant::now();
            let mut jb = JitterBuffer::with_rate(8000, 20);
            let mut seq = 0u16;
            let mut last: Option<u16> = None;
            for (k, (step, jitter, dup)) in ops.into_iter().enumerate() {
                seq = seq.wrapping_add(step);
                let base = k as u64 * 20;
                let at = t0 + Duration::from_millis(base + jitter);
                let b = seq.to_be_bytes();
                jb.push(seq, u32::from(seq) * 160, &b, at);
                if dup {
                    jb.push(seq, u32::from(seq) * 160, &b, at);
                }
                if let Playout::Frame { payload, .. } = jb.pop(t0 + Duration::from_millis(base + 45)) {
                    let s = u16::from_be_bytes([payload[0], payload[1]]);
                    if let Some(l) = last {
                        prop_assert!(s.wrapping_sub(l) >= 1 && s.wrapping_sub(l) < 1000, "{} after {}", s, l);
                    }
                    last = Some(s);
                }
            }
        }
    }
}
