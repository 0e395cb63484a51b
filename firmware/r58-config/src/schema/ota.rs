//! `[ota]`: the agent's update path (docs/ota.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{range_check, Validate};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtaConfig {
    /// Takes OTA jobs from the fleet.
    pub enabled: bool,
    /// Job record, health verdict and the bundle being downloaded (data partition).
    pub dir: PathBuf,
    /// Where this boot's id is read: a new id means the machine rebooted.
    pub boot_id_file: PathBuf,
    /// Failed download attempts in a row (no byte gained) before the job fails.
    pub download_attempts: u32,
    /// Cap of the wait between download attempts.
    pub backoff_max_seconds: u32,
    /// Space left free on the data partition beside the bundle.
    pub reserve_mib: u32,
    /// How often a waiting job looks again (recording stopped, health verdict).
    pub poll_seconds: u32,
    /// RAUC's system.conf (its keyring explains a refused bundle).
    pub rauc_conf: PathBuf,
    /// RAUC installs straight from the bundle's URL (HTTP streaming: nothing stored on the
    /// data partition); when RAUC cannot read the URL the bundle is downloaded to `dir`.
    /// false: always download first.
    pub streaming: bool,
    /// The oldest version this box installs, whatever a job says (`allow_downgrade` included):
    /// a floor set on the box (or in the image) that the fleet cannot lower, e.g. past a
    /// security fix. Empty: no floor.
    pub min_version: String,
    /// How long a job waits, at most, for the boot health check (`r58-health.service`) to
    /// judge this boot before it uses RAUC: longer than the check's deadline. 0: no wait
    /// (a machine without the check).
    pub boot_check_wait_seconds: u32,
}

impl Default for OtaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: PathBuf::from("/data/ota"),
            boot_id_file: PathBuf::from("/proc/sys/kernel/random/boot_id"),
            download_attempts: 8,
            backoff_max_seconds: 60,
            reserve_mib: 256,
            poll_seconds: 5,
            rauc_conf: PathBuf::from("/etc/rauc/system.conf"),
            streaming: true,
            min_version: String::new(),
            boot_check_wait_seconds: 240,
        }
    }
}

impl Validate for OtaConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        range_check(
            &mut out,
            "download_attempts",
            self.download_attempts,
            1,
            1000,
        );
        range_check(
            &mut out,
            "backoff_max_seconds",
            self.backoff_max_seconds,
            1,
            3600,
        );
        range_check(&mut out, "reserve_mib", self.reserve_mib, 0, 65536);
        range_check(&mut out, "poll_seconds", self.poll_seconds, 1, 600);
        range_check(
            &mut out,
            "boot_check_wait_seconds",
            self.boot_check_wait_seconds,
            0,
            3600,
        );
        if !self.dir.is_absolute() {
            out.push((
                "dir".into(),
                format!("{} is not an absolute path", self.dir.display()),
            ));
        }
        out
    }
}
