//! `r58-fleet` configuration: the same layered loader as the devices (built-in defaults →
//! the main file → `conf.d/*.toml`), main file from `--config` or `R58_FLEET_CONFIG`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use r58_config::Validate;

pub const CONFIG_ENV: &str = "R58_FLEET_CONFIG";
pub const DEFAULT_CONFIG: &str = "/etc/r58-fleet/fleet.toml";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    pub http: HttpConfig,
    pub devices: DevicesConfig,
    pub turn: TurnConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([0, 0, 0, 0], 8080)) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevicesConfig {
    /// The device registry: ids with the SHA-256 of their bearer tokens.
    pub file: PathBuf,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        Self { file: PathBuf::from("/data/fleet/devices.toml") }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnBackend {
    /// coturn with `use-auth-secret` (TURN REST API credentials).
    Coturn,
    /// Cloudflare Realtime TURN; the key stays on this server.
    Cloudflare,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    pub backend: TurnBackend,
    /// Lifetime of minted credentials; a device may ask for less, never more.
    pub ttl_seconds: u32,
    pub timeout_ms: u32,
    pub coturn: CoturnConfig,
    pub cloudflare: CloudflareConfig,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            backend: TurnBackend::Coturn,
            ttl_seconds: 3600,
            timeout_ms: 5000,
            coturn: CoturnConfig::default(),
            cloudflare: CloudflareConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoturnConfig {
    /// File holding coturn's `static-auth-secret`.
    pub secret_file: PathBuf,
    /// TURN/STUN URLs handed to browsers, e.g. `turn:turn.example.com:3478?transport=udp`.
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudflareConfig {
    pub key_id: String,
    pub api_token_file: PathBuf,
    pub api_base: String,
}

impl Default for CloudflareConfig {
    fn default() -> Self {
        Self { key_id: String::new(), api_token_file: PathBuf::new(), api_base: r58_turn::CLOUDFLARE_API.into() }
    }
}

impl Validate for FleetConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !(60..=172_800).contains(&self.turn.ttl_seconds) {
            out.push(("turn.ttl_seconds".into(), format!("{} is out of range 60..=172800", self.turn.ttl_seconds)));
        }
        match self.turn.backend {
            TurnBackend::Coturn => {
                if self.turn.coturn.secret_file.as_os_str().is_empty() {
                    out.push(("turn.coturn.secret_file".into(), "the coturn backend needs a secret file".into()));
                }
                if self.turn.coturn.urls.is_empty() {
                    out.push(("turn.coturn.urls".into(), "the coturn backend needs at least one URL".into()));
                }
                for u in &self.turn.coturn.urls {
                    if !(u.starts_with("turn:") || u.starts_with("turns:") || u.starts_with("stun:")) {
                        out.push(("turn.coturn.urls".into(), format!("{u:?} is not a turn:, turns: or stun: URL")));
                    }
                }
            }
            TurnBackend::Cloudflare => {
                if self.turn.cloudflare.key_id.is_empty() {
                    out.push(("turn.cloudflare.key_id".into(), "the cloudflare backend needs a key id".into()));
                }
                if self.turn.cloudflare.api_token_file.as_os_str().is_empty() {
                    out.push(("turn.cloudflare.api_token_file".into(), "the cloudflare backend needs a token file".into()));
                }
            }
        }
        out
    }
}
