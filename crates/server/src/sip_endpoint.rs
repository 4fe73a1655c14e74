//! The SIP endpoint: transactions, dialogs and the dialog → leg table, without I/O.
//!
//! Datagrams and the clock go in ([`SipEndpoint::handle_datagram`],
//! [`SipEndpoint::handle_timeout`]); bytes to send ([`SipEndpoint::poll_transmit`]) and
//! typed per-leg events ([`SipEndpoint::poll_event`]) come out, as quinn's endpoint turns
//! datagrams into per-connection events. Its owner, call control, drives each leg with
//! commands (`ring`, `answer`, `reject`, `hangup`, `answer_offer`, `reoffer`). It answers what needs
//! no call itself (OPTIONS, unsupported methods and extensions, requests outside any dialog)
//! and runs RFC 4028 session timers, which are SIP's own business. It knows nothing of SDP
//! or dialplans: session descriptions are opaque bodies handed through.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rsip::Method;
use sip::dialog::{Dialog, DialogId, dialog_id_of_request};
use sip::message as msg;
use sip::registrar::BindingId;
use sip::session_timer::{self, Negotiation, SessionTimer, SessionTimerAction};
use sip::transaction::{
    Output, Peer, Timers, TransactionEvent, TransactionKey, TransactionLayer, TransportKind,
};

use crate::ids::LegId;

/// Methods we implement (Allow header, RFC 3261 §20.5).
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, SUBSCRIBE, REFER";
/// Option tags we support: session timers (RFC 4028).
const SUPPORTED: &str = session_timer::OPTION_TAG;
/// Methods defined by RFCs that we recognise but do not serve here (405, not 501).
const KNOWN_UNSERVED: &[&str] = &["NOTIFY", "PUBLISH", "MESSAGE", "PRACK"];
/// The SDP content type, the only session description we take.
const SDP: &str = "application/sdp";

/// Why a call ended when the caller's RTP stopped (call record, BYE text).
pub const MEDIA_TIMEOUT: &str = "media timeout";
/// Why a call ended when its SIP session was not refreshed (call record, BYE text).
pub const SESSION_TIMER_EXPIRED: &str = "session timer expired";
/// Why a call ended when our 2xx was never acknowledged.
const NO_ACK: &str = "no ACK";

/// Settings of the endpoint.
#[derive(Debug, Clone, Copy)]
pub struct EndpointConfig {
    /// The address our SIP transport listens on (Via and Contact port; its IP unless it is
    /// the unspecified address).
    pub listen: SocketAddr,
    /// The port our SIP-over-TLS listener has, if there is one (Via and Contact port of
    /// messages on TLS; 5061 when none is given).
    pub tls_port: Option<u16>,
    /// Smallest session interval we accept (RFC 4028 Min-SE).
    pub min_session_expires: u32,
    /// Legs at most; INVITEs beyond get 503 (bounded everything).
    pub max_legs: usize,
    /// SIP transactions at most; requests beyond get 503.
    pub max_transactions: usize,
}

/// A new INVITE outside any dialog, past the SIP checks: the owner rings, answers or
/// rejects it.
#[derive(Debug)]
pub struct Incoming {
    /// The leg the INVITE opened.
    pub leg: LegId,
    /// The INVITE.
    pub request: rsip::Request,
    /// Where it came from.
    pub from: Peer,
    /// The local address facing the caller (for SDP and Contact).
    pub local_ip: IpAddr,
}

/// A request outside any call that a service answers (REGISTER for the registrar,
/// SUBSCRIBE for presence), with [`SipEndpoint::respond_to`].
#[derive(Debug)]
pub struct ServiceRequest {
    /// Its server transaction.
    pub key: TransactionKey,
    /// The request.
    pub request: rsip::Request,
    /// Where it came from.
    pub from: Peer,
}

/// What happened on a leg.
#[derive(Debug)]
pub enum LegEvent {
    /// A new call.
    Incoming(Box<Incoming>),
    /// A REFER on the leg's dialog, accepted with 202: the owner transfers the call's other
    /// party to `refer_to` and reports with [`SipEndpoint::notify_refer`].
    Refer {
        /// The leg whose phone asks for the transfer (the transferor's).
        leg: LegId,
        /// Where to.
        refer_to: sip::refer::ReferTo,
    },
    /// A re-INVITE or UPDATE carries a new SDP offer: the owner answers it with
    /// [`SipEndpoint::answer_offer`].
    Offer {
        /// The leg.
        leg: LegId,
        /// The offer, as it came.
        body: Vec<u8>,
    },
    /// The final answer to our re-INVITE ([`SipEndpoint::reoffer`]), reported once: a 2xx
    /// (already acknowledged) with the peer's SDP answer, or a refusal (408 when none came).
    OfferAnswered {
        /// The leg.
        leg: LegId,
        /// The final status.
        status: u16,
        /// The answer's body (empty for a refusal).
        body: Vec<u8>,
    },
    /// An outbound leg is ringing (180 or 183 arrived), reported once.
    Progress {
        /// The leg.
        leg: LegId,
    },
    /// An outbound leg was answered (2xx, already acknowledged) with this session
    /// description.
    Answered {
        /// The leg.
        leg: LegId,
        /// The answer to our offer.
        body: Vec<u8>,
    },
    /// A DTMF digit sent as SIP INFO.
    Dtmf {
        /// The leg.
        leg: LegId,
        /// The digit.
        digit: char,
    },
    /// The leg is over (BYE or CANCEL from the peer, our hangup or rejection, a timer); its
    /// transactions finish on their own.
    Ended {
        /// The leg.
        leg: LegId,
        /// Whether it had been answered.
        answered: bool,
        /// The final status of its INVITE (0 if none was sent).
        final_status: u16,
        /// Why, in the call record's words.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// INVITE received, no final response yet.
    Early,
    /// 2xx sent (awaiting ACK or confirmed).
    Answered,
    /// Over; kept until the owner forgets it.
    Ended,
}

/// A re-INVITE or UPDATE whose offer the owner is answering.
struct PendingOffer {
    key: TransactionKey,
    request: rsip::Request,
    timer: Option<SessionTimer>,
}

/// A re-INVITE we sent on the owner's behalf ([`SipEndpoint::reoffer`]).
struct Reoffer {
    leg: LegId,
    cseq: u32,
    /// Our offer: our session description once the peer accepts it.
    sdp: Vec<u8>,
    /// The final answer went to the owner (a retransmitted 2xx is only acknowledged).
    reported: bool,
}

/// The SIP side of one call leg.
struct Leg {
    invite_key: TransactionKey,
    invite: rsip::Request,
    peer: Peer,
    local_tag: String,
    local_ip: IpAddr,
    dialog: Option<Dialog>,
    state: LegState,
    final_status: u16,
    /// Our current session description (the last answer we gave).
    local_sdp: Vec<u8>,
    /// RFC 4028 session timer, when the peer asked for one.
    session_timer: Option<SessionTimer>,
    /// The peer accepts UPDATE, so a refresh we send need not be a re-INVITE.
    peer_allows_update: bool,
    pending_offer: Option<PendingOffer>,
    /// We sent the INVITE (a leg towards a phone we ring).
    outbound: bool,
    /// 180 sent (inbound) or seen (outbound): sent or reported once.
    rang: bool,
    /// For a leg we placed: how its INVITE was made.
    placed: Option<Box<Placed>>,
}

/// A call we place: whom to ring, as whom, and where to send the INVITE.
#[derive(Debug, Clone)]
pub struct OutboundCall {
    /// Request-URI: the registered contact, or the dialled SIP URI.
    pub request_uri: String,
    /// To: the address of record or the dialled URI.
    pub to: String,
    /// From user part (the calling extension or number).
    pub from_user: String,
    /// From display name, if any.
    pub from_name: Option<String>,
    /// Where the INVITE and every later request of the dialog go: the flow the phone
    /// registered on (its Contact may be a private address behind NAT), or the first proxy
    /// of its Path.
    pub next_hop: Peer,
    /// Route header values: the Path the phone registered through (RFC 3327 §5.3), if any.
    pub route: Vec<String>,
    /// Host of the From URI; `None`: our own address (a carrier wants its domain there).
    pub from_host: Option<String>,
    /// More headers, e.g. P-Asserted-Identity towards a carrier.
    pub headers: Vec<(String, String)>,
    /// Answers a carrier's 401/407 to the INVITE once, when given.
    pub credentials: Option<sip::digest::client::ClientCredentials>,
    /// A call that has no response at all after this long ends as 408 (the carrier is taken
    /// as failed, and the call may fail over) instead of after Timer B's 32 s.
    pub response_timeout: Option<Duration>,
}

/// What an INVITE we placed was built from, to send it again with credentials.
struct Placed {
    call: OutboundCall,
    call_id: String,
    cseq: u32,
    /// We answered a challenge already: another one means wrong credentials.
    authenticated: bool,
    /// Some response to the INVITE arrived (even 100 Trying): the peer is there.
    responded: bool,
}

/// The SIP endpoint (see the module documentation).
/// Seconds a draining node asks callers and proxies to wait before trying it again.
const DRAIN_RETRY_AFTER_S: u32 = 300;

pub struct SipEndpoint {
    config: EndpointConfig,
    layer: TransactionLayer,
    legs: HashMap<LegId, Leg>,
    by_dialog: HashMap<DialogId, LegId>,
    by_invite: HashMap<TransactionKey, LegId>,
    /// Session timer deadlines; stale entries are skipped when they come up.
    session_deadlines: BinaryHeap<Reverse<(Instant, LegId)>>,
    /// When placed legs with a `response_timeout` give up on a peer that answers nothing.
    response_deadlines: BinaryHeap<Reverse<(Instant, LegId)>>,
    /// Session refreshes we sent and are waiting for: transaction → leg, CSeq, method.
    refreshes: HashMap<TransactionKey, (LegId, u32, Method)>,
    /// Re-INVITEs with a new offer we sent for the owner, until their transaction ends.
    reoffers: HashMap<TransactionKey, Reoffer>,
    /// OPTIONS we sent to registered contacts, waiting for an answer.
    probes: HashMap<TransactionKey, BindingId>,
    /// Contacts that answered a probe.
    probe_answers: VecDeque<BindingId>,
    /// Requests of our own outside any dialog (outbound REGISTER), waiting for an answer.
    own_requests: std::collections::HashSet<TransactionKey>,
    /// Their final answers, or `None` when the transaction timed out.
    own_answers: VecDeque<(TransactionKey, Option<rsip::Response>)>,
    next_leg: u64,
    events: VecDeque<LegEvent>,
    requests: VecDeque<ServiceRequest>,
    transmits: VecDeque<(Peer, Vec<u8>)>,
    /// `node drain`: new calls and health checks (OPTIONS) are answered 503 with
    /// Retry-After; calls in progress go on.
    draining: bool,
}

impl SipEndpoint {
    /// An endpoint with no legs.
    pub fn new(config: EndpointConfig, timers: Timers) -> Self {
        Self {
            config,
            layer: TransactionLayer::with_max_transactions(timers, config.max_transactions),
            legs: HashMap::new(),
            by_dialog: HashMap::new(),
            by_invite: HashMap::new(),
            session_deadlines: BinaryHeap::new(),
            response_deadlines: BinaryHeap::new(),
            refreshes: HashMap::new(),
            reoffers: HashMap::new(),
            probes: HashMap::new(),
            probe_answers: VecDeque::new(),
            own_requests: std::collections::HashSet::new(),
            own_answers: VecDeque::new(),
            next_leg: 1,
            events: VecDeque::new(),
            requests: VecDeque::new(),
            transmits: VecDeque::new(),
            draining: false,
        }
    }

    /// From now on, new calls and OPTIONS health checks are answered 503 with Retry-After
    /// (`node drain`); calls in progress are not touched.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// 503 with Retry-After (RFC 3261 §21.5.4): this node takes nothing new; a proxy in
    /// front (Kamailio's dispatcher probes with OPTIONS) sends the caller to another node.
    fn refuse_draining(&mut self, key: &TransactionKey, request: &rsip::Request, now: Instant) {
        let mut response = msg::response_to(
            request,
            503,
            Some("Draining"),
            Some(&sip::transaction::new_tag()),
        );
        msg::add_header(
            &mut response.headers,
            "Retry-After",
            DRAIN_RETRY_AFTER_S.to_string(),
        );
        self.respond(key, response, now);
    }

    /// Legs not yet forgotten.
    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    /// Every leg not yet forgotten.
    pub fn leg_ids(&self) -> Vec<LegId> {
        self.legs.keys().copied().collect()
    }

    /// The SIP Call-ID of a leg not yet forgotten (for a placed leg, the one we chose).
    pub fn call_id(&self, leg: LegId) -> Option<String> {
        self.legs.get(&leg).and_then(|l| msg::call_id(&l.invite))
    }

    /// The dialog of an answered leg (Call-ID, our tag, the phone's tag), to find the one an
    /// attended transfer's Replaces names (RFC 3891 §3).
    pub fn dialog_id(&self, leg: LegId) -> Option<DialogId> {
        self.legs
            .get(&leg)
            .filter(|l| l.state == LegState::Answered)
            .and_then(|l| l.dialog.as_ref())
            .map(|d| d.id().clone())
    }

    /// The address a leg's phone (or proxy) signals from, to tell whether two dialogs face
    /// the same phone.
    pub fn peer_ip(&self, leg: LegId) -> Option<IpAddr> {
        self.legs.get(&leg).map(|l| l.peer.addr.ip())
    }

