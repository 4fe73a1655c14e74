//! The SIP core: one task that owns the transaction layer and every call's signalling state.
//!
//! Transports hand it raw bytes; it parses them with the `sip` crate, runs the sans-IO
//! transaction layer with the real clock, answers what needs no call (OPTIONS, errors), routes
//! INVITEs through the dialplan and starts a call task per call. Call tasks talk back through
//! `CoreCommand`s. Owning all SIP state in one task keeps it lock-free and ordered.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use media::sdp::{self, Codec, Direction, LocalMedia};
use rsip::Method;
use sip::dialog::{Dialog, DialogId, dialog_id_of_request};
use sip::message as msg;
use sip::session_timer::{self, Negotiation, SessionTimer, SessionTimerAction};
use sip::transaction::{Output, Peer, Timers, TransactionEvent, TransactionKey, TransactionLayer};
use tokio::sync::mpsc;

use crate::call::{self, CallContext, CallEvent};
use crate::config::{Config, LogFormat};
use crate::dialplan_files::PlanHolder;
use crate::media_worker::{
    MediaCommand, MediaWorkers, PortAllocator, QualityCell, RemoteMedia, SessionSpec,
};
use crate::sounds::SoundLibrary;
use crate::transport::{self, Inbound, TransportHandle};

/// Methods we implement (Allow header, RFC 3261 §20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE";
/// Option tags we support: session timers (RFC 4028).
const SUPPORTED: &str = session_timer::OPTION_TAG;
/// Methods defined by RFCs that we recognise but do not serve here (405, not 501).
const KNOWN_UNSERVED: &[&str] = &[
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "MESSAGE",
    "REFER",
    "PRACK",
];
/// Codecs we offer and accept, best first (the answer follows the offerer's order).
const OUR_CODECS: &[Codec] = &[Codec::Opus, Codec::G722, Codec::Pcma, Codec::Pcmu];
/// Calls at most; beyond it INVITEs get 503 (bounded everything).
const MAX_CALLS: usize = 10_000;

/// Requests from call tasks to the core.
#[derive(Debug)]
pub enum CoreCommand {
    /// Answer the call with 200 OK and our SDP answer.
    Answer(u64),
    /// Refuse an unanswered call with a final status.
    Reject(u64, u16),
    /// End the call (BYE if answered, else 480).
    Hangup(u64),
    /// The call task ended; forget the call.
    Finished(u64, String),
    /// The media worker heard no RTP from the caller for the configured time.
    MediaTimeout(u64),
}

/// State shared by the core and call tasks.
pub struct Shared {
    /// Configuration in force.
    pub config: Config,
    /// Prompts.
    pub sounds: SoundLibrary,
    /// Media worker pool.
    pub media: MediaWorkers,
    /// The dialplan in force.
    pub plan: PlanHolder,
    /// The store (call records, rooms, recordings, dialplan history).
    pub store: std::sync::Mutex<store::Store>,
    /// Live conference rooms.
    pub conferences: crate::conference::Registry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// INVITE received, no final response yet.
    Early,
    /// 200 sent (awaiting ACK or confirmed).
    Answered,
    /// Over; waiting for the call task to finish.
    Ended,
}

struct Call {
    invite_key: TransactionKey,
    invite: rsip::Request,
    peer: Peer,
    local_tag: String,
    local_ip: IpAddr,
    dialog: Option<Dialog>,
    state: CallState,
    answer_sdp: String,
    sdp_version: u64,
    session_id: u64,
    media_port: u16,
    remote_rtp: Option<SocketAddr>,
    remote_rtcp: Option<SocketAddr>,
    /// The direction our answer gave us (RFC 3264 §6.1).
    direction: Direction,
    /// RTCP figures the media worker publishes, for the call record.
    quality: Arc<QualityCell>,
    /// RFC 4028 session timer, when the caller asked for one.
    session_timer: Option<SessionTimer>,
    /// The caller accepts UPDATE, so a refresh we send need not be a re-INVITE.
    peer_allows_update: bool,
    events: mpsc::UnboundedSender<CallEvent>,
    caller: String,
    callee: String,
    started_wall_ms: i64,
    final_status: u16,
}

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

