//! The retained device documents are read again while connected: a `state` the broker
//! dropped for the fleet (its queue for the fleet full) still reaches the inventory without
//! a reconnect, and a retained copy does not count as hearing from the device.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use rumqttc::QoS;
use serde_json::json;

fn state(session: u64) -> String {
    json!({ "status": "online", "firmware_version": "0.1.0", "booted_slot": "A", "ip_addresses": [],
            "uptime_s": 1, "session": session, "ts": chrono::Utc::now() })
    .to_string()
}

#[test]
fn a_state_the_broker_dropped_reaches_the_inventory_by_the_periodic_reread() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    // What does not fit in the fleet's in-flight window (4 096) and 5 queued is dropped.
    let broker = Broker::start_tuned(
        dir.path(),
        &pki,
        &[("max_queued_messages 200000", "max_queued_messages 5")],
    );
    let db = format!("sqlite://{}/fleet.db", dir.path().display());
    let fleet = Fleet::start_with(
        &dir.path().join("fleet"),
        &pki,
        broker.port,
        &db,
        "r58-fleet-t",
        "reread_retained_seconds = 4\n",
    );
    let token = fleet.operator("ops");
    let publisher = publisher(&pki, broker.port, "test-publisher");
    publisher
        .publish("r58/v1/r58-live/state", QoS::AtLeastOnce, true, state(1))
        .unwrap();
    let live = wait_device(&fleet, &token, "r58-live", "a live state", |v| {
        v["device"]["status"] == "online"
    });
    assert!(live["device"]["last_seen"].is_i64(), "{live}");
    // Past the first read of retained documents on connection.
    std::thread::sleep(Duration::from_secs(4));

    // The fleet freezes: it reads and acknowledges nothing; the broker's window and queue
    // for it fill, and then the broker drops what comes for it — the state included.
    fleet.signal("STOP");
    for seq in 0..4_200 {
        publisher
            .publish(
                "r58/v1/r58-flood/telemetry/system",
                QoS::AtLeastOnce,
                false,
                sample(seq),
            )
            .unwrap();
    }
    let broker_log = || std::fs::read_to_string(&broker.log).unwrap_or_default();
    wait_until(
        Duration::from_secs(20),
        "the broker dropping messages for the fleet",
        || {
            broker_log()
                .contains("Outgoing messages are being dropped for client r58-fleet-t")
                .then_some(())
        },
    );
    publisher
        .publish("r58/v1/r58-miss/state", QoS::AtLeastOnce, true, state(1))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    fleet.signal("CONT");

    let healed = wait_device(
        &fleet,
        &token,
        "r58-miss",
        "the dropped state, re-read",
        |v| v["device"]["status"] == "online",
    );
    // Known only from the broker's retained copy: never heard from live.
    assert!(healed["device"]["last_seen"].is_null(), "{healed}");
    // Healed while connected, not by a new connection's first read.
    let connections = fleet.log_text().matches("connected to the broker").count();
    assert_eq!(connections, 1, "{}", fleet.log_text());
}
