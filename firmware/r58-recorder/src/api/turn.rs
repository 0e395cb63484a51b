//! `GET /api/turn-credentials`: the cached credentials (rate limited per client,
//! `Cache-Control: no-store`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use r58_turn::TurnError;

use super::{ApiError, AppState};

pub async fn credentials(
    State(rec): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let Some(turn) = rec.turn.get() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "turn_unavailable",
            "TURN is starting",
        )
        .into_response();
    };
    if !turn.limiter.allow(peer.ip()) {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry in a few seconds",
        )
        .into_response();
    }
    match turn.service.get_json().await {
        Ok(json) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_TYPE, "application/json"),
            ],
            json,
        )
            .into_response(),
        Err(e @ (TurnError::NoProviders | TurnError::Unavailable { .. })) => {
            let mut resp = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "turn_unavailable",
                e.to_string(),
            )
            .into_response();
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            resp
        }
    }
}
