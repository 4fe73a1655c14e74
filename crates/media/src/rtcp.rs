//! RTCP for one call leg (RFC 3550 §6, RFC 3551 profile): when to send a report, what goes in
//! it, and what the peer's reports say about the call.
//!
//! [`RtcpSession`] is sans-IO: received RTP headers and RTCP datagrams come in with the time,
//! compound packets (SR or RR, then SDES CNAME, then BYE on hang-up) are written into a buffer
//! the caller owns. It keeps our receive statistics of the peer's stream (RFC 3550 A.1, A.3,
//! A.8 via [`RtpStats`]) and the peer's view of ours (loss, jitter, round-trip time from
//! LSR/DLSR). Nothing here allocates after construction.

use std::time::{Duration, Instant};

use crate::rtp::{
    ReportBlock, RtpError, RtpSender, RtpStats, SenderInfo, build_bye, build_receiver_report,
    build_sdes_cname, build_sender_report, parse_rtcp_report,
};

/// RFC 3550 §6.2: the minimum interval between reports.
pub const MIN_REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// RFC 3550 §6.2: RTCP takes 5 % of the session bandwidth.
const RTCP_BANDWIDTH_FRACTION: f64 = 0.05;
/// RFC 3550 §6.3.1: e − 3/2, compensating the timer reconsideration's bias (A.7).
const COMPENSATION: f64 = std::f64::consts::E - 1.5;
/// Longest CNAME kept (the SDES item length is one byte).
const MAX_CNAME: usize = 255;
/// IPv4 + UDP header bytes, counted in the average RTCP size (RFC 3550 §6.2).
const UDP_IP_OVERHEAD: f64 = 28.0;

/// The peer's reports about our stream, and our statistics of theirs, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LegQuality {
    /// RTP packets we received from the peer.
    pub packets_received: u32,
    /// Packets the peer's sequence numbers say it sent us.
    pub packets_expected: u32,
    /// Packets of the peer's stream lost on the way to us (RFC 3550 A.3; negative with
    /// duplicates).
    pub packets_lost: i64,
    /// Interarrival jitter of the peer's stream as we measure it (RFC 3550 A.8).
    pub jitter: Duration,
    /// RTP packets we sent.
    pub packets_sent: u32,
    /// From the peer's latest report on our stream: fraction lost in its last interval.
    pub peer_fraction_lost: Option<f64>,
    /// From the peer's latest report on our stream: cumulative packets lost.
    pub peer_packets_lost: Option<i64>,
    /// From the peer's latest report on our stream: interarrival jitter.
    pub peer_jitter: Option<Duration>,
    /// Round-trip time from the peer's latest report answering one of our SRs.
    pub round_trip: Option<Duration>,
    /// Compound RTCP packets we sent.
    pub reports_sent: u32,
    /// RTCP reports received from the peer.
    pub reports_received: u32,
}

impl LegQuality {
    /// Share of the peer's packets that never reached us, 0.0..=1.0.
    pub fn loss_ratio(&self) -> f64 {
        if self.packets_expected == 0 || self.packets_lost <= 0 {
            0.0
        } else {
            (self.packets_lost as f64 / f64::from(self.packets_expected)).min(1.0)
        }
    }
}

/// What a received RTCP packet told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpReceived {
    /// The peer announced it leaves the session (RFC 3550 §6.6).
    pub bye: bool,
}

/// RTCP state of one call leg: one local source, one remote source.
#[derive(Debug, Clone)]
pub struct RtcpSession {
    ssrc: u32,
    cname: [u8; MAX_CNAME],
    cname_len: usize,
    clock_rate: u32,
    /// RTCP bandwidth in bytes per second (5 % of the session's).
    rtcp_bandwidth: f64,
    received: RtpStats,
    peer_ssrc: Option<u32>,
    peer_sent_since_report: bool,
    next_report: Instant,
    initial: bool,
    /// Average compound size in bytes including UDP/IP (RFC 3550 §6.3.3).
    avg_rtcp_size: f64,
    packets_sent_at_report: u32,
    rng: u64,
    quality: LegQuality,
}

