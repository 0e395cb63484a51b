//! An admin's port forward through a box's tunnel (`r58-fleet tunnel`): an HTTP/1.1 upgrade
//! that turns the connection into the bytes of one TCP connection to a port of the box.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Extension;
use hyper_util::rt::TokioIo;
use r58_fleet_api::tunnels::PORT_UPGRADE;

use super::auth::Operator;
use super::error::ApiError;
use super::AppState;
use crate::tunnel_sessions::Opening;

/// `GET /api/v1/devices/:id/port/:port` with `Upgrade: r58-tunnel`. The box decides which
/// of its ports it opens (`remote_access.ports`); a refusal is a 502 with its reason. The
/// session is in the audit before the `101` goes out.
pub async fn port(
    State(s): State<AppState>,
    Extension(op): Extension<Operator>,
    Path((id, port)): Path<(String, u16)>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let asks = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(PORT_UPGRADE));
    if !asks {
        return Err(ApiError::BadRequest(format!(
            "a port forward needs `Connection: upgrade` and `Upgrade: {PORT_UPGRADE}`"
        )));
    }
    let stream = super::tunnels::open_stream(&s, &id, port).await?;
    let (near, far) = tokio::io::duplex(64 * 1024);
    let session = s
        .sessions
        .run(
            Opening {
                device: id.clone(),
                kind: "port",
                opened_by: op.0.clone(),
                port,
                target: format!("port {port}"),
            },
            far,
            stream,
        )
        .await?;
    tracing::info!(device = %id, port, by = %op.0, %session, "port forward opened");
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(up) => {
                let mut near = near;
                let mut up = TokioIo::new(up);
                // The session's own task counts, limits and audits the bytes; this end
                // only joins the caller's connection to it.
                let _ = tokio::io::copy_bidirectional(&mut up, &mut near).await;
            }
            Err(e) => tracing::debug!(%session, error = %e, "a port forward never upgraded"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, PORT_UPGRADE)
        .body(Body::empty())
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}
