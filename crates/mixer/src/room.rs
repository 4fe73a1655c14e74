//! One conference room: participants, the per-tick mix plan, and the outputs.
//!
//! Per tick: every participant's frame is measured (level, talker detection, AGC), the
//! loudest `max_mixed_speakers` candidates are chosen, only those are converted to the
//! mix rate and summed in 32 bits. Everyone who is not a mixed speaker hears the same
//! sum, so it is limited once, converted once per codec rate and encoded once per codec;
//! each mixed speaker gets "sum minus me" through its own limiter, resampler and encoder.
//!
//! Codec state: G.722 and Opus encoders are stateful, and a participant that becomes a
//! mixed speaker switches from the shared encoder to its own (and back). Opus decoders accept
//! a stream from another encoder instance (each packet is decodable). G.722's ADPCM decoder
//! does not: fed another encoder's codes it runs with the wrong predictor and scale for
//! hundreds of ms (speech at the wrong level under wide-band noise; issue 13 measured PESQ
//! 1.17 where 2.70 was possible). So a G.722 listener's decoder only ever hears codes made
//! for the state it is in: G.722 listeners are never given a canned silence frame; they hear
//! the shared encoder, which keeps running (on silence too) and never restarts, and a
//! participant moving to its own encoder starts that encoder from the shared encoder's
//! state. The one exception is a lone G.722 talker whose spurt starts in a quiet room (both
//! its encoder and the shared one have coded silence long enough to agree): its listeners
//! then get its own codes, byte for byte, with a mirror decoder tracking their state; a
//! frame its packet is missing for is coded from that state, and as soon as the talker is
//! not alone or stops, the shared encoder continues from that state too (`G722Follow`).
//! A lone G.722 talker hears its own encoder. The way back from
//! its own encoder to the shared one comes after the talker hang-over, during which its
//! "everyone but me" is the shared mix: both encoders have coded the same signal long enough
//! to agree (a test pins that). The resampler and limiter on the way are primed with what
//! the participant heard the tick before, so those do not click.
//!
//! Deaf participants get a shared, pre-encoded silence frame of their codec (not nothing),
//! so their RTP stream, NAT bindings and the far end's jitter buffer stay alive.
//!
//! Most of a meeting is one person talking, and then nothing needs encoding at all: the
//! lone talker hears "everyone but me", which is silence, so it gets the silence frame; a
//! listener on the talker's codec (G.711 or Opus) gets the talker's own received payload, byte for byte
//! (no second generation of coding loss, no encoder run). That needs the payload
//! (`put_encoded_frame`), a gain within [`FORWARD_MAX_GAIN_DB`] of unity and no noise
//! suppression, since forwarding skips both. Listeners on other codecs get the shared mix.
//! A listener on the other G.711 law gets the payload converted by table, byte for byte
//! (A-law ↔ µ-law, G.711 §4), not decoded and encoded again.
//! When a forwarded Opus talker's packet is lost before it reaches us, its forwarded
//! listeners get nothing that tick and the caller passes the loss on (`lost_upstream`):
//! their decoders conceal within the talker's own stream, or recover the frame from the FEC
//! of its next packet, where one frame from our encoder would be a switch of streams
//! (offline, Opus->Opus at 3 % loss: -0.56 -> -0.20 PESQ with a listener that uses FEC).
//! Such a talker is also mixed at unity gain, so that a concealed frame (a lost packet leaves
//! nothing to forward) keeps the level of the forwarded frames around it.
//! When nobody is mixed at all, everyone gets the silence frame. An encoder that resumes
//! after such a pause starts from a fresh state, nearer to its listeners' decoders (which
//! followed silence or the forwarded stream) than its own stale history.
//!
//! Mix rate: with `adaptive_rate` the room mixes at the highest codec rate among its
//! participants (capped by `internal_rate`), so a room of telephones runs at 8 kHz with no
//! rate conversion at all. Joins and leaves that change the rate rebuild every converter and
//! mix buffer (outside the tick, where allocation is allowed).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use media::codec::{CodecKind, Encoder};
use media::g711;
use media::g722::G722Decoder;
use media::opus::OPUS_MAX_PACKET;
use media::resample::Resampler;

use crate::agc::Agc;
use crate::denoise::{NoiseSuppressor, copy_padded, fill_from};
use crate::limiter::{Limiter, round_to_i32};
use crate::talker::{SILENCE_DBOV, TalkTransition, TalkerDetector, frame_dbov};
use crate::{MixerConfig, MixerError, ParticipantId, ParticipantOptions};

#[cfg(test)]
mod tests;

/// Talkers get this priority over mere possible onsets when slots are ranked.
const TALKING_PRIORITY_DB: f32 = 200.0;
/// A speaker mixed last tick keeps its slot against a newcomer up to this much louder, so
/// the speaker set does not flap between similar voices.
const SLOT_HYSTERESIS_DB: f32 = 3.0;
/// How fast the ranking level of a talker decays between syllables.
const RANK_DECAY_DB_PER_S: f32 = 25.0;
/// Events kept for `poll_event` at least (more with bigger rooms).
const MIN_EVENT_CAPACITY: usize = 64;
/// A lone talker is forwarded unchanged only while its AGC gain is this close to unity:
/// forwarding skips the gain, and a quiet talker is better boosted than kept bit-exact.
pub const FORWARD_MAX_GAIN_DB: f32 = 6.0;

/// A participant started or stopped talking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomEvent {
    /// Talker detection turned on for this participant.
    TalkingStarted(ParticipantId),
    /// Talker detection's hang-over ran out (or the participant left while talking).
    TalkingStopped(ParticipantId),
}

/// One participant's encoded output of the last tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFrame<'a> {
    /// The RTP payload.
    pub payload: &'a [u8],
    /// Whether this is the payload shared with other participants (same bytes).
    pub shared: bool,
    /// Whether this is the room's canned silence frame (nothing to hear): a sender may
    /// leave it out towards a peer that asked for discontinuous transmission.
    pub silence: bool,
}

/// What the last tick did, for tests, metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixPlan {
    /// Encoder runs (shared + own).
    pub encodes: u32,
    /// Encoder runs for the shared mix (at most one per codec).
    pub shared_encodes: u32,
    /// Encoder runs for mixed speakers' own mixes (and every listener without shared encoding).
    pub own_encodes: u32,
    /// Talkers mixed.
    pub mixed_speakers: u32,
    /// Participants that received the shared payload.
    pub shared_listeners: u32,
    /// Participants that received the silence frame: deaf ones, a lone talker, and
    /// everyone when nobody is mixed.
    pub silence_frames: u32,
    /// Listeners that received the lone talker's own payload.
    pub forwarded: u32,
    /// Forwarded listeners left a gap because the talker's packet was lost upstream.
    pub gaps: u32,
    /// Input frames converted to the mix rate (including noise suppression chains).
    pub input_resamples: u32,
    /// Mixes converted from the mix rate to a codec rate.
    pub output_resamples: u32,
}

