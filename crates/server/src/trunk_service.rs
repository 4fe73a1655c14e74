//! SIP trunks in the server: the carriers from `trunks.toml`, registering with those that
//! want it, and recognising calls that come from them.
//!
//! [`TrunkSet`] is what the rest of the server reads (which trunk an address belongs to, its
//! number rules, its state for `GET /trunks` and `/metrics`); [`TrunkLines`] runs in the
//! core loop and drives one [`OutboundRegistration`] per registering trunk through the SIP
//! endpoint.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use sip::digest::client::{ClientCredentials, Secret};
use sip::qualify::{Qualifier, QualifyConfig, Reachability};
use sip::registration::{OutboundRegistration, RegistrationConfig, RegistrationState};
use sip::transaction::{Peer, TransactionKey, TransportKind};
use trunks::{Password, Trunk, TrunkConfig, TrunkMode};

use crate::sip_endpoint::{OutboundCall, SipEndpoint};

/// Why a call out was refused before anything was sent to a carrier (toll-fraud
/// protection and channel limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The number's class is not in the caller's call classes.
    Barred,
    /// The caller has as many calls out as `[limits] outside-calls-per-user` allows.
    UserLimit,
    /// Every trunk that could carry it is at its `max-calls`, or the system at `[limits]
    /// outside-calls`.
    LinesBusy,
}

/// One call out as the dialplan asks for it.
pub struct CallOut<'a> {
    /// The number as the dialplan wrote it (normalised by the trunk's rules).
    pub number: &'a str,
    /// The caller: an extension, or a number as a trunk delivered it.
    pub from_user: &'a str,
    /// The caller's name, if known (or the one the rule `set`).
    pub from_name: Option<String>,
    /// Our number the rule `set` as the caller ID (`+49…`, `0711…` or an extension of the
    /// trunk's direct-dial block), presented instead of the caller's own direct-dial number.
    pub presented: Option<&'a str>,
    /// Who calls: the user whose call classes and limits the call is held to.
    pub caller: &'a CallerProfile,
    /// For a forwarded call, the number of ours the caller dialled.
    pub diverted_from: Option<&'a str>,
    /// Where the caller's phone is (its requests' source address), for emergency calls.
    pub source: Option<std::net::IpAddr>,
    /// Withhold the caller's number from the called party (RFC 3323).
    pub privacy: bool,
}

/// A call out as it goes to one carrier.
pub struct TrunkCall {
    /// The INVITE to send.
    pub call: OutboundCall,
    /// The trunk it goes out on (the first of the failover chain that can take it).
    pub trunk: String,
    /// The codecs to offer, preferred first (the trunk's `codecs`).
    pub codecs: Vec<media::sdp::Codec>,
}

/// The media codec a trunk's `codecs` entry names.
pub fn media_codec(codec: trunks::Codec) -> media::sdp::Codec {
    match codec {
        trunks::Codec::Pcmu => media::sdp::Codec::Pcmu,
        trunks::Codec::Pcma => media::sdp::Codec::Pcma,
        trunks::Codec::G722 => media::sdp::Codec::G722,
        trunks::Codec::Opus => media::sdp::Codec::Opus,
    }
}

/// How many calls out run now: on each trunk, of the calling user, and in all.
pub struct ActiveCalls<'a> {
    /// Calls out on the named trunk.
    pub on_trunk: &'a dyn Fn(&str) -> u32,
    /// Calls out of the calling user (0 for a caller that is not a user).
    pub of_user: u32,
    /// Calls out in all.
    pub total: u32,
}

/// Who places a call out: the user whose call classes and limits it is held to, and where
/// their phone is for an emergency call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerProfile {
    /// The calling user's extension; `None` for a caller that is not one of our users (a
    /// trusted network), whose From header names nobody we could hold to a setting.
    pub user: Option<String>,
    /// What the caller may call: the user's own set, else the default set.
    pub allowed: trunks::AllowedClasses,
    /// The user's own location number for emergency calls (`user location`), if set.
    pub location: Option<trunks::PersonalLocation>,
}

impl CallerProfile {
    /// A caller that is not a user: the default set.
    pub fn not_a_user() -> Self {
        Self {
            user: None,
            allowed: trunks::AllowedClasses::default(),
            location: None,
        }
    }
}

/// The trunks in force, their carriers' addresses and their state.
#[derive(Default)]
pub struct TrunkSet {
    config: TrunkConfig,
    /// Where each trunk's carrier is: its registrar and outbound proxy, resolved at start.
    carriers: Vec<CarrierAddress>,
    status: Mutex<Vec<TrunkStatus>>,
    /// Trunks whose carrier left its last keep-alive OPTIONS unanswered, by index.
    unreachable: Mutex<Vec<bool>>,
}

/// The trunks in force, swapped whole when `trunks.toml` changes: calls look them up when
/// they need them, so a running call keeps what it had and the next one sees the new file.
pub struct TrunkHolder {
    current: std::sync::RwLock<std::sync::Arc<TrunkSet>>,
    /// Where the trunks come from (`None`: no trunks file, nothing to reload).
    path: Option<PathBuf>,
}

impl TrunkHolder {
    /// Trunks read from `path`, or none.
    pub async fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let set = match path {
            Some(path) => TrunkSet::load(path).await?,
            None => TrunkSet::default(),
        };
        Ok(Self {
            current: std::sync::RwLock::new(std::sync::Arc::new(set)),
            path: path.map(Path::to_path_buf),
        })
    }

    /// The trunks in force now.
    pub fn current(&self) -> std::sync::Arc<TrunkSet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The trunks file, if there is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads the trunks file again; the new set is in force when this returns `Ok`. A file
    /// that does not pass the checks, names a host that does not resolve, or fails `check`
    /// (run before it takes effect) is refused whole and the set in force stays, so a typo
    /// never takes the outside lines down.
    pub async fn reload(
        &self,
        check: impl FnOnce(&TrunkSet) -> anyhow::Result<()>,
    ) -> anyhow::Result<std::sync::Arc<TrunkSet>> {
        let Some(path) = &self.path else {
            anyhow::bail!("no trunks file");
        };
        let loaded = match TrunkSet::load(path).await {
            Ok(set) => check(&set).map(|()| set),
            Err(err) => Err(err),
        };
        let set = match loaded {
            Ok(set) => std::sync::Arc::new(set),
            Err(err) => {
                crate::telemetry::count(crate::telemetry::TRUNKS_RELOADS_REFUSED_TOTAL);
                return Err(err);
            }
        };
        let old = self.current();
        set.carry_state_from(&old);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = set.clone();
        crate::telemetry::count(crate::telemetry::TRUNKS_RELOADS_TOTAL);
        Ok(set)
    }

    /// The number of trunks in force.
    pub fn len(&self) -> usize {
        self.current().config.trunks.len()
    }
}

