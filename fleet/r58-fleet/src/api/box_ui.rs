//! A box's web UI through its tunnel, on a path of its own that keeps the box's pages away
//! from the fleet's session (docs/remote-access.md, threat model).
//!
//! An admin opens `/api/v1/devices/<id>/ui/<path>`; the fleet records a grant for that
//! admin and box and answers `303` to `/b/<grant>/<path>`. Requests under `/b/<grant>/` go
//! to that box only, authorised by the grant (the random path), not by the fleet's cookie.
//! Every answer from there carries `Content-Security-Policy: sandbox` without
//! `allow-same-origin`: the box's pages run in an opaque origin, so a box that lies cannot
//! use the admin's fleet session, read the fleet's pages or another box's, or set the
//! fleet's cookies. Their own requests to `/b/<grant>/…` are cross-origin (origin `null`),
//! answered with CORS for that origin.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::auth::Operator;
use super::error::ApiError;
use super::tunnels::{forward, Caller};
use super::AppState;
use crate::db::{now_ms, UiGrant};

/// The sandbox of the box's pages: scripts, forms, downloads and new windows, never the
/// fleet's origin.
const SANDBOX: &str = "sandbox allow-scripts allow-forms allow-downloads allow-popups allow-modals";

/// `GET /api/v1/devices/:id/ui/` (admin).
pub async fn open_root(
    State(s): State<AppState>,
    Extension(op): Extension<Operator>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    open(s, op, id, String::new(), req).await
}

/// `GET /api/v1/devices/:id/ui/*path` (admin).
pub async fn open_path(
    State(s): State<AppState>,
    Extension(op): Extension<Operator>,
    Path((id, path)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    open(s, op, id, path, req).await
}

async fn open(
    s: AppState,
    op: Operator,
    id: String,
    path: String,
    req: Request,
) -> Result<Response, ApiError> {
    let relay = s.relay.as_ref().ok_or(ApiError::NoRelay)?;
    if !s.db.remote_access().await?.enabled {
        return Err(ApiError::RemoteAccessOff);
    }
    if relay.tunnel(&id).is_none() {
        return Err(ApiError::NotFound(format!("open tunnel of device {id:?}")));
    }
    let grant: String = crate::devices::random_bytes::<24>()
        .map_err(|e| ApiError::Storage(e.to_string()))?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let lifetime = i64::try_from(s.ui_grant.as_millis()).unwrap_or(i64::MAX);
    s.db.create_ui_grant(
        &crate::devices::token_hash(&grant),
        &UiGrant {
            device: id.clone(),
            operator: op.0.clone(),
        },
        now_ms().saturating_add(lifetime),
    )
    .await?;
    tracing::info!(device = %id, by = %op.0, "box UI opened through the fleet");
    let location = match req.uri().query() {
        Some(q) => format!("/b/{grant}/{path}?{q}"),
        None => format!("/b/{grant}/{path}"),
    };
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::REFERRER_POLICY, "no-referrer".to_string()),
        ],
    )
        .into_response())
}

/// `ANY /b/:grant/`.
pub async fn serve_root(
    State(s): State<AppState>,
    Path(grant): Path<String>,
    req: Request,
) -> Response {
    serve(s, grant, String::new(), req).await
}

/// `ANY /b/:grant/*path`.
pub async fn serve_path(
    State(s): State<AppState>,
    Path((grant, path)): Path<(String, String)>,
    req: Request,
) -> Response {
    serve(s, grant, path, req).await
}

async fn serve(s: AppState, grant: String, path: String, req: Request) -> Response {
    let from_sandbox = req
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|o| o == "null");
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        // The box's own pages asking before a request with a token or a body.
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, if-match"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        match through(&s, &grant, path, req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    };
    harden(resp.headers_mut(), from_sandbox);
    resp
}

async fn through(
    s: &AppState,
    grant: &str,
    path: String,
    req: Request,
) -> Result<Response, ApiError> {
    let g = s
        .db
        .ui_grant(&crate::devices::token_hash(grant))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(
                "box UI session (expired or never opened): open the box's UI again from the dashboard"
                    .into(),
            )
        })?;
    forward(s.clone(), g.device, path, req, Caller::Operator(g.operator)).await
}

/// What every answer under `/b/` carries, whatever the box said.
fn harden(h: &mut HeaderMap, from_sandbox: bool) {
    h.remove(header::SET_COOKIE);
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SANDBOX),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
    h.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
    if from_sandbox {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("null"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("location, etag, content-length"),
        );
    }
    h.append(header::VARY, HeaderValue::from_static("origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_cannot_set_cookies_or_leave_the_sandbox() {
        let mut h = HeaderMap::new();
        h.insert(
            header::SET_COOKIE,
            HeaderValue::from_static("r58_fleet_token=x; Path=/"),
        );
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src *"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        harden(&mut h, false);
        assert!(h.get(header::SET_COOKIE).is_none());
        assert_eq!(h.get_all(header::CONTENT_SECURITY_POLICY).iter().count(), 1);
        assert!(!h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("allow-same-origin"));
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        harden(&mut h, true);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "null");
    }
}
