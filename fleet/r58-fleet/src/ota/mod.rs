//! OTA on the fleet side (docs/ota.md): published bundles and staged rollouts.

pub mod bundle;
pub mod rollout;
