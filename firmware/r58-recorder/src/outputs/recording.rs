//! The recording of one input in one session: a pipeline of its own fed by the input's
//! fan-out, `splitmuxsink` with `mpegtsmux` cutting segments on key frames. Its bus is
//! watched on the main loop; the recording's own thread turns segment open/close messages
//! into manifest updates and a write error (disk full) into a clean stop of this recording
//! only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::Utc;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::encode::input::Input;
use crate::error::RecorderError;
use crate::main_loop::{self, BusWatch};
use crate::manifest::segment_name;
use crate::stats::lock;

/// What a recording reports to the session.
#[derive(Debug)]
pub enum RecEvent {
    Opened {
        input: String,
        file: PathBuf,
        running_ns: u64,
    },
    Closed {
        input: String,
        file: PathBuf,
        running_ns: u64,
    },
    Failed {
        input: String,
        reason: Failure,
    },
}

/// Why a recording pipeline stopped on its own; its text is the session's end reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("disk_full")]
    DiskFull,
    #[error("write_error: {0}")]
    WriteError(String),
}

/// Where a recording delivers its events (called on the recording's own thread, which may
/// write to disk).
pub type EventSink = Arc<dyn Fn(RecEvent) + Send + Sync>;

pub struct Recording {
    pub input: Arc<Input>,
    pipeline: gst::Pipeline,
    vsrc: gst_app::AppSrc,
    asrc: Option<gst_app::AppSrc>,
    consumer: u64,
    /// The segment being written, for the periodic fsync.
    pub current: Arc<Mutex<Option<PathBuf>>>,
    /// Handles what the bus reports (segments opened and closed, the end), off the main loop.
    worker: Option<JoinHandle<()>>,
    _bus: BusWatch,
}

/// What the muxer's bus reports that a recording acts on.
enum BusNote {
    Opened { file: PathBuf, running_ns: u64 },
    Closed { file: PathBuf, running_ns: u64 },
    Failed(Failure),
    Ended,
}

pub fn describe(segment_ns: u64, audio: bool) -> String {
    let mut d = format!(
        "appsrc name=v is-live=true format=time max-bytes=33554432 ! h264parse ! queue max-size-time=0 max-size-bytes=0 \
         ! splitmuxsink name=mux muxer-factory=mpegtsmux max-size-time={segment_ns} async-finalize=false"
    );
    if audio {
        d.push_str(" appsrc name=a is-live=true format=time max-bytes=4194304 ! aacparse ! queue max-size-time=0 max-size-bytes=0 ! mux.audio_0");
    }
    d
}

