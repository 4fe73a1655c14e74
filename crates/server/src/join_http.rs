//! The join page over HTTP: `GET /join/{room}` (the page, `join_page`), its script and
//! stylesheet under `/assets/`, and the JSON API the script uses (documented in the README):
//!
//! - `POST /join/{room}/sessions` with `{"name", "pin", "sdp"}` opens a session: `201` with
//!   `{"sdp": answer, "session": url}`; errors are `{"error": code, "reason": text}`: 400
//!   `bad_request`/`bad_name`/`bad_sdp`, 403 `wrong_pin` (with `tries_left`), 429
//!   `too_many_pin_tries` (with `retry_after` and `Retry-After`), 404 `unknown_room`, 409
//!   `room_full`/`room_closing`, 423 `room_locked`, 503 when the server is at its limits.
//! - `GET` on the session URL: the participants with who talks and who is muted (the page
//!   polls it); `410` with the reason once the session ended, `404` for one the server does
//!   not know (it restarted: the page joins again).
//! - `PUT` on `{session}/muted` with `{"muted": bool}`: the user muted or unmuted itself.
//! - `DELETE` on the session URL: the user left.
//!
//! The session URL holds 128 random bits and is the session's credential, as a phone call's
//! dialog is a phone's: only the page that opened it reads the participant list. The page is
//! same-origin with its API, so no CORS is offered, and every answer tells the browser not
//! to send the page's URL elsewhere or cache the participant list.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Deserialize;
use tracing::Instrument;

use crate::conference::MemberLabel;
use crate::join_page::{Language, RoomState};
use crate::shared::Shared;
use crate::webrtc_sessions::{EndCause, OpenError, PageOffer, PageSession};

/// Largest request body taken: an offer of up to 64 KiB (the WebRTC leg's own limit) in
/// JSON with a name and a PIN.
const MAX_BODY_BYTES: usize = 80 * 1024;

/// The page's script, embedded in the binary (no build step).
const SCRIPT: &str = include_str!("../assets/join.js");
/// The page's stylesheet.
const STYLESHEET: &str = include_str!("../assets/join.css");

/// What the page may load and run: its own script and stylesheet, its own API, and nothing
/// else (no inline script runs; the texts are a JSON data block).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; media-src 'self' blob: mediastream:; img-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The routes, on `shared`.
pub fn routes<S: Clone + Send + Sync + 'static>(shared: Arc<Shared>) -> Router<S> {
    Router::new()
        .route("/join/{room}", get(page))
        .route("/assets/join.js", get(script))
        .route("/assets/join.css", get(stylesheet))
        .route("/join/{room}/sessions", axum::routing::post(open_session))
        .route(
            "/join/{room}/sessions/{id}",
            get(session_state).delete(leave),
        )
        .route("/join/{room}/sessions/{id}/muted", put(set_muted))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

/// A room number as rooms are created (1 to 10 digits); anything else is no room.
fn is_room_number(room: &str) -> bool {
    (1..=10).contains(&room.len()) && room.bytes().all(|b| b.is_ascii_digit())
}

