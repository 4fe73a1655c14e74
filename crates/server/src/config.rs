//! Server configuration: embedded defaults, an optional TOML file, and command-line flags on top.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use media::sdp::SrtpPolicy;
use serde::Deserialize;

/// A range of UDP ports for RTP (even) and RTCP (odd) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port (inclusive).
    pub low: u16,
    /// Last port (inclusive).
    pub high: u16,
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (low, high) = text
            .split_once('-')
            .ok_or_else(|| format!("'{text}' is not a range like 20000-30000"))?;
        let low: u16 = low
            .trim()
            .parse()
            .map_err(|_| format!("'{low}' is not a port number"))?;
        let high: u16 = high
            .trim()
            .parse()
            .map_err(|_| format!("'{high}' is not a port number"))?;
        if low == 0 || high <= low {
            return Err(format!(
                "'{text}' must be LOW-HIGH with 0 < LOW < HIGH (at least one RTP/RTCP pair)"
            ));
        }
        Ok(Self { low, high })
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `media` knows nothing of serde; the word is read as its `FromStr` reads it, and a wrong
/// one names the three words.
fn srtp_policy<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SrtpPolicy, D::Error> {
    let word = String::deserialize(deserializer)?;
    word.parse().map_err(serde::de::Error::custom)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with span fields (call-id, room).
    Json,
}

/// Everything `amtsleitung serve` needs. Every field has a working default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Config {
    /// SIP address for UDP and TCP.
    pub sip_listen: SocketAddr,
    /// SIP-over-TLS address (RFC 3261 §26.2); default: the IP of `sip-listen` and the port
    /// after it (5061 next to 5060). Only with `tls-certificate`.
    pub sip_tls_listen: Option<SocketAddr>,
    /// The server's certificate chain for SIP over TLS (PEM, leaf first); reloaded when
    /// the file changes. Without it there is no TLS listener.
    pub tls_certificate: Option<PathBuf>,
    /// The private key of `tls-certificate` (PEM).
    pub tls_key: Option<PathBuf>,
    /// Address written into SDP; None = the local address that routes towards each caller.
    pub media_ip: Option<IpAddr>,
    /// RTP/RTCP port range.
    pub rtp_ports: PortRange,
    /// Admin HTTP address.
    pub http_listen: SocketAddr,
    /// Admin HTTPS address: the same routes as `http-listen`, over TLS, for browsers (they
    /// give a page the microphone only in a secure context). None = no HTTPS listener.
    pub https_listen: Option<SocketAddr>,
    /// The certificate chain for `https-listen` (PEM, leaf first); reloaded when the file
    /// changes. Default: `tls-certificate`, the one SIP over TLS presents.
    pub https_certificate: Option<PathBuf>,
    /// The private key of `https-certificate` (PEM).
    pub https_key: Option<PathBuf>,
    /// Data directory (SQLite database, recordings).
    pub data_dir: PathBuf,
    /// Directory with `*.toml` dialplans.
    pub dialplans: PathBuf,
    /// Directory with prompts, `<lang>/<name>.wav`.
    pub sounds: PathBuf,
    /// The music a held party hears (a WAV file, mono 16-bit PCM, any rate; looped).
    /// Default: the shipped `sounds/music-on-hold.wav`, built into the binary.
    pub music_on_hold: Option<PathBuf>,
    /// File with the SIP trunks (`trunks.toml`, see `crates/trunks/examples`); none = no
    /// outside lines.
    pub trunks: Option<PathBuf>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Number of media worker threads; 0 = one per core.
    pub media_workers: usize,
    /// Whether calls must, may or must not use SRTP (`off`, `optional`, `required`) for users
    /// without a setting of their own (`amtsleitung user srtp`). Keys travel in the SDP
    /// (SDES, RFC 4568), so they are secret only where signalling runs over TLS.
    #[serde(deserialize_with = "srtp_policy")]
    pub srtp: SrtpPolicy,
    /// Conference rooms.
    pub conference: ConferenceConfig,
    /// When dead calls are ended.
    pub calls: CallTimersConfig,
    /// Phones registering.
    pub registrar: RegistrarSettings,
    /// Protection against floods.
    pub security: SecuritySettings,
    /// WebRTC clients in rooms (WHIP ingest, WHEP egress).
    pub webrtc: WebRtcSettings,
    /// Subscriptions to colleagues' lines (busy lamp fields).
    pub presence: PresenceSettings,
    /// Voicemail: message length, expiry, mail.
    pub voicemail: VoicemailSettings,
    /// Console sign-in against LDAP / Active Directory; none = local accounts only.
    pub ldap: Option<LdapSettings>,
    /// The web console's sessions.
    pub console: ConsoleSettings,
    /// Several nodes behind a SIP proxy.
    pub pool: PoolSettings,
    /// Where the store is: SQLite in `data-dir` (the default) or a PostgreSQL database.
    pub store: StoreSettings,
    /// `[[tenant]]`: further town halls on this system, each a SIP domain with its own
    /// users and dialplan (see `tenants.rs`); none for a single town hall.
    #[serde(rename = "tenant")]
    pub tenants: Vec<crate::tenants::TenantSettings>,
}

/// `[pool]`: this node is one of several behind a SIP proxy (Kamailio, see
/// deploy/kamailio/amtsleitung-pool.cfg).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct PoolSettings {
    /// The proxy's SIP address ("IP:PORT"). The lobby (`conference` without a room) then
    /// hands a caller who keyed a room number on to that room's node: it calls
    /// `8<room>@proxy`, which the proxy sends to the node holding the room, and relays the
    /// call; that node asks for the PIN. Without it, the lobby's callers meet in rooms on the
    /// node that answered.
    pub proxy: Option<SocketAddr>,
    /// This node's name in the shared store, where its calls in progress are noted (so that
    /// after a failure it closes its own calls' records only). Default: `sip-listen`; set it
    /// when several nodes listen on the same address (e.g. 0.0.0.0:5060).
    pub node: Option<String>,
}

impl Config {
    /// This node's name in the store (`[pool] node`, else `sip-listen`).
    pub fn node_name(&self) -> String {
        self.pool
            .node
            .clone()
            .unwrap_or_else(|| self.sip_listen.to_string())
    }
}

/// `[store]`: the database behind the store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct StoreSettings {
    /// A PostgreSQL database (`postgresql://user:password@host:port/db`) instead of SQLite
    /// in the data directory; for several nodes sharing rooms, users and call records.
    pub url: Option<StoreUrl>,
}

/// A PostgreSQL connection string. It may hold a password, so it is never printed:
/// `Debug` and `Display` show user, host, port and database only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// The whole connection string, password included: for connecting only.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&store::postgres_description(&self.0))
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

impl<'de> Deserialize<'de> for StoreUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match store::check_postgres_url(&text) {
            Ok(()) => Ok(Self(text)),
            Err(err) => Err(serde::de::Error::custom(err)),
        }
    }
}

/// `[console]`: the web console.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct ConsoleSettings {
    /// Minutes without a request after which a console session ends (1 to 1440).
    #[serde(deserialize_with = "idle_minutes")]
    pub idle_minutes: u32,
    /// The number outside callers dial to reach the conference lobby (where they key the
    /// room number and PIN), as written in room invitations, e.g. "+49 7071 204-8000".
    pub dial_in: Option<String>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            idle_minutes: 30,
            dial_in: None,
        }
    }
}

fn idle_minutes<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let minutes = u32::deserialize(deserializer)?;
    if (1..=1440).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(serde::de::Error::custom(format!(
            "idle-minutes must be 1 to 1440 (a day), not {minutes}"
        )))
    }
}