    /// A datagram (or a framed stream message) from `peer`.
    pub fn handle_datagram(&mut self, bytes: &[u8], peer: Peer, now: Instant) {
        match msg::parse(bytes) {
            // The layer stamps received/rport (RFC 3581) on requests itself.
            Ok(message) => self.layer.handle_message(message, peer, now),
            Err(err) => {
                tracing::info!(from = %peer.addr, "rejected malformed SIP: {}", err.reason());
                if let Some(reply) = msg::bad_request_response(bytes, &err) {
                    self.transmits.push_back((peer, reply));
                }
            }
        }
        self.drain_layer(now);
    }

    /// The earliest moment [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let session = self.session_deadlines.peek().map(|Reverse((at, _))| *at);
        let response = self.response_deadlines.peek().map(|Reverse((at, _))| *at);
        [self.layer.poll_timeout(), session, response]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the transaction and session timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.drain_layer(now);
        self.run_session_timers(now);
        self.drain_layer(now);
        self.give_up_on_silent_peers(now);
        self.drain_layer(now);
    }

    /// Ends the placed legs whose peer sent no response at all within the call's
    /// `response_timeout` as 408. The INVITE's CANCEL waits for a provisional response
    /// (RFC 3261 §9.1), should one still come; retransmissions stop with Timer B.
    fn give_up_on_silent_peers(&mut self, now: Instant) {
        while let Some(Reverse((at, leg))) = self.response_deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.response_deadlines.pop();
            let Some(l) = self.legs.get_mut(&leg) else {
                continue;
            };
            let silent = l.placed.as_deref().is_some_and(|p| !p.responded);
            if l.state != LegState::Early || !silent {
                continue;
            }
            let waited = l
                .placed
                .as_deref()
                .and_then(|p| p.call.response_timeout)
                .unwrap_or_default();
            let key = l.invite_key.clone();
            l.final_status = 408;
            if let Err(err) = self.layer.cancel(&key, now) {
                tracing::debug!(leg = %leg, "CANCEL not queued: {err}");
            }
            tracing::info!(leg = %leg, waited_s = waited.as_secs(), "no response to our INVITE; giving up");
            self.end(leg, &format!("no response in {} s", waited.as_secs()));
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<(Peer, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next leg event.
    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.events.pop_front()
    }

    /// The next request for a service.
    pub fn poll_request(&mut self) -> Option<ServiceRequest> {
        self.requests.pop_front()
    }

    /// Sends a service's response to its request. A digest challenge keeps no transaction
    /// state: a retransmitted REGISTER just gets a fresh challenge, and the transaction
    /// table holds twice the registrations a second (see
    /// [`TransactionLayer::send_final_and_forget`]).
    pub fn respond_to(&mut self, key: &TransactionKey, response: rsip::Response, now: Instant) {
        if response.status_code.code() == 401 {
            if let Err(err) = self.layer.send_final_and_forget(key, response, now) {
                tracing::debug!("challenge not sent: {err}");
            }
            self.drain_layer(now);
            return;
        }
        self.respond(key, response, now);
    }

    /// Sends 180 Ringing on an early leg (once).
    pub fn ring(&mut self, leg: LegId, now: Instant) {
        let Some(l) = self
            .legs
            .get_mut(&leg)
            .filter(|l| l.state == LegState::Early && !l.outbound && !l.rang)
        else {
            return;
        };
        // Once: every phone that rings for this caller reports progress, the caller needs
        // to hear it only once.
        l.rang = true;
        let ringing = msg::response_to(&l.invite, 180, None, Some(&l.local_tag));
        let key = l.invite_key.clone();
        self.respond(&key, ringing, now);
    }

    /// Sends 183 Session Progress with `sdp` on an early leg we received: the caller hears
    /// our media (an announcement) before, or instead of, an answer.
    pub fn early_media(&mut self, leg: LegId, sdp: Vec<u8>, now: Instant) {
        let Some(l) = self
            .legs
            .get_mut(&leg)
            .filter(|l| l.state == LegState::Early && !l.outbound)
        else {
            return;
        };
        let mut progress = msg::response_to(&l.invite, 183, None, Some(&l.local_tag));
        msg::set_body(&mut progress, SDP, sdp);
        let key = l.invite_key.clone();
        self.respond(&key, progress, now);
    }

    /// Answers an early leg with 200 OK carrying `sdp`, which becomes our session
    /// description for refreshes.
    pub fn answer(&mut self, leg: LegId, sdp: Vec<u8>, now: Instant) {
        let contact = self.contact_uri_for(leg);
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.state != LegState::Early || l.outbound {
            return;
        }
        l.local_sdp = sdp;
        let Some(response) = self.dialog_response(leg, None, true) else {
            return;
        };
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let key = l.invite_key.clone();
        let dialog = contact
            .as_deref()
            .and_then(msg::parse_uri)
            .and_then(|contact| Dialog::new_uas(&l.invite, &l.local_tag, contact).ok());
        l.state = LegState::Answered;
        l.final_status = 200;
        if let Some(dialog) = dialog {
            self.by_dialog.insert(dialog.id().clone(), leg);
            l.dialog = Some(dialog);
        }
        if let Some(timer) = l.session_timer.as_mut() {
            timer.refreshed(now);
        }
        self.respond(&key, response, now);
        self.schedule_session_timer(leg);
    }

    /// Refuses an early leg with a final status (`phrase` replaces the standard reason
    /// phrase); `reason` is the call record's words.
    pub fn reject(
        &mut self,
        leg: LegId,
        code: u16,
        phrase: Option<&str>,
        reason: &str,
        now: Instant,
    ) {
        self.reject_with_headers(leg, code, phrase, &[], reason, now);
    }

    /// Like [`reject`](Self::reject), with extra headers on the response (a 407's
    /// `Proxy-Authenticate`).
    pub fn reject_with_headers(
        &mut self,
        leg: LegId,
        code: u16,
        phrase: Option<&str>,
        headers: &[(&str, String)],
        reason: &str,
        now: Instant,
    ) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.state != LegState::Early || l.outbound {
            return;
        }
        let mut response = msg::response_to(&l.invite, code, phrase, Some(&l.local_tag));
        for (name, value) in headers {
            msg::add_header(&mut response.headers, name, value.clone());
        }
        let key = l.invite_key.clone();
        l.final_status = code;
        self.respond(&key, response, now);
        self.end(leg, reason);
    }

    /// Ends a leg: BYE when answered (with a Reason header), 480 while early.
    pub fn hangup(&mut self, leg: LegId, reason: &str, now: Instant) {
        let Some(via_port) = self.legs.get(&leg).map(|l| self.port_for(l.peer.transport)) else {
            return;
        };
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        match l.state {
            LegState::Early if l.outbound => {
                // CANCEL (RFC 3261 §9.1); the 487 that follows ends the leg, but for us it
                // is over now. A 2xx crossing the CANCEL is acknowledged and hung up.
                let key = l.invite_key.clone();
                if let Err(err) = self.layer.cancel(&key, now) {
                    tracing::debug!(leg = %leg, "CANCEL not sent: {err}");
                }
                self.end(leg, reason);
                self.drain_layer(now);
            }
            LegState::Early => self.reject(leg, 480, None, reason, now),
            LegState::Answered => {
                let via = SocketAddr::new(l.local_ip, via_port);
                let peer = l.peer;
                let outbound = l.outbound;
                if let Some(dialog) = l.dialog.as_mut() {
                    let mut bye = dialog.new_request(Method::Bye, via, peer.transport, None);
                    msg::add_header(&mut bye.headers, "Reason", bye_reason(reason));
                    let to = Peer {
                        addr: in_dialog_hop(dialog, peer, outbound),
                        ..peer
                    };
                    if let Err(err) = self.layer.send_request(bye, to, now) {
                        tracing::warn!(leg = %leg, "BYE not sent: {err}");
                    }
                }
                self.end(leg, reason);
                self.drain_layer(now);
            }
            LegState::Ended => {}
        }
    }

