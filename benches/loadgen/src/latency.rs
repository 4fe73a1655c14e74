//! Latency probe: talkers send 300 ms tone bursts on a 1 s cycle, sampled listeners find
//! the burst onsets in what they decode, and each onset is matched to the send instant of
//! the burst that caused it. Pure: no sockets, no clocks read except [`realtime_now`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds of CLOCK_REALTIME: the clock of `SO_TIMESTAMPNS` kernel receive stamps, so
/// send instants and arrival stamps are compared on one clock.
pub type RealtimeNs = i64;

/// Burst length of the `bursts` talk pattern.
pub const BURST_MS: u32 = 300;
/// Burst cycle of the `bursts` talk pattern.
pub const CYCLE_MS: u32 = 1000;
/// An onset is the first sample louder than this...
const ONSET_DBFS: f64 = -30.0;
/// ...after at least [`QUIET_MS`] of samples all quieter than this.
const QUIET_DBFS: f64 = -45.0;
/// Quiet time that arms the detector.
const QUIET_MS: u64 = 150;
/// An onset more than this after the room's most recent burst start is not that burst.
const MATCH_WINDOW_NS: i64 = 200_000_000;

/// CLOCK_REALTIME now (SystemTime is clock_gettime(CLOCK_REALTIME) on Linux, a vDSO call).
pub fn realtime_now() -> RealtimeNs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Frame of the burst cycle at which talker `k` of `talkers` in a room starts its bursts:
/// k × cycle / K, rounded down to whole frames so bursts stay frame-aligned. With 50
/// frames and 15-frame bursts, K <= 3 never overlap (offsets 0, 16, 33).
pub fn burst_offset_frames(k: usize, talkers: usize, cycle_frames: usize) -> usize {
    if talkers == 0 {
        return 0;
    }
    k * cycle_frames / talkers
}

/// Sample magnitude of a level in dBFS (0 dBFS = 32767).
fn amplitude(dbfs: f64) -> i32 {
    (32767.0 * 10f64.powf(dbfs / 20.0)) as i32
}

/// Finds tone-burst onsets in a stream of decoded PCM frames.
#[derive(Debug, Clone)]
pub struct OnsetDetector {
    onset_level: i32,
    quiet_level: i32,
    quiet_needed: u64,
    quiet_run: u64,
    armed: bool,
}

impl OnsetDetector {
    /// A detector for PCM at `sample_rate` Hz; it must hear 150 ms of quiet before the
    /// first onset, so a stream that starts mid-burst yields nothing until the next one.
    pub fn new(sample_rate: u32) -> Self {
        Self {
            onset_level: amplitude(ONSET_DBFS),
            quiet_level: amplitude(QUIET_DBFS),
            quiet_needed: u64::from(sample_rate) * QUIET_MS / 1000,
            quiet_run: 0,
            armed: false,
        }
    }

    /// Feeds the next frame; returns the index in it of the onset sample, if one is there.
    pub fn feed(&mut self, pcm: &[i16]) -> Option<usize> {
        let mut found = None;
        for (i, &x) in pcm.iter().enumerate() {
            let a = i32::from(x).abs();
            if a > self.onset_level {
                if self.armed && found.is_none() {
                    found = Some(i);
                }
                self.armed = false;
                self.quiet_run = 0;
            } else if a < self.quiet_level {
                self.quiet_run += 1;
                if self.quiet_run >= self.quiet_needed {
                    self.armed = true;
                }
            } else {
                // Between the thresholds (a rising edge, a fade): not quiet, but it does not
                // disarm, or the burst's own ramp would hide its onset.
                self.quiet_run = 0;
            }
        }
        found
    }
}

/// An onset heard by a probe listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Onset {
    /// Room of the listener (index into the burst log).
    pub room: usize,
    /// Kernel arrival of the packet + sample index / sample rate.
    pub at: RealtimeNs,
}

