//! Remote commands (`cmd/{name}`): validation, at-most-once, expiry, and the commands
//! themselves. Each produces `cmd/status` documents: accepted → in_progress → succeeded |
//! failed, or rejected with the reason.

use std::sync::Arc;

use chrono::Utc;
use r58_config::R58Config;
use r58_proto::{CmdState, CmdStatus, Command};
use serde_json::{json, Value};

use crate::system::System;

pub const NAMES: &[&str] = &[
    "ping",
    "record.start",
    "record.stop",
    "service.restart",
    "reboot",
    "logs.tail",
    "config.get",
    "ota.cancel",
    "ota.status",
    "guest.invite",
];

pub fn status(
    id: &str,
    name: &str,
    state: CmdState,
    progress: u8,
    message: Option<String>,
    result: Option<Value>,
) -> CmdStatus {
    CmdStatus {
        id: id.into(),
        name: name.into(),
        state,
        progress,
        message,
        result,
        ts: Utc::now(),
    }
}

/// What a `logs.tail` result may hold: the newest lines that fit (each cut to
/// [`LOG_LINE_BYTES`]); the rest are counted in `omitted`.
pub const LOGS_TAIL_BYTES: usize = 128 * 1024;
pub const LOG_LINE_BYTES: usize = 2048;

/// The newest `lines` whose JSON strings fit in `budget` bytes, each cut to
/// [`LOG_LINE_BYTES`]; and how many older lines did not fit.
pub fn tail_within(lines: Vec<String>, budget: usize) -> (Vec<String>, usize) {
    let mut kept = Vec::new();
    let mut used = 0;
    let total = lines.len();
    for mut line in lines.into_iter().rev() {
        if line.len() > LOG_LINE_BYTES {
            let mut end = LOG_LINE_BYTES;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push_str(" [cut]");
        }
        // The line as a JSON string, with its comma.
        let cost = serde_json::to_string(&line).map_or(line.len(), |j| j.len()) + 1;
        if used + cost > budget {
            break;
        }
        used += cost;
        kept.push(line);
    }
    kept.reverse();
    let omitted = total - kept.len();
    (kept, omitted)
}

/// A status whose message does not fit [`crate::mqtt::MAX_MESSAGE`] becomes a failed status
/// that says so: the operator learns why, and the oversized one never blocks the outbox.
pub fn bounded(st: CmdStatus, topic: &str) -> CmdStatus {
    let len = serde_json::to_vec(&st).map_or(usize::MAX, |v| v.len());
    if crate::mqtt::fits(topic, len) {
        return st;
    }
    tracing::error!(id = %st.id, command = %st.name, bytes = len, "command status over the size limit");
    CmdStatus {
        state: CmdState::Failed,
        message: Some(format!(
            "the result ({len} bytes) is over the {} byte message limit",
            crate::mqtt::MAX_MESSAGE
        )),
        result: None,
        ..st
    }
}

/// Why a command is refused before it runs (with the id when one could be read).
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// Rejected with a status: the id is known.
    Rejected { id: String, reason: String },
    /// No id to answer to: only logged.
    Unanswerable(String),
}

/// Parses a command payload for `name`, checks the name and the expiry.
pub fn parse(name: &str, payload: &[u8]) -> Result<Command, Refusal> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| Refusal::Unanswerable(format!("not JSON: {e}")))?;
    let id = match value.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() && id.len() <= 128 => id.to_string(),
        _ => return Err(Refusal::Unanswerable("no usable \"id\"".into())),
    };
    let cmd: Command = serde_json::from_value(value).map_err(|e| Refusal::Rejected {
        id: id.clone(),
        reason: format!("malformed: {e}"),
    })?;
    if !NAMES.contains(&name) {
        return Err(Refusal::Rejected {
            id,
            reason: format!("unknown command {name:?}"),
        });
    }
    if let Some(exp) = cmd.expires_at {
        if exp <= Utc::now() {
            return Err(Refusal::Rejected {
                id,
                reason: format!("expired at {exp}"),
            });
        }
    }
    Ok(cmd)
}

pub struct Ctx {
    pub cfg: R58Config,
    pub system: Arc<dyn System>,
    pub http: reqwest::Client,
    pub ota: Option<tokio::sync::mpsc::Sender<r58_ota::In>>,
}

