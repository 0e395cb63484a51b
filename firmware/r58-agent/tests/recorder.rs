//! `record.start` / `record.stop` drive the real recorder through its HTTP API, and the
//! recorder's figures arrive as telemetry.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const TOKEN: &str = "agent-test-token-0123456789";

#[test]
fn record_commands_and_recorder_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let (_recorder, api) = start_recorder(
        &dir.path().join("rec"),
        &format!("[api]\ntoken = \"{TOKEN}\"\n"),
    );

    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(&pki, broker.port, "fleet-observer", "fleet", &["r58/v1/#"]);
    let extra =
        format!("[api]\ntoken = \"{TOKEN}\"\n[agent]\nrecorder_api = \"http://127.0.0.1:{api}\"\n");
    let _agent = AgentProc::start(
        &dir.path().join("agent"),
        &pki,
        broker.port,
        "r58-r",
        &extra,
    );
    obs.wait_json(
        "r58/v1/r58-r/state",
        Duration::from_secs(15),
        "online",
        |v| v["status"] == "online",
    );
    // The recorder's own figures, as its API reports them (fps is measured after a second).
    obs.wait_json(
        "r58/v1/r58-r/telemetry/recorder",
        Duration::from_secs(30),
        "recorder telemetry",
        |v| {
            v["data"]["inputs"]["cam1"]["signal"] == true
                && v["data"]["inputs"]["cam1"]["fps"].as_f64() > Some(0.0)
        },
    );

    obs.publish(
        "r58/v1/r58-r/cmd/record.start",
        cmd("s1", json!({"inputs": ["cam1"]})),
        false,
    );
    let s1 = obs.wait_json(
        "r58/v1/r58-r/cmd/status",
        Duration::from_secs(15),
        "record.start",
        |v| {
            v["id"] == "s1"
                && v["state"]
                    .as_str()
                    .is_some_and(|s| s == "succeeded" || s == "failed")
        },
    );
    assert_eq!(s1["state"], "succeeded", "{s1}");
    assert_eq!(s1["result"]["started"], json!(["cam1"]));
    obs.wait_json(
        "r58/v1/r58-r/telemetry/recorder",
        Duration::from_secs(15),
        "recording in telemetry",
        |v| v["data"]["inputs"]["cam1"]["recording"] == true,
    );
    obs.publish("r58/v1/r58-r/cmd/record.stop", cmd("s2", json!({})), false);
    let s2 = obs.wait_json(
        "r58/v1/r58-r/cmd/status",
        Duration::from_secs(15),
        "record.stop",
        |v| v["id"] == "s2" && v["state"] == "succeeded",
    );
    assert_eq!(s2["result"]["stopped"], json!(["cam1"]));

    // An invite for a guest, made from the fleet: the link comes back in the result; bad
    // arguments come back as the recorder's reason.
    obs.publish(
        "r58/v1/r58-r/cmd/guest.invite",
        cmd("g1", json!({"name": "Ada", "uses": 3})),
        false,
    );
    let g1 = obs.wait_json(
        "r58/v1/r58-r/cmd/status",
        Duration::from_secs(15),
        "guest.invite",
        |v| v["id"] == "g1" && (v["state"] == "succeeded" || v["state"] == "failed"),
    );
    assert_eq!(g1["state"], "succeeded", "{g1}");
    assert_eq!(g1["result"]["invite"]["uses_left"], 3);
    let token = g1["result"]["token"].as_str().unwrap();
    assert_eq!(
        g1["result"]["url"].as_str().unwrap(),
        format!("/guest_join?invite={token}")
    );
    obs.publish(
        "r58/v1/r58-r/cmd/guest.invite",
        cmd("g2", json!({"name": "", "uses": 3})),
        false,
    );
    let g2 = obs.wait_json(
        "r58/v1/r58-r/cmd/status",
        Duration::from_secs(15),
        "guest.invite refused",
        |v| v["id"] == "g2" && (v["state"] == "succeeded" || v["state"] == "failed"),
    );
    assert_eq!(g2["state"], "failed", "{g2}");
    assert!(g2["message"].as_str().unwrap().contains("name"), "{g2}");
}
