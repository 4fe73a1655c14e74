//! WebRTC sessions as the HTTP side keeps them: WHIP clients publishing into rooms and WHEP
//! clients listening to them (RFC 9725 and its egress sibling).
//!
//! Opening a session checks the room's bearer token and that the room exists, answers the
//! client's offer on a UDP socket of its own from the RTP port range, admits the client to the
//! room like a caller (participant limit, lock, wait-for-moderator) and hands the leg to the
//! media worker that hosts the room. A client that both publishes and listens names its WHIP
//! session when it opens its WHEP session (`?publisher=<id>`): both are then one participant,
//! counted once and never hearing its own voice.
//!
//! Which rooms exist for WebRTC clients: a room stored with `amtsleitung room create`, or a
//! room open right now (a caller opened it on demand). Clients enter rooms; they do not open
//! rooms on demand the way a caller's dialled number does, since a token-holding program
//! would otherwise keep rooms open that no person is in. A meeting that must be able to
//! publish into an empty room uses a stored room.
//!
//! Join-page sessions (`crate::join_http`) are the third kind: one `sendrecv` connection per
//! browser, admitted by the room's PIN instead of a token (as phones are), with the name its
//! user gave. Their URL is their credential; the books remember for a while why one ended, so
//! that the page can tell a conference that ended from a connection that was lost.
//!
//! A session ends on DELETE, when its client closes DTLS, when its client stays unreachable
//! past `[webrtc] disconnected-timeout`, or when its room ends (a moderator ended the
//! conference, an admin deleted or re-guarded the room). Every end goes through one function,
//! which keeps the books, the room registry and the worker in step.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use store::TokenKind;
use tokio::sync::mpsc;
use webrtc::{WebRtcConfig, WebRtcError, WebRtcLeg};

use crate::browser_media::{
    BrowserCommand, BrowserDirection, BrowserReport, BrowserStart, SessionEnd,
};
use crate::call_event::{CallEvent, CallEvents, Notice};
use crate::conference::{Entrant, MemberLabel, Refusal, RoomTerms};
use crate::ids::LegId;
use crate::media_worker::{MediaCommand, PortAllocator};
use crate::pin_attempts::{LockedOut, PinAttempts};
use crate::shared::Shared;

/// Reports from the media workers waiting for the bookkeeping task at most; workers keep
/// what does not fit and try again next tick.
const REPORTS_QUEUE: usize = 1024;
/// Room news for WebRTC participants waiting at most; the registry drops (and logs) news
/// that finds it full, as it does for calls.
const NOTICES_QUEUE: usize = 1024;

/// Ended join-page sessions remembered (with why they ended) at most.
const ENDED_REMEMBERED: usize = 1024;
/// Longest name a join-page user may give, in characters.
pub const MAX_NAME_CHARS: usize = 40;

/// What a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// WHIP: a client publishing into the room.
    Whip,
    /// WHEP: a client listening to the room.
    Whep,
    /// The join page: a browser talking and listening.
    Page,
}

impl SessionKind {
    /// The word for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Whip => "whip",
            SessionKind::Whep => "whep",
            SessionKind::Page => "page",
        }
    }
}

impl From<TokenKind> for SessionKind {
    fn from(kind: TokenKind) -> Self {
        match kind {
            TokenKind::Whip => SessionKind::Whip,
            TokenKind::Whep => SessionKind::Whep,
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// Its client asked (DELETE).
    Deleted,
    /// Its client closed the connection (DTLS close_notify) or the WebRTC stack failed.
    ClientClosed,
    /// Its client stayed unreachable past the timeout.
    Unreachable,
    /// It could not join its room's mix.
    NotJoined,
    /// A moderator ended the conference.
    ConferenceEnded,
    /// An admin deleted or re-guarded the room.
    RoomClosed,
    /// The room's media worker did not take it.
    MediaBusy,
    /// An admin revoked or replaced the token it was opened with.
    TokenRevoked,
    /// A moderator removed it from the room.
    Removed,
}

impl EndCause {
    /// The words for the log.
    fn log_text(self) -> &'static str {
        match self {
            EndCause::Deleted => "DELETE",
            EndCause::ClientClosed => "closed by the client",
            EndCause::Unreachable => "client unreachable",
            EndCause::NotJoined => "not joined",
            EndCause::ConferenceEnded => "conference ended",
            EndCause::RoomClosed => "room closed by an admin",
            EndCause::MediaBusy => "media worker busy",
            EndCause::TokenRevoked => "token revoked",
            EndCause::Removed => "removed by a moderator",
        }
    }
}

/// What the books say of a join-page session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageSession {
    /// Open, as this room member.
    Open(LegId),
    /// Ended lately, for this reason.
    Ended(EndCause),
    /// Not known (never opened, ended long ago, or before the server restarted).
    Unknown,
}

