//! The audio codecs we speak and one encoder/decoder front for all of them.

use crate::g711;
use crate::g722::{G722Decoder, G722Encoder};
use crate::opus::{OpusConfig, OpusDecoder, OpusEncoder, OpusError};
use crate::plc::Plc;

/// Default packetisation time (RFC 3551 §4.5: 20 ms for the audio codecs we use).
pub const DEFAULT_PTIME_MS: u32 = 20;
/// Longest frame decoded ahead for two-sided concealment: 60 ms at 16 kHz.
const MAX_AHEAD_SAMPLES: usize = 960;
/// Samples of the G.722 transmit QMF.
const G722_TAIL: usize = 24;

/// A negotiated audio codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 64 kbit/s wideband.
    G722,
    /// Opus, mono.
    Opus,
}

impl CodecKind {
    /// All codecs, in our default preference order for offers.
    pub const ALL: [CodecKind; 4] = [
        CodecKind::Opus,
        CodecKind::G722,
        CodecKind::Pcma,
        CodecKind::Pcmu,
    ];

    /// RTP timestamp clock rate (RFC 3551 §4.5.2: G.722 uses 8000 although it samples at
    /// 16 kHz; RFC 7587 §4.1: Opus always 48000).
    pub fn clock_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => 8000,
            CodecKind::Opus => 48000,
        }
    }

    /// Audio sample rate of the PCM this codec consumes and produces.
    pub fn sample_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => 8000,
            CodecKind::G722 => 16000,
            // Our Opus PCM rate (see `opus`): the RTP clock is still 48 kHz.
            CodecKind::Opus => crate::opus::OPUS_RATE,
        }
    }

    /// Static RTP payload type from RFC 3551 Table 4, if any.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            CodecKind::Pcmu => Some(0),
            CodecKind::Pcma => Some(8),
            CodecKind::G722 => Some(9),
            CodecKind::Opus => None,
        }
    }

    /// Encoding name as in SDP `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::G722 => "G722",
            CodecKind::Opus => "opus",
        }
    }

    /// Codec for an SDP encoding name (case-insensitive, RFC 4855 §3).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// Codec for a static payload type.
    pub fn from_static_payload_type(pt: u8) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.static_payload_type() == Some(pt))
    }

    /// PCM samples in a frame of `ptime_ms` at [`sample_rate`](Self::sample_rate).
    pub fn samples_per_frame(self, ptime_ms: u32) -> usize {
        (self.sample_rate() / 1000 * ptime_ms) as usize
    }

    /// Whether the decoder of this codec carries state that must follow the very encoder
    /// that made the stream: G.722's ADPCM decoder does (a stream from another encoder
    /// instance is decoded with the wrong predictor and scale until both drift together,
    /// which takes hundreds of ms and sounds like a burst of wide-band noise); G.711 has no
    /// state and libopus resynchronises on every packet.
    pub fn needs_continuous_stream(self) -> bool {
        self == CodecKind::G722
    }

    /// RTP timestamp increment for a frame of `ptime_ms`.
    pub fn rtp_ticks_per_frame(self, ptime_ms: u32) -> u32 {
        self.clock_rate() / 1000 * ptime_ms
    }
}

/// Codec failures.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The Opus library refused.
    #[error(transparent)]
    Opus(#[from] OpusError),
    /// The caller's output buffer cannot hold the result.
    #[error("output buffer holds {got}, needs {needed}")]
    OutputTooSmall {
        /// Elements needed.
        needed: usize,
        /// Elements available.
        got: usize,
    },
    /// G.722 consumes sample pairs; an odd sample count cannot be encoded.
    #[error("G.722 needs an even number of samples, got {0}")]
    OddSampleCount(usize),
}

enum EncoderInner {
    Pcmu,
    Pcma,
    G722(Box<G722Encoder>),
    Opus(Box<OpusEncoder>),
}

/// Encoder for any [`CodecKind`]; PCM at the codec's sample rate in, payload out.
pub struct Encoder {
    kind: CodecKind,
    inner: EncoderInner,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("kind", &self.kind).finish()
    }
}

impl Encoder {
    /// Creates an encoder with default settings.
    pub fn new(kind: CodecKind) -> Result<Self, CodecError> {
        Self::with_opus_config(kind, OpusConfig::default())
    }

