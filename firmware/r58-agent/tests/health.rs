//! The boot health check and its commit policy against the real RAUC (private D-Bus, file
//! slots, the boot-counting backend), the real recorder and broker, and a stand-in systemctl:
//! - a committed slot is marked good when healthy, and also with the broker gone and the
//!   recorder dead: never marked bad for lack of network, no reboot;
//! - a trial boot of an update (the job waits in `verifying_boot` for this slot) that fails its
//!   checks is marked bad and the check fails (systemd then reboots into the old slot).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::rauc::RaucSim;
use common::*;

fn health(agent: &AgentProc, sim: &RaucSim, seconds: &str) -> Output {
    let path = format!(
        "{}:{}",
        agent.dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(env!("CARGO_BIN_EXE_r58-agent"))
        .args([
            "--config",
            agent.config.to_str().unwrap(),
            "--health-check",
            seconds,
        ])
        .env("PATH", path)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &sim.bus)
        .output()
        .unwrap()
}

/// The job record of an installed update waiting for its first boot on `slot`.
fn pending_update(ota_dir: &Path, slot: &str) {
    std::fs::create_dir_all(ota_dir).unwrap();
    let rec = serde_json::json!({
        "current": {
            "job": {"job_id": "j-trial", "version": "2.0.0", "size": 1,
                    "sha256": "0".repeat(64), "url": "https://fleet.example.com/b.raucb"},
            "phase": "verifying_boot", "progress": 100,
            "from_slot": if slot == "A" { "B" } else { "A" }, "target_slot": slot,
            "reboot_boot_id": "the-boot-that-asked", "reboot_attempts": 1,
            "updated": chrono::Utc::now()
        },
        "done": []
    });
    std::fs::write(ota_dir.join("job.json"), rec.to_string()).unwrap();
}

/// The simulated U-Boot environment holds `needle`.
fn assert_boot_state(sim: &RaucSim, needle: &str) {
    let state = sim.boot_state();
    assert!(state.contains(needle), "{state}");
}

/// The health check's verdict file.
fn verdict_of(ota_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(ota_dir.join("health.json")).unwrap()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn committed_slot_is_kept_without_network_and_a_failed_trial_boot_is_marked_bad() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = RaucSim::start(&dir.path().join("rauc"), &dir.path().join("keys"));
    assert_eq!(sim.booted, "A");
    let (recorder, api) = start_recorder(&dir.path().join("rec"), "");
    let mut recorder = Some(recorder);

    let pki = Pki::new(&dir.path().join("pki"));
    let mut broker = Some(Broker::start(dir.path(), &pki));
    let port = broker.as_ref().unwrap().port;
    let obs = Observer::connect(&pki, port, "fleet-observer", "fleet", &["r58/v1/#"]);
    let ota_dir = dir.path().join("ota");
    let extra = format!(
        "[agent]\nrecorder_api = \"http://127.0.0.1:{api}\"\n[ota]\ndir = \"{}\"\nboot_id_file = \"{}\"\n",
        ota_dir.display(),
        sim.boot_id_file.display()
    );
    let (cert, key) = pki.issue("r58-h", "r58-h", false);
    let mut agent = AgentProc::configure(
        &dir.path().join("agent"),
        &pki.ca(),
        &cert,
        &key,
        port,
        "r58-h",
        &extra,
    );
    // The real rauc CLI on the simulated system bus.
    std::fs::remove_file(agent.dir.join("bin/rauc")).unwrap();
    agent.daemon.set_env("DBUS_SYSTEM_BUS_ADDRESS", &sim.bus);
    agent.spawn();
    obs.wait_json(
        "r58/v1/r58-h/state",
        Duration::from_secs(15),
        "online",
        |v| v["status"] == "online",
    );

    // A committed slot, healthy: marked good (U-Boot's counter back to 3).
    assert_boot_state(&sim, "BOOT_A_LEFT=2");
    let ok = health(&agent, &sim, "30");
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_boot_state(&sim, "BOOT_A_LEFT=3");
    let calls = agent.system_calls();
    assert!(
        calls.contains("systemctl is-active r58-recorder.service"),
        "{calls}"
    );

    // The next boot of the same slot: no broker (a venue without internet), the recorder
    // dead. Still marked good, and the check succeeds: no reboot, no fallback.
    agent.kill9();
    broker.take();
    recorder.take();
    assert_eq!(sim.boot(), "A");
    assert_boot_state(&sim, "BOOT_A_LEFT=2");
    agent.spawn();
    let offline = health(&agent, &sim, "3");
    assert!(offline.status.success(), "{}", stderr(&offline));
    assert_boot_state(&sim, "BOOT_A_LEFT=3");
    assert_boot_state(&sim, "BOOT_ORDER=\"A B\"");
    let verdict = verdict_of(&ota_dir);
    assert_eq!(verdict["good"], true);
    assert!(
        verdict["details"].as_str().unwrap().contains("broker"),
        "{verdict}"
    );

    // A trial boot of an update on this slot, with the same faults: marked bad, check fails.
    pending_update(&ota_dir, "A");
    let bad = health(&agent, &sim, "3");
    assert!(!bad.status.success());
    let err = stderr(&bad);
    assert!(err.contains("recorder") && err.contains("broker"), "{err}");
    let state = sim.boot_state();
    assert!(state.contains("BOOT_A_LEFT=0"), "{state}");
    assert!(state.contains("BOOT_ORDER=\"B\""), "{state}");
    let verdict = verdict_of(&ota_dir);
    assert_eq!(verdict["good"], false);

    // The rollback: slot B, committed, boots and is marked good - and the failed verdict of
    // A's trial boot stays for the agent to report why the update was rolled back.
    assert_eq!(sim.boot(), "B");
    let after = health(&agent, &sim, "3");
    assert!(after.status.success(), "{}", stderr(&after));
    assert_boot_state(&sim, "BOOT_B_LEFT=3");
    let kept = verdict_of(&ota_dir);
    assert_eq!(kept, verdict);
}
