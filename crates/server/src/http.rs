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

use crate::dialplan_files::ReloadReport;
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
pub type ReloadRequests = tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<ReloadReport>>;

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
    let state = AppState {
        shared,
        calls,
        reload,
        security,
    };
    let app = public
        .clone()
        .route("/metrics", get(metrics))
        .route("/dialplan/reload", axum::routing::post(reload_dialplan))
        .route("/rooms", get(rooms))
        .route("/trunks", get(trunks))
        .route("/security/bans", get(bans))
        .route("/security/bans/{address}", axum::routing::delete(unban))
        .with_state(state.clone());
    if let Some(https) = https {
        tracing::info!(https = %https.address(), "admin HTTPS listening");
        let app = public.with_state(state);
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

/// `POST /dialplan/reload`: 200 with the new version, or 422 with the errors (the old plan
/// stays in force).
async fn reload_dialplan(State(state): State<AppState>) -> axum::response::Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if state.reload.send(tx).await.is_err() {
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

/// `GET /security/bans`: the source addresses banned now.
async fn bans(State(state): State<AppState>) -> axum::response::Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if state
        .security
        .send(SecurityRequest::Bans(tx))
        .await
        .is_err()
    {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match rx.await {
        Ok(bans) => axum::Json(bans).into_response(),
        Err(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
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
    let (tx, rx) = tokio::sync::oneshot::channel();
    if state
        .security
        .send(SecurityRequest::Unban(address, tx))
        .await
        .is_err()
    {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match rx.await {
        Ok(Some(ban)) => axum::Json(ban).into_response(),
        Ok(None) => (
            axum::http::StatusCode::NOT_FOUND,
            format!("{address} is not banned"),
        )
            .into_response(),
        Err(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
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

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let media = state.shared.media.stats();
    let body = format!(
        "# HELP amtsleitung_calls Calls in progress.\n# TYPE amtsleitung_calls gauge\namtsleitung_calls {}\n\
         # HELP amtsleitung_media_ticks_total Media ticks run.\n# TYPE amtsleitung_media_ticks_total counter\namtsleitung_media_ticks_total {}\n\
         # HELP amtsleitung_media_late_ticks_total Media ticks that started more than one period late.\n# TYPE amtsleitung_media_late_ticks_total counter\namtsleitung_media_late_ticks_total {}\n\
         # HELP amtsleitung_rtp_packets_received_total RTP packets received.\n# TYPE amtsleitung_rtp_packets_received_total counter\namtsleitung_rtp_packets_received_total {}\n\
         # HELP amtsleitung_rtp_packets_sent_total RTP packets sent.\n# TYPE amtsleitung_rtp_packets_sent_total counter\namtsleitung_rtp_packets_sent_total {}\n\
         # HELP amtsleitung_rtp_packets_rejected_total RTP packets dropped (malformed or unknown payload type).\n# TYPE amtsleitung_rtp_packets_rejected_total counter\namtsleitung_rtp_packets_rejected_total {}\n\
         # HELP amtsleitung_media_frames_not_decoded_total Conference frames left undecoded because their RFC 6464 level was inaudible.\n# TYPE amtsleitung_media_frames_not_decoded_total counter\namtsleitung_media_frames_not_decoded_total {}\n\
         # HELP amtsleitung_mixer_frames_forwarded_total Listener frames that were a lone talker's payload, forwarded unchanged.\n# TYPE amtsleitung_mixer_frames_forwarded_total counter\namtsleitung_mixer_frames_forwarded_total {}\n\
         # HELP amtsleitung_mixer_encodes_total Encoder runs of the conference mixers.\n# TYPE amtsleitung_mixer_encodes_total counter\namtsleitung_mixer_encodes_total {}\n\
         # HELP amtsleitung_rtp_packets_relayed_total RTP packets relayed between the legs of a call that share a codec, not decoded.\n# TYPE amtsleitung_rtp_packets_relayed_total counter\namtsleitung_rtp_packets_relayed_total {}\n",
        state.calls.load(Ordering::Relaxed),
        media.ticks.load(Ordering::Relaxed),
        media.late_ticks.load(Ordering::Relaxed),
        media.packets_in.load(Ordering::Relaxed),
        media.packets_out.load(Ordering::Relaxed),
        media.packets_rejected.load(Ordering::Relaxed),
        media.frames_not_decoded.load(Ordering::Relaxed),
        media.frames_forwarded.load(Ordering::Relaxed),
        media.mixer_encodes.load(Ordering::Relaxed),
        media.packets_relayed.load(Ordering::Relaxed),
    );
    let mut body = body;
    body.push_str(&format!(
        "# HELP amtsleitung_udptl_datagrams_relayed_total T.38 fax datagrams (UDPTL) passed between the legs of a call.\n# TYPE amtsleitung_udptl_datagrams_relayed_total counter\namtsleitung_udptl_datagrams_relayed_total {}\n",
        crate::udptl_relay::DATAGRAMS_RELAYED.load(Ordering::Relaxed)
    ));
    body.push_str("# HELP amtsleitung_media_tick_seconds Work done in one media tick (receive, mix, send).\n# TYPE amtsleitung_media_tick_seconds histogram\n");
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
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let counter = |body: &mut String, name: &str, help: &str, value: String| {
        body.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        ));
    };
    counter(
        &mut body,
        "amtsleitung_rtcp_packets_sent_total",
        "RTCP compound packets sent (SR/RR, SDES, BYE).",
        load(&media.rtcp_sent).to_string(),
    );
    counter(
        &mut body,
        "amtsleitung_rtcp_packets_received_total",
        "RTCP reports received from callers.",
        load(&media.rtcp_received).to_string(),
    );
    counter(
        &mut body,
        "amtsleitung_rtcp_packets_rejected_total",
        "RTCP datagrams that did not parse.",
        load(&media.rtcp_rejected).to_string(),
    );
    counter(
        &mut body,
        "amtsleitung_rtp_packets_lost_total",
        "Callers' RTP packets lost on the way to us, over ended calls (RFC 3550 A.3).",
        load(&media.legs_packets_lost).to_string(),
    );
    counter(
        &mut body,
        "amtsleitung_rtp_packets_expected_total",
        "Callers' RTP packets their sequence numbers say they sent, over ended calls.",
        load(&media.legs_packets_expected).to_string(),
    );
    counter(
        &mut body,
        "amtsleitung_rtcp_round_trip_seconds_sum",
        "Sum of the last RTCP round-trip time of ended calls that had one.",
        (load(&media.legs_round_trip_us) as f64 / 1e6).to_string(),
    );
    counter(
        &mut body,
        "amtsleitung_rtcp_round_trip_seconds_count",
        "Ended calls with an RTCP round-trip time.",
        load(&media.legs_with_round_trip).to_string(),
    );
    counter(
        &mut body,
        "amtsleitung_media_timeouts_total",
        "Calls ended because the caller's RTP stopped.",
        load(&media.media_timeouts).to_string(),
    );
    counter(
        &mut body,
        "amtsleitung_session_timer_expiries_total",
        "Calls ended because their SIP session was not refreshed (RFC 4028).",
        crate::sip_endpoint::SESSION_TIMER_EXPIRIES
            .load(Ordering::Relaxed)
            .to_string(),
    );
    use crate::registrar::metrics as reg;
    let gauge = |body: &mut String, name: &str, help: &str, value: u64| {
        body.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    };
    gauge(
        &mut body,
        "amtsleitung_registered_contacts",
        "Phone contacts registered now.",
        reg::REGISTERED_CONTACTS.load(Ordering::Relaxed),
    );
    gauge(
        &mut body,
        "amtsleitung_subscriptions",
        "Event subscriptions held now (busy lamp fields).",
        crate::presence::ACTIVE_SUBSCRIPTIONS.load(Ordering::Relaxed),
    );
    gauge(
        &mut body,
        "amtsleitung_banned_sources",
        "Source addresses banned now after repeated failed authentication.",
        reg::ACTIVE_BANS.load(Ordering::Relaxed),
    );
    let trunks = state
        .shared
        .trunks
        .current()
        .status(std::time::Instant::now());
    gauge(
        &mut body,
        "amtsleitung_trunks_registered",
        "Trunks registered with their carrier now.",
        crate::trunk_service::registered_count(&trunks) as u64,
    );
    gauge(
        &mut body,
        "amtsleitung_trunks_failed",
        "Trunks whose last registration attempt failed.",
        trunks.iter().filter(|t| t.state == "failed").count() as u64,
    );
    gauge(
        &mut body,
        "amtsleitung_trunks_unreachable",
        "Trunks whose carrier left its last keep-alive OPTIONS unanswered (calls fail over).",
        trunks.iter().filter(|t| t.reachable == Some(false)).count() as u64,
    );
    gauge(
        &mut body,
        "amtsleitung_unreachable_contacts",
        "Registered contacts that left their last qualify OPTIONS unanswered (not rung).",
        reg::UNREACHABLE_CONTACTS.load(Ordering::Relaxed),
    );
    for (name, help, value) in [
        (
            "amtsleitung_registrations_total",
            "REGISTERs accepted.",
            &reg::REGISTRATIONS,
        ),
        (
            "amtsleitung_voicemail_messages_total",
            "Voicemail messages stored.",
            &crate::voicemail::metrics::MESSAGES_STORED,
        ),
        (
            "amtsleitung_voicemail_too_short_total",
            "Voicemail messages dropped for being shorter than a second.",
            &crate::voicemail::metrics::MESSAGES_TOO_SHORT,
        ),
        (
            "amtsleitung_voicemail_failures_total",
            "Voicemail messages that could not be written or stored.",
            &crate::voicemail::metrics::MESSAGES_FAILED,
        ),
        (
            "amtsleitung_voicemail_expired_total",
            "Voicemail messages deleted after their keeping time.",
            &crate::voicemail::metrics::MESSAGES_EXPIRED,
        ),
        (
            "amtsleitung_mwi_notifies_total",
            "Message-summary NOTIFYs sent to registered phones.",
            &crate::voicemail::metrics::MWI_NOTIFIES,
        ),
        (
            "amtsleitung_voicemail_emails_total",
            "Voicemail messages mailed.",
            &crate::voicemail::metrics::EMAILS_SENT,
        ),
        (
            "amtsleitung_voicemail_email_failures_total",
            "Voicemail messages that could not be mailed.",
            &crate::voicemail::metrics::EMAIL_FAILURES,
        ),
        (
            "amtsleitung_auth_failures_total",
            "REGISTERs with wrong credentials or an unknown user.",
            &reg::AUTH_FAILURES,
        ),
        (
            "amtsleitung_bans_total",
            "Sources banned after repeated failed authentication.",
            &reg::BANS,
        ),
        (
            "amtsleitung_sip_messages_dropped_total",
            "SIP messages dropped unanswered by the per-source rate limit.",
            &reg::DROPPED_MESSAGES,
        ),
        (
            "amtsleitung_tls_handshake_failures_total",
            "SIP-over-TLS handshakes that failed or timed out, accepted or opened.",
            &crate::tls::HANDSHAKE_FAILURES,
        ),
        (
            "amtsleitung_https_handshake_failures_total",
            "Admin HTTPS handshakes that failed, timed out or were refused (too many at once).",
            &crate::https_listener::HANDSHAKE_FAILURES,
        ),
        (
            "amtsleitung_http_connections_refused_total",
            "Admin HTTP(S) connections closed at once because the listener had its maximum open.",
            &crate::http_serve::CONNECTIONS_REFUSED,
        ),
        (
            "amtsleitung_tls_certificate_reloads_total",
            "Times the TLS certificate was loaded again after its files changed.",
            &crate::tls::CERTIFICATE_RELOADS,
        ),
        (
            "amtsleitung_trunks_reloads_total",
            "Changed trunks files taken into force.",
            &crate::trunk_service::RELOADS_ACCEPTED,
        ),
        (
            "amtsleitung_trunks_reloads_refused_total",
            "Changed trunks files refused (the trunks in force stayed).",
            &crate::trunk_service::RELOADS_REFUSED,
        ),
    ] {
        counter(
            &mut body,
            name,
            help,
            value.load(Ordering::Relaxed).to_string(),
        );
    }
    let webrtc = state.shared.webrtc.counts();
    body.push_str(&format!(
        "# HELP amtsleitung_webrtc_sessions WebRTC sessions open now (WHIP publishing into rooms, WHEP listening, join-page browsers).\n# TYPE amtsleitung_webrtc_sessions gauge\namtsleitung_webrtc_sessions{{kind=\"whip\"}} {}\namtsleitung_webrtc_sessions{{kind=\"whep\"}} {}\namtsleitung_webrtc_sessions{{kind=\"page\"}} {}\n",
        webrtc.whip, webrtc.whep, webrtc.page
    ));
    counter(
        &mut body,
        "amtsleitung_webrtc_sessions_started_total",
        "WebRTC sessions opened.",
        crate::webrtc_sessions::SESSIONS_STARTED
            .load(Ordering::Relaxed)
            .to_string(),
    );
    counter(
        &mut body,
        "amtsleitung_webrtc_sessions_unreachable_total",
        "WebRTC sessions ended because their client became unreachable and did not come back.",
        crate::webrtc_sessions::SESSIONS_UNREACHABLE
            .load(Ordering::Relaxed)
            .to_string(),
    );
    counter(
        &mut body,
        "amtsleitung_webrtc_datagrams_sent_total",
        "Datagrams sent to WebRTC clients (STUN, DTLS, SRTP, SRTCP).",
        load(&media.webrtc_datagrams_sent).to_string(),
    );
    body.push_str(&state.shared.links.metrics());
    body.push_str(&state.shared.costs.metrics(std::time::Instant::now()));
    body.push_str(&crate::telemetry::render());
    ([("content-type", "text/plain; version=0.0.4")], body)
}