/// Runs the server until SIGINT/SIGTERM.
pub fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sip")
        .build()?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let store = store::Store::open(&config.data_dir)
        .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?;
    let sounds = SoundLibrary::load(&config.sounds)?;
    let plan = PlanHolder::load(&config.dialplans, &sounds, &store)?;
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
    let media = MediaWorkers::start(workers, rooms)?;
    let (inbound_tx, inbound_rx) = mpsc::channel(8192);
    let transport = transport::start(config.sip_listen, inbound_tx).await?;
    let http_listen = config.http_listen;
    let ports = PortAllocator::new(config.rtp_ports.low, config.rtp_ports.high);
    let shared = Arc::new(Shared {
        config,
        sounds,
        media,
        plan,
        store: std::sync::Mutex::new(store),
        conferences: crate::conference::Registry::default(),
    });
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let core = Core {
        layer: TransactionLayer::new(Timers::default()),
        transport: transport.clone(),
        calls: HashMap::new(),
        by_dialog: HashMap::new(),
        by_invite: HashMap::new(),
        session_deadlines: BinaryHeap::new(),
        refreshes: HashMap::new(),
        next_call: 1,
        shared: shared.clone(),
        ports,
        commands: command_tx,
    };
    let calls_gauge = core.calls_gauge();
    let (reload_tx, reload_rx) = mpsc::channel(4);
    crate::dialplan_files::spawn_reloader(shared.clone(), reload_rx)?;
    crate::room_watch::spawn(shared.clone());
    crate::http::start(http_listen, shared.clone(), calls_gauge, reload_tx).await?;
    tracing::info!(
        sip = %transport.local_addr(),
        http = %http_listen,
        media_workers = workers,
        prompts = shared.sounds.len(),
        dialplan_version = shared.plan.version(),
        "amtsleitung is ready"
    );
    core.run(inbound_rx, command_rx).await
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
    layer: TransactionLayer,
    transport: TransportHandle,
    calls: HashMap<u64, Call>,
    by_dialog: HashMap<DialogId, u64>,
    by_invite: HashMap<TransactionKey, u64>,
    /// Session timer deadlines (call, when); stale entries are skipped when they come up.
    session_deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Session refreshes we sent and are waiting for: transaction → call, CSeq, method.
    refreshes: HashMap<TransactionKey, (u64, u32, Method)>,
    next_call: u64,
    shared: Arc<Shared>,
    ports: PortAllocator,
    commands: mpsc::UnboundedSender<CoreCommand>,
}

