//! The simulated R58's boot loop for `scripts/run`: the real RAUC on a private D-Bus with two
//! file slots and the boot-counting backend (`RaucSim`), the agent on it, and the boot health
//! check that `r58-health.service` runs. When the agent asks for a reboot (its stand-in
//! `systemctl reboot`), or a health check fails (`FailureAction=reboot`), the agent is stopped,
//! the bootloader picks a slot as U-Boot would, and the agent and the health check start again
//! on that slot. SIGTERM or Ctrl-C stops everything it started.
//!
//! usage: r58-sim-device --config FILE --dir DIR --keys DIR --bin DIR
//!                       [--compatible NAME] [--slot-mib N] [--health-seconds N]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use r58_testkit::rauc::RaucSim;

struct Args {
    config: PathBuf,
    dir: PathBuf,
    keys: PathBuf,
    bin: PathBuf,
    compatible: String,
    slot_mib: u32,
    health_seconds: u32,
}

const USAGE: &str = "usage: r58-sim-device --config FILE --dir DIR --keys DIR --bin DIR \
                     [--compatible NAME] [--slot-mib N] [--health-seconds N]";

fn parse_args() -> Result<Args, String> {
    let mut config = None;
    let mut dir = None;
    let mut keys = None;
    let mut bin = None;
    let mut compatible = "r58-sim".to_string();
    let mut slot_mib = 64;
    let mut health_seconds = 180;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--keys" => keys = Some(PathBuf::from(value()?)),
            "--bin" => bin = Some(PathBuf::from(value()?)),
            "--compatible" => compatible = value()?,
            "--slot-mib" => slot_mib = value()?.parse().map_err(|e| format!("--slot-mib: {e}"))?,
            "--health-seconds" => {
                health_seconds = value()?
                    .parse()
                    .map_err(|e| format!("--health-seconds: {e}"))?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let need = |v: Option<PathBuf>, n: &str| v.ok_or_else(|| format!("{n} is required"));
    Ok(Args {
        config: need(config, "--config")?,
        dir: need(dir, "--dir")?,
        keys: need(keys, "--keys")?,
        bin: need(bin, "--bin")?,
        compatible,
        slot_mib,
        health_seconds,
    })
}

struct Device {
    args: Args,
    sim: RaucSim,
    tools: PathBuf,
    agent: Option<Child>,
    health: Option<Child>,
    reboots_done: usize,
}

fn append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl Device {
    fn spawn(&self, extra: &[&str], log: &str) -> std::io::Result<Child> {
        let path = format!(
            "{}:{}",
            self.tools.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new(self.args.bin.join("r58-agent"))
            .arg("--config")
            .arg(&self.args.config)
            .args(extra)
            .env("PATH", path)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.sim.bus)
            .env("R58_BOOTED_SLOT", &self.sim.booted)
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(append(&self.args.dir.join(log))?)
            .spawn()
    }

    /// Starts the services of one boot: the agent and the boot health check.
    fn boot_services(&mut self) -> std::io::Result<()> {
        self.agent = Some(self.spawn(&[], "agent.log")?);
        let secs = self.args.health_seconds.to_string();
        self.health = Some(self.spawn(&["--health-check", &secs], "health.log")?);
        Ok(())
    }

    /// What a shutdown does to the services: SIGTERM, then SIGKILL after 10 s.
    fn stop_services(&mut self) {
        for child in [self.agent.take(), self.health.take()]
            .into_iter()
            .flatten()
        {
            stop(child);
        }
    }

    fn reboot_requests(&self) -> usize {
        std::fs::read_to_string(self.args.dir.join("system-calls.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.trim() == "systemctl reboot")
            .count()
    }

    fn reboot(&mut self, why: &str) -> std::io::Result<()> {
        self.stop_services();
        let slot = self.sim.boot();
        eprintln!("r58-sim-device: {why}: rebooted, the bootloader chose slot {slot}");
        self.boot_services()
    }

    /// One look at the device; Err when the agent is gone for good.
    fn tick(&mut self) -> Result<(), String> {
        let requested = self.reboot_requests();
        if requested > self.reboots_done {
            self.reboots_done = requested;
            return self
                .reboot("the agent asked for a reboot")
                .map_err(|e| format!("rebooting: {e}"));
        }
        if let Some(h) = self.health.as_mut() {
            if let Ok(Some(status)) = h.try_wait() {
                self.health = None;
                if !status.success() {
                    return self
                        .reboot("the boot health check failed")
                        .map_err(|e| format!("rebooting: {e}"));
                }
            }
        }
        if let Some(a) = self.agent.as_mut() {
            if let Ok(Some(status)) = a.try_wait() {
                return Err(format!(
                    "the agent exited ({status}); see {}",
                    self.args.dir.join("agent.log").display()
                ));
            }
        }
        Ok(())
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn run(args: Args) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    // The stand-ins for systemctl and journalctl log what the agent asked of the system; the
    // real rauc CLI (on the private bus) marks slots.
    let tools = r58_testkit::fake_system_tools(&args.dir);
    let _ = std::fs::remove_file(tools.join("rauc"));
    let sim = RaucSim::start_compatible(
        &args.dir.join("rauc"),
        &args.keys,
        args.slot_mib,
        &args.compatible,
    );
    eprintln!(
        "r58-sim-device: RAUC on slot {} (compatible {}, bus {})",
        sim.booted, sim.compatible, sim.bus
    );
    let mut dev = Device {
        reboots_done: 0,
        args,
        sim,
        tools,
        agent: None,
        health: None,
    };
    dev.reboots_done = dev.reboot_requests();
    dev.boot_services()
        .map_err(|e| format!("starting the agent: {e}"))?;
    let result = loop {
        tokio::select! {
            _ = term.recv() => break Ok(()),
            _ = int.recv() => break Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if let Err(e) = dev.tick() {
                    break Err(e);
                }
            }
        }
    };
    dev.stop_services();
    result
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("r58-sim-device: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("r58-sim-device: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("r58-sim-device: {e}");
            ExitCode::FAILURE
        }
    }
}