/// One session in the books.
struct Entry {
    kind: SessionKind,
    room: String,
    leg: LegId,
    /// The room member it belongs to (itself, or the WHIP session it is tied to).
    participant: LegId,
    /// SHA-256 of the token a WHIP or WHEP session was opened with: DELETE must present it
    /// again. Join-page sessions have none (their URL is their credential).
    token: Option<[u8; 32]>,
}

/// A session and the token that let it in.
#[derive(Debug, Clone)]
pub struct TokenHolder {
    /// The session.
    pub leg: LegId,
    /// WHIP or WHEP.
    pub kind: TokenKind,
    /// Its room.
    pub room: String,
    /// SHA-256 of its token.
    pub token: [u8; 32],
}

#[derive(Default)]
struct Table {
    /// By resource id (the last segment of the session's URL).
    sessions: HashMap<String, Entry>,
    /// Resource id by session.
    by_leg: HashMap<LegId, String>,
    /// Join-page sessions that ended lately, oldest first.
    ended: VecDeque<(String, EndCause)>,
}

impl Table {
    fn sessions_of(&self, participant: LegId) -> impl Iterator<Item = &Entry> {
        self.sessions
            .values()
            .filter(move |e| e.participant == participant)
    }
}

/// The WebRTC sessions of this server.
pub struct WebRtcSessions {
    table: Mutex<Table>,
    next: AtomicU64,
    ports: Arc<PortAllocator>,
    reports: mpsc::Sender<BrowserReport>,
    notices: CallEvents,
    /// Wrong PINs of join-page clients.
    pins: Mutex<PinAttempts>,
}

/// Where the workers' reports and the registry's news for WebRTC participants arrive; taken
/// by [`spawn`].
pub struct WebRtcQueues {
    reports: mpsc::Receiver<BrowserReport>,
    notices: mpsc::Receiver<(LegId, CallEvent)>,
}

/// A client's request to open a session.
pub struct Offer<'a> {
    /// WHIP or WHEP.
    pub kind: TokenKind,
    /// Room number from the URL.
    pub room: &'a str,
    /// The bearer token, if the request had one.
    pub token: Option<&'a str>,
    /// The SDP offer.
    pub sdp: &'a str,
    /// The WHIP session this WHEP session belongs with (the same client publishes there).
    pub publisher: Option<&'a str>,
    /// The client's address (the HTTP peer), to pick the local address that reaches it.
    pub client: IpAddr,
}

/// A join page's request to open a session.
pub struct PageOffer<'a> {
    /// Room number from the URL.
    pub room: &'a str,
    /// The name its user gave.
    pub name: &'a str,
    /// The room PIN its user entered (empty: none).
    pub pin: &'a str,
    /// The SDP offer.
    pub sdp: &'a str,
    /// The client's address (the HTTP peer): PIN tries are counted by it, and it picks the
    /// local address that reaches it.
    pub client: IpAddr,
}

/// What every kind of session needs once its client may enter the room.
struct NewSession<'a> {
    kind: SessionKind,
    room: String,
    stored: Option<store::Room>,
    sdp: &'a str,
    client: IpAddr,
    /// The WHIP session's participant a WHEP session joins.
    tied: Option<LegId>,
    label: MemberLabel,
    token: Option<[u8; 32]>,
}

/// An opened session.
#[derive(Debug)]
pub struct Opened {
    /// Its resource id, for its URL.
    pub resource: String,
    /// The SDP answer.
    pub answer: String,
}

