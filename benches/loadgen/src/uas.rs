//! The called side of `--mode pairs`: a minimal SIP UAS for the INVITEs the server sends
//! when its dialplan dials the load generator, one callee leg per two-party call.
//!
//! [`CalleeUas`] is sans-IO: the driver feeds it datagrams ([`CalleeUas::handle_datagram`])
//! and the time ([`CalleeUas::handle_timeout`]), and drains datagrams to send
//! ([`CalleeUas::poll_transmit`]) and media changes for the RTP sender
//! ([`CalleeUas::poll_media`]). [`spawn`] is that driver: one thread on one UDP socket.
//! Like the UAC it only covers what our own server sends: INVITE (and re-INVITE), ACK, BYE,
//! CANCEL, OPTIONS, UPDATE; no authentication, no forking, no TCP.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use media::codec::CodecKind;
use media::sdp::{Codec, LocalMedia};

use crate::sip_text::{self, SipMsg};

/// First digit of the numbers the UAC dials in pairs mode; the other four are the call's
/// index, which the dialplan passes on in the Request-URI of the INVITE to us.
pub const PAIR_PREFIX: char = '7';
/// Most two-party calls: the index has four digits.
pub const MAX_PAIR_CALLS: usize = 10_000;
/// RFC 3261 Timer T1 and T2 (§17.1.1.1): 2xx retransmission starts at T1 and doubles up to T2.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// A 2xx is retransmitted until the ACK comes or 64·T1 have passed (RFC 3261 §13.3.1.4).
const ACK_WAIT: Duration = Duration::from_secs(32);
/// Methods we answer (Allow, RFC 3261 §20.5); UPDATE lets the server refresh the session
/// without a new offer (RFC 4028 §9).
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE";
/// Largest SIP datagram we expect (RFC 3261 §18.1.1: UDP messages stay well below this).
const MAX_DATAGRAM: usize = 65_536;

/// The number the UAC dials for two-party call `index` (0-based).
pub fn pair_number(index: usize) -> String {
    format!("{PAIR_PREFIX}{index:04}")
}

/// The call index in the user part of a Request-URI like `sip:70003@127.0.0.1:5080`.
pub fn pair_index(request_uri: &str) -> Option<usize> {
    let rest = request_uri.strip_prefix("sip:")?;
    let user = rest.split_once('@')?.0;
    let digits = user.strip_prefix(PAIR_PREFIX)?;
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The dialplan the server runs in pairs mode: every `7XXXX` is dialled on to our UAS at
/// `uas`, the dialled number kept as the user part so we can pair the legs.
pub fn pairs_dialplan(uas: SocketAddr) -> String {
    format!(
        "# Written by amt-loadgen --mode pairs, deleted when it ends.\n\
         # Every 7XXXX is a two-party call to the load generator's own callee side.\n\
         [[rule]]\n\
         name = \"loadgen two-party call\"\n\
         public = true\n\
         match = \"_{PAIR_PREFIX}XXXX\"\n\
         actions = [ {{ dial = {{ uri = \"sip:${{EXTEN}}@{uas}\" }} }}, {{ hangup = \"unavailable\" }} ]\n"
    )
}

/// The SDP codec for a codec the load generator encodes.
fn sdp_codec(codec: CodecKind) -> Codec {
    match codec {
        CodecKind::Pcmu => Codec::Pcmu,
        CodecKind::Pcma => Codec::Pcma,
        CodecKind::G722 => Codec::G722,
        CodecKind::Opus => Codec::Opus,
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination: the request's source address (RFC 3581 `rport`, the server asks for it).
    pub to: SocketAddr,
    /// SIP message text.
    pub text: String,
}

/// A change of what a callee leg sends: start (or move) its RTP to `send_to`, or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegMedia {
    /// Participant index (calls..2·calls).
    pub participant: usize,
    /// The server's RTP address from its offer; `None` when the leg ended.
    pub send_to: Option<SocketAddr>,
}

/// What the callee side saw, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UasTally {
    /// New INVITEs (not retransmissions, not re-INVITEs).
    pub invites: u64,
    /// INVITEs answered with 200.
    pub answered: u64,
    /// INVITE retransmissions answered with the same 200 again.
    pub invite_retransmissions: u64,
    /// INVITEs refused (unknown number, slot taken, no usable offer, merged request).
    pub rejected: u64,
    /// re-INVITEs and UPDATEs answered.
    pub refreshes: u64,
    /// BYEs that ended a leg (retransmitted BYEs are answered but not counted).
    pub byes: u64,
    /// CANCELs received.
    pub cancels: u64,
    /// 2xx retransmissions sent because no ACK came (RFC 3261 §13.3.1.4).
    pub ok_retransmissions: u64,
    /// Legs whose ACK never came within 64·T1.
    pub acks_missing: u64,
}

