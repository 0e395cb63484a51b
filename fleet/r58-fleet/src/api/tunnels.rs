//! Remote access through the boxes' tunnels (docs/remote-access.md): which boxes have one
//! open, and a box's web UI through it.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Extension;
use axum::Json;
use hyper_util::rt::TokioIo;
use r58_fleet_api::{RemoteAccessSwitch, SetRemoteAccess, TunnelList, TunnelSessionList};
use r58_tunnel::relay::TunnelStream;
use serde::Deserialize;

use super::auth::{without_session_cookie, Operator};
use super::error::ApiError;
use super::AppState;
use crate::tunnel_sessions::Opening;

/// `GET /api/v1/remote-access`: the fleet-wide switch.
pub async fn remote_access(
    State(s): State<AppState>,
) -> Result<Json<RemoteAccessSwitch>, ApiError> {
    Ok(Json(s.db.remote_access().await?))
}

/// `PUT /api/v1/remote-access` (admin): turns remote access on or off for the whole fleet.
/// Off ends the sessions this process holds at once; other fleet processes end theirs
/// within [`crate::tunnel_sessions::REQUESTS_EVERY`].
pub async fn set_remote_access(
    State(s): State<AppState>,
    Extension(op): Extension<Operator>,
    Json(body): Json<SetRemoteAccess>,
) -> Result<Json<RemoteAccessSwitch>, ApiError> {
    let switch = s.db.set_remote_access(body.enabled, &op.0).await?;
    let closed = if body.enabled {
        0
    } else {
        s.sessions.close_all_remote_access_off()
    };
    tracing::warn!(enabled = body.enabled, by = %op.0, closed, "fleet-wide remote access switched");
    Ok(Json(switch))
}

/// A new stream to `port` of the box `id`, if the fleet-wide switch is on and the box has a
/// tunnel open. The one way the API reaches into a box.
pub async fn open_stream(s: &AppState, id: &str, port: u16) -> Result<TunnelStream, ApiError> {
    let relay = s.relay.as_ref().ok_or(ApiError::NoRelay)?;
    if !s.db.remote_access().await?.enabled {
        return Err(ApiError::RemoteAccessOff);
    }
    let tunnel = relay
        .tunnel(id)
        .ok_or_else(|| ApiError::NotFound(format!("open tunnel of device {id:?}")))?;
    tunnel
        .open(port)
        .await
        .map_err(|e| ApiError::BadGateway(format!("device {id}: {e}")))
}

/// `GET /api/v1/tunnels`.
pub async fn list(State(s): State<AppState>) -> Result<Json<TunnelList>, ApiError> {
    let relay = s.relay.as_ref().ok_or(ApiError::NoRelay)?;
    Ok(Json(TunnelList {
        devices: relay.devices(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    device: Option<String>,
    #[serde(default)]
    open: bool,
}

/// `GET /api/v1/tunnel-sessions[?device=<id>][&open=true]`: the audit, newest first.
pub async fn sessions(
    State(s): State<AppState>,
    Query(q): Query<SessionQuery>,
) -> Result<Json<TunnelSessionList>, ApiError> {
    Ok(Json(TunnelSessionList {
        sessions: s.db.tunnel_sessions(q.device.as_deref(), q.open).await?,
    }))
}

/// `DELETE /api/v1/tunnel-sessions/:id`: ends an open session: at once when this fleet
/// process holds it (`204`), else the process that holds it ends it within
/// [`crate::tunnel_sessions::REQUESTS_EVERY`] (`202`).
pub async fn close_session(
    State(s): State<AppState>,
    Extension(op): Extension<Operator>,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    if s.sessions.close(&id) {
        tracing::info!(session = %id, by = %op.0, "tunnel session closed by an operator");
        return Ok(axum::http::StatusCode::NO_CONTENT);
    }
    if s.db.request_tunnel_session_close(&id, &op.0).await? {
        tracing::info!(session = %id, by = %op.0, "close of a tunnel session another fleet process holds requested");
        return Ok(axum::http::StatusCode::ACCEPTED);
    }
    Err(ApiError::NotFound(format!("open tunnel session {id:?}")))
}

/// Headers that belong to one hop and are not passed on.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Who a request through a tunnel comes from: the audit's `opened_by`, and the cookies
/// passed on.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// An admin, by name: the fleet's session cookie stays here, the box's own cookies go on.
    Operator(String),
    /// A guest on the public path, by source address: no cookie goes to the box.
    Guest(std::net::IpAddr),
}

impl Caller {
    fn kind(&self) -> &'static str {
        match self {
            Self::Operator(_) => "ui",
            Self::Guest(_) => "guest",
        }
    }

    fn name(&self) -> String {
        match self {
            Self::Operator(name) => name.clone(),
            Self::Guest(addr) => format!("guest {addr}"),
        }
    }
}

/// `req` as `/<path>?<query>` to the box's web UI through its tunnel, as an audited session,
/// and the box's answer back: hop-by-hop headers stay, `Host` names the box's loopback.
pub async fn forward(
    s: AppState,
    id: String,
    path: String,
    req: Request,
    caller: Caller,
) -> Result<Response, ApiError> {
    let stream = open_stream(&s, &id, s.ui_port).await?;
    let (mut parts, body) = req.into_parts();
    let target = match parts.uri.query() {
        Some(q) => format!("/{path}?{q}"),
        None => format!("/{path}"),
    };
    let (near, far) = tokio::io::duplex(64 * 1024);
    s.sessions
        .run(
            Opening {
                device: id.clone(),
                kind: caller.kind(),
                opened_by: caller.name(),
                port: s.ui_port,
                target: format!("{} /{path}", parts.method),
            },
            far,
            stream,
        )
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(near))
        .await
        .map_err(|e| ApiError::BadGateway(format!("device {id}: HTTP: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "a request through a tunnel ended");
        }
    });
    parts.uri = target
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("path {target:?}: {e}")))?;
    parts.version = axum::http::Version::HTTP_11;
    let headers = &mut parts.headers;
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    let cookies: Vec<String> = match caller {
        Caller::Operator(_) => headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(without_session_cookie)
            .filter(|c| !c.is_empty())
            .collect(),
        Caller::Guest(_) => Vec::new(),
    };
    headers.remove(header::COOKIE);
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            headers.append(header::COOKIE, v);
        }
    }
    // The box answers to its own name only.
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&format!("127.0.0.1:{}", s.ui_port))
            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
    );
    let answer = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|e| ApiError::BadGateway(format!("device {id}: HTTP: {e}")))?;
    Ok(answer.map(Body::new))
}
