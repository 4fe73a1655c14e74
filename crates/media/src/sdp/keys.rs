//! SRTP keys in offer/answer (RFC 4568, "SDES"): which `a=crypto` lines we offer, which of a
//! peer's we take, and the key pair a leg ends up with.
//!
//! SDES puts the keys in the SDP itself, so they are only as secret as the signalling: over
//! UDP or TCP anyone on the path reads them. SIP over TLS is what makes them worth having.

use srtp::{CryptoAttribute, MasterKey, Suite};

use super::{MediaDescription, SrtpPolicy};

/// Suites we offer, in our order: AES_CM_128_HMAC_SHA1_80 first because every SDES phone
/// has it (RFC 4568 §6.2.1 makes it the default), then the AEAD suite (RFC 7714), then the
/// short-tag variant some older phones still prefer.
pub const OFFERED_SUITES: [Suite; 3] = [
    Suite::AesCm128HmacSha1_80,
    Suite::AeadAes128Gcm,
    Suite::AesCm128HmacSha1_32,
];

/// Most `a=crypto` lines we read from one m-line; phones offer two to four.
pub const MAX_CRYPTO_LINES: usize = 16;

/// Our side's SRTP for one leg: the policy and, unless it is off, one fresh key per suite.
#[derive(Clone)]
pub struct LocalSrtp {
    /// Whether the leg must, may or must not be encrypted.
    pub policy: SrtpPolicy,
    /// Our keys, tag = position + 1, in [`OFFERED_SUITES`] order.
    keys: Vec<CryptoAttribute>,
}

impl LocalSrtp {
    /// Plain RTP only, no keys.
    pub fn off() -> Self {
        Self {
            policy: SrtpPolicy::Off,
            keys: Vec::new(),
        }
    }

    /// The policy with a fresh random key for each suite we speak (none when off).
    pub fn new(policy: SrtpPolicy) -> Self {
        let keys = match policy {
            SrtpPolicy::Off => Vec::new(),
            SrtpPolicy::Optional | SrtpPolicy::Required => OFFERED_SUITES
                .iter()
                .enumerate()
                .map(|(i, &suite)| attribute(tag_of(i), suite, MasterKey::generate(suite)))
                .collect(),
        };
        Self { policy, keys }
    }

    /// The policy with given keys (tests; a re-INVITE answer that keeps our key).
    pub fn with_keys(policy: SrtpPolicy, keys: Vec<CryptoAttribute>) -> Self {
        Self { policy, keys }
    }

    /// Our `a=crypto` lines for an offer.
    pub fn offered(&self) -> &[CryptoAttribute] {
        &self.keys
    }

    /// Our key for `suite`, if we have one.
    fn key_for(&self, suite: Suite) -> Option<&CryptoAttribute> {
        self.keys.iter().find(|k| k.suite == suite)
    }

    /// Our key with `tag`, if we offered one.
    fn key_tagged(&self, tag: u32) -> Option<&CryptoAttribute> {
        self.keys.iter().find(|k| k.tag == tag)
    }
}

impl PartialEq for LocalSrtp {
    fn eq(&self, other: &Self) -> bool {
        self.policy == other.policy && same_keys(&self.keys, &other.keys)
    }
}

impl Eq for LocalSrtp {}

impl std::fmt::Debug for LocalSrtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let suites: Vec<&str> = self.keys.iter().map(|k| k.suite.sdp_name()).collect();
        f.debug_struct("LocalSrtp")
            .field("policy", &self.policy)
            .field("suites", &suites)
            .finish()
    }
}

/// The keys a leg's media runs with: ours protects what we send, the peer's what we
/// receive (RFC 4568 §6.1: each side's key is for the packets that side sends).
#[derive(Clone)]
pub struct NegotiatedSrtp {
    /// Our attribute (tag, suite, key) as it went into the SDP.
    pub local: CryptoAttribute,
    /// The peer's attribute.
    pub remote: CryptoAttribute,
}

impl NegotiatedSrtp {
    /// The suite both keys are for.
    pub fn suite(&self) -> Suite {
        self.local.suite
    }

    /// Whether the peer sends with a different key than in `other` (a re-INVITE rekeyed).
    pub fn remote_key_changed(&self, other: &NegotiatedSrtp) -> bool {
        self.remote.suite != other.remote.suite
            || self.remote.to_sdp_value() != other.remote.to_sdp_value()
    }
}

impl PartialEq for NegotiatedSrtp {
    fn eq(&self, other: &Self) -> bool {
        same_keys(
            std::slice::from_ref(&self.local),
            std::slice::from_ref(&other.local),
        ) && same_keys(
            std::slice::from_ref(&self.remote),
            std::slice::from_ref(&other.remote),
        )
    }
}

impl Eq for NegotiatedSrtp {}

impl std::fmt::Debug for NegotiatedSrtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach a log: only the suite and tags.
        f.debug_struct("NegotiatedSrtp")
            .field("suite", &self.suite().sdp_name())
            .field("local_tag", &self.local.tag)
            .field("remote_tag", &self.remote.tag)
            .finish()
    }
}

/// Whether an m-line's profile is secure RTP (RFC 3711 §12, RFC 5124).
pub(super) fn is_secure_profile(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/SAVP") || proto.eq_ignore_ascii_case("RTP/SAVPF")
}

/// The first of the offerer's `a=crypto` lines we can run (RFC 4568 §7.1.2: the answerer
/// takes one it supports, in the offerer's preference order), paired with our key for it
/// under the offerer's tag. Lines with an MKI or session parameters are passed over: we
/// send no MKI in packets, and §6.3 says an attribute with a parameter we do not honour
/// must not be accepted.
pub(super) fn answer_keys(media: &MediaDescription, local: &LocalSrtp) -> Option<NegotiatedSrtp> {
    media.crypto.iter().find_map(|line| {
        let remote = CryptoAttribute::parse(line).ok()?;
        if remote.mki.is_some() || !remote.session_params.is_empty() {
            return None;
        }
        let ours = local.key_for(remote.suite)?;
        Some(NegotiatedSrtp {
            local: attribute(remote.tag, remote.suite, ours.key.clone()),
            remote,
        })
    })
}

/// The answerer's `a=crypto` line matched to the one of ours it names (RFC 4568 §7.1.3: same
/// tag, same suite); `None` when the answer carries none we offered.
pub(super) fn accepted_keys(media: &MediaDescription, local: &LocalSrtp) -> Option<NegotiatedSrtp> {
    media.crypto.iter().find_map(|line| {
        let remote = CryptoAttribute::parse(line).ok()?;
        let ours = local.key_tagged(remote.tag)?;
        (ours.suite == remote.suite && remote.mki.is_none()).then(|| NegotiatedSrtp {
            local: ours.clone(),
            remote,
        })
    })
}

fn attribute(tag: u32, suite: Suite, key: MasterKey) -> CryptoAttribute {
    CryptoAttribute {
        tag,
        suite,
        key,
        lifetime: None,
        mki: None,
        session_params: Vec::new(),
    }
}

fn tag_of(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

fn same_keys(a: &[CryptoAttribute], b: &[CryptoAttribute]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.tag == y.tag && x.suite == y.suite && x.to_sdp_value() == y.to_sdp_value()
        })
}
