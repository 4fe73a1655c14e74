//! The client side of digest authentication (RFC 3261 §22.2–22.3, RFC 7616, RFC 8760): reading
//! the challenges of a 401/407 and answering one with an `Authorization` or
//! `Proxy-Authorization` value. What a trunk needs to register with a carrier (and, later, to
//! authenticate the INVITEs we send it).
//!
//! Pure: the cnonce comes in as an argument, the nonce-count is kept per challenge by
//! [`DigestClient`]. The hashing is the server side's own ([`super::expected_response`]), so
//! both sides agree by construction and the RFC 7616 vectors pin them both.
//!
//! Not supported, on purpose for now: the `-sess` algorithms, `SHA-512-256`, `qop=auth-int`
//! and `userhash` (carriers ask for MD5 or SHA-256 with `qop=auth`); a challenge that only
//! offers those is reported as unanswerable rather than answered wrongly.

use std::borrow::Cow;

use super::{
    Algorithm, Credentials, DigestParseError, DigestResponse, Ha1, MAX_AUTH_PARAMS, expected_raw,
    hex, parse_auth_params, push_quoted,
};
use crate::message::syntax::{is_token_char, skip_quoted};

#[cfg(test)]
mod tests;

/// The quality of protection we answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// The challenge has no `qop`: the RFC 2069 form without cnonce and nonce-count, which RFC
    /// 3261 §22.4 still asks clients to support for old servers.
    Absent,
    /// `qop=auth`.
    Auth,
}

/// One `Digest` challenge from a `WWW-Authenticate` or `Proxy-Authenticate` value that we can
/// answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm` (unescaped).
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed unchanged.
    pub opaque: Option<String>,
    /// `algorithm` (absent means MD5).
    pub algorithm: Algorithm,
    /// Whether the challenge named its algorithm: only then is it echoed, since a server of
    /// the RFC 2069 era may not know the parameter.
    pub algorithm_named: bool,
    /// What we answer with, chosen from the offered `qop` list.
    pub qop: Qop,
    /// `stale=true`: our last answer was right but its nonce too old (RFC 7616 §3.3).
    pub stale: bool,
}

/// Why a response's challenges cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The response carries no challenge header at all.
    #[error("no challenge in the response")]
    Missing,
    /// Only other schemes (Basic, Bearer...) are offered.
    #[error("no Digest challenge offered")]
    NotDigest,
    /// The parameter list does not follow RFC 7235 `auth-param` syntax.
    #[error("malformed challenge: {0}")]
    Malformed(&'static str),
    /// A mandatory parameter (`realm`, `nonce`) is absent.
    #[error("challenge lacks {0}")]
    MissingParameter(&'static str),
    /// A parameter appears twice in one challenge.
    #[error("challenge repeats a parameter")]
    DuplicateParameter,
    /// Only algorithms we do not implement are offered.
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// A `qop` list without `auth`.
    #[error("no supported qop offered")]
    UnsupportedQop,
    /// Our stored HA1s are for another realm or algorithm than the ones challenged with.
    #[error("no stored HA1 for the challenged realm and algorithm")]
    NoSecretForRealm,
}

impl From<DigestParseError> for ChallengeError {
    fn from(e: DigestParseError) -> Self {
        match e {
            DigestParseError::Malformed(m) => ChallengeError::Malformed(m),
            DigestParseError::MissingParameter(p) => ChallengeError::MissingParameter(p),
            DigestParseError::DuplicateParameter => ChallengeError::DuplicateParameter,
            DigestParseError::UnsupportedAlgorithm => ChallengeError::UnsupportedAlgorithm,
            DigestParseError::NotDigest => ChallengeError::NotDigest,
        }
    }
}

/// What we prove our identity with.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The plain password: answers any realm and algorithm.
    Password(String),
    /// HA1s computed beforehand for one realm, so the password need not be kept; answers only
    /// that realm and the algorithms stored.
    Ha1 {
        /// The realm the HA1s were computed for.
        realm: String,
        /// The HA1s.
        credentials: Credentials,
    },
}

impl std::fmt::Debug for Secret {
    // Both forms are password-equivalent: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Password(_) => f.write_str("Secret::Password(..)"),
            Secret::Ha1 { realm, .. } => write!(f, "Secret::Ha1({realm:?}, ..)"),
        }
    }
}

impl Secret {
    /// The HA1 of `username` for `realm` and `algorithm`, if this secret can answer them.
    pub fn ha1(&self, username: &str, realm: &str, algorithm: Algorithm) -> Option<Ha1> {
        match self {
            Secret::Password(password) => Some(Ha1::compute(algorithm, username, realm, password)),
            Secret::Ha1 {
                realm: stored,
                credentials,
            } => (stored == realm)
                .then(|| credentials.ha1(algorithm).cloned())
                .flatten(),
        }
    }
}

/// A username and its secret, for answering challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The digest `username` (often not the AOR's user part at carriers).
    pub username: String,
    /// Password or stored HA1s.
    pub secret: Secret,
}

