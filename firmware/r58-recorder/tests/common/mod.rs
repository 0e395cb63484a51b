//! Test harness: starts the real `r58-recorder` binary on free loopback ports in a temp
//! folder, and checks media with the real ffmpeg/ffprobe.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use r58_testkit::{free_port, wait_until as wait_for, Daemon};

pub const TOKEN: &str = "test-token-0123456789";

pub struct Recorder {
    pub daemon: Daemon,
    pub dir: PathBuf,
    pub api: u16,
    pub rtsp: u16,
}

/// A config for `dir` with small, fast test inputs; `extra` is appended verbatim.
pub fn config(dir: &Path, api: u16, rtsp: u16, extra: &str) -> String {
    format!(
        "[api]\nlisten = \"127.0.0.1:{api}\"\ntoken = \"{TOKEN}\"\n\
         [recorder]\ndata_dir = \"{data}\"\nsegment_seconds = 2\n\
         [storage]\nmin_free_mib = 1\ncheck_interval_seconds = 1\n\
         [encoder]\nx264_preset = \"ultrafast\"\nbitrate_kbps = 1000\n\
         [hls]\ndir = \"{hls}\"\nsegment_seconds = 1\n\
         [rtsp]\naddress = \"127.0.0.1\"\nport = {rtsp}\n{extra}",
        data = dir.join("data").display(),
        hls = dir.join("hls").display(),
    )
}

pub const ONE_TEST_INPUT: &str =
    "[inputs.cam1]\nkind = \"test\"\npattern = \"ball\"\nwidth = 320\nheight = 240\nfps = 30\n";

impl Recorder {
    pub fn start(dir: &Path, extra: &str) -> Self {
        let (api, rtsp) = (free_port(), free_port());
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("r58.toml");
        std::fs::write(&config, config_text(dir, api, rtsp, "")).unwrap();
        // Test-specific settings go in a drop-in, layered over the base file as on the box.
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/50-test.toml"), extra).unwrap();
        let daemon = Daemon::new(
            "r58-recorder",
            env!("CARGO_BIN_EXE_r58-recorder"),
            dir.join("recorder.log"),
        )
        .args([std::ffi::OsStr::new("--config"), config.as_os_str()]);
        let mut r = Self {
            daemon,
            dir: dir.to_path_buf(),
            api,
            rtsp,
        };
        r.spawn();
        r
    }

    pub fn spawn(&mut self) {
        self.daemon.spawn();
        self.wait_healthy(Duration::from_secs(30));
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api)
    }

    pub fn rtsp_url(&self, input: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{input}", self.rtsp)
    }

    pub fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.daemon.exited() {
                panic!("recorder exited with {status}: {}", self.log_text());
            }
            if let Ok(r) = http_get(&self.url("/healthz")) {
                if r.0 == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "recorder not healthy in time: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        self.daemon.log_text()
    }

    pub fn status(&self) -> serde_json::Value {
        let (code, body) = http_get(&self.url("/api/status")).unwrap();
        assert_eq!(code, 200);
        serde_json::from_str(&body).unwrap()
    }

    pub fn post(&self, path: &str, body: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let (code, text) = http_post(&self.url(path), body, token).unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    pub fn kill9(&mut self) {
        self.daemon.kill9();
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        self.daemon.terminate(Duration::from_secs(20))
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
}

fn config_text(dir: &Path, api: u16, rtsp: u16, extra: &str) -> String {
    config(dir, api, rtsp, extra)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// GET with the box's API token (every route but `/healthz` needs it).
pub fn http_get(url: &str) -> Result<(u16, String), reqwest::Error> {
    http_get_as(url, Some(TOKEN), None)
}

/// GET with the given token (or none) and `Host` header (or the URL's).
pub fn http_get_as(
    url: &str,
    token: Option<&str>,
    host: Option<&str>,
) -> Result<(u16, String), reqwest::Error> {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(h) = host {
        req = req.header("Host", h);
    }
    let r = req.send()?;
    Ok((r.status().as_u16(), r.text()?))
}

/// GET with the box's API token, the response as it is.
pub fn authed_get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::blocking::Response> {
    client().get(url).bearer_auth(TOKEN).send()
}

/// ffmpeg's option for reading the API with the token (before `-i`).
pub fn auth_header() -> [String; 2] {
    [
        "-headers".into(),
        format!("Authorization: Bearer {TOKEN}\r\n"),
    ]
}

pub fn http_get_range(url: &str, range: &str) -> (u16, Vec<u8>) {
    let r = client()
        .get(url)
        .bearer_auth(TOKEN)
        .header("Range", range)
        .send()
        .unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

pub fn http_post(
    url: &str,
    body: &str,
    token: Option<&str>,
) -> Result<(u16, String), reqwest::Error> {
    let mut req = client()
        .post(url)
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send()?;
    Ok((r.status().as_u16(), r.text()?))
}

/// Decodes a whole media file or URL with ffmpeg; Err with ffmpeg's complaint otherwise.
pub fn decode(input: &str, extra: &[&str]) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-xerror"])
        .args(extra)
        .args(["-i", input, "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{input}: {err}"))
    }
}

/// Duration in seconds of the video stream, as ffprobe counts it.
pub fn duration(file: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=nw=1:nk=1",
        ])
        .arg(file)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0)
}

