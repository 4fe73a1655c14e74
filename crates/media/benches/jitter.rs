//! Cost of one jitter buffer stream-frame: one `push` and one `pop` on one of 1000 streams.
//!
//! Each iteration serves the next stream round-robin, so the reported time per iteration is
//! the time per stream-frame with 1000 buffers' worth of state competing for cache, as on a
//! loaded server. Packets are 20 ms G.711 frames arriving 0..8 ms late (deterministic
//! xorshift), popped 10 ms after their nominal arrival. Multiply by 50 000 for CPU per
//! second of 1000 calls.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use media::jitter::{JitterBuffer, Playout};

const STREAMS: usize = 1000;
const FRAME_MS: u64 = 20;
const MAX_JITTER_MS: u64 = 8;

struct Fleet {
    t0: Instant,
    buffers: Vec<JitterBuffer>,
    next: usize,
    frame: u64,
    rng: u64,
    payload: [u8; 160],
}

impl Fleet {
    fn new() -> Self {
        Self {
            t0: Instant::now(),
            buffers: (0..STREAMS)
                .map(|_| JitterBuffer::with_rate(8000, 20))
                .collect(),
            next: 0,
            frame: 0,
            rng: 0x2545_F491_4F6C_DD1D,
            payload: [0x55; 160],
        }
    }

    fn jitter_ms(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % MAX_JITTER_MS
    }

    /// One push and one pop on the next stream.
    fn step(&mut self) -> usize {
        let k = self.next;
        let base = self.frame * FRAME_MS;
        let arrival = self.t0 + Duration::from_millis(base + self.jitter_ms());
        let tick = self.t0 + Duration::from_millis(base + 10);
        let seq = self.frame as u16;
        let ts = (self.frame as u32).wrapping_mul(160);
        let jb = &mut self.buffers[k];
        jb.push(seq, ts, &self.payload, arrival);
        let played = match jb.pop(tick) {
            Playout::Frame { payload, .. } => payload.len(),
            Playout::Lost { .. } => 1,
            Playout::Empty | Playout::Paused => 0,
        };
        self.next += 1;
        if self.next == STREAMS {
            self.next = 0;
            self.frame += 1;
        }
        played
    }
}

fn jitter(c: &mut Criterion) {
    let mut fleet = Fleet::new();
    c.bench_function("jitter/push_pop_per_stream_frame_1000_streams", |b| {
        b.iter(|| black_box(fleet.step()))
    });
}

criterion_group!(benches, jitter);
criterion_main!(benches);
