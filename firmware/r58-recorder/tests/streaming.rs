//! RTSP and HLS served from the single encode; status and metrics; an RTSP input whose
//! camera disappears shows the slate and recovers.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn rtsp_is_playable_by_a_real_client_and_shares_one_encode() {
    let dir = tempfile::tempdir().unwrap();
    let r = Recorder::start(dir.path(), ONE_TEST_INPUT);
    let url = r.rtsp_url("cam1");
    let before = r.status()["inputs"]["cam1"]["frames_encoded"]
        .as_u64()
        .unwrap();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || play_frames(&url, &["-rtsp_transport", "tcp"], 3))
        })
        .collect();
    for c in clients {
        let frames = c.join().unwrap().unwrap();
        assert!(frames >= 60, "decoded only {frames} frames in 3 s");
    }
    let st = r.status();
    let cam = &st["inputs"]["cam1"];
    assert_eq!(cam["encoder"], "x264enc");
    // One encode at ~30 fps regardless of the number of clients.
    let frames = cam["frames_encoded"].as_u64().unwrap() - before;
    let secs = 3.0 + 2.0;
    assert!(
        (frames as f64) < 30.0 * (secs + 3.0),
        "{frames} frames: an encode per client?"
    );
}

#[test]
fn hls_playlist_is_served_and_its_segments_decode() {
    let dir = tempfile::tempdir().unwrap();
    let r = Recorder::start(dir.path(), &ONE_TEST_INPUT.replace("ball", "white"));
    let playlist = wait_for(Duration::from_secs(15), "HLS playlist", || {
        let (code, body) = http_get(&r.url("/hls/cam1/index.m3u8")).ok()?;
        (code == 200 && body.matches(".ts").count() >= 2).then_some(body)
    });
    assert!(playlist.starts_with("#EXTM3U"));
    for seg in playlist.lines().filter(|l| l.ends_with(".ts")) {
        decode(&r.url(&format!("/hls/cam1/{seg}")), &[]).unwrap();
    }
    // The live picture (a white test pattern), not the "no signal" slate.
    // (The stream's very first frames show the slate until the source's first frame.)
    let last = playlist
        .lines()
        .filter(|l| l.ends_with(".ts"))
        .last()
        .unwrap();
    let luma = mean_luma(&r.url(&format!("/hls/cam1/{last}")), &[]);
    assert!(
        luma > 180.0,
        "mean luma {luma}: slate instead of the input?"
    );
}

#[test]
fn status_and_metrics_report_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let r = Recorder::start(dir.path(), ONE_TEST_INPUT);
    let st = wait_for(Duration::from_secs(5), "fps figure", || {
        let st = r.status();
        (st["inputs"]["cam1"]["fps"].as_f64()? > 20.0).then_some(st)
    });
    let cam = &st["inputs"]["cam1"];
    assert_eq!(cam["signal"], true);
    assert_eq!(
        (cam["width"].as_u64(), cam["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert!(st["disk"]["free_mib"].as_u64().unwrap() > 0);
    let (code, text) = http_get(&r.url("/metrics")).unwrap();
    assert_eq!(code, 200);
    assert!(
        text.contains("r58_input_signal{input=\"cam1\"} 1"),
        "{text}"
    );
    assert!(text.contains("r58_up 1"));
    let (code, inputs) = http_get(&r.url("/api/inputs")).unwrap();
    assert_eq!(code, 200);
    assert!(inputs.contains("\"cam1\""));
}

#[test]
fn rtsp_input_shows_slate_when_camera_goes_and_recovers_when_it_returns() {
    let cam_dir = tempfile::tempdir().unwrap();
    let mut camera = Recorder::start(cam_dir.path(), &ONE_TEST_INPUT.replace("ball", "white"));
    let dir = tempfile::tempdir().unwrap();
    let input = format!(
        "[watchdog]\nsignal_timeout_ms = 500\n[inputs.ipcam]\nkind = \"rtsp\"\nurl = \"{}\"\nwidth = 320\nheight = 240\n\
         audio = false\nlatency_ms = 100\nreconnect_max_seconds = 1\n",
        camera.rtsp_url("cam1")
    );
    let r = Recorder::start(dir.path(), &input);
    let signal = |r: &Recorder| r.status()["inputs"]["ipcam"]["signal"].as_bool().unwrap();
    wait_for(Duration::from_secs(15), "signal from the camera", || {
        signal(&r).then_some(())
    });

    camera.kill9();
    wait_for(Duration::from_secs(10), "signal loss", || {
        (!signal(&r)).then_some(())
    });
    // The slate keeps the encode (and so recording and streams) running.
    let f1 = r.status()["inputs"]["ipcam"]["frames_encoded"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let f2 = r.status()["inputs"]["ipcam"]["frames_encoded"]
        .as_u64()
        .unwrap();
    assert!(
        f2 > f1 + 15,
        "encode stalled during signal loss: {f1} -> {f2}"
    );
    let frames = play_frames(&r.rtsp_url("ipcam"), &["-rtsp_transport", "tcp"], 2).unwrap();
    assert!(frames >= 30, "slate not streamed: {frames} frames");
    // The slate is black with white text; the camera's picture (white) is gone.
    let luma = mean_luma(&r.rtsp_url("ipcam"), &["-rtsp_transport", "tcp"]);
    assert!(luma < 80.0, "expected the slate, mean luma {luma}");

    camera.spawn();
    wait_for(Duration::from_secs(20), "signal back", || {
        signal(&r).then_some(())
    });
    let luma = mean_luma(&r.rtsp_url("ipcam"), &["-rtsp_transport", "tcp"]);
    assert!(
        luma > 180.0,
        "expected the camera's white picture, mean luma {luma}"
    );
    assert!(
        r.status()["inputs"]["ipcam"]["source_restarts"]
            .as_u64()
            .unwrap()
            >= 1
    );
}
