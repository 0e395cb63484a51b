//! Operator authentication: `Authorization: Bearer <token>` (CLI, scripts) or the session
//! cookie set by the dashboard's login (HttpOnly, SameSite=Strict). Tokens are looked up
//! by their SHA-256 on every request, so a revocation or a change of role applies at once
//! on every replica. Each route needs a role ([`required_role`]).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::{parse_body, ApiError};
use super::AppState;
use crate::db::Role;
use crate::devices::token_hash;
use r58_fleet_api::session::Login;

pub const COOKIE: &str = "r58_fleet_token";

/// The authenticated operator, for handlers that record who did what.
#[derive(Debug, Clone)]
pub struct Operator(pub String);

/// The authenticated operator's role.
#[derive(Debug, Clone, Copy)]
pub struct OperatorRole(pub Role);

/// The routes that open a box's web UI through its tunnel (its root, and below): `admin`
/// only; they answer with the box's own path under `/b/` (see `box_ui`).
pub const BOX_UI_ROOT: &str = "/api/v1/devices/:id/ui/";
pub const BOX_UI_ROUTE: &str = "/api/v1/devices/:id/ui/*path";

/// The route of an admin's port forward through a box's tunnel.
pub const DEVICE_PORT_ROUTE: &str = "/api/v1/devices/:id/port/:port";

fn is_box_ui(path: &str) -> bool {
    path == BOX_UI_ROOT || path == BOX_UI_ROUTE
}

/// The role a request needs: reading needs `viewer`; publishing bundles, starting or
/// steering rollouts, reaching a box through its tunnel, closing a tunnel session and the
/// fleet-wide remote-access switch `admin`;
/// every other change
/// (commands, desired configuration, tags) `operator`. `path` is the route's pattern.
pub fn required_role(method: &Method, path: &str) -> Role {
    if is_box_ui(path) || path == DEVICE_PORT_ROUTE {
        return Role::Admin;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Role::Viewer;
    }
    match path {
        "/api/v1/bundles"
        | "/api/v1/rollouts"
        | "/api/v1/rollouts/:id/:action"
        | "/api/v1/tunnel-sessions/:id"
        | "/api/v1/remote-access" => Role::Admin,
        _ => Role::Operator,
    }
}

/// Where a request's token came from: a browser sends the cookie by itself, so only then can
/// a request have been forged by another site.
#[derive(Debug, PartialEq)]
enum Source {
    Header,
    Cookie,
}

fn token(headers: &HeaderMap) -> Option<(String, Source)> {
    if let Some(t) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some((t.trim().to_string(), Source::Header));
    }
    cookie_token(headers).map(|t| (t, Source::Cookie))
}

/// The operator token in the session cookie.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The `Cookie` header without the fleet's session cookie (for a box behind a tunnel).
pub fn without_session_cookie(value: &str) -> String {
    value
        .split(';')
        .map(str::trim)
        .filter(|kv| kv.split_once('=').map_or(true, |(k, _)| k != COOKIE))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A change (any method but GET/HEAD/OPTIONS) authenticated by the cookie must come from the
/// dashboard's own pages: `Sec-Fetch-Site: same-origin`, or, from a browser without it, an
/// `Origin` naming this server's host. Neither header: refused (browsers send one of them
/// with every such request; scripts use the `Authorization` header).
fn same_site(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return if site == "same-origin" {
            Ok(())
        } else {
            Err(ApiError::CrossSite(format!(
                "a change from another site (Sec-Fetch-Site: {site}) is refused"
            )))
        };
    }
    let host = get("x-forwarded-host").or_else(|| get("host"));
    match (get("origin"), host) {
        (Some(origin), Some(host))
            if origin
                .split_once("://")
                .is_some_and(|(_, h)| h.eq_ignore_ascii_case(host)) =>
        {
            Ok(())
        }
        (Some(origin), _) => Err(ApiError::CrossSite(format!(
            "a change from {origin} is refused"
        ))),
        (None, _) => Err(ApiError::CrossSite(
            "a change with the session cookie needs Sec-Fetch-Site or Origin \
             (scripts: use Authorization: Bearer)"
                .into(),
        )),
    }
}

async fn operator(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(String, Role), ApiError> {
    let (t, source) = token(headers).ok_or(ApiError::NoToken)?;
    if source == Source::Cookie {
        same_site(method, headers)?;
    }
    state
        .db
        .operator_by_token(&token_hash(&t))
        .await?
        .ok_or(ApiError::BadToken)
}

pub async fn require(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    match operator(&state, req.method(), req.headers()).await {
        Ok((name, role)) => {
            let needed = required_role(req.method(), &path);
            if role < needed {
                return ApiError::Forbidden(format!(
                    "{name} is {}: {} {path} needs {}",
                    role.as_str(),
                    req.method(),
                    needed.as_str()
                ))
                .into_response();
            }
            req.extensions_mut().insert(Operator(name));
            req.extensions_mut().insert(OperatorRole(role));
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/session {"token": …}`: checks the token and sets the session cookie.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let l: Login = parse_body(&body)?;
    let (name, role) = state
        .db
        .operator_by_token(&token_hash(l.token.trim()))
        .await?
        .ok_or(ApiError::BadToken)?;
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v == "https");
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000{}",
        l.token.trim(),
        if https { "; Secure" } else { "" }
    );
    let mut resp = Json(r58_fleet_api::Session {
        operator: name,
        role,
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

pub async fn logout() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("r58_fleet_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_from_header_or_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(token(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; r58_fleet_token=tok1"),
        );
        assert_eq!(token(&h), Some(("tok1".into(), Source::Cookie)));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok2"),
        );
        assert_eq!(token(&h), Some(("tok2".into(), Source::Header)));
    }

    #[test]
    fn cookie_changes_only_from_the_same_site() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let post = Method::POST;
        assert!(same_site(&Method::GET, &h(&[])).is_ok());
        assert!(same_site(&post, &h(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(same_site(&post, &h(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_site(&post, &h(&[("sec-fetch-site", "same-site")])).is_err());
        let ok = h(&[
            ("origin", "https://fleet.example.com"),
            ("host", "fleet.example.com"),
        ]);
        assert!(same_site(&post, &ok).is_ok());
        let evil = h(&[
            ("origin", "https://evil.example"),
            ("host", "fleet.example.com"),
        ]);
        assert!(same_site(&post, &evil).is_err());
        assert!(same_site(&post, &h(&[("host", "fleet.example.com")])).is_err());
    }
}
