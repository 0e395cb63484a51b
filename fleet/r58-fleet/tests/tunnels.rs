//! Remote access through the real fleet: `r58-fleet serve` with its relay, a box dialling
//! it with the certificate `r58-fleet pki issue-device` made (the `r58-tunnel` dialer the
//! agent runs), and an HTTP service on the box's side standing for its web UI. An admin
//! reaches it with the dashboard's session; the fleet's cookie stays at the fleet, the box's
//! own token goes on; viewers and bearer-only callers are refused.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::extract::Request;
use axum::routing::any;
use common::*;
use r58_testkit::{free_port, wait_until};
use r58_tunnel::device::Policy;
use r58_tunnel::dial::Dialer;
use serde_json::{json, Value};

/// The box's side: an HTTP service that answers with what it was asked, on a runtime of its
/// own, and the dialer keeping the tunnel to the relay at `relay_port`.
fn start_box(
    relay_port: u16,
    ui_port: u16,
    files: (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf),
) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.spawn(async move {
        let app = axum::Router::new().fallback(any(|req: Request| async move {
            let headers: serde_json::Map<String, Value> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                .collect();
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            axum::Json(json!({
                "method": parts.method.as_str(),
                "uri": parts.uri.to_string(),
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            }))
        }));
        let l = tokio::net::TcpListener::bind(("127.0.0.1", ui_port))
            .await
            .unwrap();
        axum::serve(l, app).await.unwrap();
    });
    let dialer = Dialer {
        address: format!("127.0.0.1:{relay_port}"),
        server_name: "localhost".into(),
        path: "/relay".into(),
        tls: r58_tls::client_config(&files.0, &files.1, &files.2).unwrap(),
        policy: Policy {
            ports: vec![ui_port],
            max_streams: 16,
        },
        max_backoff: Duration::from_secs(1),
    };
    rt.spawn(async move { dialer.run(Default::default()).await });
    rt
}

fn login(f: &Fleet, token: &str) -> String {
    let resp = reqwest::blocking::Client::new()
        .post(f.url("/api/v1/session"))
        .json(&json!({ "token": token }))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

#[test]
fn an_admin_reaches_the_box_ui_through_its_tunnel_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let (relay_port, ui_port) = (free_port(), free_port());
    let db = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let f = Fleet::start_with(
        &dir.path().join("fleet"),
        &pki,
        free_port(),
        &db,
        "fleet-tunnels",
        &format!(
            "[relay]\nlisten = \"127.0.0.1:{relay_port}\"\nca_file = \"{p}/ca.pem\"\n\
             cert_file = \"{p}/broker.crt\"\nkey_file = \"{p}/broker.key\"\nui_port = {ui_port}\n",
            p = pki.display()
        ),
    );
    let admin = f.operator("ada");
    let viewer = f.operator_as("val", "viewer");
    let files = device_files(dir.path(), &pki, 1, "r58-0001");
    let _box = start_box(relay_port, ui_port, files);
    wait_until(Duration::from_secs(20), "the box's tunnel", || {
        let (code, list) = call("GET", &f.url("/api/v1/tunnels"), Some(&admin), None);
        (code == 200 && list["devices"] == json!(["r58-0001"])).then_some(())
    });

    let session = login(&f, &admin);
    let c = reqwest::blocking::Client::new();
    let through = |method: &str, path: &str, cookie: Option<&str>| {
        let mut r = c
            .request(
                method.parse().unwrap(),
                f.url(&format!("/api/v1/devices/r58-0001/ui/{path}")),
            )
            .bearer_auth("the-box-token")
            .header("Sec-Fetch-Site", "same-origin")
            .body("sent body");
        if let Some(k) = cookie {
            r = r.header("Cookie", format!("{k}; other=1"));
        }
        let resp = r.send().unwrap();
        let code = resp.status().as_u16();
        (code, resp.json::<Value>().unwrap_or(Value::Null))
    };
    let (code, seen) = through("GET", "", Some(&session));
    assert_eq!((code, seen["uri"].as_str()), (200, Some("/")), "{seen}");
    let (code, seen) = through("GET", "api/status?x=1", Some(&session));
    assert_eq!(code, 200, "{seen}");
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["uri"], "/api/status?x=1");
    let h = &seen["headers"];
    assert_eq!(h["authorization"], "Bearer the-box-token");
    assert_eq!(
        h["cookie"], "other=1",
        "the fleet's session cookie stays at the fleet"
    );
    assert_eq!(h["host"], format!("127.0.0.1:{ui_port}"));
    let (code, seen) = through("POST", "api/recordings/start", Some(&session));
    assert_eq!(code, 200, "{seen}");
    assert_eq!(
        (seen["method"].as_str(), seen["body"].as_str()),
        (Some("POST"), Some("sent body"))
    );

    // The fleet's session is the cookie only: a bearer token alone is the box's, not an operator's.
    let (code, _) = through("GET", "api/status", None);
    assert_eq!(code, 401);
    let (code, body) = through("GET", "api/status", Some(&login(&f, &viewer)));
    assert_eq!(code, 403, "{body}");
    let (code, _) = call("GET", &f.url("/api/v1/devices/r58-0002/ui/"), None, None);
    assert_eq!(code, 401);
    let resp = c
        .get(f.url("/api/v1/devices/r58-0002/ui/"))
        .header("Cookie", session.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404, "a box without a tunnel");
}

