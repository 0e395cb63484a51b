//! The operator CLI's client side: talks to a fleet server's REST API (`--server`,
//! `--token` or `R58_FLEET_URL`, `R58_FLEET_TOKEN`). Human tables by default, `--json` for
//! scripts.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::FleetError;

pub struct Client {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Result<Self, FleetError> {
        if token.is_empty() {
            return Err(FleetError::Usage(
                "no operator token: pass --token or set R58_FLEET_TOKEN".into(),
            ));
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| FleetError::Client {
                url: base.into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        })
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, FleetError> {
        let url = format!("{}{path}", self.base);
        let fail = |reason: String| FleetError::Client {
            url: url.clone(),
            reason,
        };
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().map_err(|e| fail(r58_log::error_chain(&e)))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| fail(e.to_string()))?;
        let v: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            let reason = v["reason"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            return Err(fail(format!("HTTP {}: {reason}", status.as_u16())));
        }
        Ok(v)
    }

    pub fn get(&self, path: &str) -> Result<Value, FleetError> {
        self.call(reqwest::Method::GET, path, None)
    }
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, FleetError> {
        self.call(reqwest::Method::POST, path, Some(body))
    }
    pub fn put(&self, path: &str, body: &Value) -> Result<Value, FleetError> {
        self.call(reqwest::Method::PUT, path, Some(body))
    }

    /// Uploads a file as the request body (no overall timeout: bundles are large).
    pub fn upload(&self, path: &str, file: &std::path::Path) -> Result<Value, FleetError> {
        let url = format!("{}{path}", self.base);
        let fail = |reason: String| FleetError::Client {
            url: url.clone(),
            reason,
        };
        let f = std::fs::File::open(file)
            .map_err(|e| FleetError::Usage(format!("{}: {e}", file.display())))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let resp = http
            .post(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::blocking::Body::new(f))
            .send()
            .map_err(|e| fail(r58_log::error_chain(&e)))?;
        let status = resp.status();
        let v: Value = resp.json().unwrap_or(Value::Null);
        if !status.is_success() {
            let reason = v["reason"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            return Err(fail(format!("HTTP {}: {reason}", status.as_u16())));
        }
        Ok(v)
    }
}

/// `key=value` pairs; a value that parses as JSON is taken as such (`10`, `true`, `"x"`,
/// `[1]`), anything else as a string.
pub fn parse_pairs(pairs: &[String]) -> Result<serde_json::Map<String, Value>, FleetError> {
    let mut out = serde_json::Map::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| FleetError::Usage(format!("{p:?} is not key=value")))?;
        if k.is_empty() {
            return Err(FleetError::Usage(format!("{p:?} has an empty key")));
        }
        out.insert(
            k.to_string(),
            serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string())),
        );
    }
    Ok(out)
}

fn ago(ms: &Value) -> String {
    match ms.as_i64() {
        Some(t) => {
            let s = (crate::db::now_ms() - t).max(0) / 1000;
            if s < 120 {
                format!("{s}s ago")
            } else if s < 7200 {
                format!("{}m ago", s / 60)
            } else {
                format!("{}h ago", s / 3600)
            }
        }
        None => "-".into(),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
}

/// A plain text table: columns as wide as their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out += &line(r.clone());
    }
    out
}

pub fn devices_table(devices: &[Value]) -> String {
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                cell(&d["id"]),
                cell(&d["status"]),
                cell(&d["firmware_version"]),
                cell(&d["booted_slot"]),
                cell(&d["recording"]),
                d["disk_free_mib"]
                    .as_i64()
                    .map_or("-".into(), |m| format!("{:.1} GiB", m as f64 / 1024.0)),
                d["temperature_c"]
                    .as_f64()
                    .map_or("-".into(), |t| format!("{t:.1} C")),
                ago(&d["last_seen"]),
            ]
        })
        .collect();
    table(
        &[
            "DEVICE",
            "STATUS",
            "VERSION",
            "SLOT",
            "RECORDING",
            "DISK FREE",
            "TEMP",
            "LAST SEEN",
        ],
        &rows,
    )
}

/// Sends a command and, unless `wait` is false, follows it to a final state, drawing a
/// progress line. Returns the final command document.
pub fn command(
    c: &Client,
    device: &str,
    name: &str,
    args: Value,
    timeout: Option<u32>,
    wait: bool,
    quiet: bool,
) -> Result<Value, FleetError> {
    let mut body = json!({ "name": name, "args": args });
    if let Some(t) = timeout {
        body["timeout_seconds"] = json!(t);
    }
    let sent = c.post(&format!("/api/v1/devices/{device}/commands"), &body)?;
    let id = sent["command"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !wait {
        return Ok(sent["command"].clone());
    }
    let deadline = Instant::now() + Duration::from_secs(u64::from(timeout.unwrap_or(300)) + 10);
    let mut last = String::new();
    loop {
        let cmd = c.get(&format!("/api/v1/commands/{id}"))?["command"].clone();
        let state = cmd["state"].as_str().unwrap_or("?").to_string();
        let progress = cmd["progress"].as_i64().unwrap_or(0).clamp(0, 100);
        let line = format!(
            "{name} on {device}: [{:<20}] {progress:>3}% {state}",
            "#".repeat((progress / 5) as usize)
        );
        if !quiet && line != last {
            eprint!("\r{line}");
            let _ = std::io::stderr().flush();
            last = line;
        }
        if matches!(
            state.as_str(),
            "succeeded" | "failed" | "rejected" | "expired"
        ) || Instant::now() > deadline
        {
            if !quiet {
                eprintln!();
            }
            return Ok(cmd);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_tables() {
        let m = parse_pairs(&["a.b=10".into(), "c=x y".into(), "d=true".into()]).unwrap();
        assert_eq!(Value::Object(m), json!({"a.b": 10, "c": "x y", "d": true}));
        assert!(parse_pairs(&["nokey".into()]).is_err());
        assert!(parse_pairs(&["=1".into()]).is_err());
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }
}
