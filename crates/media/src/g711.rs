//! ITU-T G.711 µ-law (PCMU) and A-law (PCMA) companding, table-driven.
//!
//! The tables are computed at compile time from the segment formulas of G.711 §2/§3 (the
//! arithmetic form popularised by Sun's `g711.c`), so encode and decode are one lookup each.

/// µ-law bias added before segment search (G.711 Table 2a, 33 in 14-bit units).
const ULAW_BIAS: i32 = 0x84;
/// Largest 14-bit magnitude µ-law can represent before the bias is added.
const ULAW_CLIP: i32 = 8159;
/// Upper ends of the eight µ-law segments in 14-bit units.
const ULAW_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Upper ends of the eight A-law segments in 13-bit units.
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const fn segment(value: i32, ends: &[i32; 8]) -> i32 {
    let mut i = 0;
    while i < 8 {
        if value <= ends[i] {
            return i as i32;
        }
        i += 1;
    }
    8
}

const fn ulaw_encode_formula(pcm: i32) -> u8 {
    let mut v = pcm >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    if v > ULAW_CLIP {
        v = ULAW_CLIP;
    }
    v += ULAW_BIAS >> 2;
    let seg = segment(v, &ULAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let code = (seg << 4) | ((v >> (seg + 1)) & 0xF);
    (code ^ mask) as u8
}

const fn ulaw_decode_formula(code: u8) -> i16 {
    let u = !code as i32;
    let mut t = ((u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

const fn alaw_encode_formula(pcm: i32) -> u8 {
    let mut v = pcm >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &ALAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut code = seg << 4;
    if seg < 2 {
        code |= (v >> 1) & 0x0F;
    } else {
        code |= (v >> seg) & 0x0F;
    }
    (code ^ mask) as u8
}

const fn alaw_decode_formula(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

/// µ-law code → linear, indexed by code.
static ULAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode_formula(i as u8);
        i += 1;
    }
    t
};

/// A-law code → linear, indexed by code.
static ALAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode_formula(i as u8);
        i += 1;
    }
    t
};

/// Linear → µ-law, indexed by the 14-bit sample (`pcm >> 2`) offset to be non-negative; the
/// two low bits never influence the code.
static ULAW_ENCODE: [u8; 16384] = {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        t[i] = ulaw_encode_formula(((i as i32) - 8192) << 2);
        i += 1;
    }
    t
};

/// Linear → A-law, indexed by the 13-bit sample (`pcm >> 3`) offset to be non-negative.
static ALAW_ENCODE: [u8; 8192] = {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        t[i] = alaw_encode_formula(((i as i32) - 4096) << 3);
        i += 1;
    }
    t
};

/// Encodes one linear sample to µ-law.
#[inline]
pub fn ulaw_encode(pcm: i16) -> u8 {
    // (pcm >> 2) is in -8192..=8191, so the offset index is always in 0..16384.
    ULAW_ENCODE[((i32::from(pcm) >> 2) + 8192) as usize]
}

/// Decodes one µ-law code to a linear sample.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Encodes one linear sample to A-law.
#[inline]
pub fn alaw_encode(pcm: i16) -> u8 {
    // (pcm >> 3) is in -4096..=4095, so the offset index is always in 0..8192.
    ALAW_ENCODE[((i32::from(pcm) >> 3) + 4096) as usize]
}

/// Decodes one A-law code to a linear sample.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// µ-law encodes `pcm` into `out`; returns the number of bytes written (`min` of both lengths).
pub fn ulaw_encode_slice(pcm: &[i16], out: &mut [u8]) -> usize {
    let n = pcm.len().min(out.len());
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = ulaw_encode(s);
    }
    n
}

/// µ-law decodes `codes` into `out`; returns the number of samples written.
pub fn ulaw_decode_slice(codes: &[u8], out: &mut [i16]) -> usize {
    let n = codes.len().min(out.len());
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = ulaw_decode(c);
    }
    n
}

/// A-law encodes `pcm` into `out`; returns the number of bytes written.
pub fn alaw_encode_slice(pcm: &[i16], out: &mut [u8]) -> usize {
    let n = pcm.len().min(out.len());
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = alaw_encode(s);
    }
    n
}

/// A-law decodes `codes` into `out`; returns the number of samples written.
pub fn alaw_decode_slice(codes: &[u8], out: &mut [i16]) -> usize {
    let n = codes.len().min(out.len());
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = alaw_decode(c);
    }
    n
}

/// The code of the other law whose reconstruction is nearest `value` (ties to the code whose
/// magnitude is smaller, as G.711's conversion tables round towards zero).
const fn nearest_code(value: i16, decode: &[i16; 256]) -> u8 {
    let mut best = 0usize;
    let mut best_err = i32::MAX;
    let mut c = 0;
    while c < 256 {
        let d = decode[c] as i32;
        // Same sign only, so that the sign bit carries over unchanged.
        if (d >= 0) == (value >= 0) || d == 0 {
            let err = (d - value as i32).abs();
            if err < best_err || (err == best_err && d.abs() < (decode[best] as i32).abs()) {
                best_err = err;
                best = c;
            }
        }
        c += 1;
    }
    best as u8
}

