//! `POST /turn/credentials` for devices: bearer device token → TURN credentials from the
//! configured backend. 401 for a missing, unknown or revoked token; 502 when the backend
//! fails; 400 for a bad body. The answer has the shape browsers take (`iceServers`,
//! `expiresAt`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use r58_turn::{CloudflareProvider, Credentials, TurnProvider};
use serde::Deserialize;
use serde_json::json;

use crate::config::{FleetConfig, TurnBackend};
use crate::coturn;
use crate::devices::Devices;
use crate::error::{read_secret, FleetError};

pub enum Backend {
    None,
    Coturn { secret: Vec<u8>, urls: Vec<String> },
    Cloudflare(CloudflareProvider),
}

pub struct TurnApi {
    pub backend: Backend,
    pub max_ttl: Duration,
    pub timeout: Duration,
    pub devices_file: std::path::PathBuf,
}

impl TurnApi {
    pub fn from_config(cfg: &FleetConfig) -> Result<Self, FleetError> {
        let backend = match cfg.turn.backend {
            TurnBackend::None => Backend::None,
            TurnBackend::Coturn => Backend::Coturn {
                secret: read_secret(&cfg.turn.coturn.secret_file)?.into_bytes(),
                urls: cfg.turn.coturn.urls.clone(),
            },
            TurnBackend::Cloudflare => Backend::Cloudflare(CloudflareProvider::new(
                reqwest::Client::new(),
                &cfg.turn.cloudflare.api_base,
                &cfg.turn.cloudflare.key_id,
                &read_secret(&cfg.turn.cloudflare.api_token_file)?,
            )),
        };
        Ok(Self {
            backend,
            max_ttl: Duration::from_secs(u64::from(cfg.turn.ttl_seconds)),
            timeout: Duration::from_millis(u64::from(cfg.turn.timeout_ms)),
            devices_file: cfg.devices.file.clone(),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    ttl: Option<u64>,
}

fn error(status: StatusCode, code: &str, reason: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": code, "reason": reason.into() })),
    )
        .into_response()
}

pub async fn credentials(
    State(api): State<Arc<TurnApi>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing bearer token",
        );
    };
    // Read per request: tokens added or revoked with the CLI apply at once.
    let devices = match Devices::load(&api.devices_file) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    let Some(device) = devices.authenticate(token).map(str::to_string) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown or revoked device token",
        );
    };
    let req: Request = if body.iter().all(u8::is_ascii_whitespace) {
        Request::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", format!("body: {e}")),
        }
    };
    let ttl = req.ttl.map_or(api.max_ttl, |t| {
        Duration::from_secs(t.clamp(60, api.max_ttl.as_secs()))
    });
    let result: Result<Credentials, String> = match &api.backend {
        Backend::None => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_backend",
                "this fleet server has no TURN backend configured",
            )
        }
        Backend::Coturn { secret, urls } => {
            let expires = Utc::now() + chrono::Duration::seconds(ttl.as_secs() as i64);
            Ok(coturn::mint(secret, &device, urls, expires))
        }
        Backend::Cloudflare(cf) => match tokio::time::timeout(api.timeout, cf.fetch(ttl)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("cloudflare: {e}")),
            Err(_) => Err(format!("cloudflare: timed out after {:?}", api.timeout)),
        },
    };
    match result {
        Ok(c) => {
            tracing::info!(%device, expires_at = %c.expires_at, "TURN credentials issued");
            ([(header::CACHE_CONTROL, "no-store")], Json(c)).into_response()
        }
        Err(reason) => {
            tracing::warn!(%device, %reason, "TURN backend failed");
            error(StatusCode::BAD_GATEWAY, "backend_failed", reason)
        }
    }
}
