//! The web dashboard: static pages and scripts compiled into the binary; they read the
//! REST API and follow `/api/v1/events` (server-sent events). No data is in these files, so
//! they are served without a token; the API they call is not.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

fn page(body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { page(include_str!("index.html")) }))
        .route(
            "/device/:id",
            get(|| async { page(include_str!("device.html")) }),
        )
        .route("/login", get(|| async { page(include_str!("login.html")) }))
        .route(
            "/updates",
            get(|| async { page(include_str!("rollouts.html")) }),
        )
        .route(
            "/remote",
            get(|| async { page(include_str!("remote.html")) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css", include_str!("app.css")) }),
        )
        .route(
            "/assets/common.js",
            get(|| async { asset("text/javascript", include_str!("common.js")) }),
        )
        .route(
            "/assets/devices.js",
            get(|| async { asset("text/javascript", include_str!("devices.js")) }),
        )
        .route(
            "/assets/device.js",
            get(|| async { asset("text/javascript", include_str!("device.js")) }),
        )
        .route(
            "/assets/remote.js",
            get(|| async { asset("text/javascript", include_str!("remote.js")) }),
        )
        .route(
            "/assets/rollouts.js",
            get(|| async { asset("text/javascript", include_str!("rollouts.js")) }),
        )
}
