//! Registering with a carrier (RFC 3261 §10.2): the client side of registration, one
//! [`OutboundRegistration`] per trunk account, as a sans-IO state machine.
//!
//! The owner [`start`](OutboundRegistration::start)s it, sends every REGISTER that
//! [`poll_request`](OutboundRegistration::poll_request) hands out as a client transaction,
//! reports the transaction's final response ([`on_response`](OutboundRegistration::on_response))
//! or its timeout ([`on_timeout`](OutboundRegistration::on_timeout)), and polls again at
//! [`poll_timeout`](OutboundRegistration::poll_timeout). Nothing here reads a clock, resolves a
//! name or touches a socket: where the REGISTER goes (RFC 3263 DNS, an outbound proxy and its
//! Route header) is the owner's business. Call-ID, tags, branches, cnonces and backoff jitter
//! come from a generator the owner seeds, so every run can be replayed in a test.
//!
//! The policy, and why:
//! - One REGISTER in flight at a time (§10.2: not before the previous one is answered or has
//!   timed out); the Call-ID and From tag stay for the life of the registration and the CSeq
//!   grows by one per request (§10.2.4), so the carrier sees refreshes of one binding.
//! - A refresh goes out at half the granted time (at least 5 s before expiry), counted from
//!   when the REGISTER was sent: the registrar's clock started no later than that.
//! - A challenge is answered once. Challenged again after a fresh answer, the credentials are
//!   wrong unless the challenge says `stale=true` (RFC 7616 §3.3); a nonce reused from an
//!   earlier exchange (refreshes answer pre-emptively with the next nonce-count) that comes
//!   back unchanged is wrong too. However a carrier answers, at most
//!   [`MAX_IMMEDIATE_RETRIES`] requests follow one another without a pause.
//! - Failures back off from 30 s, doubling up to 30 min, less up to a tenth of jitter so that
//!   trunks which failed together (a carrier outage) do not come back in step; a 503's
//!   Retry-After is honoured within the same bounds.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rsip::Method;

use crate::digest::client::{ChallengeError, ClientCredentials, DigestClient, select_challenge};
use crate::message::{self, syntax};
use crate::registrar::parse_delta_seconds;
use crate::transaction::{BRANCH_MAGIC_COOKIE, TransportKind};

#[cfg(test)]
mod tests;

/// The binding lifetime asked for when the configuration does not say: ten minutes keeps a
/// NAT mapping towards the carrier alive with refreshes every five, without flooding it.
pub const DEFAULT_EXPIRES: u32 = 600;
/// The longest binding lifetime we ask for or accept as a Min-Expires.
pub const MAX_EXPIRES: u32 = 86_400;
/// Most requests that go out one right after another (challenge answers, 423 retries) before
/// the registration counts as failed and backs off.
pub const MAX_IMMEDIATE_RETRIES: u32 = 3;

const BACKOFF_FIRST: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);
/// A refresh leaves at least this much of the binding unused.
const REFRESH_MARGIN: u32 = 5;
/// No refresh sooner than this after the last REGISTER, whatever the carrier grants.
const MIN_REFRESH: u32 = 1;
/// A Retry-After shorter than this is taken as this, so a carrier saying `0` gets no flood.
const MIN_RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long a REGISTER may go unanswered before we give up on it ourselves, should the owner
/// never report the transaction's timeout: Timer F (64*T1 = 32 s) and some slack.
const RESPONSE_GUARD: Duration = Duration::from_secs(40);

/// One trunk account at a carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// The REGISTER's Request-URI: the registrar's domain (`sip:sip.carrier.example`).
    pub registrar: String,
    /// The address of record, in From and To (`sip:+493012345@sip.carrier.example`).
    pub aor: String,
    /// Username and secret for the carrier's digest challenges.
    pub credentials: ClientCredentials,
    /// Our Contact URI: where the carrier sends calls for the AOR.
    pub contact: String,
    /// Binding lifetime to ask for, in seconds (1 to [`MAX_EXPIRES`]).
    pub expires: u32,
    /// The Via sent-by, `host[:port]`: our address towards the carrier.
    pub sent_by: String,
    /// The Via transport.
    pub transport: TransportKind,
    /// The User-Agent header, if any.
    pub user_agent: Option<String>,
}

