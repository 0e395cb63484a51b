//! The box's own pages, public on purpose (they hold no data; everything they show comes
//! from the API with a token): `/`, the local UI for the people at the venue (sign in with
//! the API token, inputs, recording, guests and invites, recordings), and `/guest_join`, the
//! guest page (its invite is what it sends to `/whip`).

use axum::http::header;
use axum::response::{IntoResponse, Response};

fn html(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn ui() -> Response {
    html(include_str!("pages/index.html"))
}

pub async fn guest() -> Response {
    html(include_str!("pages/guest_join.html"))
}
