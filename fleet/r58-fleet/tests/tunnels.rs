//! Remote access through the real fleet: `r58-fleet serve` with its relay, a box dialling
//! it with the certificate `r58-fleet pki issue-device` made (the `r58-tunnel` dialer the
//! agent runs), and an HTTP service on the box's side standing for its web UI. An admin
//! opens it and gets a path of its own under /b/, sandboxed; the fleet's cookie stays at the
//! fleet, the box's own token goes on; viewers are refused; sessions end at their limits.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::tunnel_box::*;
use common::*;
use r58_testkit::{free_port, wait_until};
use serde_json::Value;

#[test]
fn an_admin_reaches_the_box_ui_through_its_tunnel_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let (relay_port, ui_port) = (free_port(), free_port());
    let f = relay_fleet(
        dir.path(),
        &pki,
        "fleet-tunnels",
        &relay_section(&pki, relay_port, &format!("ui_port = {ui_port}\n")),
    );
    let admin = f.operator("ada");
    let viewer = f.operator_as("val", "viewer");
    let files = device_files(dir.path(), &pki, 1, "r58-0001");
    let _box = start_box(relay_port, ui_port, files);
    wait_tunnel(&f, &admin, "r58-0001");

    let session = login(&f, &admin);
    let c = reqwest::blocking::Client::new();
    // Off for the whole fleet until an admin turns it on: the box's tunnel is open, but
    // nothing goes through it.
    let (code, switch) = call("GET", &f.url("/api/v1/remote-access"), Some(&viewer), None);
    assert_eq!(code, 200);
    assert_eq!(
        switch,
        serde_json::json!({"enabled": false, "changed_by": null, "changed_at_ms": null})
    );
    let off = no_redirects()
        .get(f.url("/api/v1/devices/r58-0001/ui/"))
        .header("Cookie", &session)
        .send()
        .unwrap();
    assert_eq!(off.status().as_u16(), 403);
    let body: Value = off.json().unwrap();
    assert_eq!(body["error"], "remote_access_off", "{body}");
    let (code, _) = call(
        "PUT",
        &f.url("/api/v1/remote-access"),
        Some(&viewer),
        Some(serde_json::json!({"enabled": true})),
    );
    assert_eq!(code, 403, "a viewer does not switch it");
    let (code, _) = call(
        "PUT",
        &f.url("/api/v1/remote-access"),
        Some(&admin),
        Some(serde_json::json!({"enabled": "yes"})),
    );
    assert_eq!(code, 422, "a malformed switch is refused");
    let on = switch_remote_access(&f, &admin, true);
    assert_eq!(on["changed_by"], "ada");
    assert_eq!(
        call("GET", &f.url("/api/v1/remote-access"), Some(&viewer), None).1,
        on,
        "kept as switched"
    );
    // Opening the box's UI gives a path of its own under /b/; what goes there reaches this
    // box with the box's own token, whatever cookie the browser sends.
    let base = open_ui(&f, &session, "r58-0001");
    let through = |method: &str, path: &str| {
        let resp = c
            .request(method.parse().unwrap(), f.url(&format!("{base}{path}")))
            .bearer_auth("the-box-token")
            .header("Cookie", format!("{session}; other=1"))
            .header("Origin", "null")
            .body("sent body")
            .send()
            .unwrap();
        let code = resp.status().as_u16();
        let h = resp.headers().clone();
        (code, resp.json::<Value>().unwrap_or(Value::Null), h)
    };
    let (code, seen, h) = through("GET", "");
    assert_eq!((code, seen["uri"].as_str()), (200, Some("/")), "{seen}");
    // The box's pages run sandboxed, away from the fleet's origin, and set no cookie here.
    let csp: Vec<_> = h.get_all("content-security-policy").iter().collect();
    assert_eq!(csp.len(), 1, "{csp:?}");
    let csp = csp[0].to_str().unwrap();
    assert!(
        csp.starts_with("sandbox") && !csp.contains("allow-same-origin"),
        "{csp}"
    );
    assert!(h.get("set-cookie").is_none(), "the box set a cookie: {h:?}");
    assert_eq!(h["access-control-allow-origin"], "null");
    assert!(h.get("access-control-allow-credentials").is_none());
    let (code, seen, _) = through("GET", "api/status?x=1");
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
    let (code, seen, _) = through("POST", "api/recordings/start");
    assert_eq!(code, 200, "{seen}");
    assert_eq!(
        (seen["method"].as_str(), seen["body"].as_str()),
        (Some("POST"), Some("sent body"))
    );

    // Each request through the tunnel is in the audit: who, what (no query: it may hold
    // secrets), how many bytes, how it ended. Viewers may read it.
    let audit = wait_until(Duration::from_secs(10), "the sessions closed", || {
        let (code, list) = call(
            "GET",
            &f.url("/api/v1/tunnel-sessions?device=r58-0001"),
            Some(&viewer),
            None,
        );
        assert_eq!(code, 200, "{list}");
        let s = list["sessions"].as_array().unwrap().clone();
        (s.len() == 3 && s.iter().all(|x| x["end_reason"] == "closed")).then_some(s)
    });
    let targets: Vec<&str> = audit
        .iter()
        .map(|x| x["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["POST /api/recordings/start", "GET /api/status", "GET /"],
        "newest first"
    );
    for x in &audit {
        assert_eq!(
            (x["kind"].as_str(), x["opened_by"].as_str()),
            (Some("ui"), Some("ada"))
        );
        assert_eq!(x["port"], ui_port);
        assert!(x["bytes_to_device"].as_i64().unwrap() > 100, "{x}");
        assert!(x["bytes_from_device"].as_i64().unwrap() > 100, "{x}");
        assert!(x["closed_at"].as_i64().unwrap() >= x["opened_at"].as_i64().unwrap());
    }

    // A sandboxed page's preflight is answered by the fleet, for its origin only.
    let pre = c
        .request(
            reqwest::Method::OPTIONS,
            f.url(&format!("{base}api/status")),
        )
        .header("Origin", "null")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .unwrap();
    assert_eq!(pre.status().as_u16(), 204);
    assert_eq!(pre.headers()["access-control-allow-origin"], "null");
    assert!(pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));

    // Only admins open a box's UI; a path under /b/ that the fleet did not give leads nowhere.
    let (code, body) = call("GET", &f.url("/api/v1/devices/r58-0001/ui/"), None, None);
    assert_eq!(code, 401, "{body}");
    let resp = no_redirects()
        .get(f.url("/api/v1/devices/r58-0001/ui/"))
        .header("Cookie", login(&f, &viewer))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let by_token = no_redirects()
        .get(f.url("/api/v1/devices/r58-0001/ui/api/status?y=2"))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(
        by_token.status().as_u16(),
        303,
        "an admin's token opens it too"
    );
    let to = by_token.headers()["location"].to_str().unwrap();
    assert!(
        to.ends_with("/api/status?y=2") && !to.starts_with(&base),
        "{to}"
    );
    let made_up = format!("/b/{}/api/status", "0".repeat(48));
    let resp = c.get(f.url(&made_up)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("sandbox"));
    let resp = no_redirects()
        .get(f.url("/api/v1/devices/r58-0002/ui/"))
        .header("Cookie", session.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404, "a box without a tunnel");
}