/// A resolved address of one trunk's carrier.
struct CarrierAddress {
    trunk: usize,
    /// Where requests to the carrier go (`None` for addresses only recognised).
    addr: SocketAddr,
    /// This address takes our REGISTERs.
    registrar: bool,
    /// The host of the URI it was resolved from: the name a TLS certificate must carry.
    host: String,
}

/// A carrier address we reach over TLS, and how its certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDestination {
    /// The trunk's name.
    pub trunk: String,
    /// The address connected to.
    pub addr: SocketAddr,
    /// The name its certificate must carry (and our SNI): the host of the trunk's URI.
    pub host: String,
    /// The trunk's own CA file, already relative to where trunks.toml is; `None`: the
    /// system's trust store.
    pub ca_file: Option<PathBuf>,
}

/// One trunk as `GET /trunks` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrunkStatus {
    /// The trunk's name.
    pub name: String,
    /// `register` or `ip`.
    pub mode: &'static str,
    /// `registered`, `registering`, `failed`, `unregistered`, or `not-registering` (ip).
    pub state: &'static str,
    /// Why the last registration failed, if it did.
    pub error: Option<String>,
    /// Seconds until the registration lapses, while registered.
    pub expires_in_s: Option<u64>,
    /// When it lapses, while registered.
    #[serde(skip)]
    until: Option<Instant>,
    /// Whether the carrier answers our keep-alive OPTIONS; `None` without keep-alive.
    pub reachable: Option<bool>,
}

/// The trunks file at `path`, checked; its errors as `file:line:col` lines.
pub fn read_trunks_file(path: &Path) -> anyhow::Result<trunks::Checked> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
    trunks::parse(&path.display().to_string(), &text).map_err(|diagnostics| {
        let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })
}

impl TrunkSet {
    /// Reads `path` (diagnostics as `file:line:col` lines), reads password files relative to
    /// it, and resolves the carriers' host names.
    pub async fn load(path: &Path) -> anyhow::Result<Self> {
        let checked = read_trunks_file(path)?;
        for warning in &checked.warnings {
            tracing::warn!("{warning}");
        }
        let mut config = checked.config;
        let base = path.parent().unwrap_or(Path::new("."));
        for trunk in &mut config.trunks {
            if let Some(ca_file) = &mut trunk.ca_file {
                *ca_file = base.join(&*ca_file);
            }
            if let TrunkMode::Register(registration) = &mut trunk.mode
                && let Password::File(file) = &registration.password
            {
                let file = base.join(file);
                let secret = std::fs::read_to_string(&file).map_err(|err| {
                    anyhow::anyhow!(
                        "trunk \"{}\": cannot read password file {}: {err}",
                        trunk.name,
                        file.display()
                    )
                })?;
                registration.password = Password::Inline(secret.trim_end().to_string());
            }
        }
        let mut carriers = Vec::new();
        for (index, trunk) in config.trunks.iter().enumerate() {
            let mut uris = Vec::new();
            if let TrunkMode::Register(registration) = &trunk.mode {
                uris.push((registration.registrar.as_str().to_string(), true));
            }
            if let Some(proxy) = &trunk.proxy {
                uris.push((proxy.as_str().to_string(), false));
            }
            let transport = transport_of(trunk);
            for (uri, registrar) in uris {
                let (host, addrs) = resolve(&uri, transport).await?;
                for addr in addrs {
                    carriers.push(CarrierAddress {
                        trunk: index,
                        addr,
                        registrar,
                        host: host.clone(),
                    });
                }
            }
        }
        let status = config.trunks.iter().map(initial_status).collect();
        let unreachable = vec![false; config.trunks.len()];
        Ok(Self {
            config,
            carriers,
            status: Mutex::new(status),
            unreachable: Mutex::new(unreachable),
        })
    }

    /// The trunk a request from `ip` comes from: an `ip` trunk listing it, or a registering
    /// trunk whose registrar or proxy it is.
    pub fn of_source(&self, ip: IpAddr) -> Option<&Trunk> {
        self.config
            .trunks
            .iter()
            .find(|t| t.accepts_source(ip))
            .or_else(|| {
                self.carriers
                    .iter()
                    .find(|c| c.addr.ip() == ip)
                    .and_then(|c| self.config.trunks.get(c.trunk))
            })
    }

    /// Takes over the registration state and reachability of every trunk that `old` had
    /// with the same settings: its line keeps running, so its state stays true.
    fn carry_state_from(&self, old: &TrunkSet) {
        let old_status = old.status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for index in 0..self.config.trunks.len() {
            let Some(old_index) = old.unchanged_index(self, index) else {
                continue;
            };
            if let Some(status) = old_status.get(old_index) {
                self.set_status(index, status.clone());
            }
            self.set_reachable(index, old.is_reachable(old_index));
        }
    }

    /// Where trunk `index` of `new` sits in this set when it is there with the same
    /// settings and carrier addresses (so its registration and keep-alive can go on).
    fn unchanged_index(&self, new: &TrunkSet, index: usize) -> Option<usize> {
        let trunk = new.config.trunks.get(index)?;
        let mine = self
            .config
            .trunks
            .iter()
            .position(|t| t.name == trunk.name)?;
        let addresses = |set: &TrunkSet, i: usize| -> Vec<(SocketAddr, bool)> {
            set.carriers
                .iter()
                .filter(|c| c.trunk == i)
                .map(|c| (c.addr, c.registrar))
                .collect()
        };
        (self.config.trunks.get(mine) == Some(trunk)
            && addresses(self, mine) == addresses(new, index))
        .then_some(mine)
    }

    /// The prices and hourly limits of calls out (`[cost-guard]`), if the file has them.
    pub fn cost_rules(&self) -> Option<&trunks::CostRules> {
        self.config.cost_guard.as_ref()
    }

    /// The class of a call out to `number` as the dialplan wrote it; `None` when it is no
    /// number to call out.
    pub fn class_of(&self, number: &str) -> Option<trunks::CallClass> {
        self.config.numbering.dialled(number).ok().map(|c| c.class)
    }

    /// The trunk `name` fails over to, if any.
    pub fn failover_of(&self, name: &str) -> Option<String> {
        self.config.trunk(name)?.failover.clone()
    }

    /// The town whose trunk `name` is (`None`: the default domain's, or no such trunk).
    pub fn tenant_of(&self, name: &str) -> Option<&str> {
        self.config.trunk(name).and_then(|t| t.tenant.as_deref())
    }

