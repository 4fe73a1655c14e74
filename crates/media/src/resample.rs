//! Fixed-ratio sample-rate conversion between the rates our codecs use (8, 16, 48 kHz).
//!
//! One polyphase FIR serves every ratio L/M: the prototype is a Kaiser-windowed sinc at the
//! upsampled rate with 32 taps per unit of the larger factor, cut off at 92 % of the lower
//! Nyquist frequency (about 60 dB stop-band). For 8↔16 kHz that is 64 taps, which keeps the
//! telephone band to 3.4 kHz flat where a 31-tap half-band would already droop; the cost
//! (64 multiply-adds per 8 kHz output sample) is still small. Filters and state are built
//! in [`Resampler::new`]; `process` does not allocate.

/// Taps per unit of max(L, M).
const TAPS_PER_PHASE: usize = 32;
/// Cut-off as a fraction of the lower Nyquist frequency.
const CUTOFF: f64 = 0.92;
/// Kaiser β for about 60 dB side-lobe attenuation.
const KAISER_BETA: f64 = 5.65;
/// Largest interpolation/decimation factor accepted (48 kHz / 8 kHz).
const MAX_FACTOR: u32 = 12;

/// Why a converter cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResampleError {
    /// A rate is zero or the reduced ratio needs factors above 12.
    #[error("unsupported conversion {from} Hz -> {to} Hz")]
    UnsupportedRatio {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
    },
}

/// A streaming fixed-ratio converter for mono i16 PCM.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    up: usize,
    down: usize,
    /// Taps per phase.
    k: usize,
    /// `up` phases of `k` taps each, stored oldest-sample-first.
    phases: Box<[f32]>,
    /// Doubled ring of the last `k` inputs so that they are always one contiguous slice.
    ring: Box<[f32]>,
    pos: usize,
    /// Upsampled index of the next output relative to the newest input × `up`.
    next_u: usize,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Zeroth-order modified Bessel function (series), for the Kaiser window.
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

impl Resampler {
    /// Builds a converter from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        let g = gcd(from, to);
        if from == 0 || to == 0 {
            return Err(ResampleError::UnsupportedRatio { from, to });
        }
        let (up, down) = (to / g, from / g);
        if up > MAX_FACTOR || down > MAX_FACTOR {
            return Err(ResampleError::UnsupportedRatio { from, to });
        }
        let (up, down) = (up as usize, down as usize);
        if up == 1 && down == 1 {
            return Ok(Self {
                from,
                to,
                up,
                down,
                k: 1,
                phases: vec![1.0].into_boxed_slice(),
                ring: vec![0.0; 2].into_boxed_slice(),
                pos: 0,
                next_u: 0,
            });
        }
        let r = up.max(down);
        let k = TAPS_PER_PHASE * r / up;
        let n = k * up;
        // Odd, symmetric prototype whose delay (taps-1)/2 is a multiple of max(L, M), so the
        // delay is a whole number of samples at both rates (round trips align exactly);
        // the remaining taps stay zero.
        let half = (n - 1) / (2 * r) * r;
        let taps = 2 * half + 1;
        // Cut-off in cycles per upsampled sample.
        let fc = CUTOFF * 0.5 / r as f64;
        let mid = half as f64;
        let i0_beta = bessel_i0(KAISER_BETA);
        let mut proto = vec![0.0f64; n];
        for (i, h) in proto.iter_mut().enumerate().take(taps) {
            let t = i as f64 - mid;
            let sinc = if t == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * t).sin() / (std::f64::consts::PI * t)
            };
            let x = t / (mid + 1.0);
            let w = bessel_i0(KAISER_BETA * (1.0 - x * x).max(0.0).sqrt()) / i0_beta;
            *h = sinc * w;
        }
        // Unity DC gain at the output rate: the prototype sums to `up`.
        let sum: f64 = proto.iter().sum();
        let scale = up as f64 / sum;
        let mut phases = vec![0.0f32; n];
        for p in 0..up {
            for j in 0..k {
                // Tap c_m = h[p + m·up] multiplies x[i − m]; slot j holds x[i − (k−1−j)].
                let m = k - 1 - j;
                phases[p * k + j] = (proto[p + m * up] * scale) as f32;
            }
        }
        Ok(Self {
            from,
            to,
            up,
            down,
            k,
            phases: phases.into_boxed_slice(),
            ring: vec![0.0; 2 * k].into_boxed_slice(),
            pos: 0,
            next_u: 0,
        })
    }

    /// Input rate.
    pub fn input_rate(&self) -> u32 {
        self.from
    }

    /// Output rate.
    pub fn output_rate(&self) -> u32 {
        self.to
    }

    /// Delay the filter adds, in output samples.
    pub fn delay(&self) -> usize {
        if self.up == 1 && self.down == 1 {
            return 0;
        }
        let r = self.up.max(self.down);
        (self.k * self.up - 1) / (2 * r) * r / self.down
    }

    /// Largest output `process` can produce for `input_len` samples.
    pub fn max_output_len(&self, input_len: usize) -> usize {
        (input_len * self.up).div_ceil(self.down) + 1
    }

    /// Clears the filter history (new stream).
    pub fn reset(&mut self) {
        self.ring.fill(0.0);
        self.pos = 0;
        self.next_u = 0;
    }

    /// Converts `input` and writes into `out`; returns samples written. State carries over
    /// to the next call. If `out` is shorter than [`max_output_len`](Self::max_output_len),
    /// the surplus is dropped.
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> usize {
        let mut n = 0;
        for &x in input {
            self.push(f32::from(x));
            while let Some(y) = self.next_output() {
                if let Some(o) = out.get_mut(n) {
                    *o = y;
                    n += 1;
                }
            }
        }
        n
    }

    fn push(&mut self, x: f32) {
        let k = self.k;
        self.ring[self.pos] = x;
        self.ring[self.pos + k] = x;
        self.pos = (self.pos + 1) % k;
    }

    /// The next output due for the newest input, if any.
    fn next_output(&mut self) -> Option<i16> {
        if self.next_u >= self.up {
            self.next_u -= self.up;
            return None;
        }
        let k = self.k;
        let taps = &self.phases[self.next_u * k..(self.next_u + 1) * k];
        let hist = &self.ring[self.pos..self.pos + k];
        let y = dot(taps, hist).clamp(-32768.0, 32767.0);
        self.next_u += self.down;
        // Round half away from zero without libm's `roundf` call (hot path); `as` saturates.
        Some((y + 0.5f32.copysign(y)) as i16)
    }
}

