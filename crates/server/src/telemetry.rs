//! Counters through the `metrics` facade, rendered by its Prometheus exporter into our own
//! `/metrics` route (no listener of its own): any module counts with `metrics::counter!`
//! without adding a line to a hand-kept list. The older counters in `http.rs` are still
//! written by hand and move here as they are touched.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Calls by how they ended: `answered`, `unanswered`, or `refused` before they became ours.
pub const CALLS_TOTAL: &str = "amtsleitung_calls_total";
/// Dialplan reloads by result: `accepted` or `refused`.
pub const DIALPLAN_RELOADS_TOTAL: &str = "amtsleitung_dialplan_reloads_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder (once per process; later calls keep the first).
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if let Err(err) = metrics::set_global_recorder(recorder) {
            tracing::warn!("metrics recorder not installed: {err}");
        }
        metrics::describe_counter!(
            CALLS_TOTAL,
            "Calls by how they ended: answered, unanswered, refused (before they became ours)."
        );
        metrics::describe_counter!(
            DIALPLAN_RELOADS_TOTAL,
            "Dialplan reloads: accepted (in force) or refused (the plan in force stayed)."
        );
        // Present from the start, so that a scrape sees 0 rather than nothing.
        for result in ["answered", "unanswered", "refused"] {
            metrics::counter!(CALLS_TOTAL, "result" => result).increment(0);
        }
        for result in ["accepted", "refused"] {
            metrics::counter!(DIALPLAN_RELOADS_TOTAL, "result" => result).increment(0);
        }
        handle
    });
}

/// The facade's counters in Prometheus text, or nothing before `install`.
pub fn render() -> String {
    HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}
