//! The web console over HTTP: sign-in with a local account (Argon2id, `amtsleitung account`)
//! or through the configured LDAP directory, a session in a cookie, and the pages and JSON
//! API behind it (`console_page` renders the pages).
//!
//! - The session cookie holds 256 random bits (the store keeps only their hash); it is
//!   `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` over HTTPS. A session ends on
//!   sign-out, after `[console] idle-minutes` without a request, or when its account is
//!   disabled, deleted or gets a new password.
//! - Every state-changing request needs the session's CSRF token: forms send it as the
//!   `csrf` field, scripts as the `X-CSRF-Token` header. SameSite alone is not enough for a
//!   browser that ignores it or for a sibling site on the same registrable domain.
//! - Sign-in failures are counted per source and per account (`sign_in_guard`): first slowed
//!   down, then the source is blocked; the answer never tells whether the name exists.
//! - Staff see and change only their own rooms; admins everything. Each API route checks the
//!   role itself and answers 403, so that a route added later cannot forget it by accident
//!   of navigation.
//! - Every change is written to the audit log with the account, the source address and
//!   what changed (never a PIN or password).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::console_page::{self, Notice, RoomLine, Viewer};
use crate::join_page::Language;
use crate::shared::Shared;
use crate::sign_in_guard::{SignInGuard, Verdict};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "amt_console";
/// The header scripts send the CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";

/// Only the console's own script and stylesheet, no inline anything (the texts are a JSON
/// data block), requests and media (voicemail recordings) only to the console's own API,
/// forms post only to the console, and no page may frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; media-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The live view's script, embedded in the binary (no build step).
const SCRIPT: &str = include_str!("../assets/console.js");

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    pub(crate) shared: Arc<Shared>,
    /// The registrar's bans, asked on the signalling task that owns them.
    pub(crate) security: tokio::sync::mpsc::Sender<crate::registrar::SecurityRequest>,
    guard: Arc<Mutex<SignInGuard>>,
    /// The dialplan reloader, for the dialplan page's apply and rollback.
    pub(crate) dialplan_reloads: crate::http::ReloadRequests,
}

impl Console {
    /// One console for both listeners: they share the sign-in guard, so a guesser cannot
    /// double its tries by using both.
    pub fn new(
        shared: Arc<Shared>,
        security: tokio::sync::mpsc::Sender<crate::registrar::SecurityRequest>,
        dialplan_reloads: crate::http::ReloadRequests,
    ) -> Self {
        crate::console_system::note_start();
        Self {
            shared,
            security,
            guard: Arc::new(Mutex::new(SignInGuard::default())),
            dialplan_reloads,
        }
    }

    /// Deletes sessions idle past the timeout every ten minutes (a lookup deletes the one it
    /// finds expired; this clears those nobody comes back with).
    pub fn spawn_session_sweep(&self) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let idle_ms = i64::from(shared.config.console.idle_minutes) * 60_000;
                let swept = shared
                    .store
                    .run(move |store| store.console_sessions_expire(now_ms(), idle_ms))
                    .await;
                match flat(swept) {
                    Ok(0) => {}
                    Ok(ended) => tracing::info!(ended, "console sessions expired"),
                    Err(err) => tracing::warn!("console session sweep failed: {err}"),
                }
            }
        });
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, SignInGuard> {
        self.guard.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The routes; `secure` when served over HTTPS (the cookie then says `Secure`).
    pub fn routes<S: Clone + Send + Sync + 'static>(&self, secure: bool) -> Router<S> {
        let state = Listener {
            console: self.clone(),
            secure,
        };
        Router::new()
            .route("/console", get(|| async { Redirect::to("/console/rooms") }))
            .route("/console/sign-in", get(sign_in_page).post(sign_in))
            .route("/console/sign-out", axum::routing::post(sign_out))
            .route("/console/rooms", get(rooms_page).post(create_room_form))
            .route("/console/rooms/{number}", get(room_live_page))
            .route("/console/assets/console.css", get(stylesheet))
            .route("/console/assets/console.js", get(script))
            .route("/api/me", get(api_me))
            .route("/api/rooms", get(api_rooms).post(api_create_room))
            .route("/api/rooms/{number}", get(api_room).delete(api_delete_room))
            .route("/api/rooms/{number}/live", get(api_live))
            .route("/api/rooms/{number}/events", get(api_live_events))
            .route(
                "/api/rooms/{number}/members/{member}",
                axum::routing::delete(api_remove_member),
            )
            .route(
                "/api/rooms/{number}/members/{member}/muted",
                axum::routing::put(api_mute_member),
            )
            .route("/api/rooms/{number}/locked", axum::routing::put(api_lock))
            .route("/api/rooms/{number}/end", axum::routing::post(api_end))
            .route(
                "/api/rooms/{number}/mute-all",
                axum::routing::post(api_mute_all),
            )
            .route(
                "/api/rooms/{number}/recording",
                axum::routing::put(api_recording),
            )
            .route("/api/openapi.json", get(openapi))
            .route("/api/tokens", get(api_tokens).post(api_token_create))
            .route("/api/tokens/{id}", axum::routing::delete(api_token_revoke))
            .merge(crate::console_records::routes())
            .merge(crate::console_system::routes())
            .merge(crate::console_users::routes())
            .merge(crate::console_dialplan::routes())
            .with_state(state)
    }
}

