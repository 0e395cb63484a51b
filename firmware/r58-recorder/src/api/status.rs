use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::AppState;
use crate::stats::{lock, SourceFormat, SourceState};
use crate::store::sessions::InputRecording;
use crate::store::storage;

#[derive(Serialize)]
pub struct InputStatus {
    pub kind: r58_config::InputKind,
    pub signal: bool,
    pub source: SourceState,
    pub source_format: Option<SourceFormat>,
    pub width: u32,
    pub height: u32,
    pub encoder: String,
    pub audio_encoder: Option<String>,
    pub fps: f64,
    pub bitrate_kbps: f64,
    pub frames_encoded: u64,
    pub bytes_encoded: u64,
    pub dropped_frames: u64,
    pub source_restarts: u64,
    /// What takes this input's encode: the recording, HLS, one entry per RTSP media
    /// (all RTSP clients of an input share one).
    pub consumers: Vec<String>,
    pub recording: InputRecording,
    pub rtsp_path: String,
    pub hls_path: String,
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct Disk {
    pub path: String,
    pub free_mib: Option<u64>,
    pub floor_mib: u64,
}

#[derive(Serialize)]
pub struct Status {
    pub version: &'static str,
    pub uptime_s: u64,
    pub healthy: bool,
    pub health_reason: Option<String>,
    pub session: Option<String>,
    pub rtsp_port: Option<u16>,
    pub disk: Disk,
    pub inputs: BTreeMap<String, InputStatus>,
}

pub fn collect(rec: &crate::service::Recorder) -> Status {
    let inputs = rec
        .inputs
        .iter()
        .map(|(id, i)| {
            let (fps, kbps) = i.stats.rates();
            let s = &i.stats;
            let st = InputStatus {
                kind: i.cfg.kind,
                signal: s.signal.load(Ordering::Relaxed),
                source: lock(&s.source_state).clone(),
                source_format: lock(&s.source_format).clone(),
                width: i.cfg.width,
                height: i.cfg.height,
                encoder: i.video_encoder.clone(),
                audio_encoder: i.audio_encoder.clone(),
                fps,
                bitrate_kbps: kbps,
                frames_encoded: s.encoded_frames.load(Ordering::Relaxed),
                bytes_encoded: s.encoded_bytes.load(Ordering::Relaxed),
                dropped_frames: s.dropped_in.load(Ordering::Relaxed) + i.fanout.dropped(),
                source_restarts: s.source_restarts.load(Ordering::Relaxed),
                consumers: i.fanout.consumer_names(),
                recording: rec.sessions.status(id),
                rtsp_path: format!("/{id}"),
                hls_path: format!("/hls/{id}/index.m3u8"),
                error: lock(&s.fatal).clone(),
            };
            (id.clone(), st)
        })
        .collect();
    let health = rec.health();
    Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: rec.started.elapsed().as_secs(),
        healthy: health.is_ok(),
        health_reason: health.err(),
        session: rec.sessions.active_session(),
        rtsp_port: rec.rtsp_port,
        disk: Disk {
            path: rec.sessions.root().display().to_string(),
            free_mib: storage::free_mib(rec.sessions.root()).ok(),
            floor_mib: rec.cfg.storage.min_free_mib,
        },
        inputs,
    }
}

pub async fn status(State(rec): State<AppState>) -> Json<Status> {
    Json(collect(&rec))
}

#[derive(Serialize)]
pub struct InputInfo {
    pub id: String,
    pub enabled: bool,
    pub config: r58_config::InputConfig,
}

pub async fn inputs(State(rec): State<AppState>) -> Json<Vec<InputInfo>> {
    Json(
        rec.cfg
            .inputs
            .iter()
            .map(|(id, c)| InputInfo {
                id: id.clone(),
                enabled: c.enabled,
                // A camera's password stays on the box.
                config: c.redacted(),
            })
            .collect(),
    )
}

pub async fn healthz(State(rec): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match rec.health() {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({"status": "ok"}))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unhealthy", "reason": reason})),
        ),
    }
}
