//! Sans-IO RFC 3261 §17 transaction layer, with the RFC 6026 "Accepted" states.
//!
//! One [`TransactionLayer`] owns every client and server transaction. The caller feeds parsed
//! messages ([`TransactionLayer::handle_message`]) and the current time
//! ([`TransactionLayer::handle_timeout`]), and drains [`Output`]s: bytes to transmit and
//! [`TransactionEvent`]s for the transaction user (TU). Nothing here reads a clock or touches a
//! socket.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::{Header, Method, SipMessage};

use crate::message::{self, serialize};

#[cfg(test)]
mod tests;

/// RFC 3261 §8.1.1.7 magic cookie that marks an RFC 3261 branch.
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

/// Default bound on live transactions; requests beyond it are answered 503. A non-INVITE
/// server transaction answered over UDP lives on for Timer J (32 s) to absorb retransmissions,
/// so this also bounds the sustained rate: 100,000 carry about 3,000 answered requests a
/// second. A completed one keeps only its response (about 1 KiB in all), so the bound costs
/// at most about 100 MiB.
pub const DEFAULT_MAX_TRANSACTIONS: usize = 100_000;

/// A fresh RFC 3261 branch: the magic cookie and 96 random bits.
pub fn new_branch() -> String {
    format!(
        "{BRANCH_MAGIC_COOKIE}{:016x}{:08x}",
        rand::random::<u64>(),
        rand::random::<u32>()
    )
}

pub use crate::message::new_tag;

/// Transport class; reliable transports get no retransmissions and zero wait timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Unreliable datagrams.
    Udp,
    /// Reliable stream, plain TCP.
    Tcp,
    /// Reliable stream, TCP with TLS on it (RFC 3261 §26.2).
    Tls,
}

impl TransportKind {
    /// Whether the transport is reliable (RFC 3261 §17: no retransmissions, D/I/J/K = 0).
    pub fn is_reliable(self) -> bool {
        matches!(self, TransportKind::Tcp | TransportKind::Tls)
    }

    /// Whether the transport is TLS, which a `sips:` URI asks for on every hop (RFC 3261
    /// §26.2.2, RFC 5630 §3.1.1).
    pub fn is_secure(self) -> bool {
        matches!(self, TransportKind::Tls)
    }

    /// The transport as a Via header names it (RFC 3261 §20.42).
    pub fn via_name(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
        }
    }

    /// The value of a URI's `transport` parameter for it (RFC 3261 §19.1.1), lower case.
    pub fn uri_param(self) -> &'static str {
        match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
        }
    }

    /// The transport a URI's `transport` parameter names (any case); `None` for one we do
    /// not have (SCTP, WS).
    pub fn from_uri_param(value: &str) -> Option<Self> {
        [TransportKind::Udp, TransportKind::Tcp, TransportKind::Tls]
            .into_iter()
            .find(|t| value.eq_ignore_ascii_case(t.uri_param()))
    }

    /// The port a URI or Via without one means on this transport (RFC 3261 §19.1.2: 5061
    /// for TLS, 5060 otherwise).
    pub fn default_port(self) -> u16 {
        match self {
            TransportKind::Tls => 5061,
            TransportKind::Udp | TransportKind::Tcp => 5060,
        }
    }
}

/// The other end of a message: address, transport, and the connection it came on (streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Remote socket address.
    pub addr: SocketAddr,
    /// Transport used.
    pub transport: TransportKind,
    /// Connection id for stream transports, assigned by the caller.
    pub connection: Option<u64>,
}

/// RFC 3261 timer base values (§17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// Maximum time a message stays in the network.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Whether a transaction is ours (client) or the peer's (server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

/// Identifies a transaction (RFC 3261 §17.1.3, §17.2.3): branch, sent-by (server side) and
/// method, with ACK folded into INVITE and CANCEL kept separate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionKey {
    role: Role,
    branch: String,
    sent_by: String,
    method: String,
}

