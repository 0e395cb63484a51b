//! Recording start/stop, segments, manifests, downloads, SIGTERM and kill -9.

mod common;

use std::time::Duration;

use common::*;

fn start_recording(r: &Recorder) -> String {
    let (code, body) = r.post("/api/recordings/start", "", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    body["session"].as_str().unwrap().to_string()
}

#[test]
fn start_stop_gives_decodable_segments_whose_durations_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let r = Recorder::start(dir.path(), ONE_TEST_INPUT);
    let session = start_recording(&r);
    std::thread::sleep(Duration::from_secs(7));
    let (code, body) = r.post(
        "/api/recordings/stop",
        "{\"inputs\": [\"cam1\"]}",
        Some(TOKEN),
    );
    assert_eq!(code, 200);
    assert_eq!(body["stopped"], serde_json::json!(["cam1"]));

    let m = manifest(&r.data(), &session);
    assert_eq!(m["end_reason"], "stopped");
    let segs = m["inputs"]["cam1"]["segments"].as_array().unwrap().clone();
    let files = segment_files(&r.data(), &session, "cam1");
    assert!(segs.len() >= 3, "2 s segments over 7 s: {m}");
    assert_eq!(segs.len(), files.len(), "manifest lists every file");
    let mut probed = 0.0;
    let mut listed = 0.0;
    for (seg, file) in segs.iter().zip(&files) {
        decode(file.to_str().unwrap(), &[]).unwrap();
        assert_eq!(
            seg["bytes"].as_u64().unwrap(),
            std::fs::metadata(file).unwrap().len()
        );
        probed += duration(file);
        listed += seg["duration_s"].as_f64().unwrap();
    }
    assert!(
        (probed - listed).abs() < 1.0,
        "probed {probed} vs manifest {listed}"
    );
    assert!((5.5..9.0).contains(&probed), "recorded {probed} s in ~7 s");

    // The API lists it, and a segment downloads with Range.
    let (code, list) = http_get(&r.url("/api/recordings")).unwrap();
    assert_eq!(code, 200);
    assert!(list.contains(&session));
    let name = files[0].file_name().unwrap().to_str().unwrap();
    let url = r.url(&format!("/api/recordings/{session}/files/cam1/{name}"));
    let (code, part) = http_get_range(&url, "bytes=188-375");
    assert_eq!(code, 206);
    assert_eq!(part, std::fs::read(&files[0]).unwrap()[188..376].to_vec());
}

#[test]
fn sigterm_finishes_open_segments_and_resumes_on_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Recorder::start(dir.path(), ONE_TEST_INPUT);
    let session = start_recording(&r);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(r.terminate(), Some(0), "{}", r.log_text());
    let m = manifest(&r.data(), &session);
    assert_eq!(m["end_reason"], "shutdown");
    for f in segment_files(&r.data(), &session, "cam1") {
        decode(f.to_str().unwrap(), &[]).unwrap();
    }
    // Recording was on when the service stopped: it resumes in a new session.
    r.spawn();
    let st = wait_for(Duration::from_secs(10), "resumed recording", || {
        let st = r.status();
        st["inputs"]["cam1"]["recording"]["recording"]
            .as_bool()
            .unwrap()
            .then_some(st)
    });
    assert_ne!(st["session"].as_str().unwrap(), session);
}

#[test]
fn kill9_leaves_playable_segments_and_loses_at_most_about_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Recorder::start(dir.path(), ONE_TEST_INPUT);
    let session = start_recording(&r);
    let started = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let elapsed = started.elapsed().as_secs_f64();
    r.kill9();
    let files = segment_files(&r.data(), &session, "cam1");
    assert!(!files.is_empty());
    let mut total = 0.0;
    for f in &files {
        decode(f.to_str().unwrap(), &[]).unwrap();
        total += duration(f);
    }
    // The first key frame after start is requested at once; allow for it and ~1 s of loss.
    assert!(
        total >= elapsed - 1.5,
        "recorded {total:.2} s of {elapsed:.2} s"
    );

    // The next start closes the interrupted session truthfully.
    r.spawn();
    let m = manifest(&r.data(), &session);
    assert_eq!(m["end_reason"], "interrupted");
    let listed = m["inputs"]["cam1"]["segments"].as_array().unwrap().len();
    assert_eq!(listed, files.len(), "{m}");
}

