//! DTMF: RFC 4733 telephone-events in RTP (receive and send) and SIP INFO bodies
//! (`application/dtmf-relay`, `application/dtmf`).

/// Length of a telephone-event payload (RFC 4733 §2.3).
pub const EVENT_LEN: usize = 4;

/// What is wrong with a telephone-event payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// Shorter than the 4-byte event.
    #[error("telephone-event payload of {0} bytes, needs 4")]
    Truncated(usize),
}

/// One parsed telephone-event (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0..=15 are DTMF).
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0 (0..=63).
    pub volume: u8,
    /// Duration so far in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// The DTMF key this event is, if it is one.
    pub fn digit(&self) -> Option<char> {
        event_to_digit(self.event)
    }

    /// Writes the 4-byte payload.
    pub fn write(&self, out: &mut [u8; EVENT_LEN]) {
        out[0] = self.event;
        out[1] = (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3F);
        out[2..4].copy_from_slice(&self.duration.to_be_bytes());
    }
}

/// Parses a telephone-event payload (the first event if several are stacked).
pub fn parse_telephone_event(payload: &[u8]) -> Result<TelephoneEvent, DtmfError> {
    let [event, flags, d0, d1, ..] = *payload else {
        return Err(DtmfError::Truncated(payload.len()));
    };
    Ok(TelephoneEvent {
        event,
        end: flags & 0x80 != 0,
        volume: flags & 0x3F,
        duration: u16::from_be_bytes([d0, d1]),
    })
}

/// DTMF key for an RFC 4733 §3.2 event code.
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// RFC 4733 §3.2 event code for a DTMF key (case-insensitive for A–D).
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// Earlier presses remembered, so a late (reordered) end packet of one is not a new press.
/// One is enough for reordering on a real path; more would swallow a sender that replays
/// the same press (same start timestamp) a few keys later, as test tools do.
const RECENT_PRESSES: usize = 1;

/// Turns a telephone-event packet stream into key presses, each reported once.
///
/// An event is identified by its RTP timestamp (RFC 4733 §2.5.1.2: all packets of one event
/// carry the start timestamp), so repeats and the three end packets are recognised. A long
/// event split into segments (§2.5.1.3) keeps its key: a segment that starts where the
/// unfinished previous one ended is not a new press.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    current: Option<Current>,
    /// (start timestamp, event) of the presses before the current one, newest last.
    recent: [Option<(u32, u8)>; RECENT_PRESSES],
}

#[derive(Debug, Clone, Copy)]
struct Current {
    ts: u32,
    event: u8,
    duration: u16,
    ended: bool,
}

impl DtmfReceiver {
    /// Creates a receiver.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet; returns the key the first time a press is seen.
    pub fn push(&mut self, rtp_ts: u32, payload: &[u8]) -> Option<char> {
        let ev = parse_telephone_event(payload).ok()?;
        let digit = ev.digit()?;
        if let Some(cur) = &mut self.current {
            if cur.ts == rtp_ts && cur.event == ev.event {
                cur.duration = cur.duration.max(ev.duration);
                cur.ended |= ev.end;
                return None;
            }
            let continues = !cur.ended
                && cur.event == ev.event
                && rtp_ts == cur.ts.wrapping_add(u32::from(cur.duration));
            if continues {
                *cur = Current {
                    ts: rtp_ts,
                    event: ev.event,
                    duration: ev.duration,
                    ended: ev.end,
                };
                return None;
            }
            // A retransmitted end packet of an earlier press (reordered) is not a new press.
            // Matching the exact start timestamp rather than "older than the current one"
            // keeps presses from senders whose timestamps jump back (a new stream after a
            // transfer, replayed captures).
            if self.recent.contains(&Some((rtp_ts, ev.event))) {
                return None;
            }
            let previous = (cur.ts, cur.event);
            self.recent.rotate_left(1);
            self.recent[RECENT_PRESSES - 1] = Some(previous);
        }
        self.current = Some(Current {
            ts: rtp_ts,
            event: ev.event,
            duration: ev.duration,
            ended: ev.end,
        });
        Some(digit)
    }
}