/// Where a callee leg's dialog is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DialogState {
    /// 200 sent, waiting for the ACK.
    Answered,
    /// ACK received.
    Confirmed,
    /// BYE received and answered.
    Ended,
}

/// 2xx retransmission schedule of one dialog.
#[derive(Debug, Clone, Copy)]
struct Retransmit {
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

impl Retransmit {
    fn start(now: Instant) -> Self {
        Self {
            next: now + T1,
            interval: T1,
            give_up: now + ACK_WAIT,
        }
    }
}

/// One callee leg: an INVITE we answered.
#[derive(Debug, Clone)]
struct CalleeDialog {
    slot: usize,
    /// Branch of the initial INVITE: a retransmission carries the same one, a CANCEL too.
    invite_branch: Option<String>,
    to_tag: String,
    state: DialogState,
    /// The last 2xx to an INVITE, sent again for retransmitted INVITEs and until the ACK.
    ok: String,
    peer: SocketAddr,
    retransmit: Option<Retransmit>,
    /// Our SDP answer body and its `o=` version (RFC 3264 §8: bumped only when it changes).
    sdp: String,
    sdp_version: u64,
    send_to: Option<SocketAddr>,
}

/// Why an offer could not be answered (the reason phrase of our 488).
#[derive(Debug, Clone, PartialEq, Eq)]
enum OfferError {
    /// Unreadable, or no stream with our codec.
    Sdp(media::sdp::SdpError),
    /// Our codec under another payload type than the one the shared sender writes.
    PayloadType { got: u8, want: u8 },
    /// Nowhere to send RTP (port 0, inactive, c=0.0.0.0).
    NoRemote,
}

impl From<media::sdp::SdpError> for OfferError {
    fn from(e: media::sdp::SdpError) -> Self {
        Self::Sdp(e)
    }
}

impl std::fmt::Display for OfferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sdp(e) => write!(f, "SDP offer: {e}"),
            Self::PayloadType { got, want } => {
                write!(
                    f,
                    "our codec is payload type {got}, our sender sends {want}"
                )
            }
            Self::NoRemote => write!(f, "no address to send RTP to"),
        }
    }
}

/// The callee side of all two-party calls.
#[derive(Debug)]
pub struct CalleeUas {
    local: SocketAddr,
    codec: CodecKind,
    /// Receive address of callee slot k (participant `first_participant + k`).
    rtp: Vec<SocketAddr>,
    first_participant: usize,
    dialogs: HashMap<String, CalleeDialog>,
    /// Call-ID holding each slot.
    slots: Vec<Option<String>>,
    transmits: VecDeque<Transmit>,
    media: VecDeque<LegMedia>,
    tally: UasTally,
}

impl CalleeUas {
    /// A UAS answering on SIP address `local`, offering only `codec`, with one RTP receive
    /// address per call; callee leg k is participant `first_participant + k`.
    pub fn new(
        local: SocketAddr,
        codec: CodecKind,
        rtp: Vec<SocketAddr>,
        first_participant: usize,
    ) -> Self {
        let slots = vec![None; rtp.len()];
        Self {
            local,
            codec,
            rtp,
            first_participant,
            dialogs: HashMap::new(),
            slots,
            transmits: VecDeque::new(),
            media: VecDeque::new(),
            tally: UasTally::default(),
        }
    }

    /// Counts so far.
    pub fn tally(&self) -> UasTally {
        self.tally
    }

    /// Whether callee leg `slot` is answered, has somewhere to send RTP and has not ended.
    pub fn is_up(&self, slot: usize) -> bool {
        self.slots
            .get(slot)
            .and_then(Option::as_ref)
            .and_then(|cid| self.dialogs.get(cid))
            .is_some_and(|d| d.state != DialogState::Ended && d.send_to.is_some())
    }

    /// Callee legs up right now.
    pub fn legs_up(&self) -> usize {
        (0..self.slots.len()).filter(|&s| self.is_up(s)).count()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next change for the RTP sender.
    pub fn poll_media(&mut self) -> Option<LegMedia> {
        self.media.pop_front()
    }

    /// When [`Self::handle_timeout`] wants to run next, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.dialogs
            .values()
            .filter_map(|d| d.retransmit.map(|r| r.next))
            .min()
    }

