//! The registrar's bindings (RFC 3261 §10.3, RFC 3327 Path): which contacts an address of
//! record can be reached at, until when, and over which flow.
//!
//! Sans-IO: an already authenticated REGISTER (as [`RegisterRequest`]) and the current
//! `Instant` come in; the 200 OK's Contact list, the binding changes (for the store and the
//! log) or a refusal come out. Expiry is a deadline ([`Registrar::next_deadline`],
//! [`Registrar::expire`]), never a timer inside. Whether the user may register this AOR from
//! this source (authentication, allowed networks, domain) is decided before; the per-user
//! contact limit is passed in with each request.
//!
//! Where a request is sent later is the flow the REGISTER came from ([`Binding::source`]),
//! not the Contact's host: a phone behind a home router's NAT writes a private address there.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use crate::message::{self, syntax};
use crate::transaction::Peer;

/// RFC 3261 §10.3 step 7: a registrar may only answer 423 for intervals under one hour.
const RFC_423_CEILING: u32 = 3600;

/// Settings of a [`Registrar`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Expiry when neither the contact nor the request says (RFC 3261 §10.2.1.1 suggests 3600).
    pub default_expires: u32,
    /// Shorter requested intervals (other than 0) are refused with 423 and this Min-Expires.
    pub min_expires: u32,
    /// Longer requested intervals are shortened to this.
    pub max_expires: u32,
}

impl Default for RegistrarConfig {
    /// 3600 s default, 60 s minimum, 3600 s maximum: a phone that vanishes without
    /// unregistering is forgotten within the hour (sooner once qualify marks it down).
    fn default() -> Self {
        Self {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 3600,
        }
    }
}

/// An address of record in canonical form (RFC 3261 §10.3 step 5): `sip:user@host`, host in
/// lower case, escapes in the user part decoded, no port, parameters or headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aor {
    user: String,
    host: String,
}

impl Aor {
    /// The AOR of `user` in `domain`.
    pub fn new(user: &str, domain: &str) -> Self {
        Self {
            user: user.to_string(),
            host: domain.to_ascii_lowercase(),
        }
    }

    /// Reads the AOR from a `sip:`/`sips:` URI (the To header's); `None` when it has no user
    /// part or a broken escape.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let (parsed, _) = syntax::parse_sip_uri(uri).ok()?;
        let user = crate::message::percent_decode(&parsed.auth?.user)?;
        let host = parsed.host_with_port.host.to_string();
        Some(Self::new(&user, &host))
    }

    /// The user part (the extension).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The domain.
    pub fn domain(&self) -> &str {
        &self.host
    }
}

impl fmt::Display for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sip:{}@{}", self.user, self.host)
    }
}

/// A `q` value (RFC 3261 §20.10): 0 to 1 with up to three decimals, kept in thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QValue(u16);

impl QValue {
    /// The highest preference, also what an absent `q` is ranked as.
    pub const MAX: QValue = QValue(1000);

    /// From thousandths (0..=1000).
    pub fn from_thousandths(v: u16) -> Option<Self> {
        (v <= 1000).then_some(Self(v))
    }

    /// Thousandths.
    pub fn thousandths(self) -> u16 {
        self.0
    }

    /// Parses `qvalue = ("0" ["." 0*3DIGIT]) / ("1" ["." 0*3("0")])`.
    pub fn parse(text: &str) -> Option<Self> {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        if frac.len() > 3 || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut thousandths = 0u16;
        for (i, d) in frac.bytes().enumerate() {
            thousandths += u16::from(d - b'0') * [100, 10, 1].get(i).copied()?;
        }
        match int {
            "0" => Some(Self(thousandths)),
            "1" if thousandths == 0 => Some(Self(1000)),
            _ => None,
        }
    }
}

impl fmt::Display for QValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1000 => f.write_str("1"),
            0 => f.write_str("0"),
            v => {
                let text = format!("0.{v:03}");
                f.write_str(text.trim_end_matches('0'))
            }
        }
    }
}