impl TransactionKey {
    /// The Via branch (synthesised for RFC 2543 peers without the magic cookie).
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The method the transaction was created for (`INVITE` for ACK matching).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Client or server side.
    pub fn role(&self) -> Role {
        self.role
    }
}

/// Something for the caller to do.
// Same reasoning as for `TransactionEvent`: outputs are per signalling message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send these bytes.
    Transmit {
        /// Destination.
        to: Peer,
        /// Serialized message.
        bytes: Vec<u8>,
    },
    /// Tell the TU.
    Event(TransactionEvent),
}

/// What happened, for the transaction user.
// The request-carrying variants are large; events are per signalling message, not per media
// packet, and keeping `rsip::Request` unboxed keeps TU pattern matching plain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum TransactionEvent {
    /// A new request (not a retransmission); Via already stamped with received/rport.
    NewRequest {
        /// Server transaction to answer on.
        key: TransactionKey,
        /// The request.
        request: rsip::Request,
        /// Where it came from.
        from: Peer,
    },
    /// A CANCEL matched this pending INVITE; the layer answered 200 to the CANCEL and the TU
    /// should now answer the INVITE with 487 (RFC 3261 §9.2).
    Cancelled {
        /// The INVITE server transaction.
        invite: TransactionKey,
    },
    /// ACK for a 2xx (matched by Call-ID and CSeq number, or stray); ACKs for non-2xx are
    /// absorbed by the layer.
    Ack {
        /// The ACK.
        request: rsip::Request,
        /// Where it came from.
        from: Peer,
    },
    /// A response on a client transaction (retransmitted INVITE 2xx passed up again).
    Response {
        /// Client transaction.
        key: TransactionKey,
        /// The response.
        response: rsip::Response,
    },
    /// Timer B/F fired (client), or a final response was never ACKed (server, 64*T1).
    Timeout {
        /// The transaction.
        key: TransactionKey,
    },
    /// The transaction is gone.
    Terminated {
        /// The transaction.
        key: TransactionKey,
    },
}

/// Misuse of the transaction layer by the TU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// No transaction with this key (it may have terminated).
    #[error("no such transaction")]
    UnknownTransaction,
    /// The transaction is not in a state that allows this.
    #[error("transaction state does not allow this")]
    InvalidState,
    /// The request has no top Via with a branch.
    #[error("request has no Via branch")]
    MissingBranch,
    /// A client transaction with this branch and method already exists.
    #[error("duplicate transaction")]
    DuplicateTransaction,
    /// The layer holds its maximum number of transactions.
    #[error("too many transactions")]
    TooManyTransactions,
    /// ACK is not sent in a transaction (use `send_stateless`), or a response was given to
    /// `send_request`.
    #[error("message not allowed here")]
    NotAllowed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Client INVITE before any response.
    Calling,
    /// Non-INVITE before any response (client and server).
    Trying,
    Proceeding,
    Completed,
    /// Server INVITE after ACK for non-2xx.
    Confirmed,
    /// RFC 6026: INVITE answered/received 2xx.
    Accepted,
}

#[derive(Debug)]
struct Transaction {
    invite: bool,
    state: State,
    /// Where retransmissions go.
    peer: Peer,
    /// The request; dropped from a completed non-INVITE server transaction, which only
    /// resends its response.
    request: Option<rsip::Request>,
    /// Client: the request (or the ACK once Completed); server: the last response.
    last_bytes: Vec<u8>,
    to_tag: Option<String>,
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Deadline that reports `Timeout` (Timers B, F, H and the 2xx ACK wait).
    timeout_at: Option<Instant>,
    /// Deadline that ends quietly (Timers D, I, J, K, L, M).
    end_at: Option<Instant>,
    ack_seen: bool,
    cancel_pending: bool,
    /// `(Call-ID, CSeq number)` under which a 2xx-answered INVITE waits for its ACK.
    ack_index: Option<(String, u32)>,
}