    /// Retransmits unacknowledged 2xx responses that are due (RFC 3261 §13.3.1.4).
    pub fn handle_timeout(&mut self, now: Instant) {
        for d in self.dialogs.values_mut() {
            let Some(r) = d.retransmit.as_mut() else {
                continue;
            };
            if now < r.next {
                continue;
            }
            if now >= r.give_up {
                // The RFC has the UAS end the dialog with a BYE here; the run reports it
                // instead, and the leg's media keeps flowing so the numbers stay comparable.
                d.retransmit = None;
                self.tally.acks_missing += 1;
                continue;
            }
            self.transmits.push_back(Transmit {
                to: d.peer,
                text: d.ok.clone(),
            });
            self.tally.ok_retransmissions += 1;
            r.interval = (r.interval * 2).min(T2);
            r.next = now + r.interval;
        }
    }

    /// One received datagram from `from`. Anything that is not SIP we can read is dropped,
    /// as a UDP SIP element does (RFC 3261 §18.3).
    pub fn handle_datagram(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        let Ok(text) = std::str::from_utf8(datagram) else {
            return;
        };
        let Some(msg) = sip_text::parse(text) else {
            return;
        };
        let Some(method) = msg.method else {
            // A response: we send no requests, so there is no transaction it could match.
            return;
        };
        match method {
            "INVITE" => self.on_invite(&msg, from, now),
            "ACK" => self.on_ack(&msg),
            "BYE" => self.on_bye(&msg, from),
            "CANCEL" => self.on_cancel(&msg, from),
            "OPTIONS" => self.respond(&msg, from, 200, "OK", &self.allow_header(), None),
            "UPDATE" => self.on_update(&msg, from),
            _ => self.respond(&msg, from, 501, "Not Implemented", "", None),
        }
    }

    fn allow_header(&self) -> String {
        format!("Allow: {ALLOW}\r\n")
    }

    fn contact_header(&self) -> String {
        format!("Contact: <sip:callee@{}>\r\nAllow: {ALLOW}\r\n", self.local)
    }

    fn respond(
        &mut self,
        msg: &SipMsg<'_>,
        to: SocketAddr,
        code: u16,
        reason: &str,
        extra: &str,
        to_tag: Option<&str>,
    ) {
        let text = sip_text::response(msg, code, reason, to_tag, extra, None);
        self.transmits.push_back(Transmit { to, text });
    }

    /// Refuses a new INVITE; the server's client transaction ACKs it with the same branch,
    /// which finds no dialog here and is dropped.
    fn reject(&mut self, msg: &SipMsg<'_>, to: SocketAddr, code: u16, reason: &str) {
        self.tally.rejected += 1;
        let tag = format!("rej{}", self.tally.rejected);
        self.respond(msg, to, code, reason, "", Some(&tag));
    }

    /// Our SDP answer to `offer` for `slot`: the negotiated codec must be ours at the
    /// payload type the sender uses, and there must be an address to send to.
    fn answer(
        &self,
        slot: usize,
        offer: &str,
        version: u64,
    ) -> Result<(String, SocketAddr), OfferError> {
        let rtp = self.rtp.get(slot).copied().ok_or(OfferError::NoRemote)?;
        let offer = media::sdp::parse(offer)?;
        let local = LocalMedia {
            ip: rtp.ip(),
            port: rtp.port(),
            codecs: vec![sdp_codec(self.codec)],
            session_id: (self.first_participant + slot) as u64 + 1,
            session_version: version,
            srtp: media::sdp::LocalSrtp::off(),
        };
        let (sdp, negotiated) = media::sdp::answer(&offer, &local)?;
        let want = sip_text::offer_pt(self.codec);
        if negotiated.payload_type != want {
            return Err(OfferError::PayloadType {
                got: negotiated.payload_type,
                want,
            });
        }
        let remote = negotiated.remote_rtp.ok_or(OfferError::NoRemote)?;
        Ok((sdp, remote))
    }

