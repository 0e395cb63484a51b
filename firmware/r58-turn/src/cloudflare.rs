//! Cloudflare Realtime TURN: `POST {api}/v1/turn/keys/{key_id}/credentials/generate-ice-servers`
//! with `Authorization: Bearer <key API token>` and `{"ttl": seconds}`; success is `201`
//! with `{"iceServers": [...]}`. The older `…/credentials/generate` answered a single
//! object (`{"iceServers": {"urls": [...], "username", "credential"}}`): accepted too.

use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use serde::Deserialize;

use crate::ice::{Credentials, IceServer};
use crate::provider::{post_json, ProviderError, TurnProvider};

/// Cloudflare's request body: how long the credentials last.
#[derive(serde::Serialize)]
struct TtlRequest {
    ttl: u64,
}

pub const CLOUDFLARE_API: &str = "https://rtc.live.cloudflare.com";

pub struct CloudflareProvider {
    client: reqwest::Client,
    api_base: String,
    key_id: String,
    api_token: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Servers {
    Many(Vec<IceServer>),
    One(IceServer),
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "iceServers")]
    ice_servers: Servers,
}

impl CloudflareProvider {
    pub fn new(client: reqwest::Client, api_base: &str, key_id: &str, api_token: &str) -> Self {
        Self {
            client,
            api_base: api_base.trim_end_matches('/').to_string(),
            key_id: key_id.to_string(),
            api_token: api_token.to_string(),
        }
    }

    async fn generate(&self, ttl: Duration) -> Result<Credentials, ProviderError> {
        if self.key_id.is_empty() || self.api_token.is_empty() {
            return Err(ProviderError::NotConfigured(
                "cloudflare key id or API token missing".into(),
            ));
        }
        let url = format!(
            "{}/v1/turn/keys/{}/credentials/generate-ice-servers",
            self.api_base, self.key_id
        );
        let started = Utc::now();
        let body = TtlRequest { ttl: ttl.as_secs() };
        let answer: Answer = post_json(&self.client, &url, &self.api_token, &body).await?;
        let ice_servers = match answer.ice_servers {
            Servers::Many(v) => v,
            Servers::One(s) => vec![s],
        };
        if ice_servers.is_empty() {
            return Err(ProviderError::Decode("empty iceServers".into()));
        }
        let expires_at = started
            + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::hours(1));
        Ok(Credentials {
            ice_servers,
            expires_at,
        })
    }
}

impl TurnProvider for CloudflareProvider {
    fn name(&self) -> &str {
        "cloudflare"
    }

    fn fetch(&self, ttl: Duration) -> BoxFuture<'_, Result<Credentials, ProviderError>> {
        Box::pin(self.generate(ttl))
    }
}
