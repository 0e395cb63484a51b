//! Commands: sent to one device or many, followed through the states the device reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A command and its latest state: `sent` (published, nothing heard yet), `accepted`,
/// `in_progress`, then `succeeded`, `failed`, `rejected` — or `expired` when no final state
/// came before `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: String,
    pub device: String,
    pub name: String,
    pub args: Value,
    pub state: String,
    pub progress: i64,
    pub message: Option<String>,
    pub result: Option<Value>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub updated_at: i64,
}

impl Command {
    /// No later state will come.
    pub fn is_final(&self) -> bool {
        matches!(
            self.state.as_str(),
            "succeeded" | "failed" | "rejected" | "expired"
        )
    }
}

/// `POST /api/v1/devices/<id>/commands`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendCommand {
    pub name: String,
    /// A JSON object, or nothing for none.
    #[serde(default)]
    pub args: Value,
    /// The server's default when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

/// Which devices a command or a rollout is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Target {
    /// Every device (only `true` is valid).
    All(bool),
    /// The devices with this tag.
    Tag(String),
    /// These devices, each of which must exist.
    Devices(Vec<String>),
}

/// `POST /api/v1/commands`: one command to many devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendToMany {
    pub name: String,
    #[serde(default)]
    pub args: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    pub target: Target,
}

/// The answer to `POST /api/v1/commands`: how many were sent, and the command id by device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandsSent {
    pub sent: usize,
    pub commands: BTreeMap<String, String>,
}

/// One command: the answer to sending one and to `GET /api/v1/commands/<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandAnswer {
    pub command: Command,
}

/// `GET /api/v1/devices/<id>/commands`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandList {
    pub commands: Vec<Command>,
}
