//! Call control: the owner of every leg the SIP endpoint reports, and the host of the calls.
//!
//! A new INVITE is routed through the dialplan, its SDP offer answered, RTP ports bound, a
//! media session started and a [`Call`] made for it. What happens to the legs (key presses,
//! a placed leg ringing, answering, ending), the room's news and the media session's reports
//! go to that call; what the call puts out is carried out here on the endpoint and the media
//! workers, or through [`crate::call_effects`]. Re-offers update the media, except that a
//! switch to T.38 fax (or back) on a connected call is passed on to the other leg (see
//! [`crate::fax`]); an ended leg stops its media and writes the call record.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::sdp::{self, Codec, Direction, LocalMedia, SdpError};
use sip::message as msg;
use tokio::sync::mpsc;

use crate::call::{
    Call, CallSetup, CalleeEvent, CallerId, Input, MediaAction, Output, PickupRefusal, Question,
    Reply, SettingRefusal, SipAction,
};
use crate::call_cost::CallCosts;
use crate::call_effects::{self, Replies};
use crate::call_event::{CALL_EVENTS_QUEUE, CallEvent, CallEvents};
use crate::call_hold::HoldMedia;
use crate::core_command::CoreCommand;
use crate::fax::{self, CallMedia, MediaSwitch, OfferStep, Passing, Wants};
use crate::ids::LegId;
use crate::line_state::{LineStates, LineView};
use crate::media_worker::{
    Connection, MediaCommand, MediaMode, PortAllocator, QualityCell, RemoteMedia, RoomJoin,
    SessionSpec,
};
use crate::registrar::{Caller, CallerRefusal, RegistrarService};
use crate::shared::Shared;
use crate::sip_endpoint::{Incoming, LegEvent, MEDIA_TIMEOUT, OutboundCall, SipEndpoint};
use crate::trunk_service::CallerProfile;
use crate::udptl_relay::UdptlRelayTask;

/// Whose call a placed call is, for permissions and the Diversion header.
#[derive(Clone, Copy)]
enum Diversion<'a> {
    /// The caller's own.
    None,
    /// A `forward` rule sends it on: the number the caller dialled is diverting.
    Dialled,
    /// `user`'s forwarding or follow-me: their permissions, they are diverting; a user
    /// target rings only the phones registered from `network`, when given.
    ByUser {
        user: &'a str,
        network: Option<&'a store::AllowedNetwork>,
    },
}
mod ring_groups;

mod attended_transfer;
mod transfer;

/// Codecs we offer and accept, best first (the answer follows the offerer's order).
const OUR_CODECS: &[Codec] = &[Codec::Opus, Codec::G722, Codec::Pcma, Codec::Pcmu];
/// What a fax call runs on: G.711, which a fax machine's tones survive unchanged when it is
/// passed through (no other codec we have carries fax).
const FAX_CODECS: &[Codec] = &[Codec::Pcma, Codec::Pcmu];
/// How long a call record waits for the media worker's final figures.
const MEDIA_STOP_WAIT: Duration = Duration::from_millis(300);

/// A leg's negotiated media.
struct MediaSession {
    local_ip: IpAddr,
    port: u16,
    session_id: u64,
    sdp_version: u64,
    answer_sdp: String,
    remote_rtp: Option<SocketAddr>,
    remote_rtcp: Option<SocketAddr>,
    /// The direction our answer gave us (RFC 3264 §6.1).
    direction: Direction,
    /// The codec the caller and we agreed on.
    codec: Codec,
    /// The leg's SRTP policy and our keys (kept, so a re-INVITE's answer keeps our key).
    srtp_local: sdp::LocalSrtp,
    /// The keys the media runs with, `None` for plain RTP.
    srtp: Option<sdp::NegotiatedSrtp>,
}

impl MediaSession {
    /// The peer holds the call: its last offer was `sendonly` or `inactive` (RFC 3264 §8.4),
    /// or gave no address to send to (RFC 2543's `c=0.0.0.0`), so we send it nothing.
    fn held_by_peer(&self) -> bool {
        !self.remote().send
    }

    /// What the media worker needs of it.
    fn remote(&self) -> RemoteMedia {
        remote_media(self.remote_rtp, self.remote_rtcp, self.direction)
    }

    /// Our T.38 side at `ip`:`port` for this session's next description (its version one
    /// up, RFC 3264 §8).
    fn next_image(&mut self, ip: IpAddr, port: u16) -> sdp::LocalImage {
        self.sdp_version += 1;
        sdp::LocalImage {
            ip,
            port,
            session_id: self.session_id,
            session_version: self.sdp_version,
        }
    }

    /// Our side for answering a re-offer on this session.
    fn reoffer_answerer(&self) -> LocalMedia {
        LocalMedia {
            ip: self.local_ip,
            port: self.port,
            // The session's codec only: the media worker keeps its codec for the call, so
            // an offer without it is refused (488) rather than answered with another.
            codecs: vec![self.codec],
            session_id: self.session_id,
            session_version: self.sdp_version + 1,
            // Our keys stay, so what we send keeps its key (RFC 4568 §7.1.4 allows it).
            srtp: self.srtp_local.clone(),
        }
    }
}

/// Where and how a media session exchanges audio, from the negotiated addresses and the
/// direction our side must use.
fn remote_media(
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
    direction: Direction,
) -> RemoteMedia {
    RemoteMedia {
        rtp,
        rtcp,
        send: direction.sends() && rtp.is_some(),
        active: direction == Direction::SendRecv,
    }
}

/// A leg call control has taken on.
struct CallLeg {
    call_id: String,
    caller: String,
    /// The caller's name: from the directory for one of our users, else its From header's
    /// display name, if any.
    caller_name: Option<String>,
    /// What the caller may call out through a trunk, and which user that is.
    profile: CallerProfile,
    /// The domain the call belongs to (the default one, or a tenant's): its users are the
    /// ones the call may reach, its dialplan routes it.
    tenant: String,
    callee: String,
    /// Where the caller's requests come from (for an emergency call's location number).
    source: IpAddr,
    started_wall_ms: i64,
    media: MediaSession,
    /// RTCP figures the media worker publishes, for the call record.
    quality: Arc<QualityCell>,
    /// The call running the dialplan for this caller; `None` once it is over (or while
    /// call control carries out its outputs).
    call: Option<Call>,
    /// The call's `tracing` span, entered whenever the call runs.
    span: tracing::Span,
    /// When the call asked to be woken, as filed in [`CallControl::timers`].
    timer: Option<Instant>,
    /// Prompt language of the dialplan, and the sample rate prompts are played at.
    language: String,
    codec_rate: u32,
    /// The endpoint reported the leg over.
    ended: bool,
    /// The call is done with the leg.
    finished: bool,
    /// Contacts rung for this caller so far, for the call record.
    contacts_rung: u32,
    /// The leg this caller is connected to, once someone answered; kept after that leg is
    /// gone, for the call record.
    connected: Option<ConnectedCallee>,
    /// The caller's own line is a fax machine (`user fax EXT on`).
    fax_line: bool,
    /// Where the connected call's media stands: audio, T.38, or an offer passed on.
    switch: MediaSwitch,
    /// What the offer passed on holds until the other leg answers.
    pending_switch: Option<PendingSwitch>,
    /// The T.38 relay, while the call carries fax.
    t38: Option<T38Call>,
    /// The ring group the call dialled, for the call record.
    ring_group: Option<String>,
    /// What happened to the call besides ringing and talking ("forwarded by 101 (always) to
    /// 102", "transferred by 101 to 103"), for its log and record.
    features: Vec<String>,
    /// The caller transferred its call away and its own leg is gone (or going): the call
    /// goes on between legs placed for it, and its record is written when it ends.
    headless: bool,
    /// The two placed legs a transfer by the caller connected to each other: the end of
    /// either ends the call.
    joined: Option<[LegId; 2]>,
}

/// A re-offer passed from one leg of a connected call to the other, waiting for its answer.
struct PendingSwitch {
    /// The offering leg's re-offer, parsed and as it came.
    offer: sdp::SessionDescription,
    body: Vec<u8>,
    /// For T.38: the socket facing the offering leg and the one facing the other leg (with
    /// their RTCP partners, which keep the pairs from being handed out again), bound before
    /// the offer went on, and the stream it offered.
    t38: Option<(SocketPair, SocketPair, sdp::ImageStream)>,
}

/// An RTP/RTCP-style port pair; only the even one carries UDPTL.
type SocketPair = (std::net::UdpSocket, std::net::UdpSocket);

/// A connected call that carries T.38: the relay, and each leg's side of it.
struct T38Call {
    relay: UdptlRelayTask,
    /// The side facing the leg that offered T.38, then the other one.
    sides: [T38Side; 2],
}

/// One leg's view of a T.38 call: our port, and the stream we last described to it.
struct T38Side {
    leg: LegId,
    ip: IpAddr,
    port: u16,
    /// The stream as our last description to this leg showed it (the other machine's
    /// attributes), answered again to its refreshes.
    described: sdp::ImageStream,
}

/// The placed leg that answered a caller's `dial`.
struct ConnectedCallee {
    leg: LegId,
    /// Who it is, as the call record names it.
    placed: PlacedTo,
    /// Unix time in milliseconds when it answered.
    answered_wall_ms: i64,
    /// RTCP figures of its media session, for the call record.
    quality: Arc<QualityCell>,
    /// When (unix ms) and why it ended, once it has.
    ended: Option<(i64, String)>,
}

impl ConnectedCallee {
    /// Notes the leg's end; the first report wins (our hangup and the endpoint's `Ended`
    /// for it both come by).
    fn end(&mut self, reason: &str) {
        if self.ended.is_none() {
            self.ended = Some((jiff::Timestamp::now().as_millisecond(), reason.to_string()));
        }
    }

    /// The leg as the call record keeps it, its media figures still to come from its
    /// [`QualityCell`]; a leg still up is taken to end with its caller, at `caller_ended_ms`.
    fn to_record(&self, caller_ended_ms: i64) -> store::ConnectedLeg {
        let (ended_at_ms, end_reason) = self
            .ended
            .clone()
            .unwrap_or_else(|| (caller_ended_ms, "caller's leg ended".to_string()));
        store::ConnectedLeg {
            call_id: self.placed.call_id.clone(),
            target: self.placed.target.clone(),
            extension: self.placed.extension.clone(),
            answered_at_ms: self.answered_wall_ms,
            ended_at_ms,
            end_reason,
            media: store::CallMedia::default(),
        }
    }
}

/// Whom a placed leg rings.
#[derive(Clone)]
struct PlacedTo {
    /// Its SIP Call-ID (ours).
    call_id: String,
    /// Its Request-URI: the registered contact or the dialled SIP URI.
    target: String,
    /// The staff extension whose phone it rings, if it is one.
    extension: Option<String>,
}

/// A leg we placed to ring someone for a caller.
struct OutboundLeg {
    /// The caller's leg.
    parent: LegId,
    /// The trunk it went out on, if it did (counted against the trunk's `max-calls`).
    trunk: Option<String>,
    /// Our offer's media (ports bound, RTP sockets kept until the answer).
    local_ip: IpAddr,
    sockets: Option<(std::net::UdpSocket, std::net::UdpSocket)>,
    /// Its media session runs (after the answer).
    media_started: bool,
    quality: Arc<QualityCell>,
    placed: PlacedTo,
    /// Our offer's RTP port and SDP session id (a later answer to the phone's re-INVITE
    /// must keep both).
    port: u16,
    session_id: u64,
    /// The media as agreed once it answered, for its re-INVITEs (hold, resume, a new
    /// address).
    media: Option<MediaSession>,
    /// Its SDP answer, from its 2xx until the caller's call connects it (or not).
    answer: Option<sdp::NegotiatedAudio>,
    /// The SRTP policy and keys of our offer.
    srtp: sdp::LocalSrtp,
    /// A call out through a trunk, as the dialplan asked for it: what a failover needs to
    /// place it again on the next trunk.
    call_out: Option<CallOutRequest>,
    /// The codecs our offer named: a fax call's offer names only the caller's.
    offered: Vec<Codec>,
}

