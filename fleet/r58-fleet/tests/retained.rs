//! Retained documents, both ways. The devices' (`state`, `twin/reported`) are read again
//! while connected: a `state` the broker dropped for the fleet (its queue for the fleet full)
//! still reaches the inventory without a reconnect, and a retained copy does not count as
//! hearing from the device. The fleet's own (desired config; OTA jobs in tests/rollouts.rs)
//! are published again when its publishing connection comes back, so a broker that lost its
//! retained store serves them again.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use rumqttc::QoS;
use serde_json::json;

#[test]
fn a_state_the_broker_dropped_reaches_the_inventory_by_the_periodic_reread() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    // What does not fit in the fleet's in-flight window (4 096) and 5 queued is dropped.
    let broker = Broker::start_tuned(
        dir.path(),
        &pki,
        &[("max_queued_messages 1000000", "max_queued_messages 5")],
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
        .publish(
            "r58/v1/r58-live/state",
            QoS::AtLeastOnce,
            true,
            state_doc(1),
        )
        .unwrap();
    let live = wait_device(&fleet, &token, "r58-live", "a live state", |d| {
        d.status == "online"
    });
    assert!(live.device.last_seen.is_some(), "{live:?}");
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
        .publish(
            "r58/v1/r58-miss/state",
            QoS::AtLeastOnce,
            true,
            state_doc(1),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    fleet.signal("CONT");

    let healed = wait_device(
        &fleet,
        &token,
        "r58-miss",
        "the dropped state, re-read",
        |d| d.status == "online",
    );
    // Known only from the broker's retained copy: never heard from live.
    assert!(healed.device.last_seen.is_none(), "{healed:?}");
    // Healed while connected, not by a new connection's first read.
    let connections = fleet.log_text().matches("connected to the broker").count();
    assert_eq!(connections, 1, "{}", fleet.log_text());
}

#[test]
fn desired_config_is_published_again_after_the_broker_lost_its_retained_store() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let mut broker = Broker::start_with_certs(dir.path(), &pki);
    let db = format!("sqlite://{}/fleet.db", dir.path().display());
    let fleet = Fleet::start(
        &dir.path().join("fleet"),
        &pki,
        broker.port,
        &db,
        "r58-fleet-t",
    );
    let token = fleet.operator("ops");
    let publisher = publisher(&pki, broker.port, "test-publisher");
    publisher
        .publish("r58/v1/r58-cfg/state", QoS::AtLeastOnce, true, state_doc(1))
        .unwrap();
    wait_device(&fleet, &token, "r58-cfg", "the device", |d| {
        d.status == "online"
    });
    let (code, v) = call(
        "PUT",
        &fleet.url("/api/v1/devices/r58-cfg/config"),
        Some(&token),
        Some(json!({"settings": {"encoder.bitrate_kbps": 8000}})),
    );
    assert_eq!(code, 200, "{v}");
    let topic = "r58/v1/r58-cfg/twin/desired";
    let (ca, cert, key) = (
        pki.join("ca.pem"),
        pki.join("fleet.crt"),
        pki.join("fleet.key"),
    );
    let obs = Observer::connect_files(&ca, &cert, &key, broker.port, "obs-1", &[topic]);
    obs.wait_json(
        topic,
        Duration::from_secs(10),
        "the retained desired config",
        |v| v["version"] == 1,
    );
    drop(obs);

    // The broker comes back without its persistence file: no retained documents at all.
    broker.stop();
    std::fs::remove_file(dir.path().join("mosquitto-data/mosquitto.db")).unwrap();
    broker.spawn();
    let obs = Observer::connect_files(&ca, &cert, &key, broker.port, "obs-2", &[topic]);
    let doc = obs.wait_json(
        topic,
        Duration::from_secs(30),
        "the desired config published again",
        |v| v["version"] == 1,
    );
    assert_eq!(doc["settings"]["encoder.bitrate_kbps"], 8000, "{doc}");
    assert!(fleet
        .log_text()
        .contains("retained documents published again"));
}
