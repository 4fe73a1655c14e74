//! RTP (RFC 3550) packet parse/build, RTP/RTCP demultiplexing (RFC 5761 §4), outgoing
//! stamping, receive statistics (RFC 3550 Appendix A.1, A.3, A.8) and minimal RTCP sender and
//! receiver reports (RFC 3550 §6.4). Nothing here allocates.

use std::time::{Duration, Instant};

/// Fixed RTP header length (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// RTCP SR packet type (RFC 3550 §6.4.1).
pub const RTCP_SR: u8 = 200;
/// RTCP RR packet type (RFC 3550 §6.4.2).
pub const RTCP_RR: u8 = 201;
/// RTCP SDES packet type (RFC 3550 §6.5).
pub const RTCP_SDES: u8 = 202;
/// RTCP BYE packet type (RFC 3550 §6.6).
pub const RTCP_BYE: u8 = 203;
/// Length of one report block (RFC 3550 §6.4.1).
pub const REPORT_BLOCK_LEN: usize = 24;
/// Most report blocks one SR/RR can carry (5-bit count).
pub const MAX_REPORT_BLOCKS: usize = 31;

/// What is wrong with an RTP or RTCP packet, or with the buffer given to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// The packet ends before the header, CSRC list, extension or padding it announces.
    #[error("packet truncated: needs {expected} bytes, has {actual}")]
    Truncated {
        /// Bytes the header implies.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// Only RTP/RTCP version 2 exists.
    #[error("unsupported RTP version {0}")]
    UnsupportedVersion(u8),
    /// The padding count byte is zero or longer than the payload.
    #[error("invalid padding length {0}")]
    BadPadding(u8),
    /// The payload type does not fit in 7 bits.
    #[error("payload type {0} is out of range 0..=127")]
    BadPayloadType(u8),
    /// The output buffer is too small for the packet.
    #[error("output buffer holds {got} bytes, packet needs {needed}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// The RTCP packet (or compound) does not start with an SR or RR (RFC 3550 §6.1).
    #[error("RTCP packet type {0} is not a sender or receiver report")]
    NotAReport(u8),
    /// An RTCP length field points past the end of the datagram.
    #[error("RTCP length field {words} words exceeds the {actual} bytes present")]
    BadRtcpLength {
        /// The length field (32-bit words minus one).
        words: u16,
        /// Bytes present.
        actual: usize,
    },
    /// More report blocks than an SR/RR can carry.
    #[error("{0} report blocks exceed the maximum of 31")]
    TooManyBlocks(usize),
    /// A one-byte header extension element id must be 1..=14 (RFC 8285 §4.2).
    #[error("header extension id {0} is not 1..=14")]
    BadExtensionId(u8),
    /// Only a plain packet (no CSRCs, no extension yet) can take an extension here.
    #[error("packet already carries CSRCs or a header extension")]
    NotPlain,
}

impl From<rtp_types::RtpParseError> for RtpError {
    fn from(e: rtp_types::RtpParseError) -> Self {
        match e {
            rtp_types::RtpParseError::UnsupportedVersion(v) => RtpError::UnsupportedVersion(v),
            rtp_types::RtpParseError::Truncated { expected, actual } => {
                RtpError::Truncated { expected, actual }
            }
            rtp_types::RtpParseError::PaddingInvalid(p) => RtpError::BadPadding(p),
        }
    }
}

/// The fields of a received RTP packet the media path needs, borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacketInfo<'a> {
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Marker bit (start of a talk spurt for audio, RFC 3551 §4.1).
    pub marker: bool,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Number of CSRC entries skipped.
    pub csrc_count: u8,
    /// Payload without header, CSRCs, extension and padding.
    pub payload: &'a [u8],
    /// Header extension, present when the X bit is set (RFC 3550 §5.3.1).
    pub extension: Option<RtpExtension<'a>>,
}

/// A header extension block (RFC 3550 §5.3.1), borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpExtension<'a> {
    /// The 16 "defined by profile" bits: 0xBEDE or 0x100X for RFC 8285 elements.
    pub profile: u16,
    /// The extension body after its 4-byte header (a multiple of 4 bytes).
    pub data: &'a [u8],
}

/// "Defined by profile" value of the RFC 8285 §4.2 one-byte header form.
pub const ONE_BYTE_EXTENSION_PROFILE: u16 = 0xBEDE;
/// Top 12 bits of the RFC 8285 §4.3 two-byte header form's profile value (`0x100X`).
const TWO_BYTE_EXTENSION_PROFILE: u16 = 0x1000;

/// The body of element `id` in an RFC 8285 header extension; `None` if absent, malformed
/// before it, or the extension is not in the one- or two-byte form.
pub fn find_extension_element<'a>(ext: &RtpExtension<'a>, id: u8) -> Option<&'a [u8]> {
    if ext.profile == ONE_BYTE_EXTENSION_PROFILE {
        find_one_byte_element(ext.data, id)
    } else if ext.profile & 0xFFF0 == TWO_BYTE_EXTENSION_PROFILE {
        find_two_byte_element(ext.data, id)
    } else {
        None
    }
}

/// RFC 8285 §4.2: 4-bit ID and 4-bit length-minus-one; ID 0 is a padding byte, ID 15 ends
/// parsing. IDs 0 and 15 name no element.
fn find_one_byte_element(data: &[u8], id: u8) -> Option<&[u8]> {
    if id == 0 || id >= 15 {
        return None;
    }
    let mut rest = data;
    while let [header, tail @ ..] = rest {
        let element_id = header >> 4;
        match element_id {
            0 => {
                rest = tail;
                continue;
            }
            15 => return None,
            _ => {}
        }
        let len = usize::from(header & 0x0F) + 1;
        let body = tail.get(..len)?;
        if element_id == id {
            return Some(body);
        }
        rest = tail.get(len..)?;
    }
    None
}

