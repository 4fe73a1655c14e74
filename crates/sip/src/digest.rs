//! Server-side digest authentication for SIP (RFC 3261 §22.4, RFC 7616, RFC 8760): challenges,
//! parsing `Authorization`/`Proxy-Authorization`, and verifying responses against a stored HA1
//! (MD5 or SHA-256), never a password.
//!
//! Nonces are stateless: each carries its issue time, a random salt and an HMAC-SHA256 over
//! both and the realm, keyed by a server secret, so a flood of challenges costs no memory and
//! any node that shares the secret can check them. Replays are caught by a bounded table of
//! the highest nonce-count seen per nonce ([`DigestAuthenticator::verify`] explains how an
//! evicted nonce is kept from becoming replayable). Time comes in as an argument.
//!
//! Unknown users and wrong passwords are indistinguishable by design: [`verify`] takes
//! `Option<&Credentials>` and runs the same computation against a dummy HA1 when it is `None`.
//!
//! The client side, answering the challenges of a carrier we register with, is [`client`].
//!
//! [`verify`]: DigestAuthenticator::verify

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use md5::Md5;
use rsip::message::HasHeaders;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::bounded::BoundedMap;
use crate::message;

pub mod client;

type HmacSha256 = hmac::Hmac<Sha256>;

/// A digest hash algorithm we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 3261's only algorithm; what most desk phones speak).
    Md5,
    /// `SHA-256` (RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The `algorithm` parameter token.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Reads an `algorithm` token (case-insensitive); the `-sess` variants are not offered and
    /// not accepted.
    pub fn from_token(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Length of the raw hash output in bytes.
    fn output_len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            Algorithm::Sha256 => 32,
        }
    }

    /// `H(data)` as raw bytes.
    fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Algorithm::Md5 => {
                let mut h = Md5::new();
                parts.iter().for_each(|p| h.update(p));
                h.finalize().to_vec()
            }
            Algorithm::Sha256 => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                h.finalize().to_vec()
            }
        }
    }

    fn hash_hex(self, parts: &[&[u8]]) -> String {
        hex(&self.hash(parts))
    }
}

/// `H(username:realm:password)` in lower-case hex: what the store keeps instead of a password.
#[derive(Clone, PartialEq, Eq)]
pub struct Ha1 {
    algorithm: Algorithm,
    hex: String,
}

impl std::fmt::Debug for Ha1 {
    // A HA1 is password-equivalent for its realm: keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ha1({}, ..)", self.algorithm.token())
    }
}

/// A stored HA1 that is not hex of the algorithm's length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HA1 for {algorithm:?} must be {expected} hex digits")]
pub struct Ha1Error {
    algorithm: Algorithm,
    expected: usize,
}

impl Ha1 {
    /// Computes the HA1 of a password (for `user add` and `user passwd`).
    pub fn compute(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> Self {
        let hex = algorithm.hash_hex(&[
            username.as_bytes(),
            b":",
            realm.as_bytes(),
            b":",
            password.as_bytes(),
        ]);
        Self { algorithm, hex }
    }

    /// A HA1 read back from storage (either case; kept in lower case).
    pub fn from_hex(algorithm: Algorithm, text: &str) -> Result<Self, Ha1Error> {
        let expected = algorithm.output_len() * 2;
        if text.len() != expected || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(Ha1Error {
                algorithm,
                expected,
            });
        }
        Ok(Self {
            algorithm,
            hex: text.to_ascii_lowercase(),
        })
    }

    /// The algorithm this HA1 belongs to.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Lower-case hex, for storage.
    pub fn as_hex(&self) -> &str {
        &self.hex
    }
}

/// A user's stored secrets for one realm: an HA1 per algorithm it may authenticate with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    md5: Option<Ha1>,
    sha256: Option<Ha1>,
}

