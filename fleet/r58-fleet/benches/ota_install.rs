//! Benchmark (bench/ota-install): a bundle of N MiB (default 256) installed through the
//! agent — job received (`queued`) → `waiting_for_reboot`, by the device's own timestamps —
//! divided by `rauc install` of the same bundle on the same RAUC in the same run (goal ≤ 1.10);
//! and the bytes fetched again when the download is cut at 50 % (goal ≤ one Range chunk).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::ota::{CutProxy, OtaDevice};
use common::*;
use r58_testkit::rauc;
use serde_json::{json, Value};

fn ts(u: &Value) -> chrono::DateTime<chrono::Utc> {
    u["ts"].as_str().unwrap().parse().unwrap()
}

fn main() {
    let mib: u32 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::Builder::new()
        .prefix("r58-ota-bench")
        .tempdir_in("/var/tmp")
        .unwrap();
    let pki = fleet_pki(dir.path());
    let keys = dir.path().join("keys");
    rauc::dev_keys(&keys);
    let broker = Broker::start_with_certs(dir.path(), &pki);
    let extra = format!(
        "[ota]\ndir = \"{}\"\nkeyring = \"{}\"\ntick_ms = 300\n",
        dir.path().join("fleet-bundles").display(),
        keys.join("ca.cert.pem").display()
    );
    let fleet = Fleet::start_with(
        &dir.path().join("fleet"),
        &pki,
        broker.port,
        &format!("sqlite://{}/fleet.db", dir.path().display()),
        "bench",
        &extra,
    );
    let token = fleet.operator("bench");
    let (ca, cert, key) = common::ota::fleet_pki_dir_files(&pki);
    let obs = Observer::connect_files(
        &ca,
        &cert,
        &key,
        broker.port,
        "bench-observer",
        &["r58/v1/#"],
    );
    let slot_mib = mib + mib / 8 + 16;
    let mut dev =
        OtaDevice::start_sized(dir.path(), &pki, broker.port, "r58-bench", &keys, slot_mib);
    obs.wait_json(
        "r58/v1/r58-bench/state",
        Duration::from_secs(30),
        "online",
        |v| v["status"] == "online",
    );

    eprintln!("building a {mib} MiB bundle…");
    let file = rauc::bundle(
        &dir.path().join("bench.raucb"),
        "9.0.0",
        "r58-test",
        mib,
        &keys,
    );
    let out = std::process::Command::new(fleet_bin())
        .args([
            "ota",
            "publish",
            file.to_str().unwrap(),
            "--json",
            "--server",
            &fleet.url(""),
            "--token",
            &token,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = serde_json::from_slice::<r58_fleet_api::BundleAnswer>(&out.stdout)
        .unwrap()
        .bundle;
    let size = b.size as u64;

    let bus = dev.sim.bus.clone();
    let rauc_install = |label: &str| -> f64 {
        let t = Instant::now();
        let out = std::process::Command::new("rauc")
            .args(["install", file.to_str().unwrap()])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rauc install: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = t.elapsed().as_secs_f64();
        eprintln!("{label}: rauc install {s:.2} s");
        s
    };
    let job = |job_id: &str, url: String| {
        let doc = json!({ "job_id": job_id, "version": "9.0.0", "size": size, "sha256": b.sha256, "url": url, "reboot_policy": "manual" });
        obs.publish("r58/v1/r58-bench/jobs/next", doc.to_string(), true);
        let topic = format!("r58/v1/r58-bench/jobs/{job_id}/update");
        let end = obs.wait_json(
            &topic,
            Duration::from_secs(600),
            "waiting_for_reboot",
            |u| u["phase"] == "waiting_for_reboot" || u["phase"] == "failed",
        );
        assert_eq!(end["phase"], "waiting_for_reboot", "{end}");
        let ups = obs.json_on(&topic);
        let first = |p: &str| ups.iter().find(|u| u["phase"] == p).map(ts).unwrap();
        let secs = |a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>| {
            (b - a).num_milliseconds() as f64 / 1000.0
        };
        let (q, d, v, i, w) = (
            first("queued"),
            first("downloading"),
            first("verifying"),
            first("installing"),
            first("waiting_for_reboot"),
        );
        eprintln!("{job_id}: queued→downloading {:.2} s, download {:.2} s, verify {:.2} s, install {:.2} s", secs(q, d), secs(d, v), secs(v, i), secs(i, w));
        secs(q, w)
    };
    // The cut at 50 % first: what crosses the wire beyond one bundle was fetched twice.
    let proxy = CutProxy::start(fleet.port, 1, size / 2, 0);
    let cut_url = format!(
        "http://127.0.0.1:{}/ota/bundles/{}.raucb",
        proxy.port, b.sha256
    );
    let _ = job("bench-cut", cut_url);
    let passed = proxy.passed.load(std::sync::atomic::Ordering::SeqCst);
    // Response headers of the two requests are in `passed` too (a few hundred bytes).
    let again = passed.saturating_sub(size);
    // Reboot into it (the job's reboot policy is manual) and let it commit, so that the next
    // job starts from a finished one.
    dev.power_cycle();
    obs.wait_json(
        "r58/v1/r58-bench/jobs/bench-cut/update",
        Duration::from_secs(120),
        "committed",
        |u| u["phase"] == "succeeded",
    );

    // Now the timing, all three into the same (other) slot.
    let base1 = rauc_install("baseline 1");
    let url = fleet.url(&format!("/ota/bundles/{}.raucb", b.sha256));
    let agent = job("bench-1", url);
    let base2 = rauc_install("baseline 2");
    let base = (base1 + base2) / 2.0;

    println!("bundle: {size} bytes ({mib} MiB payload, plain format)");
    println!("agent (job received -> waiting_for_reboot): {agent:.2} s");
    println!("rauc install, same bundle (mean of {base1:.2} and {base2:.2}): {base:.2} s");
    println!(
        "ratio agent / rauc install: {:.2} (goal <= 1.10)",
        agent / base
    );
    println!("re-downloaded after a cut at 50 %: {again} bytes incl. HTTP headers (goal <= one Range chunk, 8 MiB = the fsync interval)");
}
