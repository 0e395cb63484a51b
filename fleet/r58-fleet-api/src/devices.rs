//! Devices: the inventory, one device with its recent telemetry and commands, telemetry
//! history, tags, desired and reported configuration.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::commands::Command;

/// One device as the inventory knows it: from its retained `state`, its latest telemetry
/// and its twin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub status: String,
    pub session: i64,
    pub firmware_version: Option<String>,
    pub booted_slot: Option<String>,
    pub ip_addresses: Vec<String>,
    pub uptime_s: Option<i64>,
    pub state_ts: Option<i64>,
    /// When the device was last heard from (ms since the epoch).
    pub last_seen: Option<i64>,
    pub recording: Option<bool>,
    pub temperature_c: Option<f64>,
    pub disk_free_mib: Option<i64>,
    pub disk_total_mib: Option<i64>,
    pub tags: Vec<String>,
    pub desired_version: i64,
    pub desired: Value,
    pub reported_version: Option<i64>,
    pub reported: Option<Value>,
    pub reported_errors: Option<Value>,
    /// The box's remote-access tunnel as its last state said: connected or not, and the
    /// streams (sessions) open through it; absent while remote access is off on the box.
    #[serde(default)]
    pub remote_access: Option<r58_proto::RemoteAccessState>,
    pub updated_at: i64,
}

/// One telemetry sample as the device published it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetrySample {
    pub stream: String,
    pub seq: i64,
    /// The device's time of the sample (ms since the epoch).
    pub ts: i64,
    pub data: Value,
}

/// `GET /api/v1/devices`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceList {
    pub devices: Vec<Device>,
}

/// `GET /api/v1/devices/<id>`: the device, its latest telemetry and commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceDetail {
    pub device: Device,
    pub telemetry: Vec<TelemetrySample>,
    pub commands: Vec<Command>,
}

/// `GET /api/v1/devices/<id>/telemetry`: oldest first; `truncated` when older samples of
/// those asked for were left out to bound the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryPage {
    pub telemetry: Vec<TelemetrySample>,
    pub truncated: bool,
}

/// `PUT /api/v1/devices/<id>/tags`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTags {
    pub tags: Vec<String>,
}

/// `GET /api/v1/devices/<id>/config`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceConfig {
    pub desired_version: i64,
    pub desired: Value,
    pub reported_version: Option<i64>,
    pub reported: Option<Value>,
    /// Per-key errors the device reported for the desired version.
    pub errors: Option<Value>,
    /// The device reported the desired version.
    pub in_sync: bool,
}

/// `PUT /api/v1/devices/<id>/config`: the desired settings, dotted keys of r58.toml
/// (`"recorder.segment_seconds": 10`), replacing the previous ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    pub settings: Map<String, Value>,
}

/// The answer to `PUT /api/v1/devices/<id>/config`: the new desired version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredVersion {
    pub desired_version: i64,
}