impl RtcpSession {
    /// RTCP for a leg that sends as `ssrc`, named `cname`, on a codec whose RTP clock runs at
    /// `clock_rate`; `session_bandwidth` is the RTP session's bandwidth in bits per second
    /// (RFC 3550 §6.2), `seed` randomises the report intervals. The first report is due half
    /// the minimum interval after `now` (RFC 3550 §6.2).
    pub fn new(
        ssrc: u32,
        cname: &str,
        clock_rate: u32,
        session_bandwidth: u32,
        seed: u64,
        now: Instant,
    ) -> Self {
        let mut name = [0u8; MAX_CNAME];
        let len = cname.len().min(MAX_CNAME);
        name[..len].copy_from_slice(&cname.as_bytes()[..len]);
        let mut session = Self {
            ssrc,
            cname: name,
            cname_len: len,
            clock_rate: clock_rate.max(1),
            rtcp_bandwidth: f64::from(session_bandwidth.max(1)) / 8.0 * RTCP_BANDWIDTH_FRACTION,
            received: RtpStats::new(clock_rate),
            peer_ssrc: None,
            peer_sent_since_report: false,
            next_report: now,
            initial: true,
            // A first guess: SR with one block + SDES, plus UDP/IP.
            avg_rtcp_size: 52.0 + 8.0 + 24.0 + UDP_IP_OVERHEAD,
            packets_sent_at_report: 0,
            rng: seed | 1,
            quality: LegQuality::default(),
        };
        session.next_report = now + session.interval(false);
        session
    }

    /// Notes an RTP packet from the peer. A new SSRC (the phone restarted its stream) starts
    /// fresh statistics.
    pub fn on_rtp(&mut self, ssrc: u32, sequence: u16, timestamp: u32, arrival: Instant) {
        if self.peer_ssrc != Some(ssrc) {
            if self.peer_ssrc.is_some() {
                self.received = RtpStats::new(self.clock_rate);
            }
            self.peer_ssrc = Some(ssrc);
        }
        self.received.on_packet(sequence, timestamp, arrival);
        self.peer_sent_since_report = true;
    }

    /// Takes an RTCP compound packet from the peer; `now_ntp` is the wall clock as an NTP
    /// timestamp, for the round-trip time.
    pub fn on_rtcp(
        &mut self,
        packet: &[u8],
        now: Instant,
        now_ntp: u64,
    ) -> Result<RtcpReceived, RtpError> {
        let report = parse_rtcp_report(packet)?;
        self.quality.reports_received = self.quality.reports_received.wrapping_add(1);
        self.avg_rtcp_size += ((packet.len() as f64 + UDP_IP_OVERHEAD) - self.avg_rtcp_size) / 16.0;
        if let Some(info) = report.sender_info
            && self.peer_ssrc.is_none_or(|ssrc| ssrc == report.ssrc)
        {
            self.received.on_sender_report(info.ntp_timestamp, now);
        }
        if let Some(block) = report.block_for(self.ssrc) {
            self.quality.peer_fraction_lost = Some(block.loss_ratio());
            self.quality.peer_packets_lost = Some(i64::from(block.cumulative_lost));
            self.quality.peer_jitter = Some(Duration::from_secs_f64(
                f64::from(block.jitter) / f64::from(self.clock_rate),
            ));
            if let Some(rtt) = block.round_trip_time(now_ntp) {
                self.quality.round_trip = Some(rtt);
            }
        }
        Ok(RtcpReceived { bye: report.bye })
    }

    /// When the next report is due.
    pub fn next_report(&self) -> Instant {
        self.next_report
    }

    /// Writes the scheduled report into `out` when it is due (SR if we sent RTP since the
    /// last one, else RR; then SDES CNAME) and schedules the next; `None` when not yet due.
    pub fn poll_report(
        &mut self,
        now: Instant,
        now_ntp: u64,
        sender: &RtpSender,
        out: &mut [u8],
    ) -> Option<Result<usize, RtpError>> {
        if now < self.next_report {
            return None;
        }
        let we_sent = sender.packets_sent != self.packets_sent_at_report;
        let written = self.write_compound(now, now_ntp, sender, out);
        if let Ok(len) = written {
            self.avg_rtcp_size += ((len as f64 + UDP_IP_OVERHEAD) - self.avg_rtcp_size) / 16.0;
        }
        self.initial = false;
        self.next_report = now + self.interval(we_sent);
        Some(written)
    }

    /// Writes the last compound of the leg: a report, SDES CNAME and BYE (RFC 3550 §6.6).
    pub fn write_bye(
        &mut self,
        now: Instant,
        now_ntp: u64,
        sender: &RtpSender,
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        let len = self.write_compound(now, now_ntp, sender, out)?;
        let rest = out.get_mut(len..).unwrap_or_default();
        Ok(len + build_bye(rest, self.ssrc)?)
    }