/// `[presence]`: SUBSCRIBE/NOTIFY for busy lamp fields (RFC 6665, RFC 4235).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct PresenceSettings {
    /// Subscriptions one user may hold at once (a phone with a side car watches a few dozen
    /// lines); more get 503.
    pub max_subscriptions_per_user: usize,
    /// Subscriptions at once in all; more get 503.
    pub max_subscriptions: usize,
    /// Shortest subscription granted, in seconds (shorter: 423 with Min-Expires).
    pub min_expires: u32,
    /// Longest subscription granted, in seconds (longer requests are shortened).
    pub max_expires: u32,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self {
            max_subscriptions_per_user: 50,
            max_subscriptions: 5000,
            min_expires: 60,
            max_expires: 3600,
        }
    }
}

/// `[voicemail]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct VoicemailSettings {
    /// Longest message in seconds; the recording ends there.
    pub max_seconds: u32,
    /// Seconds of silence that end a message (the caller stopped talking but did not hang
    /// up); 0 = never.
    pub silence_seconds: u32,
    /// Days a message is kept; older ones and their files are deleted (data protection).
    /// 0 = kept until deleted.
    pub keep_days: u32,
    /// The SMTP relay new messages are mailed through, `host:port`; none = no mail.
    pub smtp: Option<String>,
    /// The sender address of those mails.
    pub from: String,
    /// Upgrade the SMTP connection with STARTTLS (required when set).
    pub starttls: bool,
    /// SMTP login, if the relay wants one.
    pub smtp_user: Option<String>,
    /// Its password.
    pub smtp_password: Option<String>,
}

impl Default for VoicemailSettings {
    fn default() -> Self {
        Self {
            max_seconds: 120,
            silence_seconds: 5,
            keep_days: 30,
            smtp: None,
            from: "amtsleitung@localhost".into(),
            starttls: false,
            smtp_user: None,
            smtp_password: None,
        }
    }
}

/// `[ldap]` as written in the file; [`LdapSettings`] is what it means once checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LdapFile {
    /// The directory server: `ldap://host[:port]` or `ldaps://host[:port]` (TLS, port 636).
    url: String,
    /// Upgrade an `ldap://` connection with StartTLS (RFC 4511 §4.14) before any password
    /// is sent; required for `ldap://` to anything but this machine.
    #[serde(default)]
    starttls: bool,
    /// A direct bind: the user's DN with `{user}` for the name typed, e.g.
    /// `uid={user},ou=people,dc=rathaus,dc=example` (OpenLDAP).
    user_dn: Option<String>,
    /// Search first (Active Directory): where the user entries are.
    search_base: Option<String>,
    /// The filter that finds the one entry of the name typed, with `{user}`, e.g.
    /// `(&(objectClass=person)(sAMAccountName={user}))`.
    search_filter: Option<String>,
    /// The service account that searches (needed with `search-filter`); with `user-dn` it
    /// reads the user's entry and groups when the user may not.
    bind_dn: Option<String>,
    /// Its password.
    bind_password: Option<String>,
    /// The DN of the group whose members are console admins (by the group's `member` or
    /// `uniqueMember`, or by the user's `memberOf`).
    admin_group: String,
    /// The DN of the group whose members (and the admins) may sign in at all; none = every
    /// account the directory accepts.
    staff_group: Option<String>,
    /// The attribute holding the user's extension (kept only if it is a plain internal
    /// extension, digits alone).
    #[serde(default = "default_extension_attribute")]
    extension_attribute: String,
    /// Seconds a sign-in may take (connecting and every request).
    #[serde(default = "default_ldap_timeout")]
    timeout_seconds: u64,
    /// CA certificates (PEM) the server's certificate is checked against; default: the
    /// system's trust store.
    ca_file: Option<PathBuf>,
}

fn default_extension_attribute() -> String {
    "telephoneNumber".into()
}

fn default_ldap_timeout() -> u64 {
    5
}

/// Longest `timeout-seconds` accepted: a sign-in form that hangs longer helps nobody.
const MAX_LDAP_TIMEOUT_S: u64 = 120;

/// `[ldap]` settings: console sign-in against a directory (OpenLDAP, Active Directory).
/// Only a checked one exists: the file's contradictions are refused when it is read.
#[derive(Clone, Deserialize)]
#[serde(try_from = "LdapFile")]
pub struct LdapSettings {
    /// The server (`ldap` or `ldaps` scheme, a host, perhaps a port, nothing more).
    pub url: url::Url,
    /// StartTLS on an `ldap://` connection.
    pub starttls: bool,
    /// How the user's entry is found.
    pub user: LdapUserLookup,
    /// The service account, if one is configured.
    pub service_account: Option<LdapServiceAccount>,
    /// DN of the console admins' group.
    pub admin_group: String,
    /// DN of the group allowed to sign in; none = everyone the directory accepts.
    pub staff_group: Option<String>,
    /// Attribute with the user's extension.
    pub extension_attribute: String,
    /// How long a sign-in may take.
    pub timeout: std::time::Duration,
    /// CA certificates for the server's certificate; none = the system's trust store.
    pub ca_file: Option<PathBuf>,
}

/// How the user's entry is found for a name typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapUserLookup {
    /// Bind directly as this DN, `{user}` replaced by the name (RFC 4514 escaped).
    Template(String),
    /// Search below `base` with `filter`, `{user}` replaced by the name (RFC 4515 escaped),
    /// as the service account, then bind as the entry found.
    Search {
        /// Search base DN.
        base: String,
        /// Filter with `{user}`.
        filter: String,
    },
}

/// A directory account the server binds as to search and read.
#[derive(Clone, PartialEq, Eq)]
pub struct LdapServiceAccount {
    /// Its DN.
    pub dn: String,
    /// Its password (never printed: `Debug` hides it).
    pub password: String,
}

impl std::fmt::Debug for LdapServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapServiceAccount")
            .field("dn", &self.dn)
            .field("password", &"(hidden)")
            .finish()
    }
}

impl std::fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapSettings")
            .field("url", &self.url.as_str())
            .field("starttls", &self.starttls)
            .field("user", &self.user)
            .field("service_account", &self.service_account)
            .field("admin_group", &self.admin_group)
            .field("staff_group", &self.staff_group)
            .field("extension_attribute", &self.extension_attribute)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The placeholder for the name typed in `user-dn` and `search-filter`.
pub const LDAP_USER_PLACEHOLDER: &str = "{user}";

impl TryFrom<LdapFile> for LdapSettings {
    type Error = String;