    /// Answers the offer of the leg's pending re-INVITE or UPDATE: `Ok(answer)` accepts it
    /// (and takes the refresh it carried), `Err(status)` refuses it.
    pub fn answer_offer(&mut self, leg: LegId, answer: Result<Vec<u8>, u16>, now: Instant) {
        let Some(pending) = self.legs.get_mut(&leg).and_then(|l| l.pending_offer.take()) else {
            return;
        };
        match answer {
            Ok(sdp) => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.local_sdp = sdp;
                }
                self.refresh_session(leg, pending.timer, now);
                if let Some(response) = self.dialog_response(leg, Some(&pending.request), true) {
                    self.respond(&pending.key, response, now);
                }
            }
            Err(code) => {
                let response = msg::response_to(
                    &pending.request,
                    code,
                    None,
                    Some(&sip::transaction::new_tag()),
                );
                self.respond(&pending.key, response, now);
            }
        }
    }

    /// Sends a re-INVITE offering `sdp` on an answered leg (a T.38 switch passed on from the
    /// other leg of its call); its final answer comes back as [`LegEvent::OfferAnswered`].
    /// False (nothing sent) when the leg is not answered or has an offer of ours or the
    /// peer's still open: RFC 3264 §4 allows one offer at a time in a dialog.
    pub fn reoffer(&mut self, leg: LegId, sdp: Vec<u8>, now: Instant) -> bool {
        if self.reoffers.values().any(|r| r.leg == leg && !r.reported) {
            return false;
        }
        let Some(via_port) = self.legs.get(&leg).map(|l| self.port_for(l.peer.transport)) else {
            return false;
        };
        let Some(l) = self.legs.get_mut(&leg) else {
            return false;
        };
        if l.state != LegState::Answered || l.pending_offer.is_some() {
            return false;
        }
        let via = SocketAddr::new(l.local_ip, via_port);
        let (peer, outbound, timer) = (l.peer, l.outbound, l.session_timer);
        let Some(dialog) = l.dialog.as_mut() else {
            return false;
        };
        let mut request = dialog.new_request(
            Method::Invite,
            via,
            peer.transport,
            Some((SDP.into(), sdp.clone())),
        );
        // A re-INVITE refreshes the session too (RFC 4028 §7.4): without Session-Expires the
        // peer would take the timer as switched off.
        add_session_timer(&mut request, timer.as_ref());
        let cseq = dialog.local_cseq();
        let to = Peer {
            addr: in_dialog_hop(dialog, peer, outbound),
            ..peer
        };
        let sent = match self.layer.send_request(request, to, now) {
            Ok(key) => {
                tracing::debug!(leg = %leg, "re-INVITE sent");
                self.reoffers.insert(
                    key,
                    Reoffer {
                        leg,
                        cseq,
                        sdp,
                        reported: false,
                    },
                );
                true
            }
            Err(err) => {
                tracing::warn!(leg = %leg, "re-INVITE not sent: {err}");
                false
            }
        };
        self.drain_layer(now);
        sent
    }

    /// Asks a registered contact whether it is still there (qualify, with OPTIONS over the
    /// flow it registered on). Only a final answer is reported, by
    /// [`poll_probe_answer`](Self::poll_probe_answer); silence is for the caller to time.
    pub fn probe(
        &mut self,
        binding: BindingId,
        request_uri: &str,
        next_hop: Peer,
        route: &[String],
        now: Instant,
    ) {
        let Some(request) = self.options_request(request_uri, next_hop, route) else {
            tracing::debug!(uri = %request_uri, "cannot build OPTIONS to this contact");
            return;
        };
        match self.layer.send_request(request, next_hop, now) {
            Ok(key) => {
                self.probes.insert(key, binding);
            }
            Err(err) => tracing::debug!(uri = %request_uri, "OPTIONS not sent: {err}"),
        }
        self.drain_layer(now);
    }

    /// An OPTIONS request to `request_uri` through `next_hop` (with `route`), from us; `None`
    /// when the URI does not make a request.
    pub fn options_request(
        &self,
        request_uri: &str,
        next_hop: Peer,
        route: &[String],
    ) -> Option<rsip::Request> {
        let (_, host, port, proto) = self.sent_by(next_hop);
        let text = format!(
            "OPTIONS {request_uri} SIP/2.0\r\n\
             Via: SIP/2.0/{proto} {host}:{port};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             {routes}\
             From: <sip:amtsleitung@{host}>;tag={tag}\r\n\
             To: <{request_uri}>\r\n\
             Call-ID: {call_id}@{host}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Accept: {SDP}\r\n\
             Content-Length: 0\r\n\r\n",
            branch = sip::transaction::new_branch(),
            tag = sip::transaction::new_tag(),
            call_id = sip::transaction::new_tag(),
            routes = route_headers(route),
        );
        match msg::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Request(request)) => Some(request),
            Ok(_) | Err(_) => None,
        }
    }

    /// Tells a registered contact how many voicemail messages wait (RFC 3842): a NOTIFY
    /// for `message-summary` outside any dialog, as Asterisk and most PBXs send to phones
    /// that never subscribed (Yealink, Snom, Gigaset take it). Its answer is not waited
    /// for: the next change or registration sends the counts again. False when it could
    /// not be sent.
    pub fn notify_message_summary(
        &mut self,
        request_uri: &str,
        next_hop: Peer,
        route: &[String],
        body: &str,
        now: Instant,
    ) -> bool {
        let (_, host, port, proto) = self.sent_by(next_hop);
        let text = format!(
            "NOTIFY {request_uri} SIP/2.0\r\n\
             Via: SIP/2.0/{proto} {host}:{port};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             {routes}\
             From: <sip:amtsleitung@{host}>;tag={tag}\r\n\
             To: <{request_uri}>\r\n\
             Call-ID: {call_id}@{host}\r\n\
             CSeq: 1 NOTIFY\r\n\
             Contact: <sip:amtsleitung@{host}:{port}>\r\n\
             Event: message-summary\r\n\
             Subscription-State: active\r\n\
             Content-Type: application/simple-message-summary\r\n\
             Content-Length: {length}\r\n\r\n{body}",
            branch = sip::transaction::new_branch(),
            tag = sip::transaction::new_tag(),
            call_id = sip::transaction::new_tag(),
            routes = route_headers(route),
            length = body.len(),
        );
        let request = match msg::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Request(request)) => request,
            Ok(_) | Err(_) => {
                tracing::debug!(uri = %request_uri, "cannot build NOTIFY to this contact");
                return false;
            }
        };
        let sent = match self.layer.send_request(request, next_hop, now) {
            Ok(_) => true,
            Err(err) => {
                tracing::debug!(uri = %request_uri, "NOTIFY not sent: {err}");
                false
            }
        };
        self.drain_layer(now);
        sent
    }

    /// Sends a request of our own outside any dialog (an outbound REGISTER) to `next_hop`;
    /// its final answer comes out of [`SipEndpoint::poll_own_answer`] under the key returned.
    pub fn send_own_request(
        &mut self,
        request: rsip::Request,
        next_hop: Peer,
        now: Instant,
    ) -> Option<TransactionKey> {
        let key = match self.layer.send_request(request, next_hop, now) {
            Ok(key) => key,
            Err(err) => {
                tracing::debug!(to = %next_hop.addr, "request not sent: {err}");
                return None;
            }
        };
        self.own_requests.insert(key.clone());
        self.drain_layer(now);
        Some(key)
    }

    /// The final answer to one of our own requests; `None` inside when it timed out.
    pub fn poll_own_answer(&mut self) -> Option<(TransactionKey, Option<rsip::Response>)> {
        self.own_answers.pop_front()
    }

    /// How our Via names us towards `next_hop`: `host:port` and the transport.
    pub fn sent_by_towards(&self, next_hop: Peer) -> String {
        let (_, host, port, _) = self.sent_by(next_hop);
        format!("{host}:{port}")
    }

    /// Our address as our Via names it towards `next_hop` (for in-dialog requests of a
    /// service, such as NOTIFY).
    pub fn via_address_towards(&self, next_hop: Peer) -> SocketAddr {
        let (ip, _, port, _) = self.sent_by(next_hop);
        SocketAddr::new(ip, port)
    }

    /// Our Contact URI towards `next_hop`, over its transport.
    pub fn contact_towards(&self, next_hop: Peer) -> String {
        let ip = local_ip_towards(next_hop.addr.ip(), self.config.listen.ip());
        self.contact_uri(ip, next_hop.transport, false)
    }

    /// The next contact that answered a probe.
    pub fn poll_probe_answer(&mut self) -> Option<BindingId> {
        self.probe_answers.pop_front()
    }

    /// Our address towards `next_hop` and how our Via names it: IP, host text, port,
    /// transport.
    fn sent_by(&self, next_hop: Peer) -> (IpAddr, String, u16, &'static str) {
        let local_ip = local_ip_towards(next_hop.addr.ip(), self.config.listen.ip());
        let host = match local_ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let port = self.port_for(next_hop.transport);
        (local_ip, host, port, next_hop.transport.via_name())
    }

    /// Our listening port on `transport`: Via sent-by and Contact (RFC 3261 §18.2.1 sends
    /// the answer to a request to the sent-by port over the request's transport).
    fn port_for(&self, transport: TransportKind) -> u16 {
        match transport {
            TransportKind::Tls => self
                .config
                .tls_port
                .unwrap_or(TransportKind::Tls.default_port()),
            TransportKind::Udp | TransportKind::Tcp => self.config.listen.port(),
        }
    }

    /// Places a call: sends an INVITE carrying `sdp` (our offer) and returns the new leg,
    /// whose progress comes as `Progress`, `Answered` or `Ended` events.
    pub fn invite(&mut self, call: &OutboundCall, sdp: Vec<u8>, now: Instant) -> Option<LegId> {
        if self.legs.len() >= self.config.max_legs {
            return None;
        }
        let (local_ip, host, _, _) = self.sent_by(call.next_hop);
        let tag = sip::transaction::new_tag();
        let call_id = format!("{}@{host}", sip::transaction::new_tag());
        let request = self.build_invite(call, &tag, &call_id, 1, None, &sdp)?;
        let key = match self.layer.send_request(request.clone(), call.next_hop, now) {
            Ok(key) => key,
            Err(err) => {
                tracing::warn!(uri = %call.request_uri, "INVITE not sent: {err}");
                return None;
            }
        };
        let leg = LegId::new(self.next_leg);
        self.next_leg += 1;
        self.legs.insert(
            leg,
            Leg {
                invite_key: key.clone(),
                invite: request,
                peer: call.next_hop,
                local_tag: tag,
                local_ip,
                dialog: None,
                state: LegState::Early,
                final_status: 0,
                local_sdp: sdp,
                session_timer: None,
                peer_allows_update: false,
                pending_offer: None,
                outbound: true,
                rang: false,
                placed: Some(Box::new(Placed {
                    call: call.clone(),
                    call_id,
                    cseq: 1,
                    authenticated: false,
                    responded: false,
                })),
            },
        );
        self.by_invite.insert(key, leg);
        if let Some(wait) = call.response_timeout {
            self.response_deadlines.push(Reverse((now + wait, leg)));
        }
        self.drain_layer(now);
        Some(leg)
    }

    /// Our INVITE as text: to `call`, with From tag `tag`, `call_id`, `cseq` and, after a
    /// challenge, its answer (header name, value).
    fn build_invite(
        &self,
        call: &OutboundCall,
        tag: &str,
        call_id: &str,
        cseq: u32,
        authorization: Option<(&str, String)>,
        sdp: &[u8],
    ) -> Option<rsip::Request> {
        let (local_ip, host, port, proto) = self.sent_by(call.next_hop);
        let from_name = call
            .from_name
            .as_deref()
            .map(|n| {
                let quoted: String = n
                    .chars()
                    .filter(|c| !matches!(c, '"' | '\\' | '\r' | '\n'))
                    .collect();
                format!("\"{quoted}\" ")
            })
            .unwrap_or_default();
        let mut extra = String::new();
        for (name, value) in call
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .chain(authorization)
        {
            extra.push_str(&format!("{name}: {value}\r\n"));
        }
        let text = format!(
            "INVITE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{proto} {host}:{port};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             {routes}\
             From: {from_name}<sip:{from_user}@{from_host}>;tag={tag}\r\n\
             To: <{to}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <{contact}>\r\n\
             {extra}\
             Allow: {ALLOW}\r\n\
             Supported: {SUPPORTED}\r\n\
             Content-Type: {SDP}\r\n\
             Content-Length: {len}\r\n\r\n",
            uri = call.request_uri,
            branch = sip::transaction::new_branch(),
            from_user = call.from_user,
            from_host = call.from_host.as_deref().unwrap_or(&host),
            to = call.to,
            contact = self.contact_uri(
                local_ip,
                call.next_hop.transport,
                is_sips(&call.request_uri)
            ),
            len = sdp.len(),
            routes = route_headers(&call.route),
        );
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(sdp);
        match msg::parse(&bytes) {
            Ok(rsip::SipMessage::Request(request)) => Some(request),
            Ok(_) | Err(_) => {
                tracing::warn!(uri = %call.request_uri, "cannot build an INVITE to this address");
                None
            }
        }
    }

    /// A carrier challenged our INVITE: send it again, once, with the answer. False when
    /// there is nothing to answer with (the refusal then ends the leg).
    fn answer_invite_challenge(
        &mut self,
        leg: LegId,
        response: &rsip::Response,
        now: Instant,
    ) -> bool {
        let Some(l) = self.legs.get(&leg) else {
            return false;
        };
        let Some(placed) = l.placed.as_deref() else {
            return false;
        };
        let Some(credentials) = placed.call.credentials.as_ref() else {
            return false;
        };
        if placed.authenticated || l.state != LegState::Early {
            return false;
        }
        let (challenge_header, answer_header) = match response.status_code.code() {
            401 => ("WWW-Authenticate", "Authorization"),
            _ => ("Proxy-Authenticate", "Proxy-Authorization"),
        };
        let offered = msg::header_values(response, challenge_header);
        let challenge = match sip::digest::client::select_challenge(
            &offered,
            &credentials.secret,
            &credentials.username,
        ) {
            Ok(challenge) => challenge,
            Err(err) => {
                tracing::info!(leg = %leg, "cannot answer the INVITE's challenge: {err}");
                return false;
            }
        };
        let cnonce = format!("{:016x}", rand::random::<u64>());
        let answer =
            match challenge.answer(credentials, "INVITE", &placed.call.request_uri, &cnonce, 1) {
                Ok(answer) => answer,
                Err(err) => {
                    tracing::info!(leg = %leg, "cannot answer the INVITE's challenge: {err}");
                    return false;
                }
            };
        let cseq = placed.cseq + 1;
        let Some(request) = self.build_invite(
            &placed.call,
            &l.local_tag,
            &placed.call_id,
            cseq,
            Some((answer_header, answer)),
            &l.local_sdp,
        ) else {
            return false;
        };
        let next_hop = placed.call.next_hop;
        let key = match self.layer.send_request(request.clone(), next_hop, now) {
            Ok(key) => key,
            Err(err) => {
                tracing::info!(leg = %leg, "authenticated INVITE not sent: {err}");
                return false;
            }
        };
        let Some(l) = self.legs.get_mut(&leg) else {
            return false;
        };
        let old = std::mem::replace(&mut l.invite_key, key.clone());
        l.invite = request;
        if let Some(placed) = l.placed.as_deref_mut() {
            placed.cseq = cseq;
            placed.authenticated = true;
        }
        self.by_invite.remove(&old);
        self.by_invite.insert(key, leg);
        tracing::debug!(leg = %leg, "INVITE sent again with credentials");
        true
    }

    /// A response to one of our INVITEs.
    fn on_outbound_response(&mut self, leg: LegId, response: &rsip::Response, now: Instant) {
        let code = response.status_code.code();
        let Some(via_port) = self.legs.get(&leg).map(|l| self.port_for(l.peer.transport)) else {
            return;
        };
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if let Some(placed) = l.placed.as_deref_mut() {
            placed.responded = true;
        }
        match code {
            100..=199 => {
                if matches!(code, 180 | 183) && !l.rang && l.state == LegState::Early {
                    l.rang = true;
                    self.events.push_back(LegEvent::Progress { leg });
                }
            }
            200..=299 => {
                if l.dialog.is_none() {
                    match Dialog::new_uac(&l.invite, response) {
                        Ok(dialog) => {
                            self.by_dialog.insert(dialog.id().clone(), leg);
                            l.dialog = Some(dialog);
                        }
                        Err(err) => {
                            tracing::info!(leg = %leg, "unusable 2xx to our INVITE: {err}");
                            return;
                        }
                    }
                }
                // The ACK for a 2xx is ours, and again for every retransmission (§13.2.2.4).
                if let Some(dialog) = l.dialog.as_ref() {
                    let via = SocketAddr::new(l.local_ip, via_port);
                    let cseq = l.placed.as_deref().map_or(1, |p| p.cseq);
                    let ack = dialog.new_ack(cseq, via, l.peer.transport);
                    self.layer
                        .send_stateless(rsip::SipMessage::Request(ack), l.peer);
                }
                match l.state {
                    LegState::Early => {
                        l.state = LegState::Answered;
                        l.final_status = code;
                        self.events.push_back(LegEvent::Answered {
                            leg,
                            body: response.body.clone(),
                        });
                    }
                    // Answered after we gave up on it (CANCEL crossed the 2xx): end it.
                    LegState::Ended if l.final_status == 0 => {
                        l.final_status = code;
                        l.state = LegState::Answered;
                        self.hangup(leg, "answered after cancel", now);
                        // Already reported ended: no second event for this leg.
                        self.events
                            .retain(|e| !matches!(e, LegEvent::Ended { leg: l, .. } if *l == leg));
                    }
                    LegState::Answered | LegState::Ended => {}
                }
            }
            401 | 407 if self.answer_invite_challenge(leg, response, now) => {}
            _ => {
                let Some(l) = self.legs.get_mut(&leg) else {
                    return;
                };
                if l.state == LegState::Early {
                    l.final_status = code;
                    let reason = format!("callee answered {code}");
                    self.end(leg, &reason);
                } else if l.final_status == 0 {
                    // Our CANCEL's 487 (or another refusal after it).
                    l.final_status = code;
                }
            }
        }
        self.drain_layer(now);
    }

    /// Drops an ended leg's state (the owner is done with it); a leg not yet ended is hung
    /// up first with `reason`.
    pub fn forget(&mut self, leg: LegId, reason: &str, now: Instant) {
        if self
            .legs
            .get(&leg)
            .is_some_and(|l| l.state != LegState::Ended)
        {
            self.hangup(leg, reason, now);
        }
        if let Some(l) = self.legs.remove(&leg) {
            self.by_invite.remove(&l.invite_key);
            if let Some(dialog) = l.dialog {
                self.by_dialog.remove(dialog.id());
            }
        }
    }

    fn drain_layer(&mut self, now: Instant) {
        while let Some(output) = self.layer.poll_output() {
            match output {
                Output::Transmit { to, bytes } => self.transmits.push_back((to, bytes)),
                Output::Event(event) => self.on_transaction_event(event, now),
            }
        }
    }

    fn respond(&mut self, key: &TransactionKey, response: rsip::Response, now: Instant) {
        if let Err(err) = self.layer.send_response(key, response, now) {
            tracing::debug!("response not sent: {err}");
        }
        self.drain_layer(now);
    }

    fn reply(
        &mut self,
        key: &TransactionKey,
        request: &rsip::Request,
        code: u16,
        phrase: Option<&str>,
        now: Instant,
    ) {
        let response = msg::response_to(request, code, phrase, Some(&sip::transaction::new_tag()));
        self.respond(key, response, now);
    }

    /// Marks a leg over and tells the owner.
    fn end(&mut self, leg: LegId, reason: &str) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.state == LegState::Ended {
            return;
        }
        let answered = l.state == LegState::Answered;
        l.state = LegState::Ended;
        self.events.push_back(LegEvent::Ended {
            leg,
            answered,
            final_status: l.final_status,
            reason: reason.to_string(),
        });
    }

    fn is_outbound_invite(&self, key: &TransactionKey) -> bool {
        self.by_invite
            .get(key)
            .and_then(|leg| self.legs.get(leg))
            .is_some_and(|l| l.outbound)
    }

    fn leg_of(&self, request: &rsip::Request) -> Option<LegId> {
        dialog_id_of_request(request).and_then(|d| self.by_dialog.get(&d).copied())
    }

    fn on_transaction_event(&mut self, event: TransactionEvent, now: Instant) {
        match event {
            TransactionEvent::NewRequest { key, request, from } => {
                self.on_request(key, request, from, now)
            }
            TransactionEvent::Cancelled { invite } => {
                if let Some(leg) = self.by_invite.get(&invite).copied() {
                    self.reject(leg, 487, None, "caller cancelled", now);
                }
            }
            TransactionEvent::Ack { request, .. } => {
                if let Some(leg) = self.leg_of(&request) {
                    tracing::debug!(leg = %leg, "ACK received; call confirmed");
                }
            }
            TransactionEvent::Timeout { key } if self.refreshes.contains_key(&key) => {
                if let Some((leg, _, _)) = self.refreshes.remove(&key) {
                    tracing::info!(leg = %leg, "session refresh unanswered; ending call");
                    crate::telemetry::count(crate::telemetry::SESSION_TIMER_EXPIRIES_TOTAL);
                    self.hangup(leg, SESSION_TIMER_EXPIRED, now);
                }
            }
            TransactionEvent::Response { key, response } if self.own_requests.contains(&key) => {
                if response.status_code.code() >= 200 {
                    self.own_requests.remove(&key);
                    self.own_answers.push_back((key, Some(response)));
                }
            }
            TransactionEvent::Timeout { key } if self.own_requests.contains(&key) => {
                self.own_requests.remove(&key);
                self.own_answers.push_back((key, None));
            }
            TransactionEvent::Terminated { key } if self.own_requests.contains(&key) => {
                self.own_requests.remove(&key);
            }
            TransactionEvent::Response { key, response } if self.probes.contains_key(&key) => {
                if response.status_code.code() >= 200
                    && let Some(binding) = self.probes.remove(&key)
                {
                    self.probe_answers.push_back(binding);
                }
            }
            TransactionEvent::Timeout { key } | TransactionEvent::Terminated { key }
                if self.probes.contains_key(&key) =>
            {
                self.probes.remove(&key);
            }
            TransactionEvent::Response { key, response } if self.refreshes.contains_key(&key) => {
                self.on_refresh_response(&key, &response, now);
            }
            TransactionEvent::Response { key, response } if self.reoffers.contains_key(&key) => {
                self.on_reoffer_response(&key, &response, now);
            }
            TransactionEvent::Timeout { key } | TransactionEvent::Terminated { key }
                if self.reoffers.contains_key(&key) =>
            {
                if let Some(reoffer) = self.reoffers.remove(&key)
                    && !reoffer.reported
                {
                    // No answer at all counts as 408 (RFC 3261 §8.1.3.1), which ends the
                    // dialog (§14.1): the phone is gone.
                    // Reported first, so the owner answers the offer it passed on before it
                    // learns that the call is over.
                    tracing::info!(leg = %reoffer.leg, "re-INVITE unanswered; ending call");
                    self.events.push_back(LegEvent::OfferAnswered {
                        leg: reoffer.leg,
                        status: 408,
                        body: Vec::new(),
                    });
                    self.hangup(reoffer.leg, "re-INVITE unanswered", now);
                }
            }
            TransactionEvent::Response { key, response } if self.is_outbound_invite(&key) => {
                if let Some(leg) = self.by_invite.get(&key).copied() {
                    self.on_outbound_response(leg, &response, now);
                }
            }
            TransactionEvent::Timeout { key } if self.is_outbound_invite(&key) => {
                if let Some(leg) = self.by_invite.get(&key).copied()
                    && let Some(l) = self.legs.get_mut(&leg)
                    && l.state == LegState::Early
                {
                    l.final_status = 408;
                    self.end(leg, "no answer from the phone");
                }
            }
            TransactionEvent::Timeout { key } => {
                // Our 2xx was never ACKed (RFC 3261 §13.3.1.4): the caller is gone.
                if let Some(leg) = self.by_invite.get(&key).copied()
                    && self
                        .legs
                        .get(&leg)
                        .is_some_and(|l| l.state == LegState::Answered)
                {
                    tracing::info!(leg = %leg, "no ACK for our 200 OK; ending call");
                    self.hangup(leg, NO_ACK, now);
                }
            }
            TransactionEvent::Response { .. } | TransactionEvent::Terminated { .. } => {}
        }
    }

    fn on_request(
        &mut self,
        key: TransactionKey,
        request: rsip::Request,
        from: Peer,
        now: Instant,
    ) {
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
                self.respond(&key, response, now);
                return;
            }
            if let Some(response) = refuse_insecure_sips(&request, from) {
                self.respond(&key, response, now);
                return;
            }
        }
        match method {
            Method::Invite => {
                if msg::to_tag(&request).is_some() {
                    self.on_session_update(key, request, now);
                } else {
                    self.on_new_invite(key, request, from, now);
                }
            }
            Method::Bye => match self.leg_of(&request) {
                Some(leg) => {
                    let response = msg::response_to(&request, 200, None, None);
                    self.respond(&key, response, now);
                    // The peer of a leg we placed is the one who was called.
                    let outbound = self.legs.get(&leg).is_some_and(|l| l.outbound);
                    let reason = if outbound {
                        "callee hung up"
                    } else {
                        "caller hung up"
                    };
                    self.end(leg, reason);
                }
                None => self.reply(&key, &request, 481, None, now),
            },
            Method::Options if self.draining => self.refuse_draining(&key, &request, now),
            Method::Options => {
                let mut response =
                    msg::response_to(&request, 200, None, Some(&sip::transaction::new_tag()));
                msg::add_header(&mut response.headers, "Allow", ALLOW.into());
                msg::add_header(&mut response.headers, "Accept", SDP.into());
                msg::add_header(&mut response.headers, "Accept-Language", "de, en".into());
                if !SUPPORTED.is_empty() {
                    msg::add_header(&mut response.headers, "Supported", SUPPORTED.into());
                }
                self.respond(&key, response, now);
            }
            Method::Info => self.on_info(key, request, now),
            Method::Refer => self.on_refer(key, request, now),
            // A SUBSCRIBE makes its own dialog (RFC 6665), never a leg's: refreshes inside
            // it go to the service too.
            Method::Register | Method::Subscribe => {
                self.requests
                    .push_back(ServiceRequest { key, request, from })
            }
            Method::Update => self.on_session_update(key, request, now),
            Method::Ack | Method::Cancel => {}
            other => {
                let name = other.to_string();
                if KNOWN_UNSERVED.contains(&name.as_str()) {
                    let mut response =
                        msg::response_to(&request, 405, None, Some(&sip::transaction::new_tag()));
                    msg::add_header(&mut response.headers, "Allow", ALLOW.into());
                    self.respond(&key, response, now);
                } else {
                    self.reply(&key, &request, 501, None, now);
                }
            }
        }
    }

    fn on_new_invite(
        &mut self,
        key: TransactionKey,
        request: rsip::Request,
        from: Peer,
        now: Instant,
    ) {
        if self.draining {
            self.refuse_draining(&key, &request, now);
            return;
        }
        if self.legs.len() >= self.config.max_legs {
            self.reply(&key, &request, 503, Some("Too Many Calls"), now);
            return;
        }
        let session_timer =
            match session_timer::negotiate(&request, self.config.min_session_expires) {
                Negotiation::TooSmall { min_se } => {
                    self.reply_too_small(&key, &request, min_se, now);
                    return;
                }
                Negotiation::NoTimer => None,
                Negotiation::Agreed(timer) => Some(timer),
            };
        let peer_allows_update = msg::header_values(&request, "Allow")
            .iter()
            .flat_map(|v| v.split(','))
            .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"));
        let leg = LegId::new(self.next_leg);
        self.next_leg += 1;
        let local_ip = local_ip_towards(from.addr.ip(), self.config.listen.ip());
        self.legs.insert(
            leg,
            Leg {
                invite_key: key.clone(),
                invite: request.clone(),
                peer: from,
                local_tag: sip::transaction::new_tag(),
                local_ip,
                dialog: None,
                state: LegState::Early,
                final_status: 0,
                local_sdp: Vec::new(),
                session_timer,
                peer_allows_update,
                pending_offer: None,
                outbound: false,
                rang: false,
                placed: None,
            },
        );
        self.by_invite.insert(key, leg);
        self.events.push_back(LegEvent::Incoming(Box::new(Incoming {
            leg,
            request,
            from,
            local_ip,
        })));
    }

    /// A re-INVITE or UPDATE in a dialog: maybe a new offer, and a session refresh (RFC 4028).
    fn on_session_update(&mut self, key: TransactionKey, request: rsip::Request, now: Instant) {
        let Some(leg) = self.leg_of(&request) else {
            self.reply(&key, &request, 481, None, now);
            return;
        };
        let Some(l) = self.legs.get_mut(&leg) else {
            self.reply(&key, &request, 481, None, now);
            return;
        };
        if let Some(dialog) = l.dialog.as_mut()
            && dialog.on_request(&request).is_err()
        {
            self.reply(&key, &request, 500, Some("CSeq Out Of Order"), now);
            return;
        }
        if l.pending_offer.is_some() {
            // RFC 3261 §14.2: an offer while ours is being answered.
            self.reply(&key, &request, 500, Some("Offer Pending"), now);
            return;
        }
        if request.method == Method::Invite
            && self.reoffers.values().any(|r| r.leg == leg && !r.reported)
        {
            // RFC 3261 §14.2: re-INVITEs crossed (glare); the peer tries again later.
            self.reply(&key, &request, 491, None, now);
            return;
        }
        let timer = match session_timer::negotiate(&request, self.config.min_session_expires) {
            Negotiation::TooSmall { min_se } => {
                self.reply_too_small(&key, &request, min_se, now);
                return;
            }
            Negotiation::NoTimer => None,
            Negotiation::Agreed(timer) => Some(timer),
        };
        if !request.body.is_empty() {
            let body = request.body.clone();
            if let Some(l) = self.legs.get_mut(&leg) {
                l.pending_offer = Some(PendingOffer {
                    key,
                    request,
                    timer,
                });
            }
            self.events.push_back(LegEvent::Offer { leg, body });
            return;
        }
        self.refresh_session(leg, timer, now);
        // An offerless re-INVITE gets our offer again (RFC 3261 §14.2; the answer in the ACK
        // is accepted implicitly since we keep our media unchanged); an offerless UPDATE is a
        // bare refresh (RFC 3311), answered without SDP.
        let with_sdp = request.method == Method::Invite;
        if let Some(response) = self.dialog_response(leg, Some(&request), with_sdp) {
            self.respond(&key, response, now);
        }
    }

    /// A REFER on a call's dialog (RFC 3515): one readable Refer-To is accepted with 202 and
    /// handed to the owner, which reports the referred call's progress by NOTIFY
    /// ([`Self::notify_refer`]); a REFER outside an answered dialog gets 481, a missing,
    /// doubled or unreadable Refer-To 400 (§2.4.1).
    fn on_refer(&mut self, key: TransactionKey, request: rsip::Request, now: Instant) {
        let Some(leg) = self.leg_of(&request).filter(|leg| {
            self.legs
                .get(leg)
                .is_some_and(|l| l.state == LegState::Answered)
        }) else {
            self.reply(&key, &request, 481, None, now);
            return;
        };
        let mut values = msg::header_values(&request, "Refer-To");
        values.extend(msg::header_values(&request, "r"));
        values.dedup();
        let refer_to = match values.as_slice() {
            [one] => sip::refer::parse_refer_to(one).map_err(|err| err.to_string()),
            [] => Err("no Refer-To".to_string()),
            _ => Err("more than one Refer-To".to_string()),
        };
        match refer_to {
            Ok(refer_to) => {
                tracing::info!(leg = %leg, target = %refer_to.uri, attended = refer_to.replaces.is_some(), "REFER accepted");
                let response = msg::response_to(&request, 202, None, None);
                self.respond(&key, response, now);
                self.events.push_back(LegEvent::Refer { leg, refer_to });
            }
            Err(err) => {
                tracing::info!(leg = %leg, "REFER refused: {err}; 400");
                self.reply(&key, &request, 400, None, now);
            }
        }
    }

    /// Reports the progress of the call a REFER on `leg` asked for: a NOTIFY in its dialog
    /// with `Event: refer` and the status line as `message/sipfrag` (RFC 3515 §2.4.5); a final
    /// status ends the implicit subscription.
    pub fn notify_refer(&mut self, leg: LegId, status: u16, reason: &str, now: Instant) {
        let Some(via_port) = self.legs.get(&leg).map(|l| self.port_for(l.peer.transport)) else {
            return;
        };
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.state != LegState::Answered {
            return;
        }
        let via = SocketAddr::new(l.local_ip, via_port);
        let (peer, outbound) = (l.peer, l.outbound);
        let Some(dialog) = l.dialog.as_mut() else {
            return;
        };
        let body = sip::refer::sipfrag(status, reason).into_bytes();
        let mut notify = dialog.new_request(
            Method::Notify,
            via,
            peer.transport,
            Some((sip::refer::SIPFRAG.into(), body)),
        );
        msg::add_header(&mut notify.headers, "Event", "refer".into());
        msg::add_header(
            &mut notify.headers,
            "Subscription-State",
            sip::refer::subscription_state(status).into(),
        );
        let to = Peer {
            addr: in_dialog_hop(dialog, peer, outbound),
            ..peer
        };
        match self.layer.send_request(notify, to, now) {
            Ok(_) => tracing::debug!(leg = %leg, status, "transfer progress NOTIFY sent"),
            Err(err) => tracing::warn!(leg = %leg, "NOTIFY not sent: {err}"),
        }
        self.drain_layer(now);
    }

    fn on_info(&mut self, key: TransactionKey, request: rsip::Request, now: Instant) {
        let Some(leg) = self.leg_of(&request) else {
            self.reply(&key, &request, 481, None, now);
            return;
        };
        let content_type = msg::header_value(&request, "Content-Type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("application/dtmf") {
            let body = String::from_utf8_lossy(&request.body);
            if let Some(digit) = media::dtmf::parse_dtmf_relay(&body) {
                self.events.push_back(LegEvent::Dtmf { leg, digit });
            }
            let response = msg::response_to(&request, 200, None, None);
            self.respond(&key, response, now);
        } else {
            // RFC 6086 §4.2.2: an INFO package we do not support.
            self.reply(&key, &request, 415, None, now);
        }
    }

    fn reply_too_small(
        &mut self,
        key: &TransactionKey,
        request: &rsip::Request,
        min_se: u32,
        now: Instant,
    ) {
        let mut response = msg::response_to(
            request,
            422,
            Some("Session Interval Too Small"),
            Some(&sip::transaction::new_tag()),
        );
        msg::add_header(&mut response.headers, "Min-SE", min_se.to_string());
        self.respond(key, response, now);
    }

    /// A refresh was accepted: the timer it carried starts now (none: the timer is off,
    /// RFC 4028 §9).
    fn refresh_session(&mut self, leg: LegId, timer: Option<SessionTimer>, now: Instant) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        l.session_timer = timer;
        if let Some(timer) = l.session_timer.as_mut() {
            timer.refreshed(now);
            tracing::debug!(leg = %leg, interval = ?timer.interval(), refresher = ?timer.refresher(), "session refreshed");
        }
        self.schedule_session_timer(leg);
    }

    fn schedule_session_timer(&mut self, leg: LegId) {
        if let Some(at) = self
            .legs
            .get(&leg)
            .and_then(|l| l.session_timer.as_ref())
            .and_then(SessionTimer::deadline)
        {
            self.session_deadlines.push(Reverse((at, leg)));
        }
    }

    /// Refreshes or ends the legs whose session timer is due.
    fn run_session_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, leg))) = self.session_deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.session_deadlines.pop();
            let Some(l) = self.legs.get_mut(&leg) else {
                continue;
            };
            if l.state != LegState::Answered {
                continue;
            }
            let Some(timer) = l.session_timer.as_mut() else {
                continue;
            };
            // A stale entry (the session was refreshed since) polls to nothing.
            match timer.poll(now) {
                Some(SessionTimerAction::Expired) => {
                    tracing::info!(leg = %leg, "session not refreshed in time; ending call");
                    crate::telemetry::count(crate::telemetry::SESSION_TIMER_EXPIRIES_TOTAL);
                    self.hangup(leg, SESSION_TIMER_EXPIRED, now);
                }
                Some(SessionTimerAction::Refresh) => {
                    self.send_refresh(leg, now);
                    self.schedule_session_timer(leg);
                }
                None => {}
            }
        }
    }

    /// We are the refresher: UPDATE when the peer allows it (no new offer), else a
    /// re-INVITE offering the session as it is (RFC 4028 §7.4, §9).
    fn send_refresh(&mut self, leg: LegId, now: Instant) {
        let Some(via_port) = self.legs.get(&leg).map(|l| self.port_for(l.peer.transport)) else {
            return;
        };
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let (Some(dialog), Some(timer)) = (l.dialog.as_mut(), l.session_timer) else {
            return;
        };
        let via = SocketAddr::new(l.local_ip, via_port);
        let (method, body) = if l.peer_allows_update {
            (Method::Update, None)
        } else {
            (Method::Invite, Some((SDP.to_string(), l.local_sdp.clone())))
        };
        let mut request = dialog.new_request(method, via, l.peer.transport, body);
        add_session_timer(&mut request, Some(&timer));
        let cseq = dialog.local_cseq();
        let to = Peer {
            addr: dialog.next_hop().unwrap_or(l.peer.addr),
            ..l.peer
        };
        match self.layer.send_request(request, to, now) {
            Ok(key) => {
                tracing::debug!(leg = %leg, %method, "session refresh sent");
                self.refreshes.insert(key, (leg, cseq, method));
            }
            Err(err) => tracing::warn!(leg = %leg, "session refresh not sent: {err}"),
        }
    }

    /// The peer answered our refresh: a 2xx restarts the timer (and a re-INVITE's is
    /// ACKed); 408 or 481 mean the dialog is gone (RFC 4028 §10).
    fn on_refresh_response(
        &mut self,
        key: &TransactionKey,
        response: &rsip::Response,
        now: Instant,
    ) {
        let Some(&(leg, cseq, method)) = self.refreshes.get(key) else {
            return;
        };
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        if code >= 300 {
            self.refreshes.remove(key);
            if matches!(code, 408 | 481) {
                self.hangup(leg, SESSION_TIMER_EXPIRED, now);
            }
            return;
        }
        let via_port = self.legs.get(&leg).map_or(self.config.listen.port(), |l| {
            self.port_for(l.peer.transport)
        });
        if let Some(l) = self.legs.get_mut(&leg)
            && let Some(dialog) = l.dialog.as_ref()
            && method == Method::Invite
        {
            // The ACK for a 2xx is the TU's, sent again for every retransmitted 2xx.
            let via = SocketAddr::new(l.local_ip, via_port);
            let ack = dialog.new_ack(cseq, via, l.peer.transport);
            let to = Peer {
                addr: dialog.next_hop().unwrap_or(l.peer.addr),
                ..l.peer
            };
            self.layer
                .send_stateless(rsip::SipMessage::Request(ack), to);
        }
        if let Some(timer) = self
            .legs
            .get_mut(&leg)
            .and_then(|l| l.session_timer.as_mut())
        {
            timer.refreshed(now);
        }
        self.schedule_session_timer(leg);
        self.drain_layer(now);
    }

    /// The peer answered our re-INVITE: a 2xx is acknowledged (every copy of it, RFC 3261
    /// §13.2.2.4) and makes our offer the leg's session description; the first final answer
    /// goes to the owner.
    fn on_reoffer_response(
        &mut self,
        key: &TransactionKey,
        response: &rsip::Response,
        now: Instant,
    ) {
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        let Some(reoffer) = self.reoffers.get_mut(key) else {
            return;
        };
        let (leg, cseq, first) = (reoffer.leg, reoffer.cseq, !reoffer.reported);
        reoffer.reported = true;
        let sdp = std::mem::take(&mut reoffer.sdp);
        if code >= 300 {
            self.reoffers.remove(key);
        }
        let via_port = self.legs.get(&leg).map_or(self.config.listen.port(), |l| {
            self.port_for(l.peer.transport)
        });
        if let Some(l) = self.legs.get_mut(&leg)
            && code < 300
        {
            if let Some(dialog) = l.dialog.as_ref() {
                let via = SocketAddr::new(l.local_ip, via_port);
                let ack = dialog.new_ack(cseq, via, l.peer.transport);
                let to = Peer {
                    addr: in_dialog_hop(dialog, l.peer, l.outbound),
                    ..l.peer
                };
                self.layer
                    .send_stateless(rsip::SipMessage::Request(ack), to);
            }
            if first {
                l.local_sdp = sdp;
                if let Some(timer) = l.session_timer.as_mut() {
                    timer.refreshed(now);
                }
            }
        }
        if first {
            if code < 300 {
                self.schedule_session_timer(leg);
            }
            self.events.push_back(LegEvent::OfferAnswered {
                leg,
                status: code,
                body: if code < 300 {
                    response.body.clone()
                } else {
                    Vec::new()
                },
            });
            // 481 and 408 say the dialog is gone (RFC 3261 §14.1).
            if matches!(code, 408 | 481) {
                self.hangup(leg, "dialog gone", now);
            }
        }
        self.drain_layer(now);
    }

    /// 200 to an INVITE (`request` None: the leg's own), re-INVITE or UPDATE: Contact, Allow,
    /// Supported, the session timer and, `with_sdp`, our session description.
    fn dialog_response(
        &self,
        leg: LegId,
        request: Option<&rsip::Request>,
        with_sdp: bool,
    ) -> Option<rsip::Response> {
        let Some(l) = self.legs.get(&leg) else {
            return request.map(|r| msg::response_to(r, 481, None, None));
        };
        let request = request.unwrap_or(&l.invite);
        let mut response = msg::response_to(request, 200, None, Some(&l.local_tag));
        msg::add_header(
            &mut response.headers,
            "Contact",
            format!("<{}>", self.leg_contact_uri(l)),
        );
        msg::add_header(&mut response.headers, "Allow", ALLOW.into());
        msg::add_header(&mut response.headers, "Supported", SUPPORTED.into());
        if let Some(timer) = &l.session_timer {
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
        if with_sdp {
            msg::set_body(&mut response, SDP, l.local_sdp.clone());
        }
        Some(response)
    }

    fn contact_uri_for(&self, leg: LegId) -> Option<String> {
        self.legs.get(&leg).map(|l| self.leg_contact_uri(l))
    }

    /// Our Contact on a leg: over the leg's transport, `sips:` when its INVITE's
    /// Request-URI was (RFC 3261 §8.1.1.8 and §12.1.1: a SIPS request gets a SIPS Contact).
    fn leg_contact_uri(&self, l: &Leg) -> String {
        let sips = l.invite.uri.scheme == Some(rsip::Scheme::Sips);
        self.contact_uri(l.local_ip, l.peer.transport, sips)
    }

    /// Where the peer reaches us: `ip`, our port on `transport`, and `;transport=tls` on
    /// TLS so that in-dialog requests come back over TLS to the TLS port, not over UDP
    /// (RFC 3261 §19.1.2 defaults to UDP); a `sips:` URI means TLS by itself (RFC 5630
    /// §3.1.3 deprecates `transport=tls` there).
    fn contact_uri(&self, ip: IpAddr, transport: TransportKind, sips: bool) -> String {
        let port = self.port_for(transport);
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        match (sips, transport) {
            (true, _) => format!("sips:amtsleitung@{host}:{port}"),
            (false, TransportKind::Tls) => format!("sip:amtsleitung@{host}:{port};transport=tls"),
            (false, TransportKind::Udp | TransportKind::Tcp) => {
                format!("sip:amtsleitung@{host}:{port}")
            }
        }
    }
}