impl Core {
    fn calls_gauge(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        CALLS.clone()
    }

    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut commands: mpsc::UnboundedReceiver<CoreCommand>,
    ) -> anyhow::Result<()> {
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        // Set once SIGTERM/SIGINT came: calls have been sent BYE, and the loop keeps serving
        // (retransmitting the BYEs, answering) until this moment.
        let mut stop_at: Option<tokio::time::Instant> = None;
        loop {
            if stop_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                tracing::info!("stopped");
                return Ok(());
            }
            let session_deadline = self.session_deadlines.peek().map(|Reverse((at, _))| *at);
            let deadline = match (self.layer.poll_timeout(), session_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(message) = inbound.recv() => self.on_inbound(message),
                Some(command) = commands.recv() => self.on_command(command),
                _ = sleep => {
                    let now = Instant::now();
                    self.layer.handle_timeout(now);
                    self.run_session_timers(now);
                }
                _ = &mut shutdown, if stop_at.is_none() => {
                    let ids: Vec<u64> = self.calls.keys().copied().collect();
                    tracing::info!(calls = ids.len(), "shutting down: ending calls");
                    for id in ids {
                        self.hangup(id, "server shutting down");
                    }
                    // Long enough for the BYEs and a retransmission or two, short enough for
                    // systemd's stop timeout.
                    stop_at = Some(tokio::time::Instant::now() + std::time::Duration::from_secs(2));
                }
                _ = tokio::time::sleep_until(stop_at.unwrap_or_else(tokio::time::Instant::now)), if stop_at.is_some() => {}
            }
            self.drain_layer();
            CALLS.store(self.calls.len(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn on_inbound(&mut self, inbound: Inbound) {
        match msg::parse(&inbound.bytes) {
            // The layer stamps received/rport (RFC 3581) on requests itself.
            Ok(message) => self
                .layer
                .handle_message(message, inbound.peer, Instant::now()),
            Err(err) => {
                tracing::info!(from = %inbound.peer.addr, "rejected malformed SIP: {}", err.reason());
                if let Some(reply) = msg::bad_request_response(&inbound.bytes, &err) {
                    self.transport.send(&inbound.peer, reply);
                }
            }
        }
    }

    fn drain_layer(&mut self) {
        while let Some(output) = self.layer.poll_output() {
            match output {
                Output::Transmit { to, bytes } => self.transport.send(&to, bytes),
                Output::Event(event) => self.on_event(event),
            }
        }
    }

    fn respond(&mut self, key: &TransactionKey, response: rsip::Response) {
        if let Err(err) = self.layer.send_response(key, response, Instant::now()) {
            tracing::debug!("response not sent: {err}");
        }
    }

    fn reply(
        &mut self,
        key: &TransactionKey,
        request: &rsip::Request,
        code: u16,
        reason: Option<&str>,
    ) {
        let response = msg::response_to(request, code, reason, Some(&sip::transaction::new_tag()));
        self.respond(key, response);
    }

    fn on_event(&mut self, event: TransactionEvent) {
        match event {
            TransactionEvent::NewRequest { key, request, from } => {
                self.on_request(key, request, from)
            }
            TransactionEvent::Cancelled { invite } => {
                if let Some(id) = self.by_invite.get(&invite).copied() {
                    self.end_early_call(id, 487, "caller cancelled");
                }
            }
            TransactionEvent::Ack { request, .. } => {
                if let Some(id) =
                    dialog_id_of_request(&request).and_then(|d| self.by_dialog.get(&d).copied())
                {
                    tracing::debug!(call = id, "ACK received; call confirmed");
                }
            }
            TransactionEvent::Timeout { key } if self.refreshes.contains_key(&key) => {
                if let Some((id, _, _)) = self.refreshes.remove(&key) {
                    tracing::info!(call = id, "session refresh unanswered; ending call");
                    SESSION_TIMER_EXPIRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.hangup(id, SESSION_TIMER_EXPIRED);
                }
            }
            TransactionEvent::Response { key, response } if self.refreshes.contains_key(&key) => {
                self.on_refresh_response(&key, &response);
            }
            TransactionEvent::Timeout { key } => {
                // Our 2xx was never ACKed (RFC 3261 §13.3.1.4): the caller is gone.
                if let Some(id) = self.by_invite.get(&key).copied()
                    && self
                        .calls
                        .get(&id)
                        .is_some_and(|c| c.state == CallState::Answered)
                {
                    tracing::info!(call = id, "no ACK for our 200 OK; ending call");
                    self.hangup(id, "no ACK");
                }
            }
            TransactionEvent::Response { .. } | TransactionEvent::Terminated { .. } => {}
        }
    }

    fn on_request(&mut self, key: TransactionKey, request: rsip::Request, from: Peer) {
        let method = request.method;
        // RFC 3261 §8.2.2.3: refuse option tags we do not understand.
        if !matches!(method, Method::Ack | Method::Cancel) {
            let required: Vec<String> = msg::header_values(&request, "Require")
                .iter()
                .flat_map(|v| v.split(','))
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(session_timer::OPTION_TAG))
                .collect();
            if !required.is_empty() {
                let mut response =
                    msg::response_to(&request, 420, None, Some(&sip::transaction::new_tag()));
                msg::add_header(&mut response.headers, "Unsupported", required.join(", "));
                self.respond(&key, response);
                return;
            }
        }
        match method {
            Method::Invite => {
                if msg::to_tag(&request).is_some() {
                    self.on_session_update(key, request);
                } else {
                    self.on_new_invite(key, request, from);
                }
            }
            Method::Bye => self.on_bye(key, request),
            Method::Options => {
                let mut response =
                    msg::response_to(&request, 200, None, Some(&sip::transaction::new_tag()));
                msg::add_header(&mut response.headers, "Allow", ALLOW.into());
                msg::add_header(&mut response.headers, "Accept", "application/sdp".into());
                msg::add_header(&mut response.headers, "Accept-Language", "de, en".into());
                if !SUPPORTED.is_empty() {
                    msg::add_header(&mut response.headers, "Supported", SUPPORTED.into());
                }
                self.respond(&key, response);
            }
            Method::Info => self.on_info(key, request),
            Method::Update => self.on_session_update(key, request),
            Method::Ack | Method::Cancel => {}
            other => {
                let name = other.to_string();
                if KNOWN_UNSERVED.contains(&name.as_str()) {
                    let mut response =
                        msg::response_to(&request, 405, None, Some(&sip::transaction::new_tag()));
                    msg::add_header(&mut response.headers, "Allow", ALLOW.into());
                    self.respond(&key, response);
                } else {
                    self.reply(&key, &request, 501, None);
                }
            }
        }
    }

    fn on_new_invite(&mut self, key: TransactionKey, request: rsip::Request, from: Peer) {
        let call_id = msg::call_id(&request).unwrap_or_default();
        let span = tracing::info_span!("call", call_id = %call_id);
        let _guard = span.enter();
        if self.calls.len() >= MAX_CALLS {
            self.reply(&key, &request, 503, Some("Too Many Calls"));
            return;
        }
        let session_timer = match session_timer::negotiate(
            &request,
            self.shared.config.calls.min_session_expires,
        ) {
            Negotiation::TooSmall { min_se } => {
                self.reply_too_small(&key, &request, min_se);
                return;
            }
            Negotiation::NoTimer => None,
            Negotiation::Agreed(timer) => Some(timer),
        };
        let peer_allows_update = msg::header_values(&request, "Allow")
            .iter()
            .flat_map(|v| v.split(','))
            .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"));
        let callee = request
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let caller = msg::header_value(&request, "From")
            .and_then(|v| msg::address_uri(&v))
            .and_then(|u| msg::parse_uri(&u))
            .and_then(|u| u.auth.map(|a| a.user))
            .unwrap_or_else(|| "anonymous".into());
        let plan = self.shared.plan.current();
        let facts = dialplan::CallFacts {
            to: callee.clone(),
            from: Some(caller.clone()),
            trunk: None,
            source_ip: Some(from.addr.ip()),
            at: jiff::Timestamp::now(),
        };
        let Some(route) = plan.route(&facts) else {
            tracing::info!(to = %callee, "no dialplan rule matches; 404");
            self.reply(&key, &request, 404, None);
            return;
        };
        tracing::info!(to = %callee, from = %caller, rule = %route.rule_name, "routing call");

        let content_type = msg::header_value(&request, "Content-Type").unwrap_or_default();
        if request.body.is_empty()
            || !content_type
                .to_ascii_lowercase()
                .starts_with("application/sdp")
        {
            // Late offer (offer in our 200, answer in the ACK) is not supported yet.
            self.reply(&key, &request, 488, Some("SDP Offer Required"));
            return;
        }
        let offer = match parse_offer(&request.body) {
            Ok(offer) => offer,
            Err(err) => {
                tracing::info!("unusable SDP offer: {err}");
                self.reply(&key, &request, 400, Some("Bad SDP"));
                return;
            }
        };
        let local_ip =
            self.shared.config.media_ip.unwrap_or_else(|| {
                local_ip_towards(from.addr.ip(), self.transport.local_addr().ip())
            });
        let (rtp, rtcp) = match self.ports.bind_pair(local_ip) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::error!("no RTP ports: {err}");
                self.reply(&key, &request, 503, Some("No Media Ports"));
                return;
            }
        };
        let media_port = rtp.local_addr().map(|a| a.port()).unwrap_or(0);
        let session_id: u64 = rand::random::<u32>() as u64;
        let local = LocalMedia {
            ip: local_ip,
            port: media_port,
            codecs: OUR_CODECS.to_vec(),
            session_id,
            session_version: 1,
        };
        let (answer_sdp, negotiated) = match sdp::answer(&offer, &local) {
            Ok(x) => x,
            Err(err) => {
                tracing::info!("no common codec: {err}");
                self.reply(&key, &request, 488, None);
                return;
            }
        };
        let id = self.next_call;
        self.next_call += 1;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let notices = events_tx.clone();
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let quality = Arc::new(QualityCell::new());
        let timers = self.shared.config.calls;
        let spec = SessionSpec {
            id,
            rtp,
            rtcp,
            remote: negotiated.remote_rtp,
            remote_rtcp: negotiated.remote_rtcp,
            rtcp_mux: negotiated.rtcp_mux,
            cname: format!("amtsleitung@{local_ip}"),
            media_timeout: timers.media_timeout(false),
            media_timeout_on_hold: timers.media_timeout(true),
            core: self.commands.clone(),
            quality: quality.clone(),
            send: false,
            codec: codec_kind(negotiated.codec),
            payload_type: negotiated.payload_type,
            telephone_event_pt: negotiated.telephone_event_pt,
            ptime_ms: negotiated.ptime_ms,
            audio_level_ext: negotiated.audio_level_ext,
            events: media_tx,
        };
        self.shared
            .media
            .send(id, MediaCommand::Start(Box::new(spec)));
        let local_tag = sip::transaction::new_tag();
        // Ring while the call task works out what to do, so the caller sees progress.
        let ringing = msg::response_to(&request, 180, None, Some(&local_tag));
        self.respond(&key, ringing);
        self.calls.insert(
            id,
            Call {
                invite_key: key.clone(),
                invite: request,
                peer: from,
                local_tag,
                local_ip,
                dialog: None,
                state: CallState::Early,
                answer_sdp,
                sdp_version: 1,
                session_id,
                media_port,
                remote_rtp: negotiated.remote_rtp,
                remote_rtcp: negotiated.remote_rtcp,
                direction: negotiated.direction,
                quality,
                session_timer,
                peer_allows_update,
                events: events_tx,
                caller: caller.clone(),
                callee: callee.clone(),
                started_wall_ms: jiff::Timestamp::now().as_millisecond(),
                final_status: 0,
            },
        );
        self.by_invite.insert(key, id);
        let context = CallContext {
            id,
            call_id,
            caller,
            callee,
            language: plan.language().to_string(),
            shared: self.shared.clone(),
            core: self.commands.clone(),
            codec_rate: codec_kind(negotiated.codec).sample_rate(),
            notices,
        };
        tokio::spawn(call::run(context, route, events_rx, media_rx));
    }

    /// A re-INVITE or UPDATE in a dialog: maybe a new offer, and a session refresh (RFC 4028).
    fn on_session_update(&mut self, key: TransactionKey, request: rsip::Request) {
        let Some(id) = dialog_id_of_request(&request).and_then(|d| self.by_dialog.get(&d).copied())
        else {
            self.reply(&key, &request, 481, None);
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            self.reply(&key, &request, 481, None);
            return;
        };
        if let Some(dialog) = call.dialog.as_mut()
            && dialog.on_request(&request).is_err()
        {
            self.reply(&key, &request, 500, Some("CSeq Out Of Order"));
            return;
        }
        let Some(session) = self.session_refresh(&key, &request) else {
            return;
        };
        let offered = !request.body.is_empty();
        if offered && let Err(code) = self.apply_offer(id, &request.body) {
            self.reply(&key, &request, code, None);
            return;
        }
        self.refresh_session(id, session);
        // An offerless re-INVITE gets our offer again (RFC 3261 §14.2; the answer in the ACK
        // is accepted implicitly since we keep our media unchanged); an offerless UPDATE is a
        // bare refresh (RFC 3311), answered without SDP.
        let with_sdp = offered || request.method == Method::Invite;
        let response = self.dialog_response(id, &request, with_sdp);
        self.respond(&key, response);
    }

    /// Reads a refresh request's session timer; answers 422 itself when the interval is too
    /// short (`None` then).
    fn session_refresh(
        &mut self,
        key: &TransactionKey,
        request: &rsip::Request,
    ) -> Option<Option<SessionTimer>> {
        match session_timer::negotiate(request, self.shared.config.calls.min_session_expires) {
            Negotiation::TooSmall { min_se } => {
                self.reply_too_small(key, request, min_se);
                None
            }
            Negotiation::NoTimer => Some(None),
            Negotiation::Agreed(timer) => Some(Some(timer)),
        }
    }

    /// A refresh was accepted: the timer it carried starts now (none: the timer is off,
    /// RFC 4028 §9).
    fn refresh_session(&mut self, id: u64, timer: Option<SessionTimer>) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.session_timer = timer;
        if let Some(timer) = call.session_timer.as_mut() {
            timer.refreshed(Instant::now());
            tracing::debug!(call = id, interval = ?timer.interval(), refresher = ?timer.refresher(), "session refreshed");
        }
        self.schedule_session_timer(id);
    }

    fn reply_too_small(&mut self, key: &TransactionKey, request: &rsip::Request, min_se: u32) {
        let mut response = msg::response_to(
            request,
            422,
            Some("Session Interval Too Small"),
            Some(&sip::transaction::new_tag()),
        );
        msg::add_header(&mut response.headers, "Min-SE", min_se.to_string());
        self.respond(key, response);
    }

    /// Takes an SDP offer in a re-INVITE or UPDATE; `Err` holds the status to refuse it with.
    fn apply_offer(&mut self, id: u64, body: &[u8]) -> Result<(), u16> {
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(481);
        };
        let offer = match parse_offer(body) {
            Ok(offer) => offer,
            Err(err) => {
                tracing::info!("bad SDP in re-INVITE: {err}");
                return Err(488);
            }
        };
        call.sdp_version += 1;
        let local = LocalMedia {
            ip: call.local_ip,
            port: call.media_port,
            codecs: OUR_CODECS.to_vec(),
            session_id: call.session_id,
            session_version: call.sdp_version,
        };
        match sdp::answer(&offer, &local) {
            Ok((answer, negotiated)) => {
                call.answer_sdp = answer;
                call.remote_rtp = negotiated.remote_rtp;
                call.remote_rtcp = negotiated.remote_rtcp;
                call.direction = negotiated.direction;
                tracing::info!(remote = ?negotiated.remote_rtp, ?negotiated.direction, "re-INVITE: media updated");
                let remote = remote_media(call);
                self.shared
                    .media
                    .send(id, MediaCommand::SetRemote(id, remote));
                Ok(())
            }
            Err(_) => {
                call.sdp_version -= 1;
                Err(488)
            }
        }
    }

    fn schedule_session_timer(&mut self, id: u64) {
        if let Some(at) = self
            .calls
            .get(&id)
            .and_then(|c| c.session_timer.as_ref())
            .and_then(SessionTimer::deadline)
        {
            self.session_deadlines.push(Reverse((at, id)));
        }
    }

    /// Refreshes or ends the calls whose session timer is due.
    fn run_session_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.session_deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.session_deadlines.pop();
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if call.state != CallState::Answered {
                continue;
            }
            let Some(timer) = call.session_timer.as_mut() else {
                continue;
            };
            // A stale entry (the session was refreshed since) polls to nothing.
            match timer.poll(now) {
                Some(SessionTimerAction::Expired) => {
                    tracing::info!(call = id, "session not refreshed in time; ending call");
                    SESSION_TIMER_EXPIRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.hangup(id, SESSION_TIMER_EXPIRED);
                }
                Some(SessionTimerAction::Refresh) => {
                    self.send_refresh(id);
                    self.schedule_session_timer(id);
                }
                None => {}
            }
        }
    }

    /// We are the refresher: UPDATE when the caller allows it (no new offer), else a
    /// re-INVITE offering the session as it is (RFC 4028 §7.4, §9).
    fn send_refresh(&mut self, id: u64) {
        let via_port = self.transport.local_addr().port();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (Some(dialog), Some(timer)) = (call.dialog.as_mut(), call.session_timer) else {
            return;
        };
        let via = SocketAddr::new(call.local_ip, via_port);
        let (method, body) = if call.peer_allows_update {
            (Method::Update, None)
        } else {
            (
                Method::Invite,
                Some((
                    "application/sdp".to_string(),
                    call.answer_sdp.as_bytes().to_vec(),
                )),
            )
        };
        let mut request = dialog.new_request(method, via, call.peer.transport, body);
        msg::add_header(
            &mut request.headers,
            "Session-Expires",
            timer.header_value(),
        );
        msg::add_header(&mut request.headers, "Supported", SUPPORTED.into());
        let cseq = dialog.local_cseq();
        let to = Peer {
            addr: dialog.next_hop().unwrap_or(call.peer.addr),
            ..call.peer
        };
        match self.layer.send_request(request, to, Instant::now()) {
            Ok(key) => {
                tracing::debug!(call = id, %method, "session refresh sent");
                self.refreshes.insert(key, (id, cseq, method));
            }
            Err(err) => tracing::warn!(call = id, "session refresh not sent: {err}"),
        }
    }

    /// The caller answered our refresh: a 2xx restarts the timer (and a re-INVITE's is
    /// ACKed); 408 or 481 mean the dialog is gone (RFC 4028 §10).
    fn on_refresh_response(&mut self, key: &TransactionKey, response: &rsip::Response) {
        let Some(&(id, cseq, method)) = self.refreshes.get(key) else {
            return;
        };
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        if code >= 300 {
            self.refreshes.remove(key);
            if matches!(code, 408 | 481) {
                self.hangup(id, SESSION_TIMER_EXPIRED);
            }
            return;
        }
        let via_port = self.transport.local_addr().port();
        if let Some(call) = self.calls.get_mut(&id)
            && let Some(dialog) = call.dialog.as_ref()
            && method == Method::Invite
        {
            // The ACK for a 2xx is the TU's, sent again for every retransmitted 2xx.
            let via = SocketAddr::new(call.local_ip, via_port);
            let ack = dialog.new_ack(cseq, via, call.peer.transport);
            let to = Peer {
                addr: dialog.next_hop().unwrap_or(call.peer.addr),
                ..call.peer
            };
            self.layer
                .send_stateless(rsip::SipMessage::Request(ack), to);
        }
        if let Some(timer) = self
            .calls
            .get_mut(&id)
            .and_then(|c| c.session_timer.as_mut())
        {
            timer.refreshed(Instant::now());
        }
        self.schedule_session_timer(id);
    }

    fn answer_response(&self, id: u64, request: &rsip::Request) -> rsip::Response {
        self.dialog_response(id, request, true)
    }

    /// 200 to an INVITE, re-INVITE or UPDATE: Contact, Allow, Supported, the session timer
    /// and, `with_answer`, our SDP.
    fn dialog_response(
        &self,
        id: u64,
        request: &rsip::Request,
        with_answer: bool,
    ) -> rsip::Response {
        let Some(call) = self.calls.get(&id) else {
            return msg::response_to(request, 481, None, None);
        };
        let mut response = msg::response_to(request, 200, None, Some(&call.local_tag));
        msg::add_header(
            &mut response.headers,
            "Contact",
            format!("<{}>", self.contact_uri(call.local_ip)),
        );
        msg::add_header(&mut response.headers, "Allow", ALLOW.into());
        msg::add_header(&mut response.headers, "Supported", SUPPORTED.into());
        if let Some(timer) = &call.session_timer {
            msg::add_header(
                &mut response.headers,
                "Session-Expires",
                timer.header_value(),
            );
            if timer.requires_timer() {
                msg::add_header(
                    &mut response.headers,
                    "Require",
                    session_timer::OPTION_TAG.into(),
                );
            }
        }
        if with_answer {
            msg::set_body(
                &mut response,
                "application/sdp",
                call.answer_sdp.as_bytes().to_vec(),
            );
        }
        response
    }

    fn contact_uri(&self, ip: IpAddr) -> String {
        let port = self.transport.local_addr().port();
        match ip {
            IpAddr::V4(v4) => format!("sip:amtsleitung@{v4}:{port}"),
            IpAddr::V6(v6) => format!("sip:amtsleitung@[{v6}]:{port}"),
        }
    }

    fn on_bye(&mut self, key: TransactionKey, request: rsip::Request) {
        let Some(id) = dialog_id_of_request(&request).and_then(|d| self.by_dialog.get(&d).copied())
        else {
            self.reply(&key, &request, 481, None);
            return;
        };
        let response = msg::response_to(&request, 200, None, None);
        self.respond(&key, response);
        self.end_call(id, "caller hung up");
    }

    fn on_info(&mut self, key: TransactionKey, request: rsip::Request) {
        let Some(id) = dialog_id_of_request(&request).and_then(|d| self.by_dialog.get(&d).copied())
        else {
            self.reply(&key, &request, 481, None);
            return;
        };
        let content_type = msg::header_value(&request, "Content-Type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("application/dtmf") {
            let body = String::from_utf8_lossy(&request.body);
            if let (Some(digit), Some(call)) =
                (media::dtmf::parse_dtmf_relay(&body), self.calls.get(&id))
            {
                let _ = call.events.send(CallEvent::Dtmf(digit));
            }
            let response = msg::response_to(&request, 200, None, None);
            self.respond(&key, response);
        } else {
            // RFC 6086 §4.2.2: an INFO package we do not support.
            self.reply(&key, &request, 415, None);
        }
    }

    fn on_command(&mut self, command: CoreCommand) {
        match command {
            CoreCommand::Answer(id) => self.answer(id),
            CoreCommand::Reject(id, code) => self.end_early_call(id, code, "rejected by dialplan"),
            CoreCommand::Hangup(id) => self.hangup(id, "hung up by dialplan"),
            CoreCommand::Finished(id, reason) => {
                if self
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.state != CallState::Ended)
                {
                    self.hangup(id, &reason);
                }
                self.forget(id);
            }
            CoreCommand::MediaTimeout(id) => {
                self.hangup(id, MEDIA_TIMEOUT);
            }
        }
    }

    fn answer(&mut self, id: u64) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.state != CallState::Early {
            return;
        }
        let response = self.answer_response(id, &call.invite);
        let key = call.invite_key.clone();
        let local_contact = msg::parse_uri(&self.contact_uri(call.local_ip));
        let dialog = local_contact
            .and_then(|contact| Dialog::new_uas(&call.invite, &call.local_tag, contact).ok());
        self.respond(&key, response);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.state = CallState::Answered;
        call.final_status = 200;
        if let Some(dialog) = dialog {
            self.by_dialog.insert(dialog.id().clone(), id);
            call.dialog = Some(dialog);
        }
        if let Some(timer) = call.session_timer.as_mut() {
            timer.refreshed(Instant::now());
        }
        let remote = remote_media(call);
        self.shared
            .media
            .send(id, MediaCommand::SetRemote(id, remote));
        self.schedule_session_timer(id);
    }

    /// Ends a call that has not been answered with a final error status.
    fn end_early_call(&mut self, id: u64, code: u16, reason: &str) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.state != CallState::Early {
            return;
        }
        let response = msg::response_to(&call.invite, code, None, Some(&call.local_tag));
        let key = call.invite_key.clone();
        self.respond(&key, response);
        if let Some(call) = self.calls.get_mut(&id) {
            call.final_status = code;
        }
        self.end_call(id, reason);
    }

    /// Ends an answered call by sending BYE; an early one with 480.
    fn hangup(&mut self, id: u64, reason: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        match call.state {
            CallState::Early => self.end_early_call(id, 480, reason),
            CallState::Answered => {
                let via = SocketAddr::new(call.local_ip, self.transport.local_addr().port());
                let peer = call.peer;
                if let Some(dialog) = call.dialog.as_mut() {
                    let mut bye = dialog.new_request(Method::Bye, via, peer.transport, None);
                    msg::add_header(&mut bye.headers, "Reason", bye_reason(reason));
                    let to = Peer {
                        addr: dialog.next_hop().unwrap_or(peer.addr),
                        ..peer
                    };
                    if let Err(err) = self.layer.send_request(bye, to, Instant::now()) {
                        tracing::warn!(call = id, "BYE not sent: {err}");
                    }
                }
                self.end_call(id, reason);
            }
            CallState::Ended => {}
        }
    }

    /// Marks the call over, stops media, tells the call task and writes the call record.
    fn end_call(&mut self, id: u64, reason: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state == CallState::Ended {
            return;
        }
        let answered = call.state == CallState::Answered;
        call.state = CallState::Ended;
        let _ = call.events.send(CallEvent::Hangup);
        self.shared.media.send(id, MediaCommand::Stop(id));
        let record = store::CallRecord {
            call_id: msg::call_id(&call.invite).unwrap_or_default(),
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            started_at_ms: call.started_wall_ms,
            ended_at_ms: jiff::Timestamp::now().as_millisecond(),
            answered,
            final_status: call.final_status,
            end_reason: reason.to_string(),
            media: store::CallMedia::default(),
        };
        tracing::info!(call = id, reason, "call ended");
        let shared = self.shared.clone();
        let quality = call.quality.clone();
        tokio::task::spawn_blocking(move || {
            let mut record = record;
            // The worker publishes the leg's final RTCP figures when it handles the Stop,
            // within a tick or two; a worker that lost the command costs the record only
            // the last few seconds of figures.
            let give_up = Instant::now() + MEDIA_STOP_WAIT;
            while !quality.stopped() && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(5));
            }
            record.media = quality.to_call_media();
            let store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(err) = store.record_call(&record) {
                tracing::error!("call record not written: {err}");
            }
        });
    }

    fn forget(&mut self, id: u64) {
        if let Some(call) = self.calls.remove(&id) {
            self.by_invite.remove(&call.invite_key);
            if let Some(dialog) = call.dialog {
                self.by_dialog.remove(dialog.id());
            }
        }
    }
}

