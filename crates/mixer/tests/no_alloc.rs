//! Proves that the hot path (put_frame, tick, output, poll_event) allocates nothing, with a
//! counting global allocator. Only this thread's allocations are counted, so the test
//! harness's own threads do not disturb it. (libopus allocates through C `malloc`, which
//! this does not see; it does not allocate in `opus_encode`.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use media::codec::Encoder;
use mixer::{CodecKind, MixerConfig, ParticipantOptions, Room};

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn count_allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

fn tone(freq: f64, rate: u32, n: usize, t: usize, amp: f64) -> Vec<i16> {
    (t..t + n)
        .map(|i| {
            (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()) as i16
        })
        .collect()
}

#[test]
fn tick_allocates_nothing() {
    for internal_rate in [16_000, 48_000] {
        let mut room = Room::new(MixerConfig {
            internal_rate,
            max_mixed_speakers: 3,
            ..MixerConfig::default()
        });
        room.set_recording(true);
        let mut ids = Vec::new();
        for (i, codec) in CodecKind::ALL.iter().cycle().take(12).enumerate() {
            let options = ParticipantOptions {
                noise_suppression: Some(i % 5 == 0),
                ..ParticipantOptions::new(*codec)
            };
            ids.push((room.add(options).expect("add"), *codec));
        }
        // Frames made up front: the test's own buffers are not the mixer's business.
        let frames: Vec<Vec<Vec<i16>>> = (0..60)
            .map(|t| {
                ids.iter()
                    .enumerate()
                    .map(|(i, &(_, codec))| {
                        let n = codec.samples_per_frame(20);
                        // Talkers come and go so that speakers switch between the shared and
                        // their own encoders, and loud enough to drive the limiter.
                        // Then one lone talker (forwarded), then nobody (silence frames).
                        let talking = match t {
                            30..45 => i == 3,
                            45..50 => false,
                            _ => (t / 10 + i) % 4 == 0,
                        };
                        let amp = if talking { 30_000.0 } else { 0.0 };
                        tone(300.0 + 100.0 * i as f64, codec.sample_rate(), n, t * n, amp)
                    })
                    .collect()
            })
            .collect();
        // Every other participant also hands over the payload, as the media worker does.
        let mut encoders: Vec<Encoder> = ids
            .iter()
            .map(|&(_, codec)| Encoder::new(codec).expect("encoder"))
            .collect();
        let payloads: Vec<Vec<Vec<u8>>> = frames
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&mut encoders)
                    .map(|(pcm, encoder)| {
                        let mut out = vec![0u8; 1500];
                        let len = encoder.encode(pcm, &mut out).expect("encode");
                        out.truncate(len);
                        out
                    })
                    .collect()
            })
            .collect();
        let mut forwarded = 0;
        let mut run = |t: usize, room: &mut Room| {
            for (i, &(id, _)) in ids.iter().enumerate() {
                if i % 2 == 1 {
                    room.put_encoded_frame(id, &frames[t][i], &payloads[t][i]);
                } else {
                    room.put_frame(id, &frames[t][i]);
                }
            }
            if t % 7 == 3 {
                room.set_muted(ids[1].0, t.is_multiple_of(2));
                room.set_deaf(ids[2].0, t.is_multiple_of(3));
            }
            room.tick();
            let mut bytes = 0;
            for &(id, _) in &ids {
                bytes += room.output(id).map_or(0, |o| o.payload.len());
                bytes += room.output_pcm(id).map_or(0, <[i16]>::len);
            }
            while room.poll_event().is_some() {}
            bytes += room.recording_mix().map_or(0, <[i16]>::len);
            let plan = room.stats().mix_plan;
            forwarded += plan.forwarded as usize;
            bytes + plan.encodes as usize
        };
        for t in 0..5 {
            run(t, &mut room);
        }
        let mut total = 0;
        let allocations = count_allocations(|| {
            for t in 5..60 {
                total += run(t, &mut room);
            }
        });
        assert!(total > 0);
        assert!(forwarded > 0, "the lone talker was never forwarded");
        assert_eq!(allocations, 0, "internal rate {internal_rate}");
    }
}

#[test]
fn the_counter_sees_allocations() {
    let n = count_allocations(|| {
        let v: Vec<u8> = std::hint::black_box(vec![1, 2, 3]);
        drop(v);
    });
    assert_eq!(n, 1);
}
