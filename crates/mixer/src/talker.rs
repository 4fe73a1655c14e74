//! Talker detection: frame energy against an adaptive noise floor, with hang-over.
//!
//! Onset is immediate (the frame that crosses the threshold is already "talking"), so the
//! first 20 ms of a word is mixed; the hang-over keeps the talker on through the pauses
//! between words so word ends are not cut.

/// Level reported for digital silence (RFC 6464 §3: the audio-level range ends at −127 dBov).
pub const SILENCE_DBOV: f32 = -127.0;
/// Onset threshold above the noise floor.
const ONSET_MARGIN_DB: f32 = 9.0;
/// Lowest onset threshold: below this nothing counts as speech however quiet the line.
const MIN_THRESHOLD_DBOV: f32 = -55.0;
/// Highest onset threshold: a noisy line never makes normal speech (above −40 dBov,
/// quiet speakerphones included) count as noise.
const MAX_THRESHOLD_DBOV: f32 = -40.0;
/// Once talking, frames this much below the onset threshold still refresh the hang-over.
const RELEASE_HYSTERESIS_DB: f32 = 3.0;
/// Frames this close below the onset threshold are "maybe speech": mixed if a slot is free.
const PRE_ONSET_MARGIN_DB: f32 = 6.0;
/// How fast the noise floor may rise (it falls at once: minimum tracking).
const FLOOR_RISE_DB_PER_S: f32 = 5.0;
/// Floor of the noise floor, so that digital silence does not make the threshold absurd.
const FLOOR_MIN_DBOV: f32 = -90.0;

/// Level of one frame in dBov (0 dBov = a full-scale square wave), at least [`SILENCE_DBOV`].
pub fn frame_dbov(pcm: &[i16]) -> f32 {
    // Eight f32 lanes so that the compiler vectorises it: this runs for every participant
    // every tick, listeners included. f32 is exact enough for a level in dB.
    let mut lanes = [0f32; 8];
    let mut chunks = pcm.chunks_exact(8);
    for chunk in &mut chunks {
        for (acc, &s) in lanes.iter_mut().zip(chunk) {
            let s = f32::from(s);
            *acc += s * s;
        }
    }
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|&s| f32::from(s).powi(2))
        .sum();
    let sum = lanes.iter().sum::<f32>() + tail;
    if sum <= 0.0 || pcm.is_empty() {
        return SILENCE_DBOV;
    }
    let mean_square = sum / pcm.len() as f32;
    (10.0 * (mean_square / (32768.0 * 32768.0)).log10()).max(SILENCE_DBOV)
}

/// A change of talking state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TalkTransition {
    /// The participant started talking this frame.
    Started,
    /// The hang-over ran out.
    Stopped,
}

/// Energy VAD with an adaptive noise floor and hang-over, one per participant.
#[derive(Debug, Clone)]
pub struct TalkerDetector {
    noise_floor: f32,
    floor_rise_per_frame: f32,
    hangover_frames: u32,
    hang: u32,
    talking: bool,
}

impl TalkerDetector {
    /// A detector for frames of `ptime_ms` that stays on `hangover_ms` after speech ends.
    pub fn new(ptime_ms: u32, hangover_ms: u32) -> Self {
        let ptime = ptime_ms.max(1);
        Self {
            noise_floor: FLOOR_MIN_DBOV,
            floor_rise_per_frame: FLOOR_RISE_DB_PER_S * ptime as f32 / 1000.0,
            hangover_frames: hangover_ms.div_ceil(ptime).max(1),
            hang: 0,
            talking: false,
        }
    }

    /// Feeds one frame's level; returns the transition it caused, if any.
    pub fn update(&mut self, level_dbov: f32) -> Option<TalkTransition> {
        let threshold = self.threshold();
        self.noise_floor = if level_dbov < self.noise_floor {
            level_dbov.max(FLOOR_MIN_DBOV)
        } else {
            (self.noise_floor + self.floor_rise_per_frame).min(level_dbov)
        };
        let was = self.talking;
        if level_dbov >= threshold {
            self.talking = true;
            self.hang = self.hangover_frames;
        } else if self.talking {
            if level_dbov >= threshold - RELEASE_HYSTERESIS_DB {
                self.hang = self.hangover_frames;
            } else {
                self.hang = self.hang.saturating_sub(1);
                if self.hang == 0 {
                    self.talking = false;
                }
            }
        }
        match (was, self.talking) {
            (false, true) => Some(TalkTransition::Started),
            (true, false) => Some(TalkTransition::Stopped),
            _ => None,
        }
    }

    /// Forces the detector to silence (participant left or muted history dropped).
    pub fn reset(&mut self) {
        self.hang = 0;
        self.talking = false;
    }

    /// Current onset threshold in dBov.
    pub fn threshold(&self) -> f32 {
        (self.noise_floor + ONSET_MARGIN_DB).clamp(MIN_THRESHOLD_DBOV, MAX_THRESHOLD_DBOV)
    }

    /// Whether the participant is talking (including hang-over).
    pub fn is_talking(&self) -> bool {
        self.talking
    }

    /// Whether a frame of `level_dbov` is active speech (not hang-over): drives the AGC.
    pub fn is_speech(&self, level_dbov: f32) -> bool {
        self.talking && level_dbov >= self.threshold()
    }

    /// Whether a frame of `level_dbov` may be a soft word onset worth mixing when a slot is
    /// free, although it did not trigger talking yet.
    pub fn is_possible_onset(&self, level_dbov: f32) -> bool {
        level_dbov >= self.threshold() - PRE_ONSET_MARGIN_DB
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbov_of_full_scale_square_is_zero_and_sine_minus_three() {
        let square: Vec<i16> = (0..160)
            .map(|i| if i % 2 == 0 { 32767 } else { -32767 })
            .collect();
        assert!(frame_dbov(&square).abs() < 0.01);
        let sine: Vec<i16> = (0..160)
            .map(|i| (32767.0 * (i as f32 * 0.25 * std::f32::consts::PI).sin()) as i16)
            .collect();
        assert!((frame_dbov(&sine) + 3.01).abs() < 0.05);
        assert_eq!(frame_dbov(&[0; 160]), SILENCE_DBOV);
        assert_eq!(frame_dbov(&[]), SILENCE_DBOV);
    }

    #[test]
    fn starts_on_the_first_loud_frame_and_stops_after_hangover() {
        let mut d = TalkerDetector::new(20, 200);
        for _ in 0..10 {
            assert_eq!(d.update(SILENCE_DBOV), None);
        }
        assert_eq!(d.update(-25.0), Some(TalkTransition::Started));
        assert!(d.is_talking());
        for _ in 0..9 {
            assert_eq!(d.update(SILENCE_DBOV), None);
            assert!(d.is_talking());
        }
        assert_eq!(d.update(SILENCE_DBOV), Some(TalkTransition::Stopped));
    }

    #[test]
    fn steady_noise_raises_the_threshold_but_not_above_minus_40() {
        let mut d = TalkerDetector::new(20, 200);
        for _ in 0..1000 {
            d.update(-50.0);
        }
        assert!(!d.is_talking(), "steady -50 dBov noise counted as talk");
        assert!((d.threshold() + 41.0).abs() < 1.01, "{}", d.threshold());
        for _ in 0..1000 {
            d.update(-30.0);
        }
        assert!(d.is_talking(), "a -30 dBov talker must stay talking");
        assert_eq!(d.threshold(), MAX_THRESHOLD_DBOV);
    }
}
