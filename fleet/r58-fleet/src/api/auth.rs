//! Operator authentication: `Authorization: Bearer <token>` (CLI, scripts) or the session
//! cookie set by the dashboard's login (HttpOnly, SameSite=Strict). Tokens are looked up
//! by their SHA-256 on every request, so a revocation applies at once on every replica.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::error::{parse_body, ApiError};
use super::AppState;
use crate::devices::token_hash;

pub const COOKIE: &str = "r58_fleet_token";

/// The authenticated operator, for handlers that record who did what.
#[derive(Debug, Clone)]
pub struct Operator(pub String);

fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

async fn operator(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let t = token(headers).ok_or(ApiError::NoToken)?;
    state
        .db
        .operator_by_token(&token_hash(&t))
        .await?
        .ok_or(ApiError::BadToken)
}

pub async fn require(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match operator(&state, req.headers()).await {
        Ok(name) => {
            req.extensions_mut().insert(Operator(name));
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    token: String,
}

/// `POST /api/v1/session {"token": …}`: checks the token and sets the session cookie.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let l: Login = parse_body(&body)?;
    let name = state
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
    let mut resp = Json(serde_json::json!({ "operator": name })).into_response();
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
        assert_eq!(token(&h).as_deref(), Some("tok1"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok2"),
        );
        assert_eq!(token(&h).as_deref(), Some("tok2"));
    }
}
