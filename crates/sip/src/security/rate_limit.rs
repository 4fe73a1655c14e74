//! A per-source request rate limit: a token bucket per source, so one flooding address cannot
//! starve everyone else (Kamailio's `pike`). Integer arithmetic in nano-tokens, so results
//! are exact and repeatable in tests.

use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

use super::IpNetwork;
use crate::bounded::BoundedMap;

/// Settings of [`RequestRateLimit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Sustained requests per second allowed per source.
    pub per_second: u32,
    /// Requests a quiet source may send at once (bucket size).
    pub burst: u32,
    /// Sources tracked at once.
    pub tracked_sources: usize,
}

impl Default for RateLimitConfig {
    /// 50 requests/s with bursts of 100: far above what a desk phone (or a small PBX behind
    /// one address) sends, far below a flood of 2,000/s.
    fn default() -> Self {
        Self {
            per_second: 50,
            burst: 100,
            tracked_sources: 64 * 1024,
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Within the limit: handle it.
    Allow,
    /// Over the limit: drop it without an answer (answering costs what we are protecting).
    Drop,
}

const NANOS_PER_TOKEN: u128 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    nano_tokens: u128,
    updated: Instant,
}

/// Token buckets per source (IPv4 address or IPv6 /64).
///
/// The table is bounded and evicts the source seen least recently. That is the one whose
/// bucket has refilled the most, so forgetting it loses the least: a source that comes back
/// after eviction gets a full bucket, which it would nearly have had anyway. An address that
/// is flooding is by definition seen all the time and is never the one evicted, so a flood
/// from many other addresses cannot reset its bucket.
pub struct RequestRateLimit {
    config: RateLimitConfig,
    buckets: BoundedMap<IpNetwork, Bucket, Instant>,
}

impl fmt::Debug for RequestRateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestRateLimit")
            .field("config", &self.config)
            .field("tracked", &self.buckets.len())
            .finish()
    }
}

impl RequestRateLimit {
    /// An empty limiter.
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            buckets: BoundedMap::new(config.tracked_sources),
            config,
        }
    }

    fn capacity(&self) -> u128 {
        u128::from(self.config.burst.max(1)) * NANOS_PER_TOKEN
    }

    /// Takes one token for a request from `ip` at `now`.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> RateDecision {
        let source = IpNetwork::source_of(ip);
        let capacity = self.capacity();
        let rate = u128::from(self.config.per_second);
        let mut bucket = self.buckets.get(&source).copied().unwrap_or(Bucket {
            nano_tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_nanos();
        // Tokens per nanosecond is `rate / 1e9`, so nano-tokens per nanosecond is `rate`.
        bucket.nano_tokens = bucket
            .nano_tokens
            .saturating_add(elapsed.saturating_mul(rate))
            .min(capacity);
        bucket.updated = bucket.updated.max(now);
        let decision = if bucket.nano_tokens >= NANOS_PER_TOKEN {
            bucket.nano_tokens -= NANOS_PER_TOKEN;
            RateDecision::Allow
        } else {
            RateDecision::Drop
        };
        self.buckets.insert(source, bucket, bucket.updated);
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(per_second: u32, burst: u32, tracked: usize) -> RequestRateLimit {
        RequestRateLimit::new(RateLimitConfig {
            per_second,
            burst,
            tracked_sources: tracked,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allows_the_burst_then_drops() {
        let t0 = Instant::now();
        let mut rl = limiter(10, 5, 16);
        let src = ip("192.0.2.1");
        for _ in 0..5 {
            assert_eq!(rl.check(src, t0), RateDecision::Allow);
        }
        assert_eq!(rl.check(src, t0), RateDecision::Drop);
        assert_eq!(rl.check(ip("192.0.2.2"), t0), RateDecision::Allow);
    }

    #[test]
    fn refills_at_the_configured_rate() {
        let t0 = Instant::now();
        let mut rl = limiter(10, 1, 16);
        let src = ip("192.0.2.1");
        assert_eq!(rl.check(src, t0), RateDecision::Allow);
        // One token takes 100 ms at 10/s: one nanosecond early is still too early.
        let almost = t0 + Duration::from_millis(100) - Duration::from_nanos(1);
        assert_eq!(rl.check(src, almost), RateDecision::Drop);
        // The failed attempt consumed nothing; the token is complete at 100 ms.
        assert_eq!(
            rl.check(src, t0 + Duration::from_millis(100)),
            RateDecision::Allow
        );
    }

    #[test]
    fn sustained_flood_gets_only_the_rate_through() {
        let t0 = Instant::now();
        let mut rl = limiter(50, 100, 16);
        let src = ip("198.51.100.9");
        let mut allowed = 0;
        // 2,000 requests/s for 10 s.
        for i in 0..20_000u64 {
            if rl.check(src, t0 + Duration::from_micros(i * 500)) == RateDecision::Allow {
                allowed += 1;
            }
        }
        // Burst plus 50/s over ~10 s.
        assert!((595..=600).contains(&allowed), "{allowed}");
    }

    #[test]
    fn ipv6_hosts_share_their_slash_64_bucket() {
        let t0 = Instant::now();
        let mut rl = limiter(1, 2, 16);
        assert_eq!(rl.check(ip("2001:db8::1"), t0), RateDecision::Allow);
        assert_eq!(rl.check(ip("2001:db8::2"), t0), RateDecision::Allow);
        assert_eq!(rl.check(ip("2001:db8::3"), t0), RateDecision::Drop);
        assert_eq!(rl.check(ip("2001:db8:0:1::1"), t0), RateDecision::Allow);
    }

    #[test]
    fn a_flood_from_many_addresses_does_not_reset_an_active_flooder() {
        let t0 = Instant::now();
        let mut rl = limiter(1, 1, 4);
        let flooder = ip("198.51.100.1");
        assert_eq!(rl.check(flooder, t0), RateDecision::Allow);
        for i in 0..1000u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            assert_eq!(rl.check(flooder, now), RateDecision::Drop, "step {i}");
            rl.check(IpAddr::V4((0x0a00_0000 + i).into()), now);
        }
    }

    #[test]
    fn table_stays_bounded() {
        let t0 = Instant::now();
        let mut rl = limiter(1, 1, 8);
        for i in 0..1000u32 {
            rl.check(IpAddr::V4(i.into()), t0);
        }
        assert_eq!(rl.buckets.len(), 8);
    }
}