impl Transaction {
    /// A transaction with no timers running and nothing to retransmit yet.
    fn new(invite: bool, state: State, peer: Peer, request: rsip::Request, t1: Duration) -> Self {
        Self {
            invite,
            state,
            peer,
            request: Some(request),
            last_bytes: Vec::new(),
            to_tag: None,
            retransmit_at: None,
            interval: t1,
            timeout_at: None,
            end_at: None,
            ack_seen: false,
            cancel_pending: false,
            ack_index: None,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        [self.retransmit_at, self.timeout_at, self.end_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// All client and server transactions of one SIP endpoint.
#[derive(Debug)]
pub struct TransactionLayer {
    timers: Timers,
    max_transactions: usize,
    txs: HashMap<TransactionKey, Transaction>,
    /// `(Call-ID, CSeq number)` of 2xx-answered INVITE server transactions, for ACK matching
    /// (RFC 3261 §17.2.3 does not apply: the 2xx ACK has its own branch).
    accepted: HashMap<(String, u32), TransactionKey>,
    /// Deadline hints; entries may be stale (the transaction moved or ended), which only
    /// causes an early, harmless wake-up.
    timer_heap: BinaryHeap<Reverse<(Instant, TransactionKey)>>,
    out: VecDeque<Output>,
}

impl TransactionLayer {
    /// A layer with the given timer values and [`DEFAULT_MAX_TRANSACTIONS`].
    pub fn new(timers: Timers) -> Self {
        Self::with_max_transactions(timers, DEFAULT_MAX_TRANSACTIONS)
    }

    /// A layer that holds at most `max` transactions.
    pub fn with_max_transactions(timers: Timers, max: usize) -> Self {
        Self {
            timers,
            max_transactions: max,
            txs: HashMap::new(),
            accepted: HashMap::new(),
            timer_heap: BinaryHeap::new(),
            out: VecDeque::new(),
        }
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Next output to act on.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Earliest time [`handle_timeout`](Self::handle_timeout) has work to do (may be early).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer_heap.peek().map(|Reverse((at, _))| *at)
    }

    /// A parsed message arrived from `from`.
    pub fn handle_message(&mut self, msg: SipMessage, from: Peer, now: Instant) {
        match msg {
            SipMessage::Request(req) => self.handle_request(req, from, now),
            SipMessage::Response(resp) => self.handle_response(resp, now),
        }
    }

    /// The TU answers a server transaction.
    pub fn send_response(
        &mut self,
        key: &TransactionKey,
        resp: rsip::Response,
        now: Instant,
    ) -> Result<(), TransactionError> {
        let timers = self.timers;
        let tx = self
            .txs
            .get_mut(key)
            .filter(|_| key.role == Role::Server)
            .ok_or(TransactionError::UnknownTransaction)?;
        let code = resp.status_code.code();
        let allowed = match tx.state {
            State::Trying | State::Proceeding => true,
            // RFC 6026 §8.7: further 2xx may be sent in Accepted.
            State::Accepted => (200..300).contains(&code),
            _ => false,
        };
        if !allowed || code < 100 {
            return Err(TransactionError::InvalidState);
        }
        if let Some(tag) = message::to_tag(&resp) {
            tx.to_tag = Some(tag);
        }
        let bytes = serialize(&SipMessage::Response(resp.clone()));
        let to = response_peer(&resp, tx.peer);
        tx.peer = to;
        tx.last_bytes = bytes.clone();
        self.out.push_back(Output::Transmit { to, bytes });
        let reliable = to.transport.is_reliable();
        let mut index = None;
        match (tx.invite, code) {
            (_, 100..=199) => tx.state = State::Proceeding,
            (true, 200..=299) => {
                // RFC 6026 §7.1 / RFC 3261 §13.3.1.4: the 2xx is retransmitted until ACKed.
                if tx.state != State::Accepted {
                    tx.state = State::Accepted;
                    tx.interval = timers.t1;
                    tx.retransmit_at = (!reliable).then(|| now + timers.t1);
                    tx.timeout_at = Some(now + timers.t1 * 64);
                    tx.end_at = Some(now + timers.t1 * 64);
                    if let Some(request) = tx.request.as_ref()
                        && let (Some(cid), Some((num, _))) =
                            (message::call_id(request), message::cseq(request))
                    {
                        tx.ack_index = Some((cid.clone(), num));
                        index = Some((cid, num));
                    }
                }
            }
            (true, _) => {
                tx.state = State::Completed;
                tx.interval = timers.t1;
                tx.retransmit_at = (!reliable).then(|| now + timers.t1); // Timer G
                tx.timeout_at = Some(now + timers.t1 * 64); // Timer H
            }
            (false, _) => {
                tx.state = State::Completed;
                tx.request = None;
                tx.timeout_at = None;
                tx.end_at = Some(
                    now + if reliable {
                        Duration::ZERO
                    } else {
                        timers.t1 * 64
                    },
                ); // Timer J
            }
        }
        let deadline = tx.deadline();
        if let Some(i) = index {
            self.accepted.insert(i, key.clone());
        }
        self.schedule(deadline, key);
        Ok(())
    }

    /// Answers a non-INVITE server transaction with a final response and forgets it at once:
    /// a retransmission of the request is then handled as new. For answers that cost nothing
    /// to give again, such as a digest challenge (Kamailio sends those statelessly too):
    /// keeping 32 s of state per challenge would halve the requests a second the table holds.
    pub fn send_final_and_forget(
        &mut self,
        key: &TransactionKey,
        resp: rsip::Response,
        now: Instant,
    ) -> Result<(), TransactionError> {
        if key.method == "INVITE" || resp.status_code.code() < 200 {
            return Err(TransactionError::InvalidState);
        }
        self.send_response(key, resp, now)?;
        self.remove(key);
        Ok(())
    }

    /// The TU starts a client transaction; the request must carry a top Via with a branch.
    pub fn send_request(
        &mut self,
        req: rsip::Request,
        to: Peer,
        now: Instant,
    ) -> Result<TransactionKey, TransactionError> {
        if req.method == Method::Ack {
            return Err(TransactionError::NotAllowed);
        }
        let branch = message::top_via(&req)
            .and_then(|v| v.branch)
            .filter(|b| !b.is_empty())
            .ok_or(TransactionError::MissingBranch)?;
        let key = TransactionKey {
            role: Role::Client,
            branch,
            sent_by: String::new(),
            method: req.method.to_string(),
        };
        if self.txs.contains_key(&key) {
            return Err(TransactionError::DuplicateTransaction);
        }
        if self.txs.len() >= self.max_transactions {
            return Err(TransactionError::TooManyTransactions);
        }
        self.start_client(key.clone(), req, to, now);
        Ok(key)
    }

    fn start_client(&mut self, key: TransactionKey, req: rsip::Request, to: Peer, now: Instant) {
        let t = self.timers;
        let invite = req.method == Method::Invite;
        let bytes = serialize(&SipMessage::Request(req.clone()));
        self.out.push_back(Output::Transmit {
            to,
            bytes: bytes.clone(),
        });
        let state = if invite {
            State::Calling
        } else {
            State::Trying
        };
        let mut tx = Transaction::new(invite, state, to, req, t.t1);
        tx.last_bytes = bytes;
        // Timer A / Timer E, unreliable transports only.
        tx.retransmit_at = (!to.transport.is_reliable()).then(|| now + t.t1);
        tx.timeout_at = Some(now + t.t1 * 64); // Timer B / Timer F
        let deadline = tx.deadline();
        self.txs.insert(key.clone(), tx);
        self.schedule(deadline, &key);
    }

    /// Sends a message outside any transaction (ACK for 2xx, stateless replies).
    pub fn send_stateless(&mut self, msg: SipMessage, to: Peer) {
        self.out.push_back(Output::Transmit {
            to,
            bytes: serialize(&msg),
        });
    }

    /// Cancels a client INVITE (RFC 3261 §9.1). The CANCEL goes out once a provisional
    /// response has arrived (sent right away if one has); it runs as its own non-INVITE
    /// client transaction with the INVITE's branch.
    pub fn cancel(
        &mut self,
        invite: &TransactionKey,
        now: Instant,
    ) -> Result<(), TransactionError> {
        if invite.role != Role::Client || invite.method != "INVITE" {
            return Err(TransactionError::UnknownTransaction);
        }
        let tx = self
            .txs
            .get_mut(invite)
            .ok_or(TransactionError::UnknownTransaction)?;
        match tx.state {
            State::Calling => {
                tx.cancel_pending = true;
                Ok(())
            }
            State::Proceeding => {
                self.send_cancel(invite, now);
                Ok(())
            }
            _ => Err(TransactionError::InvalidState),
        }
    }

    fn send_cancel(&mut self, invite: &TransactionKey, now: Instant) {
        let cancel_key = TransactionKey {
            method: "CANCEL".into(),
            ..invite.clone()
        };
        if self.txs.contains_key(&cancel_key) {
            return;
        }
        let Some((tx, request)) = self
            .txs
            .get(invite)
            .and_then(|tx| Some((tx, tx.request.as_ref()?)))
        else {
            return;
        };
        let cancel = build_in_tx_request(request, Method::Cancel, None);
        let peer = tx.peer;
        self.start_client(cancel_key, cancel, peer, now);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timer_heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, key))) = self.timer_heap.pop() else {
                break;
            };
            self.fire(&key, now);
        }
    }