impl RegistrationConfig {
    /// An account asking for [`DEFAULT_EXPIRES`], without User-Agent.
    pub fn new(
        registrar: impl Into<String>,
        aor: impl Into<String>,
        credentials: ClientCredentials,
        contact: impl Into<String>,
        sent_by: impl Into<String>,
        transport: TransportKind,
    ) -> Self {
        Self {
            registrar: registrar.into(),
            aor: aor.into(),
            credentials,
            contact: contact.into(),
            expires: DEFAULT_EXPIRES,
            sent_by: sent_by.into(),
            transport,
            user_agent: None,
        }
    }
}

/// A configuration that cannot make a valid REGISTER.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationConfigError {
    /// The named field is not a `sip:`/`sips:` URI.
    #[error("{0} is not a sip: or sips: URI")]
    BadUri(&'static str),
    /// `expires` is 0 or above [`MAX_EXPIRES`].
    #[error("expires must be between 1 and {MAX_EXPIRES} seconds")]
    BadExpires,
    /// The named field is empty or holds characters it cannot carry.
    #[error("{0} is empty or holds characters not allowed there")]
    BadText(&'static str),
}

/// Where a registration stands, for status pages and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not started, or stopped and unregistered.
    Unregistered,
    /// A REGISTER is on its way and no binding is known to hold.
    Registering,
    /// The carrier holds our binding until `until` (a refresh may be on its way).
    Registered {
        /// When the binding lapses unless refreshed.
        until: Instant,
    },
    /// The last attempt failed; the next one goes out at `retry_at`.
    Failed {
        /// What went wrong.
        reason: FailureReason,
        /// When the next REGISTER is due.
        retry_at: Instant,
    },
    /// Stopping: the REGISTER with `Expires: 0` is due or on its way.
    Unregistering,
}

/// Why a registration attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailureReason {
    /// The carrier refused our answer to its challenge: wrong username or password.
    #[error("wrong credentials")]
    WrongCredentials,
    /// The carrier kept challenging (or asking for longer intervals) beyond
    /// [`MAX_IMMEDIATE_RETRIES`].
    #[error("too many challenges in a row")]
    TooManyChallenges,
    /// The carrier's challenge cannot be answered.
    #[error("unanswerable challenge: {0}")]
    BadChallenge(ChallengeError),
    /// A final response other than success or challenge.
    #[error("rejected: {code} {reason}")]
    Rejected {
        /// Status code.
        code: u16,
        /// Reason phrase as received (the standard one when it was standard).
        reason: String,
    },
    /// The REGISTER went unanswered.
    #[error("no response")]
    Timeout,
    /// A 2xx that grants our contact no time (`expires=0`).
    #[error("accepted without binding our contact")]
    NotBound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// Nothing to do.
    Stopped,
    /// Keep a binding.
    Register,
    /// Remove our binding, then stop.
    Unregister,
}

/// What the request in flight carried for one kind of challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answered {
    nonce: String,
    /// First answer to a challenge that came in response to the previous request.
    fresh: bool,
}

#[derive(Debug, Clone)]
struct InFlight {
    cseq: u32,
    sent_at: Instant,
    /// What the request asked for; 0 for an unregister.
    expires: u32,
    www: Option<Answered>,
    proxy: Option<Answered>,
}

/// The registration of one trunk account with its carrier's registrar.
#[derive(Debug)]
pub struct OutboundRegistration {
    registrar: rsip::Uri,
    aor: String,
    contact: String,
    contact_uri: rsip::Uri,
    credentials: ClientCredentials,
    sent_by: String,
    transport: TransportKind,
    user_agent: Option<String>,
    rng: StdRng,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// Requested lifetime; a 423's Min-Expires raises it for good.
    expires: u32,
    goal: Goal,
    in_flight: Option<InFlight>,
    /// When the next request is due, if none is in flight.
    due: Option<Instant>,
    state: RegistrationState,
    www: Option<DigestClient>,
    proxy: Option<DigestClient>,
    /// Requests sent without a pause since the last ordinary outcome.
    immediate_retries: u32,
    /// Failed attempts since the last success, for the backoff.
    failures: u32,
}

