//! The console's users-and-phones pages and API (admins: every user and the bans; everyone:
//! their own phone). Routes are merged into `Console::routes`.
//!
//! - Every `/api/users*`, `/api/bans*` and `/console/users*` handler checks for an admin
//!   itself (403 otherwise); `/api/phone*` and `/console/phone*` only ever name the session's
//!   own extension (`ConsoleAccount.extension`), never one from the request.
//! - The console does what `amtsleitung user` does through the same code: a new user's
//!   fields are read as import columns are (`user_cli::user_from_fields`), an import is
//!   `user_cli::check_import` + `store_import`, settings are read by
//!   `call_settings_cli::CallSettingsChange`, bans are asked of the registrar as
//!   `/security/bans` asks.
//! - A change reaches the running server at once: the store job that makes it also reloads
//!   the user directory the registrar and call routing read (`Shared::users`); the directory's
//!   own refresh only notices other processes' writes.
//! - Every change is audited (never a password); a store that fails answers 503.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Deserializer, Serialize};
use store::{Binding, CallSettings, StoreError, User, Voicemail, VoicemailId};

use crate::call_settings_cli::{CallSettingsChange, describe_all};
use crate::console::{
    Listener, Session, api_error, api_refused, csrf_refused, done, forbidden, header_csrf_ok, html,
    json_body, language, now_ms, private, refused_page, same_secret, see_other,
};
use crate::console_users_page::{self as page, Notice, Phone, Refill, UserLine};
use crate::join_page::Language;
use crate::security_cli::BanSummary;

pub(crate) fn routes() -> Router<Listener> {
    Router::new()
        .route("/console/users", get(users_page).post(add_user_form))
        .route("/console/users/import", post(import_form))
        .route("/console/users/{extension}", get(user_page))
        .route("/console/users/{extension}/password", post(password_form))
        .route(
            "/console/users/{extension}/settings",
            post(user_settings_form),
        )
        .route("/console/users/{extension}/delete", post(delete_form))
        .route("/console/bans/lift", post(lift_ban_form))
        .route("/console/phone", get(phone_page))
        .route("/console/phone/settings", post(phone_settings_form))
        .route(
            "/console/phone/voicemail/{id}/delete",
            post(voicemail_delete_form),
        )
        .route("/api/users", get(api_users).post(api_add_user))
        .route("/api/users/import", post(api_import))
        .route(
            "/api/users/{extension}",
            get(api_user).delete(api_delete_user),
        )
        .route("/api/users/{extension}/password", put(api_password))
        .route("/api/users/{extension}/settings", put(api_user_settings))
        .route("/api/bans", get(api_bans))
        .route("/api/bans/{address}", delete(api_lift_ban))
        .route("/api/phone", get(api_phone))
        .route("/api/phone/settings", put(api_phone_settings))
        .route("/api/phone/voicemail", get(api_voicemail))
        .route("/api/phone/voicemail/{id}/audio", get(api_voicemail_audio))
        .route("/api/phone/voicemail/{id}", delete(api_voicemail_delete))
}

/// Why a request was not carried out: the status, a code for scripts and a reason in words.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: &'static str,
    reason: String,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            code,
            reason: reason.into(),
        }
    }

    /// The store's error: its own failures fail closed (503), a refused value is the
    /// request's fault (400), a missing user 404, an existing one 409.
    fn store(err: StoreError) -> Self {
        match err {
            StoreError::NoSuchUser { .. } | StoreError::NoSuchVoicemail(_) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", err.to_string())
            }
            StoreError::UserExists { .. } => {
                Self::new(StatusCode::CONFLICT, "exists", err.to_string())
            }
            StoreError::Database(_)
            | StoreError::DataDir { .. }
            | StoreError::NotWritable { .. }
            | StoreError::SchemaTooNew { .. }
            | StoreError::Randomness(_)
            | StoreError::PinHashing(_)
            | StoreError::NonUtf8Path(_) => Self::unavailable(err),
            _ => Self::new(StatusCode::BAD_REQUEST, "invalid", err.to_string()),
        }
    }

    fn unavailable(err: impl std::fmt::Display) -> Self {
        tracing::error!("console: the store failed: {err}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store does not answer; nothing was changed",
        )
    }

    fn no_user(extension: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no user {extension}"),
        )
    }

    fn api(self) -> Response {
        api_error(self.status, self.code, self.reason)
    }
}

/// Runs `job` on the store thread; a store that does not take or finish it is a 503.
async fn in_store<T: Send + 'static>(
    listener: &Listener,
    job: impl FnOnce(&store::Store) -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    listener
        .console
        .shared
        .store
        .run(job)
        .await
        .map_err(Failure::unavailable)?
}

/// Runs a change on the store thread and, when it went through, reloads the user directory
/// the registrar and call routing read, in the same job: the next REGISTER or call sees it.
async fn change_users<T: Send + 'static>(
    listener: &Listener,
    job: impl FnOnce(&store::Store) -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let users = listener.console.shared.users.clone();
    in_store(listener, move |store| {
        let result = job(store)?;
        if let Err(err) = users.load(store) {
            // The change is stored; the directory's own refresh tries again.
            tracing::error!("user directory not reloaded after a console change: {err}");
        }
        Ok(result)
    })
    .await
}

/// A user with the phones registered for it now.
struct UserState {
    user: User,
    bindings: Vec<Binding>,
}

impl UserState {
    fn line(&self) -> UserLine<'_> {
        UserLine {
            user: &self.user,
            bindings: &self.bindings,
        }
    }
}

