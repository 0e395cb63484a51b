//! Fuzzing at scale (run by bench/fuzz-agent): N generated payloads on one agent's own
//! inbound topics through the real broker with the production configuration — commands
//! with malformed UTF-8, JSON, types, nesting, sizes and unknown names, desired
//! configuration and job documents likewise, and valid pings among them — then one more
//! ping, which must be answered. Prints the time, the statuses the agent sent, and its
//! memory before, at most during and after, as ratios to before. Exit 1 if the agent died
//! or did not answer the last ping within 10 minutes.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use r58_testkit::{rss_kib, AgentProc, Broker, Observer, Pki, Rng};

const DEVICE: &str = "r58-fuzz";

/// One generated message: (topic suffix under the device, payload).
fn payload(rng: &mut Rng, i: u64) -> (String, Vec<u8>) {
    let names = [
        "ping",
        "logs.tail",
        "config.get",
        "record.start",
        "no.such",
        "",
        "ping/x",
    ];
    let name = names[rng.below(names.len() as u64) as usize];
    let id = format!("f{i}");
    match rng.below(12) {
        // Not UTF-8 at all.
        0 => {
            let len = rng.below(64) as usize;
            (format!("cmd/{name}"), rng.bytes(len))
        }
        // JSON cut short.
        1 => {
            let full = format!(r#"{{"id":"{id}","args":{{"lines":{}}}}}"#, rng.below(1000));
            let cut = rng.below(full.len() as u64) as usize;
            (format!("cmd/{name}"), full.as_bytes()[..cut].to_vec())
        }
        // Wrong types.
        2 => {
            let docs = [
                format!(r#"{{"id":{i}}}"#),
                format!(r#"{{"id":"{id}","args":"lines"}}"#),
                format!(r#"{{"id":"{id}","args":{{"lines":-5}}}}"#),
                format!(r#"{{"id":"{id}","expires_at":"tomorrow"}}"#),
                r#"[1,2,3]"#.to_string(),
                r#"null"#.to_string(),
                format!(r#"{{"id":"{}"}}"#, "i".repeat(5000)),
            ];
            let d = &docs[rng.below(docs.len() as u64) as usize];
            (format!("cmd/{name}"), d.clone().into_bytes())
        }
        // Deep nesting.
        3 => {
            let depth = 1 + rng.below(5000) as usize;
            let doc = format!(
                r#"{{"id":"{id}","args":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            (format!("cmd/{name}"), doc.into_bytes())
        }
        // Desired configuration: garbage, unknown keys, bad values, stale or absurd versions.
        4 | 5 => {
            let docs = [
                String::from_utf8_lossy(&rng.bytes(40)).into_owned(),
                r#"{"version":"1","settings":{}}"#.to_string(),
                format!(
                    r#"{{"version":{},"settings":{{"no.such.key":1}}}}"#,
                    rng.below(1 << 40)
                ),
                format!(
                    r#"{{"version":{},"settings":{{"encoder.bitrate_kbps":"fast"}}}}"#,
                    rng.below(100)
                ),
                r#"{"version":18446744073709551616,"settings":{}}"#.to_string(),
                r#"{"settings":{"agent.broker":"mqtts://evil:8883"}}"#.to_string(),
            ];
            let d = &docs[rng.below(docs.len() as u64) as usize];
            ("twin/desired".into(), d.clone().into_bytes())
        }
        // Job documents.
        6 | 7 => {
            let docs = [
                String::from_utf8_lossy(&rng.bytes(40)).into_owned(),
                format!(r#"{{"job_id":"{id}"}}"#),
                format!(
                    r#"{{"job_id":"{id}","operation":"ota.install","url":"ftp://x","sha256":"zz","version":"1"}}"#
                ),
                format!(
                    r#"{{"job_id":"{}","operation":"ota.install"}}"#,
                    "j".repeat(3000)
                ),
                "{}".to_string(),
            ];
            let d = &docs[rng.below(docs.len() as u64) as usize];
            ("jobs/next".into(), d.clone().into_bytes())
        }
        // Sizes: empty, and now and then past the agent's message bound.
        8 => {
            let n = if rng.below(200) == 0 { 300 * 1024 } else { 0 };
            (format!("cmd/{name}"), vec![b' '; n])
        }
        // Expired commands and valid pings among the rest.
        9 => (
            "cmd/ping".into(),
            format!(r#"{{"id":"{id}","expires_at":"2001-01-01T00:00:00Z"}}"#).into_bytes(),
        ),
        _ => (
            "cmd/ping".into(),
            format!(r#"{{"id":"{id}"}}"#).into_bytes(),
        ),
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::args()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(58);
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let status = format!("r58/v1/{DEVICE}/cmd/status");
    let state = format!("r58/v1/{DEVICE}/state");
    let obs = Observer::connect(&pki, broker.port, "fuzz-fleet", "fleet", &[&status, &state]);
    let mut agent = AgentProc::start(&dir.path().join("agent"), &pki, broker.port, DEVICE, "");
    let pid = agent.pid().unwrap();
    obs.wait_json(&state, Duration::from_secs(30), "online", |v| {
        v["status"] == "online"
    });
    std::thread::sleep(Duration::from_secs(3));
    let before = rss_kib(pid);

    let mut rng = Rng(seed.max(1));
    let mut peak = before;
    let t = Instant::now();
    for i in 0..n {
        let (suffix, body) = payload(&mut rng, i);
        obs.publish(&format!("r58/v1/{DEVICE}/{suffix}"), body, false);
        if i % 1000 == 999 {
            assert!(agent.alive(), "the agent died after {} payloads", i + 1);
            peak = peak.max(rss_kib(pid));
        }
    }
    let sent = t.elapsed();
    let last = Instant::now();
    let mut answered = false;
    while last.elapsed() < Duration::from_secs(600) {
        obs.publish(
            &format!("r58/v1/{DEVICE}/cmd/ping"),
            r#"{"id":"fuzz-last"}"#,
            false,
        );
        let waited = Instant::now();
        while !answered && waited.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(200));
            peak = peak.max(rss_kib(pid));
            answered = obs
                .json_on(&status)
                .iter()
                .any(|v| v["id"] == "fuzz-last" && v["state"] == "succeeded");
        }
        if answered {
            break;
        }
    }
    let done = t.elapsed();
    let alive = agent.alive();
    let after = rss_kib(pid);
    let statuses = obs.json_on(&status).len();
    let _ = agent.terminate();
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "payloads:                  {n} (seed {seed}) published in {:.1} s",
        sent.as_secs_f64()
    );
    println!(
        "last ping answered after:  {:.1} s from the first payload ({answered})",
        done.as_secs_f64()
    );
    println!("statuses from the agent:   {statuses}");
    println!(
        "agent RSS before {:.1} MiB, peak {:.1} MiB (ratio {:.2}), after {:.1} MiB (ratio {:.2})",
        mib(before),
        mib(peak),
        peak as f64 / before.max(1) as f64,
        mib(after),
        after as f64 / before.max(1) as f64
    );
    if !alive || !answered {
        drop(broker);
        eprintln!(
            "fuzz_agent: the agent {}; its log, the broker's: {}",
            if alive { "stalled" } else { "died" },
            dir.keep().display()
        );
        std::process::exit(1);
    }
}
