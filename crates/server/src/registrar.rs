//! The registrar service (RFC 3261 §10.3): answers REGISTER with digest authentication,
//! keeps the bindings with their expiry deadlines, bans sources that keep guessing
//! passwords, persists the bindings so they survive a restart, and looks up where a user's
//! phones are.
//!
//! It runs on the signalling task: users come from the in-memory [`UserDirectory`], writes
//! go to the store thread ([`StoreHandle::submit`]); nothing here waits for the database.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use media::sdp::SrtpPolicy;
use sip::digest::{Algorithm, AuthFailure, DigestAuthenticator, DigestConfig, find_credentials};
use sip::message as msg;
use sip::qualify::{Qualifier, QualifyConfig, Reachability};
use sip::registrar::{
    Aor, Binding, BindingChange, BindingDetails, BindingId, BindingRecord, NextHop, QValue,
    RegisterRequest, Registrar, RegistrarConfig,
};
use sip::security::{BanConfig, FailedAuthBans, NetworkList};
use sip::transaction::{Peer, TransportKind};

use crate::config::{DigestAlgorithm, RegistrarSettings};
use crate::security_cli::BanSummary;
use crate::store_handle::StoreHandle;
use crate::telemetry::{self, count, set};
use crate::tenants::Tenants;
use crate::user_directory::UserDirectory;

/// Where requests to a registered phone go, and the Route header values they carry: back
/// over the flow its REGISTER came on, or, when it registered through proxies that put
/// themselves in a Path (RFC 3327 §5.3), to the first of them with the Path as route set.
/// `None` when the first Path entry is no address we can send to (we do no DNS).
pub fn route_to(binding: &Binding) -> Option<(Peer, Vec<String>)> {
    match binding.next_hop() {
        NextHop::Flow(flow) => Some((flow, Vec::new())),
        NextHop::Path(first) => {
            let hop = crate::sip_endpoint::uri_next_hop(first);
            if hop.is_none() {
                tracing::info!(user = %binding.aor.user(), path = %first, "Path entry is no IP address; contact not reached");
            }
            Some((hop?, binding.details.path.clone()))
        }
    }
}

/// Users with new contacts waiting to be told of their voicemail at most; beyond, a burst
/// of registrations (a restart of every phone) skips the rest until their mailbox changes.
const NEWLY_REGISTERED_QUEUE: usize = 4096;

/// Figures for `/metrics`.
/// What became of a REGISTER.
#[derive(Debug)]
pub enum RegisterOutcome {
    /// Answer with this response.
    Respond(Box<rsip::Response>),
    /// The source is banned: no answer at all (an answer would only feed the guessing).
    Drop,
}

/// What the admin API asks of the registrar about bans (answered on the signalling task,
/// which owns them).
#[derive(Debug)]
pub enum SecurityRequest {
    /// The bans in force.
    Bans(tokio::sync::oneshot::Sender<Vec<BanSummary>>),
    /// Lift the ban on an address; the ban lifted, if there was one.
    Unban(
        std::net::IpAddr,
        tokio::sync::oneshot::Sender<Option<BanSummary>>,
    ),
}

/// Who placed a call, as far as the server can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// One of our users: the INVITE came over the flow one of their phones registered on, or
    /// carried their password (`Proxy-Authorization`, RFC 3261 §22.3).
    User {
        /// The user's extension: the caller number the called party sees.
        extension: String,
        /// The user's display name from the directory (the phone's From is not believed).
        name: String,
        /// What the user may call out through a trunk.
        call_classes: trunks::AllowedClasses,
        /// Whether the user's media must, may or must not be SRTP: their own setting, else
        /// the server's `srtp`.
        srtp: SrtpPolicy,
        /// The user's line is a fax machine (`user fax EXT on`): its calls are passed
        /// through unchanged.
        fax: bool,
        /// The user's own location number for emergency calls, if set.
        location: Option<trunks::PersonalLocation>,
    },
    /// A trusted network (`[security] trusted-networks`: a trunk, a proxy in front): its From
    /// header is taken as it is.
    Trusted,
    /// Nobody we know: such a caller reaches only the dialplan's public rules.
    Unidentified,
}

impl Caller {
    /// Whether the caller proved an identity (or needs none).
    pub fn is_identified(&self) -> bool {
        !matches!(self, Caller::Unidentified)
    }
}