/// One Contact of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    /// The contact URI as written (escaped headers such as `?Route=` kept, RFC 4475
    /// `regescrt`).
    pub uri: String,
    /// `expires` parameter.
    pub expires: Option<u32>,
    /// `q` parameter.
    pub q: Option<QValue>,
    /// `+sip.instance` (RFC 5626), raw (quoted) text.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626).
    pub reg_id: Option<u32>,
    /// The other contact parameters in order, raw text, echoed in the 200 OK (RFC 4475
    /// `cparam01`: `unknownparam` belongs to the contact, not the URI).
    pub params: Vec<(String, Option<String>)>,
}

/// What the Contact header(s) of a REGISTER ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactList {
    /// No Contact: a query for the current bindings (RFC 3261 §10.2.3).
    Query,
    /// `Contact: *`: remove all bindings (RFC 3261 §10.2.2).
    Wildcard,
    /// Add, refresh or remove these.
    Bindings(Vec<ContactSpec>),
}

/// The parts of an authenticated REGISTER the registrar uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// The AOR from the To header.
    pub aor: Aor,
    /// The Contact header(s).
    pub contacts: ContactList,
    /// The Expires header; a malformed one counts as absent (RFC 3261 §20.19).
    pub expires: Option<u32>,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// Path header values in order (RFC 3327).
    pub path: Vec<String>,
    /// Whether the request said `Supported: path`.
    pub supports_path: bool,
    /// The flow the request arrived on.
    pub source: Peer,
    /// User-Agent.
    pub user_agent: Option<String>,
}

/// Why a REGISTER is refused; [`status_code`](Self::status_code) and
/// [`reason_phrase`](Self::reason_phrase) make the response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The request is malformed for a registrar (400).
    #[error("bad REGISTER: {0}")]
    BadRequest(&'static str),
    /// A requested interval is below our minimum (423 with `Min-Expires`).
    #[error("interval too brief; Min-Expires {min_expires}")]
    IntervalTooBrief {
        /// Value for the Min-Expires header.
        min_expires: u32,
    },
    /// Same Call-ID as an existing binding with a CSeq that is not higher (RFC 3261 §10.3
    /// step 7: "the request fails"). Answered 500, as RFC 3261 §12.2.2 answers the same
    /// ordering failure inside a dialog and as §10.3 answers every other failed binding
    /// update: such a request is almost always a late copy whose sender has moved on.
    #[error("CSeq out of order")]
    OutOfOrder,
    /// The user would exceed its contact limit. Answered 403: it is a policy refusal that
    /// repeating will not fix; 503 would invite retries and failover to another registrar,
    /// and 486/600 speak of calls, not registrations.
    #[error("more than {max} contacts")]
    TooManyContacts {
        /// The limit.
        max: usize,
    },
}

impl RegisterError {
    /// The response status.
    pub fn status_code(&self) -> u16 {
        match self {
            RegisterError::BadRequest(_) => 400,
            RegisterError::IntervalTooBrief { .. } => 423,
            RegisterError::OutOfOrder => 500,
            RegisterError::TooManyContacts { .. } => 403,
        }
    }

    /// The response reason phrase.
    pub fn reason_phrase(&self) -> &'static str {
        match self {
            RegisterError::BadRequest(reason) => reason,
            RegisterError::IntervalTooBrief { .. } => "Interval Too Brief",
            RegisterError::OutOfOrder => "CSeq Out Of Order",
            RegisterError::TooManyContacts { .. } => "Too Many Contacts",
        }
    }

    /// The `Min-Expires` header value for a 423.
    pub fn min_expires(&self) -> Option<u32> {
        match self {
            RegisterError::IntervalTooBrief { min_expires } => Some(*min_expires),
            _ => None,
        }
    }
}

/// Parses `delta-seconds`, saturating at 2^32-1 (RFC 3261 §20.19 allows larger values).
pub(crate) fn parse_delta_seconds(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u32>().unwrap_or(u32::MAX))
}

