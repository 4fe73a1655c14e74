//! ITU-T G.722 sub-band ADPCM at 64 kbit/s (mode 1): 16 kHz PCM ↔ one octet per sample pair.
//!
//! The algorithm follows the public-domain SpanDSP/libg722 code by Steve Underwood (itself
//! after the CMU reference implementation), restated here with slice-in/slice-out calls and
//! no per-frame allocation. Block names in comments (QUANTL, LOGSCL, ...) are those of
//! G.722 §3 and §4 so the code can be checked against the recommendation.

/// Quantiser decision levels for the low band, 6-bit (QUANTL, G.722 Table 7).
const Q6: [i32; 32] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
];
/// Low-band code for negative differences, by quantiser interval.
const ILN: [i32; 32] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4, 0,
];
/// Low-band code for positive differences, by quantiser interval.
const ILP: [i32; 32] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32, 0,
];
/// Log scale factor multipliers, low band (LOGSCL).
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// 4-bit code → WL index.
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Inverse log scale factor table (SCALEL/SCALEH).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// 4-bit inverse quantiser used for predictor adaptation (INVQAL).
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// 6-bit inverse quantiser for the decoder output in mode 1 (INVQBL).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// High-band 2-bit inverse quantiser (INVQAH).
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// High-band code for negative differences.
const IHN: [i32; 3] = [0, 1, 0];
/// High-band code for positive differences.
const IHP: [i32; 3] = [0, 3, 2];
/// Log scale factor multipliers, high band (LOGSCH).
const WH: [i32; 3] = [0, -214, 798];
/// 2-bit code → WH index.
const RH2: [usize; 4] = [2, 1, 2, 1];
/// Half of the 24-tap QMF (G.722 Table 11); the filter is symmetric.
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

fn saturate(v: i32) -> i32 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// Adaptive predictor state of one sub-band.
#[derive(Debug, Clone, Copy)]
struct Band {
    s: i32,
    sp: i32,
    sz: i32,
    r: [i32; 3],
    a: [i32; 3],
    p: [i32; 3],
    d: [i32; 7],
    b: [i32; 7],
    nb: i32,
    det: i32,
}

impl Band {
    const fn new(det: i32) -> Self {
        Self {
            s: 0,
            sp: 0,
            sz: 0,
            r: [0; 3],
            a: [0; 3],
            p: [0; 3],
            d: [0; 7],
            b: [0; 7],
            nb: 0,
            det,
        }
    }

    /// LOGSCL/LOGSCH then SCALEL/SCALEH: adapts the quantiser scale from the log factor `w`.
    fn adapt_scale(&mut self, w: i32, nb_max: i32, shift_base: i32) {
        let nb = ((self.nb * 127) >> 7) + w;
        self.nb = nb.clamp(0, nb_max);
        let wd1 = ILB[((self.nb >> 6) & 31) as usize];
        let wd2 = shift_base - (self.nb >> 11);
        let wd3 = if wd2 < 0 { wd1 << -wd2 } else { wd1 >> wd2 };
        self.det = wd3 << 2;
    }

    /// Block 4 (G.722 §3.6): reconstruct, adapt pole and zero predictors, predict next sample.
    fn block4(&mut self, dx: i32) {
        // RECONS, PARREC
        self.d[0] = dx;
        self.r[0] = saturate(self.s + dx);
        self.p[0] = saturate(self.sz + dx);

        // UPPOL2
        let sg0 = self.p[0] >> 15;
        let sg1 = self.p[1] >> 15;
        let sg2 = self.p[2] >> 15;
        let wd1 = saturate(self.a[1] << 2);
        let wd2 = if sg0 == sg1 { -wd1 } else { wd1 }.min(32767);
        let mut wd3 = if sg0 == sg2 { 128 } else { -128 };
        wd3 += wd2 >> 7;
        wd3 += (self.a[2] * 32512) >> 15;
        let ap2 = wd3.clamp(-12288, 12288);

        // UPPOL1
        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let wd2 = (self.a[1] * 32640) >> 15;
        let limit = saturate(15360 - ap2);
        let ap1 = saturate(wd1 + wd2).clamp(-limit, limit);

        // UPZERO, DELAYA for the zero section (b[i] depends only on old b[i], d[i]).
        let wd1 = if dx == 0 { 0 } else { 128 };
        let sgd = dx >> 15;
        for i in 1..7 {
            let wd2 = if (self.d[i] >> 15) == sgd { wd1 } else { -wd1 };
            let wd3 = (self.b[i] * 32640) >> 15;
            self.b[i] = saturate(wd2 + wd3);
        }
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
        }
        self.r[2] = self.r[1];
        self.r[1] = self.r[0];
        self.p[2] = self.p[1];
        self.p[1] = self.p[0];
        self.a[1] = ap1;
        self.a[2] = ap2;

