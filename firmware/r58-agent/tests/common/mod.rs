//! Test harness of the agent: the shared kit (MQTT, PKI, the agent process) plus the recorder.
#![allow(dead_code)]

pub use r58_testkit::*;

pub fn cmd(id: &str, args: serde_json::Value) -> String {
    serde_json::json!({ "id": id, "args": args, "expires_at": chrono::Utc::now() + chrono::Duration::seconds(60) }).to_string()
}
