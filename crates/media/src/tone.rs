//! Tone generation for beeps, join/leave tones, call-progress and test signals: one or two
//! sines at a level in dBFS, optionally switched on and off in a cadence.
//!
//! Phase comes from an integer sample counter (reduced modulo the sample rate), so long
//! tones do not drift; edges get a 2 ms raised-cosine ramp so cadenced tones do not click.

/// Edge ramp length.
const RAMP_MS: u32 = 2;

/// Description of a tone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    /// First frequency in Hz.
    pub freq1: f32,
    /// Second frequency in Hz (dual tone), or `None`.
    pub freq2: Option<f32>,
    /// Level of each component in dBFS (0 = full scale sine peak).
    pub level_dbfs: f32,
    /// On time of the cadence in ms; 0 means continuous.
    pub on_ms: u32,
    /// Off time of the cadence in ms.
    pub off_ms: u32,
    /// Number of on/off cycles before the tone ends; `None` repeats forever.
    pub cycles: Option<u32>,
}

impl ToneSpec {
    /// A continuous single tone.
    pub fn single(freq: f32, level_dbfs: f32) -> Self {
        Self {
            freq1: freq,
            freq2: None,
            level_dbfs,
            on_ms: 0,
            off_ms: 0,
            cycles: None,
        }
    }

    /// A continuous dual tone.
    pub fn dual(freq1: f32, freq2: f32, level_dbfs: f32) -> Self {
        Self {
            freq2: Some(freq2),
            ..Self::single(freq1, level_dbfs)
        }
    }

    /// The same tone switched `on_ms` on, `off_ms` off.
    pub fn with_cadence(self, on_ms: u32, off_ms: u32) -> Self {
        Self {
            on_ms,
            off_ms,
            ..self
        }
    }

    /// The same tone ending after `cycles` on/off cycles (a continuous tone: after
    /// `cycles` × `on_ms`).
    pub fn with_cycles(self, cycles: u32) -> Self {
        Self {
            cycles: Some(cycles),
            ..self
        }
    }
}

/// Fills frames with a [`ToneSpec`] at a fixed sample rate.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    rate: u64,
    amp: f64,
    freq1: f64,
    freq2: Option<f64>,
    on: u64,
    period: u64,
    ramp: u64,
    limit: Option<u64>,
    /// Samples produced since the start.
    n: u64,
}

impl ToneGenerator {
    /// A generator for `spec` at `sample_rate` Hz.
    pub fn new(sample_rate: u32, spec: ToneSpec) -> Self {
        let rate = u64::from(sample_rate.max(1));
        let ms = |v: u32| u64::from(v) * rate / 1000;
        let continuous = spec.on_ms == 0;
        let on = if continuous { u64::MAX } else { ms(spec.on_ms) };
        let period = if continuous {
            u64::MAX
        } else {
            on + ms(spec.off_ms)
        };
        let limit = spec
            .cycles
            .map(|c| if continuous { 0 } else { u64::from(c) * period });
        Self {
            rate,
            amp: 32767.0 * 10f64.powf(f64::from(spec.level_dbfs.min(0.0)) / 20.0),
            freq1: f64::from(spec.freq1),
            freq2: spec.freq2.map(f64::from),
            on,
            period,
            ramp: ms(RAMP_MS).max(1),
            limit,
            n: 0,
        }
    }

    /// True once a tone with a cycle count has ended.
    pub fn finished(&self) -> bool {
        self.limit.is_some_and(|l| self.n >= l)
    }

    /// Restarts the tone from its beginning.
    pub fn restart(&mut self) {
        self.n = 0;
    }

    /// Fills `out` with the next samples; returns false if the tone had already ended
    /// before this call (then `out` is silence).
    pub fn fill(&mut self, out: &mut [i16]) -> bool {
        if self.finished() {
            out.fill(0);
            return false;
        }
        for s in out.iter_mut() {
            *s = self.sample();
            self.n = self.n.saturating_add(1);
        }
        true
    }

    fn sample(&self) -> i16 {
        if self.finished() {
            return 0;
        }
        let pos = if self.period == u64::MAX {
            self.n
        } else {
            self.n % self.period
        };
        if pos >= self.on {
            return 0;
        }
        let gain = if pos < self.ramp {
            ramp(pos, self.ramp)
        } else if self.on != u64::MAX && self.on - pos <= self.ramp {
            ramp(self.on - pos - 1, self.ramp)
        } else {
            1.0
        };
        // Reduce the counter modulo the rate: sin(2π f n / rate) with n < rate stays exact
        // for integer frequencies and never loses precision over long tones.
        let t = (self.n % self.rate) as f64 / self.rate as f64 + (self.n / self.rate) as f64;
        let mut v = component(self.freq1, t, self.n, self.rate);
        if let Some(f2) = self.freq2 {
            v += component(f2, t, self.n, self.rate);
        }
        (v * self.amp * gain).round().clamp(-32768.0, 32767.0) as i16
    }
}