/// What the media worker needs of a call's negotiated media.
fn remote_media(call: &Call) -> RemoteMedia {
    RemoteMedia {
        rtp: call.remote_rtp,
        rtcp: call.remote_rtcp,
        send: call.direction.sends() && call.remote_rtp.is_some(),
        active: call.direction == Direction::SendRecv,
    }
}

/// Why a call ended when the caller's RTP stopped (call record, BYE text).
pub const MEDIA_TIMEOUT: &str = "media timeout";
/// Why a call ended when its SIP session was not refreshed (call record, BYE text).
pub const SESSION_TIMER_EXPIRED: &str = "session timer expired";

/// The `Reason` header (RFC 3326) of a BYE we send: Q.850 cause 102 ("recovery on timer
/// expiry", what FreeSWITCH and Asterisk send for a dead call) when a timer ended the call,
/// 16 (normal clearing) otherwise, with our words as text.
fn bye_reason(reason: &str) -> String {
    let cause = match reason {
        MEDIA_TIMEOUT | SESSION_TIMER_EXPIRED | "no ACK" => 102,
        _ => 16,
    };
    let text: String = reason.chars().filter(|c| *c != '"' && *c != '\\').collect();
    format!("Q.850;cause={cause};text=\"{text}\"")
}

/// Calls ended by their session timer, for `/metrics`.
pub static SESSION_TIMER_EXPIRIES: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// How long a call record waits for the media worker's final figures.
const MEDIA_STOP_WAIT: Duration = Duration::from_millis(300);