/// A listener's view of the console: the state every console handler gets.
#[derive(Clone)]
pub(crate) struct Listener {
    pub(crate) console: Console,
    pub(crate) secure: bool,
}

/// A signed-in request's account and session.
pub(crate) struct Session {
    pub(crate) token: String,
    pub(crate) account: store::ConsoleAccount,
    pub(crate) csrf_token: String,
    /// Signed in by an API token (`Authorization: Bearer`), not a browser's cookie: no
    /// CSRF token is needed, since a browser never sends such a header on its own.
    pub(crate) by_api_token: bool,
}

impl Session {
    /// An admin of the whole system: an admin of the default domain. A town's admin is not
    /// one, so every page and call meant for the system (records, dialplan, bans, accounts)
    /// stays closed to them.
    pub(crate) fn admin(&self) -> bool {
        self.town_admin() && self.account.domain.is_none()
    }

    /// An admin of their town's rooms and users (the system's admins are the default
    /// domain's).
    pub(crate) fn town_admin(&self) -> bool {
        self.account.role == store::ConsoleRole::Admin
    }

    /// The town (SIP domain) the account belongs to.
    pub(crate) fn tenant(&self) -> &str {
        self.account
            .domain
            .as_deref()
            .unwrap_or(store::DEFAULT_DOMAIN)
    }

    pub(crate) fn viewer(&self) -> Viewer<'_> {
        Viewer {
            name: &self.account.name,
            admin: self.admin(),
            town_admin: self.town_admin(),
            csrf_token: &self.csrf_token,
        }
    }

    /// Whether this account may see and change `room`: the system's admins any room, a
    /// town's admin the town's rooms, anyone the rooms they own.
    pub(crate) fn may_manage(&self, room: &store::Room) -> bool {
        self.admin()
            || (self.town_admin() && crate::tenants::room_domain(&room.number) == self.tenant())
            || room.owner.as_deref() == Some(self.account.name.as_str())
    }
}

/// Why a request behind the sign-in was not served.
pub(crate) enum Refusal {
    SignedOut,
    StoreFailed,
}

/// The store's answer with its two failures (the job's own error, and a store thread that
/// did not take or finish the job) as one.
pub(crate) fn flat<T>(
    answer: Result<Result<T, store::StoreError>, crate::store_handle::StoreUnavailable>,
) -> Result<T, String> {
    answer
        .map_err(|err| err.to_string())
        .and_then(|result| result.map_err(|err| err.to_string()))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE && !value.is_empty()).then(|| value.to_owned())
        })
}

/// The API token of an `Authorization: Bearer amt_...` header.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && token.starts_with(store::API_TOKEN_PREFIX))
        .then(|| token.to_owned())
}

impl Listener {
    /// The session the request's API token or cookie names, if it is live.
    pub(crate) async fn session(&self, headers: &HeaderMap) -> Result<Session, Refusal> {
        if let Some(token) = bearer_token(headers) {
            return self.api_token_session(token).await;
        }
        let Some(token) = cookie_token(headers) else {
            return Err(Refusal::SignedOut);
        };
        let idle_ms = i64::from(self.console.shared.config.console.idle_minutes) * 60_000;
        let lookup = token.clone();
        let found = self
            .console
            .shared
            .store
            .run(move |store| store.console_session_get(&lookup, now_ms(), idle_ms))
            .await;
        match flat(found) {
            Ok(Some(session)) => Ok(Session {
                token,
                account: session.account,
                csrf_token: session.csrf_token,
                by_api_token: false,
            }),
            Ok(None) => Err(Refusal::SignedOut),
            Err(err) => {
                tracing::error!("console: session lookup failed: {err}");
                Err(Refusal::StoreFailed)
            }
        }
    }

    async fn api_token_session(&self, token: String) -> Result<Session, Refusal> {
        let found = self
            .console
            .shared
            .store
            .run(move |store| store.api_token_account(&token, now_ms()))
            .await;
        match flat(found) {
            Ok(Some(account)) => Ok(Session {
                token: String::new(),
                account,
                csrf_token: String::new(),
                by_api_token: true,
            }),
            Ok(None) => Err(Refusal::SignedOut),
            Err(err) => {
                tracing::error!("console: API token lookup failed: {err}");
                Err(Refusal::StoreFailed)
            }
        }
    }

    fn session_cookie(&self, token: &str) -> String {
        format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
            if self.secure { "; Secure" } else { "" }
        )
    }

    fn cleared_cookie(&self) -> String {
        format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// Writes an audit entry (fire and forget: the change itself is already done; a lost
    /// entry is logged as an error by the store thread's queue).
    pub(crate) fn audit(
        &self,
        session: &Session,
        source: IpAddr,
        action: &'static str,
        detail: String,
    ) {
        let actor = session.account.name.clone();
        let source = source.to_string();
        tracing::info!(actor, %source, action, detail, "console change");
        self.console
            .shared
            .store
            .submit("audit entry", move |store| {
                let entry = store::AuditEntry {
                    actor: &actor,
                    source: &source,
                    action,
                    detail: &detail,
                };
                if let Err(err) = store.audit_record(&entry, now_ms()) {
                    tracing::error!("audit entry not written: {err}");
                }
            });
    }
}

pub(crate) fn language(headers: &HeaderMap) -> Language {
    Language::from_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// An HTML page with the console's headers.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    private(headers);
    response
}

