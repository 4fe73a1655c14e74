//! The console's dialplan pages and API (admins only; every handler checks the role itself,
//! as in `console`). Routes are merged into `Console::routes`.
//!
//! Drafts are checked as the whole plan would be with them in place, by the same code the
//! CLI and the server's reload use (`dialplan_edit`, `dialplan_files`). Applying or rolling
//! back records the new version in the history first (with the admin's name), then renames
//! the files into place and asks the reloader (the task the file watcher feeds) to load them
//! now, waiting for its report: the answer says which version is live because the server
//! said so. The watcher's own reload of the same files then finds them equal to the newest
//! version and adds nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dialplan::{CallFacts, Diagnostic};
use serde::Deserialize;

use crate::console::{
    Listener, Session, api_error, api_refused, csrf_refused, flat, forbidden, header_csrf_ok, html,
    json_body, language, private, refused_page, same_secret,
};
use crate::console_dialplan_page::{self as page, DiffView, HistoryLine, Outcome, PlanView};
use crate::dialplan_edit::{self, EditError, PlanFile};
use crate::dialplan_files::{ReloadReport, ReloadRequest};
use crate::join_page::Language;
use crate::shared::Shared;

/// The largest draft of one file taken (the shipped plan with its comments is ~20 KiB).
const MAX_FILE_BYTES: usize = 256 * 1024;
/// The most files one request may change.
const MAX_FILES: usize = 64;

/// One change of the dialplan directory at a time: two admins applying at once would
/// otherwise each check a plan that the other's write makes stale.
static EDITS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) fn routes() -> Router<Listener> {
    Router::new()
        .route("/console/dialplan", get(plan_page).post(edit_form))
        .route("/console/dialplan/explain", get(explain_page))
        .route("/console/dialplan/history", get(history_page))
        .route("/console/dialplan/diff", get(diff_page))
        .route("/console/dialplan/rollback", post(rollback_form))
        .route("/console/assets/dialplan.css", get(stylesheet))
        .route("/api/dialplan", get(api_plan))
        .route("/api/dialplan/check", post(api_check))
        .route("/api/dialplan/apply", post(api_apply))
        .route("/api/dialplan/history", get(api_history))
        .route("/api/dialplan/versions/{version}", get(api_version))
        .route("/api/dialplan/diff", get(api_diff))
        .route("/api/dialplan/rollback", post(api_rollback))
        .route("/api/dialplan/explain", get(api_explain))
}

/// Why a check, apply or rollback did not happen (or did not take effect).
enum EditFailure {
    /// A path that names no dialplan file, or a draft too large.
    BadRequest(String),
    /// The plan has errors; nothing was written.
    Refused(Vec<Diagnostic>),
    /// No such version in the history.
    UnknownVersion(u32),
    /// There is no dialplan directory to edit (the server runs the built-in plan).
    NotEditable(String),
    /// The files were written but the server did not take them (its report says why).
    NotLive(ReloadReport),
    /// The file system, the store or the reloader failed.
    Failed(String),
}

impl EditFailure {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnknownVersion(_) => StatusCode::NOT_FOUND,
            Self::NotEditable(_) => StatusCode::CONFLICT,
            Self::NotLive(_) | Self::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::BadRequest(message) | Self::NotEditable(message) | Self::Failed(message) => {
                message.clone()
            }
            Self::Refused(diagnostics) => format!(
                "the plan has {} error(s); nothing was written",
                diagnostics
                    .iter()
                    .filter(|d| d.severity == dialplan::Severity::Error)
                    .count()
            ),
            Self::UnknownVersion(version) => format!("there is no dialplan version {version}"),
            Self::NotLive(report) => format!(
                "the files were written, but the server refused them and keeps version {}: {}",
                report.version,
                report.diagnostics.join("; ")
            ),
        }
    }

    fn into_api(self) -> Response {
        match self {
            Self::Refused(diagnostics) => json_answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::json!({
                    "ok": false,
                    "error": "refused",
                    "diagnostics": diagnostics_json(&diagnostics),
                }),
            ),
            other => {
                let code = match &other {
                    Self::BadRequest(_) => "bad_request",
                    Self::UnknownVersion(_) => "unknown_version",
                    Self::NotEditable(_) => "not_editable",
                    Self::NotLive(_) => "not_live",
                    _ => "failed",
                };
                api_error(other.status(), code, other.message())
            }
        }
    }
}

