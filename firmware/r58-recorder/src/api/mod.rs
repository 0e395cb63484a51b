//! The recorder's HTTP API (axum). Every endpoint but the public ones ([`PUBLIC`]) needs
//! `Authorization: Bearer <api.token>`; a request for a host name the box does not answer to
//! is refused first (DNS rebinding). See docs/recorder-api.md.

mod error;
mod guests;
mod host;
mod metrics;
mod pages;
mod recordings;
mod status;
mod turn;
mod whip;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use tower_http::services::ServeDir;

pub use error::{parse_body, ApiError};

use crate::service::Recorder;

pub type AppState = Arc<Recorder>;

/// What answers without the API token: the health check (systemd, the field scenarios, a
/// load balancer), the box's pages (static: they call the API with a token or an invite),
/// and WHIP under [`GUEST_PREFIX`], whose credential is a guest's invite.
pub const PUBLIC: &[&str] = &["/healthz", "/", "/guest_join"];
pub const GUEST_PREFIX: &str = "/whip";

pub fn router(recorder: Arc<Recorder>) -> Router {
    let hls_dir = recorder.cfg.hls.dir.clone();
    let hosts = host::Allowed::new(&recorder.cfg.api.allowed_hosts);
    Router::new()
        .route("/healthz", get(status::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/status", get(status::status))
        .route("/api/inputs", get(status::inputs))
        .route("/api/turn-credentials", get(turn::credentials))
        .route("/api/recordings", get(recordings::list))
        .route("/api/recordings/:session", get(recordings::get))
        .route(
            "/api/recordings/:session/files/:input/:file",
            get(recordings::download),
        )
        .route("/api/recordings/start", post(recordings::start))
        .route("/api/recordings/stop", post(recordings::stop))
        .route(
            "/api/guests/invites",
            get(guests::list).post(guests::create),
        )
        .route("/api/guests/invites/:id", delete(guests::revoke))
        .route("/api/guests/:input", delete(guests::kick))
        .route("/", get(pages::ui))
        .route("/guest_join", get(pages::guest))
        .route("/whip", post(whip::publish).options(whip::options))
        .route(
            "/whip/:input/:session",
            delete(whip::delete)
                .patch(whip::patch)
                .options(whip::options),
        )
        .nest_service("/hls", ServeDir::new(hls_dir))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(middleware::from_fn_with_state(
            recorder.clone(),
            require_token,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::new(hosts),
            host::require_allowed_host,
        ))
        .with_state(recorder)
}

async fn require_token(
    State(rec): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = req.uri().path();
    if PUBLIC.contains(&path)
        || path == GUEST_PREFIX
        || path.starts_with(&format!("{GUEST_PREFIX}/"))
    {
        return Ok(next.run(req).await);
    }
    let expected = &rec.cfg.api.token;
    if expected.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "api_disabled",
            "no api.token is configured on this box",
        ));
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), expected.as_bytes()) => Ok(next.run(req).await),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong bearer token",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing bearer token",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
