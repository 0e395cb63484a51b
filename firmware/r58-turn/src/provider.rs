use std::time::Duration;

use futures::future::BoxFuture;

use crate::ice::Credentials;

/// Why one provider could not deliver. Never carries a secret.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("answered something that is not ICE servers: {0}")]
    Decode(String),
    #[error("not configured: {0}")]
    NotConfigured(String),
}

/// A source of TURN credentials (the fleet API, Cloudflare, or a test double).
pub trait TurnProvider: Send + Sync {
    /// A name for logs (`fleet`, `cloudflare`).
    fn name(&self) -> &str;
    /// Fetches fresh credentials valid for about `ttl`.
    fn fetch(&self, ttl: Duration) -> BoxFuture<'_, Result<Credentials, ProviderError>>;
    /// Credentials for one remote guest (`guest` names it, e.g. the invite): scoped to it
    /// where the provider can, the device's own otherwise.
    fn fetch_for_guest<'a>(
        &'a self,
        ttl: Duration,
        _guest: &'a str,
    ) -> BoxFuture<'a, Result<Credentials, ProviderError>> {
        self.fetch(ttl)
    }
}

/// POSTs `body` as JSON with a bearer token and decodes a 2xx JSON answer as `T`.
pub(crate) async fn post_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &B,
) -> Result<T, ProviderError> {
    let resp = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .map_err(|e| request_error(&e))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| request_error(&e))?;
    if !status.is_success() {
        return Err(ProviderError::Status {
            status: status.as_u16(),
            body: snippet(&body),
        });
    }
    serde_json::from_str(&body).map_err(|e| ProviderError::Decode(e.to_string()))
}

/// Shortens an upstream body for an error message.
pub(crate) fn snippet(body: &str) -> String {
    let b: String = body.chars().take(200).collect();
    b.replace('\n', " ")
}

pub(crate) fn request_error(e: &reqwest::Error) -> ProviderError {
    // The message and its causes, without the URL (tokens travel in headers only, but keep
    // logs short and free of query strings).
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<url>");
    }
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    ProviderError::Request(s)
}
