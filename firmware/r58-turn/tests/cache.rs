//! The cache against test providers: order, fallback, timeouts, single flight, refresh,
//! stale-but-valid, expiry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use r58_turn::{
    Credentials, IceServer, ProviderError, TurnError, TurnProvider, TurnService, TurnSettings,
};

/// A provider whose answers the test scripts: each call pops the next behaviour (the last
/// one repeats).
#[derive(Clone)]
enum Behaviour {
    Ok { ttl_ms: i64 },
    Fail,
    Stall,
}

struct Scripted {
    name: &'static str,
    script: Mutex<Vec<Behaviour>>,
    delay: Duration,
    calls: Arc<AtomicU64>,
}

impl Scripted {
    fn new(
        name: &'static str,
        script: Vec<Behaviour>,
        delay: Duration,
    ) -> (Box<Self>, Arc<AtomicU64>) {
        let calls = Arc::new(AtomicU64::new(0));
        (
            Box::new(Self {
                name,
                script: Mutex::new(script),
                delay,
                calls: calls.clone(),
            }),
            calls,
        )
    }
}

fn creds(user: &str, ttl_ms: i64) -> Credentials {
    Credentials {
        ice_servers: vec![IceServer {
            urls: vec![
                "turn:turn.example.com:3478?transport=udp".into(),
                "turn:turn.example.com:53?transport=udp".into(),
            ],
            username: Some(user.into()),
            credential: Some("secret".into()),
        }],
        expires_at: Utc::now() + chrono::Duration::milliseconds(ttl_ms),
    }
}

impl TurnProvider for Scripted {
    fn name(&self) -> &str {
        self.name
    }
    fn fetch(&self, _ttl: Duration) -> BoxFuture<'_, Result<Credentials, ProviderError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let b = {
                let mut s = self.script.lock().unwrap();
                if s.len() > 1 {
                    s.remove(0)
                } else {
                    s[0].clone()
                }
            };
            tokio::time::sleep(self.delay).await;
            match b {
                Behaviour::Ok { ttl_ms } => Ok(creds(self.name, ttl_ms)),
                Behaviour::Fail => Err(ProviderError::Status {
                    status: 500,
                    body: "boom".into(),
                }),
                Behaviour::Stall => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    unreachable!()
                }
            }
        })
    }
}

fn settings() -> TurnSettings {
    TurnSettings {
        ttl: Duration::from_secs(3600),
        timeout: Duration::from_millis(200),
        safety_margin: Duration::from_millis(0),
        allow_port_53: false,
    }
}

fn user(c: &Credentials) -> String {
    c.ice_servers[0].username.clone().unwrap()
}

#[tokio::test]
async fn first_provider_serves_and_port_53_is_dropped() {
    let (fleet, fleet_calls) = Scripted::new(
        "fleet",
        vec![Behaviour::Ok { ttl_ms: 60_000 }],
        Duration::ZERO,
    );
    let (cf, cf_calls) = Scripted::new(
        "cloudflare",
        vec![Behaviour::Ok { ttl_ms: 60_000 }],
        Duration::ZERO,
    );
    let svc = TurnService::new(vec![fleet, cf], settings());
    let c = svc.get().await.unwrap();
    assert_eq!(user(&c), "fleet");
    assert_eq!(
        c.ice_servers[0].urls,
        vec!["turn:turn.example.com:3478?transport=udp"]
    );
    assert_eq!(
        (
            fleet_calls.load(Ordering::SeqCst),
            cf_calls.load(Ordering::SeqCst)
        ),
        (1, 0)
    );
    // Cached: no more upstream calls.
    for _ in 0..10 {
        svc.get().await.unwrap();
    }
    assert_eq!(svc.upstream_calls(), 1);
}

#[tokio::test]
async fn failure_and_timeout_fall_back_to_the_next_provider() {
    for first in [Behaviour::Fail, Behaviour::Stall] {
        let (fleet, _) = Scripted::new("fleet", vec![first], Duration::ZERO);
        let (cf, cf_calls) = Scripted::new(
            "cloudflare",
            vec![Behaviour::Ok { ttl_ms: 60_000 }],
            Duration::ZERO,
        );
        let svc = TurnService::new(vec![fleet, cf], settings());
        let started = std::time::Instant::now();
        let c = svc.get().await.unwrap();
        assert_eq!(user(&c), "cloudflare");
        assert_eq!(cf_calls.load(Ordering::SeqCst), 1);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a stalled provider must time out"
        );
    }
}

#[tokio::test]
async fn concurrent_requests_share_one_upstream_call() {
    let (fleet, calls) = Scripted::new(
        "fleet",
        vec![Behaviour::Ok { ttl_ms: 60_000 }],
        Duration::from_millis(100),
    );
    let svc = TurnService::new(vec![fleet], settings());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = svc.clone();
            tokio::spawn(async move { s.get().await })
        })
        .collect();
    for t in tasks {
        assert_eq!(user(&t.await.unwrap().unwrap()), "fleet");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn stale_but_valid_is_served_then_503_after_expiry() {
    // Credentials valid 600 ms, handed out until 400 ms before expiry; then the provider fails.
    let (fleet, _) = Scripted::new(
        "fleet",
        vec![Behaviour::Ok { ttl_ms: 600 }, Behaviour::Fail],
        Duration::ZERO,
    );
    let mut s = settings();
    s.safety_margin = Duration::from_millis(400);
    let svc = TurnService::new(vec![fleet], s);
    let first = svc.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Past the margin: a refetch is tried, fails, and the still-valid ones are served.
    let stale = svc.get().await.unwrap();
    assert_eq!(stale, first);
    tokio::time::sleep(Duration::from_millis(400)).await;
    match svc.get().await {
        Err(TurnError::Unavailable { reasons }) => {
            assert!(reasons[0].contains("fleet"), "{reasons:?}")
        }
        other => panic!("expected 503-worthy error, got {other:?}"),
    }
}

#[tokio::test]
async fn background_refresh_replaces_credentials_before_they_expire() {
    let (fleet, calls) = Scripted::new(
        "fleet",
        vec![Behaviour::Ok { ttl_ms: 1000 }],
        Duration::ZERO,
    );
    let svc = TurnService::new(vec![fleet], settings());
    let first = svc.get().await.unwrap();
    let refresher = svc.spawn_refresher();
    // At ~80 % of 1 s the refresher fetches new ones, before the first expire.
    tokio::time::sleep(Duration::from_millis(950)).await;
    let second = svc.get().await.unwrap();
    assert!(calls.load(Ordering::SeqCst) >= 2);
    assert!(second.expires_at > first.expires_at);
    refresher.abort();
}

#[tokio::test]
async fn no_provider_is_an_error() {
    let svc = TurnService::new(vec![], settings());
    assert_eq!(svc.get().await, Err(TurnError::NoProviders));
}