/// `[security] trusted-networks` and `proxies`.
pub struct SourceNetworks {
    /// Sources whose calls need no authentication and whose messages no rate limit.
    pub trusted: NetworkList,
    /// Proxies in front: the caller is the client they name.
    pub proxies: NetworkList,
}

/// Where a request comes from (see [`RegistrarService::origin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The caller's address: the sender, or the client a proxy in front named.
    pub ip: std::net::IpAddr,
    /// The proxy it came through, if any.
    pub proxy: Option<std::net::IpAddr>,
}

/// Why an INVITE is refused before it is routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerRefusal {
    /// The caller behind a proxy in front is banned (a banned sender's own messages are
    /// dropped unread; the proxy must get an answer, or it takes this node for dead).
    Banned,
    /// Credentials were given and failed: challenge again (`stale`: only the nonce was old).
    Challenge {
        /// The response was right but the nonce too old.
        stale: bool,
        /// The nonce a wrong answer was for: challenged again with it (see
        /// [`DigestAuthenticator::rechallenge`]).
        wrong_answer_to: Option<String>,
    },
    /// Right password, but from outside the user's allowed networks.
    ForeignNetwork,
    /// `Proxy-Authorization` could not be read.
    BadCredentials,
}

/// The registrar service (see the module documentation).
pub struct RegistrarService {
    /// One per domain, the default domain's first: its digest realm is the domain (users'
    /// HA1s are stored for it).
    auth: Vec<(String, DigestAuthenticator)>,
    /// The domains requests may belong to.
    tenants: Tenants,
    algorithms: Vec<Algorithm>,
    bindings: Registrar,
    bans: FailedAuthBans,
    users: Arc<UserDirectory>,
    writer: StoreHandle,
    /// Sources whose calls need no authentication and whose messages no rate limit.
    trusted: NetworkList,
    /// Proxies in front (`[security] proxies`): the caller is the client they name.
    proxies: NetworkList,
    /// The server's `srtp`, for users without a setting of their own.
    srtp_default: SrtpPolicy,
    /// OPTIONS schedule and reachability of the bindings; `None` when qualifying is off.
    qualifier: Option<Qualifier<BindingId>>,
    /// Users of the default domain with a newly added contact, whose phones are told of
    /// their voicemail (MWI; mailboxes are the default domain's alone yet).
    newly_registered: std::collections::VecDeque<String>,
}

impl RegistrarService {
    /// A registrar with the bindings `stored` (unexpired ones from the store).
    #[allow(clippy::too_many_arguments)] // the settings, and what the registrar works with
    pub fn new(
        settings: &RegistrarSettings,
        tenants: Tenants,
        users: Arc<UserDirectory>,
        writer: StoreHandle,
        stored: Vec<store::UserBinding>,
        sources: SourceNetworks,
        srtp_default: SrtpPolicy,
        now: Instant,
    ) -> Self {
        let SourceNetworks { trusted, proxies } = sources;
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let mut bindings = Registrar::new(RegistrarConfig {
            min_expires: settings.min_expires,
            max_expires: settings.max_expires,
            ..RegistrarConfig::default()
        });
        let records = stored.into_iter().filter_map(record_from_store);
        let loaded = bindings.import(records, now, SystemTime::now());
        if loaded > 0 {
            tracing::info!(bindings = loaded, "registrations restored from the store");
        }
        set(telemetry::REGISTERED_CONTACTS, bindings.iter().count());
        let mut algorithms: Vec<Algorithm> = settings
            .digest_algorithms
            .iter()
            .map(|a| match a {
                DigestAlgorithm::Sha256 => Algorithm::Sha256,
                DigestAlgorithm::Md5 => Algorithm::Md5,
            })
            .collect();
        algorithms.dedup();
        if algorithms.is_empty() {
            algorithms.push(Algorithm::Md5);
        }
        // Answers are accepted only in the algorithms we challenge with: no downgrade to MD5
        // where only SHA-256 is offered.
        let auth = tenants
            .all_domains()
            .map(|domain| {
                let digest = DigestConfig {
                    algorithms: algorithms.clone(),
                    ..DigestConfig::new(domain)
                };
                let auth = DigestAuthenticator::new(digest, &secret)
                    .unwrap_or_else(|_| unreachable!("a 32-byte secret is long enough"));
                (domain.to_owned(), auth)
            })
            .collect();
        let qualifier = (settings.qualify_interval > 0).then(|| {
            let interval = Duration::from_secs(settings.qualify_interval);
            let mut qualifier = Qualifier::new(QualifyConfig {
                interval,
                timeout: Duration::from_secs(settings.qualify_timeout.max(1)),
            });
            // Spread the restored contacts' first probes over one interval rather than
            // sending every OPTIONS in the same instant after a restart.
            let restored: Vec<BindingId> = bindings.iter().map(|b| b.id).collect();
            let count = restored.len().max(1) as u32;
            for (i, id) in restored.into_iter().enumerate() {
                let first_probe = now + interval * (i as u32 + 1) / count;
                qualifier.track(id, first_probe.checked_sub(interval).unwrap_or(now));
            }
            qualifier
        });
        Self {
            auth,
            tenants,
            algorithms,
            bindings,
            bans: FailedAuthBans::new(BanConfig {
                max_failures: settings.ban_after_failures.max(1),
                window: Duration::from_secs(settings.ban_window),
                ban_duration: Duration::from_secs(settings.ban_seconds),
                ..BanConfig::default()
            }),
            users,
            writer,
            trusted,
            proxies,
            srtp_default,
            qualifier,
            newly_registered: std::collections::VecDeque::new(),
        }
    }