    /// The SRTP setting of trunk `name`, if it has one of its own.
    pub fn srtp_of(&self, name: &str) -> Option<media::sdp::SrtpPolicy> {
        self.config
            .trunks
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.srtp)
    }

    /// The carrier addresses reached over TLS, with what their certificates are checked
    /// against.
    pub fn tls_destinations(&self) -> Vec<TlsDestination> {
        self.carriers
            .iter()
            .filter_map(|c| {
                let trunk = self.config.trunks.get(c.trunk)?;
                (trunk.transport == trunks::Transport::Tls).then(|| TlsDestination {
                    trunk: trunk.name.clone(),
                    addr: c.addr,
                    host: c.host.clone(),
                    ca_file: trunk.ca_file.clone(),
                })
            })
            .collect()
    }

    /// Every trunk's state as of `now`.
    pub fn status(&self, now: Instant) -> Vec<TrunkStatus> {
        let mut all = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let unreachable = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        for (index, status) in all.iter_mut().enumerate() {
            status.expires_in_s = status
                .until
                .map(|until| until.saturating_duration_since(now).as_secs());
            status.reachable = self
                .config
                .trunks
                .get(index)
                .and_then(|t| t.options_interval)
                .map(|_| !unreachable.get(index).copied().unwrap_or(false));
        }
        all
    }

    /// Whether trunk `index`'s carrier answered its last keep-alive (true without one).
    fn is_reachable(&self, index: usize) -> bool {
        !self
            .unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(index)
            .copied()
            .unwrap_or(false)
    }

    fn set_reachable(&self, index: usize, reachable: bool) {
        let mut all = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = all.get_mut(index) {
            *slot = !reachable;
        }
    }

    fn set_status(&self, index: usize, status: TrunkStatus) {
        let mut all = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = all.get_mut(index) {
            *slot = status;
        }
    }

    /// The route of a call to `number` when it is an emergency number and there is an
    /// emergency trunk: out on it, ringing as long as it takes.
    pub fn emergency_route(&self, number: &str, tenant: &str) -> Option<dialplan::Route> {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() || !self.config.numbering.is_emergency(&digits) {
            return None;
        }
        let town = (!crate::tenants::is_default(tenant)).then_some(tenant);
        let Some(trunk) = self.config.emergency_trunk_of(town) else {
            tracing::error!(%number, %tenant, "emergency call, but no emergency trunk is configured for the caller's town");
            return None;
        };
        tracing::warn!(%number, trunk = %trunk.name, "emergency call");
        Some(dialplan::Route {
            rule_name: "emergency call".into(),
            file: "(built in)".into(),
            line: 0,
            actions: vec![dialplan::Action::Dial {
                target: dialplan::DialTarget::Trunk {
                    trunk: trunk.name.clone(),
                    number: digits,
                    privacy: false,
                },
                timeout_s: 300,
                fax: false,
            }],
            hops: 0,
            public: false,
        })
    }

    /// The INVITE for calling `number` (as the dialplan wrote it) out through `trunk_name`
    /// for the caller `from_user`; `None` (logged) when the trunk or the number cannot take
    /// the call: unknown trunk or an internal number; `Err` when the number's class is not
    /// in the caller's call classes (`caller`; emergency numbers are always allowed) or a
    /// limit on concurrent calls out is reached.
    ///
    /// The call goes out on the first trunk of `trunk_name`'s failover chain that can take
    /// it: one whose carrier holds our registration (or that needs none) and that carries
    /// fewer than its `max-calls` (`active` says how many run now). When no registered one
    /// has room, the first with room is tried all the same; when none has room, the call is
    /// refused. Emergency calls are never held back by any limit.
    pub fn outbound_call(
        &self,
        trunk_name: &str,
        request: CallOut<'_>,
        active: &ActiveCalls<'_>,
    ) -> Result<Option<TrunkCall>, Refused> {
        let CallOut {
            number,
            from_user,
            from_name,
            presented,
            caller,
            diverted_from,
            source,
            privacy,
        } = request;
        let chain = self.config.failover_chain(trunk_name);
        if chain.is_empty() {
            tracing::warn!(trunk = %trunk_name, "dial: no such trunk");
            return Ok(None);
        }
        let emergency = self
            .config
            .numbering
            .dialled(number)
            .is_ok_and(|c| c.class == trunks::CallClass::Emergency);
        let statuses = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let usable = |t: &&&Trunk| {
            let registered = matches!(t.mode, TrunkMode::Ip { .. })
                || statuses
                    .iter()
                    .any(|s| s.name == t.name && s.state == "registered");
            let room = emergency || (active.on_trunk)(&t.name) < t.max_calls;
            let reachable = self
                .config
                .trunks
                .iter()
                .position(|c| c.name == t.name)
                .is_none_or(|i| self.is_reachable(i));
            if !registered || !room || !reachable {
                tracing::info!(trunk = %t.name, registered, room, reachable, "dial: trunk cannot take the call; trying the next");
            }
            registered && room && reachable
        };
        let has_room = |t: &&&Trunk| emergency || (active.on_trunk)(&t.name) < t.max_calls;
        let trunk = chain
            .iter()
            .find(usable)
            .or_else(|| chain.iter().find(has_room));
        let classified = match self.config.numbering.dialled(number) {
            Ok(classified) => classified,
            Err(err) => {
                tracing::info!(trunk = %trunk_name, %number, "dial: not a number to call out: {err}");
                return Ok(None);
            }
        };
        if !caller.allowed.allows(classified.class) {
            let user = caller
                .user
                .as_deref()
                .unwrap_or("(not a user: default classes)");
            tracing::warn!(trunk = %trunk_name, %number, class = %classified.class, reason = %classified.reason, %user, "dial: number class barred for this caller; not called");
            return Err(Refused::Barred);
        }
        let limits = self.config.limits;
        if !emergency && caller.user.is_some() && active.of_user >= limits.per_user {
            tracing::warn!(trunk = %trunk_name, %number, user = caller.user.as_deref().unwrap_or_default(), calls = active.of_user, limit = limits.per_user, "dial: the user's limit of calls out is reached; not called");
            return Err(Refused::UserLimit);
        }
        if !emergency && limits.total.is_some_and(|total| active.total >= total) {
            tracing::warn!(trunk = %trunk_name, %number, calls = active.total, "dial: the limit of calls out in all is reached; not called");
            return Err(Refused::LinesBusy);
        }
        let Some(trunk) = trunk else {
            tracing::warn!(trunk = %trunk_name, %number, "dial: every trunk of the chain is at its max-calls; not called");
            return Err(Refused::LinesBusy);
        };
        let trunk_name = trunk.name.as_str();
        let Some(index) = self.config.trunks.iter().position(|t| t.name == trunk.name) else {
            return Ok(None);
        };
        let Some(dial_string) = trunk.numbers.dial_string(&classified.dialled) else {
            tracing::info!(trunk = %trunk_name, %number, "dial: an internal number does not go out");
            return Ok(None);
        };
        let Some(addr) = self.registrar_of(index) else {
            return Ok(None);
        };
        let transport = transport_of(trunk);
        let (domain_uri, registration) = match &trunk.mode {
            TrunkMode::Register(registration) => {
                (registration.registrar.as_str(), Some(registration))
            }
            TrunkMode::Ip { .. } => match trunk.proxy.as_ref() {
                Some(proxy) => (proxy.as_str(), None),
                None => return Ok(None),
            },
        };
        let Some(domain) =
            sip::message::parse_uri(domain_uri).map(|u| u.host_with_port.to_string())
        else {
            return Ok(None);
        };
        // Who we say is calling: the caller's own direct-dial number when the extension fits
        // the trunk's block, else the trunk's fixed number (or the registered account).
        let direct_dial = |user: &str| {
            trunk.numbers.did_block.as_ref().and_then(|block| {
                (user.len() == usize::from(block.extension_digits)
                    && user.bytes().all(|b| b.is_ascii_digit()))
                .then(|| format!("{}{user}", block.base))
                .and_then(|n| n.parse::<trunks::E164>().ok())
                .map(|n| trunk.numbers.format(&n))
            })
        };
        // A number the rule set stands for the caller's own: a full number as the trunk
        // writes numbers, an extension as its direct-dial number.
        let set_number = presented.and_then(|number| {
            direct_dial(number)
                .or_else(|| match self.config.numbering.dialled(number) {
                    Ok(trunks::Classified {
                        dialled: trunks::Dialled::E164(full),
                        ..
                    }) => Some(trunk.numbers.format(&full)),
                    _ => None,
                })
                .or_else(|| {
                tracing::warn!(trunk = %trunk_name, %number, "dial: the caller ID the rule set is no number of ours for this trunk; the caller's own is presented");
                None
            })
        });
        let own_number = set_number.or_else(|| direct_dial(from_user));
        // A forwarded call names the number of ours it was for (a DID as the carrier
        // delivered it, or a user's extension): Diversion, RFC 5806.
        let diverted = diverted_from.and_then(|d| {
            d.parse::<trunks::E164>()
                .ok()
                .map(|n| trunk.numbers.format(&n))
                .or_else(|| direct_dial(d))
        });
        // Emergency services see where the caller is: the user's own location number (a
        // home office), else the one of the network the phone calls from, else the trunk's.
        let location = (classified.class == trunks::CallClass::Emergency)
            .then(|| {
                self.config
                    .emergency_location(trunk, caller.location.as_ref(), source)
            })
            .flatten()
            .map(|(number, origin)| {
                tracing::info!(%number, %origin, "emergency call: location number");
                trunk.numbers.format(number)
            });
        let caller_number = location
            .or(own_number)
            .or_else(|| diverted.clone())
            .or_else(|| trunk.caller_id.from_user.clone())
            .or_else(|| registration.map(|r| r.username.clone()))
            .unwrap_or_else(|| from_user.to_string());
        // "CLIP no screening": a forwarded outside caller's own number may stand in From,
        // while P-Asserted-Identity vouches with ours (the carrier checks that one).
        let from_number = match (&diverted, from_user.parse::<trunks::E164>()) {
            (Some(_), Ok(original)) if trunk.caller_id.clip_no_screening => {
                trunk.numbers.format(&original)
            }
            _ => caller_number.clone(),
        };
        let mut headers = Vec::new();
        if let Some(diverted) = &diverted {
            headers.push(diversion_header(
                trunk.caller_id.diversion_header,
                diverted,
                &dial_string,
                &domain,
            ));
        }
        let identity = format!("<sip:{caller_number}@{domain}>");
        if trunk.caller_id.pai {
            headers.push(("P-Asserted-Identity".to_string(), identity.clone()));
        }
        if trunk.caller_id.ppi {
            headers.push(("P-Preferred-Identity".to_string(), identity));
        }
        // RFC 3323 §4.2: the called party sees an anonymous From; the carrier, a trusted
        // domain under RFC 3325, still learns who calls from PAI/PPI and withholds it on
        // `Privacy: id`. Emergency calls always show the caller: the services need it.
        let withheld = privacy && !emergency;
        let (from_number, from_name, from_host) = if withheld {
            headers.push(("Privacy".to_string(), "id".to_string()));
            (
                "anonymous".to_string(),
                Some("Anonymous".to_string()),
                "anonymous.invalid".to_string(),
            )
        } else {
            (from_number, from_name, domain.clone())
        };
        let credentials = registration.and_then(|r| match &r.password {
            Password::Inline(password) => Some(ClientCredentials {
                username: r.auth_username().to_string(),
                secret: Secret::Password(password.clone()),
            }),
            Password::File(_) => None,
        });
        tracing::info!(trunk = %trunk_name, number = %dial_string, class = %classified.reason, caller = %caller_number, from = %from_number, diverted = ?diverted, withheld, "dial: out through the trunk");
        let uri = format!("sip:{dial_string}@{domain}");
        let call = OutboundCall {
            request_uri: uri.clone(),
            to: uri,
            from_user: from_number,
            from_name,
            next_hop: Peer {
                addr,
                transport,
                connection: None,
            },
            route: Vec::new(),
            from_host: Some(from_host),
            headers,
            credentials,
            response_timeout: trunk.response_timeout,
        };
        Ok(Some(TrunkCall {
            call,
            trunk: trunk.name.clone(),
            codecs: trunk.codecs.iter().copied().map(media_codec).collect(),
        }))
    }

    fn registrar_of(&self, index: usize) -> Option<SocketAddr> {
        let mine = || self.carriers.iter().filter(move |c| c.trunk == index);
        // Through the outbound proxy when there is one, else to the registrar.
        mine()
            .find(|c| !c.registrar)
            .or_else(|| mine().find(|c| c.registrar))
            .map(|c| c.addr)
    }
}

