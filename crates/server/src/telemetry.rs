//! Counters and gauges through the `metrics` facade, rendered by its Prometheus exporter into
//! our own `/metrics` route (no listener of its own): any module counts with
//! `metrics::counter!(telemetry::NAME)` and describes the figure once in [`FIGURES`], with no
//! exposition text of its own.
//!
//! Figures the media workers keep per packet stay plain atomics there (a facade call per
//! packet would look the name up in the recorder's registry); `/metrics` hands their values
//! to the facade at each scrape ([`publish_counter`]). Two figures are still written as text
//! by their owners: the media tick histogram (fixed buckets of atomics, since the exporter's
//! histograms keep every sample until the scrape) and the per-room meeting link series
//! (only rooms open now; the exporter cannot forget a series).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Calls by how they ended: `answered`, `unanswered`, or `refused` before they became ours.
pub const CALLS_TOTAL: &str = "amtsleitung_calls_total";
/// Dialplan reloads by result: `accepted` or `refused`.
pub const DIALPLAN_RELOADS_TOTAL: &str = "amtsleitung_dialplan_reloads_total";
pub const CALLS: &str = "amtsleitung_calls";

pub const REGISTERED_CONTACTS: &str = "amtsleitung_registered_contacts";
pub const UNREACHABLE_CONTACTS: &str = "amtsleitung_unreachable_contacts";
pub const BANNED_SOURCES: &str = "amtsleitung_banned_sources";
pub const SUBSCRIPTIONS: &str = "amtsleitung_subscriptions";
pub const REGISTRATIONS_TOTAL: &str = "amtsleitung_registrations_total";
pub const AUTH_FAILURES_TOTAL: &str = "amtsleitung_auth_failures_total";
pub const BANS_TOTAL: &str = "amtsleitung_bans_total";
pub const SIP_MESSAGES_DROPPED_TOTAL: &str = "amtsleitung_sip_messages_dropped_total";
pub const SESSION_TIMER_EXPIRIES_TOTAL: &str = "amtsleitung_session_timer_expiries_total";

pub const VOICEMAIL_MESSAGES_TOTAL: &str = "amtsleitung_voicemail_messages_total";
pub const VOICEMAIL_TOO_SHORT_TOTAL: &str = "amtsleitung_voicemail_too_short_total";
pub const VOICEMAIL_FAILURES_TOTAL: &str = "amtsleitung_voicemail_failures_total";
pub const VOICEMAIL_EXPIRED_TOTAL: &str = "amtsleitung_voicemail_expired_total";
pub const MWI_NOTIFIES_TOTAL: &str = "amtsleitung_mwi_notifies_total";
pub const VOICEMAIL_EMAILS_TOTAL: &str = "amtsleitung_voicemail_emails_total";
pub const VOICEMAIL_EMAIL_FAILURES_TOTAL: &str = "amtsleitung_voicemail_email_failures_total";

pub const TLS_HANDSHAKE_FAILURES_TOTAL: &str = "amtsleitung_tls_handshake_failures_total";
pub const HTTPS_HANDSHAKE_FAILURES_TOTAL: &str = "amtsleitung_https_handshake_failures_total";
pub const HTTP_CONNECTIONS_REFUSED_TOTAL: &str = "amtsleitung_http_connections_refused_total";
pub const TLS_CERTIFICATE_RELOADS_TOTAL: &str = "amtsleitung_tls_certificate_reloads_total";

pub const TRUNKS_REGISTERED: &str = "amtsleitung_trunks_registered";
pub const TRUNKS_FAILED: &str = "amtsleitung_trunks_failed";
pub const TRUNKS_UNREACHABLE: &str = "amtsleitung_trunks_unreachable";
pub const TRUNKS_RELOADS_TOTAL: &str = "amtsleitung_trunks_reloads_total";
pub const TRUNKS_RELOADS_REFUSED_TOTAL: &str = "amtsleitung_trunks_reloads_refused_total";
/// By `limit`: `user` or `total`.
pub const CALLS_REFUSED_COST_TOTAL: &str = "amtsleitung_calls_refused_cost_total";
/// By `limit`: `user` or `total`.
pub const CALLS_CUT_COST_TOTAL: &str = "amtsleitung_calls_cut_cost_total";
pub const COST_LAST_HOUR: &str = "amtsleitung_cost_last_hour";

