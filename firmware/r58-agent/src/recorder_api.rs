//! The recorder's status as the agent reads it (telemetry, "is anything recording?"): every
//! route of the recorder's API but `/healthz` needs the box's API token.

use std::time::Duration;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum RecorderApiError {
    #[error("recorder unreachable at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("recorder status at {url}: HTTP {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("recorder status at {url}: {source}")]
    Body {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("recorder status at {url} has no inputs")]
    NoInputs { url: String },
}

/// `GET <api>/api/status` with the token; an answer other than 2xx is an error.
pub async fn status(
    client: &reqwest::Client,
    api: &str,
    token: &str,
    timeout: Duration,
) -> Result<Value, RecorderApiError> {
    let url = format!("{}/api/status", api.trim_end_matches('/'));
    let resp = match client
        .get(&url)
        .bearer_auth(token)
        .timeout(timeout)
        .send()
        .await
    {
        Ok(r) => r,
        Err(source) => return Err(RecorderApiError::Unreachable { url, source }),
    };
    let status = resp.status();
    if !status.is_success() {
        return Err(RecorderApiError::Status { url, status });
    }
    resp.json()
        .await
        .map_err(|source| RecorderApiError::Body { url, source })
}

/// Whether any input records now, from the recorder's status.
pub async fn recording(
    client: &reqwest::Client,
    api: &str,
    token: &str,
    timeout: Duration,
) -> Result<bool, RecorderApiError> {
    let v = status(client, api, token, timeout).await?;
    let inputs = v["inputs"]
        .as_object()
        .ok_or_else(|| RecorderApiError::NoInputs {
            url: api.to_string(),
        })?;
    Ok(inputs
        .values()
        .any(|i| i["recording"]["recording"].as_bool() == Some(true)))
}
