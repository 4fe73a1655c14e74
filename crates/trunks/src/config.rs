//! `trunks.toml`: the typed configuration, read with serde and checked with file:line:column.
//!
//! Syntax errors, unknown keys and wrong types come from `toml`/serde (the first one stops the
//! read); everything checked afterwards (missing keys, references, cycles, numbers) is
//! reported all at once, each at the value it is about.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use sip::security::{IpNetwork, NetworkList};
use toml::Spanned;

use crate::class::CallClass;
use crate::cost_guard::{CostRules, Money};
use crate::diag::{Diagnostic, Reporter, Severity};
use crate::number::{
    AreaCode, DidBlock, E164, ExtensionRange, FIXED_EMERGENCY_NUMBERS, MAX_E164_DIGITS,
    NumberFormat, Numbering, TrunkNumbers, code_digits,
};

/// Registration interval when `expires` is not given, in seconds.
pub const DEFAULT_EXPIRES: u32 = 600;
/// Keep-alive OPTIONS interval when `options-interval` is not given, in seconds.
pub const DEFAULT_OPTIONS_INTERVAL: u32 = 30;
/// How long a call out waits for the carrier's first response when `response-timeout` is
/// not given, in seconds: the INVITE has been sent four times by then (RFC 3261 Timer A).
pub const DEFAULT_RESPONSE_TIMEOUT: u32 = 5;
/// Most concurrent calls one trunk may be configured for.
pub const MAX_CALLS_LIMIT: u32 = 10_000;

/// Concurrent calls out per user when `[limits] outside-calls-per-user` is not given: a desk
/// phone has two lines; a stolen password should not open thirty.
pub const DEFAULT_OUTSIDE_CALLS_PER_USER: u32 = 2;

/// A checked `trunks.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrunkConfig {
    /// The site's numbering (`[numbering]`).
    pub numbering: Numbering,
    /// The trunks in file order.
    pub trunks: Vec<Trunk>,
    /// How many calls out may run at once (`[limits]`).
    pub limits: OutsideCallLimits,
    /// Location numbers by where the calling phone is (`[[emergency-location]]`), in file
    /// order: an emergency call from a phone in a listed network presents its number
    /// instead of the emergency trunk's `location-number` (home offices over the VPN).
    pub emergency_locations: Vec<EmergencyLocation>,
    /// Prices and hourly spend limits of calls out (`[cost-guard]`); `None`: no guard.
    pub cost_guard: Option<CostRules>,
}

/// Where phones of one network are, for emergency services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencyLocation {
    /// The network the phone's requests come from.
    pub network: IpNetwork,
    /// The location number an emergency call from there presents.
    pub number: E164,
}

/// One user's own location number for emergency calls (the address of their home office),
/// set per user in the store rather than in this file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalLocation {
    /// The location number an emergency call of the user presents.
    pub number: E164,
    /// Only calls from phones in these networks present it (a user with a desk phone in the
    /// office and one at home over the VPN); empty: calls from all the user's phones.
    pub networks: Vec<IpNetwork>,
}

impl PersonalLocation {
    /// Whether a call from a phone at `source` presents this number (an unknown source only
    /// when no network limits it).
    pub fn covers(&self, source: Option<std::net::IpAddr>) -> bool {
        self.networks.is_empty()
            || source.is_some_and(|ip| self.networks.iter().any(|n| n.contains(ip)))
    }
}

/// Which setting an emergency call's location number comes from, for logs and `user show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationOrigin<'a> {
    /// The calling user's own location number.
    User,
    /// The `[[emergency-location]]` of the network the phone calls from.
    Network(&'a IpNetwork),
    /// The `location-number` of the trunk the call goes out on.
    Trunk(&'a str),
}

impl fmt::Display for LocationOrigin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User => f.write_str("the user's own location number"),
            Self::Network(network) => write!(f, "[[emergency-location]] {network}"),
            Self::Trunk(name) => write!(f, "location-number of trunk {name}"),
        }
    }
}

impl TrunkConfig {
    /// The location number for an emergency call from a phone at `source`, if a
    /// `[[emergency-location]]` covers it (the first that does).
    pub fn emergency_location_of(&self, source: std::net::IpAddr) -> Option<&E164> {
        self.emergency_locations
            .iter()
            .find(|l| l.network.contains(source))
            .map(|l| &l.number)
    }

    /// The location number an emergency call presents when it goes out on `trunk` from a
    /// phone at `source`, and where it comes from: the calling user's own number where it
    /// covers the phone (the most exact: one home, not one VPN), else the phone's network's,
    /// else the trunk's. `None` when none of the three is set.
    pub fn emergency_location<'a>(
        &'a self,
        trunk: &'a Trunk,
        user: Option<&'a PersonalLocation>,
        source: Option<std::net::IpAddr>,
    ) -> Option<(&'a E164, LocationOrigin<'a>)> {
        if let Some(own) = user.filter(|own| own.covers(source)) {
            return Some((&own.number, LocationOrigin::User));
        }
        let network = source.and_then(|ip| {
            self.emergency_locations
                .iter()
                .find(|l| l.network.contains(ip))
        });
        if let Some(location) = network {
            return Some((&location.number, LocationOrigin::Network(&location.network)));
        }
        trunk
            .location_number
            .as_ref()
            .map(|number| (number, LocationOrigin::Trunk(&trunk.name)))
    }
}

/// Concurrent calls out (toll-fraud protection): per user and in all. Emergency calls are
/// never counted against them nor held back by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutsideCallLimits {
    /// Calls out one user may have at once.
    pub per_user: u32,
    /// Calls out the whole system may have at once; `None`: only each trunk's `max-calls`.
    pub total: Option<u32>,
}

impl Default for OutsideCallLimits {
    fn default() -> Self {
        Self {
            per_user: DEFAULT_OUTSIDE_CALLS_PER_USER,
            total: None,
        }
    }
}

