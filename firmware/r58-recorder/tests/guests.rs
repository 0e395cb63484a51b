//! Guests over WHIP (RFC 9725), end to end: the real recorder with a `whip` input, invites
//! from its API, and headless Chromium with fake camera and microphone publishing from the
//! guest page, relay only, through a real coturn with the credentials the box hands out
//! (minted by the real fleet's TURN API). Everything on loopback: the box's ICE uses
//! 127.0.0.1 (`guests.ice_addresses`). The guest's picture becomes the input's (signal,
//! recorded segments that decode); leaving frees the input for the next guest; a relay that
//! refuses the credentials shows why on the page; the endpoint's statuses and headers one by
//! one.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use r58_testkit::browser::Browser;
use serde_json::{json, Value};

const GUEST_INPUT: &str = "[guests]\nice_addresses = [\"127.0.0.1\"]\n\
     [inputs.guest1]\nkind = \"whip\"\nwidth = 320\nheight = 240\nfps = 15\n";
const SECRET: &str = "coturn-secret-for-guests";

/// A box with one guest input whose TURN credentials come from a fleet on coturn with
/// `secret` (another one than coturn's makes credentials the relay refuses).
struct GuestBox {
    r: Recorder,
    _fleet: r58_testkit::Daemon,
}

fn guest_box(dir: &std::path::Path, coturn_port: u16, secret: &str) -> GuestBox {
    std::fs::create_dir_all(dir).unwrap();
    let (fleet, fleet_port, device_token) = start_fleet(dir, coturn_port, secret);
    std::fs::write(dir.join("fleet-token"), &device_token).unwrap();
    let r = Recorder::start(
        &dir.join("box"),
        &format!(
            "{GUEST_INPUT}[turn.fleet]\nurl = \"http://127.0.0.1:{fleet_port}\"\ntoken_file = \"{}\"\n",
            dir.join("fleet-token").display()
        ),
    );
    GuestBox { r, _fleet: fleet }
}

fn invite(r: &Recorder, body: Value) -> (String, Value) {
    let (code, made) = r.post("/api/guests/invites", &body.to_string(), Some(TOKEN));
    assert_eq!(code, 201, "{made}");
    (made["token"].as_str().unwrap().to_string(), made)
}

fn whip(
    r: &Recorder,
    method: &str,
    path: &str,
    token: Option<&str>,
    ctype: &str,
    body: &str,
) -> reqwest::blocking::Response {
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut req = c
        .request(method.parse().unwrap(), r.url(path))
        .header("Content-Type", ctype);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.body(body.to_string()).send().unwrap()
}

fn guest_browser() -> Browser {
    Browser::start_with(&[
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        // Host candidates as addresses, not mDNS names the box would have to resolve.
        "--disable-features=WebRtcHideLocalIpsWithMdns",
    ])
}

fn guest_state(r: &Recorder) -> Value {
    match http_get(&r.url("/api/status")) {
        Ok((200, body)) => {
            serde_json::from_str::<Value>(&body).unwrap()["inputs"]["guest1"].clone()
        }
        other => panic!("status: {other:?}\n{}", r.log_text()),
    }
}