    fn fire(&mut self, key: &TransactionKey, now: Instant) {
        let t2 = self.timers.t2;
        let Some(tx) = self.txs.get_mut(key) else {
            return;
        };
        if tx.end_at.is_some_and(|at| at <= now) && tx.timeout_at.is_none_or(|at| at > now) {
            self.remove(key);
            return;
        }
        if tx.timeout_at.is_some_and(|at| at <= now) {
            self.out.push_back(Output::Event(TransactionEvent::Timeout {
                key: key.clone(),
            }));
            self.remove(key);
            return;
        }
        let Some(at) = tx.retransmit_at.filter(|at| *at <= now) else {
            let deadline = tx.deadline();
            self.schedule(deadline, key);
            return;
        };
        self.out.push_back(Output::Transmit {
            to: tx.peer,
            bytes: tx.last_bytes.clone(),
        });
        // Timer A doubles without bound (§17.1.1.2); E, G and the 2xx retransmission cap at
        // T2 (§17.1.2.2, §17.2.1, §13.3.1.4); a non-INVITE in Proceeding uses T2.
        tx.interval = match (key.role, tx.invite, tx.state) {
            (Role::Client, true, _) => tx.interval * 2,
            (Role::Client, false, State::Proceeding) => t2,
            _ => (tx.interval * 2).min(t2),
        };
        tx.retransmit_at = Some(at + tx.interval);
        let deadline = tx.deadline();
        self.schedule(deadline, key);
    }

