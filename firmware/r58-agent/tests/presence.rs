//! State transitions against the real broker: online, lost (last will on kill -9), online
//! again with a new session, offline on a clean stop.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn online_lost_online_offline() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(&pki, broker.port, "fleet-observer", "fleet", &["r58/v1/#"]);
    let mut agent = AgentProc::start(&dir.path().join("a"), &pki, broker.port, "r58-a", "");
    let topic = "r58/v1/r58-a/state";
    let first = obs.wait_json(topic, Duration::from_secs(15), "online", |v| {
        v["status"] == "online"
    });
    let session = first["session"].as_u64().unwrap();
    assert_eq!(first["firmware_version"], env!("CARGO_PKG_VERSION"));

    agent.kill9();
    obs.wait_json(topic, Duration::from_secs(15), "lost (last will)", |v| {
        v["status"] == "lost"
    });

    agent.spawn();
    let again = obs.wait_json(topic, Duration::from_secs(15), "online again", |v| {
        v["status"] == "online" && v["session"].as_u64() > Some(session)
    });
    assert_eq!(again["session"].as_u64(), Some(session + 1));

    assert_eq!(agent.terminate(), Some(0));
    obs.wait_json(topic, Duration::from_secs(10), "offline", |v| {
        v["status"] == "offline" && v["session"].as_u64() == Some(session + 1)
    });
    // A clean stop sends no will afterwards.
    std::thread::sleep(Duration::from_secs(2));
    let last = obs.json_on(topic).last().cloned().unwrap();
    assert_eq!(last["status"], "offline", "{}", agent.log_text());
}
