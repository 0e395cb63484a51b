//! Commands through the real broker: at most once, expiry, malformed payloads, and the
//! system commands through the OS seam (stand-in systemctl/journalctl on PATH).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const STATUS: &str = "r58/v1/r58-c/cmd/status";

fn statuses(obs: &Observer, id: &str) -> Vec<serde_json::Value> {
    obs.json_on(STATUS)
        .into_iter()
        .filter(|v| v["id"] == id)
        .collect()
}

#[test]
fn commands_run_once_and_bad_ones_are_rejected_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(&pki, broker.port, "fleet-observer", "fleet", &["r58/v1/#"]);
    let mut agent = AgentProc::start(&dir.path().join("c"), &pki, broker.port, "r58-c", "");
    obs.wait_json(
        "r58/v1/r58-c/state",
        Duration::from_secs(15),
        "online",
        |v| v["status"] == "online",
    );

    // Same id three times (one after a restart of the agent): executed once.
    obs.publish("r58/v1/r58-c/cmd/ping", cmd("p1", json!({})), false);
    obs.publish("r58/v1/r58-c/cmd/ping", cmd("p1", json!({})), false);
    obs.wait_json(STATUS, Duration::from_secs(10), "ping done", |v| {
        v["id"] == "p1" && v["state"] == "succeeded"
    });
    agent.kill9();
    agent.spawn();
    obs.wait_json(
        "r58/v1/r58-c/state",
        Duration::from_secs(15),
        "online",
        |v| v["status"] == "online" && v["session"].as_u64() >= Some(2),
    );
    obs.publish("r58/v1/r58-c/cmd/ping", cmd("p1", json!({})), false);
    obs.publish("r58/v1/r58-c/cmd/ping", cmd("p2", json!({})), false);
    obs.wait_json(STATUS, Duration::from_secs(10), "second ping", |v| {
        v["id"] == "p2" && v["state"] == "succeeded"
    });
    // Statuses are delivered at least once (a status whose PUBACK was not yet processed at the
    // kill is sent again, identical); an execution would produce new ones (new timestamps).
    let mut distinct: Vec<serde_json::Value> = Vec::new();
    for v in statuses(&obs, "p1") {
        if !distinct.contains(&v) {
            distinct.push(v);
        }
    }
    let p1: Vec<&str> = distinct
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(p1, vec!["accepted", "succeeded"], "executed once");

    // Expired, unknown, malformed (with and without an id).
    let past =
        json!({"id": "old", "expires_at": chrono::Utc::now() - chrono::Duration::seconds(1)})
            .to_string();
    obs.publish("r58/v1/r58-c/cmd/ping", past, false);
    obs.publish(
        "r58/v1/r58-c/cmd/self.destruct",
        cmd("u1", json!({})),
        false,
    );
    obs.publish(
        "r58/v1/r58-c/cmd/ping",
        r#"{"id": "m1", "expires_at": "yesterday"}"#,
        false,
    );
    obs.publish("r58/v1/r58-c/cmd/ping", "not json at all", false);
    for (id, word) in [
        ("old", "expired"),
        ("u1", "unknown command"),
        ("m1", "malformed"),
    ] {
        let v = obs.wait_json(STATUS, Duration::from_secs(10), id, |v| v["id"] == id);
        assert_eq!(v["state"], "rejected");
        assert!(v["message"].as_str().unwrap().contains(word), "{v}");
    }

    // System commands go through systemctl / journalctl; units outside the list are refused.
    obs.publish(
        "r58/v1/r58-c/cmd/service.restart",
        cmd("r1", json!({"unit": "r58-recorder.service"})),
        false,
    );
    obs.wait_json(STATUS, Duration::from_secs(10), "restart", |v| {
        v["id"] == "r1" && v["state"] == "succeeded"
    });
    obs.publish(
        "r58/v1/r58-c/cmd/service.restart",
        cmd("r2", json!({"unit": "sshd.service"})),
        false,
    );
    let r2 = obs.wait_json(STATUS, Duration::from_secs(10), "refused restart", |v| {
        v["id"] == "r2" && v["state"] == "failed"
    });
    assert!(r2["message"]
        .as_str()
        .unwrap()
        .contains("restartable_units"));
    obs.publish(
        "r58/v1/r58-c/cmd/logs.tail",
        cmd("l1", json!({"unit": "r58-agent.service", "lines": 2})),
        false,
    );
    let l1 = obs.wait_json(STATUS, Duration::from_secs(10), "logs", |v| {
        v["id"] == "l1" && v["state"] == "succeeded"
    });
    assert_eq!(l1["result"]["lines"], json!(["line one", "line two"]));
    assert!(statuses(&obs, "l1")
        .iter()
        .any(|v| v["state"] == "in_progress"));
    obs.publish("r58/v1/r58-c/cmd/config.get", cmd("g1", json!({})), false);
    let g1 = obs.wait_json(STATUS, Duration::from_secs(10), "config", |v| {
        v["id"] == "g1" && v["state"] == "succeeded"
    });
    assert_eq!(g1["result"]["agent"]["device_id"], "r58-c");

    // Reboot: `rebooting` is published before systemctl reboot runs.
    obs.publish("r58/v1/r58-c/cmd/reboot", cmd("b1", json!({})), false);
    obs.wait_json(STATUS, Duration::from_secs(10), "reboot", |v| {
        v["id"] == "b1" && v["state"] == "succeeded"
    });
    obs.wait_json(
        "r58/v1/r58-c/state",
        Duration::from_secs(5),
        "rebooting",
        |v| v["status"] == "rebooting",
    );
    let calls = agent.system_calls();
    assert!(
        calls.contains("systemctl restart --no-block r58-recorder.service"),
        "{calls}"
    );
    assert!(!calls.contains("sshd"), "{calls}");
    assert!(
        calls.contains("journalctl --no-pager -o short-iso -u r58-agent.service -n 2"),
        "{calls}"
    );
    assert!(calls.contains("systemctl reboot"), "{calls}");
    assert!(agent.alive());
}

