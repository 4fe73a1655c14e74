//! Fuzzes the SDP parser and offer/answer: no input may panic, and every answer we produce
//! must parse again and keep the offer's m-line count (RFC 3264 §6).
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::sdp::{Codec, LocalMedia, answer, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(offer) = parse(text) else {
        return;
    };
    let local = LocalMedia {
        ip: "192.0.2.10".parse().unwrap(),
        port: 20000,
        codecs: vec![Codec::Opus, Codec::G722, Codec::Pcma, Codec::Pcmu],
        session_id: 1,
        session_version: 1,
        // Optional takes up keys wherever they are offered, so a=crypto parsing is fuzzed too.
        srtp: media::sdp::LocalSrtp::new(media::sdp::SrtpPolicy::Optional),
    };
    if let Ok((sdp, _)) = answer(&offer, &local) {
        let reparsed = parse(&sdp).expect("our answer must parse");
        assert_eq!(reparsed.media.len(), offer.media.len());
    }
});