/// By `kind`: `whip`, `whep` or `page`.
pub const WEBRTC_SESSIONS: &str = "amtsleitung_webrtc_sessions";
pub const WEBRTC_SESSIONS_STARTED_TOTAL: &str = "amtsleitung_webrtc_sessions_started_total";
pub const WEBRTC_SESSIONS_UNREACHABLE_TOTAL: &str = "amtsleitung_webrtc_sessions_unreachable_total";
pub const WEBRTC_DATAGRAMS_SENT_TOTAL: &str = "amtsleitung_webrtc_datagrams_sent_total";

pub const MEDIA_TICKS_TOTAL: &str = "amtsleitung_media_ticks_total";
pub const MEDIA_LATE_TICKS_TOTAL: &str = "amtsleitung_media_late_ticks_total";
pub const RTP_PACKETS_RECEIVED_TOTAL: &str = "amtsleitung_rtp_packets_received_total";
pub const RTP_PACKETS_SENT_TOTAL: &str = "amtsleitung_rtp_packets_sent_total";
pub const RTP_PACKETS_REJECTED_TOTAL: &str = "amtsleitung_rtp_packets_rejected_total";
pub const RTP_PACKETS_RELAYED_TOTAL: &str = "amtsleitung_rtp_packets_relayed_total";
pub const MEDIA_FRAMES_NOT_DECODED_TOTAL: &str = "amtsleitung_media_frames_not_decoded_total";
pub const MIXER_FRAMES_FORWARDED_TOTAL: &str = "amtsleitung_mixer_frames_forwarded_total";
pub const MIXER_ENCODES_TOTAL: &str = "amtsleitung_mixer_encodes_total";
pub const UDPTL_DATAGRAMS_RELAYED_TOTAL: &str = "amtsleitung_udptl_datagrams_relayed_total";
pub const RTCP_PACKETS_SENT_TOTAL: &str = "amtsleitung_rtcp_packets_sent_total";
pub const RTCP_PACKETS_RECEIVED_TOTAL: &str = "amtsleitung_rtcp_packets_received_total";
pub const RTCP_PACKETS_REJECTED_TOTAL: &str = "amtsleitung_rtcp_packets_rejected_total";
pub const RTP_PACKETS_LOST_TOTAL: &str = "amtsleitung_rtp_packets_lost_total";
pub const RTP_PACKETS_EXPECTED_TOTAL: &str = "amtsleitung_rtp_packets_expected_total";
pub const RTCP_ROUND_TRIP_MICROSECONDS_TOTAL: &str =
    "amtsleitung_rtcp_round_trip_microseconds_total";