impl Credentials {
    /// Both HA1s of a password.
    pub fn from_password(username: &str, realm: &str, password: &str) -> Self {
        Self::default()
            .with(Ha1::compute(Algorithm::Md5, username, realm, password))
            .with(Ha1::compute(Algorithm::Sha256, username, realm, password))
    }

    /// Adds (or replaces) the HA1 of its algorithm.
    pub fn with(mut self, ha1: Ha1) -> Self {
        match ha1.algorithm {
            Algorithm::Md5 => self.md5 = Some(ha1),
            Algorithm::Sha256 => self.sha256 = Some(ha1),
        }
        self
    }

    /// The HA1 for `algorithm`, if stored.
    pub fn ha1(&self, algorithm: Algorithm) -> Option<&Ha1> {
        match algorithm {
            Algorithm::Md5 => self.md5.as_ref(),
            Algorithm::Sha256 => self.sha256.as_ref(),
        }
    }
}

/// A parsed `Authorization`/`Proxy-Authorization` header with the `Digest` scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestResponse {
    /// `username` (unescaped).
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`, as we issued it (if we did).
    pub nonce: String,
    /// `uri`: the digest-uri the response was computed over.
    pub uri: String,
    /// `response`: the client's hex digest.
    pub response: String,
    /// `algorithm` (absent means MD5, RFC 7616 §3.4).
    pub algorithm: Algorithm,
    /// `cnonce`.
    pub cnonce: Option<String>,
    /// `nc` as sent (8 hex digits; the text enters the hash).
    pub nc: Option<String>,
    /// `qop`.
    pub qop: Option<String>,
    /// `opaque`.
    pub opaque: Option<String>,
}

impl DigestResponse {
    /// The nonce-count as a number.
    pub fn nonce_count(&self) -> Option<u32> {
        u32::from_str_radix(self.nc.as_deref()?, 16).ok()
    }
}

/// Why an `Authorization` header could not be read. [`NotDigest`](Self::NotDigest) and
/// [`UnsupportedAlgorithm`](Self::UnsupportedAlgorithm) deserve a fresh challenge (RFC 4475
/// `regaut01`); the others are a broken request (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    /// The scheme is not `Digest`.
    #[error("authorization scheme is not Digest")]
    NotDigest,
    /// The parameter list does not follow RFC 7235 `auth-param` syntax.
    #[error("malformed authorization header: {0}")]
    Malformed(&'static str),
    /// A mandatory parameter is absent.
    #[error("authorization header lacks {0}")]
    MissingParameter(&'static str),
    /// A parameter appears twice.
    #[error("authorization header repeats a parameter")]
    DuplicateParameter,
    /// `algorithm` names something we do not offer.
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
}

/// Most auth-params we read from one header; a real one has about ten.
const MAX_AUTH_PARAMS: usize = 32;

fn is_lws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Parses the value of an `Authorization` or `Proxy-Authorization` header (RFC 3261 §25.1
/// `credentials`, RFC 7616 §3.4): parameter names are case-insensitive, values are tokens or
/// quoted strings with `\` escapes.
pub fn parse_authorization(value: &str) -> Result<DigestResponse, DigestParseError> {
    let value = value.trim_matches([' ', '\t']);
    let scheme_end = value.bytes().position(is_lws).unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestParseError::NotDigest);
    }
    let params = parse_auth_params(rest)?;
    let mut fields: [Option<Cow<'_, str>>; 10] = Default::default();
    const NAMES: [&str; 10] = [
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "nc",
        "qop",
        "opaque",
    ];
    for (name, value) in params {
        // Unknown parameters (`userhash`, extensions) are ignored, as RFC 7616 §3.4 allows.
        let Some(slot) = NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .and_then(|i| fields.get_mut(i))
        else {
            continue;
        };
        if slot.replace(value).is_some() {
            return Err(DigestParseError::DuplicateParameter);
        }
    }
    let [
        username,
        realm,
        nonce,
        uri,
        response,
        algorithm,
        cnonce,
        nc,
        qop,
        opaque,
    ] = fields;
    let required = |v: Option<Cow<'_, str>>, name| {
        v.map(Cow::into_owned)
            .ok_or(DigestParseError::MissingParameter(name))
    };
    let algorithm = match algorithm {
        None => Algorithm::Md5,
        Some(a) => Algorithm::from_token(&a).ok_or(DigestParseError::UnsupportedAlgorithm)?,
    };
    let nc = nc.map(Cow::into_owned);
    if let Some(nc) = &nc
        && (nc.len() != 8 || !nc.bytes().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(DigestParseError::Malformed("nc is not 8 hex digits"));
    }
    let parsed = DigestResponse {
        username: required(username, "username")?,
        realm: required(realm, "realm")?,
        nonce: required(nonce, "nonce")?,
        uri: required(uri, "uri")?,
        response: required(response, "response")?,
        algorithm,
        cnonce: cnonce.map(Cow::into_owned),
        nc,
        qop: qop.map(Cow::into_owned),
        opaque: opaque.map(Cow::into_owned),
    };
    // RFC 7616 §3.4: with qop, cnonce and nc are mandatory.
    if parsed.qop.is_some() {
        if parsed.cnonce.is_none() {
            return Err(DigestParseError::MissingParameter("cnonce"));
        }
        if parsed.nc.is_none() {
            return Err(DigestParseError::MissingParameter("nc"));
        }
    }
    Ok(parsed)
}

/// `auth-param *(COMMA auth-param)`, tolerating LWS and empty list elements (RFC 7230 §7).
fn parse_auth_params(s: &str) -> Result<Vec<(&str, Cow<'_, str>)>, DigestParseError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_lws = |mut i: usize| {
        while b.get(i).copied().is_some_and(is_lws) {
            i += 1;
        }
        i
    };
    loop {
        i = skip_lws(i);
        match b.get(i) {
            None => break,
            Some(b',') => {
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        if out.len() >= MAX_AUTH_PARAMS {
            return Err(DigestParseError::Malformed("too many parameters"));
        }
        let name_start = i;
        while b
            .get(i)
            .copied()
            .is_some_and(crate::message::syntax::is_token_char)
        {
            i += 1;
        }
        let name = s
            .get(name_start..i)
            .filter(|n| !n.is_empty())
            .ok_or(DigestParseError::Malformed("expected a parameter name"))?;
        i = skip_lws(i);
        if b.get(i) != Some(&b'=') {
            return Err(DigestParseError::Malformed(
                "expected '=' after a parameter name",
            ));
        }
        i = skip_lws(i + 1);
        let value =
            if b.get(i) == Some(&b'"') {
                let (value, end) = unquote(s, i)?;
                i = end;
                value
            } else {
                let start = i;
                while b
                    .get(i)
                    .copied()
                    .is_some_and(crate::message::syntax::is_token_char)
                {
                    i += 1;
                }
                let token = s.get(start..i).filter(|t| !t.is_empty()).ok_or(
                    DigestParseError::Malformed("expected a token or quoted string"),
                )?;
                Cow::Borrowed(token)
            };
        out.push((name, value));
        i = skip_lws(i);
        match b.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => {
                return Err(DigestParseError::Malformed(
                    "expected ',' between parameters",
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(DigestParseError::Malformed("no parameters"));
    }
    Ok(out)
}

/// The unescaped content of the quoted string opening at byte `start`, and the index after
/// its closing quote.
fn unquote(s: &str, start: usize) -> Result<(Cow<'_, str>, usize), DigestParseError> {
    let body = s
        .get(start + 1..)
        .ok_or(DigestParseError::Malformed("unterminated quoted string"))?;
    let mut out: Option<String> = None;
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                let end = start + 1 + at + 1;
                let value = match out {
                    Some(owned) => Cow::Owned(owned),
                    None => Cow::Borrowed(body.get(..at).unwrap_or_default()),
                };
                return Ok((value, end));
            }
            '\\' => {
                let owned = out.get_or_insert_with(|| body.get(..at).unwrap_or_default().into());
                let (_, escaped) = chars
                    .next()
                    .ok_or(DigestParseError::Malformed("unterminated quoted string"))?;
                owned.push(escaped);
            }
            _ => {
                if let Some(owned) = out.as_mut() {
                    owned.push(c);
                }
            }
        }
    }
    Err(DigestParseError::Malformed("unterminated quoted string"))
}

/// The first `header` (`Authorization` or `Proxy-Authorization`) of `msg` whose realm is
/// `realm` (a request may carry credentials for several realms, RFC 3261 §22.4). `Ok(None)`
/// when there is none: answer with a challenge. An unreadable header is returned as its error
/// only when no header for our realm was found.
pub fn find_credentials(
    msg: &impl HasHeaders,
    header: &str,
    realm: &str,
) -> Result<Option<DigestResponse>, DigestParseError> {
    let mut first_error = None;
    for value in message::header_values(msg, header) {
        match parse_authorization(&value) {
            Ok(parsed) if parsed.realm == realm => return Ok(Some(parsed)),
            Ok(_) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// The digest response a client with `ha1` must send for `method` (RFC 7616 §3.4.1;
/// RFC 2069 form when `qop` is absent).
pub fn expected_response(ha1: &Ha1, method: &str, auth: &DigestResponse) -> String {
    hex(&expected_raw(ha1.algorithm, &ha1.hex, method, auth))
}

fn expected_raw(
    algorithm: Algorithm,
    ha1_hex: &str,
    method: &str,
    auth: &DigestResponse,
) -> Vec<u8> {
    let ha2 = algorithm.hash_hex(&[method.as_bytes(), b":", auth.uri.as_bytes()]);
    match (&auth.qop, &auth.nc, &auth.cnonce) {
        (Some(qop), Some(nc), Some(cnonce)) => algorithm.hash(&[
            ha1_hex.as_bytes(),
            b":",
            auth.nonce.as_bytes(),
            b":",
            nc.as_bytes(),
            b":",
            cnonce.as_bytes(),
            b":",
            qop.as_bytes(),
            b":",
            ha2.as_bytes(),
        ]),
        _ => algorithm.hash(&[
            ha1_hex.as_bytes(),
            b":",
            auth.nonce.as_bytes(),
            b":",
            ha2.as_bytes(),
        ]),
    }
}

/// Settings of a [`DigestAuthenticator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestConfig {
    /// The realm we challenge with (the SIP domain).
    pub realm: String,
    /// How long a nonce is accepted; a correct response with an older nonce is answered with a
    /// new challenge carrying `stale=true` (RFC 7616 §3.3).
    pub nonce_lifetime: Duration,
    /// How far in the future a nonce's issue time may lie: nodes behind one front end share
    /// the secret but not a perfectly equal clock.
    pub clock_skew: Duration,
    /// `opaque` to send and require back, if any.
    pub opaque: Option<String>,
    /// Nonces whose nonce-count is remembered at once (replay protection).
    pub replay_capacity: usize,
    /// Algorithms accepted in answers: those we challenge with. An answer naming another
    /// is refused, so a client (or someone replaying its traffic) cannot choose MD5 where
    /// only SHA-256 is offered.
    pub algorithms: Vec<Algorithm>,
}

