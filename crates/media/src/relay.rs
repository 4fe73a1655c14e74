//! Packet-for-packet forwarding of RTP between two call legs that share a codec.
//!
//! A relayed packet keeps its payload, its marker and the gaps in its numbering (so the far
//! end's jitter buffer sees loss and reordering as they happened), but goes out under the
//! outgoing leg's own SSRC, payload type, sequence numbers and timestamps. That way the far
//! end sees one continuous stream from us whether we were playing ringback a moment ago,
//! relay now, or produce audio ourselves again later (a transfer, music on hold), and RTCP
//! sender reports stay consistent with what we sent. Header extensions and CSRCs are not
//! forwarded: their meaning was negotiated on the incoming leg only.

use crate::rtp::{RtpError, RtpPacketInfo, RtpSender, write_rtp};

/// A sequence number this far ahead of the newest is a restart, not loss (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;

/// Maps one incoming stream onto an outgoing [`RtpSender`]; one per direction of a relayed
/// call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayStream {
    /// The incoming SSRC the offsets were taken for.
    source: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    /// Sequence number and timestamp of the newest incoming packet.
    newest: (u16, u32),
    /// A packet older than the newest by more than this (RTP clock units) is no late
    /// arrival any jitter buffer would still play: the sender jumped back.
    late_limit: u32,
    /// After a jump, the sequence number that confirms it as the sender's new numbering
    /// (RFC 3550 A.1 probation: one odd packet is dropped, two in a row are a restart).
    probation: Option<u16>,
    /// The next packet starts a new stretch on our stream: mark it (RFC 3551 §4.1), so the
    /// far end's jitter buffer may resynchronise there instead of counting a jump as jitter.
    mark_next: bool,
}