impl OutboundRegistration {
    /// A registration for `config`, idle until [`start`](Self::start). `seed` feeds the
    /// Call-ID, tags, branches, cnonces and jitter: pass a random one outside tests.
    pub fn new(config: RegistrationConfig, seed: u64) -> Result<Self, RegistrationConfigError> {
        let uri = |text: &str, field| {
            message::parse_uri(text.trim()).ok_or(RegistrationConfigError::BadUri(field))
        };
        let registrar = uri(&config.registrar, "registrar")?;
        uri(&config.aor, "aor")?;
        let contact_uri = uri(&config.contact, "contact")?;
        if !(1..=MAX_EXPIRES).contains(&config.expires) {
            return Err(RegistrationConfigError::BadExpires);
        }
        let sent_by_ok = !config.sent_by.is_empty()
            && config
                .sent_by
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c));
        if !sent_by_ok {
            return Err(RegistrationConfigError::BadText("sent_by"));
        }
        let printable = |s: &str| !s.chars().any(char::is_control);
        if config.credentials.username.is_empty() || !printable(&config.credentials.username) {
            return Err(RegistrationConfigError::BadText("username"));
        }
        if config
            .user_agent
            .as_deref()
            .is_some_and(|ua| !printable(ua))
        {
            return Err(RegistrationConfigError::BadText("user_agent"));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let call_id = format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>());
        let from_tag = format!("{:016x}", rng.random::<u64>());
        Ok(Self {
            registrar,
            aor: config.aor.trim().to_string(),
            contact: config.contact.trim().to_string(),
            contact_uri,
            credentials: config.credentials,
            sent_by: config.sent_by,
            transport: config.transport,
            user_agent: config.user_agent,
            rng,
            call_id,
            from_tag,
            cseq: 0,
            expires: config.expires,
            goal: Goal::Stopped,
            in_flight: None,
            due: None,
            state: RegistrationState::Unregistered,
            www: None,
            proxy: None,
            immediate_retries: 0,
            failures: 0,
        })
    }

    /// Where the registration stands.
    pub fn state(&self) -> &RegistrationState {
        &self.state
    }

    /// The Call-ID every REGISTER of this registration carries.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The lifetime the next REGISTER asks for (the configured one, or a carrier's larger
    /// Min-Expires).
    pub fn requested_expires(&self) -> u32 {
        self.expires
    }

    /// Register and keep the binding refreshed; the first REGISTER is due now (or as soon as
    /// an unregistration in flight is answered). Does nothing when already running.
    pub fn start(&mut self, now: Instant) {
        if self.goal == Goal::Register {
            return;
        }
        self.goal = Goal::Register;
        self.immediate_retries = 0;
        self.failures = 0;
        self.state = RegistrationState::Registering;
        if self.in_flight.is_none() {
            self.due = Some(now);
        }
    }

    /// Remove our binding with `Expires: 0` (once any REGISTER in flight is answered), then
    /// go idle. A registration that never sent anything goes idle at once.
    pub fn stop(&mut self, now: Instant) {
        if self.goal != Goal::Register {
            return;
        }
        self.immediate_retries = 0;
        if self.cseq == 0 && self.in_flight.is_none() {
            self.finish_stop();
            return;
        }
        self.goal = Goal::Unregister;
        self.state = RegistrationState::Unregistering;
        self.due = self.in_flight.is_none().then_some(now);
    }

    /// The next REGISTER to send, when one is due at `now`. Send it as a new client
    /// transaction and report how that ends.
    pub fn poll_request(&mut self, now: Instant) -> Option<rsip::Request> {
        if let Some(flight) = &self.in_flight {
            if now < flight.sent_at + RESPONSE_GUARD {
                return None;
            }
            self.on_timeout(now);
        }
        if self.due.is_none_or(|due| now < due) {
            return None;
        }
        self.due = None;
        let expires = match self.goal {
            Goal::Register => self.expires,
            Goal::Unregister => 0,
            Goal::Stopped => return None,
        };
        let still_bound =
            matches!(self.state, RegistrationState::Registered { until } if until > now);
        if expires > 0 && !still_bound {
            self.state = RegistrationState::Registering;
        }
        Some(self.build_request(expires, now))
    }

    /// When [`poll_request`](Self::poll_request) next has work: a refresh, a retry, or giving
    /// up on an unanswered REGISTER. `None` when idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.in_flight {
            Some(flight) => Some(flight.sent_at + RESPONSE_GUARD),
            None => self.due,
        }
    }

    /// A response to the REGISTER in flight (others, and provisional ones, are ignored).
    pub fn on_response(&mut self, response: &rsip::Response, now: Instant) {
        let code = response.status_code.code();
        let ours = self.in_flight.as_ref().is_some_and(|flight| {
            message::call_id(response).as_deref() == Some(self.call_id.as_str())
                && message::cseq(response) == Some((flight.cseq, Method::Register))
        });
        if code < 200 || !ours {
            return;
        }
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        match code {
            200..=299 => self.on_success(response, &flight, now),
            401 => self.on_challenge(response, false, &flight, now),
            407 => self.on_challenge(response, true, &flight, now),
            423 => self.on_too_brief(response, &flight, now),
            _ => {
                let retry_after = if code == 503 {
                    retry_after(response)
                } else {
                    None
                };
                let reason = FailureReason::Rejected {
                    code,
                    reason: message::reason_phrase(&response.status_code).to_string(),
                };
                self.on_failure(reason, retry_after, &flight, now);
            }
        }
    }

    /// The REGISTER in flight timed out (its transaction's Timer F).
    pub fn on_timeout(&mut self, now: Instant) {
        if let Some(flight) = self.in_flight.take() {
            self.on_failure(FailureReason::Timeout, None, &flight, now);
        }
    }

    fn build_request(&mut self, expires: u32, now: Instant) -> rsip::Request {
        // Four billion REGISTERs on one Call-ID do not happen; wrapping (past 0, which
        // `stop` reads as "never sent") only keeps this free of a panic.
        self.cseq = self.cseq.wrapping_add(1).max(1);
        let uri_text = self.registrar.to_string();
        let mut headers = rsip::Headers::default();
        let proto = self.transport.via_name();
        let branch = format!(
            "{BRANCH_MAGIC_COOKIE}{:016x}{:08x}",
            self.rng.random::<u64>(),
            self.rng.random::<u32>()
        );
        let mut add = |name: &str, value: String| message::add_header(&mut headers, name, value);
        add(
            "Via",
            format!("SIP/2.0/{proto} {};branch={branch};rport", self.sent_by),
        );
        add("Max-Forwards", "70".into());
        add("From", format!("<{}>;tag={}", self.aor, self.from_tag));
        add("To", format!("<{}>", self.aor));
        add("Call-ID", self.call_id.clone());
        add("CSeq", format!("{} REGISTER", self.cseq));
        add("Contact", format!("<{}>;expires={expires}", self.contact));
        add("Expires", expires.to_string());
        let mut answered = [None, None];
        for ((client, header), slot) in [
            (&mut self.www, "Authorization"),
            (&mut self.proxy, "Proxy-Authorization"),
        ]
        .into_iter()
        .zip(answered.iter_mut())
        {
            let Some(client) = client else { continue };
            let cnonce = format!("{:016x}", self.rng.random::<u64>());
            // The challenge was checked against our secret when it was chosen, so this only
            // fails if that changed; then the request goes without and is challenged again.
            if let Ok(value) = client.authorize(&self.credentials, "REGISTER", &uri_text, &cnonce) {
                add(header, value);
                *slot = Some(Answered {
                    nonce: client.challenge().nonce.clone(),
                    fresh: client.uses() == 1,
                });
            }
        }
        if let Some(ua) = &self.user_agent {
            add("User-Agent", ua.clone());
        }
        add("Content-Length", "0".into());
        let [www, proxy] = answered;
        self.in_flight = Some(InFlight {
            cseq: self.cseq,
            sent_at: now,
            expires,
            www,
            proxy,
        });
        rsip::Request {
            method: Method::Register,
            uri: self.registrar.clone(),
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }
    }

    fn on_success(&mut self, response: &rsip::Response, flight: &InFlight, now: Instant) {
        self.immediate_retries = 0;
        if flight.expires == 0 {
            self.after_unregister(now);
            return;
        }
        // A registrar may shorten the interval, never lengthen it (§10.3 step 7); taking
        // the smaller also keeps a hostile value from pushing the refresh out of range.
        let granted = granted_expires(response, &self.contact_uri)
            .unwrap_or(flight.expires)
            .min(flight.expires);
        if granted == 0 {
            self.on_failure(FailureReason::NotBound, None, flight, now);
            return;
        }
        self.failures = 0;
        self.state = RegistrationState::Registered {
            until: flight.sent_at + secs(granted),
        };
        match self.goal {
            Goal::Register => self.due = Some(flight.sent_at + secs(refresh_after(granted))),
            Goal::Unregister => {
                // Stopped while this REGISTER was on its way: now remove what it bound.
                self.state = RegistrationState::Unregistering;
                self.due = Some(now);
            }
            Goal::Stopped => self.due = None,
        }
    }

    fn on_challenge(
        &mut self,
        response: &rsip::Response,
        proxy: bool,
        flight: &InFlight,
        now: Instant,
    ) {
        let (header, sent) = if proxy {
            ("Proxy-Authenticate", &flight.proxy)
        } else {
            ("WWW-Authenticate", &flight.www)
        };
        let values = message::header_values(response, header);
        let challenge = match select_challenge(
            &values,
            &self.credentials.secret,
            &self.credentials.username,
        ) {
            Ok(challenge) => challenge,
            Err(e) => {
                self.on_failure(FailureReason::BadChallenge(e), None, flight, now);
                return;
            }
        };
        if let Some(sent) = sent
            && !challenge.stale
            && (sent.fresh || sent.nonce == challenge.nonce)
        {
            self.on_failure(FailureReason::WrongCredentials, None, flight, now);
            return;
        }
        if !self.retry_now(now) {
            self.on_failure(FailureReason::TooManyChallenges, None, flight, now);
            return;
        }
        let slot = if proxy {
            &mut self.proxy
        } else {
            &mut self.www
        };
        *slot = Some(DigestClient::new(challenge));
    }

    fn on_too_brief(&mut self, response: &rsip::Response, flight: &InFlight, now: Instant) {
        let min = message::header_value(response, "Min-Expires")
            .as_deref()
            .and_then(parse_delta_seconds);
        // Only a larger interval within our bound can succeed; anything else would be
        // refused the same way again.
        let usable = min.filter(|m| flight.expires > 0 && *m > flight.expires && *m <= MAX_EXPIRES);
        if let Some(min) = usable
            && self.retry_now(now)
        {
            self.expires = min;
            return;
        }
        let reason = FailureReason::Rejected {
            code: 423,
            reason: message::reason_phrase(&response.status_code).to_string(),
        };
        self.on_failure(reason, None, flight, now);
    }

    /// Schedules the next request right away, unless too many already went out that way.
    fn retry_now(&mut self, now: Instant) -> bool {
        self.immediate_retries += 1;
        if self.immediate_retries > MAX_IMMEDIATE_RETRIES {
            return false;
        }
        self.due = Some(now);
        true
    }

    fn on_failure(
        &mut self,
        reason: FailureReason,
        retry_after: Option<Duration>,
        flight: &InFlight,
        now: Instant,
    ) {
        self.immediate_retries = 0;
        // A fresh start after a failure: cached nonces are what may have gone wrong.
        self.www = None;
        self.proxy = None;
        if flight.expires == 0 {
            // An unregistration is tried once: the binding lapses by itself anyway.
            self.after_unregister(now);
            return;
        }
        match self.goal {
            Goal::Register => {
                self.failures = self.failures.saturating_add(1);
                let delay = match retry_after {
                    Some(d) => d.clamp(MIN_RETRY_AFTER, BACKOFF_MAX),
                    None => self.backoff(),
                };
                let retry_at = now + delay;
                self.state = RegistrationState::Failed { reason, retry_at };
                self.due = Some(retry_at);
            }
            Goal::Unregister => {
                // An earlier REGISTER may still hold a binding: remove it regardless.
                self.state = RegistrationState::Unregistering;
                self.due = Some(now);
            }
            Goal::Stopped => self.due = None,
        }
    }

    /// The unregistration in flight ended (however it did).
    fn after_unregister(&mut self, now: Instant) {
        if self.goal == Goal::Register {
            // Started again meanwhile.
            self.state = RegistrationState::Registering;
            self.due = Some(now);
        } else {
            self.finish_stop();
        }
    }

    fn finish_stop(&mut self) {
        self.goal = Goal::Stopped;
        self.state = RegistrationState::Unregistered;
        self.due = None;
        self.www = None;
        self.proxy = None;
    }

    /// 30 s doubling per failure up to 30 min, less up to a tenth.
    fn backoff(&mut self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16);
        let full = BACKOFF_FIRST
            .saturating_mul(1 << doublings)
            .min(BACKOFF_MAX);
        let tenth_ms = full.as_secs() * 100;
        full - Duration::from_millis(self.rng.random_range(0..=tenth_ms))
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// When to refresh a binding granted for `granted` seconds, counted from the REGISTER.
fn refresh_after(granted: u32) -> u32 {
    (granted / 2)
        .min(granted.saturating_sub(REFRESH_MARGIN))
        .max(MIN_REFRESH)
}

