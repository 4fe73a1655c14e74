//! Cost of one 20 ms room tick: `put_frame` for every participant plus `tick`.
//!
//! G.711 rooms of 3, 10, 100 and 1000 participants with 3 talkers (everyone else sends
//! silence), the same with shared encoding off (the conventional per-listener mixer), and
//! an Opus room of 10 with 3 talkers. Divide the time per tick by the participant count and
//! multiply by 50 for CPU per participant-second.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mixer::{CodecKind, MixerConfig, ParticipantId, ParticipantOptions, Room};

const TALKERS: usize = 3;
/// Frames cycled through, so that talkers' audio is not one repeated frame.
const FRAMES: usize = 25;

struct Setup {
    room: Room,
    ids: Vec<ParticipantId>,
    talk: Vec<Vec<Vec<i16>>>,
    silence: Vec<i16>,
}

fn setup(participants: usize, codec: CodecKind, shared_encoding: bool) -> Setup {
    let mut room = Room::new(MixerConfig {
        shared_encoding,
        max_participants: participants,
        ..MixerConfig::default()
    });
    let ids: Vec<_> = (0..participants)
        .map(|_| room.add(ParticipantOptions::new(codec)).expect("add"))
        .collect();
    let n = codec.samples_per_frame(20);
    let rate = f64::from(codec.sample_rate());
    let talk = (0..TALKERS)
        .map(|k| {
            let freq = 300.0 + 350.0 * k as f64;
            (0..FRAMES)
                .map(|f| {
                    (f * n..(f + 1) * n)
                        .map(|i| {
                            (6000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin())
                                as i16
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    Setup {
        room,
        ids,
        talk,
        silence: vec![0; n],
    }
}

fn one_tick(s: &mut Setup, t: usize) {
    for (i, &id) in s.ids.iter().enumerate() {
        let frame = s.talk.get(i).map_or(&s.silence, |f| &f[t % FRAMES]);
        s.room.put_frame(id, frame);
    }
    s.room.tick();
    for &id in &s.ids {
        black_box(s.room.output(id));
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick");
    let cases: &[(&str, usize, CodecKind, bool)] = &[
        ("pcmu_shared", 3, CodecKind::Pcmu, true),
        ("pcmu_shared", 10, CodecKind::Pcmu, true),
        ("pcmu_shared", 100, CodecKind::Pcmu, true),
        ("pcmu_shared", 1000, CodecKind::Pcmu, true),
        ("pcmu_conventional", 100, CodecKind::Pcmu, false),
        ("pcmu_conventional", 1000, CodecKind::Pcmu, false),
        ("opus_shared", 10, CodecKind::Opus, true),
        ("opus_conventional", 10, CodecKind::Opus, false),
    ];
    for &(name, n, codec, shared) in cases {
        let mut s = setup(n, codec, shared);
        let mut t = 0;
        group.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter(|| {
                one_tick(&mut s, t);
                t += 1;
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
