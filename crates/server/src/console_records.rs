//! The console's record pages: call records with search and CSV export, and the audit log
//! (admins only), and recordings to listen to, download and delete (admins: all; staff: those
//! of the rooms they own). Recordings older than `[conference] recording-keep-days` are
//! deleted on their own (`spawn_recording_expiry`).

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::console::{
    Listener, Refusal, Session, api_error, api_refused, csrf_refused, done, flat, forbidden,
    header_csrf_ok, html, json_answer, language, now_ms, private, refused_page, same_secret,
    see_other,
};
use crate::console_page::{csrf_field, escape, page_behind_sign_in};
use crate::join_page::Language;
use crate::shared::Shared;

/// The most call records or audit entries one page or API answer shows.
const PAGE_LIMIT: usize = 500;

pub(crate) fn routes() -> Router<Listener> {
    Router::new()
        .route("/console/calls", get(calls_page))
        .route("/console/audit", get(audit_page))
        .route("/console/recordings", get(recordings_page))
        .route(
            "/console/recordings/{id}/delete",
            post(delete_recording_form),
        )
        .route("/api/calls", get(api_calls))
        .route("/api/calls.csv", get(api_calls_csv))
        .route("/api/audit", get(api_audit))
        .route("/api/recordings", get(api_recordings))
        .route(
            "/api/recordings/{id}",
            axum::routing::delete(api_delete_recording),
        )
        .route("/api/recordings/{id}/audio", get(recording_audio))
}

struct Words {
    calls: &'static str,
    audit: &'static str,
    recordings: &'static str,
    since: &'static str,
    search: &'static str,
    show: &'static str,
    csv: &'static str,
    started: &'static str,
    caller: &'static str,
    callee: &'static str,
    status: &'static str,
    seconds: &'static str,
    reason: &'static str,
    none: &'static str,
    when: &'static str,
    who: &'static str,
    from_where: &'static str,
    what: &'static str,
    room: &'static str,
    length: &'static str,
    listen: &'static str,
    download: &'static str,
    delete: &'static str,
    running: &'static str,
    kept: &'static str,
    kept_forever: &'static str,
    deleted: &'static str,
    bad_since: &'static str,
}

const GERMAN: Words = Words {
    calls: "Anrufe",
    audit: "Änderungsprotokoll",
    recordings: "Aufnahmen",
    since: "Seit (JJJJ-MM-TT)",
    search: "Suche (Nummer, Grund)",
    show: "Anzeigen",
    csv: "Als CSV herunterladen",
    started: "Beginn",
    caller: "Von",
    callee: "An",
    status: "Status",
    seconds: "Sekunden",
    reason: "Ende",
    none: "Keine Einträge.",
    when: "Wann",
    who: "Wer",
    from_where: "Von wo",
    what: "Was",
    room: "Raum",
    length: "Länge",
    listen: "Anhören",
    download: "Herunterladen",
    delete: "Löschen",
    running: "läuft",
    kept: "Aufnahmen werden nach {days} Tagen automatisch gelöscht.",
    kept_forever: "Aufnahmen werden nicht automatisch gelöscht ([conference] recording-keep-days).",
    deleted: "Die Aufnahme ist gelöscht.",
    bad_since: "Datum bitte als JJJJ-MM-TT.",
};

const ENGLISH: Words = Words {
    calls: "Calls",
    audit: "Audit log",
    recordings: "Recordings",
    since: "Since (YYYY-MM-DD)",
    search: "Search (number, reason)",
    show: "Show",
    csv: "Download as CSV",
    started: "Started",
    caller: "From",
    callee: "To",
    status: "Status",
    seconds: "Seconds",
    reason: "Ended",
    none: "Nothing yet.",
    when: "When",
    who: "Who",
    from_where: "From where",
    what: "What",
    room: "Room",
    length: "Length",
    listen: "Listen",
    download: "Download",
    delete: "Delete",
    running: "running",
    kept: "Recordings are deleted automatically after {days} days.",
    kept_forever: "Recordings are not deleted automatically ([conference] recording-keep-days).",
    deleted: "The recording was deleted.",
    bad_since: "Please write the date as YYYY-MM-DD.",
};

fn words(language: Language) -> &'static Words {
    match language {
        Language::German => &GERMAN,
        Language::English => &ENGLISH,
    }
}

/// A session that must be an admin's: the page's or API's refusal otherwise.
async fn admin_session(
    listener: &Listener,
    headers: &HeaderMap,
    page: bool,
) -> Result<Session, Response> {
    let session = listener.session(headers).await.map_err(|refusal| {
        if page {
            refused_page(refusal, language(headers))
        } else {
            api_refused(refusal)
        }
    })?;
    if !session.admin() {
        return Err(forbidden());
    }
    Ok(session)
}

