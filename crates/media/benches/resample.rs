//! µs per 20 ms frame: our polyphase resampler against `rubato` 5 (issue 13), for the rate
//! pairs a room converts (8 kHz talkers into a 16 kHz mix, the mix out to 8 kHz listeners).
//!
//! `cargo bench -p media --bench resample`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use media::resample::Resampler;
use std::hint::black_box;

#[path = "support/rubato_adapter.rs"]
mod rubato_adapter;
use rubato_adapter::{Kind, Rubato};

fn speechlike(rate: u32, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let v: f64 = (1..12)
                .map(|h| {
                    (2.0 * std::f64::consts::PI * 150.0 * f64::from(h) * t).sin() / f64::from(h)
                })
                .sum();
            (6000.0 * v) as i16
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample_20ms");
    for (from, to) in [(8000u32, 16_000u32), (16_000, 8000)] {
        let frame = from as usize / 50;
        let input = speechlike(from, frame);
        let mut out = vec![0i16; to as usize / 50 + 8];
        let name = format!("{}k_to_{}k", from / 1000, to / 1000);
        let mut ours = Resampler::new(from, to).unwrap();
        group.bench_function(BenchmarkId::new("ours", &name), |b| {
            b.iter(|| black_box(ours.process(black_box(&input), &mut out)))
        });
        for (label, kind) in [
            ("rubato_sinc", Kind::Sinc),
            ("rubato_poly", Kind::Poly),
            ("rubato_fft", Kind::Fft),
        ] {
            let mut r = Rubato::new(kind, from, to, frame);
            group.bench_function(BenchmarkId::new(label, &name), |b| {
                b.iter(|| black_box(r.process(black_box(&input), &mut out)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
