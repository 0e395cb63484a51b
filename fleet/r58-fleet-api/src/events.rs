//! `GET /api/v1/events`: server-sent events, one JSON document per change.

use serde::{Deserialize, Serialize};

use crate::commands::Command;
use crate::devices::Device;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// A device changed (state, telemetry figures, tags, twin).
    Device { device: Device },
    /// A command changed state.
    Command { command: Command },
    /// Changes were missed (the listener fell behind): read the inventory again.
    Resync,
}