/// The users of `domain` (a town's admin sees their town's only).
async fn all_users(listener: &Listener, domain: &str) -> Result<Vec<UserState>, Failure> {
    let domain = domain.to_owned();
    in_store(listener, move |store| {
        let now = now_ms();
        let users = store.user_list(&domain).map_err(Failure::store)?;
        let mut bindings: HashMap<String, Vec<Binding>> = HashMap::new();
        for b in store.registrations_unexpired(now).map_err(Failure::store)? {
            if b.domain == domain {
                bindings.entry(b.extension).or_default().push(b.binding);
            }
        }
        Ok(users
            .into_iter()
            .map(|user| UserState {
                bindings: bindings.remove(&user.extension).unwrap_or_default(),
                user,
            })
            .collect())
    })
    .await
}

async fn one_user(
    listener: &Listener,
    domain: &str,
    extension: String,
) -> Result<UserState, Failure> {
    let domain = domain.to_owned();
    in_store(listener, move |store| {
        let user = store
            .user_get(&domain, &extension)
            .map_err(Failure::store)?
            .ok_or_else(|| Failure::no_user(&extension))?;
        let bindings = store
            .registrations_of(&domain, &extension, now_ms())
            .map_err(Failure::store)?;
        Ok(UserState { user, bindings })
    })
    .await
}

/// Adds the user `fields` describe (named as the import's columns) to `domain`.
async fn add_user(
    listener: &Listener,
    domain: &str,
    fields: Vec<(String, String)>,
) -> Result<User, Failure> {
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let new = store::NewUser {
        domain: domain.to_owned(),
        ..crate::user_cli::user_from_fields(&pairs, now_ms())
            .map_err(|reason| Failure::new(StatusCode::BAD_REQUEST, "invalid", reason))?
    };
    change_users(listener, move |store| {
        store.user_create(&new).map_err(Failure::store)
    })
    .await
}

/// What a successful import stored.
struct Imported {
    count: usize,
    extensions: Vec<String>,
}

/// Imports a user CSV whole, or nothing with every bad line named (422).
async fn import(listener: &Listener, csv: Vec<u8>) -> Result<Imported, Failure> {
    use crate::user_cli::{ImportRefusal, check_import, store_import};
    let refused = |refusal: ImportRefusal| match refusal {
        ImportRefusal::Store(err) => Failure::store(err),
        other => Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused",
            other.report("the CSV"),
        ),
    };
    change_users(listener, move |store| {
        let checked = check_import(store, &csv, now_ms()).map_err(refused)?;
        let count = store_import(store, &checked).map_err(refused)?;
        Ok(Imported {
            count,
            extensions: checked
                .extensions()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        })
    })
    .await
}

async fn set_password(
    listener: &Listener,
    domain: &str,
    extension: String,
    password: String,
) -> Result<(), Failure> {
    let domain = domain.to_owned();
    change_users(listener, move |store| {
        store
            .user_set_password(&domain, &extension, &password, now_ms())
            .map(|_| ())
            .map_err(Failure::store)
    })
    .await
}

async fn delete_user(listener: &Listener, domain: &str, extension: String) -> Result<(), Failure> {
    let domain = domain.to_owned();
    change_users(listener, move |store| {
        match store.user_delete(&domain, &extension) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure::no_user(&extension)),
            Err(err) => Err(Failure::store(err)),
        }
    })
    .await
}

/// Applies `change` to `extension`'s call settings; the settings now.
async fn change_settings(
    listener: &Listener,
    domain: &str,
    extension: String,
    change: CallSettingsChange,
) -> Result<CallSettings, Failure> {
    let domain = domain.to_owned();
    change_users(listener, move |store| {
        let user = store
            .user_get(&domain, &extension)
            .map_err(Failure::store)?
            .ok_or_else(|| Failure::no_user(&extension))?;
        let settings = change
            .apply(&user.call_settings)
            .map_err(|reason| Failure::new(StatusCode::BAD_REQUEST, "invalid", reason))?;
        store
            .user_set_call_settings(&domain, &extension, &settings, now_ms())
            .map_err(Failure::store)
    })
    .await
}

/// The bans now, or `None` when the registrar does not answer.
async fn bans(listener: &Listener) -> Option<Vec<BanSummary>> {
    crate::http::bans_in_force(&listener.console.security).await
}

async fn lift_ban(listener: &Listener, address: &str) -> Result<BanSummary, Failure> {
    let ip: std::net::IpAddr = address.trim().parse().map_err(|_| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("{address:?} is not an IP address"),
        )
    })?;
    match crate::http::lift_ban(&listener.console.security, ip).await {
        Ok(Some(ban)) => Ok(ban),
        Ok(None) => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{ip} is not banned"),
        )),
        Err(()) => Err(Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the registrar does not answer",
        )),
    }
}

/// The messages of `mailbox` of `domain`, newest first (mailboxes are the default
/// domain's alone yet: a town's user has none).
async fn messages(
    listener: &Listener,
    domain: &str,
    mailbox: String,
) -> Result<Vec<Voicemail>, Failure> {
    if !crate::tenants::is_default(domain) {
        return Ok(Vec::new());
    }
    in_store(listener, move |store| {
        store.voicemail_list(&mailbox).map_err(Failure::store)
    })
    .await
}

