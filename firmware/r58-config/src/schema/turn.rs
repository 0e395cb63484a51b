//! `[turn]`: where the box gets TURN credentials for its browsers.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{range_check, Validate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnSource {
    Fleet,
    Cloudflare,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// Providers tried in this order; one that is not configured is skipped.
    pub order: Vec<TurnSource>,
    pub ttl_seconds: u32,
    /// Each provider call gives up after this long.
    pub timeout_ms: u32,
    /// Cached credentials are handed out until this long before they expire.
    pub safety_margin_seconds: u32,
    /// Keep `:53` URLs (many venue firewalls break them; dropped by default).
    pub allow_port_53: bool,
    /// Requests per minute per browser address (0: no limit), and the burst allowed.
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    pub fleet: TurnFleet,
    pub cloudflare: TurnCloudflare,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            order: vec![TurnSource::Fleet, TurnSource::Cloudflare],
            ttl_seconds: 3600,
            timeout_ms: 3000,
            safety_margin_seconds: 300,
            allow_port_53: false,
            rate_limit_per_minute: 30,
            rate_limit_burst: 10,
            fleet: TurnFleet::default(),
            cloudflare: TurnCloudflare::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnFleet {
    /// The fleet service's base URL, e.g. `https://fleet.example.com`. Empty: not used.
    pub url: String,
    /// The device's bearer token for the fleet API (issued by `r58-fleet device-token`).
    pub token_file: PathBuf,
}

impl Default for TurnFleet {
    fn default() -> Self {
        Self {
            url: String::new(),
            token_file: PathBuf::from("/data/agent/fleet-token"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnCloudflare {
    /// Direct Cloudflare fallback: off unless both are set. It puts a long-lived key on
    /// the box (see docs/turn.md).
    pub key_id: String,
    pub api_token_file: PathBuf,
    pub api_base: String,
}

impl Default for TurnCloudflare {
    fn default() -> Self {
        Self {
            key_id: String::new(),
            api_token_file: PathBuf::new(),
            api_base: "https://rtc.live.cloudflare.com".into(),
        }
    }
}

impl Validate for TurnConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        range_check(&mut out, "ttl_seconds", self.ttl_seconds, 60, 172_800);
        range_check(&mut out, "timeout_ms", self.timeout_ms, 100, 60_000);
        if u64::from(self.safety_margin_seconds) * 2 > u64::from(self.ttl_seconds) {
            out.push((
                "safety_margin_seconds".into(),
                "must be at most half of ttl_seconds".into(),
            ));
        }
        let url_ok =
            |u: &str| u.is_empty() || u.starts_with("https://") || u.starts_with("http://");
        if !url_ok(&self.fleet.url) {
            out.push((
                "fleet.url".into(),
                format!("{:?} is not an http(s) URL", self.fleet.url),
            ));
        }
        if !url_ok(&self.cloudflare.api_base) || self.cloudflare.api_base.is_empty() {
            out.push((
                "cloudflare.api_base".into(),
                format!("{:?} is not an http(s) URL", self.cloudflare.api_base),
            ));
        }
        out
    }
}
