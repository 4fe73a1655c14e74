//! The admin HTTP server: health, metrics, rooms, trunks, bans, dialplan reload, and WHIP/WHEP
//! for WebRTC clients (`whip_http`); the admin console later.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;

use crate::https_listener::HttpsListener;
use crate::registrar::SecurityRequest;
use crate::shared::Shared;
use crate::tls::ServerCertificate;

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    calls: Arc<AtomicUsize>,
    reload: ReloadRequests,
    security: tokio::sync::mpsc::Sender<SecurityRequest>,
}

/// Asks the reloader to re-read the dialplans; it answers with its report.
pub type ReloadRequests = tokio::sync::mpsc::Sender<crate::dialplan_files::ReloadRequest>;

/// Binds `listen` (and `https`, its address and certificate, when given) and serves in the
/// background: the whole admin API over plain HTTP, the routes for browsers and WebRTC
/// clients (and `/health`) over TLS.
pub async fn start(
    listen: SocketAddr,
    https: Option<(SocketAddr, Arc<ServerCertificate>)>,
    shared: Arc<Shared>,
    calls: Arc<AtomicUsize>,
    reload: ReloadRequests,
    security: tokio::sync::mpsc::Sender<SecurityRequest>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot bind admin HTTP {listen}: {err}"))?;
    let https = match https {
        Some((address, certificate)) => Some(HttpsListener::bind(address, certificate).await?),
        None => None,
    };
    // HTTPS is for browsers and meetings, so it is reached from outside: it serves what
    // they use, each part with its own guard (tokens, PINs). The admin routes have no
    // login of their own and stay on the plain listener (loopback by default).
    let public = Router::new()
        .route("/health", get(health))
        .merge(crate::whip_http::routes(shared.clone()))
        .merge(crate::join_http::routes(shared.clone()));
    // The console has its own sign-in, so it is served on both listeners; over HTTPS its
    // cookie is marked Secure.
    let console = crate::console::Console::new(shared.clone(), security.clone(), reload.clone());
    console.spawn_session_sweep();
    let state = AppState {
        shared,
        calls,
        reload,
        security,
    };
    let app = public
        .clone()
        .merge(console.routes(false))
        .route("/metrics", get(metrics))
        .route("/dialplan/reload", axum::routing::post(reload_dialplan))
        .route("/node/drain", axum::routing::post(drain))
        .route("/rooms", get(rooms))
        .route("/trunks", get(trunks))
        .route("/security/bans", get(bans))
        .route("/security/bans/{address}", axum::routing::delete(unban))
        .with_state(state.clone());
    if let Some(https) = https {
        tracing::info!(https = %https.address(), "admin HTTPS listening");
        let app = public.merge(console.routes(true)).with_state(state);
        tokio::spawn(async move {
            // Nagle off: responses are written in one go.
            let https = https.tap_io(|tls| {
                let _ = tls.get_ref().0.set_nodelay(true);
            });
            crate::http_serve::serve(https, app, "admin HTTPS").await;
        });
    }
    tokio::spawn(async move {
        // The peer's address picks the local address a WebRTC session's socket binds to.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        crate::http_serve::serve(listener, app, "admin HTTP").await;
    });
    Ok(())
}

/// `POST /node/drain`: no new calls from now on; the process exits when the calls and rooms
/// in progress have ended. Answers what is still running.
async fn drain(State(state): State<AppState>) -> impl IntoResponse {
    state.shared.draining.store(true, Ordering::Relaxed);
    let calls = state.calls.load(Ordering::Relaxed);
    let rooms = state.shared.conferences.summary().len();
    tracing::info!(
        calls,
        rooms,
        "draining: no new calls; stopping when these have ended"
    );
    axum::Json(serde_json::json!({ "draining": true, "calls": calls, "rooms": rooms }))
}