/// Neither cached, framed, sniffed nor referred: every console answer names people.
pub(crate) fn private(headers: &mut HeaderMap) {
    crate::join_http::private(headers);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
}

pub(crate) fn see_other(location: &str) -> Response {
    let mut response = Redirect::to(location).into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    private(response.headers_mut());
    response
}

/// The answer to a page request without a live session: to the sign-in page.
pub(crate) fn refused_page(refusal: Refusal, language: Language) -> Response {
    match refusal {
        Refusal::SignedOut => see_other("/console/sign-in"),
        Refusal::StoreFailed => html(
            StatusCode::SERVICE_UNAVAILABLE,
            console_page::sign_in(
                language,
                Some(console_page::texts(language).unavailable),
                "",
            ),
        ),
    }
}

/// A JSON error `{"error": code, "reason": text}`.
pub(crate) fn api_error(
    status: StatusCode,
    code: &str,
    reason: impl std::fmt::Display,
) -> Response {
    let body = serde_json::json!({ "error": code, "reason": reason.to_string() });
    let mut response = (status, axum::Json(body)).into_response();
    private(response.headers_mut());
    response
}

pub(crate) fn api_refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::SignedOut => api_error(
            StatusCode::UNAUTHORIZED,
            "signed_out",
            "sign in first (POST /console/sign-in); the session may have ended",
        ),
        Refusal::StoreFailed => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store does not answer",
        ),
    }
}

/// The request's JSON body, or the 400 that says what is wrong with it.
// The error is the handler's answer, returned at once: its size is never carried around.
#[allow(clippy::result_large_err)]
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|err| api_error(StatusCode::BAD_REQUEST, "bad_request", err))
}

pub(crate) fn forbidden() -> Response {
    api_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this account may not see or change that",
    )
}

pub(crate) fn csrf_refused() -> Response {
    api_error(
        StatusCode::FORBIDDEN,
        "csrf",
        "the request lacks this session's CSRF token",
    )
}

/// Compares in constant time, so the token cannot be guessed byte by byte.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    store::same_token_hash(&store::token_hash(given), &store::token_hash(expected))
}

pub(crate) fn header_csrf_ok(headers: &HeaderMap, session: &Session) -> bool {
    session.by_api_token
        || headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|token| same_secret(token, &session.csrf_token))
}

async fn stylesheet() -> Response {
    let mut response = console_page::STYLESHEET.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    response
}

async fn script() -> Response {
    let mut response = SCRIPT.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    response
}

/// `GET /console/rooms/{number}`: the live view of a room this account manages.
async fn room_live_page(
    State(listener): State<Listener>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Response {
    let language = language(&headers);
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return refused_page(refusal, language),
    };
    match managed_room(&listener, &session, number).await {
        Ok(room) => html(
            StatusCode::OK,
            console_page::room_live(
                language,
                &session.viewer(),
                &console_page::Invitation {
                    number: &room.number,
                    internal: &dial_in(&room.number),
                    public: listener.console.shared.config.console.dial_in.as_deref(),
                    has_pin: room.has_pin,
                },
            ),
        ),
        Err(response) => response,
    }
}

