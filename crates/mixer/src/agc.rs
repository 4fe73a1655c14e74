//! Automatic gain control: one slow gain per participant toward a target speech level.
//!
//! The speech level is estimated only from frames the talker detector calls speech, so
//! pauses and background noise never pump the gain up; the gain then slews at a few dB per
//! second (slow attack and release: no audible breathing) and stays within ±15 dB.

/// Speech level every participant is brought to.
pub const TARGET_DBOV: f32 = -20.0;
/// Largest boost or cut.
pub const MAX_GAIN_DB: f32 = 15.0;
/// How fast the gain may rise.
const RISE_DB_PER_S: f32 = 3.0;
/// How fast the gain may fall (a little faster: too loud hurts more than too quiet).
const FALL_DB_PER_S: f32 = 6.0;
/// Time constant of the speech-level estimate.
const LEVEL_TIME_CONSTANT_MS: f32 = 1000.0;

/// Per-participant AGC state.
#[derive(Debug, Clone)]
pub struct Agc {
    gain_db: f32,
    linear: f32,
    /// The speech level as mean power (full scale = 1); starts at the target's, where the
    /// gain starts too, so that a talker's first syllable is one sample of its level.
    speech_power: f32,
    alpha: f32,
    rise_per_frame: f32,
    fall_per_frame: f32,
}

impl Agc {
    /// An AGC for frames of `ptime_ms`, starting at unity gain.
    pub fn new(ptime_ms: u32) -> Self {
        let ptime = ptime_ms.max(1) as f32;
        Self {
            gain_db: 0.0,
            linear: 1.0,
            speech_power: 10f32.powf(TARGET_DBOV / 10.0),
            alpha: 1.0 - (-ptime / LEVEL_TIME_CONSTANT_MS).exp(),
            rise_per_frame: RISE_DB_PER_S * ptime / 1000.0,
            fall_per_frame: FALL_DB_PER_S * ptime / 1000.0,
        }
    }

    /// Feeds one frame's input level; the gain moves only when `is_speech`.
    pub fn update(&mut self, level_dbov: f32, is_speech: bool) {
        if !is_speech {
            return;
        }
        // Averaged as power, not in dB: speech's level is that of its loud syllables
        // (ITU-T P.56 active speech level), and a mean of dB values sinks with every weak
        // consonant and pause edge the detector still calls speech, so talkers already at
        // the target were boosted by about 6 dB.
        let power = 10f32.powf(level_dbov / 10.0);
        self.speech_power += self.alpha * (power - self.speech_power);
        let est = 10.0 * self.speech_power.max(1e-12).log10();
        let wanted = (TARGET_DBOV - est).clamp(-MAX_GAIN_DB, MAX_GAIN_DB);
        let step = (wanted - self.gain_db).clamp(-self.fall_per_frame, self.rise_per_frame);
        self.gain_db = (self.gain_db + step).clamp(-MAX_GAIN_DB, MAX_GAIN_DB);
        self.linear = 10f32.powf(self.gain_db / 20.0);
    }

    /// Current gain as a factor.
    pub fn gain(&self) -> f32 {
        self.linear
    }

    /// Current gain in dB.
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gain_is_bounded_to_15_db_both_ways() {
        let mut quiet = Agc::new(20);
        let mut loud = Agc::new(20);
        for _ in 0..2000 {
            quiet.update(-60.0, true);
            loud.update(-1.0, true);
        }
        assert!((quiet.gain_db() - MAX_GAIN_DB).abs() < 1e-3);
        assert!((loud.gain_db() + MAX_GAIN_DB).abs() < 1e-3);
    }

    #[test]
    fn gain_does_not_move_outside_speech() {
        let mut agc = Agc::new(20);
        for _ in 0..500 {
            agc.update(-60.0, false);
        }
        assert_eq!(agc.gain_db(), 0.0);
    }

    #[test]
    fn speech_at_the_target_active_level_is_left_alone_whatever_its_syllables_do() {
        // Syllables of one talker: loud vowels, weak consonants and fading ends, with an
        // active (power) level of about -20 dBov, which is where the test speech and a
        // well-set phone sit. The gain must stay near unity, so that a lone talker is
        // forwarded unchanged instead of being boosted by the mean of its dB values (-24).
        let syllable = [-15.0f32, -17.0, -20.0, -26.0, -32.0, -36.0];
        let power = syllable.iter().map(|l| 10f32.powf(l / 10.0)).sum::<f32>() / 6.0;
        let active = 10.0 * power.log10();
        assert!((active - TARGET_DBOV).abs() < 1.0, "{active}");
        let mut agc = Agc::new(20);
        for frame in 0..1500 {
            agc.update(syllable[frame % syllable.len()], true);
            // The first frame alone is the first estimate; a few seconds settle it.
            let allowed = if frame < 150 { 3.0 } else { 1.0 };
            assert!(
                agc.gain_db().abs() < allowed,
                "frame {frame}: {}",
                agc.gain_db()
            );
        }
    }

    #[test]
    fn gain_slews_slowly() {
        let mut agc = Agc::new(20);
        for _ in 0..50 {
            agc.update(-35.0, true);
        }
        // One second at 3 dB/s.
        assert!((agc.gain_db() - 3.0).abs() < 0.01, "{}", agc.gain_db());
    }
}
