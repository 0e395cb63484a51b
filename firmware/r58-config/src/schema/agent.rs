//! `[agent]`: the MQTT device agent.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{range_check, Validate};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Device id = MQTT client id = CN of the device certificate. Required by the agent.
    pub device_id: String,
    /// `mqtts://host:8883`, or `mqtt://host:1883` only with `allow_plain`.
    pub broker: String,
    /// Plain TCP without TLS: development only.
    pub allow_plain: bool,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub keepalive_seconds: u32,
    pub reconnect_max_seconds: u32,
    /// Seconds between telemetry samples (also settable through the twin).
    pub telemetry_interval_seconds: u32,
    /// Agent state on the data partition: offline queue, command ids, session counter.
    pub state_dir: PathBuf,
    /// Bound of the offline queue; beyond it the oldest messages are dropped (and counted).
    pub queue_max_messages: u32,
    /// The recorder's local HTTP API.
    pub recorder_api: String,
    /// READY to systemd after the first connection, or after this long offline.
    pub ready_timeout_seconds: u32,
    /// Units `service.restart` may restart.
    pub restartable_units: Vec<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            device_id: String::new(),
            broker: "mqtts://fleet.example.com:8883".into(),
            allow_plain: false,
            ca_file: PathBuf::from("/etc/r58/pki/fleet-ca.pem"),
            cert_file: PathBuf::from("/data/agent/device.crt"),
            key_file: PathBuf::from("/data/agent/device.key"),
            keepalive_seconds: 30,
            reconnect_max_seconds: 60,
            telemetry_interval_seconds: 10,
            state_dir: PathBuf::from("/data/agent"),
            queue_max_messages: 10_000,
            recorder_api: "http://127.0.0.1:8000".into(),
            ready_timeout_seconds: 30,
            restartable_units: vec!["r58-recorder.service".into(), "r58-agent.service".into()],
        }
    }
}

impl Validate for AgentConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        range_check(
            &mut out,
            "keepalive_seconds",
            self.keepalive_seconds,
            5,
            3600,
        );
        range_check(
            &mut out,
            "reconnect_max_seconds",
            self.reconnect_max_seconds,
            1,
            3600,
        );
        range_check(
            &mut out,
            "telemetry_interval_seconds",
            self.telemetry_interval_seconds,
            1,
            3600,
        );
        range_check(
            &mut out,
            "queue_max_messages",
            self.queue_max_messages,
            10,
            1_000_000,
        );
        range_check(
            &mut out,
            "ready_timeout_seconds",
            self.ready_timeout_seconds,
            1,
            600,
        );
        let tls = self.broker.starts_with("mqtts://");
        let plain = self.broker.starts_with("mqtt://");
        if !tls && !plain {
            out.push((
                "broker".into(),
                format!("{:?} is not an mqtts:// or mqtt:// URL", self.broker),
            ));
        } else if plain && !self.allow_plain {
            out.push((
                "broker".into(),
                "plain mqtt:// needs allow_plain = true (development only)".into(),
            ));
        }
        if !self.device_id.is_empty()
            && !(self.device_id.len() <= 64
                && self.device_id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                }))
        {
            out.push((
                "device_id".into(),
                "use 1-64 characters of a-z, 0-9, '-', '_'".into(),
            ));
        }
        out
    }
}
