//! The server's runtime: builds the shared state, starts the transports, workers and
//! background tasks, and runs the signalling loop, one task that feeds the SIP endpoint with
//! datagrams and the clock and hands its leg events to call control. Owning all SIP state in
//! one task keeps it lock-free and ordered.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use sip::security::{NetworkList, RateDecision, RateLimitConfig, RequestRateLimit};
use sip::transaction::Timers;
use tokio::sync::mpsc;

use crate::call_control::{CallControl, CallQueues};
use crate::config::{Config, LogFormat};
use crate::core_command::CoreCommand;
use crate::dialplan_files::PlanHolder;
use crate::media_worker::{MediaWorkers, PortAllocator};
use crate::presence::PresenceService;
use crate::registrar::{RegisterOutcome, RegistrarService, SecurityRequest};
use crate::shared::Shared;
use crate::sip_endpoint::{EndpointConfig, SipEndpoint};
use crate::sounds::SoundLibrary;
use crate::store_handle::StoreHandle;
use crate::transport::{self, Inbound, TransportHandle};
use crate::trunk_service::{TrunkHolder, TrunkLines, TrunkSet};
use crate::user_directory::UserDirectory;

/// Calls at most; beyond it INVITEs get 503 (bounded everything).
const MAX_CALLS: usize = 10_000;

/// Sets up the tracing subscriber.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

/// Opens the configured store: PostgreSQL when `[store] url` is set, else SQLite in the data
/// directory. Call it on a plain thread (see `run`).
fn open_store(config: &Config) -> anyhow::Result<store::Store> {
    match &config.store.url {
        // The error names the database without its password (store::postgres_description).
        Some(url) => Ok(store::Store::open_postgres(url.secret())?),
        None => store::Store::open(&config.data_dir)
            .with_context(|| format!("cannot open data directory {}", config.data_dir.display())),
    }
}