#[test]
fn a_guest_publishes_from_the_guest_page_is_recorded_and_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let coturn = r58_testkit::Coturn::start(&dir.path().join("coturn"), SECRET);
    let gb = guest_box(&dir.path().join("a"), coturn.port, SECRET);
    let r = &gb.r;
    // Before anyone joins: the slate, and the input says why.
    assert_eq!(guest_state(r)["source"]["reason"], "no guest connected");
    let (token, made) = invite(r, json!({"name": "Ada", "uses": 2}));
    assert!(made["url"].as_str().unwrap().ends_with(&token));
    assert!(made["invite"].get("token_sha256").is_none(), "{made}");

    let mut b = guest_browser();
    b.goto(&r.url(&format!("/guest_join?invite={token}&relay=1")));
    b.wait_js(
        "document.querySelector('#camera option') !== null",
        "the camera list",
    );
    b.eval("document.getElementById('join').click(); 1");
    b.wait_js(
        "document.getElementById('state').dataset.state === 'connected'",
        "the page connected",
    );
    let text = b.eval("document.getElementById('state').textContent");
    assert_eq!(text, "Connected (relayed)");
    wait_for(
        Duration::from_secs(30),
        "the guest's picture on the input",
        || {
            let g = guest_state(r);
            (g["source"]["state"] == "playing" && g["signal"] == true).then_some(())
        },
    );
    let format = guest_state(r)["source_format"].clone();
    assert!(format["width"].as_i64().unwrap() > 0, "{format}");
    // Restreamed like any input: RTSP that a player other than GStreamer decodes.
    play_frames(&r.rtsp_url("guest1"), &["-rtsp_transport", "tcp"], 20).unwrap();

    // Recorded like any input: segments of the guest's picture that decode.
    let (code, body) = r.post("/api/recordings/start", "", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let session = body["session"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(5));
    let (code, _) = r.post("/api/recordings/stop", "", Some(TOKEN));
    assert_eq!(code, 200);
    let files = segment_files(&r.data(), &session, "guest1");
    assert!(!files.is_empty(), "no segment of the guest");
    for f in &files {
        decode(f.to_str().unwrap(), &[]).unwrap();
    }

    // While the guest is in, the one guest input is taken: a second guest waits (503).
    let (other, _) = invite(r, json!({"name": "Bob"}));
    let offer = b.eval(
        "(async () => { const pc = new RTCPeerConnection(); \
           pc.addTransceiver('video', {direction: 'sendonly'}); \
           await pc.setLocalDescription(await pc.createOffer()); \
           return pc.localDescription.sdp; })()",
    );
    let offer = offer.as_str().unwrap().to_string();
    let busy = whip(r, "POST", "/whip", Some(&other), "application/sdp", &offer);
    assert_eq!(busy.status().as_u16(), 503);
    assert_eq!(busy.headers()["retry-after"], "10");

    // A dropped guest (its network gone: no DELETE) comes back into the same input without
    // using the invite again.
    let uses_left = || -> u64 {
        let (_, list) = http_get(&r.url("/api/guests/invites")).unwrap();
        let list: Value = serde_json::from_str(&list).unwrap();
        list["invites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "Ada")
            .unwrap()["uses_left"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(uses_left(), 1);
    b.eval("pc.close(); pc = null; 1");
    wait_for(
        Duration::from_secs(30),
        "the dropped guest's input free",
        || (guest_state(r)["source"]["reason"] == "no guest connected").then_some(()),
    );
    b.eval("join(sessionId); 1");
    b.wait_js(
        "document.getElementById('state').dataset.state === 'connected'",
        "the guest back",
    );
    assert_eq!(uses_left(), 1, "coming back uses nothing");

    // Leaving ends the session: the input waits for the next guest, the slate back on.
    b.eval("document.getElementById('leave').click(); 1");
    b.wait_js(
        "document.getElementById('state').dataset.state === 'left'",
        "the page left",
    );
    wait_for(Duration::from_secs(15), "the input free again", || {
        (guest_state(r)["source"]["reason"] == "no guest connected").then_some(())
    });
    // The same invite joins again (its second use), into the same input.
    b.eval("document.getElementById('join').click(); 1");
    b.wait_js(
        "document.getElementById('state').dataset.state === 'connected'",
        "the page connected again",
    );
    assert_eq!(uses_left(), 0);
    // The box's operator removes the guest (kick); the API token is needed. A removed guest
    // does not come back on its session.
    let kicked = b.eval("sessionId").as_str().unwrap().to_string();
    let kick = |token: Option<&str>| {
        let mut req = reqwest::blocking::Client::new().delete(r.url("/api/guests/guest1"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap().status().as_u16()
    };
    assert_eq!(kick(None), 401);
    assert_eq!(kick(Some(TOKEN)), 204);
    assert_eq!(kick(Some(TOKEN)), 404, "nobody left to kick");
    wait_for(Duration::from_secs(15), "the input free again", || {
        (guest_state(r)["source"]["reason"] == "no guest connected").then_some(())
    });
    b.eval(&format!(
        "pc && pc.close(); pc = null; session = null; join('{kicked}'); 1"
    ));
    b.wait_js(
        "document.getElementById('state').dataset.state === 'error'",
        "the removed guest refused",
    );
    let text = b.eval("document.getElementById('state').textContent");
    assert!(
        text.as_str().unwrap().contains("used as often as it may"),
        "{text}"
    );
}

#[test]
fn the_whip_endpoint_answers_as_rfc_9725_says() {
    let dir = tempfile::tempdir().unwrap();
    let coturn = r58_testkit::Coturn::start(&dir.path().join("coturn"), SECRET);
    let gb = guest_box(&dir.path().join("a"), coturn.port, SECRET);
    let r = &gb.r;
    let (token, _) = invite(r, json!({"name": "Ada"}));
    let mut b = guest_browser();
    b.goto(&r.url("/healthz"));
    let offer = |b: &mut Browser, kind: &str| -> String {
        b.eval(&format!(
            "(async () => {{ const pc = new RTCPeerConnection(); \
               pc.addTransceiver('{kind}', {{direction: 'sendonly'}}); \
               await pc.setLocalDescription(await pc.createOffer()); \
               return pc.localDescription.sdp; }})()"
        ))
        .as_str()
        .unwrap()
        .to_string()
    };
    let video = offer(&mut b, "video");
    let audio_only = offer(&mut b, "audio");

    // CORS preflight; the ICE servers only for a valid invite.
    let pre = whip(r, "OPTIONS", "/whip", None, "application/sdp", "");
    assert_eq!(pre.status().as_u16(), 204);
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
    assert!(pre.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("Location"));
    assert_eq!(pre.headers()["accept-post"], "application/sdp");

    // Refusals, each with its status and a JSON reason.
    for (token, ctype, body, want, code) in [
        (None, "application/sdp", video.as_str(), 401, "unauthorized"),
        (
            Some("not-an-invite"),
            "application/sdp",
            video.as_str(),
            401,
            "bad_invite",
        ),
        (
            Some(token.as_str()),
            "application/json",
            video.as_str(),
            415,
            "unsupported_media_type",
        ),
        (
            Some(token.as_str()),
            "application/sdp",
            "v=0 nonsense",
            400,
            "bad_offer",
        ),
        (
            Some(token.as_str()),
            "application/sdp",
            audio_only.as_str(),
            422,
            "unsupported_codec",
        ),
    ] {
        let resp = whip(r, "POST", "/whip", token, ctype, body);
        assert_eq!(resp.status().as_u16(), want, "{token:?} {ctype}");
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        let v: Value = resp.json().unwrap();
        assert_eq!(v["error"], code, "{v}");
        assert!(!v["reason"].as_str().unwrap().is_empty());
    }

    // An offer: 201, the answer as SDP, the session's Location.
    let resp = whip(r, "POST", "/whip", Some(&token), "application/sdp", &video);
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(resp.headers()["content-type"], "application/sdp");
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("whip/guest1/"), "{location}");
    let answer = resp.text().unwrap();
    assert!(
        answer.starts_with("v=0") && answer.contains("a=candidate"),
        "{answer}"
    );
    let session = format!("/{location}");
    // No trickle ICE: 405 with what is allowed.
    let patch = whip(
        r,
        "PATCH",
        &session,
        None,
        "application/trickle-ice-sdpfrag",
        "a=end-of-candidates",
    );
    assert_eq!(patch.status().as_u16(), 405);
    assert!(patch.headers()["allow"]
        .to_str()
        .unwrap()
        .contains("DELETE"));
    // The invite was for one use: used up now.
    let again = whip(r, "POST", "/whip", Some(&token), "application/sdp", &video);
    assert_eq!(again.status().as_u16(), 401);
    // DELETE ends the session; a second DELETE finds nothing.
    assert_eq!(
        whip(r, "DELETE", &session, None, "", "").status().as_u16(),
        200
    );
    assert_eq!(
        whip(r, "DELETE", &session, None, "", "").status().as_u16(),
        404
    );
    assert_eq!(
        whip(r, "DELETE", "/whip/guest1/0000", None, "", "")
            .status()
            .as_u16(),
        404
    );

    // An expired invite is refused; a revoked one too.
    let (short, _) = invite(r, json!({"name": "Eve", "expires_in_seconds": 1}));
    std::thread::sleep(Duration::from_millis(1500));
    let expired = whip(r, "POST", "/whip", Some(&short), "application/sdp", &video);
    assert_eq!(expired.status().as_u16(), 401);
    let (revoked, made) = invite(r, json!({"name": "Mallory"}));
    let id = made["invite"]["id"].as_str().unwrap();
    let del = reqwest::blocking::Client::new()
        .delete(r.url(&format!("/api/guests/invites/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(del.status().as_u16(), 204);
    let gone = whip(
        r,
        "POST",
        "/whip",
        Some(&revoked),
        "application/sdp",
        &video,
    );
    assert_eq!(gone.status().as_u16(), 401);
    // Invites are the API token's business: without it, nothing.
    let (code, _) = r.post("/api/guests/invites", "{\"name\": \"x\"}", None);
    assert_eq!(code, 401);
    let (code, v) = r.post(
        "/api/guests/invites",
        "{\"name\": \"x\", \"uses\": 0}",
        Some(TOKEN),
    );
    assert_eq!(code, 400, "{v}");
}

/// The ICE servers come with the preflight of a valid invite; a relay that refuses the
/// box's credentials shows why on the page, and the input stays free.
#[test]
fn the_relay_comes_with_the_invite_and_a_refusing_relay_shows_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let coturn = r58_testkit::Coturn::start(&dir.path().join("coturn"), SECRET);
    let gb = guest_box(&dir.path().join("a"), coturn.port, SECRET);
    let (token, made) = invite(&gb.r, json!({"name": "Remote"}));
    let pre = whip(
        &gb.r,
        "OPTIONS",
        "/whip",
        Some(&token),
        "application/sdp",
        "",
    );
    let link = pre.headers()["link"].to_str().unwrap().to_string();
    // The guest's own credentials: a relay user of its own, named after the invite.
    let scoped = format!(
        ":r58-test.guest.{}\"",
        made["invite"]["id"].as_str().unwrap()
    );
    assert!(link.contains(&scoped), "{link}");
    assert!(
        link.contains(&format!("<turn:127.0.0.1:{}", coturn.port))
            && link.contains("rel=\"ice-server\"")
            && link.contains("credential-type=\"password\""),
        "{link}"
    );
    let none = whip(&gb.r, "OPTIONS", "/whip", Some("not-an-invite"), "", "");
    assert_eq!(none.status().as_u16(), 401);
    assert!(none.headers().get("link").is_none());

    let bad = guest_box(&dir.path().join("b"), coturn.port, "not-the-relay-secret");
    let (bad_invite, _) = invite(&bad.r, json!({"name": "Remote"}));
    let mut b = guest_browser();
    b.goto(
        &bad.r
            .url(&format!("/guest_join?invite={bad_invite}&relay=1")),
    );
    b.wait_js(
        "document.querySelector('#camera option') !== null",
        "the camera list",
    );
    b.eval("document.getElementById('join').click(); 1");
    b.wait_js(
        "document.getElementById('state').dataset.state === 'error'",
        "the refused relay",
    );
    let text = b.eval("document.getElementById('state').textContent");
    assert!(
        text.as_str().unwrap().contains("the relay refused"),
        "{text}"
    );
    assert_eq!(
        bad.r.status()["inputs"]["guest1"]["source"]["reason"],
        "no guest connected"
    );
}

/// A guest with the camera alone (no microphone, or "No microphone" chosen) on an input that
/// records audio: the picture comes through and is recorded, with silence for the sound.
#[test]
fn a_guest_without_a_microphone_is_seen_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let coturn = r58_testkit::Coturn::start(&dir.path().join("coturn"), SECRET);
    let gb = guest_box(&dir.path().join("a"), coturn.port, SECRET);
    let r = &gb.r;
    let (token, _) = invite(r, json!({"name": "Quiet"}));
    let mut b = guest_browser();
    b.goto(&r.url(&format!("/guest_join?invite={token}")));
    b.wait_js(
        "document.querySelector('#mic option[value=\"none\"]') !== null",
        "the microphone list",
    );
    b.eval("const m = document.getElementById('mic'); m.value = 'none'; m.dispatchEvent(new Event('change')); 1");
    b.eval("document.getElementById('join').click(); 1");
    b.wait_js(
        "document.getElementById('state').dataset.state === 'connected'",
        "the page connected",
    );
    let kinds =
        b.eval("pc.getTransceivers().map((t) => t.sender.track && t.sender.track.kind).join(',')");
    assert_eq!(kinds, "video", "what the page sends");
    wait_for(
        Duration::from_secs(30),
        "the guest's picture on the input",
        || {
            let g = guest_state(r);
            (g["source"]["state"] == "playing" && g["signal"] == true).then_some(())
        },
    );
    let (code, body) = r.post("/api/recordings/start", "", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let session = body["session"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(5));
    let (code, _) = r.post("/api/recordings/stop", "", Some(TOKEN));
    assert_eq!(code, 200);
    let files = segment_files(&r.data(), &session, "guest1");
    assert!(!files.is_empty(), "no segment of the guest");
    for f in &files {
        decode(f.to_str().unwrap(), &[]).unwrap();
    }
}