async fn sign_in_page(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    if listener.session(&headers).await.is_ok() {
        return see_other("/console/rooms");
    }
    html(
        StatusCode::OK,
        console_page::sign_in(language(&headers), None, ""),
    )
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// How a sign-in attempt ended.
enum SignIn {
    Account(store::ConsoleAccount),
    Wrong,
    Unavailable(String),
}

async fn sign_in(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let language = language(&headers);
    let t = console_page::texts(language);
    let name = form.name.trim().to_lowercase();
    let source = peer.ip();
    let verdict = listener
        .console
        .guard()
        .check(source, &name, Instant::now());
    match verdict {
        Verdict::Allowed => {}
        Verdict::SlowDown(wait) | Verdict::Blocked(wait) => {
            let seconds = wait.as_secs().max(1);
            let message = match verdict {
                Verdict::Blocked(_) => t.blocked.replace("{m}", &seconds.div_ceil(60).to_string()),
                _ => t.slow_down.replace("{s}", &seconds.to_string()),
            };
            tracing::warn!(%source, account = %name, seconds, "console sign-in refused: too many failures");
            let mut response = html(
                StatusCode::TOO_MANY_REQUESTS,
                console_page::sign_in(language, Some(&message), &name),
            );
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
    }
    match check_credentials(&listener.console.shared, &name, &form.password).await {
        SignIn::Account(account) => {
            listener.console.guard().succeeded(&name);
            let account_name = account.name.clone();
            let source_text = source.to_string();
            let created = listener
                .console
                .shared
                .store
                .run(move |store| {
                    store.console_session_create(&account_name, &source_text, now_ms())
                })
                .await;
            let session = match flat(created) {
                Ok(session) => session,
                Err(err) => return sign_in_unavailable(language, &name, err),
            };
            tracing::info!(%source, account = %account.name, role = account.role.as_str(), "console sign-in");
            let mut response = see_other("/console/rooms");
            if let Ok(cookie) = HeaderValue::from_str(&listener.session_cookie(&session.token)) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        SignIn::Wrong => {
            listener
                .console
                .guard()
                .failed(source, &name, Instant::now());
            tracing::warn!(%source, account = %name, "console sign-in failed");
            html(
                StatusCode::UNAUTHORIZED,
                console_page::sign_in(language, Some(t.wrong_credentials), &name),
            )
        }
        SignIn::Unavailable(reason) => sign_in_unavailable(language, &name, reason),
    }
}

fn sign_in_unavailable(language: Language, name: &str, why: impl std::fmt::Display) -> Response {
    tracing::error!(account = %name, "console sign-in not possible: {why}");
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        console_page::sign_in(
            language,
            Some(console_page::texts(language).unavailable),
            name,
        ),
    )
}

/// A local account's password, else the directory's bind when `[ldap]` is configured (and
/// the name is not a local account's: a local account never falls through to LDAP).
async fn check_credentials(shared: &Arc<Shared>, name: &str, password: &str) -> SignIn {
    if name.is_empty() || password.is_empty() {
        return SignIn::Wrong;
    }
    let (lookup, secret) = (name.to_owned(), password.to_owned());
    let local = shared
        .store
        .run(move |store| {
            let account = store.console_account_get(&lookup)?;
            let verified = store.console_account_verify(&lookup, &secret)?;
            Ok::<_, store::StoreError>((account, verified))
        })
        .await;
    let (existing, verified) = match flat(local) {
        Ok(found) => found,
        Err(err) => return SignIn::Unavailable(err.to_string()),
    };
    if let Some(account) = verified {
        return SignIn::Account(account);
    }
    let Some(ldap) = shared.config.ldap.as_ref() else {
        return SignIn::Wrong;
    };
    if existing.is_some_and(|account| account.origin == store::AccountOrigin::Local) {
        return SignIn::Wrong;
    }
    match crate::ldap_auth::authenticate(ldap, name, password).await {
        Ok(identity) => {
            let role = if identity.admin {
                store::ConsoleRole::Admin
            } else {
                store::ConsoleRole::Staff
            };
            let (who, extension) = (identity.name.clone(), identity.extension.clone());
            let upserted = shared
                .store
                .run(move |store| {
                    store.console_account_upsert_ldap(&who, role, extension.as_deref(), now_ms())
                })
                .await;
            match flat(upserted) {
                Ok(account) if !account.disabled => SignIn::Account(account),
                Ok(_) => SignIn::Wrong,
                Err(err) => SignIn::Unavailable(err.to_string()),
            }
        }
        Err(
            crate::ldap_auth::LdapError::WrongCredentials
            | crate::ldap_auth::LdapError::NotAllowed
            | crate::ldap_auth::LdapError::BadUserName,
        ) => SignIn::Wrong,
        Err(err) => SignIn::Unavailable(format!("LDAP: {err}")),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(listener): State<Listener>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return refused_page(refusal, language(&headers)),
    };
    if !same_secret(&form.csrf, &session.csrf_token) {
        return csrf_refused();
    }
    let token = session.token.clone();
    let _ = listener
        .console
        .shared
        .store
        .run(move |store| store.console_session_end(&token))
        .await;
    tracing::info!(account = %session.account.name, "console sign-out");
    let mut response = see_other("/console/sign-in");
    if let Ok(cookie) = HeaderValue::from_str(&listener.cleared_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The rooms `session` may see, with how many are in each now.
async fn visible_rooms(
    listener: &Listener,
    session: &Session,
) -> Result<Vec<store::Room>, Refusal> {
    let listed = listener
        .console
        .shared
        .store
        .run(|store| store.room_list())
        .await;
    match flat(listed) {
        Ok(rooms) => Ok(rooms
            .into_iter()
            .filter(|room| session.may_manage(room))
            .collect()),
        Err(err) => {
            tracing::error!("console: room list failed: {err}");
            Err(Refusal::StoreFailed)
        }
    }
}

fn in_call(shared: &Shared) -> std::collections::HashMap<String, usize> {
    shared
        .conferences
        .summary()
        .into_iter()
        .map(|(room, members, _)| (room, members))
        .collect()
}

/// The numbers that reach `room` with the shipped plan's conference rule.
fn dial_in(room: &str) -> String {
    format!("8{room}")
}

async fn render_rooms(
    listener: &Listener,
    session: &Session,
    language: Language,
    status: StatusCode,
    notice: Notice<'_>,
) -> Response {
    let rooms = match visible_rooms(listener, session).await {
        Ok(rooms) => rooms,
        Err(refusal) => return refused_page(refusal, language),
    };
    let members = in_call(&listener.console.shared);
    let lines: Vec<RoomLine<'_>> = rooms
        .iter()
        .map(|room| RoomLine {
            room,
            in_call: members.get(&room.number).copied().unwrap_or(0),
            dial_in: dial_in(&room.number),
        })
        .collect();
    html(
        status,
        console_page::rooms(language, &session.viewer(), &lines, notice),
    )
}

async fn rooms_page(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    let language = language(&headers);
    match listener.session(&headers).await {
        Ok(session) => {
            render_rooms(&listener, &session, language, StatusCode::OK, Notice::None).await
        }
        Err(refusal) => refused_page(refusal, language),
    }
}

/// A room as a form or the API asks for it.
#[derive(Deserialize)]
struct RoomRequest {
    #[serde(default)]
    csrf: String,
    number: String,
    #[serde(default)]
    pin: Option<String>,
    #[serde(default)]
    moderator_pin: Option<String>,
    #[serde(default)]
    max_participants: Option<String>,
    #[serde(default)]
    wait_for_moderator: Option<String>,
    /// The owning account (admins only; staff always own what they create).
    #[serde(default)]
    owner: Option<String>,
}

/// The API's room, as it answers.
#[derive(Serialize)]
struct RoomView {
    number: String,
    has_pin: bool,
    has_moderator_pin: bool,
    max_participants: u32,
    wait_for_moderator: bool,
    owner: Option<String>,
    dial_in: String,
    in_call: usize,
}

impl RoomView {
    fn of(room: &store::Room, in_call: usize) -> Self {
        Self {
            number: room.number.clone(),
            has_pin: room.has_pin,
            has_moderator_pin: room.has_moderator_pin,
            max_participants: room.max_participants,
            wait_for_moderator: room.wait_for_moderator,
            owner: room.owner.clone(),
            dial_in: dial_in(&room.number),
            in_call,
        }
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Creates the room `request` describes for `session`; the stored room or why not.
async fn create_room(
    listener: &Listener,
    session: &Session,
    request: RoomRequest,
) -> Result<store::Room, (StatusCode, String)> {
    let max_participants = match non_empty(request.max_participants) {
        None => store::DEFAULT_MAX_PARTICIPANTS,
        Some(text) => text.parse().map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                format!("most participants must be a number, not {text:?}"),
            )
        })?,
    };
    let owner = match non_empty(request.owner) {
        Some(owner) if session.admin() => Some(owner),
        // A town's admin gives rooms to the town's own accounts only: another town's
        // account would see the room.
        Some(owner) if session.town_admin() => {
            let name = owner.clone();
            let found = listener
                .console
                .shared
                .store
                .run(move |store| store.console_account_get(&name))
                .await;
            match flat(found) {
                Ok(Some(account)) if account.domain == session.account.domain => Some(owner),
                Ok(_) => {
                    return Err((
                        StatusCode::FORBIDDEN,
                        format!("{owner} is no account of this town"),
                    ));
                }
                Err(err) => return Err((StatusCode::SERVICE_UNAVAILABLE, err)),
            }
        }
        Some(owner) if owner != session.account.name => {
            return Err((
                StatusCode::FORBIDDEN,
                "staff create rooms for themselves only".into(),
            ));
        }
        _ => Some(session.account.name.clone()),
    };
    let new = store::NewRoom {
        // A town's rooms are its own (see `tenants::room_key`).
        number: crate::tenants::room_key(session.tenant(), request.number.trim()),
        pin: non_empty(request.pin),
        moderator_pin: non_empty(request.moderator_pin),
        max_participants,
        wait_for_moderator: request
            .wait_for_moderator
            .is_some_and(|v| matches!(v.as_str(), "on" | "true" | "1")),
        owner,
        ..store::NewRoom::new("", now_ms())
    };
    let created = listener
        .console
        .shared
        .store
        .run(move |store| store.room_create(&new))
        .await;
    match created {
        Ok(Ok(room)) => Ok(room),
        Ok(Err(
            err @ (store::StoreError::Database(_)
            | store::StoreError::Randomness(_)
            | store::StoreError::PinHashing(_)),
        )) => {
            tracing::error!("console: room create failed: {err}");
            Err((StatusCode::SERVICE_UNAVAILABLE, err.to_string()))
        }
        Ok(Err(err)) => Err((StatusCode::BAD_REQUEST, err.to_string())),
        Err(err) => Err((StatusCode::SERVICE_UNAVAILABLE, err.to_string())),
    }
}

fn created_detail(room: &store::Room) -> String {
    format!(
        "room {} ({}, moderator PIN {}, at most {}, owner {})",
        room.number,
        if room.has_pin { "PIN" } else { "no PIN" },
        if room.has_moderator_pin {
            "set"
        } else {
            "none"
        },
        room.max_participants,
        room.owner.as_deref().unwrap_or("none"),
    )
}

async fn create_room_form(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(request): Form<RoomRequest>,
) -> Response {
    let language = language(&headers);
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return refused_page(refusal, language),
    };
    if !same_secret(&request.csrf, &session.csrf_token) {
        return csrf_refused();
    }
    match create_room(&listener, &session, request).await {
        Ok(room) => {
            listener.audit(&session, peer.ip(), "room.create", created_detail(&room));
            render_rooms(
                &listener,
                &session,
                language,
                StatusCode::CREATED,
                Notice::Created(&room.number),
            )
            .await
        }
        Err((status, message)) => {
            render_rooms(
                &listener,
                &session,
                language,
                status,
                Notice::Error(&message),
            )
            .await
        }
    }
}

async fn api_me(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    match listener.session(&headers).await {
        Ok(session) => {
            let body = serde_json::json!({
                "name": session.account.name,
                "role": session.account.role.as_str(),
                "domain": session.tenant(),
                "extension": session.account.extension,
                "csrf_token": session.csrf_token,
            });
            let mut response = axum::Json(body).into_response();
            private(response.headers_mut());
            response
        }
        Err(refusal) => api_refused(refusal),
    }
}

async fn api_rooms(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return api_refused(refusal),
    };
    let rooms = match visible_rooms(&listener, &session).await {
        Ok(rooms) => rooms,
        Err(refusal) => return api_refused(refusal),
    };
    let members = in_call(&listener.console.shared);
    let views: Vec<RoomView> = rooms
        .iter()
        .map(|room| RoomView::of(room, members.get(&room.number).copied().unwrap_or(0)))
        .collect();
    let mut response = axum::Json(views).into_response();
    private(response.headers_mut());
    response
}

async fn api_create_room(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return api_refused(refusal),
    };
    if !header_csrf_ok(&headers, &session) {
        return csrf_refused();
    }
    let request: RoomRequest = match json_body(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match create_room(&listener, &session, request).await {
        Ok(room) => {
            listener.audit(&session, peer.ip(), "room.create", created_detail(&room));
            let mut response =
                (StatusCode::CREATED, axum::Json(RoomView::of(&room, 0))).into_response();
            private(response.headers_mut());
            response
        }
        Err((status, message)) => api_error(status, "refused", message),
    }
}

/// The stored room `number` if `session` may manage it: 404 when there is none, 403 when it
/// is someone else's (a staff member learns no more than that it exists, as dialling it
/// would tell).
async fn managed_room(
    listener: &Listener,
    session: &Session,
    number: String,
) -> Result<store::Room, Response> {
    let found = listener
        .console
        .shared
        .store
        .run(move |store| store.room_get(&number))
        .await;
    match flat(found) {
        Ok(Some(room)) if session.may_manage(&room) => Ok(room),
        Ok(Some(_)) => Err(forbidden()),
        Ok(None) => Err(api_error(
            StatusCode::NOT_FOUND,
            "unknown_room",
            "no such room",
        )),
        Err(err) => {
            tracing::error!("console: room lookup failed: {err}");
            Err(api_refused(Refusal::StoreFailed))
        }
    }
}

async fn api_room(
    State(listener): State<Listener>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return api_refused(refusal),
    };
    match managed_room(&listener, &session, number).await {
        Ok(room) => {
            let members = in_call(&listener.console.shared);
            let view = RoomView::of(&room, members.get(&room.number).copied().unwrap_or(0));
            let mut response = axum::Json(view).into_response();
            private(response.headers_mut());
            response
        }
        Err(response) => response,
    }
}