    fn remove(&mut self, key: &TransactionKey) {
        if let Some(tx) = self.txs.remove(key) {
            if let Some(index) = tx.ack_index
                && self.accepted.get(&index) == Some(key)
            {
                self.accepted.remove(&index);
            }
            self.out
                .push_back(Output::Event(TransactionEvent::Terminated {
                    key: key.clone(),
                }));
        }
    }

    fn schedule(&mut self, at: Option<Instant>, key: &TransactionKey) {
        if let Some(at) = at {
            self.timer_heap.push(Reverse((at, key.clone())));
        }
    }

    fn handle_request(&mut self, mut req: rsip::Request, from: Peer, now: Instant) {
        message::stamp_received(&mut req, from.addr);
        let Some(key) = server_key(&req) else {
            return;
        };
        match req.method {
            Method::Ack => self.handle_ack(key, req, from, now),
            Method::Cancel => self.handle_cancel(key, req, from, now),
            _ => {
                if let Some(tx) = self.txs.get(&key) {
                    // Retransmission (§17.2.1, §17.2.2): re-send the latest response, if any;
                    // absorbed once ACKed (Confirmed) or before any response (Trying).
                    let resend = matches!(
                        tx.state,
                        State::Proceeding | State::Completed | State::Accepted
                    ) && !tx.last_bytes.is_empty();
                    if resend {
                        self.out.push_back(Output::Transmit {
                            to: tx.peer,
                            bytes: tx.last_bytes.clone(),
                        });
                    }
                    return;
                }
                if self.txs.len() >= self.max_transactions {
                    self.reply_stateless(&req, 503, from);
                    return;
                }
                let t = self.timers;
                let invite = req.method == Method::Invite;
                let state = if invite {
                    State::Proceeding
                } else {
                    State::Trying
                };
                let mut tx = Transaction::new(invite, state, from, req.clone(), t.t1);
                // A non-INVITE the TU never answers is dropped once the client's Timer F has
                // certainly fired, to keep the table bounded.
                tx.end_at = (!invite).then(|| now + t.t1 * 64);
                if invite {
                    // §17.2.1: 100 Trying right away, so the client stops Timer A.
                    let trying = message::response_to(&req, 100, None, None);
                    let to = response_peer(&trying, from);
                    let bytes = serialize(&SipMessage::Response(trying));
                    tx.peer = to;
                    tx.last_bytes = bytes.clone();
                    self.out.push_back(Output::Transmit { to, bytes });
                }
                let deadline = tx.deadline();
                self.txs.insert(key.clone(), tx);
                self.schedule(deadline, &key);
                self.out
                    .push_back(Output::Event(TransactionEvent::NewRequest {
                        key,
                        request: req,
                        from,
                    }));
            }
        }
    }

