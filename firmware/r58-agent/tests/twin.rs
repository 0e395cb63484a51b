//! Desired config through the real broker: applied keys and version reported, the drop-in
//! written and the recorder restarted; invalid keys reported per key with nothing applied.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn desired_config_is_applied_or_refused_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(&pki, broker.port, "fleet-observer", "fleet", &["r58/v1/#"]);
    let agent = AgentProc::start(&dir.path().join("t"), &pki, broker.port, "r58-t", "");
    obs.wait_json(
        "r58/v1/r58-t/state",
        Duration::from_secs(15),
        "online",
        |v| v["status"] == "online",
    );

    let desired = json!({"version": 1, "settings": {"encoder.bitrate_kbps": 8000, "agent.telemetry_interval_seconds": 2}});
    obs.publish("r58/v1/r58-t/twin/desired", desired.to_string(), true);
    let rep = obs.wait_json(
        "r58/v1/r58-t/twin/reported",
        Duration::from_secs(10),
        "v1",
        |v| v["version"] == 1,
    );
    assert_eq!(rep["errors"], json!({}));
    assert_eq!(rep["applied"]["encoder.bitrate_kbps"], 8000);
    let text = std::fs::read_to_string(agent.dir.join("conf.d/50-remote.toml")).unwrap();
    assert!(
        text.contains("bitrate_kbps = 8000") && text.contains("telemetry_interval_seconds = 2"),
        "{text}"
    );
    assert!(agent
        .system_calls()
        .contains("systemctl restart --no-block r58-recorder.service"));

    let bad = json!({"version": 2, "settings": {"encoder.bitrate_kbps": 1, "api.token": "x", "encoder.gop_seconds": 2}});
    obs.publish("r58/v1/r58-t/twin/desired", bad.to_string(), true);
    let rep = obs.wait_json(
        "r58/v1/r58-t/twin/reported",
        Duration::from_secs(10),
        "v2",
        |v| v["version"] == 2,
    );
    assert!(
        rep["errors"]["encoder.bitrate_kbps"]
            .as_str()
            .unwrap()
            .contains("out of range"),
        "{rep}"
    );
    assert_eq!(rep["errors"]["api.token"], "not settable remotely");
    assert!(rep["errors"].get("encoder.gop_seconds").is_none());
    assert_eq!(
        rep["applied"]["encoder.bitrate_kbps"], 8000,
        "still the v1 settings"
    );
    let text2 = std::fs::read_to_string(agent.dir.join("conf.d/50-remote.toml")).unwrap();
    assert_eq!(text, text2, "nothing half-applied");
}
