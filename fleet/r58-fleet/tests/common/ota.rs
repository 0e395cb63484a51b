//! An R58 for OTA tests: the real agent and recorder, the real RAUC (`RaucSim`: private
//! D-Bus, file slots, the boot-counting test backend). The agent's reboot request (the
//! stand-in `systemctl reboot`) is carried out by `service()`: the agent dies (power off),
//! the bootloader picks a slot, RAUC comes up on it with a new boot id, the agent starts,
//! and the boot health check (`r58-agent --health-check`) runs as `r58-health.service`
//! would, a failed one rebooting again (`FailureAction=reboot`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use r58_testkit::rauc::RaucSim;
use r58_testkit::{start_recorder, AgentProc, Daemon};

/// The recorder's API token on the test devices (its control endpoints need one).
pub const RECORDER_TOKEN: &str = "ota-test-recorder-token-0123";

pub struct OtaDevice {
    pub id: String,
    pub sim: RaucSim,
    pub agent: AgentProc,
    pub recorder: Daemon,
    pub recorder_api: u16,
    health: Option<Child>,
    reboots_done: usize,
    pub health_deadline_s: u32,
}

impl OtaDevice {
    pub fn start(dir: &Path, pki: &Path, broker_port: u16, id: &str, keys: &Path) -> Self {
        Self::start_sized(dir, pki, broker_port, id, keys, 16)
    }

    /// The agent downloads bundles before installing (`ota.streaming = false`).
    pub fn start_sized(
        dir: &Path,
        pki: &Path,
        broker_port: u16,
        id: &str,
        keys: &Path,
        slot_mib: u32,
    ) -> Self {
        let sim = RaucSim::start_sized(&dir.join(format!("{id}-rauc")), keys, slot_mib);
        Self::start_on(sim, dir, pki, broker_port, id, false)
    }

    /// With `sim` as its RAUC and `ota.streaming` as given.
    pub fn start_on(
        sim: RaucSim,
        dir: &Path,
        pki: &Path,
        broker_port: u16,
        id: &str,
        streaming: bool,
    ) -> Self {
        let token = format!("[api]\ntoken = \"{RECORDER_TOKEN}\"\n");
        let (recorder, api) = start_recorder(&dir.join(format!("{id}-recorder")), &token);
        let (ca, cert, key) = super::device_files(dir, pki, broker_port, id);
        let extra = format!(
            "{token}[agent]\nrecorder_api = \"http://127.0.0.1:{api}\"\n\
             [ota]\ndir = \"{ota}\"\nboot_id_file = \"{boot}\"\npoll_seconds = 1\nbackoff_max_seconds = 1\ndownload_attempts = 4\nreserve_mib = 1\nrauc_conf = \"{conf}\"\nstreaming = {streaming}\nboot_check_wait_seconds = 60\n",
            ota = dir.join(format!("{id}-ota")).display(),
            boot = sim.boot_id_file.display(),
            conf = sim.dir.join("system.conf").display(),
        );
        let mut agent =
            AgentProc::configure(&dir.join(id), &ca, &cert, &key, broker_port, id, &extra);
        // The real rauc CLI (the health check's mark-good/bad) on the simulated system bus.
        std::fs::remove_file(agent.dir.join("bin/rauc")).unwrap();
        agent.daemon.set_env("DBUS_SYSTEM_BUS_ADDRESS", &sim.bus);
        let mut dev = Self {
            id: id.into(),
            sim,
            agent,
            recorder,
            recorder_api: api,
            health: None,
            reboots_done: 0,
            health_deadline_s: 30,
        };
        dev.start_services();
        dev
    }

    fn reboot_requests(&self) -> usize {
        self.agent
            .system_calls()
            .lines()
            .filter(|l| l.trim() == "systemctl reboot")
            .count()
    }

    /// A power cycle: the agent dies, the bootloader picks a slot, everything starts again
    /// with the boot health check. Returns the booted slot.
    pub fn power_cycle(&mut self) -> String {
        self.agent.kill9();
        if let Some(mut h) = self.health.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
        let slot = self.sim.boot();
        self.agent.daemon.set_env("R58_BOOTED_SLOT", &slot);
        self.start_services();
        slot
    }

