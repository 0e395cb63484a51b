//! The box's side of the fleet's tunnel tests: an HTTP service standing for the box's web UI
//! behind the `r58-tunnel` dialer the agent runs; and the operator's side: signing in and
//! opening a box's UI through the fleet.

use std::time::Duration;

use axum::extract::Request;
use axum::routing::any;
use serde_json::{json, Value};

use super::{box_dialer, Fleet};

/// The box's side: an HTTP service that answers with what it was asked, on a runtime of its
/// own, and the dialer keeping the tunnel to the relay at `relay_port`.
pub fn start_box(
    relay_port: u16,
    ui_port: u16,
    files: (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf),
) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.spawn(async move {
        let app = axum::Router::new()
            .route(
                "/slow",
                any(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            )
            .route(
                "/drip",
                any(|| async {
                    let ticks = futures::stream::unfold((), |()| async {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Some((Ok::<_, std::io::Error>(vec![b'.'; 100]), ()))
                    });
                    axum::body::Body::from_stream(ticks)
                }),
            )
            .fallback(any(|req: Request| async move {
                let headers: serde_json::Map<String, Value> = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                    .collect();
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                // A box that tries to set the fleet's cookie and loosen its own policy.
                (
                    [
                        ("set-cookie", "r58_fleet_token=from-the-box; Path=/"),
                        ("content-security-policy", "default-src *"),
                        ("access-control-allow-origin", "*"),
                    ],
                    axum::Json(json!({
                        "method": parts.method.as_str(),
                        "uri": parts.uri.to_string(),
                        "headers": headers,
                        "body": String::from_utf8_lossy(&body),
                    })),
                )
            }));
        let l = tokio::net::TcpListener::bind(("127.0.0.1", ui_port))
            .await
            .unwrap();
        axum::serve(l, app).await.unwrap();
    });
    let dialer = box_dialer(relay_port, &files, vec![ui_port]);
    rt.spawn(async move { dialer.run(Default::default()).await });
    rt
}

/// Opens `device`'s UI as the operator with the session `cookie`: the box's path under
/// `/b/` the fleet sends the browser to.
pub fn open_ui(f: &Fleet, cookie: &str, device: &str) -> String {
    let resp = no_redirects()
        .get(f.url(&format!("/api/v1/devices/{device}/ui/")))
        .header("Cookie", cookie)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "{:?}", resp.text());
    let to = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/b/") && to.ends_with('/'), "{to}");
    to
}

pub fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn login(f: &Fleet, token: &str) -> String {
    let resp = reqwest::blocking::Client::new()
        .post(f.url("/api/v1/session"))
        .json(&json!({ "token": token }))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

/// Signs `b` in to the fleet's dashboard with the operator `token` (the session cookie).
pub fn sign_in_browser(b: &mut r58_testkit::browser::Browser, f: &Fleet, token: &str) {
    b.goto(&f.url("/login"));
    b.wait_js(
        "!!document.getElementById('token')",
        "the fleet's sign-in page",
    );
    b.eval(&format!("document.getElementById('token').value = {token:?}; document.querySelector('#login button').click(); 1"));
    b.wait_js("location.pathname === '/'", "signed in to the fleet");
}
