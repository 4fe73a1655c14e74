//! A network impairment for tests: seeded random loss and a random per-packet delay, so that
//! packets leave in another order than they came (as on a congested access link). This
//! machine's kernel has no `netem` qdisc, so the end-to-end tests queue the packets they want
//! impaired to user space with an nftables `queue` rule, and `amt-netimpair` holds each one for
//! its delay before it issues the ACCEPT verdict (verdicts may be given out of order).
//!
//! The [`DelayLine`] here is sans-IO: it never reads the clock or touches a socket, so its
//! loss and delay figures are tested deterministically. It does not shape bandwidth, corrupt
//! or duplicate packets.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the impairment does to each packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Share of packets dropped, 0..=1.
    pub loss: f64,
    /// Mean one-way delay added to every packet that is not dropped.
    pub delay: Duration,
    /// Each packet's delay is drawn uniformly from `delay ± jitter`.
    pub jitter: Duration,
}

/// Counts of what the delay line did, for the test to prove the impairment happened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Packets offered to the line.
    pub seen: u64,
    /// Packets dropped on purpose.
    pub dropped: u64,
    /// Packets released after their delay.
    pub released: u64,
    /// Released packets that overtook an earlier packet of their own flow.
    pub reordered: u64,
    /// Sum of the delays given, in microseconds (for the mean).
    pub delay_us_total: u64,
}

/// Packets held for a random delay each, released when due: a seeded, sans-IO jitter line.
pub struct DelayLine<T> {
    impairment: Impairment,
    seed: u64,
    /// Each flow draws from its own generators, so that the n-th packet of a stream meets the
    /// same fate in every run however the streams interleave (tests compare runs); losses
    /// and delays from separate ones, so that the same seed loses the same packets with or
    /// without jitter (to tell what each costs).
    rngs: HashMap<u32, FlowRandom>,
    /// Held packets by due time; the arrival number breaks ties.
    held: BinaryHeap<Reverse<Held<T>>>,
    arrivals: u64,
    /// Per flow, the highest arrival number released so far: a later release of that flow
    /// with a lower one overtook it (packets of different flows passing each other is no
    /// reordering a receiver would see).
    highest_released: HashMap<u32, u64>,
    tally: Tally,
}

struct FlowRandom {
    loss: StdRng,
    delay: StdRng,
}

/// Told apart from the loss generator's seed, so that losses and delays are independent.
const DELAY_SEED_SALT: u64 = 0x6a09_e667_f3bc_c908;

struct Held<T> {
    due: Instant,
    arrival: u64,
    flow: u32,
    packet: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.arrival) == (other.due, other.arrival)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.arrival).cmp(&(other.due, other.arrival))
    }
}

impl<T> DelayLine<T> {
    /// A line that impairs as `impairment` says, with its random choices drawn from `seed`
    /// (the same seed gives the n-th packet of every flow the same loss or delay).
    pub fn new(impairment: Impairment, seed: u64) -> Self {
        Self {
            impairment,
            seed,
            rngs: HashMap::new(),
            held: BinaryHeap::new(),
            arrivals: 0,
            highest_released: HashMap::new(),
            tally: Tally::default(),
        }
    }

    /// A packet of `flow` (e.g. its UDP source port) arrives at `now`: it is either dropped
    /// (returned, for the caller to discard) or held until its delay has passed.
    pub fn arrive(&mut self, packet: T, flow: u32, now: Instant) -> Option<T> {
        self.tally.seen += 1;
        let seed = self.seed;
        let rng = self.rngs.entry(flow).or_insert_with(|| FlowRandom {
            loss: StdRng::seed_from_u64(seed),
            delay: StdRng::seed_from_u64(seed ^ DELAY_SEED_SALT),
        });
        if rng.loss.random::<f64>() < self.impairment.loss {
            self.tally.dropped += 1;
            return Some(packet);
        }
        let low = self.impairment.delay.saturating_sub(self.impairment.jitter);
        let high = self.impairment.delay + self.impairment.jitter;
        let delay = if high > low {
            rng.delay.random_range(low..=high)
        } else {
            low
        };
        self.tally.delay_us_total += delay.as_micros() as u64;
        self.held.push(Reverse(Held {
            due: now + delay,
            arrival: self.arrivals,
            flow,
            packet,
        }));
        self.arrivals += 1;
        None
    }

    /// The next packet whose delay has passed by `now`, if any.
    pub fn release(&mut self, now: Instant) -> Option<T> {
        if self.held.peek()?.0.due > now {
            return None;
        }
        let Reverse(held) = self.held.pop()?;
        self.tally.released += 1;
        let highest = self.highest_released.entry(held.flow).or_insert(0);
        if held.arrival < *highest {
            self.tally.reordered += 1;
        } else {
            *highest = held.arrival;
        }
        Some(held.packet)
    }

    /// When the next held packet is due (None when nothing is held).
    pub fn next_due(&self) -> Option<Instant> {
        self.held.peek().map(|h| h.0.due)
    }