fn parse_contact(text: &str) -> Result<ContactSpec, RegisterError> {
    let bad = RegisterError::BadRequest("Bad Contact");
    let na = syntax::parse_name_addr(text).ok_or(bad)?;
    let mut spec = ContactSpec {
        uri: na.uri.to_string(),
        expires: None,
        q: None,
        instance: None,
        reg_id: None,
        params: Vec::new(),
    };
    for (name, value) in na.params {
        if name.eq_ignore_ascii_case("expires") {
            spec.expires = Some(
                value
                    .and_then(parse_delta_seconds)
                    .ok_or(RegisterError::BadRequest("Bad Contact expires"))?,
            );
        } else if name.eq_ignore_ascii_case("q") {
            spec.q = Some(
                value
                    .and_then(QValue::parse)
                    .ok_or(RegisterError::BadRequest("Bad Contact q"))?,
            );
        } else {
            if name.eq_ignore_ascii_case("+sip.instance") {
                spec.instance = value.map(str::to_string);
            } else if name.eq_ignore_ascii_case("reg-id") {
                spec.reg_id = Some(
                    value
                        .and_then(|v| v.parse().ok())
                        .ok_or(RegisterError::BadRequest("Bad Contact reg-id"))?,
                );
            }
            spec.params
                .push((name.to_string(), value.map(str::to_string)));
        }
    }
    Ok(spec)
}

impl RegisterRequest {
    /// Reads the registrar's inputs from a REGISTER that arrived on `source`.
    pub fn from_request(req: &rsip::Request, source: Peer) -> Result<Self, RegisterError> {
        let to = message::header_value(req, "To").ok_or(RegisterError::BadRequest("Bad To"))?;
        let aor = message::address_uri(&to)
            .and_then(|uri| Aor::from_uri(&uri))
            .ok_or(RegisterError::BadRequest("Bad To"))?;
        let mut specs = Vec::new();
        let mut wildcard = false;
        for value in message::header_values(req, "Contact") {
            let parts = syntax::split_top_level(&value, b',')
                .ok_or(RegisterError::BadRequest("Bad Contact"))?;
            for part in parts {
                if part.trim() == "*" {
                    wildcard = true;
                } else {
                    specs.push(parse_contact(part)?);
                }
            }
        }
        let contacts = match (wildcard, specs.is_empty()) {
            // RFC 3261 §10.3 step 6: `*` must be the only Contact.
            (true, false) => return Err(RegisterError::BadRequest("Wildcard With Other Contacts")),
            (true, true) => ContactList::Wildcard,
            (false, true) => ContactList::Query,
            (false, false) => ContactList::Bindings(specs),
        };
        let mut path = Vec::new();
        for value in message::header_values(req, "Path") {
            for part in syntax::split_top_level(&value, b',')
                .ok_or(RegisterError::BadRequest("Bad Path"))?
            {
                if syntax::parse_name_addr(part).is_none() {
                    return Err(RegisterError::BadRequest("Bad Path"));
                }
                path.push(part.trim().to_string());
            }
        }
        let supports_path = message::header_values(req, "Supported")
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("path"));
        let (cseq, _) = message::cseq(req).ok_or(RegisterError::BadRequest("Bad CSeq"))?;
        Ok(Self {
            aor,
            contacts,
            expires: message::header_value(req, "Expires")
                .as_deref()
                .and_then(parse_delta_seconds),
            call_id: message::call_id(req).ok_or(RegisterError::BadRequest("Bad Call-ID"))?,
            cseq,
            path,
            supports_path,
            source,
            user_agent: message::header_value(req, "User-Agent"),
        })
    }
}

/// Identifies a binding for the qualifier and the location service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingId(u64);

