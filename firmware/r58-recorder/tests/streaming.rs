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
    let tcp = ["-rtsp_transport", "tcp"];
    let rtsp_consumers = |r: &Recorder| {
        let st = r.status();
        let names = st["inputs"]["cam1"]["consumers"]
            .as_array()
            .unwrap()
            .clone();
        names
            .iter()
            .filter(|n| n.as_str().unwrap().starts_with("rtsp:"))
            .count()
    };
    assert_eq!(rtsp_consumers(&r), 0, "an RTSP media before any client");
    // The first client plays until it is stopped; the second plays 60 frames meanwhile.
    let first = spawn_player(&url, &tcp, None);
    wait_for(
        Duration::from_secs(20),
        "the first client's RTSP media",
        || (rtsp_consumers(&r) == 1).then_some(()),
    );
    let second = {
        let url = url.clone();
        std::thread::spawn(move || play_frames(&url, &tcp, 60))
    };
    let mut most = 0;
    while !second.is_finished() {
        most = most.max(rtsp_consumers(&r));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(second.join().unwrap().unwrap(), 60);
    assert_eq!(
        most, 1,
        "a second client got its own media (and encode branch)"
    );
    let (_, first_frames) = finish_player(first, Duration::ZERO).unwrap();
    assert!(first_frames > 0, "the first client decoded nothing");
    let cam = &r.status()["inputs"]["cam1"];
    assert_eq!(cam["encoder"], "x264enc");
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
        let auth = auth_header();
        decode(&r.url(&format!("/hls/cam1/{seg}")), &[&auth[0], &auth[1]]).unwrap();
    }
    // The live picture (a white test pattern), not the "no signal" slate.
    // (The stream's very first frames show the slate until the source's first frame.)
    let last = playlist
        .lines()
        .filter(|l| l.ends_with(".ts"))
        .next_back()
        .unwrap();
    let auth = auth_header();
    let luma = mean_luma(&r.url(&format!("/hls/cam1/{last}")), &[&auth[0], &auth[1]]);
    assert!(
        luma > 180.0,
        "mean luma {luma}: slate instead of the input?"
    );
}

#[test]
fn status_and_metrics_report_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let r = Recorder::start(dir.path(), ONE_TEST_INPUT);
    let st = wait_for(Duration::from_secs(20), "fps figure", || {
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

/// Nothing but `/healthz` answers without the token (recordings, camera URLs, TURN
/// credentials, live HLS were open to anyone on the venue's network); camera passwords never
/// leave the box; a host name the box does not answer to (DNS rebinding) is refused.
#[test]
fn every_route_but_the_health_check_needs_the_token_and_a_known_host() {
    let dir = tempfile::tempdir().unwrap();
    let cam =
        "[inputs.ipcam]\nkind = \"rtsp\"\nurl = \"rtsp://admin:cam-secret@127.0.0.1:9/ch1\"\n\
               width = 320\nheight = 240\naudio = false\nreconnect_max_seconds = 1\n";
    let r = Recorder::start(dir.path(), &format!("{ONE_TEST_INPUT}{cam}"));
    let url = |p: &str| r.url(p);
    assert_eq!(http_get_as(&url("/healthz"), None, None).unwrap().0, 200);
    for path in [
        "/api/status",
        "/api/inputs",
        "/metrics",
        "/api/turn-credentials",
        "/api/recordings",
        "/api/recordings/20990101T000000Z",
        "/hls/cam1/index.m3u8",
        "/api/nothing-here",
    ] {
        let (code, body) = http_get_as(&url(path), None, None).unwrap();
        assert_eq!(code, 401, "{path} without a token: {body}");
        let (code, _) = http_get_as(&url(path), Some("wrong-token-000000000"), None).unwrap();
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    let (code, inputs) = http_get(&url("/api/inputs")).unwrap();
    assert_eq!(code, 200);
    assert!(!inputs.contains("cam-secret"), "{inputs}");
    assert!(
        inputs.contains("rtsp://admin:redacted@127.0.0.1:9/ch1"),
        "{inputs}"
    );
    // DNS rebinding: the right token in a page served as evil.example is still refused.
    let (code, body) =
        http_get_as(&url("/api/status"), Some(TOKEN), Some("evil.example:8000")).unwrap();
    assert_eq!(code, 421, "{body}");
    let (code, _) = http_get_as(&url("/healthz"), None, Some("evil.example")).unwrap();
    assert_eq!(code, 421);
    assert_eq!(
        http_get_as(&url("/api/status"), Some(TOKEN), Some("localhost:8000"))
            .unwrap()
            .0,
        200
    );
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
    let encoded = |r: &Recorder| {
        r.status()["inputs"]["ipcam"]["frames_encoded"]
            .as_u64()
            .unwrap()
    };
    let f1 = encoded(&r);
    wait_for(
        Duration::from_secs(20),
        "the encode to go on during signal loss",
        || (encoded(&r) > f1 + 30).then_some(()),
    );
    play_frames(&r.rtsp_url("ipcam"), &["-rtsp_transport", "tcp"], 30).unwrap();
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

/// A camera that sends no audio on an input that carries audio: its picture still comes
/// through (the missing stream holds nothing up), and the restream plays.
#[test]
fn rtsp_camera_without_audio_on_an_audio_input_delivers_its_picture() {
    let cam_dir = tempfile::tempdir().unwrap();
    let camera = Recorder::start(cam_dir.path(), &format!("{ONE_TEST_INPUT}audio = false\n"));
    let dir = tempfile::tempdir().unwrap();
    let input = format!(
        "[inputs.ipcam]\nkind = \"rtsp\"\nurl = \"{}\"\nwidth = 320\nheight = 240\n\
         audio = true\nlatency_ms = 100\n",
        camera.rtsp_url("cam1")
    );
    let r = Recorder::start(dir.path(), &input);
    wait_for(Duration::from_secs(20), "the camera's picture", || {
        let s = &r.status()["inputs"]["ipcam"];
        (s["signal"] == true && s["source"]["state"] == "playing").then_some(())
    });
    play_frames(&r.rtsp_url("ipcam"), &["-rtsp_transport", "tcp"], 20).unwrap();
}