    fn try_from(file: LdapFile) -> Result<Self, String> {
        let url = ldap_url(&file.url, file.starttls)?;
        let service_account = match (file.bind_dn, file.bind_password) {
            (None, None) => None,
            (Some(_), None) => return Err("[ldap] bind-dn is set but bind-password is not".into()),
            (None, Some(_)) => return Err("[ldap] bind-password is set but bind-dn is not".into()),
            (Some(dn), Some(password)) => {
                if dn.trim().is_empty() {
                    return Err("[ldap] bind-dn is empty".into());
                }
                // RFC 4513 §5.1.2: a name with an empty password is an unauthenticated
                // bind, which many servers answer with success.
                if password.is_empty() {
                    return Err("[ldap] bind-password is empty, which would be an \
                                unauthenticated bind (RFC 4513 §5.1.2)"
                        .into());
                }
                Some(LdapServiceAccount { dn, password })
            }
        };
        let user = match (file.user_dn, file.search_base, file.search_filter) {
            (Some(template), None, None) => {
                if !template.contains(LDAP_USER_PLACEHOLDER) {
                    return Err(format!(
                        "[ldap] user-dn {template:?} has no {LDAP_USER_PLACEHOLDER} for the user name"
                    ));
                }
                LdapUserLookup::Template(template)
            }
            (None, Some(base), Some(filter)) => {
                if !filter.contains(LDAP_USER_PLACEHOLDER) {
                    return Err(format!(
                        "[ldap] search-filter {filter:?} has no {LDAP_USER_PLACEHOLDER} for the user name"
                    ));
                }
                if ldap3::parse_filter(filter.replace(LDAP_USER_PLACEHOLDER, "x")).is_err() {
                    return Err(format!(
                        "[ldap] search-filter {filter:?} is not an LDAP filter (RFC 4515), \
                         e.g. \"(&(objectClass=person)(sAMAccountName={{user}}))\""
                    ));
                }
                if service_account.is_none() {
                    return Err("[ldap] search-filter needs bind-dn and bind-password: \
                                the account that searches for the user"
                        .into());
                }
                LdapUserLookup::Search { base, filter }
            }
            (None, None, None) => {
                return Err("[ldap] needs user-dn (a direct bind, e.g. \
                            \"uid={user},ou=people,dc=rathaus,dc=example\"), or search-base and \
                            search-filter with bind-dn and bind-password (search first, as for \
                            Active Directory)"
                    .into());
            }
            (Some(_), _, _) => {
                return Err(
                    "[ldap] user-dn and search-base/search-filter are two ways to find \
                            the user: set one of them"
                        .into(),
                );
            }
            (None, Some(_), None) => {
                return Err("[ldap] search-base is set but search-filter is not".into());
            }
            (None, None, Some(_)) => {
                return Err("[ldap] search-filter is set but search-base is not".into());
            }
        };
        if file.admin_group.trim().is_empty() {
            return Err("[ldap] admin-group is empty".into());
        }
        if file
            .staff_group
            .as_deref()
            .is_some_and(|g| g.trim().is_empty())
        {
            return Err("[ldap] staff-group is empty (leave it out to let everyone in)".into());
        }
        if !is_attribute_description(&file.extension_attribute) {
            return Err(format!(
                "[ldap] extension-attribute {:?} is not an attribute name",
                file.extension_attribute
            ));
        }
        if !(1..=MAX_LDAP_TIMEOUT_S).contains(&file.timeout_seconds) {
            return Err(format!(
                "[ldap] timeout-seconds must be 1 to {MAX_LDAP_TIMEOUT_S}, not {}",
                file.timeout_seconds
            ));
        }
        Ok(Self {
            url,
            starttls: file.starttls,
            user,
            service_account,
            admin_group: file.admin_group,
            staff_group: file.staff_group,
            extension_attribute: file.extension_attribute,
            timeout: std::time::Duration::from_secs(file.timeout_seconds),
            ca_file: file.ca_file,
        })
    }
}

/// The server's URL, checked: `ldap` or `ldaps`, a host, nothing after it, and no password
/// in the clear to another machine.
fn ldap_url(text: &str, starttls: bool) -> Result<url::Url, String> {
    let url =
        url::Url::parse(text).map_err(|err| format!("[ldap] url {text:?} is not a URL: {err}"))?;
    let tls = match url.scheme() {
        "ldaps" => {
            if starttls {
                return Err(format!(
                    "[ldap] starttls = true with {text}: ldaps:// is TLS from the start; \
                     use one of the two"
                ));
            }
            true
        }
        "ldap" => starttls,
        _ => {
            return Err(format!(
                "[ldap] url {text:?} must be ldap://host[:port] or ldaps://host[:port]"
            ));
        }
    };
    let host = match url.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => name.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(format!("[ldap] url {text:?} names no server")),
    };
    if !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(format!(
            "[ldap] url {text:?}: only ldap[s]://host[:port]; the DNs and the filter have \
             keys of their own"
        ));
    }
    // `ldap` is not a special scheme to the URL parser, so an IPv4 address arrives as a
    // domain name: parse it again.
    let loopback = host == "localhost"
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.to_canonical().is_loopback());
    if !tls && !loopback {
        return Err(format!(
            "[ldap] url {text} would send passwords in the clear: use ldaps:// or set \
             starttls = true (plain ldap:// only to this machine)"
        ));
    }
    Ok(url)
}

/// An attribute description as RFC 4512 §2.5 allows it: a name (`telephoneNumber`) or an
/// OID (`2.5.4.20`), no options.
fn is_attribute_description(text: &str) -> bool {
    let name = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !text.is_empty()
        && text
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
    name || oid
}

/// How long a WebRTC client whose ICE consent checks stopped may take to come back before its
/// session ends, by default. A browser itself gives up 30 s after its checks stop being answered
/// (RFC 7675 §5.1, consent expiry) and str0m reports the leg disconnected 15 s after the last
/// check it got, so 30 s more outlasts the browser's own patience with margin: a Wi-Fi hiccup
/// or a stalled laptop keeps its place in the room, while a client that is gone for good (no
/// DELETE, no DTLS close) frees it within a minute. Nothing can come back later anyway: a
/// client that changed networks would need an ICE restart, which these sessions do not offer.
pub const DEFAULT_WEBRTC_DISCONNECTED_TIMEOUT_S: u64 = 30;

/// `[webrtc]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct WebRtcSettings {
    /// The address WebRTC clients are told to send media to (the ICE host candidate, with
    /// the session's port) when the server sits behind a 1:1 NAT, e.g. a cloud VM's public
    /// address. Default: the address the session's socket is bound to (`media-ip`, else the
    /// SIP address, else the local address that routes towards the HTTP client).
    pub public_ip: Option<IpAddr>,
    /// WebRTC sessions at most, over all rooms; beyond, new ones are refused with 503. Each
    /// room's own limit is its participant limit.
    pub max_sessions: usize,
    /// Seconds a client whose ICE consent lapsed may take to come back before its session
    /// ends (see [`DEFAULT_WEBRTC_DISCONNECTED_TIMEOUT_S`]); at least 1.
    pub disconnected_timeout: u64,
    /// STUN and TURN servers handed to clients (`[[webrtc.ice-servers]]`), for browsers
    /// that cannot reach the server's address directly.
    pub ice_servers: Vec<crate::ice_servers::IceServer>,
}

impl Default for WebRtcSettings {
    fn default() -> Self {
        Self {
            public_ip: None,
            max_sessions: 500,
            disconnected_timeout: DEFAULT_WEBRTC_DISCONNECTED_TIMEOUT_S,
            ice_servers: Vec::new(),
        }
    }
}

impl WebRtcSettings {
    /// [`disconnected_timeout`](Self::disconnected_timeout) as a duration (1 s at least:
    /// 0 would end a session at the first lapse).
    pub fn disconnected_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.disconnected_timeout.max(1))
    }
}

/// `[security]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct SecuritySettings {
    /// SIP messages per second one address may send (IPv6: one /64); beyond, they are
    /// dropped unanswered before they are even parsed. A desk phone sends a few a minute.
    pub requests_per_second: u32,
    /// Messages a quiet address may send at once.
    pub request_burst: u32,
    /// Networks whose calls need no password and whose messages no rate limit: SIP trunks,
    /// a Kamailio in front, the VPN if every device on it is the town's (CIDRs, e.g.
    /// "10.8.0.0/16"). Their From header is believed. Default: this machine only (loopback);
    /// set it and loopback is trusted only if listed.
    pub trusted_networks: Vec<String>,
    /// SIP proxies in front of this node (a Kamailio pool's addresses, CIDRs). They carry
    /// many callers, so they are never rate-limited or banned themselves; the caller behind
    /// them is the client address the proxy recorded in the Via below its own (`received`,
    /// else the sent-by host), and that address is what bans, `trusted-networks` and users'
    /// allowed networks are checked against. A proxy is not trusted: its callers are not
    /// believed unless their own address is in `trusted-networks`. Default: none.
    pub proxies: Vec<String>,
    /// SIP transactions kept at once; requests beyond get 503. An answered request over UDP
    /// is kept 32 s to absorb retransmissions (RFC 3261 Timer J), about 1 KiB each: the
    /// default carries about 3,000 REGISTERs a second for good and costs at most ~100 MiB.
    pub max_transactions: usize,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            requests_per_second: 50,
            request_burst: 100,
            trusted_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            proxies: Vec::new(),
            max_transactions: sip::transaction::DEFAULT_MAX_TRANSACTIONS,
        }
    }
}