/// Deletes a room; one in use is refused (409), as `room delete` without `--end-calls` is.
async fn api_delete_room(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return api_refused(refusal),
    };
    if !header_csrf_ok(&headers, &session) {
        return csrf_refused();
    }
    let room = match managed_room(&listener, &session, number).await {
        Ok(room) => room,
        Err(response) => return response,
    };
    if in_call(&listener.console.shared)
        .get(&room.number)
        .is_some_and(|members| *members > 0)
    {
        return api_error(
            StatusCode::CONFLICT,
            "room_in_use",
            "callers are in the room; end the conference first",
        );
    }
    let number = room.number.clone();
    let deleted = listener
        .console
        .shared
        .store
        .run(move |store| store.room_delete(&number))
        .await;
    match flat(deleted) {
        Ok(_) => {
            listener.audit(
                &session,
                peer.ip(),
                "room.delete",
                format!("room {}", room.number),
            );
            let mut response = StatusCode::NO_CONTENT.into_response();
            private(response.headers_mut());
            response
        }
        Err(err) => api_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", err),
    }
}

/// A member of a live room as the API shows it.
#[derive(Serialize)]
struct MemberView {
    /// The member's id in this room's live session (`17`, `webrtc-3`).
    id: String,
    /// `phone`, `browser` or `meeting`.
    kind: &'static str,
    /// The caller's number, the browser user's name, or nothing.
    name: Option<String>,
    muted: bool,
    talking: bool,
    hand_raised: bool,
    moderator: bool,
}

