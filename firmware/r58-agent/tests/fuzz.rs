//! Random payloads on every inbound topic: the agent never crashes and keeps answering.

mod common;

use std::time::Duration;

use common::*;

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn payload(&mut self) -> Vec<u8> {
        let fragments: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            "\"id\":",
            "\"x\"",
            "\"version\":",
            "\"settings\":",
            "{\"a.b\":1}",
            "null",
            "-1",
            "18446744073709551616",
            "\"expires_at\":",
            "\"2026-13-40T99:00:00Z\"",
            ",",
            ":",
            "\u{0}",
            "\u{feff}",
            "\"args\":",
            "{\"unit\":\"../../etc\"}",
            "true",
            "1e999",
            "\"\\u0000\"",
        ];
        let n = (self.next() % 12) as usize;
        let mut out = Vec::new();
        for _ in 0..n {
            if self.next() % 4 == 0 {
                let len = (self.next() % 16) as usize;
                out.extend((0..len).map(|_| (self.next() & 0xff) as u8));
            } else {
                out.extend_from_slice(
                    fragments[(self.next() as usize) % fragments.len()].as_bytes(),
                );
            }
        }
        out
    }
}

#[test]
fn random_payloads_on_inbound_topics_do_not_crash_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(&pki, broker.port, "fleet-observer", "fleet", &["r58/v1/#"]);
    let mut agent = AgentProc::start(&dir.path().join("f"), &pki, broker.port, "r58-f", "");
    obs.wait_json(
        "r58/v1/r58-f/state",
        Duration::from_secs(15),
        "online",
        |v| v["status"] == "online",
    );
    let topics = [
        "r58/v1/r58-f/cmd/ping",
        "r58/v1/r58-f/cmd/config.get",
        "r58/v1/r58-f/cmd/logs.tail",
        "r58/v1/r58-f/cmd/nope",
        "r58/v1/r58-f/twin/desired",
        "r58/v1/r58-f/jobs/next",
    ];
    let mut rng = Rng(0x5eed_1234_abcd);
    for i in 0..400 {
        let topic = topics[i % topics.len()];
        obs.publish(topic, rng.payload(), false);
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(agent.alive(), "agent died: {}", agent.log_text());
    obs.publish(
        "r58/v1/r58-f/cmd/ping",
        cmd("after-fuzz", serde_json::json!({})),
        false,
    );
    obs.wait_json(
        "r58/v1/r58-f/cmd/status",
        Duration::from_secs(10),
        "ping after fuzz",
        |v| v["id"] == "after-fuzz" && v["state"] == "succeeded",
    );
}
