//! Bans after repeated failed digest authentication from one source (what Kamailio admins
//! build with `pike` and `htable`, and what fail2ban does from logs). A ban is always on a
//! source, never on an account: the real phone at another address keeps working.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::IpNetwork;
use crate::bounded::BoundedMap;

/// Settings of [`FailedAuthBans`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanConfig {
    /// Failed attempts within [`window`](Self::window) that cause a ban.
    pub max_failures: u32,
    /// The sliding window failures are counted in.
    pub window: Duration,
    /// How long a ban lasts.
    pub ban_duration: Duration,
    /// Sources whose recent failures are remembered at once.
    pub tracked_sources: usize,
    /// Bans held at once.
    pub max_bans: usize,
}

impl Default for BanConfig {
    /// 5 failures within 10 minutes ban for 15 minutes (issue 14's defaults).
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(600),
            ban_duration: Duration::from_secs(900),
            tracked_sources: 16 * 1024,
            max_bans: 4 * 1024,
        }
    }
}

/// Why a source was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanReason {
    /// `failures` failed digest authentications within `window`.
    FailedAuth {
        /// How many.
        failures: u32,
        /// Within how long.
        window: Duration,
    },
}

impl fmt::Display for BanReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanReason::FailedAuth { failures, window } => write!(
                f,
                "{failures} failed authentications within {} s",
                window.as_secs()
            ),
        }
    }
}

/// A ban in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// The banned source (an IPv4 address or an IPv6 /64).
    pub source: IpNetwork,
    /// When it began.
    pub since: Instant,
    /// When it ends.
    pub until: Instant,
    /// Why.
    pub reason: BanReason,
}

/// Counts failed authentications per source and bans sources that fail too often.
///
/// Memory is bounded by two separate tables. Failure counters are evicted least recently
/// failed first: a source still guessing keeps its counter fresh, and a flood from many
/// addresses only makes idle, partial counts be forgotten (an attacker with that many
/// addresses could rotate past the limit anyway). Bans live in their own table, which a flood
/// of failures cannot touch: to displace a ban (the one ending soonest goes first), an
/// attacker must earn `max_bans` newer bans, each costing `max_failures` failed attempts from
/// a distinct source, all of them also under the request rate limit.
pub struct FailedAuthBans {
    config: BanConfig,
    failures: BoundedMap<IpNetwork, VecDeque<Instant>, Instant>,
    bans: BoundedMap<IpNetwork, Ban, Instant>,
}

impl fmt::Debug for FailedAuthBans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailedAuthBans")
            .field("config", &self.config)
            .field("tracked", &self.failures.len())
            .field("bans", &self.bans.len())
            .finish()
    }
}

impl FailedAuthBans {
    /// An empty table.
    pub fn new(config: BanConfig) -> Self {
        Self {
            failures: BoundedMap::new(config.tracked_sources),
            bans: BoundedMap::new(config.max_bans),
            config,
        }
    }

    /// The ban on `ip`'s source, if one is in force at `now`.
    pub fn ban_of(&self, ip: IpAddr, now: Instant) -> Option<&Ban> {
        self.bans
            .get(&IpNetwork::source_of(ip))
            .filter(|b| b.until > now)
    }