    /// The services of one boot: the agent and the boot health check.
    fn start_services(&mut self) {
        self.agent.spawn();
        self.start_health();
    }

    /// A power cycle whose boot health check has not started yet (`start_health` starts it).
    pub fn power_cycle_without_health(&mut self) -> String {
        self.agent.kill9();
        if let Some(mut h) = self.health.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
        let slot = self.sim.boot();
        self.agent.spawn();
        slot
    }

    /// Starts the boot health check (`r58-health.service`) of this boot.
    pub fn start_health(&mut self) {
        let path = format!(
            "{}:{}",
            self.agent.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.agent.dir.join("health.log"))
            .unwrap();
        self.health = Some(
            Command::new(r58_testkit::workspace_bin("r58-agent"))
                .args([
                    "--config",
                    self.agent.config.to_str().unwrap(),
                    "--health-check",
                    &self.health_deadline_s.to_string(),
                ])
                .env("PATH", path)
                .env("DBUS_SYSTEM_BUS_ADDRESS", &self.sim.bus)
                .env_remove("NOTIFY_SOCKET")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    /// A boot that never gets far enough to start the services: the bootloader counts the
    /// try, nothing else runs. Returns the slot it tried.
    pub fn dead_boot(&mut self) -> String {
        self.agent.kill9();
        if let Some(mut h) = self.health.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
        self.reboots_done = self.reboot_requests();
        self.sim.boot()
    }

    /// Does what the machine would: reboots when the agent asked for it, or when the boot
    /// health check failed. Returns true if it rebooted.
    pub fn service(&mut self) -> bool {
        let requested = self.reboot_requests();
        if requested > self.reboots_done {
            self.reboots_done = requested;
            self.power_cycle();
            return true;
        }
        if let Some(h) = self.health.as_mut() {
            if let Ok(Some(status)) = h.try_wait() {
                self.health = None;
                if !status.success() {
                    self.power_cycle();
                    return true;
                }
            }
        }
        false
    }

    pub fn health_log(&self) -> String {
        std::fs::read_to_string(self.agent.dir.join("health.log")).unwrap_or_default()
    }
}

impl Drop for OtaDevice {
    fn drop(&mut self) {
        if let Some(mut h) = self.health.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

pub fn fleet_pki_dir_files(pki: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        pki.join("ca.pem"),
        pki.join("fleet.crt"),
        pki.join("fleet.key"),
    )
}

/// A TCP proxy in front of the fleet's bundle server that can cut the first connections
/// after some bytes of response and slow the transfer down; it counts the response bytes
/// it passed and keeps the request heads it saw.
pub struct CutProxy {
    pub port: u16,
    pub passed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl CutProxy {
    /// `cuts`: how many connections are cut after `cut_after` response bytes; `bytes_per_s`
    /// throttles every response (0: as fast as possible).
    pub fn start(upstream: u16, cuts: usize, cut_after: u64, bytes_per_s: u64) -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let passed = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let cut_left = Arc::new(AtomicUsize::new(cuts));
        let (p, r) = (passed.clone(), requests.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let Ok(mut server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let cut = cut_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                let (p, r) = (p.clone(), r.clone());
                let mut c2 = client.try_clone().unwrap();
                let mut s2 = server.try_clone().unwrap();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c2.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        r.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                        if s2.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    let mut sent = 0u64;
                    let start = std::time::Instant::now();
                    loop {
                        let n = match server.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let n = if cut {
                            n.min((cut_after - sent) as usize)
                        } else {
                            n
                        };
                        if client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n as u64;
                        p.fetch_add(n as u64, Ordering::SeqCst);
                        if cut && sent >= cut_after {
                            break;
                        }
                        if bytes_per_s > 0 {
                            let due = std::time::Duration::from_secs_f64(
                                sent as f64 / bytes_per_s as f64,
                            );
                            if let Some(wait) = due.checked_sub(start.elapsed()) {
                                std::thread::sleep(wait);
                            }
                        }
                    }
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    let _ = server.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Self {
            port,
            passed,
            requests,
        }
    }

    pub fn ranges(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.lines().map(str::to_string).collect::<Vec<_>>())
            .filter(|l| l.to_ascii_lowercase().starts_with("range:"))
            .collect()
    }
}