    fn on_invite(&mut self, msg: &SipMsg<'_>, from: SocketAddr, now: Instant) {
        if let Some(d) = self.dialogs.get(msg.call_id) {
            if msg.to_tag.is_some_and(|t| t == d.to_tag) {
                return self.on_reinvite(msg, from, now);
            }
            if msg.to_tag.is_none() && msg.branch == d.invite_branch.as_deref() {
                // A retransmission: the same 200 again, not a new leg (RFC 3261 §17.2.1).
                let text = d.ok.clone();
                self.tally.invite_retransmissions += 1;
                self.transmits.push_back(Transmit { to: from, text });
                return;
            }
            // Same Call-ID, another transaction and no tag of ours: RFC 3261 §8.2.2.2.
            return self.reject(msg, from, 482, "Loop Detected");
        }
        if msg.to_tag.is_some() {
            // A re-INVITE for a dialog we do not know.
            return self.respond(msg, from, 481, "Call/Transaction Does Not Exist", "", None);
        }
        self.tally.invites += 1;
        let Some(slot) = msg.request_uri.and_then(pair_index) else {
            return self.reject(msg, from, 404, "Not Found");
        };
        if slot >= self.slots.len() {
            return self.reject(msg, from, 404, "Not Found");
        }
        if self.slots[slot].is_some() {
            return self.reject(msg, from, 486, "Busy Here");
        }
        let (sdp, remote) = match self.answer(slot, msg.body, 1) {
            Ok(a) => a,
            Err(err) => {
                let reason = format!("Not Acceptable Here ({err})");
                return self.reject(msg, from, 488, &reason);
            }
        };
        let to_tag = format!("callee{slot}");
        let ok = sip_text::response(
            msg,
            200,
            "OK",
            Some(&to_tag),
            &self.contact_header(),
            Some(("application/sdp", &sdp)),
        );
        self.transmits.push_back(Transmit {
            to: from,
            text: ok.clone(),
        });
        self.tally.answered += 1;
        self.slots[slot] = Some(msg.call_id.to_owned());
        self.media.push_back(LegMedia {
            participant: self.first_participant + slot,
            send_to: Some(remote),
        });
        self.dialogs.insert(
            msg.call_id.to_owned(),
            CalleeDialog {
                slot,
                invite_branch: msg.branch.map(str::to_owned),
                to_tag,
                state: DialogState::Answered,
                ok,
                peer: from,
                retransmit: Some(Retransmit::start(now)),
                sdp,
                sdp_version: 1,
                send_to: Some(remote),
            },
        );
    }

    /// A new offer inside the dialog (a re-INVITE, or an UPDATE with a body): answer it
    /// and move the leg's RTP if the server's address changed. Returns the 200's body.
    fn renegotiate(&mut self, call_id: &str, offer: &str) -> Result<String, OfferError> {
        let Some((slot, version, old)) = self
            .dialogs
            .get(call_id)
            .map(|d| (d.slot, d.sdp_version, d.sdp.clone()))
        else {
            return Err(OfferError::NoRemote);
        };
        let (mut sdp, mut remote) = self.answer(slot, offer, version)?;
        let mut new_version = version;
        if sdp != old {
            new_version += 1;
            (sdp, remote) = self.answer(slot, offer, new_version)?;
        }
        let participant = self.first_participant + slot;
        if let Some(d) = self.dialogs.get_mut(call_id) {
            if d.send_to != Some(remote) && d.state != DialogState::Ended {
                self.media.push_back(LegMedia {
                    participant,
                    send_to: Some(remote),
                });
            }
            d.send_to = Some(remote);
            d.sdp = sdp.clone();
            d.sdp_version = new_version;
        }
        self.tally.refreshes += 1;
        Ok(sdp)
    }

    fn on_reinvite(&mut self, msg: &SipMsg<'_>, from: SocketAddr, now: Instant) {
        let body = match self.renegotiate(msg.call_id, msg.body) {
            Ok(sdp) => sdp,
            Err(err) => {
                let reason = format!("Not Acceptable Here ({err})");
                return self.respond(msg, from, 488, &reason, "", None);
            }
        };
        let ok = sip_text::response(
            msg,
            200,
            "OK",
            None,
            &self.contact_header(),
            Some(("application/sdp", &body)),
        );
        self.transmits.push_back(Transmit {
            to: from,
            text: ok.clone(),
        });
        if let Some(d) = self.dialogs.get_mut(msg.call_id) {
            d.ok = ok;
            d.peer = from;
            d.retransmit = Some(Retransmit::start(now));
            if d.state == DialogState::Confirmed {
                d.state = DialogState::Answered;
            }
        }
    }

    fn on_update(&mut self, msg: &SipMsg<'_>, from: SocketAddr) {
        if !self.dialogs.contains_key(msg.call_id) {
            return self.respond(msg, from, 481, "Call/Transaction Does Not Exist", "", None);
        }
        if msg.body.trim().is_empty() {
            // A session refresh without an offer (RFC 4028 §9).
            self.tally.refreshes += 1;
            let contact = self.contact_header();
            return self.respond(msg, from, 200, "OK", &contact, None);
        }
        match self.renegotiate(msg.call_id, msg.body) {
            Ok(sdp) => {
                let text = sip_text::response(
                    msg,
                    200,
                    "OK",
                    None,
                    &self.contact_header(),
                    Some(("application/sdp", &sdp)),
                );
                self.transmits.push_back(Transmit { to: from, text });
            }
            Err(err) => {
                let reason = format!("Not Acceptable Here ({err})");
                self.respond(msg, from, 488, &reason, "", None);
            }
        }
    }