/// Inner product with eight independent sums, which the compiler can keep in SIMD lanes
/// (one running sum is a serial dependency chain it must not reorder).
fn dot(taps: &[f32], hist: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let whole = taps.len().min(hist.len()) / 8 * 8;
    for (a, b) in taps[..whole]
        .chunks_exact(8)
        .zip(hist[..whole].chunks_exact(8))
    {
        for lane in 0..8 {
            lanes[lane] += a[lane] * b[lane];
        }
    }
    let tail: f32 = taps[whole..]
        .iter()
        .zip(&hist[whole..])
        .map(|(a, b)| a * b)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    fn run_frames(r: &mut Resampler, input: &[i16], frame: usize) -> Vec<i16> {
        let mut out = Vec::new();
        let mut buf = vec![0i16; r.max_output_len(frame)];
        for chunk in input.chunks(frame) {
            let n = r.process(chunk, &mut buf);
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    fn snr_at_best_delay(reference: &[i16], out: &[i16], skip: usize) -> f64 {
        (0..200)
            .map(|d| {
                let (mut s, mut e) = (0.0, 0.0);
                for i in skip..reference.len().min(out.len().saturating_sub(d)) {
                    let x = f64::from(reference[i]);
                    let y = f64::from(out[i + d]);
                    s += x * x;
                    e += (x - y).powi(2);
                }
                10.0 * (s / e.max(1e-9)).log10()
            })
            .fold(f64::MIN, f64::max)
    }

    #[test]
    fn frame_lengths_match_the_ratio() {
        for (from, to, inp, outp) in [
            (8000, 16000, 160, 320),
            (16000, 8000, 320, 160),
            (8000, 48000, 160, 960),
            (48000, 8000, 960, 160),
            (16000, 48000, 320, 960),
            (48000, 16000, 960, 320),
            (16000, 16000, 320, 320),
        ] {
            let mut r = Resampler::new(from, to).unwrap();
            let mut out = vec![0i16; r.max_output_len(inp)];
            for _ in 0..3 {
                assert_eq!(r.process(&vec![100; inp], &mut out), outp, "{from}->{to}");
            }
        }
    }

    #[test]
    fn tone_1khz_survives_8k_16k_8k() {
        let input = tone(1000.0, 8000, 10000.0, 8000);
        let mut up = Resampler::new(8000, 16000).unwrap();
        let mut down = Resampler::new(16000, 8000).unwrap();
        let wide = run_frames(&mut up, &input, 160);
        let back = run_frames(&mut down, &wide, 320);
        let snr = snr_at_best_delay(&input, &back, 400);
        assert!(snr > 35.0, "snr {snr:.1} dB");
        let r = rms(&back[400..]) / rms(&input[400..]);
        assert!((0.97..1.03).contains(&r), "gain {r:.3}");
    }

    #[test]
    fn tone_survives_8k_48k_8k_and_16k_48k_16k() {
        for (low, freq) in [(8000u32, 1000.0), (16000, 3000.0)] {
            let input = tone(freq, low, 10000.0, low as usize);
            let mut up = Resampler::new(low, 48000).unwrap();
            let mut down = Resampler::new(48000, low).unwrap();
            let wide = run_frames(&mut up, &input, low as usize / 50);
            let back = run_frames(&mut down, &wide, 960);
            let snr = snr_at_best_delay(&input, &back, 400);
            assert!(snr > 35.0, "{low}: snr {snr:.1} dB");
        }
    }

    #[test]
    fn downsampling_attenuates_content_above_new_nyquist_by_30db() {
        for (from, to, freq) in [
            (16000u32, 8000u32, 5000.0),
            (16000, 8000, 7000.0),
            (48000, 8000, 6000.0),
            (48000, 8000, 20000.0),
            (48000, 16000, 10000.0),
        ] {
            let input = tone(freq, from, 10000.0, from as usize / 2);
            let mut r = Resampler::new(from, to).unwrap();
            let out = run_frames(&mut r, &input, from as usize / 50);
            let atten = 20.0 * (rms(&out[200..]) / rms(&input)).log10();
            assert!(atten < -30.0, "{from}->{to} {freq} Hz: {atten:.1} dB");
        }
    }

    /// Amplitude of `freq` in `x` (Goertzel), independent of phase.
    fn amplitude(x: &[i16], freq: f64, rate: u32) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s0 = f64::from(v) + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        2.0 * (s1 * s1 + s2 * s2 - c * s1 * s2).max(0.0).sqrt() / x.len() as f64
    }

    #[test]
    fn upsampling_does_not_create_images() {
        // A 3 kHz tone at 8 kHz must not show its 5 kHz image at 16 kHz.
        let input = tone(3000.0, 8000, 10000.0, 8000);
        let mut r = Resampler::new(8000, 16000).unwrap();
        let out = run_frames(&mut r, &input, 160);
        let wanted = amplitude(&out[400..], 3000.0, 16000);
        let image = amplitude(&out[400..], 5000.0, 16000);
        assert!((9000.0..11000.0).contains(&wanted), "tone {wanted:.0}");
        assert!(image < wanted * 0.03, "image {image:.0}");
    }

    #[test]
    fn delay_is_whole_samples_and_reported() {
        let mut r = Resampler::new(8000, 16000).unwrap();
        let mut out = [0i16; 400];
        let mut impulse = [0i16; 100];
        impulse[0] = 10000;
        let n = r.process(&impulse, &mut out);
        let peak = (0..n).max_by_key(|&i| out[i].unsigned_abs()).unwrap_or(0);
        assert_eq!(peak, r.delay());
    }

    #[test]
    fn streaming_in_frames_equals_one_pass() {
        let input = tone(440.0, 16000, 8000.0, 3200);
        let mut a = Resampler::new(16000, 48000).unwrap();
        let mut b = Resampler::new(16000, 48000).unwrap();
        let whole = run_frames(&mut a, &input, input.len());
        let framed = run_frames(&mut b, &input, 37);
        assert_eq!(whole, framed);
    }

    #[test]
    fn reset_clears_history() {
        let mut r = Resampler::new(8000, 16000).unwrap();
        let mut out = [0i16; 400];
        r.process(&[20000; 160], &mut out);
        r.reset();
        let n = r.process(&[0; 160], &mut out);
        assert!(out[..n].iter().all(|&s| s == 0));
    }

    #[test]
    fn rejects_unsupported_ratios() {
        assert!(Resampler::new(44100, 8000).is_err());
        assert!(Resampler::new(0, 8000).is_err());
        assert!(Resampler::new(8000, 0).is_err());
    }

    #[test]
    fn short_output_buffer_drops_surplus_without_panicking() {
        let mut r = Resampler::new(8000, 48000).unwrap();
        let mut out = [0i16; 10];
        assert_eq!(r.process(&[1000; 160], &mut out), 10);
    }
}