/// The refusal of a `sips:` request that reached us over plain UDP or TCP; `None` for any
/// other request.
///
/// A SIPS Request-URI promises TLS on every hop up to the domain's server, the last one to
/// us included (RFC 3261 §26.2.2, RFC 5630 §3.1.1, which removed the last-hop exception), so
/// such a request arrived through an element that broke that promise; serving it would pass
/// the call on as secure when it was not. It is not 416 Unsupported URI Scheme: we do
/// support `sips:` (RFC 3261 §21.4.16 means schemes the server does not know). RFC 5630 §5.3
/// answers a SIPS request that cannot be served securely with 480 and warning 380 "SIPS Not
/// Allowed", and so do we.
fn refuse_insecure_sips(request: &rsip::Request, from: Peer) -> Option<rsip::Response> {
    if request.uri.scheme != Some(rsip::Scheme::Sips) || from.transport.is_secure() {
        return None;
    }
    tracing::info!(from = %from.addr, transport = %from.transport.via_name(), "sips: request over a transport without TLS refused");
    let mut response = msg::response_to(request, 480, None, Some(&sip::transaction::new_tag()));
    msg::add_header(
        &mut response.headers,
        "Warning",
        "380 amtsleitung \"SIPS Not Allowed\"".into(),
    );
    Some(response)
}

