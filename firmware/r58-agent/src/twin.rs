//! Desired/reported config. The fleet publishes `twin/desired` (retained, versioned); the
//! agent checks every key against the real config loader, writes the accepted set to
//! `conf.d/50-remote.toml` atomically — all keys or none — restarts the services the keys
//! belong to, and reports `twin/reported` with the version and per-key errors.

use std::collections::BTreeMap;

use r58_config::{ConfigPaths, R58Config, Table};
use r58_proto::{TwinDesired, TwinReported};
use serde_json::Value;

pub const REMOTE_FILE: &str = "50-remote.toml";
/// The recorder reads the file through the group `r58`, which it gets from `conf.d` (a
/// set-group-ID folder, tmpfiles.d/r58.conf); the agent's own umask (0077) would hide it.
pub const REMOTE_FILE_MODE: u32 = 0o640;

/// Which service must restart for a key to take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Restart `r58-recorder.service`.
    Recorder,
    /// Taken over by the agent without a restart.
    AgentLive,
}

/// The keys the fleet may set, and who applies them. Nothing that says where the device's
/// secrets go (`turn.fleet.url` carries the fleet token, the broker the identity) is among
/// them: whoever controls the fleet's desired config must not be able to redirect them.
pub const SUPPORTED: &[(&str, Applies)] = &[
    ("encoder.bitrate_kbps", Applies::Recorder),
    ("encoder.gop_seconds", Applies::Recorder),
    ("encoder.profile", Applies::Recorder),
    ("encoder.x264_preset", Applies::Recorder),
    ("encoder.audio_bitrate_kbps", Applies::Recorder),
    ("recorder.segment_seconds", Applies::Recorder),
    ("recorder.record_on_start", Applies::Recorder),
    ("storage.min_free_mib", Applies::Recorder),
    ("storage.max_age_days", Applies::Recorder),
    ("hls.enabled", Applies::Recorder),
    ("rtsp.enabled", Applies::Recorder),
    ("turn.allow_port_53", Applies::Recorder),
    ("agent.telemetry_interval_seconds", Applies::AgentLive),
    ("remote_access.enabled", Applies::AgentLive),
];

pub fn applies(key: &str) -> Option<Applies> {
    SUPPORTED.iter().find(|(k, _)| *k == key).map(|(_, a)| *a)
}

/// The outcome of one desired document.
#[derive(Debug)]
pub struct Outcome {
    pub reported: TwinReported,
    /// The new configuration when something was written.
    pub config: Option<R58Config>,
    pub restart_recorder: bool,
}

fn insert_dotted(table: &mut Table, key: &str, value: toml::Value) {
    let mut parts = key.split('.').peekable();
    let mut cur = table;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_string(), value);
            return;
        }
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        cur = next;
    }
}

fn to_toml(v: &Value) -> Result<toml::Value, String> {
    if v.is_null() {
        return Err("null is not a value".into());
    }
    toml::Value::try_from(v).map_err(|e| e.to_string())
}