/// Message `id` if it is in `mailbox` of `domain` (one in another mailbox is as unknown as
/// none).
async fn message(
    listener: &Listener,
    domain: &str,
    mailbox: String,
    id: i64,
) -> Result<Voicemail, Failure> {
    if !crate::tenants::is_default(domain) {
        return Err(no_message());
    }
    in_store(listener, move |store| {
        match store
            .voicemail_get(VoicemailId(id))
            .map_err(Failure::store)?
        {
            Some(message) if message.mailbox == mailbox => Ok(message),
            _ => Err(no_message()),
        }
    })
    .await
}

/// Deletes message `id` of `mailbox` of `domain` and its file, and tells the mailbox's
/// phones.
async fn delete_message(
    listener: &Listener,
    domain: &str,
    mailbox: String,
    id: i64,
) -> Result<(), Failure> {
    if !crate::tenants::is_default(domain) {
        return Err(no_message());
    }
    let owner = mailbox.clone();
    let deleted = in_store(listener, move |store| {
        match store
            .voicemail_get(VoicemailId(id))
            .map_err(Failure::store)?
        {
            Some(message) if message.mailbox == owner => store
                .voicemail_delete(VoicemailId(id))
                .map_err(Failure::store),
            _ => Err(no_message()),
        }
    })
    .await?;
    if let Err(err) = tokio::fs::remove_file(&deleted.path).await
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::error!(path = %deleted.path.display(), "deleted voicemail's file not removed: {err}");
    }
    crate::voicemail::announce(&listener.console.shared, mailbox);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The JSON API.

/// A registered phone as the API shows it.
#[derive(Serialize)]
struct DeviceView {
    contact: String,
    /// Where the REGISTER came from, `ip:port`.
    source: String,
    transport: String,
    user_agent: Option<String>,
    expires_in_s: i64,
}

/// Call settings as the API shows and takes them.
#[derive(Serialize)]
struct SettingsView {
    dnd: bool,
    forward_always: Option<String>,
    forward_busy: Option<String>,
    forward_no_answer: Option<String>,
    no_answer_seconds: u32,
    follow_me: Vec<String>,
    /// The same in one line, as `user show` writes it.
    summary: String,
}

impl SettingsView {
    fn of(settings: &CallSettings) -> Self {
        Self {
            dnd: settings.dnd,
            forward_always: settings.forward_always.clone(),
            forward_busy: settings.forward_busy.clone(),
            forward_no_answer: settings.forward_no_answer.clone(),
            no_answer_seconds: settings.no_answer_seconds,
            follow_me: settings.follow_me.iter().map(ToString::to_string).collect(),
            summary: describe_all(settings),
        }
    }
}

/// A user as the API shows it (never a password or HA1).
#[derive(Serialize)]
struct UserView {
    extension: String,
    name: String,
    allowed_networks: Vec<String>,
    max_contacts: u32,
    language: &'static str,
    registered: bool,
    registrations: Vec<DeviceView>,
    settings: SettingsView,
}

impl UserView {
    fn of(user: &User, bindings: &[Binding], now: i64) -> Self {
        Self {
            extension: user.extension.clone(),
            name: user.display_name.clone(),
            allowed_networks: user
                .allowed_networks
                .iter()
                .map(ToString::to_string)
                .collect(),
            max_contacts: user.max_contacts,
            language: user.language.as_str(),
            registered: !bindings.is_empty(),
            registrations: bindings
                .iter()
                .map(|b| DeviceView {
                    contact: b.contact.clone(),
                    source: b.source.to_string(),
                    transport: b.transport.clone(),
                    user_agent: b.user_agent.clone(),
                    expires_in_s: page::expires_in_s(b, now),
                })
                .collect(),
            settings: SettingsView::of(&user.call_settings),
        }
    }
}

fn json(status: StatusCode, body: impl Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    private(response.headers_mut());
    response
}

/// The session of an admin's API request as `needs` wants it (401 signed out, 403 anyone
/// else), after the CSRF check when `changes`. A town's admin reads and changes the town's
/// users only.
async fn api_session(
    listener: &Listener,
    headers: &HeaderMap,
    needs: Needs,
    changes: bool,
) -> Result<Session, Response> {
    let session = listener.session(headers).await.map_err(api_refused)?;
    if !needs.admits(&session) {
        return Err(forbidden());
    }
    if changes && !header_csrf_ok(headers, &session) {
        return Err(csrf_refused());
    }
    Ok(session)
}

/// The session of a "my phone" API request and its extension (404 when it has none).
async fn api_own(
    listener: &Listener,
    headers: &HeaderMap,
    changes: bool,
) -> Result<(Session, String), Response> {
    let session = listener.session(headers).await.map_err(api_refused)?;
    if changes && !header_csrf_ok(headers, &session) {
        return Err(csrf_refused());
    }
    match session.account.extension.clone() {
        Some(extension) => Ok((session, extension)),
        None => Err(api_error(
            StatusCode::NOT_FOUND,
            "no_extension",
            "this account has no extension of its own",
        )),
    }
}

async fn api_users(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    let session = match api_session(&listener, &headers, Needs::TownAdmin, false).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match all_users(&listener, session.tenant()).await {
        Ok(users) => {
            let now = now_ms();
            let views: Vec<UserView> = users
                .iter()
                .map(|u| UserView::of(&u.user, &u.bindings, now))
                .collect();
            json(StatusCode::OK, views)
        }
        Err(failure) => failure.api(),
    }
}