impl TrunkConfig {
    /// The trunk called `name`.
    pub fn trunk(&self, name: &str) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.name == name)
    }

    /// The default domain's trunk marked `emergency = true` (there is one whenever the
    /// default domain has trunks).
    pub fn emergency_trunk(&self) -> Option<&Trunk> {
        self.emergency_trunk_of(None)
    }

    /// The emergency trunk of the town `tenant` (`None`: the default domain); each town with
    /// trunks has one.
    pub fn emergency_trunk_of(&self, tenant: Option<&str>) -> Option<&Trunk> {
        self.trunks
            .iter()
            .find(|t| t.emergency && t.tenant.as_deref() == tenant)
    }

    /// `name` and the trunks it fails over to, in order (empty for an unknown name).
    pub fn failover_chain(&self, name: &str) -> Vec<&Trunk> {
        let mut chain: Vec<&Trunk> = Vec::new();
        let mut next = self.trunk(name);
        // The check refused cycles; the length bound keeps a hand-built config finite too.
        while let Some(t) = next.filter(|_| chain.len() < self.trunks.len()) {
            chain.push(t);
            next = t.failover.as_deref().and_then(|f| self.trunk(f));
        }
        chain
    }
}

/// A configuration that passed the checks, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The configuration to use.
    pub config: TrunkConfig,
    /// Findings that do not stop it from taking effect.
    pub warnings: Vec<Diagnostic>,
}

/// One outside line to a carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// Unique name, as dialplans refer to it (`trunk = "telekom"`).
    pub name: String,
    /// How the carrier knows us.
    pub mode: TrunkMode,
    /// Outbound proxy; in `ip` mode where calls are sent.
    pub proxy: Option<SipUri>,
    /// Transport to the carrier.
    pub transport: Transport,
    /// Whether calls on this trunk encrypt their media (SRTP with SDES keys); `None` = the
    /// server's default.
    pub srtp: Option<srtp::SrtpPolicy>,
    /// CA certificates (PEM) that the carrier's TLS certificate must chain to, instead of
    /// the system's trust store; relative to the configuration file's directory. TLS only.
    pub ca_file: Option<PathBuf>,
    /// Codecs to offer, preferred first.
    pub codecs: Vec<Codec>,
    /// Most concurrent calls (the channels booked).
    pub max_calls: u32,
    /// Keep-alive OPTIONS interval; `None` sends none.
    pub options_interval: Option<Duration>,
    /// A call out that has no response at all from the carrier after this long is taken as
    /// failed (408) and goes to the failover trunk; `None`: only after Timer B (32 s).
    pub response_timeout: Option<Duration>,
    /// Trunk to try when this one fails.
    pub failover: Option<String>,
    /// Which identity headers to send.
    pub caller_id: CallerId,
    /// Number formats in and out.
    pub numbers: TrunkNumbers,
    /// Carries 110/112 and the other emergency numbers.
    pub emergency: bool,
    /// Number sent as the location of emergency calls through this trunk.
    pub location_number: Option<E164>,
    /// The town (a tenant's SIP domain, `tenant = "stadt-a.example"`) whose trunk this is:
    /// only that town's calls go out on it, and the calls it brings in are that town's.
    /// `None`: the default domain's.
    pub tenant: Option<String>,
}

impl Trunk {
    /// Whether a request from `ip` may come from this trunk (`ip` mode only; a registering
    /// trunk's carrier is recognised by the registration, not by address).
    pub fn accepts_source(&self, ip: std::net::IpAddr) -> bool {
        match &self.mode {
            TrunkMode::Ip { allowed_sources } => allowed_sources.contains(ip),
            TrunkMode::Register(_) => false,
        }
    }
}

/// How the carrier knows us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrunkMode {
    /// We register with the carrier's registrar and authenticate with digest.
    Register(Registration),
    /// The carrier sends from fixed addresses; we send to `proxy`.
    Ip {
        /// Networks the carrier's requests come from.
        allowed_sources: NetworkList,
    },
}

/// Registration settings of a `register` trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The carrier's registrar.
    pub registrar: SipUri,
    /// User part of our address of record.
    pub username: String,
    /// Digest user name when it differs from `username`.
    pub auth_username: Option<String>,
    /// Digest password.
    pub password: Password,
    /// Registration interval asked for.
    pub expires: Duration,
}

impl Registration {
    /// The digest user name: `auth-username`, or `username`.
    pub fn auth_username(&self) -> &str {
        self.auth_username.as_deref().unwrap_or(&self.username)
    }
}

/// A password, written in the file or kept in a file of its own (which the server reads).
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// `password = "…"`.
    Inline(String),
    /// `password-file = "…"`, relative to the configuration file's directory.
    File(PathBuf),
}

impl fmt::Debug for Password {
    /// Never prints the password itself: configurations end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::Inline(_) => f.write_str("Inline(<redacted>)"),
            Password::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// A `sip:` or `sips:` URI that our SIP parser reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri(String);

impl SipUri {
    /// The URI as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is a `sips:` URI, which needs TLS.
    pub fn is_sips(&self) -> bool {
        self.0
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
    }
}

impl FromStr for SipUri {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        sip::message::parse_uri(text)
            .map(|_| Self(text.to_string()))
            .ok_or(())
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Transport to the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (the default; what most German carriers expect).
    #[default]
    Udp,
    /// TCP.
    Tcp,
    /// TLS.
    Tls,
}

/// An audio codec a trunk may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law, the German and European standard.
    Pcma,
    /// G.722 wideband ("HD voice").
    G722,
    /// Opus.
    Opus,
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
            Codec::G722 => "g722",
            Codec::Opus => "opus",
        })
    }
}

