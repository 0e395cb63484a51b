//! The agent's side of OTA: the engine of `r58-ota` wired to the recorder (is anything
//! recording?) and to the system seam (reboot).

use std::sync::Arc;

use r58_config::R58Config;
use r58_ota::{BoxFuture, Host, HostError, Settings};

use crate::system::System;

pub struct AgentHost {
    pub http: reqwest::Client,
    pub recorder_api: String,
    /// The box's API token (`api.token`) the recorder asks for.
    pub api_token: String,
    pub system: Arc<dyn System>,
}

impl Host for AgentHost {
    fn recording(&self) -> BoxFuture<'_, Result<bool, HostError>> {
        Box::pin(async move {
            crate::recorder_api::recording(
                &self.http,
                &self.recorder_api,
                &self.api_token,
                std::time::Duration::from_secs(3),
            )
            .await
            .map_err(|e| HostError::Recording(Box::new(e)))
        })
    }

    fn reboot(&self) -> BoxFuture<'_, Result<(), HostError>> {
        Box::pin(async move {
            self.system
                .reboot()
                .await
                .map_err(|e| HostError::Reboot(Box::new(e)))
        })
    }
}

pub fn settings(cfg: &R58Config) -> Settings {
    Settings {
        dir: cfg.ota.dir.clone(),
        boot_id_file: cfg.ota.boot_id_file.clone(),
        download_attempts: cfg.ota.download_attempts,
        backoff_max: std::time::Duration::from_secs(u64::from(cfg.ota.backoff_max_seconds)),
        reserve_bytes: u64::from(cfg.ota.reserve_mib) << 20,
        poll: std::time::Duration::from_secs(u64::from(cfg.ota.poll_seconds)),
        build_version: env!("CARGO_PKG_VERSION").into(),
        streaming: cfg.ota.streaming,
        min_version: cfg.ota.min_version.clone(),
        boot_check_wait: std::time::Duration::from_secs(u64::from(cfg.ota.boot_check_wait_seconds)),
    }
}

/// Parses `jobs/next`: an empty payload or `{}` withdraws the job.
pub fn parse_next(payload: &[u8]) -> Result<Option<r58_proto::Job>, (Option<String>, String)> {
    let text = std::str::from_utf8(payload)
        .map_err(|e| (None, format!("not UTF-8: {e}")))?
        .trim();
    if text.is_empty() || text == "{}" {
        return Ok(None);
    }
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| (None, format!("not JSON: {e}")))?;
    let id = v.get("job_id").and_then(|j| j.as_str()).map(str::to_string);
    match &id {
        Some(j) if r58_proto::valid_device_id(j) => {}
        _ => return Err((None, "no usable job_id (1-64 of a-z 0-9 - _)".into())),
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| (id, format!("malformed job: {e}")))
}
