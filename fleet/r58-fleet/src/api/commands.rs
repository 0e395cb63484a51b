//! Commands: send one to a device (published on `cmd/<name>`, QoS 1, with an expiry) and
//! follow the status the device reports.

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use r58_fleet_api::{CommandAnswer, CommandList, CommandsSent, SendCommand, SendToMany, Target};
use rumqttc::QoS;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Operator;
use super::error::{parse_body, ApiError};
use super::AppState;
use crate::db::{now_ms, DeviceFilter, NewCommand};

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n != "status"
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Checks a command's name, arguments and timeout; returns the arguments (`{}` for none)
/// and the timeout in seconds.
fn check(
    name: &str,
    args: Value,
    timeout: Option<u32>,
    default_timeout: u32,
) -> Result<(Value, u32), ApiError> {
    if !valid_name(name) {
        return Err(ApiError::BadRequest(format!(
            "command name {name:?}: use a-z 0-9 . _ - (and not \"status\")"
        )));
    }
    if !(args.is_null() || args.is_object()) {
        return Err(ApiError::BadRequest("args must be a JSON object".into()));
    }
    let timeout = timeout.unwrap_or(default_timeout);
    if !(5..=86_400).contains(&timeout) {
        return Err(ApiError::BadRequest(format!(
            "timeout_seconds {timeout} is out of range 5..=86400"
        )));
    }
    let args = if args.is_null() {
        Value::Object(serde_json::Map::new())
    } else {
        args
    };
    Ok((args, timeout))
}

/// A command id: time-ordered and unique across replicas (ms time + 64 random bits).
fn new_id() -> String {
    let n = crate::devices::random_bytes::<8>()
        .map(u64::from_le_bytes)
        .unwrap_or_else(|_| u64::from(std::process::id()) ^ (now_ms() as u64).rotate_left(17));
    format!("c{:x}-{n:016x}", now_ms())
}

pub async fn send(
    State(s): State<AppState>,
    Extension(op): Extension<Operator>,
    Path(device): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let c: SendCommand = parse_body(&body)?;
    let (args, timeout) = check(&c.name, c.args, c.timeout_seconds, s.command_timeout_s)?;
    let mqtt = s.mqtt.clone().ok_or(ApiError::NoBroker)?;
    s.db.device(&device)
        .await?
        .ok_or_else(|| ApiError::NoDevice(device.clone()))?;
    let id = new_id();
    let expires_at = now_ms() + i64::from(timeout) * 1000;
    s.db.insert_command(&NewCommand {
        id: &id,
        device: &device,
        name: &c.name,
        args: &args,
        created_by: &op.0,
        expires_at,
    })
    .await?;
    let publish = spawn_publish(
        s.db.clone(),
        mqtt,
        c.name.clone(),
        args,
        expires_at,
        vec![(device.clone(), id.clone())],
    );
    publish
        .await
        .map_err(|e| ApiError::Publish(e.to_string()))?
        .map_err(ApiError::Publish)?;
    tracing::info!(%device, command = %c.name, %id, operator = %op.0, "command sent");
    let command =
        s.db.command(&id)
            .await?
            .ok_or_else(|| ApiError::NoCommand(id.clone()))?;
    Ok((StatusCode::ACCEPTED, Json(CommandAnswer { command })))
}

/// The devices a target names (every listed device must exist).
pub(crate) async fn resolve(s: &AppState, target: Target) -> Result<Vec<String>, ApiError> {
    Ok(match target {
        Target::All(true) => {
            s.db.devices(&DeviceFilter::default())
                .await?
                .into_iter()
                .map(|d| d.id)
                .collect()
        }
        Target::All(false) => return Err(ApiError::BadRequest("target.all must be true".into())),
        Target::Tag(t) => {
            s.db.devices(&DeviceFilter {
                tag: Some(t),
                ..Default::default()
            })
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect()
        }
        Target::Devices(list) => {
            for d in &list {
                s.db.device(d)
                    .await?
                    .ok_or_else(|| ApiError::NoDevice(d.clone()))?;
            }
            list
        }
    })
}