    /// The next user with a newly registered contact (a phone that came up, or moved).
    pub fn poll_newly_registered(&mut self) -> Option<String> {
        self.newly_registered.pop_front()
    }

    /// The earliest binding expiry, ban end, qualify probe or probe timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        let qualify = self.qualifier.as_ref().and_then(Qualifier::next_deadline);
        [
            self.bindings.next_deadline(),
            self.bans.next_deadline(),
            qualify,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next registered contact to send a qualify OPTIONS to: its binding, contact URI,
    /// and where the request goes (see [`route_to`]). Call until `None`.
    pub fn poll_probe(&mut self, now: Instant) -> Option<(BindingId, String, Peer, Vec<String>)> {
        let qualifier = self.qualifier.as_mut()?;
        while let Some(id) = qualifier.poll_probe(now) {
            match self.bindings.iter().find(|b| b.id == id).and_then(|b| {
                let (next_hop, route) = route_to(b)?;
                Some((b.details.contact.clone(), next_hop, route))
            }) {
                Some((contact, next_hop, route)) => return Some((id, contact, next_hop, route)),
                None => qualifier.forget(id),
            }
        }
        None
    }

    /// A contact answered its qualify OPTIONS.
    pub fn on_probe_answer(&mut self, id: BindingId) {
        let change = self.qualifier.as_mut().and_then(|q| q.answered(id));
        if let Some(change) = change {
            self.apply_reachability(change);
        }
    }

    /// Marks a binding reachable or not, so `lookup` rings it or not.
    fn apply_reachability(&mut self, change: Reachability<BindingId>) {
        let (id, reachable) = match change {
            Reachability::Down(id) => (id, false),
            Reachability::Up(id) => (id, true),
        };
        let Some(binding) = self.bindings.iter().find(|b| b.id == id) else {
            return;
        };
        let (aor, contact, source) = (
            binding.aor.clone(),
            binding.details.contact.clone(),
            binding.details.source.addr,
        );
        if reachable {
            self.bindings.mark_reachable(&aor, id);
            tracing::info!(user = %aor.user(), %contact, %source, "contact answers again");
        } else {
            self.bindings.mark_unreachable(&aor, id);
            tracing::warn!(user = %aor.user(), %contact, %source, "contact does not answer OPTIONS: not rung until it answers or registers again");
        }
        let down = self.qualifier.as_ref().map_or(0, Qualifier::down_count);
        set(telemetry::UNREACHABLE_CONTACTS, down);
    }

    /// Forgets expired bindings (and stores what is left of their users) and ended bans.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired = self.bindings.expire(now);
        if let Some(qualifier) = self.qualifier.as_mut() {
            for binding in &expired {
                qualifier.forget(binding.id);
            }
        }
        let changes = self
            .qualifier
            .as_mut()
            .map(|q| q.handle_timeout(now))
            .unwrap_or_default();
        for change in changes {
            self.apply_reachability(change);
        }
        let mut users: Vec<Aor> = expired.into_iter().map(|b| b.aor).collect();
        users.dedup();
        for aor in users {
            tracing::info!(user = %aor.user(), "registration expired");
            self.persist(&aor, now);
        }
        for ban in self.bans.expire(now) {
            tracing::info!(source = %ban.source, "ban ended");
        }
        self.publish(now);
    }

