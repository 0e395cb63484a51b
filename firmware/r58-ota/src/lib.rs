//! The R58's update path on the device (docs/ota.md): OTA jobs from the fleet, a resumable
//! and verified bundle download, RAUC over D-Bus for the A/B install, and the job state
//! machine that survives restarts and power cuts.

pub mod download;
pub mod engine;
pub mod rauc;
pub mod record;

pub use engine::{Engine, HealthVerdict, Host, HostError, In, Out, Settings, HEALTH_FILE};

/// A boxed future, for the seams' trait methods.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