async fn api_user(
    State(listener): State<Listener>,
    Path(extension): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match api_session(&listener, &headers, Needs::TownAdmin, false).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match one_user(&listener, session.tenant(), extension).await {
        Ok(state) => json(
            StatusCode::OK,
            UserView::of(&state.user, &state.bindings, now_ms()),
        ),
        Err(failure) => failure.api(),
    }
}

/// A JSON field's value as the text an import column holds (numbers as digits, lists joined
/// by commas, switches as on/off).
fn field_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(on) => Some(if *on { "on" } else { "off" }.to_owned()),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(|items| items.join(",")),
        serde_json::Value::Null => Some(String::new()),
        serde_json::Value::Object(_) => None,
    }
}

/// `POST /api/users` with `{"extension", "name", "password", ...}`: the fields of an import
/// row (`allow`, `max_contacts`, `language`, `calls`, `srtp`, `fax`, `location`,
/// `location_networks` optional); 201 with the user.
async fn api_add_user(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let session = match api_session(&listener, &headers, Needs::TownAdmin, true).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let request: serde_json::Map<String, serde_json::Value> = match json_body(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let mut fields = Vec::with_capacity(request.len());
    for (name, value) in &request {
        let Some(text) = field_text(value) else {
            return api_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("{name} must be text, a number, a switch or a list of text"),
            );
        };
        fields.push((name.clone(), text));
    }
    match add_user(&listener, session.tenant(), fields).await {
        Ok(user) => {
            listener.audit(&session, peer.ip(), "user.create", created_detail(&user));
            json(StatusCode::CREATED, UserView::of(&user, &[], now_ms()))
        }
        Err(failure) => failure.api(),
    }
}

fn created_detail(user: &User) -> String {
    format!("user {} ({})", user.extension, user.display_name)
}

fn imported_detail(imported: &Imported) -> String {
    format!(
        "{} users imported in the console: {}",
        imported.count,
        imported.extensions.join(", ")
    )
}