/// The lifetime a 2xx grants our contact (RFC 3261 §10.2.4): the `expires` of the Contact
/// that is ours, else the Expires header. `None` when neither says.
fn granted_expires(response: &rsip::Response, ours: &rsip::Uri) -> Option<u32> {
    let from_contact = message::header_values(response, "Contact")
        .iter()
        .filter_map(|value| syntax::split_top_level(value, b','))
        .flatten()
        .filter_map(syntax::parse_name_addr)
        .filter(|na| message::parse_uri(na.uri).is_some_and(|uri| same_address(&uri, ours)))
        .find_map(|na| na.param("expires").and_then(parse_delta_seconds));
    from_contact.or_else(|| {
        message::header_value(response, "Expires")
            .as_deref()
            .and_then(parse_delta_seconds)
    })
}

/// Whether two contact URIs name the same place: scheme, user, host (any case) and port
/// (absent meaning the default). Parameters are left out on purpose: registrars add and
/// drop `transport`, `ob` and their own, and still mean our binding.
fn same_address(a: &rsip::Uri, b: &rsip::Uri) -> bool {
    let secure = |u: &rsip::Uri| matches!(u.scheme, Some(rsip::Scheme::Sips));
    let port = |u: &rsip::Uri| {
        u.host_with_port
            .port
            .map(u16::from)
            .unwrap_or(if secure(u) { 5061 } else { 5060 })
    };
    secure(a) == secure(b)
        && a.user() == b.user()
        && a.host()
            .to_string()
            .eq_ignore_ascii_case(&b.host().to_string())
        && port(a) == port(b)
}

/// The delay of a Retry-After header (RFC 3261 §20.33: seconds, then an optional comment and
/// parameters).
fn retry_after(response: &rsip::Response) -> Option<Duration> {
    let value = message::header_value(response, "Retry-After")?;
    let value = value.trim_start();
    let end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    parse_delta_seconds(value.get(..end)?).map(secs)
}
