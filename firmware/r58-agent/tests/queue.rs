//! Broker restart: the agent reconnects by itself and replays what it queued on disk while
//! the broker was away, in order, without gaps.

mod common;

use std::time::Duration;

use common::*;

fn system_seqs(obs: &Observer) -> Vec<u64> {
    obs.json_on("r58/v1/r58-q/telemetry/system")
        .iter()
        .filter_map(|v| v["seq"].as_u64())
        .collect()
}

#[test]
fn broker_restart_loses_nothing_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let mut broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(&pki, broker.port, "fleet-observer", "fleet", &["r58/v1/#"]);
    let agent = AgentProc::start(&dir.path().join("q"), &pki, broker.port, "r58-q", "");
    obs.wait_json(
        "r58/v1/r58-q/telemetry/system",
        Duration::from_secs(15),
        "first telemetry",
        |_| true,
    );
    std::thread::sleep(Duration::from_secs(2));

    broker.stop();
    std::thread::sleep(Duration::from_secs(4));
    let queued = std::fs::read_dir(agent.dir.join("state/queue"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    assert!(
        queued >= 3,
        "telemetry kept on disk while offline: {queued}"
    );
    broker.spawn();

    // After reconnecting, everything queued arrives, and telemetry goes on.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seqs = system_seqs(&obs);
        let mut uniq = seqs.clone();
        uniq.dedup();
        let max = *uniq.iter().max().unwrap_or(&0);
        let min = *uniq.iter().min().unwrap_or(&0);
        let distinct: std::collections::BTreeSet<u64> = uniq.iter().copied().collect();
        if max >= min + 10 && distinct.len() as u64 == max - min + 1 {
            // In order: the first arrival of each message comes after the first arrival of
            // every older one (a redelivery of an unacknowledged one may repeat it later).
            let mut firsts = Vec::new();
            for s in &seqs {
                if !firsts.contains(s) {
                    firsts.push(*s);
                }
            }
            assert!(
                firsts.windows(2).all(|w| w[1] > w[0]),
                "out of order: {seqs:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gaps after the outage: {seqs:?}\n{}\n{}",
            agent.log_text(),
            std::fs::read_to_string(&broker.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