    /// Every held packet, due or not (when the line shuts down, nothing is kept back).
    pub fn release_all(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.held.len());
        while let Some(Reverse(held)) = self.held.pop() {
            self.tally.released += 1;
            out.push(held.packet);
        }
        out
    }

    /// What the line has done so far.
    pub fn tally(&self) -> Tally {
        self.tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_IMPAIRMENT: Impairment = Impairment {
        loss: 0.03,
        delay: Duration::from_millis(30),
        jitter: Duration::from_millis(15),
    };

    /// Feeds 20 ms packets (numbered) for `count` packets and drains the line; returns the
    /// release order with each release time.
    fn run(line: &mut DelayLine<u32>, count: u32) -> Vec<(u32, Instant)> {
        let start = Instant::now();
        let mut out = Vec::new();
        let step = Duration::from_millis(1);
        let mut next_packet = 0;
        let mut now = start;
        while next_packet < count || line.next_due().is_some() {
            if next_packet < count && now >= start + Duration::from_millis(20) * next_packet {
                line.arrive(next_packet, 0, now);
                next_packet += 1;
            }
            while let Some(p) = line.release(now) {
                out.push((p, now));
            }
            now += step;
        }
        out
    }

    #[test]
    fn drops_about_the_configured_share() {
        let mut line = DelayLine::new(TEST_IMPAIRMENT, 7);
        let released = run(&mut line, 10_000);
        let tally = line.tally();
        assert_eq!(tally.seen, 10_000);
        assert_eq!(tally.dropped + tally.released, 10_000);
        assert_eq!(released.len() as u64, tally.released);
        assert!(
            (250..=350).contains(&tally.dropped),
            "{} of 10000 dropped",
            tally.dropped
        );
    }

    #[test]
    fn delays_stay_within_the_jitter_and_reorder_packets() {
        let mut line = DelayLine::new(TEST_IMPAIRMENT, 11);
        let start = Instant::now();
        let released = run(&mut line, 2_000);
        for &(packet, at) in &released {
            let sent = start + Duration::from_millis(20) * packet;
            let delay = at - sent;
            // 1 ms steps in the driver: a packet leaves at most 1 ms after it is due.
            assert!(
                delay >= Duration::from_millis(15) && delay <= Duration::from_millis(46),
                "packet {packet} held {delay:?}"
            );
        }
        let mean_ms = line.tally().delay_us_total as f64 / line.tally().released as f64 / 1e3;
        assert!((28.0..=32.0).contains(&mean_ms), "mean delay {mean_ms} ms");
        // A 30 ms spread over 20 ms spacing: a packet overtakes its predecessor when the
        // predecessor's delay exceeds its own by more than 20 ms: 10²/(2·30²), 1 in 18 pairs.
        let reordered = line.tally().reordered;
        assert!(
            (60..=200).contains(&reordered),
            "{reordered} of 2000 reordered"
        );
        let out_of_order = released.windows(2).filter(|w| w[1].0 < w[0].0).count();
        assert!(out_of_order > 0);
    }

    #[test]
    fn packets_of_different_flows_passing_each_other_are_no_reordering() {
        let mut line = DelayLine::new(TEST_IMPAIRMENT, 5);
        let start = Instant::now();
        // Two talkers' streams, the second's packet 1 ms after the first's, every 20 ms: with
        // ±15 ms the streams' packets pass each other often, while each stream is reordered
        // only as often as a single one (1 in 18 pairs, as above).
        let mut now = start;
        for i in 0..1000u32 {
            for flow in [1, 2] {
                let at = start + Duration::from_millis(20 * u64::from(i) + u64::from(flow));
                while now < at {
                    while line.release(now).is_some() {}
                    now += Duration::from_millis(1);
                }
                line.arrive(i, flow, at);
            }
        }
        while line.release(now + Duration::from_secs(1)).is_some() {}
        let reordered = line.tally().reordered;
        assert!(
            (60..=200).contains(&reordered),
            "{reordered} of 2000 reordered"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_impairment() {
        let order = |seed| run(&mut DelayLine::new(TEST_IMPAIRMENT, seed), 500);
        let ids = |v: Vec<(u32, Instant)>| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        assert_eq!(ids(order(3)), ids(order(3)));
        assert_ne!(ids(order(3)), ids(order(4)));
    }

    #[test]
    fn each_flow_meets_the_same_fate_however_the_flows_interleave() {
        let fates = |flows: &[u32]| {
            let mut line = DelayLine::new(TEST_IMPAIRMENT, 9);
            let now = Instant::now();
            let mut dropped: HashMap<u32, Vec<usize>> = HashMap::new();
            let mut index: HashMap<u32, usize> = HashMap::new();
            for &flow in flows {
                let n = index.entry(flow).or_default();
                if line.arrive((), flow, now).is_some() {
                    dropped.entry(flow).or_default().push(*n);
                }
                *n += 1;
            }
            dropped
        };
        let alternating: Vec<u32> = (0..400).map(|i| i % 2).collect();
        let bunched: Vec<u32> = (0..400).map(|i| u32::from(i >= 200)).collect();
        let (a, b) = (fates(&alternating), fates(&bunched));
        assert_eq!(a, b);
        // The same seed gives every flow the same pattern.
        assert_eq!(a.get(&0), a.get(&1));
        assert!(a.get(&0).is_some_and(|d| !d.is_empty()));
    }

    #[test]
    fn jitter_does_not_change_which_packets_are_lost() {
        let lost = |impairment| {
            let mut line = DelayLine::new(impairment, 4);
            let now = Instant::now();
            (0..1000u32)
                .filter(|&p| line.arrive(p, 0, now).is_some())
                .collect::<Vec<_>>()
        };
        let no_jitter = Impairment {
            jitter: Duration::ZERO,
            ..TEST_IMPAIRMENT
        };
        assert!(!lost(TEST_IMPAIRMENT).is_empty());
        assert_eq!(lost(TEST_IMPAIRMENT), lost(no_jitter));
    }

    #[test]
    fn shutting_down_releases_everything_held() {
        let mut line = DelayLine::new(TEST_IMPAIRMENT, 1);
        let now = Instant::now();
        let mut kept = 0;
        for p in 0..100u32 {
            if line.arrive(p, 0, now).is_none() {
                kept += 1;
            }
        }
        assert_eq!(line.release(now), None);
        assert_eq!(line.release_all().len(), kept);
        assert_eq!(line.next_due(), None);
    }
}