/// Runs the server until SIGINT/SIGTERM.
pub fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sip")
        .build()?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    crate::telemetry::install();
    let mut sounds = SoundLibrary::configured(&config.sounds)?;
    if let Some(music) = &config.music_on_hold {
        sounds = sounds.with_music_on_hold(music)?;
    }
    // As for the prompts: the default `dialplans` missing here means the built-in plan.
    let builtin_plan =
        config.dialplans == Config::default().dialplans && !config.dialplans.exists();
    let tenants = crate::tenants::Tenants::new(&config.tenants)
        .map_err(|err| anyhow::anyhow!("[[tenant]]: {err}"))?;
    let users = Arc::new(UserDirectory::new(&tenants));
    let tenant_plans = config
        .tenants
        .iter()
        .map(|tenant| {
            let plan = PlanHolder::load_tenant(&tenant.domain, &tenant.dialplans, &sounds)
                .with_context(|| format!("tenant {}", tenant.domain))?;
            Ok((tenant.domain.clone(), plan))
        })
        .collect::<anyhow::Result<std::collections::HashMap<_, _>>>()?;
    // The store is opened and first read on a plain thread, which then hands it to the store
    // thread: the PostgreSQL client runs a tokio runtime of its own and panics inside this
    // one (see crates/store/src/db.rs), so no tokio thread ever touches a `Store`.
    let (plan, stored_bindings, store) = std::thread::scope(|scope| {
        scope
            .spawn(|| -> anyhow::Result<_> {
                let store = open_store(&config)?;
                tracing::info!(store = %store.location(), "store open");
                // Calls this node had when it last stopped without ending them (a crash, a
                // power cut, SIGKILL) get their records now.
                let node = config.node_name();
                match store.calls_interrupted(&node, jiff::Timestamp::now().as_millisecond()) {
                    Ok(0) => {}
                    Ok(closed) => tracing::warn!(
                        calls = closed,
                        %node,
                        "calls cut by this node's last stop recorded as ended by failure"
                    ),
                    Err(err) => tracing::error!("calls in progress not closed: {err}"),
                }
                let plan = if builtin_plan {
                    tracing::info!(
                        "no ./dialplans here: routing by the built-in default plan (make the directory to edit it)"
                    );
                    PlanHolder::builtin(&sounds, &store)?
                } else {
                    PlanHolder::load(&config.dialplans, &sounds, &store)?
                };
                // Read before the store thread takes the store over: the registrar starts
                // with them.
                users.load(&store).context("cannot read the users")?;
                let stored_bindings = store
                    .registrations_unexpired(jiff::Timestamp::now().as_millisecond())
                    .context("cannot read the registrations")?;
                let store = StoreHandle::start(store).context("cannot start the store thread")?;
                Ok((plan, stored_bindings, store))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("opening the store panicked"))?
    })?;
    let config = config.with_absolute_paths();
    let workers = if config.media_workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        config.media_workers
    };
    let mut rooms = mixer::MixerConfig {
        internal_rate: crate::media_worker::ROOM_RATE,
        max_mixed_speakers: config.conference.max_talkers.clamp(1, 32),
        noise_suppression: config.conference.noise_suppression,
        ..mixer::MixerConfig::default()
    };
    if config.conference.mixer == crate::config::MixerMode::Conventional {
        rooms.shared_encoding = false;
        rooms.forward_lone_talker = false;
        rooms.adaptive_rate = false;
        rooms.max_mixed_speakers = rooms.max_participants;
    }
    let (talk_tx, talk_rx) = mpsc::channel(crate::media_worker::TALK_CHANGES_QUEUE);
    let media = MediaWorkers::start(workers, rooms, talk_tx)?;
    let (inbound_tx, inbound_rx) = mpsc::channel(8192);
    let tls = match config.tls().map_err(|err| anyhow::anyhow!("{err}"))? {
        Some(settings) => Some(transport::TlsListen {
            addr: settings.listen,
            certificate: Arc::new(crate::tls::ServerCertificate::load(
                &settings.certificate,
                &settings.key,
            )?),
        }),
        None => None,
    };
    let https = match config.https().map_err(|err| anyhow::anyhow!("{err}"))? {
        Some(settings) => {
            let sip = tls.as_ref().map(|tls| &tls.certificate);
            let certificate = crate::https_listener::certificate(&settings, sip)?;
            Some((settings.listen, certificate))
        }
        None => None,
    };
    let transport = transport::start(config.sip_listen, tls, inbound_tx).await?;
    let http_listen = config.http_listen;
    let ports = Arc::new(PortAllocator::new(
        config.rtp_ports.low,
        config.rtp_ports.high,
    ));
    let (webrtc, webrtc_queues) = crate::webrtc_sessions::WebRtcSessions::new(ports.clone());
    let trunks = TrunkHolder::load(config.trunks.as_deref()).await?;
    crate::trunk_reload::add_tls_destinations(&trunks.current(), &transport)?;
    let (mwi_tx, mwi_rx) = crate::voicemail::channel();
    // A snapshot of the registrations at a time is plenty: the next one supersedes it.
    let (learned_tx, learned_rx) = mpsc::channel(1);
    let shared = Arc::new(Shared {
        config,
        sounds,
        media,
        plan,
        tenant_plans,
        store,
        conferences: crate::conference::Registry::default(),
        trunks,
        costs: crate::call_cost::CallCosts::default(),
        webrtc,
        links: crate::meeting_link::MeetingLinks::default(),
        mwi: mwi_tx,
        users: users.clone(),
        draining: std::sync::atomic::AtomicBool::new(false),
    });
    crate::voicemail::spawn_expiry(shared.clone());
    crate::console_records::spawn_recording_expiry(shared.clone());
    crate::webrtc_sessions::spawn(shared.clone(), webrtc_queues);
    crate::conference::spawn_talk_changes(shared.clone(), talk_rx);
    crate::meeting_link::spawn_watch(shared.clone());
    let (command_tx, command_rx) = mpsc::channel(crate::media_worker::CORE_COMMAND_QUEUE);
    // Admin requests are rare and answered at once; a few in flight are plenty.
    let (security_tx, security_rx) = mpsc::channel(8);
    let endpoint = SipEndpoint::new(
        EndpointConfig {
            listen: transport.local_addr(),
            tls_port: transport.tls_local_addr().map(|a| a.port()),
            min_session_expires: shared.config.calls.min_session_expires,
            max_legs: MAX_CALLS,
            max_transactions: shared.config.security.max_transactions.max(64),
        },
        Timers::default(),
    );
    crate::user_directory::spawn_refresh(shared.clone(), users.clone());
    crate::registration_sync::spawn(shared.clone(), learned_tx);
    let writer = shared.store.clone();
    let security = &shared.config.security;
    let trusted = NetworkList::parse(security.trusted_networks.iter().map(String::as_str))
        .map_err(|err| anyhow::anyhow!("[security] trusted-networks: {err}"))?;
    let proxies = NetworkList::parse(security.proxies.iter().map(String::as_str))
        .map_err(|err| anyhow::anyhow!("[security] proxies: {err}"))?;
    let rate_limit = RequestRateLimit::new(RateLimitConfig {
        per_second: security.requests_per_second.max(1),
        burst: security.request_burst.max(1),
        ..RateLimitConfig::default()
    });
    let (control, call_queues) = CallControl::new(shared.clone(), ports, command_tx);
    let trunk_lines = TrunkLines::start(&shared.trunks.current(), &endpoint, Instant::now());
    let (trunks_tx, trunks_rx) = mpsc::channel(4);
    crate::trunk_reload::spawn(shared.clone(), transport.clone(), trunks_tx)?;
    let core = Core {
        shared: shared.clone(),
        mwi: mwi_rx,
        learned_bindings: learned_rx,
        trunk_lines,
        trunks: shared.trunks.current(),
        trunk_reloads: trunks_rx,
        rate_limit,
        endpoint,
        control,
        registrar: RegistrarService::new(
            &shared.config.registrar,
            tenants,
            users,
            writer,
            stored_bindings,
            crate::registrar::SourceNetworks { trusted, proxies },
            shared.config.srtp,
            Instant::now(),
        ),
        transport: transport.clone(),
        presence: PresenceService::new(&shared.config.presence),
    };
    let calls_gauge = CALLS.clone();
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let reloading = shared.clone();
    if !builtin_plan {
        crate::dialplan_files::spawn_reloader(
            shared.config.dialplans.clone(),
            move |trigger| {
                reloading.plan.reload(
                    &reloading.config.dialplans,
                    &reloading.sounds,
                    &reloading.store,
                    trigger,
                )
            },
            reload_rx,
        )?;
    }
    for tenant in &shared.config.tenants {
        let reloading = shared.clone();
        let domain = tenant.domain.clone();
        // Only the default domain's plan is reloaded through the admin API and console.
        let (_, no_requests) = mpsc::channel(1);
        crate::dialplan_files::spawn_reloader(
            tenant.dialplans.clone(),
            move |trigger| {
                let dir = reloading
                    .config
                    .tenants
                    .iter()
                    .find(|t| t.domain == domain)
                    .map(|t| t.dialplans.clone())
                    .unwrap_or_default();
                reloading.plan_of(&domain).reload(
                    &dir,
                    &reloading.sounds,
                    &reloading.store,
                    trigger,
                )
            },
            no_requests,
        )?;
    }
    crate::room_watch::spawn(shared.clone());
    crate::http::start(
        http_listen,
        https,
        shared.clone(),
        calls_gauge,
        reload_tx,
        security_tx,
    )
    .await?;
    tracing::info!(
        sip = %transport.local_addr(),
        sip_tls = ?transport.tls_local_addr(),
        http = %http_listen,
        media_workers = workers,
        prompts = shared.sounds.len(),
        dialplan_version = shared.plan.version(),
        "amtsleitung is ready"
    );
    core.run(inbound_rx, command_rx, call_queues, security_rx)
        .await
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

