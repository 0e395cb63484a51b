//! The fleet service end to end against the real Mosquitto (production config and authorization plugin),
//! the real agent (certificates from `r58-fleet pki`), and a real database — SQLite and
//! PostgreSQL through the same code: devices appear, go lost and come back; commands
//! round-trip; desired config reaches the device and the reported version comes back;
//! every endpoint refuses missing, wrong and revoked tokens; bad input is a 4xx.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use r58_fleet_api::paths::{DeviceQuery, TelemetryQuery};
use r58_fleet_api::{
    CommandAnswer, CommandsSent, DesiredVersion, DeviceConfig, DeviceList, SendCommand, SendToMany,
    SetConfig, SetTags, Target, TelemetryPage,
};
use serde_json::{json, Value};

fn scenario(db_url: &dyn Fn(&std::path::Path) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let broker = Broker::start_with_certs(dir.path(), &pki);
    let fleet = Fleet::start(
        &dir.path().join("fleet"),
        &pki,
        broker.port,
        &db_url(dir.path()),
        "fleet-test-a",
    );
    let token = fleet.operator("alice");

    // Authentication on every operator endpoint.
    for path in [
        "/api/v1/devices",
        "/api/v1/devices/x",
        "/api/v1/commands/x",
        "/api/v1/devices/x/config",
        "/metrics",
        "/api/v1/events",
    ] {
        assert_eq!(
            call("GET", &fleet.url(path), None, None).0,
            401,
            "{path} without a token"
        );
        assert_eq!(
            call("GET", &fleet.url(path), Some("wrong"), None).0,
            401,
            "{path} with a wrong token"
        );
    }
    assert_eq!(
        call(
            "POST",
            &fleet.url("/api/v1/devices/x/commands"),
            None,
            Some(json!({"name": "ping"}))
        )
        .0,
        401
    );
    assert_eq!(
        call("GET", &fleet.url("/healthz"), None, None).0,
        200,
        "health is public"
    );

    // A device appears with its state and telemetry figures.
    let mut agent = agent_with_bundle(dir.path(), &pki, broker.port, "r58-0001");
    let d = wait_device(&fleet, &token, "r58-0001", "device online", |d| {
        d.status == "online" && d.disk_total_mib.is_some()
    });
    assert!(!d.device.firmware_version.unwrap().is_empty());
    let session = d.device.session;
    let by_status = |status: &str| -> DeviceList {
        let q = DeviceQuery {
            status: Some(status.into()),
            ..Default::default()
        };
        api_get(&fleet, &token, &paths::devices(&q))
    };
    assert_eq!(by_status("online").devices.len(), 1);
    assert!(by_status("lost").devices.is_empty());
    let q = TelemetryQuery {
        stream: Some("system".into()),
        ..Default::default()
    };
    let tel: TelemetryPage = api_get(&fleet, &token, &paths::device_telemetry("r58-0001", &q));
    assert!(!tel.telemetry.is_empty() && !tel.truncated, "{tel:?}");

    // A command round-trips, with the device's answer.
    let ping = |name: &str| SendCommand {
        name: name.into(),
        args: Value::Null,
        timeout_seconds: None,
    };
    let commands = paths::device_commands("r58-0001");
    let (code, sent) = call(
        "POST",
        &fleet.url(&commands),
        Some(&token),
        Some(serde_json::to_value(ping("ping")).unwrap()),
    );
    assert_eq!(code, 202, "{sent}");
    let sent: CommandAnswer = serde_json::from_value(sent).unwrap();
    assert_eq!(sent.command.state, "sent");
    assert_eq!(sent.command.created_by.as_deref(), Some("alice"));
    let done = wait_command(&fleet, &token, &sent.command.id);
    assert_eq!(
        (done.state.as_str(), done.progress),
        ("succeeded", 100),
        "{done:?}"
    );
    // One the agent does not know is rejected by it, with its reason.
    let sent: CommandAnswer = api_send(&fleet, &token, "POST", &commands, &ping("self.destruct"));
    let done = wait_command(&fleet, &token, &sent.command.id);
    assert_eq!(done.state, "rejected", "{done:?}");
    assert!(
        done.message
            .as_deref()
            .unwrap_or_default()
            .contains("unknown"),
        "{done:?}"
    );

    // Desired config reaches the device; the reported version comes back.
    let config = paths::device_config("r58-0001");
    let set = |settings: Value| -> i64 {
        let body = SetConfig {
            settings: settings.as_object().unwrap().clone(),
        };
        let v: DesiredVersion = api_send(&fleet, &token, "PUT", &config, &body);
        v.desired_version
    };
    let reported = |version: i64| -> DeviceConfig {
        wait_until(Duration::from_secs(20), "reported config", || {
            let c: DeviceConfig = api_get(&fleet, &token, &config);
            (c.reported_version == Some(version)).then_some(c)
        })
    };
    let cfg = reported(set(json!({"encoder.bitrate_kbps": 8000})));
    assert!(cfg.in_sync, "{cfg:?}");
    assert_eq!(cfg.reported.unwrap()["encoder.bitrate_kbps"], 8000);
    // A value the device refuses comes back as a per-key error.
    let cfg = reported(set(json!({"encoder.bitrate_kbps": 1})));
    assert!(
        cfg.errors.as_ref().unwrap()["encoder.bitrate_kbps"].is_string(),
        "{cfg:?}"
    );

    // Bad input: 4xx with a reason.
    for (method, path, body, want) in [
        (
            "POST",
            "/api/v1/devices/r58-0001/commands",
            json!({"name": "a/b"}),
            400,
        ),
        (
            "POST",
            "/api/v1/devices/r58-0001/commands",
            json!({"name": "ping", "args": [1]}),
            400,
        ),
        (
            "POST",
            "/api/v1/devices/r58-0001/commands",
            json!({"name": "ping", "extra": 1}),
            400,
        ),
        (
            "POST",
            "/api/v1/devices/nope/commands",
            json!({"name": "ping"}),
            404,
        ),
        (
            "PUT",
            "/api/v1/devices/r58-0001/config",
            json!({"settings": {"a..b": 1}}),
            400,
        ),
        (
            "PUT",
            "/api/v1/devices/r58-0001/config",
            json!({"settings": 3}),
            400,
        ),
        (
            "PUT",
            "/api/v1/devices/r58-0001/tags",
            json!({"tags": ["bad tag"]}),
            400,
        ),
    ] {
        let (code, v) = call(method, &fleet.url(path), Some(&token), Some(body.clone()));
        assert_eq!(code, want, "{method} {path} {body}: {v}");
        assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    }
    assert_eq!(
        call(
            "GET",
            &fleet.url("/api/v1/devices/r58-0001/telemetry?limit=0"),
            Some(&token),
            None
        )
        .0,
        400
    );
    // Tags, and the filter on them.
    let tags = SetTags {
        tags: vec!["venue-a".into(), "canary".into()],
    };
    let (code, _) = call(
        "PUT",
        &fleet.url(&paths::device_tags("r58-0001")),
        Some(&token),
        Some(serde_json::to_value(&tags).unwrap()),
    );
    assert_eq!(code, 204);
    let by_tag = |tag: &str| -> Vec<String> {
        let q = DeviceQuery {
            tag: Some(tag.into()),
            ..Default::default()
        };
        let l: DeviceList = api_get(&fleet, &token, &paths::devices(&q));
        l.devices.into_iter().map(|d| d.id).collect()
    };
    assert_eq!(by_tag("canary"), ["r58-0001"]);
    assert!(by_tag("canar").is_empty(), "a tag matches whole");
    // One command to every device with a tag.
    let many = SendToMany {
        name: "ping".into(),
        args: Value::Null,
        timeout_seconds: None,
        target: Target::Tag("canary".into()),
    };
    let v: CommandsSent = api_send(&fleet, &token, "POST", &paths::commands(), &many);
    assert_eq!(v.sent, 1);
    let done = wait_command(&fleet, &token, &v.commands["r58-0001"]);
    assert_eq!(done.state, "succeeded", "{done:?}");
    let (code, v) = call(
        "POST",
        &fleet.url("/api/v1/commands"),
        Some(&token),
        Some(json!({"name": "ping", "target": {"devices": ["r58-0001", "ghost"]}})),
    );
    assert_eq!(code, 404, "{v}");
    let (code, _) = call(
        "POST",
        &fleet.url("/api/v1/commands"),
        Some(&token),
        Some(json!({"name": "ping", "target": {"everyone": true}})),
    );
    assert_eq!(code, 400);

    // Power cut: the broker's last will marks it lost; it comes back with a new session.
    agent.kill9();
    wait_device(&fleet, &token, "r58-0001", "device lost", |d| {
        d.status == "lost"
    });
    agent.spawn();
    let d = wait_device(&fleet, &token, "r58-0001", "device back online", |d| {
        d.status == "online"
    });
    assert!(d.device.session > session);

    // Metrics count what was ingested.
    let text = reqwest::blocking::Client::new()
        .get(fleet.url("/metrics"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        text.contains("r58_fleet_devices{status=\"online\"} 1"),
        "{text}"
    );
    assert!(text.contains("r58_fleet_broker_connected 1"), "{text}");

    // Roles: a viewer reads and changes nothing; an operator commands and configures but
    // neither publishes bundles nor steers rollouts; the role in the database decides, per
    // request (re-adding with another role applies at once).
    let viewer = fleet.operator_as("vic", "viewer");
    let op = fleet.operator_as("olga", "operator");
    let dev = "/api/v1/devices/r58-0001";
    for (role, token, method, path, body, allowed) in [
        (
            "viewer",
            &viewer,
            "GET",
            "/api/v1/devices".to_string(),
            None,
            true,
        ),
        (
            "viewer",
            &viewer,
            "GET",
            format!("{dev}/config"),
            None,
            true,
        ),
        (
            "viewer",
            &viewer,
            "GET",
            "/api/v1/rollouts".to_string(),
            None,
            true,
        ),
        (
            "viewer",
            &viewer,
            "POST",
            format!("{dev}/commands"),
            Some(json!({"name": "ping"})),
            false,
        ),
        (
            "viewer",
            &viewer,
            "PUT",
            format!("{dev}/config"),
            Some(json!({"recorder": {"segment_seconds": 4}})),
            false,
        ),
        (
            "viewer",
            &viewer,
            "PUT",
            format!("{dev}/tags"),
            Some(json!(["x"])),
            false,
        ),
        (
            "operator",
            &op,
            "POST",
            format!("{dev}/commands"),
            Some(json!({"name": "ping"})),
            true,
        ),
        (
            "operator",
            &op,
            "PUT",
            format!("{dev}/tags"),
            Some(json!(["x"])),
            true,
        ),
        (
            "operator",
            &op,
            "POST",
            "/api/v1/rollouts".to_string(),
            Some(json!({})),
            false,
        ),
        (
            "operator",
            &op,
            "POST",
            "/api/v1/rollouts/1/pause".to_string(),
            None,
            false,
        ),
        (
            "operator",
            &op,
            "POST",
            "/api/v1/bundles".to_string(),
            None,
            false,
        ),
        (
            "admin",
            &token,
            "POST",
            "/api/v1/rollouts".to_string(),
            Some(json!({})),
            true,
        ),
    ] {
        let (status, body) = call(method, &fleet.url(&path), Some(token), body);
        if allowed {
            assert!(
                status != 403 && status != 401,
                "{role} {method} {path}: {status} {body}"
            );
        } else {
            assert_eq!(status, 403, "{role} {method} {path}: {body}");
            assert_eq!(body["error"], "forbidden", "{body}");
        }
    }
    let (_, who) = call("GET", &fleet.url("/api/v1/whoami"), Some(&viewer), None);
    assert_eq!(
        (who["operator"].as_str(), who["role"].as_str()),
        (Some("vic"), Some("viewer"))
    );
    let listed = fleet_cli(&[
        "--config",
        fleet.config.to_str().unwrap(),
        "operator",
        "list",
    ]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("olga") && l.contains("operator")),
        "{listed}"
    );
    let bad = Command::new(fleet_bin())
        .args([
            "--config",
            fleet.config.to_str().unwrap(),
            "operator",
            "add",
            "x",
            "--role",
            "root",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("viewer, operator, admin"));

    // A revoked token is refused at once.
    fleet_cli(&[
        "--config",
        fleet.config.to_str().unwrap(),
        "operator",
        "revoke",
        "alice",
    ]);
    assert_eq!(
        call("GET", &fleet.url("/api/v1/devices"), Some(&token), None).0,
        401
    );
}

#[test]
fn sqlite_inventory_commands_config_and_auth() {
    scenario(&|dir| format!("sqlite://{}", dir.join("fleet.db").display()));
}

#[test]
fn postgres_inventory_commands_config_and_auth() {
    let pg = Postgres::start();
    scenario(&|_| pg.url.clone());
    // The same schema, in PostgreSQL.
    assert_eq!(
        pg.psql("SELECT status FROM devices WHERE id = 'r58-0001'"),
        "online"
    );
    let newest = r58_fleet::db::MIGRATIONS.last().unwrap().0.to_string();
    assert_eq!(
        pg.psql("SELECT MAX(version) FROM schema_migrations"),
        newest
    );
    assert_eq!(pg.psql("SELECT COUNT(*) FROM rollouts"), "0");
}
