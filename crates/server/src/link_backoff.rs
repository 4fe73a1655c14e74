//! When a meeting link tries again after a failure: 1 s, doubling up to 30 s, and back to 1 s
//! once a link has stayed up for a minute. A meeting that restarts is found again within a
//! second or two; one that is down for long is not hammered; one whose link keeps breaking
//! soon after it comes up does not reconnect every second forever. Sans-IO: time comes in.

use std::time::{Duration, Instant};

/// The first wait after a failure.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest wait.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// Up this long, the link counts as stable and the next failure waits [`FIRST_DELAY`] again.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// A link's backoff between attempts.
#[derive(Debug, Clone)]
pub struct LinkBackoff {
    next: Duration,
    up_since: Option<Instant>,
}

impl Default for LinkBackoff {
    fn default() -> Self {
        Self {
            next: FIRST_DELAY,
            up_since: None,
        }
    }
}

impl LinkBackoff {
    /// The link came up at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.up_since = Some(now);
    }

    /// An attempt failed, or the link went down, at `now`: how long to wait before the next.
    pub fn failed(&mut self, now: Instant) -> Duration {
        if let Some(since) = self.up_since.take()
            && now.saturating_duration_since(since) >= STABLE_AFTER
        {
            self.next = FIRST_DELAY;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn doubles_from_one_second_up_to_thirty() {
        let mut backoff = LinkBackoff::default();
        let now = Instant::now();
        let delays: Vec<Duration> = (0..8).map(|_| backoff.failed(now)).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30].map(secs).to_vec());
    }

    #[test]
    fn a_link_up_for_a_minute_starts_over_at_one_second() {
        let mut backoff = LinkBackoff::default();
        let t0 = Instant::now();
        for _ in 0..4 {
            backoff.failed(t0);
        }
        backoff.connected(t0);
        assert_eq!(backoff.failed(t0 + secs(61)), secs(1));
        assert_eq!(backoff.failed(t0 + secs(62)), secs(2));
    }

    #[test]
    fn a_link_that_breaks_soon_after_coming_up_keeps_backing_off() {
        let mut backoff = LinkBackoff::default();
        let t0 = Instant::now();
        assert_eq!(backoff.failed(t0), secs(1));
        assert_eq!(backoff.failed(t0), secs(2));
        backoff.connected(t0 + secs(3));
        assert_eq!(backoff.failed(t0 + secs(10)), secs(4));
    }
}
