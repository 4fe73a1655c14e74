//! Whether a listener hears the talkers' tone: the share of a decoded stretch's energy that
//! lies at the tone's frequency (Goertzel), summed over the frames a listener checks.

/// A stretch counts as the tone when at least this share of its energy is at the tone's
/// frequency (a clean sine through Opus gives > 0.9; silence or another tone near 0).
pub const TONE_SHARE: f64 = 0.5;
/// ... and the tone is at least this loud (dBFS, a sine's peak): not comfort noise.
pub const TONE_MIN_DBFS: f64 = -50.0;

/// Accumulates decoded frames and measures one frequency in them.
#[derive(Debug, Clone)]
pub struct ToneMeter {
    /// Goertzel coefficient 2·cos(2πf/fs).
    coeff: f64,
    /// Energy at the frequency and in total, summed over frames (per-sample mean power).
    tone_power: f64,
    total_power: f64,
    samples: u64,
}

/// What a [`ToneMeter`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneReading {
    /// Level of the tone as a sine's peak, dBFS (-inf for nothing).
    pub tone_dbfs: f64,
    /// Share of all energy that is the tone, 0..=1.
    pub share: f64,
}

impl ToneReading {
    /// Whether this is the tone: loud enough and most of the energy.
    pub fn heard(&self) -> bool {
        self.share >= TONE_SHARE && self.tone_dbfs >= TONE_MIN_DBFS
    }
}

impl ToneMeter {
    /// A meter for `freq` Hz in audio at `rate` Hz.
    pub fn new(freq: f64, rate: u32) -> Self {
        Self {
            coeff: 2.0 * (2.0 * std::f64::consts::PI * freq / f64::from(rate)).cos(),
            tone_power: 0.0,
            total_power: 0.0,
            samples: 0,
        }
    }

    /// Adds one frame. Each frame is measured on its own (the sum of per-frame powers), so
    /// the phase across frame boundaries does not matter; a frame should hold several
    /// periods of the tone (20 ms at 440 Hz holds 8.8).
    pub fn feed(&mut self, pcm: &[i16]) {
        if pcm.is_empty() {
            return;
        }
        let (mut s1, mut s2, mut energy) = (0.0f64, 0.0f64, 0.0f64);
        for &x in pcm {
            let x = f64::from(x) / 32768.0;
            let s0 = x + self.coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
            energy += x * x;
        }
        let n = pcm.len() as f64;
        // |X(f)|² of the frame: a sine of peak A at f gives (A·n/2)², and its energy in the
        // frame is n·A²/2 = 2·|X|²/n.
        let magnitude = s1 * s1 + s2 * s2 - self.coeff * s1 * s2;
        self.tone_power += 2.0 * magnitude / n;
        self.total_power += energy;
        self.samples += pcm.len() as u64;
    }

    /// The tone's level and share over everything fed.
    pub fn reading(&self) -> ToneReading {
        if self.samples == 0 || self.total_power <= 0.0 {
            return ToneReading {
                tone_dbfs: f64::NEG_INFINITY,
                share: 0.0,
            };
        }
        let tone_mean = self.tone_power / self.samples as f64;
        ToneReading {
            // A sine of peak A has mean power A²/2: the level as a sine's peak, like the
            // talkers' -16 dBFS.
            tone_dbfs: 10.0 * (tone_mean / 0.5).log10(),
            share: (self.tone_power / self.total_power).min(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, dbfs: f64, rate: u32, n: usize, phase: usize) -> Vec<i16> {
        let amp = 32767.0 * 10f64.powf(dbfs / 20.0);
        (phase..phase + n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn a_440_hz_tone_is_heard_at_its_level() {
        let mut meter = ToneMeter::new(440.0, 48000);
        for f in 0..50 {
            meter.feed(&sine(440.0, -16.0, 48000, 960, f * 960));
        }
        let r = meter.reading();
        assert!(r.heard(), "{r:?}");
        assert!(r.share > 0.9, "{r:?}");
        // A -16 dBFS (peak) sine: the level is of a full-scale sine's power.
        assert!((r.tone_dbfs - -16.0).abs() < 1.0, "{r:?}");
    }

    #[test]
    fn another_tone_silence_and_faint_noise_are_not_the_tone() {
        let mut other = ToneMeter::new(440.0, 48000);
        for f in 0..50 {
            other.feed(&sine(1000.0, -16.0, 48000, 960, f * 960));
        }
        assert!(!other.reading().heard(), "{:?}", other.reading());

        let mut silence = ToneMeter::new(440.0, 48000);
        silence.feed(&[0; 960]);
        assert!(!silence.reading().heard());

        let mut faint = ToneMeter::new(440.0, 48000);
        faint.feed(&sine(440.0, -70.0, 48000, 960, 0));
        assert!(!faint.reading().heard(), "{:?}", faint.reading());
    }

    #[test]
    fn the_tone_under_a_louder_other_tone_is_not_most_of_the_energy() {
        let mut meter = ToneMeter::new(440.0, 48000);
        let mix: Vec<i16> = sine(440.0, -30.0, 48000, 960, 0)
            .iter()
            .zip(sine(1000.0, -10.0, 48000, 960, 0))
            .map(|(a, b)| a.saturating_add(b))
            .collect();
        meter.feed(&mix);
        assert!(!meter.reading().heard(), "{:?}", meter.reading());
    }
}
