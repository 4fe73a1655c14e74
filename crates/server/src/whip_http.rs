//! WHIP (RFC 9725) and WHEP over HTTP: `POST /whip/rooms/{room}` publishes a WebRTC client's
//! audio into a room, `POST /whep/rooms/{room}` sends it the room's mix; each answers
//! `201 Created` with the SDP answer and the session's URL in `Location`, and `DELETE` on that
//! URL ends the session. Neither trickle ICE nor ICE restarts are offered (the answer carries
//! the server's one candidate), so `PATCH` on a session is `405 Method Not Allowed`, as are the
//! methods RFC 9725 reserves (GET, HEAD and PUT on the endpoint; axum answers those).
//!
//! Browsers call these from other origins (a meeting's page), so every answer carries CORS
//! headers and `OPTIONS` answers the preflight (RFC 9725 §4, Fetch's CORS). Errors are JSON,
//! `{"error": CODE, "reason": TEXT}`: 400 for an offer that cannot be answered, 401 without
//! the room's token, 404 for a room that does not exist, 409 when it is full.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use store::TokenKind;
use tracing::Instrument;

use crate::shared::Shared;
use crate::webrtc_sessions::{CloseError, Offer, OpenError};

/// Largest offer body taken. Browser offers are a few KiB (the WebRTC leg refuses more than
/// 64 KiB itself); the limit keeps a hostile body from being read at all.
const MAX_OFFER_BYTES: usize = 64 * 1024;

/// The routes, on `shared`.
pub fn routes<S: Clone + Send + Sync + 'static>(shared: Arc<Shared>) -> Router<S> {
    Router::new()
        .route(
            "/whip/rooms/{room}",
            post(post_endpoint::<WHIP>).options(endpoint_options),
        )
        .route(
            "/whep/rooms/{room}",
            post(post_endpoint::<WHEP>).options(endpoint_options),
        )
        .route(
            "/whip/sessions/{id}",
            axum::routing::delete(delete_session_url::<WHIP>).options(session_options),
        )
        .route(
            "/whep/sessions/{id}",
            axum::routing::delete(delete_session_url::<WHEP>).options(session_options),
        )
        .layer(DefaultBodyLimit::max(MAX_OFFER_BYTES))
        .with_state(shared)
}

/// Query parameters of a POST.
#[derive(Debug, Deserialize)]
struct PostParams {
    /// WHEP only: the WHIP session (its id, the last segment of its URL) of the same client,
    /// so that it does not hear itself.
    publisher: Option<String>,
}

// The handlers' `KIND`: WHIP and WHEP routes differ only in which token and which direction
// they mean, so one handler serves both (axum handlers cannot take a runtime argument).
const WHIP: u8 = 0;
const WHEP: u8 = 1;

/// The token kind of a handler's `KIND`.
fn kind_of(kind: u8) -> TokenKind {
    if kind == WHEP {
        TokenKind::Whep
    } else {
        TokenKind::Whip
    }
}

/// `POST` on an endpoint.
async fn post_endpoint<const KIND: u8>(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    query: Result<Query<PostParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let kind = kind_of(KIND);
    let span = tracing::info_span!("webrtc", kind = kind.as_str(), %room, client = %peer);
    post_offer(kind, &shared, peer, &room, query, &headers, body)
        .instrument(span)
        .await
}

/// `DELETE` on a session.
async fn delete_session_url<const KIND: u8>(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    delete_session(kind_of(KIND), &shared, &id, &headers)
}

/// Opens a session for a POSTed offer, or says in JSON why not.
async fn post_offer(
    kind: TokenKind,
    shared: &Shared,
    peer: SocketAddr,
    room: &str,
    query: Result<Query<PostParams>, axum::extract::rejection::QueryRejection>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(Query(params)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "unreadable query string",
        );
    };
    if !is_sdp(headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the offer must be sent as Content-Type: application/sdp",
        );
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error(rejection.status(), "bad_request", rejection.body_text());
        }
    };
    let Ok(sdp) = std::str::from_utf8(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_sdp",
            "the offer is not UTF-8 text",
        );
    };
    let offer = Offer {
        kind,
        room,
        token: bearer(headers),
        sdp,
        publisher: params.publisher.as_deref(),
        client: peer.ip(),
    };
    // `open` holds no lock across its await, and the session it opens is on the books before
    // it returns, so a DELETE racing the 201 finds it.
    let opened = shared.webrtc.open(shared, offer).await;
    match opened {
        Ok(opened) => {
            let location = format!("/{}/sessions/{}", kind.as_str(), opened.resource);
            let mut response = (StatusCode::CREATED, opened.answer).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sdp"),
            );
            if let Ok(location) = HeaderValue::from_str(&location) {
                headers.insert(header::LOCATION, location);
            }
            // The relays a client behind a strict firewall needs (RFC 9725 §4.6).
            for grant in crate::ice_servers::grants(&shared.config.webrtc.ice_servers) {
                for link in grant.link_headers() {
                    if let Ok(link) = HeaderValue::from_str(&link) {
                        headers.append(header::LINK, link);
                    }
                }
            }
            allow_origin(headers);
            response
        }
        Err(err) => {
            tracing::info!("WebRTC session refused: {err}");
            open_error(&err)
        }
    }
}