impl DigestConfig {
    /// Defaults for `realm`: 300 s nonces, 5 s skew, no opaque, 16384 tracked nonces.
    pub fn new(realm: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
            nonce_lifetime: Duration::from_secs(300),
            clock_skew: Duration::from_secs(5),
            opaque: None,
            replay_capacity: 16 * 1024,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        }
    }
}

/// The server secret is too short to key the nonce HMAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the nonce secret must be at least {MIN_SECRET_LEN} bytes")]
pub struct WeakSecret;

/// Shortest accepted nonce secret (128 bits).
pub const MIN_SECRET_LEN: usize = 16;

/// Why a digest response did not authenticate. Only [`Stale`](Self::Stale) means the client
/// knew the password; every other kind is answered with a fresh challenge and counts as a
/// failed attempt ([`counts_as_failure`](Self::counts_as_failure)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// Correct response, but the nonce is too old (or its count history is gone): challenge
    /// again with `stale=true`.
    #[error("stale nonce")]
    Stale,
    /// Wrong password or unknown user; deliberately one case (no user enumeration).
    #[error("wrong credentials")]
    WrongResponse,
    /// The nonce was not issued by us (bad HMAC, bad encoding, or dated in the future).
    #[error("invalid nonce")]
    InvalidNonce,
    /// The credentials are for another realm.
    #[error("foreign realm")]
    ForeignRealm,
    /// `opaque` differs from what we sent.
    #[error("opaque mismatch")]
    OpaqueMismatch,
    /// No `qop=auth`: without it there is no nonce-count and no replay protection, so the
    /// RFC 2069 form is refused.
    #[error("qop=auth required")]
    QopRequired,
    /// The nonce-count did not grow: a replayed request.
    #[error("replayed nonce count")]
    Replayed,
    /// The answer names an algorithm we did not offer (a downgrade).
    #[error("algorithm not offered")]
    AlgorithmNotOffered,
}