/// Room counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomStats {
    /// Participants in the room.
    pub participants: usize,
    /// Participants currently talking (muted ones included).
    pub talking: usize,
    /// Ticks run.
    pub ticks: u64,
    /// Encoder failures since creation (the affected output is missing that tick).
    pub encode_errors: u64,
    /// Events lost because nobody polled them.
    pub events_dropped: u64,
    /// What the last tick did.
    pub mix_plan: MixPlan,
}

/// Which output a participant got in the last tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    None,
    Shared,
    Own,
    Silence,
    /// The lone talker's received payload.
    Forward,
    /// The lone talker's G.711 payload converted to the other law, byte by byte.
    ForwardConverted,
    /// Nothing: the forwarded Opus talker's packet of this tick was lost on its way to us,
    /// and the listener's decoder, which follows the talker's own stream, conceals it better
    /// (with the FEC in the talker's next packet) than our encoder could stand in for it.
    Gap,
    /// A G.722 listener following the lone G.722 talker's stream: the talker's codes, or
    /// over a concealed frame codes that continue them from the listener's decoder state.
    FollowTalker,
}

/// Ticks of a silent room (the shared G.722 encoder coding nothing but silence) before G.722
/// listeners may start following a lone G.722 talker's own codes: by then their decoders'
/// step sizes and predictors have decayed to the silent state the talker's encoder starts
/// a talk spurt from, so its codes decode right from the first one.
const G722_FOLLOW_AFTER_QUIET_TICKS: u32 = 10;

/// The G.722 listeners' decoders while they follow a lone G.722 talker's stream. Its
/// buffers are made with the room, so that starting to follow allocates nothing in the tick.
struct G722Follow {
    /// Whose stream; `None`: the listeners follow the shared encoder.
    talker: Option<ParticipantId>,
    /// A decoder fed every code sent to the listeners: their decoders' state.
    mirror: G722Decoder,
    /// This tick's codes for the listeners (the talker's, or our continuation).
    payload: Box<[u8]>,
    payload_len: usize,
    /// Scratch for the mirror's output, which only advances its state.
    pcm: Box<[i16]>,
}

/// Whether a payload of `from` reaches a listener on `to` by a per-byte table (G.711's
/// A-law ↔ µ-law conversion) instead of decoding, mixing and encoding.
fn converts_by_table(from: CodecKind, to: CodecKind) -> bool {
    matches!(
        (from, to),
        (CodecKind::Pcma, CodecKind::Pcmu) | (CodecKind::Pcmu, CodecKind::Pcma)
    )
}

fn codec_index(kind: CodecKind) -> usize {
    match kind {
        CodecKind::Pcmu => 0,
        CodecKind::Pcma => 1,
        CodecKind::G722 => 2,
        CodecKind::Opus => 3,
    }
}

/// The codec rates the shared mix is converted to, in `Room::rates` slot order.
const SLOT_RATES: [u32; 3] = [8000, 16_000, 48_000];

fn rate_index(rate: u32) -> usize {
    match rate {
        8000 => 0,
        16_000 => 1,
        _ => 2,
    }
}

/// Samples in one frame at `rate`.
fn frame_len(rate: u32, ptime_ms: u32) -> usize {
    (rate / 1000 * ptime_ms) as usize
}

/// Largest payload one frame of `kind` can need.
fn payload_capacity(kind: CodecKind, ptime_ms: u32) -> usize {
    match kind {
        CodecKind::Pcmu | CodecKind::Pcma => kind.samples_per_frame(ptime_ms),
        CodecKind::G722 => kind.samples_per_frame(ptime_ms) / 2,
        CodecKind::Opus => OPUS_MAX_PACKET,
    }
}

/// Participant ids are small counters handed out by the room itself, so they hash as they
/// are: SipHash was two lookups per participant and tick (`put_frame`, `output`) in profiles.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

type IdMap = HashMap<ParticipantId, usize, BuildHasherDefault<IdHasher>>;

fn converter(from: u32, to: u32) -> Result<Option<Resampler>, MixerError> {
    Ok(if from == to {
        None
    } else {
        Some(Resampler::new(from, to)?)
    })
}

/// Everything of a participant that depends on the room's mix rate.
struct RateParts {
    upsampler: Option<Resampler>,
    internal: Box<[i16]>,
    contribution: Box<[i32]>,
    denoiser: Option<Box<NoiseSuppressor>>,
    own_mix: Box<[i16]>,
    downsampler: Option<Resampler>,
}

impl RateParts {
    fn new(
        codec: CodecKind,
        mix_rate: u32,
        ptime_ms: u32,
        noise_suppression: bool,
    ) -> Result<Self, MixerError> {
        let codec_rate = codec.sample_rate();
        let frame_len = frame_len(mix_rate, ptime_ms);
        let denoiser = if noise_suppression {
            Some(Box::new(NoiseSuppressor::new(
                codec_rate, mix_rate, ptime_ms,
            )?))
        } else {
            None
        };
        Ok(Self {
            upsampler: converter(codec_rate, mix_rate)?,
            internal: vec![0; frame_len].into_boxed_slice(),
            contribution: vec![0; frame_len].into_boxed_slice(),
            denoiser,
            own_mix: vec![0; frame_len].into_boxed_slice(),
            downsampler: converter(mix_rate, codec_rate)?,
        })
    }
}

/// A mixed speaker's (or, without shared encoding, any listener's) private output chain.
struct OwnOutput {
    encoder: Encoder,
    limiter: Limiter,
    /// "Everyone but me" at the mix rate.
    mix: Box<[i16]>,
    downsampler: Option<Resampler>,
    /// The same at the codec rate: what was encoded.
    pcm: Box<[i16]>,
    payload: Box<[u8]>,
    payload_len: usize,
}

struct Participant {
    id: ParticipantId,
    codec: CodecKind,
    muted: bool,
    deaf: bool,
    /// This tick's input at the codec rate.
    input: Box<[i16]>,
    /// The payload `input` was decoded from, when the caller gave it (for forwarding).
    received: Box<[u8]>,
    received_len: usize,
    has_received: bool,
    /// This tick's input is a pause of the sender (DTX, silence suppression), not a loss.
    paused: bool,
    /// Last tick's input: primes the upsampler when the participant becomes a speaker.
    prev_input: Box<[i16]>,
    has_input: bool,
    had_input: bool,
    upsampler: Option<Resampler>,
    /// The upsampler ran last tick, so its history is current.
    upsampler_warm: bool,
    /// This tick's input at the mix rate (when converted).
    internal: Box<[i16]>,
    /// What this participant adds to the sum this tick (after gain).
    contribution: Box<[i32]>,
    denoiser: Option<Box<NoiseSuppressor>>,
    talker: TalkerDetector,
    agc: Agc,
    level: f32,
    rank_level: f32,
    selected: bool,
    own: OwnOutput,
    route: Route,
    prev_route: Route,
}

