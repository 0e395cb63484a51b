//! The boot health check (`r58-agent --health-check`, run once per boot by
//! `r58-health.service`). It decides by the commit policy in [`crate::commit`]: a committed
//! slot is marked good at once (network or no network); a trial boot of a just-installed
//! update is committed only when the R58 services are active, the recorder is healthy and the
//! agent reached the broker during this boot, within the deadline — otherwise it is marked
//! bad and the unit fails, so that systemd reboots (`FailureAction=reboot`) and U-Boot boots
//! the old slot.

use std::time::{Duration, Instant};

use r58_config::R58Config;

use crate::commit::{
    boot_kind, connected_during, decide, BootKind, ConnectedRecord, Decision, Problem,
};

/// What the agent writes on every connection to the broker ([`ConnectedRecord`]).
pub const CONNECTED_FILE: &str = "connected.json";

const UNITS: [&str; 2] = ["r58-recorder.service", "r58-agent.service"];

fn unit_active(unit: &str) -> Result<(), Problem> {
    let out = std::process::Command::new("systemctl")
        .args(["is-active", unit])
        .output()
        .map_err(|e| Problem::Unit(format!("running systemctl: {e}")))?;
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && state == "active" {
        Ok(())
    } else {
        Err(Problem::Unit(format!("{unit} is {state:?}")))
    }
}

fn recorder_healthy(api: &str) -> Result<(), Problem> {
    let url = format!("{}/healthz", api.trim_end_matches('/'));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| Problem::Recorder(e.to_string()))?;
    match client.get(&url).send() {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(Problem::Recorder(format!(
            "recorder {url} answered {}",
            r.status()
        ))),
        Err(e) => Err(Problem::Recorder(format!("recorder {url}: {e}"))),
    }
}

fn broker_reached(cfg: &R58Config, boot_id: &str) -> Result<(), Problem> {
    let path = cfg.agent.state_dir.join(CONNECTED_FILE);
    let rec: Option<ConnectedRecord> = r58_fs::read_json(&path).ok().flatten();
    if connected_during(rec.as_ref(), boot_id) {
        Ok(())
    } else {
        Err(Problem::Broker(
            "the agent has not reached the broker during this boot".into(),
        ))
    }
}

/// One round of every check: every reason the boot is not healthy (empty: healthy).
pub fn check(cfg: &R58Config, boot_id: &str) -> Vec<Problem> {
    let mut problems: Vec<Problem> = UNITS.iter().filter_map(|u| unit_active(u).err()).collect();
    problems.extend(recorder_healthy(&cfg.agent.recorder_api).err());
    problems.extend(broker_reached(cfg, boot_id).err());
    problems
}

