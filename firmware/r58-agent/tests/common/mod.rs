//! Test harness of the agent: the shared kit (MQTT, PKI, the agent process) plus the recorder.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

pub use r58_testkit::*;

pub fn cmd(id: &str, args: serde_json::Value) -> String {
    serde_json::json!({ "id": id, "args": args, "expires_at": chrono::Utc::now() + chrono::Duration::seconds(60) }).to_string()
}

/// Kills the child when dropped.
pub struct Kill(pub std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real recorder (built by the workspace) with one small test input, `extra` as a
/// conf.d drop-in; returns it and its API port.
pub fn start_recorder(dir: &Path, extra: &str) -> (Kill, u16) {
    let bin = Path::new(env!("CARGO_BIN_EXE_r58-agent")).with_file_name("r58-recorder");
    assert!(bin.exists(), "build the workspace first (scripts/test does)");
    let api = free_port();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("r58.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{api}\"\n[recorder]\ndata_dir = \"{d}/data\"\n\
             [hls]\nenabled = false\ndir = \"{d}/hls\"\n[rtsp]\nenabled = false\n[storage]\nmin_free_mib = 1\n\
             [encoder]\nx264_preset = \"ultrafast\"\n\
             [inputs.cam1]\nkind = \"test\"\nwidth = 320\nheight = 240\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(dir.join("conf.d/10-test.toml"), extra).unwrap();
    let child = Command::new(&bin).args(["--config", dir.join("r58.toml").to_str().unwrap()]).stderr(Stdio::null()).spawn().unwrap();
    (Kill(child), api)
}