/// A call out as the dialplan asked for it.
#[derive(Debug, Clone)]
struct CallOutRequest {
    number: String,
    privacy: bool,
    forwarded: bool,
    /// The user whose forwarding or follow-me placed it, whose permissions it keeps.
    diverted_by: Option<String>,
    fax_rule: bool,
    /// Its class, which the cost guard prices it by once answered.
    class: Option<trunks::CallClass>,
    /// The caller ID the rule set, presented again on the failover trunk.
    caller_id: CallerId,
}

/// Whether a carrier's refusal of a call out says the carrier failed rather than the called
/// number: no response at all (0), 408, or a server error (RFC 3261 §21.5: 500, 502, 503,
/// 504). The next trunk may well get through; a 486 or 404 would be the same everywhere.
fn carrier_failed(status: u16) -> bool {
    matches!(status, 0 | 408 | 500 | 502 | 503 | 504)
}

/// Call control (see the module documentation).
pub struct CallControl {
    shared: Arc<Shared>,
    ports: Arc<PortAllocator>,
    /// Where media sessions report timeouts.
    commands: mpsc::Sender<CoreCommand>,
    /// Where the registry and media sessions send calls their news.
    call_events: CallEvents,
    /// Where replies from the store thread come back.
    replies: Replies,
    legs: HashMap<LegId, CallLeg>,
    outbound: HashMap<LegId, OutboundLeg>,
    /// Calls waiting for a time, by that time.
    timers: BTreeSet<(Instant, LegId)>,
    /// Who answered each ring group last, and when each user's last call ended.
    ring_groups: ring_groups::RingGroupMemory,
    /// Blind transfers under way, by the caller's leg of their call.
    transfers: HashMap<LegId, transfer::Transfer>,
    /// What each extension's line is doing, for busy lamps and pickup.
    lines: LineStates,
    /// Callers connected by a pickup, each way: when one leg ends, the other's call hears.
    picked_up: HashMap<LegId, LegId>,
}

/// The queues call control's owner must drain into [`CallControl::on_call_event`] and
/// [`CallControl::on_reply`].
pub struct CallQueues {
    /// Room news and media reports for calls.
    pub events: mpsc::Receiver<(LegId, CallEvent)>,
    /// Replies to calls' questions from the store thread.
    pub replies: mpsc::Receiver<(LegId, Reply)>,
}

impl CallControl {
    /// Call control with no legs; media sessions report timeouts to `commands`.
    pub fn new(
        shared: Arc<Shared>,
        ports: Arc<PortAllocator>,
        commands: mpsc::Sender<CoreCommand>,
    ) -> (Self, CallQueues) {
        let (call_events, events) = mpsc::channel(CALL_EVENTS_QUEUE);
        // One question at a time per call, and only a few take the store.
        let (replies, replies_rx) = mpsc::channel(CALL_EVENTS_QUEUE);
        let control = Self {
            shared,
            ports,
            commands,
            call_events,
            replies,
            legs: HashMap::new(),
            outbound: HashMap::new(),
            timers: BTreeSet::new(),
            ring_groups: ring_groups::RingGroupMemory::default(),
            transfers: HashMap::new(),
            lines: LineStates::default(),
            picked_up: HashMap::new(),
        };
        let queues = CallQueues {
            events,
            replies: replies_rx,
        };
        (control, queues)
    }

    /// What the extensions' lines are doing.
    pub fn lines(&self) -> &LineStates {
        &self.lines
    }

    /// The next extension whose line changed, with what it shows now (for busy lamps).
    pub fn poll_line_change(&mut self) -> Option<(String, LineView)> {
        self.lines.poll_change()
    }

