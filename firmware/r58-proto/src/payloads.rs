//! Payloads (JSON). Unknown fields are ignored on input so that either end can be newer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Online,
    /// Set by the broker from the last will: the device vanished without a goodbye.
    Lost,
    /// Published by a clean shutdown of the agent.
    Offline,
    Rebooting,
    Updating,
}

/// `state`, retained, QoS 1; the last will is the same document with `status: lost`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub firmware_version: String,
    pub booted_slot: Option<String>,
    pub ip_addresses: Vec<String>,
    pub uptime_s: u64,
    /// Grows by one on every connection of the agent (persisted).
    pub session: u64,
    pub ts: DateTime<Utc>,
    /// The remote-access tunnel while remote access is on; absent while it is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_access: Option<RemoteAccessState>,
}

/// The box's remote-access tunnel as the box sees it (docs/remote-access.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteAccessState {
    /// Connected to the fleet's relay now.
    pub tunnel: bool,
    /// Streams the fleet holds open to the box's ports now (sessions).
    pub open_streams: u32,
}

/// `telemetry/{stream}`, QoS 1: one sample with its sequence number in the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    pub data: Value,
}

/// `cmd/{name}`, QoS 1, not retained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: String,
    #[serde(default)]
    pub args: Value,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmdState {
    Accepted,
    InProgress,
    Succeeded,
    Failed,
    Rejected,
}

impl CmdState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Rejected)
    }
}

/// `cmd/status`, QoS 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmdStatus {
    pub id: String,
    pub name: String,
    pub state: CmdState,
    pub progress: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    pub ts: DateTime<Utc>,
}

/// `twin/desired`, retained: the settings the fleet wants, with a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwinDesired {
    pub version: u64,
    #[serde(default)]
    pub settings: BTreeMap<String, Value>,
}

/// `twin/reported`, retained: what was applied for which desired version, and per-key errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwinReported {
    pub version: u64,
    pub applied: BTreeMap<String, Value>,
    pub errors: BTreeMap<String, String>,
    pub ts: DateTime<Utc>,
}