fn member_view(entry: &crate::conference::RosterEntry) -> MemberView {
    use crate::conference::MemberLabel;
    let (kind, name) = match &entry.label {
        MemberLabel::Phone(number) => ("phone", number.clone()),
        MemberLabel::Browser(name) => ("browser", Some(name.clone())),
        MemberLabel::Meeting => ("meeting", None),
    };
    MemberView {
        id: entry.member.to_string(),
        kind,
        name,
        muted: entry.muted,
        talking: entry.talking,
        hand_raised: entry.hand_raised,
        moderator: entry.moderator,
    }
}

/// `GET /api/rooms/{number}/live`: who is in the room now, talking, muted, hands raised.
async fn api_live(
    State(listener): State<Listener>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return api_refused(refusal),
    };
    let room = match managed_room(&listener, &session, number).await {
        Ok(room) => room,
        Err(response) => return response,
    };
    let body = live_state(&listener.console.shared.conferences, &room.number);
    let mut response = axum::Json(body).into_response();
    private(response.headers_mut());
    response
}

/// Room `number` as the live view shows it.
fn live_state(conferences: &crate::conference::Registry, number: &str) -> serde_json::Value {
    let roster = conferences.roster(number);
    let members: Vec<MemberView> = roster.iter().flatten().map(member_view).collect();
    let locked = conferences
        .summary()
        .into_iter()
        .any(|(open, _, locked)| open == number && locked);
    serde_json::json!({
        "room": number,
        "open": roster.is_some(),
        "locked": locked,
        "recording": conferences.recording(number).unwrap_or(false),
        "members": members,
    })
}

/// How long one event stream of a live view lasts; the browser then connects again, which
/// checks its session again (one signed out or disabled since stops getting news).
const LIVE_STREAM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

