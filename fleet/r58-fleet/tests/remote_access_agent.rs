//! Remote access end to end: real Mosquitto, the real fleet with its relay, the real agent
//! and the real recorder as the box; guests in headless Chromium on the fleet's public link.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::tunnel_box::*;
use common::*;
use r58_testkit::{free_port, wait_until};
use serde_json::{json, Value};

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
    sign_in_browser(&mut page, &f, &admin);
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
    sign_in_browser(&mut b, &f, &admin);
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
