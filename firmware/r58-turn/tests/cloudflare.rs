//! The Cloudflare provider against a local fake of Cloudflare's TURN API (the documented
//! request and both response shapes; able to fail and stall). Also: no secret in the logs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use r58_turn::{
    CloudflareProvider, FleetProvider, ProviderError, TurnProvider, TurnService, TurnSettings,
};

const KEY_ID: &str = "key123";
const TOKEN: &str = "cf-SECRET-api-token-9f8e7d";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Array,
    Single,
    Error500,
    Stall,
}

#[derive(Clone)]
struct Fake {
    mode: Arc<Mutex<Mode>>,
    seen_ttl: Arc<Mutex<Vec<u64>>>,
}

async fn generate(
    State(f): State<Fake>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> (StatusCode, Json<serde_json::Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
        || key != KEY_ID
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                serde_json::json!({"success": false, "errors": [{"message": "Authentication error"}]}),
            ),
        );
    }
    let Some(ttl) = body.get("ttl").and_then(|v| v.as_u64()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"success": false})),
        );
    };
    f.seen_ttl.lock().unwrap().push(ttl);
    let mode = *f.mode.lock().unwrap();
    match mode {
        Mode::Array => (
            StatusCode::CREATED,
            Json(serde_json::json!({"iceServers": [
                {"urls": ["stun:stun.cloudflare.example:3478", "stun:stun.cloudflare.example:53"]},
                {"urls": ["turn:turn.cloudflare.example:3478?transport=udp", "turn:turn.cloudflare.example:53?transport=udp",
                          "turns:turn.cloudflare.example:443?transport=tcp"],
                 "username": "cfuser", "credential": "cfcred"}
            ]})),
        ),
        Mode::Single => (
            StatusCode::CREATED,
            Json(
                serde_json::json!({"iceServers": {"urls": ["turn:turn.cloudflare.example:3478?transport=udp"],
                                    "username": "olduser", "credential": "oldcred"}}),
            ),
        ),
        Mode::Error500 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"success": false})),
        ),
        Mode::Stall => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            (StatusCode::GATEWAY_TIMEOUT, Json(serde_json::json!({})))
        }
    }
}

/// Stands in for an unresponsive fleet API when the fake is in `Stall` mode.
async fn fleet_like(State(f): State<Fake>) -> StatusCode {
    if *f.mode.lock().unwrap() == Mode::Stall {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    StatusCode::NOT_FOUND
}

async fn start_fake(mode: Mode) -> (SocketAddr, Fake) {
    let fake = Fake {
        mode: Arc::new(Mutex::new(mode)),
        seen_ttl: Arc::new(Mutex::new(Vec::new())),
    };
    let app = Router::new()
        .route(
            "/v1/turn/keys/:key/credentials/generate-ice-servers",
            post(generate),
        )
        .route("/turn/credentials", post(fleet_like))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, fake)
}

fn provider(addr: SocketAddr, token: &str) -> CloudflareProvider {
    CloudflareProvider::new(
        reqwest::Client::new(),
        &format!("http://{addr}"),
        KEY_ID,
        token,
    )
}

#[tokio::test]
async fn array_shape_with_ttl_and_bearer() {
    let (addr, fake) = start_fake(Mode::Array).await;
    let c = provider(addr, TOKEN)
        .fetch(Duration::from_secs(7200))
        .await
        .unwrap();
    assert_eq!(c.ice_servers.len(), 2);
    assert_eq!(c.ice_servers[1].username.as_deref(), Some("cfuser"));
    assert_eq!(*fake.seen_ttl.lock().unwrap(), vec![7200]);
    let left = c.expires_at - chrono::Utc::now();
    assert!(left > chrono::Duration::seconds(7100) && left <= chrono::Duration::seconds(7200));
}

#[tokio::test]
async fn older_single_object_shape_is_accepted() {
    let (addr, _) = start_fake(Mode::Single).await;
    let c = provider(addr, TOKEN)
        .fetch(Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(c.ice_servers.len(), 1);
    assert_eq!(c.ice_servers[0].credential.as_deref(), Some("oldcred"));
}

#[tokio::test]
async fn errors_carry_the_status_and_never_the_token() {
    let (addr, _) = start_fake(Mode::Error500).await;
    let e = provider(addr, TOKEN)
        .fetch(Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::Status { status: 500, .. }),
        "{e}"
    );
    let (addr, _) = start_fake(Mode::Array).await;
    let e = provider(addr, "wrong-token")
        .fetch(Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::Status { status: 401, .. }),
        "{e}"
    );
}

/// A writer that keeps everything logged, to search it for secrets.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn fallback_through_failing_and_stalled_providers_logs_reasons_but_no_secrets() {
    let logs = Captured::default();
    let w = logs.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(sub);

    let (stalled, _) = start_fake(Mode::Stall).await;
    let (failing, _) = start_fake(Mode::Error500).await;
    let (good, _) = start_fake(Mode::Array).await;
    let fleet_token = "fleet-SECRET-device-token-123";
    let providers: Vec<Box<dyn TurnProvider>> = vec![
        Box::new(FleetProvider::new(
            reqwest::Client::new(),
            &format!("http://{stalled}"),
            fleet_token,
        )),
        Box::new(provider(failing, TOKEN)),
        Box::new(provider(good, TOKEN)),
    ];
    let svc = TurnService::new(
        providers,
        TurnSettings {
            ttl: Duration::from_secs(600),
            timeout: Duration::from_millis(300),
            safety_margin: Duration::ZERO,
            allow_port_53: false,
        },
    );
    let c = svc.get().await.unwrap();
    assert_eq!(c.ice_servers[1].username.as_deref(), Some("cfuser"));
    assert!(c
        .ice_servers
        .iter()
        .flat_map(|s| &s.urls)
        .all(|u| !u.contains(":53")));
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("fleet") && text.contains("timed out"),
        "{text}"
    );
    assert!(text.contains("500"), "{text}");
    assert!(
        !text.contains(TOKEN) && !text.contains(fleet_token),
        "secret in logs: {text}"
    );
}