/// Whether a URI (as text) has the `sips:` scheme.
fn is_sips(uri: &str) -> bool {
    uri.get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
}

/// `Route:` header lines for a pre-loaded route set, first hop first.
fn route_headers(route: &[String]) -> String {
    route.iter().map(|r| format!("Route: {r}\r\n")).collect()
}

/// Where a SIP URI (or a name-addr around one) with a literal IP address points: over the
/// transport its `transport` parameter names (TLS for `sips:`, RFC 3261 §26.2.2; else UDP),
/// at its port or that transport's default (5061 for TLS, else 5060). No DNS here.
pub fn uri_next_hop(uri: &str) -> Option<Peer> {
    let uri = match (uri.find('<'), uri.find('>')) {
        (Some(open), Some(close)) if open < close => &uri[open + 1..close],
        _ => uri,
    };
    let parsed = msg::parse_uri(uri)?;
    let host = parsed.host_with_port.host.to_string();
    let ip: IpAddr = host.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
    let named = parsed.params.iter().find_map(|p| match p {
        rsip::Param::Transport(t) => TransportKind::from_uri_param(&t.to_string()),
        _ => None,
    });
    let transport = if parsed.scheme == Some(rsip::Scheme::Sips) {
        TransportKind::Tls
    } else {
        named.unwrap_or(TransportKind::Udp)
    };
    let port = parsed
        .host_with_port
        .port
        .map(|p| *p.value())
        .unwrap_or(transport.default_port());
    Some(Peer {
        addr: SocketAddr::new(ip, port),
        transport,
        connection: None,
    })
}