    fn on_ack(&mut self, msg: &SipMsg<'_>) {
        // An ACK to a 2xx is its own transaction (RFC 3261 §17.1.1.3): match the dialog.
        if let Some(d) = self.dialogs.get_mut(msg.call_id)
            && msg.to_tag.is_some_and(|t| t == d.to_tag)
        {
            d.retransmit = None;
            if d.state == DialogState::Answered {
                d.state = DialogState::Confirmed;
            }
        }
    }

    fn on_bye(&mut self, msg: &SipMsg<'_>, from: SocketAddr) {
        let Some(d) = self.dialogs.get_mut(msg.call_id) else {
            return self.respond(msg, from, 481, "Call/Transaction Does Not Exist", "", None);
        };
        if d.state != DialogState::Ended {
            d.state = DialogState::Ended;
            d.retransmit = None;
            d.send_to = None;
            let participant = self.first_participant + d.slot;
            self.tally.byes += 1;
            self.media.push_back(LegMedia {
                participant,
                send_to: None,
            });
        }
        self.respond(msg, from, 200, "OK", "", None);
    }

    fn on_cancel(&mut self, msg: &SipMsg<'_>, from: SocketAddr) {
        self.tally.cancels += 1;
        let matches = self
            .dialogs
            .get(msg.call_id)
            .is_some_and(|d| d.invite_branch.as_deref() == msg.branch);
        if matches {
            // We answer every INVITE at once, so the INVITE it cancels already has its
            // final 200 and the CANCEL changes nothing (RFC 3261 §9.2): no 487; the server
            // ends the call with a BYE after the ACK.
            self.respond(msg, from, 200, "OK", "", None);
        } else {
            self.respond(msg, from, 481, "Call/Transaction Does Not Exist", "", None);
        }
    }
}

/// Message to the RTP sender: participant and where to send (`None`: stop).
pub type SenderCommand = (usize, Option<SocketAddr>);

/// The running callee side: its thread and the state machine it drives.
pub struct CalleeSide {
    uas: Arc<Mutex<CalleeUas>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

fn locked(uas: &Mutex<CalleeUas>) -> MutexGuard<'_, CalleeUas> {
    // A panic in the driver leaves the state as it was after the last datagram: still good
    // for counting.
    uas.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the driver thread: receives on `sock`, feeds `uas`, sends what it produces and
/// passes its media changes to the RTP sender.
pub fn spawn(
    sock: UdpSocket,
    uas: CalleeUas,
    sender: mpsc::Sender<SenderCommand>,
) -> anyhow::Result<CalleeSide> {
    let uas = Arc::new(Mutex::new(uas));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let uas = uas.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("sip-callee".into())
            .spawn(move || {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                while !stop.load(Ordering::Relaxed) {
                    let deadline = {
                        let mut u = locked(&uas);
                        while let Some(t) = u.poll_transmit() {
                            // Loss of a SIP datagram is covered by retransmission.
                            let _ = sock.send_to(t.text.as_bytes(), t.to);
                        }
                        while let Some(m) = u.poll_media() {
                            let _ = sender.send((m.participant, m.send_to));
                        }
                        u.poll_timeout()
                    };
                    let now = Instant::now();
                    let wait = deadline
                        .map_or(Duration::from_millis(20), |d| {
                            d.saturating_duration_since(now)
                        })
                        .clamp(Duration::from_millis(1), Duration::from_millis(20));
                    let _ = sock.set_read_timeout(Some(wait));
                    let got = sock.recv_from(&mut buf);
                    let mut u = locked(&uas);
                    let now = Instant::now();
                    if let Ok((n, from)) = got
                        && let Some(datagram) = buf.get(..n)
                    {
                        u.handle_datagram(datagram, from, now);
                    }
                    u.handle_timeout(now);
                }
            })
            .context("spawning SIP callee thread")?
    };
    Ok(CalleeSide { uas, stop, thread })
}

impl CalleeSide {
    /// Counts so far.
    pub fn tally(&self) -> UasTally {
        locked(&self.uas).tally()
    }

    /// Whether callee leg `slot` is up.
    pub fn is_up(&self, slot: usize) -> bool {
        locked(&self.uas).is_up(slot)
    }

    /// Callee legs up right now.
    pub fn legs_up(&self) -> usize {
        locked(&self.uas).legs_up()
    }

