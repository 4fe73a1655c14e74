//! SDES `a=crypto` values and SRTP/SRTCP packets from a peer: parsing and unprotecting must
//! never panic, whatever arrives. The first byte picks the input kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srtp::{CryptoAttribute, MasterKey, SrtpContext, Suite};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    if kind & 1 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = CryptoAttribute::parse(text);
        }
        return;
    }
    let suite = Suite::ALL[usize::from(kind >> 1) % Suite::ALL.len()];
    let key = MasterKey::new(
        suite,
        &[7; 16],
        &vec![9; suite.master_salt_len()],
    )
    .expect("a key of the suite's lengths");
    let mut context = SrtpContext::new(suite, &key);
    let mut buf = rest.to_vec();
    let len = buf.len();
    if kind & 0x80 == 0 {
        let _ = context.unprotect_rtp(&mut buf, len);
    } else {
        let _ = context.unprotect_rtcp(&mut buf, len);
    }
});
