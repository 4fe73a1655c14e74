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
//! A session ends on DELETE, when its client closes DTLS, when its client stays unreachable
//! past `[webrtc] disconnected-timeout`, or when its room ends (a moderator ended the
//! conference, an admin deleted or re-guarded the room). Every end goes through one function,
//! which keeps the books, the room registry and the worker in step.

use std::collections::HashMap;
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
use crate::conference::{Refusal, RoomTerms};
use crate::ids::LegId;
use crate::media_worker::{MediaCommand, PortAllocator};
use crate::shared::Shared;

/// Reports from the media workers waiting for the bookkeeping task at most; workers keep
/// what does not fit and try again next tick.
const REPORTS_QUEUE: usize = 1024;
/// Room news for WebRTC participants waiting at most; the registry drops (and logs) news
/// that finds it full, as it does for calls.
const NOTICES_QUEUE: usize = 1024;

/// WebRTC sessions started since the server started.
pub static SESSIONS_STARTED: AtomicU64 = AtomicU64::new(0);
/// Sessions ended because their client became unreachable and did not come back.
pub static SESSIONS_UNREACHABLE: AtomicU64 = AtomicU64::new(0);

/// One session in the books.
struct Entry {
    kind: TokenKind,
    room: String,
    leg: LegId,
    /// The room member it belongs to (itself, or the WHIP session it is tied to).
    participant: LegId,
    /// SHA-256 of the token the session was opened with: DELETE must present it again.
    token: [u8; 32],
}

#[derive(Default)]
struct Table {
    /// By resource id (the last segment of the session's URL).
    sessions: HashMap<String, Entry>,
    /// Resource id by session.
    by_leg: HashMap<LegId, String>,
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
    /// No such session (of this kind).
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
        let whip = table
            .sessions
            .values()
            .filter(|e| e.kind == TokenKind::Whip)
            .count();
        SessionCounts {
            whip,
            whep: table.sessions.len() - whip,
        }
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
        let max = shared.config.webrtc.max_sessions;
        if self.table().sessions.len() >= max {
            return Err(OpenError::TooManySessions(max));
        }

        let config = &shared.config;
        let ip = config.media_ip.unwrap_or_else(|| {
            crate::sip_endpoint::local_ip_towards(offer.client, config.sip_listen.ip())
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
            WebRtcLeg::answer(&leg_config, offer.sdp, Instant::now()).map_err(|err| match err {
                WebRtcError::UnusableAddress { .. } => OpenError::ServerAddress(err),
                other => OpenError::BadOffer(other),
            })?;

        let session = LegId::browser(self.next.fetch_add(1, Ordering::Relaxed));
        let participant = tied.unwrap_or(session);
        let muted = match tied {
            Some(_) => false,
            None => {
                let terms = RoomTerms::of(stored.as_ref());
                let admitted =
                    shared
                        .conferences
                        .admit_client(&room, session, terms, self.notices.clone());
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
                    kind: offer.kind,
                    room: room.clone(),
                    leg: session,
                    participant,
                    token: store::token_hash(token),
                },
            );
            table.by_leg.insert(session, resource.clone());
        }
        let direction = match offer.kind {
            TokenKind::Whip => BrowserDirection::Publish,
            TokenKind::Whep => BrowserDirection::Subscribe,
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
            self.end(shared, session, false, "media worker busy");
            return Err(OpenError::MediaBusy);
        }
        SESSIONS_STARTED.fetch_add(1, Ordering::Relaxed);
        if tied.is_none() {
            shared
                .conferences
                .tell_others(&room, session, Notice::Announce("join-tone"));
        }
        tracing::info!(%session, %participant, %room, kind = offer.kind.as_str(), %local, "WebRTC session opened");
        Ok(Opened { resource, answer })
    }

    /// The participant of WHIP session `resource` in `room`, for a WHEP session to join.
    fn publisher(&self, resource: &str, room: &str) -> Result<LegId, OpenError> {
        let table = self.table();
        let Some(entry) = table
            .sessions
            .get(resource)
            .filter(|e| e.kind == TokenKind::Whip && e.room == room)
        else {
            return Err(OpenError::UnknownPublisher(resource.to_owned()));
        };
        if table
            .sessions_of(entry.participant)
            .any(|e| e.kind == TokenKind::Whep)
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
                .filter(|e| e.kind == kind)
                .ok_or(CloseError::NotFound)?;
            let token = token.ok_or(CloseError::MissingToken)?;
            if !store::same_token_hash(&entry.token, &store::token_hash(token)) {
                return Err(CloseError::WrongToken);
            }
            entry.leg
        };
        self.end(shared, leg, true, "DELETE");
        Ok(())
    }

    /// Takes session `leg` off the books (once: later calls for it do nothing), stops its
    /// media when `stop_media` (the worker has not ended it itself), and takes its
    /// participant out of the room when it was the participant's last session.
    fn end(&self, shared: &Shared, leg: LegId, stop_media: bool, why: &str) {
        let (entry, participant_left) = {
            let mut table = self.table();
            let Some(resource) = table.by_leg.remove(&leg) else {
                return;
            };
            let Some(entry) = table.sessions.remove(&resource) else {
                return;
            };
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
        tracing::info!(session = %leg, room = %entry.room, kind = entry.kind.as_str(), why, "WebRTC session ended");
    }

    /// Ends every session of `participant` (its room ended).
    fn end_participant(&self, shared: &Shared, participant: LegId, why: &str) {
        let legs: Vec<LegId> = self
            .table()
            .sessions_of(participant)
            .map(|e| e.leg)
            .collect();
        for leg in legs {
            self.end(shared, leg, true, why);
        }
    }

    /// A media worker ended a session by itself.
    fn on_report(&self, shared: &Shared, report: BrowserReport) {
        let why = match &report.end {
            SessionEnd::Closed(_) => "closed by the client",
            SessionEnd::Unreachable => {
                SESSIONS_UNREACHABLE.fetch_add(1, Ordering::Relaxed);
                "client unreachable"
            }
            SessionEnd::NotJoined(_) => "not joined",
        };
        self.end(shared, report.session, false, why);
    }

    /// News from the room for a WebRTC participant.
    fn on_notice(&self, shared: &Shared, participant: LegId, notice: Notice) {
        match notice {
            Notice::Closed => self.end_participant(shared, participant, "room closed by an admin"),
            Notice::Ended => self.end_participant(shared, participant, "conference ended"),
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