impl Recording {
    pub fn start(
        input: &Arc<Input>,
        dir: &Path,
        segment_seconds: u32,
        events: EventSink,
    ) -> Result<Self, RecorderError> {
        let id = input.id.clone();
        let werr = |what: &str| RecorderError::PipelineWire {
            input: id.clone(),
            stage: "recording",
            what: what.into(),
        };
        std::fs::create_dir_all(dir).map_err(|source| RecorderError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let audio = input.audio_encoder.is_some();
        let pipeline =
            gst::parse::launch(&describe(u64::from(segment_seconds) * 1_000_000_000, audio))
                .map_err(|source| RecorderError::PipelineBuild {
                    input: id.clone(),
                    stage: "recording",
                    source,
                })?
                .downcast::<gst::Pipeline>()
                .map_err(|_| werr("not a pipeline"))?;
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let mux = pipeline.by_name("mux").ok_or_else(|| werr("mux"))?;
        // Unbuffered: every muxed buffer reaches the kernel at once, so `kill -9` loses
        // nothing that was muxed; the fsync twice a second bounds what a power cut loses.
        let filesink = gst::ElementFactory::make("filesink")
            .property_from_str("buffer-mode", "unbuffered")
            .build()
            .map_err(|_| RecorderError::ElementMissing {
                factory: "filesink".into(),
            })?;
        mux.set_property("sink", &filesink);
        let seg_dir = dir.to_path_buf();
        mux.connect("format-location-full", false, move |_| {
            Some(
                seg_dir
                    .join(segment_name(Utc::now()))
                    .to_string_lossy()
                    .to_string()
                    .to_value(),
            )
        });
        let appsrc = |n: &str| {
            pipeline
                .by_name(n)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| werr(n))
        };
        let vsrc = appsrc("v")?;
        let asrc = if audio { Some(appsrc("a")?) } else { None };
        let (notes, worker_notes) = std::sync::mpsc::channel();
        let bus = main_loop::watch(&pipeline, &id, "recording", move |msg| {
            let note = bus_note(msg);
            let last = matches!(note, Some(BusNote::Failed(_) | BusNote::Ended));
            if let Some(n) = note {
                let _ = notes.send(n);
            }
            if last {
                glib::ControlFlow::Break
            } else {
                glib::ControlFlow::Continue
            }
        })?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|source| RecorderError::PipelineStart {
                input: id.clone(),
                stage: "recording",
                source,
            })?;
        let current = Arc::new(Mutex::new(None));
        let worker = spawn_worker(worker_notes, id.clone(), current.clone(), events)
            .map_err(|e| werr(&format!("spawning its thread: {e}")))?;
        let consumer = input
            .fanout
            .attach(&format!("recording:{id}"), &vsrc, asrc.as_ref());
        input.request_keyframe();
        Ok(Self {
            input: input.clone(),
            pipeline,
            vsrc,
            asrc,
            consumer,
            current,
            worker: Some(worker),
            _bus: bus,
        })
    }

    /// Ends the recording: the picture ends now, the sound once it has caught up (bounded),
    /// EOS through the muxer so the last segment is complete, then NULL.
    pub fn stop(mut self) {
        let fanout = &self.input.fanout;
        fanout.finish(self.consumer);
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        while fanout.is_attached(self.consumer) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Whatever the sound reached: both streams end (a second EOS is harmless).
        fanout.detach(self.consumer);
        let _ = self.vsrc.end_of_stream();
        if let Some(a) = &self.asrc {
            let _ = a.end_of_stream();
        }
        if let Some(h) = self.worker.take() {
            // The worker ends at EOS or error; bounded so a wedged muxer cannot hang us.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !h.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !h.is_finished() {
                tracing::warn!(input = %self.input.id, "recording did not finish within 5 s; forcing stop");
            }
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    pub fn current_file(&self) -> Option<PathBuf> {
        lock(&self.current).clone()
    }
}

/// Reads one bus message (on the main loop: nothing here blocks).
fn bus_note(msg: &gst::Message) -> Option<BusNote> {
    use gst::MessageView;
    match msg.view() {
        MessageView::Element(e) => {
            let s = e.structure()?;
            let file = PathBuf::from(s.get::<String>("location").ok()?);
            let running_ns = s
                .get::<gst::ClockTime>("running-time")
                .map(|t| t.nseconds())
                .unwrap_or(0);
            match s.name().as_str() {
                "splitmuxsink-fragment-opened" => Some(BusNote::Opened { file, running_ns }),
                "splitmuxsink-fragment-closed" => Some(BusNote::Closed { file, running_ns }),
                _ => None,
            }
        }
        MessageView::Error(e) => Some(BusNote::Failed(
            if e.error().matches(gst::ResourceError::NoSpaceLeft) {
                Failure::DiskFull
            } else {
                Failure::WriteError(e.error().to_string())
            },
        )),
        MessageView::Eos(_) => Some(BusNote::Ended),
        _ => None,
    }
}

/// The recording's thread: syncs each closed segment and reports what happened, until the
/// recording ends (end of stream, an error, or the watch gone).
fn spawn_worker(
    notes: std::sync::mpsc::Receiver<BusNote>,
    input: String,
    current: Arc<Mutex<Option<PathBuf>>>,
    events: EventSink,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("rec-{input}"))
        .spawn(move || {
            for note in notes {
                match note {
                    BusNote::Opened { file, running_ns } => {
                        *lock(&current) = Some(file.clone());
                        events(RecEvent::Opened {
                            input: input.clone(),
                            file,
                            running_ns,
                        });
                    }
                    BusNote::Closed { file, running_ns } => {
                        let _ = r58_fs::sync_file(&file);
                        events(RecEvent::Closed {
                            input: input.clone(),
                            file,
                            running_ns,
                        });
                    }
                    BusNote::Failed(reason) => {
                        tracing::error!(%input, %reason, "recording failed");
                        if let Some(file) = lock(&current).clone() {
                            events(RecEvent::Closed {
                                input: input.clone(),
                                file,
                                running_ns: 0,
                            });
                        }
                        events(RecEvent::Failed {
                            input: input.clone(),
                            reason,
                        });
                        break;
                    }
                    BusNote::Ended => break,
                }
            }
        })
}
