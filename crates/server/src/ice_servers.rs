//! STUN and TURN servers handed to WebRTC clients: the server itself is ICE-lite with one
//! host candidate, which a browser behind a firewall that blocks UDP, or on a network that
//! only lets HTTPS out, cannot reach. A TURN relay (coturn, as Jitsi and BigBlueButton ship
//! it) on TCP or TLS port 443 gets those clients in; the server only tells them where it is.
//!
//! WHIP and WHEP clients learn the servers from `Link` headers on the `201 Created`
//! (RFC 9725 §4.6), the join page from its session answer. Credentials are either fixed
//! (`username` and `credential`) or made per session from a secret shared with the relay
//! (coturn's `use-auth-secret` / `static-auth-secret`, the "TURN REST API" scheme): username
//! `<expiry>:amtsleitung`, password the base64 HMAC-SHA1 of that username under the secret,
//! so a leaked page or log grants the relay for hours, not for ever.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

/// How long credentials made from a shared secret stay valid, unless configured: a working
/// day, so that a session opened in the morning can still re-allocate its relay in the
/// afternoon (an allocation is refreshed with the same credentials).
pub const DEFAULT_CREDENTIAL_LIFETIME_S: u64 = 12 * 3600;

/// The name inside per-session usernames; coturn only reads the expiry before the colon.
const SECRET_USER: &str = "amtsleitung";

/// One `[[webrtc.ice-servers]]` entry, checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawIceServer")]
pub struct IceServer {
    urls: Vec<String>,
    credentials: Credentials,
}

/// How a client authenticates to the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credentials {
    /// STUN needs none.
    None,
    /// The same for every client.
    Fixed {
        username: String,
        credential: String,
    },
    /// Made per session from a secret the relay shares.
    SharedSecret { secret: String, lifetime_s: u64 },
}

/// An entry as written in the configuration file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawIceServer {
    urls: Vec<String>,
    username: Option<String>,
    credential: Option<String>,
    shared_secret: Option<String>,
    credential_lifetime: Option<u64>,
}

/// What a client is given for one server: the fields of WebRTC's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServerGrant {
    /// `stun:`, `stuns:`, `turn:` or `turns:` URLs (RFC 7064, RFC 7065).
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl TryFrom<RawIceServer> for IceServer {
    type Error = String;

    fn try_from(raw: RawIceServer) -> Result<Self, String> {
        if raw.urls.is_empty() {
            return Err("an ICE server needs at least one URL in `urls`".into());
        }
        let mut turn = false;
        for url in &raw.urls {
            turn |= check_url(url)?;
        }
        let credentials = match (raw.username, raw.credential, raw.shared_secret) {
            (None, None, None) if turn => {
                return Err(
                    "a TURN server needs `username` and `credential`, or `shared-secret`".into(),
                );
            }
            (None, None, None) => Credentials::None,
            (Some(username), Some(credential), None) => {
                check_quotable("username", &username)?;
                check_quotable("credential", &credential)?;
                Credentials::Fixed {
                    username,
                    credential,
                }
            }
            (None, None, Some(secret)) if !secret.is_empty() => Credentials::SharedSecret {
                secret,
                lifetime_s: raw
                    .credential_lifetime
                    .unwrap_or(DEFAULT_CREDENTIAL_LIFETIME_S)
                    .max(60),
            },
            (None, None, Some(_)) => return Err("`shared-secret` is empty".into()),
            (Some(_), None, None) => return Err("`username` is set but `credential` is not".into()),
            (None, Some(_), None) => return Err("`credential` is set but `username` is not".into()),
            (_, _, Some(_)) => {
                return Err(
                    "give either `username` and `credential` or `shared-secret`, not both".into(),
                );
            }
        };
        if raw.credential_lifetime.is_some()
            && !matches!(credentials, Credentials::SharedSecret { .. })
        {
            return Err("`credential-lifetime` only applies with `shared-secret`".into());
        }
        Ok(Self {
            urls: raw.urls,
            credentials,
        })
    }
}

/// Checks one URL; true for a TURN URL. Only the scheme and the characters are checked: the
/// host is the client's to resolve, and the URL goes into a `Link` header, so nothing that
/// would end or split the header value may be in it.
fn check_url(url: &str) -> Result<bool, String> {
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(format!(
            "ICE server URL {url:?} has no scheme (stun:, stuns:, turn:, turns:)"
        ));
    };
    let turn = match scheme {
        "stun" | "stuns" => false,
        "turn" | "turns" => true,
        other => {
            return Err(format!(
                "ICE server URL {url:?}: scheme {other:?} is none of stun, stuns, turn, turns"
            ));
        }
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!(
            "ICE server URL {url:?} names no host (write e.g. turn:turn.example.org:3478)"
        ));
    }
    if let Some(bad) = url
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ','))
    {
        return Err(format!("ICE server URL {url:?} contains {bad:?}"));
    }
    Ok(turn)
}

/// A value that goes into a quoted `Link` parameter must not end the quote.
fn check_quotable(key: &str, value: &str) -> Result<(), String> {
    match value
        .chars()
        .find(|c| c.is_control() || matches!(c, '"' | '\\'))
    {
        Some(bad) => Err(format!(
            "`{key}` contains {bad:?}, which a Link header cannot carry"
        )),
        None => Ok(()),
    }
}

