//! Offline diagnosis of G.722 packet-loss recovery: how far the server's decoder is from a
//! decoder that lost nothing, in the lost frame and the three frames after it.
//!
//! ```text
//! cargo run --release -p media --example g722_gap -- [speech16.wav]
//! ```
//!
//! The speech (16 kHz mono WAV; default `target/path-quality/speech16.wav`, which
//! `path_quality` writes) is G.722-encoded in 20 ms frames. For every 7th frame in speech
//! (from frame 10 on, frame level above 300 rms) one run loses that frame alone and
//! conceals it as the server does when the next packet is buffered
//! ([`Decoder::conceal_before`]), then decodes the next three frames. Printed: the error
//! energy against the lossless decode relative to the signal, in dB, summed over all
//! losses, per frame (gap, +1, +2, +3), and for frames +1 and +2 per frequency band. The
//! band figures show where the decoder's state mismatch after a gap is heard: it is why the
//! G.722 talker's paths miss their quality bar (benches/RESULTS.md, 2026-12-07).

use media::codec::{CodecKind, Decoder};
use media::g722::G722Encoder;
use media::wav::parse_wav;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const FRAME: usize = 320;
/// Frames measured per loss: the lost one and three after it.
const SPAN: usize = 4;
/// Band edges (Hz) of the per-band figures.
const BANDS: [f64; 10] = [
    0.0, 200.0, 500.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6500.0, 8000.0,
];

fn energy(x: &[i16]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum()
}

/// Hann-windowed power per band of one frame (a plain DFT: this is an offline tool).
fn band_power(x: &[f64], out: &mut [f64; BANDS.len() - 1]) {
    let n = x.len();
    for k in 0..=n / 2 {
        let freq = k as f64 * 16000.0 / n as f64;
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &v) in x.iter().enumerate() {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
            let ph = 2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
            re += w * v * ph.cos();
            im -= w * v * ph.sin();
        }
        if let Some(b) = BANDS.windows(2).position(|e| freq >= e[0] && freq < e[1]) {
            out[b] += re * re + im * im;
        }
    }
}

fn main() -> Res<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/path-quality/speech16.wav".into());
    let wav = parse_wav(&std::fs::read(&path)?)?;
    if wav.sample_rate != 16000 {
        return Err(format!("{path}: {} Hz, want 16000", wav.sample_rate).into());
    }
    let mut enc = G722Encoder::new();
    let packets: Vec<Vec<u8>> = wav
        .samples
        .chunks_exact(FRAME)
        .map(|f| {
            let mut p = vec![0u8; FRAME / 2];
            enc.encode(f, &mut p);
            p
        })
        .collect();
    let mut lossless = Decoder::new(CodecKind::G722)?;
    let mut truth = Vec::with_capacity(packets.len());
    for p in &packets {
        let mut o = [0i16; FRAME];
        lossless.decode(p, &mut o)?;
        truth.push(o);
    }

    let mut sig = [0.0; SPAN];
    let mut err = [0.0; SPAN];
    let mut band_sig = [[0.0; BANDS.len() - 1]; 2];
    let mut band_err = [[0.0; BANDS.len() - 1]; 2];
    let mut losses = 0;
    let mut k = 10;
    while k + SPAN < packets.len() {
        if energy(&truth[k]) / (FRAME as f64) < 300.0f64.powi(2) {
            k += 1;
            continue;
        }
        let mut dec = Decoder::new(CodecKind::G722)?;
        let mut o = [0i16; FRAME];
        for p in &packets[..k] {
            dec.decode(p, &mut o)?;
        }
        dec.conceal_before(&packets[k + 1], &mut o);
        for j in 0..SPAN {
            if j > 0 {
                dec.decode(&packets[k + j], &mut o)?;
            }
            let t = &truth[k + j];
            let e: Vec<f64> = o
                .iter()
                .zip(t)
                .map(|(a, b)| f64::from(*a) - f64::from(*b))
                .collect();
            sig[j] += energy(t);
            err[j] += e.iter().map(|v| v * v).sum::<f64>();
            if (1..=2).contains(&j) {
                let tf: Vec<f64> = t.iter().map(|&v| f64::from(v)).collect();
                band_power(&tf, &mut band_sig[j - 1]);
                band_power(&e, &mut band_err[j - 1]);
            }
        }
        losses += 1;
        k += 7;
    }
    let db = |e: f64, s: f64| 10.0 * (e / s.max(1e-9)).log10();
    let per_frame: Vec<String> = sig
        .iter()
        .zip(&err)
        .map(|(s, e)| format!("{:.1}", db(*e, *s)))
        .collect();
    println!(
        "{losses} single-frame losses; error against the lossless decode (dB) in the gap, +1, +2, +3: {}",
        per_frame.join(" ")
    );
    for (j, (bs, be)) in band_sig.iter().zip(&band_err).enumerate() {
        let bands: Vec<String> = BANDS
            .windows(2)
            .zip(bs.iter().zip(be))
            .map(|(e, (s, r))| format!("{}-{}:{:.0}", e[0], e[1], db(*r, *s)))
            .collect();
        println!("frame +{} by band (Hz:dB): {}", j + 1, bands.join(" "));
    }
    Ok(())
}