    fn handle_ack(&mut self, key: TransactionKey, req: rsip::Request, from: Peer, now: Instant) {
        let t = self.timers;
        // ACK for a non-2xx final: same branch as the INVITE (§17.2.3).
        if let Some(tx) = self.txs.get_mut(&key) {
            match tx.state {
                State::Completed => {
                    tx.state = State::Confirmed;
                    tx.retransmit_at = None;
                    tx.timeout_at = None;
                    // Timer I.
                    tx.end_at = Some(
                        now + if tx.peer.transport.is_reliable() {
                            Duration::ZERO
                        } else {
                            t.t4
                        },
                    );
                    let deadline = tx.deadline();
                    self.schedule(deadline, &key);
                    return;
                }
                State::Confirmed | State::Proceeding => return,
                _ => {}
            }
        }
        // ACK for a 2xx: its own branch, matched by Call-ID and CSeq number.
        let index = message::call_id(&req).zip(message::cseq(&req).map(|(n, _)| n));
        if let Some(tx) = index
            .and_then(|i| self.accepted.get(&i))
            .and_then(|k| self.txs.get_mut(k))
        {
            if tx.ack_seen {
                return;
            }
            tx.ack_seen = true;
            tx.retransmit_at = None;
            tx.timeout_at = None;
            // Stay Accepted until Timer L to absorb retransmitted INVITEs (RFC 6026 §8.7).
        }
        self.out
            .push_back(Output::Event(TransactionEvent::Ack { request: req, from }));
    }