    /// When a call wants the time next, or a call out may reach a cost-guard limit.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let call = self.timers.first().map(|(at, _)| *at);
        let trunks = self.shared.trunks.current();
        let cost = trunks
            .cost_rules()
            .and_then(|rules| self.shared.costs.guard().poll_timeout(rules, now));
        call.into_iter()
            .chain(cost)
            .chain(self.transfer_deadline())
            .min()
    }

    /// Wakes the calls whose time has come.
    pub fn handle_timeout(
        &mut self,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) {
        while let Some(&(at, leg)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, leg));
            if let Some(l) = self.legs.get_mut(&leg) {
                l.timer = None;
            }
            self.run_call(leg, endpoint, registrar, now, |call| {
                call.handle_timeout(now)
            });
        }
        self.transfer_timeouts(endpoint, registrar, now);
        self.cut_over_budget(endpoint, now);
    }

    /// Ends the calls out that took the last hour's spend to a cost-guard limit (one
    /// endless call to a premium number is what a stolen password is used for): both legs
    /// get a BYE naming the reason, logged, and the call record keeps it.
    fn cut_over_budget(&mut self, endpoint: &mut SipEndpoint, now: Instant) {
        let trunks = self.shared.trunks.current();
        let Some(rules) = trunks.cost_rules() else {
            return;
        };
        let cuts = self.shared.costs.guard().handle_timeout(rules, now);
        for cut in cuts {
            let Some(parent) = self.outbound.get(&cut.key).map(|o| o.parent) else {
                continue;
            };
            let reason = crate::call_cost::cut_reason(cut.over.budget);
            CallCosts::cut(cut.over.budget);
            let caller = self.legs.get_mut(&parent);
            let span = caller
                .as_ref()
                .map_or_else(tracing::Span::none, |l| l.span.clone());
            let _entered = span.enter();
            let user = cut.user.as_deref().unwrap_or("(not a user)");
            tracing::warn!(leg = %parent, callee = %cut.key, %user, spent = %cut.over.spent, limit = %cut.over.limit, "cost guard: {}; ending the call", cut.over);
            // Noted before the BYEs: whichever leg's end is reported first, the record
            // keeps this reason for both.
            if let Some(connected) = caller
                .and_then(|l| l.connected.as_mut())
                .filter(|c| c.leg == cut.key)
            {
                connected.end(reason);
            }
            endpoint.hangup(cut.key, reason, now);
            endpoint.hangup(parent, reason, now);
        }
    }

    /// Room news or a media report for the call of `leg`.
    pub fn on_call_event(
        &mut self,
        leg: LegId,
        event: CallEvent,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) {
        self.feed(leg, Input::from(event), endpoint, registrar, now);
    }

    /// The store's reply to a question of the call of `leg`.
    pub fn on_reply(
        &mut self,
        leg: LegId,
        reply: Reply,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) {
        self.run_call(leg, endpoint, registrar, now, |call| {
            call.handle_reply(reply, now)
        });
    }

    fn feed(
        &mut self,
        leg: LegId,
        input: Input,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) {
        self.run_call(leg, endpoint, registrar, now, |call| {
            call.handle_input(input, now)
        });
    }

    /// Lets the call of `leg` take `step`, then carries out everything it puts out.
    fn run_call(
        &mut self,
        leg: LegId,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
        step: impl FnOnce(&mut Call),
    ) {
        let Some(entry) = self.legs.get_mut(&leg) else {
            return;
        };
        let Some(mut call) = entry.call.take() else {
            return;
        };
        let span = entry.span.clone();
        let _entered = span.enter();
        step(&mut call);
        while let Some(output) = call.poll_output() {
            if let Some(reply) = self.carry_out(leg, output, endpoint, registrar, now) {
                call.handle_reply(reply, now);
            }
        }
        let deadline = call.poll_timeout();
        let Some(entry) = self.legs.get_mut(&leg) else {
            return;
        };
        if entry.timer != deadline {
            if let Some(old) = entry.timer.take() {
                self.timers.remove(&(old, leg));
            }
            if let Some(at) = deadline {
                self.timers.insert((at, leg));
            }
            entry.timer = deadline;
        }
        if !call.is_over() {
            entry.call = Some(call);
        }
    }

    /// Carries out one output of the call of `leg`; the reply, when it is at hand.
    fn carry_out(
        &mut self,
        leg: LegId,
        output: Output,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) -> Option<Reply> {
        match output {
            Output::Sip(action) => self.sip_action(leg, action, endpoint, now),
            Output::Media(action) => self.media_action(leg, action),
            Output::Room(action) => call_effects::room_action(&self.shared, leg, action),
            Output::Ask(question) => {
                return self.answer_question(leg, question, endpoint, registrar, now);
            }
            Output::Finished(reason) => self.finished(leg, &reason, endpoint, now),
            Output::Note(what) => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.features.push(what);
                }
            }
        }
        None
    }

    fn sip_action(
        &mut self,
        leg: LegId,
        action: SipAction,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) {
        match action {
            SipAction::Answer => {
                if let Some(l) = self.legs.get(&leg) {
                    endpoint.answer(leg, l.media.answer_sdp.clone().into_bytes(), now);
                    let remote = l.media.remote();
                    self.shared
                        .media
                        .send(leg, MediaCommand::SetRemote(leg, remote));
                }
            }
            SipAction::Reject(code) => {
                endpoint.reject(leg, code, None, "rejected by dialplan", now)
            }
            SipAction::Refuse { status, reason } => endpoint.reject(leg, status, None, reason, now),
            SipAction::Hangup => endpoint.hangup(leg, "hung up by dialplan", now),
            SipAction::Ring => endpoint.ring(leg, now),
            SipAction::EarlyMedia => {
                if let Some(l) = self.legs.get(&leg) {
                    endpoint.early_media(leg, l.media.answer_sdp.clone().into_bytes(), now);
                    let remote = l.media.remote();
                    self.shared
                        .media
                        .send(leg, MediaCommand::SetRemote(leg, remote));
                }
            }
            SipAction::Cancel { leg: child, reason } => endpoint.hangup(child, reason, now),
            SipAction::Connect(child) => self.connect(leg, child, endpoint, now),
        }
    }

    fn media_action(&self, leg: LegId, action: MediaAction) {
        let media = &self.shared.media;
        let command = match action {
            MediaAction::Silence => MediaCommand::SetMode(leg, MediaMode::Silence),
            MediaAction::Echo => MediaCommand::SetMode(leg, MediaMode::Echo),
            MediaAction::JoinRoom { room, muted } => {
                MediaCommand::JoinRoom(leg, RoomJoin { room, muted })
            }
            MediaAction::LeaveRoom => MediaCommand::LeaveRoom(leg),
            MediaAction::SetMuted(muted) => MediaCommand::SetMuted(leg, muted),
            MediaAction::SendDtmf { to, digit } => {
                media.send(to, MediaCommand::SendDtmf(to, digit));
                return;
            }
            MediaAction::StopRecording { room } => MediaCommand::SetRecording(room, None),
            MediaAction::StopCapture => MediaCommand::Capture(leg, None),
        };
        media.send(leg, command);
    }

    fn answer_question(
        &mut self,
        leg: LegId,
        question: Question,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) -> Option<Reply> {
        match &question {
            Question::Play(sound) | Question::Overlay(sound) => {
                let l = self.legs.get(&leg)?;
                let player = call_effects::prompt(&self.shared, &l.language, l.codec_rate, sound);
                let started = player.is_some();
                if let Some(player) = player {
                    let command = match question {
                        Question::Play(_) => MediaCommand::SetMode(leg, MediaMode::Play(player)),
                        _ => MediaCommand::Overlay(leg, player),
                    };
                    self.shared.media.send(leg, command);
                }
                Some(Reply::Started(started))
            }
            Question::Place {
                target,
                fax,
                caller_id,
            } => Some(self.dial(
                leg,
                target,
                Diversion::None,
                *fax,
                caller_id,
                endpoint,
                registrar,
                now,
            )),
            Question::Forward { target, caller_id } => Some(self.dial(
                leg,
                target,
                Diversion::Dialled,
                false,
                caller_id,
                endpoint,
                registrar,
                now,
            )),
            Question::PlaceFor {
                target,
                caller_id,
                user,
                network,
            } => Some(self.dial(
                leg,
                target,
                Diversion::ByUser {
                    user,
                    network: network.as_ref(),
                },
                false,
                caller_id,
                endpoint,
                registrar,
                now,
            )),
            Question::UserSettings(extension) => {
                let tenant = self.legs.get(&leg)?.tenant.as_str();
                Some(Reply::Settings(registrar.call_settings(tenant, extension)))
            }
            Question::RouteFor { number, user } => {
                let tenant = self.legs.get(&leg)?.tenant.clone();
                let facts = dialplan::CallFacts {
                    to: number.clone(),
                    from: Some(user.clone()),
                    trunk: None,
                    source_ip: self.legs.get(&leg).map(|l| l.source),
                    at: jiff::Timestamp::now(),
                };
                let route = self
                    .shared
                    .plan_of(&tenant)
                    .current()
                    .route(&facts)
                    .filter(|route| {
                        crate::tenants::is_default(&tenant)
                            || crate::tenants::refusal(&route.actions).is_none()
                    });
                Some(Reply::Route(route.map(Box::new)))
            }
            Question::SetForward { .. } | Question::SetDnd(_) => {
                let Some(user) = self.legs.get(&leg).and_then(|l| l.profile.user.clone()) else {
                    return Some(Reply::Switched(Err(SettingRefusal::NotAUser)));
                };
                call_effects::spawn_setting_change(
                    &self.shared,
                    leg,
                    user,
                    &question,
                    registrar.directory(),
                    &self.replies,
                );
                None
            }
            Question::Pickup(target) => Some(self.pickup(leg, target, endpoint, registrar, now)),
            Question::VoicemailRecord { mailbox } => {
                let l = self.legs.get(&leg)?;
                let spec = crate::voicemail::MessageSpec {
                    mailbox: mailbox.clone(),
                    caller: l.caller.clone(),
                    leg,
                    events: self.call_events.clone(),
                };
                let started = crate::voicemail::start_message(&self.shared, spec).map(|sink| {
                    self.shared
                        .media
                        .send(leg, MediaCommand::Capture(leg, Some(sink)));
                });
                Some(Reply::Done(started))
            }
            Question::VoicemailOpen { digits } => {
                let mailbox = self.legs.get(&leg)?.profile.user.clone();
                crate::voicemail::spawn_open(
                    &self.shared,
                    leg,
                    mailbox,
                    digits.clone(),
                    &self.replies,
                );
                None
            }
            Question::VoicemailHeard(id) | Question::VoicemailDelete(id) => {
                let delete = matches!(question, Question::VoicemailDelete(_));
                crate::voicemail::spawn_change(&self.shared, leg, *id, delete, &self.replies);
                None
            }
            Question::PlayFile(path) => {
                let l = self.legs.get(&leg)?;
                crate::voicemail::spawn_play_file(
                    &self.shared,
                    leg,
                    path.clone(),
                    l.codec_rate,
                    &self.replies,
                );
                None
            }
            _ => {
                if let Some(reply) =
                    self.answer_group_question(leg, &question, endpoint, registrar, now)
                {
                    return reply;
                }
                let caller = self.legs.get(&leg).map_or("", |l| l.caller.as_str());
                if let Some(reply) = call_effects::room_question(
                    &self.shared,
                    leg,
                    caller,
                    &question,
                    &self.call_events,
                ) {
                    return Some(reply);
                }
                if !call_effects::spawn_slow_question(&self.shared, leg, &question, &self.replies) {
                    tracing::error!(?question, "question nobody answers");
                }
                None
            }
        }
    }

    /// The call is over: hang up what is still up, forget the leg once the endpoint has
    /// reported it over too.
    fn finished(&mut self, leg: LegId, reason: &str, endpoint: &mut SipEndpoint, now: Instant) {
        // A call's placed legs end with it.
        for child in self.placed_legs_of(leg) {
            endpoint.hangup(child, reason, now);
        }
        // A leg still up is hung up with the call's reason; its `Ended` comes next and
        // forgets it once the call record is on its way.
        endpoint.hangup(leg, reason, now);
        if self.legs.get(&leg).is_some_and(|l| l.headless) {
            self.end_headless(leg, reason, endpoint, now);
            return;
        }
        match self.legs.get_mut(&leg) {
            Some(l) if !l.ended => l.finished = true,
            _ => {
                self.remove_leg(leg);
                endpoint.forget(leg, reason, now);
            }
        }
    }

    /// Ends a call whose caller's leg left after transferring it: its placed legs are hung
    /// up, and its record (covering the whole call) is written with `reason`.
    fn end_headless(&mut self, leg: LegId, reason: &str, endpoint: &mut SipEndpoint, now: Instant) {
        for child in self.placed_legs_of(leg) {
            endpoint.hangup(child, reason, now);
        }
        self.transfers.remove(&leg);
        self.on_ended(leg, true, 200, reason, now);
        // The call is dropped with the leg: nothing of it is left to carry out.
        self.remove_leg(leg);
        endpoint.forget(leg, reason, now);
    }

    /// The legs placed for the caller's leg `parent` that are not over yet.
    fn placed_legs_of(&self, parent: LegId) -> Vec<LegId> {
        self.outbound
            .iter()
            .filter(|(_, o)| o.parent == parent)
            .map(|(child, _)| *child)
            .collect()
    }

    fn remove_leg(&mut self, leg: LegId) {
        if let Some(l) = self.legs.remove(&leg)
            && let Some(at) = l.timer
        {
            self.timers.remove(&(at, leg));
        }
    }

    /// Takes one event from the endpoint.
    pub fn on_leg_event(
        &mut self,
        event: LegEvent,
        endpoint: &mut SipEndpoint,
        registrar: &mut RegistrarService,
        now: Instant,
    ) {
        match event {
            LegEvent::Incoming(incoming) => self.on_incoming(*incoming, endpoint, registrar, now),
            LegEvent::Offer { leg, body } => self.on_offer(leg, body, endpoint, now),
            LegEvent::OfferAnswered { leg, status, body } => {
                self.on_offer_answered(leg, status, &body, endpoint, now)
            }
            LegEvent::Progress { leg } => {
                if let Some(out) = self.outbound.get(&leg)
                    && let Some(extension) = out.placed.extension.as_deref()
                    && self
                        .legs
                        .get(&out.parent)
                        .is_none_or(|l| crate::tenants::is_default(&l.tenant))
                {
                    let caller = self.legs.get(&out.parent);
                    let span = caller.map_or_else(tracing::Span::none, |l| l.span.clone());
                    let _entered = span.enter();
                    let peer = caller.map_or("", |l| l.caller.as_str());
                    self.lines
                        .ringing(extension, leg, out.parent, &out.placed.call_id, peer);
                }
                if let Some(parent) = self.outbound.get(&leg).map(|o| o.parent) {
                    let input = Input::Callee(CalleeEvent::Ringing(leg));
                    self.feed(parent, input, endpoint, registrar, now);
                }
            }
            LegEvent::Answered { leg, body } => {
                self.on_outbound_answered(leg, &body, endpoint, registrar, now)
            }
            LegEvent::Dtmf { leg, digit } => {
                self.feed(leg, Input::Digit(digit), endpoint, registrar, now)
            }
            LegEvent::Refer { leg, refer_to } => {
                self.on_refer(leg, refer_to, endpoint, registrar, now)
            }
            LegEvent::Ended {
                leg,
                answered,
                final_status,
                reason,
            } => {
                if self.outbound.contains_key(&leg) {
                    self.on_outbound_ended(leg, final_status, &reason, endpoint, registrar, now);
                    endpoint.forget(leg, &reason, now);
                    return;
                }
                if self.caller_left_transferred(leg, endpoint, now) {
                    return;
                }
                // A transfer of the call ends with it (its legs are hung up next).
                self.transfers.remove(&leg);
                // Placed legs end first, so the call record sees the connected one hung up.
                self.end_placed_legs(leg, endpoint, now);
                self.lines.ended(leg);
                self.on_ended(leg, answered, final_status, &reason, now);
                self.feed(leg, Input::Hangup, endpoint, registrar, now);
                // A call taken by pickup: the other caller's call hears its party hung up.
                if let Some(partner) = self.picked_up.remove(&leg) {
                    self.picked_up.remove(&partner);
                    let input = Input::Callee(CalleeEvent::Ended { leg, status: 200 });
                    self.feed(partner, input, endpoint, registrar, now);
                }
                // Forgotten here unless the call still runs (it may be waiting for the store,
                // and then forgets the leg when it finishes).
                if self.legs.get(&leg).is_none_or(|l| l.finished) {
                    self.remove_leg(leg);
                    endpoint.forget(leg, &reason, now);
                }
            }
        }
    }

    /// Takes one report of a media session.
    pub fn on_command(&mut self, command: CoreCommand, endpoint: &mut SipEndpoint, now: Instant) {
        match command {
            CoreCommand::MediaTimeout(leg) => endpoint.hangup(leg, MEDIA_TIMEOUT, now),
        }
    }

    fn on_incoming(
        &mut self,
        incoming: Incoming,
        endpoint: &mut SipEndpoint,
        registrar: &mut RegistrarService,
        now: Instant,
    ) {
        let Incoming {
            leg,
            request,
            from,
            local_ip,
        } = incoming;
        let call_id = msg::call_id(&request).unwrap_or_default();
        let span = tracing::info_span!("call", call_id = %call_id);
        let _guard = span.enter();
        // As keyed: a phone escapes `#` (`*31%230711…`); a broken escape stays as it came.
        let mut callee = request
            .uri
            .auth
            .as_ref()
            .map(|a| msg::percent_decode(&a.user).unwrap_or_else(|| a.user.clone()))
            .unwrap_or_default();
        // Who the From header says is calling, for the records of calls refused before we
        // know better.
        let claimed_caller = msg::header_value(&request, "From")
            .as_deref()
            .and_then(msg::address_uri)
            .and_then(|u| msg::parse_uri(&u))
            .and_then(|u| u.auth.map(|a| a.user))
            .unwrap_or_else(|| "anonymous".into());
        let trunks = self.shared.trunks.current();
        // A carrier or caller behind a proxy in front is known by the address the proxy names.
        let origin = registrar.origin(&request, from);
        let trunk = trunks.of_source(origin.ip);
        // A carrier's call belongs to the town whose trunk brought it (`tenant` in the
        // trunks file), whatever its Request-URI says.
        let tenant = match trunk {
            Some(trunk) => trunk
                .tenant
                .clone()
                .unwrap_or_else(|| store::DEFAULT_DOMAIN.to_owned()),
            None => registrar.tenant_of(&request),
        };
        if !registrar.hosts(&tenant) {
            tracing::error!(%tenant, "a trunk names a town this config does not host; its call is refused");
            record_refused(&self.shared, &call_id, &claimed_caller, &callee, 503);
            refuse_leg(endpoint, leg, 503, None, now);
            return;
        }
        let identity = match trunk {
            // The carrier is known by its address: its calls need no password, and the
            // numbers it delivers are normalised by its rules.
            Some(trunk) => {
                let dialled = trunk_dialled_number(trunk, &request, &callee);
                match trunk.numbers.inbound(&dialled) {
                    Ok(number) => callee = number.to_string(),
                    Err(err) => {
                        tracing::info!(trunk = %trunk.name, number = %dialled, "number from the carrier not understood: {err}; 404");
                        record_refused(&self.shared, &call_id, &claimed_caller, &dialled, 404);
                        refuse_leg(endpoint, leg, 404, None, now);
                        return;
                    }
                }
                Ok(Caller::Trusted)
            }
            None => registrar.identify_caller(&request, &tenant, from, now),
        };
        let identity = match identity {
            Ok(identity) => identity,
            Err(CallerRefusal::Challenge {
                stale,
                wrong_answer_to,
            }) => {
                challenge(
                    endpoint,
                    registrar,
                    leg,
                    &tenant,
                    stale,
                    wrong_answer_to.as_deref(),
                    now,
                );
                return;
            }
            Err(CallerRefusal::ForeignNetwork) => {
                record_refused(&self.shared, &call_id, &claimed_caller, &callee, 403);
                refuse_leg(endpoint, leg, 403, Some("Not From An Allowed Network"), now);
                return;
            }
            Err(CallerRefusal::Banned) => {
                record_refused(&self.shared, &call_id, &claimed_caller, &callee, 403);
                refuse_leg(endpoint, leg, 403, Some("Banned"), now);
                return;
            }
            Err(CallerRefusal::BadCredentials) => {
                record_refused(&self.shared, &call_id, &claimed_caller, &callee, 400);
                refuse_leg(endpoint, leg, 400, Some("Bad Proxy-Authorization"), now);
                return;
            }
        };
        let from_header = msg::header_value(&request, "From");
        let profile = match &identity {
            Caller::User {
                extension,
                call_classes,
                location,
                ..
            } => CallerProfile {
                user: Some(extension.clone()),
                allowed: call_classes.clone(),
                location: location.clone(),
            },
            Caller::Trusted | Caller::Unidentified => CallerProfile::not_a_user(),
        };
        let (caller, caller_name) = match &identity {
            Caller::User {
                extension, name, ..
            } => (
                extension.clone(),
                Some(name.clone()).filter(|n| !n.is_empty()),
            ),
            Caller::Trusted | Caller::Unidentified => (
                from_header
                    .as_deref()
                    .and_then(msg::address_uri)
                    .and_then(|u| msg::parse_uri(&u))
                    .and_then(|u| u.auth.map(|a| a.user))
                    .unwrap_or_else(|| "anonymous".into()),
                from_header.as_deref().and_then(display_name),
            ),
        };
        // The caller's number as the trunk delivers it, in E.164 where it can be read so.
        let caller = match trunk {
            Some(trunk) => trunk
                .numbers
                .inbound(&caller)
                .map(|n| n.to_string())
                .unwrap_or(caller),
            None => caller,
        };
        let plan = self.shared.plan_of(&tenant).current();
        let facts = dialplan::CallFacts {
            to: callee.clone(),
            from: Some(caller.clone()),
            trunk: trunk.map(|t| t.name.clone()),
            source_ip: Some(origin.ip),
            at: jiff::Timestamp::now(),
        };
        // Emergency calls from our own phones go out before any rule and whatever the
        // caller may otherwise call (the dialplan check refuses rules for them), on the
        // emergency trunk of the caller's own town, which presents that town's location.
        let emergency = match trunk {
            None if identity.is_identified() => trunks.emergency_route(&callee, &tenant),
            _ => None,
        };
        let route = match emergency.or_else(|| plan.route(&facts)) {
            Some(route) if route.public || identity.is_identified() => route,
            Some(route) => {
                tracing::info!(to = %callee, source = %origin.ip, rule = %route.rule_name, "rule not public and caller not identified; 407");
                challenge(endpoint, registrar, leg, &tenant, false, None, now);
                return;
            }
            None if identity.is_identified() => {
                tracing::info!(to = %callee, "no dialplan rule matches; 404");
                record_refused(&self.shared, &call_id, &caller, &callee, 404);
                refuse_leg(endpoint, leg, 404, None, now);
                return;
            }
            None => {
                tracing::info!(to = %callee, source = %origin.ip, "no dialplan rule matches and caller not identified; 407");
                challenge(endpoint, registrar, leg, &tenant, false, None, now);
                return;
            }
        };
        if !crate::tenants::is_default(&tenant)
            && let Some(what) = crate::tenants::refusal(&route.actions)
        {
            tracing::info!(to = %callee, %tenant, rule = %route.rule_name, "the rule uses what is not per tenant yet ({what}); 501");
            record_refused(&self.shared, &call_id, &caller, &callee, 501);
            refuse_leg(endpoint, leg, 501, None, now);
            return;
        }
        tracing::info!(to = %callee, from = %caller, %tenant, caller = ?identity, rule = %route.rule_name, "routing call");
        // A fax call is answered on G.711 only, so that the callee can be offered the very
        // same codec and the call passed through unchanged.
        let fax_line = matches!(&identity, Caller::User { fax: true, .. });
        let fax_call =
            fax_line || fax::route_is_fax(&route.actions, |ext| registrar.is_fax(&tenant, ext));
        let shared = &self.shared;
        let mut refuse = |code: u16, phrase: Option<&str>| {
            record_refused(shared, &call_id, &caller, &callee, code);
            refuse_leg(endpoint, leg, code, phrase, now)
        };

        let content_type = msg::header_value(&request, "Content-Type").unwrap_or_default();
        if request.body.is_empty()
            || !content_type
                .to_ascii_lowercase()
                .starts_with("application/sdp")
        {
            // Late offer (offer in our 200, answer in the ACK) is not supported yet.
            refuse(488, Some("SDP Offer Required"));
            return;
        }
        let offer = match parse_offer(&request.body) {
            Ok(offer) => offer,
            Err(err) => {
                tracing::info!("unusable SDP offer: {err}");
                refuse(400, Some("Bad SDP"));
                return;
            }
        };
        let local_ip = self.shared.config.media_ip.unwrap_or(local_ip);
        let (rtp, rtcp) = match self.ports.bind_pair(local_ip) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::error!("no RTP ports: {err}");
                refuse(503, Some("No Media Ports"));
                return;
            }
        };
        let port = rtp.local_addr().map(|a| a.port()).unwrap_or(0);
        let session_id: u64 = rand::random::<u32>() as u64;
        let srtp_policy = match (&identity, trunk) {
            (Caller::User { srtp, .. }, _) => *srtp,
            (_, Some(trunk)) => trunk.srtp.unwrap_or(self.shared.config.srtp),
            _ => self.shared.config.srtp,
        };
        // A call from a carrier is answered only with the trunk's codecs (in the offer's
        // order, RFC 3264 §6): what the admin booked with the carrier.
        let codecs = match trunk {
            Some(trunk) => trunk
                .codecs
                .iter()
                .copied()
                .map(crate::trunk_service::media_codec)
                .collect(),
            None => OUR_CODECS.to_vec(),
        };
        let local = LocalMedia {
            ip: local_ip,
            port,
            // A fax call takes G.711 only, and a trunk's codecs are all it answers with.
            codecs: if fax_call {
                FAX_CODECS.to_vec()
            } else {
                codecs
            },
            session_id,
            session_version: 1,
            srtp: sdp::LocalSrtp::new(srtp_policy),
        };
        let (answer_sdp, negotiated) = match sdp::answer(&offer, &local) {
            Ok(x) => x,
            Err(err @ (SdpError::EncryptionRequired | SdpError::EncryptionRefused)) => {
                tracing::info!(policy = %srtp_policy, "offer refused: {err}");
                refuse(488, None);
                return;
            }
            Err(err) if fax_call => {
                tracing::info!(
                    fax = true,
                    "fax call, but the caller offers no G.711: {err}; 488"
                );
                refuse(488, None);
                return;
            }
            Err(err) => {
                tracing::info!("no common codec: {err}");
                refuse(488, None);
                return;
            }
        };
        let (media_tx, media_rx) = mpsc::channel(crate::media_worker::MEDIA_EVENTS_QUEUE);
        let quality = Arc::new(QualityCell::new());
        let timers = self.shared.config.calls;
        let codec = codec_kind(negotiated.codec);
        let spec = SessionSpec {
            id: leg,
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
            codec,
            payload_type: negotiated.payload_type,
            telephone_event_pt: negotiated.telephone_event_pt,
            ptime_ms: negotiated.ptime_ms,
            audio_level_ext: negotiated.audio_level_ext,
            dtx: negotiated.peer_prefers_dtx(),
            events: media_tx,
            srtp: negotiated.srtp.clone(),
        };
        self.shared
            .media
            .send(leg, MediaCommand::Start(Box::new(spec)));
        // Ring while the call works out what to do, so the caller sees progress.
        endpoint.ring(leg, now);
        let started_wall_ms = jiff::Timestamp::now().as_millisecond();
        // Noted now, forgotten with its record: a node that dies leaves no call unrecorded.
        // The store thread runs jobs in order, so the note is in before the record.
        let in_progress = store::CallInProgress {
            call_id: call_id.clone(),
            node: self.shared.config.node_name(),
            caller: caller.clone(),
            callee: callee.clone(),
            started_at_ms: started_wall_ms,
        };
        self.shared.store.submit("call in progress", move |store| {
            if let Err(err) = store.call_started(&in_progress) {
                tracing::error!("call in progress not noted: {err}");
            }
        });
        self.legs.insert(
            leg,
            CallLeg {
                call_id: call_id.clone(),
                caller: caller.clone(),
                caller_name,
                profile,
                tenant: tenant.clone(),
                callee: callee.clone(),
                source: origin.ip,
                started_wall_ms,
                media: MediaSession {
                    local_ip,
                    port,
                    session_id,
                    sdp_version: 1,
                    answer_sdp,
                    remote_rtp: negotiated.remote_rtp,
                    remote_rtcp: negotiated.remote_rtcp,
                    direction: negotiated.direction,
                    codec: negotiated.codec,
                    srtp_local: local.srtp,
                    srtp: negotiated.srtp,
                },
                quality,
                call: None,
                span: tracing::info_span!(parent: None, "call", call_id = %call_id, from = %caller, to = %callee, rule = %route.rule_name, fax = fax_call, group = tracing::field::Empty, group_member = tracing::field::Empty),
                timer: None,
                language: plan.language().to_string(),
                codec_rate: codec.sample_rate(),
                ended: false,
                finished: false,
                contacts_rung: 0,
                connected: None,
                fax_line,
                switch: MediaSwitch::default(),
                pending_switch: None,
                t38: None,
                ring_group: None,
                features: Vec::new(),
                headless: false,
                joined: None,
            },
        );
        // The media session's reports reach the call through call control's queue.
        let call_events = self.call_events.clone();
        tokio::spawn(async move {
            let mut media_rx = media_rx;
            while let Some(event) = media_rx.recv().await {
                if call_events
                    .send((leg, CallEvent::Media(event)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let setup = CallSetup {
            route,
            require_precreated_rooms: self.shared.config.conference.require_precreated_rooms,
            pool_proxy: self.shared.config.pool.proxy,
            tenant: tenant.clone(),
            voicemail_max: std::time::Duration::from_secs(u64::from(
                self.shared.config.voicemail.max_seconds.max(1),
            )),
        };
        if let Some(l) = self.legs.get_mut(&leg) {
            let _entered = l.span.enter();
            // A user's phone that calls is busy for its colleagues' lamps (the default
            // domain's: a tenant's phones have no lamps yet).
            if let Some(extension) = l
                .profile
                .user
                .as_deref()
                .filter(|_| crate::tenants::is_default(&l.tenant))
            {
                self.lines.calling(extension, leg, &call_id, &callee);
            }
            l.call = Some(Call::new(setup, now));
        }
        self.run_call(leg, endpoint, registrar, now, |_| {});
    }

    /// Sends an INVITE to every reachable contact of `target` for the caller of `leg`: the
    /// legs placed, and how many contacts no INVITE could be sent to. Which of them is
    /// connected and which cancelled is the caller's call's to decide (`dial` action). A
    /// `forwarded` call out names the number the caller dialled as diverting it. A fax call
    /// (`fax_rule`, the caller's or the called user's line) offers the caller's G.711 only.
    /// The called party sees `caller_id` where the rule set it, else the caller.
    #[allow(clippy::too_many_arguments)] // the question's parts, and the services to ask
    fn dial(
        &mut self,
        leg: LegId,
        target: &dialplan::DialTarget,
        diversion: Diversion<'_>,
        fax_rule: bool,
        caller_id: &CallerId,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) -> Reply {
        let Some(caller) = self.legs.get(&leg) else {
            return Reply::Placed {
                legs: Vec::new(),
                unplaced: 0,
                fax: false,
            };
        };
        let tenant = caller.tenant.as_str();
        let fax_callee = matches!(target, dialplan::DialTarget::User(extension) if registrar.is_fax(tenant, extension));
        let fax = fax_rule || caller.fax_line || fax_callee;
        if fax {
            let codec = caller.media.codec;
            if !FAX_CODECS.contains(&codec) {
                tracing::info!(%target, ?codec, "fax call, but the caller does not talk G.711: nothing could pass through unchanged");
                return Reply::NoFaxCodec;
            }
            caller.span.record("fax", true);
            tracing::info!(%target, ?codec, caller_line = caller.fax_line, callee_line = fax_callee, "fax call: the caller's G.711 is passed through unchanged");
        }
        let caller_number = caller.caller.clone();
        let from_user = caller_id
            .number
            .clone()
            .unwrap_or_else(|| caller_number.clone());
        let from_name = caller_id
            .name
            .clone()
            .or_else(|| caller.caller_name.clone());
        // A user's forwarding or follow-me calls out with that user's permissions and names
        // the user as diverting; a `forward` rule names the number the caller dialled.
        let (profile, diverted_from, network) = match diversion {
            Diversion::None => (caller.profile.clone(), None, None),
            Diversion::Dialled => (caller.profile.clone(), Some(caller.callee.clone()), None),
            Diversion::ByUser { user, network } => (
                registrar
                    .caller_profile(tenant, user)
                    .unwrap_or_else(CallerProfile::not_a_user),
                Some(user.to_owned()),
                network,
            ),
        };
        let forwarded = diverted_from.is_some();
        let source = caller.source;
        let mut trunk_used: Option<String> = None;
        // A trunk's own codec preference; other calls offer ours, the caller's first.
        let mut trunk_codecs: Option<Vec<Codec>> = None;
        // The user rung: the extension of the caller's own domain, or, for a rule's SIP
        // address in a domain this system hosts, that domain's user (an inter-town call: the
        // rule is what lets it cross).
        let callee: Option<(&str, &str)> = match target {
            dialplan::DialTarget::User(extension) => Some((tenant, extension.as_str())),
            dialplan::DialTarget::Uri(uri) => registrar.hosted_user(uri),
            _ => None,
        };
        let calls: Vec<OutboundCall> = match (target, callee) {
            (_, Some((domain, extension))) => registrar
                .lookup(domain, extension, now)
                .into_iter()
                .filter(|b| network.is_none_or(|n| n.contains(b.details.source.addr.ip())))
                .filter_map(|b| {
                    let (next_hop, route) = crate::registrar::route_to(b)?;
                    Some(OutboundCall {
                        request_uri: b.details.contact.clone(),
                        to: format!("sip:{extension}@{}", b.aor.domain()),
                        from_user: from_user.clone(),
                        from_name: from_name.clone(),
                        next_hop,
                        route,
                        from_host: None,
                        headers: Vec::new(),
                        credentials: None,
                        response_timeout: None,
                    })
                })
                .collect(),
            (dialplan::DialTarget::Uri(uri), None) => {
                match crate::sip_endpoint::uri_next_hop(uri) {
                    Some(next_hop) => vec![OutboundCall {
                        request_uri: uri.clone(),
                        to: uri.clone(),
                        from_user,
                        from_name,
                        next_hop,
                        route: Vec::new(),
                        from_host: None,
                        headers: Vec::new(),
                        credentials: None,
                        response_timeout: None,
                    }],
                    None => {
                        tracing::info!(leg = %leg, %uri, "dial: cannot reach this URI");
                        Vec::new()
                    }
                }
            }
            (
                dialplan::DialTarget::Trunk {
                    trunk,
                    number,
                    privacy,
                },
                None,
            ) => {
                let trunks = self.shared.trunks.current();
                // A town calls out on its own trunks only.
                let owner = trunks.tenant_of(trunk);
                if owner.unwrap_or(store::DEFAULT_DOMAIN) != tenant {
                    tracing::warn!(leg = %leg, %trunk, %tenant, owner = ?owner, "dial: the trunk is another town's (or unknown); not called");
                    return Reply::Barred;
                }
                if let (Some(rules), Some(class)) = (trunks.cost_rules(), trunks.class_of(number))
                    && let Err(over) =
                        self.shared
                            .costs
                            .guard()
                            .check(rules, profile.user.as_deref(), class, now)
                {
                    let user = profile.user.as_deref().unwrap_or("(not a user)");
                    tracing::warn!(leg = %leg, %trunk, %number, %class, %user, spent = %over.spent, limit = %over.limit, "dial: cost guard: {over}; not called");
                    CallCosts::refused(over.budget);
                    return Reply::OverBudget(over.budget);
                }
                let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
                let outside = || self.outbound.values().filter(|o| o.trunk.is_some());
                let on_trunk = |name: &str| {
                    count(
                        outside()
                            .filter(|o| o.trunk.as_deref() == Some(name))
                            .count(),
                    )
                };
                let of_user = profile.user.as_deref().map_or(0, |user| {
                    count(
                        outside()
                            .filter(|o| {
                                self.legs
                                    .get(&o.parent)
                                    .is_some_and(|p| p.profile.user.as_deref() == Some(user))
                            })
                            .count(),
                    )
                });
                let active = crate::trunk_service::ActiveCalls {
                    on_trunk: &on_trunk,
                    of_user,
                    total: count(outside().count()),
                };
                use crate::trunk_service::Refused;
                let request = crate::trunk_service::CallOut {
                    number,
                    from_user: &caller_number,
                    from_name,
                    presented: caller_id.number.as_deref(),
                    caller: &profile,
                    diverted_from: diverted_from.as_deref(),
                    source: Some(source),
                    privacy: *privacy,
                };
                match self
                    .shared
                    .trunks
                    .current()
                    .outbound_call(trunk, request, &active)
                {
                    Ok(Some(out)) => {
                        trunk_used = Some(out.trunk);
                        trunk_codecs = Some(out.codecs);
                        vec![out.call]
                    }
                    Ok(None) => Vec::new(),
                    Err(Refused::Barred) => return Reply::Barred,
                    Err(Refused::UserLimit) => return Reply::UserLimit,
                    Err(Refused::LinesBusy) => return Reply::LinesBusy,
                }
            }
            // A group rings through its members (the call's `dial` asks for each of them); a
            // user is always a callee, above.
            (dialplan::DialTarget::Group(_) | dialplan::DialTarget::User(_), None) => {
                tracing::warn!(leg = %leg, %target, "dial: a ring group is not placed as a whole");
                Vec::new()
            }
        };
        // The called phone's or trunk's own SRTP setting, else the server's.
        let default_srtp = self.shared.config.srtp;
        let srtp_policy = match (callee, &trunk_used) {
            (Some((domain, extension)), _) => registrar.srtp_policy(domain, extension),
            (None, Some(trunk)) => self
                .shared
                .trunks
                .current()
                .srtp_of(trunk)
                .unwrap_or(default_srtp),
            (None, None) => default_srtp,
        };
        // Lamps, ring groups and transfers know the default domain's users only: a town's
        // callee is placed as a SIP address.
        let extension = callee
            .filter(|(domain, _)| crate::tenants::is_default(domain))
            .map(|(_, extension)| extension);
        let mut placed = Vec::new();
        let mut unplaced = 0;
        let call_out = match target {
            dialplan::DialTarget::Trunk {
                number, privacy, ..
            } => Some(CallOutRequest {
                number: number.clone(),
                privacy: *privacy,
                forwarded,
                diverted_by: match diversion {
                    Diversion::ByUser { user, .. } => Some(user.to_owned()),
                    _ => None,
                },
                fax_rule,
                class: self.shared.trunks.current().class_of(number),
                caller_id: caller_id.clone(),
            }),
            _ => None,
        };
        for call in &calls {
            match self.place(
                leg,
                call,
                extension,
                srtp_policy,
                trunk_codecs.as_deref(),
                fax,
                endpoint,
                now,
            ) {
                Some(child) => {
                    if let Some(out) = self.outbound.get_mut(&child) {
                        out.trunk = trunk_used.clone();
                        out.call_out = call_out.clone();
                    }
                    placed.push(child);
                }
                None => unplaced += 1,
            }
        }
        let rung = u32::try_from(placed.len()).unwrap_or(u32::MAX);
        if let Some(l) = self.legs.get_mut(&leg) {
            l.contacts_rung = l.contacts_rung.saturating_add(rung);
        }
        Reply::Placed {
            legs: placed,
            unplaced,
            fax,
        }
    }

    /// Sends one INVITE for `parent`, with an offer of all our codecs on fresh ports, the
    /// caller's codec first: a phone that takes the first codec it knows then talks what the
    /// caller talks, and the call is relayed rather than transcoded. A trunk's `codecs`
    /// (`only`) limit the offer to them, in the admin's order after the caller's. A `fax` call
    /// offers the caller's codec alone: relayed, or refused by the far end (488), never
    /// transcoded.
    #[allow(clippy::too_many_arguments)] // one INVITE's parts, and the endpoint to send it
    fn place(
        &mut self,
        parent: LegId,
        call: &OutboundCall,
        extension: Option<&str>,
        srtp_policy: sdp::SrtpPolicy,
        only: Option<&[Codec]>,
        fax: bool,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) -> Option<LegId> {
        let local_ip = self.shared.config.media_ip.unwrap_or_else(|| {
            crate::sip_endpoint::local_ip_towards(
                call.next_hop.addr.ip(),
                self.shared.config.sip_listen.ip(),
            )
        });
        let (rtp, rtcp) = match self.ports.bind_pair(local_ip) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::error!("no RTP ports: {err}");
                return None;
            }
        };
        let port = rtp.local_addr().map(|a| a.port()).unwrap_or(0);
        let caller_codec = self.legs.get(&parent).map(|caller| caller.media.codec);
        let codecs = match (only, caller_codec) {
            (_, Some(caller)) if fax => vec![caller],
            (allowed, caller) => {
                // The caller's codec first when it may be used: a far end that takes the
                // first codec it knows then talks it, and the call is relayed, not transcoded.
                let mut codecs = allowed.unwrap_or(OUR_CODECS).to_vec();
                if let Some(caller) = caller.filter(|c| codecs.contains(c)) {
                    codecs.retain(|&c| c != caller);
                    codecs.insert(0, caller);
                }
                codecs
            }
        };
        let session_id = rand::random::<u32>() as u64;
        let local = LocalMedia {
            ip: local_ip,
            port,
            codecs: codecs.clone(),
            session_id,
            session_version: 1,
            srtp: sdp::LocalSrtp::new(srtp_policy),
        };
        let offer = sdp::offer(&local, Direction::SendRecv);
        let child = endpoint.invite(call, offer.into_bytes(), now)?;
        let placed = PlacedTo {
            call_id: endpoint.call_id(child).unwrap_or_default(),
            target: call.request_uri.clone(),
            extension: extension.map(str::to_string),
        };
        self.outbound.insert(
            child,
            OutboundLeg {
                parent,
                local_ip,
                sockets: Some((rtp, rtcp)),
                media_started: false,
                quality: Arc::new(QualityCell::new()),
                placed,
                port,
                session_id,
                media: None,
                answer: None,
                trunk: None,
                srtp: local.srtp,
                call_out: None,
                offered: codecs,
            },
        );
        Some(child)
    }

    /// A leg we placed answered: with usable media its caller's call decides whether it is
    /// the one connected (see the `dial` action); without, it is hung up.
    fn on_outbound_answered(
        &mut self,
        child: LegId,
        body: &[u8],
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) {
        let Some(out) = self.outbound.get_mut(&child) else {
            return;
        };
        let parent = out.parent;
        match parse_offer(body).and_then(|answer| {
            sdp::accept_answer(&out.offered, &out.srtp, &answer).map_err(|e| e.to_string())
        }) {
            Ok(negotiated) => out.answer = Some(negotiated),
            Err(err) => {
                tracing::info!(leg = %child, "unusable SDP answer: {err}");
                endpoint.hangup(child, "unusable SDP answer", now);
                return;
            }
        }
        if self.transfer_answered(parent, child, endpoint, registrar, now) {
            return;
        }
        let input = Input::Callee(CalleeEvent::Answered(child));
        self.feed(parent, input, endpoint, registrar, now);
    }

    /// The caller's call chose `child`, which answered: its media starts, the caller is
    /// answered, and the two are joined (relayed, or transcoded in a room of two).
    fn connect(&mut self, parent: LegId, child: LegId, endpoint: &mut SipEndpoint, now: Instant) {
        let Some((connected, callee_codec)) = self.start_placed_media(child) else {
            return;
        };
        let media = &self.shared.media;
        let Some(caller) = self.legs.get_mut(&parent) else {
            return;
        };
        caller.connected = Some(connected);
        endpoint.answer(parent, caller.media.answer_sdp.clone().into_bytes(), now);
        let caller_remote = caller.media.remote();
        let key = format!("call-{parent}");
        media.send(parent, MediaCommand::SetRemote(parent, caller_remote));
        for (leg, peer) in [(parent, child), (child, parent)] {
            let connection = Connection {
                key: key.clone(),
                peer,
            };
            media.send(leg, MediaCommand::Connect(leg, connection));
        }
        tracing::info!(leg = %parent, callee = %child, callee_codec = ?callee_codec, "connected");
        self.lines.confirmed(child);
        self.start_pricing(parent, child, now);
    }

    /// Starts the media session of `child`, a placed leg that answered: the callee record
    /// of the call and its codec.
    fn start_placed_media(&mut self, child: LegId) -> Option<(ConnectedCallee, Codec)> {
        let out = self.outbound.get_mut(&child)?;
        let (Some(negotiated), Some((rtp, rtcp))) = (out.answer.take(), out.sockets.take()) else {
            return None;
        };
        // Nobody listens to a placed leg's reports: its caller's session plays the prompts.
        let (media_tx, _) = mpsc::channel(1);
        let timers = self.shared.config.calls;
        let spec = SessionSpec {
            id: child,
            rtp,
            rtcp,
            remote: negotiated.remote_rtp,
            remote_rtcp: negotiated.remote_rtcp,
            rtcp_mux: negotiated.rtcp_mux,
            cname: format!("amtsleitung@{}", out.local_ip),
            media_timeout: timers.media_timeout(false),
            media_timeout_on_hold: timers.media_timeout(true),
            core: self.commands.clone(),
            quality: out.quality.clone(),
            send: false,
            codec: codec_kind(negotiated.codec),
            payload_type: negotiated.payload_type,
            telephone_event_pt: negotiated.telephone_event_pt,
            ptime_ms: negotiated.ptime_ms,
            audio_level_ext: negotiated.audio_level_ext,
            dtx: negotiated.peer_prefers_dtx(),
            events: media_tx,
            srtp: negotiated.srtp.clone(),
        };
        out.media_started = true;
        out.media = Some(MediaSession {
            local_ip: out.local_ip,
            port: out.port,
            session_id: out.session_id,
            sdp_version: 1,
            answer_sdp: String::new(),
            remote_rtp: negotiated.remote_rtp,
            remote_rtcp: negotiated.remote_rtcp,
            direction: negotiated.direction,
            codec: negotiated.codec,
            srtp_local: out.srtp.clone(),
            srtp: negotiated.srtp.clone(),
        });
        let connected = ConnectedCallee {
            leg: child,
            placed: out.placed.clone(),
            answered_wall_ms: jiff::Timestamp::now().as_millisecond(),
            quality: out.quality.clone(),
            ended: None,
        };
        let callee_codec = negotiated.codec;
        let remote = remote_media(
            negotiated.remote_rtp,
            negotiated.remote_rtcp,
            negotiated.direction,
        );
        let media = &self.shared.media;
        media.send(child, MediaCommand::Start(Box::new(spec)));
        media.send(child, MediaCommand::SetRemote(child, remote));
        Some((connected, callee_codec))
    }

    /// The `pickup` action of `picker`'s call: the oldest call ringing at the extension named
    /// (or at a member of the picker's pickup groups) is taken. Both callers are answered
    /// and their media connected; the ringing call's `dial` is told, and cancels the
    /// phones that still ring. Only our users may pick up, and only calls they were not
    /// the caller of.
    fn pickup(
        &mut self,
        picker: LegId,
        target: &dialplan::PickupTarget,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) -> Reply {
        let Some(user) = self.legs.get(&picker).and_then(|l| l.profile.user.clone()) else {
            return Reply::PickedUp(Err(PickupRefusal::NotIdentified));
        };
        let extensions = match target {
            dialplan::PickupTarget::Extension(extension) => vec![extension.clone()],
            dialplan::PickupTarget::Group => self.shared.plan.current().pickup_partners(&user),
        };
        let found = extensions.iter().find_map(|extension| {
            let (caller, _) = self.lines.ringing_at(extension)?;
            // Still ringing for its caller: not answered, its call waiting in `dial`.
            let waiting = self
                .legs
                .get(&caller)
                .is_some_and(|l| !l.ended && l.connected.is_none() && l.call.is_some());
            (caller != picker && waiting).then(|| (extension.clone(), caller))
        });
        let Some((extension, caller)) = found else {
            tracing::info!(?target, tried = ?extensions, "pickup: nothing ringing");
            return Reply::PickedUp(Err(PickupRefusal::NothingRinging));
        };
        let media = &self.shared.media;
        for leg in [caller, picker] {
            if let Some(l) = self.legs.get(&leg) {
                endpoint.answer(leg, l.media.answer_sdp.clone().into_bytes(), now);
                media.send(leg, MediaCommand::SetRemote(leg, l.media.remote()));
            }
        }
        let key = format!("pickup-{caller}");
        for (leg, peer) in [(caller, picker), (picker, caller)] {
            let connection = Connection {
                key: key.clone(),
                peer,
            };
            media.send(leg, MediaCommand::Connect(leg, connection));
        }
        self.picked_up.insert(caller, picker);
        self.picked_up.insert(picker, caller);
        tracing::info!(%extension, picker = %user, caller_leg = %caller, "pickup: call ringing at {extension} taken");
        if let Some(l) = self.legs.get_mut(&caller) {
            l.features
                .push(format!("picked up by {user} (rang at {extension})"));
        }
        if let Some(l) = self.legs.get_mut(&picker) {
            l.features
                .push(format!("picked up the call ringing at {extension}"));
        }
        let input = Input::Callee(CalleeEvent::PickedUp { by: picker });
        self.feed(caller, input, endpoint, registrar, now);
        Reply::PickedUp(Ok(caller))
    }

    /// A call out through a trunk is connected: the cost guard prices it from now on, at
    /// its class's rate.
    fn start_pricing(&self, parent: LegId, child: LegId, now: Instant) {
        let Some(class) = self
            .outbound
            .get(&child)
            .and_then(|o| o.call_out.as_ref())
            .and_then(|c| c.class)
        else {
            return;
        };
        let trunks = self.shared.trunks.current();
        let Some(rules) = trunks.cost_rules() else {
            return;
        };
        let user = self
            .legs
            .get(&parent)
            .and_then(|l| l.profile.user.as_deref());
        self.shared
            .costs
            .guard()
            .answered(rules, child, user, class, now);
    }

    /// A leg we placed is over: stop its media, note it for the call record, and tell its
    /// caller's call.
    fn on_outbound_ended(
        &mut self,
        child: LegId,
        final_status: u16,
        reason: &str,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) {
        let Some(out) = self.outbound.remove(&child) else {
            return;
        };
        self.lines.ended(child);
        self.shared.costs.guard().ended(child, now);
        if out.media_started {
            self.shared.media.send(child, MediaCommand::Stop(child));
            if let Some(user) = &out.placed.extension {
                self.ring_groups.call_ended(user, now);
            }
        }
        let parent = out.parent;
        if let Some(connected) = self
            .legs
            .get_mut(&parent)
            .and_then(|caller| caller.connected.as_mut())
            .filter(|c| c.leg == child)
        {
            connected.end(reason);
        }
        if self.transfer_leg_ended(parent, child, final_status, endpoint, registrar, now) {
            return;
        }
        if self
            .legs
            .get(&parent)
            .and_then(|l| l.joined)
            .is_some_and(|pair| pair.contains(&child))
        {
            // Connected by a transfer of the caller, which has left: one party hung up,
            // so the call (and the other party's leg) ends.
            self.end_headless(
                parent,
                "a party the caller transferred hung up",
                endpoint,
                now,
            );
            return;
        }
        let input = match self.fail_over(&out, final_status, endpoint, registrar, now) {
            Some(new) => Input::Callee(CalleeEvent::Replaced { old: child, new }),
            None => Input::Callee(CalleeEvent::Ended {
                leg: child,
                status: final_status,
            }),
        };
        self.feed(parent, input, endpoint, registrar, now);
    }

    /// A call out the carrier failed (see [`carrier_failed`]) goes out again on the trunk's
    /// `failover`, and on along that chain to the first trunk that can take it: the leg
    /// placed there, or `None` when there is no such trunk (the caller then hears the
    /// carrier's refusal).
    fn fail_over(
        &mut self,
        failed: &OutboundLeg,
        final_status: u16,
        endpoint: &mut SipEndpoint,
        registrar: &RegistrarService,
        now: Instant,
    ) -> Option<LegId> {
        let request = failed.call_out.as_ref()?;
        let trunk = failed.trunk.as_deref()?;
        if failed.media_started || !carrier_failed(final_status) {
            return None;
        }
        let next = self.shared.trunks.current().failover_of(trunk)?;
        tracing::warn!(leg = %failed.parent, %trunk, status = final_status, failover = %next, "dial: the carrier failed the call; trying the failover trunk");
        let target = dialplan::DialTarget::Trunk {
            trunk: next,
            number: request.number.clone(),
            privacy: request.privacy,
        };
        let diversion = match (&request.diverted_by, request.forwarded) {
            (Some(user), _) => Diversion::ByUser {
                user,
                network: None,
            },
            (None, true) => Diversion::Dialled,
            (None, false) => Diversion::None,
        };
        match self.dial(
            failed.parent,
            &target,
            diversion,
            request.fax_rule,
            &request.caller_id,
            endpoint,
            registrar,
            now,
        ) {
            Reply::Placed { legs, .. } => legs.first().copied(),
            _ => None,
        }
    }

    /// The caller is gone: hang up every leg placed for it, ringing or connected.
    fn end_placed_legs(&mut self, leg: LegId, endpoint: &mut SipEndpoint, now: Instant) {
        const REASON: &str = "caller hung up";
        if let Some(connected) = self
            .legs
            .get_mut(&leg)
            .and_then(|caller| caller.connected.as_mut())
            .filter(|c| c.ended.is_none())
        {
            connected.end(REASON);
        }
        for child in self.placed_legs_of(leg) {
            endpoint.hangup(child, REASON, now);
        }
    }

    /// The `tracing` span of the call whose caller's leg is `parent` (none once it is gone).
    fn span_of(&self, parent: LegId) -> tracing::Span {
        self.legs
            .get(&parent)
            .map_or_else(tracing::Span::none, |l| l.span.clone())
    }

    /// The caller's leg of the call `leg` belongs to, and the leg it is connected to now.
    fn call_of(&self, leg: LegId) -> Option<(LegId, Option<LegId>)> {
        let parent = self.outbound.get(&leg).map_or(leg, |o| o.parent);
        if let Some(pair) = self.legs.get(&parent).and_then(|l| l.joined) {
            // The caller transferred the call away: its two placed legs talk to each other.
            let other = match pair {
                [a, b] if a == leg => Some(b),
                [a, b] if b == leg => Some(a),
                _ => None,
            };
            return Some((parent, other));
        }
        if let Some(caller) = self.legs.get(&leg) {
            let other = caller
                .connected
                .as_ref()
                .filter(|c| c.ended.is_none())
                .map(|c| c.leg);
            return Some((leg, other));
        }
        let parent = self.outbound.get(&leg)?.parent;
        let connected = self.legs.get(&parent)?.connected.as_ref();
        let up = connected.is_some_and(|c| c.leg == leg && c.ended.is_none());
        Some((parent, up.then_some(parent)))
    }

    /// A re-INVITE or UPDATE offer from `leg`: answered here, or, when it switches a
    /// connected call to T.38 or back, passed on to the other leg (answered when that leg
    /// answers, in [`Self::on_offer_answered`]).
    fn on_offer(&mut self, leg: LegId, body: Vec<u8>, endpoint: &mut SipEndpoint, now: Instant) {
        let call = self.call_of(leg);
        let offer = parse_offer(&body).ok();
        let (Some((parent, other)), Some(offer)) = (call, offer) else {
            let answer = self.apply_offer(leg, &body);
            endpoint.answer_offer(leg, answer, now);
            return;
        };
        let step = match self.legs.get_mut(&parent) {
            Some(caller) => caller.switch.on_offer(leg, other, Wants::of(&offer)),
            None => OfferStep::AnswerAudio,
        };
        let answer = match step {
            OfferStep::AnswerAudio => {
                let held_before = self.holds(leg);
                let answer = self.apply_offer(leg, &body);
                if answer.is_ok()
                    && let Some(other) = other
                    && self.holds(leg) != held_before
                {
                    self.follow_hold(parent, leg, other);
                }
                answer
            }
            OfferStep::AnswerT38 => self.answer_t38_again(parent, leg, &offer),
            OfferStep::Refuse(status) => {
                tracing::info!(leg = %leg, status, "re-INVITE refused: the call's media cannot take it now");
                Err(status)
            }
            OfferStep::PassOn(passing) => {
                return self.pass_on(parent, passing, offer, body, endpoint, now);
            }
        };
        endpoint.answer_offer(leg, answer, now);
    }

    /// Whether `leg`'s peer holds the call now (its last offer lets us send nothing).
    fn holds(&mut self, leg: LegId) -> bool {
        session_of(&mut self.legs, &mut self.outbound, leg).is_some_and(|m| m.held_by_peer())
    }

    /// `leg` put its connected call with `other` on hold or took it off: the legs part, the
    /// held one hearing music on hold, or are connected again once nobody holds.
    fn follow_hold(&mut self, parent: LegId, leg: LegId, other: LegId) {
        let leg_holds = self.holds(leg);
        let other_holds = self.holds(other);
        let span = self.span_of(parent);
        let _entered = span.enter();
        match crate::call_hold::hold_media(leg_holds, other_holds) {
            HoldMedia::Connected => {
                let key = format!("call-{parent}");
                for (from, to) in [(leg, other), (other, leg)] {
                    let connection = Connection {
                        key: key.clone(),
                        peer: to,
                    };
                    self.shared
                        .media
                        .send(from, MediaCommand::Connect(from, connection));
                }
                tracing::info!(leg = %leg, other = %other, "call resumed: legs connected again");
            }
            HoldMedia::Apart {
                leg_music,
                other_music,
            } => {
                self.set_apart(leg, leg_music);
                self.set_apart(other, other_music);
                tracing::info!(leg = %leg, other = %other, holds = leg_holds, other_holds, "call on hold: music on hold for the held party");
            }
        }
    }

    /// A player of the music on hold at `leg`'s codec rate.
    fn music_on_hold(&mut self, leg: LegId) -> Option<media::wav::PromptPlayer> {
        let codec = session_of(&mut self.legs, &mut self.outbound, leg)?.codec;
        let music = self.shared.sounds.music_on_hold()?;
        match media::wav::PromptPlayer::new(music, codec_kind(codec).sample_rate()) {
            Ok(player) => Some(player),
            Err(err) => {
                tracing::warn!(leg = %leg, "music on hold cannot be played at this codec's rate: {err}");
                None
            }
        }
    }

    /// Sends the other leg our re-INVITE for `passing`'s offer; when it cannot go, the
    /// offering leg is refused at once.
    fn pass_on(
        &mut self,
        parent: LegId,
        passing: Passing,
        offer: sdp::SessionDescription,
        body: Vec<u8>,
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) {
        let prepared = match passing.towards {
            CallMedia::T38 => self.prepare_t38(passing, &offer),
            CallMedia::Audio => self.prepare_audio(passing, &offer),
        };
        let refusal = match prepared {
            Ok((ours, t38)) => {
                if endpoint.reoffer(passing.to, ours.into_bytes(), now) {
                    tracing::info!(from = %passing.from, to = %passing.to, towards = ?passing.towards, "re-INVITE passed on to the other leg");
                    if let Some(caller) = self.legs.get_mut(&parent) {
                        caller.pending_switch = Some(PendingSwitch { offer, body, t38 });
                    }
                    return;
                }
                // The other leg's own offer is open: the machines try again (RFC 3261 §14.2).
                tracing::info!(from = %passing.from, to = %passing.to, "re-INVITE not passed on: the other leg has an offer open; 491");
                491
            }
            Err(status) => status,
        };
        if let Some(caller) = self.legs.get_mut(&parent) {
            caller.switch.on_answer(passing.to, false);
        }
        endpoint.answer_offer(passing.from, Err(refusal), now);
    }

    /// Our T.38 offer to the other leg, carrying the offering leg's stream, on a port of our
    /// own, and the ports bound for both legs' UDPTL; `Err(status)` to refuse the offer.
    #[allow(clippy::type_complexity)] // one use: the offer and what waits for its answer
    fn prepare_t38(
        &mut self,
        passing: Passing,
        offer: &sdp::SessionDescription,
    ) -> Result<(String, Option<(SocketPair, SocketPair, sdp::ImageStream)>), u16> {
        let stream = offer.t38_stream().ok_or(488u16)?;
        // UDPTL has no encryption of its own: a leg that is (or must be) SRTP does not get
        // its fax sent in the clear.
        let encrypted =
            |m: &MediaSession| m.srtp.is_some() || m.srtp_local.policy == sdp::SrtpPolicy::Required;
        let (from_ip, to_ip) = {
            let from =
                session_of(&mut self.legs, &mut self.outbound, passing.from).ok_or(481u16)?;
            let (from_ip, from_encrypted) = (from.local_ip, encrypted(from));
            let to = session_of(&mut self.legs, &mut self.outbound, passing.to).ok_or(481u16)?;
            if from_encrypted || encrypted(to) {
                tracing::info!(leg = %passing.from, "T.38 refused: UDPTL cannot be encrypted, and this call's media is (or must be) SRTP; 488");
                return Err(488);
            }
            (from_ip, to.local_ip)
        };
        let bind = |ip| {
            self.ports.bind_pair(ip).map_err(|err| {
                tracing::error!("no UDPTL ports: {err}");
                503u16
            })
        };
        let from_pair = bind(from_ip)?;
        let to_pair = bind(to_ip)?;
        let to = session_of(&mut self.legs, &mut self.outbound, passing.to).ok_or(481u16)?;
        let local = to.next_image(to.local_ip, port_of(&to_pair.0));
        let ours = sdp::t38_offer(&local, &stream);
        Ok((ours, Some((from_pair, to_pair, stream))))
    }

    /// Our audio offer to the other leg (its codec as before, its RTP port), once the
    /// offering leg's return to audio is known to be one we can answer.
    #[allow(clippy::type_complexity)] // the same shape as `prepare_t38`'s
    fn prepare_audio(
        &mut self,
        passing: Passing,
        offer: &sdp::SessionDescription,
    ) -> Result<(String, Option<(SocketPair, SocketPair, sdp::ImageStream)>), u16> {
        let from = session_of(&mut self.legs, &mut self.outbound, passing.from).ok_or(481u16)?;
        if let Err(err) = sdp::answer(offer, &from.reoffer_answerer()) {
            tracing::info!(leg = %passing.from, "back to audio refused: {err}; 488");
            return Err(488);
        }
        let to = session_of(&mut self.legs, &mut self.outbound, passing.to).ok_or(481u16)?;
        to.sdp_version += 1;
        // A T.38 call never ran SRTP (see `prepare_t38`): no keys, so it stays plain.
        let local = LocalMedia {
            ip: to.local_ip,
            port: to.port,
            codecs: vec![to.codec],
            session_id: to.session_id,
            session_version: to.sdp_version,
            srtp: sdp::LocalSrtp::off(),
        };
        Ok((sdp::offer(&local, Direction::SendRecv), None))
    }

    /// The other leg answered an offer we passed on: its answer (or refusal) goes back to
    /// the leg that offered, with our address.
    fn on_offer_answered(
        &mut self,
        leg: LegId,
        status: u16,
        body: &[u8],
        endpoint: &mut SipEndpoint,
        now: Instant,
    ) {
        let Some((parent, _)) = self.call_of(leg) else {
            return;
        };
        let Some(caller) = self.legs.get_mut(&parent) else {
            return;
        };
        let Some(passing) = caller.switch.passing().filter(|p| p.to == leg) else {
            tracing::debug!(leg = %leg, status, "answer to a re-INVITE nobody waits for");
            return;
        };
        let pending = caller.pending_switch.take();
        let answer = match (pending, (200..300).contains(&status)) {
            (Some(pending), true) => match passing.towards {
                CallMedia::T38 => self.start_t38(parent, passing, pending, body),
                CallMedia::Audio => self.end_t38(parent, passing, pending, body),
            },
            (_, accepted) => {
                if accepted {
                    tracing::warn!(leg = %leg, "2xx to a re-INVITE whose offer was lost");
                }
                Err(fax::refusal_to_pass_back(status))
            }
        };
        let carries = self.legs.get_mut(&parent).map(|caller| {
            caller.switch.on_answer(leg, answer.is_ok());
            caller.switch.media()
        });
        match &answer {
            Ok(_) => {
                tracing::info!(from = %passing.from, to = %passing.to, ?carries, "the other leg accepted; the call carries it now")
            }
            Err(refusal) => {
                tracing::info!(from = %passing.from, to = %passing.to, status, refusal, "the other leg refused; the call stays as it was")
            }
        }
        endpoint.answer_offer(passing.from, answer, now);
    }

    /// The other leg took T.38: our answer to the offering leg, and the relay between the
    /// two UDPTL ports starts; the legs' RTP is held (no RTP is expected, nor sent, while
    /// the machines fax).
    fn start_t38(
        &mut self,
        parent: LegId,
        passing: Passing,
        pending: PendingSwitch,
        body: &[u8],
    ) -> Result<Vec<u8>, u16> {
        let (from_pair, to_pair, offered) = pending.t38.ok_or(488u16)?;
        let Some(accepted) = parse_offer(body).ok().and_then(|a| a.t38_stream()) else {
            tracing::warn!(leg = %passing.to, "the other leg said 200 to T.38 without a usable T.38 stream; the offering leg gets 488");
            return Err(488);
        };
        let (from_port, to_port) = (port_of(&from_pair.0), port_of(&to_pair.0));
        let from = session_of(&mut self.legs, &mut self.outbound, passing.from).ok_or(481u16)?;
        let local = from.next_image(from.local_ip, from_port);
        let answer = sdp::t38_answer(&pending.offer, &local, &accepted).map_err(|err| {
            tracing::info!(leg = %passing.from, "no T.38 answer: {err}");
            488u16
        })?;
        let from_ip = from.local_ip;
        let to_ip = session_of(&mut self.legs, &mut self.outbound, passing.to)
            .map_or(from_ip, |to| to.local_ip);
        let span = self
            .legs
            .get(&parent)
            .map_or_else(tracing::Span::none, |caller| caller.span.clone());
        let relay = media::udptl::UdptlRelay::new(offered.remote, accepted.remote);
        let relay = UdptlRelayTask::spawn(from_pair.0, to_pair.0, relay, span).map_err(|err| {
            tracing::error!("T.38 relay not started: {err}");
            500u16
        })?;
        for leg in [passing.from, passing.to] {
            if let Some(media) = session_of(&mut self.legs, &mut self.outbound, leg) {
                let held = remote_media(media.remote_rtp, media.remote_rtcp, Direction::Inactive);
                self.shared
                    .media
                    .send(leg, MediaCommand::SetRemote(leg, held));
            }
        }
        let t38 = T38Call {
            relay,
            sides: [
                T38Side {
                    leg: passing.from,
                    ip: from_ip,
                    port: from_port,
                    described: accepted,
                },
                T38Side {
                    leg: passing.to,
                    ip: to_ip,
                    port: to_port,
                    described: offered,
                },
            ],
        };
        tracing::info!(from = %passing.from, to = %passing.to, from_port, to_port, "T.38: fax datagrams relayed between the legs");
        if let Some(caller) = self.legs.get_mut(&parent) {
            caller.t38 = Some(t38);
        }
        Ok(answer.into_bytes())
    }

    /// The other leg went back to audio with us: its RTP goes where its answer says, the
    /// offering leg's re-offer is answered as any, and the T.38 relay stops.
    fn end_t38(
        &mut self,
        parent: LegId,
        passing: Passing,
        pending: PendingSwitch,
        body: &[u8],
    ) -> Result<Vec<u8>, u16> {
        let answer = parse_offer(body).map_err(|_| 488u16)?;
        let to = session_of(&mut self.legs, &mut self.outbound, passing.to).ok_or(481u16)?;
        let negotiated =
            sdp::accept_answer(&[to.codec], &sdp::LocalSrtp::off(), &answer).map_err(|err| {
                tracing::info!(leg = %passing.to, "unusable audio answer: {err}");
                488u16
            })?;
        to.remote_rtp = negotiated.remote_rtp;
        to.remote_rtcp = negotiated.remote_rtcp;
        to.direction = negotiated.direction;
        let remote = to.remote();
        self.shared
            .media
            .send(passing.to, MediaCommand::SetRemote(passing.to, remote));
        let ours = self.apply_offer(passing.from, &pending.body)?;
        if let Some(caller) = self.legs.get_mut(&parent) {
            caller.t38 = None;
        }
        tracing::info!("T.38 over: the call carries audio again");
        Ok(ours)
    }

    /// A re-offer of T.38 on a call that carries it (a session refresh, a new address): the
    /// relay sends to the address it gives, and it gets our stream as before.
    fn answer_t38_again(
        &mut self,
        parent: LegId,
        leg: LegId,
        offer: &sdp::SessionDescription,
    ) -> Result<Vec<u8>, u16> {
        let stream = offer.t38_stream().ok_or(488u16)?;
        let t38 = self
            .legs
            .get(&parent)
            .and_then(|caller| caller.t38.as_ref())
            .ok_or(488u16)?;
        let (index, side) = t38
            .sides
            .iter()
            .enumerate()
            .find(|(_, side)| side.leg == leg)
            .ok_or(481u16)?;
        let udptl_side = if index == 0 {
            media::udptl::UdptlSide::First
        } else {
            media::udptl::UdptlSide::Second
        };
        t38.relay.set_remote(udptl_side, stream.remote);
        let (ip, port, described) = (side.ip, side.port, side.described.clone());
        let media = session_of(&mut self.legs, &mut self.outbound, leg).ok_or(481u16)?;
        let local = media.next_image(ip, port);
        sdp::t38_answer(offer, &local, &described)
            .map(String::into_bytes)
            .map_err(|_| 488)
    }

    /// Takes an SDP offer in a re-INVITE or UPDATE: `Ok(answer)`, or the status to refuse
    /// it with.
    fn apply_offer(&mut self, leg: LegId, body: &[u8]) -> Result<Vec<u8>, u16> {
        // The caller's leg, or a phone we called (its hold and resume come the same way).
        let media = session_of(&mut self.legs, &mut self.outbound, leg).ok_or(481u16)?;
        let offer = match parse_offer(body) {
            Ok(offer) => offer,
            Err(err) => {
                tracing::info!(leg = %leg, "bad SDP in re-INVITE: {err}");
                return Err(488);
            }
        };
        let (answer, negotiated) =
            sdp::answer(&offer, &media.reoffer_answerer()).map_err(|err| {
                tracing::info!(leg = %leg, "re-INVITE refused: {err}");
                488u16
            })?;
        // The media worker cannot switch a running leg between plain and encrypted media.
        let rekeyed = match (&media.srtp, &negotiated.srtp) {
            (None, None) => None,
            (Some(old), Some(new)) => new.remote_key_changed(old).then(|| new.clone()),
            (None, Some(_)) | (Some(_), None) => {
                tracing::info!(leg = %leg, "re-INVITE would switch SRTP on or off mid-call; refused");
                return Err(488);
            }
        };
        media.sdp_version += 1;
        media.answer_sdp = answer;
        media.remote_rtp = negotiated.remote_rtp;
        media.remote_rtcp = negotiated.remote_rtcp;
        media.direction = negotiated.direction;
        tracing::info!(leg = %leg, remote = ?negotiated.remote_rtp, ?negotiated.direction, "re-INVITE: media updated");
        let remote = media.remote();
        if let Some(keys) = rekeyed {
            tracing::info!(leg = %leg, suite = keys.suite().sdp_name(), "re-INVITE: the peer's SRTP key changed");
            media.srtp = Some(keys.clone());
            self.shared
                .media
                .send(leg, MediaCommand::RekeySrtp(leg, Box::new(keys)));
        }
        self.shared
            .media
            .send(leg, MediaCommand::SetRemote(leg, remote));
        Ok(media.answer_sdp.clone().into_bytes())
    }

    /// The leg is over: stop its media, tell its task, write its call record.
    fn on_ended(
        &mut self,
        leg: LegId,
        answered: bool,
        final_status: u16,
        reason: &str,
        now: Instant,
    ) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        l.ended = true;
        if answered && let Some(user) = &l.profile.user {
            self.ring_groups.call_ended(user, now);
        }
        self.shared.media.send(leg, MediaCommand::Stop(leg));
        let record = store::CallRecord {
            call_id: l.call_id.clone(),
            caller: l.caller.clone(),
            callee: l.callee.clone(),
            started_at_ms: l.started_wall_ms,
            ended_at_ms: jiff::Timestamp::now().as_millisecond(),
            answered,
            final_status,
            end_reason: reason.to_owned(),
            media: store::CallMedia::default(),
            contacts_rung: l.contacts_rung,
            connected: None,
            ring_group: l.ring_group.clone(),
            features: l.features.clone(),
        };
        tracing::info!(call_id = %l.call_id, leg = %leg, reason, features = ?l.features, "call ended");
        let result = if answered { "answered" } else { "unanswered" };
        metrics::counter!(crate::telemetry::CALLS_TOTAL, "result" => result).increment(1);
        let shared = self.shared.clone();
        let quality = l.quality.clone();
        let callee = l
            .connected
            .as_ref()
            .map(|c| (c.quality.clone(), c.to_record(record.ended_at_ms)));
        tokio::task::spawn_blocking(move || {
            let mut record = record;
            // The worker publishes a leg's final RTCP figures when it handles the Stop,
            // within a tick or two (the connected leg's Stop follows its BYE, just after
            // ours); a worker that lost the command costs the record only the last few
            // seconds of figures.
            let give_up = Instant::now() + MEDIA_STOP_WAIT;
            let all_stopped =
                || quality.stopped() && callee.as_ref().is_none_or(|(q, _)| q.stopped());
            while !all_stopped() && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(5));
            }
            record.media = quality.to_call_media();
            record.connected = callee.map(|(callee_quality, mut leg)| {
                leg.media = callee_quality.to_call_media();
                leg
            });
            write_call_record(&shared, record);
        });
    }
}

