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
}

/// Shortens an upstream body for an error message.
pub(crate) fn snippet(body: &str) -> String {
    let b: String = body.chars().take(200).collect();
    b.replace('\n', " ")
}

pub(crate) fn request_error(e: &reqwest::Error) -> ProviderError {
    // reqwest's Display includes the URL (no secrets: tokens travel in headers only).
    ProviderError::Request(e.without_url_ref_string())
}

trait WithoutUrl {
    fn without_url_ref_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref_string(&self) -> String {
        let mut s = self.to_string();
        if let Some(url) = self.url() {
            s = s.replace(url.as_str(), "<url>");
        }
        let mut src = std::error::Error::source(self);
        while let Some(e) = src {
            s.push_str(": ");
            s.push_str(&e.to_string());
            src = e.source();
        }
        s
    }
}
