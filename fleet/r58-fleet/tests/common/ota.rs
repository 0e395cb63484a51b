//! An R58 for OTA tests: the real agent and recorder, the real RAUC (`RaucSim`: private
//! D-Bus, file slots, the boot-counting test backend). The agent's reboot request (the
//! stand-in `systemctl reboot`) is carried out by `service()`: the agent dies (power off),
//! the bootloader picks a slot, RAUC comes up on it with a new boot id, the agent starts,
//! and the boot health check (`r58-agent --health-check`) runs as `r58-health.service`
//! would, a failed one rebooting again (`FailureAction=reboot`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use r58_testkit::rauc::RaucSim;
use r58_testkit::{start_recorder, AgentProc, Kill};

/// The recorder's API token on the test devices (its control endpoints need one).
pub const RECORDER_TOKEN: &str = "ota-test-recorder-token-0123";

pub struct OtaDevice {
    pub id: String,
    pub sim: RaucSim,
    pub agent: AgentProc,
    pub recorder: Kill,
    pub recorder_api: u16,
    health: Option<Child>,
    reboots_done: usize,
    pub health_deadline_s: u32,
}

/// `(ca, cert, key)` of a device bundle made by `r58-fleet pki issue-device`.
pub fn device_files(dir: &Path, pki: &Path, broker_port: u16, id: &str) -> (PathBuf, PathBuf, PathBuf) {
    let out = dir.join("bundles");
    let bundle = super::fleet_cli(&[
        "pki", "issue-device", id, "--dir", pki.to_str().unwrap(), "--out", out.to_str().unwrap(),
        "--broker", &format!("mqtts://127.0.0.1:{broker_port}"),
    ]);
    let b = PathBuf::from(bundle.trim());
    (b.join("fleet-ca.pem"), b.join("device.crt"), b.join("device.key"))
}

impl OtaDevice {
    pub fn start(dir: &Path, pki: &Path, broker_port: u16, id: &str, keys: &Path) -> Self {
        let sim = RaucSim::start(&dir.join(format!("{id}-rauc")), keys);
        let token = format!("[api]\ntoken = \"{RECORDER_TOKEN}\"\n");
        let (recorder, api) = start_recorder(&dir.join(format!("{id}-recorder")), &token);
        let (ca, cert, key) = device_files(dir, pki, broker_port, id);
        let extra = format!(
            "{token}[agent]\nrecorder_api = \"http://127.0.0.1:{api}\"\n\
             [ota]\ndir = \"{ota}\"\nboot_id_file = \"{boot}\"\npoll_seconds = 1\nbackoff_max_seconds = 1\ndownload_attempts = 4\nreserve_mib = 1\nrauc_conf = \"{conf}\"\n",
            ota = dir.join(format!("{id}-ota")).display(),
            boot = sim.boot_id_file.display(),
            conf = sim.dir.join("system.conf").display(),
        );
        let mut agent = AgentProc::configure(&dir.join(id), &ca, &cert, &key, broker_port, id, &extra);
        // The real rauc CLI (the health check's mark-good/bad) on the simulated system bus.
        std::fs::remove_file(agent.dir.join("bin/rauc")).unwrap();
        agent.env.push(("DBUS_SYSTEM_BUS_ADDRESS".into(), sim.bus.clone()));
        agent.spawn();
        Self { id: id.into(), sim, agent, recorder, recorder_api: api, health: None, reboots_done: 0, health_deadline_s: 30 }
    }

    fn reboot_requests(&self) -> usize {
        self.agent.system_calls().lines().filter(|l| l.trim() == "systemctl reboot").count()
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
        self.agent.env.retain(|(k, _)| k != "R58_BOOTED_SLOT");
        self.agent.env.push(("R58_BOOTED_SLOT".into(), slot.clone()));
        self.agent.spawn();
        let path = format!("{}:{}", self.agent.dir.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.agent.dir.join("health.log")).unwrap();
        self.health = Some(
            Command::new(r58_testkit::workspace_bin("r58-agent"))
                .args(["--config", self.agent.config.to_str().unwrap(), "--health-check", &self.health_deadline_s.to_string()])
                .env("PATH", path)
                .env("DBUS_SYSTEM_BUS_ADDRESS", &self.sim.bus)
                .env_remove("NOTIFY_SOCKET")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        slot
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
    (pki.join("ca.pem"), pki.join("fleet.crt"), pki.join("fleet.key"))
}
