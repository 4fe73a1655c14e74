//! Cost of one 20 ms room tick: `put_frame` for every participant plus `tick`.
//!
//! G.711 rooms of 3, 10, 100 and 1000 participants with 3 talkers (everyone else sends
//! silence), the same with shared encoding off (the conventional per-listener mixer), an
//! Opus room of 10 with 3 talkers, and Opus rooms of 10 with one talker (forwarded as it
//! sent) and with nobody talking. Divide the time per tick by the participant count and
//! multiply by 50 for CPU per participant-second. Decoding is not included (the caller's).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use media::codec::Encoder;
use mixer::{CodecKind, MixerConfig, ParticipantId, ParticipantOptions, Room};

/// Frames cycled through, so that talkers' audio is not one repeated frame.
const FRAMES: usize = 25;

struct Setup {
    room: Room,
    ids: Vec<ParticipantId>,
    talk: Vec<Vec<Vec<i16>>>,
    /// The talkers' frames encoded, handed over with the PCM as the media worker does.
    payloads: Vec<Vec<Vec<u8>>>,
    silence: Vec<i16>,
}

fn setup(participants: usize, codec: CodecKind, shared_encoding: bool, talkers: usize) -> Setup {
    let mut room = Room::new(MixerConfig {
        shared_encoding,
        forward_lone_talker: shared_encoding,
        max_participants: participants,
        ..MixerConfig::default()
    });
    let ids: Vec<_> = (0..participants)
        .map(|_| room.add(ParticipantOptions::new(codec)).expect("add"))
        .collect();
    let n = codec.samples_per_frame(20);
    let rate = f64::from(codec.sample_rate());
    let talk: Vec<Vec<Vec<i16>>> = (0..talkers)
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
    let payloads = talk
        .iter()
        .map(|frames| {
            let mut encoder = Encoder::new(codec).expect("encoder");
            frames
                .iter()
                .map(|pcm| {
                    let mut out = vec![0u8; 1500];
                    let len = encoder.encode(pcm, &mut out).expect("encode");
                    out.truncate(len);
                    out
                })
                .collect()
        })
        .collect();
    Setup {
        room,
        ids,
        talk,
        payloads,
        silence: vec![0; n],
    }
}

fn one_tick(s: &mut Setup, t: usize) {
    for (i, &id) in s.ids.iter().enumerate() {
        match (s.talk.get(i), s.payloads.get(i)) {
            (Some(pcm), Some(payload)) => {
                s.room
                    .put_encoded_frame(id, &pcm[t % FRAMES], &payload[t % FRAMES]);
            }
            _ => s.room.put_frame(id, &s.silence),
        }
    }
    s.room.tick();
    for &id in &s.ids {
        black_box(s.room.output(id));
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick");
    let cases: &[(&str, usize, CodecKind, bool, usize)] = &[
        ("pcmu_shared", 3, CodecKind::Pcmu, true, 3),
        ("pcmu_shared", 10, CodecKind::Pcmu, true, 3),
        ("pcmu_shared", 100, CodecKind::Pcmu, true, 3),
        ("pcmu_shared", 1000, CodecKind::Pcmu, true, 3),
        ("pcmu_conventional", 100, CodecKind::Pcmu, false, 3),
        ("pcmu_conventional", 1000, CodecKind::Pcmu, false, 3),
        ("opus_shared", 10, CodecKind::Opus, true, 3),
        ("opus_conventional", 10, CodecKind::Opus, false, 3),
        ("opus_shared_one_talker", 10, CodecKind::Opus, true, 1),
        (
            "opus_conventional_one_talker",
            10,
            CodecKind::Opus,
            false,
            1,
        ),
        ("opus_shared_nobody_talking", 10, CodecKind::Opus, true, 0),
        // G.722 listeners hear the shared encoder even in silence (issue 13).
        ("g722_shared_nobody_talking", 10, CodecKind::G722, true, 0),
        ("g722_shared_one_talker", 10, CodecKind::G722, true, 1),
    ];
    for &(name, n, codec, shared, talkers) in cases {
        let mut s = setup(n, codec, shared, talkers);
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
