//! How often the web console lets anyone guess a password. Failures count per source address
//! (a /64 for IPv6, which one host usually owns whole) and per account name, each over
//! [`WINDOW`]. The first [`FREE_FAILURES`] cost nothing; after that each further try must wait
//! [`SPACING`] after the previous failure (slow down), and at [`SOURCE_BLOCK_AFTER`] failures
//! the source is refused for [`BLOCK`] whatever it sends, a right password included. An
//! account is refused from everywhere after [`ACCOUNT_BLOCK_AFTER`] failures, more than one
//! source's block, so that one guesser cannot lock a colleague out but many can be held up.
//! Sans-IO: time is passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures allowed at full speed.
pub const FREE_FAILURES: u32 = 5;
/// The wait after each failure beyond the free ones.
pub const SPACING: Duration = Duration::from_secs(2);
/// Failures from one source that block it.
pub const SOURCE_BLOCK_AFTER: u32 = 10;
/// Failures for one account (from anywhere) that block sign-in to it.
pub const ACCOUNT_BLOCK_AFTER: u32 = 20;
/// How long a block lasts, and how long a failure counts.
pub const BLOCK: Duration = Duration::from_secs(15 * 60);
/// Sources and accounts tracked at most; when full, the one that failed longest ago goes.
const MAX_TRACKED: usize = 4096;

/// Whether a sign-in may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Too fast after a failure: try again after this long.
    SlowDown(Duration),
    /// Too many failures: refused for this long.
    Blocked(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    fn verdict(self, block_after: u32, now: Instant) -> Verdict {
        let since = now.saturating_duration_since(self.last);
        if self.count >= block_after {
            Verdict::Blocked(BLOCK.saturating_sub(since))
        } else if self.count >= FREE_FAILURES && since < SPACING {
            Verdict::SlowDown(SPACING - since)
        } else {
            Verdict::Allowed
        }
    }
}

/// Failed sign-ins by source and by account.
#[derive(Debug, Default)]
pub struct SignInGuard {
    sources: HashMap<IpAddr, Failures>,
    accounts: HashMap<String, Failures>,
}

impl SignInGuard {
    /// Whether `source` may try to sign in as `account` now; the stricter of the two.
    pub fn check(&mut self, source: IpAddr, account: &str, now: Instant) -> Verdict {
        let by_source = current(&mut self.sources, &source_of(source), now)
            .map_or(Verdict::Allowed, |f| f.verdict(SOURCE_BLOCK_AFTER, now));
        let by_account = current(&mut self.accounts, &account_key(account), now)
            .map_or(Verdict::Allowed, |f| f.verdict(ACCOUNT_BLOCK_AFTER, now));
        stricter(by_source, by_account)
    }

    /// A wrong name or password from `source` for `account`.
    pub fn failed(&mut self, source: IpAddr, account: &str, now: Instant) {
        count(&mut self.sources, source_of(source), now);
        count(&mut self.accounts, account_key(account), now);
    }

    /// A right password: the account's failures are forgiven, the source's are not (one
    /// valid account must not reset a guesser's count for the others).
    pub fn succeeded(&mut self, account: &str) {
        self.accounts.remove(&account_key(account));
    }
}

fn current<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Failures>,
    key: &K,
    now: Instant,
) -> Option<Failures> {
    let failures = *map.get(key)?;
    if now.saturating_duration_since(failures.last) >= BLOCK {
        map.remove(key);
        return None;
    }
    Some(failures)
}

fn count<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Failures>, key: K, now: Instant) {
    if !map.contains_key(&key) && map.len() >= MAX_TRACKED {
        map.retain(|_, f| now.saturating_duration_since(f.last) < BLOCK);
        if map.len() >= MAX_TRACKED
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
    }
    let failures = map.entry(key).or_insert(Failures {
        count: 0,
        last: now,
    });
    if now.saturating_duration_since(failures.last) >= BLOCK {
        failures.count = 0;
    }
    failures.count = failures.count.saturating_add(1);
    failures.last = now;
}