/// What a REGISTER said about one contact, and where it came from: the part of a binding
/// that is stored across restarts unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingDetails {
    /// The contact URI as registered: the Request-URI of requests to this phone.
    pub contact: String,
    /// Contact parameters other than `expires` and `q`, echoed in the 200 OK.
    pub params: Vec<(String, Option<String>)>,
    /// `q`, if given.
    pub q: Option<QValue>,
    /// `+sip.instance`, if given.
    pub instance: Option<String>,
    /// `reg-id`, if given.
    pub reg_id: Option<u32>,
    /// Call-ID of the REGISTER that last refreshed it.
    pub call_id: String,
    /// Its CSeq.
    pub cseq: u32,
    /// Path (RFC 3327): the route towards the phone, first entry first.
    pub path: Vec<String>,
    /// The flow the REGISTER came on: where requests to this phone go (NAT, RFC 5626 spirit).
    pub source: Peer,
    /// User-Agent of the phone.
    pub user_agent: Option<String>,
}

/// One contact of an AOR. Handed out by reference or copy; the registrar owns the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Identity within this registrar (not kept across restarts).
    pub id: BindingId,
    /// The AOR.
    pub aor: Aor,
    /// What was registered.
    pub details: BindingDetails,
    /// When it was last registered or refreshed.
    pub registered_at: Instant,
    /// When it expires.
    pub expires_at: Instant,
    /// Whether the last qualify (OPTIONS) was answered; registering again sets it.
    pub reachable: bool,
}

/// The next hop for requests to a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop<'a> {
    /// Through the proxies of Path: route via this first Path entry (a name-addr).
    Path(&'a str),
    /// Straight back over the flow the REGISTER came on.
    Flow(Peer),
}

impl Binding {
    /// Where to send requests for this binding.
    pub fn next_hop(&self) -> NextHop<'_> {
        match self.details.path.first() {
            Some(first) => NextHop::Path(first),
            None => NextHop::Flow(self.details.source),
        }
    }

    fn key(&self) -> BindingKey {
        let d = &self.details;
        binding_key(&d.contact, d.instance.as_deref(), d.reg_id)
    }

    /// The Contact header value for a 200 OK, with the seconds left.
    fn contact_value(&self, now: Instant) -> String {
        let mut out = format!("<{}>", self.details.contact);
        for (name, value) in &self.details.params {
            out.push(';');
            out.push_str(name);
            if let Some(v) = value {
                out.push('=');
                out.push_str(v);
            }
        }
        if let Some(q) = self.details.q {
            out.push_str(&format!(";q={q}"));
        }
        out.push_str(&format!(";expires={}", seconds_left(self.expires_at, now)));
        out
    }
}

/// Whole seconds until `deadline`, rounded up, so a fresh binding reports what was granted.
fn seconds_left(deadline: Instant, now: Instant) -> u64 {
    let left = deadline.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

/// What makes two contacts the same binding: the instance (and reg-id) when the phone sends
/// one (RFC 5626 §6, RFC 5627), else the URI. URIs are compared with scheme and host part in
/// lower case (RFC 3261 §19.1.4 makes those case-insensitive); the user part is kept as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum BindingKey {
    Instance(String, Option<u32>),
    Uri(String),
}

fn binding_key(contact: &str, instance: Option<&str>, reg_id: Option<u32>) -> BindingKey {
    if let Some(instance) = instance {
        return BindingKey::Instance(instance.to_string(), reg_id);
    }
    let (scheme, rest) = contact.split_once(':').unwrap_or(("", contact));
    let key = match rest.split_once('@') {
        Some((user, host)) => format!(
            "{}:{user}@{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        ),
        None => format!(
            "{}:{}",
            scheme.to_ascii_lowercase(),
            rest.to_ascii_lowercase()
        ),
    };
    BindingKey::Uri(key)
}

/// A change the registrar made, for the store and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingChange {
    /// A new binding.
    Added(Binding),
    /// An existing binding refreshed (new expiry, perhaps a new flow).
    Refreshed(Binding),
    /// A binding removed by the request.
    Removed(Binding),
}