/// Every stream through a tunnel ends at its idle timeout or its maximum duration, or when
/// an admin closes it, and the audit says which.
#[test]
fn sessions_end_at_their_limits_or_when_an_admin_closes_them() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let (relay_port, ui_port) = (free_port(), free_port());
    let f = relay_fleet(
        dir.path(),
        &pki,
        "fleet-tunnel-limits",
        &relay_section(
            &pki,
            relay_port,
            &format!(
                "ui_port = {ui_port}\n\
             session_idle_seconds = 2\nsession_max_seconds = 5\n"
            ),
        ),
    );
    let admin = f.operator("ada");
    let viewer = f.operator_as("val", "viewer");
    let files = device_files(dir.path(), &pki, 1, "r58-0001");
    let _box = start_box(relay_port, ui_port, files);
    wait_tunnel(&f, &admin, "r58-0001");
    switch_remote_access(&f, &admin, true);
    let session = login(&f, &admin);
    let url = f.url(&open_ui(&f, &session, "r58-0001"));
    // Reads `path` through the tunnel to its end; the status (0 if none came), the bytes
    // read and the time it took.
    let read = move |path: &str| {
        let started = std::time::Instant::now();
        let c = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut bytes = 0usize;
        let code = match c
            .get(format!("{url}{path}"))
            .header("Cookie", &session)
            .send()
        {
            Ok(mut resp) => {
                let code = resp.status().as_u16();
                let mut buf = [0u8; 1024];
                while let Ok(n) = std::io::Read::read(&mut resp, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    bytes += n;
                }
                code
            }
            Err(_) => 0,
        };
        (code, bytes, started.elapsed())
    };
    let ended = |target: &str| -> Value {
        wait_until(
            Duration::from_secs(10),
            "the session's end recorded",
            || {
                let (_, list) = call("GET", &f.url("/api/v1/tunnel-sessions"), Some(&admin), None);
                list["sessions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["target"] == target && !x["end_reason"].is_null())
                    .cloned()
            },
        )
    };

    let (code, _, took) = read("slow");
    assert_eq!(
        code, 502,
        "nothing came from the box before the idle timeout"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(ended("GET /slow")["end_reason"], "idle");

    let (code, bytes, took) = read("drip");
    assert_eq!(code, 200);
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(15),
        "a busy stream runs to its maximum duration: {took:?}"
    );
    let drip = ended("GET /drip");
    assert_eq!(drip["end_reason"], "max_duration");
    assert!(bytes > 1000 && drip["bytes_from_device"].as_i64().unwrap() >= bytes as i64);

    // An admin closes an open session; a viewer may not.
    let reader = std::thread::spawn(move || read("drip?again"));
    let open = wait_until(Duration::from_secs(10), "the session open", || {
        let (_, list) = call(
            "GET",
            &f.url("/api/v1/tunnel-sessions?open=true"),
            Some(&admin),
            None,
        );
        list["sessions"].as_array().unwrap().first().cloned()
    });
    assert!(open["closed_at"].is_null());
    let id = open["id"].as_str().unwrap();
    let close = |token: &str| {
        call(
            "DELETE",
            &f.url(&format!("/api/v1/tunnel-sessions/{id}")),
            Some(token),
            None,
        )
        .0
    };
    assert_eq!(close(&viewer), 403);
    assert_eq!(close(&admin), 204);
    let (_, _, took) = reader.join().unwrap();
    assert!(
        took < Duration::from_millis(4500),
        "closed before its limit: {took:?}"
    );
    let closed = wait_until(Duration::from_secs(10), "the close recorded", || {
        let (_, list) = call("GET", &f.url("/api/v1/tunnel-sessions"), Some(&admin), None);
        list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id && !x["end_reason"].is_null())
            .cloned()
    });
    assert_eq!(closed["end_reason"], "closed_by_operator");
    assert_eq!(close(&admin), 404, "no longer open");
}