#[test]
fn control_needs_the_token_and_bad_requests_get_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let r = Recorder::start(dir.path(), ONE_TEST_INPUT);
    let (code, body) = r.post("/api/recordings/start", "", None);
    assert_eq!((code, body["error"].as_str()), (401, Some("unauthorized")));
    let (code, _) = r.post("/api/recordings/start", "", Some("wrong-token-000000000"));
    assert_eq!(code, 401);
    let (code, body) = r.post("/api/recordings/start", "{\"inputs\": 5}", Some(TOKEN));
    assert_eq!(code, 400);
    assert!(
        body["reason"].as_str().unwrap().contains("inputs"),
        "{body}"
    );
    let (code, body) = r.post(
        "/api/recordings/start",
        "{\"inputs\": [\"nope\"]}",
        Some(TOKEN),
    );
    assert_eq!((code, body["error"].as_str()), (404, Some("unknown_input")));
    let (code, _) = http_get(&r.url("/api/recordings/..%2Fetc")).unwrap();
    assert_eq!(code, 400);
    let (code, _) = http_get(&r.url("/api/recordings/20990101T000000Z")).unwrap();
    assert_eq!(code, 404);
    let (code, _) = http_get(&r.url("/api/nothing-here")).unwrap();
    assert_eq!(code, 404);
    // Nothing started by the rejected requests.
    assert!(r.status()["session"].is_null());
}

/// The packets of each stream of `file`, in file order, as (decode timestamp, end of
/// presentation) in 90 kHz ticks (ffprobe, not GStreamer).
fn packets(file: &std::path::Path) -> std::collections::BTreeMap<String, Vec<(i64, i64)>> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,dts,pts,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe {}", file.display());
    let mut by_stream = std::collections::BTreeMap::<String, Vec<(i64, i64)>>::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // stream_index,pts,dts,duration
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok());
        if let (Some(pts), Some(dts)) = (num(1), num(2)) {
            let end = pts + num(3).unwrap_or(0);
            by_stream
                .entry(f[0].to_string())
                .or_default()
                .push((dts, end));
        }
    }
    by_stream
}

/// Each session starts on a key frame with audio and video whose decode timestamps only go
/// forward (what a browser's MPEG-TS demuxer insists on), however soon after the last
/// session it starts, and ends with as much audio as picture.
#[test]
fn every_session_starts_with_timestamps_that_only_go_forward_and_ends_with_its_audio() {
    let dir = tempfile::tempdir().unwrap();
    let r = Recorder::start(dir.path(), ONE_TEST_INPUT);
    for _ in 0..4 {
        let session = start_recording(&r);
        std::thread::sleep(Duration::from_millis(2500));
        let (code, _) = r.post("/api/recordings/stop", "", Some(TOKEN));
        assert_eq!(code, 200);
        let files = segment_files(&r.data(), &session, "cam1");
        for file in &files {
            let streams = packets(file);
            assert_eq!(streams.len(), 2, "video and audio in {}", file.display());
            for (stream, p) in &streams {
                let dts: Vec<i64> = p.iter().map(|p| p.0).collect();
                assert!(
                    dts.windows(2).all(|w| w[0] < w[1]),
                    "stream {stream} of {} goes back: {:?}",
                    file.display(),
                    &dts[..dts.len().min(12)]
                );
            }
        }
        // The session's audio lasts as long as its picture: what the audio encoder still
        // held when the stop came is in the last segment.
        let last = packets(files.last().expect("a segment"));
        let end = |s: &str| last[s].iter().map(|p| p.1).max().unwrap();
        let (video_end, audio_end) = (end("0"), end("1"));
        eprintln!("video ends {video_end}, audio ends {audio_end} (90 kHz)");
        assert!(
            audio_end >= video_end - 90 * 25,
            "audio stops {} ms before the picture in {}",
            (video_end - audio_end) / 90,
            files.last().unwrap().display()
        );
    }
}
