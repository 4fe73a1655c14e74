//! Fuzzes the audio decoders with payloads from the network: the first byte picks the codec
//! (PCMU, PCMA, G.722, Opus), the rest is cut into payloads at the following length bytes, and
//! decodes alternate with concealment as lost packets would. No input may panic or write past
//! one frame's buffer, whatever a peer sends under a negotiated payload type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::codec::{CodecKind, Decoder};

/// 120 ms at 48 kHz: the longest Opus frame, more than any other codec's 20 ms.
const MAX_SAMPLES: usize = 5760;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let kind = match selector % 4 {
        0 => CodecKind::Pcmu,
        1 => CodecKind::Pcma,
        2 => CodecKind::G722,
        _ => CodecKind::Opus,
    };
    let Ok(mut decoder) = Decoder::new(kind) else {
        return;
    };
    let mut out = vec![0i16; MAX_SAMPLES];
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        if payload.is_empty() {
            let n = decoder.conceal(&mut out);
            assert!(n <= out.len());
        } else if let Ok(n) = decoder.decode(payload, &mut out) {
            assert!(n <= out.len());
        }
    }
});
