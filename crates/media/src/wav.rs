//! WAV prompts: parse RIFF/WAVE 16-bit PCM (mono-mixed), write mono WAV, and play a loaded
//! prompt into frames at the call's rate.
//!
//! Parsing allocates the sample vector once at load time; [`PromptPlayer::fill`] is on the
//! media path and does not allocate.

use std::sync::Arc;

use crate::resample::{ResampleError, Resampler};

/// Sample rate prompts are stored at.
pub const PROMPT_RATE: u32 = 16000;

/// What is wrong with a WAV file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// The file does not start with `RIFF`.
    #[error("not a RIFF file (missing \"RIFF\" magic)")]
    NotRiff,
    /// The RIFF form type is not `WAVE`.
    #[error("RIFF file is not WAVE")]
    NotWave,
    /// A chunk header or body runs past the end of the file.
    #[error("chunk {0:?} is truncated")]
    Truncated(String),
    /// No `fmt ` chunk before the `data` chunk.
    #[error("no \"fmt \" chunk before \"data\"")]
    MissingFormat,
    /// No `data` chunk.
    #[error("no \"data\" chunk")]
    MissingData,
    /// The format tag is not PCM (1, or extensible with the PCM sub-format).
    #[error("unsupported WAV format tag {0:#06x} (only PCM)")]
    UnsupportedFormat(u16),
    /// Not 16 bits per sample.
    #[error("unsupported {0} bits per sample (only 16)")]
    UnsupportedBits(u16),
    /// Zero channels, or a zero sample rate.
    #[error("invalid format: {channels} channels at {sample_rate} Hz")]
    InvalidFormat {
        /// Channels declared.
        channels: u16,
        /// Rate declared.
        sample_rate: u32,
    },
}

/// A decoded WAV file, mixed to mono.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channels in the file (the samples are mixed to one).
    pub channels: u16,
    /// Mono samples.
    pub samples: Vec<i16>,
}

/// WAVE_FORMAT_PCM.
const FORMAT_PCM: u16 = 1;
/// WAVE_FORMAT_EXTENSIBLE; the sub-format GUID's first two bytes carry the real tag.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}

/// Parses a RIFF/WAVE file with 16-bit PCM, skipping chunks it does not need and mixing
/// all channels to mono.
pub fn parse_wav(bytes: &[u8]) -> Result<Wav, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") {
        return Err(WavError::NotRiff);
    }
    if bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    let mut rest = &bytes[12..];
    let mut format: Option<(u16, u32)> = None;
    while rest.len() >= 8 {
        let id = &rest[0..4];
        let name = || String::from_utf8_lossy(id).into_owned();
        let size = u32_at(rest, 4).ok_or_else(|| WavError::Truncated(name()))? as usize;
        let body_all = &rest[8..];
        match id {
            b"fmt " => {
                let body = body_all
                    .get(..size)
                    .ok_or_else(|| WavError::Truncated(name()))?;
                format = Some(parse_fmt(body)?);
            }
            b"data" => {
                let (channels, sample_rate) = format.ok_or(WavError::MissingFormat)?;
                // Streaming writers leave the size at 0 or 0xFFFFFFFF: take what is there.
                let body = if size == 0 || size > body_all.len() {
                    body_all
                } else {
                    &body_all[..size]
                };
                return Ok(Wav {
                    sample_rate,
                    channels,
                    samples: mix_to_mono(body, channels),
                });
            }
            _ => {}
        }
        // Chunks are padded to even length (RIFF).
        let skip = size.saturating_add(size & 1);
        rest = body_all.get(skip..).unwrap_or_default();
    }
    Err(WavError::MissingData)
}

fn parse_fmt(body: &[u8]) -> Result<(u16, u32), WavError> {
    let truncated = || WavError::Truncated("fmt ".into());
    let mut tag = u16_at(body, 0).ok_or_else(truncated)?;
    let channels = u16_at(body, 2).ok_or_else(truncated)?;
    let sample_rate = u32_at(body, 4).ok_or_else(truncated)?;
    let bits = u16_at(body, 14).ok_or_else(truncated)?;
    if tag == FORMAT_EXTENSIBLE {
        // WAVEFORMATEXTENSIBLE: cbSize(2) validBits(2) mask(4) then the sub-format GUID.
        tag = u16_at(body, 24).ok_or_else(truncated)?;
    }
    if tag != FORMAT_PCM {
        return Err(WavError::UnsupportedFormat(tag));
    }
    if bits != 16 {
        return Err(WavError::UnsupportedBits(bits));
    }
    if channels == 0 || sample_rate == 0 {
        return Err(WavError::InvalidFormat {
            channels,
            sample_rate,
        });
    }
    Ok((channels, sample_rate))
}

fn mix_to_mono(data: &[u8], channels: u16) -> Vec<i16> {
    let ch = usize::from(channels);
    data.chunks_exact(2 * ch)
        .map(|frame| {
            let sum: i32 = frame
                .chunks_exact(2)
                .map(|b| i32::from(i16::from_le_bytes([b[0], b[1]])))
                .sum();
            (sum / ch as i32) as i16
        })
        .collect()
}

