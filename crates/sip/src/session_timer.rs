//! SIP session timers (RFC 4028), UAS side: reading a request's `Session-Expires`/`Min-SE`,
//! choosing the refresher, and the deadlines that follow (refresh at half the interval when we
//! refresh, BYE shortly before expiry when the peer should have refreshed and did not).
//!
//! Sans-IO: requests and the time come in, a decision or an action comes out.

use std::time::{Duration, Instant};

use rsip::message::HasHeaders;

use crate::message;

/// The option tag of RFC 4028.
pub const OPTION_TAG: &str = "timer";
/// RFC 4028 §4: no session interval may be shorter than 90 s.
pub const RFC_MIN_SE: u32 = 90;

/// Who sends the refreshing re-INVITE or UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The caller (the UAC of the INVITE).
    Uac,
    /// We (the UAS).
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// What a request asks for, and what we make of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// The request carries no `Session-Expires`: no timer.
    NoTimer,
    /// The interval is below our minimum and the caller understands `timer`: answer 422
    /// with this `Min-SE` (RFC 4028 §9).
    TooSmall {
        /// Our minimum, for the `Min-SE` header of the 422.
        min_se: u32,
    },
    /// The session runs with this timer.
    Agreed(SessionTimer),
}

/// Reads `Session-Expires`, `Min-SE` and `Supported: timer` from a dialog-creating or
/// refreshing request and settles the interval and refresher (RFC 4028 §9); `our_min_se` is
/// the shortest interval we accept.
pub fn negotiate(request: &impl HasHeaders, our_min_se: u32) -> Negotiation {
    let Some(value) = message::header_value(request, "Session-Expires") else {
        return Negotiation::NoTimer;
    };
    let mut parts = value.split(';');
    let Some(interval) = parts.next().and_then(|s| s.trim().parse::<u32>().ok()) else {
        // An unreadable Session-Expires is ignored rather than guessed at.
        return Negotiation::NoTimer;
    };
    let requested_refresher = parts.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("refresher") {
            return None;
        }
        match value.trim().to_ascii_lowercase().as_str() {
            "uac" => Some(Refresher::Uac),
            "uas" => Some(Refresher::Uas),
            _ => None,
        }
    });
    let caller_supports =
        has_option_tag(request, "Supported") || has_option_tag(request, "Require");
    let their_min_se = message::header_value(request, "Min-SE")
        .and_then(|v| v.split(';').next()?.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let floor = our_min_se.max(their_min_se);
    let interval = if interval < our_min_se {
        if caller_supports {
            return Negotiation::TooSmall { min_se: our_min_se };
        }
        // A caller without `timer` cannot take a 422: raise the interval ourselves.
        floor
    } else {
        interval
    };
    // A caller that does not support timers cannot refresh; one that does refreshes unless
    // it asked us to (RFC 4028 §9 leaves the choice to the UAS when it did not say).
    let refresher = match (caller_supports, requested_refresher) {
        (false, _) => Refresher::Uas,
        (true, Some(r)) => r,
        (true, None) => Refresher::Uac,
    };
    Negotiation::Agreed(SessionTimer {
        interval: Duration::from_secs(u64::from(interval)),
        refresher,
        caller_supports,
        refreshed_at: None,
        refresh_sent: false,
    })
}

fn has_option_tag(request: &impl HasHeaders, header: &str) -> bool {
    message::header_values(request, header)
        .iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(OPTION_TAG))
}

/// What the session timer wants done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTimerAction {
    /// We are the refresher and half the interval has passed: send a re-INVITE or UPDATE.
    Refresh,
    /// No refresh came in time: end the call with BYE (RFC 4028 §10).
    Expired,
}

/// A running session timer of one dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    interval: Duration,
    refresher: Refresher,
    caller_supports: bool,
    refreshed_at: Option<Instant>,
    refresh_sent: bool,
}

impl SessionTimer {
    /// The session interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Who refreshes.
    pub fn refresher(&self) -> Refresher {
        self.refresher
    }

    /// The `Session-Expires` header value for our 2xx.
    pub fn header_value(&self) -> String {
        format!(
            "{};refresher={}",
            self.interval.as_secs(),
            self.refresher.as_str()
        )
    }

    /// Whether our 2xx must carry `Require: timer` (RFC 4028 §9: when the caller refreshes).
    pub fn requires_timer(&self) -> bool {
        self.caller_supports && self.refresher == Refresher::Uac
    }

    /// The session was (re)confirmed at `now`: a 2xx to the INVITE or a refresh.
    pub fn refreshed(&mut self, now: Instant) {
        self.refreshed_at = Some(now);
        self.refresh_sent = false;
    }

    /// The next moment [`poll`](Self::poll) may act, once the session is running.
    pub fn deadline(&self) -> Option<Instant> {
        let at = self.refreshed_at?;
        if self.refresher == Refresher::Uas && !self.refresh_sent {
            Some(at + self.interval / 2)
        } else {
            Some(at + self.interval - self.margin())
        }
    }

