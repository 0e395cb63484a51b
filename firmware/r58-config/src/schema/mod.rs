//! The configuration schema shared by every service. Each section lives in its own file.

mod agent;
mod inputs;
mod ota;
mod recorder;
mod remote_access;
mod turn;

pub use agent::*;
pub use inputs::*;
pub use ota::*;
pub use recorder::*;
pub use remote_access::*;
pub use turn::*;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Semantic checks beyond types: each problem as (dotted key, reason).
pub trait Validate {
    fn validate(&self) -> Vec<(String, String)>;
}

/// The whole `/etc/r58/r58.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct R58Config {
    pub api: ApiConfig,
    pub recorder: RecorderConfig,
    pub storage: StorageConfig,
    pub encoder: EncoderConfig,
    pub rtsp: RtspConfig,
    pub hls: HlsConfig,
    pub watchdog: WatchdogConfig,
    pub turn: TurnConfig,
    pub guests: GuestsConfig,
    pub agent: AgentConfig,
    pub ota: OtaConfig,
    pub remote_access: RemoteAccessConfig,
    /// Inputs by id. The id names the RTSP path, the HLS folder and the recording folder.
    pub inputs: BTreeMap<String, InputConfig>,
}

impl Validate for R58Config {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        out.extend(prefixed("api", self.api.validate()));
        out.extend(prefixed("recorder", self.recorder.validate()));
        out.extend(prefixed("storage", self.storage.validate()));
        out.extend(prefixed("encoder", self.encoder.validate()));
        out.extend(prefixed("hls", self.hls.validate()));
        out.extend(prefixed("watchdog", self.watchdog.validate()));
        out.extend(prefixed("turn", self.turn.validate()));
        out.extend(prefixed("guests", self.guests.validate()));
        out.extend(prefixed("agent", self.agent.validate()));
        out.extend(prefixed("ota", self.ota.validate()));
        out.extend(prefixed("remote_access", self.remote_access.validate()));
        for (id, input) in &self.inputs {
            if let Err(reason) = check_input_id(id) {
                out.push((format!("inputs.{id}"), reason));
            }
            out.extend(prefixed(&format!("inputs.{id}"), input.validate()));
        }
        out
    }
}

pub(crate) fn prefixed(prefix: &str, items: Vec<(String, String)>) -> Vec<(String, String)> {
    items
        .into_iter()
        .map(|(k, r)| (format!("{prefix}.{k}"), r))
        .collect()
}

pub(crate) fn range_check<T: PartialOrd + std::fmt::Display>(
    out: &mut Vec<(String, String)>,
    key: &str,
    value: T,
    min: T,
    max: T,
) {
    if value < min || value > max {
        out.push((
            key.to_string(),
            format!("{value} is out of range {min}..={max}"),
        ));
    }
}

/// Ids become path components and URL segments: keep them plain.
pub fn check_input_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !id.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "input id {id:?} must be 1-32 characters of a-z, 0-9, '-' or '_'"
        ))
    }
}