/// A journal tail far over the MQTT packet limit (1 000 lines of 3 000 bytes) is cut to the
/// newest lines that fit; the commands after it are answered (an oversized status used to
/// fail the connection, go back to the head of the disk queue and block everything behind).
#[test]
fn an_oversized_log_tail_is_cut_and_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(&pki, broker.port, "fleet-observer", "fleet", &["r58/v1/#"]);
    let agent = AgentProc::start(&dir.path().join("c"), &pki, broker.port, "r58-c", "");
    let journal: String = (0..1000)
        .map(|i| format!("{i:04} {}\n", "x".repeat(3000)))
        .collect();
    std::fs::write(agent.dir.join("journal"), journal).unwrap();
    obs.wait_json(
        "r58/v1/r58-c/state",
        Duration::from_secs(15),
        "online",
        |v| v["status"] == "online",
    );
    obs.publish(
        "r58/v1/r58-c/cmd/logs.tail",
        cmd("t1", json!({"unit": "r58-recorder.service", "lines": 1000})),
        false,
    );
    obs.publish("r58/v1/r58-c/cmd/ping", cmd("p1", json!({})), false);
    let t1 = obs.wait_json(STATUS, Duration::from_secs(15), "cut tail", |v| {
        v["id"] == "t1" && v["state"] == "succeeded"
    });
    let lines = t1["result"]["lines"].as_array().unwrap();
    let omitted = t1["result"]["omitted"].as_u64().unwrap();
    assert!(
        !lines.is_empty() && omitted > 0,
        "{} kept, {omitted} omitted",
        lines.len()
    );
    assert_eq!(lines.len() as u64 + omitted, 1000);
    assert!(lines.last().unwrap().as_str().unwrap().starts_with("0999 "));
    obs.wait_json(STATUS, Duration::from_secs(15), "ping after it", |v| {
        v["id"] == "p1" && v["state"] == "succeeded"
    });
}

/// A flood of commands and desired configurations (valid and malformed) is worked through
/// and never deadlocks the agent: its answers and the inbound messages share the MQTT
/// client's queues.
#[test]
fn a_flood_of_commands_does_not_stall_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(
        &pki,
        broker.port,
        "fleet-observer",
        "fleet",
        &[STATUS_F, STATE_F],
    );
    let mut agent = AgentProc::start(&dir.path().join("f"), &pki, broker.port, "r58-f", "");
    obs.wait_json(STATE_F, Duration::from_secs(15), "online", |v| {
        v["status"] == "online"
    });
    // Pings, malformed commands and refused desired configurations (each answered with a
    // reported document), back to back.
    for i in 0..8000 {
        match i % 4 {
            0 => obs.publish(
                "r58/v1/r58-f/cmd/ping",
                cmd(&format!("f{i}"), json!({})),
                false,
            ),
            1 => obs.publish("r58/v1/r58-f/cmd/ping", "{\"id\":", false),
            _ => obs.publish(
                "r58/v1/r58-f/twin/desired",
                json!({"version": i + 1, "settings": {"no.such.key": 1}}).to_string(),
                false,
            ),
        }
    }
    obs.publish("r58/v1/r58-f/cmd/ping", cmd("last", json!({})), false);
    obs.wait_json(STATUS_F, Duration::from_secs(120), "the last ping", |v| {
        v["id"] == "last" && v["state"] == "succeeded"
    });
    assert!(agent.alive());
}

const STATUS_F: &str = "r58/v1/r58-f/cmd/status";
const STATE_F: &str = "r58/v1/r58-f/state";