    /// Stops the thread and returns the final counts.
    pub fn stop(self) -> UasTally {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        locked(&self.uas).tally()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "127.0.0.1:5060";
    const ME: &str = "127.0.0.1:5080";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn uas() -> CalleeUas {
        let rtp = (0..3)
            .map(|k| addr(&format!("127.0.0.1:{}", 40000 + 2 * k)))
            .collect();
        CalleeUas::new(addr(ME), CodecKind::Pcmu, rtp, 3)
    }

    /// An INVITE as our server sends it (sip_endpoint.rs `invite`), with its usual offer.
    fn invite(number: &str, call_id: &str, branch: &str) -> String {
        let sdp = "v=0\r\no=- 7 1 IN IP4 127.0.0.1\r\ns=amtsleitung\r\nc=IN IP4 127.0.0.1\r\n\
                   t=0 0\r\nm=audio 20010 RTP/AVP 0 8 9 96 101 97\r\na=rtpmap:0 PCMU/8000\r\n\
                   a=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:96 opus/48000/2\r\n\
                   a=rtpmap:101 telephone-event/8000\r\na=rtpmap:97 telephone-event/48000\r\n\
                   a=ptime:20\r\na=sendrecv\r\n";
        format!(
            "INVITE sip:{number}@{ME} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {SERVER};branch={branch};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:loadgen@127.0.0.1>;tag=srv\r\nTo: <sip:{number}@{ME}>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:amtsleitung@{SERVER}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    }

    fn in_dialog(method: &str, call_id: &str, to_tag: &str, cseq: u32) -> String {
        format!(
            "{method} sip:callee@{ME} SIP/2.0\r\nVia: SIP/2.0/UDP {SERVER};branch=z9hG4bK{method}{cseq};rport\r\n\
             From: <sip:loadgen@127.0.0.1>;tag=srv\r\nTo: <sip:70001@{ME}>;tag={to_tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
    }

    fn feed(u: &mut CalleeUas, text: &str, now: Instant) -> Vec<String> {
        u.handle_datagram(text.as_bytes(), addr(SERVER), now);
        std::iter::from_fn(|| u.poll_transmit())
            .map(|t| {
                assert_eq!(t.to, addr(SERVER));
                t.text
            })
            .collect()
    }

    #[test]
    fn pair_numbers_round_trip_through_the_request_uri() {
        assert_eq!(pair_number(3), "70003");
        assert_eq!(pair_index("sip:70003@127.0.0.1:5080"), Some(3));
        assert_eq!(pair_index("sip:79999@h"), Some(9999));
        assert_eq!(pair_index("sip:81000@h"), None);
        assert_eq!(pair_index("sip:7003@h"), None);
        assert_eq!(pair_index("sip:7+003@h"), None);
        assert_eq!(pair_index("tel:70003"), None);
    }

    #[test]
    fn dialplan_dials_the_number_on_to_our_address() {
        let plan = pairs_dialplan(addr(ME));
        assert!(plan.contains("match = \"_7XXXX\"\n"), "{plan}");
        assert!(
            plan.contains("{ dial = { uri = \"sip:${EXTEN}@127.0.0.1:5080\" } }"),
            "{plan}"
        );
    }

    #[test]
    fn answers_invite_with_tagged_200_and_sdp_for_its_slot() {
        let mut u = uas();
        let now = Instant::now();
        let out = feed(&mut u, &invite("70001", "c1", "z9hG4bKa"), now);
        assert_eq!(out.len(), 1, "{out:?}");
        let ok = &out[0];
        assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
        assert!(ok.contains(&format!(
            "Via: SIP/2.0/UDP {SERVER};branch=z9hG4bKa;rport\r\n"
        )));
        assert!(
            ok.contains(&format!("To: <sip:70001@{ME}>;tag=callee1\r\n")),
            "{ok}"
        );
        assert!(ok.contains(&format!("Contact: <sip:callee@{ME}>\r\n")));
        assert!(ok.contains("CSeq: 1 INVITE\r\n") && ok.contains("Call-ID: c1\r\n"));
        let (_, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(ok.contains(&format!("Content-Length: {}\r\n", body.len())));
        // Slot 1 receives on its own port, only PCMU.
        assert!(body.contains("m=audio 40002 RTP/AVP 0 101\r\n"), "{body}");
        assert!(!body.contains("PCMA"));
        assert_eq!(
            u.poll_media(),
            Some(LegMedia {
                participant: 4,
                send_to: Some(addr("127.0.0.1:20010"))
            })
        );
        assert!(u.is_up(1) && !u.is_up(0));
        assert_eq!(u.tally().answered, 1);
    }

    #[test]
    fn retransmitted_invite_gets_the_same_200_and_no_new_leg() {
        let mut u = uas();
        let now = Instant::now();
        let first = feed(&mut u, &invite("70000", "c0", "z9hG4bKa"), now);
        let again = feed(&mut u, &invite("70000", "c0", "z9hG4bKa"), now);
        assert_eq!(first, again);
        assert_eq!(u.poll_media().map(|m| m.participant), Some(3));
        assert_eq!(u.poll_media(), None);
        let t = u.tally();
        assert_eq!((t.invites, t.answered, t.invite_retransmissions), (1, 1, 1));
        assert_eq!(u.legs_up(), 1);
    }

    #[test]
    fn same_call_id_with_another_branch_is_a_merged_request() {
        let mut u = uas();
        let now = Instant::now();
        feed(&mut u, &invite("70000", "c0", "z9hG4bKa"), now);
        let out = feed(&mut u, &invite("70000", "c0", "z9hG4bKb"), now);
        assert!(
            out[0].starts_with("SIP/2.0 482 Loop Detected\r\n"),
            "{out:?}"
        );
        assert_eq!(u.legs_up(), 1);
    }

    #[test]
    fn refuses_unknown_numbers_taken_slots_and_foreign_codecs() {
        let mut u = uas();
        let now = Instant::now();
        let out = feed(&mut u, &invite("81000", "x", "z9hG4bKx"), now);
        assert!(out[0].starts_with("SIP/2.0 404 "), "{out:?}");
        assert!(out[0].contains(";tag=rej1\r\n"), "{out:?}");
        let out = feed(&mut u, &invite("70003", "y", "z9hG4bKy"), now);
        assert!(out[0].starts_with("SIP/2.0 404 "), "slot 3 of 3: {out:?}");
        feed(&mut u, &invite("70002", "a", "z9hG4bKa"), now);
        let out = feed(&mut u, &invite("70002", "b", "z9hG4bKb"), now);
        assert!(out[0].starts_with("SIP/2.0 486 Busy Here\r\n"), "{out:?}");
        let pcma_only =
            invite("70000", "p", "z9hG4bKp").replace("RTP/AVP 0 8 9 96 101 97", "RTP/AVP 8");
        let out = feed(&mut u, &pcma_only, now);
        assert!(
            out[0].starts_with("SIP/2.0 488 Not Acceptable Here ("),
            "{out:?}"
        );
        assert_eq!(u.tally().rejected, 4);
        assert_eq!(u.legs_up(), 1);
    }

    #[test]
    fn retransmits_200_until_the_ack_with_doubling_interval() {
        let mut u = uas();
        let t0 = Instant::now();
        feed(&mut u, &invite("70000", "c0", "z9hG4bKa"), t0);
        assert_eq!(u.poll_timeout(), Some(t0 + T1));
        u.handle_timeout(t0 + T1 / 2);
        assert_eq!(u.poll_transmit(), None);
        u.handle_timeout(t0 + T1);
        let again = u.poll_transmit().unwrap();
        assert!(again.text.starts_with("SIP/2.0 200 OK\r\n"));
        assert_eq!(u.poll_timeout(), Some(t0 + T1 + 2 * T1));
        let ack = in_dialog("ACK", "c0", "callee0", 1);
        assert!(
            feed(&mut u, &ack, t0 + T1).is_empty(),
            "an ACK is never answered"
        );
        assert_eq!(u.poll_timeout(), None);
        assert_eq!(u.tally().ok_retransmissions, 1);
    }

    #[test]
    fn gives_up_on_the_ack_after_64_t1_and_keeps_the_leg() {
        let mut u = uas();
        let t0 = Instant::now();
        feed(&mut u, &invite("70000", "c0", "z9hG4bKa"), t0);
        let mut now = t0;
        while let Some(next) = u.poll_timeout() {
            now = next;
            u.handle_timeout(now);
        }
        assert!(now >= t0 + ACK_WAIT);
        let t = u.tally();
        assert_eq!(t.acks_missing, 1);
        // T1, 2T1, 4T1, then T2 until 32 s: 0.5+1+2+4·7 = 31.5 s, 10 sends.
        assert_eq!(t.ok_retransmissions, 10);
        assert!(u.is_up(0));
    }

    #[test]
    fn bye_ends_the_leg_once_and_stops_its_media() {
        let mut u = uas();
        let now = Instant::now();
        feed(&mut u, &invite("70002", "c2", "z9hG4bKa"), now);
        feed(&mut u, &in_dialog("ACK", "c2", "callee2", 1), now);
        let _ = u.poll_media();
        let bye = in_dialog("BYE", "c2", "callee2", 2);
        let out = feed(&mut u, &bye, now);
        assert!(out[0].starts_with("SIP/2.0 200 OK\r\n") && out[0].contains("CSeq: 2 BYE\r\n"));
        assert_eq!(
            u.poll_media(),
            Some(LegMedia {
                participant: 5,
                send_to: None
            })
        );
        // A retransmitted BYE is answered again but ends nothing more.
        let out = feed(&mut u, &bye, now);
        assert!(out[0].starts_with("SIP/2.0 200 OK\r\n"));
        assert_eq!(u.poll_media(), None);
        assert_eq!(u.tally().byes, 1);
        assert!(!u.is_up(2));
        let out = feed(&mut u, &in_dialog("BYE", "nope", "x", 2), now);
        assert!(out[0].starts_with("SIP/2.0 481 "), "{out:?}");
    }

    #[test]
    fn cancel_after_the_answer_gets_200_and_unknown_cancel_481() {
        let mut u = uas();
        let now = Instant::now();
        feed(&mut u, &invite("70000", "c0", "z9hG4bKa"), now);
        let cancel = invite("70000", "c0", "z9hG4bKa")
            .replacen("INVITE sip:", "CANCEL sip:", 1)
            .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
        let out = feed(&mut u, &cancel, now);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].starts_with("SIP/2.0 200 OK\r\n") && out[0].contains("CSeq: 1 CANCEL"));
        let other = cancel.replace("z9hG4bKa", "z9hG4bKz");
        assert!(feed(&mut u, &other, now)[0].starts_with("SIP/2.0 481 "));
        assert_eq!(u.tally().cancels, 2);
    }

    #[test]
    fn options_and_update_get_200_and_unknown_methods_501() {
        let mut u = uas();
        let now = Instant::now();
        let options = in_dialog("OPTIONS", "o", "x", 1).replace(";tag=x", "");
        let out = feed(&mut u, &options, now);
        assert!(out[0].starts_with("SIP/2.0 200 OK\r\n") && out[0].contains("Allow: "));
        feed(&mut u, &invite("70000", "c0", "z9hG4bKa"), now);
        let out = feed(&mut u, &in_dialog("UPDATE", "c0", "callee0", 2), now);
        assert!(out[0].starts_with("SIP/2.0 200 OK\r\n"), "{out:?}");
        let out = feed(&mut u, &in_dialog("INFO", "c0", "callee0", 3), now);
        assert!(out[0].starts_with("SIP/2.0 501 "), "{out:?}");
        assert_eq!(u.tally().refreshes, 1);
    }

    #[test]
    fn reinvite_keeps_the_answer_version_unless_the_answer_changes() {
        let mut u = uas();
        let now = Instant::now();
        let first = feed(&mut u, &invite("70000", "c0", "z9hG4bKa"), now);
        let _ = u.poll_media();
        let reinvite = invite("70000", "c0", "z9hG4bKr")
            .replace(
                "To: <sip:70000@127.0.0.1:5080>",
                "To: <sip:70000@127.0.0.1:5080>;tag=callee0",
            )
            .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE");
        let out = feed(&mut u, &reinvite, now);
        let body = |s: &str| s.split_once("\r\n\r\n").unwrap().1.to_owned();
        assert_eq!(body(&out[0]), body(&first[0]), "same offer, same answer");
        assert_eq!(u.poll_media(), None);
        // The server moves its media: new address, answer unchanged but sent there.
        let moved = reinvite.replace("m=audio 20010", "m=audio 20012");
        let out = feed(&mut u, &moved, now);
        assert!(out[0].contains("CSeq: 2 INVITE"));
        assert_eq!(
            u.poll_media(),
            Some(LegMedia {
                participant: 3,
                send_to: Some(addr("127.0.0.1:20012"))
            })
        );
        // A hold offer (sendonly) changes our answer (recvonly): version 2.
        let hold = reinvite.replace("a=sendrecv", "a=sendonly");
        let out = feed(&mut u, &hold, now);
        assert!(body(&out[0]).contains("o=- 4 2 IN IP4"), "{}", out[0]);
        assert!(body(&out[0]).contains("a=recvonly"), "{}", out[0]);
    }

    #[test]
    fn ignores_responses_and_garbage() {
        let mut u = uas();
        let now = Instant::now();
        assert!(
            feed(
                &mut u,
                "SIP/2.0 200 OK\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n",
                now
            )
            .is_empty()
        );
        u.handle_datagram(&[0xff, 0xfe, 0], addr(SERVER), now);
        assert!(feed(&mut u, "hello", now).is_empty());
        assert_eq!(u.tally(), UasTally::default());
    }
}