impl From<EditError> for EditFailure {
    fn from(err: EditError) -> Self {
        match err {
            EditError::BadPath { .. } => Self::BadRequest(err.to_string()),
            EditError::Io { .. } => Self::Failed(err.to_string()),
        }
    }
}

fn json_answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    private(response.headers_mut());
    response
}

fn diagnostics_json(diagnostics: &[Diagnostic]) -> serde_json::Value {
    diagnostics
        .iter()
        .map(|d| {
            serde_json::json!({
                "file": d.file,
                "line": d.line,
                "column": d.column,
                "severity": d.severity.to_string(),
                "message": d.message,
                "help": d.help,
            })
        })
        .collect()
}

/// The admin's session for an API request: 401 signed out, 403 for staff.
async fn api_admin(listener: &Listener, headers: &HeaderMap) -> Result<Session, Response> {
    let session = listener.session(headers).await.map_err(api_refused)?;
    if !session.admin() {
        return Err(forbidden());
    }
    Ok(session)
}

/// The admin's session for a page: the sign-in when signed out, a 403 page for staff.
async fn page_admin(
    listener: &Listener,
    headers: &HeaderMap,
    language: Language,
) -> Result<Session, Response> {
    let session = listener
        .session(headers)
        .await
        .map_err(|refusal| refused_page(refusal, language))?;
    if !session.admin() {
        return Err(html(
            StatusCode::FORBIDDEN,
            page::admins_only(language, &session.viewer()),
        ));
    }
    Ok(session)
}

/// The drafts with their paths as the history spells them, or why they are refused.
fn checked_drafts(
    drafts: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, EditFailure> {
    if drafts.is_empty() || drafts.len() > MAX_FILES {
        return Err(EditFailure::BadRequest(format!(
            "send 1 to {MAX_FILES} files"
        )));
    }
    let mut checked = BTreeMap::new();
    for (path, text) in drafts {
        let path = dialplan_edit::plan_path(&path)?;
        if text.len() > MAX_FILE_BYTES {
            return Err(EditFailure::BadRequest(format!(
                "{path} is larger than {} KiB",
                MAX_FILE_BYTES / 1024
            )));
        }
        checked.insert(path, text);
    }
    Ok(checked)
}

/// The directory to edit, unless the server runs without one.
fn editable_dir(shared: &Shared) -> Result<std::path::PathBuf, EditFailure> {
    let dir = shared.config.dialplans.clone();
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(EditFailure::NotEditable(format!(
            "the dialplan directory {} does not exist; the server runs the built-in plan \
             (make the directory and restart to edit it here)",
            dir.display()
        )))
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EditFailure> + Send + 'static,
) -> Result<T, EditFailure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| EditFailure::Failed(format!("the file work stopped: {err}")))?
}