        // FILTEP
        let wd1 = (self.a[1] * saturate(self.r[1] + self.r[1])) >> 15;
        let wd2 = (self.a[2] * saturate(self.r[2] + self.r[2])) >> 15;
        self.sp = saturate(wd1 + wd2);

        // FILTEZ
        let mut sz = 0;
        for i in (1..7).rev() {
            sz += (self.b[i] * saturate(self.d[i] + self.d[i])) >> 15;
        }
        self.sz = saturate(sz);

        // PREDIC
        self.s = saturate(self.sp + self.sz);
    }
}

/// Initial low-band and high-band quantiser scales (G.722 §3.5 reset state).
const LOW_DET_INIT: i32 = 32;
const HIGH_DET_INIT: i32 = 8;

/// State shared by encoder and decoder: the QMF delay line and both band predictors.
#[derive(Debug, Clone)]
struct SubBands {
    x: [i32; 24],
    low: Band,
    high: Band,
}

impl Default for SubBands {
    fn default() -> Self {
        Self {
            x: [0; 24],
            low: Band::new(LOW_DET_INIT),
            high: Band::new(HIGH_DET_INIT),
        }
    }
}

/// G.722 64 kbit/s encoder: 16 kHz PCM in, one octet per two samples out.
#[derive(Debug, Clone, Default)]
pub struct G722Encoder {
    st: SubBands,
}

impl G722Encoder {
    /// Creates an encoder in the reset state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the encoder to the reset state (new stream).
    pub fn reset(&mut self) {
        self.st = SubBands::default();
    }

    /// Encodes `pcm` (16 kHz) into `out`; returns bytes written. A trailing odd sample and
    /// pairs that do not fit in `out` are ignored.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let mut n = 0;
        for (pair, o) in pcm.chunks_exact(2).zip(out.iter_mut()) {
            *o = self.encode_pair(i32::from(pair[0]), i32::from(pair[1]));
            n += 1;
        }
        n
    }

    fn encode_pair(&mut self, s0: i32, s1: i32) -> u8 {
        // Transmit QMF (§3.1): keep every other output of the 24-tap filter.
        self.st.x.copy_within(2.., 0);
        self.st.x[22] = s0;
        self.st.x[23] = s1;
        let mut sumodd = 0;
        let mut sumeven = 0;
        for i in 0..12 {
            sumodd += self.st.x[2 * i] * QMF[i];
            sumeven += self.st.x[2 * i + 1] * QMF[11 - i];
        }
        let xlow = (sumeven + sumodd) >> 14;
        let xhigh = (sumeven - sumodd) >> 14;

        // Low band: SUBTRA, QUANTL
        let el = saturate(xlow - self.st.low.s);
        let wd = if el >= 0 { el } else { -(el + 1) };
        let mut i = 1;
        while i < 30 && wd >= (Q6[i] * self.st.low.det) >> 12 {
            i += 1;
        }
        let ilow = if el < 0 { ILN[i] } else { ILP[i] };
        // INVQAL, LOGSCL, SCALEL
        let ril = (ilow >> 2) as usize;
        let dlow = (self.st.low.det * QM4[ril]) >> 15;
        self.st.low.adapt_scale(WL[RL42[ril]], 18432, 8);
        self.st.low.block4(dlow);

        // High band: SUBTRA, QUANTH
        let eh = saturate(xhigh - self.st.high.s);
        let wd = if eh >= 0 { eh } else { -(eh + 1) };
        let mih = if wd >= (564 * self.st.high.det) >> 12 {
            2
        } else {
            1
        };
        let ihigh = if eh < 0 { IHN[mih] } else { IHP[mih] };
        // INVQAH, LOGSCH, SCALEH
        let dhigh = (self.st.high.det * QM2[ihigh as usize]) >> 15;
        self.st.high.adapt_scale(WH[RH2[ihigh as usize]], 22528, 10);
        self.st.high.block4(dhigh);

        ((ihigh << 6) | ilow) as u8
    }
}