    /// What to do at `now`: refresh (once per interval, when we refresh) or give up.
    pub fn poll(&mut self, now: Instant) -> Option<SessionTimerAction> {
        let at = self.refreshed_at?;
        if now >= at + self.interval - self.margin() {
            return Some(SessionTimerAction::Expired);
        }
        if self.refresher == Refresher::Uas && !self.refresh_sent && now >= at + self.interval / 2 {
            self.refresh_sent = true;
            return Some(SessionTimerAction::Refresh);
        }
        None
    }

    /// RFC 4028 §10: the BYE goes out min(32 s, interval/3) before the session would expire,
    /// so it arrives while the peer still knows the dialog.
    fn margin(&self) -> Duration {
        (self.interval / 3).min(Duration::from_secs(32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(headers: &[(&str, &str)]) -> rsip::Request {
        let mut text = String::from(
            "INVITE sip:81234@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1\r\n\
             From: <sip:a@10.0.0.2>;tag=1\r\nTo: <sip:81234@10.0.0.1>\r\nCall-ID: x@y\r\n\
             CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n",
        );
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        match message::parse(text.as_bytes()).unwrap() {
            rsip::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn agreed(n: Negotiation) -> SessionTimer {
        match n {
            Negotiation::Agreed(t) => t,
            other => panic!("not agreed: {other:?}"),
        }
    }

    #[test]
    fn no_session_expires_means_no_timer() {
        assert_eq!(
            negotiate(&invite(&[("Supported", "timer")]), 90),
            Negotiation::NoTimer
        );
    }

    #[test]
    fn a_short_interval_from_a_timer_aware_caller_gets_422_with_our_minimum() {
        let request = invite(&[("Supported", "timer, 100rel"), ("Session-Expires", "60")]);
        assert_eq!(
            negotiate(&request, 90),
            Negotiation::TooSmall { min_se: 90 }
        );
    }

    #[test]
    fn a_short_interval_from_a_caller_without_timer_is_raised_and_we_refresh() {
        let request = invite(&[("Session-Expires", "60"), ("Min-SE", "120")]);
        let timer = agreed(negotiate(&request, 90));
        assert_eq!(timer.interval(), Duration::from_secs(120));
        assert_eq!(timer.refresher(), Refresher::Uas);
        assert!(!timer.requires_timer());
    }

    #[test]
    fn the_caller_refreshes_unless_it_asks_us_to() {
        let request = invite(&[("k", "timer"), ("x", "1800")]);
        let timer = agreed(negotiate(&request, 90));
        assert_eq!(timer.header_value(), "1800;refresher=uac");
        assert!(timer.requires_timer());
        let request = invite(&[
            ("Supported", "timer"),
            ("Session-Expires", "1800;refresher=uas"),
        ]);
        let timer = agreed(negotiate(&request, 90));
        assert_eq!(timer.header_value(), "1800;refresher=uas");
        assert!(!timer.requires_timer());
    }

    #[test]
    fn a_caller_that_does_not_refresh_is_given_up_before_expiry() {
        let request = invite(&[("Supported", "timer"), ("Session-Expires", "90")]);
        let mut timer = agreed(negotiate(&request, 90));
        let start = Instant::now();
        assert_eq!(
            timer.poll(start + Duration::from_secs(1000)),
            None,
            "not running yet"
        );
        timer.refreshed(start);
        // 90 s − min(32, 30) = 60 s.
        assert_eq!(timer.deadline(), Some(start + Duration::from_secs(60)));
        assert_eq!(timer.poll(start + Duration::from_secs(59)), None);
        // A refresh at 50 s moves the end to 110 s.
        timer.refreshed(start + Duration::from_secs(50));
        assert_eq!(timer.poll(start + Duration::from_secs(100)), None);
        assert_eq!(
            timer.poll(start + Duration::from_secs(110)),
            Some(SessionTimerAction::Expired)
        );
    }

    #[test]
    fn long_intervals_keep_a_32_second_margin() {
        let request = invite(&[("Supported", "timer"), ("Session-Expires", "1800")]);
        let mut timer = agreed(negotiate(&request, 90));
        let start = Instant::now();
        timer.refreshed(start);
        assert_eq!(timer.deadline(), Some(start + Duration::from_secs(1768)));
    }

    #[test]
    fn as_refresher_we_refresh_once_at_half_time_then_expire_without_an_answer() {
        let request = invite(&[("Session-Expires", "120")]);
        let mut timer = agreed(negotiate(&request, 90));
        let start = Instant::now();
        timer.refreshed(start);
        assert_eq!(timer.deadline(), Some(start + Duration::from_secs(60)));
        assert_eq!(timer.poll(start + Duration::from_secs(59)), None);
        assert_eq!(
            timer.poll(start + Duration::from_secs(60)),
            Some(SessionTimerAction::Refresh)
        );
        assert_eq!(
            timer.poll(start + Duration::from_secs(61)),
            None,
            "only once"
        );
        // 120 s − min(32 s, 40 s).
        assert_eq!(timer.deadline(), Some(start + Duration::from_secs(88)));
        assert_eq!(
            timer.poll(start + Duration::from_secs(88)),
            Some(SessionTimerAction::Expired)
        );
        // The answered refresh starts a new interval.
        timer.refreshed(start + Duration::from_secs(62));
        assert_eq!(timer.deadline(), Some(start + Duration::from_secs(122)));
        assert_eq!(timer.poll(start + Duration::from_secs(100)), None);
    }
}