/// A-law code → µ-law code with the nearest reconstruction (ITU-T G.711 §4 conversion).
static ALAW_TO_ULAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = nearest_code(ALAW_DECODE[i], &ULAW_DECODE);
        i += 1;
    }
    t
};

/// µ-law code → A-law code with the nearest reconstruction.
static ULAW_TO_ALAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = nearest_code(ULAW_DECODE[i], &ALAW_DECODE);
        i += 1;
    }
    t
};

/// Converts A-law codes to µ-law codes, one lookup per byte: a PCMA talker reaches PCMU
/// listeners without decoding, mixing or encoding; returns bytes written.
pub fn alaw_to_ulaw_slice(codes: &[u8], out: &mut [u8]) -> usize {
    let n = codes.len().min(out.len());
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = ALAW_TO_ULAW[usize::from(c)];
    }
    n
}

/// Converts µ-law codes to A-law codes, one lookup per byte; returns bytes written.
pub fn ulaw_to_alaw_slice(codes: &[u8], out: &mut [u8]) -> usize {
    let n = codes.len().min(out.len());
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = ULAW_TO_ALAW[usize::from(c)];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn law_conversion_is_no_worse_than_decoding_and_encoding_again() {
        for code in 0..=255u8 {
            let a = i32::from(alaw_decode(code));
            let mut u = [0u8];
            alaw_to_ulaw_slice(&[code], &mut u);
            let by_table = (i32::from(ulaw_decode(u[0])) - a).abs();
            let by_pcm = (i32::from(ulaw_decode(ulaw_encode(a as i16))) - a).abs();
            assert!(by_table <= by_pcm, "A {code:#04x}: {by_table} vs {by_pcm}");
            let m = i32::from(ulaw_decode(code));
            let mut back = [0u8];
            ulaw_to_alaw_slice(&[code], &mut back);
            let by_table = (i32::from(alaw_decode(back[0])) - m).abs();
            let by_pcm = (i32::from(alaw_decode(alaw_encode(m as i16))) - m).abs();
            assert!(by_table <= by_pcm, "u {code:#04x}: {by_table} vs {by_pcm}");
        }
    }

    #[test]
    fn law_conversion_keeps_sign_and_round_trips_where_a_law_is_finer() {
        // Above the smallest segments A-law and µ-law steps match, so A→µ→A is exact there
        // (G.711 §4: transparent for most codes).
        let mut exact = 0;
        for code in 0..=255u8 {
            let mut u = [0u8];
            let mut a = [0u8];
            alaw_to_ulaw_slice(&[code], &mut u);
            ulaw_to_alaw_slice(&u, &mut a);
            let (x, y) = (alaw_decode(code), ulaw_decode(u[0]));
            assert!(
                x.signum() == y.signum() || y == 0,
                "{code:#04x}: {x} -> {y}"
            );
            if a[0] == code {
                exact += 1;
            }
        }
        assert!(
            exact >= 200,
            "only {exact} of 256 A-law codes survive A→µ→A"
        );
    }

    #[test]
    fn ulaw_known_code_points() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0x7E), -8);
    }

    #[test]
    fn alaw_known_code_points() {
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn ulaw_all_codes_decode_encode_identity_except_negative_zero() {
        for c in 0..=255u8 {
            let back = ulaw_encode(ulaw_decode(c));
            // 0x7F is µ-law's "negative zero": it decodes to 0, which encodes as 0xFF.
            let expected = if c == 0x7F { 0xFF } else { c };
            assert_eq!(back, expected, "code {c:#04x}");
        }
    }

    #[test]
    fn alaw_all_codes_decode_encode_identity() {
        for c in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(c)), c, "code {c:#04x}");
        }
    }

    #[test]
    fn table_encoder_matches_formula_for_every_sample() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(s), ulaw_encode_formula(i32::from(s)), "{s}");
            assert_eq!(alaw_encode(s), alaw_encode_formula(i32::from(s)), "{s}");
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_quantisation_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let x = i32::from(s);
            let mag = x.unsigned_abs() as i32;
            // Step size doubles per segment; half a step relative bound is 1/32 of the
            // magnitude plus the finest step near zero.
            let bound_u = mag / 16 + 8;
            let bound_a = mag / 16 + 16;
            let eu = (i32::from(ulaw_decode(ulaw_encode(s))) - x).abs();
            let ea = (i32::from(alaw_decode(alaw_encode(s))) - x).abs();
            if mag <= 32124 {
                assert!(eu <= bound_u, "ulaw {s}: err {eu}");
            }
            if mag <= 32256 {
                assert!(ea <= bound_a, "alaw {s}: err {ea}");
            }
        }
    }

    #[test]
    fn slice_helpers_stop_at_shorter_buffer() {
        let pcm = [0i16, 1000, -1000, 5];
        let mut out = [0u8; 3];
        assert_eq!(ulaw_encode_slice(&pcm, &mut out), 3);
        let mut back = [0i16; 8];
        assert_eq!(ulaw_decode_slice(&out, &mut back), 3);
        assert!((back[1] - 1000).abs() < 64);
        assert_eq!(alaw_encode_slice(&pcm, &mut out), 3);
        assert_eq!(alaw_decode_slice(&out, &mut back), 3);
        assert!((back[2] + 1000).abs() < 64);
    }
}