/// `GET /api/rooms/{number}/events`: the live state as server-sent events, one `data:` line
/// with the same JSON as `/live` at once and whenever it changes.
async fn api_live_events(
    State(listener): State<Listener>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return api_refused(refusal),
    };
    let room = match managed_room(&listener, &session, number).await {
        Ok(room) => room,
        Err(response) => return response,
    };
    let shared = listener.console.shared.clone();
    let changes = shared.conferences.changes();
    let until = tokio::time::Instant::now() + LIVE_STREAM_LIFETIME;
    let state = (changes, shared, room.number, None::<String>, until);
    let events = futures_util::stream::unfold(
        state,
        |(mut changes, shared, number, last, until)| async move {
            loop {
                if last.is_some() {
                    match tokio::time::timeout_at(until, changes.changed()).await {
                        Ok(Ok(())) => {}
                        // The stream's time is up, or the registry is gone: the browser
                        // connects again.
                        _ => return None,
                    }
                }
                let now = live_state(&shared.conferences, &number).to_string();
                if last.as_deref() != Some(now.as_str()) {
                    let event = Event::default().data(&now);
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (changes, shared, number, Some(now), until),
                    ));
                }
            }
        },
    );
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    private(response.headers_mut());
    response
}

/// A moderation request's session and room, after the CSRF check.
async fn moderation(
    listener: &Listener,
    headers: &HeaderMap,
    number: String,
) -> Result<(Session, store::Room), Response> {
    let session = listener.session(headers).await.map_err(api_refused)?;
    if !header_csrf_ok(headers, &session) {
        return Err(csrf_refused());
    }
    let room = managed_room(listener, &session, number).await?;
    Ok((session, room))
}

fn not_in_room() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "not_in_room",
        "no such member in the room now",
    )
}

/// A JSON answer with the console's headers.
pub(crate) fn json_answer(value: impl Serialize) -> Response {
    let mut response = axum::Json(value).into_response();
    private(response.headers_mut());
    response
}

pub(crate) fn done() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    private(response.headers_mut());
    response
}

#[derive(Deserialize)]
struct MutedRequest {
    muted: bool,
}

