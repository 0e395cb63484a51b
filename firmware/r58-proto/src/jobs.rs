//! OTA jobs (docs/ota.md): the fleet publishes one retained `jobs/next` per device; the device
//! reports every phase change on `jobs/{job_id}/update` (QoS 1, not retained).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// When the install and the reboot may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Only while no input records (or inside the maintenance window).
    #[default]
    WhenIdle,
    /// At once, even during a recording (emergencies).
    Force,
    /// Reboot only: wait for an operator's `reboot` command.
    Manual,
}

/// A daily window (UTC, `HH:MM`) in which the job may proceed even while recording. An end
/// before the start spans midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: String,
    pub end: String,
}

/// `jobs/next`, retained. An empty payload (or `{}`) means "no job": one that has not started
/// installing is withdrawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub version: String,
    pub url: String,
    pub size: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    #[serde(default)]
    pub install_policy: Policy,
    #[serde(default)]
    pub reboot_policy: Policy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    #[serde(default)]
    pub allow_downgrade: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
}

/// A job's phases in the order a device goes through them (the fleet ranks updates by it and
/// never moves a job back): streamed, `queued → verifying → [waiting_for_idle] → installing
/// → …`; downloaded, `queued → downloading → verifying → [waiting_for_idle] → installing → …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Queued,
    Downloading,
    Verifying,
    WaitingForIdle,
    Installing,
    WaitingForReboot,
    Rebooting,
    VerifyingBoot,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::WaitingForIdle => "waiting_for_idle",
            Self::Downloading => "downloading",
            Self::Verifying => "verifying",
            Self::Installing => "installing",
            Self::WaitingForReboot => "waiting_for_reboot",
            Self::Rebooting => "rebooting",
            Self::VerifyingBoot => "verifying_boot",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL_PHASES.iter().copied().find(|p| p.as_str() == s)
    }
}

pub const ALL_PHASES: [Phase; 10] = [
    Phase::Queued,
    Phase::WaitingForIdle,
    Phase::Downloading,
    Phase::Verifying,
    Phase::Installing,
    Phase::WaitingForReboot,
    Phase::Rebooting,
    Phase::VerifyingBoot,
    Phase::Succeeded,
    Phase::Failed,
];

/// Why a job failed; each refusal has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The job document itself is unusable (bad URL, bad checksum format).
    InvalidJob,
    /// The server answered 4xx: retrying cannot help.
    HttpClientError,
    /// Timeouts / 5xx until the retry budget ran out.
    DownloadFailed,
    NoSpace,
    SizeMismatch,
    ChecksumMismatch,
    /// RAUC refused the signature (unsigned, tampered, unknown signer).
    BadSignature,
    /// The bundle is for another product.
    Incompatible,
    /// The bundle's version is not the job's.
    VersionMismatch,
    /// Older than what runs, without `allow_downgrade`.
    Downgrade,
    /// The device runs something older than the job's `min_version`.
    MinVersion,
    InstallFailed,
    /// Back on the old slot after the update: the new one failed its health check or never booted.
    Rollback,
    /// The deadline passed before the install could start.
    Deadline,
    /// `ota.cancel`, or the fleet withdrew the job.
    Cancelled,
    /// Local storage failed (job state, bundle file).
    StorageError,
}

/// `jobs/{job_id}/update`, QoS 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobUpdate {
    pub job_id: String,
    pub phase: Phase,
    pub progress: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    pub version: String,
    pub ts: DateTime<Utc>,
}

/// Compares dotted numeric versions (`1.2.10` > `1.2.9`, `1.0` = `1.0.0`); a non-numeric
/// part sorts after every number, by its text.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<(u64, String)> {
        s.trim_start_matches('v')
            .split(['.', '-', '+'])
            .map(|p| {
                p.parse::<u64>()
                    .map_or((u64::MAX, p.to_string()), |n| (n, String::new()))
            })
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).cloned().unwrap_or((0, String::new()));
        let y = pb.get(i).cloned().unwrap_or((0, String::new()));
        match x.cmp(&y) {
            std::cmp::Ordering::Equal => continue,
            o => return o,
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("1.2.10", "1.2.9"), Greater);
        assert_eq!(compare_versions("0.2.0", "0.10.0"), Less);
        assert_eq!(compare_versions("1.0", "1.0.0"), Equal);
        assert_eq!(compare_versions("v2.0.0", "1.9.9"), Greater);
    }

    #[test]
    fn job_documents_parse_with_defaults() {
        let j: Job = serde_json::from_str(
            r#"{"job_id":"j1","version":"1.2.0","url":"https://f/b.raucb","size":10,"sha256":"ab","install_policy":"force"}"#,
        )
        .unwrap();
        assert_eq!(j.install_policy, Policy::Force);
        assert_eq!(j.reboot_policy, Policy::WhenIdle);
        assert!(
            serde_json::from_str::<Job>(r#"{"job_id":"j1","version":"1","url":"u"}"#).is_err(),
            "size and sha256 are required"
        );
        for p in ALL_PHASES {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
    }
}