impl Participant {
    /// Whether, talking alone, this participant is heard as it sent: no noise suppression,
    /// and a gain close enough to unity (see [`FORWARD_MAX_GAIN_DB`]) to be left out.
    fn heard_as_sent(&self, agc_on: bool) -> bool {
        self.denoiser.is_none() && (!agc_on || self.agc.gain_db().abs() <= FORWARD_MAX_GAIN_DB)
    }

    fn take_pcm(&mut self, pcm: &[i16]) {
        copy_padded(pcm, &mut self.input);
        self.has_input = true;
        // Measured here while the frame is in cache: with a thousand listeners the second
        // pass over every frame in `tick` was a quarter of the tick (cache misses).
        if self.denoiser.is_none() {
            self.level = frame_dbov(&self.input);
        }
    }
}

/// The shared mix converted to one codec rate.
struct SharedRate {
    resampler: Option<Resampler>,
    pcm: Box<[i16]>,
    warm: bool,
}

/// The shared encoder of one codec, and its silence frame for deaf participants.
struct SharedCodec {
    encoder: Encoder,
    payload: Box<[u8]>,
    payload_len: usize,
    produced: bool,
    /// Whether the encoder ran the tick before (else it resumes from a fresh state).
    produced_last_tick: bool,
    silence: Box<[u8]>,
    silence_len: usize,
    /// For codecs whose decoders must follow one encoder (G.722): the shared encoder's state
    /// before this tick's frame, which a listener moving to its own encoder continues from.
    before: Option<Encoder>,
}

/// Fixed-size event queue: the oldest event is dropped when nobody polls.
struct EventRing {
    slots: Box<[Option<RoomEvent>]>,
    head: usize,
    len: usize,
    dropped: u64,
}

