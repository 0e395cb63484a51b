//! The R58 MQTT protocol, `r58/v1/{device_id}/…` (docs/mqtt.md). One crate for both ends:
//! the device agent and the fleet service.

mod jobs;
mod payloads;
mod topics;

pub use jobs::*;
pub use payloads::*;
pub use topics::*;
