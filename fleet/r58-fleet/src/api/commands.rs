//! Commands: send one to a device (published on `cmd/<name>`, QoS 1, with an expiry) and
//! follow the status the device reports.

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use rumqttc::v5::mqttbytes::QoS;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Operator;
use super::error::{parse_body, ApiError};
use super::AppState;
use crate::db::{now_ms, NewCommand};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Send {
    name: String,
    #[serde(default)]
    args: Value,
    timeout_seconds: Option<u32>,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n != "status" && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// A command id: time-ordered and unique across replicas (ms time + 64 random bits).
fn new_id() -> String {
    let mut r = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut r)).is_ok();
    let n = if random { u64::from_le_bytes(r) } else { u64::from(std::process::id()) ^ (now_ms() as u64).rotate_left(17) };
    format!("c{:x}-{n:016x}", now_ms())
}

pub async fn send(
    State(s): State<AppState>,
    Extension(op): Extension<Operator>,
    Path(device): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let c: Send = parse_body(&body)?;
    if !valid_name(&c.name) {
        return Err(ApiError::BadRequest(format!("command name {:?}: use a-z 0-9 . _ - (and not \"status\")", c.name)));
    }
    if !(c.args.is_null() || c.args.is_object()) {
        return Err(ApiError::BadRequest("args must be a JSON object".into()));
    }
    let timeout = c.timeout_seconds.unwrap_or(s.command_timeout_s);
    if !(5..=86_400).contains(&timeout) {
        return Err(ApiError::BadRequest(format!("timeout_seconds {timeout} is out of range 5..=86400")));
    }
    let mqtt = s.mqtt.clone().ok_or(ApiError::NoBroker)?;
    s.db.device(&device).await?.ok_or_else(|| ApiError::NoDevice(device.clone()))?;
    let id = new_id();
    let expires_at = now_ms() + i64::from(timeout) * 1000;
    let args = if c.args.is_null() { json!({}) } else { c.args };
    s.db.insert_command(&NewCommand { id: &id, device: &device, name: &c.name, args: &args, created_by: &op.0, expires_at }).await?;
    let expires = chrono::DateTime::from_timestamp_millis(expires_at).unwrap_or_default();
    let msg = r58_proto::Command { id: id.clone(), args, expires_at: Some(expires) };
    let payload = serde_json::to_vec(&msg).map_err(|e| ApiError::Publish(e.to_string()))?;
    mqtt.publish(r58_proto::cmd(&device, &c.name), QoS::AtLeastOnce, false, payload)
        .await
        .map_err(|e| ApiError::Publish(e.to_string()))?;
    tracing::info!(%device, command = %c.name, %id, operator = %op.0, "command sent");
    let row = s.db.command(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "command": row }))))
}

pub async fn one(State(s): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let c = s.db.command(&id).await?.ok_or_else(|| ApiError::NoCommand(id.clone()))?;
    Ok(Json(json!({ "command": c })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
}

pub async fn of_device(State(s): State<AppState>, Path(device): Path<String>, Query(q): Query<ListQuery>) -> Result<impl IntoResponse, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    Ok(Json(json!({ "commands": s.db.commands(Some(&device), None, limit).await? })))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn names_and_ids() {
        assert!(super::valid_name("record.start") && !super::valid_name("status") && !super::valid_name("a/b") && !super::valid_name(""));
        let (a, b) = (super::new_id(), super::new_id());
        assert_ne!(a, b);
        assert!(a.starts_with('c'));
    }
}