    fn handle_cancel(&mut self, key: TransactionKey, req: rsip::Request, from: Peer, now: Instant) {
        if let Some(tx) = self.txs.get(&key) {
            self.out.push_back(Output::Transmit {
                to: tx.peer,
                bytes: tx.last_bytes.clone(),
            });
            return;
        }
        if self.txs.len() >= self.max_transactions {
            self.reply_stateless(&req, 503, from);
            return;
        }
        let invite_key = TransactionKey {
            method: "INVITE".into(),
            ..key.clone()
        };
        // §9.2: 200 to the CANCEL when it matches an INVITE, 481 otherwise; the To tag
        // should equal the one of the INVITE's response.
        let (code, to_tag, cancelled) = match self.txs.get(&invite_key) {
            Some(inv) => (
                200,
                inv.to_tag.clone().unwrap_or_else(new_tag),
                inv.state == State::Proceeding,
            ),
            None => (481, new_tag(), false),
        };
        let resp = message::response_to(&req, code, None, Some(&to_tag));
        let to = response_peer(&resp, from);
        let bytes = serialize(&SipMessage::Response(resp));
        self.out.push_back(Output::Transmit {
            to,
            bytes: bytes.clone(),
        });
        let t = self.timers;
        let mut tx = Transaction::new(false, State::Completed, to, req, t.t1);
        tx.last_bytes = bytes;
        tx.to_tag = Some(to_tag);
        // Timer J.
        tx.end_at = Some(
            now + if to.transport.is_reliable() {
                Duration::ZERO
            } else {
                t.t1 * 64
            },
        );
        let deadline = tx.deadline();
        self.txs.insert(key.clone(), tx);
        self.schedule(deadline, &key);
        if cancelled {
            self.out
                .push_back(Output::Event(TransactionEvent::Cancelled {
                    invite: invite_key,
                }));
        }
    }

    fn reply_stateless(&mut self, req: &rsip::Request, code: u16, from: Peer) {
        let resp = message::response_to(req, code, None, Some(&new_tag()));
        let to = response_peer(&resp, from);
        self.send_stateless(SipMessage::Response(resp), to);
    }

    fn handle_response(&mut self, resp: rsip::Response, now: Instant) {
        let t = self.timers;
        let Some(branch) = message::top_via(&resp).and_then(|v| v.branch) else {
            return;
        };
        let Some((_, method)) = message::cseq(&resp) else {
            return;
        };
        let key = TransactionKey {
            role: Role::Client,
            branch,
            sent_by: String::new(),
            method: method.to_string(),
        };
        let Some(tx) = self.txs.get_mut(&key) else {
            return; // §17.1.3: no match, dropped.
        };
        let code = resp.status_code.code();
        let reliable = tx.peer.transport.is_reliable();
        let mut pass_up = true;
        let mut send_cancel = false;
        match (tx.invite, tx.state, code) {
            (true, State::Calling | State::Proceeding, 100..=199) => {
                tx.state = State::Proceeding;
                tx.retransmit_at = None; // Timer A stops (§17.1.1.2)
                send_cancel = std::mem::take(&mut tx.cancel_pending);
            }
            (true, State::Calling | State::Proceeding, 200..=299) => {
                tx.state = State::Accepted;
                tx.retransmit_at = None;
                tx.timeout_at = None;
                tx.end_at = Some(now + t.t1 * 64); // Timer M
                tx.cancel_pending = false;
            }
            (true, State::Accepted, 200..=299) => {}
            (true, State::Calling | State::Proceeding, _) if code >= 300 => {
                // §17.1.1.3: the layer ACKs non-2xx finals itself.
                let Some(request) = tx.request.as_ref() else {
                    return;
                };
                let ack = build_in_tx_request(request, Method::Ack, Some(&resp));
                let bytes = serialize(&SipMessage::Request(ack));
                self.out.push_back(Output::Transmit {
                    to: tx.peer,
                    bytes: bytes.clone(),
                });
                tx.last_bytes = bytes;
                tx.state = State::Completed;
                tx.retransmit_at = None;
                tx.timeout_at = None;
                tx.cancel_pending = false;
                // Timer D: at least 32 s on UDP, 0 on reliable transports.
                tx.end_at = Some(
                    now + if reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32).max(t.t1 * 64)
                    },
                );
            }
            (true, State::Completed, _) if code >= 300 => {
                // Retransmitted final: re-send the ACK, do not bother the TU.
                self.out.push_back(Output::Transmit {
                    to: tx.peer,
                    bytes: tx.last_bytes.clone(),
                });
                pass_up = false;
            }
            (false, State::Trying | State::Proceeding, 100..=199) => {
                // §17.1.2.2: from now on Timer E is reset to T2 (see `fire`).
                tx.state = State::Proceeding;
            }
            (false, State::Trying | State::Proceeding, _) if code >= 200 => {
                tx.state = State::Completed;
                tx.retransmit_at = None;
                tx.timeout_at = None;
                tx.end_at = Some(now + if reliable { Duration::ZERO } else { t.t4 }); // Timer K
            }
            _ => pass_up = false,
        }
        let deadline = tx.deadline();
        self.schedule(deadline, &key);
        if pass_up {
            self.out
                .push_back(Output::Event(TransactionEvent::Response {
                    key: key.clone(),
                    response: resp,
                }));
        }
        if send_cancel {
            self.send_cancel(&key, now);
        }
    }
}