/// sin(2π f t), with the whole-second part of the phase removed exactly when f is integral.
fn component(freq: f64, t: f64, n: u64, rate: u64) -> f64 {
    let phase = if freq.fract() == 0.0 {
        // f × whole seconds is a whole number of cycles: only the sub-second part matters.
        freq * ((n % rate) as f64 / rate as f64)
    } else {
        (freq * t).fract()
    };
    (2.0 * std::f64::consts::PI * phase).sin()
}

/// Raised-cosine ramp value for sample `i` of `len`.
fn ramp(i: u64, len: u64) -> f64 {
    0.5 - 0.5 * (std::f64::consts::PI * (i as f64 + 0.5) / len as f64).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peak(x: &[i16]) -> u16 {
        x.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0)
    }

    #[test]
    fn level_in_dbfs_sets_the_peak() {
        let mut g = ToneGenerator::new(8000, ToneSpec::single(1000.0, -6.0));
        let mut f = [0i16; 160];
        g.fill(&mut f);
        let p = f64::from(peak(&f));
        let expected = 32767.0 * 10f64.powf(-6.0 / 20.0);
        assert!((p - expected).abs() < expected * 0.01, "peak {p}");
    }

    #[test]
    fn frames_join_without_drift_or_seams() {
        let spec = ToneSpec::single(440.0, -10.0);
        let mut framed = ToneGenerator::new(16000, spec);
        let mut all = Vec::new();
        let mut f = [0i16; 320];
        // One hour in 20 ms frames would be slow; jump the counter to one hour instead.
        framed.n = 3600 * 16000;
        for _ in 0..10 {
            framed.fill(&mut f);
            all.extend_from_slice(&f);
        }
        let amp = 32767.0 * 10f64.powf(-0.5);
        for (i, &s) in all.iter().enumerate() {
            let t = i as f64 / 16000.0;
            // 440 Hz × 3600 s is whole cycles, so the hour-late tone equals a fresh one.
            let ideal = amp * (2.0 * std::f64::consts::PI * 440.0 * t).sin();
            assert!(
                (f64::from(s) - ideal).abs() <= 1.0,
                "sample {i}: {s} vs {ideal:.1}"
            );
        }
    }

    #[test]
    fn dual_tone_contains_both_frequencies() {
        let mut g = ToneGenerator::new(8000, ToneSpec::dual(350.0, 440.0, -13.0));
        let mut f = [0i16; 8000];
        g.fill(&mut f);
        for freq in [350.0, 440.0] {
            let w = 2.0 * std::f64::consts::PI * freq / 8000.0;
            let (mut re, mut im) = (0.0, 0.0);
            for (i, &s) in f.iter().enumerate() {
                re += f64::from(s) * (w * i as f64).cos();
                im += f64::from(s) * (w * i as f64).sin();
            }
            let a = 2.0 * (re * re + im * im).sqrt() / 8000.0;
            let expected = 32767.0 * 10f64.powf(-13.0 / 20.0);
            assert!((a - expected).abs() < expected * 0.02, "{freq}: {a:.0}");
        }
    }

    #[test]
    fn cadence_switches_on_and_off_with_ramped_edges() {
        // 100 ms on, 100 ms off at 8 kHz: 800 samples each.
        let mut g = ToneGenerator::new(8000, ToneSpec::single(1000.0, 0.0).with_cadence(100, 100));
        let mut f = vec![0i16; 3200];
        g.fill(&mut f);
        assert!(peak(&f[100..700]) > 30000);
        assert_eq!(peak(&f[800..1600]), 0);
        assert!(peak(&f[1700..2300]) > 30000);
        // The first samples of each burst ramp up instead of jumping.
        assert!(f[1600].unsigned_abs() < 1000 && f[1601].unsigned_abs() < 3000);
        let max_step = f
            .windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0);
        // Natural slope of a full-scale 1 kHz sine at 8 kHz is 2π·1000/8000·32767 ≈ 25736.
        assert!(max_step <= 25800, "step {max_step}");
    }

    #[test]
    fn cycles_end_the_tone() {
        let spec = ToneSpec::single(800.0, -6.0)
            .with_cadence(20, 20)
            .with_cycles(2);
        let mut g = ToneGenerator::new(8000, spec);
        let mut f = [0i16; 160];
        let mut frames = 0;
        while g.fill(&mut f) {
            frames += 1;
            assert!(frames < 10);
        }
        assert_eq!(frames, 4);
        assert!(g.finished());
        g.restart();
        assert!(!g.finished());
    }
}
