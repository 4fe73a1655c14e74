//! How often a join-page client may guess a room's PIN. A phone gets three tries per call and
//! is then hung up, and every try costs it the PIN prompt; a page could try as fast as HTTP
//! allows. So a client address gets the phone's three wrong PINs per room, then waits
//! [`LOCKOUT`] before it may try again. Sans-IO: time is passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Wrong PINs a client may enter for a room before it must wait (a phone's tries per call).
pub const WRONG_PINS_ALLOWED: u32 = 3;
/// How long a client waits after its last allowed wrong PIN; also how long a wrong PIN
/// counts against it.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Clients and rooms tracked at most; when full, the entry that changed longest ago goes.
const MAX_TRACKED: usize = 4096;

/// Wrong PINs by client and room.
#[derive(Debug, Default)]
pub struct PinAttempts {
    tries: HashMap<(IpAddr, String), Tries>,
}

#[derive(Debug, Clone, Copy)]
struct Tries {
    wrong: u32,
    last: Instant,
}

/// The client used up its tries: it may try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedOut(pub Duration);

impl PinAttempts {
    /// Whether `client` may try a PIN for `room` now.
    pub fn may_try(&mut self, client: IpAddr, room: &str, now: Instant) -> Result<(), LockedOut> {
        let key = (source_of(client), room.to_owned());
        let Some(tries) = self.tries.get(&key).copied() else {
            return Ok(());
        };
        let since = now.saturating_duration_since(tries.last);
        if since >= LOCKOUT {
            self.tries.remove(&key);
            return Ok(());
        }
        if tries.wrong >= WRONG_PINS_ALLOWED {
            return Err(LockedOut(LOCKOUT - since));
        }
        Ok(())
    }

    /// `client` entered a wrong PIN for `room`; how many tries it has left before it waits.
    pub fn wrong(&mut self, client: IpAddr, room: &str, now: Instant) -> u32 {
        let key = (source_of(client), room.to_owned());
        if !self.tries.contains_key(&key) && self.tries.len() >= MAX_TRACKED {
            self.make_room(now);
        }
        let tries = self.tries.entry(key).or_insert(Tries {
            wrong: 0,
            last: now,
        });
        if now.saturating_duration_since(tries.last) >= LOCKOUT {
            tries.wrong = 0;
        }
        tries.wrong += 1;
        tries.last = now;
        WRONG_PINS_ALLOWED.saturating_sub(tries.wrong)
    }

    /// `client` entered the right PIN for `room`: its wrong ones no longer count.
    pub fn right(&mut self, client: IpAddr, room: &str) {
        self.tries.remove(&(source_of(client), room.to_owned()));
    }

    /// Forgets what no longer counts and, if the table is still full, its oldest entry.
    fn make_room(&mut self, now: Instant) {
        self.tries
            .retain(|_, t| now.saturating_duration_since(t.last) < LOCKOUT);
        if self.tries.len() >= MAX_TRACKED
            && let Some(oldest) = self
                .tries
                .iter()
                .min_by_key(|(_, t)| t.last)
                .map(|(k, _)| k.clone())
        {
            self.tries.remove(&oldest);
        }
    }
}

/// The address a client is counted under: IPv6 clients by their /64, since one host holds a
/// whole /64 (as the SIP rate limit counts them).
fn source_of(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7));

    #[test]
    fn three_wrong_pins_lock_a_client_out_of_the_room_for_a_minute() {
        let mut attempts = PinAttempts::default();
        let t0 = Instant::now();
        assert_eq!(attempts.wrong(CLIENT, "1234", t0), 2);
        assert_eq!(attempts.wrong(CLIENT, "1234", t0), 1);
        assert_eq!(attempts.may_try(CLIENT, "1234", t0), Ok(()));
        assert_eq!(attempts.wrong(CLIENT, "1234", t0), 0);
        let later = t0 + Duration::from_secs(20);
        assert_eq!(
            attempts.may_try(CLIENT, "1234", later),
            Err(LockedOut(Duration::from_secs(40)))
        );
        // Other rooms and other clients are not affected.
        assert_eq!(attempts.may_try(CLIENT, "4711", later), Ok(()));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 8));
        assert_eq!(attempts.may_try(other, "1234", later), Ok(()));
        // After the lockout the client has its three tries again.
        let after = t0 + LOCKOUT;
        assert_eq!(attempts.may_try(CLIENT, "1234", after), Ok(()));
        assert_eq!(attempts.wrong(CLIENT, "1234", after), 2);
    }

    #[test]
    fn the_right_pin_forgets_the_wrong_ones() {
        let mut attempts = PinAttempts::default();
        let now = Instant::now();
        attempts.wrong(CLIENT, "1234", now);
        attempts.wrong(CLIENT, "1234", now);
        attempts.right(CLIENT, "1234");
        assert_eq!(attempts.wrong(CLIENT, "1234", now), 2);
    }

    #[test]
    fn ipv6_clients_count_by_their_slash_64() {
        let mut attempts = PinAttempts::default();
        let now = Instant::now();
        for host in 1..=3u16 {
            let client = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, host));
            attempts.wrong(client, "1234", now);
        }
        let neighbour = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9));
        assert!(attempts.may_try(neighbour, "1234", now).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut attempts = PinAttempts::default();
        let now = Instant::now();
        for n in 0..(MAX_TRACKED as u32 + 10) {
            let client = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            attempts.wrong(client, "1234", now);
        }
        assert!(attempts.tries.len() <= MAX_TRACKED);
    }
}
