//! Fuzzing at scale (run by bench/fuzz-ingest): N generated device messages through the real
//! broker (production configuration and plugin) into the fleet service on SQLite — every
//! topic a device may write, with malformed UTF-8, JSON, types, sizes, NUL characters,
//! future timestamps and valid samples among them, from 20 device identities — then one
//! device's `online` state, which the inventory must show. Every message must be accounted
//! for: stored or set aside (more than N if the broker redelivered some after a reconnect). Prints the time, what the ingest stored and set aside, and the
//! service's memory before, at its peak and after (ratios to before). Exit 1 if the service
//! died, or the last state did not arrive, or a message was not accounted for, within 10
//! minutes.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use r58_testkit::{free_port, rss_kib, Broker, Observer, Pki, Rng};

const DEVICES: u64 = 20;

/// One generated message of device `d`: (topic suffix, payload).
fn message(rng: &mut Rng, i: u64) -> (String, Vec<u8>) {
    let now = chrono::Utc::now();
    let suffixes = [
        "state",
        "telemetry/system",
        "telemetry/x",
        "twin/reported",
        "cmd/status",
        "jobs/j1/update",
    ];
    let suffix = suffixes[rng.below(suffixes.len() as u64) as usize].to_string();
    let body: Vec<u8> = match rng.below(10) {
        0 => (0..rng.below(80)).map(|_| rng.next() as u8).collect(),
        1 => br#"{"seq":1,"ts":"2026-01-01T00:00:00Z","data":{"a":"#.to_vec(),
        2 => format!(r#"{{"seq":{i},"ts":"{now:?}","data":{{"note":"nul \u0000 here"}}}}"#)
            .into_bytes(),
        3 => format!(r#"{{"seq":-{i},"ts":"yesterday","data":[]}}"#).into_bytes(),
        4 => format!(r#"{{"seq":{i},"ts":"2099-01-01T00:00:00Z","data":{{}}}}"#).into_bytes(),
        5 => {
            format!(r#"{{"status":"online","session":"x{i}","firmware_version":{i}}}"#).into_bytes()
        }
        6 => format!(r#"{{"id":"{i}","state":"exploded","progress":900}}"#).into_bytes(),
        7 => {
            let n = if rng.below(100) == 0 {
                900 * 1024
            } else {
                20 * 1024
            };
            format!(r#"{{"seq":{i},"ts":"{now:?}","data":"{}"}}"#, "x".repeat(n)).into_bytes()
        }
        // Valid samples among the rest.
        _ => {
            return (
                "telemetry/system".into(),
                format!(r#"{{"seq":{i},"ts":"{now:?}","data":{{"cpu_percent":1.5}}}}"#)
                    .into_bytes(),
            )
        }
    };
    (suffix, body)
}

fn http_get(port: u16, path: &str, token: &str) -> Option<String> {
    let out = Command::new("curl")
        .args([
            "-fsS",
            "-m",
            "5",
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
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
    let (fc, fk) = pki.issue("fleet", "fleet", false);
    let http = free_port();
    let cfg = dir.path().join("fleet.toml");
    std::fs::write(
        &cfg,
        format!(
            "[http]\nlisten = \"127.0.0.1:{http}\"\n[db]\nurl = \"sqlite://{db}\"\n[devices]\nfile = \"{devs}\"\n\
             [mqtt]\nbroker = \"mqtts://127.0.0.1:{port}\"\nclient_id = \"r58-fleet-fuzz\"\n\
             ca_file = \"{ca}\"\ncert_file = \"{fc}\"\nkey_file = \"{fk}\"\n",
            db = dir.path().join("fleet.db").display(),
            devs = dir.path().join("devices.toml").display(),
            port = broker.port,
            ca = pki.ca().display(),
            fc = fc.display(),
            fk = fk.display(),
        ),
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("r58-fleet");
    let mut fleet = Command::new(&bin)
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .stderr(std::fs::File::create(dir.path().join("fleet.log")).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while Command::new("curl")
        .args([
            "-fsS",
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{http}/healthz"),
        ])
        .stderr(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no /healthz from the fleet"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let token = String::from_utf8(
        Command::new(&bin)
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "operator",
                "add",
                "fuzz",
                "--role",
                "viewer",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    while http_get(http, "/metrics", &token)
        .map_or(true, |m| metric(&m, "r58_fleet_broker_connected") != 1)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the fleet did not come up: {}",
            std::fs::read_to_string(dir.path().join("fleet.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let devices: Vec<Observer> = (0..DEVICES)
        .map(|d| {
            let id = format!("r58-fz{d:02}");
            Observer::connect(&pki, broker.port, &id, &id, &[])
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let pid = fleet.id();
    let before = rss_kib(pid);
    let mut peak = before;
    let mut rng = Rng(seed.max(1));
    let t = Instant::now();
    for i in 0..n {
        let d = (i % DEVICES) as usize;
        let (suffix, body) = message(&mut rng, i);
        devices[d].publish(&format!("r58/v1/r58-fz{d:02}/{suffix}"), body, false);
        if i % 1000 == 999 {
            assert!(
                fleet.try_wait().unwrap().is_none(),
                "the fleet died after {} messages",
                i + 1
            );
            peak = peak.max(rss_kib(pid));
        }
    }
    let sent = t.elapsed();
    let last = Observer::connect(&pki, broker.port, "r58-fz-last", "r58-fz-last", &[]);
    last.publish(
        "r58/v1/r58-fz-last/state",
        serde_json::json!({"status": "online", "firmware_version": "0.1.0", "booted_slot": "A",
            "ip_addresses": [], "uptime_s": 1, "session": 1, "ts": chrono::Utc::now()})
        .to_string(),
        false,
    );
    let mut arrived = false;
    let mut accounted = 0;
    while t.elapsed() < Duration::from_secs(600) {
        peak = peak.max(rss_kib(pid));
        arrived = arrived
            || http_get(http, "/api/v1/devices/r58-fz-last", &token)
                .is_some_and(|d| d.contains("\"online\""));
        let m = http_get(http, "/metrics", &token).unwrap_or_default();
        accounted = metric(&m, "r58_fleet_ingest_messages_total")
            + metric(&m, "r58_fleet_ingest_rejected_total");
        if arrived && accounted > n {
            break;
        }
        if fleet.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let done = t.elapsed();
    let alive = fleet.try_wait().unwrap().is_none();
    let after = rss_kib(pid);
    let m = http_get(http, "/metrics", &token).unwrap_or_default();
    let _ = fleet.kill();
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "messages:                  {n} (seed {seed}, {DEVICES} devices) published in {:.1} s",
        sent.as_secs_f64()
    );
    println!(
        "last state in inventory:   {:.1} s from the first message ({arrived})",
        done.as_secs_f64()
    );
    println!(
        "accounted for:             {accounted} of {} messages",
        n + 1
    );
    println!(
        "ingest: stored {}, set aside {}, database errors {}",
        metric(&m, "r58_fleet_ingest_messages_total"),
        metric(&m, "r58_fleet_ingest_rejected_total"),
        metric(&m, "r58_fleet_ingest_db_errors_total")
    );
    println!(
        "fleet RSS before {:.1} MiB, peak {:.1} MiB (ratio {:.2}), after {:.1} MiB (ratio {:.2})",
        mib(before),
        mib(peak),
        peak as f64 / before.max(1) as f64,
        mib(after),
        after as f64 / before.max(1) as f64
    );
    // At least once: a message redelivered after a reconnect is counted again.
    if !alive || !arrived || accounted < n + 1 {
        eprintln!(
            "fuzz_ingest: the fleet {}",
            if !alive {
                "died"
            } else if !arrived {
                "stalled"
            } else {
                "did not account for every message"
            },
        );
        // Exiting skips destructors: the broker is stopped here.
        drop(broker);
        eprintln!("its log, the broker's: {}", dir.keep().display());
        std::process::exit(1);
    }
}