static CALLS: std::sync::LazyLock<Arc<std::sync::atomic::AtomicUsize>> =
    std::sync::LazyLock::new(|| Arc::new(std::sync::atomic::AtomicUsize::new(0)));

fn codec_kind(codec: Codec) -> media::codec::CodecKind {
    match codec {
        Codec::Pcmu => media::codec::CodecKind::Pcmu,
        Codec::Pcma => media::codec::CodecKind::Pcma,
        Codec::G722 => media::codec::CodecKind::G722,
        Codec::Opus => media::codec::CodecKind::Opus,
    }
}

/// The SDP offer in a request body.
fn parse_offer(body: &[u8]) -> Result<sdp::SessionDescription, String> {
    let text = std::str::from_utf8(body).map_err(|_| "SDP is not UTF-8".to_string())?;
    sdp::parse(text).map_err(|e| e.to_string())
}

/// The local address the kernel would use to reach `peer` (no packet is sent: connecting a
/// UDP socket only consults the routing table).
fn local_ip_towards(peer: IpAddr, listen: IpAddr) -> IpAddr {
    if !listen.is_unspecified() {
        return listen;
    }
    let bind: SocketAddr = match peer {
        IpAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        IpAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    std::net::UdpSocket::bind(bind)
        .and_then(|s| {
            s.connect((peer, 9))?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(peer)
}