async fn ota(
    ctx: &Ctx,
    make: impl FnOnce(tokio::sync::oneshot::Sender<Result<Value, String>>) -> r58_ota::In,
) -> Result<Value, String> {
    let tx = ctx
        .ota
        .as_ref()
        .ok_or("OTA is disabled on this device (ota.enabled)")?;
    let (reply, wait) = tokio::sync::oneshot::channel();
    tx.send(make(reply))
        .await
        .map_err(|_| "the OTA engine stopped".to_string())?;
    wait.await
        .map_err(|_| "the OTA engine stopped".to_string())?
}

/// The configuration as `config.get` answers it: no secret leaves the box (the API token,
/// the passwords in camera URLs).
fn redacted(cfg: &R58Config) -> Value {
    let mut cfg = cfg.clone();
    for input in cfg.inputs.values_mut() {
        *input = input.redacted();
    }
    let mut v = serde_json::to_value(&cfg).unwrap_or(Value::Null);
    if !cfg.api.token.is_empty() {
        v["api"]["token"] = json!("<redacted>");
    }
    v
}

/// `{"inputs": […]}` of a record command's arguments (all inputs without it).
fn selection(args: &Value) -> Value {
    match args.get("inputs") {
        Some(inputs) => json!({ "inputs": inputs }),
        None => json!({}),
    }
}

/// POSTs `body` to the recorder's API; its answer, or why not.
async fn recorder(ctx: &Ctx, path: &str, body: &Value) -> Result<Value, String> {
    let url = format!("{}{path}", ctx.cfg.agent.recorder_api.trim_end_matches('/'));
    let resp = ctx
        .http
        .post(&url)
        .bearer_auth(&ctx.cfg.api.token)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("recorder unreachable: {e}"))?;
    let code = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if code.is_success() {
        Ok(v)
    } else {
        Err(format!(
            "recorder answered {code}: {}",
            v["reason"].as_str().unwrap_or("")
        ))
    }
}

/// Runs a parsed command. `before_reboot` is awaited before a reboot (it publishes
/// `rebooting`).
pub async fn execute<F, Fut>(
    ctx: &Ctx,
    name: &str,
    cmd: &Command,
    before_reboot: F,
) -> Result<Value, String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    match name {
        "ping" => Ok(json!({ "pong": true, "ts": Utc::now() })),
        "record.start" => recorder(ctx, "/api/recordings/start", &selection(&cmd.args)).await,
        "record.stop" => recorder(ctx, "/api/recordings/stop", &selection(&cmd.args)).await,
        // An invite for a remote guest: `{"name", "expires_in_seconds"?, "uses"?}` → the
        // invite and the guest page's link (the recorder checks the arguments).
        "guest.invite" => recorder(ctx, "/api/guests/invites", &cmd.args).await,
        "service.restart" => {
            let unit = cmd
                .args
                .get("unit")
                .and_then(Value::as_str)
                .unwrap_or("r58-recorder.service");
            if !ctx.cfg.agent.restartable_units.iter().any(|u| u == unit) {
                return Err(format!("unit {unit:?} is not in agent.restartable_units"));
            }
            ctx.system
                .restart_unit(unit)
                .await
                .map(|_| json!({ "restarted": unit }))
                .map_err(|e| e.to_string())
        }
        "reboot" => {
            before_reboot().await;
            ctx.system
                .reboot()
                .await
                .map(|_| json!({ "rebooting": true }))
                .map_err(|e| e.to_string())
        }
        "logs.tail" => {
            let unit = cmd
                .args
                .get("unit")
                .and_then(Value::as_str)
                .unwrap_or("r58-recorder.service");
            let lines = cmd
                .args
                .get("lines")
                .and_then(Value::as_u64)
                .unwrap_or(100)
                .clamp(1, 1000) as u32;
            if !unit
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
            {
                return Err(format!("bad unit name {unit:?}"));
            }
            ctx.system
                .journal_tail(unit, lines)
                .await
                .map(|l| {
                    let (lines, omitted) = tail_within(l, LOGS_TAIL_BYTES);
                    json!({ "unit": unit, "lines": lines, "omitted": omitted })
                })
                .map_err(|e| e.to_string())
        }
        "config.get" => Ok(redacted(&ctx.cfg)),
        "ota.cancel" => ota(ctx, r58_ota::In::Cancel).await,
        "ota.status" => ota(ctx, r58_ota::In::Status).await,
        other => Err(format!("unknown command {other:?}")),
    }
}