/// Reads every `Digest` challenge in one header value (RFC 7235 §4.1: a value may hold several
/// challenges, of any scheme; other schemes are skipped). Each entry is a challenge we can
/// answer or why that one cannot be answered; empty when there is no Digest challenge.
pub fn parse_challenges(value: &str) -> Vec<Result<Challenge, ChallengeError>> {
    let mut out = Vec::new();
    // (scheme, its auth-param items); items before any scheme are reported as malformed.
    let mut current: Option<(&str, Vec<&str>)> = None;
    let mut orphan = false;
    for item in split_list(value) {
        let item = item.trim_matches([' ', '\t']);
        if item.is_empty() {
            continue;
        }
        match scheme_start(item) {
            Some((scheme, first)) => {
                if let Some(done) = current.take() {
                    push_digest(&mut out, done);
                }
                let items = if first.is_empty() {
                    Vec::new()
                } else {
                    vec![first]
                };
                current = Some((scheme, items));
            }
            None => match current.as_mut() {
                Some((_, items)) => items.push(item),
                None => orphan = true,
            },
        }
    }
    if let Some(done) = current {
        push_digest(&mut out, done);
    }
    if orphan && out.is_empty() {
        out.push(Err(ChallengeError::Malformed(
            "parameters before an auth scheme",
        )));
    }
    out
}

