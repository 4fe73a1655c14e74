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

    /// The number, for spreading legs over workers and for logs.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