fn store_failed(what: &str, err: impl std::fmt::Display) -> Response {
    tracing::error!("console: {what} failed: {err}");
    api_refused(Refusal::StoreFailed)
}

// ---- call records ----

#[derive(Deserialize, Default)]
struct CallQuery {
    /// "YYYY-MM-DD" or "YYYY-MM-DD HH:MM", server time; default: the last 24 hours.
    since: Option<String>,
    /// Part of the caller, the callee or the end reason.
    q: Option<String>,
}

impl CallQuery {
    fn since_ms(&self) -> Result<i64, String> {
        match self
            .since
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(text) => crate::calls_cli::parse_local(text, &jiff::tz::TimeZone::system())
                .map(|t| t.as_millisecond()),
            None => Ok(now_ms() - 24 * 3600 * 1000),
        }
    }

    fn matches(&self, call: &store::CallRecord) -> bool {
        let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) else {
            return true;
        };
        let q = q.to_lowercase();
        [&call.caller, &call.callee, &call.end_reason]
            .iter()
            .any(|field| field.to_lowercase().contains(&q))
    }
}

/// The calls `query` asks for, newest first, at most [`PAGE_LIMIT`] for pages and JSON.
async fn find_calls(
    listener: &Listener,
    query: &CallQuery,
) -> Result<Vec<store::CallRecord>, Response> {
    let since_ms = query
        .since_ms()
        .map_err(|reason| api_error(StatusCode::BAD_REQUEST, "bad_request", reason))?;
    let found = listener
        .console
        .shared
        .store
        .run(move |store| store.calls_since(since_ms))
        .await;
    let calls = flat(found).map_err(|err| store_failed("call records", err))?;
    Ok(calls.into_iter().filter(|c| query.matches(c)).collect())
}

fn call_json(call: &store::CallRecord) -> serde_json::Value {
    serde_json::json!({
        "call_id": call.call_id,
        "caller": call.caller,
        "callee": call.callee,
        "started_at_ms": call.started_at_ms,
        "ended_at_ms": call.ended_at_ms,
        "answered": call.answered,
        "final_status": call.final_status,
        "end_reason": call.end_reason,
        "features": call.features,
    })
}

/// `GET /api/calls?since=&q=`: call records, newest first.
async fn api_calls(
    State(listener): State<Listener>,
    headers: HeaderMap,
    Query(query): Query<CallQuery>,
) -> Response {
    if let Err(response) = admin_session(&listener, &headers, false).await {
        return response;
    }
    match find_calls(&listener, &query).await {
        Ok(calls) => json_answer(serde_json::Value::Array(
            calls.iter().rev().take(PAGE_LIMIT).map(call_json).collect(),
        )),
        Err(response) => response,
    }
}

/// `GET /api/calls.csv?since=&q=`: the same records as RFC 4180 CSV, oldest first, as
/// `amtsleitung calls list --csv` writes them.
async fn api_calls_csv(
    State(listener): State<Listener>,
    headers: HeaderMap,
    Query(query): Query<CallQuery>,
) -> Response {
    if let Err(response) = admin_session(&listener, &headers, false).await {
        return response;
    }
    match find_calls(&listener, &query).await {
        Ok(calls) => {
            let mut response = crate::calls_cli::to_csv(&calls).into_response();
            let headers = response.headers_mut();
            private(headers);
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            headers.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"calls.csv\""),
            );
            response
        }
        Err(response) => response,
    }
}