/// RFC 8285 §4.3: 8-bit ID and 8-bit length (0 allowed); a zero byte is padding.
fn find_two_byte_element(data: &[u8], id: u8) -> Option<&[u8]> {
    if id == 0 {
        return None;
    }
    let mut rest = data;
    while let [element_id, tail @ ..] = rest {
        if *element_id == 0 {
            rest = tail;
            continue;
        }
        let [len, tail @ ..] = tail else {
            return None;
        };
        let len = usize::from(*len);
        let body = tail.get(..len)?;
        if *element_id == id {
            return Some(body);
        }
        rest = tail.get(len..)?;
    }
    None
}

/// Client-to-mixer audio level of one packet (RFC 6464 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevel {
    /// The sender's voice activity flag (the V bit).
    pub voice: bool,
    /// Level in -dBov, 0..=127; 127 is silence (or a muted source).
    pub dbov: u8,
}

/// Adds `level` under one-byte extension `id` (RFC 8285 §4.2: 0xBEDE, one word holding the
/// element and two bytes of padding) to the plain `len`-byte packet [`write_rtp`] wrote into
/// `out`, moving the payload up; returns the new length.
pub fn add_audio_level(
    out: &mut [u8],
    len: usize,
    id: u8,
    level: AudioLevel,
) -> Result<usize, RtpError> {
    const EXTENSION_LEN: usize = 8;
    if !(1..=14).contains(&id) {
        return Err(RtpError::BadExtensionId(id));
    }
    if len < RTP_HEADER_LEN {
        return Err(RtpError::Truncated {
            expected: RTP_HEADER_LEN,
            actual: len,
        });
    }
    let total = len + EXTENSION_LEN;
    let dst = room(out, total)?;
    // CSRC count or X bit set: the extension would have to go elsewhere.
    if dst[0] & 0x1F != 0 {
        return Err(RtpError::NotPlain);
    }
    dst.copy_within(RTP_HEADER_LEN..len, RTP_HEADER_LEN + EXTENSION_LEN);
    dst[0] |= 0x10;
    let [p0, p1] = ONE_BYTE_EXTENSION_PROFILE.to_be_bytes();
    // The element's length field holds length - 1: 0 for the one level byte.
    let element = [
        id << 4,
        u8::from(level.voice) << 7 | (level.dbov & 0x7F),
        0,
        0,
    ];
    dst[RTP_HEADER_LEN..RTP_HEADER_LEN + 4].copy_from_slice(&[p0, p1, 0, 1]);
    dst[RTP_HEADER_LEN + 4..RTP_HEADER_LEN + EXTENSION_LEN].copy_from_slice(&element);
    Ok(total)
}

/// The RFC 6464 audio level carried under extension `id` (as negotiated by `a=extmap`).
pub fn audio_level(info: &RtpPacketInfo<'_>, id: u8) -> Option<AudioLevel> {
    let element = find_extension_element(info.extension.as_ref()?, id)?;
    // RFC 6464 §3: the first byte carries V and level; a longer (two-byte form or padded)
    // element keeps its meaning in that byte.
    let &first = element.first()?;
    Some(AudioLevel {
        voice: first & 0x80 != 0,
        dbov: first & 0x7F,
    })
}

/// Parses an RTP packet (CSRC list, header extension and padding are handled).
pub fn parse_rtp(buf: &[u8]) -> Result<RtpPacketInfo<'_>, RtpError> {
    let pkt = rtp_types::RtpPacket::parse(buf)?;
    let start = pkt.payload_offset();
    let padding = pkt.padding().map_or(0, usize::from);
    // rtp-types checks padding against the header end; also require it to fit the payload.
    let end = buf
        .len()
        .checked_sub(padding)
        .filter(|&end| end >= start)
        .ok_or(RtpError::BadPadding(pkt.padding().unwrap_or(0)))?;
    Ok(RtpPacketInfo {
        payload_type: pkt.payload_type(),
        marker: pkt.marker_bit(),
        sequence: pkt.sequence_number(),
        timestamp: pkt.timestamp(),
        ssrc: pkt.ssrc(),
        csrc_count: pkt.n_csrcs(),
        payload: buf.get(start..end).unwrap_or_default(),
        extension: extension_at(buf, &pkt, start),
    })
}

/// The header extension of a parsed packet, borrowed from `buf` rather than from `pkt`
/// (whose accessor ties the slice to the parser value): it ends where the payload starts.
fn extension_at<'a>(
    buf: &'a [u8],
    pkt: &rtp_types::RtpPacket<'_>,
    payload_start: usize,
) -> Option<RtpExtension<'a>> {
    if !pkt.extension_bit() {
        return None;
    }
    let body_start = payload_start.checked_sub(pkt.extension_len())?;
    let header_start = body_start.checked_sub(4)?;
    let [p0, p1, ..] = *buf.get(header_start..)? else {
        return None;
    };
    Some(RtpExtension {
        profile: u16::from_be_bytes([p0, p1]),
        data: buf.get(body_start..payload_start)?,
    })
}

/// Writes a plain RTP packet (no CSRC, extension or padding) into `out`; returns its length.
pub fn write_rtp(
    out: &mut [u8],
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) -> Result<usize, RtpError> {
    if pt > 127 {
        return Err(RtpError::BadPayloadType(pt));
    }
    let len = RTP_HEADER_LEN + payload.len();
    let dst = room(out, len)?;
    dst[0] = 0x80;
    dst[1] = pt | if marker { 0x80 } else { 0 };
    dst[2..4].copy_from_slice(&seq.to_be_bytes());
    dst[4..8].copy_from_slice(&ts.to_be_bytes());
    dst[8..12].copy_from_slice(&ssrc.to_be_bytes());
    dst[RTP_HEADER_LEN..].copy_from_slice(payload);
    Ok(len)
}

/// True if a datagram on a muxed RTP/RTCP port is RTCP (RFC 5761 §4: second octet in
/// 192..=223, which RTP payload types 64..=95 with the marker set would collide with).
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf, [first, second, ..] if first >> 6 == 2 && (192..=223).contains(second))
}

/// Stamps outgoing frames of one RTP stream with sequence number and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpSender {
    /// Our SSRC.
    pub ssrc: u32,
    /// Sequence number of the next packet.
    pub seq: u16,
    /// RTP timestamp of the next frame.
    pub ts: u32,
    /// Packets sent (for SR, RFC 3550 §6.4.1).
    pub packets_sent: u32,
    /// Payload octets sent (for SR).
    pub octets_sent: u32,
    /// RTP timestamp of the last packet sent, for the SR's RTP time.
    pub last_ts: u32,
}