/// `POST /dialplan/reload`: 200 with the new version, or 422 with the errors (the old plan
/// stays in force).
async fn reload_dialplan(State(state): State<AppState>) -> axum::response::Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let request = crate::dialplan_files::ReloadRequest {
        trigger: "admin API",
        reply: tx,
    };
    if state.reload.send(request).await.is_err() {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match rx.await {
        Ok(report) => {
            let status = if report.accepted {
                axum::http::StatusCode::OK
            } else {
                axum::http::StatusCode::UNPROCESSABLE_ENTITY
            };
            (status, axum::Json(report)).into_response()
        }
        Err(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The bans in force, asked of the signalling task that owns them; `None` when it does not
/// answer (stopping). The admin API and the web console both ask through here.
pub(crate) async fn bans_in_force(
    security: &tokio::sync::mpsc::Sender<SecurityRequest>,
) -> Option<Vec<crate::security_cli::BanSummary>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    security.send(SecurityRequest::Bans(tx)).await.ok()?;
    rx.await.ok()
}

/// Lifts the ban on `address`: `Ok(Some(ban))` lifted, `Ok(None)` it was not banned, `Err`
/// the signalling task did not answer.
pub(crate) async fn lift_ban(
    security: &tokio::sync::mpsc::Sender<SecurityRequest>,
    address: std::net::IpAddr,
) -> Result<Option<crate::security_cli::BanSummary>, ()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    security
        .send(SecurityRequest::Unban(address, tx))
        .await
        .map_err(|_| ())?;
    rx.await.map_err(|_| ())
}

/// `GET /security/bans`: the source addresses banned now.
async fn bans(State(state): State<AppState>) -> axum::response::Response {
    match bans_in_force(&state.security).await {
        Some(bans) => axum::Json(bans).into_response(),
        None => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// `DELETE /security/bans/ADDR`: 200 with the ban lifted, 404 when the address was not
/// banned, 400 when it is no address.
async fn unban(
    State(state): State<AppState>,
    axum::extract::Path(address): axum::extract::Path<String>,
) -> axum::response::Response {
    let Ok(address) = address.parse::<std::net::IpAddr>() else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            format!("{address:?} is not an IP address"),
        )
            .into_response();
    };
    match lift_ban(&state.security, address).await {
        Ok(Some(ban)) => axum::Json(ban).into_response(),
        Ok(None) => (
            axum::http::StatusCode::NOT_FOUND,
            format!("{address} is not banned"),
        )
            .into_response(),
        Err(()) => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// `GET /rooms`: open conference rooms with their participant counts.
async fn rooms(State(state): State<AppState>) -> impl IntoResponse {
    let rooms: Vec<serde_json::Value> = state
        .shared
        .conferences
        .summary()
        .into_iter()
        .map(|(number, participants, locked)| {
            serde_json::json!({ "room": number, "participants": participants, "locked": locked })
        })
        .collect();
    axum::Json(rooms)
}

/// `GET /trunks`: every trunk with its registration state.
async fn trunks(State(state): State<AppState>) -> impl IntoResponse {
    axum::Json(
        state
            .shared
            .trunks
            .current()
            .status(std::time::Instant::now()),
    )
}

/// How long `/health` waits for the store (a locked database waits up to its busy timeout).
const STORE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// 200 `ok`, or 503 `degraded` with the reasons while something an admin must fix is
/// wrong but calls still run (a monitoring check then alerts instead of saying "ok").
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let mut reasons = Vec::new();
    let shared = state.shared.clone();
    let store_check = tokio::task::spawn_blocking(move || {
        shared.store.run_blocking(|store| store.check_health())
    });
    match tokio::time::timeout(STORE_CHECK_TIMEOUT, store_check).await {
        Ok(Ok(Ok(Ok(())))) => {}
        Ok(Ok(Ok(Err(err)))) => reasons.push(format!("the store fails: {err}")),
        Ok(Ok(Err(err))) => reasons.push(format!("the store fails: {err}")),
        Ok(Err(err)) => reasons.push(format!("the store check failed: {err}")),
        Err(_) => reasons.push(format!(
            "the store did not answer within {} s",
            STORE_CHECK_TIMEOUT.as_secs()
        )),
    }
    if state.shared.draining.load(Ordering::Relaxed) {
        reasons.push("draining (amtsleitung node drain): taking no new calls".to_owned());
    }
    if let Some(error) = state.shared.plan.refused() {
        reasons.push(format!(
            "the dialplan on disk is refused, calls are routed by version {}: {error}",
            state.shared.plan.version()
        ));
    }
    let status = if reasons.is_empty() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({
            "status": if reasons.is_empty() { "ok" } else { "degraded" },
            "reasons": reasons,
            "calls": state.calls.load(Ordering::Relaxed),
            "dialplan_version": state.shared.plan.version(),
            "version": env!("CARGO_PKG_VERSION"),
        })),
    )
}