/// The status and code of each refusal.
fn open_error(err: &OpenError) -> Response {
    let (status, code) = match err {
        OpenError::MissingToken => return unauthorized("missing_token", err, None),
        OpenError::WrongToken => return unauthorized("wrong_token", err, Some("invalid_token")),
        OpenError::UnknownRoom(_) => (StatusCode::NOT_FOUND, "unknown_room"),
        OpenError::RoomFull { .. } => (StatusCode::CONFLICT, "room_full"),
        OpenError::RoomClosing(_) => (StatusCode::CONFLICT, "room_closing"),
        OpenError::RoomLocked(_) => (StatusCode::FORBIDDEN, "room_locked"),
        OpenError::BadOffer(_) => (StatusCode::BAD_REQUEST, "bad_sdp"),
        OpenError::UnknownPublisher(_) | OpenError::PublisherOnWhip => {
            (StatusCode::BAD_REQUEST, "bad_publisher")
        }
        OpenError::PublisherTaken(_) => (StatusCode::CONFLICT, "publisher_taken"),
        OpenError::TooManySessions(_) => (StatusCode::SERVICE_UNAVAILABLE, "too_many_sessions"),
        OpenError::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        OpenError::NoMediaPort(_) | OpenError::MediaBusy => {
            (StatusCode::SERVICE_UNAVAILABLE, "media_unavailable")
        }
        OpenError::ServerAddress(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_address"),
        // Join-page refusals; a WHIP or WHEP request never meets them.
        OpenError::BadName | OpenError::WrongPin { .. } | OpenError::TooManyPinTries(_) => {
            (StatusCode::BAD_REQUEST, "bad_request")
        }
    };
    error(status, code, err)
}

/// `DELETE` on a session's URL: 200 once it is over (RFC 9725). The session's URL is a
/// random 128-bit name, and the request must carry the token the session was opened with
/// (RFC 9725's bearer tokens go on every request to the endpoint and the session): neither
/// alone ends someone else's session.
fn delete_session(kind: TokenKind, shared: &Shared, id: &str, headers: &HeaderMap) -> Response {
    match shared.webrtc.close(shared, kind, id, bearer(headers)) {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            allow_origin(response.headers_mut());
            response
        }
        Err(err @ CloseError::NotFound) => error(StatusCode::NOT_FOUND, "unknown_session", err),
        Err(err @ CloseError::MissingToken) => unauthorized("missing_token", err, None),
        Err(err @ CloseError::WrongToken) => {
            unauthorized("wrong_token", err, Some("invalid_token"))
        }
    }
}

/// `OPTIONS` on an endpoint: the CORS preflight for the POST, and `Accept-Post` saying
/// what it takes (RFC 9725 asks for it on the `200 OK` to OPTIONS).
async fn endpoint_options() -> Response {
    let mut response = preflight("POST, OPTIONS");
    response
        .headers_mut()
        .insert("accept-post", HeaderValue::from_static("application/sdp"));
    response
}

/// `OPTIONS` on a session: the CORS preflight for the DELETE.
async fn session_options() -> Response {
    preflight("DELETE, OPTIONS")
}

/// A `200 OK` CORS preflight answer allowing `methods`.
fn preflight(methods: &'static str) -> Response {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    allow_origin(headers);
    headers.insert(header::ALLOW, HeaderValue::from_static(methods));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    // Named, not `*`: Fetch never lets the wildcard cover Authorization, and an
    // `application/sdp` Content-Type is not one a page may send without asking.
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

/// CORS on every answer: any origin may call (the bearer token, not cookies, is the
/// credential, so `*` is allowed and safe), and a page may read `Location` and the ICE
/// servers' `Link` headers.
fn allow_origin(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link"),
    );
}

/// A JSON error answer with CORS headers.
fn error(status: StatusCode, code: &str, reason: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "error": code, "reason": reason.to_string() });
    let mut response = (status, axum::Json(body)).into_response();
    allow_origin(response.headers_mut());
    response
}

/// 401 with the challenge RFC 6750 §3 asks for; `error` names what was wrong with a token
/// that was sent.
fn unauthorized(code: &str, reason: impl std::fmt::Display, error_code: Option<&str>) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, code, reason);
    let challenge = match error_code {
        Some(e) => format!("Bearer realm=\"amtsleitung\", error=\"{e}\""),
        None => "Bearer realm=\"amtsleitung\"".to_owned(),
    };
    if let Ok(challenge) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// The bearer token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1; the scheme
/// is case-insensitive, RFC 9110 §11.1), if there is one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether the body is declared `application/sdp` (parameters allowed, any case).
fn is_sdp(headers: &HeaderMap) -> bool {
    has_media_type(headers, "application/sdp")
}

/// Whether the request's `Content-Type` is `media` (parameters such as `charset` aside).
pub(crate) fn has_media_type(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|found| found.trim().eq_ignore_ascii_case(media))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn reads_a_bearer_token_in_any_case_and_nothing_else() {
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(bearer(&headers(&[("authorization", "Basic YTpi")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer")])), None);
        assert_eq!(bearer(&headers(&[])), None);
    }

    #[test]
    fn takes_application_sdp_with_parameters_only() {
        assert!(is_sdp(&headers(&[("content-type", "application/sdp")])));
        assert!(is_sdp(&headers(&[(
            "content-type",
            "Application/SDP; charset=utf-8"
        )])));
        assert!(!is_sdp(&headers(&[("content-type", "text/plain")])));
        assert!(!is_sdp(&headers(&[])));
    }

    #[test]
    fn errors_are_json_with_a_code_and_a_reason_and_401_challenges() {
        let response = open_error(&OpenError::WrongToken);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"amtsleitung\", error=\"invalid_token\""
        );
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let full = open_error(&OpenError::RoomFull {
            room: "1234".into(),
            max: 2,
        });
        assert_eq!(full.status(), StatusCode::CONFLICT);
        assert_eq!(
            open_error(&OpenError::UnknownRoom("9".into())).status(),
            StatusCode::NOT_FOUND
        );
    }
}
