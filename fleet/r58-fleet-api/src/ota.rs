//! OTA: published bundles, rollouts in waves, and each device's job in a rollout.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::commands::Target;

/// A published RAUC bundle, stored under its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub sha256: String,
    pub version: String,
    pub compatible: String,
    pub size: i64,
    /// `rauc info` checked its signature against the server's keyring.
    pub signature_checked: bool,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// The answer to `POST /api/v1/bundles`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleAnswer {
    pub bundle: Bundle,
}

/// `GET /api/v1/bundles`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleList {
    pub bundles: Vec<Bundle>,
}

/// A rollout: `running`, `paused`, `halted` (too many failures), `completed` or `aborted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub bundle_sha256: String,
    pub version: String,
    pub target: Value,
    /// Wave sizes as given (`"1"`, `"10%"`, `"100%"`).
    pub waves: Vec<String>,
    pub success_percent: i64,
    pub failure_percent: i64,
    pub step_timeout_s: i64,
    pub options: Value,
    pub state: String,
    /// The wave under way, from 0.
    pub wave: i64,
    pub message: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Rollout {
    /// Nothing more happens without an operator.
    pub fn is_settled(&self) -> bool {
        matches!(self.state.as_str(), "completed" | "halted" | "aborted")
    }
}

/// One device's job in a rollout; `phase` is the fleet's own (`pending`, `published`), the
/// device's (r58-proto's job phases) or final (`succeeded`, `failed`, `skipped`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub rollout_id: String,
    pub device: String,
    pub wave: i64,
    pub job_id: String,
    pub phase: String,
    pub progress: i64,
    pub reason: Option<String>,
    pub details: Option<String>,
    pub published_at: Option<i64>,
    pub updated_at: i64,
}

/// How many devices a rollout has, and how many are in each phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutSummary {
    pub devices: usize,
    pub phases: BTreeMap<String, u64>,
}

impl RolloutSummary {
    pub fn of(jobs: &[Job]) -> Self {
        let mut phases = BTreeMap::new();
        for j in jobs {
            *phases.entry(j.phase.clone()).or_insert(0) += 1;
        }
        Self {
            devices: jobs.len(),
            phases,
        }
    }

    /// Jobs in `phase`.
    pub fn count(&self, phase: &str) -> u64 {
        self.phases.get(phase).copied().unwrap_or(0)
    }
}

/// One rollout with its jobs: `GET /api/v1/rollouts/<id>`, and the answer to creating and
/// steering one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutDetail {
    pub rollout: Rollout,
    pub summary: RolloutSummary,
    pub jobs: Vec<Job>,
}

/// `GET /api/v1/rollouts`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutList {
    pub rollouts: Vec<RolloutDetail>,
}

/// `POST /api/v1/rollouts`: exactly one of `version` (its newest bundle) and
/// `bundle_sha256`; unset numbers take the server's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRollout {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_sha256: Option<String>,
    pub target: Target,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waves: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_percent: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_percent: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_timeout_seconds: Option<i64>,
    #[serde(default)]
    pub install_policy: r58_proto::Policy,
    #[serde(default)]
    pub reboot_policy: r58_proto::Policy,
    #[serde(default)]
    pub allow_downgrade: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<r58_proto::Window>,
}

impl CreateRollout {
    /// A rollout of `version` (its newest bundle) to `target` with every other option the
    /// server's default.
    pub fn new(version: &str, target: Target) -> Self {
        Self::with(Some(version.to_string()), None, target)
    }

    /// A rollout of the bundle with this SHA-256, otherwise as [`CreateRollout::new`].
    pub fn of_bundle(sha256: &str, target: Target) -> Self {
        Self::with(None, Some(sha256.to_string()), target)
    }

    fn with(version: Option<String>, bundle_sha256: Option<String>, target: Target) -> Self {
        Self {
            version,
            bundle_sha256,
            target,
            waves: None,
            success_percent: None,
            failure_percent: None,
            step_timeout_seconds: None,
            install_policy: r58_proto::Policy::default(),
            reboot_policy: r58_proto::Policy::default(),
            allow_downgrade: false,
            min_version: None,
            window: None,
        }
    }
}