/// G.722 64 kbit/s decoder: one octet in, two 16 kHz samples out.
#[derive(Debug, Clone, Default)]
pub struct G722Decoder {
    st: SubBands,
}

impl G722Decoder {
    /// Creates a decoder in the reset state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the decoder to the reset state (new stream).
    pub fn reset(&mut self) {
        self.st = SubBands::default();
    }

    /// Decodes `codes` into `out` (two samples per octet); returns samples written. Octets
    /// whose two samples do not fit in `out` are not consumed.
    pub fn decode(&mut self, codes: &[u8], out: &mut [i16]) -> usize {
        let mut n = 0;
        for (&code, pair) in codes.iter().zip(out.chunks_exact_mut(2)) {
            let (a, b) = self.decode_octet(code);
            pair[0] = a;
            pair[1] = b;
            n += 2;
        }
        n
    }

    /// Brings the adaptive state in line with `concealed`, audio played in place of codes
    /// that never arrived, by encoding it and decoding the codes (ADPCM encoders run the
    /// decoder's own predictor, so this leaves the state the sender would have had for that
    /// audio). The codes after a gap then start from a predictor and step size that follow
    /// the signal, not the ones left 20 ms before it. `before` is the audio just before
    /// `concealed` (up to 24 samples), to prime the encoder's QMF.
    pub fn follow_concealment(&mut self, before: &[i16], concealed: &[i16]) {
        let mut enc = self.continuing_encoder(before);
        for pair in concealed.chunks_exact(2) {
            let code = enc.encode_pair(i32::from(pair[0]), i32::from(pair[1]));
            self.decode_octet(code);
        }
    }

    /// An encoder whose codes this decoder (and any decoder in the same state, such as a
    /// listener's that was sent the same codes) decodes correctly from here on: the band
    /// predictors and step sizes are this decoder's, the transmit filter is primed with
    /// `before`, the audio just before what will be encoded (up to its last 24 samples).
    pub fn continuing_encoder(&self, before: &[i16]) -> G722Encoder {
        let mut enc = G722Encoder {
            st: SubBands {
                x: [0; 24],
                low: self.st.low,
                high: self.st.high,
            },
        };
        let primed = before.len().min(24);
        for (x, &s) in enc.st.x[24 - primed..]
            .iter_mut()
            .zip(&before[before.len() - primed..])
        {
            *x = i32::from(s);
        }
        enc
    }

    /// A decoder in the state of one that decoded everything `encoder` coded so far (the
    /// receive filter, which only shapes the output, starts empty).
    pub fn following(encoder: &G722Encoder) -> Self {
        Self {
            st: SubBands {
                x: [0; 24],
                low: encoder.st.low,
                high: encoder.st.high,
            },
        }
    }

