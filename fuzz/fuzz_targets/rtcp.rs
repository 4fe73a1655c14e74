//! Fuzzes the RTCP compound parser (RFC 3550 §6: SR, RR, SDES, BYE, padding): no input may
//! panic, and every report block read comes from inside the datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::rtp::parse_rtcp_report;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = parse_rtcp_report(data) else {
        return;
    };
    let blocks = report.blocks().count();
    assert!(blocks * 24 <= data.len());
    let _ = report.block_for(report.ssrc);
});