    /// Creates an encoder; `opus` is used only when `kind` is Opus.
    pub fn with_opus_config(kind: CodecKind, opus: OpusConfig) -> Result<Self, CodecError> {
        let inner = match kind {
            CodecKind::Pcmu => EncoderInner::Pcmu,
            CodecKind::Pcma => EncoderInner::Pcma,
            CodecKind::G722 => EncoderInner::G722(Box::default()),
            CodecKind::Opus => EncoderInner::Opus(Box::new(OpusEncoder::new(opus)?)),
        };
        Ok(Self { kind, inner })
    }

    /// The codec.
    pub fn kind(&self) -> CodecKind {
        self.kind
    }

    /// Encodes one frame; returns payload bytes written to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        match &mut self.inner {
            EncoderInner::Pcmu => {
                check_room(pcm.len(), out.len())?;
                Ok(g711::ulaw_encode_slice(pcm, out))
            }
            EncoderInner::Pcma => {
                check_room(pcm.len(), out.len())?;
                Ok(g711::alaw_encode_slice(pcm, out))
            }
            EncoderInner::G722(enc) => {
                if !pcm.len().is_multiple_of(2) {
                    return Err(CodecError::OddSampleCount(pcm.len()));
                }
                check_room(pcm.len() / 2, out.len())?;
                Ok(enc.encode(pcm, out))
            }
            EncoderInner::Opus(enc) => Ok(enc.encode(pcm, out)?),
        }
    }

    /// Takes over `other`'s coding state, so that a decoder that followed `other`'s stream
    /// can follow this encoder's next frame seamlessly. Returns false (and changes
    /// nothing) where the codec has no state worth copying or the kinds differ.
    /// Does not allocate.
    pub fn copy_state_from(&mut self, other: &Encoder) -> bool {
        match (&mut self.inner, &other.inner) {
            (EncoderInner::G722(mine), EncoderInner::G722(theirs)) => {
                mine.clone_from(theirs);
                true
            }
            _ => false,
        }
    }

    /// The G.722 encoder inside, if this is one (to hand its state to a decoder mirror).
    pub fn g722(&self) -> Option<&G722Encoder> {
        match &self.inner {
            EncoderInner::G722(enc) => Some(enc),
            _ => None,
        }
    }

    /// Continues a G.722 encoder from `state` (e.g. [`G722Decoder::continuing_encoder`]),
    /// so that decoders that followed another stream go on decoding this one correctly;
    /// false for other codecs.
    pub fn continue_g722(&mut self, state: &G722Encoder) -> bool {
        match &mut self.inner {
            EncoderInner::G722(mine) => {
                (**mine).clone_from(state);
                true
            }
            _ => false,
        }
    }

    /// Forgets the encoder's history (G.722's predictor, Opus's analysis), as if new. For
    /// an encoder that resumes after its listeners' decoders followed another stream or
    /// silence frames: those are nearer a fresh state than to this encoder's stale one.
    pub fn reset(&mut self) {
        match &mut self.inner {
            EncoderInner::Pcmu | EncoderInner::Pcma => {}
            EncoderInner::G722(enc) => enc.reset(),
            EncoderInner::Opus(enc) => enc.reset(),
        }
    }
}

enum DecoderInner {
    Pcmu,
    Pcma,
    G722(Box<G722Decoder>),
    Opus(Box<OpusDecoder>),
}

/// Decoder for any [`CodecKind`], with loss concealment; payload in, PCM at the codec's
/// sample rate out.
pub struct Decoder {
    kind: CodecKind,
    inner: DecoderInner,
    /// Waveform PLC for G.711/G.722 (Opus conceals inside libopus).
    plc: Option<Box<Plc>>,
    /// Samples in the last decoded frame: the length a concealed frame gets.
    frame_len: usize,
    /// The frame after a gap, decoded ahead for two-sided concealment.
    ahead: Box<[i16]>,
    /// The last samples put out (G.722 only), to prime the re-encoding of a concealed frame.
    tail: [i16; G722_TAIL],
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("kind", &self.kind)
            .field("frame_len", &self.frame_len)
            .finish()
    }
}