pub const RTCP_ROUND_TRIPS_TOTAL: &str = "amtsleitung_rtcp_round_trips_total";
pub const MEDIA_TIMEOUTS_TOTAL: &str = "amtsleitung_media_timeouts_total";

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// A figure's name, kind, help text, and the label values a scrape shows from the start (at
/// 0) for a figure counted by label.
type Figure = (
    &'static str,
    Kind,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Every figure.
#[rustfmt::skip]
const FIGURES: &[Figure] = {
    use Kind::{Counter, Gauge};
    &[
        (CALLS_TOTAL, Counter, "Calls by how they ended: answered, unanswered, refused (before they became ours).", &[("result", "answered"), ("result", "unanswered"), ("result", "refused")]),
        (DIALPLAN_RELOADS_TOTAL, Counter, "Dialplan reloads: accepted (in force) or refused (the plan in force stayed).", &[("result", "accepted"), ("result", "refused")]),
        (CALLS, Gauge, "Calls in progress.", &[]),
        (REGISTERED_CONTACTS, Gauge, "Phone contacts registered now.", &[]),
        (UNREACHABLE_CONTACTS, Gauge, "Registered contacts that left their last qualify OPTIONS unanswered (not rung).", &[]),
        (BANNED_SOURCES, Gauge, "Source addresses banned now after repeated failed authentication.", &[]),
        (SUBSCRIPTIONS, Gauge, "Event subscriptions held now (busy lamp fields, message waiting).", &[]),
        (REGISTRATIONS_TOTAL, Counter, "REGISTERs accepted.", &[]),
        (AUTH_FAILURES_TOTAL, Counter, "REGISTERs with wrong credentials or an unknown user.", &[]),
        (BANS_TOTAL, Counter, "Sources banned after repeated failed authentication.", &[]),
        (SIP_MESSAGES_DROPPED_TOTAL, Counter, "SIP messages dropped unanswered by the per-source rate limit.", &[]),
        (SESSION_TIMER_EXPIRIES_TOTAL, Counter, "Calls ended because their SIP session was not refreshed (RFC 4028).", &[]),
        (VOICEMAIL_MESSAGES_TOTAL, Counter, "Voicemail messages stored.", &[]),
        (VOICEMAIL_TOO_SHORT_TOTAL, Counter, "Voicemail messages dropped for being shorter than a second.", &[]),
        (VOICEMAIL_FAILURES_TOTAL, Counter, "Voicemail messages that could not be written or stored.", &[]),
        (VOICEMAIL_EXPIRED_TOTAL, Counter, "Voicemail messages deleted after their keeping time.", &[]),
        (MWI_NOTIFIES_TOTAL, Counter, "Message-summary NOTIFYs sent to registered phones.", &[]),
        (VOICEMAIL_EMAILS_TOTAL, Counter, "Voicemail messages mailed.", &[]),
        (VOICEMAIL_EMAIL_FAILURES_TOTAL, Counter, "Voicemail messages that could not be mailed.", &[]),
        (TLS_HANDSHAKE_FAILURES_TOTAL, Counter, "SIP-over-TLS handshakes that failed or timed out, accepted or opened.", &[]),
        (HTTPS_HANDSHAKE_FAILURES_TOTAL, Counter, "Admin HTTPS handshakes that failed, timed out or were refused (too many at once).", &[]),
        (HTTP_CONNECTIONS_REFUSED_TOTAL, Counter, "Admin HTTP(S) connections closed at once because the listener had its maximum open.", &[]),
        (TLS_CERTIFICATE_RELOADS_TOTAL, Counter, "Times the TLS certificate was loaded again after its files changed.", &[]),
        (TRUNKS_REGISTERED, Gauge, "Trunks registered with their carrier now.", &[]),
        (TRUNKS_FAILED, Gauge, "Trunks whose last registration attempt failed.", &[]),
        (TRUNKS_UNREACHABLE, Gauge, "Trunks whose carrier left its last keep-alive OPTIONS unanswered (calls fail over).", &[]),
        (TRUNKS_RELOADS_TOTAL, Counter, "Changed trunks files taken into force.", &[]),
        (TRUNKS_RELOADS_REFUSED_TOTAL, Counter, "Changed trunks files refused (the trunks in force stayed).", &[]),
        (CALLS_REFUSED_COST_TOTAL, Counter, "Calls out refused because the last hour's spend had reached a [cost-guard] limit.", &[("limit", "user"), ("limit", "total")]),
        (CALLS_CUT_COST_TOTAL, Counter, "Running calls out ended because they took the last hour's spend to a [cost-guard] limit.", &[("limit", "user"), ("limit", "total")]),
        (COST_LAST_HOUR, Gauge, "What calls out cost in the last 60 minutes, at the [cost-guard] rates (in their currency).", &[]),
        (WEBRTC_SESSIONS, Gauge, "WebRTC sessions open now (WHIP publishing into rooms, WHEP listening, join-page browsers).", &[("kind", "whip"), ("kind", "whep"), ("kind", "page")]),
        (WEBRTC_SESSIONS_STARTED_TOTAL, Counter, "WebRTC sessions opened.", &[]),
        (WEBRTC_SESSIONS_UNREACHABLE_TOTAL, Counter, "WebRTC sessions ended because their client became unreachable and did not come back.", &[]),
        (WEBRTC_DATAGRAMS_SENT_TOTAL, Counter, "Datagrams sent to WebRTC clients (STUN, DTLS, SRTP, SRTCP).", &[]),
        (MEDIA_TICKS_TOTAL, Counter, "Media ticks run.", &[]),
        (MEDIA_LATE_TICKS_TOTAL, Counter, "Media ticks that started more than one period late.", &[]),
        (RTP_PACKETS_RECEIVED_TOTAL, Counter, "RTP packets received.", &[]),
        (RTP_PACKETS_SENT_TOTAL, Counter, "RTP packets sent.", &[]),
        (RTP_PACKETS_REJECTED_TOTAL, Counter, "RTP packets dropped (malformed or unknown payload type).", &[]),
        (RTP_PACKETS_RELAYED_TOTAL, Counter, "RTP packets relayed between the legs of a call that share a codec, not decoded.", &[]),
        (MEDIA_FRAMES_NOT_DECODED_TOTAL, Counter, "Conference frames left undecoded because their RFC 6464 level was inaudible.", &[]),
        (MIXER_FRAMES_FORWARDED_TOTAL, Counter, "Listener frames that were a lone talker's payload, forwarded unchanged.", &[]),
        (MIXER_ENCODES_TOTAL, Counter, "Encoder runs of the conference mixers.", &[]),
        (UDPTL_DATAGRAMS_RELAYED_TOTAL, Counter, "T.38 fax datagrams (UDPTL) passed between the legs of a call.", &[]),
        (RTCP_PACKETS_SENT_TOTAL, Counter, "RTCP compound packets sent (SR/RR, SDES, BYE).", &[]),
        (RTCP_PACKETS_RECEIVED_TOTAL, Counter, "RTCP reports received from callers.", &[]),
        (RTCP_PACKETS_REJECTED_TOTAL, Counter, "RTCP datagrams that did not parse.", &[]),
        (RTP_PACKETS_LOST_TOTAL, Counter, "Callers' RTP packets lost on the way to us, over ended calls (RFC 3550 A.3).", &[]),
        (RTP_PACKETS_EXPECTED_TOTAL, Counter, "Callers' RTP packets their sequence numbers say they sent, over ended calls.", &[]),
        (RTCP_ROUND_TRIP_MICROSECONDS_TOTAL, Counter, "Sum of the last RTCP round-trip time (in microseconds) of ended calls that had one; divided by amtsleitung_rtcp_round_trips_total, the mean.", &[]),
        (RTCP_ROUND_TRIPS_TOTAL, Counter, "Ended calls with an RTCP round-trip time.", &[]),
        (MEDIA_TIMEOUTS_TOTAL, Counter, "Calls ended because the caller's RTP stopped.", &[]),
    ]
};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder (once per process; later calls keep the first) and describes every
/// figure, each present from the start so that a scrape sees 0 rather than nothing.
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if let Err(err) = metrics::set_global_recorder(recorder) {
            tracing::warn!("metrics recorder not installed: {err}");
        }
        for &(name, kind, help, labels) in FIGURES {
            match kind {
                Kind::Counter => {
                    metrics::describe_counter!(name, help);
                    if labels.is_empty() {
                        metrics::counter!(name).increment(0);
                    }
                    for &(key, value) in labels {
                        metrics::counter!(name, key => value).increment(0);
                    }
                }
                Kind::Gauge => {
                    metrics::describe_gauge!(name, help);
                    if labels.is_empty() {
                        metrics::gauge!(name).increment(0.0);
                    }
                    for &(key, value) in labels {
                        metrics::gauge!(name, key => value).increment(0.0);
                    }
                }
            }
        }
        handle
    });
}

/// Counts one of `name`.
pub fn count(name: &'static str) {
    metrics::counter!(name).increment(1);
}

/// Sets the gauge `name`.
pub fn set(name: &'static str, value: usize) {
    metrics::gauge!(name).set(value as f64);
}

/// Hands a count kept in an atomic elsewhere to the facade (at scrape time).
pub fn publish_counter(name: &'static str, value: u64) {
    metrics::counter!(name).absolute(value);
}

/// The facade's figures in Prometheus text, or nothing before `install`.
pub fn render() -> String {
    HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_is_named_once_and_by_the_prometheus_rules() {
        let mut seen = std::collections::HashSet::new();
        for &(name, kind, help, _) in FIGURES {
            assert!(seen.insert(name), "{name} described twice");
            assert!(name.starts_with("amtsleitung_"), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert_eq!(
                matches!(kind, Kind::Counter),
                name.ends_with("_total"),
                "{name}: counters and only counters end in _total"
            );
            assert!(help.ends_with('.'), "{name}: {help}");
        }
    }
}
