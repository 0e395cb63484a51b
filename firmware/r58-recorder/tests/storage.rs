//! The storage guard on a real, small file system (a tmpfs mounted by the test).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn disk_full_removes_oldest_sessions_then_stops_cleanly_with_a_reason() {
    if !nix_is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=40m", "tmpfs"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs");
    let _mount = Mount(data.clone());

    // An old, finished session of 8 MiB that the guard may remove.
    let old = data.join("recordings/20200101T000000Z");
    std::fs::create_dir_all(old.join("cam1")).unwrap();
    std::fs::write(
        old.join("cam1/20200101T000000.000Z.ts"),
        vec![0x47u8; 8 << 20],
    )
    .unwrap();
    std::fs::write(
        old.join("manifest.json"),
        r#"{"session":"20200101T000000Z","container":"mpegts","started_at":"2020-01-01T00:00:00Z",
            "ended_at":"2020-01-01T00:01:00Z","end_reason":"stopped","inputs":{}}"#,
    )
    .unwrap();

    let extra = "[storage]\nmin_free_mib = 16\ncheck_interval_seconds = 1\nmax_age_days = 0\n\
                 [encoder]\nbitrate_kbps = 20000\nx264_preset = \"ultrafast\"\n\
                 [inputs.cam1]\nkind = \"test\"\npattern = \"snow\"\nwidth = 640\nheight = 480\naudio = false\n";
    // A conf.d drop-in: these keys override the harness's base file key by key.
    let r = Recorder::start(dir.path(), extra);
    let (code, body) = r.post("/api/recordings/start", "", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let session = body["session"].as_str().unwrap().to_string();

    let st = wait_for(
        Duration::from_secs(60),
        "recording to stop for disk_full",
        || {
            let st = r.status();
            let rec = &st["inputs"]["cam1"]["recording"];
            (!rec["recording"].as_bool().unwrap() && st["session"].is_null()).then(|| st.clone())
        },
    );
    assert_eq!(
        st["inputs"]["cam1"]["recording"]["last_stop_reason"], "disk_full",
        "{st}"
    );
    assert!(!old.exists(), "the oldest finished session goes first");
    let m = manifest(&r.data(), &session);
    assert_eq!(m["end_reason"], "disk_full");
    let files = segment_files(&r.data(), &session, "cam1");
    assert!(!files.is_empty());
    for f in &files {
        decode(f.to_str().unwrap(), &[]).unwrap();
    }
    // The service stays up; when even removing every finished session cannot make room
    // (here: a file that is not a recording fills the disk), it refuses to start.
    std::fs::remove_dir_all(data.join("recordings").join(&session)).unwrap();
    let free = r.status()["disk"]["free_mib"].as_u64().unwrap();
    std::fs::write(
        data.join("filler.bin"),
        vec![0u8; ((free.saturating_sub(8)) << 20) as usize],
    )
    .unwrap();
    assert_eq!(http_get(&r.url("/healthz")).unwrap().0, 200);
    let (code, body) = r.post("/api/recordings/start", "", Some(TOKEN));
    assert_eq!(
        (code, body["error"].as_str()),
        (507, Some("disk_full")),
        "{body}"
    );
}

#[test]
fn sessions_past_the_maximum_age_are_removed_and_recent_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("data/recordings");
    for (id, ended) in [
        ("20200101T000000Z", "2020-01-01T00:01:00Z"),
        ("20990101T000000Z", "2099-01-01T00:01:00Z"),
    ] {
        std::fs::create_dir_all(recordings.join(id)).unwrap();
        std::fs::write(
            recordings.join(id).join("manifest.json"),
            format!(r#"{{"session":"{id}","container":"mpegts","started_at":"{ended}","ended_at":"{ended}","end_reason":"stopped","inputs":{{}}}}"#),
        )
        .unwrap();
    }
    let _r = Recorder::start(
        dir.path(),
        &format!("{ONE_TEST_INPUT}[storage]\nmax_age_days = 30\n"),
    );
    wait_for(Duration::from_secs(10), "old session removed", || {
        (!recordings.join("20200101T000000Z").exists()).then_some(())
    });
    assert!(recordings.join("20990101T000000Z").exists());
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}