/// `POST /api/users/import` with the CSV as the body: 201 `{"imported": n, "extensions":
/// [...]}`, or 422 naming every bad line, and nothing stored.
async fn api_import(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let session = match api_session(&listener, &headers, Needs::SystemAdmin, true).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match import(&listener, body.to_vec()).await {
        Ok(imported) => {
            listener.audit(
                &session,
                peer.ip(),
                "user.import",
                imported_detail(&imported),
            );
            json(
                StatusCode::CREATED,
                serde_json::json!({
                    "imported": imported.count,
                    "extensions": imported.extensions,
                }),
            )
        }
        Err(failure) => failure.api(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordRequest {
    password: String,
}

/// `PUT /api/users/{extension}/password` with `{"password": "..."}`: 204.
async fn api_password(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(extension): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let session = match api_session(&listener, &headers, Needs::TownAdmin, true).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let request: PasswordRequest = match json_body(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match set_password(
        &listener,
        session.tenant(),
        extension.clone(),
        request.password,
    )
    .await
    {
        Ok(()) => {
            listener.audit(
                &session,
                peer.ip(),
                "user.password",
                format!("user {extension}"),
            );
            done()
        }
        Err(failure) => failure.api(),
    }
}

/// `DELETE /api/users/{extension}`: 204.
async fn api_delete_user(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(extension): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match api_session(&listener, &headers, Needs::TownAdmin, true).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match delete_user(&listener, session.tenant(), extension.clone()).await {
        Ok(()) => {
            listener.audit(
                &session,
                peer.ip(),
                "user.delete",
                format!("user {extension}"),
            );
            done()
        }
        Err(failure) => failure.api(),
    }
}

/// A JSON field that may be absent (keep), `null` (clear) or a value.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A settings change as the API takes it: fields left out stay as they are; a forwarding of
/// `null` or `""` is off; `follow_me` is a list of steps (`[]`: off).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsRequest {
    #[serde(default)]
    dnd: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    forward_always: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    forward_busy: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    forward_no_answer: Option<Option<String>>,
    #[serde(default)]
    no_answer_seconds: Option<u32>,
    #[serde(default)]
    follow_me: Option<Vec<String>>,
}

impl From<SettingsRequest> for CallSettingsChange {
    fn from(request: SettingsRequest) -> Self {
        Self {
            dnd: request.dnd,
            forward_always: request.forward_always.map(Option::unwrap_or_default),
            forward_busy: request.forward_busy.map(Option::unwrap_or_default),
            forward_no_answer: request.forward_no_answer.map(Option::unwrap_or_default),
            no_answer_seconds: request.no_answer_seconds,
            follow_me: request.follow_me,
        }
    }
}

/// Reads, applies and audits a settings change for `extension` as `action`.
async fn api_settings_change(
    listener: &Listener,
    session: &Session,
    peer: SocketAddr,
    extension: String,
    body: &[u8],
    action: &'static str,
) -> Response {
    let request: SettingsRequest = match json_body(body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match change_settings(
        listener,
        session.tenant(),
        extension.clone(),
        request.into(),
    )
    .await
    {
        Ok(settings) => {
            listener.audit(
                session,
                peer.ip(),
                action,
                format!("user {extension}: {}", describe_all(&settings)),
            );
            json(StatusCode::OK, SettingsView::of(&settings))
        }
        Err(failure) => failure.api(),
    }
}

/// `PUT /api/users/{extension}/settings`: 200 with the settings now.
async fn api_user_settings(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(extension): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let session = match api_session(&listener, &headers, Needs::TownAdmin, true).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    api_settings_change(&listener, &session, peer, extension, &body, "user.settings").await
}

fn bans_unavailable() -> Response {
    api_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the registrar does not answer",
    )
}

/// `GET /api/bans`: the addresses banned now (as `amtsleitung security bans` lists them).
async fn api_bans(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    if let Err(response) = api_session(&listener, &headers, Needs::SystemAdmin, false).await {
        return response;
    }
    match bans(&listener).await {
        Some(bans) => json(StatusCode::OK, bans),
        None => bans_unavailable(),
    }
}

/// `DELETE /api/bans/{address}`: 200 with the ban lifted, 404 when it was not banned.
async fn api_lift_ban(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(address): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match api_session(&listener, &headers, Needs::SystemAdmin, true).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match lift_ban(&listener, &address).await {
        Ok(ban) => {
            listener.audit(&session, peer.ip(), "ban.lift", lifted_detail(&ban));
            json(StatusCode::OK, ban)
        }
        Err(failure) => failure.api(),
    }
}

fn lifted_detail(ban: &BanSummary) -> String {
    format!("{} (banned for {})", ban.source, ban.reason)
}

/// `GET /api/phone`: the session's own user with its phones and settings, and its mailbox's
/// counts.
async fn api_phone(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    let (session, extension) = match api_own(&listener, &headers, false).await {
        Ok(own) => own,
        Err(response) => return response,
    };
    let state = match one_user(&listener, session.tenant(), extension.clone()).await {
        Ok(state) => state,
        Err(failure) => return failure.api(),
    };
    let mailbox = extension.clone();
    let counts = in_store(&listener, move |store| {
        store.voicemail_counts(&mailbox).map_err(Failure::store)
    })
    .await;
    match counts {
        Ok(counts) => json(
            StatusCode::OK,
            serde_json::json!({
                "user": UserView::of(&state.user, &state.bindings, now_ms()),
                "voicemail": { "new": counts.new, "old": counts.old },
            }),
        ),
        Err(failure) => failure.api(),
    }
}

/// `PUT /api/phone/settings`: the session's own settings; 200 with them now.
async fn api_phone_settings(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (session, extension) = match api_own(&listener, &headers, true).await {
        Ok(own) => own,
        Err(response) => return response,
    };
    api_settings_change(
        &listener,
        &session,
        peer,
        extension,
        &body,
        "phone.settings",
    )
    .await
}

/// A message as the API lists it (without the server's file path).
#[derive(Serialize)]
struct MessageView {
    id: i64,
    caller: String,
    received_at_ms: i64,
    duration_ms: i64,
    heard: bool,
    audio: String,
}

/// `GET /api/phone/voicemail`: the session's own messages, newest first.
async fn api_voicemail(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    let (session, extension) = match api_own(&listener, &headers, false).await {
        Ok(own) => own,
        Err(response) => return response,
    };
    match messages(&listener, session.tenant(), extension).await {
        Ok(messages) => json(
            StatusCode::OK,
            messages
                .iter()
                .map(|m| MessageView {
                    id: m.id.0,
                    caller: m.caller.clone(),
                    received_at_ms: m.received_at_ms,
                    duration_ms: m.duration_ms,
                    heard: m.heard,
                    audio: format!("/api/phone/voicemail/{}/audio", m.id.0),
                })
                .collect::<Vec<_>>(),
        ),
        Err(failure) => failure.api(),
    }
}

fn no_message() -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such message in your mailbox",
    )
}

#[derive(Deserialize)]
struct AudioQuery {
    #[serde(default)]
    download: Option<String>,
}

/// `GET /api/phone/voicemail/{id}/audio`: the message's WAV (`?download=1`: as a file).
async fn api_voicemail_audio(
    State(listener): State<Listener>,
    Path(id): Path<String>,
    Query(query): Query<AudioQuery>,
    headers: HeaderMap,
) -> Response {
    let (session, extension) = match api_own(&listener, &headers, false).await {
        Ok(own) => own,
        Err(response) => return response,
    };
    let Ok(id) = id.parse::<i64>() else {
        return no_message().api();
    };
    let message = match message(&listener, session.tenant(), extension, id).await {
        Ok(message) => message,
        Err(failure) => return failure.api(),
    };
    let audio = match tokio::fs::read(&message.path).await {
        Ok(audio) => audio,
        Err(err) => {
            tracing::error!(path = %message.path.display(), "voicemail file unreadable: {err}");
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the message's recording cannot be read",
            );
        }
    };
    let mut response = audio.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    if query.download.is_some()
        && let Ok(value) =
            HeaderValue::from_str(&format!("attachment; filename=\"voicemail-{id}.wav\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    private(headers);
    response
}

/// `DELETE /api/phone/voicemail/{id}`: deletes one of the session's own messages; 204.
async fn api_voicemail_delete(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (session, extension) = match api_own(&listener, &headers, true).await {
        Ok(own) => own,
        Err(response) => return response,
    };
    let Ok(id) = id.parse::<i64>() else {
        return no_message().api();
    };
    match delete_message(&listener, session.tenant(), extension.clone(), id).await {
        Ok(()) => {
            listener.audit(
                &session,
                peer.ip(),
                "voicemail.delete",
                format!("message {id} of mailbox {extension}"),
            );
            done()
        }
        Err(failure) => failure.api(),
    }
}

// ---------------------------------------------------------------------------------------
// The pages: plain forms with the CSRF field, POST-redirect-GET on success.

/// A page request's session: the sign-in page without one.
async fn page_session(listener: &Listener, headers: &HeaderMap) -> Result<Session, Response> {
    listener
        .session(headers)
        .await
        .map_err(|refusal| refused_page(refusal, language(headers)))
}

/// Whom a page or form is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Anyone signed in (their own phone).
    Anyone,
    /// An admin of a town's users (the system's admins too): the town's users.
    TownAdmin,
    /// An admin of the whole system: the import and the bans.
    SystemAdmin,
}

impl Needs {
    fn admits(self, session: &Session) -> bool {
        match self {
            Needs::Anyone => true,
            Needs::TownAdmin => session.town_admin(),
            Needs::SystemAdmin => session.admin(),
        }
    }
}

/// A page request's session as `needs` wants it: a 403 page for anyone else.
async fn page_session_for(
    listener: &Listener,
    headers: &HeaderMap,
    needs: Needs,
) -> Result<Session, Response> {
    let session = page_session(listener, headers).await?;
    if !needs.admits(&session) {
        return Err(html(
            StatusCode::FORBIDDEN,
            page::forbidden(language(headers), &session.viewer()),
        ));
    }
    Ok(session)
}

/// A form's session after the CSRF check, as `needs` wants it (403 for anyone else).
async fn form_session(
    listener: &Listener,
    headers: &HeaderMap,
    csrf: &str,
    needs: Needs,
) -> Result<Session, Response> {
    let session = page_session_for(listener, headers, needs).await?;
    if !same_secret(csrf, &session.csrf_token) {
        return Err(csrf_refused());
    }
    Ok(session)
}

#[derive(Deserialize)]
struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

async fn render_users(
    listener: &Listener,
    session: &Session,
    language: Language,
    status: StatusCode,
    notice: Notice<'_>,
    refill: &Refill<'_>,
) -> Response {
    let users = match all_users(listener, session.tenant()).await {
        Ok(users) => users,
        Err(failure) => return failed_page(session, language, &failure),
    };
    let lines: Vec<UserLine<'_>> = users.iter().map(UserState::line).collect();
    // The bans are the system's: a town's admin is not shown them.
    let bans = match session.admin() {
        true => bans(listener).await,
        false => None,
    };
    html(
        status,
        page::users(
            language,
            &session.viewer(),
            &lines,
            bans.as_deref(),
            notice,
            refill,
            now_ms(),
        ),
    )
}

fn failed_page(session: &Session, language: Language, failure: &Failure) -> Response {
    html(
        failure.status,
        page::failed(
            language,
            &session.viewer(),
            page::texts(language).users,
            &failure.reason,
        ),
    )
}

/// `GET /console/users`.
async fn users_page(
    State(listener): State<Listener>,
    Query(query): Query<DoneQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match page_session_for(&listener, &headers, Needs::TownAdmin).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let language = language(&headers);
    let notice = Notice::done(language, query.done.as_deref());
    render_users(
        &listener,
        &session,
        language,
        StatusCode::OK,
        notice,
        &Refill::default(),
    )
    .await
}

#[derive(Deserialize)]
struct AddUserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    extension: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    allow: String,
    #[serde(default)]
    max_contacts: String,
    #[serde(default)]
    language: String,
}