/// The header naming the number of ours that forwarded a call to `target`: Diversion
/// (RFC 5806) or History-Info (RFC 7044: the forwarding number first, then the new target
/// with RFC 4458 `cause=302`, "unconditional", and `mp` pointing back at the entry it was
/// retargeted from, as RFC 7544 maps a Diversion).
fn diversion_header(
    kind: trunks::DiversionHeader,
    diverted: &str,
    target: &str,
    domain: &str,
) -> (String, String) {
    match kind {
        trunks::DiversionHeader::Diversion => (
            "Diversion".to_string(),
            format!("<sip:{diverted}@{domain}>;reason=unconditional;counter=1"),
        ),
        trunks::DiversionHeader::HistoryInfo => (
            "History-Info".to_string(),
            format!(
                "<sip:{diverted}@{domain}>;index=1,<sip:{target}@{domain};cause=302>;index=1.1;mp=1"
            ),
        ),
    }
}

fn initial_status(trunk: &Trunk) -> TrunkStatus {
    let registering = matches!(trunk.mode, TrunkMode::Register(_));
    TrunkStatus {
        name: trunk.name.clone(),
        mode: if registering { "register" } else { "ip" },
        state: if registering {
            "unregistered"
        } else {
            "not-registering"
        },
        error: None,
        expires_in_s: None,
        until: None,
        reachable: None,
    }
}

/// How we reach the trunk's carrier: TCP and TLS connections are opened by the transport
/// when the first request goes out, and kept for the ones after.
fn transport_of(trunk: &Trunk) -> TransportKind {
    match trunk.transport {
        trunks::Transport::Tcp => TransportKind::Tcp,
        trunks::Transport::Udp => TransportKind::Udp,
        trunks::Transport::Tls => TransportKind::Tls,
    }
}

