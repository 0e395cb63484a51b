//! Two `serve` replicas behind one broker and one PostgreSQL share the ingest (MQTT 5
//! shared subscriptions): every message is stored once, both replicas take part, a
//! redelivered sample is not stored twice, and a replica killed mid-stream loses nothing
//! (unacknowledged messages wait in its broker session until it is back).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use rumqttc::QoS;

fn metric(f: &Fleet, token: &str, name: &str) -> i64 {
    let text = reqwest::blocking::Client::new()
        .get(f.url("/metrics"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name} "))
                .map(|v| v.parse().unwrap())
        })
        .unwrap_or(0)
}

#[test]
fn two_replicas_share_the_ingest_without_duplicates_or_loss() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let pki = fleet_pki(dir.path());
    let broker = Broker::start_with_certs(dir.path(), &pki);
    let mut a = Fleet::start(
        &dir.path().join("a"),
        &pki,
        broker.port,
        &pg.url,
        "fleet-replica-a",
    );
    let b = Fleet::start(
        &dir.path().join("b"),
        &pki,
        broker.port,
        &pg.url,
        "fleet-replica-b",
    );
    let token = a.operator("ops");
    std::thread::sleep(Duration::from_secs(1));
    let p = publisher(&pki, broker.port, "test-publisher");
    std::thread::sleep(Duration::from_millis(500));

    // 300 samples from 3 devices, each sent twice (a redelivery carries the same seq and ts).
    for seq in 0..100u64 {
        for dev in ["sim-1", "sim-2", "sim-3"] {
            let s = sample(seq);
            let topic = format!("r58/v1/{dev}/telemetry/system");
            p.publish(topic.clone(), QoS::AtLeastOnce, false, s.clone())
                .unwrap();
            p.publish(topic, QoS::AtLeastOnce, false, s).unwrap();
        }
    }
    let rows = |pg: &Postgres| {
        pg.psql("SELECT COUNT(*) FROM telemetry")
            .parse::<i64>()
            .unwrap()
    };
    wait_until(Duration::from_secs(30), "600 messages ingested", || {
        (metric(&a, &token, "r58_fleet_ingest_messages_total")
            + metric(&b, &token, "r58_fleet_ingest_messages_total")
            >= 600)
            .then_some(())
    });
    let (na, nb) = (
        metric(&a, &token, "r58_fleet_ingest_messages_total"),
        metric(&b, &token, "r58_fleet_ingest_messages_total"),
    );
    assert_eq!(na + nb, 600, "each message went to exactly one replica");
    assert!(na > 0 && nb > 0, "both replicas ingested: {na} / {nb}");
    assert_eq!(rows(&pg), 300, "duplicates stored once");

    // Replica A dies; what it had not acknowledged, and what arrives for it meanwhile,
    // waits in its session and is stored when it returns.
    a.kill9();
    for seq in 100..200u64 {
        for dev in ["sim-1", "sim-2", "sim-3"] {
            p.publish(
                format!("r58/v1/{dev}/telemetry/system"),
                QoS::AtLeastOnce,
                false,
                sample(seq),
            )
            .unwrap();
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    a.spawn();
    wait_until(Duration::from_secs(30), "all 600 samples stored", || {
        (rows(&pg) == 600).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(rows(&pg), 600);
    // Both replicas serve the same inventory.
    let all = paths::devices(&Default::default());
    let la: r58_fleet_api::DeviceList = api_get(&a, &token, &all);
    let lb: r58_fleet_api::DeviceList = api_get(&b, &token, &all);
    assert_eq!(la.devices.len(), 3);
    assert_eq!(la, lb);
}

/// A device message PostgreSQL refuses (a NUL character in a text field) is set aside —
/// counted, kept in `rejected_messages` — and the messages around it, in the same batch, are
/// stored; before, the whole batch was retried forever and the ingest stopped for every device.
#[test]
fn a_message_the_database_refuses_is_set_aside_and_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let pki = fleet_pki(dir.path());
    let broker = Broker::start_with_certs(dir.path(), &pki);
    let fleet = Fleet::start(dir.path(), &pki, broker.port, &pg.url, "fleet-nul");
    let token = fleet.operator("ops");
    std::thread::sleep(Duration::from_secs(1));
    let p = publisher(&pki, broker.port, "test-publisher");
    std::thread::sleep(Duration::from_millis(500));
    // Good samples before and after, in the same burst (one batch), from another device too.
    let samples = |seqs: std::ops::Range<u64>| {
        for seq in seqs {
            p.publish(
                "r58/v1/sim-ok/telemetry/system",
                QoS::AtLeastOnce,
                false,
                sample(seq),
            )
            .unwrap();
        }
    };
    samples(0..20);
    let poisoned = state_doc(1).replace("0.1.0", "0.1\\u00000");
    assert!(poisoned.contains("\\u0000"));
    p.publish("r58/v1/sim-bad/state", QoS::AtLeastOnce, false, poisoned)
        .unwrap();
    samples(20..40);
    p.publish("r58/v1/sim-ok/state", QoS::AtLeastOnce, false, state_doc(1))
        .unwrap();
    wait_until(Duration::from_secs(30), "the good messages stored", || {
        (pg.psql("SELECT COUNT(*) FROM telemetry") == "40").then_some(())
    });
    // At least once: the broker may deliver it again, and it is refused again.
    let rejected = wait_until(Duration::from_secs(10), "the refused one set aside", || {
        let n: i64 = pg
            .psql("SELECT COUNT(*) FROM rejected_messages")
            .parse()
            .unwrap();
        (n >= 1).then_some(n)
    });
    assert_eq!(
        pg.psql("SELECT DISTINCT topic FROM rejected_messages"),
        "r58/v1/sim-bad/state"
    );
    let reason = pg.psql("SELECT DISTINCT reason FROM rejected_messages");
    assert!(reason.contains("0x00"), "{reason}");
    assert_eq!(
        metric(&fleet, &token, "r58_fleet_ingest_rejected_total"),
        rejected
    );
    // The ingest goes on: a later message of the same device is stored.
    p.publish(
        "r58/v1/sim-bad/state",
        QoS::AtLeastOnce,
        false,
        state_doc(2),
    )
    .unwrap();
    wait_until(
        Duration::from_secs(15),
        "the device's next state stored",
        || (pg.psql("SELECT COUNT(*) FROM devices WHERE id = 'sim-bad'") == "1").then_some(()),
    );
}

fn rss_mib(pid: u32) -> u64 {
    rss_kib(pid) / 1024
}

/// While the database does not take writes, what the ingest holds in memory is bounded in
/// bytes, not only in messages: 150 messages of 900 KiB (within the broker's 1 MiB limit,
/// and the in-flight window of 4 096) wait in the broker, not in the service; when the
/// database answers again every one of them is accounted for.
#[test]
fn a_stalled_database_holds_the_ingest_to_a_bounded_number_of_bytes() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let pki = fleet_pki(dir.path());
    let broker = Broker::start_with_certs(dir.path(), &pki);
    let fleet = Fleet::start(dir.path(), &pki, broker.port, &pg.url, "fleet-bytes");
    let token = fleet.operator("ops");
    // Another session holds the table the oversized samples are set aside in.
    let mut lock = std::process::Command::new("psql")
        .args([pg.url.as_str(), "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut sql = lock.stdin.take().unwrap();
    sql.write_all(b"BEGIN; LOCK TABLE rejected_messages IN ACCESS EXCLUSIVE MODE;\n")
        .unwrap();
    sql.flush().unwrap();
    wait_until(Duration::from_secs(10), "the table locked", || {
        (pg.psql(
            "SELECT COUNT(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' \
             AND relation = 'rejected_messages'::regclass",
        ) == "1")
            .then_some(())
    });
    let before = rss_mib(fleet.pid());
    let p = publisher(&pki, broker.port, "test-publisher");
    let big = format!(
        r#"{{"seq":1,"ts":"{}","data":"{}"}}"#,
        chrono::Utc::now().to_rfc3339(),
        "x".repeat(900 * 1024)
    );
    for _ in 0..150 {
        p.publish(
            "r58/v1/sim-big/telemetry/system",
            QoS::AtLeastOnce,
            false,
            big.clone(),
        )
        .unwrap();
    }
    let mut peak = before;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        peak = peak.max(rss_mib(fleet.pid()));
    }
    assert!(
        peak < before + 80,
        "the service grew from {before} to {peak} MiB holding messages it cannot store"
    );
    sql.write_all(b"COMMIT;\n").unwrap();
    drop(sql);
    lock.wait().unwrap();
    wait_until(Duration::from_secs(60), "all 150 set aside", || {
        (metric(&fleet, &token, "r58_fleet_ingest_rejected_total") >= 150).then_some(())
    });
}