async fn calls_page(
    State(listener): State<Listener>,
    headers: HeaderMap,
    Query(query): Query<CallQuery>,
) -> Response {
    let session = match admin_session(&listener, &headers, true).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let language = language(&headers);
    let w = words(language);
    let since = query.since.clone().unwrap_or_default();
    let q = query.q.clone().unwrap_or_default();
    let mut main = format!(
        "<form method=\"get\" action=\"/console/calls\" role=\"search\">\n\
         <p><label for=\"since\">{since_label}</label>\n\
         <input id=\"since\" name=\"since\" value=\"{since}\" placeholder=\"2026-12-01\"></p>\n\
         <p><label for=\"q\">{search_label}</label>\n\
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{q}\"></p>\n\
         <p><button type=\"submit\">{show}</button></p>\n</form>\n",
        since_label = escape(w.since),
        since = escape(&since),
        search_label = escape(w.search),
        q = escape(&q),
        show = escape(w.show),
    );
    let status = match find_calls(&listener, &query).await {
        Ok(calls) => {
            let csv = format!(
                "/api/calls.csv?since={}&q={}",
                url_part(&since),
                url_part(&q)
            );
            let _ = writeln!(
                main,
                "<p><a href=\"{}\" download>{}</a></p>",
                escape(&csv),
                escape(w.csv)
            );
            if calls.is_empty() {
                let _ = writeln!(main, "<p>{}</p>", escape(w.none));
            } else {
                let tz = jiff::tz::TimeZone::system();
                let _ = write!(
                    main,
                    "<table>\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
                     <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
                     <th scope=\"col\">{}</th></tr></thead>\n<tbody>\n",
                    escape(w.started),
                    escape(w.caller),
                    escape(w.callee),
                    escape(w.status),
                    escape(w.seconds),
                    escape(w.reason),
                );
                for call in calls.iter().rev().take(PAGE_LIMIT) {
                    let _ = writeln!(
                        main,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td></tr>",
                        escape(&crate::calls_cli::local(call.started_at_ms, &tz)),
                        escape(&call.caller),
                        escape(&call.callee),
                        call.final_status,
                        (call.ended_at_ms - call.started_at_ms).max(0) as f64 / 1000.0,
                        escape(&call.end_reason),
                    );
                }
                main.push_str("</tbody>\n</table>\n");
            }
            StatusCode::OK
        }
        Err(_) if query.since_ms().is_err() => {
            let _ = writeln!(
                main,
                "<p class=\"error\" role=\"alert\">{}</p>",
                escape(w.bad_since)
            );
            StatusCode::BAD_REQUEST
        }
        Err(response) => return response,
    };
    html(
        status,
        page_behind_sign_in(language, &session.viewer(), w.calls, &main),
    )
}

/// A query-string value, percent-encoded.
fn url_part(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

// ---- audit log ----

#[derive(Deserialize, Default)]
struct AuditQuery {
    actor: Option<String>,
}

async fn audit_entries(
    listener: &Listener,
    query: &AuditQuery,
) -> Result<Vec<store::AuditRecord>, Response> {
    let actor = query.actor.clone().filter(|a| !a.trim().is_empty());
    let found = listener
        .console
        .shared
        .store
        .run(move |store| store.audit_list(None, actor.as_deref(), PAGE_LIMIT))
        .await;
    flat(found).map_err(|err| store_failed("audit log", err))
}

/// `GET /api/audit?actor=`: the newest changes first.
async fn api_audit(
    State(listener): State<Listener>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    if let Err(response) = admin_session(&listener, &headers, false).await {
        return response;
    }
    match audit_entries(&listener, &query).await {
        Ok(entries) => json_answer(serde_json::Value::Array(
            entries
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "at_ms": e.at_ms, "actor": e.actor, "source": e.source,
                        "action": e.action, "detail": e.detail,
                    })
                })
                .collect(),
        )),
        Err(response) => response,
    }
}

async fn audit_page(
    State(listener): State<Listener>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let session = match admin_session(&listener, &headers, true).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let language = language(&headers);
    let w = words(language);
    let entries = match audit_entries(&listener, &query).await {
        Ok(entries) => entries,
        Err(response) => return response,
    };
    let mut main = format!(
        "<form method=\"get\" action=\"/console/audit\" role=\"search\">\n\
         <p><label for=\"actor\">{who}</label>\n<input id=\"actor\" name=\"actor\" value=\"{actor}\"></p>\n\
         <p><button type=\"submit\">{show}</button></p>\n</form>\n",
        who = escape(w.who),
        actor = escape(query.actor.as_deref().unwrap_or_default()),
        show = escape(w.show),
    );
    if entries.is_empty() {
        let _ = writeln!(main, "<p>{}</p>", escape(w.none));
    } else {
        let tz = jiff::tz::TimeZone::system();
        let _ = write!(
            main,
            "<table>\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
             <th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead>\n<tbody>\n",
            escape(w.when),
            escape(w.who),
            escape(w.from_where),
            escape(w.what),
        );
        for entry in &entries {
            let _ = writeln!(
                main,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code> {}</td></tr>",
                escape(&crate::calls_cli::local(entry.at_ms, &tz)),
                escape(&entry.actor),
                escape(&entry.source),
                escape(&entry.action),
                escape(&entry.detail),
            );
        }
        main.push_str("</tbody>\n</table>\n");
    }
    html(
        StatusCode::OK,
        page_behind_sign_in(language, &session.viewer(), w.audit, &main),
    )
}

