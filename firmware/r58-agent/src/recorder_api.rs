//! The recorder's status as the agent reads it (telemetry, "is anything recording?"): every
//! route of the recorder's API but `/healthz` needs the box's API token.

use std::time::Duration;

use serde_json::Value;

/// `GET <api>/api/status` with the token; an answer other than 2xx is an error.
pub async fn status(
    client: &reqwest::Client,
    api: &str,
    token: &str,
    timeout: Duration,
) -> Result<Value, String> {
    let url = format!("{}/api/status", api.trim_end_matches('/'));
    let resp = client
        .get(&url)
        .bearer_auth(token)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("recorder unreachable: {e}"))?;
    let code = resp.status();
    if !code.is_success() {
        return Err(format!("recorder status: HTTP {code}"));
    }
    resp.json()
        .await
        .map_err(|e| format!("recorder status: {e}"))
}
