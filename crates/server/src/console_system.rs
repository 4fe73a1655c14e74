//! The console's system page for admins: whether the server is healthy (store, dialplan),
//! what runs now (calls, rooms, registered phones) and the trunks' state, from the same
//! sources as `/health`, `/rooms` and `/trunks` on the admin listener.

use std::fmt::Write;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;

use crate::console::{
    Listener, api_refused, flat, forbidden, html, json_answer, language, now_ms, refused_page,
};
use crate::console_page::{escape, page_behind_sign_in};
use crate::join_page::Language;

pub(crate) fn routes() -> Router<Listener> {
    Router::new()
        .route("/console/system", get(system_page))
        .route("/api/system", get(api_system))
}

/// When the process started (the first use of this module counts: the console is built at
/// start).
static STARTED: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Notes the start time; called when the console is built.
pub(crate) fn note_start() {
    std::sync::LazyLock::force(&STARTED);
}

#[derive(Serialize)]
struct RoomNow {
    number: String,
    members: usize,
    locked: bool,
}

#[derive(Serialize)]
struct System {
    healthy: bool,
    problems: Vec<String>,
    version: &'static str,
    uptime_s: u64,
    dialplan_version: u32,
    calls: usize,
    rooms: Vec<RoomNow>,
    registered_phones: usize,
    trunks: Vec<crate::trunk_service::TrunkStatus>,
}