/// Why a session was not opened, in terms of what the client (or the server) lacks.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No bearer token.
    #[error("a bearer token is required")]
    MissingToken,
    /// A token that is not the room's token of this kind.
    #[error("the token is not valid for this room")]
    WrongToken,
    /// The room is neither stored nor open.
    #[error("room {0} does not exist (it is not stored and nobody is in it)")]
    UnknownRoom(String),
    /// The room has its participants already.
    #[error("room {room} is full (limit {max})")]
    RoomFull {
        /// The room.
        room: String,
        /// Its participant limit.
        max: u32,
    },
    /// A moderator locked the room.
    #[error("room {0} is locked")]
    RoomLocked(String),
    /// The room's session is ending (an admin changed it).
    #[error("room {0} is closing")]
    RoomClosing(String),
    /// The offer cannot be answered.
    #[error(transparent)]
    BadOffer(WebRtcError),
    /// `publisher` names no WHIP session in this room.
    #[error("no WHIP session {0} in this room to tie the subscriber to")]
    UnknownPublisher(String),
    /// `publisher`'s client listens already.
    #[error("WHIP session {0} has a WHEP session already")]
    PublisherTaken(String),
    /// The request names a publisher where that means nothing (a WHIP request).
    #[error("only a WHEP request can name a publisher")]
    PublisherOnWhip,
    /// As many sessions as `[webrtc] max-sessions` are open.
    #[error("the server has its {0} WebRTC sessions already")]
    TooManySessions(usize),
    /// A join-page name that is empty, too long or has control characters.
    #[error("a name of 1 to {MAX_NAME_CHARS} characters without control characters is required")]
    BadName,
    /// The room has a PIN and the one given is not it (or none was given).
    #[error("wrong PIN for room {room}")]
    WrongPin {
        /// The room.
        room: String,
        /// Tries the client has left before it must wait.
        tries_left: u32,
    },
    /// The client entered too many wrong PINs for the room lately.
    #[error("too many wrong PINs; try again in {} s", .0.as_secs().max(1))]
    TooManyPinTries(std::time::Duration),
    /// The store could not be asked (fail closed).
    #[error("the store is unavailable: {0}")]
    StoreUnavailable(String),
    /// No UDP port could be bound.
    #[error("no media port free: {0}")]
    NoMediaPort(String),
    /// The server's address cannot be advertised (configuration).
    #[error(transparent)]
    ServerAddress(WebRtcError),
    /// The room's media worker did not take the session (its queue is full).
    #[error("the media worker is busy")]
    MediaBusy,
}

/// Why a DELETE did not end a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CloseError {
    /// No such session (of this kind, in this room).
    #[error("no such session")]
    NotFound,
    /// No bearer token.
    #[error("a bearer token is required")]
    MissingToken,
    /// Not the token the session was opened with.
    #[error("the token is not the one this session was opened with")]
    WrongToken,
}

/// How many sessions of each kind are open, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    /// WHIP sessions.
    pub whip: usize,
    /// WHEP sessions.
    pub whep: usize,
    /// Join-page sessions.
    pub page: usize,
}