/// `POST /console/users`: adds a user.
async fn add_user_form(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<AddUserForm>,
) -> Response {
    let session = match form_session(&listener, &headers, &form.csrf, Needs::TownAdmin).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let fields = vec![
        ("extension".to_owned(), form.extension.clone()),
        ("name".to_owned(), form.name.clone()),
        ("password".to_owned(), form.password),
        ("allow".to_owned(), form.allow.clone()),
        ("max_contacts".to_owned(), form.max_contacts),
        ("language".to_owned(), form.language),
    ];
    match add_user(&listener, session.tenant(), fields).await {
        Ok(user) => {
            listener.audit(&session, peer.ip(), "user.create", created_detail(&user));
            see_other("/console/users?done=added")
        }
        Err(failure) => {
            let refill = Refill {
                extension: &form.extension,
                name: &form.name,
                allow: &form.allow,
                csv: "",
            };
            render_users(
                &listener,
                &session,
                language(&headers),
                failure.status,
                Notice::Error(&failure.reason),
                &refill,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct ImportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    csv: String,
}

/// `POST /console/users/import`: the CSV from the text area.
async fn import_form(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<ImportForm>,
) -> Response {
    let session = match form_session(&listener, &headers, &form.csrf, Needs::SystemAdmin).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match import(&listener, form.csv.clone().into_bytes()).await {
        Ok(imported) => {
            listener.audit(
                &session,
                peer.ip(),
                "user.import",
                imported_detail(&imported),
            );
            see_other("/console/users?done=imported")
        }
        Err(failure) => {
            let refill = Refill {
                csv: &form.csv,
                ..Refill::default()
            };
            render_users(
                &listener,
                &session,
                language(&headers),
                failure.status,
                Notice::Error(&failure.reason),
                &refill,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct LiftForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    address: String,
}

/// `POST /console/bans/lift`.
async fn lift_ban_form(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LiftForm>,
) -> Response {
    let session = match form_session(&listener, &headers, &form.csrf, Needs::SystemAdmin).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match lift_ban(&listener, &form.address).await {
        Ok(ban) => {
            listener.audit(&session, peer.ip(), "ban.lift", lifted_detail(&ban));
            see_other("/console/users?done=lifted")
        }
        Err(failure) => {
            render_users(
                &listener,
                &session,
                language(&headers),
                failure.status,
                Notice::Error(&failure.reason),
                &Refill::default(),
            )
            .await
        }
    }
}

async fn render_user(
    listener: &Listener,
    session: &Session,
    language: Language,
    extension: String,
    status: StatusCode,
    notice: Notice<'_>,
) -> Response {
    match one_user(listener, session.tenant(), extension).await {
        Ok(state) => html(
            status,
            page::user(language, &session.viewer(), &state.line(), notice, now_ms()),
        ),
        Err(failure) => failed_page(session, language, &failure),
    }
}

/// `GET /console/users/{extension}`.
async fn user_page(
    State(listener): State<Listener>,
    Path(extension): Path<String>,
    Query(query): Query<DoneQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match page_session_for(&listener, &headers, Needs::TownAdmin).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let language = language(&headers);
    let notice = Notice::done(language, query.done.as_deref());
    render_user(
        &listener,
        &session,
        language,
        extension,
        StatusCode::OK,
        notice,
    )
    .await
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

/// `POST /console/users/{extension}/password`.
async fn password_form(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(extension): Path<String>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    let session = match form_session(&listener, &headers, &form.csrf, Needs::TownAdmin).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match set_password(
        &listener,
        session.tenant(),
        extension.clone(),
        form.password,
    )
    .await
    {
        Ok(()) => {
            listener.audit(
                &session,
                peer.ip(),
                "user.password",
                format!("user {extension}"),
            );
            see_other(&format!("/console/users/{extension}?done=password"))
        }
        Err(failure) => {
            render_user(
                &listener,
                &session,
                language(&headers),
                extension,
                failure.status,
                Notice::Error(&failure.reason),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dnd: Option<String>,
    #[serde(default)]
    forward_always: String,
    #[serde(default)]
    forward_busy: String,
    #[serde(default)]
    forward_no_answer: String,
    #[serde(default)]
    no_answer_seconds: String,
    #[serde(default)]
    follow_me: String,
}

impl SettingsForm {
    /// The whole form as a change: a form always sends every field (an unticked box is off).
    fn change(&self) -> Result<CallSettingsChange, Failure> {
        let seconds = self.no_answer_seconds.trim();
        let no_answer_seconds = if seconds.is_empty() {
            None
        } else {
            Some(seconds.parse().map_err(|_| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("ring time {seconds:?} is not a number of seconds"),
                )
            })?)
        };
        Ok(CallSettingsChange {
            dnd: Some(self.dnd.is_some()),
            forward_always: Some(self.forward_always.clone()),
            forward_busy: Some(self.forward_busy.clone()),
            forward_no_answer: Some(self.forward_no_answer.clone()),
            no_answer_seconds,
            follow_me: Some(self.follow_me.lines().map(str::to_owned).collect()),
        })
    }
}

/// `POST /console/users/{extension}/settings`.
async fn user_settings_form(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(extension): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SettingsForm>,
) -> Response {
    let session = match form_session(&listener, &headers, &form.csrf, Needs::TownAdmin).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let changed = match form.change() {
        Ok(change) => change_settings(&listener, session.tenant(), extension.clone(), change).await,
        Err(failure) => Err(failure),
    };
    match changed {
        Ok(settings) => {
            listener.audit(
                &session,
                peer.ip(),
                "user.settings",
                format!("user {extension}: {}", describe_all(&settings)),
            );
            see_other(&format!("/console/users/{extension}?done=settings"))
        }
        Err(failure) => {
            render_user(
                &listener,
                &session,
                language(&headers),
                extension,
                failure.status,
                Notice::Error(&failure.reason),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: Option<String>,
}

/// `POST /console/users/{extension}/delete` (the confirmation box must be ticked).
async fn delete_form(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(extension): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DeleteForm>,
) -> Response {
    let session = match form_session(&listener, &headers, &form.csrf, Needs::TownAdmin).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let language = language(&headers);
    if form.confirm.is_none() {
        return render_user(
            &listener,
            &session,
            language,
            extension.clone(),
            StatusCode::BAD_REQUEST,
            Notice::Error(
                &page::texts(language)
                    .delete_confirm
                    .replace("{ext}", &extension),
            ),
        )
        .await;
    }
    match delete_user(&listener, session.tenant(), extension.clone()).await {
        Ok(()) => {
            listener.audit(
                &session,
                peer.ip(),
                "user.delete",
                format!("user {extension}"),
            );
            see_other("/console/users?done=deleted")
        }
        Err(failure) => {
            render_user(
                &listener,
                &session,
                language,
                extension,
                failure.status,
                Notice::Error(&failure.reason),
            )
            .await
        }
    }
}

async fn render_phone(
    listener: &Listener,
    session: &Session,
    language: Language,
    status: StatusCode,
    notice: Notice<'_>,
) -> Response {
    let viewer = session.viewer();
    let Some(extension) = session.account.extension.clone() else {
        return html(
            status,
            page::phone(language, &viewer, &Phone::NoExtension, notice, now_ms()),
        );
    };
    let state = match one_user(listener, session.tenant(), extension.clone()).await {
        Ok(state) => state,
        Err(failure) if failure.status == StatusCode::NOT_FOUND => {
            return html(
                status,
                page::phone(
                    language,
                    &viewer,
                    &Phone::NoUser(&extension),
                    notice,
                    now_ms(),
                ),
            );
        }
        Err(failure) => return failed_page(session, language, &failure),
    };
    let messages = match messages(listener, session.tenant(), extension).await {
        Ok(messages) => messages,
        Err(failure) => return failed_page(session, language, &failure),
    };
    let phone = Phone::User {
        line: state.line(),
        messages: &messages,
    };
    html(
        status,
        page::phone(language, &viewer, &phone, notice, now_ms()),
    )
}

/// `GET /console/phone`: everyone's own phone.
async fn phone_page(
    State(listener): State<Listener>,
    Query(query): Query<DoneQuery>,
    headers: HeaderMap,
) -> Response {
    let language = language(&headers);
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return refused_page(refusal, language),
    };
    let notice = Notice::done(language, query.done.as_deref());
    render_phone(&listener, &session, language, StatusCode::OK, notice).await
}

/// The session's own extension for a "my phone" form, or the page saying there is none.
async fn own_extension(
    listener: &Listener,
    session: &Session,
    language: Language,
) -> Result<String, Response> {
    match session.account.extension.clone() {
        Some(extension) => Ok(extension),
        None => Err(render_phone(
            listener,
            session,
            language,
            StatusCode::NOT_FOUND,
            Notice::None,
        )
        .await),
    }
}

/// `POST /console/phone/settings`: the session's own settings.
async fn phone_settings_form(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SettingsForm>,
) -> Response {
    let session = match form_session(&listener, &headers, &form.csrf, Needs::Anyone).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let language = language(&headers);
    let extension = match own_extension(&listener, &session, language).await {
        Ok(extension) => extension,
        Err(response) => return response,
    };
    let changed = match form.change() {
        Ok(change) => change_settings(&listener, session.tenant(), extension.clone(), change).await,
        Err(failure) => Err(failure),
    };
    match changed {
        Ok(settings) => {
            listener.audit(
                &session,
                peer.ip(),
                "phone.settings",
                format!("user {extension}: {}", describe_all(&settings)),
            );
            see_other("/console/phone?done=settings")
        }
        Err(failure) => {
            render_phone(
                &listener,
                &session,
                language,
                failure.status,
                Notice::Error(&failure.reason),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/phone/voicemail/{id}/delete`.
async fn voicemail_delete_form(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let session = match form_session(&listener, &headers, &form.csrf, Needs::Anyone).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let language = language(&headers);
    let extension = match own_extension(&listener, &session, language).await {
        Ok(extension) => extension,
        Err(response) => return response,
    };
    let deleted = match id.parse::<i64>() {
        Ok(id) => delete_message(&listener, session.tenant(), extension.clone(), id)
            .await
            .map(|()| id),
        Err(_) => Err(no_message()),
    };
    match deleted {
        Ok(id) => {
            listener.audit(
                &session,
                peer.ip(),
                "voicemail.delete",
                format!("message {id} of mailbox {extension}"),
            );
            see_other("/console/phone?done=message-deleted")
        }
        Err(failure) => {
            render_phone(
                &listener,
                &session,
                language,
                failure.status,
                Notice::Error(&failure.reason),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::DEFAULT_DOMAIN;

    #[test]
    fn a_settings_request_tells_left_out_from_cleared() {
        let request: SettingsRequest =
            serde_json::from_str(r#"{"forward_always": "102", "forward_busy": null}"#).unwrap();
        let change = CallSettingsChange::from(request);
        assert_eq!(change.forward_always.as_deref(), Some("102"));
        assert_eq!(change.forward_busy.as_deref(), Some(""), "null clears");
        assert_eq!(change.forward_no_answer, None, "left out: kept");
        assert_eq!(change.dnd, None);
        assert!(serde_json::from_str::<SettingsRequest>(r#"{"forward_allways": "1"}"#).is_err());
    }

    #[test]
    fn a_settings_form_is_a_whole_change_with_an_unticked_box_off() {
        let form = SettingsForm {
            csrf: String::new(),
            dnd: None,
            forward_always: " 102 ".into(),
            forward_busy: String::new(),
            forward_no_answer: String::new(),
            no_answer_seconds: "25".into(),
            follow_me: "101:15\r\n\r\n102:20\r\n".into(),
        };
        let change = form.change().unwrap();
        assert_eq!(change.dnd, Some(false));
        assert_eq!(change.no_answer_seconds, Some(25));
        let settings = change.apply(&CallSettings::default()).unwrap();
        assert_eq!(settings.forward_always.as_deref(), Some("102"));
        assert_eq!(settings.follow_me.len(), 2);
        let bad = SettingsForm {
            no_answer_seconds: "zwanzig".into(),
            ..form
        };
        assert!(bad.change().is_err());
    }

    #[test]
    fn json_fields_become_the_text_an_import_column_holds() {
        assert_eq!(field_text(&serde_json::json!(3)).as_deref(), Some("3"));
        assert_eq!(
            field_text(&serde_json::json!(["10.8.0.0/16", "192.168.5.0/24"])).as_deref(),
            Some("10.8.0.0/16,192.168.5.0/24")
        );
        assert_eq!(field_text(&serde_json::json!(true)).as_deref(), Some("on"));
        assert_eq!(field_text(&serde_json::json!({"a": 1})), None);
        assert_eq!(field_text(&serde_json::json!([1])), None);
    }

    #[test]
    fn store_failures_fail_closed_and_refused_values_are_the_requests_fault() {
        let missing = Failure::store(StoreError::NoSuchUser {
            domain: DEFAULT_DOMAIN.into(),
            extension: "101".into(),
        });
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        let invalid = Failure::store(StoreError::InvalidForwardTarget("x".into()));
        assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
        let broken = Failure::store(StoreError::NonUtf8Path("x".into()));
        assert_eq!(broken.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
