//! Test harness of the agent: the shared MQTT kit plus the agent process itself.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use r58_testkit::*;

pub struct AgentProc {
    pub child: Option<Child>,
    pub dir: PathBuf,
    config: PathBuf,
    pub log: PathBuf,
}

/// Writes fake `systemctl` and `journalctl` into `<dir>/bin` that log their arguments.
pub fn fake_system_tools(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = dir.join("system-calls.log");
    for tool in ["systemctl", "journalctl", "rauc"] {
        let script = format!(
            "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nif [ {tool} = journalctl ]; then echo 'line one'; echo 'line two'; fi\n\
             if [ {tool} = systemctl ] && [ \"$1\" = is-active ]; then echo active; fi\nexit 0\n",
            calls.display()
        );
        let p = bin.join(tool);
        std::fs::write(&p, script).unwrap();
        Command::new("chmod").arg("+x").arg(&p).status().unwrap();
    }
    bin
}

impl AgentProc {
    pub fn start(dir: &Path, pki: &Pki, port: u16, device: &str, extra: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = pki.issue(device, device, false);
        let config = dir.join("r58.toml");
        std::fs::write(
            &config,
            format!(
                "[recorder]\ndata_dir = \"{data}\"\n[agent]\ndevice_id = \"{device}\"\nbroker = \"mqtts://127.0.0.1:{port}\"\n\
                 ca_file = \"{ca}\"\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\nstate_dir = \"{state}\"\n\
                 keepalive_seconds = 5\nreconnect_max_seconds = 2\ntelemetry_interval_seconds = 1\n\
                 recorder_api = \"http://127.0.0.1:{dead}\"\n",
                data = dir.display(),
                ca = pki.ca().display(),
                cert = cert.display(),
                key = key.display(),
                state = dir.join("state").display(),
                dead = free_port(),
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/10-test.toml"), extra).unwrap();
        fake_system_tools(dir);
        let mut a = Self { child: None, dir: dir.to_path_buf(), config, log: dir.join("agent.log") };
        a.spawn();
        a
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let path = format!("{}:{}", self.dir.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        let child = Command::new(env!("CARGO_BIN_EXE_r58-agent"))
            .args(["--config", self.config.to_str().unwrap()])
            .env("PATH", path)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s.code();
            }
            assert!(Instant::now() < deadline, "agent ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn system_calls(&self) -> String {
        std::fs::read_to_string(self.dir.join("system-calls.log")).unwrap_or_default()
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

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
