//! `POST /turn/credentials` for devices: bearer device token → TURN credentials from the
//! configured backend. 401 for a missing, unknown or revoked token; 502 when the backend
//! fails; 400 for a bad body. The answer has the shape browsers take (`iceServers`,
//! `expiresAt`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use r58_turn::{CloudflareProvider, Credentials, CredentialsRequest, RateLimiter, TurnProvider};

use crate::config::{FleetConfig, TurnBackend};
use crate::devices::Devices;
use crate::error::{read_secret, FleetError};
use r58_turn::coturn;

pub enum Backend {
    None,
    Coturn { secret: Vec<u8>, urls: Vec<String> },
    Cloudflare(CloudflareProvider),
}

pub struct TurnApi {
    pub backend: Backend,
    pub max_ttl: Duration,
    pub timeout: Duration,
    pub registry: Registry,
    /// Per device: a device caches its credentials, so more than a few a minute is a loop or
    /// a stolen token.
    pub limiter: RateLimiter<String>,
}

/// The device registry (`devices.toml`), parsed again only when the file changed: tokens
/// added or revoked with the CLI apply at the next request, and a flood of requests costs a
/// `stat` each, not a parse.
pub struct Registry {
    path: PathBuf,
    cached: Mutex<Option<(FileStamp, Arc<Devices>)>>,
}

/// What tells a new version of the file: the CLI replaces it (a rename), so inode and mtime
/// change.
#[derive(PartialEq, Clone, Copy)]
struct FileStamp {
    inode: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

impl Registry {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            cached: Mutex::new(None),
        }
    }

    pub fn current(&self) -> Result<Arc<Devices>, FleetError> {
        use std::os::unix::fs::MetadataExt;
        let stamp = std::fs::metadata(&self.path).ok().map(|m| FileStamp {
            inode: m.ino(),
            len: m.len(),
            mtime: m.modified().ok(),
        });
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(stamp), Some((seen, devices))) = (stamp, cached.as_ref()) {
            if *seen == stamp {
                return Ok(devices.clone());
            }
        }
        let devices = Arc::new(Devices::load(&self.path)?);
        if let Some(stamp) = stamp {
            *cached = Some((stamp, devices.clone()));
        }
        Ok(devices)
    }
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
            registry: Registry::new(cfg.devices.file.clone()),
            limiter: RateLimiter::new(cfg.turn.device_rate_per_minute, cfg.turn.device_burst),
        })
    }
}

fn error(status: StatusCode, code: &str, reason: impl Into<String>) -> Response {
    (
        status,
        Json(r58_fleet_api::ErrorBody {
            error: code.into(),
            reason: reason.into(),
        }),
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
    let devices = match api.registry.current() {
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
    if !api.limiter.allow(device.clone()) {
        tracing::warn!(%device, "TURN credentials asked for too often");
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests for this device: retry in a minute",
        );
    }
    let req: CredentialsRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CredentialsRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", format!("body: {e}")),
        }
    };
    if let Some(g) = req
        .guest
        .as_deref()
        .filter(|g| !CredentialsRequest::valid_guest(g))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("guest {g:?}: use 1-64 of A-Z a-z 0-9 . _ -"),
        );
    }
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
            Ok(match &req.guest {
                Some(guest) => coturn::mint_for_guest(secret, &device, guest, urls, expires),
                None => coturn::mint(secret, &device, urls, expires),
            })
        }
        Backend::Cloudflare(cf) => match tokio::time::timeout(api.timeout, cf.fetch(ttl)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("cloudflare: {e}")),
            Err(_) => Err(format!("cloudflare: timed out after {:?}", api.timeout)),
        },
    };
    match result {
        Ok(c) => {
            tracing::info!(%device, guest = req.guest.as_deref().unwrap_or(""), expires_at = %c.expires_at, "TURN credentials issued");
            ([(header::CACHE_CONTROL, "no-store")], Json(c)).into_response()
        }
        Err(reason) => {
            tracing::warn!(%device, %reason, "TURN backend failed");
            error(StatusCode::BAD_GATEWAY, "backend_failed", reason)
        }
    }
}