/// Writes `record` through the store's thread (call from a blocking task); a failure is
/// logged, since the call it describes is over either way.
fn write_call_record(shared: &Shared, record: store::CallRecord) {
    match shared
        .store
        .run_blocking(move |store| store.record_call(&record))
    {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!("call record not written: {err}"),
        Err(err) => tracing::error!("call record not written: {err}"),
    }
}

/// Writes the record of a call refused before it became a leg of ours (no rule: 404, a
/// carrier number not understood, a bad offer, a foreign network): admins look for exactly
/// these when "the number does not work". Challenges (407) are not calls yet: the phone
/// comes back with credentials.
fn record_refused(shared: &Arc<Shared>, call_id: &str, caller: &str, callee: &str, status: u16) {
    let now = jiff::Timestamp::now().as_millisecond();
    let record = store::CallRecord {
        call_id: call_id.to_owned(),
        caller: caller.to_owned(),
        callee: callee.to_owned(),
        started_at_ms: now,
        ended_at_ms: now,
        answered: false,
        final_status: status,
        end_reason: "refused".into(),
        media: store::CallMedia::default(),
        contacts_rung: 0,
        connected: None,
        ring_group: None,
        features: Vec::new(),
    };
    tracing::info!(call_id = %call_id, status, "call refused");
    metrics::counter!(crate::telemetry::CALLS_TOTAL, "result" => "refused").increment(1);
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || write_call_record(&shared, record));
}

