//! The operators' fleet TURN API: `POST {fleet}/turn/credentials` with the device's bearer
//! token and a [`CredentialsRequest`]; answers the same `{"iceServers", "expiresAt"}`
//! document the device serves to browsers.

use std::time::Duration;

use futures::future::BoxFuture;

use serde::{Deserialize, Serialize};

use crate::ice::Credentials;
use crate::provider::{post_json, ProviderError, TurnProvider};

/// The body of `POST /turn/credentials`, shared by the device and the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRequest {
    /// Seconds the credentials should last (the fleet caps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// Credentials for one remote guest of the device, named so (1–64 of `A-Z a-z 0-9 . _ -`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<String>,
}

impl CredentialsRequest {
    /// Whether a guest name is one the fleet accepts.
    pub fn valid_guest(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    }
}

pub struct FleetProvider {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl FleetProvider {
    /// `base` is the fleet service's URL (e.g. `https://fleet.example.com`).
    pub fn new(client: reqwest::Client, base: &str, token: &str) -> Self {
        Self {
            client,
            url: format!("{}/turn/credentials", base.trim_end_matches('/')),
            token: token.to_string(),
        }
    }

    async fn request(
        &self,
        ttl: Duration,
        guest: Option<&str>,
    ) -> Result<Credentials, ProviderError> {
        let body = CredentialsRequest {
            ttl: Some(ttl.as_secs()),
            guest: guest.map(str::to_string),
        };
        let creds: Credentials = post_json(&self.client, &self.url, &self.token, &body).await?;
        if creds.ice_servers.is_empty() {
            return Err(ProviderError::Decode("empty iceServers".into()));
        }
        Ok(creds)
    }
}

impl TurnProvider for FleetProvider {
    fn name(&self) -> &str {
        "fleet"
    }

    fn fetch(&self, ttl: Duration) -> BoxFuture<'_, Result<Credentials, ProviderError>> {
        Box::pin(self.request(ttl, None))
    }

    fn fetch_for_guest<'a>(
        &'a self,
        ttl: Duration,
        guest: &'a str,
    ) -> BoxFuture<'a, Result<Credentials, ProviderError>> {
        Box::pin(self.request(ttl, Some(guest)))
    }
}
