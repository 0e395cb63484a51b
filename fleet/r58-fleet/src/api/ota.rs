//! OTA endpoints: publish and list bundles, create and steer rollouts (operator token), and
//! the bundle download for devices (`/ota/bundles/<sha256>.raucb`, HTTP Range, no token:
//! bundles are signed, and named by their checksum).

use std::io::Write;

use axum::body::Body;
use axum::extract::{Extension, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use r58_fleet_api::paths::RolloutAction;
use r58_fleet_api::{
    BundleAnswer, BundleList, CreateRollout, RolloutDetail, RolloutList, RolloutSummary,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use super::auth::Operator;
use super::commands::resolve;
use super::error::{parse_body, ApiError};
use super::AppState;
use crate::db::{now_ms, NewRollout};
use crate::ota::bundle::{self, stored_path};
use crate::ota::rollout::{self, JobOptions, DEFAULT_WAVES};
use r58_fleet_api::Bundle;

fn storage(e: impl std::fmt::Display) -> ApiError {
    ApiError::Storage(e.to_string())
}

/// `POST /api/v1/bundles`: the bundle file as the body. Stored under its SHA-256 after
/// `rauc info` read it (and, with a keyring, checked its signature).
pub async fn publish(
    State(s): State<AppState>,
    Extension(op): Extension<Operator>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let dir = s.ota.dir.clone();
    std::fs::create_dir_all(&dir).map_err(storage)?;
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(storage)?;
    let mut file = tmp.as_file().try_clone().map_err(storage)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("upload interrupted: {e}")))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk).map_err(storage)?;
    }
    if size == 0 {
        return Err(ApiError::BadRequest(
            "empty body: send the bundle file".into(),
        ));
    }
    file.sync_all().map_err(storage)?;
    drop(file);
    // Closed before RAUC reads it: it insists on exclusive access (a file lease).
    let tmp = tmp.into_temp_path();
    let sha = format!("{:x}", hasher.finalize());
    let cfg = s.ota.clone();
    let path = tmp.to_path_buf();
    let info = tokio::task::spawn_blocking(move || bundle::inspect(&cfg, &path))
        .await
        .map_err(storage)?
        .map_err(|e| ApiError::Unprocessable(r58_log::error_chain(&e)))?;
    let dest = stored_path(&dir, &sha);
    tmp.persist(&dest).map_err(storage)?;
    r58_fs::sync_dir(&dir).map_err(storage)?;
    let row = Bundle {
        sha256: sha.clone(),
        version: info.version,
        compatible: info.compatible,
        size: size as i64,
        signature_checked: info.signature_checked,
        created_by: Some(op.0.clone()),
        created_at: now_ms(),
    };
    s.db.insert_bundle(&row).await?;
    s.withheld.set(&sha, false);
    tracing::info!(%sha, version = %row.version, operator = %op.0, signature_checked = row.signature_checked, "bundle published");
    let bundle = s.db.bundle(&sha).await?.unwrap_or(row);
    Ok((StatusCode::CREATED, Json(BundleAnswer { bundle })))
}

pub async fn bundles(State(s): State<AppState>) -> Result<Json<BundleList>, ApiError> {
    Ok(Json(BundleList {
        bundles: s.db.bundles().await?,
    }))
}

/// `GET /ota/bundles/<sha256>.raucb`, with Range support.
pub async fn download(
    State(s): State<AppState>,
    Path(file): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let sha = file.strip_suffix(".raucb").unwrap_or_default();
    if sha.len() != 64
        || !sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ApiError::NotFound(format!("bundle {file:?}")));
    }
    let b =
        s.db.bundle(sha)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("bundle {file:?}")))?;
    let path = stored_path(&s.ota.dir, sha);
    let len = std::fs::metadata(&path)
        .map(|m| m.len() as i64)
        .unwrap_or(-1);
    let good = match s.withheld.verdict(sha) {
        Some(v) => v,
        None => bundle::verify_stored(&s.ota.dir, &b, &s.withheld).await,
    };
    if !good || len != b.size {
        return Err(ApiError::Storage(format!(
            "bundle {sha} does not match its checksum on this server: withheld"
        )));
    }
    let resp = tower_http::services::ServeFile::new(&path)
        .oneshot(req)
        .await
        .map_err(storage)?;
    Ok(resp.map(Body::new).into_response())
}

fn new_id() -> String {
    let n = crate::devices::random_bytes::<4>()
        .map(u32::from_le_bytes)
        .unwrap_or_else(|_| std::process::id());
    format!("r{:x}{n:08x}", now_ms())
}