/// A digest algorithm offered to registering phones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DigestAlgorithm {
    /// RFC 8760 SHA-256.
    #[serde(rename = "SHA-256")]
    Sha256,
    /// RFC 2617 MD5.
    #[serde(rename = "MD5")]
    Md5,
}

/// `[registrar]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct RegistrarSettings {
    /// Digest algorithms challenged with, in order of preference. MD5 alone by default:
    /// phones that know only MD5 (baresip 1.0 here, many desk phones) give up when any
    /// challenge names an algorithm they do not know, while every phone knows MD5. Add
    /// "SHA-256" first (RFC 8760 §2.4) when all phones support it.
    pub digest_algorithms: Vec<DigestAlgorithm>,
    /// Shortest registration accepted, in seconds (shorter: 423).
    pub min_expires: u32,
    /// Longest registration granted, in seconds.
    pub max_expires: u32,
    /// Failed authentications from one address within `ban-window` that ban it.
    pub ban_after_failures: u32,
    /// Seconds in which failures are counted.
    pub ban_window: u64,
    /// Seconds a ban lasts.
    pub ban_seconds: u64,
    /// Seconds between two OPTIONS to each registered contact (qualify); 0 = never. A
    /// contact that does not answer within `qualify-timeout` is not rung until it answers
    /// or registers again.
    pub qualify_interval: u64,
    /// Seconds a contact has to answer a qualify OPTIONS.
    pub qualify_timeout: u64,
}

impl Default for RegistrarSettings {
    fn default() -> Self {
        Self {
            digest_algorithms: vec![DigestAlgorithm::Md5],
            min_expires: 60,
            max_expires: 3600,
            ban_after_failures: 5,
            ban_window: 600,
            ban_seconds: 900,
            qualify_interval: 30,
            qualify_timeout: 5,
        }
    }
}

/// `[calls]` settings: how long a call may stay silent or unrefreshed before it is ended.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct CallTimersConfig {
    /// Seconds without RTP from the caller before the call ends ("media timeout"); 0 = never.
    pub media_timeout: u64,
    /// The same while the caller holds the call (`sendonly`/`inactive`), when phones may
    /// legitimately send nothing; 0 = never.
    pub media_timeout_on_hold: u64,
    /// Shortest `Session-Expires` accepted (our `Min-SE`, RFC 4028). RFC 4028 §4 forbids
    /// less than 90; lower values exist for tests.
    pub min_session_expires: u32,
}

impl Default for CallTimersConfig {
    fn default() -> Self {
        Self {
            media_timeout: 60,
            media_timeout_on_hold: 3600,
            min_session_expires: sip::session_timer::RFC_MIN_SE,
        }
    }
}

impl CallTimersConfig {
    /// The media timeout for a call that is (`held`) or is not on hold; `None` = never.
    pub fn media_timeout(&self, held: bool) -> Option<std::time::Duration> {
        let secs = if held {
            self.media_timeout_on_hold
        } else {
            self.media_timeout
        };
        (secs > 0).then(|| std::time::Duration::from_secs(secs))
    }
}

/// How rooms mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MixerMode {
    /// Encode the common mix once per codec for everyone not talking, mix at the lowest
    /// rate that carries the room's codecs, mix only the loudest talkers.
    Shared,
    /// Every listener gets its own mix and encode at a fixed 16 kHz, every talker is mixed:
    /// how a conventional bridge works. Only for comparing costs.
    Conventional,
}

/// `[conference]` settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct ConferenceConfig {
    /// Only rooms created with `amtsleitung room create` can be entered (default: any room
    /// number opens a room on demand, like a free meeting room).
    pub require_precreated_rooms: bool,
    /// How many of the loudest talkers are mixed at once.
    pub max_talkers: usize,
    /// RNNoise noise suppression on every caller (costs CPU; off by default).
    pub noise_suppression: bool,
    /// `shared` (default) or `conventional` (a baseline for benchmarks).
    pub mixer: MixerMode,
    /// Days after which finished recordings are deleted with their files (0: kept until
    /// someone deletes them).
    pub recording_keep_days: u32,
}

impl Default for ConferenceConfig {
    fn default() -> Self {
        Self {
            require_precreated_rooms: false,
            max_talkers: 4,
            noise_suppression: false,
            mixer: MixerMode::Shared,
            recording_keep_days: 0,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sip_listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            sip_tls_listen: None,
            tls_certificate: None,
            tls_key: None,
            media_ip: None,
            rtp_ports: PortRange {
                low: 20000,
                high: 29999,
            },
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            https_listen: None,
            https_certificate: None,
            https_key: None,
            data_dir: PathBuf::from("data"),
            dialplans: PathBuf::from("dialplans"),
            sounds: PathBuf::from("sounds"),
            music_on_hold: None,
            trunks: None,
            log_format: LogFormat::Text,
            media_workers: 0,
            srtp: SrtpPolicy::default(),
            conference: ConferenceConfig::default(),
            calls: CallTimersConfig::default(),
            registrar: RegistrarSettings::default(),
            security: SecuritySettings::default(),
            webrtc: WebRtcSettings::default(),
            presence: PresenceSettings::default(),
            voicemail: VoicemailSettings::default(),
            ldap: None,
            console: ConsoleSettings::default(),
            pool: PoolSettings::default(),
            store: StoreSettings::default(),
            tenants: Vec::new(),
        }
    }
}

/// Where the TLS listener goes and what it presents, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Certificate chain file (PEM).
    pub certificate: PathBuf,
    /// Private key file (PEM).
    pub key: PathBuf,
}

/// Where the admin HTTPS listener goes and what it presents, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Certificate chain file (PEM).
    pub certificate: PathBuf,
    /// Private key file (PEM).
    pub key: PathBuf,
    /// The config keys the two files came from, for errors about them.
    pub keys: &'static str,
}

impl Config {
    /// The HTTPS listener asked for: `None` without `https-listen`. Its certificate is
    /// `https-certificate` and `https-key`, or, when neither is set, SIP's `tls-certificate`
    /// and `tls-key` (one certificate for the machine's name is the common case, and one
    /// file pair to renew). An error names the keys when they do not fit together: half a
    /// pair, files without an address, an address without any certificate.
    pub fn https(&self) -> Result<Option<HttpsSettings>, String> {
        let own = match (&self.https_certificate, &self.https_key) {
            (Some(certificate), Some(key)) => Some((certificate.clone(), key.clone())),
            (None, None) => None,
            (Some(_), None) => return Err("https-certificate is set but https-key is not".into()),
            (None, Some(_)) => return Err("https-key is set but https-certificate is not".into()),
        };
        let Some(listen) = self.https_listen else {
            return match own {
                Some(_) => {
                    Err("https-certificate and https-key are set but https-listen is not".into())
                }
                None => Ok(None),
            };
        };
        let (certificate, key, keys) = match own {
            Some((certificate, key)) => (certificate, key, "https-certificate, https-key"),
            None => match (&self.tls_certificate, &self.tls_key) {
                (Some(certificate), Some(key)) => (
                    certificate.clone(),
                    key.clone(),
                    "tls-certificate, tls-key (used for HTTPS too)",
                ),
                _ => {
                    return Err(
                        "https-listen is set but https-certificate and https-key are not \
                                (nor tls-certificate and tls-key, which HTTPS would use too)"
                            .into(),
                    );
                }
            },
        };
        Ok(Some(HttpsSettings {
            listen,
            certificate,
            key,
            keys,
        }))
    }