/// The number a carrier's INVITE is for: its Request-URI user, unless that is the user we
/// registered as (carriers that send to our registered Contact put the number in To).
fn trunk_dialled_number(trunk: &trunks::Trunk, request: &rsip::Request, uri_user: &str) -> String {
    let registered_as = match &trunk.mode {
        trunks::TrunkMode::Register(registration) => Some(registration.username.as_str()),
        trunks::TrunkMode::Ip { .. } => None,
    };
    if registered_as != Some(uri_user) && !uri_user.is_empty() {
        return uri_user.to_string();
    }
    msg::header_value(request, "To")
        .as_deref()
        .and_then(msg::address_uri)
        .and_then(|u| msg::parse_uri(&u))
        .and_then(|u| u.auth.map(|a| a.user))
        .unwrap_or_else(|| uri_user.to_string())
}

/// Refuses a new leg and forgets it.
fn refuse_leg(
    endpoint: &mut SipEndpoint,
    leg: LegId,
    code: u16,
    phrase: Option<&str>,
    now: Instant,
) {
    endpoint.reject(leg, code, phrase, "refused", now);
    endpoint.forget(leg, "refused", now);
}

/// Answers a caller who must prove who they are with 407 and our challenges. The same
/// challenge for a number nobody has and for a staff-only one: an outsider learns nothing
/// about which numbers exist.
#[allow(clippy::too_many_arguments)] // the 407's parts, and the services to send it with
fn challenge(
    endpoint: &mut SipEndpoint,
    registrar: &RegistrarService,
    leg: LegId,
    domain: &str,
    stale: bool,
    wrong_answer_to: Option<&str>,
    now: Instant,
) {
    let headers: Vec<(&str, String)> = registrar
        .proxy_challenges(domain, stale, wrong_answer_to)
        .into_iter()
        .map(|c| ("Proxy-Authenticate", c))
        .collect();
    endpoint.reject_with_headers(leg, 407, None, &headers, "caller not identified", now);
    endpoint.forget(leg, "caller not identified", now);
}

