//! The conference mixer: frames in, frames out, per room.
//!
//! A [`Room`] takes one decoded frame per participant per tick, picks the loudest few
//! talkers, and produces for every participant an encoded payload of "everyone but me".
//! Cost grows with talkers, not listeners: only the mixed talkers are resampled and get
//! their own mix and encoder; all other listeners share one mix, encoded once per codec,
//! and receive the very same payload bytes. Per participant it also does talker detection
//! (with events), automatic gain control and optional RNNoise noise suppression; the mix is
//! accumulated in 32 bits and brought back to 16 bits by a soft limiter.
//!
//! It stays pure: no sockets, no clocks, no threads, no locks; the tick allocates nothing
//! (all buffers are made at room creation and join). Jitter buffers and decoding of the
//! incoming RTP belong to the caller (`media`).

pub mod agc;
mod config;
pub mod denoise;
pub mod limiter;
mod room;
pub mod talker;

pub use config::{MixerConfig, MixerError, ParticipantId, ParticipantOptions};
pub use media::codec::CodecKind;
pub use room::{FORWARD_MAX_GAIN_DB, MixPlan, OutputFrame, Room, RoomEvent, RoomStats};
