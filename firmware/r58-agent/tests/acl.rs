//! The production broker (its config and authorization plugin) with a stolen device's
//! certificate: it reaches only its own subtree, cannot take over another client's session
//! or join the fleet's shared subscriptions, and is shut out once revoked.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn device_a_cannot_write_or_read_device_b() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let fleet = Observer::connect(&pki, broker.port, "fleet-observer", "fleet", &["r58/v1/#"]);
    // Device A subscribes to B's command topics (and its own).
    let a = Observer::connect(
        &pki,
        broker.port,
        "r58-a",
        "r58-a",
        &["r58/v1/r58-b/#", "r58/v1/r58-a/cmd/+"],
    );

    // A writes into B's subtree and its own: only its own arrives.
    a.publish("r58/v1/r58-b/state", r#"{"status":"online"}"#, false);
    a.publish("r58/v1/r58-b/telemetry/system", r#"{"forged":true}"#, false);
    a.publish("r58/v1/r58-a/state", r#"{"status":"online"}"#, false);
    // The fleet sends commands to both.
    fleet.publish("r58/v1/r58-b/cmd/ping", r#"{"id":"for-b"}"#, false);
    fleet.publish("r58/v1/r58-a/cmd/ping", r#"{"id":"for-a"}"#, false);
    fleet.wait_json(
        "r58/v1/r58-a/state",
        Duration::from_secs(5),
        "A's own state",
        |_| true,
    );
    a.wait_json(
        "r58/v1/r58-a/cmd/ping",
        Duration::from_secs(5),
        "A's own command",
        |_| true,
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        fleet.count_on_prefix("r58/v1/r58-b/"),
        1,
        "only the fleet's own command to B: {:?}",
        fleet.json_on("r58/v1/r58-b/state")
    );
    assert_eq!(
        a.count_on_prefix("r58/v1/r58-b/"),
        0,
        "A received B's traffic"
    );
    // Nor may a device write where devices never write (its own desired config).
    a.publish("r58/v1/r58-a/twin/desired", r#"{"version":99}"#, true);
    std::thread::sleep(Duration::from_millis(500));
    assert!(fleet.json_on("r58/v1/r58-a/twin/desired").is_empty());
}

/// `mosquitto_pub` with `cn`'s certificate under client id `id`: its exit status (0 sent,
/// 5 connection refused).
fn pub_as(pki: &Pki, port: u16, cn: &str, id: &str, topic: &str) -> i32 {
    let (cert, key) = pki.issue(&format!("cli-{cn}-{id}"), cn, false);
    Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-i",
            id,
            "-t",
            topic,
            "-m",
            "{}",
        ])
        .arg("--cafile")
        .arg(pki.ca())
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .status()
        .expect("mosquitto_pub")
        .code()
        .unwrap_or(-1)
}

fn log_of(broker: &Broker) -> String {
    std::fs::read_to_string(&broker.log).unwrap_or_default()
}

#[test]
fn a_device_certificate_cannot_take_over_another_clients_session() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let fleet = Observer::connect(&pki, broker.port, "r58-fleet-1", "fleet", &["r58/v1/#"]);
    let _b = Observer::connect(&pki, broker.port, "r58-b", "r58-b", &["r58/v1/r58-b/cmd/+"]);
    fleet.publish("r58/v1/r58-b/cmd/ping", r#"{"id":"1"}"#, false);
    fleet.wait_json(
        "r58/v1/r58-b/cmd/ping",
        Duration::from_secs(5),
        "fleet connected",
        |_| true,
    );

    // Device A's certificate under the fleet's client id, under B's, under none of its own.
    for id in ["r58-fleet-1", "r58-b", "someone"] {
        assert_eq!(
            pub_as(&pki, broker.port, "r58-a", id, "r58/v1/r58-a/state"),
            5,
            "{id}"
        );
    }
    // Under its own id it connects.
    assert_eq!(
        pub_as(&pki, broker.port, "r58-a", "r58-a", "r58/v1/r58-a/state"),
        0
    );
    fleet.wait_json(
        "r58/v1/r58-a/state",
        Duration::from_secs(5),
        "A's own state",
        |_| true,
    );
    let log = log_of(&broker);
    assert!(
        !log.contains("already connected"),
        "a session was taken over:\n{log}"
    );
    assert_eq!(
        log.matches("a device's client id must be its CN").count(),
        3,
        "{log}"
    );
}

#[test]
fn a_device_cannot_join_the_fleets_shared_subscription_or_subscribe_wide() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let share = "$share/r58-fleet/r58/v1/+/state";
    let fleet = Observer::connect(&pki, broker.port, "r58-fleet-1", "fleet", &[share]);
    // Three stolen certificates ask for the fleet's group, the whole tree, their own subtree.
    let intruders: Vec<Observer> = ["r58-x", "r58-y", "r58-z"]
        .iter()
        .map(|id| {
            Observer::connect(
                &pki,
                broker.port,
                id,
                id,
                &[share, "r58/v1/#", "#", &format!("r58/v1/{id}/#")],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let a = Observer::connect(&pki, broker.port, "r58-a", "r58-a", &[]);
    for i in 0..40 {
        a.publish("r58/v1/r58-a/state", format!(r#"{{"n":{i}}}"#), false);
    }
    wait_until(
        Duration::from_secs(10),
        "all 40 states at the fleet",
        || (fleet.json_on("r58/v1/r58-a/state").len() == 40).then_some(()),
    );
    for x in &intruders {
        assert_eq!(x.count_on_prefix(""), 0, "an intruder received messages");
    }
}

#[test]
fn a_revoked_device_is_disconnected_and_refused_without_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let fleet = Observer::connect(&pki, broker.port, "r58-fleet-1", "fleet", &["r58/v1/#"]);
    let a = Observer::connect(&pki, broker.port, "r58-a", "r58-a", &["r58/v1/r58-a/cmd/+"]);
    fleet.publish("r58/v1/r58-a/cmd/ping", r#"{"id":"before"}"#, false);
    a.wait_json(
        "r58/v1/r58-a/cmd/ping",
        Duration::from_secs(5),
        "A connected",
        |_| true,
    );

    // The revocation list next to the certificates (what `r58-fleet pki revoke` writes).
    let list = pki.dir.join("revoked");
    write_list(&list, "# stolen 2026-12-03\nr58-a\n");
    wait_until(
        Duration::from_secs(5),
        "A disconnected by the broker",
        || {
            log_of(&broker)
                .contains("r58-a revoked: disconnecting it")
                .then_some(())
        },
    );
    assert_eq!(
        pub_as(&pki, broker.port, "r58-a", "r58-a", "r58/v1/r58-a/state"),
        5
    );
    fleet.publish("r58/v1/r58-a/cmd/ping", r#"{"id":"after"}"#, false);
    std::thread::sleep(Duration::from_secs(1));
    let got: Vec<_> = a
        .json_on("r58/v1/r58-a/cmd/ping")
        .iter()
        .map(|v| v["id"].clone())
        .collect();
    assert_eq!(
        got,
        vec![serde_json::json!("before")],
        "a revoked device received a command"
    );
    // Others are unaffected; taking the name off the list lets it in again.
    assert_eq!(
        pub_as(&pki, broker.port, "r58-b", "r58-b", "r58/v1/r58-b/state"),
        0
    );
    write_list(&list, "");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        pub_as(&pki, broker.port, "r58-a", "r58-a", "r58/v1/r58-a/state"),
        0
    );
}

fn write_list(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