/// Parses a SIP INFO DTMF body: `application/dtmf-relay` (`Signal=5\r\nDuration=160`) or
/// `application/dtmf` (just the key, or its event code).
pub fn parse_dtmf_relay(body: &str) -> Option<char> {
    let value = if body.contains('=') {
        body.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            key.trim().eq_ignore_ascii_case("signal").then_some(value)
        })?
    } else {
        body
    };
    let value = value.trim();
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => digit_to_event(c).and_then(event_to_digit),
        // Some phones send the event code ("10" for '*', "11" for '#').
        _ => value.parse::<u8>().ok().and_then(event_to_digit),
    }
}

/// One packet produced by [`DtmfSender`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// The telephone-event payload.
    pub payload: [u8; EVENT_LEN],
    /// Set on the first packet of the event (RFC 4733 §2.5.1.1).
    pub marker: bool,
    /// Set on the end packets.
    pub end: bool,
}

/// Builds the RFC 4733 packet sequence for one key press: one packet per ptime with the
/// growing duration, then the end packet three times (§2.5.1.4). All packets carry the
/// event's start timestamp, which the caller stamps.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    volume: u8,
    total: u16,
    step: u16,
    sent: u16,
    ends_left: u8,
    started: bool,
}

impl DtmfSender {
    /// A press of `digit` for `duration_ms` at `clock_rate`, one packet per `ptime_ms`;
    /// `None` for a character that is not a DTMF key.
    pub fn new(digit: char, duration_ms: u32, clock_rate: u32, ptime_ms: u32) -> Option<Self> {
        let event = digit_to_event(digit)?;
        let per_ms = clock_rate / 1000;
        let total = (duration_ms.max(ptime_ms) * per_ms).min(u32::from(u16::MAX)) as u16;
        let step = (ptime_ms * per_ms).clamp(1, u32::from(u16::MAX)) as u16;
        Some(Self {
            event,
            volume: 10,
            total,
            step,
            sent: 0,
            ends_left: 3,
            started: false,
        })
    }
}

impl Iterator for DtmfSender {
    type Item = DtmfPacket;

    fn next(&mut self) -> Option<DtmfPacket> {
        if self.sent < self.total {
            self.sent = self.sent.saturating_add(self.step).min(self.total);
        }
        // The packet that reaches the full duration is the first of the three end packets.
        let end = self.sent >= self.total;
        if end {
            self.ends_left = self.ends_left.checked_sub(1)?;
        }
        let mut payload = [0; EVENT_LEN];
        TelephoneEvent {
            event: self.event,
            end,
            volume: self.volume,
            duration: self.sent,
        }
        .write(&mut payload);
        let marker = !self.started;
        self.started = true;
        Some(DtmfPacket {
            payload,
            marker,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let mut b = [0; 4];
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .write(&mut b);
        b
    }

    #[test]
    fn parses_event_fields() {
        let e = parse_telephone_event(&[11, 0x8A, 0x03, 0x20]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(e.digit(), Some('#'));
        assert_eq!(parse_telephone_event(&[1, 2]), Err(DtmfError::Truncated(2)));
    }

    #[test]
    fn digit_mapping_covers_all_sixteen_keys() {
        let keys = "0123456789*#ABCD";
        for (code, key) in keys.chars().enumerate() {
            assert_eq!(event_to_digit(code as u8), Some(key));
            assert_eq!(digit_to_event(key), Some(code as u8));
        }
        assert_eq!(event_to_digit(16), None);
        assert_eq!(digit_to_event('x'), None);
    }

    #[test]
    fn repeated_and_triple_end_packets_give_one_digit() {
        let mut rx = DtmfReceiver::new();
        let mut digits = String::new();
        for (ts, p) in [
            (1000, ev(5, false, 160)),
            (1000, ev(5, false, 320)),
            (1000, ev(5, false, 480)),
            (1000, ev(5, true, 640)),
            (1000, ev(5, true, 640)),
            (1000, ev(5, true, 640)),
            // Same key again: a new press, new timestamp.
            (3000, ev(5, false, 160)),
            (3000, ev(5, true, 320)),
            (3000, ev(5, true, 320)),
            (5000, ev(11, true, 320)),
        ] {
            digits.extend(rx.push(ts, &p));
        }
        assert_eq!(digits, "55#");
    }

    #[test]
    fn press_is_reported_even_if_only_end_packets_arrive() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(rx.push(100, &ev(12, true, 800)), Some('A'));
        assert_eq!(rx.push(100, &ev(12, true, 800)), None);
    }

    #[test]
    fn long_event_segments_are_one_press() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(rx.push(0, &ev(1, false, 65535)), Some('1'));
        // §2.5.1.3: the next segment starts at the old timestamp plus its duration.
        assert_eq!(rx.push(65535, &ev(1, false, 160)), None);
        assert_eq!(rx.push(65535, &ev(1, true, 480)), None);
        assert_eq!(rx.push(70000, &ev(1, false, 160)), Some('1'));
    }

    #[test]
    fn late_end_packet_of_previous_event_is_ignored() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(rx.push(1000, &ev(3, true, 320)), Some('3'));
        assert_eq!(rx.push(2000, &ev(4, false, 160)), Some('4'));
        assert_eq!(rx.push(1000, &ev(3, true, 320)), None);
    }

