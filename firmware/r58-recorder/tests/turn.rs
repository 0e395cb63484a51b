//! TURN end to end: a real coturn (`use-auth-secret`) on loopback, the real fleet TURN API
//! minting credentials for a registered device, and the device's `/api/turn-credentials`
//! handing them out — then a real allocation through coturn with them. Expired and forged
//! credentials must be refused by coturn.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use r58_testkit::Coturn;

const SECRET: &str = "coturn-shared-secret-for-tests";

/// Allocates a relay through coturn and sends through it; true when coturn accepted.
fn allocate(port: u16, user: &str, credential: &str) -> bool {
    Command::new("turnutils_uclient")
        .args([
            "-y",
            "-c",
            "-n",
            "3",
            "-u",
            user,
            "-w",
            credential,
            "-p",
            &port.to_string(),
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("turnutils_uclient")
        .success()
}

fn post_fleet(port: u16, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let (code, text) = http_post(
        &format!("http://127.0.0.1:{port}/turn/credentials"),
        body,
        token,
    )
    .unwrap();
    (code, serde_json::from_str(&text).unwrap_or_default())
}

#[test]
fn credentials_from_fleet_via_device_allocate_a_real_relay_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let coturn = Coturn::start(&dir.path().join("coturn"), SECRET);
    let turn_port = coturn.port;
    let (_fleet, fleet_port, token) = start_fleet(dir.path(), turn_port, SECRET);

    // The fleet API refuses what it does not know.
    assert_eq!(post_fleet(fleet_port, None, "").0, 401);
    assert_eq!(
        post_fleet(fleet_port, Some("not-a-device-token"), "").0,
        401
    );
    assert_eq!(
        post_fleet(fleet_port, Some(&token), "{\"ttl\": \"x\"}").0,
        400
    );
    assert_eq!(
        post_fleet(fleet_port, Some(&token), "{\"guest\": \"a b\"}").0,
        400,
        "a guest name with a space"
    );
    // Credentials of one guest of the device: a user of its own that coturn takes.
    let (code, guest) = post_fleet(
        fleet_port,
        Some(&token),
        "{\"guest\": \"inv-42\", \"ttl\": 300}",
    );
    assert_eq!(code, 200, "{guest}");
    let g = &guest["iceServers"][0];
    let guest_user = g["username"].as_str().unwrap();
    assert!(
        guest_user.ends_with(":r58-test.guest.inv-42"),
        "{guest_user}"
    );
    assert!(allocate(
        turn_port,
        guest_user,
        g["credential"].as_str().unwrap()
    ));

    // The device gets its credentials through the fleet.
    std::fs::write(dir.path().join("fleet-token"), &token).unwrap();
    let extra = format!(
        "{ONE_TEST_INPUT}[turn]\nrate_limit_per_minute = 60\nrate_limit_burst = 5\n\
         [turn.fleet]\nurl = \"http://127.0.0.1:{fleet_port}\"\ntoken_file = \"{}\"\n",
        dir.path().join("fleet-token").display()
    );
    let r = Recorder::start(&dir.path().join("box"), &extra);
    let resp = authed_get(r.url("/api/turn-credentials")).unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: serde_json::Value = resp.json().unwrap();
    let server = &body["iceServers"][0];
    assert_eq!(
        server["urls"][0],
        format!("turn:127.0.0.1:{turn_port}?transport=udp")
    );
    let user = server["username"].as_str().unwrap();
    let cred = server["credential"].as_str().unwrap();
    assert!(user.ends_with(":r58-test"), "{user}");
    assert!(body["expiresAt"].as_str().is_some());

    // A real allocation with them.
    assert!(
        allocate(turn_port, user, cred),
        "coturn refused credentials minted by the fleet"
    );
    // Forged and expired ones are refused.
    assert!(!allocate(turn_port, user, "Zm9yZ2VkLWNyZWRlbnRpYWw="));
    let expired = chrono::Utc::now() - chrono::Duration::seconds(60);
    let old = r58_turn::coturn::mint(SECRET.as_bytes(), "r58-test", &[], expired);
    let (u, c) = (
        old.ice_servers[0].username.clone().unwrap(),
        old.ice_servers[0].credential.clone().unwrap(),
    );
    assert!(
        !allocate(turn_port, &u, &c),
        "coturn accepted expired credentials"
    );

    // Rate limit per client: the burst is 5 (one used above).
    let codes: Vec<u16> = (0..6)
        .map(|_| {
            authed_get(r.url("/api/turn-credentials"))
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert!(codes[..4].iter().all(|&c| c == 200), "{codes:?}");
    assert_eq!(*codes.last().unwrap(), 429, "{codes:?}");

    // A revoked device is refused at once.
    let out = Command::new(r58_testkit::workspace_bin("r58-fleet"))
        .args([
            "--config",
            dir.path().join("fleet.toml").to_str().unwrap(),
            "device-revoke",
            "r58-test",
        ])
        .status()
        .unwrap();
    assert!(out.success());
    assert_eq!(post_fleet(fleet_port, Some(&token), "").0, 401);
}

#[test]
fn no_reachable_provider_and_nothing_cached_answers_503_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet-token"), "some-token").unwrap();
    let dead = free_port();
    let extra = format!(
        "{ONE_TEST_INPUT}[turn]\ntimeout_ms = 500\n[turn.fleet]\nurl = \"http://127.0.0.1:{dead}\"\ntoken_file = \"{}\"\n",
        dir.path().join("fleet-token").display()
    );
    let r = Recorder::start(&dir.path().join("box"), &extra);
    let resp = authed_get(r.url("/api/turn-credentials")).unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["error"], "turn_unavailable");
    assert!(body["reason"].as_str().unwrap().contains("fleet"), "{body}");
}

#[test]
fn fleet_backend_failure_is_a_502() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dead = free_port();
    std::fs::write(dir.path().join("cf-token"), "cf-token").unwrap();
    std::fs::write(
        dir.path().join("fleet.toml"),
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[db]\nurl = \"sqlite://{db}\"\n[devices]\nfile = \"{}\"\n\
             [turn]\nbackend = \"cloudflare\"\ntimeout_ms = 500\n\
             [turn.cloudflare]\nkey_id = \"k\"\napi_token_file = \"{}\"\napi_base = \"http://127.0.0.1:{dead}\"\n",
            dir.path().join("devices.toml").display(),
            dir.path().join("cf-token").display(),
            db = dir.path().join("fleet.db").display()
        ),
    )
    .unwrap();
    let cfg = dir.path().join("fleet.toml");
    let out = Command::new(r58_testkit::workspace_bin("r58-fleet"))
        .args(["--config", cfg.to_str().unwrap(), "device-token", "r58-x"])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut _fleet = fleet_serve(&cfg);
    _fleet.spawn();
    wait_for(Duration::from_secs(10), "fleet API", || {
        http_get(&format!("http://127.0.0.1:{port}/healthz"))
            .ok()
            .filter(|r| r.0 == 200)
    });
    let (code, body) = post_fleet(port, Some(&token), "");
    assert_eq!(code, 502, "{body}");
    assert_eq!(body["error"], "backend_failed");
    assert!(body["reason"].as_str().unwrap().contains("cloudflare"));
}

/// The fleet's TURN API limits each device (10 at once, 30 a minute by default): a device
/// caches its credentials, so a flood is a loop or a stolen token. Another device is not
/// affected, and a token issued meanwhile with the CLI works at once (the registry is read
/// again when the file changes).
#[test]
fn the_fleet_limits_each_device_and_sees_new_tokens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let coturn = Coturn::start(&dir.path().join("coturn"), SECRET);
    let turn_port = coturn.port;
    let (_fleet, fleet_port, token) = start_fleet(dir.path(), turn_port, SECRET);
    let codes: Vec<u16> = (0..12)
        .map(|_| post_fleet(fleet_port, Some(&token), "").0)
        .collect();
    assert!(codes[..10].iter().all(|&c| c == 200), "{codes:?}");
    assert_eq!(codes[11], 429, "{codes:?}");
    let (_, body) = post_fleet(fleet_port, Some(&token), "");
    assert_eq!(body["error"], "rate_limited", "{body}");
    let out = Command::new(r58_testkit::workspace_bin("r58-fleet"))
        .args([
            "--config",
            dir.path().join("fleet.toml").to_str().unwrap(),
            "device-token",
            "r58-other",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let other = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(post_fleet(fleet_port, Some(&other), "").0, 200);
}
