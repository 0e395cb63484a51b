//! Remote access through the boxes' tunnels (docs/remote-access.md): which boxes have one
//! open, and a box's web UI through it.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Json;
use hyper_util::rt::TokioIo;
use r58_fleet_api::TunnelList;

use super::auth::without_session_cookie;
use super::error::ApiError;
use super::AppState;

/// `GET /api/v1/tunnels`.
pub async fn list(State(s): State<AppState>) -> Result<Json<TunnelList>, ApiError> {
    let relay = s.relay.as_ref().ok_or(ApiError::NoRelay)?;
    Ok(Json(TunnelList {
        devices: relay.devices(),
    }))
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

/// `ANY /api/v1/devices/:id/ui/*path`: the request, as `/<path>?<query>`, to the box's web
/// UI through its tunnel, and the box's answer back. The fleet's session cookie stays
/// here; the box's own `Authorization` goes on.
pub async fn ui(
    State(s): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(s, id, path, req, Caller::Operator).await
}

/// `ANY /api/v1/devices/:id/ui/`: the box's UI root, as [`ui`].
pub async fn ui_root(
    State(s): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    forward(s, id, String::new(), req, Caller::Operator).await
}

/// Who a request through a tunnel comes from, which decides the cookies passed on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Caller {
    /// An admin: the fleet's session cookie stays here, the box's own cookies go on.
    Operator,
    /// A guest on the public path: no cookie goes to the box.
    Guest,
}

/// `req` as `/<path>?<query>` to the box's web UI through its tunnel, and the box's answer
/// back: hop-by-hop headers stay, `Host` names the box's loopback.
pub async fn forward(
    s: AppState,
    id: String,
    path: String,
    req: Request,
    caller: Caller,
) -> Result<Response, ApiError> {
    let relay = s.relay.as_ref().ok_or(ApiError::NoRelay)?;
    let tunnel = relay
        .tunnel(&id)
        .ok_or_else(|| ApiError::NotFound(format!("open tunnel of device {id:?}")))?;
    let stream = tunnel
        .open(s.ui_port)
        .await
        .map_err(|e| ApiError::BadGateway(format!("device {id}: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ApiError::BadGateway(format!("device {id}: HTTP: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "a request through a tunnel ended");
        }
    });
    let (mut parts, body) = req.into_parts();
    let target = match parts.uri.query() {
        Some(q) => format!("/{path}?{q}"),
        None => format!("/{path}"),
    };
    parts.uri = target
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("path {target:?}: {e}")))?;
    parts.version = axum::http::Version::HTTP_11;
    let headers = &mut parts.headers;
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    let cookies: Vec<String> = match caller {
        Caller::Operator => headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(without_session_cookie)
            .filter(|c| !c.is_empty())
            .collect(),
        Caller::Guest => Vec::new(),
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