fn unreadable(diagnostics: Vec<Diagnostic>) -> EditFailure {
    EditFailure::Failed(
        diagnostics
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// Checks `drafts` as the whole plan in the directory would be with them in place; nothing
/// is written. The diagnostics hold errors and warnings; `Ok` says whether it is clean.
async fn check_drafts(
    shared: &Arc<Shared>,
    drafts: BTreeMap<String, String>,
) -> Result<(bool, Vec<Diagnostic>), EditFailure> {
    let drafts = checked_drafts(drafts)?;
    let dir = editable_dir(shared)?;
    let shared = shared.clone();
    blocking(move || {
        let current = dialplan_edit::current_files(&dir).map_err(unreadable)?;
        let files = dialplan_edit::with_drafts(current, &drafts);
        let checked = dialplan_edit::check(&files, Some(&shared.sounds));
        Ok((checked.ok(), checked.diagnostics))
    })
    .await
}

/// What an apply or rollback did.
struct Applied {
    /// The version live now.
    version: u32,
    /// Warnings of the plan.
    warnings: Vec<Diagnostic>,
    /// The files written.
    files: Vec<String>,
}

/// Records `files` (the whole new plan) as a version with `comment`, renames the staged
/// files into place and has the server load them, waiting for its report.
async fn record_write_reload(
    listener: &Listener,
    files: Vec<PlanFile>,
    staged: dialplan_edit::StagedPlan,
    comment: String,
) -> Result<u32, EditFailure> {
    let shared = &listener.console.shared;
    let now = jiff::Timestamp::now().as_millisecond();
    let recorded = flat(
        shared
            .store
            .run(move |store| store.dialplan_version_add(&files, &comment, now))
            .await,
    )
    .map_err(|err| {
        EditFailure::Failed(format!(
            "the history cannot be written, nothing changed: {err}"
        ))
    })?;
    blocking(move || staged.commit().map_err(EditFailure::from))
        .await
        .map_err(|err| {
            EditFailure::Failed(format!(
                "version {recorded} is in the history, but the files were not all written: {}",
                err.message()
            ))
        })?;
    let (reply, report) = tokio::sync::oneshot::channel();
    let request = ReloadRequest {
        trigger: "console",
        reply,
    };
    let unanswered = || {
        EditFailure::Failed(format!(
            "version {recorded} is written, but the server's reloader does not answer"
        ))
    };
    listener
        .console
        .dialplan_reloads
        .send(request)
        .await
        .map_err(|_| unanswered())?;
    let report = report.await.map_err(|_| unanswered())?;
    if !report.accepted {
        return Err(EditFailure::NotLive(report));
    }
    Ok(report.version)
}

/// Checks `drafts` with the rest of the plan and, when clean, writes them and makes them
/// live; audited as `dialplan.apply`.
async fn apply_drafts(
    listener: &Listener,
    session: &Session,
    peer: SocketAddr,
    drafts: BTreeMap<String, String>,
) -> Result<Applied, EditFailure> {
    let drafts = checked_drafts(drafts)?;
    let written: Vec<String> = drafts.keys().cloned().collect();
    let shared = listener.console.shared.clone();
    let dir = editable_dir(&shared)?;
    let _edit = EDITS.lock().await;
    let (files, staged, warnings, created) = blocking(move || {
        let current = dialplan_edit::current_files(&dir).map_err(unreadable)?;
        let created: Vec<String> = dialplan_edit::new_paths(&current, &drafts)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let files = dialplan_edit::with_drafts(current, &drafts);
        let checked = dialplan_edit::check(&files, Some(&shared.sounds));
        if !checked.ok() {
            return Err(EditFailure::Refused(checked.diagnostics));
        }
        let changed: Vec<PlanFile> = drafts.into_iter().collect();
        let staged = dialplan_edit::StagedPlan::stage(&dir, &changed, false)?;
        Ok((files, staged, checked.diagnostics, created))
    })
    .await?;
    let comment = format!("console: {}", session.account.name);
    let version = record_write_reload(listener, files, staged, comment).await?;
    let created_note = if created.is_empty() {
        String::new()
    } else {
        format!(" (created {})", created.join(", "))
    };
    listener.audit(
        session,
        peer.ip(),
        "dialplan.apply",
        format!("version {version}: {}{created_note}", written.join(", ")),
    );
    Ok(Applied {
        version,
        warnings,
        files: written,
    })
}

/// Writes stored `version` back as the whole plan and makes it live; audited as
/// `dialplan.rollback`.
async fn rollback_to(
    listener: &Listener,
    session: &Session,
    peer: SocketAddr,
    version: u32,
) -> Result<Applied, EditFailure> {
    let shared = listener.console.shared.clone();
    let dir = editable_dir(&shared)?;
    let _edit = EDITS.lock().await;
    let stored = flat(
        shared
            .store
            .run(move |store| store.dialplan_version_files(version))
            .await,
    )
    .map_err(EditFailure::Failed)?
    .ok_or(EditFailure::UnknownVersion(version))?;
    dialplan_edit::restorable(version, &stored)
        .map_err(|err| EditFailure::Failed(format!("{err:#}")))?;
    let (files, staged, warnings) = blocking(move || {
        let checked = dialplan_edit::check(&stored, Some(&shared.sounds));
        if !checked.ok() {
            return Err(EditFailure::Refused(checked.diagnostics));
        }
        let staged = dialplan_edit::StagedPlan::stage(&dir, &stored, true)?;
        Ok((stored, staged, checked.diagnostics))
    })
    .await?;
    let written: Vec<String> = files.iter().map(|(path, _)| path.clone()).collect();
    let comment = format!("console: {} rolled back to {version}", session.account.name);
    let live = record_write_reload(listener, files, staged, comment).await?;
    listener.audit(
        session,
        peer.ip(),
        "dialplan.rollback",
        format!(
            "version {version} written back as version {live}: {}",
            written.join(", ")
        ),
    );
    Ok(Applied {
        version: live,
        warnings,
        files: written,
    })
}

/// The plan on disk and the one in force.
struct Overview {
    live_version: u32,
    refused: Option<String>,
    directory: String,
    files: Result<Vec<PlanFile>, String>,
}

async fn overview(shared: &Arc<Shared>) -> Overview {
    let dir = shared.config.dialplans.clone();
    let files = match editable_dir(shared) {
        Ok(dir) => blocking(move || dialplan_edit::current_files(&dir).map_err(unreadable))
            .await
            .map_err(|err| err.message()),
        Err(err) => Err(err.message()),
    };
    Overview {
        live_version: shared.plan.version(),
        refused: shared.plan.refused().map(|r| r.to_string()),
        directory: dir.display().to_string(),
        files,
    }
}

async fn render_plan(
    listener: &Listener,
    session: &Session,
    language: Language,
    status: StatusCode,
    outcome: Outcome<'_>,
    explained: Option<(&ExplainQuery, Result<String, String>)>,
) -> Response {
    let overview = overview(&listener.console.shared).await;
    let view = PlanView {
        live_version: overview.live_version,
        refused: overview.refused.as_deref(),
        directory: &overview.directory,
        files: overview.files.as_deref().map_err(String::as_str),
    };
    let explain = explained.as_ref().map(|(query, result)| page::ExplainView {
        to: &query.to,
        from: query.from.as_deref().unwrap_or(""),
        at: query.at.as_deref().unwrap_or(""),
        result: result.as_deref().map_err(String::as_str),
    });
    html(
        status,
        page::plan(
            language,
            &session.viewer(),
            &view,
            &outcome,
            explain.as_ref(),
        ),
    )
}

/// `GET /console/dialplan`: the files with their edit forms, the live version, explain.
async fn plan_page(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    let language = language(&headers);
    let session = match page_admin(&listener, &headers, language).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    render_plan(
        &listener,
        &session,
        language,
        StatusCode::OK,
        Outcome::None,
        None,
    )
    .await
}

#[derive(Deserialize)]
struct EditFormRequest {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    text: String,
    /// `check` or `apply`.
    #[serde(default)]
    action: String,
}

/// `POST /console/dialplan`: a file's draft, checked (`action=check`) or applied.
async fn edit_form(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(request): Form<EditFormRequest>,
) -> Response {
    let language = language(&headers);
    let session = match page_admin(&listener, &headers, language).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if !same_secret(&request.csrf, &session.csrf_token) {
        return csrf_refused();
    }
    // Browsers send a textarea's line ends as CRLF; the files keep the admin's LF.
    let text = request.text.replace("\r\n", "\n");
    let drafts = BTreeMap::from([(request.path.clone(), text.clone())]);
    let path = dialplan_edit::plan_path(&request.path).unwrap_or(request.path.clone());
    let shared = listener.console.shared.clone();
    let (status, outcome) = if request.action == "apply" {
        match apply_drafts(&listener, &session, peer, drafts).await {
            Ok(applied) => (
                StatusCode::OK,
                OutcomeOwned::Applied {
                    version: applied.version,
                    path,
                    warnings: applied.warnings,
                },
            ),
            Err(EditFailure::Refused(diagnostics)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                OutcomeOwned::Draft {
                    path,
                    draft: text,
                    diagnostics,
                    applying: true,
                },
            ),
            Err(failure) => (
                failure.status(),
                OutcomeOwned::Failed {
                    path,
                    draft: text,
                    message: failure.message(),
                },
            ),
        }
    } else {
        match check_drafts(&shared, drafts).await {
            Ok((_, diagnostics)) => (
                StatusCode::OK,
                OutcomeOwned::Draft {
                    path,
                    draft: text,
                    diagnostics,
                    applying: false,
                },
            ),
            Err(failure) => (
                failure.status(),
                OutcomeOwned::Failed {
                    path,
                    draft: text,
                    message: failure.message(),
                },
            ),
        }
    };
    render_plan(
        &listener,
        &session,
        language,
        status,
        outcome.borrowed(),
        None,
    )
    .await
}

/// An outcome owning its texts, lent to the page.
enum OutcomeOwned {
    Draft {
        path: String,
        draft: String,
        diagnostics: Vec<Diagnostic>,
        applying: bool,
    },
    Applied {
        version: u32,
        path: String,
        warnings: Vec<Diagnostic>,
    },
    Failed {
        path: String,
        draft: String,
        message: String,
    },
}

impl OutcomeOwned {
    fn borrowed(&self) -> Outcome<'_> {
        match self {
            Self::Draft {
                path,
                draft,
                diagnostics,
                applying,
            } => Outcome::Draft {
                path,
                draft,
                diagnostics,
                applying: *applying,
            },
            Self::Applied {
                version,
                path,
                warnings,
            } => Outcome::Applied {
                version: *version,
                path,
                warnings,
            },
            Self::Failed {
                path,
                draft,
                message,
            } => Outcome::Failed {
                path,
                draft,
                message,
            },
        }
    }
}

#[derive(Deserialize)]
struct ExplainQuery {
    #[serde(default)]
    to: String,
    from: Option<String>,
    /// Local time `YYYY-MM-DD HH:MM` in the plan's time zone; now when left out.
    at: Option<String>,
}

/// How the live plan routes a call, as `amtsleitung dialplan explain` says it.
async fn explain(shared: &Arc<Shared>, query: &ExplainQuery) -> Result<String, String> {
    let to = query.to.trim();
    if to.is_empty() || to.len() > 64 {
        return Err("give the dialled number (1 to 64 characters)".into());
    }
    let plan = shared.plan.current();
    let at = match query.at.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None => jiff::Timestamp::now(),
        Some(text) => plan.parse_local_time(text).map_err(|err| err.to_string())?,
    };
    let facts = CallFacts {
        to: to.to_owned(),
        from: query
            .from
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned),
        trunk: None,
        source_ip: None,
        at,
    };
    flat(
        shared
            .store
            .run(move |store| {
                Ok::<_, store::StoreError>(dialplan_edit::explain_call(&plan, &facts, Some(store)))
            })
            .await,
    )
}