/// Our Contact towards a carrier: the user at our address, with the transport named for a
/// stream (RFC 3261 §19.1.2 would have the carrier send its calls over UDP otherwise).
fn contact_towards(user: &str, sent_by: &str, transport: TransportKind) -> String {
    match transport {
        TransportKind::Udp => format!("sip:{user}@{sent_by}"),
        TransportKind::Tcp | TransportKind::Tls => {
            format!("sip:{user}@{sent_by};transport={}", transport.uri_param())
        }
    }
}

/// The host of a SIP URI and the addresses it stands for, best first: a literal; for a name
/// with a port, its A and AAAA records; for a name without one, as RFC 3263 §4.2 has it,
/// the SRV records of the trunk's transport (`_sip._udp`, `_sip._tcp`, `_sips._tcp`) in
/// priority order, and only where there are none its A and AAAA records at 5060 (5061 for
/// TLS). NAPTR is not asked: the trunk names its transport. The host is kept as written,
/// since a carrier's TLS certificate names its domain, not the SRV target (RFC 5922 §4.2).
async fn resolve(uri: &str, transport: TransportKind) -> anyhow::Result<(String, Vec<SocketAddr>)> {
    let parsed =
        sip::message::parse_uri(uri).ok_or_else(|| anyhow::anyhow!("{uri}: not a SIP URI"))?;
    let host = parsed.host_with_port.host.to_string();
    let host = host.trim_matches(|c| c == '[' || c == ']');
    let explicit_port = parsed.host_with_port.port.map(|p| *p.value());
    let port = explicit_port.unwrap_or(transport.default_port());
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((host.to_string(), vec![SocketAddr::new(ip, port)]));
    }
    if explicit_port.is_none() {
        let found = srv_targets(host, transport).await;
        if !found.is_empty() {
            tracing::info!(%uri, addresses = ?found, "trunk: carrier found by DNS SRV");
            return Ok((host.to_string(), found));
        }
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|err| anyhow::anyhow!("{uri}: cannot resolve {host}: {err}"))?
        .collect();
    if found.is_empty() {
        anyhow::bail!("{uri}: {host} has no address");
    }
    Ok((host.to_string(), found))
}

/// The addresses of `host`'s SIP servers for `transport` by its SRV records (RFC 2782):
/// lowest priority first, the heavier weight first within one. Empty when there are none or
/// the lookup fails (then the name's own addresses are used, RFC 3263 §4.2).
async fn srv_targets(host: &str, transport: TransportKind) -> Vec<SocketAddr> {
    use hickory_resolver::proto::rr::RData;
    let service = match transport {
        TransportKind::Udp => "_sip._udp",
        TransportKind::Tcp => "_sip._tcp",
        TransportKind::Tls => "_sips._tcp",
    };
    let name = format!("{service}.{}.", host.trim_end_matches('.'));
    let resolver = match hickory_resolver::TokioResolver::builder_tokio().and_then(|b| b.build()) {
        Ok(resolver) => resolver,
        Err(err) => {
            tracing::warn!(%name, "no DNS resolver for SRV lookups: {err}");
            return Vec::new();
        }
    };
    let mut records: Vec<(u16, std::cmp::Reverse<u16>, String, u16)> =
        match resolver.srv_lookup(name.as_str()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::SRV(srv) => Some((
                        srv.priority,
                        std::cmp::Reverse(srv.weight),
                        srv.target.to_utf8(),
                        srv.port,
                    )),
                    _ => None,
                })
                .collect(),
            Err(err) => {
                tracing::debug!(%name, "no SRV records: {err}");
                return Vec::new();
            }
        };
    records.sort();
    let mut found = Vec::new();
    for (_, _, target, port) in records {
        // "." as the target: the service is decidedly not available at this domain.
        if target == "." {
            continue;
        }
        match tokio::net::lookup_host((target.trim_end_matches('.'), port)).await {
            Ok(addrs) => found.extend(addrs),
            Err(err) => tracing::warn!(%name, %target, "SRV target does not resolve: {err}"),
        }
    }
    found
}

/// The registrations to carriers, driven in the core loop.
pub struct TrunkLines {
    lines: Vec<Line>,
    /// REGISTERs in flight → the line that sent them (by id: lines come and go on reload).
    in_flight: HashMap<TransactionKey, u64>,
    next_line_id: u64,
    /// OPTIONS keep-alive per trunk that asks for it (`options-interval`).
    keepalives: Vec<Keepalive>,
    /// Keep-alive OPTIONS in flight → the keep-alive that sent them.
    probes: HashMap<TransactionKey, usize>,
}

/// One trunk's keep-alive: an OPTIONS to its carrier every `options-interval`; a carrier
/// that leaves one unanswered for 5 s is unreachable (calls fail over) until it answers.
struct Keepalive {
    trunk: usize,
    name: String,
    uri: String,
    next_hop: Peer,
    qualifier: Qualifier<usize>,
}

/// How long a carrier has to answer a keep-alive OPTIONS.
const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

struct Line {
    id: u64,
    /// The trunk's place in the configuration.
    trunk: usize,
    /// Its trunk was removed or changed by a reload: it unregisters, then goes.
    leaving: bool,
    name: String,
    next_hop: Peer,
    registration: OutboundRegistration,
    shown: TrunkStatus,
}

impl TrunkLines {
    /// Starts registering every `register` trunk of `set`.
    pub fn start(set: &TrunkSet, endpoint: &SipEndpoint, now: Instant) -> Self {
        let mut lines = Self {
            lines: Vec::new(),
            in_flight: HashMap::new(),
            next_line_id: 0,
            keepalives: keepalives_of(set, now),
            probes: HashMap::new(),
        };
        for index in 0..set.config.trunks.len() {
            lines.add_line(set, index, endpoint, now);
        }
        lines
    }

    /// Takes `new` (a reloaded trunks file) into force in place of `old`: trunks unchanged
    /// keep their registration running, removed or changed ones unregister (REGISTER with
    /// `Expires: 0`), new or changed ones register afresh; keep-alives start over.
    pub fn reconfigure(
        &mut self,
        old: &TrunkSet,
        new: &TrunkSet,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) {
        for line in self.lines.iter_mut().filter(|l| !l.leaving) {
            let kept = (0..new.config.trunks.len())
                .find(|&index| old.unchanged_index(new, index) == Some(line.trunk));
            match kept {
                Some(index) => line.trunk = index,
                None => {
                    tracing::info!(trunk = %line.name, "trunk removed or changed by the reload: unregistering");
                    line.leaving = true;
                    line.registration.stop(now);
                }
            }
        }
        for index in 0..new.config.trunks.len() {
            if !self.lines.iter().any(|l| !l.leaving && l.trunk == index) {
                self.add_line(new, index, endpoint, now);
            }
        }
        self.keepalives = keepalives_of(new, now);
        self.probes.clear();
        self.pump(new, endpoint, now);
    }