    fn decode_octet(&mut self, code: u8) -> (i16, i16) {
        let code = i32::from(code);
        let ilow = (code & 0x3F) as usize;
        let ihigh = ((code >> 6) & 0x03) as usize;

        // Low band: INVQBL, RECONS, LIMIT
        let rlow = (self.st.low.s + ((self.st.low.det * QM6[ilow]) >> 15)).clamp(-16384, 16383);
        // INVQAL, LOGSCL, SCALEL
        let ril = ilow >> 2;
        let dlow = (self.st.low.det * QM4[ril]) >> 15;
        self.st.low.adapt_scale(WL[RL42[ril]], 18432, 8);
        self.st.low.block4(dlow);

        // High band: INVQAH, RECONS, LIMIT, LOGSCH, SCALEH
        let dhigh = (self.st.high.det * QM2[ihigh]) >> 15;
        let rhigh = (dhigh + self.st.high.s).clamp(-16384, 16383);
        self.st.high.adapt_scale(WH[RH2[ihigh]], 22528, 10);
        self.st.high.block4(dhigh);

        // Receive QMF (§4.4)
        self.st.x.copy_within(2.., 0);
        self.st.x[22] = rlow + rhigh;
        self.st.x[23] = rlow - rhigh;
        let mut xout1 = 0;
        let mut xout2 = 0;
        for i in 0..12 {
            xout2 += self.st.x[2 * i] * QMF[i];
            xout1 += self.st.x[2 * i + 1] * QMF[11 - i];
        }
        (saturate(xout1 >> 11) as i16, saturate(xout2 >> 11) as i16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sine(freq: f64, rate: f64, amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as i16)
            .collect()
    }

    /// Best SNR (dB) of `out` against `inp` over delays 0..64 samples.
    fn best_snr(inp: &[i16], out: &[i16], skip: usize) -> (f64, usize) {
        let mut best = (f64::MIN, 0);
        for delay in 0..64 {
            let mut sig = 0.0;
            let mut err = 0.0;
            for i in skip..inp.len() - delay {
                let x = f64::from(inp[i]);
                let y = f64::from(out[i + delay]);
                sig += x * x;
                err += (x - y) * (x - y);
            }
            let snr = 10.0 * (sig / err.max(1e-9)).log10();
            if snr > best.0 {
                best = (snr, delay);
            }
        }
        best
    }

    fn round_trip(pcm: &[i16]) -> Vec<i16> {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut out = vec![0i16; pcm.len()];
        let mut codes = [0u8; 160];
        let mut pos = 0;
        // 20 ms frames, as on the wire.
        for frame in pcm.chunks(320) {
            let n = enc.encode(frame, &mut codes);
            assert_eq!(n, frame.len() / 2);
            pos += dec.decode(&codes[..n], &mut out[pos..]);
        }
        out
    }

    #[test]
    fn sine_1khz_survives_encode_decode_with_snr_above_20db() {
        let pcm = sine(1000.0, 16000.0, 10000.0, 16000);
        let out = round_trip(&pcm);
        let (snr, delay) = best_snr(&pcm, &out, 800);
        assert!(snr > 20.0, "snr {snr:.1} dB at delay {delay}");
        // The QMF pair delays by 22 samples (two 24-tap filters); the tone's 16-sample period
        // makes the search see that modulo 16.
        assert_eq!(delay % 16, 6, "delay {delay}");
    }

    #[test]
    fn speech_band_tones_keep_their_level() {
        for freq in [300.0, 2500.0, 6000.0] {
            let pcm = sine(freq, 16000.0, 8000.0, 8000);
            let out = round_trip(&pcm);
            let (snr, _) = best_snr(&pcm, &out, 800);
            assert!(snr > 15.0, "{freq} Hz: snr {snr:.1} dB");
        }
    }

    #[test]
    fn silence_stays_silent() {
        let pcm = vec![0i16; 3200];
        let out = round_trip(&pcm);
        let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak <= 4, "peak {peak}");
    }

    #[test]
    fn reset_restores_initial_state() {
        let pcm = sine(1000.0, 16000.0, 12000.0, 640);
        let mut enc = G722Encoder::new();
        let mut first = [0u8; 320];
        enc.encode(&pcm, &mut first);
        let mut second = [0u8; 320];
        enc.encode(&pcm, &mut second);
        assert_ne!(first, second, "state carries across calls");
        enc.reset();
        let mut third = [0u8; 320];
        enc.encode(&pcm, &mut third);
        assert_eq!(first, third);

        let mut dec = G722Decoder::new();
        let mut a = [0i16; 640];
        dec.decode(&first, &mut a);
        let mut b = [0i16; 640];
        dec.decode(&first, &mut b);
        assert_ne!(a, b);
        dec.reset();
        dec.decode(&first, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn encode_stops_at_output_capacity() {
        let pcm = [100i16; 11];
        let mut out = [0u8; 3];
        assert_eq!(G722Encoder::new().encode(&pcm, &mut out), 3);
        let mut out = [0u8; 10];
        assert_eq!(G722Encoder::new().encode(&pcm, &mut out), 5);
        let mut pcm_out = [0i16; 5];
        assert_eq!(G722Decoder::new().decode(&out, &mut pcm_out), 4);
    }

    proptest! {
        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut dec = G722Decoder::new();
            let mut out = vec![0i16; bytes.len() * 2];
            prop_assert_eq!(dec.decode(&bytes, &mut out), bytes.len() * 2);
        }

        #[test]
        fn encoder_never_panics_on_arbitrary_pcm(pcm in proptest::collection::vec(any::<i16>(), 0..2000)) {
            let mut enc = G722Encoder::new();
            let mut out = vec![0u8; pcm.len() / 2];
            prop_assert_eq!(enc.encode(&pcm, &mut out), pcm.len() / 2);
        }
    }
}