impl WebRtcSessions {
    /// Empty books; sockets come from `ports`.
    pub fn new(ports: Arc<PortAllocator>) -> (Self, WebRtcQueues) {
        let (reports, reports_rx) = mpsc::channel(REPORTS_QUEUE);
        let (notices, notices_rx) = mpsc::channel(NOTICES_QUEUE);
        (
            Self {
                table: Mutex::new(Table::default()),
                next: AtomicU64::new(1),
                ports,
                reports,
                notices,
                pins: Mutex::new(PinAttempts::default()),
            },
            WebRtcQueues {
                reports: reports_rx,
                notices: notices_rx,
            },
        )
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh id for a WebRTC session (the meeting links' sessions share the numbering, so
    /// that media workers never see two sessions with one id).
    pub fn new_session_id(&self) -> LegId {
        LegId::browser(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// The RTP port range the sessions' sockets come from.
    pub fn ports(&self) -> &PortAllocator {
        &self.ports
    }

    /// Sessions open now, by kind.
    pub fn counts(&self) -> SessionCounts {
        let table = self.table();
        let count = |kind| table.sessions.values().filter(|e| e.kind == kind).count();
        SessionCounts {
            whip: count(SessionKind::Whip),
            whep: count(SessionKind::Whep),
            page: count(SessionKind::Page),
        }
    }

    fn pins(&self) -> std::sync::MutexGuard<'_, PinAttempts> {
        self.pins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `offer`.
    pub async fn open(&self, shared: &Shared, offer: Offer<'_>) -> Result<Opened, OpenError> {
        let token = offer.token.ok_or(OpenError::MissingToken)?;
        let room = offer.room.to_owned();
        // The token first, so that only its holders learn which rooms exist.
        let (kind, number, presented) = (offer.kind, room.clone(), token.to_owned());
        let looked_up = shared
            .store
            .run(move |store| {
                if !store.room_token_check(&number, kind, &presented)? {
                    return Ok(None);
                }
                store.room_get(&number).map(Some)
            })
            .await;
        let stored = match looked_up {
            Ok(Ok(Some(stored))) => stored,
            Ok(Ok(None)) => return Err(OpenError::WrongToken),
            // Fail closed: a token that cannot be checked opens nothing.
            Ok(Err(err)) => return Err(OpenError::StoreUnavailable(err.to_string())),
            Err(err) => return Err(OpenError::StoreUnavailable(err.to_string())),
        };
        if stored.is_none() && !shared.conferences.is_open(&room) {
            return Err(OpenError::UnknownRoom(room));
        }
        let tied = match (offer.kind, offer.publisher) {
            (_, None) => None,
            (TokenKind::Whip, Some(_)) => return Err(OpenError::PublisherOnWhip),
            (TokenKind::Whep, Some(publisher)) => Some(self.publisher(publisher, &room)?),
        };
        self.start(
            shared,
            NewSession {
                kind: offer.kind.into(),
                room,
                stored,
                sdp: offer.sdp,
                client: offer.client,
                tied,
                label: MemberLabel::Meeting,
                token: Some(store::token_hash(token)),
            },
        )
    }

    /// Opens a join-page session for `offer`: the room must exist and, if it has a PIN, the
    /// PIN must be right (a moderator's PIN lets the user in as a participant; the page has
    /// no moderator controls).
    pub async fn open_page(
        &self,
        shared: &Shared,
        offer: PageOffer<'_>,
    ) -> Result<Opened, OpenError> {
        let name = valid_name(offer.name).ok_or(OpenError::BadName)?;
        let room = offer.room.to_owned();
        let number = room.clone();
        let stored = match shared.store.run(move |store| store.room_get(&number)).await {
            Ok(Ok(stored)) => stored,
            // Fail closed: a PIN that cannot be checked opens nothing.
            Ok(Err(err)) => return Err(OpenError::StoreUnavailable(err.to_string())),
            Err(err) => return Err(OpenError::StoreUnavailable(err.to_string())),
        };
        if stored.is_none() && !shared.conferences.is_open(&room) {
            return Err(OpenError::UnknownRoom(room));
        }
        if stored
            .as_ref()
            .is_some_and(|r| r.has_pin || r.has_moderator_pin)
        {
            self.check_pin(shared, &room, offer.pin, offer.client)
                .await?;
        }
        self.start(
            shared,
            NewSession {
                kind: SessionKind::Page,
                room,
                stored,
                sdp: offer.sdp,
                client: offer.client,
                tied: None,
                label: MemberLabel::Browser(name),
                token: None,
            },
        )
    }

    /// Checks a join-page user's PIN for `room`, counting wrong ones by client address.
    async fn check_pin(
        &self,
        shared: &Shared,
        room: &str,
        pin: &str,
        client: IpAddr,
    ) -> Result<(), OpenError> {
        if let Err(LockedOut(after)) = self.pins().may_try(client, room, Instant::now()) {
            return Err(OpenError::TooManyPinTries(after));
        }
        let (number, digits) = (room.to_owned(), pin.to_owned());
        // Argon2 costs tens of milliseconds: on the store thread, as for phones.
        let checked = shared
            .store
            .run(move |store| store.room_check_pin(&number, &digits))
            .await;
        match checked {
            Ok(Ok(store::PinCheck::Wrong)) => {
                let tries_left = self.pins().wrong(client, room, Instant::now());
                tracing::info!(%room, %client, tries_left, "wrong PIN on the join page");
                Err(OpenError::WrongPin {
                    room: room.to_owned(),
                    tries_left,
                })
            }
            Ok(Ok(_)) => {
                self.pins().right(client, room);
                Ok(())
            }
            Ok(Err(err)) => Err(OpenError::StoreUnavailable(err.to_string())),
            Err(err) => Err(OpenError::StoreUnavailable(err.to_string())),
        }
    }

    /// Answers the offer of a client that may enter the room, admits it and starts its media.
    fn start(&self, shared: &Shared, new: NewSession<'_>) -> Result<Opened, OpenError> {
        let NewSession {
            kind,
            room,
            stored,
            sdp,
            client,
            tied,
            label,
            token,
        } = new;
        let max = shared.config.webrtc.max_sessions;
        if self.table().sessions.len() >= max {
            return Err(OpenError::TooManySessions(max));
        }

        let config = &shared.config;
        let ip = config.media_ip.unwrap_or_else(|| {
            crate::sip_endpoint::local_ip_towards(client, config.sip_listen.ip())
        });
        let socket = self
            .ports
            .bind_one(ip)
            .map_err(|err| OpenError::NoMediaPort(err.to_string()))?;
        let local = socket
            .local_addr()
            .map_err(|err| OpenError::NoMediaPort(err.to_string()))?;
        let mut leg_config = WebRtcConfig::new(local);
        if let Some(public) = config.webrtc.public_ip {
            leg_config = leg_config.with_public_ip(public);
        }
        let (leg, answer) =
            WebRtcLeg::answer(&leg_config, sdp, Instant::now()).map_err(|err| match err {
                WebRtcError::UnusableAddress { .. } => OpenError::ServerAddress(err),
                other => OpenError::BadOffer(other),
            })?;

        let session = LegId::browser(self.next.fetch_add(1, Ordering::Relaxed));
        let participant = tied.unwrap_or(session);
        let muted = match tied {
            Some(_) => false,
            None => {
                let terms = RoomTerms::of(stored.as_ref());
                let entrant = Entrant {
                    label,
                    notices: self.notices.clone(),
                };
                let admitted = shared
                    .conferences
                    .admit_client(&room, session, terms, entrant);
                match admitted {
                    Ok(admission) => admission.muted_until_moderator,
                    Err(refusal) => {
                        return Err(match refusal {
                            Refusal::Full => OpenError::RoomFull {
                                room,
                                max: terms.max_participants,
                            },
                            Refusal::Locked => OpenError::RoomLocked(room),
                            Refusal::Closing => OpenError::RoomClosing(room),
                            Refusal::NotOpen => OpenError::UnknownRoom(room),
                        });
                    }
                }
            }
        };
        let resource = resource_id();
        {
            let mut table = self.table();
            // Again under the lock: requests that passed the first look together must not
            // take the server past its bound.
            if table.sessions.len() >= max {
                drop(table);
                if tied.is_none() {
                    shared.conferences.leave(&room, session);
                }
                return Err(OpenError::TooManySessions(max));
            }
            table.sessions.insert(
                resource.clone(),
                Entry {
                    kind,
                    room: room.clone(),
                    leg: session,
                    participant,
                    token,
                },
            );
            table.by_leg.insert(session, resource.clone());
        }
        let direction = match kind {
            SessionKind::Whip => BrowserDirection::Publish,
            SessionKind::Whep => BrowserDirection::Subscribe,
            SessionKind::Page => BrowserDirection::Both,
        };
        let start = BrowserStart {
            session,
            participant,
            room: room.clone(),
            direction,
            socket,
            leg,
            muted,
            unreachable_timeout: config.webrtc.disconnected_timeout(),
            reports: self.reports.clone(),
            connected: None,
        };
        if !shared
            .media
            .send_browser(BrowserCommand::Start(Box::new(start)))
        {
            self.end(shared, session, false, EndCause::MediaBusy);
            return Err(OpenError::MediaBusy);
        }
        crate::telemetry::count(crate::telemetry::WEBRTC_SESSIONS_STARTED_TOTAL);
        if tied.is_none() {
            shared
                .conferences
                .tell_others(&room, session, Notice::Announce("join-tone"));
        }
        tracing::info!(%session, %participant, %room, kind = kind.as_str(), %local, "WebRTC session opened");
        Ok(Opened { resource, answer })
    }

    /// The participant of WHIP session `resource` in `room`, for a WHEP session to join.
    fn publisher(&self, resource: &str, room: &str) -> Result<LegId, OpenError> {
        let table = self.table();
        let Some(entry) = table
            .sessions
            .get(resource)
            .filter(|e| e.kind == SessionKind::Whip && e.room == room)
        else {
            return Err(OpenError::UnknownPublisher(resource.to_owned()));
        };
        if table
            .sessions_of(entry.participant)
            .any(|e| e.kind == SessionKind::Whep)
        {
            return Err(OpenError::PublisherTaken(resource.to_owned()));
        }
        Ok(entry.participant)
    }

    /// Ends session `resource` of `kind` for a DELETE that presented `token`.
    pub fn close(
        &self,
        shared: &Shared,
        kind: TokenKind,
        resource: &str,
        token: Option<&str>,
    ) -> Result<(), CloseError> {
        let leg = {
            let table = self.table();
            let entry = table
                .sessions
                .get(resource)
                .filter(|e| e.kind == SessionKind::from(kind))
                .ok_or(CloseError::NotFound)?;
            let token = token.ok_or(CloseError::MissingToken)?;
            let presented = store::token_hash(token);
            if !entry
                .token
                .is_some_and(|t| store::same_token_hash(&t, &presented))
            {
                return Err(CloseError::WrongToken);
            }
            entry.leg
        };
        self.end(shared, leg, true, EndCause::Deleted);
        Ok(())
    }

    /// The join-page session `resource` of room `room`.
    pub fn page_session(&self, room: &str, resource: &str) -> PageSession {
        let table = self.table();
        if let Some(entry) = table
            .sessions
            .get(resource)
            .filter(|e| e.kind == SessionKind::Page && e.room == room)
        {
            return PageSession::Open(entry.participant);
        }
        table
            .ended
            .iter()
            .rev()
            .find(|(r, _)| r == resource)
            .map_or(PageSession::Unknown, |(_, cause)| {
                PageSession::Ended(*cause)
            })
    }

    /// Ends join-page session `resource` of room `room` (its user left).
    pub fn close_page(
        &self,
        shared: &Shared,
        room: &str,
        resource: &str,
    ) -> Result<(), CloseError> {
        let PageSession::Open(participant) = self.page_session(room, resource) else {
            return Err(CloseError::NotFound);
        };
        self.end(shared, participant, true, EndCause::Deleted);
        Ok(())
    }

    /// Mutes or unmutes the user of join-page session `resource` of room `room` at its own
    /// request: the room's mix leaves its audio out, and the room's members see it muted.
    pub fn set_page_muted(
        &self,
        shared: &Shared,
        room: &str,
        resource: &str,
        muted: bool,
    ) -> Result<(), CloseError> {
        let PageSession::Open(participant) = self.page_session(room, resource) else {
            return Err(CloseError::NotFound);
        };
        if !shared.conferences.set_muted(room, participant, muted) {
            return Err(CloseError::NotFound);
        }
        shared.media.send_browser(BrowserCommand::SetMuted {
            room: room.to_owned(),
            participant,
            muted,
        });
        tracing::info!(%participant, %room, muted, "join-page user muted itself");
        Ok(())
    }

    /// Every session with the room and token hash it was opened with, for the watch that
    /// ends sessions whose token an admin revoked or replaced.
    pub fn token_holders(&self) -> Vec<TokenHolder> {
        self.table()
            .sessions
            .values()
            .filter_map(|e| {
                let kind = match e.kind {
                    SessionKind::Whip => TokenKind::Whip,
                    SessionKind::Whep => TokenKind::Whep,
                    // The page's guard is the PIN, checked when it joined.
                    SessionKind::Page => return None,
                };
                Some(TokenHolder {
                    leg: e.leg,
                    kind,
                    room: e.room.clone(),
                    token: e.token?,
                })
            })
            .collect()
    }

    /// Ends session `leg`: the token it was opened with no longer admits anyone.
    pub fn end_revoked(&self, shared: &Shared, leg: LegId) {
        self.end(shared, leg, true, EndCause::TokenRevoked);
    }

    /// Takes session `leg` off the books (once: later calls for it do nothing), stops its
    /// media when `stop_media` (the worker has not ended it itself), and takes its
    /// participant out of the room when it was the participant's last session.
    fn end(&self, shared: &Shared, leg: LegId, stop_media: bool, cause: EndCause) {
        let (entry, participant_left) = {
            let mut table = self.table();
            let Some(resource) = table.by_leg.remove(&leg) else {
                return;
            };
            let Some(entry) = table.sessions.remove(&resource) else {
                return;
            };
            if entry.kind == SessionKind::Page {
                if table.ended.len() >= ENDED_REMEMBERED {
                    table.ended.pop_front();
                }
                table.ended.push_back((resource, cause));
            }
            let left = table.sessions_of(entry.participant).next().is_none();
            (entry, left)
        };
        if stop_media {
            shared.media.send_browser(BrowserCommand::Stop {
                room: entry.room.clone(),
                session: leg,
            });
        }
        if participant_left {
            if let Some(recording) = shared.conferences.leave(&entry.room, entry.participant) {
                // The room is empty: its recording ends, as when its last caller hangs up.
                tracing::info!(room = %entry.room, id = ?recording.id, "recording ends");
                shared.media.send(
                    LegId::new(0),
                    MediaCommand::SetRecording(entry.room.clone(), None),
                );
            }
            shared.conferences.tell_others(
                &entry.room,
                entry.participant,
                Notice::Announce("leave-tone"),
            );
        }
        tracing::info!(session = %leg, room = %entry.room, kind = entry.kind.as_str(), why = cause.log_text(), "WebRTC session ended");
    }

    /// Ends every session of `participant` (its room ended).
    fn end_participant(&self, shared: &Shared, participant: LegId, cause: EndCause) {
        let legs: Vec<LegId> = self
            .table()
            .sessions_of(participant)
            .map(|e| e.leg)
            .collect();
        for leg in legs {
            self.end(shared, leg, true, cause);
        }
    }

    /// A media worker ended a session by itself.
    fn on_report(&self, shared: &Shared, report: BrowserReport) {
        let cause = match &report.end {
            SessionEnd::Closed(_) => EndCause::ClientClosed,
            SessionEnd::Unreachable => {
                crate::telemetry::count(crate::telemetry::WEBRTC_SESSIONS_UNREACHABLE_TOTAL);
                EndCause::Unreachable
            }
            SessionEnd::NotJoined(_) => EndCause::NotJoined,
        };
        self.end(shared, report.session, false, cause);
    }

    /// News from the room for a WebRTC participant.
    fn on_notice(&self, shared: &Shared, participant: LegId, notice: Notice) {
        match notice {
            Notice::Closed => self.end_participant(shared, participant, EndCause::RoomClosed),
            Notice::Ended => self.end_participant(shared, participant, EndCause::ConferenceEnded),
            Notice::Removed => self.end_participant(shared, participant, EndCause::Removed),
            Notice::SetMuted(muted) => {
                let room = self
                    .table()
                    .sessions_of(participant)
                    .next()
                    .map(|e| e.room.clone());
                if let Some(room) = room {
                    shared.media.send_browser(BrowserCommand::SetMuted {
                        room,
                        participant,
                        muted,
                    });
                }
            }
            // Prompts are for callers; a WebRTC client hears the room only.
            Notice::Announce(_) => {}
        }
    }
}

/// Keeps the books in step with the workers and the rooms until the server stops.
pub fn spawn(shared: Arc<Shared>, queues: WebRtcQueues) {
    let WebRtcQueues {
        mut reports,
        mut notices,
    } = queues;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(report) = reports.recv() => shared.webrtc.on_report(&shared, report),
                Some((participant, event)) = notices.recv() => {
                    if let CallEvent::Notice(notice) = event {
                        shared.webrtc.on_notice(&shared, participant, notice);
                    }
                }
                else => return,
            }
        }
    });
}