/// The display name of a name-addr (`"Anna Amt" <sip:…>` or `Anna <sip:…>`).
fn display_name(name_addr: &str) -> Option<String> {
    let (name, _) = name_addr.split_once('<')?;
    let name = name.trim().trim_matches('"').trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn codec_kind(codec: Codec) -> media::codec::CodecKind {
    match codec {
        Codec::Pcmu => media::codec::CodecKind::Pcmu,
        Codec::Pcma => media::codec::CodecKind::Pcma,
        Codec::G722 => media::codec::CodecKind::G722,
        Codec::Opus => media::codec::CodecKind::Opus,
    }
}

/// The media session of a caller's leg or of a placed leg that answered.
fn session_of<'a>(
    legs: &'a mut HashMap<LegId, CallLeg>,
    outbound: &'a mut HashMap<LegId, OutboundLeg>,
    leg: LegId,
) -> Option<&'a mut MediaSession> {
    match legs.get_mut(&leg) {
        Some(caller) => Some(&mut caller.media),
        None => outbound.get_mut(&leg).and_then(|o| o.media.as_mut()),
    }
}

/// The local port of a bound socket (0 if the kernel will not say).
fn port_of(socket: &std::net::UdpSocket) -> u16 {
    socket.local_addr().map_or(0, |a| a.port())
}

/// The SDP offer in a request body.
fn parse_offer(body: &[u8]) -> Result<sdp::SessionDescription, String> {
    let text = std::str::from_utf8(body).map_err(|_| "SDP is not UTF-8".to_string())?;
    sdp::parse(text).map_err(|e| e.to_string())
}