/// Hands the figures kept outside the facade to it (the media workers' per-packet atomics,
/// and what is read off state now), then renders everything in Prometheus text.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    use crate::telemetry::{self as t, publish_counter};
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let media = state.shared.media.stats();
    for (name, value) in [
        (t::MEDIA_TICKS_TOTAL, &media.ticks),
        (t::MEDIA_LATE_TICKS_TOTAL, &media.late_ticks),
        (t::RTP_PACKETS_RECEIVED_TOTAL, &media.packets_in),
        (t::RTP_PACKETS_SENT_TOTAL, &media.packets_out),
        (t::RTP_PACKETS_REJECTED_TOTAL, &media.packets_rejected),
        (t::MEDIA_FRAMES_NOT_DECODED_TOTAL, &media.frames_not_decoded),
        (t::MIXER_FRAMES_FORWARDED_TOTAL, &media.frames_forwarded),
        (t::MIXER_ENCODES_TOTAL, &media.mixer_encodes),
        (t::RTP_PACKETS_RELAYED_TOTAL, &media.packets_relayed),
        (t::RTCP_PACKETS_SENT_TOTAL, &media.rtcp_sent),
        (t::RTCP_PACKETS_RECEIVED_TOTAL, &media.rtcp_received),
        (t::RTCP_PACKETS_REJECTED_TOTAL, &media.rtcp_rejected),
        (t::RTP_PACKETS_LOST_TOTAL, &media.legs_packets_lost),
        (t::RTP_PACKETS_EXPECTED_TOTAL, &media.legs_packets_expected),
        (
            t::RTCP_ROUND_TRIP_MICROSECONDS_TOTAL,
            &media.legs_round_trip_us,
        ),
        (t::RTCP_ROUND_TRIPS_TOTAL, &media.legs_with_round_trip),
        (t::MEDIA_TIMEOUTS_TOTAL, &media.media_timeouts),
        (t::WEBRTC_DATAGRAMS_SENT_TOTAL, &media.webrtc_datagrams_sent),
        (
            t::UDPTL_DATAGRAMS_RELAYED_TOTAL,
            &crate::udptl_relay::DATAGRAMS_RELAYED,
        ),
    ] {
        publish_counter(name, load(value));
    }
    t::set(t::CALLS, state.calls.load(Ordering::Relaxed));
    let trunks = state
        .shared
        .trunks
        .current()
        .status(std::time::Instant::now());
    t::set(
        t::TRUNKS_REGISTERED,
        crate::trunk_service::registered_count(&trunks),
    );
    t::set(
        t::TRUNKS_FAILED,
        trunks.iter().filter(|t| t.state == "failed").count(),
    );
    t::set(
        t::TRUNKS_UNREACHABLE,
        trunks.iter().filter(|t| t.reachable == Some(false)).count(),
    );
    let webrtc = state.shared.webrtc.counts();
    for (kind, open) in [
        ("whip", webrtc.whip),
        ("whep", webrtc.whep),
        ("page", webrtc.page),
    ] {
        metrics::gauge!(t::WEBRTC_SESSIONS, "kind" => kind).set(open as f64);
    }
    metrics::gauge!(t::COST_LAST_HOUR).set(
        state
            .shared
            .costs
            .spent_last_hour(std::time::Instant::now()),
    );

    let mut body = t::render();
    body.push_str(&media_tick_histogram(media));
    body.push_str(&state.shared.links.metrics());
    ([("content-type", "text/plain; version=0.0.4")], body)
}

/// The media tick histogram from the workers' fixed buckets of atomics.
fn media_tick_histogram(media: &crate::media_worker::MediaStats) -> String {
    let mut body = String::from(
        "# HELP amtsleitung_media_tick_seconds Work done in one media tick (receive, mix, send).\n# TYPE amtsleitung_media_tick_seconds histogram\n",
    );
    let mut cumulative = 0;
    for (bound, count) in crate::media_worker::TICK_BUCKETS_US
        .iter()
        .zip(&media.tick_buckets)
    {
        cumulative += count.load(Ordering::Relaxed);
        let le = if *bound == u64::MAX {
            "+Inf".to_string()
        } else {
            format!("{}", *bound as f64 / 1e6)
        };
        body.push_str(&format!(
            "amtsleitung_media_tick_seconds_bucket{{le=\"{le}\"}} {cumulative}\n"
        ));
    }
    body.push_str(&format!(
        "amtsleitung_media_tick_seconds_sum {}\namtsleitung_media_tick_seconds_count {cumulative}\n",
        media.tick_work_us.load(Ordering::Relaxed) as f64 / 1e6
    ));
    body
}