fn stricter(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Blocked(x), Verdict::Blocked(y)) => Verdict::Blocked(x.max(y)),
        (Verdict::Blocked(x), _) | (_, Verdict::Blocked(x)) => Verdict::Blocked(x),
        (Verdict::SlowDown(x), Verdict::SlowDown(y)) => Verdict::SlowDown(x.max(y)),
        (Verdict::SlowDown(x), _) | (_, Verdict::SlowDown(x)) => Verdict::SlowDown(x),
        _ => Verdict::Allowed,
    }
}

/// IPv6 hosts get a /64 each; counting per address would let one host rotate through it.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
    }
}

fn account_key(account: &str) -> String {
    account.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn free_failures_then_spacing_then_the_source_is_blocked_even_with_the_right_password() {
        let mut guard = SignInGuard::default();
        let t0 = Instant::now();
        let source = ip("192.0.2.7");
        for i in 0..FREE_FAILURES {
            assert_eq!(guard.check(source, "anna", t0), Verdict::Allowed, "try {i}");
            guard.failed(source, "anna", t0);
        }
        assert_eq!(guard.check(source, "anna", t0), Verdict::SlowDown(SPACING));
        // Another account from the same source is held up just the same.
        assert_eq!(guard.check(source, "bernd", t0), Verdict::SlowDown(SPACING));
        let mut now = t0;
        for _ in FREE_FAILURES..SOURCE_BLOCK_AFTER {
            now += SPACING;
            assert_eq!(guard.check(source, "anna", now), Verdict::Allowed);
            guard.failed(source, "anna", now);
        }
        assert_eq!(guard.check(source, "anna", now), Verdict::Blocked(BLOCK));
        now += SPACING * 10;
        assert!(matches!(
            guard.check(source, "anna", now),
            Verdict::Blocked(left) if left == BLOCK - SPACING * 10
        ));
        // Someone else may still sign in as anna: ten failures do not lock her out.
        assert_eq!(guard.check(ip("192.0.2.8"), "anna", now), Verdict::Allowed);
        assert_eq!(guard.check(source, "anna", now + BLOCK), Verdict::Allowed);
    }

    #[test]
    fn failures_across_sources_block_the_account_later_than_one_source() {
        let mut guard = SignInGuard::default();
        let now = Instant::now();
        for i in 0..ACCOUNT_BLOCK_AFTER {
            let source = IpAddr::from([198, 51, 100, i as u8]);
            guard.failed(source, "Anna", now + SPACING * i);
        }
        let later = now + SPACING * ACCOUNT_BLOCK_AFTER;
        assert!(matches!(
            guard.check(ip("203.0.113.1"), "anna", later),
            Verdict::Blocked(_)
        ));
        assert_eq!(
            guard.check(ip("203.0.113.1"), "bernd", later),
            Verdict::Allowed
        );
    }

    #[test]
    fn success_forgives_the_account_not_the_source() {
        let mut guard = SignInGuard::default();
        let now = Instant::now();
        let source = ip("2001:db8::1");
        for _ in 0..FREE_FAILURES {
            guard.failed(source, "anna", now);
        }
        guard.succeeded("anna");
        // The source is still counted, also from the next address of its /64.
        assert_eq!(
            guard.check(ip("2001:db8::2"), "bernd", now),
            Verdict::SlowDown(SPACING)
        );
        assert_eq!(
            guard.check(ip("2001:db8:0:1::1"), "anna", now),
            Verdict::Allowed
        );
    }

    #[test]
    fn old_failures_are_forgotten_and_the_tables_stay_bounded() {
        let mut guard = SignInGuard::default();
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            guard.failed(IpAddr::from(i.to_be_bytes()), &format!("u{i}"), now);
        }
        assert!(guard.sources.len() <= MAX_TRACKED);
        assert!(guard.accounts.len() <= MAX_TRACKED);
        let source = ip("192.0.2.9");
        for _ in 0..SOURCE_BLOCK_AFTER {
            guard.failed(source, "x", now);
        }
        assert!(matches!(guard.check(source, "x", now), Verdict::Blocked(_)));
        guard.failed(source, "x", now + BLOCK);
        assert_eq!(guard.check(source, "x", now + BLOCK), Verdict::Allowed);
    }
}
