//! Fuzzes RTP parsing as the media workers see datagrams: the RTP/RTCP demultiplexer, the
//! header (CSRCs, padding), RFC 8285 header extensions in both forms and the RFC 6464 level
//! under every id. No input may panic, and what parses must lie inside the datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::rtp::{audio_level, find_extension_element, is_rtcp, parse_rtp};

fuzz_target!(|data: &[u8]| {
    let _ = is_rtcp(data);
    let Ok(packet) = parse_rtp(data) else {
        return;
    };
    assert!(packet.payload.len() <= data.len());
    if let Some(extension) = &packet.extension {
        assert!(extension.data.len() <= data.len());
        for id in 0..=255u8 {
            if let Some(element) = find_extension_element(extension, id) {
                assert!(element.len() <= extension.data.len());
            }
            let _ = audio_level(&packet, id);
        }
    }
});