/// Codecs offered when `codecs` is not given: wideband where the carrier has it, then A-law.
pub const DEFAULT_CODECS: [Codec; 3] = [Codec::G722, Codec::Pcma, Codec::Pcmu];

/// How we present the caller to the carrier.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallerId {
    /// User part of the From URI, when the carrier wants a fixed one (often the main number).
    pub from_user: Option<String>,
    /// Send P-Asserted-Identity (RFC 3325) with our number.
    pub pai: bool,
    /// Send P-Preferred-Identity (RFC 3325) with our number.
    pub ppi: bool,
    /// The carrier's "CLIP no screening": From may show any number (a forwarded caller's),
    /// while PAI/PPI carry a number of ours.
    pub clip_no_screening: bool,
    /// How a forwarded call names the number it was forwarded from.
    pub diversion_header: DiversionHeader,
}

/// The header a forwarded call out carries the forwarding number in: carriers accept the
/// original caller's number only when they see which of our numbers forwarded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiversionHeader {
    /// `Diversion` (RFC 5806), what most German carriers read.
    #[default]
    Diversion,
    /// `History-Info` (RFC 7044) with the RFC 4458 `cause` parameter, the IMS way (3GPP
    /// TS 24.604), for carriers that want it instead.
    HistoryInfo,
}

type Opt<T> = Option<Spanned<T>>;
type List<T> = Opt<Vec<Spanned<T>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    numbering: Opt<RawNumbering>,
    limits: Option<RawLimits>,
    cost_guard: Opt<RawCostGuard>,
    #[serde(default)]
    emergency_location: Vec<RawLocation>,
    #[serde(default)]
    trunk: Vec<Spanned<RawTrunk>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLocation {
    network: Spanned<String>,
    number: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    outside_calls_per_user: Opt<u32>,
    outside_calls: Opt<u32>,
}