// ---- recordings ----

/// The recordings this session may see: all for admins, those of their own rooms for staff.
async fn visible_recordings(
    listener: &Listener,
    session: &Session,
) -> Result<Vec<store::Recording>, Response> {
    let owner = (!session.admin()).then(|| session.account.name.clone());
    let found = listener
        .console
        .shared
        .store
        .run(
            move |store| -> Result<Vec<store::Recording>, store::StoreError> {
                let all = store.recordings_all()?;
                let Some(owner) = owner else {
                    return Ok(all);
                };
                let mine: std::collections::HashSet<String> = store
                    .room_list_owned_by(&owner)?
                    .into_iter()
                    .map(|room| room.number)
                    .collect();
                Ok(all.into_iter().filter(|r| mine.contains(&r.room)).collect())
            },
        )
        .await;
    flat(found).map_err(|err| store_failed("recordings", err))
}

/// Recording `id` if this session may see it: 404 when unknown, 403 when someone else's.
async fn visible_recording(
    listener: &Listener,
    session: &Session,
    id: &str,
) -> Result<store::Recording, Response> {
    let unknown = || {
        api_error(
            StatusCode::NOT_FOUND,
            "unknown_recording",
            "no such recording",
        )
    };
    let id = store::RecordingId(id.parse().map_err(|_| unknown())?);
    let owner = session.account.name.clone();
    let admin = session.admin();
    let found = listener
        .console
        .shared
        .store
        .run(
            move |store| -> Result<Option<(store::Recording, bool)>, store::StoreError> {
                let Some(recording) = store.recording_get(id)? else {
                    return Ok(None);
                };
                let allowed = admin
                    || store
                        .room_get(&recording.room)?
                        .is_some_and(|room| room.owner.as_deref() == Some(owner.as_str()));
                Ok(Some((recording, allowed)))
            },
        )
        .await;
    match flat(found) {
        Ok(Some((recording, true))) => Ok(recording),
        Ok(Some((_, false))) => Err(forbidden()),
        Ok(None) => Err(unknown()),
        Err(err) => Err(store_failed("recording lookup", err)),
    }
}

fn recording_json(recording: &store::Recording) -> serde_json::Value {
    serde_json::json!({
        "id": recording.id.0,
        "room": recording.room,
        "started_at_ms": recording.started_at_ms,
        "ended_at_ms": recording.ended_at_ms,
        "bytes": recording.bytes,
        "audio": format!("/api/recordings/{}/audio", recording.id.0),
    })
}

/// `GET /api/recordings`.
async fn api_recordings(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return api_refused(refusal),
    };
    match visible_recordings(&listener, &session).await {
        Ok(recordings) => json_answer(serde_json::Value::Array(
            recordings.iter().map(recording_json).collect(),
        )),
        Err(response) => response,
    }
}

#[derive(Deserialize, Default)]
struct AudioQuery {
    #[serde(default)]
    download: Option<String>,
}

/// `GET /api/recordings/{id}/audio[?download=1]`: the WAV file.
async fn recording_audio(
    State(listener): State<Listener>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<AudioQuery>,
) -> Response {
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return api_refused(refusal),
    };
    let recording = match visible_recording(&listener, &session, &id).await {
        Ok(recording) => recording,
        Err(response) => return response,
    };
    let path = recording.path.clone();
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::error!(path = %path.display(), "recording file unreadable: {err}");
            return api_error(
                StatusCode::NOT_FOUND,
                "file_missing",
                "the recording's file is missing",
            );
        }
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    private(headers);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    let disposition = format!(
        "{}; filename=\"room-{}-{}.wav\"",
        if query.download.is_some() {
            "attachment"
        } else {
            "inline"
        },
        recording.room,
        recording.id.0
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Deletes recording `id` and its file; audited.
async fn delete_recording(
    listener: &Listener,
    session: &Session,
    peer: SocketAddr,
    id: &str,
) -> Result<(), Response> {
    let recording = visible_recording(listener, session, id).await?;
    if recording.ended_at_ms.is_none()
        && listener
            .console
            .shared
            .conferences
            .recording(&recording.room)
            == Some(true)
    {
        return Err(api_error(
            StatusCode::CONFLICT,
            "recording_running",
            "the recording is still running; stop it first",
        ));
    }
    let id = recording.id;
    let deleted = listener
        .console
        .shared
        .store
        .run(move |store| store.recording_delete(id))
        .await;
    flat(deleted).map_err(|err| store_failed("recording delete", err))?;
    let path = recording.path.clone();
    if let Err(err) = tokio::fs::remove_file(&path).await
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::error!(path = %path.display(), "recording file not deleted: {err}");
    }
    listener.audit(
        session,
        peer.ip(),
        "recording.delete",
        format!("recording {} of room {}", id.0, recording.room),
    );
    Ok(())
}

