//! Protection of the SIP service against abusive sources, sans-IO with time passed in:
//! bans after repeated failed digest authentication ([`FailedAuthBans`]), a per-source request
//! rate limit ([`RequestRateLimit`]) and network lists for trusted and allowed sources
//! ([`IpNetwork`], [`NetworkList`]).
//!
//! Sources are counted per IPv4 address and per IPv6 /64 ([`IpNetwork::source_of`]): one
//! IPv6 host commonly owns a whole /64, so a per-address key would let it rotate out of every
//! limit. Every table is fixed-capacity; each explains what it evicts and why that is safe.

mod bans;
mod networks;
mod rate_limit;

pub use bans::{Ban, BanConfig, BanReason, FailedAuthBans};
pub use networks::{IpNetwork, NetworkError, NetworkList};
pub use rate_limit::{RateDecision, RateLimitConfig, RequestRateLimit};
