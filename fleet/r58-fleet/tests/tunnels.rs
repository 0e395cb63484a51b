//! Remote access through the real fleet: `r58-fleet serve` with its relay, a box dialling
//! it with the certificate `r58-fleet pki issue-device` made (the `r58-tunnel` dialer the
//! agent runs), and an HTTP service on the box's side standing for its web UI. An admin
//! opens it and gets a path of its own under /b/, sandboxed; the fleet's cookie stays at the
//! fleet, the box's own token goes on; viewers are refused.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::extract::Request;
use axum::routing::any;
use common::*;
use r58_testkit::{free_port, wait_until};
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
fn open_ui(f: &Fleet, cookie: &str, device: &str) -> String {
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

fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
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

/// The public guest path: no account, only the guest page and the WHIP endpoints of the
/// box reach it (no cookie with them; the invite in `Authorization` goes on), everything else
/// is answered by the fleet; requests are limited per source address (here behind a proxy
/// that names it in `X-Forwarded-For`) and per device.
#[test]
fn guests_reach_only_the_guest_page_and_whip_of_a_box_and_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let (relay_port, ui_port) = (free_port(), free_port());
    let f = relay_fleet(
        dir.path(),
        &pki,
        "fleet-guest-path",
        &relay_section(
            &pki,
            relay_port,
            &format!(
                "ui_port = {ui_port}\n\
             guest_per_address_per_minute = 12\nguest_per_device_per_minute = 15\n\
             trust_forwarded_for = true\n"
            ),
        ),
    );
    let admin = f.operator("ada");
    let files = device_files(dir.path(), &pki, 1, "r58-0001");
    let _box = start_box(relay_port, ui_port, files);
    wait_tunnel(&f, &admin, "r58-0001");
    let session = login(&f, &admin);
    let c = reqwest::blocking::Client::new();
    let guest = |from: &str, method: &str, path: &str| {
        let resp = c
            .request(method.parse().unwrap(), f.url(&format!("/g/{path}")))
            .header("X-Forwarded-For", format!("203.0.113.9, {from}"))
            .header("Cookie", format!("{session}; other=1"))
            .bearer_auth("the-invite")
            .header("Content-Type", "application/sdp")
            .body("v=0")
            .send()
            .unwrap();
        let code = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (code, resp.json::<Value>().unwrap_or(Value::Null), retry)
    };
    // While remote access is off for the fleet, the guest path answers without the box, and
    // the refusal does not count against the device's limit.
    let (code, body, _) = guest("192.0.2.7", "GET", "r58-0001/guest_join?invite=abc");
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("remote_access_off")),
        "{body}"
    );
    switch_remote_access(&f, &admin, true);
    let a = "198.51.100.1";
    let (code, seen, _) = guest(a, "GET", "r58-0001/guest_join?invite=abc");
    assert_eq!(code, 200, "{seen}");
    assert_eq!(seen["uri"], "/guest_join?invite=abc");
    assert_eq!(seen["headers"]["authorization"], "Bearer the-invite");
    assert!(
        seen["headers"].get("cookie").is_none(),
        "no cookie goes to the box from the public path: {seen}"
    );
    assert_eq!(seen["headers"]["host"], format!("127.0.0.1:{ui_port}"));
    let (code, seen, _) = guest(a, "POST", "r58-0001/whip?resume=s1");
    assert_eq!(
        (code, seen["method"].as_str()),
        (200, Some("POST")),
        "{seen}"
    );
    assert_eq!(
        (seen["uri"].as_str(), seen["body"].as_str()),
        (Some("/whip?resume=s1"), Some("v=0"))
    );
    let (code, seen, _) = guest(a, "DELETE", "r58-0001/whip/guest-ann/0a1b");
    assert_eq!(
        (code, seen["uri"].as_str()),
        (200, Some("/whip/guest-ann/0a1b"))
    );
    // The rest of the box is not on the guest path: the fleet answers, the box never sees it.
    for (method, path) in [
        ("GET", "r58-0001/api/status"),
        ("POST", "r58-0001/api/recordings/start"),
        ("GET", "r58-0001/hls/cam1/index.m3u8"),
        ("GET", "r58-0001/whip/..%2Fapi/status"),
        ("POST", "r58-0001/guest_join"),
    ] {
        let (code, body, _) = guest(a, method, path);
        assert_eq!(
            (code, body["error"].as_str()),
            (404, Some("not_found")),
            "{method} {path}: {body}"
        );
    }
    let (code, body, _) = guest(a, "GET", "r58-0002/guest_join");
    assert_eq!(code, 404, "a box without a tunnel: {body}");

    // Address a has made 9 requests of its 12; the 13th is refused with when to come back.
    let mut ok = 0;
    let refused = loop {
        let (code, body, retry) = guest(a, "GET", "r58-0001/guest_join");
        if code != 200 {
            break (code, body, retry);
        }
        ok += 1;
        assert!(ok <= 4, "more than 12 requests a minute from one address");
    };
    // 3, or 4 if the test took more than the 5 s one request comes back in.
    assert!((3..=4).contains(&ok), "{ok}");
    assert_eq!(refused.0, 429, "{}", refused.1);
    assert_eq!(refused.1["error"], "rate_limited");
    let wait: u64 = refused.2.expect("Retry-After").parse().unwrap();
    assert!(
        (1..=5).contains(&wait),
        "one request back every 5 s: {wait}"
    );
    // Another address is not held up by the first, until the device's 15 a minute are used:
    // a's requests that reached the box count (6), its refused and not-found ones do not.
    let mut from_b = 0;
    loop {
        let (code, body, _) = guest("198.51.100.2", "GET", "r58-0001/guest_join");
        if code == 429 {
            assert!(
                body["reason"].as_str().unwrap().contains("device r58-0001"),
                "{body}"
            );
            break;
        }
        assert_eq!(code, 200, "{body}");
        from_b += 1;
        assert!(from_b <= 11);
    }
    assert!((9..=11).contains(&from_b), "{from_b} from a second address");
    let (code, _, _) = guest("198.51.100.3", "GET", "r58-0001/guest_join");
    assert_eq!(code, 429, "the device's limit holds for every address");
    // What reached the box is in the audit, as a guest's, by address.
    let (_, list) = call(
        "GET",
        &f.url("/api/v1/tunnel-sessions?device=r58-0001"),
        Some(&admin),
        None,
    );
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3 + ok + from_b, "{list}");
    assert!(sessions.iter().all(|x| x["kind"] == "guest"));
    let by_a = sessions
        .iter()
        .filter(|x| x["opened_by"] == "guest 198.51.100.1")
        .count();
    assert_eq!(by_a, 3 + ok);
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
        "[api]\ntoken = \"the-box-token-0123\"\n[hls]\nenabled = true\n\
         [guests]\nice_addresses = [\"127.0.0.1\"]\n\
         [inputs.guest1]\nkind = \"whip\"\nwidth = 320\nheight = 240\nfps = 15\n",
    );
    let db = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let f = Fleet::start_with(
        &dir.path().join("fleet"),
        &pki,
        broker.port,
        &db,
        "fleet-tunnels-e2e",
        &relay_section(
            &pki,
            relay_port,
            // Guests on their own host name: localhost here, the fleet's API on 127.0.0.1.
            &format!("ui_port = {ui_port}\npublic_url = \"https://localhost\"\n"),
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
             ports = [{ui_port}]\nreconnect_max_seconds = 1\n\
             [agent]\nrecorder_api = \"http://127.0.0.1:{ui_port}\"\n[api]\ntoken = \"the-box-token-0123\"\n"
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
    switch_remote_access(&f, &admin, true);
    // The box's state says its tunnel is up, and how many streams are open through it.
    let remote = |tunnel: bool, streams: u32| {
        move |d: &r58_fleet_api::Device| {
            d.remote_access
                == Some(r58_proto::RemoteAccessState {
                    tunnel,
                    open_streams: streams,
                })
        }
    };
    wait_device(
        &f,
        &admin,
        "r58-0001",
        "the tunnel in the box's state",
        remote(true, 0),
    );
    let held = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(
            f.url("")
                .trim_start_matches("http://")
                .trim_end_matches('/'),
        )
        .unwrap();
        write!(
            s,
            "GET /api/v1/devices/r58-0001/port/{ui_port} HTTP/1.1\r\nHost: fleet\r\n\
             Authorization: Bearer {admin}\r\nConnection: upgrade\r\nUpgrade: r58-tunnel\r\n\r\n"
        )
        .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 101", "a port forward held open");
        s
    };
    wait_device(
        &f,
        &admin,
        "r58-0001",
        "an open stream in the box's state",
        remote(true, 1),
    );
    // The device's page shows it.
    let mut page = r58_testkit::browser::Browser::start();
    page.goto(&f.url("/login"));
    page.wait_js(
        "!!document.getElementById('token')",
        "the fleet's sign-in page",
    );
    page.eval(&format!("document.getElementById('token').value = {admin:?}; document.querySelector('#login button').click(); 1"));
    page.wait_js("location.pathname === '/'", "signed in to the fleet");
    page.goto(&f.url("/device/r58-0001"));
    page.wait_js(
        "(document.getElementById('card-remote-access') || {}).textContent === 'Remote accesstunnel up, 1 open'",
        "the remote access card on the device's page",
    );
    drop(page);
    drop(held);
    wait_device(
        &f,
        &admin,
        "r58-0001",
        "the stream gone from the box's state",
        remote(true, 0),
    );

    let session = login(&f, &admin);
    let c = reqwest::blocking::Client::new();
    let base = open_ui(&f, &session, "r58-0001");
    let get = |path: &str, box_token: Option<&str>| {
        let mut r = c.get(f.url(&format!("{base}{path}")));
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

    // A guest, with no account, on the public path: the box's guest page, its WHIP endpoint
    // with the invite as the credential (an invite made through the admin's UI path), and
    // nothing else of the box.
    let post = |path: &str, token: &str, body: &str| {
        c.post(f.url(&format!("{base}{path}")))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    let invite: Value = post(
        "api/guests/invites",
        "the-box-token-0123",
        r#"{"name": "Ann", "uses": 1}"#,
    )
    .json()
    .unwrap();
    let token = invite["token"]
        .as_str()
        .expect("an invite token")
        .to_string();
    // The guests' host (`relay.public_url`) is localhost, the API's 127.0.0.1.
    let guests_url = |p: &str| f.url(p).replacen("127.0.0.1", "localhost", 1);
    let g = |method: &str, path: &str, bearer: &str| {
        let resp = c
            .request(
                method.parse().unwrap(),
                guests_url(&format!("/g/r58-0001/{path}")),
            )
            .bearer_auth(bearer)
            .header("Content-Type", "application/sdp")
            .body("v=0\r\n")
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };
    let (code, page) = g("GET", &format!("guest_join?invite={token}"), "");
    assert_eq!(code, 200);
    assert!(page.contains("Join as a guest"), "the box's guest page");
    assert_eq!(g("OPTIONS", "whip", &token).0, 204, "the invite admits");
    let (code, body) = g("OPTIONS", "whip", "not-an-invite-0123456789");
    assert_eq!(code, 401, "the box refuses a bad invite: {body}");
    let (code, body) = g("POST", "whip", &token);
    assert_eq!(
        code, 400,
        "the box's reason for an offer that is not one: {body}"
    );
    assert_eq!(g("GET", "api/status", "the-box-token-0123").0, 404);

    // An invite made through the fleet's command comes back with its public link, and
    // that link's path is the box's guest page.
    let (code, sent) = call(
        "POST",
        &f.url("/api/v1/devices/r58-0001/commands"),
        Some(&admin),
        Some(json!({"name": "guest.invite", "args": {"name": "Bo"}})),
    );
    assert_eq!(code, 202, "{sent}");
    let id = sent["command"]["id"].as_str().unwrap().to_string();
    let done = wait_until(Duration::from_secs(20), "the invite command done", || {
        let (_, c) = call(
            "GET",
            &f.url(&format!("/api/v1/commands/{id}")),
            Some(&admin),
            None,
        );
        let state = c["command"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            ["sent", "accepted", "in_progress", "succeeded"].contains(&state.as_str()),
            "{c}"
        );
        (state == "succeeded").then_some(c)
    });
    let result = &done["command"]["result"];
    let link = result["public_url"].as_str().expect("a public link");
    let path = link
        .strip_prefix("https://localhost")
        .expect("on the fleet's public address");
    assert_eq!(
        path,
        format!(
            "/g/r58-0001/guest_join?invite={}",
            result["token"].as_str().unwrap()
        )
    );
    let page = c.get(guests_url(path)).send().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().unwrap().contains("Join as a guest"));
    // Guest pages only on the guests' host, and nothing else there: no sign-in, so no
    // operator's cookie, in the origin where a box's page runs.
    assert_eq!(c.get(f.url(path)).send().unwrap().status().as_u16(), 404);
    let sign_in = c
        .post(guests_url("/api/v1/session"))
        .json(&json!({ "token": admin }))
        .send()
        .unwrap();
    assert_eq!(sign_in.status().as_u16(), 404);
    assert!(sign_in.headers().get("set-cookie").is_none());
    assert_eq!(
        c.get(guests_url("/")).send().unwrap().status().as_u16(),
        404
    );
    assert_eq!(
        c.get(guests_url("/healthz"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    // A guest in a browser, on that public link: the page loads through the fleet, its WHIP
    // offer goes through the fleet to the box, and the guest's picture reaches the box's
    // guest input (the media itself goes directly, here on loopback).
    let mut guest = r58_testkit::browser::Browser::start_with(&[
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
    ]);
    guest.goto(&guests_url(path));
    guest.wait_js(
        "document.querySelector('#camera option') !== null",
        "the guest page's camera list",
    );
    guest.eval("document.getElementById('join').click(); 1");
    guest.wait_js(
        "document.getElementById('state').dataset.state === 'connected'",
        "the guest connected through the fleet's public path",
    );
    let box_status = || -> Value {
        let resp = c
            .get(format!("http://127.0.0.1:{ui_port}/api/status"))
            .bearer_auth("the-box-token-0123")
            .send()
            .unwrap();
        resp.json().unwrap()
    };
    wait_until(
        Duration::from_secs(30),
        "the guest's picture on the box's input",
        || {
            let g = box_status()["inputs"]["guest1"].clone();
            (g["source"]["state"] == "playing" && g["signal"] == true).then_some(())
        },
    );
    // Its WHIP exchange went through the fleet, audited as guest sessions.
    let (_, list) = call(
        "GET",
        &f.url("/api/v1/tunnel-sessions?device=r58-0001"),
        Some(&admin),
        None,
    );
    assert!(
        list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == "guest" && x["target"] == "POST /whip"),
        "{list}"
    );
    guest.eval("document.getElementById('leave').click(); 1");
    wait_until(
        Duration::from_secs(30),
        "the guest gone from the box",
        || (box_status()["inputs"]["guest1"]["signal"] == false).then_some(()),
    );
    drop(guest);

    // The box's own page through the fleet in headless Chromium, signed in to the fleet as
    // the admin: it works (sign-in with the box's token, its inputs, its live preview) in
    // an opaque origin, where it cannot use the admin's fleet session.
    let mut b = r58_testkit::browser::Browser::start();
    b.goto(&f.url("/login"));
    b.wait_js(
        "!!document.getElementById('token')",
        "the fleet's sign-in page",
    );
    b.eval(&format!("document.getElementById('token').value = {admin:?}; document.querySelector('#login button').click(); 1"));
    b.wait_js("location.pathname === '/'", "signed in to the fleet");
    // The fleet sends the browser on to the box's own path.
    b.call(
        "Page.navigate",
        json!({ "url": f.url("/api/v1/devices/r58-0001/ui/") }),
    );
    b.wait_js(
        "location.pathname.startsWith('/b/') && !!document.getElementById('signin-form')",
        "the box's sign-in page through the fleet",
    );
    assert_eq!(b.eval("self.origin"), "null", "the box's page is sandboxed");
    b.eval("document.getElementById('token').value = 'the-box-token-0123'; document.querySelector('#signin-form button').click(); 1");
    b.wait_js(
        "!!document.querySelector('#inputs tr[data-input=\"cam1\"][data-signal=\"true\"]')",
        "the box's input through the fleet",
    );
    b.eval("document.querySelector('#inputs tr[data-input=\"cam1\"] button.preview').click(); 1");
    b.wait_js(
        "(() => { const v = document.getElementById('player-video');\
           return v.videoWidth > 0 && v.currentTime > 0.5; })()",
        "the box's live preview through the fleet",
    );
    // What the box's page tries against the fleet itself goes without the admin's session.
    b.eval("window.__fleet = 'pending'; fetch('/api/v1/tunnels').then((r) => { window.__fleet = r.status; }, (e) => { window.__fleet = 'blocked'; }); 1");
    let tried = b.wait_js(
        "window.__fleet !== 'pending' && window.__fleet",
        "the page's try at the fleet's API",
    );
    assert!(tried == json!("blocked") || tried == json!(401), "{tried}");
    b.eval("window.__cookie = (() => { try { return document.cookie; } catch (e) { return 'no access'; } })(); 1");
    assert_eq!(b.eval("window.__cookie"), "no access");
    drop(b);

    agent.kill9();
    open(false, "the killed box's tunnel gone");
    agent.spawn();
    open(true, "the tunnel back after the restart");
    assert_eq!(get("api/status", Some("the-box-token-0123")).0, 200);

    set(false);
    open(false, "the tunnel the fleet turned off");
    wait_device(
        &f,
        &admin,
        "r58-0001",
        "remote access off in the box's state",
        |d| d.remote_access.is_none(),
    );
    drop(recorder);
}