fn rauc(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("rauc")
        .args(args)
        .output()
        .map_err(|e| format!("running rauc: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "rauc {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The booted slot's bootname, as RAUC sees it.
fn booted_slot() -> Result<String, String> {
    let text = rauc(&["status", "--output-format=json"])?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("reading rauc status: {e}"))?;
    v["booted"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "rauc status names no booted slot".to_string())
}

/// Whether a committed boot may record its verdict: not over the failed verdict of another
/// boot, which is an update's trial boot that was rolled back. The agent reads that one to
/// report why (the OTA job removes the file before its next reboot); a good verdict of the
/// boot after the rollback must not hide it.
fn committed_may_record(cfg: &R58Config, boot_id: &str) -> bool {
    let existing: Option<r58_ota::HealthVerdict> =
        r58_fs::read_json(&cfg.ota.dir.join(r58_ota::HEALTH_FILE))
            .ok()
            .flatten();
    !matches!(existing, Some(v) if !v.good && v.boot_id != boot_id)
}

/// The verdict for this boot, for an OTA job waiting in `verifying_boot`.
fn write_verdict(cfg: &R58Config, boot_id: &str, good: bool, details: &str) {
    let v = r58_ota::HealthVerdict {
        boot_id: boot_id.to_string(),
        good,
        details: details.to_string(),
        ts: chrono::Utc::now(),
    };
    if let Err(e) = r58_fs::write_json_atomic(&cfg.ota.dir.join(r58_ota::HEALTH_FILE), &v) {
        tracing::error!(error = %e, "cannot record the health verdict");
    }
}

fn joined(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What kind of boot this is. A job record that cannot be read counts as no pending update:
/// a boot loop over an unreadable file would be worse than keeping the slot.
fn this_boot(cfg: &R58Config, boot_id: &str) -> Result<BootKind, String> {
    let booted = booted_slot()?;
    let record = match r58_ota::record::Store::open(&cfg.ota.dir) {
        Ok(store) => store.current().cloned(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the OTA job record: judging this boot as committed");
            None
        }
    };
    Ok(boot_kind(record.as_ref(), &booted, boot_id))
}

/// Judges this boot and marks the booted slot (the commit comes first, the verdict after it:
/// an OTA job never reports success uncommitted). Err only when a trial boot failed. Then
/// records that this boot is judged: an OTA job waits for that before it uses RAUC.
pub fn run(cfg: &R58Config, deadline: Duration) -> Result<(), String> {
    let boot_id = r58_ota::engine::read_boot_id(&cfg.ota.boot_id_file);
    let result = judge(cfg, &boot_id, deadline);
    let judged = r58_ota::engine::BootJudged {
        boot_id: boot_id.clone(),
        ts: chrono::Utc::now(),
    };
    let path = cfg.ota.dir.join(r58_ota::engine::JUDGED_FILE);
    if let Err(e) = r58_fs::write_json_atomic(&path, &judged) {
        tracing::error!(error = %e, "cannot record that this boot is judged");
    }
    result
}

/// `rauc status mark-<state> booted`, asked again every 2 s until `until` while RAUC refuses
/// (it runs one operation at a time: an install or a bundle check of the agent's).
fn mark(state: &str, until: Instant) -> Result<(), String> {
    loop {
        match rauc(&["status", &format!("mark-{state}"), "booted"]) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= until => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "RAUC refused the mark: asking again");
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
}

fn judge(cfg: &R58Config, boot_id: &str, deadline: Duration) -> Result<(), String> {
    let boot_id = boot_id.to_string();
    let until = Instant::now() + deadline;
    // RAUC may still be starting: ask again until the deadline.
    let kind = loop {
        match this_boot(cfg, &boot_id) {
            Ok(kind) => break kind,
            Err(e) if Instant::now() >= until => {
                tracing::error!(error = %e, "cannot tell which slot runs: leaving the boot counter to U-Boot");
                return Ok(());
            }
            Err(_) => std::thread::sleep(Duration::from_secs(2)),
        }
    };
    if let BootKind::Trial { job_id, slot } = &kind {
        tracing::info!(%job_id, %slot, "trial boot of an update: committing only when healthy");
    }
    loop {
        match decide(&kind, check(cfg, &boot_id), Instant::now() >= until) {
            Decision::Wait => std::thread::sleep(Duration::from_secs(2)),
            Decision::MarkGood { degraded } => {
                let details = if degraded.is_empty() {
                    "healthy".to_string()
                } else {
                    format!("committed slot, not healthy yet: {}", joined(&degraded))
                };
                match mark("good", until.max(Instant::now() + Duration::from_secs(30))) {
                    Ok(_) => {}
                    // A committed slot stays: U-Boot's counter decides after failed tries.
                    Err(e) if kind == BootKind::Committed => {
                        tracing::error!(error = %e, "cannot mark the booted slot good");
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
                if kind != BootKind::Committed || committed_may_record(cfg, &boot_id) {
                    write_verdict(cfg, &boot_id, true, &details);
                }
                tracing::info!(%details, "booted slot marked good");
                return Ok(());
            }
            Decision::MarkBad { reasons } => {
                let reason = joined(&reasons);
                tracing::error!(%reason, "trial boot unhealthy: marking the booted slot bad");
                write_verdict(cfg, &boot_id, false, &reason);
                mark("bad", Instant::now() + Duration::from_secs(30))?;
                return Err(reason);
            }
        }
    }
}
