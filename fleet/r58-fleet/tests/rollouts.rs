//! Staged rollouts against the real fleet (SQLite, and PostgreSQL), driven by simulated
//! devices that speak the job protocol without RAUC: waves, the success and failure
//! thresholds, per-device step timeouts, pause, resume and abort.

mod common;

use std::time::Duration;

use common::ota_env::*;
use common::*;
use r58_fleet_api::paths::RolloutAction;
use r58_fleet_api::{CreateRollout, DeviceList, Job, RolloutDetail, Target};
use serde_json::json;

/// Devices that speak the job protocol without RAUC, to drive the fleet's rollout logic:
/// each answers its job with success, a failure, or silence.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Succeed,
    Fail,
    Silent,
}

fn sim_devices(env: &Env, ids: &[&str]) {
    for id in ids {
        env.obs
            .publish(&format!("r58/v1/{id}/state"), state_doc(1), true);
    }
    wait_until(
        Duration::from_secs(20),
        "simulated devices in the inventory",
        || {
            let v: DeviceList =
                api_get(&env.fleet, &env.token, &paths::devices(&Default::default()));
            (v.devices.len() >= ids.len()).then_some(())
        },
    );
}

/// Answers every job that appeared for `id` since the last call, per `b`.
fn answer(env: &Env, id: &str, b: Behaviour, answered: &mut std::collections::HashSet<String>) {
    for job in env.obs.json_on(&format!("r58/v1/{id}/jobs/next")) {
        let Some(job_id) = job["job_id"].as_str() else {
            continue;
        };
        if b == Behaviour::Silent || !answered.insert(job_id.to_string()) {
            continue;
        }
        let send = |phase: &str, reason: Option<&str>| {
            let u = json!({ "job_id": job_id, "phase": phase, "progress": 100, "reason": reason, "version": job["version"], "ts": chrono::Utc::now() });
            env.obs.publish(
                &format!("r58/v1/{id}/jobs/{job_id}/update"),
                u.to_string(),
                false,
            );
        };
        send("downloading", None);
        match b {
            Behaviour::Succeed => send("succeeded", None),
            _ => send("failed", Some("install_failed")),
        }
    }
}

#[test]
fn rollouts_go_in_waves_halt_on_failures_and_time_out_silent_devices() {
    rollouts_scenario(&setup(true));
}

#[test]
fn rollouts_on_postgresql() {
    let pg = Postgres::start();
    let env = setup_db(true, Some(&pg.url));
    rollouts_scenario(&env);
    assert_eq!(pg.psql("SELECT COUNT(*) FROM rollouts"), "2");
    assert_eq!(
        pg.psql("SELECT holder LIKE 'r58-fleet-t-%' FROM leases WHERE name = 'rollouts'"),
        "t"
    );
}

