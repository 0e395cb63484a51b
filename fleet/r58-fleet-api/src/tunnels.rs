//! `GET /api/v1/tunnels`: the boxes whose remote-access tunnel is open now.

use serde::{Deserialize, Serialize};

/// The `Upgrade:` protocol of a port forward ([`crate::paths::device_port`]): after the
/// fleet's `101 Switching Protocols` the connection carries the bytes of one TCP connection
/// to the box's port, both ways, until either side closes.
pub const PORT_UPGRADE: &str = "r58-tunnel";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelList {
    /// Device ids, sorted.
    pub devices: Vec<String>,
}

/// One stream the fleet opened through a box's tunnel, as the audit keeps it
/// (`GET /api/v1/tunnel-sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelSession {
    pub id: String,
    pub device: String,
    /// `ui` (an admin's request to the box's web UI), `guest` (the public guest path) or
    /// `port` (an admin's port forward, `r58-fleet tunnel`).
    pub kind: String,
    /// Who opened it: the operator's name, or `guest <address>`.
    pub opened_by: String,
    /// The box's local port.
    pub port: u16,
    /// What it was for: the HTTP request line (`GET /api/status`), or `port <port>`.
    pub target: String,
    /// Unix ms.
    pub opened_at: i64,
    /// Unix ms; absent while open.
    pub closed_at: Option<i64>,
    pub bytes_to_device: i64,
    pub bytes_from_device: i64,
    /// Why it ended: `closed` (either end), `idle`, `max_duration`, `closed_by_operator`,
    /// `error`, `fleet_stopped` (the fleet process that held it went away), `remote_access_off`
    /// (the fleet-wide switch was turned off).
    pub end_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelSessionList {
    /// Newest first.
    pub sessions: Vec<TunnelSession>,
}

/// The fleet-wide remote-access switch (`GET`/`PUT /api/v1/remote-access`): while it is off,
/// the fleet opens no stream through any box's tunnel (no box UI, no port forward, no
/// public guest path), whatever each box allows. Off until an admin turns it on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteAccessSwitch {
    pub enabled: bool,
    /// The admin who last changed it; absent while it has never been changed.
    pub changed_by: Option<String>,
    /// When (ms since the epoch).
    pub changed_at_ms: Option<i64>,
}

/// The body of `PUT /api/v1/remote-access`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRemoteAccess {
    pub enabled: bool,
}