impl Decoder {
    /// Creates a decoder.
    pub fn new(kind: CodecKind) -> Result<Self, CodecError> {
        let (inner, plc) = match kind {
            CodecKind::Pcmu => (DecoderInner::Pcmu, true),
            CodecKind::Pcma => (DecoderInner::Pcma, true),
            CodecKind::G722 => (DecoderInner::G722(Box::default()), true),
            CodecKind::Opus => (DecoderInner::Opus(Box::new(OpusDecoder::new()?)), false),
        };
        Ok(Self {
            kind,
            inner,
            plc: plc.then(|| Box::new(Plc::new(kind.sample_rate()))),
            frame_len: kind.samples_per_frame(DEFAULT_PTIME_MS),
            ahead: vec![0; MAX_AHEAD_SAMPLES].into_boxed_slice(),
            tail: [0; G722_TAIL],
        })
    }

    /// The codec.
    pub fn kind(&self) -> CodecKind {
        self.kind
    }

    /// Decodes one payload into `out`; returns samples written.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let n = match &mut self.inner {
            DecoderInner::Pcmu => {
                check_room(payload.len(), out.len())?;
                g711::ulaw_decode_slice(payload, out)
            }
            DecoderInner::Pcma => {
                check_room(payload.len(), out.len())?;
                g711::alaw_decode_slice(payload, out)
            }
            DecoderInner::G722(dec) => {
                check_room(payload.len() * 2, out.len())?;
                dec.decode(payload, out)
            }
            DecoderInner::Opus(dec) => dec.decode(payload, out)?,
        };
        if let Some(plc) = &mut self.plc {
            plc.good_frame(&mut out[..n]);
        }
        if n > 0 {
            self.frame_len = n;
        }
        self.keep_tail(&out[..n]);
        Ok(n)
    }

    /// Fills one frame of loss concealment (the last frame's duration, at most `out.len()`);
    /// returns samples written.
    pub fn conceal(&mut self, out: &mut [i16]) -> usize {
        let len = self.frame_len.min(out.len());
        let frame = &mut out[..len];
        match (&mut self.inner, &mut self.plc) {
            (DecoderInner::Opus(dec), _) => match dec.conceal(frame) {
                Ok(n) => n,
                Err(_) => {
                    // libopus only fails here on invalid buffer sizes; silence is the safe
                    // concealment then.
                    frame.fill(0);
                    len
                }
            },
            (_, Some(plc)) => {
                let n = plc.conceal(frame);
                self.follow(&out[..n]);
                n
            }
            (_, None) => {
                frame.fill(0);
                len
            }
        }
    }

    /// Fills one frame for a lost packet when the packet after it, `next_payload`, has
    /// already arrived (`next` of `Playout::Lost`): Opus recovers the lost frame from
    /// the in-band FEC that packet carries (LBRR, RFC 6716 §2.1.7; libopus conceals when it
    /// carries none). G.711 and G.722 decode that packet ahead (G.722 on a copy of its
    /// state) and bridge the gap from both sides ([`Plc::conceal_between`]). Returns samples
    /// written.
    pub fn conceal_before(&mut self, next_payload: &[u8], out: &mut [i16]) -> usize {
        let len = self.frame_len.min(out.len());
        let ahead = match &mut self.inner {
            DecoderInner::Opus(dec) => {
                return match dec.decode_fec(next_payload, &mut out[..len]) {
                    Ok(n) => n,
                    Err(_) => self.conceal(out),
                };
            }
            DecoderInner::Pcmu if next_payload.len() <= self.ahead.len() => {
                g711::ulaw_decode_slice(next_payload, &mut self.ahead)
            }
            DecoderInner::Pcma if next_payload.len() <= self.ahead.len() => {
                g711::alaw_decode_slice(next_payload, &mut self.ahead)
            }
            // Decoded on a copy of the ADPCM state: the real decode of this payload comes
            // next and must start from the state the gap left.
            DecoderInner::G722(dec) if next_payload.len() * 2 <= self.ahead.len() => {
                G722Decoder::clone(&**dec).decode(next_payload, &mut self.ahead)
            }
            _ => 0,
        };
        match &mut self.plc {
            Some(plc) => {
                let n = plc.conceal_between(&self.ahead[..ahead], &mut out[..len]);
                self.follow(&out[..n]);
                n
            }
            None => self.conceal(out),
        }
    }

    /// After a concealed frame: lets the G.722 decoder's state follow what was played.
    fn follow(&mut self, concealed: &[i16]) {
        if let DecoderInner::G722(dec) = &mut self.inner {
            dec.follow_concealment(&self.tail, concealed);
        }
        self.keep_tail(concealed);
    }

    fn keep_tail(&mut self, pcm: &[i16]) {
        if matches!(self.inner, DecoderInner::G722(_)) && !pcm.is_empty() {
            let take = pcm.len().min(G722_TAIL);
            self.tail.copy_within(take.., 0);
            self.tail[G722_TAIL - take..].copy_from_slice(&pcm[pcm.len() - take..]);
        }
    }

    /// Samples a concealed frame will have (the last decoded frame's length).
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }
}

