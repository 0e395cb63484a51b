//! Where each route is: the paths a client asks for, built from ids and queries with every
//! segment percent-encoded, and the queries the server reads.

use serde::{Deserialize, Serialize};

/// The routes' common prefix.
pub const API: &str = "/api/v1";

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `?k=v&…` of the pairs that have a value, or nothing.
fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<String>)>) -> String {
    let q: Vec<String> = pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(&v))))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// The filters of `GET /api/v1/devices`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    pub status: Option<String>,
    pub tag: Option<String>,
    /// Firmware version.
    pub version: Option<String>,
    /// A substring of the id.
    pub q: Option<String>,
}

/// The query of `GET /api/v1/devices/<id>/telemetry`: samples after `since` (ms,
/// exclusive), of one stream, at most `limit` (1..=5000, 300 when not given).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryQuery {
    pub stream: Option<String>,
    pub since: Option<i64>,
    pub limit: Option<i64>,
}

/// What an operator can do to a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutAction {
    Pause,
    Resume,
    Abort,
}

impl RolloutAction {
    pub const ALL: [RolloutAction; 3] = [Self::Pause, Self::Resume, Self::Abort];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Abort => "abort",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

pub fn devices(q: &DeviceQuery) -> String {
    format!(
        "{API}/devices{}",
        query([
            ("status", q.status.clone()),
            ("tag", q.tag.clone()),
            ("version", q.version.clone()),
            ("q", q.q.clone()),
        ])
    )
}

pub fn device(id: &str) -> String {
    format!("{API}/devices/{}", encode(id))
}

pub fn device_telemetry(id: &str, q: &TelemetryQuery) -> String {
    format!(
        "{}/telemetry{}",
        device(id),
        query([
            ("stream", q.stream.clone()),
            ("since", q.since.map(|s| s.to_string())),
            ("limit", q.limit.map(|l| l.to_string())),
        ])
    )
}

pub fn device_tags(id: &str) -> String {
    format!("{}/tags", device(id))
}

pub fn device_config(id: &str) -> String {
    format!("{}/config", device(id))
}

pub fn device_commands(id: &str) -> String {
    format!("{}/commands", device(id))
}

pub fn commands() -> String {
    format!("{API}/commands")
}

pub fn command(id: &str) -> String {
    format!("{API}/commands/{}", encode(id))
}

pub fn bundles() -> String {
    format!("{API}/bundles")
}

pub fn rollouts() -> String {
    format!("{API}/rollouts")
}

pub fn rollout(id: &str) -> String {
    format!("{API}/rollouts/{}", encode(id))
}

pub fn rollout_action(id: &str, action: RolloutAction) -> String {
    format!("{}/{}", rollout(id), action.as_str())
}

pub fn whoami() -> String {
    format!("{API}/whoami")
}

pub fn session() -> String {
    format!("{API}/session")
}

pub fn events() -> String {
    format!("{API}/events")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_queries_are_encoded() {
        assert_eq!(device("a b/c"), "/api/v1/devices/a%20b%2Fc");
        assert_eq!(devices(&DeviceQuery::default()), "/api/v1/devices");
        let q = DeviceQuery {
            tag: Some("venue&a".into()),
            version: Some("1.2".into()),
            ..Default::default()
        };
        assert_eq!(devices(&q), "/api/v1/devices?tag=venue%26a&version=1.2");
        let t = TelemetryQuery {
            since: Some(5),
            limit: Some(100),
            ..Default::default()
        };
        assert_eq!(
            device_telemetry("r58-1", &t),
            "/api/v1/devices/r58-1/telemetry?since=5&limit=100"
        );
        assert_eq!(
            rollout_action("r1", RolloutAction::Resume),
            "/api/v1/rollouts/r1/resume"
        );
        assert_eq!(RolloutAction::parse("abort"), Some(RolloutAction::Abort));
        assert_eq!(RolloutAction::parse("stop"), None);
    }
}

/// The fleet-wide remote-access switch.
pub fn remote_access() -> String {
    format!("{API}/remote-access")
}

/// `GET /api/v1/devices/<id>/port/<port>` with `Upgrade:` [`crate::tunnels::PORT_UPGRADE`]:
/// the connection becomes a byte stream to `127.0.0.1:<port>` on the box, through its tunnel.
pub fn device_port(id: &str, port: u16) -> String {
    format!("{API}/devices/{}/port/{port}", encode(id))
}