    /// The TLS listener asked for: `None` without a certificate; an error naming the keys
    /// when they do not fit together (a key without a certificate, an address without
    /// either).
    pub fn tls(&self) -> Result<Option<TlsSettings>, String> {
        let (certificate, key) = match (&self.tls_certificate, &self.tls_key) {
            (Some(certificate), Some(key)) => (certificate.clone(), key.clone()),
            (None, None) => {
                return match self.sip_tls_listen {
                    Some(_) => {
                        Err("sip-tls-listen is set but tls-certificate and tls-key are not".into())
                    }
                    None => Ok(None),
                };
            }
            (Some(_), None) => return Err("tls-certificate is set but tls-key is not".into()),
            (None, Some(_)) => return Err("tls-key is set but tls-certificate is not".into()),
        };
        let listen = match self.sip_tls_listen {
            Some(listen) => listen,
            // RFC 3261 §19.1.2: 5061 is SIP over TLS's port, as 5060 is SIP's. Port 0 (any
            // free port, for tests) stays 0.
            None => {
                let port = match self.sip_listen.port() {
                    0 => 0,
                    port => port.checked_add(1).ok_or(
                        "sip-listen uses port 65535, so the TLS port cannot follow it: set sip-tls-listen",
                    )?,
                };
                SocketAddr::new(self.sip_listen.ip(), port)
            }
        };
        Ok(Some(TlsSettings {
            listen,
            certificate,
            key,
        }))
    }
}

/// The variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "AMT_CONFIG";
/// The config file in the working directory, used when present.
pub const LOCAL_CONFIG: &str = "amtsleitung.toml";
/// The installed config file (Debian package), used when present.
pub const INSTALLED_CONFIG: &str = "/etc/amtsleitung/amtsleitung.toml";

/// Where the configuration every command acts on came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config FILE`.
    Flag(PathBuf),
    /// `$AMT_CONFIG`.
    Environment(PathBuf),
    /// `./amtsleitung.toml`.
    WorkingDirectory(PathBuf),
    /// `/etc/amtsleitung/amtsleitung.toml`.
    Installed(PathBuf),
    /// No file: the embedded defaults, paths relative to the working directory.
    Defaults,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag(path) | Self::WorkingDirectory(path) | Self::Installed(path) => {
                write!(f, "{}", path.display())
            }
            Self::Environment(path) => write!(f, "{} (from ${CONFIG_ENV})", path.display()),
            Self::Defaults => f.write_str("no config file, built-in defaults"),
        }
    }
}

/// A configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Located {
    pub config: Config,
    pub source: ConfigSource,
}

/// Finds the configuration the same way for every command, so that `room create` typed in
/// any directory changes the store the running server uses: `--config FILE`, else
/// `$AMT_CONFIG`, else `./amtsleitung.toml` if present, else the installed
/// `/etc/amtsleitung/amtsleitung.toml` if present, else the embedded defaults. A file named
/// by the flag or the variable must exist; the other two are only looked for.
pub fn locate(flag: Option<&Path>) -> anyhow::Result<Located> {
    locate_among(
        flag,
        std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()),
        Path::new(LOCAL_CONFIG),
        Path::new(INSTALLED_CONFIG),
    )
}

fn locate_among(
    flag: Option<&Path>,
    environment: Option<std::ffi::OsString>,
    local: &Path,
    installed: &Path,
) -> anyhow::Result<Located> {
    let source = if let Some(path) = flag {
        ConfigSource::Flag(path.to_path_buf())
    } else if let Some(path) = environment {
        ConfigSource::Environment(PathBuf::from(path))
    } else if local.is_file() {
        ConfigSource::WorkingDirectory(std::path::absolute(local).unwrap_or(local.to_path_buf()))
    } else if installed.is_file() {
        ConfigSource::Installed(installed.to_path_buf())
    } else {
        ConfigSource::Defaults
    };
    let config = match &source {
        ConfigSource::Flag(path)
        | ConfigSource::Environment(path)
        | ConfigSource::WorkingDirectory(path)
        | ConfigSource::Installed(path) => load_file(path)?,
        ConfigSource::Defaults => Config::default(),
    };
    Ok(Located { config, source })
}

/// Reads a config file; errors name the file and the offending key with its line. Relative
/// paths written in it are relative to the file's directory, not to wherever the command was
/// typed (the defaults of keys it leaves out stay relative to the working directory).
pub fn load_file(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("cannot read config file {}: {err}", path.display()))?;
    let mut config: Config = toml::from_str(&text).map_err(|err| {
        let location = err
            .span()
            .map(|span| {
                let line = text[..span.start].matches('\n').count() + 1;
                format!(":{line}")
            })
            .unwrap_or_default();
        anyhow::anyhow!("{}{location}: {}", path.display(), err.message().trim_end())
    })?;
    if let Some(base) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The keys the file sets; the table parses, since the same text just did.
        let written: toml::Table = toml::from_str(&text).unwrap_or_default();
        config.anchor_paths(base, |key| written.contains_key(key));
    }
    Ok(config)
}

impl Config {
    /// The paths made absolute against the working directory at start, so that what the
    /// server stores (recording files in call records and the store) and logs names the
    /// file wherever it is read from later, not relative to where the server was started.
    pub fn with_absolute_paths(mut self) -> Self {
        let absolute = |path: &mut PathBuf| {
            if let Ok(full) = std::path::absolute(&*path) {
                *path = full;
            }
        };
        absolute(&mut self.data_dir);
        absolute(&mut self.dialplans);
        absolute(&mut self.sounds);
        for path in [
            &mut self.trunks,
            &mut self.music_on_hold,
            &mut self.tls_certificate,
            &mut self.tls_key,
            &mut self.https_certificate,
            &mut self.https_key,
        ]
        .into_iter()
        .flatten()
        {
            absolute(path);
        }
        if let Some(path) = self.ldap.as_mut().and_then(|l| l.ca_file.as_mut()) {
            absolute(path);
        }
        for tenant in &mut self.tenants {
            absolute(&mut tenant.dialplans);
        }
        self
    }