    /// Whether `domain` is the default domain or a tenant of this config.
    pub fn hosts(&self, domain: &str) -> bool {
        self.tenants.knows(domain)
    }

    /// The domain `request` belongs to: the tenant its Request-URI names, else the default.
    pub fn tenant_of(&self, request: &rsip::Request) -> String {
        self.tenants.of_request(request).to_owned()
    }

    /// The domain and extension of `uri` (`sip:101@stadt-b.example`) when its host is a
    /// tenant this system hosts: a rule's address of another town's user.
    pub fn hosted_user<'a>(&self, uri: &'a str) -> Option<(&str, &'a str)> {
        let rest = uri.strip_prefix("sip:")?;
        let (user, host) = rest.split_once('@')?;
        let host = host.split([';', ':', '>']).next()?;
        let domain = self.tenants.of_host(Some(host));
        (!crate::tenants::is_default(domain) && !user.is_empty()).then_some((domain, user))
    }

    /// The SRTP setting for a call to `extension`'s phones: the user's own, else the server's.
    pub fn srtp_policy(&self, domain: &str, extension: &str) -> SrtpPolicy {
        self.users.srtp_policy(domain, extension, self.srtp_default)
    }

    /// User `extension`'s display name (not one of our users: `None`).
    pub fn display_name(&self, domain: &str, extension: &str) -> Option<String> {
        self.users
            .get(domain, extension)
            .map(|user| user.display_name)
    }

    /// Whether `extension` is one of `domain`'s users (the directory, refreshed from the
    /// store).
    pub fn has_user(&self, domain: &str, extension: &str) -> bool {
        self.users.get(domain, extension).is_some()
    }

    /// Whether `extension`'s line is a fax machine (`user fax EXT on`).
    pub fn is_fax(&self, domain: &str, extension: &str) -> bool {
        self.users.is_fax(domain, extension)
    }

    /// What a call to `extension` does besides ringing its phones (no such user: `None`).
    pub fn call_settings(&self, domain: &str, extension: &str) -> Option<store::CallSettings> {
        self.users.call_settings(domain, extension)
    }

    /// What calls placed on behalf of user `extension` may do (their forwarding and
    /// follow-me): their call classes and location number.
    pub fn caller_profile(
        &self,
        domain: &str,
        extension: &str,
    ) -> Option<crate::trunk_service::CallerProfile> {
        let user = self.users.get(domain, extension)?;
        Some(crate::trunk_service::CallerProfile {
            user: Some(extension.to_owned()),
            allowed: user.call_classes,
            location: user.location,
        })
    }

    /// The user directory, to reload at once after a change this process made.
    pub fn directory(&self) -> Arc<UserDirectory> {
        self.users.clone()
    }

    /// The reachable bindings of `domain`'s user `extension`, highest q first.
    pub fn lookup(&self, domain: &str, extension: &str, now: Instant) -> Vec<&Binding> {
        // A user deleted while its phones were registered (console or CLI) is not rung on
        // those phones again, though their bindings stay until they expire.
        if self.users.get(domain, extension).is_none() {
            return Vec::new();
        }
        self.bindings.lookup(&Aor::new(extension, domain), now)
    }

    /// The authenticator of `domain`'s realm (the default domain's for one we do not host,
    /// which [`Tenants::of_request`] never yields).
    fn auth(&self, domain: &str) -> &DigestAuthenticator {
        &self.auth[self.auth_index(domain)].1
    }

    fn auth_mut(&mut self, domain: &str) -> &mut DigestAuthenticator {
        let index = self.auth_index(domain);
        &mut self.auth[index].1
    }

    fn auth_index(&self, domain: &str) -> usize {
        self.auth.iter().position(|(d, _)| d == domain).unwrap_or(0)
    }

    /// Answers an admin request about bans.
    pub fn on_security_request(&mut self, request: SecurityRequest, now: Instant) {
        match request {
            SecurityRequest::Bans(reply) => {
                let bans = self
                    .bans
                    .bans(now)
                    .iter()
                    .map(|b| summary(b, now))
                    .collect();
                let _ = reply.send(bans);
            }
            SecurityRequest::Unban(source, reply) => {
                let lifted = self
                    .bans
                    .unban(source)
                    .filter(|b| b.until > now)
                    .map(|b| summary(&b, now));
                if let Some(ban) = &lifted {
                    tracing::warn!(source = %ban.source, reason = %ban.reason, "ban lifted by an admin");
                    self.publish(now);
                }
                let _ = reply.send(lifted);
            }
        }
    }

    /// Whether `source` is banned now (everything it sends is dropped unanswered).
    pub fn is_banned(&self, source: std::net::IpAddr, now: Instant) -> bool {
        self.bans.is_banned(source, now)
    }

    /// Whether `source` is in `[security] trusted-networks`.
    pub fn is_trusted(&self, source: std::net::IpAddr) -> bool {
        self.trusted.contains(source)
    }

    /// Adds the stored bindings this registrar lacks (another node of a pool took those
    /// REGISTERs, see `registration_sync`); returns how many.
    pub fn learn_stored(&mut self, stored: Vec<store::UserBinding>, now: Instant) -> usize {
        let records = stored.into_iter().filter_map(record_from_store);
        let learned = self.bindings.learn(records, now, SystemTime::now());
        if learned > 0 {
            tracing::info!(bindings = learned, "registrations learned from the store");
            self.publish(now);
        }
        learned
    }

    /// Whether `source` is one of `[security] proxies`.
    pub fn is_proxy(&self, source: std::net::IpAddr) -> bool {
        self.proxies.contains(source)
    }

    /// Where `request` really comes from: its sender, or, when the sender is one of
    /// `[security] proxies`, the client that proxy recorded in the Via below its own: the
    /// `received` address it added when the client's sent-by was not the address it came
    /// from, else the sent-by host (RFC 3261 §18.2.1). A proxy's own requests (one Via, or a
    /// sent-by that is a host name) stay the proxy's.
    pub fn origin(&self, request: &rsip::Request, from: Peer) -> Origin {
        let sender = from.addr.ip();
        if !self.is_proxy(sender) {
            return Origin {
                ip: sender,
                proxy: None,
            };
        }
        let client = msg::via_at(request, 1).and_then(|via| {
            via.received
                .as_deref()
                .unwrap_or(&via.host)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()
        });
        Origin {
            ip: client.unwrap_or(sender),
            proxy: Some(sender),
        }
    }

    /// Works out who sent an INVITE from `from`, as a caller of `domain` (the tenant its
    /// Request-URI names): only that domain's users and phones count.
    ///
    /// Credentials, when given, are checked first and their failures count toward a ban as a
    /// REGISTER's do; then the flow a phone registered on (its NAT mapping, so contact
    /// rewriting and authentication agree); then the trusted networks.
    pub fn identify_caller(
        &mut self,
        request: &rsip::Request,
        domain: &str,
        from: Peer,
        now: Instant,
    ) -> Result<Caller, CallerRefusal> {
        let origin = self.origin(request, from);
        let source = origin.ip;
        if origin.proxy.is_some() && self.bans.is_banned(source, now) {
            return Err(CallerRefusal::Banned);
        }
        let wall = SystemTime::now();
        match find_credentials(request, "Proxy-Authorization", domain) {
            Ok(Some(credentials)) => {
                let user = self.users.get(domain, &credentials.username);
                let method = request.method.to_string();
                if let Err(failure) = self.auth_mut(domain).verify(
                    &credentials,
                    &method,
                    user.as_ref().map(|u| &u.credentials),
                    wall,
                ) {
                    if failure.counts_as_failure() {
                        tracing::info!(%source, user = %credentials.username, "INVITE not authenticated: {failure}");
                        self.record_failure(source, now);
                    }
                    return Err(CallerRefusal::Challenge {
                        stale: failure.is_stale(),
                        wrong_answer_to: (failure == AuthFailure::WrongResponse)
                            .then(|| credentials.nonce.clone()),
                    });
                }
                let Some(user) = user else {
                    return Err(CallerRefusal::Challenge {
                        stale: false,
                        wrong_answer_to: None,
                    });
                };
                if !user.allows_source(source) {
                    tracing::info!(%source, user = %credentials.username, "INVITE from outside the user's allowed networks");
                    return Err(CallerRefusal::ForeignNetwork);
                }
                return Ok(Caller::User {
                    extension: credentials.username,
                    srtp: user.srtp(self.srtp_default),
                    fax: user.fax,
                    name: user.display_name,
                    call_classes: user.call_classes,
                    location: user.location,
                });
            }
            Ok(None) => {}
            Err(err) => {
                tracing::info!(%source, "unreadable Proxy-Authorization: {err}");
                return Err(CallerRefusal::BadCredentials);
            }
        }
        // Behind a proxy every caller shares the proxy's flow: it names no phone.
        if let Some(extension) = origin
            .proxy
            .is_none()
            .then(|| self.registered_over(request, domain, from, now))
            .flatten()
        {
            // A user deleted since its phone registered gets the default set and the server's
            // SRTP policy, as any caller that is not a user does.
            let (name, call_classes, srtp, fax, location) = self
                .users
                .get(domain, &extension)
                .map(|u| {
                    let srtp = u.srtp(self.srtp_default);
                    (u.display_name, u.call_classes, srtp, u.fax, u.location)
                })
                .unwrap_or_else(|| {
                    let defaults = Default::default();
                    (String::new(), defaults, self.srtp_default, false, None)
                });
            return Ok(Caller::User {
                extension,
                name,
                call_classes,
                srtp,
                fax,
                location,
            });
        }
        Ok(if self.is_trusted(source) {
            Caller::Trusted
        } else {
            Caller::Unidentified
        })
    }

    /// The user whose phone registered over the flow `from` (same address, port and
    /// transport) for `domain`, preferring the From user when several share it (one phone,
    /// two accounts).
    fn registered_over(
        &self,
        request: &rsip::Request,
        domain: &str,
        from: Peer,
        now: Instant,
    ) -> Option<String> {
        let same_flow = |b: &&Binding| {
            b.expires_at > now
                && b.aor.domain() == domain
                && b.details.source.addr == from.addr
                && b.details.source.transport == from.transport
        };
        let from_user = msg::header_value(request, "From")
            .and_then(|v| msg::address_uri(&v))
            .and_then(|u| msg::parse_uri(&u))
            .and_then(|u| u.auth.map(|a| a.user));
        let mut users = self.bindings.iter().filter(same_flow).map(|b| b.aor.user());
        let first = users.next()?.to_string();
        match from_user {
            Some(named) if named != first && users.any(|u| u == named) => Some(named),
            _ => Some(first),
        }
    }

    /// The `Proxy-Authenticate` values of a 407 (one per offered algorithm).
    /// After a wrong answer to `wrong_answer_to`, its nonce is repeated.
    /// The realm is `domain`'s, the tenant the request was for.
    pub fn proxy_challenges(
        &self,
        domain: &str,
        stale: bool,
        wrong_answer_to: Option<&str>,
    ) -> Vec<String> {
        let wall = SystemTime::now();
        let auth = self.auth(domain);
        self.algorithms
            .iter()
            .map(|&algorithm| match wrong_answer_to {
                Some(nonce) => auth.rechallenge(algorithm, nonce, wall),
                None => auth.challenge(algorithm, wall, stale),
            })
            .collect()
    }

    /// Counts a failed authentication from `source`, banning it after too many (never a
    /// proxy in front: that would ban every caller behind it).
    fn record_failure(&mut self, source: std::net::IpAddr, now: Instant) {
        count(telemetry::AUTH_FAILURES_TOTAL);
        if self.is_proxy(source) {
            return;
        }
        if let Some(ban) = self.bans.record_failure(source, now) {
            tracing::warn!(source = %ban.source, until = ?ban.until.saturating_duration_since(now), "source banned after repeated failed authentication");
            count(telemetry::BANS_TOTAL);
            self.publish(now);
        }
    }

    /// Answers a REGISTER from `from`.
    pub fn on_register(
        &mut self,
        request: &rsip::Request,
        from: Peer,
        now: Instant,
    ) -> RegisterOutcome {
        let origin = self.origin(request, from);
        let source = origin.ip;
        if self.bans.is_banned(source, now) {
            if origin.proxy.is_some() {
                // Silence would make the proxy take this node for dead.
                return self.respond(request, 403, Some("Banned"));
            }
            tracing::debug!(%source, "REGISTER from a banned source dropped");
            return RegisterOutcome::Drop;
        }
        let wall = SystemTime::now();
        let domain = self.tenant_of(request);
        let credentials = match find_credentials(request, "Authorization", &domain) {
            Ok(Some(credentials)) => credentials,
            Ok(None) => return self.challenge(request, &domain, false, wall),
            Err(err) => {
                tracing::info!(%source, "unreadable Authorization: {err}");
                return self.respond(request, 400, Some("Bad Authorization"));
            }
        };
        let user = self.users.get(&domain, &credentials.username);
        // Unknown users take the same path as a wrong password (no enumeration).
        if let Err(failure) = self.auth_mut(&domain).verify(
            &credentials,
            "REGISTER",
            user.as_ref().map(|u| &u.credentials),
            wall,
        ) {
            if failure.counts_as_failure() {
                tracing::info!(%source, user = %credentials.username, "REGISTER not authenticated: {failure}");
                self.record_failure(source, now);
            }
            if failure == AuthFailure::WrongResponse {
                return self.rechallenge(request, &domain, &credentials.nonce, wall);
            }
            return self.challenge(request, &domain, failure.is_stale(), wall);
        }
        let Some(user) = user else {
            // Verified against the dummy credentials: cannot happen, refuse anyway.
            return self.challenge(request, &domain, false, wall);
        };
        if !user.allows_source(source) {
            tracing::info!(%source, user = %credentials.username, "REGISTER from outside the user's allowed networks");
            return self.respond(request, 403, Some("Not From An Allowed Network"));
        }
        let register = match RegisterRequest::from_request(request, from) {
            Ok(register) => register,
            Err(err) => {
                return self.respond(request, err.status_code(), Some(err.reason_phrase()));
            }
        };
        // A user registers its own address of record only (RFC 3261 §10.3 step 4).
        if register.aor.user() != credentials.username {
            return self.respond(request, 403, Some("Not Your Address Of Record"));
        }
        let aor = Aor::new(&credentials.username, &domain);
        let register = RegisterRequest {
            aor: aor.clone(),
            ..register
        };
        match self.bindings.register(&register, user.max_contacts, now) {
            Ok(registered) => {
                count(telemetry::REGISTRATIONS_TOTAL);
                self.qualify_changes(&registered.changes, now);
                // A phone that just came up learns of waiting messages at once; refreshes
                // do not repeat it (that is what a mailbox change does).
                if crate::tenants::is_default(&domain)
                    && registered
                        .changes
                        .iter()
                        .any(|c| matches!(c, BindingChange::Added(_)))
                    && self.newly_registered.len() < NEWLY_REGISTERED_QUEUE
                {
                    self.newly_registered.push_back(aor.user().to_string());
                }
                if !registered.changes.is_empty() {
                    self.publish(now);
                    let contacts = registered.contacts.len();
                    if contacts == 0 {
                        tracing::info!(user = %aor.user(), %source, "unregistered: no contacts left");
                    } else {
                        tracing::info!(user = %aor.user(), %source, contacts, transport = %from.transport.via_name(), "registered");
                    }
                    self.persist(&aor, now);
                }
                let mut response =
                    msg::response_to(request, 200, None, Some(&sip::transaction::new_tag()));
                for contact in &registered.contacts {
                    msg::add_header(&mut response.headers, "Contact", contact.clone());
                }
                if !registered.path.is_empty() {
                    for path in &registered.path {
                        msg::add_header(&mut response.headers, "Path", path.clone());
                    }
                    msg::add_header(&mut response.headers, "Supported", "path".into());
                }
                msg::add_header(
                    &mut response.headers,
                    "Date",
                    jiff::Timestamp::now()
                        .strftime("%a, %d %b %Y %H:%M:%S GMT")
                        .to_string(),
                );
                RegisterOutcome::Respond(Box::new(response))
            }
            Err(err) => {
                let mut response = msg::response_to(
                    request,
                    err.status_code(),
                    Some(err.reason_phrase()),
                    Some(&sip::transaction::new_tag()),
                );
                if let Some(min) = err.min_expires() {
                    msg::add_header(&mut response.headers, "Min-Expires", min.to_string());
                }
                RegisterOutcome::Respond(Box::new(response))
            }
        }
    }

    /// New and refreshed contacts are reachable (their REGISTER got here) and probed from
    /// now on; removed ones are no longer.
    fn qualify_changes(&mut self, changes: &[BindingChange], now: Instant) {
        let Some(qualifier) = self.qualifier.as_mut() else {
            return;
        };
        let mut back = Vec::new();
        for change in changes {
            match change {
                BindingChange::Added(b) | BindingChange::Refreshed(b) => {
                    back.extend(qualifier.track(b.id, now));
                }
                BindingChange::Removed(b) => qualifier.forget(b.id),
            }
        }
        for change in back {
            self.apply_reachability(change);
        }
    }

    /// Updates the gauges.
    fn publish(&self, now: Instant) {
        let live = self.bindings.iter().filter(|b| b.expires_at > now).count();
        set(telemetry::REGISTERED_CONTACTS, live);
        set(telemetry::BANNED_SOURCES, self.bans.bans(now).len());
    }

    fn challenge(
        &self,
        request: &rsip::Request,
        domain: &str,
        stale: bool,
        wall: SystemTime,
    ) -> RegisterOutcome {
        let mut response = msg::response_to(request, 401, None, Some(&sip::transaction::new_tag()));
        for &algorithm in &self.algorithms {
            let challenge = self.auth(domain).challenge(algorithm, wall, stale);
            msg::add_header(&mut response.headers, "WWW-Authenticate", challenge);
        }
        RegisterOutcome::Respond(Box::new(response))
    }

    /// The 401 after a wrong password: the same nonce again (see
    /// [`DigestAuthenticator::rechallenge`]), so the phone does not retry the same password.
    fn rechallenge(
        &self,
        request: &rsip::Request,
        domain: &str,
        nonce: &str,
        wall: SystemTime,
    ) -> RegisterOutcome {
        let mut response = msg::response_to(request, 401, None, Some(&sip::transaction::new_tag()));
        for &algorithm in &self.algorithms {
            let challenge = self.auth(domain).rechallenge(algorithm, nonce, wall);
            msg::add_header(&mut response.headers, "WWW-Authenticate", challenge);
        }
        RegisterOutcome::Respond(Box::new(response))
    }

    fn respond(&self, request: &rsip::Request, code: u16, phrase: Option<&str>) -> RegisterOutcome {
        RegisterOutcome::Respond(Box::new(msg::response_to(
            request,
            code,
            phrase,
            Some(&sip::transaction::new_tag()),
        )))
    }

    /// Stores the current bindings of `aor`'s user (all of them, replacing what was stored).
    fn persist(&self, aor: &Aor, now: Instant) {
        let wall = SystemTime::now();
        let bindings: Vec<store::Binding> = self
            .bindings
            .bindings(aor, now)
            .into_iter()
            .map(|b| binding_to_store(b, now, wall))
            .collect();
        let extension = aor.user().to_string();
        let domain = aor.domain().to_string();
        self.writer.submit("registration", move |store| {
            if let Err(err) = store.registration_replace(&domain, &extension, &bindings) {
                tracing::error!(user = %extension, "registration not stored: {err}");
            }
        });
    }
}

