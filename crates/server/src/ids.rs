//! Identifiers of the server's things, each its own type so that one cannot be passed where
//! another is meant.

use std::fmt;

/// One SIP call leg and the media session that carries its audio (they live and die
/// together: a leg without media is not a call we keep).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(u64);

impl LegId {
    /// The leg numbered `n` (numbers are handed out by the SIP endpoint).
    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    /// The `n`th WebRTC session. WebRTC sessions share the registry of room members and the
    /// media workers with SIP legs, so they are numbered in the upper half of the range,
    /// which the SIP endpoint (counting up from 1) never reaches.
    pub const fn browser(n: u64) -> Self {
        Self(BROWSER_BIT | n)
    }

    /// Whether this is a WebRTC session rather than a SIP leg.
    pub const fn is_browser(self) -> bool {
        self.0 & BROWSER_BIT != 0
    }

    /// The number, for spreading legs over workers and for logs.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// Marks the numbers of WebRTC sessions (see [`LegId::browser`]).
const BROWSER_BIT: u64 = 1 << 63;

impl std::str::FromStr for LegId {
    type Err = ();

    /// The [`Display`](fmt::Display) form back: `17` or `webrtc-5`.
    fn from_str(text: &str) -> Result<Self, ()> {
        let (browser, digits) = match text.strip_prefix("webrtc-") {
            Some(digits) => (true, digits),
            None => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let n: u64 = digits.parse().map_err(|_| ())?;
        if n & BROWSER_BIT != 0 {
            return Err(());
        }
        Ok(if browser {
            Self::browser(n)
        } else {
            Self::new(n)
        })
    }
}

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_browser() {
            write!(f, "webrtc-{}", self.0 & !BROWSER_BIT)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leg_reads_back_from_how_it_is_shown() {
        for leg in [
            LegId::new(1),
            LegId::new(42),
            LegId::browser(0),
            LegId::browser(7),
        ] {
            assert_eq!(leg.to_string().parse(), Ok(leg));
        }
        for bad in [
            "",
            "webrtc-",
            "-1",
            "+1",
            "1x",
            "webrtc--1",
            "99999999999999999999",
        ] {
            assert_eq!(bad.parse::<LegId>(), Err(()), "{bad}");
        }
        assert_eq!(format!("{}", 1u64 << 63).parse::<LegId>(), Err(()));
    }
}