impl IceServer {
    /// What a client opening a session at `unix_now` (seconds) is given.
    pub fn grant(&self, unix_now: u64) -> IceServerGrant {
        let (username, credential) = match &self.credentials {
            Credentials::None => (None, None),
            Credentials::Fixed {
                username,
                credential,
            } => (Some(username.clone()), Some(credential.clone())),
            Credentials::SharedSecret { secret, lifetime_s } => {
                let username = format!("{}:{SECRET_USER}", unix_now + lifetime_s);
                let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
                    .expect("HMAC takes keys of any length");
                mac.update(username.as_bytes());
                let password =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                (Some(username), Some(password))
            }
        };
        IceServerGrant {
            urls: self.urls.clone(),
            username,
            credential,
        }
    }
}

impl IceServerGrant {
    /// One `Link` header value per URL (RFC 9725 §4.6, RFC 8288).
    pub fn link_headers(&self) -> impl Iterator<Item = String> + '_ {
        self.urls.iter().map(|url| {
            let mut link = format!("<{url}>; rel=\"ice-server\"");
            if let (Some(username), Some(credential)) = (&self.username, &self.credential) {
                link.push_str(&format!(
                    "; username=\"{username}\"; credential=\"{credential}\"; credential-type=\"password\""
                ));
            }
            link
        })
    }
}

/// The grants for every configured server, for a session opened now.
pub fn grants(servers: &[IceServer]) -> Vec<IceServerGrant> {
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    servers.iter().map(|s| s.grant(unix_now)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        #[serde(rename = "ice-servers")]
        ice_servers: Vec<IceServer>,
    }

    fn parse(text: &str) -> Result<Vec<IceServer>, String> {
        toml::from_str::<File>(text)
            .map(|f| f.ice_servers)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn stun_and_fixed_turn_credentials_become_link_headers() {
        let servers = parse(
            "[[ice-servers]]\nurls = [\"stun:stun.example.org\"]\n\
             [[ice-servers]]\nurls = [\"turn:turn.example.org:3478?transport=udp\", \"turns:turn.example.org:443?transport=tcp\"]\n\
             username = \"amt\"\ncredential = \"s3cret\"\n",
        )
        .unwrap();
        let links: Vec<String> = grants(&servers)
            .iter()
            .flat_map(|g| g.link_headers().collect::<Vec<_>>())
            .collect();
        assert_eq!(
            links,
            [
                "<stun:stun.example.org>; rel=\"ice-server\"",
                "<turn:turn.example.org:3478?transport=udp>; rel=\"ice-server\"; username=\"amt\"; credential=\"s3cret\"; credential-type=\"password\"",
                "<turns:turn.example.org:443?transport=tcp>; rel=\"ice-server\"; username=\"amt\"; credential=\"s3cret\"; credential-type=\"password\"",
            ]
        );
    }

    #[test]
    fn a_shared_secret_gives_expiring_credentials_coturn_accepts() {
        let servers = parse(
            "[[ice-servers]]\nurls = [\"turn:turn.example.org\"]\nshared-secret = \"north\"\ncredential-lifetime = 3600\n",
        )
        .unwrap();
        let grant = servers[0].grant(1_700_000_000);
        assert_eq!(grant.username.as_deref(), Some("1700003600:amtsleitung"));
        // coturn's check, by hand: base64(HMAC-SHA1("north", "1700003600:amtsleitung")),
        // computed with `printf %s 1700003600:amtsleitung | openssl dgst -sha1 -hmac north -binary | base64`.
        assert_eq!(
            grant.credential.as_deref(),
            Some("aasaVJEy0GLvxyTlQ3sEexN465s=")
        );
        assert_ne!(
            servers[0].grant(1_700_000_001),
            grant,
            "each grant expires on its own"
        );
    }

    #[test]
    fn mistakes_are_refused_with_what_is_wrong() {
        let refused = |entry: &str| parse(&format!("[[ice-servers]]\n{entry}\n")).unwrap_err();
        assert!(refused("urls = []").contains("at least one URL"));
        assert!(refused("urls = [\"turn.example.org\"]").contains("no scheme"));
        assert!(refused("urls = [\"http://turn.example.org\"]").contains("none of stun"));
        assert!(refused("urls = [\"turn:\"]").contains("names no host"));
        assert!(refused("urls = [\"turn:a>b\"]").contains("contains '>'"));
        assert!(refused("urls = [\"turn:t.example.org\"]").contains("needs `username`"));
        assert!(refused("urls = [\"turn:t\"]\nusername = \"u\"").contains("`credential` is not"));
        assert!(
            refused("urls = [\"turn:t\"]\nusername = \"u\"\ncredential = \"a\\\"b\"")
                .contains("cannot carry")
        );
        assert!(
            refused(
                "urls = [\"turn:t\"]\nusername = \"u\"\ncredential = \"c\"\nshared-secret = \"s\""
            )
            .contains("not both")
        );
        assert!(refused("urls = [\"stun:s\"]\ncredential-lifetime = 60").contains("only applies"));
        assert!(refused("urls = [\"stun:s\"]\npassword = \"x\"").contains("unknown field"));
    }
}
