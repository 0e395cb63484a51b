//! The boot health check of the OTA path: with the services active, the real recorder healthy
//! and the broker reached this boot, the booted slot is marked good; with the recorder down,
//! it is marked bad and the check fails (stand-in systemctl and rauc on PATH).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn healthy_boot_marks_good_and_a_dead_recorder_marks_bad() {
    let dir = tempfile::tempdir().unwrap();
    let recorder_bin = Path::new(env!("CARGO_BIN_EXE_r58-agent")).with_file_name("r58-recorder");
    assert!(recorder_bin.exists(), "build the workspace first (scripts/test does)");
    let api = free_port();
    let rec_dir = dir.path().join("rec");
    std::fs::create_dir_all(&rec_dir).unwrap();
    std::fs::write(
        rec_dir.join("r58.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{api}\"\n[recorder]\ndata_dir = \"{d}/data\"\n[hls]\nenabled = false\ndir = \"{d}/hls\"\n\
             [rtsp]\nenabled = false\n[storage]\nmin_free_mib = 1\n[encoder]\nx264_preset = \"ultrafast\"\n\
             [inputs.cam1]\nkind = \"test\"\nwidth = 320\nheight = 240\naudio = false\n",
            d = rec_dir.display()
        ),
    )
    .unwrap();
    let mut recorder = Some(Kill(
        Command::new(&recorder_bin).args(["--config", rec_dir.join("r58.toml").to_str().unwrap()]).stderr(Stdio::null()).spawn().unwrap(),
    ));

    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(&pki, broker.port, "fleet-observer", "fleet", &["r58/v1/#"]);
    let extra = format!("[agent]\nrecorder_api = \"http://127.0.0.1:{api}\"\n");
    let agent = AgentProc::start(&dir.path().join("agent"), &pki, broker.port, "r58-h", &extra);
    obs.wait_json("r58/v1/r58-h/state", Duration::from_secs(15), "online", |v| v["status"] == "online");

    let health = |seconds: &str| {
        let path = format!("{}:{}", agent.dir.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        Command::new(env!("CARGO_BIN_EXE_r58-agent"))
            .args(["--config", agent.dir.join("r58.toml").to_str().unwrap(), "--health-check", seconds])
            .env("PATH", path)
            .output()
            .unwrap()
    };
    let ok = health("30");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let calls = agent.system_calls();
    assert!(calls.contains("systemctl is-active r58-recorder.service"), "{calls}");
    assert!(calls.contains("rauc status mark-good booted"), "{calls}");
    assert!(!calls.contains("mark-bad"), "{calls}");

    recorder.take();
    let bad = health("3");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("recorder"), "{err}");
    assert!(agent.system_calls().contains("rauc status mark-bad booted"));
}
