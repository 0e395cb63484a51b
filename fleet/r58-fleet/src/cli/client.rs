//! The operator CLI's client side: talks to a fleet server's REST API (`--server`,
//! `--token` or `R58_FLEET_URL`, `R58_FLEET_TOKEN`). Human tables by default, `--json` for
//! scripts.

use std::io::Write;
use std::time::{Duration, Instant};

use r58_fleet_api::{paths, Command, CommandAnswer, Device, ErrorBody, SendCommand};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and reads the answer as `T`; an error answer becomes a
    /// [`FleetError::Client`] with the status and the server's reason.
    fn send<T: DeserializeOwned>(
        &self,
        url: &str,
        req: reqwest::blocking::RequestBuilder,
    ) -> Result<T, FleetError> {
        let fail = |reason: String| FleetError::Client {
            url: url.to_string(),
            reason,
        };
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .map_err(|e| fail(r58_log::error_chain(&e)))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            let reason = serde_json::from_str::<ErrorBody>(&text)
                .map(|e| e.reason)
                .unwrap_or(text);
            return Err(fail(format!("HTTP {}: {reason}", status.as_u16())));
        }
        let body = if text.is_empty() { "null" } else { &text };
        serde_json::from_str(body).map_err(|e| fail(format!("the answer does not read: {e}")))
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, FleetError> {
        let url = self.url(path);
        self.send(&url, self.http.get(&url))
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, FleetError> {
        let url = self.url(path);
        self.send(&url, self.http.post(&url).json(body))
    }

    /// A POST without a body (an action on a resource).
    pub fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, FleetError> {
        let url = self.url(path);
        self.send(&url, self.http.post(&url))
    }

    pub fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, FleetError> {
        let url = self.url(path);
        self.send(&url, self.http.put(&url).json(body))
    }

    /// Uploads a file as the request body (no overall timeout: bundles are large).
    pub fn upload<T: DeserializeOwned>(
        &self,
        path: &str,
        file: &std::path::Path,
    ) -> Result<T, FleetError> {
        let url = self.url(path);
        let f = std::fs::File::open(file)
            .map_err(|e| FleetError::Usage(format!("{}: {e}", file.display())))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .map_err(|e| FleetError::Client {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let req = http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::blocking::Body::new(f));
        self.send(&url, req)
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

fn ago(ms: Option<i64>) -> String {
    match ms {
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

fn cell(v: Option<&str>) -> String {
    v.unwrap_or("-").to_string()
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

pub fn devices_table(devices: &[Device]) -> String {
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.status.clone(),
                cell(d.firmware_version.as_deref()),
                cell(d.booted_slot.as_deref()),
                d.recording
                    .map_or("-", |r| if r { "yes" } else { "no" })
                    .to_string(),
                d.disk_free_mib
                    .map_or("-".into(), |m| format!("{:.1} GiB", m as f64 / 1024.0)),
                d.temperature_c.map_or("-".into(), |t| format!("{t:.1} C")),
                ago(d.last_seen),
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
/// progress line. Returns the command as last read.
pub fn command(
    c: &Client,
    device: &str,
    send: &SendCommand,
    wait: bool,
    quiet: bool,
) -> Result<Command, FleetError> {
    let sent: CommandAnswer = c.post(&paths::device_commands(device), send)?;
    if !wait {
        return Ok(sent.command);
    }
    let timeout = send.timeout_seconds.unwrap_or(300);
    let deadline = Instant::now() + Duration::from_secs(u64::from(timeout) + 10);
    let path = paths::command(&sent.command.id);
    let mut last = String::new();
    loop {
        let cmd = c.get::<CommandAnswer>(&path)?.command;
        let progress = cmd.progress.clamp(0, 100);
        let line = format!(
            "{} on {device}: [{:<20}] {progress:>3}% {}",
            send.name,
            "#".repeat((progress / 5) as usize),
            cmd.state
        );
        if !quiet && line != last {
            eprint!("\r{line}");
            let _ = std::io::stderr().flush();
            last = line;
        }
        if cmd.is_final() || Instant::now() > deadline {
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
    use serde_json::json;

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
