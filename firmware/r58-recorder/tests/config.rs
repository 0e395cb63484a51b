//! Bad configuration stops the service at start with the file and key named.

use std::process::Command;

fn run_with(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r58.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_r58-recorder"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn unknown_key_is_an_error_naming_file_and_key() {
    let (code, err) = run_with("[recorder]\nsegment_secs = 5\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("r58.toml") && err.contains("segment_secs"),
        "{err}"
    );
}

#[test]
fn bad_value_is_an_error_naming_the_key() {
    let (code, err) = run_with("[inputs.cam]\nkind = \"v4l2\"\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("inputs.cam.device"), "{err}");
}

#[test]
fn check_config_accepts_the_simulation_profile() {
    let sim = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sim/r58.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_r58-recorder"))
        .args(["--check-config", "--config", sim])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_argument_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_r58-recorder"))
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
