//! The recorder as a whole: inputs, HLS, RTSP, sessions and the monitor thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use r58_config::R58Config;

use crate::encode::input::Input;
use crate::error::RecorderError;
use crate::outputs::hls::Hls;
use crate::outputs::rtsp::RtspServer;
use crate::stats::lock;
use crate::store::sessions::Sessions;
use crate::store::storage;

/// How often the segments being written are fsynced: what a power cut may lose, beyond what
/// the encoder and muxer hold.
const SYNC_INTERVAL: Duration = Duration::from_millis(500);

pub struct Recorder {
    pub cfg: R58Config,
    pub inputs: BTreeMap<String, Arc<Input>>,
    pub sessions: Arc<Sessions>,
    hls: Mutex<Vec<Hls>>,
    rtsp: Mutex<Option<RtspServer>>,
    pub rtsp_port: Option<u16>,
    pub started: Instant,
    stop: Arc<AtomicBool>,
    /// Inputs that were recording when the service last stopped, to resume once ready.
    pub resume: Vec<String>,
    /// The TURN credential endpoint, set once the async runtime runs.
    pub turn: std::sync::OnceLock<crate::turn::TurnEndpoint>,
    /// Invites for guests (`whip` inputs).
    pub invites: crate::guests::Invites,
}

impl Recorder {
    /// Starts every enabled input with its HLS output, the RTSP server and the monitor.
    pub fn start(cfg: R58Config) -> Result<Arc<Self>, RecorderError> {
        gst::init().map_err(RecorderError::GstInit)?;
        let (sessions, resume) =
            Sessions::open(&cfg.recorder.data_dir, cfg.recorder.segment_seconds)?;
        let mut inputs = BTreeMap::new();
        for (id, icfg) in cfg.inputs.iter().filter(|(_, c)| c.enabled) {
            let input = Input::start(id, icfg, &cfg.encoder, &cfg.watchdog, &cfg.guests)?;
            tracing::info!(input = %id, kind = ?icfg.kind, encoder = %input.video_encoder, "input started");
            inputs.insert(id.clone(), input);
        }
        let mut hls = Vec::new();
        if cfg.hls.enabled {
            for input in inputs.values() {
                hls.push(Hls::start(input, &cfg.hls)?);
            }
        }
        let rtsp = if cfg.rtsp.enabled {
            Some(RtspServer::start(&cfg.rtsp, &inputs)?)
        } else {
            None
        };
        let resume = if cfg.recorder.record_on_start {
            inputs.keys().cloned().collect()
        } else {
            resume
        };
        let invites = crate::guests::Invites::open(
            cfg.recorder.data_dir.join("recorder").join("invites.json"),
        );
        let recorder = Arc::new(Self {
            invites,
            rtsp_port: rtsp.as_ref().map(|r| r.port),
            cfg,
            inputs,
            sessions,
            hls: Mutex::new(hls),
            rtsp: Mutex::new(rtsp),
            started: Instant::now(),
            stop: Arc::new(AtomicBool::new(false)),
            resume,
            turn: std::sync::OnceLock::new(),
        });
        recorder.spawn_monitor();
        Ok(recorder)
    }

    fn spawn_monitor(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let stop = self.stop.clone();
        let _ = std::thread::Builder::new()
            .name("monitor".into())
            .spawn(move || {
                let mut last_sync = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    let Some(rec) = weak.upgrade() else { break };
                    for input in rec.inputs.values() {
                        input.tick();
                    }
                    if last_sync.elapsed() >= SYNC_INTERVAL {
                        rec.sessions.sync_open_segments();
                        last_sync = Instant::now();
                    }
                }
            });
        // The guard has a thread of its own: stopping a recording may take seconds (EOS).
        let weak = Arc::downgrade(self);
        let stop = self.stop.clone();
        let _ = std::thread::Builder::new()
            .name("storage-guard".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(rec) = weak.upgrade() else { break };
                    storage::enforce(&rec.sessions, &rec.cfg.storage);
                    let interval = storage::interval(&rec.cfg.storage);
                    drop(rec);
                    let until = Instant::now() + interval;
                    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            });
    }

    /// Waits until every input produces encoded frames.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), RecorderError> {
        let deadline = Instant::now() + timeout;
        loop {
            let waiting: Vec<String> = self
                .inputs
                .values()
                .filter(|i| i.stats.encoded_age_ms().is_none())
                .map(|i| i.id.clone())
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RecorderError::StartTimeout {
                    seconds: timeout.as_secs(),
                    waiting: waiting.join(", "),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ok while every input's encode produces frames (what the watchdog is fed on).
    pub fn health(&self) -> Result<(), String> {
        let stall = Duration::from_secs(u64::from(self.cfg.watchdog.stall_seconds));
        self.inputs.values().try_for_each(|i| i.health(stall))
    }

    /// Resolves a request's input list: None or empty means every enabled input.
    pub fn select(&self, ids: Option<&[String]>) -> Result<Vec<Arc<Input>>, RecorderError> {
        match ids {
            None | Some([]) => Ok(self.inputs.values().cloned().collect()),
            Some(ids) => ids
                .iter()
                .map(|id| match (self.inputs.get(id), self.cfg.inputs.get(id)) {
                    (Some(i), _) => Ok(i.clone()),
                    (None, Some(_)) => Err(RecorderError::InputDisabled(id.clone())),
                    (None, None) => Err(RecorderError::UnknownInput(id.clone())),
                })
                .collect(),
        }
    }

    pub fn start_recording(
        &self,
        ids: Option<&[String]>,
    ) -> Result<(String, Vec<String>), RecorderError> {
        let inputs = self.select(ids)?;
        storage::check_can_record(&self.sessions, &self.cfg.storage)?;
        self.sessions.start(&inputs)
    }

    pub fn stop_recording(&self, ids: Option<&[String]>) -> Result<Vec<String>, RecorderError> {
        let inputs = self.select(ids)?;
        let ids: Vec<String> = inputs.iter().map(|i| i.id.clone()).collect();
        Ok(self.sessions.stop(Some(&ids), "stopped", false))
    }

    /// Orderly stop: finish open segments (EOS), then stop streams and inputs.
    pub fn shutdown(&self) {
        self.sessions.stop(None, "shutdown", true);
        for h in lock(&self.hls).drain(..) {
            h.stop();
        }
        if let Some(r) = lock(&self.rtsp).take() {
            r.stop();
        }
        self.stop.store(true, Ordering::Relaxed);
        for input in self.inputs.values() {
            input.shutdown();
        }
    }
}
