//! The R58 fleet service. This crate holds its TURN credential API and the device registry;
//! inventory, commands and rollouts come with the fleet and OTA issues.

pub mod config;
pub mod coturn;
pub mod devices;
pub mod error;
pub mod turn_api;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use error::FleetError;

pub fn router(turn: Arc<turn_api::TurnApi>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route("/turn/credentials", post(turn_api::credentials))
        .with_state(turn)
}

/// Loads the configuration and serves until SIGTERM or Ctrl-C.
pub async fn serve(cfg: config::FleetConfig) -> Result<(), FleetError> {
    let turn = Arc::new(turn_api::TurnApi::from_config(&cfg)?);
    let addr = cfg.http.listen;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| FleetError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| FleetError::Bind { addr, source })?;
    tracing::info!(%bound, backend = ?cfg.turn.backend, "r58-fleet serving");
    axum::serve(listener, router(turn))
        .with_graceful_shutdown(async {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        })
        .await
        .map_err(FleetError::Serve)
}

/// Adds a device or rotates its token; returns the new token (shown once, stored hashed).
pub fn issue_device_token(devices_file: &std::path::Path, id: &str) -> Result<String, FleetError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return Err(FleetError::BadDeviceId(id.to_string()));
    }
    let mut devices = devices::Devices::load(devices_file)?;
    let token = devices::new_token()?;
    devices.devices.insert(id.to_string(), devices::Device { token_sha256: devices::token_hash(&token), revoked: false });
    devices.save(devices_file)?;
    Ok(token)
}

/// Revokes a device's token; false when the device is unknown.
pub fn revoke_device(devices_file: &std::path::Path, id: &str) -> Result<bool, FleetError> {
    let mut devices = devices::Devices::load(devices_file)?;
    let Some(d) = devices.devices.get_mut(id) else { return Ok(false) };
    d.revoked = true;
    devices.save(devices_file)?;
    Ok(true)
}