    /// Starts registering trunk `index` of `set` when it is a `register` trunk.
    fn add_line(&mut self, set: &TrunkSet, index: usize, endpoint: &SipEndpoint, now: Instant) {
        let Some(trunk) = set.config.trunks.get(index) else {
            return;
        };
        let TrunkMode::Register(registration) = &trunk.mode else {
            return;
        };
        let Some(addr) = set.registrar_of(index) else {
            tracing::error!(trunk = %trunk.name, "no address to register with");
            return;
        };
        let transport = transport_of(trunk);
        let next_hop = Peer {
            addr,
            transport,
            connection: None,
        };
        let sent_by = endpoint.sent_by_towards(next_hop);
        let registrar_uri = registration.registrar.as_str();
        let registrar_host = sip::message::parse_uri(registrar_uri)
            .map(|u| u.host_with_port.to_string())
            .unwrap_or_default();
        let password = match &registration.password {
            Password::Inline(password) => password.clone(),
            // Read at load; a path here means a set built by hand.
            Password::File(_) => String::new(),
        };
        let credentials = ClientCredentials {
            username: registration.auth_username().to_string(),
            secret: Secret::Password(password),
        };
        let mut config = RegistrationConfig::new(
            registrar_uri,
            format!("sip:{}@{registrar_host}", registration.username),
            credentials,
            contact_towards(&registration.username, &sent_by, transport),
            sent_by,
            transport,
        );
        config.expires = u32::try_from(registration.expires.as_secs()).unwrap_or(600);
        config.user_agent = Some(concat!("amtsleitung/", env!("CARGO_PKG_VERSION")).into());
        match OutboundRegistration::new(config, rand::random()) {
            Ok(mut machine) => {
                machine.start(now);
                self.next_line_id += 1;
                self.lines.push(Line {
                    id: self.next_line_id,
                    trunk: index,
                    leaving: false,
                    name: trunk.name.clone(),
                    next_hop,
                    registration: machine,
                    shown: initial_status(trunk),
                });
            }
            Err(err) => {
                tracing::error!(trunk = %trunk.name, "cannot register: {err}");
            }
        }
    }

    /// A keep-alive's carrier answered again, or went silent.
    fn reachability(&self, set: &TrunkSet, change: Reachability<usize>) {
        let (index, reachable) = match change {
            Reachability::Up(index) => (index, true),
            Reachability::Down(index) => (index, false),
        };
        let name = self
            .keepalives
            .iter()
            .find(|k| k.trunk == index)
            .map_or("", |k| k.name.as_str());
        if reachable {
            tracing::info!(trunk = %name, "carrier answers OPTIONS again: reachable");
        } else {
            tracing::warn!(trunk = %name, "carrier does not answer OPTIONS: unreachable, calls out fail over");
        }
        set.set_reachable(index, reachable);
    }

    /// When a registration wants the time next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lines
            .iter()
            .filter_map(|l| l.registration.poll_timeout())
            .chain(
                self.keepalives
                    .iter()
                    .filter_map(|k| k.qualifier.next_deadline()),
            )
            .min()
    }

    /// Lets due refreshes, retries and keep-alives go out, and notes carriers that left a
    /// keep-alive unanswered.
    pub fn handle_timeout(&mut self, set: &TrunkSet, endpoint: &mut SipEndpoint, now: Instant) {
        let changes: Vec<Reachability<usize>> = self
            .keepalives
            .iter_mut()
            .flat_map(|k| k.qualifier.handle_timeout(now))
            .collect();
        for change in changes {
            self.reachability(set, change);
        }
        self.pump(set, endpoint, now);
    }

    /// The carrier's answer (or a timeout, `None`) to one of our REGISTERs; false when the
    /// transaction is not ours.
    pub fn on_answer(
        &mut self,
        key: &TransactionKey,
        answer: Option<rsip::Response>,
        set: &TrunkSet,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) -> bool {
        if let Some(index) = self.probes.remove(key) {
            // Any final answer shows the carrier is there (RFC 3261 §11); a transaction
            // timeout is the qualifier's own timeout, already counted.
            if answer.is_some()
                && let Some(keepalive) = self.keepalives.get_mut(index)
                && let Some(change) = keepalive.qualifier.answered(keepalive.trunk)
            {
                self.reachability(set, change);
            }
            return true;
        }
        let Some(id) = self.in_flight.remove(key) else {
            return false;
        };
        if let Some(line) = self.lines.iter_mut().find(|l| l.id == id) {
            match answer {
                Some(response) => line.registration.on_response(&response, now),
                None => line.registration.on_timeout(now),
            }
        }
        self.pump(set, endpoint, now);
        true
    }

    /// Sends what the registrations have to send and publishes their state.
    pub fn pump(&mut self, set: &TrunkSet, endpoint: &mut SipEndpoint, now: Instant) {
        for (index, keepalive) in self.keepalives.iter_mut().enumerate() {
            while keepalive.qualifier.poll_probe(now).is_some() {
                let sent = endpoint
                    .options_request(&keepalive.uri, keepalive.next_hop, &[])
                    .and_then(|request| {
                        endpoint.send_own_request(request, keepalive.next_hop, now)
                    });
                match sent {
                    Some(key) => {
                        self.probes.insert(key, index);
                    }
                    None => {
                        tracing::debug!(trunk = %keepalive.name, "keep-alive OPTIONS not sent")
                    }
                }
            }
        }
        for line in self.lines.iter_mut() {
            while let Some(request) = line.registration.poll_request(now) {
                match endpoint.send_own_request(request, line.next_hop, now) {
                    Some(key) => {
                        self.in_flight.insert(key, line.id);
                    }
                    None => line.registration.on_timeout(now),
                }
            }
            if line.leaving {
                continue;
            }
            let status = status_of(&line.name, line.registration.state());
            if status.state != line.shown.state || status.error != line.shown.error {
                match &status.error {
                    Some(error) => {
                        tracing::warn!(trunk = %line.name, state = status.state, %error, "trunk registration")
                    }
                    None => {
                        tracing::info!(trunk = %line.name, state = status.state, "trunk registration")
                    }
                }
            }
            if status != line.shown {
                set.set_status(line.trunk, status.clone());
                line.shown = status;
            }
        }
        self.lines.retain(|l| {
            let gone =
                l.leaving && matches!(l.registration.state(), RegistrationState::Unregistered);
            if gone {
                tracing::info!(trunk = %l.name, "old trunk unregistered");
            }
            !gone
        });
    }
}

/// A keep-alive for every trunk of `set` that asks for one (`options-interval`).
fn keepalives_of(set: &TrunkSet, now: Instant) -> Vec<Keepalive> {
    set.config
        .trunks
        .iter()
        .enumerate()
        .filter_map(|(index, trunk)| {
            let interval = trunk.options_interval?;
            let addr = set.registrar_of(index)?;
            let uri = match &trunk.mode {
                TrunkMode::Register(r) => trunk.proxy.as_ref().unwrap_or(&r.registrar),
                TrunkMode::Ip { .. } => trunk.proxy.as_ref()?,
            };
            let mut qualifier = Qualifier::new(QualifyConfig {
                interval,
                timeout: KEEPALIVE_TIMEOUT,
            });
            // The first OPTIONS one interval after start: the REGISTER goes first.
            qualifier.track(index, now);
            Some(Keepalive {
                trunk: index,
                name: trunk.name.clone(),
                uri: uri.as_str().to_string(),
                next_hop: Peer {
                    addr,
                    transport: transport_of(trunk),
                    connection: None,
                },
                qualifier,
            })
        })
        .collect()
}