/// The strongest challenge among header `values` (all `WWW-Authenticate`, or all
/// `Proxy-Authenticate`, values of one response) that `secret` can answer: SHA-256 before MD5
/// (RFC 8760 §2.4), the first one offered among equals. When none can be answered, the reason
/// the first unusable one gave.
pub fn select_challenge<I>(
    values: I,
    secret: &Secret,
    username: &str,
) -> Result<Challenge, ChallengeError>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut best: Option<Challenge> = None;
    let mut first_error = None;
    let mut seen_value = false;
    for value in values {
        seen_value = true;
        for parsed in parse_challenges(value.as_ref()) {
            let usable = parsed.and_then(|c| {
                secret
                    .ha1(username, &c.realm, c.algorithm)
                    .map(|_| c)
                    .ok_or(ChallengeError::NoSecretForRealm)
            });
            match usable {
                Ok(c) => {
                    if best
                        .as_ref()
                        .is_none_or(|b| rank(c.algorithm) > rank(b.algorithm))
                    {
                        best = Some(c);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    match (best, first_error, seen_value) {
        (Some(c), _, _) => Ok(c),
        (None, Some(e), _) => Err(e),
        (None, None, true) => Err(ChallengeError::NotDigest),
        (None, None, false) => Err(ChallengeError::Missing),
    }
}

fn rank(algorithm: Algorithm) -> u8 {
    match algorithm {
        Algorithm::Md5 => 1,
        Algorithm::Sha256 => 2,
    }
}

impl Challenge {
    /// The `Authorization`/`Proxy-Authorization` value answering this challenge for a request
    /// with `method` and Request-URI `uri`, as the `nc`-th use of the nonce with client nonce
    /// `cnonce` (both ignored in the RFC 2069 form).
    pub fn answer(
        &self,
        credentials: &ClientCredentials,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> Result<String, ChallengeError> {
        let ha1 = credentials
            .secret
            .ha1(&credentials.username, &self.realm, self.algorithm)
            .ok_or(ChallengeError::NoSecretForRealm)?;
        let (qop, nc, cnonce) = match self.qop {
            Qop::Auth => (
                Some("auth".to_string()),
                Some(format!("{nc:08x}")),
                Some(cnonce.to_string()),
            ),
            Qop::Absent => (None, None, None),
        };
        let mut auth = DigestResponse {
            username: credentials.username.clone(),
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            uri: uri.to_string(),
            response: String::new(),
            algorithm: self.algorithm,
            cnonce,
            nc,
            qop,
            opaque: self.opaque.clone(),
        };
        auth.response = hex(&expected_raw(ha1.algorithm(), ha1.as_hex(), method, &auth));
        Ok(self.format(&auth))
    }

    fn format(&self, auth: &DigestResponse) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("Digest username=");
        push_quoted(&mut out, &auth.username);
        out.push_str(", realm=");
        push_quoted(&mut out, &auth.realm);
        out.push_str(", nonce=");
        push_quoted(&mut out, &auth.nonce);
        out.push_str(", uri=");
        push_quoted(&mut out, &auth.uri);
        out.push_str(", response=\"");
        out.push_str(&auth.response);
        out.push('"');
        if self.algorithm_named {
            out.push_str(", algorithm=");
            out.push_str(self.algorithm.token());
        }
        if let (Some(cnonce), Some(nc)) = (&auth.cnonce, &auth.nc) {
            // RFC 7616 §3.4: qop and nc are tokens, cnonce a quoted string.
            out.push_str(", cnonce=");
            push_quoted(&mut out, cnonce);
            out.push_str(", nc=");
            out.push_str(nc);
            out.push_str(", qop=auth");
        }
        if let Some(opaque) = &auth.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, opaque);
        }
        out
    }
}

/// Answers one challenge request after request, counting the nonce's uses (RFC 7616 §3.4:
/// `nc` grows with every request that reuses the nonce, so the server can refuse replays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestClient {
    challenge: Challenge,
    uses: u32,
}

impl DigestClient {
    /// Starts answering `challenge`, nonce-count 1 next.
    pub fn new(challenge: Challenge) -> Self {
        Self { challenge, uses: 0 }
    }

    /// The challenge being answered.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// How many answers were made with this nonce so far (the last `nc` sent).
    pub fn uses(&self) -> u32 {
        self.uses
    }

    /// The header value for the next request using this nonce.
    pub fn authorize(
        &mut self,
        credentials: &ClientCredentials,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Result<String, ChallengeError> {
        // Saturating: 2^32 requests on one nonce do not happen; a repeated count is refused by
        // the server (replay), which then sends a fresh nonce.
        let nc = self.uses.saturating_add(1);
        let value = self
            .challenge
            .answer(credentials, method, uri, cnonce, nc)?;
        self.uses = nc;
        Ok(value)
    }
}

/// Splits a header value at commas outside quoted strings (which may hold commas and `\"`).
fn split_list(value: &str) -> Vec<&str> {
    let b = value.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => {
                // An unterminated quote swallows the rest; the param parser reports it.
                i = skip_quoted(b, i).unwrap_or(b.len());
                continue;
            }
            b',' => {
                parts.push(value.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(value.get(start..).unwrap_or_default());
    parts
}

/// When a list item opens a new challenge (`scheme SP+ rest`, where `rest` is not `= value`),
/// the scheme and the rest (its first auth-param, a token68, or nothing).
fn scheme_start(item: &str) -> Option<(&str, &str)> {
    let b = item.as_bytes();
    let end = b.iter().position(|c| !is_token_char(*c)).unwrap_or(b.len());
    let scheme = item.get(..end).filter(|s| !s.is_empty())?;
    let rest = item.get(end..)?;
    let after = rest.trim_start_matches([' ', '\t']);
    if rest.is_empty() {
        return Some((scheme, ""));
    }
    // `name = value` (with or without LWS around `=`) is a parameter, not a scheme.
    if after.len() == rest.len() || after.starts_with('=') {
        return None;
    }
    Some((scheme, after))
}

fn push_digest(
    out: &mut Vec<Result<Challenge, ChallengeError>>,
    (scheme, items): (&str, Vec<&str>),
) {
    if scheme.eq_ignore_ascii_case("Digest") {
        out.push(parse_digest_params(&items));
    }
}

fn parse_digest_params(items: &[&str]) -> Result<Challenge, ChallengeError> {
    if items.len() > MAX_AUTH_PARAMS {
        return Err(ChallengeError::Malformed("too many parameters"));
    }
    const NAMES: [&str; 6] = ["realm", "nonce", "opaque", "algorithm", "qop", "stale"];
    let mut fields: [Option<Cow<'_, str>>; 6] = Default::default();
    for item in items {
        for (name, value) in parse_auth_params(item)? {
            // Unknown parameters (`domain`, `charset`, `userhash`, extensions) are ignored
            // (RFC 7616 §3.3).
            let Some(slot) = NAMES
                .iter()
                .position(|n| n.eq_ignore_ascii_case(name))
                .and_then(|i| fields.get_mut(i))
            else {
                continue;
            };
            if slot.replace(value).is_some() {
                return Err(ChallengeError::DuplicateParameter);
            }
        }
    }
    let [realm, nonce, opaque, algorithm, qop, stale] = fields;
    let realm = realm.ok_or(ChallengeError::MissingParameter("realm"))?;
    let nonce = nonce.ok_or(ChallengeError::MissingParameter("nonce"))?;
    let algorithm_named = algorithm.is_some();
    let algorithm = match algorithm {
        None => Algorithm::Md5,
        Some(a) => Algorithm::from_token(&a).ok_or(ChallengeError::UnsupportedAlgorithm)?,
    };
    let qop = match qop {
        None => Qop::Absent,
        Some(list) => {
            let offers_auth = list
                .split(',')
                .any(|q| q.trim_matches([' ', '\t']).eq_ignore_ascii_case("auth"));
            if !offers_auth {
                return Err(ChallengeError::UnsupportedQop);
            }
            Qop::Auth
        }
    };
    Ok(Challenge {
        realm: realm.into_owned(),
        nonce: nonce.into_owned(),
        opaque: opaque.map(Cow::into_owned),
        algorithm,
        algorithm_named,
        qop,
        // RFC 7616 §3.3: anything but a case-insensitive "true" means false.
        stale: stale.is_some_and(|s| s.eq_ignore_ascii_case("true")),
    })
}