fn check_room(needed: usize, got: usize) -> Result<(), CodecError> {
    if got < needed {
        Err(CodecError::OutputTooSmall { needed, got })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_constants_follow_rfc3551_and_rfc7587() {
        assert_eq!(CodecKind::G722.clock_rate(), 8000);
        assert_eq!(CodecKind::G722.sample_rate(), 16000);
        assert_eq!(CodecKind::Opus.clock_rate(), 48000);
        assert_eq!(CodecKind::Pcmu.static_payload_type(), Some(0));
        assert_eq!(CodecKind::Pcma.static_payload_type(), Some(8));
        assert_eq!(CodecKind::G722.static_payload_type(), Some(9));
        assert_eq!(CodecKind::Opus.static_payload_type(), None);
        assert_eq!(CodecKind::from_name("OPUS"), Some(CodecKind::Opus));
        assert_eq!(CodecKind::from_name("pcma"), Some(CodecKind::Pcma));
        assert_eq!(CodecKind::from_name("G729"), None);
        assert_eq!(
            CodecKind::from_static_payload_type(9),
            Some(CodecKind::G722)
        );
        assert_eq!(CodecKind::G722.samples_per_frame(20), 320);
        assert_eq!(CodecKind::G722.rtp_ticks_per_frame(20), 160);
        assert_eq!(CodecKind::Opus.rtp_ticks_per_frame(20), 960);
    }

    fn sine(rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (6000.0 * (2.0 * std::f64::consts::PI * 400.0 * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn every_codec_round_trips_a_frame_and_conceals_the_same_length() {
        for kind in CodecKind::ALL {
            let mut enc = Encoder::new(kind).unwrap();
            let mut dec = Decoder::new(kind).unwrap();
            let n = kind.samples_per_frame(20);
            let pcm = sine(kind.sample_rate(), n);
            let mut payload = [0u8; 1500];
            let mut out = [0i16; 2000];
            for _ in 0..5 {
                let len = enc.encode(&pcm, &mut payload).unwrap();
                assert_eq!(
                    dec.decode(&payload[..len], &mut out).unwrap(),
                    n,
                    "{kind:?}"
                );
            }
            assert!(
                out[..n].iter().any(|&s| s.unsigned_abs() > 1000),
                "{kind:?}"
            );
            out.fill(0);
            assert_eq!(dec.conceal(&mut out), n, "{kind:?}");
            assert!(
                out[..n].iter().any(|&s| s.unsigned_abs() > 500),
                "{kind:?} conceal"
            );
        }
    }

    /// A lost Opus frame comes back from the in-band FEC of the packet after it, far closer
    /// to what was sent than libopus's concealment guesses.
    #[test]
    fn opus_recovers_a_lost_frame_from_the_next_packets_fec() {
        let mut enc = Encoder::new(CodecKind::Opus).unwrap();
        let frames: Vec<Vec<i16>> = (0..40)
            .map(|k| {
                (k * 320..k * 320 + 320)
                    .map(|i| {
                        // Vowel-like: harmonics of 140 Hz falling off with frequency under a
                        // syllable envelope (libopus spends LBRR on voiced speech in SILK
                        // mode; a pure tone gets none).
                        let t = i as f64 / 16000.0;
                        let env = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
                        let voiced: f64 = (1..20)
                            .map(|h| {
                                let f = 140.0 * f64::from(h);
                                (2.0 * std::f64::consts::PI * f * t).sin() / f64::from(h)
                            })
                            .sum();
                        (3000.0 * env * voiced) as i16
                    })
                    .collect()
            })
            .collect();
        let packets: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| {
                let mut p = vec![0u8; crate::opus::OPUS_MAX_PACKET];
                let n = enc.encode(f, &mut p).unwrap();
                p.truncate(n);
                p
            })
            .collect();
        let lost = 30;
        let heard = |fec: bool| {
            let mut dec = Decoder::new(CodecKind::Opus).unwrap();
            let mut out = [0i16; 1920];
            for p in &packets[..lost] {
                dec.decode(p, &mut out).unwrap();
            }
            let n = if fec {
                dec.conceal_before(&packets[lost + 1], &mut out)
            } else {
                dec.conceal(&mut out)
            };
            assert_eq!(n, 320);
            out[..n].to_vec()
        };
        let mut dec = Decoder::new(CodecKind::Opus).unwrap();
        let mut truth = [0i16; 1920];
        for p in &packets[..=lost] {
            dec.decode(p, &mut truth).unwrap();
        }
        let err = |x: &[i16]| -> f64 {
            x.iter()
                .zip(&truth[..320])
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                .sum()
        };
        let (with_fec, without) = (err(&heard(true)), err(&heard(false)));
        assert!(
            with_fec * 3.0 < without,
            "FEC error {with_fec:.3e}, PLC {without:.3e}"
        );
    }

    /// After a lost G.722 frame the decoder's predictor follows the concealed audio, so the
    /// first frame after the gap is closer to what was sent than when decoded on the state
    /// the gap left behind.
    #[test]
    fn g722_state_follows_the_concealment_into_the_next_frame() {
        let frames: Vec<Vec<i16>> = (0..12)
            .map(|k| {
                (k * 320..k * 320 + 320)
                    .map(|i| {
                        let t = i as f64 / 16000.0;
                        // Rising level: the step size after the gap has to be larger.
                        let amp = 1500.0 + 900.0 * k as f64;
                        (amp * (2.0 * std::f64::consts::PI * 310.0 * t).sin()) as i16
                    })
                    .collect()
            })
            .collect();
        let mut enc = Encoder::new(CodecKind::G722).unwrap();
        let packets: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| {
                let mut p = vec![0u8; 160];
                let n = enc.encode(f, &mut p).unwrap();
                p.truncate(n);
                p
            })
            .collect();
        let lost = 8;
        let mut sent = Decoder::new(CodecKind::G722).unwrap();
        let mut truth = [0i16; 320];
        for p in &packets[..=lost + 1] {
            sent.decode(p, &mut truth).unwrap();
        }
        let err = |x: &[i16]| -> f64 {
            x.iter()
                .zip(&truth)
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                .sum::<f64>()
                / truth.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>()
        };
        let mut ours = Decoder::new(CodecKind::G722).unwrap();
        let mut stale = G722Decoder::new();
        let mut out = [0i16; 320];
        for p in &packets[..lost] {
            ours.decode(p, &mut out).unwrap();
            stale.decode(p, &mut out);
        }
        ours.conceal(&mut out);
        ours.decode(&packets[lost + 1], &mut out).unwrap();
        let followed = err(&out);
        stale.decode(&packets[lost + 1], &mut out);
        let left_behind = err(&out);
        assert!(
            followed < 0.75 * left_behind,
            "followed {followed:.4}, stale state {left_behind:.4}"
        );
    }

    #[test]
    fn reports_too_small_output_instead_of_truncating() {
        let mut dec = Decoder::new(CodecKind::G722).unwrap();
        let mut out = [0i16; 100];
        assert!(matches!(
            dec.decode(&[0u8; 160], &mut out),
            Err(CodecError::OutputTooSmall {
                needed: 320,
                got: 100
            })
        ));
        let mut enc = Encoder::new(CodecKind::Pcmu).unwrap();
        assert!(enc.encode(&[0i16; 160], &mut [0u8; 10]).is_err());
        let mut enc = Encoder::new(CodecKind::G722).unwrap();
        assert!(matches!(
            enc.encode(&[0i16; 3], &mut [0u8; 10]),
            Err(CodecError::OddSampleCount(3))
        ));
    }
}