    /// Whether requests from `ip` are to be dropped at `now`.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.ban_of(ip, now).is_some()
    }

    /// Records one failed authentication from `ip`; returns the ban it caused, if any (for the
    /// log and metrics). Failures from a source already banned are not counted again: its
    /// requests should not have reached authentication.
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) -> Option<Ban> {
        if self.config.max_failures == 0 || self.is_banned(ip, now) {
            return None;
        }
        let source = IpNetwork::source_of(ip);
        let window = self.config.window;
        let limit = usize::try_from(self.config.max_failures).unwrap_or(usize::MAX);
        let count = match self.failures.get_mut(&source) {
            Some(times) => {
                times.push_back(now);
                while times.len() > limit {
                    times.pop_front();
                }
                while times
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= window)
                {
                    times.pop_front();
                }
                times.len()
            }
            None => {
                self.failures.insert(source, VecDeque::from([now]), now);
                1
            }
        };
        // Rank by the latest failure: the least recently failing source is evicted first.
        self.failures.set_rank(&source, now);
        if count < limit {
            return None;
        }
        self.failures.remove(&source);
        let ban = Ban {
            source,
            since: now,
            until: now + self.config.ban_duration,
            reason: BanReason::FailedAuth {
                failures: self.config.max_failures,
                window,
            },
        };
        self.bans.insert(source, ban, ban.until);
        Some(ban)
    }

    /// Bans in force at `now`, ending soonest first (for `security bans`).
    pub fn bans(&self, now: Instant) -> Vec<Ban> {
        let mut out: Vec<Ban> = self
            .bans
            .iter()
            .map(|(_, b)| *b)
            .filter(|b| b.until > now)
            .collect();
        out.sort_by_key(|b| (b.until, b.source));
        out
    }

    /// Lifts the ban on `source` (an address, or the /64 it belongs to) and forgets its
    /// failures; returns the ban lifted (for `security unban ADDR`).
    pub fn unban(&mut self, source: IpAddr) -> Option<Ban> {
        let key = IpNetwork::source_of(source);
        self.failures.remove(&key);
        self.bans.remove(&key)
    }

    /// Removes bans that ended by `now` and returns them (for the log).
    pub fn expire(&mut self, now: Instant) -> Vec<Ban> {
        let mut lifted = Vec::new();
        while self.bans.lowest_rank().is_some_and(|until| until <= now) {
            if let Some((_, ban, _)) = self.bans.pop_lowest() {
                lifted.push(ban);
            }
        }
        lifted
    }

    /// When the next ban ends (call [`expire`](Self::expire) then).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.bans.lowest_rank()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn fifth_failure_within_the_window_bans_for_the_ban_duration() {
        let t0 = Instant::now();
        let mut bans = FailedAuthBans::new(BanConfig::default());
        let phone = ip("192.0.2.10");
        for i in 0..4 {
            assert_eq!(bans.record_failure(phone, secs(t0, i * 100)), None);
            assert!(!bans.is_banned(phone, secs(t0, i * 100)));
        }
        let ban = bans.record_failure(phone, secs(t0, 599)).unwrap();
        assert_eq!(ban.until, secs(t0, 599 + 900));
        assert_eq!(
            ban.reason.to_string(),
            "5 failed authentications within 600 s"
        );
        assert!(bans.is_banned(phone, secs(t0, 599)));
        assert!(bans.is_banned(phone, secs(t0, 599 + 899)));
        assert!(!bans.is_banned(phone, secs(t0, 599 + 900)));
        assert!(!bans.is_banned(ip("192.0.2.11"), secs(t0, 600)));
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let t0 = Instant::now();
        let mut bans = FailedAuthBans::new(BanConfig::default());
        let phone = ip("192.0.2.10");
        for i in 0..4 {
            bans.record_failure(phone, secs(t0, i));
        }
        // The first failure (t=0) is exactly one window old at t=600 and no longer counts.
        assert_eq!(bans.record_failure(phone, secs(t0, 600)), None);
        assert!(bans.record_failure(phone, secs(t0, 600)).is_some());
    }

    #[test]
    fn ipv6_sources_are_banned_per_slash_64() {
        let t0 = Instant::now();
        let mut bans = FailedAuthBans::new(BanConfig::default());
        for i in 0..5 {
            bans.record_failure(ip(&format!("2001:db8:0:1::{i}")), t0);
        }
        assert!(bans.is_banned(ip("2001:db8:0:1:ffff::1"), t0));
        assert!(!bans.is_banned(ip("2001:db8:0:2::1"), t0));
    }

    #[test]
    fn unban_lifts_the_ban_and_forgets_failures() {
        let t0 = Instant::now();
        let mut bans = FailedAuthBans::new(BanConfig::default());
        let phone = ip("192.0.2.10");
        for _ in 0..5 {
            bans.record_failure(phone, t0);
        }
        assert_eq!(bans.bans(t0).len(), 1);
        assert!(bans.unban(phone).is_some());
        assert!(!bans.is_banned(phone, t0));
        assert!(bans.bans(t0).is_empty());
        assert!(bans.unban(phone).is_none());
        assert_eq!(bans.record_failure(phone, t0), None, "count starts over");
    }

    #[test]
    fn expire_returns_ended_bans_at_their_deadline() {
        let t0 = Instant::now();
        let mut bans = FailedAuthBans::new(BanConfig::default());
        for _ in 0..5 {
            bans.record_failure(ip("192.0.2.1"), t0);
        }
        for _ in 0..5 {
            bans.record_failure(ip("192.0.2.2"), secs(t0, 10));
        }
        assert_eq!(bans.next_deadline(), Some(secs(t0, 900)));
        assert!(bans.expire(secs(t0, 899)).is_empty());
        let lifted = bans.expire(secs(t0, 900));
        assert_eq!(lifted.len(), 1);
        assert_eq!(lifted[0].source.to_string(), "192.0.2.1/32");
        assert_eq!(bans.next_deadline(), Some(secs(t0, 910)));
    }

    #[test]
    fn a_flood_of_failing_sources_does_not_evict_bans() {
        let t0 = Instant::now();
        let mut bans = FailedAuthBans::new(BanConfig {
            tracked_sources: 8,
            max_bans: 2,
            ..BanConfig::default()
        });
        let attacker = ip("198.51.100.1");
        for _ in 0..5 {
            bans.record_failure(attacker, t0);
        }
        // Thousands of sources failing up to four times each: counters churn, the ban stays.
        for i in 0..4000u32 {
            let src = IpAddr::V4((0x0a00_0000 + i).into());
            for _ in 0..4 {
                bans.record_failure(src, secs(t0, 1));
            }
        }
        assert!(bans.is_banned(attacker, secs(t0, 2)));
    }

    #[test]
    fn a_full_ban_table_drops_the_ban_ending_soonest() {
        let t0 = Instant::now();
        let mut bans = FailedAuthBans::new(BanConfig {
            max_bans: 2,
            ..BanConfig::default()
        });
        for (n, at) in [("192.0.2.1", 0), ("192.0.2.2", 10), ("192.0.2.3", 20)] {
            for _ in 0..5 {
                bans.record_failure(ip(n), secs(t0, at));
            }
        }
        let now = secs(t0, 21);
        assert!(!bans.is_banned(ip("192.0.2.1"), now));
        assert!(bans.is_banned(ip("192.0.2.2"), now));
        assert!(bans.is_banned(ip("192.0.2.3"), now));
    }

    #[test]
    fn partial_counts_of_a_still_active_guesser_survive_a_flood() {
        let t0 = Instant::now();
        let mut bans = FailedAuthBans::new(BanConfig {
            tracked_sources: 4,
            ..BanConfig::default()
        });
        let guesser = ip("198.51.100.7");
        for i in 0..7u32 {
            let now = secs(t0, u64::from(i));
            // The guesser fails every other step, so it is never the least recently failed,
            // while a new source fails every step and pushes the table past its capacity.
            if i % 2 == 0 {
                assert_eq!(bans.record_failure(guesser, now), None);
            }
            bans.record_failure(IpAddr::V4((0x0a00_0000 + i).into()), now);
        }
        let ban = bans.record_failure(guesser, secs(t0, 7)).unwrap();
        assert_eq!(ban.source, IpNetwork::source_of(guesser));
    }
}
