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

pub fn read_boot_id(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Worker {
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
