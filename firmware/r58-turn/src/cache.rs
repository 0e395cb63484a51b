//! The cache in front of the providers: single flight, background refresh, stale-but-valid.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::ice::{drop_port_53, Credentials};
use crate::provider::{ProviderError, TurnProvider};

#[derive(Debug, Clone)]
pub struct TurnSettings {
    /// Lifetime asked of providers.
    pub ttl: Duration,
    /// Each provider call gives up after this long; the next provider is tried.
    pub timeout: Duration,
    /// Cached credentials are handed out until this long before they expire.
    pub safety_margin: Duration,
    /// Keep `:53` URLs (dropped by default).
    pub allow_port_53: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TurnError {
    #[error("no TURN provider is configured")]
    NoProviders,
    #[error("every TURN provider failed and no valid credentials are cached: {}", .reasons.join("; "))]
    Unavailable { reasons: Vec<String> },
}

#[derive(Debug)]
struct Cached {
    creds: Credentials,
    /// The JSON answer, serialized once per fetch: the hot path only clones a handle.
    json: bytes::Bytes,
    fetched_at: DateTime<Utc>,
}

pub struct TurnService {
    providers: Vec<Box<dyn TurnProvider>>,
    settings: TurnSettings,
    cache: RwLock<Option<Arc<Cached>>>,
    /// Held by whoever fetches: concurrent requests wait for that one fetch.
    flight: tokio::sync::Mutex<()>,
    upstream_calls: AtomicU64,
}

impl TurnService {
    pub fn new(providers: Vec<Box<dyn TurnProvider>>, settings: TurnSettings) -> Arc<Self> {
        Arc::new(Self {
            providers,
            settings,
            cache: RwLock::new(None),
            flight: tokio::sync::Mutex::new(()),
            upstream_calls: AtomicU64::new(0),
        })
    }

    /// Provider calls made so far (for metrics and tests).
    pub fn upstream_calls(&self) -> u64 {
        self.upstream_calls.load(Ordering::Relaxed)
    }

    fn cached(&self) -> Option<Arc<Cached>> {
        self.cache.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Cached credentials that are still good to hand out (before the safety margin).
    fn fresh(&self) -> Option<Arc<Cached>> {
        let c = self.cached()?;
        let margin = chrono::Duration::from_std(self.settings.safety_margin).unwrap_or_default();
        (Utc::now() < c.creds.expires_at - margin).then_some(c)
    }

    /// Credentials for a browser: from the cache, or fetched once for all waiting callers.
    pub async fn get(&self) -> Result<Credentials, TurnError> {
        self.get_cached().await.map(|c| c.creds.clone())
    }

    /// The same as [`TurnService::get`], as the JSON document to send.
    pub async fn get_json(&self) -> Result<bytes::Bytes, TurnError> {
        self.get_cached().await.map(|c| c.json.clone())
    }

    async fn get_cached(&self) -> Result<Arc<Cached>, TurnError> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let _flight = self.flight.lock().await;
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        match self.fetch_all().await {
            Ok(c) => Ok(c),
            Err(e) => match self.cached().filter(|c| Utc::now() < c.creds.expires_at) {
                Some(stale) => {
                    tracing::warn!(expires_at = %stale.creds.expires_at, "serving cached TURN credentials: providers failed");
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }

    /// Credentials for one remote guest, lasting `ttl`: asked of each provider in order (the
    /// fleet scopes them to the guest), never cached nor shared with other guests.
    pub async fn for_guest(&self, guest: &str, ttl: Duration) -> Result<Credentials, TurnError> {
        self.first_usable(|p| p.fetch_for_guest(ttl, guest)).await
    }

    /// Tries each provider in order; caches and returns the first success.
    async fn fetch_all(&self) -> Result<Arc<Cached>, TurnError> {
        let creds = self.first_usable(|p| p.fetch(self.settings.ttl)).await?;
        let json = serde_json::to_vec(&creds).map_err(|e| TurnError::Unavailable {
            reasons: vec![format!("encoding the credentials: {e}")],
        })?;
        let cached = Arc::new(Cached {
            creds,
            json: bytes::Bytes::from(json),
            fetched_at: Utc::now(),
        });
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = Some(cached.clone());
        Ok(cached)
    }

    /// Asks each provider in order through `call` (each bounded by the timeout); the first
    /// answer with usable servers that has not expired, or every provider's reason.
    async fn first_usable<'a, F>(&'a self, call: F) -> Result<Credentials, TurnError>
    where
        F: Fn(&'a dyn TurnProvider) -> BoxFuture<'a, Result<Credentials, ProviderError>>,
    {
        if self.providers.is_empty() {
            return Err(TurnError::NoProviders);
        }
        let mut reasons = Vec::new();
        for p in &self.providers {
            self.upstream_calls.fetch_add(1, Ordering::Relaxed);
            let result = match tokio::time::timeout(self.settings.timeout, call(p.as_ref())).await {
                Ok(r) => r,
                Err(_) => Err(ProviderError::Timeout(self.settings.timeout)),
            };
            match result.map(|c| self.clean(c)) {
                Ok(creds) if !creds.ice_servers.is_empty() && creds.expires_at > Utc::now() => {
                    tracing::info!(provider = p.name(), expires_at = %creds.expires_at, "TURN credentials fetched");
                    return Ok(creds);
                }
                Ok(_) => {
                    tracing::warn!(provider = p.name(), "TURN provider gave no usable servers");
                    reasons.push(format!("{}: no usable ICE servers", p.name()));
                }
                Err(e) => {
                    tracing::warn!(provider = p.name(), reason = %e, "TURN provider failed");
                    reasons.push(format!("{}: {e}", p.name()));
                }
            }
        }
        Err(TurnError::Unavailable { reasons })
    }

    fn clean(&self, mut c: Credentials) -> Credentials {
        if !self.settings.allow_port_53 {
            c.ice_servers = drop_port_53(c.ice_servers);
        }
        c
    }

    /// When the background refresh should next run: at 80 % of the cached lifetime.
    fn next_refresh(&self) -> Option<DateTime<Utc>> {
        let c = self.cached()?;
        let life = c.creds.expires_at - c.fetched_at;
        Some(c.fetched_at + life * 4 / 5)
    }

    /// Refreshes in the background at ~80 % of the TTL, retrying failures with capped
    /// backoff. Holds only a weak reference: it ends with the service.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(2);
            loop {
                let wait = {
                    let Some(s) = weak.upgrade() else { return };
                    match s.next_refresh() {
                        Some(at) => (at - Utc::now()).to_std().unwrap_or_default(),
                        None => Duration::ZERO,
                    }
                };
                tokio::time::sleep(wait).await;
                let Some(s) = weak.upgrade() else { return };
                let ok = {
                    let _flight = s.flight.lock().await;
                    // A request may have refreshed meanwhile.
                    let due = s.next_refresh().map_or(true, |at| Utc::now() >= at);
                    !due || s.fetch_all().await.is_ok()
                };
                drop(s);
                if ok {
                    backoff = Duration::from_secs(2);
                } else {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        })
    }
}
