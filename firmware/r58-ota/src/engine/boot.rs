//! The boot half of a job: asking for the reboot, and on the next boot deciding from the boot
//! health check's verdict (`health.json`) whether the update is committed or was rolled back.

use chrono::Utc;
use r58_proto::{Phase, Reason, Status};
use serde::{Deserialize, Serialize};

use super::{Fail, Worker};

/// The boot health check's verdict for one boot (`<ota.dir>/health.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthVerdict {
    pub boot_id: String,
    pub good: bool,
    pub details: String,
    pub ts: chrono::DateTime<Utc>,
}

pub const HEALTH_FILE: &str = "health.json";

/// The boot the health check last finished judging (`<ota.dir>/boot-judged.json`), whatever
/// its verdict: until this boot is judged, the engine leaves RAUC to the health check (RAUC
/// runs one operation at a time, and a committed slot's `mark-good` must come before an
/// install that can take minutes, or power cuts during it use up the slot's tries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootJudged {
    pub boot_id: String,
    pub ts: chrono::DateTime<Utc>,
}

pub const JUDGED_FILE: &str = "boot-judged.json";

pub fn read_boot_id(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Worker {
    /// Waits (bounded by `boot_check_wait`) until the health check has judged this boot.
    pub(super) async fn wait_boot_judged(&self) {
        let boot = read_boot_id(&self.settings.boot_id_file);
        if boot.is_empty() {
            return;
        }
        let path = self.settings.dir.join(JUDGED_FILE);
        let until = tokio::time::Instant::now() + self.settings.boot_check_wait;
        let mut logged = false;
        loop {
            let judged: Option<BootJudged> = r58_fs::read_json(&path).ok().flatten();
            if judged.is_some_and(|j| j.boot_id == boot) {
                return;
            }
            if tokio::time::Instant::now() >= until {
                tracing::warn!("the boot health check has not judged this boot: using RAUC anyway");
                return;
            }
            if !logged {
                tracing::info!("waiting for the boot health check before using RAUC");
                logged = true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    pub(super) async fn reboot(&self) -> Result<(), Fail> {
        let boot = read_boot_id(&self.settings.boot_id_file);
        // A verdict from an earlier boot (an earlier update's failed check, whose boot id is
        // not this one either) must not speak for the boots this reboot leads to.
        let health = self.settings.dir.join(HEALTH_FILE);
        match std::fs::remove_file(&health) {
            Ok(()) => r58_fs::sync_dir(&self.settings.dir).map_err(|e| {
                Fail(
                    Reason::StorageError,
                    format!("{}: {e}", self.settings.dir.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Fail(
                    Reason::StorageError,
                    format!("{}: {e}", health.display()),
                ))
            }
        }
        self.set(Phase::Rebooting, 100, None, |r| {
            r.reboot_boot_id = Some(boot);
            r.reboot_attempts += 1;
        })
        .await?;
        self.set_status(Status::Rebooting).await;
        self.host
            .reboot()
            .await
            .map_err(|e| Fail(Reason::InstallFailed, format!("reboot failed: {e}")))
    }

    /// After a boot: on the target slot, wait for the health check's verdict of this boot;
    /// on the old slot, the update was rolled back.
    pub(super) async fn verify_boot(&self) -> Result<(), Fail> {
        let rec = self.current();
        let Some(rec) = rec else { return Ok(()) };
        let boot = read_boot_id(&self.settings.boot_id_file);
        if rec.phase == Phase::Rebooting && rec.reboot_boot_id.as_deref() == Some(boot.as_str()) {
            // The agent restarted, the machine did not: reboot again (bounded).
            if rec.reboot_attempts >= 3 {
                return Err(Fail(
                    Reason::InstallFailed,
                    "the reboot into the new slot did not happen".into(),
                ));
            }
            return self.reboot().await;
        }
        self.set_status(Status::Updating).await;
        self.set(Phase::VerifyingBoot, 100, None, |_| {}).await?;
        let health_file = self.settings.dir.join(HEALTH_FILE);
        loop {
            let sys = match self.rauc.system().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "RAUC not available yet");
                    tokio::time::sleep(self.settings.poll).await;
                    continue;
                }
            };
            let verdict: Option<HealthVerdict> = r58_fs::read_json(&health_file).ok().flatten();
            if rec.target_slot.as_deref() != Some(sys.booted.as_str()) {
                let target = rec.target_slot.clone().unwrap_or_default();
                let status = sys
                    .slots
                    .iter()
                    .find(|s| s.bootname.as_deref() == Some(target.as_str()))
                    .and_then(|s| s.boot_status.clone())
                    .unwrap_or_default();
                let why = match verdict {
                    // Only a boot after the reboot: not this one, not the one that asked.
                    Some(v)
                        if !v.good
                            && v.boot_id != boot
                            && Some(&v.boot_id) != rec.reboot_boot_id.as_ref() =>
                    {
                        format!("health check failed on slot {target}: {}", v.details)
                    }
                    _ => format!("slot {target} did not come up (boot status {status:?})"),
                };
                return Err(Fail(
                    Reason::Rollback,
                    format!("booted {} again: {why}", sys.booted),
                ));
            }
            match verdict {
                Some(v) if v.boot_id == boot && v.good => {
                    self.set(Phase::Succeeded, 100, None, |_| {}).await?;
                    return Ok(());
                }
                Some(v) if v.boot_id == boot => {
                    // The health unit marked the slot bad and reboots; the old slot reports.
                    tracing::error!(details = %v.details, "new slot failed its health check: rollback follows");
                }
                _ => {}
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }
}