/// `Session-Expires` (when the session has a timer) and our `Supported` on a request that
/// refreshes the session.
fn add_session_timer(request: &mut rsip::Request, timer: Option<&SessionTimer>) {
    if let Some(timer) = timer {
        msg::add_header(
            &mut request.headers,
            "Session-Expires",
            timer.header_value(),
        );
    }
    msg::add_header(&mut request.headers, "Supported", SUPPORTED.into());
}

/// Where a request inside `dialog` goes: for a leg we placed, the flow the phone
/// registered on unless proxies put themselves in the route set (its Contact may be a
/// private address behind the family's router); for a caller's leg, its remote target.
fn in_dialog_hop(dialog: &Dialog, flow: Peer, outbound: bool) -> SocketAddr {
    if outbound && dialog.route_set().is_empty() {
        flow.addr
    } else {
        dialog.next_hop().unwrap_or(flow.addr)
    }
}

/// The `Reason` header (RFC 3326) of a BYE we send: Q.850 cause 102 ("recovery on timer
/// expiry", what FreeSWITCH and Asterisk send for a dead call) when a timer ended the call,
/// 16 (normal clearing) otherwise, with our words as text.
fn bye_reason(reason: &str) -> String {
    let cause = match reason {
        MEDIA_TIMEOUT | SESSION_TIMER_EXPIRED | NO_ACK => 102,
        _ => 16,
    };
    let text: String = reason.chars().filter(|c| *c != '"' && *c != '\\').collect();
    format!("Q.850;cause={cause};text=\"{text}\"")
}