/// The name a join-page user gave, trimmed, if it is one to show to others: no control
/// characters, and none of the invisible ones that reorder or hide text (a name that shows
/// as someone else's).
fn valid_name(name: &str) -> Option<String> {
    let name = name.trim();
    let chars = name.chars().count();
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    ((1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(invisible)).then(|| name.to_owned())
}

/// A new session's resource id: 128 random bits, so that a session's URL cannot be guessed.
fn resource_id() -> String {
    use std::fmt::Write;
    rand::random::<[u8; 16]>()
        .iter()
        .fold(String::with_capacity(32), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_page_name_is_trimmed_and_bounded_and_has_no_control_characters() {
        assert_eq!(valid_name("  Anna Schmidt "), Some("Anna Schmidt".into()));
        assert_eq!(valid_name("Jürgen"), Some("Jürgen".into()));
        assert_eq!(valid_name("   "), None);
        assert_eq!(valid_name("a\u{7}b"), None);
        assert_eq!(valid_name("Anna\u{202E}nimdA"), None);
        assert_eq!(valid_name("An\u{200B}na"), None);
        assert_eq!(
            valid_name(&"ä".repeat(MAX_NAME_CHARS)).map(|n| n.chars().count()),
            Some(MAX_NAME_CHARS)
        );
        assert_eq!(valid_name(&"a".repeat(MAX_NAME_CHARS + 1)), None);
    }
}
