//! `r58-agent`: the R58's MQTT device agent (docs/mqtt.md).

pub mod agent;
pub mod commands;
pub mod commit;
pub mod delivery;
pub mod error;
pub mod health;
pub mod ids;
pub mod link;
pub mod mqtt;
pub mod ota;
pub mod queue;
pub mod recorder_api;
pub mod remote_access;
pub mod system;
pub mod telemetry;
pub mod twin;

pub use error::AgentError;
