//! The boot health check of the OTA path (`r58-agent --health-check`, run once per boot by
//! `r58-health.service`): the R58 services are active, the recorder's pipelines play, and
//! the agent reached the broker during this boot — all within a deadline. Then the booted
//! RAUC slot is marked good; otherwise it is marked bad and the unit fails, so that systemd
//! reboots (`FailureAction=reboot`) and U-Boot falls back to the other slot.

use std::time::{Duration, Instant};

use r58_config::R58Config;

/// What the agent writes on every connection to the broker.
pub const CONNECTED_FILE: &str = "connected.json";

fn unit_active(unit: &str) -> Result<(), String> {
    let out = std::process::Command::new("systemctl")
        .args(["is-active", unit])
        .output()
        .map_err(|e| format!("running systemctl: {e}"))?;
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && state == "active" {
        Ok(())
    } else {
        Err(format!("{unit} is {state:?}"))
    }
}

fn recorder_healthy(api: &str) -> Result<(), String> {
    let url = format!("{}/healthz", api.trim_end_matches('/'));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    match client.get(&url).send() {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("recorder {url} answered {}", r.status())),
        Err(e) => Err(format!("recorder {url}: {e}")),
    }
}

fn connected_this_boot(cfg: &R58Config) -> Result<(), String> {
    let path = cfg.agent.state_dir.join(CONNECTED_FILE);
    let meta = std::fs::metadata(&path)
        .map_err(|_| "the agent has not reached the broker yet".to_string())?;
    let modified = meta.modified().map_err(|e| e.to_string())?;
    let boot = std::time::SystemTime::now() - Duration::from_secs(crate::telemetry::uptime_s());
    if modified >= boot {
        Ok(())
    } else {
        Err("the agent has not reached the broker since this boot".into())
    }
}

/// One round of every check: Ok, or every reason it is not healthy yet.
pub fn check(cfg: &R58Config, units: &[&str]) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for u in units {
        if let Err(e) = unit_active(u) {
            problems.push(e);
        }
    }
    if let Err(e) = recorder_healthy(&cfg.agent.recorder_api) {
        problems.push(e);
    }
    if let Err(e) = connected_this_boot(cfg) {
        problems.push(e);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn rauc(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("rauc")
        .args(args)
        .output()
        .map_err(|e| format!("running rauc: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rauc {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The verdict for this boot, for an OTA job waiting in `verifying_boot`.
fn write_verdict(cfg: &R58Config, good: bool, details: &str) {
    let v = r58_ota::HealthVerdict {
        boot_id: r58_ota::engine::read_boot_id(&cfg.ota.boot_id_file),
        good,
        details: details.to_string(),
        ts: chrono::Utc::now(),
    };
    if let Err(e) = r58_fs::write_json_atomic(&cfg.ota.dir.join(r58_ota::HEALTH_FILE), &v) {
        tracing::error!(error = %e, "cannot record the health verdict");
    }
}

/// Polls the checks until they pass or `deadline` passes; marks the slot accordingly (the
/// commit comes first, the verdict after it: an OTA job never reports success uncommitted).
pub fn run(cfg: &R58Config, deadline: Duration) -> Result<(), String> {
    let units = ["r58-recorder.service", "r58-agent.service"];
    let until = Instant::now() + deadline;
    loop {
        match check(cfg, &units) {
            Ok(()) => {
                rauc(&["status", "mark-good", "booted"])?;
                write_verdict(cfg, true, "healthy");
                tracing::info!("boot healthy: booted slot marked good");
                return Ok(());
            }
            Err(problems) if Instant::now() >= until => {
                let reason = problems.join("; ");
                tracing::error!(%reason, "boot unhealthy: marking the booted slot bad");
                write_verdict(cfg, false, &reason);
                rauc(&["status", "mark-bad", "booted"])?;
                return Err(reason);
            }
            Err(_) => std::thread::sleep(Duration::from_secs(2)),
        }
    }
}