/// A successful REGISTER: what the 200 OK carries and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Contact header values: every current binding with its remaining `expires`.
    pub contacts: Vec<String>,
    /// Path values to echo in the 200 OK, only when the phone said `Supported: path`
    /// (RFC 3327 §5.3); also send `Supported: path` then.
    pub path: Vec<String>,
    /// The changes, in request order.
    pub changes: Vec<BindingChange>,
}

/// A binding as stored across restarts: times as wall-clock time, no id. The connection id
/// of [`BindingDetails::source`] is dropped on import: connections do not survive a restart,
/// and the phone's next REGISTER brings a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRecord {
    /// The AOR.
    pub aor: Aor,
    /// What was registered.
    pub details: BindingDetails,
    /// When it was last registered.
    pub registered_at: SystemTime,
    /// When it expires.
    pub expires_at: SystemTime,
}

/// The bindings of all AORs, with their expiry deadlines.
#[derive(Debug, Default)]
pub struct Registrar {
    config: RegistrarConfig,
    aors: HashMap<Aor, Vec<Binding>>,
    deadlines: BTreeMap<(Instant, BindingId), Aor>,
    next_id: u64,
}

impl Registrar {
    /// An empty registrar (a maximum below the minimum is raised to it).
    pub fn new(mut config: RegistrarConfig) -> Self {
        config.max_expires = config.max_expires.max(config.min_expires);
        Self {
            config,
            ..Self::default()
        }
    }

    fn new_id(&mut self) -> BindingId {
        self.next_id += 1;
        BindingId(self.next_id)
    }

    /// The interval granted for a requested one, or 423.
    fn grant(&self, requested: u32) -> Result<u32, RegisterError> {
        if requested > 0 && requested < self.config.min_expires && requested < RFC_423_CEILING {
            return Err(RegisterError::IntervalTooBrief {
                min_expires: self.config.min_expires,
            });
        }
        Ok(requested.min(self.config.max_expires))
    }

    /// Applies a REGISTER (RFC 3261 §10.3 steps 6–8): all of it or, on any refusal, none of
    /// it. `max_contacts` is the user's limit; it refuses only requests that add bindings, so
    /// a user above a lowered limit can still refresh and remove.
    pub fn register(
        &mut self,
        req: &RegisterRequest,
        max_contacts: usize,
        now: Instant,
    ) -> Result<Registered, RegisterError> {
        let before = self.aors.get(&req.aor).cloned().unwrap_or_default();
        // Bindings past their deadline that `expire` has not collected yet are gone for this
        // request (their old CSeq must not refuse it); they are reported as removed.
        let (mut after, lapsed): (Vec<Binding>, Vec<Binding>) =
            before.iter().cloned().partition(|b| b.expires_at > now);
        let mut changes: Vec<BindingChange> =
            lapsed.into_iter().map(BindingChange::Removed).collect();
        match &req.contacts {
            ContactList::Query => {}
            ContactList::Wildcard => {
                if req.expires != Some(0) {
                    return Err(RegisterError::BadRequest("Wildcard Needs Expires 0"));
                }
                if after
                    .iter()
                    .any(|b| b.details.call_id == req.call_id && req.cseq <= b.details.cseq)
                {
                    return Err(RegisterError::OutOfOrder);
                }
                changes.extend(after.drain(..).map(BindingChange::Removed));
            }
            ContactList::Bindings(specs) => {
                let mut added = false;
                let mut touched: Vec<BindingKey> = Vec::new();
                for spec in specs {
                    let requested = spec
                        .expires
                        .or(req.expires)
                        .unwrap_or(self.config.default_expires);
                    let granted = self.grant(requested)?;
                    let key = binding_key(&spec.uri, spec.instance.as_deref(), spec.reg_id);
                    let existing = after.iter().position(|b| b.key() == key);
                    // Ordering is checked against the bindings as they were before this
                    // request; a contact listed twice in one request is not a replay.
                    if let Some(i) = existing
                        && !touched.contains(&key)
                        && let Some(b) = after.get(i)
                        && b.details.call_id == req.call_id
                        && req.cseq <= b.details.cseq
                    {
                        return Err(RegisterError::OutOfOrder);
                    }
                    touched.push(key);
                    match (existing, granted) {
                        (None, 0) => {}
                        (Some(i), 0) => changes.push(BindingChange::Removed(after.remove(i))),
                        (existing, granted) => {
                            let id = match existing.and_then(|i| after.get(i)) {
                                Some(b) => b.id,
                                None => self.new_id(),
                            };
                            let binding = Binding {
                                id,
                                aor: req.aor.clone(),
                                details: BindingDetails {
                                    contact: spec.uri.clone(),
                                    params: spec.params.clone(),
                                    q: spec.q,
                                    instance: spec.instance.clone(),
                                    reg_id: spec.reg_id,
                                    call_id: req.call_id.clone(),
                                    cseq: req.cseq,
                                    path: req.path.clone(),
                                    source: req.source,
                                    user_agent: req.user_agent.clone(),
                                },
                                registered_at: now,
                                expires_at: now + Duration::from_secs(u64::from(granted)),
                                reachable: true,
                            };
                            match existing.and_then(|i| after.get_mut(i)) {
                                Some(slot) => {
                                    *slot = binding.clone();
                                    changes.push(BindingChange::Refreshed(binding));
                                }
                                None => {
                                    added = true;
                                    after.push(binding.clone());
                                    changes.push(BindingChange::Added(binding));
                                }
                            }
                        }
                    }
                }
                if added && after.len() > max_contacts {
                    return Err(RegisterError::TooManyContacts { max: max_contacts });
                }
            }
        }
        for b in &before {
            self.deadlines.remove(&(b.expires_at, b.id));
        }
        for b in &after {
            self.deadlines.insert((b.expires_at, b.id), b.aor.clone());
        }
        let contacts = after
            .iter()
            .filter(|b| b.expires_at > now)
            .map(|b| b.contact_value(now))
            .collect();
        if after.is_empty() {
            self.aors.remove(&req.aor);
        } else {
            self.aors.insert(req.aor.clone(), after);
        }
        Ok(Registered {
            contacts,
            path: if req.supports_path {
                req.path.clone()
            } else {
                Vec::new()
            },
            changes,
        })
    }