/// Whether a command reports `in_progress` before it finishes.
pub fn is_long(name: &str) -> bool {
    matches!(
        name,
        "record.start" | "record.stop" | "service.restart" | "reboot" | "logs.tail"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_get_sends_no_secret() {
        let mut cfg = R58Config::default();
        cfg.api.token = "api-secret-token".into();
        cfg.inputs.insert(
            "cam".into(),
            r58_config::InputConfig {
                kind: r58_config::InputKind::Rtsp,
                url: Some("rtsp://admin:cam-secret@10.0.0.5/ch1".into()),
                ..Default::default()
            },
        );
        let text = redacted(&cfg).to_string();
        assert!(!text.contains("api-secret-token"), "{text}");
        assert!(!text.contains("cam-secret"), "{text}");
        let v = redacted(&cfg);
        assert_eq!(v["api"]["token"], "<redacted>");
        assert_eq!(
            v["inputs"]["cam"]["url"],
            "rtsp://admin:redacted@10.0.0.5/ch1"
        );
    }

    #[test]
    fn a_long_tail_keeps_the_newest_lines_that_fit() {
        let lines: Vec<String> = (0..1000)
            .map(|i| format!("{i:04} {}", "x".repeat(3000)))
            .collect();
        let (kept, omitted) = tail_within(lines, LOGS_TAIL_BYTES);
        assert!(!kept.is_empty());
        assert_eq!(kept.len() + omitted, 1000);
        assert!(kept.last().unwrap().starts_with("0999 "), "newest kept");
        assert!(kept
            .iter()
            .all(|l| l.len() <= LOG_LINE_BYTES + 6 && l.ends_with("[cut]")));
        assert!(serde_json::to_vec(&kept).unwrap().len() <= LOGS_TAIL_BYTES + 2);
        // Multi-byte characters are cut on a character boundary.
        let (kept, _) = tail_within(vec!["é".repeat(LOG_LINE_BYTES)], LOGS_TAIL_BYTES);
        assert!(kept[0].len() <= LOG_LINE_BYTES + 6);
        // A short tail is whole.
        let (kept, omitted) = tail_within(vec!["a".into(), "b".into()], LOGS_TAIL_BYTES);
        assert_eq!((kept, omitted), (vec!["a".to_string(), "b".to_string()], 0));
    }

    #[test]
    fn an_oversized_status_becomes_a_failure_that_says_why() {
        let topic = "r58/v1/box/cmd/status";
        let big = status(
            "c1",
            "logs.tail",
            CmdState::Succeeded,
            100,
            None,
            Some(json!({ "lines": ["y".repeat(crate::mqtt::MAX_MESSAGE)] })),
        );
        let out = bounded(big, topic);
        assert_eq!(out.state, CmdState::Failed);
        assert!(out.result.is_none());
        assert!(out.message.unwrap().contains("message limit"));
        assert_eq!(out.id, "c1");
        let small = status(
            "c2",
            "ping",
            CmdState::Succeeded,
            100,
            None,
            Some(json!({})),
        );
        assert_eq!(bounded(small.clone(), topic), small);
    }

    #[test]
    fn refusals_carry_the_id_when_there_is_one() {
        assert!(matches!(
            parse("ping", b"{nope"),
            Err(Refusal::Unanswerable(_))
        ));
        assert!(matches!(
            parse("ping", br#"{"args":{}}"#),
            Err(Refusal::Unanswerable(_))
        ));
        let past = (Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
        match parse(
            "ping",
            format!(r#"{{"id":"a","expires_at":"{past}"}}"#).as_bytes(),
        ) {
            Err(Refusal::Rejected { id, reason }) => {
                assert!(id == "a" && reason.contains("expired"))
            }
            other => panic!("{other:?}"),
        }
        match parse("self.destruct", br#"{"id":"b"}"#) {
            Err(Refusal::Rejected { reason, .. }) => assert!(reason.contains("unknown command")),
            other => panic!("{other:?}"),
        }
        match parse("ping", br#"{"id":"c","expires_at":17}"#) {
            Err(Refusal::Rejected { reason, .. }) => assert!(reason.contains("malformed")),
            other => panic!("{other:?}"),
        }
        assert!(parse("ping", br#"{"id":"d"}"#).is_ok());
    }
}