/// Checks and applies `desired`. `previous` is what was applied before (for the report when
/// nothing changes). Writes nothing unless every key is valid.
pub fn apply(
    paths: &ConfigPaths,
    desired: &TwinDesired,
    previous: &BTreeMap<String, Value>,
) -> Outcome {
    let mut errors = BTreeMap::new();
    let mut layer = Table::new();
    for (key, value) in &desired.settings {
        if applies(key).is_none() {
            errors.insert(key.clone(), "not settable remotely".to_string());
            continue;
        }
        let v = match to_toml(value) {
            Ok(v) => v,
            Err(e) => {
                errors.insert(key.clone(), e);
                continue;
            }
        };
        // Each key alone against the real loader: the error names exactly this key.
        let mut single = Table::new();
        insert_dotted(&mut single, key, v.clone());
        if let Err(e) = r58_config::load_with_drop_in::<R58Config>(paths, REMOTE_FILE, &single) {
            errors.insert(key.clone(), e.to_string());
            continue;
        }
        insert_dotted(&mut layer, key, v);
    }
    let now = chrono::Utc::now();
    if !errors.is_empty() {
        return Outcome {
            reported: TwinReported {
                version: desired.version,
                applied: previous.clone(),
                errors,
                ts: now,
            },
            config: None,
            restart_recorder: false,
        };
    }
    let config = match r58_config::load_with_drop_in::<R58Config>(paths, REMOTE_FILE, &layer) {
        Ok(l) => l.config,
        Err(e) => {
            errors.insert("*".into(), e.to_string());
            return Outcome {
                reported: TwinReported {
                    version: desired.version,
                    applied: previous.clone(),
                    errors,
                    ts: now,
                },
                config: None,
                restart_recorder: false,
            };
        }
    };
    let text = format!(
        "# Written by r58-agent from the fleet's desired config (version {}). Do not edit:\n\
         # the next desired document replaces this file.\n{}",
        desired.version,
        toml::to_string(&layer).unwrap_or_default()
    );
    let path = paths.conf_d().join(REMOTE_FILE);
    let write = std::fs::create_dir_all(paths.conf_d())
        .map_err(|e| e.to_string())
        .and_then(|_| {
            r58_fs::write_atomic_mode(&path, text.as_bytes(), REMOTE_FILE_MODE)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = write {
        errors.insert("*".into(), format!("writing {}: {e}", path.display()));
        return Outcome {
            reported: TwinReported {
                version: desired.version,
                applied: previous.clone(),
                errors,
                ts: now,
            },
            config: None,
            restart_recorder: false,
        };
    }
    let changed = |k: &String| previous.get(k) != desired.settings.get(k);
    let keys: Vec<&String> = desired.settings.keys().chain(previous.keys()).collect();
    let restart_recorder = keys
        .into_iter()
        .any(|k| changed(k) && applies(k) == Some(Applies::Recorder));
    Outcome {
        reported: TwinReported {
            version: desired.version,
            applied: desired.settings.clone(),
            errors,
            ts: now,
        },
        config: Some(config),
        restart_recorder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, ConfigPaths) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("r58.toml"),
            "[encoder]\nbitrate_kbps = 4000\n",
        )
        .unwrap();
        let paths = ConfigPaths {
            main: dir.path().join("r58.toml"),
            required: true,
        };
        (dir, paths)
    }

    fn desired(version: u64, pairs: &[(&str, Value)]) -> TwinDesired {
        TwinDesired {
            version,
            settings: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn valid_keys_are_written_and_need_a_recorder_restart() {
        let (dir, paths) = setup();
        let out = apply(
            &paths,
            &desired(
                3,
                &[
                    ("encoder.bitrate_kbps", 8000.into()),
                    ("agent.telemetry_interval_seconds", 5.into()),
                ],
            ),
            &BTreeMap::new(),
        );
        assert!(out.reported.errors.is_empty(), "{:?}", out.reported.errors);
        assert_eq!(out.reported.version, 3);
        assert!(out.restart_recorder);
        let cfg = out.config.unwrap();
        assert_eq!(
            (
                cfg.encoder.bitrate_kbps,
                cfg.agent.telemetry_interval_seconds
            ),
            (8000, 5)
        );
        let file = dir.path().join("conf.d/50-remote.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("bitrate_kbps = 8000"), "{text}");
        // The recorder (another user, group r58) must be able to read it.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{mode:o}");
    }

    #[test]
    fn one_bad_key_applies_nothing_and_names_each_problem() {
        let (dir, paths) = setup();
        let out = apply(
            &paths,
            &desired(
                4,
                &[
                    ("encoder.bitrate_kbps", 5.into()),
                    ("encoder.gop_seconds", 2.into()),
                    ("api.token", "x".into()),
                    ("turn.fleet.url", "http://elsewhere.example".into()),
                ],
            ),
            &BTreeMap::new(),
        );
        assert!(out.config.is_none());
        assert!(out.reported.errors["encoder.bitrate_kbps"].contains("out of range"));
        assert_eq!(out.reported.errors["api.token"], "not settable remotely");
        // Where the fleet token goes is not the fleet's to say.
        assert_eq!(
            out.reported.errors["turn.fleet.url"],
            "not settable remotely"
        );
        assert!(!out.reported.errors.contains_key("encoder.gop_seconds"));
        assert!(
            !dir.path().join("conf.d/50-remote.toml").exists(),
            "nothing half-applied"
        );
    }

    #[test]
    fn agent_only_change_needs_no_recorder_restart() {
        let (_dir, paths) = setup();
        let out = apply(
            &paths,
            &desired(1, &[("agent.telemetry_interval_seconds", 7.into())]),
            &BTreeMap::new(),
        );
        assert!(!out.restart_recorder);
    }
}