/// Writes mono 16-bit PCM samples at `rate` as a WAV file.
pub fn write_wav(samples: &[i16], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&FORMAT_PCM.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Converts a parsed WAV to a shared prompt at [`PROMPT_RATE`] (load time, allocates).
pub fn to_prompt(wav: &Wav) -> Result<Arc<[i16]>, ResampleError> {
    if wav.sample_rate == PROMPT_RATE {
        return Ok(wav.samples.clone().into());
    }
    let mut r = Resampler::new(wav.sample_rate, PROMPT_RATE)?;
    let mut out = vec![0i16; r.max_output_len(wav.samples.len() + r.delay() * 8)];
    let mut n = r.process(&wav.samples, &mut out);
    // Flush the filter so the prompt's end is not cut off.
    let tail = vec![0i16; r.delay() * wav.sample_rate as usize / PROMPT_RATE as usize + 8];
    n += r.process(&tail, &mut out[n..]);
    out.truncate(n);
    Ok(out.into())
}

/// Plays a prompt (16 kHz, shared) into frames at the call's rate.
#[derive(Debug, Clone)]
pub struct PromptPlayer {
    prompt: Arc<[i16]>,
    pos: usize,
    resampler: Resampler,
    /// Zero samples still to feed after the prompt so the filter's tail comes out.
    flush_left: usize,
    /// Outputs of one input sample that did not fit in the previous frame.
    pending: [i16; 16],
    pending_len: usize,
}

impl PromptPlayer {
    /// A player for `prompt` (at [`PROMPT_RATE`]) producing `target_rate` PCM.
    pub fn new(prompt: Arc<[i16]>, target_rate: u32) -> Result<Self, ResampleError> {
        let resampler = Resampler::new(PROMPT_RATE, target_rate)?;
        let flush_left = (resampler.delay() * PROMPT_RATE as usize).div_ceil(target_rate as usize);
        Ok(Self {
            prompt,
            pos: 0,
            resampler,
            flush_left,
            pending: [0; 16],
            pending_len: 0,
        })
    }

    /// Starts the prompt over.
    pub fn rewind(&mut self) {
        self.pos = 0;
        self.resampler.reset();
        self.flush_left = (self.resampler.delay() * PROMPT_RATE as usize)
            .div_ceil(self.resampler.output_rate() as usize);
        self.pending_len = 0;
    }

    /// True once everything has been played.
    pub fn finished(&self) -> bool {
        self.pos >= self.prompt.len() && self.flush_left == 0 && self.pending_len == 0
    }

    /// Fills `out` with the next frame; the part after the prompt's end is silence. Returns
    /// false if nothing of the prompt was left to play (the frame is all silence).
    pub fn fill(&mut self, out: &mut [i16]) -> bool {
        if self.finished() {
            out.fill(0);
            return false;
        }
        let mut n = 0;
        while n < out.len() && self.pending_len > 0 {
            out[n] = self.pending[0];
            self.pending.copy_within(1..self.pending_len, 0);
            self.pending_len -= 1;
            n += 1;
        }
        let mut tmp = [0i16; 16];
        while n < out.len() {
            let x = if let Some(&x) = self.prompt.get(self.pos) {
                self.pos += 1;
                x
            } else if self.flush_left > 0 {
                self.flush_left -= 1;
                0
            } else {
                break;
            };
            let made = self.resampler.process(&[x], &mut tmp);
            let fit = made.min(out.len() - n);
            out[n..n + fit].copy_from_slice(&tmp[..fit]);
            n += fit;
            let rest = made - fit;
            self.pending[..rest].copy_from_slice(&tmp[fit..made]);
            self.pending_len = rest;
        }
        out[n..].fill(0);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wav_with(channels: u16, rate: u32, frames: &[&[i16]], extra_chunk: bool) -> Vec<u8> {
        let mut data = Vec::new();
        for f in frames {
            for s in *f {
                data.extend_from_slice(&s.to_le_bytes());
            }
        }
        let mut body = Vec::new();
        body.extend_from_slice(b"WAVE");
        if extra_chunk {
            body.extend_from_slice(b"LIST");
            body.extend_from_slice(&3u32.to_le_bytes());
            body.extend_from_slice(b"abc\0"); // odd size + pad byte
        }
        body.extend_from_slice(b"fmt ");
        body.extend_from_slice(&16u32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&channels.to_le_bytes());
        body.extend_from_slice(&rate.to_le_bytes());
        body.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
        body.extend_from_slice(&(2 * channels).to_le_bytes());
        body.extend_from_slice(&16u16.to_le_bytes());
        body.extend_from_slice(b"data");
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(&data);
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn write_then_parse_round_trips() {
        let samples: Vec<i16> = (0..1000).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
        let bytes = write_wav(&samples, 8000);
        assert_eq!(bytes.len(), 44 + 2000);
        let w = parse_wav(&bytes).unwrap();
        assert_eq!(
            w,
            Wav {
                sample_rate: 8000,
                channels: 1,
                samples
            }
        );
    }

    #[test]
    fn skips_unknown_chunks_and_mixes_stereo() {
        let bytes = wav_with(
            2,
            16000,
            &[&[100, 300], &[-100, -300], &[i16::MAX, i16::MAX]],
            true,
        );
        let w = parse_wav(&bytes).unwrap();
        assert_eq!(w.channels, 2);
        assert_eq!(w.sample_rate, 16000);
        assert_eq!(w.samples, vec![200, -200, i16::MAX]);
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(parse_wav(b"RIFX....WAVE"), Err(WavError::NotRiff));
        assert_eq!(parse_wav(b"RIFF....AVI "), Err(WavError::NotWave));
        assert_eq!(parse_wav(b"RIFF\0\0\0\0WAVE"), Err(WavError::MissingData));
        let mut b = wav_with(1, 8000, &[&[1]], false);
        b[20] = 3; // IEEE float
        assert_eq!(parse_wav(&b), Err(WavError::UnsupportedFormat(3)));
        let mut b = wav_with(1, 8000, &[&[1]], false);
        b[34] = 8;
        assert_eq!(parse_wav(&b), Err(WavError::UnsupportedBits(8)));
        let mut b = wav_with(1, 8000, &[&[1]], false);
        b[22] = 0;
        assert!(matches!(parse_wav(&b), Err(WavError::InvalidFormat { .. })));
        let b = wav_with(1, 8000, &[&[1]], false);
        assert_eq!(parse_wav(&b[..30]), Err(WavError::Truncated("fmt ".into())));
        assert!(
            WavError::UnsupportedBits(24)
                .to_string()
                .contains("24 bits")
        );
    }

    #[test]
    fn data_chunk_with_streaming_size_takes_what_is_there() {
        let mut b = wav_with(1, 8000, &[&[5], &[6], &[7]], false);
        let len = b.len();
        b[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        let w = parse_wav(&b[..len - 1]).unwrap();
        assert_eq!(w.samples, vec![5, 6]);
    }

    fn sine16k(n: usize) -> Arc<[i16]> {
        (0..n)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * 500.0 * i as f64 / 16000.0).sin()) as i16
            })
            .collect::<Vec<_>>()
            .into()
    }

    #[test]
    fn prompt_plays_at_each_target_rate_then_finishes() {
        for (rate, frame) in [(8000u32, 160usize), (16000, 320), (48000, 960)] {
            // 100 ms of prompt.
            let mut p = PromptPlayer::new(sine16k(1600), rate).unwrap();
            let mut f = vec![0i16; frame];
            let mut frames = 0;
            let mut energy = 0.0;
            while p.fill(&mut f) {
                frames += 1;
                energy += f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
                assert!(frames < 20);
            }
            // 5 frames of audio, plus one for the filter tail at resampled rates.
            assert!((5..=6).contains(&frames), "{rate}: {frames} frames");
            let rms = (energy / (5 * frame) as f64).sqrt();
            assert!((5000.0..6200.0).contains(&rms), "{rate}: rms {rms:.0}");
            assert!(f.iter().all(|&s| s == 0));
            assert!(p.finished());
            p.rewind();
            assert!(p.fill(&mut f));
        }
    }

    #[test]
    fn prompt_at_16k_is_played_sample_exact() {
        let prompt = sine16k(640);
        let mut p = PromptPlayer::new(prompt.clone(), 16000).unwrap();
        let mut f = [0i16; 320];
        assert!(p.fill(&mut f));
        assert_eq!(&f[..], &prompt[..320]);
        assert!(p.fill(&mut f));
        assert!(!p.fill(&mut f));
    }

    #[test]
    fn odd_frame_sizes_lose_no_samples() {
        // 16k→48k makes 3 outputs per input; a 100-sample frame splits them.
        let prompt: Arc<[i16]> = vec![1000i16; 400].into();
        let mut p = PromptPlayer::new(prompt, 48000).unwrap();
        let mut total = Vec::new();
        let mut f = [0i16; 100];
        while p.fill(&mut f) {
            total.extend_from_slice(&f);
        }
        let loud = total.iter().filter(|&&s| s > 900).count();
        assert!((1150..=1210).contains(&loud), "{loud}");
    }

    #[test]
    fn to_prompt_resamples_8k_files() {
        let samples: Vec<i16> = vec![3000; 800];
        let w = Wav {
            sample_rate: 8000,
            channels: 1,
            samples,
        };
        let p = to_prompt(&w).unwrap();
        assert!((1600..1700).contains(&p.len()), "{}", p.len());
        assert!(p[100..1500].iter().all(|&s| (2900..3100).contains(&s)));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_wav(&bytes);
        }

        #[test]
        fn parse_never_panics_on_riff_prefixed_input(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = b"RIFF\0\0\0\0WAVE".to_vec();
            b.extend_from_slice(&tail);
            let _ = parse_wav(&b);
        }
    }
}
