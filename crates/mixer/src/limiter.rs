//! The soft limiter that turns a 32-bit mix into 16-bit PCM without wrapping or clipping.
//!
//! Gain-based with a one-frame look-ahead that costs no latency: the whole frame is known
//! before it is scaled, so the gain for a frame is at most `CEILING / peak` and no sample
//! ever exceeds the ceiling. The gain drops at once (attack within the frame) and recovers
//! slowly, ramped across the frame, so a loud burst does not pump.

/// Output ceiling, about −0.4 dBFS, so that codecs never see the rails.
pub const CEILING: f32 = 31_500.0;
/// How fast the gain recovers after a loud passage.
const RELEASE_DB_PER_S: f32 = 10.0;

/// Limiter state of one output stream.
#[derive(Debug, Clone, Copy)]
pub struct Limiter {
    gain: f32,
    release_factor: f32,
}

impl Limiter {
    /// A limiter for frames of `ptime_ms`.
    pub fn new(ptime_ms: u32) -> Self {
        let db_per_frame = RELEASE_DB_PER_S * ptime_ms.max(1) as f32 / 1000.0;
        Self {
            gain: 1.0,
            release_factor: 10f32.powf(db_per_frame / 20.0),
        }
    }

    /// Current gain (1.0 = not limiting).
    pub fn gain(&self) -> f32 {
        self.gain
    }

    /// Continues from another stream's gain (a listener moving to its own mix).
    pub fn follow(&mut self, other: &Limiter) {
        self.gain = other.gain;
    }

    /// Scales `input` into `out` (same length; extra elements of either are ignored).
    pub fn process(&mut self, input: &[i32], out: &mut [i16]) {
        let peak = input.iter().map(|&x| x.unsigned_abs()).max().unwrap_or(0) as f32;
        let allowed = if peak > CEILING { CEILING / peak } else { 1.0 };
        let old = self.gain;
        if allowed <= old {
            self.gain = allowed;
            if allowed >= 1.0 {
                for (o, &x) in out.iter_mut().zip(input) {
                    // Only reached when the peak is below the ceiling: no saturation here.
                    *o = x.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                }
            } else {
                for (o, &x) in out.iter_mut().zip(input) {
                    *o = saturate(x as f32 * allowed);
                }
            }
            return;
        }
        // Release: ramp from the old gain up to a new one that is still at most `allowed`,
        // so every sample's gain stays under the ceiling too.
        let new = (old * self.release_factor).min(allowed);
        self.gain = new;
        let n = input.len().min(out.len()).max(1) as f32;
        let step = (new - old) / n;
        let mut g = old;
        for (o, &x) in out.iter_mut().zip(input) {
            g += step;
            *o = saturate(x as f32 * g);
        }
    }
}

/// Rounds half away from zero and saturates to i16.
pub(crate) fn saturate(x: f32) -> i16 {
    round_to_i32(x).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// Rounds half away from zero; the float-to-int `as` saturates. Written out because
/// `f32::round` is a libm call on baseline x86-64 (no SSE4.1), which showed up at 6 % of a
/// tick in profiles.
pub(crate) fn round_to_i32(x: f32) -> i32 {
    (x + 0.5f32.copysign(x)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_mix_passes_bit_exact() {
        let mut l = Limiter::new(20);
        let input: Vec<i32> = (0..320).map(|i| (i * 97 % 20000) - 10000).collect();
        let mut out = vec![0i16; 320];
        l.process(&input, &mut out);
        assert!(input.iter().zip(&out).all(|(&a, &b)| a == i32::from(b)));
    }

    #[test]
    fn overload_never_exceeds_the_ceiling_and_keeps_the_sign() {
        let mut l = Limiter::new(20);
        let mut out = vec![0i16; 320];
        for frame in 0..100 {
            let amp = if frame % 10 < 5 { 300_000 } else { 20_000 };
            let input: Vec<i32> = (0..320)
                .map(|i| if (i / 7) % 2 == 0 { amp } else { -amp })
                .collect();
            l.process(&input, &mut out);
            for (&x, &y) in input.iter().zip(&out) {
                assert!(f32::from(y).abs() <= CEILING + 0.5);
                assert_eq!(x.signum(), i32::from(y).signum(), "frame {frame}");
            }
        }
    }

    #[test]
    fn gain_recovers_slowly_after_a_burst() {
        let mut l = Limiter::new(20);
        let mut out = vec![0i16; 320];
        l.process(&[100_000; 320], &mut out);
        let after_burst = l.gain();
        assert!(after_burst < 0.32);
        l.process(&[1000; 320], &mut out);
        assert!(l.gain() > after_burst && l.gain() < after_burst * 1.05);
    }
}