impl RelayStream {
    /// A relay that has forwarded nothing yet, for a codec with this RTP clock rate.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            source: None,
            seq_offset: 0,
            ts_offset: 0,
            newest: (0, 0),
            // A quarter of a second: longer than phones' jitter buffers wait.
            late_limit: clock_rate / 4,
            probation: None,
            mark_next: false,
        }
    }

    /// Whether `packet` starts a new numbering of the same or a new source; `None` if it is
    /// an odd packet to drop.
    fn restarts(&mut self, packet: &RtpPacketInfo<'_>) -> Option<bool> {
        if self.source != Some(packet.ssrc) {
            return Some(true);
        }
        let (newest_seq, newest_ts) = self.newest;
        let ahead = packet.sequence.wrapping_sub(newest_seq);
        let in_order = ahead != 0 && ahead < MAX_DROPOUT;
        let behind_ts = newest_ts.wrapping_sub(packet.timestamp);
        let late_or_repeated = ahead >= 0x8000 || ahead == 0;
        if in_order || (late_or_repeated && behind_ts <= self.late_limit) {
            self.probation = None;
            return Some(false);
        }
        if self.probation == Some(packet.sequence) {
            self.probation = None;
            return Some(true);
        }
        self.probation = Some(packet.sequence.wrapping_add(1));
        None
    }

    /// Writes `packet` into `out` as the next packet of `sender`'s stream with
    /// `payload_type`; returns its length, or `None` when the packet is not passed on.
    /// `frame_ticks` is one frame in RTP clock units: where our own timeline would go on if
    /// the relay stopped after this packet.
    ///
    /// A new incoming SSRC (or the first packet) is anchored right after the last packet we
    /// sent, and so is a source that renumbers its packets (SIPp replaying recorded key
    /// presses does); after that, sequence numbers and timestamps move exactly as the
    /// incoming ones do.
    pub fn forward(
        &mut self,
        packet: &RtpPacketInfo<'_>,
        payload_type: u8,
        frame_ticks: u32,
        sender: &mut RtpSender,
        out: &mut [u8],
    ) -> Result<Option<usize>, RtpError> {
        let Some(restart) = self.restarts(packet) else {
            return Ok(None);
        };
        if restart {
            self.source = Some(packet.ssrc);
            self.newest = (packet.sequence, packet.timestamp);
            self.seq_offset = sender.seq.wrapping_sub(packet.sequence);
            self.ts_offset = sender.ts.wrapping_sub(packet.timestamp);
            self.mark_next = true;
        } else if packet.sequence.wrapping_sub(self.newest.0) < 0x8000 {
            self.newest = (packet.sequence, packet.timestamp);
        }
        let seq = packet.sequence.wrapping_add(self.seq_offset);
        let ts = packet.timestamp.wrapping_add(self.ts_offset);
        let marker = packet.marker || self.mark_next;
        let len = write_rtp(
            out,
            payload_type,
            marker,
            seq,
            ts,
            sender.ssrc,
            packet.payload,
        )?;
        self.mark_next = false;
        // Only a newer packet moves our timeline on: a late, reordered one or an RFC 4733
        // event (which carries the timestamp of its key press's start) must not pull it back.
        if seq.wrapping_sub(sender.seq) < 0x8000 {
            sender.seq = seq.wrapping_add(1);
        }
        if (ts.wrapping_sub(sender.last_ts) as i32) > 0 {
            sender.last_ts = ts;
            sender.ts = ts.wrapping_add(frame_ticks);
        }
        sender.packets_sent = sender.packets_sent.wrapping_add(1);
        sender.octets_sent = sender.octets_sent.wrapping_add(packet.payload.len() as u32);
        Ok(Some(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::parse_rtp;

    const OUR_SSRC: u32 = 0x1111_2222;

    fn incoming(ssrc: u32, seq: u16, ts: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 12 + payload.len()];
        let n = write_rtp(&mut buf, pt, false, seq, ts, ssrc, payload).expect("fits");
        buf.truncate(n);
        buf
    }

    fn relay(
        stream: &mut RelayStream,
        sender: &mut RtpSender,
        datagram: &[u8],
        pt: u8,
    ) -> (u16, u32, u32, bool, u8, Vec<u8>) {
        let packet = parse_rtp(datagram).expect("valid input");
        let mut out = [0u8; 1500];
        let n = stream
            .forward(&packet, pt, 160, sender, &mut out)
            .expect("fits")
            .expect("forwarded");
        let sent = parse_rtp(&out[..n]).expect("valid output");
        (
            sent.sequence,
            sent.timestamp,
            sent.ssrc,
            sent.marker,
            sent.payload_type,
            sent.payload.to_vec(),
        )
    }

    /// Relays one PCMU frame from `ssrc` numbered `seq`/`ts` as payload type 0; returns the
    /// sent packet's sequence number, timestamp and marker.
    fn audio(
        stream: &mut RelayStream,
        sender: &mut RtpSender,
        (ssrc, seq, ts): (u32, u16, u32),
    ) -> (u16, u32, bool) {
        let (seq, ts, _, marker, ..) =
            relay(stream, sender, &incoming(ssrc, seq, ts, 0, &[0; 160]), 0);
        (seq, ts, marker)
    }

    #[test]
    fn relayed_packets_continue_our_stream_under_our_ssrc_and_payload_type() {
        let mut sender = RtpSender::new(OUR_SSRC, 100, 1000);
        let mut stream = RelayStream::new(8000);
        let first = relay(
            &mut stream,
            &mut sender,
            &incoming(7, 5000, 90_000, 0, &[1; 160]),
            8,
        );
        assert_eq!(first, (100, 1000, OUR_SSRC, true, 8, vec![1; 160]));
        let second = relay(
            &mut stream,
            &mut sender,
            &incoming(7, 5001, 90_160, 0, &[2; 160]),
            8,
        );
        assert_eq!(second, (101, 1160, OUR_SSRC, false, 8, vec![2; 160]));
        assert_eq!((sender.seq, sender.ts, sender.last_ts), (102, 1320, 1160));
        assert_eq!((sender.packets_sent, sender.octets_sent), (2, 320));
    }

    #[test]
    fn a_gap_upstream_stays_a_gap_downstream() {
        let mut sender = RtpSender::new(OUR_SSRC, 65_535, 0);
        let mut stream = RelayStream::new(8000);
        audio(&mut stream, &mut sender, (7, 10, 0));
        // Packets 11 and 12 were lost: the far end must see 2 missing, across the wrap.
        let (seq, ts, ..) = audio(&mut stream, &mut sender, (7, 13, 480));
        assert_eq!((seq, ts), (2, 480));
        // 11 arrives late: forwarded in its place, but our timeline stays where it was.
        let (seq, ts, ..) = audio(&mut stream, &mut sender, (7, 11, 160));
        assert_eq!((seq, ts), (0, 160));
        assert_eq!((sender.seq, sender.ts), (3, 640));
    }

    #[test]
    fn a_restarted_source_is_anchored_after_our_last_packet_and_marked() {
        let mut sender = RtpSender::new(OUR_SSRC, 0, 0);
        let mut stream = RelayStream::new(8000);
        audio(&mut stream, &mut sender, (7, 300, 3000));
        audio(&mut stream, &mut sender, (7, 301, 3160));
        let (seq, ts, ssrc, marker, ..) = relay(
            &mut stream,
            &mut sender,
            &incoming(9, 40_000, 123_456, 0, &[0; 160]),
            0,
        );
        assert_eq!((seq, ts, ssrc, marker), (2, 320, OUR_SSRC, true));
    }

    #[test]
    fn key_press_events_keep_their_start_time_and_do_not_pull_the_timeline_back() {
        let mut sender = RtpSender::new(OUR_SSRC, 0, 0);
        let mut stream = RelayStream::new(8000);
        audio(&mut stream, &mut sender, (7, 1, 8000));
        audio(&mut stream, &mut sender, (7, 2, 8160));
        // An RFC 4733 event that began at 8160, sent again in later packets.
        let (seq_a, ts_a, ..) = relay(
            &mut stream,
            &mut sender,
            &incoming(7, 3, 8160, 101, &[5, 0, 0, 160]),
            96,
        );
        let (seq_b, ts_b, ..) = relay(
            &mut stream,
            &mut sender,
            &incoming(7, 4, 8160, 101, &[5, 0, 1, 64]),
            96,
        );
        assert_eq!((seq_a, ts_a, seq_b, ts_b), (2, 160, 3, 160));
        assert_eq!((sender.seq, sender.ts), (4, 320));
    }

    #[test]
    fn extensions_and_contributing_sources_are_not_forwarded() {
        // V=2, X=1, CC=1, PT 0; seq 1, ts 160, SSRC 7, CSRC 9, a one-byte extension block.
        let mut datagram = vec![0x91, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7, 0, 0, 0, 9];
        datagram.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0x7F, 0, 0]);
        datagram.extend_from_slice(&[0xAB; 160]);
        let mut sender = RtpSender::new(OUR_SSRC, 0, 0);
        let mut stream = RelayStream::new(8000);
        let packet = parse_rtp(&datagram).expect("valid input");
        let mut out = [0u8; 1500];
        let n = stream
            .forward(&packet, 0, 160, &mut sender, &mut out)
            .expect("fits")
            .expect("forwarded");
        assert_eq!(n, 12 + 160);
        assert_eq!(out[0], 0x80);
        assert_eq!(&out[12..n], &[0xAB; 160][..]);
    }

    #[test]
    fn a_source_that_jumps_back_is_followed_once_two_packets_agree() {
        let mut sender = RtpSender::new(OUR_SSRC, 0, 0);
        let mut stream = RelayStream::new(8000);
        audio(&mut stream, &mut sender, (7, 500, 80_000));
        audio(&mut stream, &mut sender, (7, 501, 80_160));
        // A recording replayed: 41 packets and 760 ms back, under the same SSRC.
        let mut out = [0u8; 1500];
        let jump = incoming(7, 460, 74_080, 101, &[3, 0, 0, 160]);
        let packet = parse_rtp(&jump).expect("valid");
        assert_eq!(
            stream.forward(&packet, 96, 160, &mut sender, &mut out),
            Ok(None)
        );
        let (seq, ts, _, marker, ..) = relay(
            &mut stream,
            &mut sender,
            &incoming(7, 461, 74_080, 101, &[3, 0, 0, 160]),
            96,
        );
        assert_eq!((seq, ts, marker), (2, 320, true));
        let (seq, ..) = relay(
            &mut stream,
            &mut sender,
            &incoming(7, 462, 74_080, 101, &[3, 0, 1, 64]),
            96,
        );
        assert_eq!(seq, 3);
    }

    #[test]
    fn a_lone_stray_packet_is_dropped_and_the_stream_goes_on() {
        let mut sender = RtpSender::new(OUR_SSRC, 0, 0);
        let mut stream = RelayStream::new(8000);
        audio(&mut stream, &mut sender, (7, 500, 80_000));
        let mut out = [0u8; 1500];
        let stray = incoming(7, 20_000, 9, 0, &[0; 160]);
        let packet = parse_rtp(&stray).expect("valid");
        assert_eq!(
            stream.forward(&packet, 0, 160, &mut sender, &mut out),
            Ok(None)
        );
        let (seq, ts, marker) = audio(&mut stream, &mut sender, (7, 501, 80_160));
        assert_eq!((seq, ts, marker), (1, 160, false));
    }
}
