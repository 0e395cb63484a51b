//! Prometheus text exposition of the status figures.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

pub async fn metrics(State(rec): State<AppState>) -> impl IntoResponse {
    let st = super::status::collect(&rec);
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let per = |f: &dyn Fn(&super::status::InputStatus) -> f64| {
        st.inputs
            .iter()
            .map(|(id, i)| (format!("{{input=\"{id}\"}}"), f(i)))
            .collect::<Vec<_>>()
    };
    gauge(
        "r58_up",
        "1 while every input encodes",
        vec![(String::new(), f64::from(u8::from(st.healthy)))],
    );
    gauge(
        "r58_uptime_seconds",
        "Seconds since the recorder started",
        vec![(String::new(), st.uptime_s as f64)],
    );
    gauge(
        "r58_disk_free_mib",
        "Free MiB on the data partition",
        vec![(String::new(), st.disk.free_mib.unwrap_or(0) as f64)],
    );
    gauge(
        "r58_input_signal",
        "1 while the input delivers frames",
        per(&|i| f64::from(u8::from(i.signal))),
    );
    gauge(
        "r58_input_fps",
        "Encoded frames per second",
        per(&|i| i.fps),
    );
    gauge(
        "r58_input_bitrate_kbps",
        "Encoded kilobits per second",
        per(&|i| i.bitrate_kbps),
    );
    gauge(
        "r58_input_frames_encoded_total",
        "Frames encoded since start",
        per(&|i| i.frames_encoded as f64),
    );
    gauge(
        "r58_input_bytes_encoded_total",
        "Bytes encoded since start",
        per(&|i| i.bytes_encoded as f64),
    );
    gauge(
        "r58_input_dropped_frames_total",
        "Frames dropped since start",
        per(&|i| i.dropped_frames as f64),
    );
    gauge(
        "r58_input_source_restarts_total",
        "Source pipeline restarts",
        per(&|i| i.source_restarts as f64),
    );
    gauge(
        "r58_input_recording",
        "1 while the input records",
        per(&|i| f64::from(u8::from(i.recording.recording))),
    );
    gauge(
        "r58_input_recorded_bytes",
        "Bytes in the current session",
        per(&|i| i.recording.bytes as f64),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