/// Latency of `onset` after the most recent burst start in `starts` (ascending) that is at
/// or before it, if that start is within the 200 ms match window.
pub fn match_onset(starts: &[RealtimeNs], onset: RealtimeNs) -> Option<Duration> {
    let idx = starts.partition_point(|&s| s <= onset).checked_sub(1)?;
    let start = *starts.get(idx)?;
    let d = onset - start;
    (d <= MATCH_WINDOW_NS).then(|| Duration::from_nanos(d.unsigned_abs()))
}

/// Latency figures over the measurement window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencySummary {
    /// Onsets matched to a burst.
    pub matched: usize,
    /// Onsets with no burst start of their room in the 200 ms before them.
    pub unmatched: usize,
    /// Mean added latency, ms (None when nothing matched).
    pub mean_ms: Option<f64>,
    /// Median, ms.
    pub p50_ms: Option<f64>,
    /// 95th percentile, ms.
    pub p95_ms: Option<f64>,
    /// Maximum, ms.
    pub max_ms: Option<f64>,
}

/// Nearest-rank percentile of an ascending slice.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Matches the onsets inside `window` (start inclusive, end exclusive) against the burst
/// starts of their room (`bursts[room]`, any order) and summarises the latencies.
pub fn summarise_latency(
    onsets: &[Onset],
    mut bursts: Vec<Vec<RealtimeNs>>,
    window: (RealtimeNs, RealtimeNs),
) -> LatencySummary {
    bursts.iter_mut().for_each(|b| b.sort_unstable());
    let mut ms = Vec::new();
    let mut unmatched = 0;
    for o in onsets
        .iter()
        .filter(|o| o.at >= window.0 && o.at < window.1)
    {
        let starts = bursts.get(o.room).map_or(&[][..], Vec::as_slice);
        match match_onset(starts, o.at) {
            Some(d) => ms.push(d.as_secs_f64() * 1000.0),
            None => unmatched += 1,
        }
    }
    ms.sort_unstable_by(f64::total_cmp);
    LatencySummary {
        matched: ms.len(),
        unmatched,
        mean_ms: (!ms.is_empty()).then(|| ms.iter().sum::<f64>() / ms.len() as f64),
        p50_ms: percentile(&ms, 50.0),
        p95_ms: percentile(&ms, 95.0),
        max_ms: ms.last().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::tone::{ToneGenerator, ToneSpec};

    const MS: i64 = 1_000_000;

    /// `quiet_ms` of silence then a -16 dBFS 440 Hz burst, at 8 kHz, cut into 20 ms frames.
    fn frames(quiet_ms: usize, burst_ms: usize) -> Vec<Vec<i16>> {
        let mut pcm = vec![0i16; quiet_ms * 8];
        let mut tone = vec![0i16; burst_ms * 8];
        ToneGenerator::new(8000, ToneSpec::single(440.0, -16.0)).fill(&mut tone);
        pcm.extend_from_slice(&tone);
        pcm.chunks(160).map(<[i16]>::to_vec).collect()
    }

    fn feed_all(det: &mut OnsetDetector, frames: &[Vec<i16>]) -> Vec<(usize, usize)> {
        frames
            .iter()
            .enumerate()
            .filter_map(|(f, pcm)| det.feed(pcm).map(|i| (f, i)))
            .collect()
    }

    #[test]
    fn detects_burst_onset_after_quiet_within_a_millisecond_of_its_first_sample() {
        let mut det = OnsetDetector::new(8000);
        // 200 ms quiet: the burst starts at sample 0 of frame 10.
        let hits = feed_all(&mut det, &frames(200, 300));
        assert_eq!(hits.len(), 1, "{hits:?}");
        let (frame, idx) = hits[0];
        assert_eq!(frame, 10);
        // The 2 ms ramp and the sine's phase put the threshold crossing a few samples in.
        assert!(idx < 8, "onset sample {idx}");
    }

    #[test]
    fn no_onset_when_quiet_gap_is_shorter_than_150_ms() {
        let mut det = OnsetDetector::new(8000);
        let mut all = frames(200, 300);
        // Second burst after only 100 ms of quiet: not an onset.
        all.extend(frames(100, 300));
        assert_eq!(feed_all(&mut det, &all).len(), 1);
        // After 160 ms of quiet it is.
        all.extend(frames(160, 300));
        let mut det = OnsetDetector::new(8000);
        assert_eq!(feed_all(&mut det, &all).len(), 2);
    }

    #[test]
    fn stream_starting_mid_burst_gives_no_onset_until_quiet_was_heard() {
        let mut det = OnsetDetector::new(8000);
        assert!(feed_all(&mut det, &frames(0, 300)).is_empty());
        assert_eq!(feed_all(&mut det, &frames(200, 300)).len(), 1);
    }

    #[test]
    fn noise_between_thresholds_blocks_arming() {
        // -40 dBFS constant noise: never quiet enough, so the burst after it is no onset.
        let noise = vec![amplitude(-40.0) as i16; 160];
        let mut det = OnsetDetector::new(8000);
        for _ in 0..20 {
            assert_eq!(det.feed(&noise), None);
        }
        let burst = frames(0, 40);
        assert!(feed_all(&mut det, &burst).is_empty());
    }

    #[test]
    fn onset_matches_most_recent_burst_start_within_200_ms() {
        let starts = [1000 * MS, 1500 * MS, 2000 * MS];
        assert_eq!(
            match_onset(&starts, 1540 * MS),
            Some(Duration::from_millis(40))
        );
        assert_eq!(match_onset(&starts, 1500 * MS), Some(Duration::ZERO));
        // 250 ms after the last start: too late to be that burst.
        assert_eq!(match_onset(&starts, 1750 * MS), None);
        // Before any burst.
        assert_eq!(match_onset(&starts, 999 * MS), None);
    }

    #[test]
    fn summary_counts_only_window_onsets_and_reports_percentiles() {
        let bursts = vec![
            vec![0, 1000 * MS, 2000 * MS, 3000 * MS],
            vec![500 * MS, 1500 * MS],
        ];
        let onsets = [
            // Before the window: ignored even though it matches.
            Onset {
                room: 0,
                at: 10 * MS,
            },
            Onset {
                room: 0,
                at: 1040 * MS,
            },
            Onset {
                room: 0,
                at: 2060 * MS,
            },
            Onset {
                room: 1,
                at: 1550 * MS,
            },
            // No burst of room 1 within 200 ms.
            Onset {
                room: 1,
                at: 2900 * MS,
            },
            // Unknown room: unmatched, not a panic.
            Onset {
                room: 7,
                at: 2000 * MS,
            },
            // At the window end: ignored.
            Onset {
                room: 0,
                at: 3000 * MS,
            },
        ];
        let s = summarise_latency(&onsets, bursts, (500 * MS, 3000 * MS));
        assert_eq!(s.matched, 3);
        assert_eq!(s.unmatched, 2);
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
        assert!(close(s.mean_ms, 50.0), "{s:?}");
        assert!(close(s.p50_ms, 50.0), "{s:?}");
        assert!(close(s.p95_ms, 60.0), "{s:?}");
        assert!(close(s.max_ms, 60.0), "{s:?}");
    }

    #[test]
    fn empty_summary_has_no_figures() {
        let s = summarise_latency(&[], vec![], (0, 1));
        assert_eq!(s, LatencySummary::default());
    }

    #[test]
    fn burst_offsets_never_overlap_for_up_to_three_talkers() {
        let burst_frames = (BURST_MS / 20) as usize;
        for k_total in 1..=3 {
            let offs: Vec<usize> = (0..k_total)
                .map(|k| burst_offset_frames(k, k_total, 50))
                .collect();
            for w in offs.windows(2) {
                assert!(w[1] - w[0] >= burst_frames, "{offs:?}");
            }
            assert!(50 - offs[k_total - 1] >= burst_frames, "{offs:?}");
        }
        assert_eq!(burst_offset_frames(2, 3, 50), 33);
    }
}