    /// Where the leg's quality stands now (`sender` gives our own packet count).
    pub fn quality(&self, sender: &RtpSender) -> LegQuality {
        LegQuality {
            packets_received: self.received.received(),
            packets_expected: self.received.expected(),
            packets_lost: self.received.cumulative_lost(),
            jitter: self.received.jitter_duration(),
            packets_sent: sender.packets_sent,
            ..self.quality
        }
    }

    fn write_compound(
        &mut self,
        now: Instant,
        now_ntp: u64,
        sender: &RtpSender,
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        // A report block only about a source heard since the last report (RFC 3550 §6.4).
        let block: Option<ReportBlock> = match (self.peer_ssrc, self.peer_sent_since_report) {
            (Some(ssrc), true) => Some(self.received.report_block(ssrc, now)),
            _ => None,
        };
        let blocks = block.as_slice();
        let we_sent = sender.packets_sent != self.packets_sent_at_report;
        let len = if we_sent {
            let info = SenderInfo {
                ntp_timestamp: now_ntp,
                // The timestamp the next frame will carry: within one frame of "now", which
                // is as close as lip-sync on a telephone needs (RFC 3550 §6.4.1).
                rtp_timestamp: sender.ts,
                packet_count: sender.packets_sent,
                octet_count: sender.octets_sent,
            };
            build_sender_report(out, self.ssrc, &info, blocks)?
        } else {
            build_receiver_report(out, self.ssrc, blocks)?
        };
        let rest = out.get_mut(len..).unwrap_or_default();
        let cname = std::str::from_utf8(&self.cname[..self.cname_len]).unwrap_or("amtsleitung");
        let len = len + build_sdes_cname(rest, self.ssrc, cname)?;
        self.packets_sent_at_report = sender.packets_sent;
        self.peer_sent_since_report = false;
        self.quality.reports_sent = self.quality.reports_sent.wrapping_add(1);
        Ok(len)
    }

    /// The randomised report interval (RFC 3550 §6.3.1 and A.7) for a session of two
    /// members, us and the peer.
    fn interval(&mut self, we_sent: bool) -> Duration {
        let members = 2.0;
        let senders =
            f64::from(u8::from(we_sent)) + f64::from(u8::from(self.peer_sent_since_report));
        // Senders get a quarter of the RTCP bandwidth when they are at most a quarter of the
        // members; with two members that only happens when nobody sends.
        let (bandwidth, n) = if senders > 0.0 && senders <= members * 0.25 {
            if we_sent {
                (self.rtcp_bandwidth * 0.25, senders)
            } else {
                (self.rtcp_bandwidth * 0.75, members - senders)
            }
        } else {
            (self.rtcp_bandwidth, members)
        };
        let minimum = if self.initial {
            MIN_REPORT_INTERVAL / 2
        } else {
            MIN_REPORT_INTERVAL
        };
        let deterministic = (n * self.avg_rtcp_size / bandwidth).max(minimum.as_secs_f64());
        let factor = 0.5 + self.next_random();
        Duration::from_secs_f64(deterministic * factor / COMPENSATION)
    }

    /// Uniform in 0.0..1.0 (xorshift64*: the interval only needs to be unsynchronised, not
    /// unpredictable).
    fn next_random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{RTCP_BYE, RTCP_RR, RTCP_SDES, RTCP_SR, ntp_timestamp};

    const NTP_BASE: Duration = Duration::from_secs(1_800_000_000);

    fn ntp(at: Duration) -> u64 {
        ntp_timestamp(NTP_BASE + at)
    }

    /// Packet types in a compound, in order.
    fn packet_types(mut buf: &[u8]) -> Vec<u8> {
        let mut types = Vec::new();
        while buf.len() >= 4 {
            types.push(buf[1]);
            let len = (usize::from(u16::from_be_bytes([buf[2], buf[3]])) + 1) * 4;
            buf = &buf[len.min(buf.len())..];
        }
        types
    }

    /// Sends `frames` 20 ms PCMU frames from `sender`.
    fn send_frames(sender: &mut RtpSender, frames: u32) {
        let mut buf = [0u8; 200];
        for _ in 0..frames {
            sender.write(&mut buf, 0, false, &[0xFF; 160], 160).unwrap();
        }
    }