/// `GET /console/dialplan/explain?to=&from=&at=`: the plan page with the explanation.
async fn explain_page(
    State(listener): State<Listener>,
    headers: HeaderMap,
    Query(query): Query<ExplainQuery>,
) -> Response {
    let language = language(&headers);
    let session = match page_admin(&listener, &headers, language).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let result = explain(&listener.console.shared, &query).await;
    let status = if result.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render_plan(
        &listener,
        &session,
        language,
        status,
        Outcome::None,
        Some((&query, result)),
    )
    .await
}

/// The history, newest first, with each version's file paths.
async fn history(
    shared: &Arc<Shared>,
) -> Result<Vec<(store::DialplanVersion, Vec<String>)>, String> {
    flat(
        shared
            .store
            .run(|store| -> Result<Vec<_>, store::StoreError> {
                let versions = store.dialplan_versions()?;
                let mut paths = store.dialplan_version_paths()?;
                Ok(versions
                    .into_iter()
                    .map(|v| {
                        let files = paths.remove(&v.version).unwrap_or_default();
                        (v, files)
                    })
                    .collect())
            })
            .await,
    )
}

async fn render_history(
    listener: &Listener,
    session: &Session,
    language: Language,
    status: StatusCode,
    notice: page::HistoryNotice<'_>,
) -> Response {
    let shared = &listener.console.shared;
    let live = shared.plan.version();
    match history(shared).await {
        Ok(versions) => {
            let lines: Vec<HistoryLine<'_>> = versions
                .iter()
                .map(|(v, files)| HistoryLine {
                    version: v.version,
                    at: dialplan_edit::version_time(v.created_at_ms),
                    comment: &v.comment,
                    files,
                })
                .collect();
            html(
                status,
                page::history(language, &session.viewer(), live, &lines, notice),
            )
        }
        Err(err) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            page::history(
                language,
                &session.viewer(),
                live,
                &[],
                page::HistoryNotice::Error(&err),
            ),
        ),
    }
}

