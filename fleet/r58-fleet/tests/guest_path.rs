//! The fleet's public guest path with the real fleet and a box dialling its relay: only the
//! guest page and WHIP of a box, no cookie, limits per source address and per device.

#![allow(clippy::unwrap_used)]

mod common;

use common::tunnel_box::*;
use common::*;
use r58_testkit::free_port;
use serde_json::Value;

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
