//! Prometheus text metrics: devices by status, ingest counters and lag, database health.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::error::ApiError;
use super::AppState;

pub async fn metrics(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut out = String::new();
    let _ = writeln!(out, "# TYPE r58_fleet_devices gauge");
    for (status, n) in s.db.status_counts().await? {
        let _ = writeln!(out, "r58_fleet_devices{{status=\"{status}\"}} {n}");
    }
    let st = &s.stats;
    let c = |o: &mut String, name: &str, kind: &str, v: i64| {
        let _ = writeln!(o, "# TYPE {name} {kind}\n{name} {v}");
    };
    c(
        &mut out,
        "r58_fleet_ingest_messages_total",
        "counter",
        st.messages.load(Ordering::Relaxed) as i64,
    );
    c(
        &mut out,
        "r58_fleet_ingest_rejected_total",
        "counter",
        st.rejected.load(Ordering::Relaxed) as i64,
    );
    c(
        &mut out,
        "r58_fleet_ingest_batches_total",
        "counter",
        st.batches.load(Ordering::Relaxed) as i64,
    );
    c(
        &mut out,
        "r58_fleet_ingest_db_errors_total",
        "counter",
        st.db_errors.load(Ordering::Relaxed) as i64,
    );
    // The largest lag since the previous scrape (then reset).
    c(
        &mut out,
        "r58_fleet_ingest_lag_max_ms",
        "gauge",
        st.max_lag_ms.swap(0, Ordering::Relaxed),
    );
    c(
        &mut out,
        "r58_fleet_broker_connected",
        "gauge",
        st.connected.load(Ordering::Relaxed) as i64,
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