/// `DELETE /api/recordings/{id}`.
async fn api_delete_recording(
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
    match delete_recording(&listener, &session, peer, &id).await {
        Ok(()) => done(),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The recordings page's delete button.
async fn delete_recording_form(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
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
    match delete_recording(&listener, &session, peer, &id).await {
        Ok(()) => see_other("/console/recordings?deleted=1"),
        Err(response) => response,
    }
}

#[derive(Deserialize, Default)]
struct RecordingsQuery {
    deleted: Option<String>,
}

async fn recordings_page(
    State(listener): State<Listener>,
    headers: HeaderMap,
    Query(query): Query<RecordingsQuery>,
) -> Response {
    let language = language(&headers);
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return refused_page(refusal, language),
    };
    let w = words(language);
    let recordings = match visible_recordings(&listener, &session).await {
        Ok(recordings) => recordings,
        Err(response) => return response,
    };
    let mut main = String::new();
    if query.deleted.is_some() {
        let _ = writeln!(
            main,
            "<p class=\"notice\" role=\"status\">{}</p>",
            escape(w.deleted)
        );
    }
    let keep_days = listener
        .console
        .shared
        .config
        .conference
        .recording_keep_days;
    let _ = writeln!(
        main,
        "<p>{}</p>",
        escape(&if keep_days == 0 {
            w.kept_forever.to_owned()
        } else {
            w.kept.replace("{days}", &keep_days.to_string())
        })
    );
    if recordings.is_empty() {
        let _ = writeln!(main, "<p>{}</p>", escape(w.none));
    } else {
        let tz = jiff::tz::TimeZone::system();
        let _ = write!(
            main,
            "<table>\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
             <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead>\n<tbody>\n",
            escape(w.room),
            escape(w.started),
            escape(w.length),
            escape(w.listen),
            escape(w.delete),
        );
        for recording in recordings.iter().rev() {
            let length = recording.bytes.map_or_else(
                || w.running.to_owned(),
                // 16 kHz, 16-bit mono after a 44-byte header.
                |bytes| format!("{:.0} s", bytes.saturating_sub(44) as f64 / 32_000.0),
            );
            let id = recording.id.0;
            let started = crate::calls_cli::local(recording.started_at_ms, &tz);
            let _ = writeln!(
                main,
                "<tr><th scope=\"row\">{room}</th><td>{started}</td><td>{length}</td>\
                 <td><audio controls preload=\"none\" src=\"/api/recordings/{id}/audio\" aria-label=\"{listen} {room} {started}\"></audio> \
                 <a href=\"/api/recordings/{id}/audio?download=1\">{download}</a></td>\
                 <td><form method=\"post\" action=\"/console/recordings/{id}/delete\">{csrf}\
                 <button type=\"submit\" aria-label=\"{delete}: {room} {started}\">{delete}</button></form></td></tr>",
                room = escape(&recording.room),
                started = escape(&started),
                length = escape(&length),
                listen = escape(w.listen),
                download = escape(w.download),
                csrf = csrf_field(&session.csrf_token),
                delete = escape(w.delete),
            );
        }
        main.push_str("</tbody>\n</table>\n");
    }
    html(
        StatusCode::OK,
        page_behind_sign_in(language, &session.viewer(), w.recordings, &main),
    )
}

/// Deletes finished recordings older than `[conference] recording-keep-days` with their
/// files, every hour from start (nothing when it is 0).
pub fn spawn_recording_expiry(shared: Arc<Shared>) {
    let keep_days = shared.config.conference.recording_keep_days;
    if keep_days == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(3600));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let cutoff = crate::voicemail::expiry_cutoff(now_ms(), keep_days);
            let expired = shared
                .store
                .run(move |store| store.recordings_expire(cutoff))
                .await;
            match flat(expired) {
                Ok(expired) => {
                    for recording in expired {
                        let path = &recording.path;
                        if let Err(err) = std::fs::remove_file(path)
                            && err.kind() != std::io::ErrorKind::NotFound
                        {
                            tracing::error!(path = %path.display(), "expired recording not deleted: {err}");
                        }
                        tracing::info!(room = %recording.room, id = recording.id.0, "recording expired");
                    }
                }
                Err(err) => tracing::error!("recording expiry failed: {err}"),
            }
        }
    });
}