/// `POST /api/v1/rollouts`
pub async fn create(
    State(s): State<AppState>,
    Extension(op): Extension<Operator>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let c: CreateRollout = parse_body(&body)?;
    s.mqtt.as_ref().ok_or(ApiError::NoBroker)?;
    let bundle = match (&c.version, &c.bundle_sha256) {
        (Some(v), None) => {
            s.db.bundle_by_version(v)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("published bundle of version {v:?}")))?
        }
        (None, Some(sha)) => {
            s.db.bundle(sha)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("bundle {sha:?}")))?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of version and bundle_sha256".into(),
            ))
        }
    };
    let success = c.success_percent.unwrap_or(95);
    let failure = c.failure_percent.unwrap_or(10);
    let timeout = c.step_timeout_seconds.unwrap_or(1800);
    if !(0..=100).contains(&success) || !(0..=100).contains(&failure) {
        return Err(ApiError::BadRequest(
            "success_percent and failure_percent are in 0..=100".into(),
        ));
    }
    if !(10..=7 * 86_400).contains(&timeout) {
        return Err(ApiError::BadRequest(format!(
            "step_timeout_seconds {timeout} is out of range 10..=604800"
        )));
    }
    let waves = c
        .waves
        .clone()
        .unwrap_or_else(|| DEFAULT_WAVES.iter().map(|w| w.to_string()).collect());
    let mut devices = resolve(&s, c.target.clone()).await?;
    devices.sort();
    devices.dedup();
    if devices.is_empty() {
        return Err(ApiError::BadRequest("the target matches no device".into()));
    }
    let sizes = rollout::wave_sizes(&waves, devices.len()).map_err(ApiError::BadRequest)?;
    let id = new_id();
    let assigned: Vec<(String, i64, String)> = rollout::assign(&id, &devices, &sizes)
        .into_iter()
        .enumerate()
        .map(|(k, (d, w))| (d, w, format!("{id}-{k}")))
        .collect();
    let options = JobOptions {
        install_policy: c.install_policy,
        reboot_policy: c.reboot_policy,
        allow_downgrade: c.allow_downgrade,
        min_version: c.min_version.clone(),
        window: c.window.clone(),
    };
    if options.install_policy == r58_proto::Policy::Manual {
        return Err(ApiError::BadRequest(
            "install_policy is when_idle or force (manual is for reboots)".into(),
        ));
    }
    let options = serde_json::to_value(&options).unwrap_or(Value::Null);
    let target = serde_json::to_value(&c.target).unwrap_or(Value::Null);
    s.db.insert_rollout(&NewRollout {
        id: &id,
        bundle: &bundle,
        target: &target,
        waves: &waves,
        success_percent: success,
        failure_percent: failure,
        step_timeout_s: timeout,
        options: &options,
        created_by: &op.0,
        devices: &assigned,
    })
    .await?;
    tracing::info!(rollout = %id, version = %bundle.version, devices = devices.len(), operator = %op.0, "rollout created");
    detail(&s, &id)
        .await
        .map(|v| (StatusCode::CREATED, Json(v)))
}

async fn detail(s: &AppState, id: &str) -> Result<RolloutDetail, ApiError> {
    let rollout =
        s.db.rollout(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("rollout {id:?}")))?;
    let jobs = s.db.rollout_jobs(id).await?;
    Ok(RolloutDetail {
        rollout,
        summary: RolloutSummary::of(&jobs),
        jobs,
    })
}

pub async fn list(State(s): State<AppState>) -> Result<Json<RolloutList>, ApiError> {
    let mut rollouts = Vec::new();
    for r in s.db.rollouts().await? {
        rollouts.push(detail(&s, &r.id).await?);
    }
    Ok(Json(RolloutList { rollouts }))
}

pub async fn one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RolloutDetail>, ApiError> {
    detail(&s, &id).await.map(Json)
}

/// `POST /api/v1/rollouts/<id>/<pause|resume|abort>`
pub async fn action(
    State(s): State<AppState>,
    Extension(op): Extension<Operator>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<RolloutDetail>, ApiError> {
    let r =
        s.db.rollout(&id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("rollout {id:?}")))?;
    let Some(act) = RolloutAction::parse(&action) else {
        return Err(ApiError::NotFound(format!(
            "rollout action {action:?} (pause, resume, abort)"
        )));
    };
    let done = match act {
        RolloutAction::Pause => {
            s.db.set_rollout_state(
                &id,
                &["running"],
                "paused",
                Some(&format!("paused by {}", op.0)),
            )
            .await?
        }
        RolloutAction::Resume => {
            s.db.set_rollout_state(
                &id,
                &["paused", "halted"],
                "running",
                Some(&format!("resumed by {}", op.0)),
            )
            .await?
        }
        RolloutAction::Abort => {
            rollout::abort(&s.db, s.mqtt.as_ref().ok_or(ApiError::NoBroker)?, &id).await?
        }
    };
    if !done {
        return Err(ApiError::Conflict(format!(
            "rollout {id} is {}: cannot {action}",
            r.state
        )));
    }
    tracing::info!(rollout = %id, %action, operator = %op.0, "rollout steered");
    detail(&s, &id).await.map(Json)
}