impl EventRing {
    fn new(capacity: usize) -> Self {
        Self {
            slots: vec![None; capacity.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
            dropped: 0,
        }
    }

    fn push(&mut self, event: RoomEvent) {
        let cap = self.slots.len();
        if self.len == cap {
            self.head = (self.head + 1) % cap;
            self.len -= 1;
            self.dropped += 1;
        }
        self.slots[(self.head + self.len) % cap] = Some(event);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<RoomEvent> {
        if self.len == 0 {
            return None;
        }
        let event = self.slots[self.head].take();
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        event
    }
}

/// A conference room: see the module documentation for the mix plan.
pub struct Room {
    config: MixerConfig,
    /// The rate the room mixes at now (see the module doc).
    mix_rate: u32,
    /// Samples per frame at the mix rate.
    frame_len: usize,
    participants: Vec<Participant>,
    index: IdMap,
    next_id: u32,
    /// Sum of the mixed speakers' contributions.
    sum: Box<[i32]>,
    /// Scratch for "sum minus me".
    own_sum: Box<[i32]>,
    shared_limiter: Limiter,
    shared_mix: Box<[i16]>,
    /// Last tick's shared mix: primes converters of participants that switch to their own.
    prev_shared_mix: Box<[i16]>,
    shared_mix_valid: bool,
    prev_shared_mix_valid: bool,
    rates: [Option<SharedRate>; 3],
    codecs: [Option<SharedCodec>; 4],
    /// `max_mixed_speakers`, bounded by `max_participants`.
    max_speakers: usize,
    /// Ranked (score, participant index) of this tick's mixed speakers.
    top: Vec<(f32, usize)>,
    /// This tick's lone talker whose payload is forwarded (participant index).
    forward_from: Option<usize>,
    /// This tick's lone Opus talker that was forwarded but whose packet is missing.
    gap_from: Option<usize>,
    /// This tick's lone talker mixed at unity gain (participant index): listeners at its
    /// codec rate get its own input rather than the mix converted there and back.
    lone_unity: Option<usize>,
    /// G.722 listeners follow this lone G.722 talker's stream; `None`: the shared encoder.
    g722_follow: G722Follow,
    /// Ticks in a row in which nobody was mixed.
    quiet_ticks: u32,
    /// That payload in the other G.711 law, when a listener needs it.
    forward_converted: Box<[u8]>,
    forward_converted_len: usize,
    events: EventRing,
    recording: bool,
    zeros: Box<[i16]>,
    stats: RoomStats,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("config", &self.config)
            .field("participants", &self.participants.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Room {
    /// Creates a room; an unsupported rate or ptime falls back to 16 kHz / 20 ms (use
    /// [`try_new`](Self::try_new) to get the error instead).
    pub fn new(config: MixerConfig) -> Self {
        let mut config = config;
        if config.validate().is_err() {
            let defaults = MixerConfig::default();
            config.internal_rate = defaults.internal_rate;
            config.ptime_ms = defaults.ptime_ms;
        }
        Self::build(config)
    }

    /// Creates a room, rejecting an unsupported rate or ptime.
    pub fn try_new(config: MixerConfig) -> Result<Self, MixerError> {
        config.validate()?;
        Ok(Self::build(config))
    }

    fn build(config: MixerConfig) -> Self {
        let frame_len = frame_len(config.internal_rate, config.ptime_ms);
        let max_codec_frame = CodecKind::Opus.samples_per_frame(config.ptime_ms);
        let k = config.max_mixed_speakers.min(config.max_participants);
        Self {
            config,
            mix_rate: config.internal_rate,
            frame_len,
            participants: Vec::new(),
            index: IdMap::default(),
            next_id: 1,
            sum: vec![0; frame_len].into_boxed_slice(),
            own_sum: vec![0; frame_len].into_boxed_slice(),
            shared_limiter: Limiter::new(config.ptime_ms),
            shared_mix: vec![0; frame_len].into_boxed_slice(),
            prev_shared_mix: vec![0; frame_len].into_boxed_slice(),
            shared_mix_valid: false,
            prev_shared_mix_valid: false,
            rates: [None, None, None],
            codecs: [None, None, None, None],
            max_speakers: k,
            top: Vec::with_capacity(k),
            forward_from: None,
            gap_from: None,
            lone_unity: None,
            g722_follow: G722Follow {
                talker: None,
                mirror: G722Decoder::new(),
                payload: vec![0; payload_capacity(CodecKind::G722, config.ptime_ms)]
                    .into_boxed_slice(),
                payload_len: 0,
                pcm: vec![0; CodecKind::G722.samples_per_frame(config.ptime_ms)].into_boxed_slice(),
            },
            quiet_ticks: 0,
            forward_converted: vec![0; payload_capacity(CodecKind::Pcmu, config.ptime_ms)]
                .into_boxed_slice(),
            forward_converted_len: 0,
            events: EventRing::new(
                MIN_EVENT_CAPACITY.max(config.max_participants.saturating_mul(2).min(1 << 16)),
            ),
            recording: false,
            zeros: vec![0; max_codec_frame].into_boxed_slice(),
            stats: RoomStats::default(),
        }
    }

    /// The room's settings.
    pub fn config(&self) -> &MixerConfig {
        &self.config
    }

    /// The rate the room mixes at now: that of [`recording_mix`](Self::recording_mix).
    pub fn mix_rate(&self) -> u32 {
        self.mix_rate
    }

    /// The mix rate the participants (plus one joining on `joining`) call for.
    fn wanted_rate(&self, joining: Option<CodecKind>) -> u32 {
        if !self.config.adaptive_rate {
            return self.config.internal_rate;
        }
        let highest = self
            .participants
            .iter()
            .map(|p| p.codec)
            .chain(joining)
            .map(CodecKind::sample_rate)
            .max();
        match highest {
            Some(rate) => rate.min(self.config.internal_rate),
            None => self.mix_rate,
        }
    }

    /// Moves the room to mix at `rate`: every converter and mix buffer is rebuilt first and
    /// swapped in only when all of them could be made, so a failure leaves the room as it was.
    fn retune(&mut self, rate: u32) -> Result<(), MixerError> {
        let ptime = self.config.ptime_ms;
        let parts = self
            .participants
            .iter()
            .map(|p| RateParts::new(p.codec, rate, ptime, p.denoiser.is_some()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut shared = Vec::with_capacity(self.rates.len());
        for (slot, &codec_rate) in self.rates.iter().zip(&SLOT_RATES) {
            shared.push(match slot {
                Some(_) => Some(converter(rate, codec_rate)?),
                None => None,
            });
        }
        let frame_len = frame_len(rate, ptime);
        self.mix_rate = rate;
        self.frame_len = frame_len;
        self.sum = vec![0; frame_len].into_boxed_slice();
        self.own_sum = vec![0; frame_len].into_boxed_slice();
        self.shared_mix = vec![0; frame_len].into_boxed_slice();
        self.prev_shared_mix = vec![0; frame_len].into_boxed_slice();
        self.shared_mix_valid = false;
        self.prev_shared_mix_valid = false;
        for (slot, resampler) in self.rates.iter_mut().zip(shared) {
            if let (Some(r), Some(resampler)) = (slot, resampler) {
                r.resampler = resampler;
                r.warm = false;
            }
        }
        for (p, parts) in self.participants.iter_mut().zip(parts) {
            p.upsampler = parts.upsampler;
            p.upsampler_warm = false;
            p.internal = parts.internal;
            p.contribution = parts.contribution;
            p.denoiser = parts.denoiser;
            p.own.mix = parts.own_mix;
            p.own.downsampler = parts.downsampler;
        }
        Ok(())
    }

    /// Adds a participant; all its buffers, converters and encoders are allocated here.
    pub fn add(&mut self, options: ParticipantOptions) -> Result<ParticipantId, MixerError> {
        if self.participants.len() >= self.config.max_participants {
            return Err(MixerError::RoomFull {
                max: self.config.max_participants,
            });
        }
        let cfg = self.config;
        let codec = options.codec;
        let codec_frame = codec.samples_per_frame(cfg.ptime_ms);
        let rate = self.wanted_rate(Some(codec));
        if rate != self.mix_rate {
            self.retune(rate)?;
        }
        self.ensure_shared(codec)?;
        let parts = RateParts::new(
            codec,
            self.mix_rate,
            cfg.ptime_ms,
            options.noise_suppression.unwrap_or(cfg.noise_suppression),
        )?;
        let own = OwnOutput {
            encoder: Encoder::new(codec)?,
            limiter: Limiter::new(cfg.ptime_ms),
            mix: parts.own_mix,
            downsampler: parts.downsampler,
            pcm: vec![0; codec_frame].into_boxed_slice(),
            payload: vec![0; payload_capacity(codec, cfg.ptime_ms)].into_boxed_slice(),
            payload_len: 0,
        };
        let id = self.allocate_id();
        let participant = Participant {
            id,
            codec,
            muted: options.muted,
            deaf: options.deaf,
            input: vec![0; codec_frame].into_boxed_slice(),
            received: vec![0; payload_capacity(codec, cfg.ptime_ms)].into_boxed_slice(),
            received_len: 0,
            has_received: false,
            paused: false,
            prev_input: vec![0; codec_frame].into_boxed_slice(),
            has_input: false,
            had_input: false,
            upsampler: parts.upsampler,
            upsampler_warm: false,
            internal: parts.internal,
            contribution: parts.contribution,
            denoiser: parts.denoiser,
            talker: TalkerDetector::new(cfg.ptime_ms, cfg.talk_hangover_ms),
            agc: Agc::new(cfg.ptime_ms),
            level: SILENCE_DBOV,
            rank_level: SILENCE_DBOV,
            selected: false,
            own,
            route: Route::None,
            prev_route: Route::None,
        };
        self.index.insert(id, self.participants.len());
        self.participants.push(participant);
        Ok(id)
    }

    fn allocate_id(&mut self) -> ParticipantId {
        loop {
            let id = ParticipantId(self.next_id);
            self.next_id = self.next_id.wrapping_add(1);
            if !self.index.contains_key(&id) {
                return id;
            }
        }
    }

    /// Creates the shared converter, encoder and silence frame of `codec` on first use.
    fn ensure_shared(&mut self, codec: CodecKind) -> Result<(), MixerError> {
        let cfg = self.config;
        let rate = codec.sample_rate();
        let ri = rate_index(rate);
        if self.rates[ri].is_none() {
            self.rates[ri] = Some(SharedRate {
                resampler: converter(self.mix_rate, rate)?,
                pcm: vec![0; codec.samples_per_frame(cfg.ptime_ms)].into_boxed_slice(),
                warm: false,
            });
        }
        let ci = codec_index(codec);
        if self.codecs[ci].is_none() {
            let cap = payload_capacity(codec, cfg.ptime_ms);
            // The silence frame comes from a fresh encoder fed a few frames of silence, so
            // that stateful codecs have settled to their steady silent output.
            let mut silence_encoder = Encoder::new(codec)?;
            let zeros = vec![0i16; codec.samples_per_frame(cfg.ptime_ms)];
            let mut silence = vec![0u8; cap].into_boxed_slice();
            let mut silence_len = 0;
            for _ in 0..5 {
                silence_len = silence_encoder.encode(&zeros, &mut silence)?;
            }
            let before = if codec.needs_continuous_stream() {
                Some(Encoder::new(codec)?)
            } else {
                None
            };
            self.codecs[ci] = Some(SharedCodec {
                before,
                encoder: Encoder::new(codec)?,
                payload: vec![0; cap].into_boxed_slice(),
                payload_len: 0,
                produced: false,
                produced_last_tick: false,
                silence,
                silence_len,
            });
        }
        Ok(())
    }

    /// Removes a participant (a `TalkingStopped` event follows if it was talking).
    pub fn remove(&mut self, id: ParticipantId) {
        let Some(i) = self.index.remove(&id) else {
            return;
        };
        let gone = self.participants.swap_remove(i);
        if gone.talker.is_talking() {
            self.events.push(RoomEvent::TalkingStopped(id));
        }
        if let Some(moved) = self.participants.get(i) {
            self.index.insert(moved.id, i);
        }
        let rate = self.wanted_rate(None);
        if rate != self.mix_rate {
            // Converters between our own rates cannot fail to build; if one did, the room
            // simply keeps mixing at the higher rate, which is still correct.
            let _ = self.retune(rate);
        }
    }

    fn get(&self, id: ParticipantId) -> Option<&Participant> {
        self.index.get(&id).and_then(|&i| self.participants.get(i))
    }

    fn get_mut(&mut self, id: ParticipantId) -> Option<&mut Participant> {
        self.index
            .get(&id)
            .and_then(|&i| self.participants.get_mut(i))
    }

    /// Mutes (not heard by anyone; talker detection still runs) or unmutes.
    pub fn set_muted(&mut self, id: ParticipantId, muted: bool) {
        if let Some(p) = self.get_mut(id) {
            p.muted = muted;
        }
    }

    /// Makes a participant deaf (receives the silence frame) or hearing again.
    pub fn set_deaf(&mut self, id: ParticipantId, deaf: bool) {
        if let Some(p) = self.get_mut(id) {
            p.deaf = deaf;
        }
    }

    /// Number of participants.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// Whether the room has no participants.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Whether `id` is in the room.
    pub fn contains(&self, id: ParticipantId) -> bool {
        self.index.contains_key(&id)
    }

    /// This tick's input of one participant: decoded PCM at its codec's sample rate (160
    /// samples PCMU, 320 G.722, 960 Opus for 20 ms). Shorter input is padded with silence,
    /// longer is cut. Not calling it means silence this tick; unknown ids are ignored.
    pub fn put_frame(&mut self, id: ParticipantId, pcm: &[i16]) {
        if let Some(p) = self.get_mut(id) {
            p.take_pcm(pcm);
        }
    }

    /// This tick's input of a participant whose sender pauses between talk spurts (DTX or
    /// silence suppression): silence like [`put_frame`](Self::put_frame), but a forwarded
    /// talker's pause is no loss to pass on to its listeners: they hear the shared mix.
    pub fn put_pause(&mut self, id: ParticipantId, pcm: &[i16]) {
        if let Some(p) = self.get_mut(id) {
            p.take_pcm(pcm);
            p.paused = true;
        }
    }

    /// Whether a frame its sender reports at `level_dbov` (RFC 6464) could be heard this
    /// tick: the participant is talking (hang-over included) or the level is a possible
    /// onset. When not, the caller may skip decoding it and call
    /// [`put_level`](Self::put_level) instead. Muted participants are never heard, so their
    /// frames never need decoding; unknown ids need nothing.
    pub fn needs_pcm(&self, id: ParticipantId, level_dbov: f32) -> bool {
        self.get(id).is_some_and(|p| {
            !p.muted && (p.talker.is_talking() || p.talker.is_possible_onset(level_dbov))
        })
    }

    /// This tick's input of a participant whose frame was not decoded because
    /// [`needs_pcm`](Self::needs_pcm) said so: silence, with the reported level for talker
    /// detection.
    pub fn put_level(&mut self, id: ParticipantId, level_dbov: f32) {
        if let Some(p) = self.get_mut(id) {
            p.input.fill(0);
            p.has_input = true;
            p.level = level_dbov.clamp(SILENCE_DBOV, 0.0);
        }
    }

    /// [`put_frame`](Self::put_frame) with the RTP payload `pcm` was decoded from, so that a
    /// lone talker can be forwarded as received. `pcm` must be exactly one frame (a packet of
    /// another duration cannot stand in for our frame) and a G.711 or G.722 payload exactly
    /// one frame's bytes; otherwise the frame is mixed like any other.
    pub fn put_encoded_frame(&mut self, id: ParticipantId, pcm: &[i16], payload: &[u8]) {
        let ptime_ms = self.config.ptime_ms;
        let forwarding = self.config.forward_lone_talker;
        let agc_on = self.config.agc;
        let followed = self.g722_follow.talker == Some(id);
        let Some(p) = self.get_mut(id) else { return };
        p.take_pcm(pcm);
        // Only a participant that can be selected this tick can be the lone talker: copying
        // every listener's payload too was 3 % of the server's CPU in rooms of ten.
        let candidate = forwarding
            && !p.muted
            && p.heard_as_sent(agc_on)
            && (followed || p.talker.is_talking() || p.talker.is_possible_onset(p.level));
        let whole_frame = candidate
            && pcm.len() == p.input.len()
            && match p.codec {
                CodecKind::Opus => !payload.is_empty(),
                fixed => payload.len() == payload_capacity(fixed, ptime_ms),
            };
        if let (true, Some(slot)) = (whole_frame, p.received.get_mut(..payload.len())) {
            slot.copy_from_slice(payload);
            p.received_len = payload.len();
            p.has_received = true;
        }
    }

    /// Runs one frame: measures, selects talkers, mixes, encodes (shared where possible).
    pub fn tick(&mut self) {
        let mut plan = MixPlan::default();
        self.analyse_inputs(&mut plan);
        self.select_speakers();
        self.sum_speakers(&mut plan);
        let mut shared_codecs = [false; 4];
        let mut shared_rates = [false; 3];
        self.route(&mut plan, &mut shared_codecs, &mut shared_rates);
        let limiter_before = self.shared_limiter;
        self.shared_output(&mut plan, &shared_codecs, &shared_rates);
        self.own_outputs(&mut plan, &limiter_before);
        self.end_tick();
        plan.encodes = plan.shared_encodes + plan.own_encodes;
        self.stats.mix_plan = plan;
        self.stats.ticks += 1;
    }

    /// Whether `id` gets no payload this tick because the Opus talker forwarded to it lost
    /// this tick's packet on the way to us: the caller should account the frame as lost
    /// (advance RTP sequence number and timestamp without sending), so that the listener's
    /// decoder conceals it, or recovers it from the FEC of the talker's next packet.
    pub fn lost_upstream(&self, id: ParticipantId) -> bool {
        self.get(id).is_some_and(|p| p.route == Route::Gap)
    }

    /// This tick's encoded payload for `id`, and whether it is the shared payload; `None`
    /// for unknown ids, before the participant's first tick, if its encoder failed, or
    /// while [`lost_upstream`](Self::lost_upstream).
    pub fn output(&self, id: ParticipantId) -> Option<OutputFrame<'_>> {
        let p = self.get(id)?;
        match p.route {
            Route::None => None,
            Route::Own => Some(OutputFrame {
                payload: p.own.payload.get(..p.own.payload_len)?,
                shared: false,
                silence: false,
            }),
            Route::Shared => {
                let c = self.codecs[codec_index(p.codec)].as_ref()?;
                c.produced.then_some(OutputFrame {
                    payload: c.payload.get(..c.payload_len)?,
                    shared: true,
                    silence: false,
                })
            }
            Route::Silence => {
                let c = self.codecs[codec_index(p.codec)].as_ref()?;
                Some(OutputFrame {
                    payload: c.silence.get(..c.silence_len)?,
                    shared: true,
                    silence: true,
                })
            }
            Route::Forward => {
                let talker = self.participants.get(self.forward_from?)?;
                Some(OutputFrame {
                    payload: talker.received.get(..talker.received_len)?,
                    shared: true,
                    silence: false,
                })
            }
            Route::ForwardConverted => Some(OutputFrame {
                payload: self.forward_converted.get(..self.forward_converted_len)?,
                shared: true,
                silence: false,
            }),
            Route::Gap => None,
            Route::FollowTalker => {
                let follow = &self.g722_follow;
                follow.talker?;
                Some(OutputFrame {
                    payload: follow.payload.get(..follow.payload_len)?,
                    shared: true,
                    silence: false,
                })
            }
        }
    }

    /// The PCM that was encoded for `id` this tick, at its codec's rate (zeros when deaf).
    pub fn output_pcm(&self, id: ParticipantId) -> Option<&[i16]> {
        let p = self.get(id)?;
        match p.route {
            Route::None => None,
            Route::Own => Some(&p.own.pcm),
            Route::Shared => self.rates[rate_index(p.codec.sample_rate())]
                .as_ref()
                .map(|r| &r.pcm[..]),
            Route::Silence => self.zeros.get(..p.own.pcm.len()),
            // The talker's frame of this tick: `end_tick` has rotated it to `prev_input`.
            Route::FollowTalker => self
                .g722_follow
                .talker
                .and_then(|talker| self.get(talker))
                .map(|talker| &talker.prev_input[..]),
            Route::Forward | Route::ForwardConverted => self
                .participants
                .get(self.forward_from?)
                .map(|talker| &talker.prev_input[..]),
            // The talker's concealed frame.
            Route::Gap => self
                .participants
                .get(self.gap_from?)
                .map(|talker| &talker.prev_input[..]),
        }
    }

    /// Whether talker detection has `id` talking (muted participants included).
    pub fn is_talking(&self, id: ParticipantId) -> bool {
        self.get(id).is_some_and(|p| p.talker.is_talking())
    }

    /// Level of `id`'s last input frame in dBov (before AGC, after noise suppression).
    pub fn level_dbov(&self, id: ParticipantId) -> f32 {
        self.get(id).map_or(SILENCE_DBOV, |p| p.level)
    }

    /// Current AGC gain of `id` in dB (0 when AGC is off or the id is unknown).
    pub fn gain_db(&self, id: ParticipantId) -> f32 {
        match self.get(id) {
            Some(p) if self.config.agc => p.agc.gain_db(),
            _ => 0.0,
        }
    }

    /// Whether `id` was one of the mixed speakers in the last tick.
    pub fn is_mixed(&self, id: ParticipantId) -> bool {
        self.get(id).is_some_and(|p| p.selected)
    }

    /// The next talking event, oldest first.
    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop()
    }

    /// Turns the full-room recording mix on or off.
    pub fn set_recording(&mut self, on: bool) {
        self.recording = on;
    }

    /// The last tick's mix of every mixed talker (nobody subtracted, muted excluded) at the
    /// mix rate; `None` unless recording is on. It is the same signal all non-speaking
    /// listeners hear, so recording costs no extra mixing.
    pub fn recording_mix(&self) -> Option<&[i16]> {
        (self.recording && self.shared_mix_valid).then_some(&self.shared_mix[..])
    }

    /// Counters and the last tick's mix plan.
    pub fn stats(&self) -> RoomStats {
        self.stats
    }

    /// Levels, talker detection, events and AGC for everyone (cheap: no conversion unless
    /// the participant has noise suppression).
    fn analyse_inputs(&mut self, plan: &mut MixPlan) {
        let rank_decay = RANK_DECAY_DB_PER_S * self.config.ptime_ms as f32 / 1000.0;
        let agc_on = self.config.agc;
        let mut talking = 0;
        for p in &mut self.participants {
            if !p.has_input {
                p.level = SILENCE_DBOV;
            } else if let Some(ns) = &mut p.denoiser {
                if !p.had_input {
                    ns.reset();
                }
                ns.process(&p.input, &mut p.internal);
                plan.input_resamples += 1;
                p.level = frame_dbov(&p.internal);
            }
            // Otherwise `put_frame` measured the level already.
            match p.talker.update(p.level) {
                Some(TalkTransition::Started) => {
                    self.events.push(RoomEvent::TalkingStarted(p.id));
                }
                Some(TalkTransition::Stopped) => {
                    self.events.push(RoomEvent::TalkingStopped(p.id));
                }
                None => {}
            }
            if agc_on {
                let speech = p.talker.is_speech(p.level);
                p.agc.update(p.level, speech);
            }
            p.rank_level = p.level.max(p.rank_level - rank_decay);
            if p.talker.is_talking() {
                talking += 1;
            }
        }
        self.stats.talking = talking;
    }

    /// Picks the loudest `max_mixed_speakers` candidates (talkers first, then possible
    /// onsets, so a soft first syllable is mixed whenever a slot is free).
    fn select_speakers(&mut self) {
        self.top.clear();
        let k = self.max_speakers;
        if k == 0 {
            for p in &mut self.participants {
                p.selected = false;
            }
            return;
        }
        for (i, p) in self.participants.iter_mut().enumerate() {
            let was_selected = p.selected;
            p.selected = false;
            if p.muted || !p.has_input {
                continue;
            }
            let talking = p.talker.is_talking();
            if !talking && !p.talker.is_possible_onset(p.level) {
                continue;
            }
            let mut score = p.rank_level;
            if talking {
                score += TALKING_PRIORITY_DB;
            }
            if was_selected {
                score += SLOT_HYSTERESIS_DB;
            }
            if self.top.len() == k {
                match self.top.last() {
                    Some(&(worst, _)) if score > worst => {
                        self.top.pop();
                    }
                    _ => continue,
                }
            }
            let at = self
                .top
                .iter()
                .position(|&(s, _)| score > s)
                .unwrap_or(self.top.len());
            self.top.insert(at, (score, i));
        }
    }

    /// Converts the chosen speakers to the mix rate, applies their gain, and sums.
    fn sum_speakers(&mut self, plan: &mut MixPlan) {
        self.sum.fill(0);
        let agc_on = self.config.agc;
        // A lone talker that is forwarded whenever its payload arrives is mixed at unity gain
        // too, so that a concealed frame between forwarded ones keeps the talker's level.
        let lone_at_unity = self.config.forward_lone_talker && self.top.len() == 1;
        self.lone_unity = None;
        for &(_, i) in &self.top {
            let Some(p) = self.participants.get_mut(i) else {
                continue;
            };
            p.selected = true;
            let src: &[i16] = if p.denoiser.is_some() {
                &p.internal
            } else if let Some(up) = &mut p.upsampler {
                if !p.upsampler_warm {
                    // Continue the filter from the frame before (one-frame look-back), or
                    // from silence, instead of from a stale frame seconds old.
                    if p.had_input {
                        up.process(&p.prev_input, &mut p.internal);
                    } else {
                        up.reset();
                    }
                }
                let n = up.process(&p.input, &mut p.internal);
                fill_from(n, &mut p.internal);
                plan.input_resamples += 1;
                &p.internal
            } else {
                &p.input
            };
            let unity = lone_at_unity && p.heard_as_sent(agc_on);
            let gain = if agc_on && !unity { p.agc.gain() } else { 1.0 };
            if unity && p.denoiser.is_none() {
                self.lone_unity = Some(i);
            }
            if gain == 1.0 {
                for ((c, s), &x) in p.contribution.iter_mut().zip(self.sum.iter_mut()).zip(src) {
                    *c = i32::from(x);
                    *s += *c;
                }
            } else {
                for ((c, s), &x) in p.contribution.iter_mut().zip(self.sum.iter_mut()).zip(src) {
                    // At most 32768 × 5.6 (+15 dB): far inside i32.
                    *c = round_to_i32(f32::from(x) * gain);
                    *s += *c;
                }
            }
            plan.mixed_speakers += 1;
        }
        for p in &mut self.participants {
            p.upsampler_warm = p.selected && p.upsampler.is_some() && p.denoiser.is_none();
        }
    }

    /// Decides who gets the shared payload, their own, or silence.
    fn route(&mut self, plan: &mut MixPlan, codecs: &mut [bool; 4], rates: &mut [bool; 3]) {
        let shared_encoding = self.config.shared_encoding;
        let nobody_mixed = self.top.is_empty();
        let lone = match self.top.as_slice() {
            [(_, i)] => Some(*i),
            _ => None,
        };
        self.forward_from = lone.filter(|&i| self.can_forward(i));
        let forward_codec = self
            .forward_from
            .and_then(|i| self.participants.get(i))
            .map(|p| p.codec);
        self.gap_from = lone.filter(|&i| self.forward_gap(i));
        let following = self.follow_g722_talker(lone);
        let followed = self.g722_follow.talker;
        let mut convert = false;
        for (i, p) in self.participants.iter_mut().enumerate() {
            // Without shared encoding (the conventional baseline) nothing is skipped.
            let hears_nothing = shared_encoding && (nobody_mixed || lone == Some(i));
            // A G.722 decoder must keep following one encoder: it hears the shared encoder
            // even while that encodes silence, and a lone talker its own (see the module doc).
            let continuous = p.codec.needs_continuous_stream();
            let route = if p.deaf || (hears_nothing && !continuous) {
                plan.silence_frames += 1;
                Route::Silence
            } else if hears_nothing && lone == Some(i) {
                Route::Own
            } else if following && continuous && !p.selected {
                if followed == Some(p.id) {
                    // Between its words the followed talker hears silence, as a lone one.
                    Route::Own
                } else {
                    plan.forwarded += 1;
                    Route::FollowTalker
                }
            } else if hears_nothing {
                plan.shared_listeners += 1;
                codecs[codec_index(p.codec)] = true;
                rates[rate_index(p.codec.sample_rate())] = true;
                Route::Shared
            } else if forward_codec == Some(p.codec) {
                plan.forwarded += 1;
                Route::Forward
            } else if self.gap_from.is_some()
                && p.codec == CodecKind::Opus
                && matches!(p.route, Route::Forward | Route::Gap)
            {
                plan.gaps += 1;
                Route::Gap
            } else if forward_codec.is_some_and(|from| converts_by_table(from, p.codec)) {
                plan.forwarded += 1;
                convert = true;
                Route::ForwardConverted
            } else if shared_encoding && !p.selected {
                plan.shared_listeners += 1;
                codecs[codec_index(p.codec)] = true;
                rates[rate_index(p.codec.sample_rate())] = true;
                Route::Shared
            } else {
                Route::Own
            };
            p.prev_route = p.route;
            p.route = route;
        }
        self.forward_converted_len = 0;
        if let (true, Some(talker)) = (
            convert,
            self.forward_from.and_then(|i| self.participants.get(i)),
        ) {
            let payload = &talker.received[..talker.received_len];
            self.forward_converted_len = match talker.codec {
                CodecKind::Pcma => g711::alaw_to_ulaw_slice(payload, &mut self.forward_converted),
                _ => g711::ulaw_to_alaw_slice(payload, &mut self.forward_converted),
            };
        }
    }

    /// Whether the G.722 listeners follow the lone talker `lone`'s own stream this tick,
    /// and their codes for it. They start following only at a talk spurt after the room was
    /// quiet, keep following through its concealed frames (continuation codes from their
    /// decoders' state), and go back to the shared encoder, continued from that same state,
    /// as soon as anyone else is mixed, the talker stops, or its gain is no longer unity.
    fn follow_g722_talker(&mut self, lone: Option<usize>) -> bool {
        let quiet_before = self.quiet_ticks;
        self.quiet_ticks = if lone.is_none() && self.top.is_empty() {
            self.quiet_ticks.saturating_add(1)
        } else {
            0
        };
        let eligible = |i: &usize| {
            self.participants.get(*i).is_some_and(|p| {
                self.config.forward_lone_talker
                    && self.config.shared_encoding
                    && p.codec == CodecKind::G722
                    && !p.muted
                    && p.heard_as_sent(self.config.agc)
            })
        };
        // Between the followed talker's words nobody is mixed: its listeners keep following
        // its stream (its silence) rather than switch encoders at every pause.
        let followed_in_pause = self
            .g722_follow
            .talker
            .filter(|_| self.top.is_empty())
            .and_then(|id| self.index.get(&id).copied());
        let leader = lone.or(followed_in_pause).filter(eligible);
        let ci = codec_index(CodecKind::G722);
        let continuing = match (self.g722_follow.talker, leader) {
            (Some(talker), Some(i)) => self.participants[i].id == talker,
            _ => false,
        };
        if !continuing && let Some(talker) = self.g722_follow.talker.take() {
            // Back to the shared encoder, which continues from the listeners' state.
            let before = self.get(talker).map_or(&[][..], |t| &t.prev_input[..]);
            let state = self.g722_follow.mirror.continuing_encoder(before);
            if let Some(codec) = self.codecs[ci].as_mut() {
                codec.encoder.continue_g722(&state);
                if let Some(b) = codec.before.as_mut() {
                    b.continue_g722(&state);
                }
                // Resumed, not restarted: `shared_output` must not reset it.
                codec.produced = true;
            }
        }
        let Some(i) = leader else {
            return false;
        };
        if self.g722_follow.talker.is_none() {
            let talker = &self.participants[i];
            let shared = self.codecs[ci].as_ref().and_then(|c| c.encoder.g722());
            let (true, true, Some(shared)) = (
                quiet_before >= G722_FOLLOW_AFTER_QUIET_TICKS,
                talker.has_received,
                shared,
            ) else {
                return false;
            };
            self.g722_follow.talker = Some(talker.id);
            self.g722_follow.mirror = G722Decoder::following(shared);
        }
        let follow = &mut self.g722_follow;
        let Some(talker) = self.participants.get(i) else {
            return false;
        };
        follow.payload_len = if talker.has_received {
            let n = talker.received_len.min(follow.payload.len());
            follow.payload[..n].copy_from_slice(&talker.received[..n]);
            n
        } else {
            // A concealed frame (or, between words, a frame without its payload): its audio
            // coded from where the listeners' decoders are.
            let mut encoder = follow.mirror.continuing_encoder(&talker.prev_input);
            let audio = if talker.has_input {
                &talker.input[..]
            } else {
                &self.zeros[..talker.input.len()]
            };
            encoder.encode(audio, &mut follow.payload)
        };
        follow
            .mirror
            .decode(&follow.payload[..follow.payload_len], &mut follow.pcm);
        true
    }

    /// Whether participant `i`, mixed alone, can be forwarded as received.
    fn can_forward(&self, i: usize) -> bool {
        let Some(p) = self.participants.get(i) else {
            return false;
        };
        self.config.forward_lone_talker
            && !p.codec.needs_continuous_stream()
            && p.has_received
            && p.heard_as_sent(self.config.agc)
    }

    /// Whether participant `i`, mixed alone, is an Opus talker that would be forwarded but
    /// whose packet of this tick is missing (lost or late upstream).
    fn forward_gap(&self, i: usize) -> bool {
        let Some(p) = self.participants.get(i) else {
            return false;
        };
        self.config.forward_lone_talker
            && p.codec == CodecKind::Opus
            && !p.has_received
            && !p.paused
            && p.heard_as_sent(self.config.agc)
    }

    /// Limits, converts and encodes the common mix once for all its listeners.
    fn shared_output(&mut self, plan: &mut MixPlan, codecs: &[bool; 4], rates: &[bool; 3]) {
        self.prev_shared_mix_valid = self.shared_mix_valid;
        if self.shared_mix_valid {
            std::mem::swap(&mut self.shared_mix, &mut self.prev_shared_mix);
        }
        let needed = codecs.iter().any(|&c| c) || self.recording;
        self.shared_mix_valid = needed;
        for c in self.codecs.iter_mut().flatten() {
            c.produced_last_tick = c.produced;
            c.produced = false;
        }
        if !needed {
            for r in self.rates.iter_mut().flatten() {
                r.warm = false;
            }
            return;
        }
        self.shared_limiter.process(&self.sum, &mut self.shared_mix);
        let lone = self.lone_unity.and_then(|i| self.participants.get(i));
        for (ri, slot) in self.rates.iter_mut().enumerate() {
            let Some(rate) = slot else { continue };
            if !rates[ri] {
                rate.warm = false;
                continue;
            }
            // A lone talker heard at unity is its own input at its own rate: converting it to
            // the mix rate and back would only add the converters' delay, and its frames
            // that are mixed (a concealed loss) must line up with the forwarded ones around
            // them, or every loss is heard as a jump of a few milliseconds.
            if let Some(talker) = lone.filter(|p| p.codec.sample_rate() == SLOT_RATES[ri]) {
                copy_padded(&talker.input, &mut rate.pcm);
                rate.warm = false;
                continue;
            }
            match &mut rate.resampler {
                Some(r) => {
                    if !rate.warm {
                        if self.prev_shared_mix_valid {
                            r.process(&self.prev_shared_mix, &mut rate.pcm);
                        } else {
                            r.reset();
                        }
                    }
                    let n = r.process(&self.shared_mix, &mut rate.pcm);
                    fill_from(n, &mut rate.pcm);
                    plan.output_resamples += 1;
                }
                None => copy_padded(&self.shared_mix, &mut rate.pcm),
            }
            rate.warm = true;
        }
        for (ci, slot) in self.codecs.iter_mut().enumerate() {
            let Some(codec) = slot else { continue };
            if !codecs[ci] {
                continue;
            }
            let kind = codec.encoder.kind();
            let Some(rate) = &self.rates[rate_index(kind.sample_rate())] else {
                continue;
            };
            if !codec.produced_last_tick {
                codec.encoder.reset();
            }
            if let Some(before) = &mut codec.before {
                before.copy_state_from(&codec.encoder);
            }
            match codec.encoder.encode(&rate.pcm, &mut codec.payload) {
                Ok(n) => {
                    codec.payload_len = n;
                    codec.produced = true;
                }
                Err(_) => self.stats.encode_errors += 1,
            }
            plan.shared_encodes += 1;
        }
    }

    /// "Everyone but me" for each mixed speaker (and, without shared encoding, everyone).
    fn own_outputs(&mut self, plan: &mut MixPlan, limiter_before: &Limiter) {
        let prev_shared = self
            .prev_shared_mix_valid
            .then_some(&self.prev_shared_mix[..]);
        for p in &mut self.participants {
            if p.route != Route::Own {
                continue;
            }
            let own = &mut p.own;
            let sum: &[i32] = if p.selected {
                for ((o, &s), &c) in self
                    .own_sum
                    .iter_mut()
                    .zip(&*self.sum)
                    .zip(&*p.contribution)
                {
                    *o = s - c;
                }
                &self.own_sum
            } else {
                &self.sum
            };
            let switched = p.prev_route != Route::Own;
            if switched {
                own.limiter.follow(limiter_before);
                // A decoder that followed the shared stream continues with this encoder
                // where the codec needs that (G.722); others start afresh.
                let shared_before = self.codecs[codec_index(p.codec)]
                    .as_ref()
                    .and_then(|c| c.before.as_ref())
                    .filter(|_| p.prev_route == Route::Shared);
                if !shared_before.is_some_and(|b| own.encoder.copy_state_from(b)) {
                    own.encoder.reset();
                }
            }
            own.limiter.process(sum, &mut own.mix);
            match &mut own.downsampler {
                Some(r) => {
                    if switched {
                        // Continue from what this participant heard last tick.
                        match prev_shared.filter(|_| p.prev_route == Route::Shared) {
                            Some(prev) => {
                                r.process(prev, &mut own.pcm);
                            }
                            None => r.reset(),
                        }
                    }
                    let n = r.process(&own.mix, &mut own.pcm);
                    fill_from(n, &mut own.pcm);
                    plan.output_resamples += 1;
                }
                None => copy_padded(&own.mix, &mut own.pcm),
            }
            match own.encoder.encode(&own.pcm, &mut own.payload) {
                Ok(n) => own.payload_len = n,
                Err(_) => {
                    self.stats.encode_errors += 1;
                    p.route = Route::None;
                }
            }
            plan.own_encodes += 1;
        }
    }

    /// Rotates per-tick buffers.
    fn end_tick(&mut self) {
        for p in &mut self.participants {
            std::mem::swap(&mut p.input, &mut p.prev_input);
            p.had_input = p.has_input;
            p.has_input = false;
            p.has_received = false;
            p.paused = false;
        }
        self.stats.participants = self.participants.len();
        self.stats.events_dropped = self.events.dropped;
    }
}