    #[test]
    fn report_intervals_are_randomised_around_the_five_second_minimum() {
        let start = Instant::now();
        let mut rtcp = RtcpSession::new(1, "a@b", 8000, 80_000, 42, start);
        let first = rtcp.next_report() - start;
        // Initial: 2.5 s × [0.5, 1.5] / (e − 1.5).
        assert!(
            first >= Duration::from_secs_f64(1.25 / COMPENSATION)
                && first <= Duration::from_secs_f64(3.75 / COMPENSATION),
            "{first:?}"
        );
        let sender = RtpSender::new(1, 0, 0);
        let mut out = [0u8; 256];
        let mut now = rtcp.next_report();
        let mut intervals = Vec::new();
        for _ in 0..200 {
            rtcp.poll_report(now, ntp(now - start), &sender, &mut out)
                .unwrap()
                .unwrap();
            let next = rtcp.next_report();
            intervals.push((next - now).as_secs_f64());
            now = next;
        }
        let (lo, hi) = (2.5 / COMPENSATION, 7.5 / COMPENSATION);
        assert!(
            intervals.iter().all(|i| (lo..=hi).contains(i)),
            "{intervals:?}"
        );
        let mean = intervals.iter().sum::<f64>() / intervals.len() as f64;
        // Mean 5 s / (e − 1.5) ≈ 4.1 s; spread over most of the range, not a fixed period.
        assert!((3.7..4.5).contains(&mean), "mean {mean}");
        let spread = intervals.iter().cloned().fold(f64::MIN, f64::max)
            - intervals.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 3.0, "spread {spread}");
    }

    #[test]
    fn a_low_bandwidth_session_reports_less_often_than_the_minimum() {
        // 1 kbit/s leaves 6.25 B/s of RTCP; two members' compounds of ~52 B (with UDP/IP)
        // need about 17 s: the 5 % rule, not the 5 s minimum, sets the pace.
        let start = Instant::now();
        let mut rtcp = RtcpSession::new(1, "a@b", 8000, 1_000, 7, start);
        let sender = RtpSender::new(1, 0, 0);
        let mut out = [0u8; 256];
        let mut now = rtcp.next_report();
        let mut total = Duration::ZERO;
        for _ in 0..100 {
            rtcp.poll_report(now, ntp(now - start), &sender, &mut out);
            total += rtcp.next_report() - now;
            now = rtcp.next_report();
        }
        let mean = total.as_secs_f64() / 100.0;
        assert!(mean > 10.0, "mean interval {mean} s");
    }

    #[test]
    fn nothing_is_written_before_the_report_is_due() {
        let start = Instant::now();
        let mut rtcp = RtcpSession::new(1, "a@b", 8000, 80_000, 3, start);
        let sender = RtpSender::new(1, 0, 0);
        let mut out = [0u8; 256];
        assert!(
            rtcp.poll_report(start, ntp(Duration::ZERO), &sender, &mut out)
                .is_none()
        );
        let due = rtcp.next_report();
        assert!(
            rtcp.poll_report(due, ntp(due - start), &sender, &mut out)
                .is_some()
        );
        assert!(
            rtcp.poll_report(due, ntp(due - start), &sender, &mut out)
                .is_none()
        );
    }

    #[test]
    fn a_sending_leg_writes_sr_with_its_counts_and_a_block_about_the_peer() {
        let start = Instant::now();
        let mut rtcp = RtcpSession::new(0xAAAA, "amtsleitung@10.0.0.1", 8000, 80_000, 9, start);
        let mut sender = RtpSender::new(0xAAAA, 100, 5000);
        send_frames(&mut sender, 250);
        // The peer sent 250 packets of which 25 (every tenth) were lost.
        for i in 0..250u16 {
            if i % 10 != 3 {
                let at = start + Duration::from_millis(20 * u64::from(i));
                rtcp.on_rtp(0xBBBB, 1000 + i, 160 * u32::from(i), at);
            }
        }
        let now = rtcp.next_report();
        let mut out = [0u8; 256];
        let len = rtcp
            .poll_report(now, ntp(now - start), &sender, &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(packet_types(&out[..len]), [RTCP_SR, RTCP_SDES]);
        let report = parse_rtcp_report(&out[..len]).unwrap();
        assert_eq!(report.ssrc, 0xAAAA);
        let info = report.sender_info.unwrap();
        assert_eq!((info.packet_count, info.octet_count), (250, 250 * 160));
        let block = report.block_for(0xBBBB).unwrap();
        assert_eq!(block.cumulative_lost, 25);
        assert_eq!(block.extended_highest_seq, 1249);
        // 25 of 250 is 25.6/256.
        assert_eq!(block.fraction_lost, 25);
        // The CNAME is in the SDES.
        let text = String::from_utf8_lossy(&out[..len]);
        assert!(text.contains("amtsleitung@10.0.0.1"));
        let quality = rtcp.quality(&sender);
        assert_eq!(quality.packets_lost, 25);
        assert!((quality.loss_ratio() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn a_silent_leg_writes_rr_and_no_block_for_a_peer_it_did_not_hear() {
        let start = Instant::now();
        let mut rtcp = RtcpSession::new(1, "x", 8000, 80_000, 11, start);
        let sender = RtpSender::new(1, 0, 0);
        let now = rtcp.next_report();
        let mut out = [0u8; 256];
        let len = rtcp
            .poll_report(now, ntp(now - start), &sender, &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(packet_types(&out[..len]), [RTCP_RR, RTCP_SDES]);
        assert_eq!(parse_rtcp_report(&out[..len]).unwrap().blocks().count(), 0);
    }

    #[test]
    fn the_peers_receiver_report_gives_loss_jitter_and_round_trip_time() {
        let start = Instant::now();
        let mut ours = RtcpSession::new(0xAAAA, "us", 8000, 80_000, 5, start);
        let mut theirs = RtcpSession::new(0xBBBB, "them", 8000, 80_000, 6, start);
        let mut sender = RtpSender::new(0xAAAA, 0, 0);
        let silent_peer = RtpSender::new(0xBBBB, 0, 0);
        send_frames(&mut sender, 100);
        for i in 0..100u16 {
            if i % 5 != 2 {
                theirs.on_rtp(
                    0xAAAA,
                    i,
                    160 * u32::from(i),
                    start + Duration::from_millis(20 * u64::from(i)),
                );
            }
        }
        // Our SR leaves at t = 2 s and takes 30 ms to the peer.
        let t_sr = Duration::from_secs(2);
        let mut out = [0u8; 256];
        let len = ours
            .write_compound(start + t_sr, ntp(t_sr), &sender, &mut out)
            .unwrap();
        let t_arrive = t_sr + Duration::from_millis(30);
        theirs
            .on_rtcp(&out[..len], start + t_arrive, ntp(t_arrive))
            .unwrap();
        // The peer answers 200 ms later; the RR takes 30 ms back.
        let t_rr = t_arrive + Duration::from_millis(200);
        let len = theirs
            .write_compound(start + t_rr, ntp(t_rr), &silent_peer, &mut out)
            .unwrap();
        let t_back = t_rr + Duration::from_millis(30);
        let got = ours
            .on_rtcp(&out[..len], start + t_back, ntp(t_back))
            .unwrap();
        assert!(!got.bye);
        let quality = ours.quality(&sender);
        assert_eq!(quality.peer_packets_lost, Some(20));
        assert!((quality.peer_fraction_lost.unwrap() - 20.0 / 100.0).abs() < 0.01);
        let rtt = quality.round_trip.unwrap().as_secs_f64();
        assert!((rtt - 0.060).abs() < 0.001, "rtt {rtt}");
        assert_eq!(quality.reports_received, 1);
        assert_eq!(quality.reports_sent, 1);
    }

    #[test]
    fn the_last_compound_ends_with_bye() {
        let start = Instant::now();
        let mut rtcp = RtcpSession::new(7, "x", 8000, 80_000, 1, start);
        let mut sender = RtpSender::new(7, 0, 0);
        send_frames(&mut sender, 3);
        let mut out = [0u8; 256];
        let len = rtcp
            .write_bye(start, ntp(Duration::ZERO), &sender, &mut out)
            .unwrap();
        assert_eq!(packet_types(&out[..len]), [RTCP_SR, RTCP_SDES, RTCP_BYE]);
        assert!(parse_rtcp_report(&out[..len]).unwrap().bye);
    }

    #[test]
    fn a_new_peer_ssrc_starts_fresh_statistics() {
        let start = Instant::now();
        let mut rtcp = RtcpSession::new(1, "x", 8000, 80_000, 1, start);
        for i in 0..10u16 {
            rtcp.on_rtp(5, i * 2, 0, start);
        }
        let sender = RtpSender::new(1, 0, 0);
        assert_eq!(rtcp.quality(&sender).packets_lost, 9);
        rtcp.on_rtp(6, 500, 0, start);
        rtcp.on_rtp(6, 501, 160, start);
        let q = rtcp.quality(&sender);
        assert_eq!((q.packets_received, q.packets_lost), (2, 0));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let start = Instant::now();
        let mut rtcp = RtcpSession::new(1, "x", 8000, 80_000, 1, start);
        for bad in [
            &[][..],
            &[0x80],
            &[0x80, 200, 0, 50, 1, 2, 3, 4],
            &[0x40, 200, 0, 0],
        ] {
            assert!(rtcp.on_rtcp(bad, start, 0).is_err());
        }
        assert_eq!(rtcp.quality(&RtpSender::new(1, 0, 0)).reports_received, 0);
    }
}