struct Core {
    shared: Arc<Shared>,
    /// Mailboxes whose phones are to be told their counts (MWI).
    mwi: mpsc::Receiver<crate::voicemail::MwiUpdate>,
    /// Registrations in the store, which other nodes of a pool may have written.
    learned_bindings: mpsc::Receiver<Vec<store::UserBinding>>,
    /// Messages per source address, checked before parsing.
    rate_limit: RequestRateLimit,
    endpoint: SipEndpoint,
    control: CallControl,
    registrar: RegistrarService,
    transport: TransportHandle,
    /// Registrations with the carriers.
    trunk_lines: TrunkLines,
    trunks: Arc<TrunkSet>,
    /// Trunks files taken into force since.
    trunk_reloads: mpsc::Receiver<Arc<TrunkSet>>,
    /// Subscriptions to colleagues' lines (busy lamp fields).
    presence: PresenceService,
}

impl Core {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut commands: mpsc::Receiver<CoreCommand>,
        mut calls: CallQueues,
        mut security: mpsc::Receiver<SecurityRequest>,
    ) -> anyhow::Result<()> {
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        // Set once SIGTERM/SIGINT came: calls have been sent BYE, and the loop keeps serving
        // (retransmitting the BYEs, answering) until this moment.
        let mut stop_at: Option<tokio::time::Instant> = None;
        let mut drain_check = tokio::time::interval(std::time::Duration::from_millis(250));
        drain_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if stop_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                tracing::info!("stopped");
                return Ok(());
            }
            let deadline = [
                self.endpoint.poll_timeout(),
                self.registrar.next_deadline(),
                self.control.poll_timeout(Instant::now()),
                self.trunk_lines.poll_timeout(),
                self.presence.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(message) = inbound.recv() => {
                    let now = Instant::now();
                    let source = message.peer.addr.ip();
                    if self.shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
                        self.endpoint.set_draining(true);
                    }
                    if self.registrar.is_proxy(source) {
                        // Many callers behind one address: bans and limits apply to the
                        // caller it names, once the message is read (RegistrarService::origin).
                        self.endpoint.handle_datagram(&message.bytes, message.peer, now);
                    } else if self.registrar.is_banned(source, now) {
                        // An answer would only feed the guessing.
                        crate::telemetry::count(crate::telemetry::SIP_MESSAGES_DROPPED_TOTAL);
                    } else if self.registrar.is_trusted(source)
                        || self.trunks.of_source(source).is_some()
                        || self.rate_limit.check(source, now) == RateDecision::Allow
                    {
                        self.endpoint.handle_datagram(&message.bytes, message.peer, now);
                    } else {
                        crate::telemetry::count(crate::telemetry::SIP_MESSAGES_DROPPED_TOTAL);
                    }
                }
                Some(reloaded) = self.trunk_reloads.recv() => {
                    let now = Instant::now();
                    self.trunk_lines.reconfigure(&self.trunks, &reloaded, &mut self.endpoint, now);
                    self.trunks = reloaded;
                }
                Some(stored) = self.learned_bindings.recv() => {
                    self.registrar.learn_stored(stored, Instant::now());
                }
                Some(update) = self.mwi.recv() => {
                    self.notify_mailbox(&update, Instant::now());
                }
                Some(request) = security.recv() => {
                    self.registrar.on_security_request(request, Instant::now());
                }
                Some(command) = commands.recv() => {
                    self.control.on_command(command, &mut self.endpoint, Instant::now());
                }
                Some((leg, event)) = calls.events.recv() => {
                    self.control.on_call_event(leg, event, &mut self.endpoint, &self.registrar, Instant::now());
                }
                Some((leg, reply)) = calls.replies.recv() => {
                    self.control.on_reply(leg, reply, &mut self.endpoint, &self.registrar, Instant::now());
                }
                _ = sleep => {
                    let now = Instant::now();
                    self.endpoint.handle_timeout(now);
                    self.registrar.handle_timeout(now);
                    self.control.handle_timeout(&mut self.endpoint, &self.registrar, now);
                    self.trunk_lines.handle_timeout(&self.trunks, &mut self.endpoint, now);
                    self.presence.handle_timeout(&mut self.endpoint, self.control.lines(), now);
                }
                _ = &mut shutdown, if stop_at.is_none() => {
                    let legs = self.endpoint.leg_ids();
                    tracing::info!(calls = legs.len(), "shutting down: ending calls");
                    for leg in legs {
                        self.endpoint.hangup(leg, "server shutting down", Instant::now());
                    }
                    // Long enough for the BYEs and a retransmission or two, short enough for
                    // systemd's stop timeout.
                    stop_at = Some(tokio::time::Instant::now() + std::time::Duration::from_secs(2));
                }
                _ = tokio::time::sleep_until(stop_at.unwrap_or_else(tokio::time::Instant::now)), if stop_at.is_some() => {}
                _ = drain_check.tick(), if stop_at.is_none() => {
                    if self.drained() {
                        tracing::info!("drained: the last call and room have ended; stopping");
                        return Ok(());
                    }
                }
            }
            self.pump();
            CALLS.store(
                self.endpoint.leg_count(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }

    /// Whether `node drain` was asked for and nothing runs any more: no SIP call, no open
    /// room (browsers in a room are no SIP calls), no WebRTC session. The endpoint is told
    /// to refuse new calls from the moment the drain was asked for.
    fn drained(&mut self) -> bool {
        if !self
            .shared
            .draining
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return false;
        }
        self.endpoint.set_draining(true);
        self.endpoint.leg_count() == 0 && self.shared.conferences.summary().is_empty()
    }

    /// Sends a mailbox's counts to every registered contact of its user (RFC 3842).
    fn notify_mailbox(&mut self, update: &crate::voicemail::MwiUpdate, now: Instant) {
        // Phones that subscribed to the mailbox are told inside their subscription; the
        // others unsolicited, as most desk phones take it.
        let subscribed =
            self.presence
                .on_mailbox(&update.mailbox, update.counts, &mut self.endpoint, now);
        let account = format!("sip:{}@{}", update.mailbox, store::DEFAULT_DOMAIN);
        let body = crate::voicemail::message_summary(&account, update.counts);
        let targets: Vec<_> = self
            .registrar
            .lookup(store::DEFAULT_DOMAIN, &update.mailbox, now)
            .into_iter()
            .filter(|binding| !subscribed.contains(&binding.details.source.addr))
            .filter_map(|binding| {
                let (next_hop, route) = crate::registrar::route_to(binding)?;
                Some((binding.details.contact.clone(), next_hop, route))
            })
            .collect();
        for (contact, next_hop, route) in targets {
            if self
                .endpoint
                .notify_message_summary(&contact, next_hop, &route, &body, now)
            {
                crate::telemetry::count(crate::telemetry::MWI_NOTIFIES_TOTAL);
                tracing::info!(mailbox = %update.mailbox, %contact, new = update.counts.new, old = update.counts.old, "message waiting indication sent");
            }
        }
    }

    /// Hands the endpoint's events to call control (whose commands may raise more) and
    /// sends what the endpoint has to send.
    fn pump(&mut self) {
        let now = Instant::now();
        while let Some(binding) = self.endpoint.poll_probe_answer() {
            self.registrar.on_probe_answer(binding);
        }
        while let Some((key, answer)) = self.endpoint.poll_own_answer() {
            if self.presence.on_answer(&key, answer.as_ref()) {
                continue;
            }
            self.trunk_lines
                .on_answer(&key, answer, &self.trunks, &mut self.endpoint, now);
        }
        while let Some((binding, contact, next_hop, route)) = self.registrar.poll_probe(now) {
            self.endpoint
                .probe(binding, &contact, next_hop, &route, now);
        }
        loop {
            while let Some(request) = self.endpoint.poll_request() {
                let now = Instant::now();
                if request.request.method == rsip::Method::Subscribe {
                    self.presence.on_subscribe(
                        request,
                        &mut self.endpoint,
                        &mut self.registrar,
                        self.control.lines(),
                        now,
                    );
                    for mailbox in self.presence.take_counts_wanted() {
                        crate::voicemail::announce(&self.shared, mailbox);
                    }
                    continue;
                }
                match self
                    .registrar
                    .on_register(&request.request, request.from, now)
                {
                    RegisterOutcome::Respond(response) => {
                        self.endpoint.respond_to(&request.key, *response, now)
                    }
                    RegisterOutcome::Drop => {}
                }
                while let Some(user) = self.registrar.poll_newly_registered() {
                    crate::voicemail::announce_registered(&self.shared, user);
                }
            }
            while let Some((peer, bytes)) = self.endpoint.poll_transmit() {
                self.transport.send(&peer, bytes);
            }
            while let Some((extension, view)) = self.control.poll_line_change() {
                self.presence
                    .on_line_change(&extension, &view, &mut self.endpoint, Instant::now());
            }
            while let Some((peer, bytes)) = self.endpoint.poll_transmit() {
                self.transport.send(&peer, bytes);
            }
            let Some(event) = self.endpoint.poll_event() else {
                break;
            };
            self.control.on_leg_event(
                event,
                &mut self.endpoint,
                &mut self.registrar,
                Instant::now(),
            );
        }
    }
}

static CALLS: std::sync::LazyLock<Arc<std::sync::atomic::AtomicUsize>> =
    std::sync::LazyLock::new(|| Arc::new(std::sync::atomic::AtomicUsize::new(0)));

/// How many calls are in progress now (the console's system page).
pub(crate) fn calls_now() -> usize {
    CALLS.load(std::sync::atomic::Ordering::Relaxed)
}