/// A ban as the admin API shows it.
fn summary(ban: &sip::security::Ban, now: Instant) -> BanSummary {
    let source = ban.source.to_string();
    BanSummary {
        // A single IPv4 address reads better without its /32.
        source: source
            .strip_suffix("/32")
            .map_or(source.clone(), str::to_string),
        reason: ban.reason.to_string(),
        since_s: now.saturating_duration_since(ban.since).as_secs(),
        remaining_s: ban.until.saturating_duration_since(now).as_secs(),
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn binding_to_store(b: &Binding, now: Instant, wall: SystemTime) -> store::Binding {
    let expires = wall + b.expires_at.saturating_duration_since(now);
    let d = &b.details;
    store::Binding {
        contact: d.contact.clone(),
        source: d.source.addr,
        transport: d.source.transport.uri_param().to_string(),
        path: d.path.clone(),
        q_milli: d.q.map(QValue::thousandths),
        call_id: d.call_id.clone(),
        cseq: d.cseq,
        expires_at_ms: unix_ms(expires),
        user_agent: d.user_agent.clone(),
        instance_id: d.instance.clone(),
    }
}

/// A stored binding as the registrar imports it; `None` for one it cannot use.
fn record_from_store(stored: store::UserBinding) -> Option<BindingRecord> {
    let b = stored.binding;
    let transport = match TransportKind::from_uri_param(&b.transport) {
        Some(transport) => transport,
        None => {
            let other = b.transport.as_str();
            tracing::warn!(
                transport = other,
                "stored registration over an unknown transport skipped"
            );
            return None;
        }
    };
    let expires_at =
        SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(b.expires_at_ms).ok()?);
    Some(BindingRecord {
        aor: Aor::new(&stored.extension, &stored.domain),
        details: BindingDetails {
            contact: b.contact,
            params: Vec::new(),
            q: b.q_milli.and_then(QValue::from_thousandths),
            instance: b.instance_id,
            reg_id: None,
            call_id: b.call_id,
            cseq: b.cseq,
            path: b.path,
            source: Peer {
                addr: b.source,
                transport,
                connection: None,
            },
            user_agent: b.user_agent,
        },
        // Not stored; only shown, and a restart is a fair "registered since".
        registered_at: SystemTime::now(),
        expires_at,
    })
}