/// The local address the kernel would use to reach `peer` (no packet is sent: connecting a
/// UDP socket only consults the routing table).
pub fn local_ip_towards(peer: IpAddr, listen: IpAddr) -> IpAddr {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sip::transaction::TransportKind;

    use super::*;

    const PHONE: &str = "127.0.0.1:5070";
    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

    fn endpoint() -> SipEndpoint {
        SipEndpoint::new(
            EndpointConfig {
                listen: "127.0.0.1:5060".parse().unwrap(),
                tls_port: Some(5061),
                min_session_expires: 90,
                max_legs: 2,
                max_transactions: sip::transaction::DEFAULT_MAX_TRANSACTIONS,
            },
            Timers::default(),
        )
    }

    fn phone() -> Peer {
        Peer {
            addr: PHONE.parse().unwrap(),
            transport: TransportKind::Udp,
            connection: None,
        }
    }

    /// A request from the phone; `extra` are more header lines, `body` an SDP or nothing.
    fn request(
        method: &str,
        call: &str,
        cseq: u32,
        to_tag: Option<&str>,
        extra: &str,
        body: &str,
    ) -> Vec<u8> {
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} sip:81234@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {PHONE};branch=z9hG4bK{call}{cseq}{method}\r\n\
             From: <sip:alice@127.0.0.1>;tag=alice\r\n\
             To: <sip:81234@127.0.0.1>{to_tag}\r\n\
             Call-ID: {call}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:alice@{PHONE}>\r\n\
             Max-Forwards: 70\r\n\
             {extra}{content_type}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn sent(ep: &mut SipEndpoint) -> Vec<String> {
        std::iter::from_fn(|| ep.poll_transmit())
            .map(|(_, bytes)| String::from_utf8(bytes).unwrap())
            .collect()
    }

    fn status_lines(messages: &[String]) -> Vec<&str> {
        messages
            .iter()
            .map(|m| m.lines().next().unwrap_or(""))
            .collect()
    }

    fn events(ep: &mut SipEndpoint) -> Vec<LegEvent> {
        std::iter::from_fn(|| ep.poll_event()).collect()
    }

    fn to_tag_of(response: &str) -> String {
        let to = response.lines().find(|l| l.starts_with("To:")).unwrap();
        to.split(";tag=").nth(1).unwrap().trim().to_string()
    }

    /// An INVITE the owner answered: the leg and our To tag.
    fn answered_call(
        ep: &mut SipEndpoint,
        call: &str,
        extra: &str,
        now: Instant,
    ) -> (LegId, String) {
        ep.handle_datagram(
            &request("INVITE", call, 1, None, extra, OFFER),
            phone(),
            now,
        );
        let leg = match events(ep).pop() {
            Some(LegEvent::Incoming(incoming)) => incoming.leg,
            other => panic!("expected Incoming, got {other:?}"),
        };
        ep.answer(leg, b"v=0 our answer".to_vec(), now);
        let out = sent(ep);
        let ok = out
            .iter()
            .find(|m| m.starts_with("SIP/2.0 200"))
            .expect("200 sent");
        assert!(ok.contains("v=0 our answer"), "{ok}");
        let tag = to_tag_of(ok);
        ep.handle_datagram(&request("ACK", call, 1, Some(&tag), "", ""), phone(), now);
        (leg, tag)
    }

    #[test]
    fn an_invite_becomes_a_leg_that_rings_and_is_answered_with_our_body() {
        let mut ep = endpoint();
        let now = Instant::now();
        ep.handle_datagram(&request("INVITE", "c1", 1, None, "", OFFER), phone(), now);
        // The endpoint itself sends nothing but 100 Trying: the owner decides.
        assert_eq!(status_lines(&sent(&mut ep)), ["SIP/2.0 100 Trying"]);
        let Some(LegEvent::Incoming(incoming)) = ep.poll_event() else {
            panic!("no Incoming event");
        };
        assert_eq!(incoming.request.body, OFFER.as_bytes());
        assert_eq!(incoming.local_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
        ep.ring(incoming.leg, now);
        assert_eq!(status_lines(&sent(&mut ep)), ["SIP/2.0 180 Ringing"]);
        ep.answer(incoming.leg, b"v=0 answer".to_vec(), now);
        let out = sent(&mut ep);
        assert_eq!(status_lines(&out), ["SIP/2.0 200 OK"]);
        assert!(
            out[0].contains("Contact: <sip:amtsleitung@127.0.0.1:5060>"),
            "{}",
            out[0]
        );
        assert!(out[0].ends_with("v=0 answer"), "{}", out[0]);
    }

    #[test]
    fn a_bye_ends_the_leg_and_a_bye_for_no_dialog_gets_481() {
        let mut ep = endpoint();
        let now = Instant::now();
        let (leg, tag) = answered_call(&mut ep, "c2", "", now);
        sent(&mut ep);
        ep.handle_datagram(&request("BYE", "c2", 2, Some(&tag), "", ""), phone(), now);
        assert_eq!(status_lines(&sent(&mut ep)), ["SIP/2.0 200 OK"]);
        match events(&mut ep).as_slice() {
            [
                LegEvent::Ended {
                    leg: ended,
                    answered: true,
                    final_status: 200,
                    reason,
                },
            ] => {
                assert_eq!(*ended, leg);
                assert_eq!(reason, "caller hung up");
            }
            other => panic!("{other:?}"),
        }
        ep.forget(leg, "done", now);
        assert_eq!(ep.leg_count(), 0);
        ep.handle_datagram(&request("BYE", "c2", 3, Some(&tag), "", ""), phone(), now);
        assert_eq!(
            status_lines(&sent(&mut ep)),
            ["SIP/2.0 481 Call/Transaction Does Not Exist"]
        );
    }

    #[test]
    fn cancel_before_the_answer_ends_the_leg_with_487() {
        let mut ep = endpoint();
        let now = Instant::now();
        ep.handle_datagram(&request("INVITE", "c3", 1, None, "", OFFER), phone(), now);
        let leg = match events(&mut ep).pop() {
            Some(LegEvent::Incoming(i)) => i.leg,
            other => panic!("{other:?}"),
        };
        sent(&mut ep);
        let cancel = String::from_utf8(request("CANCEL", "c3", 1, None, "", ""))
            .unwrap()
            .replace("z9hG4bKc31CANCEL", "z9hG4bKc31INVITE");
        ep.handle_datagram(cancel.as_bytes(), phone(), now);
        let out = sent(&mut ep);
        assert!(
            status_lines(&out).contains(&"SIP/2.0 487 Request Terminated"),
            "{out:?}"
        );
        assert!(matches!(
            events(&mut ep).as_slice(),
            [LegEvent::Ended { leg: l, answered: false, final_status: 487, .. }] if *l == leg
        ));
    }

    #[test]
    fn a_rejected_leg_gets_the_status_and_ends_unanswered() {
        let mut ep = endpoint();
        let now = Instant::now();
        ep.handle_datagram(&request("INVITE", "c4", 1, None, "", OFFER), phone(), now);
        let leg = match events(&mut ep).pop() {
            Some(LegEvent::Incoming(i)) => i.leg,
            other => panic!("{other:?}"),
        };
        sent(&mut ep);
        ep.reject(leg, 404, None, "no route", now);
        assert_eq!(status_lines(&sent(&mut ep)), ["SIP/2.0 404 Not Found"]);
        assert!(matches!(
            events(&mut ep).as_slice(),
            [LegEvent::Ended { answered: false, final_status: 404, reason, .. }] if reason == "no route"
        ));
    }

    #[test]
    fn legs_beyond_the_limit_get_503() {
        let mut ep = endpoint();
        let now = Instant::now();
        for call in ["a", "b", "c"] {
            ep.handle_datagram(&request("INVITE", call, 1, None, "", OFFER), phone(), now);
        }
        let out = sent(&mut ep);
        assert!(
            status_lines(&out).contains(&"SIP/2.0 503 Too Many Calls"),
            "{out:?}"
        );
        assert_eq!(ep.leg_count(), 2);
    }

    #[test]
    fn a_reinvite_offer_goes_to_the_owner_and_its_answer_back_to_the_phone() {
        let mut ep = endpoint();
        let now = Instant::now();
        let (leg, tag) = answered_call(&mut ep, "c5", "", now);
        sent(&mut ep);
        ep.handle_datagram(
            &request("INVITE", "c5", 2, Some(&tag), "", OFFER),
            phone(),
            now,
        );
        match events(&mut ep).as_slice() {
            [LegEvent::Offer { leg: l, body }] => {
                assert_eq!(*l, leg);
                assert_eq!(body, OFFER.as_bytes());
            }
            other => panic!("{other:?}"),
        }
        ep.answer_offer(leg, Ok(b"v=0 second answer".to_vec()), now);
        let out = sent(&mut ep);
        let ok = out
            .iter()
            .find(|m| m.starts_with("SIP/2.0 200"))
            .expect("200");
        assert!(ok.ends_with("v=0 second answer"), "{ok}");
        // A refused offer gets the owner's status.
        ep.handle_datagram(
            &request("INVITE", "c5", 3, Some(&tag), "", OFFER),
            phone(),
            now,
        );
        events(&mut ep);
        ep.answer_offer(leg, Err(488), now);
        assert!(status_lines(&sent(&mut ep)).contains(&"SIP/2.0 488 Not Acceptable Here"));
    }

    #[test]
    fn a_session_nobody_refreshes_is_ended_with_bye_and_reason() {
        let mut ep = endpoint();
        let start = Instant::now();
        let (leg, _) = answered_call(
            &mut ep,
            "c6",
            "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n",
            start,
        );
        sent(&mut ep);
        let due = ep.poll_timeout().expect("a deadline");
        assert!(due <= start + Duration::from_secs(90), "{:?}", due - start);
        // Nothing before the deadline.
        ep.handle_timeout(start + Duration::from_secs(30));
        assert!(events(&mut ep).is_empty());
        let mut now = start;
        let mut ended = None;
        while now < start + Duration::from_secs(200) && ended.is_none() {
            now += Duration::from_secs(1);
            ep.handle_timeout(now);
            ended = events(&mut ep).into_iter().find_map(|e| match e {
                LegEvent::Ended { leg: l, reason, .. } if l == leg => Some(reason),
                _ => None,
            });
        }
        assert_eq!(ended.as_deref(), Some(SESSION_TIMER_EXPIRED));
        let bye = sent(&mut ep)
            .into_iter()
            .find(|m| m.starts_with("BYE "))
            .expect("BYE sent");
        assert!(bye.contains("Reason: Q.850;cause=102"), "{bye}");
    }

    #[test]
    fn a_draining_endpoint_refuses_new_calls_and_health_checks_but_keeps_its_calls() {
        let mut ep = endpoint();
        let now = Instant::now();
        ep.handle_datagram(&request("INVITE", "c1", 1, None, "", OFFER), phone(), now);
        let _ = sent(&mut ep);
        assert!(matches!(
            events(&mut ep).as_slice(),
            [LegEvent::Incoming(_)]
        ));
        ep.set_draining(true);
        ep.handle_datagram(&request("INVITE", "c2", 1, None, "", OFFER), phone(), now);
        ep.handle_datagram(&request("OPTIONS", "o1", 1, None, "", ""), phone(), now);
        let out = sent(&mut ep);
        assert_eq!(
            status_lines(&out),
            [
                "SIP/2.0 100 Trying",
                "SIP/2.0 503 Draining",
                "SIP/2.0 503 Draining"
            ]
        );
        assert!(
            out[1..].iter().all(|r| r.contains("Retry-After: 300")),
            "{out:?}"
        );
        assert!(events(&mut ep).is_empty(), "no new call while draining");
        // The call it had goes on.
        assert_eq!(ep.leg_count(), 1);
    }

    #[test]
    fn options_are_answered_and_register_goes_to_the_registrar() {
        let mut ep = endpoint();
        let now = Instant::now();
        ep.handle_datagram(&request("OPTIONS", "o1", 1, None, "", ""), phone(), now);
        let out = sent(&mut ep);
        assert_eq!(status_lines(&out), ["SIP/2.0 200 OK"]);
        assert!(out[0].contains(&format!("Allow: {ALLOW}")), "{}", out[0]);
        ep.handle_datagram(&request("REGISTER", "r1", 1, None, "", ""), phone(), now);
        assert!(
            sent(&mut ep).is_empty(),
            "the endpoint leaves REGISTER to its service"
        );
        assert!(events(&mut ep).is_empty());
        let register = ep.poll_request().expect("REGISTER handed on");
        let response = msg::response_to(&register.request, 401, None, Some("t"));
        ep.respond_to(&register.key, response, now);
        assert_eq!(status_lines(&sent(&mut ep)), ["SIP/2.0 401 Unauthorized"]);
        // SUBSCRIBE (busy lamps) goes to its service too; PUBLISH is known but not served.
        ep.handle_datagram(&request("SUBSCRIBE", "s1", 1, None, "", ""), phone(), now);
        assert!(sent(&mut ep).is_empty());
        assert!(ep.poll_request().is_some(), "SUBSCRIBE handed on");
        ep.handle_datagram(&request("PUBLISH", "p1", 1, None, "", ""), phone(), now);
        assert_eq!(
            status_lines(&sent(&mut ep)),
            ["SIP/2.0 405 Method Not Allowed"]
        );
    }

    #[test]
    fn dtmf_by_info_reaches_the_owner() {
        let mut ep = endpoint();
        let now = Instant::now();
        let (leg, tag) = answered_call(&mut ep, "c7", "", now);
        sent(&mut ep);
        let body = "Signal=5\r\nDuration=160\r\n";
        let info = String::from_utf8(request("INFO", "c7", 2, Some(&tag), "", body))
            .unwrap()
            .replace("application/sdp", "application/dtmf-relay");
        ep.handle_datagram(info.as_bytes(), phone(), now);
        assert_eq!(status_lines(&sent(&mut ep)), ["SIP/2.0 200 OK"]);
        assert!(matches!(
            events(&mut ep).as_slice(),
            [LegEvent::Dtmf { leg: l, digit: '5' }] if *l == leg
        ));
    }

    #[test]
    fn a_refer_on_a_call_is_accepted_handed_on_and_its_progress_goes_back_as_notify() {
        let mut ep = endpoint();
        let now = Instant::now();
        let (leg, tag) = answered_call(&mut ep, "c9", "", now);
        sent(&mut ep);
        let refer = request(
            "REFER",
            "c9",
            2,
            Some(&tag),
            "Refer-To: <sip:103@127.0.0.1>\r\nReferred-By: <sip:alice@127.0.0.1>\r\n",
            "",
        );
        ep.handle_datagram(&refer, phone(), now);
        assert_eq!(status_lines(&sent(&mut ep)), ["SIP/2.0 202 Accepted"]);
        match events(&mut ep).as_slice() {
            [LegEvent::Refer { leg: l, refer_to }] => {
                assert_eq!(*l, leg);
                assert_eq!(refer_to.user.as_deref(), Some("103"));
            }
            other => panic!("expected Refer, got {other:?}"),
        }
        ep.notify_refer(leg, 100, "Trying", now);
        ep.notify_refer(leg, 200, "OK", now);
        let notifies = sent(&mut ep);
        assert_eq!(notifies.len(), 2, "{notifies:?}");
        for (notify, (state, line)) in notifies.iter().zip([
            ("active;expires=60", "SIP/2.0 100 Trying"),
            ("terminated;reason=noresource", "SIP/2.0 200 OK"),
        ]) {
            assert!(notify.starts_with("NOTIFY sip:alice@"), "{notify}");
            assert!(notify.contains("Event: refer"), "{notify}");
            assert!(
                notify.contains(&format!("Subscription-State: {state}")),
                "{notify}"
            );
            assert!(notify.contains("message/sipfrag"), "{notify}");
            assert!(notify.ends_with(&format!("{line}\r\n")), "{notify}");
        }
    }

    #[test]
    fn a_refer_outside_a_call_gets_481_and_one_without_refer_to_400() {
        let mut ep = endpoint();
        let now = Instant::now();
        let stray = request("REFER", "nope", 2, Some("x"), "Refer-To: <sip:1@h>\r\n", "");
        ep.handle_datagram(&stray, phone(), now);
        assert_eq!(
            status_lines(&sent(&mut ep)),
            ["SIP/2.0 481 Call/Transaction Does Not Exist"]
        );
        let (_, tag) = answered_call(&mut ep, "c10", "", now);
        sent(&mut ep);
        ep.handle_datagram(
            &request("REFER", "c10", 2, Some(&tag), "", ""),
            phone(),
            now,
        );
        assert_eq!(status_lines(&sent(&mut ep)), ["SIP/2.0 400 Bad Request"]);
        assert!(events(&mut ep).is_empty());
    }

    #[test]
    fn hanging_up_an_answered_leg_sends_bye_once() {
        let mut ep = endpoint();
        let now = Instant::now();
        let (leg, _) = answered_call(&mut ep, "c8", "", now);
        sent(&mut ep);
        ep.hangup(leg, "hung up by dialplan", now);
        ep.hangup(leg, "again", now);
        let byes = sent(&mut ep)
            .into_iter()
            .filter(|m| m.starts_with("BYE "))
            .count();
        assert_eq!(byes, 1);
        assert_eq!(events(&mut ep).len(), 1);
    }

    fn outbound_call() -> OutboundCall {
        OutboundCall {
            request_uri: format!("sip:101@{PHONE}"),
            to: "sip:101@amtsleitung".into(),
            from_user: "0711123".into(),
            from_name: Some("Anna \"A\" Amt".into()),
            next_hop: phone(),
            route: Vec::new(),
            from_host: None,
            headers: Vec::new(),
            credentials: None,
            response_timeout: None,
        }
    }

    /// A response from the phone to the INVITE we sent (`invite` is its text).
    fn answer_to(invite: &str, status: &str, to_tag: Option<&str>, body: &str) -> Vec<u8> {
        let header = |name: &str| {
            invite
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in {invite}"))
                .to_string()
        };
        let to = match to_tag {
            Some(tag) => format!("{};tag={tag}", header("To:")),
            None => header("To:"),
        };
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "SIP/2.0 {status}\r\n{}\r\n{}\r\n{to}\r\n{}\r\n{}\r\nContact: <sip:101@{PHONE}>\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
            header("Via:"),
            header("From:"),
            header("Call-ID:"),
            header("CSeq:"),
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn requests_to_a_phone_behind_a_proxy_go_to_the_proxy_with_its_path_as_route() {
        let mut ep = endpoint();
        let now = Instant::now();
        let proxy = Peer {
            addr: "192.0.2.50:5090".parse().expect("address"),
            transport: sip::transaction::TransportKind::Udp,
            connection: None,
        };
        let route = vec![
            "<sip:192.0.2.50:5090;lr>".to_string(),
            "<sip:192.0.2.51;lr>".to_string(),
        ];
        let call = OutboundCall {
            next_hop: proxy,
            route,
            ..outbound_call()
        };
        ep.invite(&call, b"v=0 offer".to_vec(), now)
            .expect("INVITE placed");
        let (to, invite) = ep.poll_transmit().expect("INVITE sent");
        let invite = String::from_utf8(invite).expect("text");
        assert_eq!(to.addr, proxy.addr);
        assert!(invite.starts_with(&format!("INVITE sip:101@{PHONE} SIP/2.0")));
        assert!(
            invite.contains("Route: <sip:192.0.2.50:5090;lr>\r\nRoute: <sip:192.0.2.51;lr>\r\n"),
            "{invite}"
        );
    }

    fn over_tls() -> Peer {
        Peer {
            transport: TransportKind::Tls,
            connection: Some(7),
            ..phone()
        }
    }

    /// The INVITE of [`request`] as it comes over TLS: Via TLS, Request-URI `uri`.
    fn tls_invite(call: &str, uri: &str) -> Vec<u8> {
        let text = String::from_utf8(request("INVITE", call, 1, None, "", OFFER)).unwrap();
        text.replacen(
            "INVITE sip:81234@127.0.0.1:5060",
            &format!("INVITE {uri}"),
            1,
        )
        .replacen("SIP/2.0/UDP", "SIP/2.0/TLS", 1)
        .into_bytes()
    }

    #[test]
    fn an_answer_over_tls_names_the_tls_port_and_transport_in_contact() {
        let mut ep = endpoint();
        let now = Instant::now();
        ep.handle_datagram(
            &tls_invite("tls1", "sip:81234@127.0.0.1:5061;transport=tls"),
            over_tls(),
            now,
        );
        let Some(LegEvent::Incoming(incoming)) = events(&mut ep).pop() else {
            panic!("no call");
        };
        ep.answer(incoming.leg, OFFER.as_bytes().to_vec(), now);
        let out: Vec<(Peer, Vec<u8>)> = std::iter::from_fn(|| ep.poll_transmit()).collect();
        let (to, ok) = out.last().expect("200 sent");
        assert_eq!(
            *to,
            over_tls(),
            "the answer goes back on the caller's connection"
        );
        let ok = String::from_utf8_lossy(ok);
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
        assert!(
            ok.contains("Contact: <sip:amtsleitung@127.0.0.1:5061;transport=tls>"),
            "{ok}"
        );
        // Our BYE goes over the same connection, with a TLS Via at the TLS port.
        ep.hangup(incoming.leg, "test", now);
        let bye = sent(&mut ep).pop().expect("BYE");
        assert!(bye.contains("Via: SIP/2.0/TLS 127.0.0.1:5061;"), "{bye}");
    }

    #[test]
    fn a_sips_invite_over_tls_gets_a_sips_contact() {
        let mut ep = endpoint();
        let now = Instant::now();
        ep.handle_datagram(&tls_invite("tls2", "sips:81234@127.0.0.1"), over_tls(), now);
        let Some(LegEvent::Incoming(incoming)) = events(&mut ep).pop() else {
            panic!("a sips: INVITE over TLS is a call");
        };
        ep.answer(incoming.leg, OFFER.as_bytes().to_vec(), now);
        let ok = sent(&mut ep).pop().expect("200 sent");
        assert!(
            ok.contains("Contact: <sips:amtsleitung@127.0.0.1:5061>"),
            "RFC 3261 §12.1.1: {ok}"
        );
    }

    #[test]
    fn a_sips_request_over_plain_udp_or_tcp_is_refused_with_480_sips_not_allowed() {
        for transport in [TransportKind::Udp, TransportKind::Tcp] {
            let mut ep = endpoint();
            let text = String::from_utf8(request("INVITE", "sips1", 1, None, "", OFFER)).unwrap();
            let text = text.replacen("INVITE sip:", "INVITE sips:", 1);
            let from = Peer {
                transport,
                ..phone()
            };
            ep.handle_datagram(text.as_bytes(), from, Instant::now());
            assert!(events(&mut ep).is_empty(), "no call over {transport:?}");
            let out = sent(&mut ep);
            assert_eq!(
                status_lines(&out).last(),
                Some(&"SIP/2.0 480 Temporarily Unavailable"),
                "{out:?}"
            );
            let refusal = out.last().map(String::as_str).unwrap_or_default();
            assert!(
                refusal.contains("Warning: 380 amtsleitung \"SIPS Not Allowed\""),
                "{refusal}"
            );
        }
    }

    #[test]
    fn uri_next_hop_takes_tls_from_the_parameter_or_the_sips_scheme() {
        let hop = uri_next_hop("<sip:10.0.0.5;lr;transport=tls>").expect("hop");
        assert_eq!(hop.transport, TransportKind::Tls);
        assert_eq!(hop.addr, "10.0.0.5:5061".parse().expect("address"));
        let hop = uri_next_hop("<sips:10.0.0.5:5071;lr>").expect("hop");
        assert_eq!(hop.transport, TransportKind::Tls);
        assert_eq!(hop.addr, "10.0.0.5:5071".parse().expect("address"));
    }

    #[test]
    fn uri_next_hop_reads_ip_literals_ports_and_transport() {
        let hop = uri_next_hop("<sip:10.0.0.5:5090;lr;transport=TCP>").expect("hop");
        assert_eq!(hop.addr, "10.0.0.5:5090".parse().expect("address"));
        assert_eq!(hop.transport, sip::transaction::TransportKind::Tcp);
        let hop = uri_next_hop("sip:[2001:db8::1];lr").expect("hop");
        assert_eq!(hop.addr, "[2001:db8::1]:5060".parse().expect("address"));
        assert_eq!(hop.transport, sip::transaction::TransportKind::Udp);
        assert!(uri_next_hop("sip:proxy.example.com;lr").is_none());
    }

    fn placed(ep: &mut SipEndpoint, now: Instant) -> (LegId, String) {
        let leg = ep
            .invite(&outbound_call(), b"v=0 offer".to_vec(), now)
            .expect("INVITE placed");
        let out = sent(ep);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0].starts_with(&format!("INVITE sip:101@{PHONE} SIP/2.0")),
            "{}",
            out[0]
        );
        assert!(
            out[0].contains("From: \"Anna A Amt\" <sip:0711123@127.0.0.1>;tag="),
            "{}",
            out[0]
        );
        assert!(out[0].ends_with("v=0 offer"), "{}", out[0]);
        (leg, out[0].clone())
    }

    /// `answer_to` with a digest challenge added (a carrier asking who we are).
    fn challenge_to(invite: &str) -> Vec<u8> {
        let text =
            String::from_utf8(answer_to(invite, "401 Unauthorized", Some("gw"), "")).expect("text");
        text.replacen(
            "Content-Length: 0",
            "WWW-Authenticate: Digest realm=\"carrier\", nonce=\"n1\", qop=\"auth\"\r\nContent-Length: 0",
            1,
        )
        .into_bytes()
    }

    #[test]
    fn a_carriers_challenge_to_our_invite_is_answered_once_then_the_refusal_stands() {
        let mut ep = endpoint();
        let now = Instant::now();
        let call = OutboundCall {
            from_host: Some("carrier.example".into()),
            headers: vec![(
                "P-Asserted-Identity".into(),
                "<sip:+4971112345101@carrier.example>".into(),
            )],
            credentials: Some(sip::digest::client::ClientCredentials {
                username: "4971112345".into(),
                secret: sip::digest::client::Secret::Password("geheim".into()),
            }),
            ..outbound_call()
        };
        let leg = ep
            .invite(&call, b"v=0 offer".to_vec(), now)
            .expect("placed");
        let first = sent(&mut ep).remove(0);
        assert!(first.contains("From: \"Anna A Amt\" <sip:0711123@carrier.example>;tag="));
        assert!(first.contains("P-Asserted-Identity: <sip:+4971112345101@carrier.example>\r\n"));
        assert!(first.contains("CSeq: 1 INVITE"));
        ep.handle_datagram(&challenge_to(&first), phone(), now);
        let out = sent(&mut ep);
        let second = out
            .iter()
            .find(|m| m.starts_with("INVITE "))
            .unwrap_or_else(|| panic!("no second INVITE in {out:?}"));
        let call_id = |m: &str| {
            m.lines()
                .find(|l| l.starts_with("Call-ID:"))
                .map(str::to_owned)
        };
        assert_eq!(call_id(second), call_id(&first), "same call");
        assert!(second.contains("CSeq: 2 INVITE"), "{second}");
        assert!(
            second.contains("Authorization: Digest username=\"4971112345\""),
            "{second}"
        );
        assert!(events(&mut ep).is_empty(), "the leg rings on");
        // A second challenge means the password is wrong: the leg ends with it.
        ep.handle_datagram(&challenge_to(second), phone(), now);
        match events(&mut ep).as_slice() {
            [LegEvent::Ended { leg: l, .. }] => assert_eq!(*l, leg),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_placed_call_rings_is_answered_and_acknowledged_once_per_2xx() {
        let mut ep = endpoint();
        let now = Instant::now();
        let (leg, invite) = placed(&mut ep, now);
        ep.handle_datagram(
            &answer_to(&invite, "180 Ringing", Some("ph"), ""),
            phone(),
            now,
        );
        ep.handle_datagram(
            &answer_to(&invite, "180 Ringing", Some("ph"), ""),
            phone(),
            now,
        );
        assert!(matches!(events(&mut ep).as_slice(), [LegEvent::Progress { leg: l }] if *l == leg));
        ep.handle_datagram(
            &answer_to(&invite, "200 OK", Some("ph"), "v=0 answer"),
            phone(),
            now,
        );
        let acks = sent(&mut ep);
        assert!(
            acks.iter()
                .any(|m| m.starts_with(&format!("ACK sip:101@{PHONE}"))),
            "{acks:?}"
        );
        match events(&mut ep).as_slice() {
            [LegEvent::Answered { leg: l, body }] => {
                assert_eq!(*l, leg);
                assert_eq!(body, b"v=0 answer");
            }
            other => panic!("{other:?}"),
        }
        // A retransmitted 2xx is acknowledged again and reported no more.
        ep.handle_datagram(
            &answer_to(&invite, "200 OK", Some("ph"), "v=0 answer"),
            phone(),
            now,
        );
        assert!(sent(&mut ep).iter().any(|m| m.starts_with("ACK ")));
        assert!(events(&mut ep).is_empty());
        // We hang up: BYE to the phone.
        ep.hangup(leg, "caller hung up", now);
        let out = sent(&mut ep);
        assert!(
            out.iter()
                .any(|m| m.starts_with(&format!("BYE sip:101@{PHONE}"))),
            "{out:?}"
        );
    }

    /// A placed call the phone answered, drained: the leg and our INVITE.
    fn answered_placed(ep: &mut SipEndpoint, now: Instant) -> LegId {
        let (leg, invite) = placed(ep, now);
        ep.handle_datagram(
            &answer_to(&invite, "200 OK", Some("ph"), "v=0 answer"),
            phone(),
            now,
        );
        sent(ep);
        events(ep);
        leg
    }

    #[test]
    fn a_reoffer_goes_out_as_a_reinvite_and_its_answer_comes_back_once_acknowledged() {
        let mut ep = endpoint();
        let now = Instant::now();
        let leg = answered_placed(&mut ep, now);
        assert!(ep.reoffer(leg, b"v=0 t38 offer".to_vec(), now));
        let out = sent(&mut ep);
        let reinvite = out
            .iter()
            .find(|m| m.starts_with(&format!("INVITE sip:101@{PHONE}")))
            .unwrap_or_else(|| panic!("re-INVITE in {out:?}"));
        assert!(reinvite.contains(";tag=ph"), "in the dialog: {reinvite}");
        assert!(reinvite.contains("\r\nContact: <"), "{reinvite}");
        assert!(reinvite.ends_with("v=0 t38 offer"), "{reinvite}");
        assert!(
            !ep.reoffer(leg, b"v=0 another".to_vec(), now),
            "one offer at a time"
        );
        let ok = answer_to(reinvite, "200 OK", None, "v=0 t38 answer");
        ep.handle_datagram(&ok, phone(), now);
        assert!(sent(&mut ep).iter().any(|m| m.starts_with("ACK ")));
        match events(&mut ep).as_slice() {
            [
                LegEvent::OfferAnswered {
                    leg: l,
                    status: 200,
                    body,
                },
            ] => {
                assert_eq!(*l, leg);
                assert_eq!(body, b"v=0 t38 answer");
            }
            other => panic!("{other:?}"),
        }
        // A retransmitted 2xx is acknowledged again and reported no more.
        ep.handle_datagram(&ok, phone(), now);
        assert!(sent(&mut ep).iter().any(|m| m.starts_with("ACK ")));
        assert!(events(&mut ep).is_empty());
        assert!(
            ep.reoffer(leg, b"v=0 back to audio".to_vec(), now),
            "the next offer may go once this one is answered"
        );
    }

    #[test]
    fn a_refused_reoffer_is_reported_with_its_status_and_the_call_stays_up() {
        let mut ep = endpoint();
        let now = Instant::now();
        let leg = answered_placed(&mut ep, now);
        assert!(ep.reoffer(leg, b"v=0 t38 offer".to_vec(), now));
        let out = sent(&mut ep);
        let reinvite = out.iter().find(|m| m.starts_with("INVITE ")).expect("sent");
        ep.handle_datagram(
            &answer_to(reinvite, "488 Not Acceptable Here", None, ""),
            phone(),
            now,
        );
        let out = sent(&mut ep);
        assert!(
            !out.iter().any(|m| m.starts_with("BYE ")),
            "no hang-up: {out:?}"
        );
        assert!(matches!(
            events(&mut ep).as_slice(),
            [LegEvent::OfferAnswered { leg: l, status: 488, body }] if *l == leg && body.is_empty()
        ));
    }

    #[test]
    fn a_reinvite_crossing_our_reoffer_gets_491_and_an_unanswered_one_is_408() {
        let mut ep = endpoint();
        let start = Instant::now();
        let (leg, tag) = answered_call(&mut ep, "c9", "", start);
        assert!(ep.reoffer(leg, b"v=0 t38 offer".to_vec(), start));
        sent(&mut ep);
        ep.handle_datagram(
            &request("INVITE", "c9", 2, Some(&tag), "", OFFER),
            phone(),
            start,
        );
        assert!(status_lines(&sent(&mut ep)).contains(&"SIP/2.0 491 Request Pending"));
        assert!(events(&mut ep).is_empty(), "the owner never sees it");
        // Nobody answers ours: Timer B (64·T1) ends it as 408, and the dialog is gone.
        ep.handle_timeout(start + Duration::from_secs(33));
        let reported = events(&mut ep);
        assert!(
            reported.iter().any(
                |e| matches!(e, LegEvent::OfferAnswered { leg: l, status: 408, .. } if *l == leg)
            ),
            "{reported:?}"
        );
        assert!(sent(&mut ep).iter().any(|m| m.starts_with("BYE ")));
    }

    #[test]
    fn a_placed_leg_knows_its_call_id_and_a_bye_from_the_phone_is_the_callee_hanging_up() {
        let mut ep = endpoint();
        let now = Instant::now();
        let (leg, invite) = placed(&mut ep, now);
        let call_id = invite
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .expect("INVITE has a Call-ID")
            .to_string();
        assert_eq!(ep.call_id(leg), Some(call_id.clone()));
        ep.handle_datagram(
            &answer_to(&invite, "200 OK", Some("ph"), "v=0 answer"),
            phone(),
            now,
        );
        sent(&mut ep);
        events(&mut ep);
        let our_tag = invite
            .lines()
            .find(|l| l.starts_with("From:"))
            .and_then(|l| l.split(";tag=").nth(1))
            .expect("From tag")
            .trim()
            .to_string();
        let bye = format!(
            "BYE sip:0711123@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {PHONE};branch=z9hG4bKbyefromphone\r\n\
             From: <sip:101@amtsleitung>;tag=ph\r\n\
             To: <sip:0711123@127.0.0.1>;tag={our_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 BYE\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        );
        ep.handle_datagram(bye.as_bytes(), phone(), now);
        assert_eq!(status_lines(&sent(&mut ep)), ["SIP/2.0 200 OK"]);
        assert!(matches!(
            events(&mut ep).as_slice(),
            [LegEvent::Ended { leg: l, answered: true, reason, .. }]
                if *l == leg && reason == "callee hung up"
        ));
        ep.forget(leg, "done", now);
        assert_eq!(ep.call_id(leg), None);
    }

    #[test]
    fn a_refusal_ends_the_placed_leg_with_its_status() {
        let mut ep = endpoint();
        let now = Instant::now();
        let (leg, invite) = placed(&mut ep, now);
        ep.handle_datagram(
            &answer_to(&invite, "486 Busy Here", Some("ph"), ""),
            phone(),
            now,
        );
        // The transaction layer acknowledges the refusal itself.
        assert!(sent(&mut ep).iter().any(|m| m.starts_with("ACK ")));
        assert!(matches!(
            events(&mut ep).as_slice(),
            [LegEvent::Ended { leg: l, answered: false, final_status: 486, .. }] if *l == leg
        ));
    }

    #[test]
    fn a_ringing_leg_we_give_up_on_is_cancelled_and_a_crossing_2xx_is_hung_up() {
        let mut ep = endpoint();
        let now = Instant::now();
        let (leg, invite) = placed(&mut ep, now);
        ep.handle_datagram(
            &answer_to(&invite, "180 Ringing", Some("ph"), ""),
            phone(),
            now,
        );
        events(&mut ep);
        ep.hangup(leg, "answered elsewhere", now);
        let out = sent(&mut ep);
        assert!(
            out.iter()
                .any(|m| m.starts_with(&format!("CANCEL sip:101@{PHONE}"))),
            "{out:?}"
        );
        assert!(matches!(
            events(&mut ep).as_slice(),
            [LegEvent::Ended { reason, answered: false, .. }] if reason == "answered elsewhere"
        ));
        // The phone was picked up just before the CANCEL arrived: ACK and BYE, no new event.
        ep.handle_datagram(
            &answer_to(&invite, "200 OK", Some("ph"), "v=0 answer"),
            phone(),
            now,
        );
        let out = sent(&mut ep);
        assert!(out.iter().any(|m| m.starts_with("ACK ")), "{out:?}");
        assert!(out.iter().any(|m| m.starts_with("BYE ")), "{out:?}");
        assert!(events(&mut ep).is_empty());
    }

    #[test]
    fn a_phone_that_never_answers_the_invite_ends_with_408() {
        let mut ep = endpoint();
        let start = Instant::now();
        let (leg, _) = placed(&mut ep, start);
        let mut now = start;
        let mut ended = None;
        while ended.is_none() && now < start + Duration::from_secs(40) {
            now += Duration::from_millis(500);
            ep.handle_timeout(now);
            ended = events(&mut ep).into_iter().find_map(|e| match e {
                LegEvent::Ended {
                    leg: l,
                    final_status,
                    ..
                } if l == leg => Some(final_status),
                _ => None,
            });
        }
        assert_eq!(ended, Some(408));
        // Timer B is 64*T1 = 32 s.
        assert!(now >= start + Duration::from_secs(32), "{:?}", now - start);
    }

    #[test]
    fn a_carrier_that_sends_nothing_within_the_response_timeout_ends_the_leg_as_408() {
        let mut ep = endpoint();
        let start = Instant::now();
        let call = OutboundCall {
            response_timeout: Some(Duration::from_secs(5)),
            ..outbound_call()
        };
        let silent = ep
            .invite(&call, b"v=0 offer".to_vec(), start)
            .expect("placed");
        let trying = ep
            .invite(&call, b"v=0 offer".to_vec(), start)
            .expect("placed");
        let invites = sent(&mut ep);
        // The second carrier says 100 Trying: it is there, and may ring as long as it likes.
        ep.handle_datagram(
            &answer_to(&invites[1], "100 Trying", None, ""),
            phone(),
            start,
        );
        assert_eq!(ep.poll_timeout(), Some(start + Duration::from_millis(500)));
        let ended_by = |ep: &mut SipEndpoint, at: Instant| {
            ep.handle_timeout(at);
            events(ep)
                .into_iter()
                .filter_map(|e| match e {
                    LegEvent::Ended {
                        leg,
                        final_status,
                        reason,
                        ..
                    } => Some((leg, final_status, reason)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(ended_by(&mut ep, start + Duration::from_millis(4900)), []);
        assert_eq!(
            ended_by(&mut ep, start + Duration::from_secs(5)),
            [(silent, 408, "no response in 5 s".to_string())]
        );
        assert_eq!(ended_by(&mut ep, start + Duration::from_secs(20)), []);
        assert!(
            ep.legs
                .get(&trying)
                .is_some_and(|l| l.state == LegState::Early)
        );
    }
}