/// `GET /join/{room}`: the page, in the browser's language; 404 (with a page saying so) for
/// a room that does not exist.
async fn page(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    let language = Language::from_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let state = room_state(&shared, &room).await;
    let status = match state {
        Ok(RoomState::Unknown) => StatusCode::NOT_FOUND,
        Ok(RoomState::Open { .. }) => StatusCode::OK,
        Err(()) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let html = crate::join_page::render(
        &room,
        state.unwrap_or(RoomState::Unknown),
        language,
        &crate::ice_servers::grants(&shared.config.webrtc.ice_servers),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    private(headers);
    response
}

/// Whether `room` can be joined and asks for a PIN; `Err` when the store cannot say.
async fn room_state(shared: &Shared, room: &str) -> Result<RoomState, ()> {
    if !is_room_number(room) {
        return Ok(RoomState::Unknown);
    }
    let number = room.to_owned();
    match shared.store.run(move |store| store.room_get(&number)).await {
        Ok(Ok(Some(stored))) => Ok(RoomState::Open {
            pin: stored.has_pin,
        }),
        // Rooms without a stored row exist while someone is in them (opened by a caller).
        Ok(Ok(None)) if shared.conferences.is_open(room) => Ok(RoomState::Open { pin: false }),
        Ok(Ok(None)) => Ok(RoomState::Unknown),
        Ok(Err(err)) => {
            tracing::error!(%room, "join page: room lookup failed: {err}");
            Err(())
        }
        Err(err) => {
            tracing::error!(%room, "join page: room lookup failed: {err}");
            Err(())
        }
    }
}

/// `GET /assets/join.js`.
async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /assets/join.css`.
async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

/// An embedded asset; browsers check back after a few minutes (a new server version may
/// bring a new script).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The body of `POST /join/{room}/sessions`.
#[derive(Debug, Deserialize)]
struct JoinRequest {
    name: String,
    #[serde(default)]
    pin: String,
    sdp: String,
}

/// `POST /join/{room}/sessions`: joins the room.
async fn open_session(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let span = tracing::info_span!("webrtc", kind = "page", %room, client = %peer);
    async move {
        if !is_json(&headers) {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request must be sent as Content-Type: application/json",
            );
        }
        let body = match body {
            Ok(body) => body,
            Err(rejection) => {
                return error(rejection.status(), "bad_request", rejection.body_text());
            }
        };
        let request: JoinRequest = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(err) => return error(StatusCode::BAD_REQUEST, "bad_request", err),
        };
        if !is_room_number(&room) {
            return open_error(&OpenError::UnknownRoom(room));
        }
        let offer = PageOffer {
            room: &room,
            name: &request.name,
            pin: &request.pin,
            sdp: &request.sdp,
            client: peer.ip(),
        };
        match shared.webrtc.open_page(&shared, offer).await {
            Ok(opened) => {
                let url = format!("/join/{room}/sessions/{}", opened.resource);
                let body = serde_json::json!({ "sdp": opened.answer, "session": url });
                let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
                if let Ok(location) = HeaderValue::from_str(&url) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                private(response.headers_mut());
                response
            }
            Err(err) => {
                tracing::info!("join refused: {err}");
                open_error(&err)
            }
        }
    }
    .instrument(span)
    .await
}

/// The status, code and extra fields of each refusal.
fn open_error(err: &OpenError) -> Response {
    let (status, code) = match err {
        OpenError::BadName => (StatusCode::BAD_REQUEST, "bad_name"),
        OpenError::BadOffer(_) => (StatusCode::BAD_REQUEST, "bad_sdp"),
        OpenError::WrongPin { tries_left, .. } => {
            let extra = [("tries_left", (*tries_left).into())];
            return error_with(StatusCode::FORBIDDEN, "wrong_pin", err, &extra);
        }
        OpenError::TooManyPinTries(after) => {
            let seconds = after.as_secs().max(1);
            let extra = [("retry_after", seconds.into())];
            let mut response = error_with(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_pin_tries",
                err,
                &extra,
            );
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        OpenError::UnknownRoom(_) => (StatusCode::NOT_FOUND, "unknown_room"),
        OpenError::RoomFull { .. } => (StatusCode::CONFLICT, "room_full"),
        OpenError::RoomClosing(_) => (StatusCode::CONFLICT, "room_closing"),
        OpenError::RoomLocked(_) => (StatusCode::LOCKED, "room_locked"),
        OpenError::TooManySessions(_) => (StatusCode::SERVICE_UNAVAILABLE, "too_many_sessions"),
        OpenError::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        OpenError::NoMediaPort(_) | OpenError::MediaBusy => {
            (StatusCode::SERVICE_UNAVAILABLE, "media_unavailable")
        }
        OpenError::ServerAddress(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_address"),
        // WHIP/WHEP refusals; a page request never meets them.
        OpenError::MissingToken
        | OpenError::WrongToken
        | OpenError::UnknownPublisher(_)
        | OpenError::PublisherTaken(_)
        | OpenError::PublisherOnWhip => (StatusCode::BAD_REQUEST, "bad_request"),
    };
    error(status, code, err)
}

/// `GET` on a session: who is in the room.
async fn session_state(
    State(shared): State<Arc<Shared>>,
    Path((room, id)): Path<(String, String)>,
) -> Response {
    let you = match shared.webrtc.page_session(&room, &id) {
        PageSession::Open(you) => you,
        PageSession::Ended(cause) => return ended(cause),
        PageSession::Unknown => return unknown_session(),
    };
    let Some(roster) = shared.conferences.roster(&room) else {
        // The session's room ended a moment ago; its end is on its way to the books.
        return unknown_session();
    };
    let participants: Vec<serde_json::Value> = roster
        .iter()
        .map(|entry| {
            let (kind, name) = match &entry.label {
                MemberLabel::Browser(name) => ("browser", Some(name.as_str())),
                MemberLabel::Phone(number) => ("phone", number.as_deref()),
                MemberLabel::Meeting => ("meeting", None),
            };
            serde_json::json!({
                "id": entry.member.to_string(),
                "kind": kind,
                "name": name,
                "you": entry.member == you,
                "muted": entry.muted,
                "talking": entry.talking,
            })
        })
        .collect();
    let mut response = axum::Json(serde_json::json!({
        "room": room,
        "participants": participants,
    }))
    .into_response();
    private(response.headers_mut());
    response
}

/// The body of `PUT {session}/muted`.
#[derive(Debug, Deserialize)]
struct MuteRequest {
    muted: bool,
}

/// `PUT {session}/muted`: the user muted or unmuted itself.
async fn set_muted(
    State(shared): State<Arc<Shared>>,
    Path((room, id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: MuteRequest = match body.map(|b| serde_json::from_slice(&b)) {
        Ok(Ok(request)) => request,
        Ok(Err(err)) => return error(StatusCode::BAD_REQUEST, "bad_request", err),
        Err(rejection) => return error(rejection.status(), "bad_request", rejection.body_text()),
    };
    match shared
        .webrtc
        .set_page_muted(&shared, &room, &id, request.muted)
    {
        Ok(()) => axum::Json(serde_json::json!({ "muted": request.muted })).into_response(),
        Err(_) => unknown_session(),
    }
}

/// `DELETE` on a session: the user left.
async fn leave(
    State(shared): State<Arc<Shared>>,
    Path((room, id)): Path<(String, String)>,
) -> Response {
    match shared.webrtc.close_page(&shared, &room, &id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => unknown_session(),
    }
}

/// `410 Gone` with why the session ended: the page tells a conference that ended from a
/// connection it should make again.
fn ended(cause: EndCause) -> Response {
    let reason = match cause {
        EndCause::Deleted => "left",
        EndCause::ClientClosed => "closed",
        EndCause::Unreachable => "unreachable",
        EndCause::NotJoined | EndCause::MediaBusy => "not_joined",
        EndCause::ConferenceEnded => "conference_ended",
        EndCause::RoomClosed => "room_closed",
        EndCause::Removed => "removed",
        // Page sessions have no token; kept apart all the same.
        EndCause::TokenRevoked => "token_revoked",
    };
    let extra = [("ended", reason.into())];
    error_with(StatusCode::GONE, "ended", "the session has ended", &extra)
}

fn unknown_session() -> Response {
    error(StatusCode::NOT_FOUND, "unknown_session", "no such session")
}

/// A JSON error answer.
fn error(status: StatusCode, code: &str, reason: impl std::fmt::Display) -> Response {
    error_with(status, code, reason, &[])
}

/// A JSON error answer with `extra` fields.
fn error_with(
    status: StatusCode,
    code: &str,
    reason: impl std::fmt::Display,
    extra: &[(&str, serde_json::Value)],
) -> Response {
    let mut body = serde_json::json!({ "error": code, "reason": reason.to_string() });
    if let Some(fields) = body.as_object_mut() {
        for (key, value) in extra {
            fields.insert((*key).to_owned(), value.clone());
        }
    }
    let mut response = (status, axum::Json(body)).into_response();
    private(response.headers_mut());
    response
}

/// Neither cached nor referred: answers name sessions and participants (the console's too).
pub fn private(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// Whether the body is declared JSON.
fn is_json(headers: &HeaderMap) -> bool {
    crate::whip_http::has_media_type(headers, "application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON body of an answer.
    async fn json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn refusals_say_what_the_page_must_tell_its_user() {
        let wrong = open_error(&OpenError::WrongPin {
            room: "1234".into(),
            tries_left: 2,
        });
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
        let body = json(wrong).await;
        assert_eq!(body["error"], "wrong_pin");
        assert_eq!(body["tries_left"], 2);

        let locked_out = open_error(&OpenError::TooManyPinTries(
            std::time::Duration::from_millis(41_500),
        ));
        assert_eq!(locked_out.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(locked_out.headers()[header::RETRY_AFTER], "41");
        assert_eq!(json(locked_out).await["retry_after"], 41);

        for (err, status, code) in [
            (
                OpenError::RoomLocked("1234".into()),
                StatusCode::LOCKED,
                "room_locked",
            ),
            (
                OpenError::RoomFull {
                    room: "1234".into(),
                    max: 2,
                },
                StatusCode::CONFLICT,
                "room_full",
            ),
            (
                OpenError::UnknownRoom("9".into()),
                StatusCode::NOT_FOUND,
                "unknown_room",
            ),
            (OpenError::BadName, StatusCode::BAD_REQUEST, "bad_name"),
        ] {
            let response = open_error(&err);
            assert_eq!(response.status(), status, "{err}");
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
            assert_eq!(json(response).await["error"], code, "{err}");
        }
    }

    #[test]
    fn only_room_numbers_are_rooms() {
        assert!(is_room_number("1234"));
        assert!(is_room_number("0123456789"));
        assert!(!is_room_number(""));
        assert!(!is_room_number("12345678901"));
        assert!(!is_room_number("12a4"));
        assert!(!is_room_number("assets"));
    }

    #[tokio::test]
    async fn an_ended_session_says_whether_joining_again_makes_sense() {
        for (cause, reason) in [
            (EndCause::RoomClosed, "room_closed"),
            (EndCause::ConferenceEnded, "conference_ended"),
            (EndCause::Unreachable, "unreachable"),
            (EndCause::Deleted, "left"),
        ] {
            let response = ended(cause);
            assert_eq!(response.status(), StatusCode::GONE);
            assert_eq!(json(response).await["ended"], reason);
        }
    }
}
