//! Fuzzes RTCP from the network: no datagram may panic the report parser or a leg's RTCP
//! state, and whatever the peer sent, our next compound must still be a valid SR/RR that
//! parses back with our SSRC.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use media::rtcp::RtcpSession;
use media::rtp::{RtpSender, parse_rtcp_report};

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = parse_rtcp_report(data) {
        // Every report block read comes from inside the datagram.
        assert!(report.blocks().count() * 24 <= data.len());
        let _ = report.block_for(report.ssrc);
    }
    let start = Instant::now();
    let mut leg = RtcpSession::new(0x1234_5678, "fuzz@192.0.2.10", 8000, 160_000, 1, start);
    let sender = RtpSender::new(0x1234_5678, 0, 0);
    // The same bytes as a report, and split in two as if they were two datagrams.
    let _ = leg.on_rtcp(data, start, u64::from_be_bytes([0x80; 8]));
    let (head, tail) = data.split_at(data.len() / 2);
    let _ = leg.on_rtcp(head, start, 0);
    let _ = leg.on_rtcp(tail, start, u64::MAX);
    let later = start + Duration::from_secs(10);
    let mut out = [0u8; 512];
    let len = leg
        .poll_report(later, 0, &sender, &mut out)
        .expect("a report is due after 10 s")
        .expect("our report fits");
    assert_eq!(parse_rtcp_report(&out[..len]).unwrap().ssrc, 0x1234_5678);
});