/// `[cost-guard]`: amounts are read as TOML values and checked here, so a string or a
/// negative price is reported at its place in our words rather than serde's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCostGuard {
    rates: Opt<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    per_user_per_hour: Opt<toml::Value>,
    per_hour: Opt<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNumbering {
    country_code: Opt<String>,
    area_code: Opt<String>,
    extensions: List<String>,
    emergency_numbers: List<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawMode {
    Register,
    Ip,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTrunk {
    name: Opt<String>,
    mode: Opt<RawMode>,
    registrar: Opt<String>,
    username: Opt<String>,
    auth_username: Opt<String>,
    password: Opt<String>,
    password_file: Opt<String>,
    expires: Opt<u32>,
    allowed_sources: List<String>,
    proxy: Opt<String>,
    transport: Option<Transport>,
    srtp: Opt<String>,
    ca_file: Opt<String>,
    codecs: List<Codec>,
    max_calls: Opt<u32>,
    options_interval: Opt<u32>,
    response_timeout: Opt<u32>,
    failover: Opt<String>,
    caller_id: Option<RawCallerId>,
    numbers: Option<RawNumbers>,
    emergency: Opt<bool>,
    location_number: Opt<String>,
    tenant: Opt<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCallerId {
    from_user: Opt<String>,
    #[serde(default)]
    pai: bool,
    #[serde(default)]
    ppi: bool,
    clip_no_screening: Opt<bool>,
    #[serde(default)]
    diversion_header: DiversionHeader,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNumbers {
    country_code: Opt<String>,
    area_code: Opt<String>,
    base_number: Opt<String>,
    extension_digits: Opt<u8>,
    format: Opt<NumberFormat>,
}

/// Reads and checks `trunks.toml`; `file` is the path used in diagnostics.
pub fn parse(file: &str, text: &str) -> Result<Checked, Vec<Diagnostic>> {
    let mut r = Reporter::new(file, text);
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            // toml's message already names the expected keys or syntax.
            r.error(
                e.span().unwrap_or(0..0),
                e.message().trim().to_string(),
                None,
            );
            return Err(r.found);
        }
    };
    let numbering = check_numbering(&mut r, raw.numbering.as_ref());
    // Only when none is written: a wrong one has been reported already.
    let area_written = raw
        .numbering
        .as_ref()
        .is_some_and(|n| n.get_ref().area_code.is_some());
    if !area_written && let Some(first) = raw.trunk.first() {
        let span = raw.numbering.as_ref().map_or(first.span(), Spanned::span);
        r.error(
            span,
            "no area code: trunks need [numbering] area-code to read local numbers".into(),
            Some("[numbering]\narea-code = \"711\""),
        );
    }
    let names = check_names(&mut r, &raw.trunk);
    let mut trunks = Vec::with_capacity(raw.trunk.len());
    for t in &raw.trunk {
        if let Some(trunk) = check_trunk(&mut r, t, &numbering, &names) {
            trunks.push(trunk);
        }
    }
    check_failover_cycles(&mut r, &raw.trunk);
    check_failover_tenants(&mut r, &raw.trunk);
    // Each town with trunks needs its own way to 110 and 112.
    let mut towns: Vec<Option<&str>> = raw.trunk.iter().map(raw_tenant).collect();
    towns.sort_unstable();
    towns.dedup();
    for town in towns {
        let of_town: Vec<&Spanned<RawTrunk>> =
            raw.trunk.iter().filter(|t| raw_tenant(t) == town).collect();
        check_emergency(&mut r, &of_town, town);
    }
    let limits = check_limits(&mut r, raw.limits.as_ref());
    let cost_guard = raw
        .cost_guard
        .as_ref()
        .and_then(|c| check_cost_guard(&mut r, c));
    let emergency_locations = raw
        .emergency_location
        .iter()
        .filter_map(|l| {
            let network =
                parse_value::<IpNetwork>(&mut r, &l.network, "[[emergency-location]] network");
            let number = parse_value::<E164>(&mut r, &l.number, "[[emergency-location]] number");
            Some(EmergencyLocation {
                network: network?,
                number: number?,
            })
        })
        .collect();
    r.found.sort_by_key(|d| (d.line, d.column));
    if r.has_errors() {
        return Err(r.found);
    }
    Ok(Checked {
        config: TrunkConfig {
            numbering,
            trunks,
            limits,
            emergency_locations,
            cost_guard,
        },
        warnings: r.found,
    })
}

fn check_limits(r: &mut Reporter<'_>, raw: Option<&RawLimits>) -> OutsideCallLimits {
    let mut limits = OutsideCallLimits::default();
    let Some(raw) = raw else {
        return limits;
    };
    if let Some(v) = &raw.outside_calls_per_user
        && let Some(n) = in_range(
            r,
            v,
            "[limits]",
            "outside-calls-per-user",
            1..=MAX_CALLS_LIMIT,
        )
    {
        limits.per_user = n;
    }
    if let Some(v) = &raw.outside_calls {
        limits.total = in_range(r, v, "[limits]", "outside-calls", 1..=MAX_CALLS_LIMIT);
    }
    limits
}

/// Most a rate per minute may be: far above any tariff, low enough that a slip of the
/// decimal point (`200` for `2.00`) is still caught by the hourly limits, not by overflow.
const MAX_RATE: Money = Money::from_millis(1_000_000);
/// Most an hourly limit may be.
const MAX_HOURLY: Money = Money::from_millis(1_000_000_000);

fn check_cost_guard(r: &mut Reporter<'_>, raw: &Spanned<RawCostGuard>) -> Option<CostRules> {
    const SECTION: &str = "[cost-guard]";
    let errors_before = r.found.len();
    let c = raw.get_ref();
    let mut rates = BTreeMap::new();
    match &c.rates {
        None => r.error(
            raw.span(),
            format!("{SECTION}: `rates` is missing, so every call would cost nothing"),
            Some("rates = { mobile = 0.09, international = 0.25, premium = 2.00 }"),
        ),
        Some(list) if list.get_ref().is_empty() => r.error(
            list.span(),
            format!("{SECTION}: `rates` is empty, so every call would cost nothing"),
            Some("rates = { mobile = 0.09, international = 0.25, premium = 2.00 }"),
        ),
        Some(list) => {
            for (name, price) in list.get_ref() {
                let class = match name.get_ref().parse::<CallClass>() {
                    Ok(class) => class,
                    Err(e) => {
                        r.error(name.span(), format!("{SECTION} rates: {e}"), None);
                        continue;
                    }
                };
                let why_not = match class {
                    CallClass::Emergency => Some("emergency calls are never charged nor held back"),
                    CallClass::Internal => Some("internal calls never go out through a trunk"),
                    _ => None,
                };
                if let Some(why_not) = why_not {
                    r.error(
                        name.span(),
                        format!("{SECTION} rates: no rate for {class}: {why_not}"),
                        None,
                    );
                    continue;
                }
                let what = format!("{SECTION} rates.{class}");
                if let Some(rate) = amount(r, price, &what, MAX_RATE) {
                    rates.insert(class, rate);
                }
            }
        }
    }
    let limit = |r: &mut Reporter<'_>, v: &Opt<toml::Value>, key: &str| {
        let v = v.as_ref()?;
        let what = format!("{SECTION} {key}");
        let money = amount(r, v, &what, MAX_HOURLY)?;
        if money == Money::ZERO {
            r.error(
                v.span(),
                format!("{what} must be more than 0"),
                Some("to keep a user from a kind of number altogether, leave it out of their call classes"),
            );
            return None;
        }
        Some(money)
    };
    let per_user_per_hour = limit(r, &c.per_user_per_hour, "per-user-per-hour");
    let per_hour = limit(r, &c.per_hour, "per-hour");
    if c.per_user_per_hour.is_none() && c.per_hour.is_none() {
        r.error(
            raw.span(),
            format!("{SECTION} sets no limit"),
            Some("per-user-per-hour = 5.00 (one user's calls out in any 60 minutes), per-hour = 40.00 (all together), or both"),
        );
    }
    if let (Some(user), Some(all), Some(v)) =
        (per_user_per_hour, per_hour, c.per_user_per_hour.as_ref())
        && user > all
    {
        r.warning(
            v.span(),
            format!("{SECTION} per-user-per-hour ({user}) is more than per-hour ({all}): one user alone reaches the limit in all first"),
            None,
        );
    }
    if r.found[errors_before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        return None;
    }
    Some(CostRules {
        rates,
        per_user_per_hour,
        per_hour,
    })
}

/// An amount of money written as a TOML number (`2`, `0.09`): not negative, at most
/// `max`, and no finer than a tenth of a cent (the unit money is counted in).
fn amount(r: &mut Reporter<'_>, v: &Spanned<toml::Value>, what: &str, max: Money) -> Option<Money> {
    let millis = match v.get_ref() {
        toml::Value::Integer(n) => n.checked_mul(1000).map(|m| m as f64),
        toml::Value::Float(x) => Some(x * 1000.0),
        other => {
            r.error(
                v.span(),
                format!("{what} must be a number, not {}", other.type_str()),
                Some("amounts are plain numbers in the currency, like 0.25"),
            );
            return None;
        }
    };
    let Some(millis) = millis.filter(|m| m.is_finite()) else {
        r.error(v.span(), format!("{what} is not a usable amount"), None);
        return None;
    };
    if millis < 0.0 {
        r.error(v.span(), format!("{what} must not be negative"), None);
        return None;
    }
    let whole = millis.round();
    // A float read from decimal text is off by far less than this from its thousandths.
    if (millis - whole).abs() > 1e-6 {
        r.error(
            v.span(),
            format!("{what} is finer than a tenth of a cent"),
            Some("give at most three decimals, like 0.125"),
        );
        return None;
    }
    if whole > max.millis() as f64 {
        r.error(v.span(), format!("{what} must be at most {max}"), None);
        return None;
    }
    // In range and whole: the conversion is exact.
    Some(Money::from_millis(whole as u64))
}

fn check_numbering(r: &mut Reporter<'_>, raw: Option<&Spanned<RawNumbering>>) -> Numbering {
    let mut numbering = Numbering::default();
    let Some(raw) = raw.map(Spanned::get_ref) else {
        return numbering;
    };
    if let Some(cc) = &raw.country_code {
        parse_into(
            r,
            cc,
            "[numbering] country-code",
            &mut numbering.country_code,
        );
    }
    if let Some(area) = &raw.area_code {
        numbering.area_code = parse_value(r, area, "[numbering] area-code");
    }
    if let Some(list) = &raw.emergency_numbers {
        numbering.emergency_numbers.clear();
        for code in list.get_ref() {
            let c = code.get_ref();
            if c.len() >= 3 && code_digits(c, 6) {
                numbering.emergency_numbers.push(c.clone());
            } else {
                r.error(
                    code.span(),
                    format!("[numbering] emergency-numbers: {c:?} is not a short code"),
                    Some(
                        "emergency numbers are 3 to 6 digits dialled as they are, like \"116117\"",
                    ),
                );
            }
        }
    }
    if let Some(list) = &raw.extensions {
        for range in list.get_ref() {
            let Some(ext) = parse_value::<ExtensionRange>(r, range, "[numbering] extensions")
            else {
                continue;
            };
            let emergency = FIXED_EMERGENCY_NUMBERS
                .iter()
                .copied()
                .chain(numbering.emergency_numbers.iter().map(String::as_str))
                .find(|e| ext.contains(e));
            match emergency {
                Some(e) => r.error(
                    range.span(),
                    format!("[numbering] extensions: {ext} contains emergency number {e}"),
                    Some("emergency numbers always win; leave them out of extension ranges"),
                ),
                None => numbering.extensions.push(ext),
            }
        }
    }
    numbering
}

/// Parses `v` with `T::from_str`, reporting its error text at the value.
fn parse_value<T>(r: &mut Reporter<'_>, v: &Spanned<String>, what: &str) -> Option<T>
where
    T: FromStr<Err: fmt::Display>,
{
    match v.get_ref().parse() {
        Ok(t) => Some(t),
        Err(e) => {
            r.error(v.span(), format!("{what}: {e}"), None);
            None
        }
    }
}

fn parse_into<T>(r: &mut Reporter<'_>, v: &Spanned<String>, what: &str, slot: &mut T)
where
    T: FromStr<Err: fmt::Display>,
{
    if let Some(t) = parse_value(r, v, what) {
        *slot = t;
    }
}

/// The valid, unique names; reports missing, malformed and repeated ones.
fn check_names(r: &mut Reporter<'_>, trunks: &[Spanned<RawTrunk>]) -> BTreeSet<String> {
    let mut first_at: BTreeMap<&str, Range<usize>> = BTreeMap::new();
    for t in trunks {
        let Some(name) = &t.get_ref().name else {
            r.error(
                t.span(),
                "a trunk has no `name`".into(),
                Some("name = \"telekom\""),
            );
            continue;
        };
        let n = name.get_ref().as_str();
        let well_formed = (1..=64).contains(&n.len())
            && n.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if !well_formed {
            r.error(
                name.span(),
                format!("trunk name {n:?} must be 1 to 64 letters, digits, - or _"),
                None,
            );
        } else if let Some(first) = first_at.get(n) {
            let line = r.line_of(first);
            r.error(
                name.span(),
                format!("trunk \"{n}\" is defined twice (first at line {line})"),
                Some("trunk names must be unique; rename one"),
            );
        } else {
            first_at.insert(n, name.span());
        }
    }
    first_at.into_keys().map(str::to_string).collect()
}

const REGISTER_ONLY: &str = "only applies to mode = \"register\"";

fn check_trunk(
    r: &mut Reporter<'_>,
    raw: &Spanned<RawTrunk>,
    numbering: &Numbering,
    names: &BTreeSet<String>,
) -> Option<Trunk> {
    let header = raw.span();
    let t = raw.get_ref();
    let name = t.name.as_ref()?.get_ref().clone();
    let errors_before = r.found.len();
    let label = format!("trunk \"{name}\"");
    let missing = |r: &mut Reporter<'_>, key: &str, help: &str| {
        r.error(
            header.clone(),
            format!("{label}: `{key}` is missing"),
            Some(help),
        );
    };

    let transport = t.transport.unwrap_or_default();
    let uri = |r: &mut Reporter<'_>, v: &Spanned<String>, key: &str| -> Option<SipUri> {
        let Ok(uri) = v.get_ref().parse::<SipUri>() else {
            r.error(
                v.span(),
                format!("{label}: {key} {:?} is not a SIP URI", v.get_ref()),
                Some("for example: \"sip:sip.example.net\" or \"sip:192.0.2.10:5060\""),
            );
            return None;
        };
        if uri.is_sips() && transport != Transport::Tls {
            r.error(
                v.span(),
                format!("{label}: {key} is a sips: URI, which needs transport = \"tls\""),
                None,
            );
        }
        Some(uri)
    };
    let proxy = t.proxy.as_ref().and_then(|p| uri(r, p, "proxy"));
    let ca_file = match &t.ca_file {
        Some(v) if transport != Transport::Tls => {
            r.error(
                v.span(),
                format!("{label}: ca-file is for TLS, but the transport is not \"tls\""),
                Some("set transport = \"tls\", or leave ca-file out"),
            );
            None
        }
        Some(v) => non_blank(r, v, &label, "ca-file").map(PathBuf::from),
        None => None,
    };

    let mode = match t.mode.as_ref().map(Spanned::get_ref) {
        None => {
            missing(
                r,
                "mode",
                "mode = \"register\" (we register with the carrier) or mode = \"ip\" (the carrier sends from fixed addresses)",
            );
            None
        }
        Some(RawMode::Register) => {
            if let Some(v) = &t.allowed_sources {
                r.error(
                    v.span(),
                    format!("{label}: `allowed-sources` only applies to mode = \"ip\""),
                    None,
                );
            }
            let registrar = match &t.registrar {
                Some(v) => uri(r, v, "registrar"),
                None => {
                    missing(r, "registrar", "registrar = \"sip:sip.example.net\"");
                    None
                }
            };
            let username = match &t.username {
                Some(v) => non_blank(r, v, &label, "username"),
                None => {
                    missing(r, "username", "username = \"+49711123400\"");
                    None
                }
            };
            let auth_username = t
                .auth_username
                .as_ref()
                .and_then(|v| non_blank(r, v, &label, "auth-username"));
            let password = match (&t.password, &t.password_file) {
                (Some(p), None) => non_blank(r, p, &label, "password").map(Password::Inline),
                (None, Some(p)) => {
                    non_blank(r, p, &label, "password-file").map(|p| Password::File(p.into()))
                }
                (Some(_), Some(p)) => {
                    r.error(
                        p.span(),
                        format!("{label}: give `password` or `password-file`, not both"),
                        None,
                    );
                    None
                }
                (None, None) => {
                    missing(
                        r,
                        "password",
                        "password-file = \"/etc/amtsleitung/telekom.secret\" (or password = \"…\")",
                    );
                    None
                }
            };
            let expires = match &t.expires {
                Some(v) => in_range(r, v, &label, "expires", 60..=86_400),
                None => Some(DEFAULT_EXPIRES),
            };
            match (registrar, username, password, expires) {
                (Some(registrar), Some(username), Some(password), Some(expires)) => {
                    Some(TrunkMode::Register(Registration {
                        registrar,
                        username,
                        auth_username,
                        password,
                        expires: Duration::from_secs(expires.into()),
                    }))
                }
                _ => None,
            }
        }
        Some(RawMode::Ip) => {
            let register_keys = [
                ("registrar", t.registrar.as_ref()),
                ("username", t.username.as_ref()),
                ("auth-username", t.auth_username.as_ref()),
                ("password", t.password.as_ref()),
                ("password-file", t.password_file.as_ref()),
            ];
            for (key, v) in register_keys {
                if let Some(v) = v {
                    r.error(v.span(), format!("{label}: `{key}` {REGISTER_ONLY}"), None);
                }
            }
            if let Some(v) = &t.expires {
                r.error(
                    v.span(),
                    format!("{label}: `expires` {REGISTER_ONLY}"),
                    None,
                );
            }
            if t.proxy.is_none() {
                missing(
                    r,
                    "proxy",
                    "in mode = \"ip\" calls go to `proxy`: proxy = \"sip:192.0.2.10:5060\"",
                );
            }
            match &t.allowed_sources {
                None => {
                    missing(r, "allowed-sources", "allowed-sources = [\"192.0.2.0/28\"]");
                    None
                }
                Some(list) if list.get_ref().is_empty() => {
                    r.error(
                        list.span(),
                        format!("{label}: `allowed-sources` is empty, so no call could come in"),
                        Some("allowed-sources = [\"192.0.2.0/28\"]"),
                    );
                    None
                }
                Some(list) => {
                    let mut networks = Vec::new();
                    for v in list.get_ref() {
                        match v.get_ref().parse::<IpNetwork>() {
                            Ok(n) => networks.push(n),
                            Err(e) => {
                                r.error(v.span(), format!("{label}: allowed-sources: {e}"), None)
                            }
                        }
                    }
                    Some(TrunkMode::Ip {
                        allowed_sources: networks.into_iter().collect(),
                    })
                }
            }
        }
    };

    let codecs = match &t.codecs {
        None => DEFAULT_CODECS.to_vec(),
        Some(list) if list.get_ref().is_empty() => {
            r.error(
                list.span(),
                format!("{label}: `codecs` is empty"),
                Some("codecs = [\"g722\", \"pcma\"] (pcmu, pcma, g722, opus)"),
            );
            Vec::new()
        }
        Some(list) => {
            let mut codecs = Vec::new();
            for c in list.get_ref() {
                if codecs.contains(c.get_ref()) {
                    r.error(
                        c.span(),
                        format!("{label}: codec {} is listed twice", c.get_ref()),
                        None,
                    );
                }
                codecs.push(*c.get_ref());
            }
            codecs
        }
    };

    let max_calls = match &t.max_calls {
        Some(v) => in_range(r, v, &label, "max-calls", 1..=MAX_CALLS_LIMIT),
        None => {
            missing(
                r,
                "max-calls",
                "max-calls = 10 (the channels booked; an unlimited trunk is what toll fraud hopes for)",
            );
            None
        }
    };

    let options_interval = match &t.options_interval {
        Some(v) => in_range(r, v, &label, "options-interval", 0..=3600),
        None => Some(DEFAULT_OPTIONS_INTERVAL),
    };
    if let (Some(v), Some(_)) = (&t.options_interval, &t.failover)
        && *v.get_ref() == 0
    {
        r.warning(
            v.span(),
            format!("{label}: options-interval = 0 sends no keep-alive, so failover happens only after a call has failed"),
            None,
        );
    }

    // Timer B ends the INVITE after 32 s anyway: a longer wait would never be reached.
    let response_timeout = match &t.response_timeout {
        Some(v) => in_range(r, v, &label, "response-timeout", 0..=32),
        None => Some(DEFAULT_RESPONSE_TIMEOUT),
    };

    let failover = t.failover.as_ref().and_then(|f| {
        let target = f.get_ref();
        if target == &name || names.contains(target) {
            // Pointing at itself is a cycle, reported with the others.
            Some(target.clone())
        } else {
            r.error(
                f.span(),
                format!("{label}: failover \"{target}\" does not exist"),
                Some("failover names another [[trunk]]"),
            );
            None
        }
    });

    let caller_id = t
        .caller_id
        .as_ref()
        .map(|c| check_caller_id(r, c, &label))
        .unwrap_or_default();
    let numbers = check_numbers(r, t.numbers.as_ref(), numbering, &label);
    let srtp = t
        .srtp
        .as_ref()
        .and_then(|v| parse_value::<srtp::SrtpPolicy>(r, v, &format!("{label}: srtp")));
    if let (Some(v), Some(srtp::SrtpPolicy::Required | srtp::SrtpPolicy::Optional)) =
        (&t.srtp, srtp)
        && transport != Transport::Tls
    {
        // SDES keys travel in the SDP: over UDP or TCP anyone on the path reads them.
        r.warning(
            v.span(),
            format!("{label}: srtp keys are sent in the SDP, and the transport is not \"tls\": anyone on the path can read them"),
            Some("set transport = \"tls\""),
        );
    }
    let location_number = t
        .location_number
        .as_ref()
        .and_then(|v| parse_value::<E164>(r, v, &format!("{label}: location-number")));
    let tenant = t.tenant.as_ref().and_then(|v| {
        let domain = v.get_ref();
        if is_domain_name(domain) {
            Some(domain.clone())
        } else {
            r.error(
                v.span(),
                format!("{label}: tenant {domain:?} is not a SIP domain"),
                Some("the domain of a [[tenant]] in the server's config, e.g. \"stadt-a.example\""),
            );
            None
        }
    });

    if r.found[errors_before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        return None;
    }
    Some(Trunk {
        name,
        mode: mode?,
        proxy,
        transport,
        srtp,
        ca_file,
        codecs,
        max_calls: max_calls?,
        options_interval: Some(options_interval?)
            .filter(|s| *s != 0)
            .map(|s| Duration::from_secs(s.into())),
        response_timeout: Some(response_timeout?)
            .filter(|s| *s != 0)
            .map(|s| Duration::from_secs(s.into())),
        failover,
        caller_id,
        numbers: numbers?,
        emergency: t.emergency.as_ref().is_some_and(|e| *e.get_ref()),
        location_number,
        tenant,
    })
}

/// A DNS name in lower case, as a tenant's domain is written.
fn is_domain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// The town a raw trunk belongs to (`None`: the default domain).
fn raw_tenant(t: &Spanned<RawTrunk>) -> Option<&str> {
    t.get_ref().tenant.as_ref().map(|v| v.get_ref().as_str())
}

/// A failover keeps a call in its town: a trunk fails over to a trunk of the same town only.
fn check_failover_tenants(r: &mut Reporter<'_>, trunks: &[Spanned<RawTrunk>]) {
    for t in trunks {
        let Some(failover) = t.get_ref().failover.as_ref() else {
            continue;
        };
        let Some(target) = trunks
            .iter()
            .find(|other| trunk_name(other) == failover.get_ref().as_str())
        else {
            continue;
        };
        if raw_tenant(target) != raw_tenant(t) {
            let town = |tenant: Option<&str>| tenant.unwrap_or("the default domain").to_owned();
            r.error(
                failover.span(),
                format!(
                    "trunk \"{}\" ({}): failover \"{}\" is a trunk of {}",
                    trunk_name(t),
                    town(raw_tenant(t)),
                    trunk_name(target),
                    town(raw_tenant(target)),
                ),
                Some("a trunk fails over to a trunk of its own town"),
            );
        }
    }
}

fn non_blank(r: &mut Reporter<'_>, v: &Spanned<String>, label: &str, key: &str) -> Option<String> {
    let s = v.get_ref();
    if s.trim().is_empty() || s.chars().any(char::is_control) {
        r.error(
            v.span(),
            format!("{label}: `{key}` is empty or holds control characters"),
            None,
        );
        return None;
    }
    Some(s.clone())
}

fn in_range<T>(
    r: &mut Reporter<'_>,
    v: &Spanned<T>,
    label: &str,
    key: &str,
    range: std::ops::RangeInclusive<T>,
) -> Option<T>
where
    T: PartialOrd + Copy + fmt::Display,
{
    if range.contains(v.get_ref()) {
        Some(*v.get_ref())
    } else {
        r.error(
            v.span(),
            format!(
                "{label}: {key} must be between {} and {}",
                range.start(),
                range.end()
            ),
            None,
        );
        None
    }
}

fn check_caller_id(r: &mut Reporter<'_>, raw: &RawCallerId, label: &str) -> CallerId {
    let from_user = raw.from_user.as_ref().and_then(|v| {
        let s = v.get_ref();
        let ok = !s.is_empty()
            && s.bytes().all(|c| {
                c.is_ascii_graphic() && !matches!(c, b'@' | b':' | b';' | b'<' | b'>' | b'"')
            });
        if !ok {
            r.error(
                v.span(),
                format!("{label}: from-user {s:?} is not a SIP user part"),
                Some("the part before the @, like \"+49711123400\""),
            );
        }
        ok.then(|| s.clone())
    });
    let clip_no_screening = raw.clip_no_screening.as_ref().is_some_and(|v| {
        if *v.get_ref() && !raw.pai && !raw.ppi {
            r.error(
                v.span(),
                format!("{label}: clip-no-screening needs pai = true or ppi = true"),
                Some("with CLIP no screening, From shows any number and PAI/PPI must carry ours"),
            );
        }
        *v.get_ref()
    });
    CallerId {
        from_user,
        pai: raw.pai,
        ppi: raw.ppi,
        clip_no_screening,
        diversion_header: raw.diversion_header,
    }
}

fn check_numbers(
    r: &mut Reporter<'_>,
    raw: Option<&RawNumbers>,
    numbering: &Numbering,
    label: &str,
) -> Option<TrunkNumbers> {
    let mut numbers = TrunkNumbers::of_site(numbering);
    let Some(raw) = raw else {
        return Some(numbers);
    };
    let errors_before = r.found.len();
    if let Some(cc) = &raw.country_code {
        parse_into(
            r,
            cc,
            &format!("{label}: numbers.country-code"),
            &mut numbers.country_code,
        );
    }
    if let Some(area) = &raw.area_code {
        numbers.area_code = parse_value(r, area, &format!("{label}: numbers.area-code"));
    }
    if let Some(format) = &raw.format {
        numbers.format = *format.get_ref();
    }
    match (&raw.base_number, &raw.extension_digits) {
        (None, None) => {}
        (Some(base), Some(digits)) => {
            let digits = in_range(r, digits, label, "numbers.extension-digits", 1..=6);
            let base_e164 = parse_value::<E164>(r, base, &format!("{label}: numbers.base-number"));
            if let (Some(base_e164), Some(digits)) = (base_e164, digits) {
                check_block(r, base, &base_e164, digits, &numbers, label);
                numbers.did_block = Some(DidBlock {
                    base: base_e164,
                    extension_digits: digits,
                });
            }
        }
        (Some(v), None) => r.error(
            v.span(),
            format!("{label}: base-number needs extension-digits"),
            Some("extension-digits = 2 (for extensions 00 to 99)"),
        ),
        (None, Some(v)) => r.error(
            v.span(),
            format!("{label}: extension-digits needs base-number"),
            Some("base-number = \"+49 711 1234\""),
        ),
    }
    (r.found.len() == errors_before).then_some(numbers)
}

fn check_block(
    r: &mut Reporter<'_>,
    v: &Spanned<String>,
    base: &E164,
    digits: u8,
    numbers: &TrunkNumbers,
    label: &str,
) {
    let home = format!(
        "+{}{}",
        numbers.country_code,
        numbers.area_code.as_ref().map_or("", AreaCode::as_str)
    );
    if !base.as_str().starts_with(&home) {
        r.error(
            v.span(),
            format!(
                "{label}: base-number {base} is not in {home}, this trunk's country and area code"
            ),
            None,
        );
    } else if base.digits().len() + usize::from(digits) > MAX_E164_DIGITS {
        r.error(
            v.span(),
            format!("{label}: base-number {base} with {digits} extension digits is longer than 15 digits"),
            None,
        );
    }
}

/// Reports every failover cycle once, at the failover of its first trunk in the file.
fn check_failover_cycles(r: &mut Reporter<'_>, trunks: &[Spanned<RawTrunk>]) {
    let failover: BTreeMap<&str, &Spanned<String>> = trunks
        .iter()
        .filter_map(|t| {
            let t = t.get_ref();
            Some((t.name.as_ref()?.get_ref().as_str(), t.failover.as_ref()?))
        })
        .collect();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for t in trunks {
        let Some(start) = t.get_ref().name.as_ref().map(|n| n.get_ref().as_str()) else {
            continue;
        };
        let mut path = vec![start];
        let mut at = start;
        while let Some(next) = failover.get(at).map(|f| f.get_ref().as_str()) {
            if let Some(i) = path.iter().position(|p| *p == next) {
                let cycle = &path[i..];
                if cycle.contains(&start) && !cycle.iter().any(|c| reported.contains(c)) {
                    reported.extend(cycle.iter().copied());
                    let text: Vec<&str> = cycle.iter().copied().chain([next]).collect();
                    if let Some(span) = failover.get(start).map(|f| f.span()) {
                        r.error(
                            span,
                            format!(
                                "trunk \"{start}\": failover goes round in a circle: {}",
                                text.join(" -> ")
                            ),
                            Some("the last trunk of a failover chain has no failover"),
                        );
                    }
                }
                break;
            }
            path.push(next);
            at = next;
        }
    }
}

/// Exactly one trunk carries emergency calls when there are trunks at all.
/// Exactly one of `trunks` (the trunks of `town`, `None` the default domain) carries
/// emergency calls.
fn check_emergency(r: &mut Reporter<'_>, trunks: &[&Spanned<RawTrunk>], town: Option<&str>) {
    let of_town = town.map_or_else(String::new, |town| format!(" of {town}"));
    let marked: Vec<(&Spanned<RawTrunk>, Range<usize>)> = trunks
        .iter()
        .copied()
        .filter_map(|t| {
            t.get_ref()
                .emergency
                .as_ref()
                .filter(|e| *e.get_ref())
                .map(|e| (t, e.span()))
        })
        .collect();
    match marked.as_slice() {
        [] => {
            if let Some(first) = trunks.first() {
                r.error(
                    first.span(),
                    format!("no trunk{of_town} carries emergency calls (110, 112)"),
                    Some("set emergency = true on the trunk that should carry them"),
                );
            }
        }
        [_] => {}
        [(first, first_span), rest @ ..] => {
            let first_name = trunk_name(first);
            let line = r.line_of(first_span);
            for (t, span) in rest {
                r.error(
                    span.clone(),
                    format!(
                        "trunk \"{}\": only one trunk{of_town} may carry emergency calls, and \"{first_name}\" (line {line}) does",
                        trunk_name(t)
                    ),
                    Some("give the emergency trunk a failover instead"),
                );
            }
        }
    }
}

fn trunk_name(t: &Spanned<RawTrunk>) -> &str {
    t.get_ref()
        .name
        .as_ref()
        .map_or("?", |n| n.get_ref().as_str())
}