fn rollouts_scenario(env: &Env) {
    let b = env.publish(&env.bundle("v7.raucb", "7.0.0", "r58-test", 1));
    let ids: Vec<String> = (0..6).map(|i| format!("sim-{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    sim_devices(&env, &id_refs);
    let rollouts = env.fleet.url(&paths::rollouts());
    // A rollout of the published bundle.
    let create = |target: Target, waves: &[&str]| CreateRollout {
        waves: Some(waves.iter().map(|w| w.to_string()).collect()),
        ..CreateRollout::of_bundle(&b.sha256, target)
    };
    let start = |c: &CreateRollout| -> RolloutDetail {
        let (code, v) = call(
            "POST",
            &rollouts,
            Some(&env.token),
            Some(serde_json::to_value(c).unwrap()),
        );
        assert_eq!(code, 201, "{v}");
        serde_json::from_value(v).unwrap()
    };

    // Bad input is refused with a reason.
    for (body, want) in [
        (
            json!({ "version": "9.9.9", "target": { "all": true } }),
            404,
        ),
        (
            json!({ "version": "7.0.0", "target": { "all": true }, "waves": ["50%", "10%"] }),
            400,
        ),
        (
            json!({ "version": "7.0.0", "target": { "devices": ["nope"] } }),
            404,
        ),
        (
            json!({ "version": "7.0.0", "target": { "all": true }, "install_policy": "sometimes" }),
            400,
        ),
    ] {
        let (code, v) = call("POST", &rollouts, Some(&env.token), Some(body.clone()));
        assert_eq!(code, want, "{body} → {v}");
        assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    }

    // A: waves 1 then everyone; the canary succeeds, the second wave has two failures in
    // five, above the 30 % limit: halted, and the silent device times out.
    let v = start(&CreateRollout {
        failure_percent: Some(30),
        step_timeout_seconds: Some(10),
        ..create(Target::All(true), &["1", "100%"])
    });
    let id = v.rollout.id;
    let in_wave = |w: i64| -> Vec<String> {
        v.jobs
            .iter()
            .filter(|j| j.wave == w)
            .map(|j| j.device.clone())
            .collect()
    };
    let canary = in_wave(0);
    assert_eq!(canary.len(), 1);
    let canary = canary[0].clone();
    let rest = in_wave(1);
    let behaviour = |d: &str| -> Behaviour {
        if d == canary {
            Behaviour::Succeed
        } else if d == rest[0] || d == rest[1] {
            Behaviour::Fail
        } else if d == rest[2] {
            Behaviour::Silent
        } else {
            Behaviour::Succeed
        }
    };
    let get = |id: &str| -> RolloutDetail { api_get(&env.fleet, &env.token, &paths::rollout(id)) };
    let mut answered = std::collections::HashSet::new();
    // Only the canary gets a job until it succeeded.
    std::thread::sleep(Duration::from_secs(2));
    for d in &rest {
        assert!(
            env.obs.json_on(&format!("r58/v1/{d}/jobs/next")).is_empty(),
            "{d} got a job before the canary finished"
        );
    }
    let v = wait_until(Duration::from_secs(60), "rollout halted", || {
        for d in &ids {
            answer(&env, d, behaviour(d), &mut answered);
        }
        let v = get(&id);
        (v.rollout.state == "halted").then_some(v)
    });
    assert!(
        v.rollout
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("failed"),
        "{v:?}"
    );
    // The silent device: failed with `timeout` after its step timeout, its job withdrawn.
    let v = wait_until(Duration::from_secs(30), "silent device timed out", || {
        let v = get(&id);
        v.jobs
            .iter()
            .any(|j| {
                j.device == rest[2] && j.phase == "failed" && j.reason.as_deref() == Some("timeout")
            })
            .then_some(v)
    });
    let silent_topic = format!("r58/v1/{}/jobs/next", rest[2]);
    wait_until(Duration::from_secs(10), "silent job withdrawn", || {
        env.obs
            .messages
            .lock()
            .unwrap()
            .iter()
            .any(|(t, p, _)| *t == silent_topic && p.is_empty())
            .then_some(())
    });
    let text = String::from_utf8_lossy(&env.cli(&["ota", "show", &id]).stdout).to_string();
    assert!(
        text.contains("halted") && text.contains("timeout") && text.contains("install_failed"),
        "{text}"
    );
    let _ = v;

    // B: pause holds the next wave back, resume lets it go, abort skips what has not started.
    let id2 = start(&create(
        Target::Devices(ids[..3].to_vec()),
        &["1", "2", "100%"],
    ))
    .rollout
    .id;
    let out = env.cli(&["ota", "pause", &id2]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _) = call(
        "POST",
        &env.fleet
            .url(&paths::rollout_action(&id2, RolloutAction::Pause)),
        Some(&env.token),
        None,
    );
    assert_eq!(code, 409, "pausing twice");
    let mut answered2 = std::collections::HashSet::new();
    // Paused: the canary (if it was already out) may finish, the next wave stays back.
    for _ in 0..20 {
        for d in &ids[..3] {
            answer(&env, d, Behaviour::Succeed, &mut answered2);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = get(&id2);
    assert_eq!(v.rollout.wave, 0, "{v:?}");
    assert!(
        v.jobs
            .iter()
            .filter(|j| j.wave != 0)
            .all(|j| j.phase == "pending"),
        "paused rollout went on: {v:?}"
    );
    assert!(env.cli(&["ota", "resume", &id2]).status.success());
    wait_until(Duration::from_secs(30), "first wave done", || {
        for d in &ids[..3] {
            answer(&env, d, Behaviour::Succeed, &mut answered2);
        }
        (get(&id2).rollout.wave >= 1).then_some(())
    });
    assert!(env.cli(&["ota", "abort", &id2]).status.success());
    let v = get(&id2);
    assert_eq!(v.rollout.state, "aborted");
    assert_eq!(v.summary.devices, 3);
    let phases: Vec<&str> = v.jobs.iter().map(|j: &Job| j.phase.as_str()).collect();
    assert!(
        phases.contains(&"skipped") && phases.contains(&"succeeded"),
        "{phases:?}"
    );
}

#[test]
fn started_jobs_are_published_again_after_the_broker_lost_its_retained_store() {
    let mut env = setup(true);
    let b = env.publish(&env.bundle("v7.raucb", "7.0.0", "r58-test", 1));
    sim_devices(&env, &["sim-0"]);
    let create = CreateRollout {
        waves: Some(vec!["100%".into()]),
        ..CreateRollout::of_bundle(&b.sha256, Target::Devices(vec!["sim-0".into()]))
    };
    let _: RolloutDetail = api_send(&env.fleet, &env.token, "POST", &paths::rollouts(), &create);
    let topic = "r58/v1/sim-0/jobs/next";
    let job = env
        .obs
        .wait_json(topic, Duration::from_secs(20), "the job", |v| {
            v["job_id"].is_string()
        });

    // The broker comes back without its persistence file: the retained job is gone with it.
    env.broker.stop();
    std::fs::remove_file(env.dir.path().join("mosquitto-data/mosquitto.db")).unwrap();
    env.broker.spawn();
    let (ca, cert, key) = common::ota::fleet_pki_dir_files(&env.pki);
    let obs = Observer::connect_files(&ca, &cert, &key, env.broker.port, "obs-2", &[topic]);
    let again = obs.wait_json(
        topic,
        Duration::from_secs(30),
        "the job published again",
        |v| v["job_id"] == job["job_id"],
    );
    assert_eq!(again["version"], "7.0.0", "{again}");
}