    #[test]
    fn non_dtmf_events_are_ignored() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(rx.push(0, &ev(32, false, 160)), None);
        assert_eq!(rx.push(0, &[1]), None);
    }

    #[test]
    fn sip_info_bodies() {
        assert_eq!(parse_dtmf_relay("Signal=5\r\nDuration=160\r\n"), Some('5'));
        assert_eq!(parse_dtmf_relay("signal= *\nduration=100"), Some('*'));
        assert_eq!(parse_dtmf_relay("Signal=11\r\nDuration=160"), Some('#'));
        assert_eq!(parse_dtmf_relay("Duration=160\r\nSignal=d"), Some('D'));
        assert_eq!(parse_dtmf_relay("7"), Some('7'));
        assert_eq!(parse_dtmf_relay(" 10\r\n"), Some('*'));
        assert_eq!(parse_dtmf_relay("Signal=X"), None);
        assert_eq!(parse_dtmf_relay("Duration=160"), None);
        assert_eq!(parse_dtmf_relay(""), None);
    }

    #[test]
    fn sender_builds_growing_durations_then_three_ends() {
        let pkts: Vec<DtmfPacket> = DtmfSender::new('9', 100, 8000, 20).unwrap().collect();
        let durations: Vec<u16> = pkts
            .iter()
            .map(|p| parse_telephone_event(&p.payload).unwrap().duration)
            .collect();
        assert_eq!(durations, vec![160, 320, 480, 640, 800, 800, 800]);
        assert!(pkts[0].marker && pkts[1..].iter().all(|p| !p.marker));
        assert_eq!(pkts.iter().filter(|p| p.end).count(), 3);
        assert!(pkts[..4].iter().all(|p| !p.end));
        assert!(DtmfSender::new('x', 100, 8000, 20).is_none());
    }

    #[test]
    fn sender_output_is_received_as_one_digit() {
        let mut rx = DtmfReceiver::new();
        let got: String = DtmfSender::new('#', 200, 8000, 20)
            .unwrap()
            .filter_map(|p| rx.push(4242, &p.payload))
            .collect();
        assert_eq!(got, "#");
    }

    proptest! {
        #[test]
        fn receiver_never_panics(packets in proptest::collection::vec((any::<u32>(), proptest::collection::vec(any::<u8>(), 0..8)), 0..100)) {
            let mut rx = DtmfReceiver::new();
            for (ts, p) in packets {
                if let Some(c) = rx.push(ts, &p) {
                    prop_assert!("0123456789*#ABCD".contains(c));
                }
            }
        }

        #[test]
        fn relay_parser_never_panics(body in ".{0,64}") {
            let _ = parse_dtmf_relay(&body);
        }
    }

    #[test]
    fn a_press_whose_timestamp_jumps_far_back_is_a_new_press() {
        // Replayed captures and restarted senders: '#' at 92640, then '4' at 43000.
        let mut rx = DtmfReceiver::new();
        assert_eq!(rx.push(92_640, &[11, 0x8a, 0x03, 0x20]), Some('#'));
        assert_eq!(rx.push(43_000, &[4, 0x0a, 0x00, 0xa0]), Some('4'));
        // A late end packet of the '4' is still the same press, and a reordered end packet of
        // the earlier '#' is not new either; a '3' that starts 760 ticks back is a new press.
        assert_eq!(rx.push(43_000, &[4, 0x8a, 0x03, 0x20]), None);
        assert_eq!(rx.push(92_640, &[11, 0x8a, 0x03, 0x20]), None);
        assert_eq!(rx.push(42_240, &[3, 0x0a, 0x00, 0xa0]), Some('3'));
    }
}