/// The whole path: real Mosquitto, the real fleet with its relay, the real agent, the real
/// recorder as the box's web UI. Remote access is off until the fleet's desired config turns
/// it on; the tunnel survives the agent's `kill -9` (it dials again on restart, from the
/// config it keeps), and the fleet turns it off again.
#[test]
fn a_real_agent_opens_its_tunnel_when_the_fleet_turns_remote_access_on() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let broker = r58_testkit::Broker::start_with_certs(dir.path(), &pki);
    let relay_port = free_port();
    let (recorder, ui_port) = r58_testkit::start_recorder(
        &dir.path().join("recorder"),
        "[api]\ntoken = \"the-box-token-0123\"\n",
    );
    let db = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let f = Fleet::start_with(
        &dir.path().join("fleet"),
        &pki,
        broker.port,
        &db,
        "fleet-tunnels-e2e",
        &format!(
            "[relay]\nlisten = \"127.0.0.1:{relay_port}\"\nca_file = \"{p}/ca.pem\"\n\
             cert_file = \"{p}/broker.crt\"\nkey_file = \"{p}/broker.key\"\nui_port = {ui_port}\n",
            p = pki.display()
        ),
    );
    let admin = f.operator("ada");
    let (ca, cert, key) = device_files(dir.path(), &pki, broker.port, "r58-0001");
    let mut agent = r58_testkit::AgentProc::start_with(
        &dir.path().join("r58-0001"),
        &ca,
        &cert,
        &key,
        broker.port,
        "r58-0001",
        &format!(
            "[remote_access]\nrelay = \"127.0.0.1:{relay_port}\"\nserver_name = \"localhost\"\n\
             ports = [{ui_port}]\nreconnect_max_seconds = 1\n"
        ),
    );
    wait_device(&f, &admin, "r58-0001", "device online", |d| {
        d.status == "online"
    });
    let tunnels = || -> Value { call("GET", &f.url("/api/v1/tunnels"), Some(&admin), None).1 };
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(tunnels()["devices"], json!([]), "off by default");

    let set = |on: bool| {
        let (code, v) = call(
            "PUT",
            &f.url("/api/v1/devices/r58-0001/config"),
            Some(&admin),
            Some(json!({"settings": {"remote_access.enabled": on}})),
        );
        assert_eq!(code, 200, "{v}");
    };
    let open = |want: bool, what: &str| {
        wait_until(Duration::from_secs(30), what, || {
            ((tunnels()["devices"] == json!(["r58-0001"])) == want).then_some(())
        })
    };
    set(true);
    open(true, "the tunnel the fleet turned on");

    let session = login(&f, &admin);
    let c = reqwest::blocking::Client::new();
    let get = |path: &str, box_token: Option<&str>| {
        let mut r = c
            .get(f.url(&format!("/api/v1/devices/r58-0001/ui/{path}")))
            .header("Cookie", &session);
        if let Some(t) = box_token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };
    let (code, page) = get("", None);
    assert_eq!(code, 200);
    assert!(page.contains("R58 recorder"), "the box's own page");
    assert_eq!(get("api/status", None).0, 401, "the box asks for its token");
    let (code, status) = get("api/status", Some("the-box-token-0123"));
    assert_eq!(code, 200, "{status}");
    assert!(status.contains("cam1"), "{status}");

    agent.kill9();
    open(false, "the killed box's tunnel gone");
    agent.spawn();
    open(true, "the tunnel back after the restart");
    assert_eq!(get("api/status", Some("the-box-token-0123")).0, 200);

    set(false);
    open(false, "the tunnel the fleet turned off");
    drop(recorder);
}
