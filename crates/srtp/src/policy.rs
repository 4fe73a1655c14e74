//! What an admin sets for a leg: whether its media must, may or must not be encrypted.

/// Whether a leg's media must, may or must not be encrypted with SRTP (keys by SDES, RFC 4568).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SrtpPolicy {
    /// Plain RTP only: an offer of encrypted media only is refused.
    Off,
    /// Encrypted when the peer offers or accepts it, plain otherwise.
    #[default]
    Optional,
    /// Encrypted only: an offer or answer of plain RTP is refused (488).
    Required,
}

impl SrtpPolicy {
    /// The word admins write for it (`off`, `optional`, `required`).
    pub const fn name(self) -> &'static str {
        match self {
            SrtpPolicy::Off => "off",
            SrtpPolicy::Optional => "optional",
            SrtpPolicy::Required => "required",
        }
    }
}

/// A word that is not one of `off`, `optional`, `required`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SRTP setting '{0}' (expected off, optional or required)")]
pub struct UnknownSrtpPolicy(pub String);

impl std::str::FromStr for SrtpPolicy {
    type Err = UnknownSrtpPolicy;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        [SrtpPolicy::Off, SrtpPolicy::Optional, SrtpPolicy::Required]
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(word.trim()))
            .ok_or_else(|| UnknownSrtpPolicy(word.to_owned()))
    }
}

impl std::fmt::Display for SrtpPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