async fn system(listener: &Listener) -> System {
    let shared = &listener.console.shared;
    let mut problems = Vec::new();
    let now = now_ms();
    let checked = shared
        .store
        .run(move |store| {
            store.check_health()?;
            store.registrations_unexpired(now).map(|b| b.len())
        })
        .await;
    let registered_phones = match flat(checked) {
        Ok(count) => count,
        Err(err) => {
            problems.push(format!("the store fails: {err}"));
            0
        }
    };
    if let Some(error) = shared.plan.refused() {
        problems.push(format!(
            "the dialplan on disk is refused, calls are routed by version {}: {error}",
            shared.plan.version()
        ));
    }
    let trunks = shared.trunks.current().status(Instant::now());
    for trunk in &trunks {
        if trunk.state == "failed" || trunk.reachable == Some(false) {
            problems.push(format!(
                "trunk {} is {}{}",
                trunk.name,
                if trunk.reachable == Some(false) {
                    "unreachable"
                } else {
                    trunk.state
                },
                trunk
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    System {
        healthy: problems.is_empty(),
        problems,
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: STARTED.elapsed().as_secs(),
        dialplan_version: shared.plan.version(),
        calls: crate::runtime::calls_now(),
        rooms: shared
            .conferences
            .summary()
            .into_iter()
            .map(|(number, members, locked)| RoomNow {
                number,
                members,
                locked,
            })
            .collect(),
        registered_phones,
        trunks,
    }
}

/// `GET /api/system` (admins).
async fn api_system(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return api_refused(refusal),
    };
    if !session.admin() {
        return forbidden();
    }
    json_answer(system(&listener).await)
}

struct Words {
    heading: &'static str,
    healthy: &'static str,
    unhealthy: &'static str,
    version: &'static str,
    uptime: &'static str,
    dialplan: &'static str,
    calls: &'static str,
    phones: &'static str,
    rooms: &'static str,
    room: &'static str,
    members: &'static str,
    locked: &'static str,
    no_rooms: &'static str,
    trunks: &'static str,
    trunk: &'static str,
    state: &'static str,
    reachable: &'static str,
    no_trunks: &'static str,
    yes: &'static str,
    no: &'static str,
}

const GERMAN: Words = Words {
    heading: "System",
    healthy: "Alles in Ordnung.",
    unhealthy: "Probleme:",
    version: "Version",
    uptime: "Läuft seit",
    dialplan: "Wählplan-Version",
    calls: "Gespräche jetzt",
    phones: "Angemeldete Telefone",
    rooms: "Offene Konferenzräume",
    room: "Raum",
    members: "Teilnehmende",
    locked: "Abgeschlossen",
    no_rooms: "Kein Raum ist offen.",
    trunks: "Amtsleitungen (SIP-Trunks)",
    trunk: "Leitung",
    state: "Zustand",
    reachable: "Erreichbar",
    no_trunks: "Keine Leitungen eingerichtet.",
    yes: "ja",
    no: "nein",
};

const ENGLISH: Words = Words {
    heading: "System",
    healthy: "All is well.",
    unhealthy: "Problems:",
    version: "Version",
    uptime: "Running for",
    dialplan: "Dialplan version",
    calls: "Calls now",
    phones: "Registered phones",
    rooms: "Open conference rooms",
    room: "Room",
    members: "Participants",
    locked: "Locked",
    no_rooms: "No room is open.",
    trunks: "Trunks",
    trunk: "Trunk",
    state: "State",
    reachable: "Reachable",
    no_trunks: "No trunks configured.",
    yes: "yes",
    no: "no",
};

fn duration(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    if days > 0 {
        format!("{days} d {hours} h")
    } else if hours > 0 {
        format!("{hours} h {minutes} min")
    } else {
        format!("{minutes} min {} s", seconds % 60)
    }
}

async fn system_page(State(listener): State<Listener>, headers: HeaderMap) -> Response {
    let language = language(&headers);
    let session = match listener.session(&headers).await {
        Ok(session) => session,
        Err(refusal) => return refused_page(refusal, language),
    };
    if !session.admin() {
        return forbidden();
    }
    let w = match language {
        Language::German => &GERMAN,
        Language::English => &ENGLISH,
    };
    let now = system(&listener).await;
    let mut main = String::new();
    if now.healthy {
        let _ = writeln!(
            main,
            "<p class=\"notice\" role=\"status\">{}</p>",
            escape(w.healthy)
        );
    } else {
        let _ = writeln!(
            main,
            "<div class=\"error\" role=\"alert\"><p>{}</p><ul>",
            escape(w.unhealthy)
        );
        for problem in &now.problems {
            let _ = writeln!(main, "<li>{}</li>", escape(problem));
        }
        main.push_str("</ul></div>\n");
    }
    let _ = writeln!(
        main,
        "<dl>\n<dt>{}</dt><dd>{}</dd>\n<dt>{}</dt><dd>{}</dd>\n<dt>{}</dt><dd>{}</dd>\n\
         <dt>{}</dt><dd id=\"calls-now\">{}</dd>\n<dt>{}</dt><dd id=\"phones-now\">{}</dd>\n</dl>",
        escape(w.version),
        now.version,
        escape(w.uptime),
        duration(now.uptime_s),
        escape(w.dialplan),
        now.dialplan_version,
        escape(w.calls),
        now.calls,
        escape(w.phones),
        now.registered_phones,
    );
    let _ = writeln!(main, "<h2>{}</h2>", escape(w.rooms));
    if now.rooms.is_empty() {
        let _ = writeln!(main, "<p>{}</p>", escape(w.no_rooms));
    } else {
        let _ = writeln!(
            main,
            "<table>\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead>\n<tbody>",
            escape(w.room),
            escape(w.members),
            escape(w.locked)
        );
        for room in &now.rooms {
            let _ = writeln!(
                main,
                "<tr><th scope=\"row\"><a href=\"/console/rooms/{n}\">{n}</a></th><td>{}</td><td>{}</td></tr>",
                room.members,
                escape(if room.locked { w.yes } else { w.no }),
                n = escape(&room.number),
            );
        }
        main.push_str("</tbody>\n</table>\n");
    }
    let _ = writeln!(main, "<h2>{}</h2>", escape(w.trunks));
    if now.trunks.is_empty() {
        let _ = writeln!(main, "<p>{}</p>", escape(w.no_trunks));
    } else {
        let _ = writeln!(
            main,
            "<table>\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead>\n<tbody>",
            escape(w.trunk),
            escape(w.state),
            escape(w.reachable)
        );
        for trunk in &now.trunks {
            let state = match &trunk.error {
                Some(error) => format!("{} ({error})", trunk.state),
                None => trunk.state.to_owned(),
            };
            let reachable = match trunk.reachable {
                Some(true) => w.yes,
                Some(false) => w.no,
                None => "–",
            };
            let _ = writeln!(
                main,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>",
                escape(&trunk.name),
                escape(&state),
                escape(reachable)
            );
        }
        main.push_str("</tbody>\n</table>\n");
    }
    html(
        StatusCode::OK,
        page_behind_sign_in(language, &session.viewer(), w.heading, &main),
    )
}
