//! The device's TURN credentials: the providers from `[turn]`, the cache that refreshes
//! them, and the per-client rate limit (served by `api::turn`).

use std::sync::Arc;
use std::time::Duration;

use r58_config::{TurnConfig, TurnSource};
use r58_turn::{
    CloudflareProvider, FleetProvider, RateLimiter, TurnProvider, TurnService, TurnSettings,
};

pub struct TurnEndpoint {
    pub service: Arc<TurnService>,
    pub limiter: RateLimiter,
}

fn read_token(path: &std::path::Path, what: &str) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
        Ok(_) => {
            tracing::error!(file = %path.display(), "{what}: token file is empty; provider disabled");
            None
        }
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "{what}: cannot read token file; provider disabled");
            None
        }
    }
}

/// The providers `cfg` configures, in its order (unconfigured ones are left out).
pub fn providers(cfg: &TurnConfig, client: &reqwest::Client) -> Vec<Box<dyn TurnProvider>> {
    let mut out: Vec<Box<dyn TurnProvider>> = Vec::new();
    for source in &cfg.order {
        match source {
            TurnSource::Fleet if !cfg.fleet.url.is_empty() => {
                if let Some(token) = read_token(&cfg.fleet.token_file, "turn.fleet") {
                    out.push(Box::new(FleetProvider::new(
                        client.clone(),
                        &cfg.fleet.url,
                        &token,
                    )));
                }
            }
            TurnSource::Cloudflare
                if !cfg.cloudflare.key_id.is_empty()
                    && !cfg.cloudflare.api_token_file.as_os_str().is_empty() =>
            {
                if let Some(token) = read_token(&cfg.cloudflare.api_token_file, "turn.cloudflare") {
                    out.push(Box::new(CloudflareProvider::new(
                        client.clone(),
                        &cfg.cloudflare.api_base,
                        &cfg.cloudflare.key_id,
                        &token,
                    )));
                }
            }
            _ => {}
        }
    }
    out
}

/// Builds the endpoint and starts the background refresh (needs a tokio runtime).
pub fn start(cfg: &TurnConfig) -> TurnEndpoint {
    let timeout = Duration::from_millis(u64::from(cfg.timeout_ms));
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_default();
    let providers = providers(cfg, &client);
    let names: Vec<&str> = providers.iter().map(|p| p.name()).collect();
    tracing::info!(providers = ?names, "TURN providers");
    let configured = !providers.is_empty();
    let service = TurnService::new(
        providers,
        TurnSettings {
            ttl: Duration::from_secs(u64::from(cfg.ttl_seconds)),
            timeout,
            safety_margin: Duration::from_secs(u64::from(cfg.safety_margin_seconds)),
            allow_port_53: cfg.allow_port_53,
        },
    );
    if configured {
        service.spawn_refresher();
    }
    TurnEndpoint {
        service,
        limiter: RateLimiter::new(cfg.rate_limit_per_minute, cfg.rate_limit_burst),
    }
}