/// `GET /console/dialplan/history`: every version, diffs, rollback buttons.
async fn history_page(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    let language = language(&headers);
    let session = match page_admin(&listener, &headers, language).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    render_history(
        &listener,
        &session,
        language,
        StatusCode::OK,
        page::HistoryNotice::None,
    )
    .await
}

#[derive(Deserialize)]
struct RollbackFormRequest {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: String,
}

/// `POST /console/dialplan/rollback` (the history's buttons).
async fn rollback_form(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(request): Form<RollbackFormRequest>,
) -> Response {
    let language = language(&headers);
    let session = match page_admin(&listener, &headers, language).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if !same_secret(&request.csrf, &session.csrf_token) {
        return csrf_refused();
    }
    let Ok(version) = request.version.trim().parse::<u32>() else {
        let message = format!("{:?} is no version number", request.version);
        return render_history(
            &listener,
            &session,
            language,
            StatusCode::BAD_REQUEST,
            page::HistoryNotice::Error(&message),
        )
        .await;
    };
    match rollback_to(&listener, &session, peer, version).await {
        Ok(applied) => {
            render_history(
                &listener,
                &session,
                language,
                StatusCode::OK,
                page::HistoryNotice::RolledBack {
                    to: version,
                    live: applied.version,
                },
            )
            .await
        }
        Err(failure) => {
            let message = match &failure {
                EditFailure::Refused(diagnostics) => format!(
                    "{}: {}",
                    failure.message(),
                    diagnostics
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                other => other.message(),
            };
            render_history(
                &listener,
                &session,
                language,
                failure.status(),
                page::HistoryNotice::Error(&message),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

/// Versions `from` (default: the one before `to`) and `to` (default: the live one) and the
/// files that differ.
async fn diff(
    shared: &Arc<Shared>,
    query: &DiffQuery,
) -> Result<(u32, u32, Vec<dialplan_edit::FileDiff>), EditFailure> {
    let number = |text: &Option<String>, name: &str| -> Result<Option<u32>, EditFailure> {
        match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(t) => t
                .parse()
                .map(Some)
                .map_err(|_| EditFailure::BadRequest(format!("{name}={t:?} is no version number"))),
        }
    };
    let to = number(&query.to, "to")?.unwrap_or_else(|| shared.plan.version());
    let from = number(&query.from, "from")?.unwrap_or(to.saturating_sub(1));
    let (old, new) = flat(
        shared
            .store
            .run(move |store| -> Result<_, store::StoreError> {
                Ok((
                    store.dialplan_version_files(from)?,
                    store.dialplan_version_files(to)?,
                ))
            })
            .await,
    )
    .map_err(EditFailure::Failed)?;
    let old = old.ok_or(EditFailure::UnknownVersion(from))?;
    let new = new.ok_or(EditFailure::UnknownVersion(to))?;
    Ok((from, to, dialplan_edit::version_diff(from, &old, to, &new)))
}

/// `GET /console/dialplan/diff?from=N&to=M`.
async fn diff_page(
    State(listener): State<Listener>,
    headers: HeaderMap,
    Query(query): Query<DiffQuery>,
) -> Response {
    let language = language(&headers);
    let session = match page_admin(&listener, &headers, language).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match diff(&listener.console.shared, &query).await {
        Ok((from, to, files)) => html(
            StatusCode::OK,
            page::diff(
                language,
                &session.viewer(),
                &DiffView {
                    from,
                    to,
                    files: &files,
                },
            ),
        ),
        Err(failure) => html(
            failure.status(),
            page::diff_failed(language, &session.viewer(), &failure.message()),
        ),
    }
}

async fn stylesheet() -> Response {
    let mut response = page::STYLESHEET.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    response
}

/// `GET /api/dialplan`: the directory's files, the live version, a refusal of the files on
/// disk if there is one.
async fn api_plan(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    if let Err(response) = api_admin(&listener, &headers).await {
        return response;
    }
    let overview = overview(&listener.console.shared).await;
    let files = match &overview.files {
        Ok(files) => files
            .iter()
            .map(|(path, text)| serde_json::json!({ "path": path, "text": text }))
            .collect(),
        Err(_) => Vec::new(),
    };
    json_answer(
        StatusCode::OK,
        serde_json::json!({
            "directory": overview.directory,
            "live_version": overview.live_version,
            "refused": overview.refused,
            "files": files,
            "error": overview.files.err(),
        }),
    )
}

#[derive(Deserialize)]
struct DraftsRequest {
    files: BTreeMap<String, String>,
}

/// An admin's JSON request that changes something: session, role, CSRF header, body.
async fn api_change<T: serde::de::DeserializeOwned>(
    listener: &Listener,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Session, T), Response> {
    let session = api_admin(listener, headers).await?;
    if !header_csrf_ok(headers, &session) {
        return Err(csrf_refused());
    }
    Ok((session, json_body(body)?))
}

/// `POST /api/dialplan/check` with `{"files": {"path": "text"}}`: nothing is written.
async fn api_check(
    State(listener): State<Listener>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request: DraftsRequest = match api_change(&listener, &headers, &body).await {
        Ok((_, request)) => request,
        Err(response) => return response,
    };
    match check_drafts(&listener.console.shared, request.files).await {
        Ok((ok, diagnostics)) => json_answer(
            StatusCode::OK,
            serde_json::json!({ "ok": ok, "diagnostics": diagnostics_json(&diagnostics) }),
        ),
        Err(failure) => failure.into_api(),
    }
}

fn applied_json(applied: &Applied) -> serde_json::Value {
    serde_json::json!({
        "ok": true,
        "version": applied.version,
        "files": applied.files,
        "diagnostics": diagnostics_json(&applied.warnings),
    })
}

/// `POST /api/dialplan/apply` with `{"files": {"path": "text"}}`: 200 with the live version,
/// 422 with the diagnostics (nothing written).
async fn api_apply(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (session, request): (Session, DraftsRequest) =
        match api_change(&listener, &headers, &body).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    match apply_drafts(&listener, &session, peer, request.files).await {
        Ok(applied) => json_answer(StatusCode::OK, applied_json(&applied)),
        Err(failure) => failure.into_api(),
    }
}

#[derive(Deserialize)]
struct RollbackRequest {
    version: u32,
}

/// `POST /api/dialplan/rollback` with `{"version": n}`.
async fn api_rollback(
    State(listener): State<Listener>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (session, request): (Session, RollbackRequest) =
        match api_change(&listener, &headers, &body).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    match rollback_to(&listener, &session, peer, request.version).await {
        Ok(applied) => {
            let mut body = applied_json(&applied);
            body["rolled_back_to"] = request.version.into();
            json_answer(StatusCode::OK, body)
        }
        Err(failure) => failure.into_api(),
    }
}

/// `GET /api/dialplan/history`: every version, newest first.
async fn api_history(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    if let Err(response) = api_admin(&listener, &headers).await {
        return response;
    }
    let shared = &listener.console.shared;
    match history(shared).await {
        Ok(versions) => {
            let versions: Vec<serde_json::Value> = versions
                .iter()
                .map(|(v, files)| {
                    serde_json::json!({
                        "version": v.version,
                        "created_at_ms": v.created_at_ms,
                        "at": dialplan_edit::version_time(v.created_at_ms),
                        "comment": v.comment,
                        "files": files,
                    })
                })
                .collect();
            json_answer(
                StatusCode::OK,
                serde_json::json!({
                    "live_version": shared.plan.version(),
                    "versions": versions,
                }),
            )
        }
        Err(err) => api_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", err),
    }
}

/// `GET /api/dialplan/versions/{n}`: a stored version's files.
async fn api_version(
    State(listener): State<Listener>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = api_admin(&listener, &headers).await {
        return response;
    }
    let Ok(version) = version.parse::<u32>() else {
        return api_error(StatusCode::BAD_REQUEST, "bad_request", "no version number");
    };
    let found = listener
        .console
        .shared
        .store
        .run(move |store| store.dialplan_version_files(version))
        .await;
    match flat(found) {
        Ok(Some(files)) => {
            let files: BTreeMap<String, String> = files.into_iter().collect();
            json_answer(
                StatusCode::OK,
                serde_json::json!({ "version": version, "files": files }),
            )
        }
        Ok(None) => EditFailure::UnknownVersion(version).into_api(),
        Err(err) => api_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", err),
    }
}

/// `GET /api/dialplan/diff?from=N&to=M`: a unified diff per changed file.
async fn api_diff(
    State(listener): State<Listener>,
    headers: HeaderMap,
    Query(query): Query<DiffQuery>,
) -> Response {
    if let Err(response) = api_admin(&listener, &headers).await {
        return response;
    }
    match diff(&listener.console.shared, &query).await {
        Ok((from, to, files)) => json_answer(
            StatusCode::OK,
            serde_json::json!({ "from": from, "to": to, "files": files }),
        ),
        Err(failure) => failure.into_api(),
    }
}

/// `GET /api/dialplan/explain?to=&from=&at=`: how the live plan routes that call.
async fn api_explain(
    State(listener): State<Listener>,
    headers: HeaderMap,
    Query(query): Query<ExplainQuery>,
) -> Response {
    if let Err(response) = api_admin(&listener, &headers).await {
        return response;
    }
    let shared = &listener.console.shared;
    match explain(shared, &query).await {
        Ok(text) => json_answer(
            StatusCode::OK,
            serde_json::json!({
                "version": shared.plan.version(),
                "explanation": text,
            }),
        ),
        Err(err) => api_error(StatusCode::UNPROCESSABLE_ENTITY, "refused", err),
    }
}