/// Publishes stored commands in a task of its own, so that nothing that happens to the
/// HTTP request stops it between the database and the broker. A command that cannot be
/// published (the connection to the broker is gone for good) is marked `failed` with why,
/// and so is every one after it.
fn spawn_publish(
    db: crate::db::Db,
    mqtt: crate::mqtt::publisher::Publisher,
    name: String,
    args: Value,
    expires_at: i64,
    ids: Vec<(String, String)>,
) -> tokio::task::JoinHandle<Result<(), String>> {
    let expires = chrono::DateTime::from_timestamp_millis(expires_at).unwrap_or_default();
    tokio::spawn(async move {
        for (i, (device, id)) in ids.iter().enumerate() {
            let msg = r58_proto::Command {
                id: id.clone(),
                args: args.clone(),
                expires_at: Some(expires),
            };
            let sent = match serde_json::to_vec(&msg) {
                Ok(payload) => mqtt
                    .publish(
                        r58_proto::cmd(device, &name),
                        QoS::AtLeastOnce,
                        false,
                        payload,
                    )
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = sent {
                let why = format!("not published: {e}");
                tracing::error!(command = %name, unsent = ids.len() - i, error = %e, "publishing commands");
                for (device, id) in &ids[i..] {
                    if let Err(err) = db.command_failed(device, id, &name, &why).await {
                        tracing::error!(%device, %id, error = %r58_log::error_chain(&err), "marking an unpublished command failed");
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    })
}

/// `POST /api/v1/commands`: one command to many devices (`{"target": {"all": true}}`,
/// `{"tag": "venue-a"}` or `{"devices": [...]}`): one command row per device, stored in one
/// transaction, then published. Returns how many were sent, and the ids by device.
pub async fn send_many(
    State(s): State<AppState>,
    Extension(op): Extension<Operator>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let c: SendToMany = parse_body(&body)?;
    let (args, timeout) = check(&c.name, c.args, c.timeout_seconds, s.command_timeout_s)?;
    let mqtt = s.mqtt.clone().ok_or(ApiError::NoBroker)?;
    let devices = resolve(&s, c.target).await?;
    let expires_at = now_ms() + i64::from(timeout) * 1000;
    let ids: Vec<(String, String)> = devices.iter().map(|d| (d.clone(), new_id())).collect();
    let rows: Vec<NewCommand<'_>> = ids
        .iter()
        .map(|(d, id)| NewCommand {
            id,
            device: d,
            name: &c.name,
            args: &args,
            created_by: &op.0,
            expires_at,
        })
        .collect();
    let storing = std::time::Instant::now();
    s.db.insert_commands(&rows).await?;
    let stored_secs = storing.elapsed().as_secs_f64();
    // Answered once stored (202): the fan-out goes on in its own task, which an HTTP client
    // giving up cannot stop halfway (a 10 s client timeout at 10 000 devices did: 1 252
    // stored commands were never published).
    let devices = ids.len();
    let (db, name, operator) = (s.db.clone(), c.name.clone(), op.0.clone());
    let publish = spawn_publish(db, mqtt, name.clone(), args, expires_at, ids.clone());
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        if let Ok(Ok(())) = publish.await {
            tracing::info!(command = %name, devices, %operator, stored_secs, published_secs = started.elapsed().as_secs_f64(), "command published to many devices");
        }
    });
    let commands: std::collections::BTreeMap<String, String> = ids.into_iter().collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(CommandsSent {
            sent: commands.len(),
            commands,
        }),
    ))
}

pub async fn one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CommandAnswer>, ApiError> {
    let mut command =
        s.db.command(&id)
            .await?
            .ok_or_else(|| ApiError::NoCommand(id.clone()))?;
    super::guest_path::add_public_link(s.guest_base.as_deref(), &mut command);
    Ok(Json(CommandAnswer { command }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
}

pub async fn of_device(
    State(s): State<AppState>,
    Path(device): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<CommandList>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let mut commands = s.db.commands(Some(&device), None, limit).await?;
    for c in &mut commands {
        super::guest_path::add_public_link(s.guest_base.as_deref(), c);
    }
    Ok(Json(CommandList { commands }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn names_and_ids() {
        assert!(
            super::valid_name("record.start")
                && !super::valid_name("status")
                && !super::valid_name("a/b")
                && !super::valid_name("")
        );
        let (a, b) = (super::new_id(), super::new_id());
        assert_ne!(a, b);
        assert!(a.starts_with('c'));
    }

    #[tokio::test]
    async fn commands_that_cannot_be_published_are_marked_failed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("f.db").display());
        let db = crate::db::Db::open(&url, 2).await.unwrap();
        let args = serde_json::json!({});
        let ids: Vec<(String, String)> = (0..3)
            .map(|i| (format!("r58-{i}"), super::new_id()))
            .collect();
        let rows: Vec<crate::db::NewCommand<'_>> = ids
            .iter()
            .map(|(d, id)| crate::db::NewCommand {
                id,
                device: d,
                name: "ping",
                args: &args,
                created_by: "t",
                expires_at: super::now_ms() + 60_000,
            })
            .collect();
        db.insert_commands(&rows).await.unwrap();
        // A publisher whose connection has stopped for good.
        let r = super::spawn_publish(
            db.clone(),
            crate::mqtt::publisher::Publisher::closed(),
            "ping".into(),
            args.clone(),
            super::now_ms() + 60_000,
            ids.clone(),
        )
        .await
        .unwrap();
        assert!(r.is_err());
        for (_, id) in &ids {
            let c = db.command(id).await.unwrap().unwrap();
            assert_eq!(c.state, "failed", "{c:?}");
            assert!(
                c.message.as_deref().unwrap().starts_with("not published"),
                "{c:?}"
            );
        }
    }
}