    /// When the next binding expires (call [`expire`](Self::expire) then).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.keys().next().map(|(at, _)| *at)
    }

    /// Removes the bindings whose expiry is at or before `now` and returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<Binding> {
        let mut removed = Vec::new();
        while let Some(entry) = self.deadlines.first_entry() {
            let (at, id) = *entry.key();
            if at > now {
                break;
            }
            let aor = entry.remove();
            if let Some(list) = self.aors.get_mut(&aor) {
                if let Some(i) = list.iter().position(|b| b.id == id) {
                    removed.push(list.remove(i));
                }
                if list.is_empty() {
                    self.aors.remove(&aor);
                }
            }
        }
        removed
    }

    /// The reachable, unexpired bindings of `aor`, highest `q` first (an absent `q` ranks as
    /// 1), the most recently registered first among equals: the targets of a call.
    pub fn lookup(&self, aor: &Aor, now: Instant) -> Vec<&Binding> {
        let mut found: Vec<&Binding> = self
            .bindings(aor, now)
            .into_iter()
            .filter(|b| b.reachable)
            .collect();
        found.sort_by(|a, b| {
            let qa = a.details.q.unwrap_or(QValue::MAX);
            let qb = b.details.q.unwrap_or(QValue::MAX);
            qb.cmp(&qa).then(b.registered_at.cmp(&a.registered_at))
        });
        found
    }

    /// All unexpired bindings of `aor`, reachable or not (for `user show`).
    pub fn bindings(&self, aor: &Aor, now: Instant) -> Vec<&Binding> {
        self.aors
            .get(aor)
            .map(|list| list.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default()
    }

    /// Every binding, for the qualifier's rounds.
    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.aors.values().flatten()
    }

    fn binding_mut(&mut self, aor: &Aor, id: BindingId) -> Option<&mut Binding> {
        self.aors.get_mut(aor)?.iter_mut().find(|b| b.id == id)
    }

    /// Marks a binding down after an unanswered qualify; `false` if it is gone.
    pub fn mark_unreachable(&mut self, aor: &Aor, id: BindingId) -> bool {
        self.binding_mut(aor, id)
            .map(|b| b.reachable = false)
            .is_some()
    }

    /// Marks a binding up after an answered qualify; `false` if it is gone.
    pub fn mark_reachable(&mut self, aor: &Aor, id: BindingId) -> bool {
        self.binding_mut(aor, id)
            .map(|b| b.reachable = true)
            .is_some()
    }

    /// Removes every binding of `aor` (the user was deleted) and returns them.
    pub fn remove_aor(&mut self, aor: &Aor) -> Vec<Binding> {
        let removed = self.aors.remove(aor).unwrap_or_default();
        for b in &removed {
            self.deadlines.remove(&(b.expires_at, b.id));
        }
        removed
    }

    /// All unexpired bindings as records for storage, with wall-clock times computed from
    /// the pair (`now`, `wall_now`) read at the same moment.
    pub fn export(&self, now: Instant, wall_now: SystemTime) -> Vec<BindingRecord> {
        self.iter()
            .filter(|b| b.expires_at > now)
            .map(|b| BindingRecord {
                aor: b.aor.clone(),
                details: b.details.clone(),
                registered_at: wall_now
                    .checked_sub(now.saturating_duration_since(b.registered_at))
                    .unwrap_or(wall_now),
                expires_at: wall_now + b.expires_at.saturating_duration_since(now),
            })
            .collect()
    }

    /// Loads stored bindings (after a restart); records already expired at `wall_now` are
    /// skipped, and of two records for the same binding the one expiring later wins. Returns
    /// how many records were taken.
    pub fn import(
        &mut self,
        records: impl IntoIterator<Item = BindingRecord>,
        now: Instant,
        wall_now: SystemTime,
    ) -> usize {
        self.take_records(records, now, wall_now, true)
    }

    /// Adds the bindings among `records` that this registrar does not have at all (another
    /// node of a pool took those REGISTERs); bindings it has are left as they are, since its
    /// own are the fresher and may hold a live connection. Returns how many were added.
    pub fn learn(
        &mut self,
        records: impl IntoIterator<Item = BindingRecord>,
        now: Instant,
        wall_now: SystemTime,
    ) -> usize {
        self.take_records(records, now, wall_now, false)
    }

    fn take_records(
        &mut self,
        records: impl IntoIterator<Item = BindingRecord>,
        now: Instant,
        wall_now: SystemTime,
        replace_earlier: bool,
    ) -> usize {
        let mut loaded = 0;
        for r in records {
            let Ok(left) = r.expires_at.duration_since(wall_now) else {
                continue;
            };
            if left.is_zero() {
                continue;
            }
            let since = wall_now.duration_since(r.registered_at).unwrap_or_default();
            let aor = r.aor;
            let binding = Binding {
                id: self.new_id(),
                aor: aor.clone(),
                details: BindingDetails {
                    source: Peer {
                        connection: None,
                        ..r.details.source
                    },
                    ..r.details
                },
                registered_at: now.checked_sub(since).unwrap_or(now),
                expires_at: now + left,
                reachable: true,
            };
            let list = self.aors.entry(aor.clone()).or_default();
            match list.iter().position(|b| b.key() == binding.key()) {
                Some(_) if !replace_earlier => continue,
                Some(i)
                    if list
                        .get(i)
                        .is_some_and(|b| b.expires_at >= binding.expires_at) =>
                {
                    continue;
                }
                Some(i) => {
                    let old = list.remove(i);
                    self.deadlines.remove(&(old.expires_at, old.id));
                }
                None => {}
            }
            self.deadlines.insert((binding.expires_at, binding.id), aor);
            list.push(binding);
            loaded += 1;
        }
        loaded
    }
}

#[cfg(test)]
mod tests;