    /// Makes every relative path the file sets (`written(key)`) relative to `base`, its
    /// directory. Defaults of keys it leaves out stay relative to the working directory.
    fn anchor_paths(&mut self, base: &Path, written: impl Fn(&str) -> bool) {
        let anchor = |key: &str, path: &mut PathBuf| {
            if written(key) && path.is_relative() {
                *path = base.join(&*path);
            }
        };
        anchor("data-dir", &mut self.data_dir);
        anchor("dialplans", &mut self.dialplans);
        anchor("sounds", &mut self.sounds);
        for (key, path) in [
            ("trunks", &mut self.trunks),
            ("music-on-hold", &mut self.music_on_hold),
            ("tls-certificate", &mut self.tls_certificate),
            ("tls-key", &mut self.tls_key),
            ("https-certificate", &mut self.https_certificate),
            ("https-key", &mut self.https_key),
        ] {
            if let Some(path) = path {
                anchor(key, path);
            }
        }
        // `[ldap] ca-file` has no default, so when it is set the file wrote it.
        if let Some(path) = self.ldap.as_mut().and_then(|l| l.ca_file.as_mut()) {
            anchor("ldap", path);
        }
        // A tenant's `dialplans` has no default either.
        for tenant in &mut self.tenants {
            anchor("tenant", &mut tenant.dialplans);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("amt-config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The flag wins over the variable, the variable over ./amtsleitung.toml, that over the
    /// installed file, and without any the embedded defaults apply.
    #[test]
    fn config_is_found_by_flag_then_variable_then_working_directory_then_installed() {
        let dir = scratch("locate");
        let write = |name: &str, port: u16| {
            let path = dir.join(name);
            std::fs::write(&path, format!("http-listen = \"127.0.0.1:{port}\"\n")).unwrap();
            path
        };
        let (flag, env, local, installed) = (
            write("flag.toml", 1),
            write("env.toml", 2),
            write("local.toml", 3),
            write("installed.toml", 4),
        );
        let port = |flag: Option<&Path>, env: Option<&Path>, local: &Path, installed: &Path| {
            let found = locate_among(
                flag,
                env.map(|p| p.as_os_str().to_owned()),
                local,
                installed,
            )
            .unwrap();
            (found.config.http_listen.port(), found.source)
        };
        let missing = dir.join("missing.toml");
        assert_eq!(
            port(Some(&flag), Some(&env), &local, &installed),
            (1, ConfigSource::Flag(flag.clone()))
        );
        assert_eq!(
            port(None, Some(&env), &local, &installed),
            (2, ConfigSource::Environment(env.clone()))
        );
        assert_eq!(
            port(None, None, &local, &installed),
            (3, ConfigSource::WorkingDirectory(local.clone()))
        );
        assert_eq!(
            port(None, None, &missing, &installed),
            (4, ConfigSource::Installed(installed.clone()))
        );
        assert_eq!(
            port(None, None, &missing, &missing),
            (8080, ConfigSource::Defaults)
        );
        // A file the admin named must be there: a typo is an error, not the defaults.
        let err = locate_among(Some(&missing), None, &local, &installed).unwrap_err();
        assert!(err.to_string().contains("missing.toml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn console_and_recording_settings_are_read_and_checked() {
        let dir = scratch("console");
        let path = dir.join("amtsleitung.toml");
        std::fs::write(
            &path,
            "[console]\nidle-minutes = 15\ndial-in = \"+49 7071 204-8000\"\n\
             [conference]\nrecording-keep-days = 90\n",
        )
        .unwrap();
        let config = load_file(&path).unwrap();
        assert_eq!(config.console.idle_minutes, 15);
        assert_eq!(config.console.dial_in.as_deref(), Some("+49 7071 204-8000"));
        assert_eq!(config.conference.recording_keep_days, 90);
        std::fs::write(&path, "[console]\nidle-minutes = 0\n").unwrap();
        let err = format!("{:#}", load_file(&path).unwrap_err());
        assert!(err.contains("idle-minutes must be 1 to 1440"), "{err}");
    }

    #[test]
    fn pool_settings_name_the_proxy_and_refuse_what_is_no_address() {
        let dir = scratch("pool");
        let path = dir.join("amtsleitung.toml");
        std::fs::write(
            &path,
            "[pool]\nproxy = \"10.0.0.5:5060\"\n[security]\nproxies = [\"10.0.0.5/32\"]\n",
        )
        .unwrap();
        let config = load_file(&path).unwrap();
        assert_eq!(config.pool.proxy, Some("10.0.0.5:5060".parse().unwrap()));
        assert_eq!(config.security.proxies, ["10.0.0.5/32"]);
        assert!(load_file(&dir.join("none.toml")).is_err());
        std::fs::write(&path, "[pool]\nproxy = \"kamailio\"\n").unwrap();
        let err = format!("{:#}", load_file(&path).unwrap_err());
        assert!(
            err.contains("amtsleitung.toml:2") && err.contains("invalid socket address"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn store_is_sqlite_by_default_and_postgres_by_url_whose_password_stays_hidden() {
        assert!(Config::default().store.url.is_none(), "SQLite in data-dir");
        let dir = scratch("store");
        let path = dir.join("amtsleitung.toml");
        std::fs::write(
            &path,
            "[store]\nurl = \"postgresql://sip:geheim@db.example:5433/pbx\"\n",
        )
        .unwrap();
        let config = load_file(&path).unwrap();
        let url = config.store.url.clone().unwrap();
        assert_eq!(url.secret(), "postgresql://sip:geheim@db.example:5433/pbx");
        assert_eq!(url.to_string(), "postgresql://sip@db.example:5433/pbx");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("geheim") && shown.contains("db.example"),
            "{shown}"
        );
        std::fs::write(
            &path,
            "[store]\nurl = \"postgresql://sip:geheim@db:notaport/pbx\"\n",
        )
        .unwrap();
        let err = format!("{:#}", load_file(&path).unwrap_err());
        assert!(
            err.contains("toml:2: cannot read the PostgreSQL connection string")
                && !err.contains("geheim"),
            "{err}"
        );
        std::fs::write(&path, "[store]\npath = \"x\"\n").unwrap();
        let err = format!("{:#}", load_file(&path).unwrap_err());
        assert!(err.contains("path"), "{err}");
    }

    #[test]
    fn relative_paths_in_a_config_file_are_relative_to_its_directory() {
        let dir = scratch("anchor");
        let path = dir.join("amtsleitung.toml");
        std::fs::write(
            &path,
            "data-dir = \"data\"\nsounds = \"/usr/share/amtsleitung/sounds\"\n\
             trunks = \"trunks.toml\"\n",
        )
        .unwrap();
        let config = load_file(&path).unwrap();
        assert_eq!(config.data_dir, dir.join("data"));
        assert_eq!(
            config.dialplans,
            PathBuf::from("dialplans"),
            "a default, not written"
        );
        assert_eq!(
            config.sounds,
            PathBuf::from("/usr/share/amtsleitung/sounds")
        );
        assert_eq!(config.trunks, Some(dir.join("trunks.toml")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paths_are_made_absolute_against_the_working_directory() {
        let config = Config {
            trunks: Some(PathBuf::from("trunks.toml")),
            ..Config::default()
        }
        .with_absolute_paths();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(config.data_dir, cwd.join("data"));
        assert_eq!(config.trunks, Some(cwd.join("trunks.toml")));
        assert!(config.sounds.is_absolute() && config.dialplans.is_absolute());
    }

    #[test]
    fn port_range_rejects_reversed_and_garbage() {
        assert_eq!(
            "20000-20010".parse::<PortRange>(),
            Ok(PortRange {
                low: 20000,
                high: 20010
            })
        );
        assert!("20010-20000".parse::<PortRange>().is_err());
        assert!("abc".parse::<PortRange>().is_err());
        assert!("0-10".parse::<PortRange>().is_err());
        assert!("1-70000".parse::<PortRange>().is_err());
    }

    #[test]
    fn config_file_unknown_key_is_named_with_its_line() {
        let dir = std::env::temp_dir().join(format!("amt-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(
            &path,
            "sip-listen = \"127.0.0.1:5070\"\nrtp-portz = \"1-2\"\n",
        )
        .unwrap();
        let err = load_file(&path).unwrap_err().to_string();
        assert!(err.contains("bad.toml:2"), "{err}");
        assert!(err.contains("rtp-portz"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn conference_section_is_read_and_checked() {
        let config: Config =
            toml::from_str("[conference]\nrequire-precreated-rooms = true\nmax-talkers = 3\n")
                .unwrap();
        assert!(config.conference.require_precreated_rooms);
        assert_eq!(config.conference.max_talkers, 3);
        assert!(!config.conference.noise_suppression);
        assert_eq!(config.conference.mixer, MixerMode::Shared);
        assert!(toml::from_str::<Config>("[conference]\nmax-speakers = 3\n").is_err());
        let config: Config = toml::from_str("[conference]\nmixer = \"conventional\"\n").unwrap();
        assert_eq!(config.conference.mixer, MixerMode::Conventional);
        let err = toml::from_str::<Config>("[conference]\nmixer = \"fast\"\n").unwrap_err();
        assert!(err.to_string().contains("shared"), "{err}");
    }

    #[test]
    fn call_timers_default_to_a_minute_an_hour_on_hold_and_the_rfc_min_se() {
        let config = Config::default();
        assert_eq!(
            config.calls.media_timeout(false),
            Some(std::time::Duration::from_secs(60))
        );
        assert_eq!(
            config.calls.media_timeout(true),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(config.calls.min_session_expires, 90);
        let config: Config =
            toml::from_str("[calls]\nmedia-timeout = 0\nmin-session-expires = 4\n").unwrap();
        assert_eq!(config.calls.media_timeout(false), None);
        assert_eq!(config.calls.min_session_expires, 4);
        assert!(toml::from_str::<Config>("[calls]\nrtp-timeout = 3\n").is_err());
    }

    #[test]
    fn srtp_defaults_to_optional_and_takes_the_three_words_only() {
        assert_eq!(Config::default().srtp, SrtpPolicy::Optional);
        for (text, policy) in [
            ("srtp = \"off\"\n", SrtpPolicy::Off),
            ("srtp = \"optional\"\n", SrtpPolicy::Optional),
            ("srtp = \"Required\"\n", SrtpPolicy::Required),
        ] {
            assert_eq!(
                toml::from_str::<Config>(text).unwrap().srtp,
                policy,
                "{text}"
            );
        }
        let err = toml::from_str::<Config>("srtp = \"on\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("expected off, optional or required"),
            "{err}"
        );
        assert!(toml::from_str::<Config>("srtp = true\n").is_err());
    }

    #[test]
    fn tls_listens_on_the_port_after_sip_only_with_a_certificate() {
        assert_eq!(Config::default().tls(), Ok(None));
        let config: Config = toml::from_str(
            "sip-listen = \"10.99.0.1:5060\"\ntls-certificate = \"/etc/amt/cert.pem\"\ntls-key = \"/etc/amt/key.pem\"\n",
        )
        .unwrap();
        let tls = config.tls().unwrap().unwrap();
        assert_eq!(tls.listen, "10.99.0.1:5061".parse().unwrap());
        assert_eq!(tls.certificate, PathBuf::from("/etc/amt/cert.pem"));
        assert_eq!(tls.key, PathBuf::from("/etc/amt/key.pem"));
        let config: Config = toml::from_str(
            "sip-tls-listen = \"0.0.0.0:5071\"\ntls-certificate = \"c.pem\"\ntls-key = \"k.pem\"\n",
        )
        .unwrap();
        assert_eq!(
            config.tls().unwrap().unwrap().listen,
            "0.0.0.0:5071".parse().unwrap()
        );
    }

    #[test]
    fn tls_settings_that_do_not_fit_together_name_the_keys() {
        let err = |text: &str| toml::from_str::<Config>(text).unwrap().tls().unwrap_err();
        assert!(err("tls-certificate = \"c.pem\"\n").contains("tls-key"));
        assert!(err("tls-key = \"k.pem\"\n").contains("tls-certificate"));
        assert!(err("sip-tls-listen = \"0.0.0.0:5061\"\n").contains("sip-tls-listen"));
        assert!(
            err("sip-listen = \"0.0.0.0:65535\"\ntls-certificate = \"c\"\ntls-key = \"k\"\n")
                .contains("sip-tls-listen")
        );
        assert!(toml::from_str::<Config>("tls-cert = \"c.pem\"\n").is_err());
    }

    #[test]
    fn https_needs_an_address_and_takes_its_own_certificate_or_sips() {
        assert_eq!(Config::default().https(), Ok(None));
        let config: Config = toml::from_str(
            "https-listen = \"0.0.0.0:8443\"\nhttps-certificate = \"/etc/amt/web.pem\"\n\
             https-key = \"/etc/amt/web.key\"\ntls-certificate = \"sip.pem\"\ntls-key = \"sip.key\"\n",
        )
        .unwrap();
        let https = config.https().unwrap().unwrap();
        assert_eq!(https.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(
            (https.certificate, https.key),
            ("/etc/amt/web.pem".into(), "/etc/amt/web.key".into()),
            "its own pair wins over SIP's"
        );
        assert_eq!(https.keys, "https-certificate, https-key");
        let config: Config = toml::from_str(
            "https-listen = \"0.0.0.0:8443\"\ntls-certificate = \"sip.pem\"\ntls-key = \"sip.key\"\n",
        )
        .unwrap();
        let https = config.https().unwrap().unwrap();
        assert_eq!(
            (https.certificate, https.key),
            ("sip.pem".into(), "sip.key".into())
        );
        assert!(https.keys.contains("tls-certificate"), "{}", https.keys);
    }

    #[test]
    fn https_settings_that_do_not_fit_together_name_the_keys() {
        let err = |text: &str| toml::from_str::<Config>(text).unwrap().https().unwrap_err();
        let listen = "https-listen = \"0.0.0.0:8443\"\n";
        let half = err(&format!("{listen}https-certificate = \"c.pem\"\n"));
        assert!(half.contains("https-key is not"), "{half}");
        let half = err(&format!("{listen}https-key = \"k.pem\"\n"));
        assert!(half.contains("https-certificate is not"), "{half}");
        // Half a pair of its own is refused even where SIP's pair could stand in.
        let half = err(&format!(
            "{listen}https-key = \"k.pem\"\ntls-certificate = \"c\"\ntls-key = \"k\"\n"
        ));
        assert!(half.contains("https-certificate is not"), "{half}");
        let nothing = err(listen);
        assert!(
            nothing.contains("https-certificate") && nothing.contains("tls-certificate"),
            "{nothing}"
        );
        let nowhere = err("https-certificate = \"c.pem\"\nhttps-key = \"k.pem\"\n");
        assert!(nowhere.contains("https-listen is not"), "{nowhere}");
        assert!(toml::from_str::<Config>("https-cert = \"c.pem\"\n").is_err());
    }

    #[test]
    fn https_files_in_a_config_file_are_relative_to_its_directory() {
        let dir = scratch("https-anchor");
        let path = dir.join("amtsleitung.toml");
        std::fs::write(
            &path,
            "https-listen = \"[::]:8443\"\nhttps-certificate = \"tls/web.pem\"\n\
             https-key = \"/etc/amt/web.key\"\n",
        )
        .unwrap();
        let https = load_file(&path).unwrap().https().unwrap().unwrap();
        assert_eq!(https.certificate, dir.join("tls/web.pem"));
        assert_eq!(https.key, PathBuf::from("/etc/amt/web.key"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tenants_are_read_with_their_dialplans_relative_to_the_config_file() {
        assert!(
            Config::default().tenants.is_empty(),
            "a single town names none"
        );
        let dir = scratch("tenants");
        let path = dir.join("amtsleitung.toml");
        std::fs::write(
            &path,
            "[[tenant]]\ndomain = \"stadt-a.example\"\ndialplans = \"stadt-a/plans\"\n\n\
             [[tenant]]\ndomain = \"stadt-b.example\"\ndialplans = \"/etc/amt/b\"\n",
        )
        .unwrap();
        let config = load_file(&path).unwrap();
        let tenants: Vec<(&str, &Path)> = config
            .tenants
            .iter()
            .map(|t| (t.domain.as_str(), t.dialplans.as_path()))
            .collect();
        let plans_a = dir.join("stadt-a/plans");
        assert_eq!(
            tenants,
            [
                ("stadt-a.example", plans_a.as_path()),
                ("stadt-b.example", Path::new("/etc/amt/b"))
            ]
        );
        std::fs::write(&path, "[[tenant]]\ndomain = \"stadt-a.example\"\n").unwrap();
        let err = load_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("dialplans"),
            "a tenant needs its dialplan: {err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn webrtc_section_is_read_and_checked() {
        let config = Config::default();
        assert_eq!(config.webrtc.public_ip, None);
        assert_eq!(
            config.webrtc.disconnected_timeout(),
            std::time::Duration::from_secs(30)
        );
        let config: Config = toml::from_str(
            "[webrtc]\npublic-ip = \"203.0.113.9\"\nmax-sessions = 7\ndisconnected-timeout = 0\n",
        )
        .unwrap();
        assert_eq!(
            config.webrtc.public_ip,
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(config.webrtc.max_sessions, 7);
        assert_eq!(
            config.webrtc.disconnected_timeout(),
            std::time::Duration::from_secs(1)
        );
        assert!(toml::from_str::<Config>("[webrtc]\npublic-address = \"1.2.3.4\"\n").is_err());
    }

    const LDAP_DIRECT: &str = "[ldap]\nurl = \"ldap://127.0.0.1:389\"\n\
        user-dn = \"uid={user},ou=people,dc=rathaus,dc=example\"\n\
        admin-group = \"cn=pbx-admins,ou=groups,dc=rathaus,dc=example\"\n";

    fn ldap(text: &str) -> Result<LdapSettings, String> {
        toml::from_str::<Config>(text)
            .map(|config| config.ldap.expect("an [ldap] section"))
            .map_err(|err| err.to_string())
    }

    #[test]
    fn ldap_is_off_without_a_section_and_takes_defaults_with_one() {
        assert!(Config::default().ldap.is_none());
        let settings = ldap(LDAP_DIRECT).unwrap();
        assert_eq!(settings.url.as_str(), "ldap://127.0.0.1:389");
        assert!(!settings.starttls);
        assert_eq!(
            settings.user,
            LdapUserLookup::Template("uid={user},ou=people,dc=rathaus,dc=example".into())
        );
        assert_eq!(settings.service_account, None);
        assert_eq!(settings.staff_group, None);
        assert_eq!(settings.extension_attribute, "telephoneNumber");
        assert_eq!(settings.timeout, std::time::Duration::from_secs(5));
    }

    #[test]
    fn ldap_search_needs_a_service_account_whose_password_stays_hidden() {
        let search = "[ldap]\nurl = \"ldaps://dc1.rathaus.example\"\n\
            search-base = \"dc=rathaus,dc=example\"\n\
            search-filter = \"(&(objectClass=person)(sAMAccountName={user}))\"\n\
            admin-group = \"cn=pbx-admins,dc=rathaus,dc=example\"\n";
        let err = ldap(search).unwrap_err();
        assert!(err.contains("bind-dn and bind-password"), "{err}");
        let settings = ldap(&format!(
            "{search}bind-dn = \"cn=reader,dc=rathaus,dc=example\"\nbind-password = \"geheim\"\n"
        ))
        .unwrap();
        assert!(matches!(settings.user, LdapUserLookup::Search { .. }));
        let account = settings.service_account.clone().unwrap();
        assert_eq!(account.password, "geheim");
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("geheim") && shown.contains("cn=reader"),
            "{shown}"
        );
    }

    #[test]
    fn ldap_wants_exactly_one_way_to_find_the_user() {
        let head = "[ldap]\nurl = \"ldap://localhost\"\nadmin-group = \"cn=a,dc=x\"\n\
            bind-dn = \"cn=reader,dc=x\"\nbind-password = \"pw\"\n";
        let neither = ldap(head).unwrap_err();
        assert!(
            neither.contains("user-dn") && neither.contains("search-filter"),
            "{neither}"
        );
        let both = ldap(&format!(
            "{head}user-dn = \"uid={{user}},dc=x\"\nsearch-base = \"dc=x\"\n\
             search-filter = \"(uid={{user}})\"\n"
        ))
        .unwrap_err();
        assert!(both.contains("set one"), "{both}");
        let half = ldap(&format!("{head}search-base = \"dc=x\"\n")).unwrap_err();
        assert!(half.contains("search-filter is not"), "{half}");
        let half = ldap(&format!("{head}search-filter = \"(uid={{user}})\"\n")).unwrap_err();
        assert!(half.contains("search-base is not"), "{half}");
        let no_placeholder = ldap(&format!("{head}user-dn = \"uid=anna,dc=x\"\n")).unwrap_err();
        assert!(no_placeholder.contains("{user}"), "{no_placeholder}");
        let not_a_filter = ldap(&format!(
            "{head}search-base = \"dc=x\"\nsearch-filter = \"(uid={{user}}\"\n"
        ))
        .unwrap_err();
        assert!(
            not_a_filter.contains("not an LDAP filter"),
            "{not_a_filter}"
        );
    }

    #[test]
    fn ldap_refuses_passwords_in_the_clear_to_another_machine() {
        let with_url = |url: &str, extra: &str| {
            ldap(
                &LDAP_DIRECT
                    .replace("ldap://127.0.0.1:389", url)
                    .replace("[ldap]\n", &format!("[ldap]\n{extra}")),
            )
        };
        let err = with_url("ldap://dc1.rathaus.example", "").unwrap_err();
        assert!(
            err.contains("in the clear") && err.contains("starttls = true"),
            "{err}"
        );
        assert!(with_url("ldap://10.0.0.5:389", "").is_err());
        assert!(with_url("ldap://dc1.rathaus.example", "starttls = true\n").is_ok());
        assert!(with_url("ldaps://dc1.rathaus.example", "").is_ok());
        for loopback in [
            "ldap://localhost",
            "ldap://127.0.0.1:3389",
            "ldap://[::1]:389",
        ] {
            assert!(with_url(loopback, "").is_ok(), "{loopback}");
        }
        let both = with_url("ldaps://dc1.rathaus.example", "starttls = true\n").unwrap_err();
        assert!(both.contains("use one of the two"), "{both}");
        for bad in [
            "http://dc1.rathaus.example",
            "ldapi:///run/slapd/ldapi",
            "dc1.rathaus.example",
            "ldaps://dc1.rathaus.example/dc=rathaus,dc=example?uid",
            "ldaps://",
        ] {
            assert!(with_url(bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn ldap_refuses_an_empty_service_password_and_half_an_account() {
        let err = ldap(&format!(
            "{LDAP_DIRECT}bind-dn = \"cn=reader,dc=x\"\nbind-password = \"\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("unauthenticated bind"), "{err}");
        assert!(
            ldap(&format!("{LDAP_DIRECT}bind-dn = \"cn=reader,dc=x\"\n"))
                .unwrap_err()
                .contains("bind-password is not")
        );
        assert!(
            ldap(&format!("{LDAP_DIRECT}bind-password = \"pw\"\n"))
                .unwrap_err()
                .contains("bind-dn is not")
        );
    }

    #[test]
    fn ldap_checks_attribute_timeout_groups_and_unknown_keys() {
        assert!(ldap(&format!("{LDAP_DIRECT}extension-attribute = \"ipPhone\"\n")).is_ok());
        assert!(
            ldap(&format!(
                "{LDAP_DIRECT}extension-attribute = \"2.5.4.20\"\n"
            ))
            .is_ok()
        );
        assert!(ldap(&format!("{LDAP_DIRECT}extension-attribute = \"(phone)\"\n")).is_err());
        assert!(ldap(&format!("{LDAP_DIRECT}timeout-seconds = 0\n")).is_err());
        assert_eq!(
            ldap(&format!("{LDAP_DIRECT}timeout-seconds = 2\n"))
                .unwrap()
                .timeout,
            std::time::Duration::from_secs(2)
        );
        assert!(ldap(&format!("{LDAP_DIRECT}staff-group = \"\"\n")).is_err());
        let err = ldap(&format!("{LDAP_DIRECT}admin-groups = \"cn=x\"\n")).unwrap_err();
        assert!(err.contains("admin-groups"), "{err}");
        let err =
            ldap("[ldap]\nurl = \"ldap://localhost\"\nuser-dn = \"uid={user}\"\n").unwrap_err();
        assert!(err.contains("admin-group"), "{err}");
    }

    #[test]
    fn ldap_errors_name_the_file_and_the_section_line() {
        let dir = scratch("ldap");
        let path = dir.join("amtsleitung.toml");
        std::fs::write(
            &path,
            "log-format = \"text\"\n[ldap]\nurl = \"ldap://dc1.rathaus.example\"\n\
             user-dn = \"uid={user},dc=x\"\nadmin-group = \"cn=a,dc=x\"\nca-file = \"ca.pem\"\n",
        )
        .unwrap();
        let err = load_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("amtsleitung.toml:") && err.contains("in the clear"),
            "{err}"
        );
        std::fs::write(
            &path,
            "[ldap]\nurl = \"ldaps://dc1.rathaus.example\"\n\
             user-dn = \"uid={user},dc=x\"\nadmin-group = \"cn=a,dc=x\"\nca-file = \"ca.pem\"\n",
        )
        .unwrap();
        let config = load_file(&path).unwrap();
        assert_eq!(config.ldap.unwrap().ca_file, Some(dir.join("ca.pem")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_file_overrides_defaults_only_where_given() {
        let config: Config = toml::from_str("sip-listen = \"127.0.0.1:5070\"\n").unwrap();
        assert_eq!(config.sip_listen, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(config.http_listen, "127.0.0.1:8080".parse().unwrap());
    }
}
