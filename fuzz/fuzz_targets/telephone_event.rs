//! Fuzzes RFC 4733 telephone events as a stream: the input is cut into (timestamp, payload)
//! packets fed to one `DtmfReceiver`, as one call's RTP would be, plus the SIP INFO bodies
//! (`application/dtmf-relay`, `application/dtmf`). No input may panic, and every key reported
//! is one a phone has.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::dtmf::{DtmfReceiver, parse_dtmf_relay, parse_telephone_event};

const KEYS: &str = "0123456789*#ABCD";

fuzz_target!(|data: &[u8]| {
    let mut receiver = DtmfReceiver::new();
    // Packets of 4 timestamp bytes, then 4 event bytes (RFC 4733 §2.3).
    for chunk in data.chunks(8) {
        let (ts, payload) = chunk.split_at(chunk.len().min(4));
        let mut ts_bytes = [0u8; 4];
        ts_bytes[..ts.len()].copy_from_slice(ts);
        let _ = parse_telephone_event(payload);
        if let Some(key) = receiver.push(u32::from_be_bytes(ts_bytes), payload) {
            assert!(KEYS.contains(key), "reported key {key:?}");
        }
    }
    if let Ok(body) = std::str::from_utf8(data)
        && let Some(key) = parse_dtmf_relay(body)
    {
        assert!(KEYS.contains(key), "INFO key {key:?}");
    }
});
