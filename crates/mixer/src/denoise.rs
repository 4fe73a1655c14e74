//! Optional per-participant noise suppression with RNNoise (`nnnoiseless`).
//!
//! RNNoise works on 10 ms frames at 48 kHz, so narrow-band input is converted up to
//! 48 kHz, denoised, and converted to the room's internal rate. Everything, including the
//! boxed RNNoise state, is allocated when the participant joins.

use media::resample::Resampler;
use nnnoiseless::DenoiseState;

use crate::MixerError;
use crate::limiter::saturate;

/// RNNoise's fixed rate.
const NS_RATE: u32 = 48_000;

/// Input-side noise suppressor of one participant.
pub struct NoiseSuppressor {
    state: Box<DenoiseState<'static>>,
    up: Option<Resampler>,
    down: Option<Resampler>,
    pcm48: Box<[i16]>,
    clean48: Box<[i16]>,
    fin: Box<[f32]>,
    fout: Box<[f32]>,
    /// RNNoise's voice probability for the last 10 ms.
    vad: f32,
}

impl std::fmt::Debug for NoiseSuppressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseSuppressor")
            .field("vad", &self.vad)
            .finish_non_exhaustive()
    }
}

impl NoiseSuppressor {
    /// A suppressor for `codec_rate` input producing `internal_rate` output, `ptime_ms` frames.
    pub fn new(codec_rate: u32, internal_rate: u32, ptime_ms: u32) -> Result<Self, MixerError> {
        let up = (codec_rate != NS_RATE)
            .then(|| Resampler::new(codec_rate, NS_RATE))
            .transpose()?;
        let down = (internal_rate != NS_RATE)
            .then(|| Resampler::new(NS_RATE, internal_rate))
            .transpose()?;
        let n48 = (NS_RATE / 1000 * ptime_ms) as usize;
        Ok(Self {
            state: DenoiseState::new(),
            up,
            down,
            pcm48: vec![0; n48].into_boxed_slice(),
            clean48: vec![0; n48].into_boxed_slice(),
            fin: vec![0.0; DenoiseState::FRAME_SIZE].into_boxed_slice(),
            fout: vec![0.0; DenoiseState::FRAME_SIZE].into_boxed_slice(),
            vad: 0.0,
        })
    }

    /// Clears resampler history after a gap in the input (no stale audio at the restart).
    pub fn reset(&mut self) {
        if let Some(r) = &mut self.up {
            r.reset();
        }
        if let Some(r) = &mut self.down {
            r.reset();
        }
    }

    /// Denoises one frame: `input` at the codec rate, `out` at the internal rate.
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) {
        match &mut self.up {
            Some(r) => fill_from(r.process(input, &mut self.pcm48), &mut self.pcm48),
            None => copy_padded(input, &mut self.pcm48),
        }
        let chunk = DenoiseState::FRAME_SIZE;
        for (src, dst) in self.pcm48.chunks(chunk).zip(self.clean48.chunks_mut(chunk)) {
            if src.len() != chunk {
                // ptime is validated to whole 10 ms, so this is unreachable; pass through.
                dst.copy_from_slice(src);
                continue;
            }
            for (f, &s) in self.fin.iter_mut().zip(src) {
                *f = f32::from(s);
            }
            self.vad = self.state.process_frame(&mut self.fout, &self.fin);
            for (d, &f) in dst.iter_mut().zip(self.fout.iter()) {
                *d = saturate(f);
            }
        }
        match &mut self.down {
            Some(r) => {
                let n = r.process(&self.clean48, out);
                fill_from(n, out);
            }
            None => copy_padded(&self.clean48, out),
        }
    }

    /// RNNoise's voice probability for the last 10 ms of the last frame.
    pub fn voice_probability(&self) -> f32 {
        self.vad
    }
}

/// Zeroes `buf` from `n` on (a resampler that produced fewer samples than a frame).
pub(crate) fn fill_from(n: usize, buf: &mut [i16]) {
    if let Some(rest) = buf.get_mut(n..) {
        rest.fill(0);
    }
}

/// Copies `src` into `dst`, truncating or zero-padding to `dst`'s length.
pub(crate) fn copy_padded(src: &[i16], dst: &mut [i16]) {
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
    dst[n..].fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppresses_steady_background_noise() {
        let mut ns = NoiseSuppressor::new(8000, 16000, 20).unwrap();
        let mut seed = 0x1234_5678u32;
        let mut input = [0i16; 160];
        let mut out = [0i16; 320];
        let mut in_energy = 0.0f64;
        let mut out_energy = 0.0f64;
        for frame in 0..100 {
            for s in &mut input {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *s = ((seed >> 16) as i16) / 64;
            }
            ns.process(&input, &mut out);
            if frame >= 50 {
                in_energy += input.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() * 2.0;
                out_energy += out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
            }
        }
        let reduction_db = 10.0 * (out_energy / in_energy).log10();
        assert!(reduction_db < -10.0, "only {reduction_db:.1} dB");
    }
}
