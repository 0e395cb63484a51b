//! Devices: list with filters, one device with its recent telemetry and commands, tags,
//! telemetry history, desired/reported config.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use rumqttc::QoS;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{parse_body, ApiError};
use super::AppState;
use crate::db::DeviceFilter;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    tag: Option<String>,
    version: Option<String>,
    q: Option<String>,
}

pub async fn list(
    State(s): State<AppState>,
    Query(lq): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let f = DeviceFilter {
        status: lq.status,
        tag: lq.tag,
        version: lq.version,
        q: lq.q,
        updated_since: None,
    };
    Ok(Json(json!({ "devices": s.db.devices(&f).await? })))
}

pub async fn one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let d =
        s.db.device(&id)
            .await?
            .ok_or_else(|| ApiError::NoDevice(id.clone()))?;
    let telemetry = s.db.telemetry(&id, None, None, 120).await?.rows;
    let commands = s.db.commands(Some(&id), None, 20).await?;
    Ok(Json(
        json!({ "device": d, "telemetry": telemetry, "commands": commands }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryQuery {
    stream: Option<String>,
    since: Option<i64>,
    limit: Option<i64>,
}

pub async fn telemetry(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(t): Query<TelemetryQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = t.limit.unwrap_or(300);
    if !(1..=5000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range 1..=5000"
        )));
    }
    s.db.device(&id)
        .await?
        .ok_or_else(|| ApiError::NoDevice(id.clone()))?;
    let samples =
        s.db.telemetry(&id, t.stream.as_deref(), t.since, limit)
            .await?;
    Ok(Json(
        json!({ "telemetry": samples.rows, "truncated": samples.truncated }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tags {
    tags: Vec<String>,
}

pub async fn set_tags(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let t: Tags = parse_body(&body)?;
    if let Some(bad) = t.tags.iter().find(|t| {
        t.is_empty()
            || t.len() > 64
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    }) {
        return Err(ApiError::BadRequest(format!(
            "tag {bad:?}: use 1-64 characters of a-z A-Z 0-9 - _ . :"
        )));
    }
    if !s.db.set_tags(&id, &t.tags).await? {
        return Err(ApiError::NoDevice(id));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_config(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let d =
        s.db.device(&id)
            .await?
            .ok_or_else(|| ApiError::NoDevice(id.clone()))?;
    Ok(Json(json!({
        "desired_version": d.desired_version, "desired": d.desired,
        "reported_version": d.reported_version, "reported": d.reported, "errors": d.reported_errors,
        "in_sync": d.reported_version == Some(d.desired_version),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Desired {
    settings: serde_json::Map<String, Value>,
}

/// Replaces the desired settings (dotted keys of r58.toml, e.g. `"recorder.segment_seconds": 10`),
/// bumps the version and publishes the retained `twin/desired`. The device checks every key
/// and reports what it applied, or per-key errors.
pub async fn set_config(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let d: Desired = parse_body(&body)?;
    if let Some(k) = d
        .settings
        .keys()
        .find(|k| k.is_empty() || k.starts_with('.') || k.ends_with('.') || k.contains(".."))
    {
        return Err(ApiError::BadRequest(format!(
            "setting key {k:?} is not a dotted key"
        )));
    }
    let mqtt = s.mqtt.clone().ok_or(ApiError::NoBroker)?;
    let settings = Value::Object(d.settings);
    let version =
        s.db.set_desired(&id, &settings)
            .await?
            .ok_or_else(|| ApiError::NoDevice(id.clone()))?;
    mqtt.publish(
        r58_proto::twin_desired(&id),
        QoS::AtLeastOnce,
        true,
        crate::mqtt::desired_doc(version, &settings),
    )
    .await
    .map_err(|e| ApiError::Publish(e.to_string()))?;
    Ok(Json(json!({ "desired_version": version })))
}