/// Server key per §17.2.3 (branch + sent-by + method, ACK as INVITE); for RFC 2543 peers
/// without the magic cookie, a key from Call-ID, CSeq number and From tag stands in.
fn server_key(req: &rsip::Request) -> Option<TransactionKey> {
    let via = message::top_via(req)?;
    let sent_by = match via.port {
        Some(p) => format!("{}:{p}", via.host.to_ascii_lowercase()),
        None => via.host.to_ascii_lowercase(),
    };
    let branch = match via.branch {
        Some(b) if b.starts_with(BRANCH_MAGIC_COOKIE) && b.len() > BRANCH_MAGIC_COOKIE.len() => b,
        _ => format!(
            "rfc2543:{}:{}:{}",
            message::call_id(req)?,
            message::cseq(req)?.0,
            message::from_tag(req).unwrap_or_default()
        ),
    };
    let method = match req.method {
        Method::Ack => "INVITE".to_string(),
        m => m.to_string(),
    };
    Some(TransactionKey {
        role: Role::Server,
        branch,
        sent_by,
        method,
    })
}

/// Where a server transaction's response goes: the Via-derived address on unreliable
/// transports (RFC 3261 §18.2.2, RFC 3581), the receiving connection on reliable ones.
fn response_peer(resp: &rsip::Response, from: Peer) -> Peer {
    if from.transport.is_reliable() {
        return from;
    }
    Peer {
        addr: message::response_destination(resp).unwrap_or(from.addr),
        ..from
    }
}

/// CANCEL (§9.1) or ACK for a non-2xx (§17.1.1.3) from the INVITE: same Request-URI,
/// Call-ID, From, CSeq number, the INVITE's top Via only, its Route set; To from the
/// response for the ACK.
fn build_in_tx_request(
    invite: &rsip::Request,
    method: Method,
    response: Option<&rsip::Response>,
) -> rsip::Request {
    let mut headers = rsip::Headers::default();
    if let Some(via) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        headers.push(via.clone());
    }
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::from("70")));
    for h in invite.headers.iter() {
        match h {
            Header::From(_) | Header::CallId(_) | Header::Route(_) => headers.push(h.clone()),
            Header::To(_) => {
                let to = response
                    .and_then(|r| r.headers.iter().find(|h| matches!(h, Header::To(_))))
                    .unwrap_or(h);
                headers.push(to.clone());
            }
            _ => {}
        }
    }
    let num = message::cseq(invite).map_or(1, |(n, _)| n);
    headers.push(Header::CSeq(rsip::headers::CSeq::from(format!(
        "{num} {method}"
    ))));
    rsip::Request {
        method,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}