impl RtpSender {
    /// Creates a sender; the initial `seq` and `ts` should be random (RFC 3550 §5.1).
    pub fn new(ssrc: u32, seq: u16, ts: u32) -> Self {
        Self {
            ssrc,
            seq,
            ts,
            packets_sent: 0,
            octets_sent: 0,
            last_ts: ts,
        }
    }

    /// Writes the next packet carrying `payload` and advances the timestamp by `ticks`
    /// (the frame's duration in RTP clock units); returns the packet length.
    pub fn write(
        &mut self,
        out: &mut [u8],
        pt: u8,
        marker: bool,
        payload: &[u8],
        ticks: u32,
    ) -> Result<usize, RtpError> {
        let n = write_rtp(out, pt, marker, self.seq, self.ts, self.ssrc, payload)?;
        self.last_ts = self.ts;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(ticks);
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload.len() as u32);
        Ok(n)
    }

    /// Accounts a frame that was lost before we could send it (a forwarded talker's packet
    /// lost upstream): sequence number and timestamp advance as if it had been sent, so the
    /// receiver sees the loss and conceals it (or recovers it from the next packet's FEC).
    pub fn skip_lost(&mut self, ticks: u32) {
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(ticks);
    }

    /// Advances the timestamp for a frame not sent (silence suppression/DTX): the sequence
    /// number stays, so the receiver sees no loss (RFC 3551 §4.1).
    pub fn skip(&mut self, ticks: u32) {
        self.ts = self.ts.wrapping_add(ticks);
    }
}

/// RFC 3550 A.1: a jump larger than this is a restart, not loss.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: packets this far behind are reordered/duplicates, not a restart.
const MAX_MISORDER: u16 = 100;

/// Receive statistics of one source: extended sequence, loss and interarrival jitter.
#[derive(Debug, Clone)]
pub struct RtpStats {
    clock_rate: u32,
    started: bool,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    bad_seq: Option<u16>,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    first_arrival: Option<Instant>,
    last_transit: Option<i64>,
    /// Jitter in timestamp units (floating form of A.8's `jitter += (|D| - jitter)/16`).
    jitter: f64,
    last_sr: Option<(u32, Instant)>,
}

