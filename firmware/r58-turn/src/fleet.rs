//! The operators' fleet TURN API: `POST {fleet}/turn/credentials` with the device's bearer
//! token and `{"ttl": seconds}`; answers the same `{"iceServers", "expiresAt"}` document the
//! device serves to browsers.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::ice::Credentials;
use crate::provider::{post_ttl, ProviderError, TurnProvider};

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

    async fn request(&self, ttl: Duration) -> Result<Credentials, ProviderError> {
        let creds: Credentials = post_ttl(&self.client, &self.url, &self.token, ttl).await?;
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
        Box::pin(self.request(ttl))
    }
}
