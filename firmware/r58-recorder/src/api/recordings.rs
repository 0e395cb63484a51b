use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::{ApiError, AppState};
use crate::manifest::{Manifest, SEGMENT_EXT};
use crate::store::paths::safe_component;

/// Body of start/stop: which inputs (all when absent or empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
}

#[derive(Serialize)]
pub struct Started {
    pub session: String,
    pub started: Vec<String>,
}

#[derive(Serialize)]
pub struct Stopped {
    pub stopped: Vec<String>,
}

fn parse_selection(body: &axum::body::Bytes) -> Result<Selection, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Selection::default());
    }
    super::parse_body(body)
}

pub async fn start(
    State(rec): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Started>, ApiError> {
    let sel = parse_selection(&body)?;
    let rec2 = rec.clone();
    let (session, started) =
        tokio::task::spawn_blocking(move || rec2.start_recording(sel.inputs.as_deref()))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })??;
    Ok(Json(Started { session, started }))
}

pub async fn stop(
    State(rec): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Stopped>, ApiError> {
    let sel = parse_selection(&body)?;
    let stopped = tokio::task::spawn_blocking(move || rec.stop_recording(sel.inputs.as_deref()))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    Ok(Json(Stopped { stopped }))
}

pub async fn list(State(rec): State<AppState>) -> Json<Vec<Manifest>> {
    Json(
        tokio::task::spawn_blocking(move || rec.sessions.list())
            .await
            .unwrap_or_default(),
    )
}

pub async fn get(
    State(rec): State<AppState>,
    Path(session): Path<String>,
) -> Result<Json<Manifest>, ApiError> {
    safe_component(&session).map_err(ApiError::bad_request)?;
    rec.sessions
        .get(&session)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no session {session}")))
}

/// A segment file, with Range support (players seek; downloads resume).
pub async fn download(
    State(rec): State<AppState>,
    Path((session, input, file)): Path<(String, String, String)>,
    req: Request,
) -> Result<axum::response::Response, ApiError> {
    for part in [&session, &input, &file] {
        safe_component(part).map_err(ApiError::bad_request)?;
    }
    if !file.ends_with(&format!(".{SEGMENT_EXT}")) {
        return Err(ApiError::bad_request(format!("{file} is not a segment")));
    }
    let path = rec.sessions.root().join(&session).join(&input).join(&file);
    if !path.is_file() {
        return Err(ApiError::not_found(format!(
            "no file {session}/{input}/{file}"
        )));
    }
    let resp = ServeFile::new(&path)
        .oneshot(req)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(resp.map(Body::new))
}