impl RtpStats {
    /// Statistics for a stream whose RTP clock runs at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            started: false,
            base_seq: 0,
            max_seq: 0,
            cycles: 0,
            bad_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            first_arrival: None,
            last_transit: None,
            jitter: 0.0,
            last_sr: None,
        }
    }

    fn init_seq(&mut self, seq: u16) {
        self.started = true;
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.cycles = 0;
        self.bad_seq = None;
        self.received = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
        self.last_transit = None;
    }

    /// Records a received packet. Returns false if it was taken for a stray packet of a
    /// restarting stream (a big sequence jump not yet confirmed, RFC 3550 A.1).
    pub fn on_packet(&mut self, seq: u16, rtp_ts: u32, arrival: Instant) -> bool {
        if !self.started {
            self.init_seq(seq);
        } else {
            let udelta = seq.wrapping_sub(self.max_seq);
            if udelta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            } else if udelta <= u16::MAX - MAX_MISORDER {
                // Two sequential packets after a big jump: the source restarted.
                if self.bad_seq == Some(seq) {
                    self.init_seq(seq);
                } else {
                    self.bad_seq = Some(seq.wrapping_add(1));
                    return false;
                }
            }
            // else: duplicate or reordered within MAX_MISORDER, counted but no max update.
        }
        self.received = self.received.wrapping_add(1);
        self.update_jitter(rtp_ts, arrival);
        true
    }

    fn update_jitter(&mut self, rtp_ts: u32, arrival: Instant) {
        let first = *self.first_arrival.get_or_insert(arrival);
        let elapsed = arrival.saturating_duration_since(first);
        let arrival_units =
            (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as i64;
        // Transit is only compared by differences, so a wrapped timestamp is unwrapped
        // relative to the previous one (A.8 does the same with 32-bit wrap-around).
        let transit = arrival_units - i64::from(rtp_ts);
        if let Some(last) = self.last_transit {
            let mut d = (transit - last) % (1 << 32);
            if d > i64::from(i32::MAX) {
                d -= 1 << 32;
            } else if d < i64::from(i32::MIN) {
                d += 1 << 32;
            }
            self.jitter += ((d.abs() as f64) - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// Interarrival jitter in RTP timestamp units (RFC 3550 A.8).
    pub fn jitter(&self) -> u32 {
        self.jitter as u32
    }

    /// Interarrival jitter as a duration.
    pub fn jitter_duration(&self) -> Duration {
        Duration::from_secs_f64(self.jitter / f64::from(self.clock_rate))
    }

    /// Extended highest sequence number received (cycles in the upper 16 bits).
    pub fn extended_max_seq(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets received (including duplicates, as A.3 counts them).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Packets expected from the sequence numbers seen.
    pub fn expected(&self) -> u32 {
        if !self.started {
            return 0;
        }
        self.extended_max_seq()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Cumulative packets lost (RFC 3550 A.3; negative when duplicates outnumber losses).
    pub fn cumulative_lost(&self) -> i64 {
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// Notes a sender report received from this source, for LSR/DLSR in our reports.
    pub fn on_sender_report(&mut self, ntp_timestamp: u64, arrival: Instant) {
        self.last_sr = Some((ntp_middle32(ntp_timestamp), arrival));
    }

    /// Builds the report block about this source (`ssrc`) and starts a new loss interval.
    pub fn report_block(&mut self, ssrc: u32, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                (
                    lsr,
                    (d.as_secs_f64() * 65536.0).min(f64::from(u32::MAX)) as u32,
                )
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            // 24-bit signed field (RFC 3550 §6.4.1), clamped.
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            extended_highest_seq: self.extended_max_seq(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (0 if none).
    pub last_sr: u32,
    /// Delay since that SR in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// How far below zero (in 1/65536 s, here 10 ms) a round trip may come out and still count as
/// zero: the peer's DLSR and both clocks are read at slightly different moments.
const ROUNDING_TOLERANCE: i32 = 655;

impl ReportBlock {
    /// Fraction lost as a ratio 0.0..1.0.
    pub fn loss_ratio(&self) -> f64 {
        f64::from(self.fraction_lost) / 256.0
    }

    /// Round-trip time from a block answering our SR, given the NTP time now (RFC 3550
    /// §6.4.1: A - LSR - DLSR). `None` if the peer has not seen an SR from us.
    pub fn round_trip_time(&self, now_ntp: u64) -> Option<Duration> {
        if self.last_sr == 0 {
            return None;
        }
        let rtt = ntp_middle32(now_ntp)
            .wrapping_sub(self.last_sr)
            .wrapping_sub(self.delay_since_last_sr) as i32;
        if rtt < 0 {
            // A peer whose DLSR comes out a little longer than it really held our SR (rounding,
            // reading its clock before it sends) makes a sub-millisecond round trip come out a
            // little negative: a round trip of about nothing. Further below zero is clock
            // trouble, not a measurement. Seen once in a one-host test with baresip peers.
            return (rtt > -ROUNDING_TOLERANCE).then_some(Duration::ZERO);
        }
        // Over about an hour is clock trouble too.
        (rtt < 3600 << 16).then(|| Duration::from_secs_f64(f64::from(rtt) / 65536.0))
    }

    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost as u32) & 0x00FF_FFFF;
        out[4..8].copy_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        out[8..12].copy_from_slice(&self.extended_highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        out[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }

    fn read(b: &[u8; REPORT_BLOCK_LEN]) -> Self {
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let lost_word = word(4);
        // Sign-extend the 24-bit cumulative loss.
        let cumulative_lost = ((lost_word << 8) as i32) >> 8;
        Self {
            ssrc: word(0),
            fraction_lost: (lost_word >> 24) as u8,
            cumulative_lost,
            extended_highest_seq: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        }
    }
}

/// Sender information of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// NTP timestamp (seconds since 1900 in the upper 32 bits, fraction in the lower).
    pub ntp_timestamp: u64,
    /// RTP timestamp corresponding to the NTP time.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
}

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// NTP 64-bit timestamp for a wall-clock time given as time since the Unix epoch.
pub fn ntp_timestamp(since_unix_epoch: Duration) -> u64 {
    let secs = since_unix_epoch.as_secs() + NTP_UNIX_OFFSET_SECS;
    let frac = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP timestamp, as used in LSR (RFC 3550 §6.4.1).
pub fn ntp_middle32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

fn write_rtcp_header(out: &mut [u8], count: u8, pt: u8, len_bytes: usize) {
    out[0] = 0x80 | (count & 0x1F);
    out[1] = pt;
    out[2..4].copy_from_slice(&((len_bytes / 4 - 1) as u16).to_be_bytes());
}

fn check_blocks(blocks: &[ReportBlock]) -> Result<(), RtpError> {
    if blocks.len() > MAX_REPORT_BLOCKS {
        Err(RtpError::TooManyBlocks(blocks.len()))
    } else {
        Ok(())
    }
}

fn room(out: &mut [u8], len: usize) -> Result<&mut [u8], RtpError> {
    let got = out.len();
    out.get_mut(..len)
        .ok_or(RtpError::BufferTooSmall { needed: len, got })
}

/// Writes an RTCP sender report into `out`; returns its length.
pub fn build_sender_report(
    out: &mut [u8],
    ssrc: u32,
    info: &SenderInfo,
    blocks: &[ReportBlock],
) -> Result<usize, RtpError> {
    check_blocks(blocks)?;
    let len = 28 + REPORT_BLOCK_LEN * blocks.len();
    let dst = room(out, len)?;
    write_rtcp_header(dst, blocks.len() as u8, RTCP_SR, len);
    dst[4..8].copy_from_slice(&ssrc.to_be_bytes());
    dst[8..16].copy_from_slice(&info.ntp_timestamp.to_be_bytes());
    dst[16..20].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
    dst[20..24].copy_from_slice(&info.packet_count.to_be_bytes());
    dst[24..28].copy_from_slice(&info.octet_count.to_be_bytes());
    for (b, chunk) in blocks
        .iter()
        .zip(dst[28..].chunks_exact_mut(REPORT_BLOCK_LEN))
    {
        b.write(chunk);
    }
    Ok(len)
}

/// Writes an RTCP receiver report into `out`; returns its length.
pub fn build_receiver_report(
    out: &mut [u8],
    ssrc: u32,
    blocks: &[ReportBlock],
) -> Result<usize, RtpError> {
    check_blocks(blocks)?;
    let len = 8 + REPORT_BLOCK_LEN * blocks.len();
    let dst = room(out, len)?;
    write_rtcp_header(dst, blocks.len() as u8, RTCP_RR, len);
    dst[4..8].copy_from_slice(&ssrc.to_be_bytes());
    for (b, chunk) in blocks
        .iter()
        .zip(dst[8..].chunks_exact_mut(REPORT_BLOCK_LEN))
    {
        b.write(chunk);
    }
    Ok(len)
}

/// Writes an SDES packet with one CNAME item (required in every compound, RFC 3550 §6.1);
/// `cname` is truncated to 255 bytes. Returns its length.
pub fn build_sdes_cname(out: &mut [u8], ssrc: u32, cname: &str) -> Result<usize, RtpError> {
    let name = &cname.as_bytes()[..cname.len().min(255)];
    // ssrc + type + len + name + at least one null terminator, padded to 32 bits.
    let chunk = (4 + 2 + name.len() + 1).div_ceil(4) * 4;
    let len = 4 + chunk;
    let dst = room(out, len)?;
    write_rtcp_header(dst, 1, RTCP_SDES, len);
    dst[4..8].copy_from_slice(&ssrc.to_be_bytes());
    dst[8] = 1; // CNAME
    dst[9] = name.len() as u8;
    dst[10..10 + name.len()].copy_from_slice(name);
    dst[10 + name.len()..].fill(0);
    Ok(len)
}

/// Writes a BYE packet for `ssrc` (RFC 3550 §6.6). Returns its length.
pub fn build_bye(out: &mut [u8], ssrc: u32) -> Result<usize, RtpError> {
    let dst = room(out, 8)?;
    write_rtcp_header(dst, 1, RTCP_BYE, 8);
    dst[4..8].copy_from_slice(&ssrc.to_be_bytes());
    Ok(8)
}

/// The report at the head of a received RTCP (compound) packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpReport<'a> {
    /// SSRC of the packet's sender.
    pub ssrc: u32,
    /// Present for an SR.
    pub sender_info: Option<SenderInfo>,
    blocks: &'a [u8],
    /// True if a BYE follows in the compound.
    pub bye: bool,
}

impl<'a> RtcpReport<'a> {
    /// The reception report blocks.
    pub fn blocks(&self) -> impl Iterator<Item = ReportBlock> + 'a {
        self.blocks
            .chunks_exact(REPORT_BLOCK_LEN)
            .filter_map(|c| c.try_into().ok().map(ReportBlock::read))
    }

    /// The block about `ssrc` (our stream), if the peer reported on it.
    pub fn block_for(&self, ssrc: u32) -> Option<ReportBlock> {
        self.blocks().find(|b| b.ssrc == ssrc)
    }
}

/// Parses the SR or RR that starts an RTCP compound packet (RFC 3550 §6.1), validating every
/// packet's header and length; notes a BYE anywhere in the compound.
pub fn parse_rtcp_report(buf: &[u8]) -> Result<RtcpReport<'_>, RtpError> {
    let mut rest = buf;
    let mut report: Option<RtcpReport<'_>> = None;
    let mut bye = false;
    while !rest.is_empty() {
        let [first, pt, l0, l1, ..] = *rest else {
            return Err(RtpError::Truncated {
                expected: 4,
                actual: rest.len(),
            });
        };
        if first >> 6 != 2 {
            return Err(RtpError::UnsupportedVersion(first >> 6));
        }
        let words = u16::from_be_bytes([l0, l1]);
        let len = (usize::from(words) + 1) * 4;
        let pkt = rest.get(..len).ok_or(RtpError::BadRtcpLength {
            words,
            actual: rest.len(),
        })?;
        // Padding only on the last packet of a compound (RFC 3550 §6.4.1); strip it.
        let body_end = if first & 0x20 != 0 {
            let pad = usize::from(pkt[len - 1]);
            if pad == 0 || pad > len - 4 {
                return Err(RtpError::BadPadding(pkt[len - 1]));
            }
            len - pad
        } else {
            len
        };
        let pkt = &pkt[..body_end];
        let count = usize::from(first & 0x1F);
        if report.is_none() {
            report = Some(parse_report_packet(pkt, pt, count)?);
        } else if pt == RTCP_BYE {
            bye = true;
        }
        rest = &rest[len..];
    }
    let mut report = report.ok_or(RtpError::Truncated {
        expected: 8,
        actual: 0,
    })?;
    report.bye = bye;
    Ok(report)
}

fn parse_report_packet(pkt: &[u8], pt: u8, count: usize) -> Result<RtcpReport<'_>, RtpError> {
    let fixed = match pt {
        RTCP_SR => 28,
        RTCP_RR => 8,
        other => return Err(RtpError::NotAReport(other)),
    };
    let needed = fixed + count * REPORT_BLOCK_LEN;
    if pkt.len() < needed {
        return Err(RtpError::Truncated {
            expected: needed,
            actual: pkt.len(),
        });
    }
    let word = |i: usize| u32::from_be_bytes([pkt[i], pkt[i + 1], pkt[i + 2], pkt[i + 3]]);
    let sender_info = (pt == RTCP_SR).then(|| SenderInfo {
        ntp_timestamp: (u64::from(word(8)) << 32) | u64::from(word(12)),
        rtp_timestamp: word(16),
        packet_count: word(20),
        octet_count: word(24),
    });
    Ok(RtcpReport {
        ssrc: word(4),
        sender_info,
        blocks: &pkt[fixed..needed],
        bye: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_audio_level_reads_back_and_leaves_the_payload_whole() {
        let mut buf = [0u8; 64];
        let len = write_rtp(&mut buf, 96, true, 7, 960, 9, &[1, 2, 3]).unwrap();
        let level = AudioLevel {
            voice: true,
            dbov: 42,
        };
        let len = add_audio_level(&mut buf, len, 5, level).unwrap();
        assert_eq!(len, 12 + 8 + 3);
        let info = parse_rtp(&buf[..len]).unwrap();
        assert_eq!(
            (info.payload, info.sequence, info.marker),
            (&[1u8, 2, 3][..], 7, true)
        );
        assert_eq!(audio_level(&info, 5), Some(level));
        assert_eq!(audio_level(&info, 4), None);
        // Once extended, or with an id the one-byte form cannot carry, it is refused.
        assert_eq!(
            add_audio_level(&mut buf, len, 5, level),
            Err(RtpError::NotPlain)
        );
        assert_eq!(
            add_audio_level(&mut buf, 15, 15, level),
            Err(RtpError::BadExtensionId(15))
        );
        let mut small = [0u8; 16];
        let len = write_rtp(&mut small, 0, false, 1, 1, 1, &[0; 2]).unwrap();
        assert!(matches!(
            add_audio_level(&mut small, len, 1, level),
            Err(RtpError::BufferTooSmall { .. })
        ));
    }
    use proptest::prelude::*;

    #[test]
    fn write_then_parse_round_trips_header_fields() {
        let mut buf = [0u8; 200];
        let n = write_rtp(
            &mut buf,
            8,
            true,
            65535,
            0xDEAD_BEEF,
            0x1234_5678,
            &[1, 2, 3],
        )
        .unwrap();
        assert_eq!(n, 15);
        let p = parse_rtp(&buf[..n]).unwrap();
        assert_eq!(p.payload_type, 8);
        assert!(p.marker);
        assert_eq!(p.sequence, 65535);
        assert_eq!(p.timestamp, 0xDEAD_BEEF);
        assert_eq!(p.ssrc, 0x1234_5678);
        assert_eq!(p.payload, &[1, 2, 3]);
    }

    #[test]
    fn parse_skips_csrc_extension_and_padding() {
        let mut pkt = vec![0xB2, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]; // V=2 P X CC=2
        pkt.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 11]); // two CSRCs
        pkt.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]); // one-word extension
        pkt.extend_from_slice(&[7, 8, 9]); // payload
        pkt.extend_from_slice(&[0, 0, 3]); // 3 bytes padding
        let p = parse_rtp(&pkt).unwrap();
        assert_eq!(p.csrc_count, 2);
        assert_eq!(p.payload, &[7, 8, 9]);
    }

    #[test]
    fn rejects_wrong_version_and_truncation() {
        let mut buf = [0u8; 20];
        let n = write_rtp(&mut buf, 0, false, 1, 2, 3, &[0; 8]).unwrap();
        buf[0] = 0x40;
        assert_eq!(parse_rtp(&buf[..n]), Err(RtpError::UnsupportedVersion(1)));
        assert!(matches!(
            parse_rtp(&buf[..11]),
            Err(RtpError::Truncated { .. })
        ));
        // CSRC count 3 announced, none present.
        let hdr = [0x83, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        assert!(matches!(parse_rtp(&hdr), Err(RtpError::Truncated { .. })));
    }

    #[test]
    fn rejects_padding_longer_than_payload() {
        let mut pkt = vec![0xA0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2];
        pkt.push(200);
        assert!(parse_rtp(&pkt).is_err());
    }

    #[test]
    fn write_rejects_small_buffer_and_bad_pt() {
        let mut buf = [0u8; 13];
        assert_eq!(
            write_rtp(&mut buf, 0, false, 0, 0, 0, &[1, 2]),
            Err(RtpError::BufferTooSmall {
                needed: 14,
                got: 13
            })
        );
        assert_eq!(
            write_rtp(&mut buf, 128, false, 0, 0, 0, &[]),
            Err(RtpError::BadPayloadType(128))
        );
    }

    #[test]
    fn rtcp_demux_by_second_octet() {
        let mut buf = [0u8; 64];
        let n = build_receiver_report(&mut buf, 1, &[]).unwrap();
        assert!(is_rtcp(&buf[..n]));
        let n = write_rtp(&mut buf, 0, true, 1, 2, 3, &[0; 4]).unwrap();
        assert!(!is_rtcp(&buf[..n]));
        let n = write_rtp(&mut buf, 111, true, 1, 2, 3, &[0; 4]).unwrap();
        assert!(!is_rtcp(&buf[..n]));
        assert!(!is_rtcp(&[0x80]));
        assert!(!is_rtcp(&[0x00, 200]));
    }

    #[test]
    fn sender_stamps_consecutive_frames_and_wraps() {
        let mut s = RtpSender::new(7, 65535, u32::MAX - 100);
        let mut buf = [0u8; 200];
        let n = s.write(&mut buf, 0, true, &[0; 160], 160).unwrap();
        let p = parse_rtp(&buf[..n]).unwrap();
        assert_eq!((p.sequence, p.timestamp), (65535, u32::MAX - 100));
        s.skip(160);
        let n = s.write(&mut buf, 0, false, &[0; 160], 160).unwrap();
        let p = parse_rtp(&buf[..n]).unwrap();
        assert_eq!((p.sequence, p.timestamp), (0, 219));
        assert_eq!(s.packets_sent, 2);
        assert_eq!(s.octets_sent, 320);
        // A frame lost upstream: the receiver must see a sequence gap of one frame.
        s.skip_lost(160);
        let n = s.write(&mut buf, 0, false, &[0; 160], 160).unwrap();
        let p = parse_rtp(&buf[..n]).unwrap();
        assert_eq!((p.sequence, p.timestamp), (2, 539));
        assert_eq!(s.packets_sent, 3);
    }

    #[test]
    fn stats_count_loss_and_wraparound() {
        let t0 = Instant::now();
        let mut st = RtpStats::new(8000);
        let mut seq = 65530u16;
        for i in 0..20u32 {
            if i != 5 && i != 9 {
                st.on_packet(seq, i * 160, t0 + Duration::from_millis(u64::from(i) * 20));
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(st.expected(), 20);
        assert_eq!(st.received(), 18);
        assert_eq!(st.cumulative_lost(), 2);
        assert_eq!(st.extended_max_seq(), 65536 + 13);
        let b = st.report_block(42, t0);
        assert_eq!(b.fraction_lost, (2 * 256 / 20) as u8);
        assert_eq!(b.cumulative_lost, 2);
        // Perfectly periodic arrival: no jitter.
        assert_eq!(b.jitter, 0);
        // A new interval without loss reports zero fraction.
        for i in 20..30u32 {
            st.on_packet(seq, i * 160, t0 + Duration::from_millis(u64::from(i) * 20));
            seq = seq.wrapping_add(1);
        }
        assert_eq!(st.report_block(42, t0).fraction_lost, 0);
    }

    #[test]
    fn stats_jitter_follows_rfc3550_estimator() {
        let t0 = Instant::now();
        let mut st = RtpStats::new(8000);
        // Arrivals alternate 10 ms early/late: |D| = 160 ticks after the first pair.
        for i in 0..200u32 {
            let skew = if i % 2 == 0 { 0 } else { 20 };
            let at = t0 + Duration::from_millis(u64::from(i) * 20 + skew);
            st.on_packet(i as u16, i * 160, at);
        }
        let j = st.jitter();
        assert!((150..=160).contains(&j), "jitter {j}");
        assert!(st.jitter_duration() > Duration::from_millis(18));
    }

    #[test]
    fn stats_restart_after_two_sequential_packets_far_away() {
        let t0 = Instant::now();
        let mut st = RtpStats::new(8000);
        for i in 0..5u16 {
            st.on_packet(i, u32::from(i) * 160, t0);
        }
        assert!(!st.on_packet(30000, 0, t0));
        assert!(st.on_packet(30001, 160, t0));
        assert_eq!(st.expected(), 1);
        assert_eq!(st.cumulative_lost(), 0);
    }

    #[test]
    fn sender_report_round_trips_with_blocks() {
        let info = SenderInfo {
            ntp_timestamp: 0x0102_0304_0506_0708,
            rtp_timestamp: 9,
            packet_count: 10,
            octet_count: 11,
        };
        let block = ReportBlock {
            ssrc: 5,
            fraction_lost: 25,
            cumulative_lost: -3,
            extended_highest_seq: 70000,
            jitter: 33,
            last_sr: 0x0304_0506,
            delay_since_last_sr: 65536,
        };
        let mut buf = [0u8; 200];
        let n = build_sender_report(&mut buf, 77, &info, &[block]).unwrap();
        assert_eq!(n, 52);
        let m = build_sdes_cname(&mut buf[n..], 77, "amtsleitung@example").unwrap();
        assert_eq!(m % 4, 0);
        let r = parse_rtcp_report(&buf[..n + m]).unwrap();
        assert_eq!(r.ssrc, 77);
        assert_eq!(r.sender_info, Some(info));
        assert_eq!(r.blocks().collect::<Vec<_>>(), vec![block]);
        assert_eq!(r.block_for(5), Some(block));
        assert!(!r.bye);
        assert!((r.blocks().next().unwrap().loss_ratio() - 25.0 / 256.0).abs() < 1e-9);
    }

    #[test]
    fn receiver_report_with_bye_is_parsed() {
        let mut buf = [0u8; 200];
        let blocks = [ReportBlock {
            ssrc: 1,
            ..ReportBlock::default()
        }];
        let n = build_receiver_report(&mut buf, 2, &blocks).unwrap();
        let m = build_bye(&mut buf[n..], 2).unwrap();
        let r = parse_rtcp_report(&buf[..n + m]).unwrap();
        assert_eq!(r.sender_info, None);
        assert_eq!(r.blocks().count(), 1);
        assert!(r.bye);
    }

    #[test]
    fn rtcp_parse_rejects_bad_lengths_and_non_reports() {
        let mut buf = [0u8; 64];
        let n = build_receiver_report(&mut buf, 2, &[ReportBlock::default()]).unwrap();
        assert!(matches!(
            parse_rtcp_report(&buf[..n - 4]),
            Err(RtpError::BadRtcpLength { .. })
        ));
        let n = build_bye(&mut buf, 2).unwrap();
        assert_eq!(
            parse_rtcp_report(&buf[..n]),
            Err(RtpError::NotAReport(RTCP_BYE))
        );
        // Count says 1 block, length says none.
        let bad = [0x81, RTCP_RR, 0, 1, 0, 0, 0, 2];
        assert!(matches!(
            parse_rtcp_report(&bad),
            Err(RtpError::Truncated { .. })
        ));
    }

    #[test]
    fn round_trip_time_from_lsr_and_dlsr() {
        let sent = ntp_timestamp(Duration::from_secs(1_000_000));
        let block = ReportBlock {
            last_sr: ntp_middle32(sent),
            delay_since_last_sr: 65536 / 2, // peer held it 0.5 s
            ..ReportBlock::default()
        };
        let now = ntp_timestamp(Duration::from_millis(1_000_000_600));
        let rtt = block.round_trip_time(now).unwrap();
        assert!((rtt.as_secs_f64() - 0.1).abs() < 0.001, "{rtt:?}");
        assert_eq!(ReportBlock::default().round_trip_time(now), None);
    }

    #[test]
    fn a_dlsr_rounded_up_past_a_tiny_round_trip_counts_as_zero_and_clock_trouble_as_none() {
        let sent = ntp_timestamp(Duration::from_secs(1_000_000));
        let held = |dlsr_ms: u32| ReportBlock {
            last_sr: ntp_middle32(sent),
            delay_since_last_sr: dlsr_ms * 65536 / 1000,
            ..ReportBlock::default()
        };
        // Answered 500 ms later, the peer says it held the SR 501 ms.
        let now = ntp_timestamp(Duration::from_millis(1_000_000_500));
        assert_eq!(held(501).round_trip_time(now), Some(Duration::ZERO));
        assert_eq!(held(560).round_trip_time(now), None);
    }

    #[test]
    fn stats_report_lsr_and_dlsr_from_received_sr() {
        let t0 = Instant::now();
        let mut st = RtpStats::new(8000);
        st.on_packet(1, 0, t0);
        st.on_sender_report(0x0000_1234_5678_0000, t0);
        let b = st.report_block(9, t0 + Duration::from_secs(2));
        assert_eq!(b.last_sr, 0x1234_5678);
        assert_eq!(b.delay_since_last_sr, 2 * 65536);
    }

    fn one_byte(data: &[u8]) -> RtpExtension<'_> {
        RtpExtension {
            profile: ONE_BYTE_EXTENSION_PROFILE,
            data,
        }
    }

    fn two_byte(data: &[u8]) -> RtpExtension<'_> {
        RtpExtension {
            profile: 0x1000,
            data,
        }
    }

    #[test]
    fn one_byte_form_finds_elements_across_padding() {
        // id 1 len 1, two padding bytes, id 3 len 3, trailing padding.
        let data = [0x10, 0xAA, 0, 0, 0x32, 1, 2, 3, 0, 0, 0, 0];
        let ext = one_byte(&data);
        assert_eq!(find_extension_element(&ext, 1), Some(&[0xAA][..]));
        assert_eq!(find_extension_element(&ext, 3), Some(&[1, 2, 3][..]));
        assert_eq!(find_extension_element(&ext, 2), None);
        assert_eq!(find_extension_element(&ext, 0), None);
        assert_eq!(find_extension_element(&ext, 15), None);
    }

    #[test]
    fn one_byte_form_stops_at_id_15() {
        // id 15 ends parsing even though a valid-looking id 2 follows.
        let data = [0x10, 0x01, 0xF0, 0x20, 0x05, 0, 0, 0];
        let ext = one_byte(&data);
        assert_eq!(find_extension_element(&ext, 1), Some(&[0x01][..]));
        assert_eq!(find_extension_element(&ext, 2), None);
    }

    #[test]
    fn one_byte_form_rejects_element_running_past_the_body() {
        // id 2 claims 16 bytes, only 2 follow.
        let data = [0x10, 0x01, 0x2F, 0xAB];
        let ext = one_byte(&data);
        assert_eq!(find_extension_element(&ext, 2), None);
        // An element before the broken one is still found.
        assert_eq!(find_extension_element(&ext, 1), Some(&[0x01][..]));
        // One behind it is not reachable.
        assert_eq!(find_extension_element(&ext, 5), None);
    }

    #[test]
    fn two_byte_form_finds_elements_across_padding() {
        // id 20 len 0, padding, id 1 len 2, padding, id 200 len 1.
        let data = [20, 0, 0, 1, 2, 0x85, 0x86, 0, 200, 1, 0x7F, 0];
        let ext = two_byte(&data);
        assert_eq!(find_extension_element(&ext, 20), Some(&[][..]));
        assert_eq!(find_extension_element(&ext, 1), Some(&[0x85, 0x86][..]));
        assert_eq!(find_extension_element(&ext, 200), Some(&[0x7F][..]));
        assert_eq!(find_extension_element(&ext, 2), None);
        assert_eq!(find_extension_element(&ext, 0), None);
        // The low 4 "appbits" of the profile value do not change the layout.
        let ext = RtpExtension {
            profile: 0x100F,
            data: &data,
        };
        assert_eq!(find_extension_element(&ext, 200), Some(&[0x7F][..]));
    }

    #[test]
    fn two_byte_form_rejects_truncated_length() {
        let ext = two_byte(&[1, 4, 0xAA, 0xBB]);
        assert_eq!(find_extension_element(&ext, 1), None);
        // ID byte with no length byte after it.
        let ext = two_byte(&[0, 0, 0, 7]);
        assert_eq!(find_extension_element(&ext, 7), None);
    }

    #[test]
    fn other_profiles_have_no_elements() {
        let data = [0x10, 0xAA, 0, 0];
        for profile in [0x0000, 0xBEDF, 0x2000, 0x0100, 0xFFFF] {
            let ext = RtpExtension {
                profile,
                data: &data,
            };
            assert_eq!(find_extension_element(&ext, 1), None, "{profile:#x}");
        }
    }

    /// RTP packet with X bit, one CSRC and the given extension words after it.
    fn packet_with_extension(profile: u16, body: &[u8], payload: &[u8]) -> Vec<u8> {
        assert_eq!(body.len() % 4, 0);
        let mut pkt = vec![0x91, 111, 0, 7, 0, 0, 0, 9, 0, 0, 0, 42]; // V=2 X CC=1
        pkt.extend_from_slice(&[0, 0, 0, 5]);
        pkt.extend_from_slice(&profile.to_be_bytes());
        pkt.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
        pkt.extend_from_slice(body);
        pkt.extend_from_slice(payload);
        pkt
    }

    #[test]
    fn parse_exposes_extension_and_audio_level() {
        // Chrome's layout: audio level id 1 (V set, -42 dBov), abs-send-time id 3.
        let body = [0x10, 0x80 | 42, 0x32, 1, 2, 3, 0, 0];
        let pkt = packet_with_extension(0xBEDE, &body, &[0xF8, 0xFF]);
        let p = parse_rtp(&pkt).unwrap();
        assert_eq!(
            p.extension,
            Some(RtpExtension {
                profile: 0xBEDE,
                data: &body,
            })
        );
        assert_eq!(p.payload, &[0xF8, 0xFF]);
        assert_eq!(
            audio_level(&p, 1),
            Some(AudioLevel {
                voice: true,
                dbov: 42
            })
        );
        assert_eq!(audio_level(&p, 2), None);
    }

    #[test]
    fn audio_level_reads_silence_without_voice_in_two_byte_form() {
        let pkt = packet_with_extension(0x1000, &[5, 1, 127, 0], &[1]);
        let p = parse_rtp(&pkt).unwrap();
        assert_eq!(
            audio_level(&p, 5),
            Some(AudioLevel {
                voice: false,
                dbov: 127
            })
        );
    }

    #[test]
    fn audio_level_needs_a_nonempty_element_and_an_extension() {
        // Two-byte form allows an empty element; it carries no level.
        let pkt = packet_with_extension(0x1000, &[5, 0, 0, 0], &[1]);
        assert_eq!(audio_level(&parse_rtp(&pkt).unwrap(), 5), None);
        let mut buf = [0u8; 20];
        let n = write_rtp(&mut buf, 0, false, 1, 2, 3, &[1, 2]).unwrap();
        let p = parse_rtp(&buf[..n]).unwrap();
        assert_eq!(p.extension, None);
        assert_eq!(audio_level(&p, 1), None);
    }

    proptest! {
        #[test]
        fn rtp_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(p) = parse_rtp(&bytes) {
                prop_assert!(p.payload.len() + RTP_HEADER_LEN <= bytes.len());
            }
        }

        #[test]
        fn extension_element_search_never_panics(
            profile in prop_oneof![Just(0xBEDEu16), 0x1000u16..0x1010, any::<u16>()],
            data in proptest::collection::vec(any::<u8>(), 0..64),
            id in any::<u8>(),
        ) {
            let ext = RtpExtension { profile, data: &data };
            if let Some(body) = find_extension_element(&ext, id) {
                // The element lies inside the extension body.
                let start = body.as_ptr() as usize - data.as_ptr() as usize;
                prop_assert!(start + body.len() <= data.len());
            }
            let pkt = packet_with_extension(profile, &data[..data.len() / 4 * 4], &[0]);
            if let Ok(p) = parse_rtp(&pkt) {
                let _ = audio_level(&p, id);
            }
        }

        #[test]
        fn rtcp_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_rtcp_report(&bytes);
            let _ = is_rtcp(&bytes);
        }

        #[test]
        fn rtcp_parse_never_panics_on_plausible_headers(
            count in 0u8..32, pt in 200u8..205, words in 0u16..20, pad in any::<bool>(),
            body in proptest::collection::vec(any::<u8>(), 0..120)
        ) {
            let mut pkt = vec![0x80 | if pad { 0x20 } else { 0 } | count, pt];
            pkt.extend_from_slice(&words.to_be_bytes());
            pkt.extend_from_slice(&body);
            let _ = parse_rtcp_report(&pkt);
        }
    }
}