pub fn manifest(data: &Path, session: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(data.join("recordings").join(session).join("manifest.json"))
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Segment files of an input in a session, sorted.
pub fn segment_files(data: &Path, session: &str, input: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("recordings").join(session).join(input))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "ts"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Plays a stream with ffmpeg for `seconds` and returns how many video frames it decoded.
/// (A client joining a live stream may see a few frames before the next IDR: no -xerror.)
pub fn play_frames(url: &str, extra: &[&str], frames: u64) -> Result<u64, String> {
    let child = spawn_player(url, extra, Some(frames));
    let out = finish_player(child, Duration::from_secs(60))?;
    if out.1 < frames {
        return Err(format!(
            "{url}: ffmpeg stopped after {} of {frames} frames: {}",
            out.1, out.0
        ));
    }
    Ok(out.1)
}

/// Starts ffmpeg decoding the video of `url` (all of it, or `frames` frames), reporting
/// its progress on stdout.
pub fn spawn_player(url: &str, extra: &[&str], frames: Option<u64>) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-progress", "pipe:1"])
        .args(extra)
        .args(["-i", url]);
    if let Some(n) = frames {
        cmd.args(["-frames:v", &n.to_string()]);
    }
    cmd.args(["-map", "0:v", "-f", "null", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("ffmpeg")
}

/// Waits for a player to end (stopping it with SIGINT, as a user would, after `timeout`);
/// returns its error output and the number of frames it decoded.
pub fn finish_player(mut child: Child, timeout: Duration) -> Result<(String, u64), String> {
    let deadline = Instant::now() + timeout;
    let mut interrupted = false;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline && !interrupted {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            interrupted = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let frames = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|v| v.trim().parse().ok())
        .next_back();
    match frames {
        Some(n) if out.status.success() || interrupted => Ok((stderr, n)),
        _ => Err(format!("ffmpeg: {} {stderr}", out.status)),
    }
}

/// Mean luma (0-255) of the first video frame of a file or stream, scaled to 16x16. Fails
/// the test when no frame comes within 30 s.
pub fn mean_luma(input: &str, extra: &[&str]) -> f64 {
    let timeout = Duration::from_secs(30);
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error"])
        .args(extra)
        .args([
            "-i",
            input,
            "-frames:v",
            "1",
            "-vf",
            "scale=16:16",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("ffmpeg").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("ffmpeg");
            panic!(
                "no frame from {input} within {timeout:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("ffmpeg");
    assert!(
        !out.stdout.is_empty(),
        "no frame from {input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.iter().map(|&b| f64::from(b)).sum::<f64>() / out.stdout.len() as f64
}

/// `r58-fleet serve` with the configuration `cfg` (its log beside it).
pub fn fleet_serve(cfg: &Path) -> Daemon {
    Daemon::new(
        "r58-fleet",
        r58_testkit::workspace_bin("r58-fleet"),
        cfg.with_file_name("fleet.log"),
    )
    .args([
        std::ffi::OsStr::new("--config"),
        cfg.as_os_str(),
        std::ffi::OsStr::new("serve"),
    ])
}

/// The fleet with its TURN API on coturn (shared `secret`) and a device token for
/// `r58-test`: (the fleet, its HTTP port, the token).
pub fn start_fleet(dir: &Path, coturn_port: u16, secret: &str) -> (Daemon, u16, String) {
    let port = free_port();
    std::fs::write(dir.join("turn-secret"), secret).unwrap();
    std::fs::write(
        dir.join("fleet.toml"),
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[db]\nurl = \"sqlite://{db}\"\n[devices]\nfile = \"{}\"\n\
             [turn]\nbackend = \"coturn\"\nttl_seconds = 600\n\
             [turn.coturn]\nsecret_file = \"{}\"\nurls = [\"turn:127.0.0.1:{coturn_port}?transport=udp\"]\n",
            dir.join("devices.toml").display(),
            dir.join("turn-secret").display(),
            db = dir.join("fleet.db").display()
        ),
    )
    .unwrap();
    let out = Command::new(r58_testkit::workspace_bin("r58-fleet"))
        .args([
            "--config",
            dir.join("fleet.toml").to_str().unwrap(),
            "device-token",
            "r58-test",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut fleet = fleet_serve(&dir.join("fleet.toml"));
    fleet.spawn();
    wait_for(Duration::from_secs(10), "fleet API", || {
        http_get(&format!("http://127.0.0.1:{port}/healthz"))
            .ok()
            .filter(|r| r.0 == 200)
    });
    (fleet, port, token)
}