impl AuthFailure {
    /// Whether the answer carries `stale=true`.
    pub fn is_stale(self) -> bool {
        self == AuthFailure::Stale
    }

    /// Whether this should count toward banning the source (everything but a stale nonce,
    /// which honest clients hit every `nonce_lifetime`).
    pub fn counts_as_failure(self) -> bool {
        !self.is_stale()
    }
}

/// Nonce layout: issue time (8 bytes, big-endian Unix seconds), salt (8), HMAC tag (16).
const NONCE_BYTES: usize = 32;
/// HMAC-SHA256 truncated to 128 bits (RFC 2104 §5 allows truncation to half the output).
const TAG_BYTES: usize = 16;
const NONCE_DOMAIN: &[u8] = b"amtsleitung digest nonce v1\0";

/// Issues challenges and verifies digest responses for one realm.
pub struct DigestAuthenticator {
    config: DigestConfig,
    key: HmacSha256,
    dummy: Credentials,
    counts: NonceCounts,
}

impl std::fmt::Debug for DigestAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestAuthenticator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DigestAuthenticator {
    /// An authenticator whose nonces are keyed by `secret` (random, at least
    /// [`MIN_SECRET_LEN`] bytes; nodes that share it accept each other's nonces).
    pub fn new(config: DigestConfig, secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(WeakSecret);
        }
        let key = HmacSha256::new_from_slice(secret).map_err(|_| WeakSecret)?;
        // The dummy HA1 is derived from the secret so nobody can know a password matching it.
        let dummy_ha1 = |algorithm: Algorithm| {
            let mut mac = key.clone();
            mac.update(b"amtsleitung dummy ha1\0");
            mac.update(algorithm.token().as_bytes());
            let tag = mac.finalize().into_bytes();
            let bytes = tag.get(..algorithm.output_len()).unwrap_or_default();
            Ha1 {
                algorithm,
                hex: hex(bytes),
            }
        };
        let dummy = Credentials::default()
            .with(dummy_ha1(Algorithm::Md5))
            .with(dummy_ha1(Algorithm::Sha256));
        let counts = NonceCounts::new(config.replay_capacity);
        Ok(Self {
            config,
            key,
            dummy,
            counts,
        })
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.config.realm
    }

    /// The two challenge values for `WWW-Authenticate` (401) or `Proxy-Authenticate` (407),
    /// SHA-256 first as RFC 8760 §2.4 asks, each with its own fresh nonce. `stale` marks the
    /// answer to a correct response with an old nonce.
    pub fn challenges(&self, now: SystemTime, stale: bool) -> [String; 2] {
        [Algorithm::Sha256, Algorithm::Md5].map(|a| self.challenge(a, now, stale))
    }

    /// One challenge value for `algorithm`.
    pub fn challenge(&self, algorithm: Algorithm, now: SystemTime, stale: bool) -> String {
        let nonce = self.new_nonce(unix_secs(now), rand::random());
        self.challenge_with(algorithm, &nonce, stale)
    }

    /// The challenge after a wrong answer to `nonce`: the same nonce again while it is ours
    /// and fresh, else a new one. A client that reads a new nonce as "perhaps mine was
    /// stale" tries the same wrong password again (PJSIP does, three times), and each try
    /// would count toward a ban; with the same nonce it knows the password is wrong.
    pub fn rechallenge(&self, algorithm: Algorithm, nonce: &str, now: SystemTime) -> String {
        let now_secs = unix_secs(now);
        let fresh = self.open_nonce(nonce).is_some_and(|(issued, _)| {
            issued <= now_secs.saturating_add(self.config.clock_skew.as_secs())
                && now_secs.saturating_sub(issued) <= self.config.nonce_lifetime.as_secs()
        });
        if fresh {
            self.challenge_with(algorithm, nonce, false)
        } else {
            self.challenge(algorithm, now, false)
        }
    }

    fn challenge_with(&self, algorithm: Algorithm, nonce: &str, stale: bool) -> String {
        let mut out = String::with_capacity(160);
        out.push_str("Digest realm=");
        push_quoted(&mut out, &self.config.realm);
        out.push_str(", nonce=\"");
        out.push_str(nonce);
        out.push('"');
        if let Some(opaque) = &self.config.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, opaque);
        }
        out.push_str(", algorithm=");
        out.push_str(algorithm.token());
        out.push_str(", qop=\"auth\"");
        if stale {
            out.push_str(", stale=true");
        }
        out
    }

    fn nonce_tag(&self, issued: u64, salt: u64) -> [u8; TAG_BYTES] {
        let mut mac = self.key.clone();
        mac.update(NONCE_DOMAIN);
        mac.update(&issued.to_be_bytes());
        mac.update(&salt.to_be_bytes());
        // The realm is last and the fields before it have fixed sizes, so the input is
        // unambiguous; binding it stops a nonce of one realm from serving another that shares
        // the secret. The source address is deliberately not bound: NAT rebinding and a front
        // end (Kamailio) change it mid-conversation, and nonce-count already stops replays.
        mac.update(self.config.realm.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(full.get(..TAG_BYTES).unwrap_or(&[0; TAG_BYTES]));
        tag
    }

    fn new_nonce(&self, issued: u64, salt: u64) -> String {
        let mut bytes = [0u8; NONCE_BYTES];
        bytes[..8].copy_from_slice(&issued.to_be_bytes());
        bytes[8..16].copy_from_slice(&salt.to_be_bytes());
        bytes[16..].copy_from_slice(&self.nonce_tag(issued, salt));
        hex(&bytes)
    }

    /// The issue time of a nonce we made, with its identity for the nonce-count table;
    /// `None` when it is not ours.
    fn open_nonce(&self, nonce: &str) -> Option<(u64, NonceId)> {
        let bytes: [u8; NONCE_BYTES] = unhex(nonce)?.try_into().ok()?;
        let (head, tag) = bytes.split_at(16);
        let issued = u64::from_be_bytes(head.get(..8)?.try_into().ok()?);
        let salt = u64::from_be_bytes(head.get(8..16)?.try_into().ok()?);
        let ok: bool = self.nonce_tag(issued, salt).ct_eq(tag).into();
        if !ok {
            return None;
        }
        Some((issued, head.try_into().ok()?))
    }

    /// Checks a response to one of our challenges for a request with `method`.
    /// `credentials` is the user's stored HA1s, or `None` for an unknown user: the same work
    /// is done either way, and the result is [`AuthFailure::WrongResponse`] for both.
    ///
    /// Replay protection: a bounded table remembers the highest nonce-count per nonce. When
    /// full it evicts the nonce issued earliest and raises a horizon to that issue time; any
    /// nonce issued at or before the horizon that is no longer in the table is treated as
    /// stale (the client silently re-authenticates with a fresh nonce). A nonce issued after
    /// the horizon cannot have been evicted, so "not in the table" means "never used", and
    /// an evicted nonce can never be replayed. Only correct responses enter the table, so
    /// filling it takes valid credentials; evicting the oldest first keeps the horizon
    /// behind the nonces in use as long as the table holds more than a lifetime's worth.
    pub fn verify(
        &mut self,
        auth: &DigestResponse,
        method: &str,
        credentials: Option<&Credentials>,
        now: SystemTime,
    ) -> Result<(), AuthFailure> {
        if auth.realm != self.config.realm {
            return Err(AuthFailure::ForeignRealm);
        }
        if !self.config.algorithms.contains(&auth.algorithm) {
            return Err(AuthFailure::AlgorithmNotOffered);
        }
        if let Some(opaque) = &self.config.opaque
            && auth.opaque.as_deref() != Some(opaque.as_str())
        {
            return Err(AuthFailure::OpaqueMismatch);
        }
        let nc = match (&auth.qop, auth.nonce_count(), &auth.cnonce) {
            (Some(qop), Some(nc), Some(_)) if qop.eq_ignore_ascii_case("auth") => nc,
            _ => return Err(AuthFailure::QopRequired),
        };
        let (issued, id) = self
            .open_nonce(&auth.nonce)
            .ok_or(AuthFailure::InvalidNonce)?;
        let now = unix_secs(now);
        if issued > now.saturating_add(self.config.clock_skew.as_secs()) {
            return Err(AuthFailure::InvalidNonce);
        }
        // Same path for unknown users and users without this algorithm's HA1.
        let ha1 = credentials
            .and_then(|c| c.ha1(auth.algorithm))
            .or_else(|| self.dummy.ha1(auth.algorithm))
            .map(|h| h.hex.as_str())
            .unwrap_or_default();
        let is_user = credentials.and_then(|c| c.ha1(auth.algorithm)).is_some();
        let expected = expected_raw(auth.algorithm, ha1, method, auth);
        let given = unhex(&auth.response).unwrap_or_default();
        let matches: bool = expected.ct_eq(&given).into();
        if !(matches && is_user) {
            return Err(AuthFailure::WrongResponse);
        }
        if now.saturating_sub(issued) > self.config.nonce_lifetime.as_secs() {
            return Err(AuthFailure::Stale);
        }
        self.counts.record(id, issued, nc)
    }
}

/// Identity of a nonce for the nonce-count table: its issue time and salt.
type NonceId = [u8; 16];

/// Highest nonce-count seen per nonce, bounded; see [`DigestAuthenticator::verify`].
struct NonceCounts {
    table: BoundedMap<NonceId, u32>,
    /// Issue time of the latest-issued nonce ever evicted.
    horizon: Option<u64>,
}

impl NonceCounts {
    fn new(capacity: usize) -> Self {
        Self {
            table: BoundedMap::new(capacity),
            horizon: None,
        }
    }

    fn record(&mut self, id: NonceId, issued: u64, nc: u32) -> Result<(), AuthFailure> {
        if let Some(seen) = self.table.get_mut(&id) {
            if nc <= *seen {
                return Err(AuthFailure::Replayed);
            }
            *seen = nc;
            return Ok(());
        }
        if self.horizon.is_some_and(|h| issued <= h) {
            return Err(AuthFailure::Stale);
        }
        if let Some((_, _, evicted_issue)) = self.table.insert(id, nc, issued) {
            self.horizon = Some(self.horizon.map_or(evicted_issue, |h| h.max(evicted_issue)));
        }
        Ok(())
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests;
