//! `rubato` 5 behind the same `process(&[i16], &mut [i16]) -> usize` call as our
//! `media::resample::Resampler`, for the comparison in `benches/resample.rs` and the
//! `path_quality` example (issue 13). Buffers are made in `new`; `process` converts to f32
//! and calls `process_into_buffer`, which does not allocate.

use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, PolynomialDegree, Resampler as _,
    SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

/// Which of rubato's converters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Async::new_sinc`, 128-tap windowed sinc, cubic interpolation between 256 phases.
    Sinc,
    /// `Async::new_poly`, cubic polynomial interpolation (no anti-alias filter).
    Poly,
    /// `Fft` (synchronous, FFT overlap-add).
    Fft,
}

enum Inner {
    Async(Async<f32>),
    Fft(Box<Fft<f32>>),
}

/// One mono stream; every call must bring exactly `chunk` input samples.
pub struct Rubato {
    inner: Inner,
    chunk: usize,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl Rubato {
    pub fn new(kind: Kind, from: u32, to: u32, chunk: usize) -> Self {
        let ratio = f64::from(to) / f64::from(from);
        let inner = match kind {
            Kind::Sinc => {
                let params = SincInterpolationParameters {
                    sinc_len: 128,
                    f_cutoff: None,
                    oversampling_factor: 256,
                    interpolation: SincInterpolationType::Cubic,
                    window: WindowFunction::BlackmanHarris2,
                };
                Inner::Async(
                    Async::new_sinc(ratio, 1.0, &params, chunk, 1, FixedAsync::Input)
                        .expect("rubato sinc"),
                )
            }
            Kind::Poly => Inner::Async(
                Async::new_poly(
                    ratio,
                    1.0,
                    PolynomialDegree::Cubic,
                    chunk,
                    1,
                    FixedAsync::Input,
                )
                .expect("rubato poly"),
            ),
            Kind::Fft => Inner::Fft(Box::new(
                Fft::new(from as usize, to as usize, chunk, 1, FixedSync::Input)
                    .expect("rubato fft"),
            )),
        };
        let max_out = match &inner {
            Inner::Async(r) => r.output_frames_max(),
            Inner::Fft(r) => r.output_frames_max(),
        };
        Self {
            inner,
            chunk,
            input: vec![0.0; chunk],
            output: vec![0.0; max_out],
        }
    }

    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> usize {
        for (d, &s) in self.input.iter_mut().zip(input) {
            *d = f32::from(s);
        }
        let cap = self.output.len();
        let Ok(adapter_in) = SequentialSlice::new(&self.input[..], 1, self.chunk) else {
            return 0;
        };
        let Ok(mut adapter_out) = SequentialSlice::new_mut(&mut self.output[..], 1, cap) else {
            return 0;
        };
        let done = match &mut self.inner {
            Inner::Async(r) => r.process_into_buffer(&adapter_in, &mut adapter_out, None),
            Inner::Fft(r) => r.process_into_buffer(&adapter_in, &mut adapter_out, None),
        };
        let n = done.map_or(0, |(_, n)| n).min(out.len());
        for (o, &v) in out.iter_mut().zip(&self.output[..n]) {
            *o = v.round().clamp(-32768.0, 32767.0) as i16;
        }
        n
    }
}
