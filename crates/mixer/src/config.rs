//! Room and participant settings, identifiers and errors.

use media::codec::{CodecError, CodecKind};
use media::resample::ResampleError;

/// Settings of one room, fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixerConfig {
    /// Highest rate the room mixes at: 16000 (default) or 48000; 8000 is accepted for
    /// narrow-band rooms.
    pub internal_rate: u32,
    /// Mix at the lowest rate that carries every participant's codec, up to `internal_rate`
    /// (default on). A room of G.711 phones then mixes at 8 kHz and converts nothing; the
    /// first wide-band participant moves it up. Off keeps `internal_rate` always.
    pub adaptive_rate: bool,
    /// Frame duration: 10, 20 (default), 40 or 60 ms (the Opus frame sizes).
    pub ptime_ms: u32,
    /// The loudest this many talkers are mixed; everyone else is not (default 4).
    pub max_mixed_speakers: usize,
    /// Automatic gain control per participant (default on).
    pub agc: bool,
    /// Noise suppression for participants that do not choose (default off: it costs CPU).
    pub noise_suppression: bool,
    /// Participants allowed in the room (default 1000).
    pub max_participants: usize,
    /// Encode the common mix once per codec for all non-speakers (default on). Off is the
    /// conventional mixer that encodes per listener, kept as a baseline for benchmarks.
    pub shared_encoding: bool,
    /// Forward a lone talker's payload unchanged to listeners on its codec (default on):
    /// no encode, and no second generation of coding loss. Off for the conventional baseline.
    pub forward_lone_talker: bool,
    /// How long a talker stays "talking" after the last loud frame (default 300 ms).
    pub talk_hangover_ms: u32,
}

impl Default for MixerConfig {
    fn default() -> Self {
        Self {
            internal_rate: 16_000,
            adaptive_rate: true,
            ptime_ms: 20,
            max_mixed_speakers: 4,
            agc: true,
            noise_suppression: false,
            max_participants: 1000,
            shared_encoding: true,
            forward_lone_talker: true,
            talk_hangover_ms: 300,
        }
    }
}

impl MixerConfig {
    /// Checks the rate and frame duration.
    pub fn validate(&self) -> Result<(), MixerError> {
        if !matches!(self.internal_rate, 8000 | 16_000 | 48_000) {
            return Err(MixerError::UnsupportedRate(self.internal_rate));
        }
        if !matches!(self.ptime_ms, 10 | 20 | 40 | 60) {
            return Err(MixerError::UnsupportedPtime(self.ptime_ms));
        }
        Ok(())
    }
}

/// A participant of a room; unique within the room for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u32);

/// How a participant joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParticipantOptions {
    /// The codec negotiated for this leg: sets the PCM rate of its input and output.
    pub codec: CodecKind,
    /// Joins muted (not heard).
    pub muted: bool,
    /// Joins deaf (hears nothing).
    pub deaf: bool,
    /// Noise suppression for this leg; `None` follows the room's setting.
    pub noise_suppression: Option<bool>,
}

impl ParticipantOptions {
    /// A plain participant on `codec`.
    pub fn new(codec: CodecKind) -> Self {
        Self {
            codec,
            muted: false,
            deaf: false,
            noise_suppression: None,
        }
    }
}

impl Default for ParticipantOptions {
    fn default() -> Self {
        Self::new(CodecKind::Pcmu)
    }
}

/// Why a room or a participant could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MixerError {
    /// The room already holds `max_participants`.
    #[error("room is full ({max} participants)")]
    RoomFull {
        /// The room's limit.
        max: usize,
    },
    /// The internal rate is not one we mix at.
    #[error("internal rate {0} Hz is not 8000, 16000 or 48000")]
    UnsupportedRate(u32),
    /// The frame duration is not one every codec (and RNNoise) can take.
    #[error("ptime {0} ms is not 10, 20, 40 or 60")]
    UnsupportedPtime(u32),
    /// An encoder could not be created.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A rate converter could not be created.
    #[error(transparent)]
    Resample(#[from] ResampleError),
}