/// `PUT /api/rooms/{number}/members/{member}/muted` with `{"muted": bool}`.
async fn api_mute_member(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((number, member)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (session, room) = match moderation(&listener, &headers, number).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let request: MutedRequest = match json_body(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let Ok(leg) = member.parse::<crate::ids::LegId>() else {
        return not_in_room();
    };
    if !listener
        .console
        .shared
        .conferences
        .moderate_mute(&room.number, leg, request.muted)
    {
        return not_in_room();
    }
    let action = if request.muted {
        "room.mute"
    } else {
        "room.unmute"
    };
    listener.audit(
        &session,
        peer.ip(),
        action,
        format!("room {} member {leg}", room.number),
    );
    done()
}

/// `DELETE /api/rooms/{number}/members/{member}`: removes the member (its call ends).
async fn api_remove_member(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((number, member)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (session, room) = match moderation(&listener, &headers, number).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Ok(leg) = member.parse::<crate::ids::LegId>() else {
        return not_in_room();
    };
    if !listener
        .console
        .shared
        .conferences
        .remove(&room.number, leg)
    {
        return not_in_room();
    }
    listener.audit(
        &session,
        peer.ip(),
        "room.remove",
        format!("room {} member {leg}", room.number),
    );
    done()
}

#[derive(Deserialize)]
struct LockedRequest {
    locked: bool,
}

/// `PUT /api/rooms/{number}/locked` with `{"locked": bool}`: newcomers are kept out (409
/// when nobody is in the room: there is no live session to lock).
async fn api_lock(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (session, room) = match moderation(&listener, &headers, number).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let request: LockedRequest = match json_body(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    if !listener
        .console
        .shared
        .conferences
        .set_locked(&room.number, request.locked)
    {
        return not_open();
    }
    let action = if request.locked {
        "room.lock"
    } else {
        "room.unlock"
    };
    listener.audit(&session, peer.ip(), action, format!("room {}", room.number));
    done()
}

fn not_open() -> Response {
    api_error(
        StatusCode::CONFLICT,
        "not_open",
        "nobody is in the room; that works while it is in use only",
    )
}

/// `POST /api/rooms/{number}/mute-all`: mutes everyone but the moderators; `{"muted": n}`.
async fn api_mute_all(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (session, room) = match moderation(&listener, &headers, number).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(muted) = listener.console.shared.conferences.mute_all(&room.number) else {
        return not_open();
    };
    listener.audit(
        &session,
        peer.ip(),
        "room.mute_all",
        format!("room {} ({muted} muted)", room.number),
    );
    let mut response = axum::Json(serde_json::json!({ "muted": muted })).into_response();
    private(response.headers_mut());
    response
}

#[derive(Deserialize)]
struct RecordingRequest {
    recording: bool,
}

/// `PUT /api/rooms/{number}/recording` with `{"recording": bool}`: starts or stops the
/// room's recording; everyone in the room hears which, as with a moderator's `*9`.
async fn api_recording(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (session, room) = match moderation(&listener, &headers, number).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let request: RecordingRequest = match json_body(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let shared = &listener.console.shared;
    let Some(running) = shared.conferences.recording(&room.number) else {
        return not_open();
    };
    if running == request.recording {
        return done();
    }
    if request.recording {
        if let Err(err) = crate::call_effects::start_recording(shared, &room.number).await {
            tracing::error!(room = %room.number, "console: recording not started: {err}");
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "recording_failed",
                "the recording could not be started",
            );
        }
        shared
            .conferences
            .announce(&room.number, "recording-started");
        listener.audit(
            &session,
            peer.ip(),
            "room.record.start",
            format!("room {}", room.number),
        );
    } else {
        crate::call_effects::stop_recording(shared, &room.number);
        shared
            .conferences
            .announce(&room.number, "recording-stopped");
        listener.audit(
            &session,
            peer.ip(),
            "room.record.stop",
            format!("room {}", room.number),
        );
    }
    done()
}

/// `POST /api/rooms/{number}/end`: ends the conference for everyone in it.
async fn api_end(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (session, room) = match moderation(&listener, &headers, number).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let ended = listener.console.shared.conferences.end(&room.number);
    listener.audit(
        &session,
        peer.ip(),
        "room.end",
        format!("room {} ({ended} in it)", room.number),
    );
    let body = serde_json::json!({ "ended": ended });
    let mut response = axum::Json(body).into_response();
    private(response.headers_mut());
    response
}

/// `GET /api/openapi.json`: the API's description (no sign-in needed; it names routes,
/// nobody's data).
async fn openapi() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(|| crate::console_openapi::document().to_string());
    let mut response = text.clone().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn token_view(token: &store::ApiToken) -> serde_json::Value {
    serde_json::json!({
        "id": token.id,
        "account": token.account,
        "label": token.label,
        "created_at_ms": token.created_at_ms,
        "last_used_at_ms": token.last_used_at_ms,
    })
}

/// `GET /api/tokens`: this account's API tokens (an admin's: everyone's), without secrets.
async fn api_tokens(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return api_refused(refusal),
    };
    let whose = (!session.admin()).then(|| session.account.name.clone());
    let listed = listener
        .console
        .shared
        .store
        .run(move |store| store.api_token_list(whose.as_deref()))
        .await;
    match flat(listed) {
        Ok(tokens) => {
            let views: Vec<_> = tokens.iter().map(token_view).collect();
            let mut response = axum::Json(views).into_response();
            private(response.headers_mut());
            response
        }
        Err(err) => {
            tracing::error!("console: token list failed: {err}");
            api_refused(Refusal::StoreFailed)
        }
    }
}

#[derive(Deserialize)]
struct TokenRequest {
    label: String,
}

/// `POST /api/tokens` with `{"label"}`: a token for this account, its secret shown once.
async fn api_token_create(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return api_refused(refusal),
    };
    if !header_csrf_ok(&headers, &session) {
        return csrf_refused();
    }
    let request: TokenRequest = match json_body(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let account = session.account.name.clone();
    let label = request.label.clone();
    let made = listener
        .console
        .shared
        .store
        .run(move |store| store.api_token_create(&account, &label, now_ms()))
        .await;
    match made {
        Ok(Ok(made)) => {
            listener.audit(
                &session,
                peer.ip(),
                "token.add",
                format!("API token {} ({})", made.id, request.label.trim()),
            );
            let body = serde_json::json!({ "id": made.id, "token": made.token, "label": request.label.trim() });
            let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
            private(response.headers_mut());
            response
        }
        Ok(Err(err @ store::StoreError::InvalidTokenLabel)) => {
            api_error(StatusCode::BAD_REQUEST, "bad_request", err)
        }
        failed => {
            let err = flat(failed.map(|made| made.map(|_| ())))
                .err()
                .unwrap_or_default();
            tracing::error!("console: token not made: {err}");
            api_refused(Refusal::StoreFailed)
        }
    }
}

/// `DELETE /api/tokens/{id}`: revokes one of this account's tokens (an admin: anyone's).
async fn api_token_revoke(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return api_refused(refusal),
    };
    if !header_csrf_ok(&headers, &session) {
        return csrf_refused();
    }
    let unknown = || api_error(StatusCode::NOT_FOUND, "unknown_token", "no such token");
    let Ok(id) = id.parse::<i64>() else {
        return unknown();
    };
    let found = listener
        .console
        .shared
        .store
        .run(move |store| store.api_token_get(id))
        .await;
    let token = match flat(found) {
        Ok(Some(token)) => token,
        Ok(None) => return unknown(),
        Err(err) => {
            tracing::error!("console: token lookup failed: {err}");
            return api_refused(Refusal::StoreFailed);
        }
    };
    if !session.admin() && token.account != session.account.name {
        return forbidden();
    }
    let revoked = listener
        .console
        .shared
        .store
        .run(move |store| store.api_token_revoke(id))
        .await;
    match flat(revoked) {
        Ok(_) => {
            listener.audit(
                &session,
                peer.ip(),
                "token.revoke",
                format!("API token {id} ({}) of {}", token.label, token.account),
            );
            done()
        }
        Err(err) => {
            tracing::error!("console: token not revoked: {err}");
            api_refused(Refusal::StoreFailed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; amt_console=abc; b=2"),
        );
        assert_eq!(cookie_token(&headers).as_deref(), Some("abc"));
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("amt_console="));
        assert_eq!(cookie_token(&headers), None);
        headers.insert(header::COOKIE, HeaderValue::from_static("xamt_console=abc"));
        assert_eq!(cookie_token(&headers), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("", "abc"));
    }
}
