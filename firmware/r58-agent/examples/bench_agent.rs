//! Benchmark (run by bench/agent): the agent's memory idle and under 1 Hz telemetry, beside
//! `mosquitto_sub` (a minimal C client on the same broker and TLS identity type) as the
//! baseline; and command round trips through a loopback Mosquitto (publish `cmd/ping` →
//! `succeeded` status received), p50/p99 over N commands, beside the broker's own
//! publish → receive round trip measured the same way.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use r58_testkit::{rss_kib, Broker, Observer, Pki};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(
        &pki,
        broker.port,
        "bench-fleet",
        "fleet",
        &["r58/v1/r58-bench/cmd/status", "r58/v1/bench/echo"],
    );

    let (cert, key) = pki.issue("r58-bench", "r58-bench", false);
    let state = dir.path().join("agent");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("r58.toml");
    std::fs::write(
        &cfg,
        format!(
            "[recorder]\ndata_dir = \"{s}\"\n[agent]\ndevice_id = \"r58-bench\"\nbroker = \"mqtts://127.0.0.1:{p}\"\n\
             ca_file = \"{ca}\"\ncert_file = \"{c}\"\nkey_file = \"{k}\"\nstate_dir = \"{s}/state\"\n\
             telemetry_interval_seconds = 3600\nrecorder_api = \"http://127.0.0.1:9\"\n",
            s = state.display(), p = broker.port, ca = pki.ca().display(), c = cert.display(), k = key.display()
        ),
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let agent_bin = exe.parent().unwrap().parent().unwrap().join("r58-agent");
    let mut agent = Command::new(&agent_bin)
        .args(["--config", cfg.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (fc, fk) = pki.issue("bench-sub", "fleet", false);
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "--cafile",
            pki.ca().to_str().unwrap(),
        ])
        .args([
            "--cert",
            fc.to_str().unwrap(),
            "--key",
            fk.to_str().unwrap(),
            "-t",
            "r58/v1/r58-bench/#",
            "-q",
            "1",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let (idle, sub_rss) = (rss_kib(agent.id()), rss_kib(sub.id()));

    // Round trips.
    let mut rtts = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("b{i}");
        let t = Instant::now();
        obs.publish(
            "r58/v1/r58-bench/cmd/ping",
            serde_json::json!({"id": id}).to_string(),
            false,
        );
        obs.wait_json(
            "r58/v1/r58-bench/cmd/status",
            Duration::from_secs(10),
            "ping",
            |v| v["id"] == id.as_str() && v["state"] == "succeeded",
        );
        rtts.push(t.elapsed());
    }
    let mut echo = Vec::with_capacity(n);
    for i in 0..n {
        let body = format!("{{\"e\":{i}}}");
        let t = Instant::now();
        obs.publish("r58/v1/bench/echo", body.clone(), false);
        obs.wait_json("r58/v1/bench/echo", Duration::from_secs(10), "echo", |v| {
            v["e"] == i
        });
        echo.push(t.elapsed());
    }
    // 1 Hz telemetry for 20 s (desired config through the twin, as an operator would).
    obs.publish(
        "r58/v1/r58-bench/twin/desired",
        r#"{"version":1,"settings":{"agent.telemetry_interval_seconds":1}}"#,
        true,
    );
    std::thread::sleep(Duration::from_secs(20));
    let busy = rss_kib(agent.id());
    let _ = agent.kill();
    let _ = sub.kill();
    rtts.sort();
    echo.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("agent RSS idle:            {:.1} MiB   (mosquitto_sub baseline {:.1} MiB, ratio {:.2}; goal <= 8 MiB)", idle as f64 / 1024.0, sub_rss as f64 / 1024.0, idle as f64 / sub_rss.max(1) as f64);
    println!(
        "agent RSS 1 Hz telemetry:  {:.1} MiB   (goal <= 8 MiB)",
        busy as f64 / 1024.0
    );
    println!(
        "command round trip ({n}):  p50 {:.2} ms, p99 {:.2} ms   (goal p99 <= 10 ms)",
        ms(pct(&rtts, 0.5)),
        ms(pct(&rtts, 0.99))
    );
    println!(
        "broker echo baseline ({n}): p50 {:.2} ms, p99 {:.2} ms",
        ms(pct(&echo, 0.5)),
        ms(pct(&echo, 0.99))
    );
    println!(
        "ratio p99 agent/broker:    {:.2}",
        ms(pct(&rtts, 0.99)) / ms(pct(&echo, 0.99)).max(0.001)
    );
}
