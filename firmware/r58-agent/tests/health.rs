//! The boot health check of the OTA path: with the services active, the real recorder healthy
//! and the broker reached this boot, the booted slot is marked good; with the recorder down,
//! it is marked bad and the check fails (stand-in systemctl and rauc on PATH).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn healthy_boot_marks_good_and_a_dead_recorder_marks_bad() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, api) = start_recorder(&dir.path().join("rec"), "");
    let mut recorder = Some(recorder);

    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(&pki, broker.port, "fleet-observer", "fleet", &["r58/v1/#"]);
    let extra = format!("[agent]\nrecorder_api = \"http://127.0.0.1:{api}\"\n");
    let agent = AgentProc::start(
        &dir.path().join("agent"),
        &pki,
        broker.port,
        "r58-h",
        &extra,
    );
    obs.wait_json(
        "r58/v1/r58-h/state",
        Duration::from_secs(15),
        "online",
        |v| v["status"] == "online",
    );

    let health = |seconds: &str| {
        let path = format!(
            "{}:{}",
            agent.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new(env!("CARGO_BIN_EXE_r58-agent"))
            .args([
                "--config",
                agent.dir.join("r58.toml").to_str().unwrap(),
                "--health-check",
                seconds,
            ])
            .env("PATH", path)
            .output()
            .unwrap()
    };
    let ok = health("30");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let calls = agent.system_calls();
    assert!(
        calls.contains("systemctl is-active r58-recorder.service"),
        "{calls}"
    );
    assert!(calls.contains("rauc status mark-good booted"), "{calls}");
    assert!(!calls.contains("mark-bad"), "{calls}");

    recorder.take();
    let bad = health("3");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("recorder"), "{err}");
    assert!(agent.system_calls().contains("rauc status mark-bad booted"));
}
