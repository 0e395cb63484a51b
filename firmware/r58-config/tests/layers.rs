use std::fs;
use std::path::Path;

use r58_config::{load_from, ConfigError, ConfigPaths, InputKind, R58Config};

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn load(dir: &Path) -> Result<R58Config, ConfigError> {
    load_from(&ConfigPaths {
        main: dir.join("r58.toml"),
        required: false,
    })
    .map(|l| l.config)
}

#[test]
fn missing_files_give_built_in_defaults() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load(dir.path()).unwrap(), R58Config::default());
}

#[test]
fn explicitly_named_file_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_from::<R58Config>(&ConfigPaths {
        main: dir.path().join("nope.toml"),
        required: true,
    })
    .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    assert!(err.to_string().contains("nope.toml"));
}

#[test]
fn drop_ins_apply_in_name_order_and_merge_tables() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "r58.toml",
        "[encoder]\nbitrate_kbps = 4000\n[inputs.cam]\nkind = \"test\"\nfps = 25\n",
    );
    write(
        dir.path(),
        "conf.d/20-b.toml",
        "[encoder]\nbitrate_kbps = 3000\n",
    );
    write(
        dir.path(),
        "conf.d/10-a.toml",
        "[encoder]\nbitrate_kbps = 9000\ngop_seconds = 3\n",
    );
    write(
        dir.path(),
        "conf.d/30-c.toml.disabled",
        "[encoder]\nbitrate_kbps = 1\n",
    );
    write(
        dir.path(),
        "conf.d/40-d.toml",
        "[inputs.cam]\nwidth = 1280\nheight = 720\n",
    );
    let cfg = load(dir.path()).unwrap();
    assert_eq!(cfg.encoder.bitrate_kbps, 3000, "later drop-in wins");
    assert_eq!(cfg.encoder.gop_seconds, 3, "keys of earlier layers survive");
    let cam = &cfg.inputs["cam"];
    assert_eq!(
        (cam.kind, cam.fps, cam.width, cam.height),
        (InputKind::Test, 25, 1280, 720)
    );
}

#[test]
fn unknown_key_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "r58.toml", "[encoder]\nbitrate_kbps = 4000\n");
    write(
        dir.path(),
        "conf.d/50-x.toml",
        "[encoder]\nbitrat_kbps = 4000\n",
    );
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("50-x.toml"), "{err}");
    assert!(err.contains("bitrat_kbps"), "{err}");
    assert!(err.contains("encoder"), "{err}");
}

#[test]
fn wrong_type_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "r58.toml",
        "[inputs.cam]\nkind = \"test\"\nfps = \"thirty\"\n",
    );
    let err = load(dir.path()).unwrap_err();
    match &err {
        ConfigError::Invalid { file, key, .. } => {
            assert!(file.ends_with("r58.toml"));
            assert_eq!(key, "inputs.cam.fps");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn bad_value_is_blamed_on_the_file_that_set_it() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "r58.toml",
        "[inputs.cam]\nkind = \"rtsp\"\nurl = \"rtsp://cam.example.com/1\"\n",
    );
    write(
        dir.path(),
        "conf.d/10-ok.toml",
        "[encoder]\nbitrate_kbps = 5000\n",
    );
    write(
        dir.path(),
        "conf.d/60-bad.toml",
        "[inputs.cam]\nurl = \"http://nope\"\n",
    );
    let err = load(dir.path()).unwrap_err();
    match &err {
        ConfigError::Invalid { file, key, reason } => {
            assert!(file.ends_with("60-bad.toml"), "{file}");
            assert_eq!(key, "inputs.cam.url");
            assert!(reason.contains("rtsp://"), "{reason}");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn out_of_range_and_bad_ids_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "r58.toml", "[encoder]\nbitrate_kbps = 5\n");
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("encoder.bitrate_kbps") && err.contains("out of range"),
        "{err}"
    );

    write(
        dir.path(),
        "r58.toml",
        "[inputs.\"../etc\"]\nkind = \"test\"\n",
    );
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("input id"), "{err}");

    write(dir.path(), "r58.toml", "[inputs.hdmi]\nkind = \"v4l2\"\n");
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("inputs.hdmi.device"), "{err}");
}

#[test]
fn syntax_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "r58.toml", "[encoder\n");
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }));
    assert!(err.to_string().contains("r58.toml"));
}

#[test]
fn the_images_default_file_is_accepted_and_matches_the_built_in_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rootfs-overlay/etc/r58/r58.toml");
    let cfg: R58Config = load_from(&ConfigPaths {
        main: path,
        required: true,
    })
    .unwrap()
    .config;
    let mut expected = R58Config::default();
    expected.inputs = cfg.inputs.clone();
    assert_eq!(
        cfg, expected,
        "a default documented in r58.toml differs from the built-in one"
    );
    assert_eq!(cfg.inputs["hdmi"].kind, InputKind::V4l2);
}

#[test]
fn a_drop_in_can_be_checked_before_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "r58.toml", "[encoder]\nbitrate_kbps = 4000\n");
    write(
        dir.path(),
        "conf.d/60-site.toml",
        "[encoder]\ngop_seconds = 2\n",
    );
    let paths = ConfigPaths {
        main: dir.path().join("r58.toml"),
        required: true,
    };
    let layer: r58_config::Table = "[encoder]\nbitrate_kbps = 5000\ngop_seconds = 5\n"
        .parse()
        .unwrap();
    let cfg: R58Config = r58_config::load_with_drop_in(&paths, "50-remote.toml", &layer)
        .unwrap()
        .config;
    assert_eq!(cfg.encoder.bitrate_kbps, 5000);
    assert_eq!(
        cfg.encoder.gop_seconds, 2,
        "a later drop-in still wins over the remote layer"
    );
    let bad: r58_config::Table = "[encoder]\nbitrate_kbps = 1\n".parse().unwrap();
    let err = r58_config::load_with_drop_in::<R58Config>(&paths, "50-remote.toml", &bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("50-remote.toml") && err.contains("encoder.bitrate_kbps"),
        "{err}"
    );
    assert!(
        !dir.path().join("conf.d/50-remote.toml").exists(),
        "nothing written"
    );
}
