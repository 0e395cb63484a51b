//! The sd_notify protocol as systemd sees it: READY once serving, WATCHDOG=1 while healthy,
//! STOPPING on SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn ready_then_watchdog_pings_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (api, rtsp) = (free_port(), free_port());
    let cfg = dir.path().join("r58.toml");
    std::fs::write(&cfg, config(dir.path(), api, rtsp, ONE_TEST_INPUT)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_r58-recorder"))
        .args(["--config", cfg.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut ready_at = None;
    let mut terminated = false;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if msg.contains("READY=1") {
                // READY comes only once the API answers.
                assert_eq!(
                    http_get(&format!("http://127.0.0.1:{api}/healthz"))
                        .unwrap()
                        .0,
                    200
                );
                ready_at = Some(Instant::now());
            }
            let stopping = msg.contains("STOPPING=1");
            seen.push(msg);
            if stopping {
                break;
            }
        }
        let pings = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
        if !terminated && pings >= 3 {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            terminated = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(ready_at.is_some(), "no READY=1: {seen:?}");
    let first = seen.iter().position(|m| m.contains("READY=1")).unwrap();
    assert!(
        seen[first..]
            .iter()
            .filter(|m| m.contains("WATCHDOG=1"))
            .count()
            >= 3,
        "{seen:?}"
    );
    assert!(seen.last().unwrap().contains("STOPPING=1"), "{seen:?}");
    assert!(status.success());
}