fn status_of(name: &str, state: &RegistrationState) -> TrunkStatus {
    let (label, error, until) = match state {
        RegistrationState::Unregistered => ("unregistered", None, None),
        RegistrationState::Registering => ("registering", None, None),
        RegistrationState::Unregistering => ("unregistering", None, None),
        RegistrationState::Registered { until } => ("registered", None, Some(*until)),
        RegistrationState::Failed { reason, .. } => ("failed", Some(reason.to_string()), None),
    };
    TrunkStatus {
        name: name.to_string(),
        mode: "register",
        state: label,
        error,
        expires_in_s: None,
        until,
        reachable: None,
    }
}

/// Trunks registered with their carrier now, for `/metrics`.
pub fn registered_count(statuses: &[TrunkStatus]) -> usize {
    statuses.iter().filter(|s| s.state == "registered").count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_towards_a_carrier_names_stream_transports() {
        assert_eq!(
            contact_towards("+4971112340", "192.0.2.1:5060", TransportKind::Udp),
            "sip:+4971112340@192.0.2.1:5060"
        );
        assert_eq!(
            contact_towards("u", "192.0.2.1:5061", TransportKind::Tls),
            "sip:u@192.0.2.1:5061;transport=tls"
        );
        assert_eq!(
            contact_towards("u", "192.0.2.1:5060", TransportKind::Tcp),
            "sip:u@192.0.2.1:5060;transport=tcp"
        );
    }

    #[tokio::test]
    async fn a_tls_trunk_is_reached_on_5061_checked_against_its_ca_file() {
        let dir = std::env::temp_dir().join(format!("amt-trunk-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trunks.toml");
        std::fs::write(
            &path,
            "[numbering]\narea-code = \"711\"\n\
             [[trunk]]\nname = \"sbc\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.10/32\"]\n\
             proxy = \"sip:192.0.2.10\"\ntransport = \"tls\"\nca-file = \"carrier-ca.pem\"\n\
             max-calls = 2\nemergency = true\n\
             [[trunk]]\nname = \"plain\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.20/32\"]\n\
             proxy = \"sip:192.0.2.20\"\nmax-calls = 2\n",
        )
        .unwrap();
        let set = TrunkSet::load(&path).await.expect("trunks load");
        assert_eq!(
            set.tls_destinations(),
            [TlsDestination {
                trunk: "sbc".into(),
                addr: "192.0.2.10:5061".parse().unwrap(),
                host: "192.0.2.10".into(),
                ca_file: Some(dir.join("carrier-ca.pem")),
            }]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn calls_out_stop_at_the_users_limit_the_limit_in_all_and_full_trunks_but_emergency_calls_never_do()
     {
        let dir = std::env::temp_dir().join(format!("amt-trunk-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trunks.toml");
        std::fs::write(
            &path,
            "[numbering]\narea-code = \"711\"\n\
             [limits]\noutside-calls-per-user = 1\noutside-calls = 3\n\
             [[trunk]]\nname = \"main\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.10/32\"]\n\
             proxy = \"sip:192.0.2.10\"\nmax-calls = 2\nemergency = true\nfailover = \"spare\"\n\
             [[trunk]]\nname = \"spare\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.20/32\"]\n\
             proxy = \"sip:192.0.2.20\"\nmax-calls = 1\n",
        )
        .unwrap();
        let set = TrunkSet::load(&path).await.expect("trunks load");
        std::fs::remove_dir_all(&dir).unwrap();
        let user = CallerProfile {
            user: Some("101".into()),
            allowed: trunks::AllowedClasses::default(),
            location: None,
        };
        let call = |number: &str, caller: &CallerProfile, busy: &[(&str, u32)], of_user, total| {
            let on_trunk = |name: &str| {
                busy.iter()
                    .find(|(n, _)| *n == name)
                    .map_or(0, |(_, calls)| *calls)
            };
            let active = ActiveCalls {
                on_trunk: &on_trunk,
                of_user,
                total,
            };
            let request = CallOut {
                number,
                from_user: "101",
                from_name: None,
                presented: None,
                caller,
                diverted_from: None,
                source: None,
                privacy: false,
            };
            set.outbound_call("main", request, &active)
                .map(|placed| placed.map(|out| out.trunk))
        };
        let local = "0711987654";
        assert_eq!(call(local, &user, &[], 0, 0), Ok(Some("main".into())));
        assert_eq!(call(local, &user, &[], 1, 1), Err(Refused::UserLimit));
        let trusted = CallerProfile::not_a_user();
        assert_eq!(
            call(local, &trusted, &[], 1, 1),
            Ok(Some("main".into())),
            "a caller that is no user has no user limit"
        );
        assert_eq!(
            call(local, &user, &[("main", 2)], 0, 2),
            Ok(Some("spare".into())),
            "a full trunk fails over"
        );
        assert_eq!(
            call(local, &user, &[("main", 2), ("spare", 1)], 0, 2),
            Err(Refused::LinesBusy),
            "every trunk of the chain full"
        );
        assert_eq!(call(local, &user, &[], 0, 3), Err(Refused::LinesBusy));
        set.set_reachable(0, false);
        assert_eq!(
            call(local, &user, &[], 0, 0),
            Ok(Some("spare".into())),
            "a carrier silent to keep-alives is passed over"
        );
        set.set_reachable(0, true);
        assert_eq!(
            call("112", &user, &[("main", 2), ("spare", 1)], 5, 9),
            Ok(Some("main".into())),
            "emergency calls are never held back"
        );
    }

    #[tokio::test]
    async fn an_emergency_call_from_a_home_office_network_presents_that_networks_location_number() {
        let dir = std::env::temp_dir().join(format!("amt-trunk-location-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trunks.toml");
        std::fs::write(
            &path,
            "[numbering]\narea-code = \"711\"\n\
             [[emergency-location]]\nnetwork = \"10.8.0.0/16\"\nnumber = \"+49 7031 55 0\"\n\
             [[trunk]]\nname = \"main\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.10/32\"]\n\
             proxy = \"sip:192.0.2.10\"\nmax-calls = 2\nemergency = true\n\
             location-number = \"+49 711 12345 0\"\n",
        )
        .unwrap();
        let set = TrunkSet::load(&path).await.expect("trunks load");
        std::fs::remove_dir_all(&dir).unwrap();
        let presented_for = |caller: &CallerProfile, number: &str, source: &str| {
            let request = CallOut {
                number,
                from_user: "101",
                from_name: None,
                presented: None,
                caller,
                diverted_from: None,
                source: Some(source.parse().unwrap()),
                privacy: false,
            };
            idle_placed(&set, request).call.from_user
        };
        let anonymous = CallerProfile::not_a_user();
        let presented = |number: &str, source: &str| presented_for(&anonymous, number, source);
        assert_eq!(presented("112", "10.8.3.7"), "+497031550", "home office");
        assert_eq!(presented("112", "172.16.0.9"), "+49711123450", "town hall");
        assert_ne!(
            presented("0711987654", "10.8.3.7"),
            "+497031550",
            "only emergency calls present the location"
        );
        let at_home = CallerProfile {
            user: Some("101".into()),
            allowed: trunks::AllowedClasses::default(),
            location: Some(trunks::PersonalLocation {
                number: "+49 7031 4711 0".parse().unwrap(),
                networks: vec!["10.8.3.0/24".parse().unwrap()],
            }),
        };
        assert_eq!(
            presented_for(&at_home, "112", "10.8.3.7"),
            "+49703147110",
            "the user's own number comes before the network's"
        );
        assert_eq!(
            presented_for(&at_home, "112", "172.16.0.9"),
            "+49711123450",
            "the same user's desk phone in the town hall"
        );
        assert_ne!(
            presented_for(&at_home, "0711987654", "10.8.3.7"),
            "+49703147110",
            "only emergency calls present the user's location"
        );
    }

    #[tokio::test]
    async fn a_caller_id_the_rule_set_is_presented_as_the_trunk_writes_numbers() {
        let set = one_trunk(
            "presented",
            "[trunk.caller-id]\npai = true\n[trunk.numbers]\nbase-number = \"+49 711 1234\"\n\
             extension-digits = 2\nformat = \"national\"\n",
        )
        .await;
        let classes = CallerProfile::not_a_user();
        let presenting = |presented: Option<&str>| {
            let request = CallOut {
                number: "0711987654",
                from_user: "42",
                from_name: None,
                presented,
                caller: &classes,
                diverted_from: None,
                source: None,
                privacy: false,
            };
            let call = idle_placed(&set, request).call;
            let pai = header(&call, "P-Asserted-Identity").map(str::to_owned);
            (call.from_user, pai)
        };
        let (own, _) = presenting(None);
        assert_eq!(own, "0711123442", "the caller's own direct-dial number");
        let (from, pai) = presenting(Some("+49711123450"));
        assert_eq!(from, "0711123450");
        assert_eq!(pai.as_deref(), Some("<sip:0711123450@192.0.2.10>"));
        assert_eq!(
            presenting(Some("0711123450")).0,
            "0711123450",
            "national form"
        );
        assert_eq!(
            presenting(Some("50")).0,
            "0711123450",
            "an extension of the block"
        );
        assert_eq!(
            presenting(Some("7")).0,
            "0711123442",
            "no number of ours: the caller's own"
        );
    }

    async fn one_trunk(name: &str, extra: &str) -> TrunkSet {
        let dir = std::env::temp_dir().join(format!("amt-trunk-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trunks.toml");
        std::fs::write(
            &path,
            format!(
                "[numbering]\narea-code = \"711\"\n\
                 [[trunk]]\nname = \"main\"\nmode = \"ip\"\nallowed-sources = [\"192.0.2.10/32\"]\n\
                 proxy = \"sip:192.0.2.10\"\nmax-calls = 2\nemergency = true\n{extra}"
            ),
        )
        .unwrap();
        let set = TrunkSet::load(&path).await.expect("trunks load");
        std::fs::remove_dir_all(&dir).unwrap();
        set
    }

    fn placed(
        set: &TrunkSet,
        number: &str,
        diverted_from: Option<&str>,
        privacy: bool,
    ) -> TrunkCall {
        let classes = CallerProfile::not_a_user();
        let request = CallOut {
            number,
            from_user: "+4930123456",
            from_name: Some("Erika".into()),
            presented: None,
            caller: &classes,
            diverted_from,
            source: None,
            privacy,
        };
        idle_placed(set, request)
    }

    /// `request` placed on trunk "main" of `set` while no call out runs anywhere.
    fn idle_placed(set: &TrunkSet, request: CallOut<'_>) -> TrunkCall {
        let on_trunk = |_: &str| 0;
        let active = ActiveCalls {
            on_trunk: &on_trunk,
            of_user: 0,
            total: 0,
        };
        set.outbound_call("main", request, &active)
            .expect("not refused")
            .expect("placed")
    }

    fn header<'a>(call: &'a OutboundCall, name: &str) -> Option<&'a str> {
        call.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn a_withheld_call_shows_anonymous_with_privacy_id_while_the_carrier_still_gets_pai() {
        let set = one_trunk(
            "privacy",
            "[trunk.caller-id]\nfrom-user = \"+49711123400\"\npai = true\n",
        )
        .await;
        let out = placed(&set, "0711987654", None, true).call;
        assert_eq!(out.from_user, "anonymous");
        assert_eq!(out.from_name.as_deref(), Some("Anonymous"));
        assert_eq!(out.from_host.as_deref(), Some("anonymous.invalid"));
        assert_eq!(header(&out, "Privacy"), Some("id"));
        assert_eq!(
            header(&out, "P-Asserted-Identity"),
            Some("<sip:+49711123400@192.0.2.10>")
        );
        let shown = placed(&set, "0711987654", None, false).call;
        assert_eq!(shown.from_user, "+49711123400");
        assert_eq!(header(&shown, "Privacy"), None);
        let emergency = placed(&set, "112", None, true).call;
        assert_ne!(
            emergency.from_user, "anonymous",
            "emergency calls show the caller"
        );
        assert_eq!(header(&emergency, "Privacy"), None);
    }

    #[tokio::test]
    async fn a_forwarded_call_names_our_number_in_the_header_the_trunk_asks_for() {
        let diversion = one_trunk("diversion", "").await;
        let out = placed(&diversion, "01701234567", Some("+4971112345"), false).call;
        assert_eq!(
            header(&out, "Diversion"),
            Some("<sip:+4971112345@192.0.2.10>;reason=unconditional;counter=1")
        );
        assert_eq!(header(&out, "History-Info"), None);
        let history = one_trunk(
            "history",
            "[trunk.caller-id]\ndiversion-header = \"history-info\"\n",
        )
        .await;
        let out = placed(&history, "01701234567", Some("+4971112345"), false).call;
        assert_eq!(header(&out, "Diversion"), None);
        assert_eq!(
            header(&out, "History-Info"),
            Some(
                "<sip:+4971112345@192.0.2.10>;index=1,\
                 <sip:+491701234567@192.0.2.10;cause=302>;index=1.1;mp=1"
            )
        );
    }

    #[tokio::test]
    async fn the_trunks_codecs_are_offered_in_the_admins_order() {
        let set = one_trunk("codecs", "codecs = [\"pcma\", \"g722\"]\n").await;
        assert_eq!(
            placed(&set, "0711987654", None, false).codecs,
            [media::sdp::Codec::Pcma, media::sdp::Codec::G722]
        );
    }
}
