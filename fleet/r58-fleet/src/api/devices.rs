//! Devices: list with filters, one device with its recent telemetry and commands, tags,
//! telemetry history, desired/reported config.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use r58_fleet_api::paths::{DeviceQuery, TelemetryQuery};
use r58_fleet_api::{DesiredVersion, DeviceConfig, DeviceDetail, DeviceList, SetConfig, SetTags};
use rumqttc::QoS;
use serde_json::Value;

use super::error::{parse_body, ApiError};
use super::AppState;
use crate::db::DeviceFilter;

pub async fn list(
    State(s): State<AppState>,
    Query(lq): Query<DeviceQuery>,
) -> Result<Json<DeviceList>, ApiError> {
    let f = DeviceFilter {
        status: lq.status,
        tag: lq.tag,
        version: lq.version,
        q: lq.q,
        updated_since: None,
    };
    Ok(Json(DeviceList {
        devices: s.db.devices(&f).await?,
    }))
}

pub async fn one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeviceDetail>, ApiError> {
    let device =
        s.db.device(&id)
            .await?
            .ok_or_else(|| ApiError::NoDevice(id.clone()))?;
    let telemetry = s.db.telemetry(&id, None, None, 120).await?.telemetry;
    let commands = s.db.commands(Some(&id), None, 20).await?;
    Ok(Json(DeviceDetail {
        device,
        telemetry,
        commands,
    }))
}

pub async fn telemetry(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(t): Query<TelemetryQuery>,
) -> Result<Json<r58_fleet_api::TelemetryPage>, ApiError> {
    let limit = t.limit.unwrap_or(300);
    if !(1..=5000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range 1..=5000"
        )));
    }
    s.db.device(&id)
        .await?
        .ok_or_else(|| ApiError::NoDevice(id.clone()))?;
    let page =
        s.db.telemetry(&id, t.stream.as_deref(), t.since, limit)
            .await?;
    Ok(Json(page))
}

pub async fn set_tags(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let t: SetTags = parse_body(&body)?;
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
) -> Result<Json<DeviceConfig>, ApiError> {
    let d =
        s.db.device(&id)
            .await?
            .ok_or_else(|| ApiError::NoDevice(id.clone()))?;
    Ok(Json(DeviceConfig {
        in_sync: d.reported_version == Some(d.desired_version),
        desired_version: d.desired_version,
        desired: d.desired,
        reported_version: d.reported_version,
        reported: d.reported,
        errors: d.reported_errors,
    }))
}

/// Replaces the desired settings (dotted keys of r58.toml, e.g. `"recorder.segment_seconds": 10`),
/// bumps the version and publishes the retained `twin/desired`. The device checks every key
/// and reports what it applied, or per-key errors.
pub async fn set_config(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<DesiredVersion>, ApiError> {
    let d: SetConfig = parse_body(&body)?;
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
    Ok(Json(DesiredVersion {
        desired_version: version,
    }))
}
