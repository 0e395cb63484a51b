//! The production ACL on the real broker: a device reaches only its own subtree.

mod common;

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
