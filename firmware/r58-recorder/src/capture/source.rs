//! The capture side of an input: a pipeline of its own that ends in `appsink`s, restarted
//! with capped exponential backoff when it fails, ends or stalls. Its frames go to the
//! input's encode pipeline; while it is down the encode shows the "no signal" slate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use r58_config::{InputConfig, InputKind};

use crate::capture::Stream;
use crate::main_loop;
use crate::stats::{lock, SourceState, Stats};

/// Where a source pipeline's frames go: the input's encode side.
pub trait FrameSink: Send + Sync + 'static {
    fn id(&self) -> &str;
    fn stats(&self) -> Arc<Stats>;
    fn push_raw(&self, stream: Stream, sample: &gst::Sample);
    /// A new source pipeline plays (its caps may differ from the last one's).
    fn source_restarted(&self);
}

/// Why a source pipeline ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceEnd {
    #[error("building source pipeline: {0}")]
    Build(String),
    #[error("starting source pipeline: {0}")]
    Start(String),
    #[error("watching the pipeline's bus: {0}")]
    NoBus(String),
    #[error("{error} ({debug})")]
    Failed { error: String, debug: String },
    #[error("end of stream")]
    EndOfStream,
    #[error("no frames for {ms} ms")]
    NoFrames { ms: u128 },
    #[error("stopping")]
    Stopping,
}

const AUDIO_CAPS: &str = "audio/x-raw,rate=48000,channels=2";

/// The gst-launch description of the source pipeline for `cfg`.
pub fn describe(cfg: &InputConfig) -> String {
    let (w, h, f) = (cfg.width, cfg.height, cfg.fps);
    // `async=false`: a sink that never gets a buffer must not hold the pipeline out of
    // PLAYING. A source may never send one of the streams (a guest without a microphone, a
    // camera without audio); with prerolling sinks its video would never flow either.
    let vsink = "appsink name=vsink sync=false async=false max-buffers=2 drop=true";
    let asink = "appsink name=asink sync=false async=false max-buffers=20 drop=true";
    match cfg.kind {
        InputKind::Test => {
            let mut d = format!(
                "videotestsrc name=vsrc is-live=true ! video/x-raw,format=I420,width={w},height={h},framerate={f}/1 \
                 ! clockoverlay halignment=right valignment=top shaded-background=true \
                 time-format=\"%Y-%m-%d %H:%M:%S\" ! {vsink}"
            );
            if cfg.audio {
                d.push_str(&format!(
                    " audiotestsrc is-live=true wave=ticks ! {AUDIO_CAPS} ! {asink}"
                ));
            }
            d
        }
        // v4l2src queries and applies the DV timings of HDMI receivers (hdmirx) and
        // renegotiates when the source changes resolution.
        InputKind::V4l2 => {
            let mut d = format!("v4l2src name=vsrc ! video/x-raw ! {vsink}");
            if cfg.audio && cfg.audio_device.is_some() {
                d.push_str(&format!(
                    " alsasrc name=asrc ! audioconvert ! audioresample ! {AUDIO_CAPS} ! {asink}"
                ));
            }
            d
        }
        InputKind::Rtsp | InputKind::Srt | InputKind::Whip => {
            // WebRTC delivers frames at a variable rate without durations: a fixed rate here
            // (GStreamer 1.22's videorate asserts on such frames when its output rate is
            // variable, as the encode pipeline's is).
            let (src, rate) = if cfg.kind == InputKind::Whip {
                (
                    "webrtcbin name=web bundle-policy=max-bundle",
                    format!("videorate ! video/x-raw,framerate={f}/1 ! "),
                )
            } else {
                ("uridecodebin name=dec", String::new())
            };
            let mut d = format!("{src} videoconvert name=vconv ! {rate}{vsink}");
            if cfg.audio {
                d.push_str(&format!(
                    " audioconvert name=aconv ! audioresample ! {AUDIO_CAPS} ! {asink}"
                ));
            }
            d
        }
    }
}

pub(crate) fn build<S: FrameSink>(
    cfg: &InputConfig,
    input: &Weak<S>,
) -> Result<gst::Pipeline, String> {
    let pipeline = gst::parse::launch(&describe(cfg))
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    pipeline.use_clock(Some(&gst::SystemClock::obtain()));
    match cfg.kind {
        InputKind::Test => {
            if let Some(src) = pipeline.by_name("vsrc") {
                src.set_property_from_str("pattern", &cfg.pattern);
            }
        }
        InputKind::V4l2 => {
            if let (Some(src), Some(dev)) = (pipeline.by_name("vsrc"), &cfg.device) {
                src.set_property("device", dev.to_string_lossy().as_ref());
            }
            if let (Some(src), Some(dev)) = (pipeline.by_name("asrc"), &cfg.audio_device) {
                src.set_property("device", dev.as_str());
            }
        }
        InputKind::Rtsp | InputKind::Srt => wire_uridecodebin(&pipeline, cfg)?,
        InputKind::Whip => crate::capture::whip::wire(&pipeline)?,
    }
    for (name, stream) in [("vsink", Stream::Video), ("asink", Stream::Audio)] {
        let Some(sink) = pipeline
            .by_name(name)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        else {
            continue;
        };
        let input = input.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    match input.upgrade() {
                        Some(input) => {
                            input.push_raw(stream, &sample);
                            Ok(gst::FlowSuccess::Ok)
                        }
                        None => Err(gst::FlowError::Flushing),
                    }
                })
                .build(),
        );
    }
    Ok(pipeline)
}

fn wire_uridecodebin(pipeline: &gst::Pipeline, cfg: &InputConfig) -> Result<(), String> {
    let dec = pipeline.by_name("dec").ok_or("no uridecodebin")?;
    dec.set_property("uri", cfg.url.clone().unwrap_or_default());
    let latency = cfg.latency_ms;
    dec.connect("source-setup", false, move |args| {
        if let Some(src) = args.get(1).and_then(|v| v.get::<gst::Element>().ok()) {
            if src.find_property("latency").is_some() {
                match src.property_type("latency") {
                    Some(t) if t == glib::Type::U32 => src.set_property("latency", latency),
                    Some(t) if t == glib::Type::I32 => src.set_property("latency", latency as i32),
                    _ => {}
                }
            }
            if src.find_property("protocols").is_some() {
                src.set_property_from_str("protocols", "tcp");
            }
        }
        None
    });
    let weak = pipeline.downgrade();
    dec.connect_pad_added(move |_, pad| {
        if let Some(pipeline) = weak.upgrade() {
            link_decoded(&pipeline, pad);
        }
    });
    Ok(())
}

/// Links a decoded pad (video or audio) to the pipeline's converter for its kind.
pub(crate) fn link_decoded(pipeline: &gst::Pipeline, pad: &gst::Pad) {
    let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
    let media = caps
        .as_ref()
        .and_then(|c| c.structure(0))
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    let target = if media.starts_with("video/") {
        "vconv"
    } else if media.starts_with("audio/") {
        "aconv"
    } else {
        return;
    };
    if let Some(sink) = pipeline.by_name(target).and_then(|e| e.static_pad("sink")) {
        if !sink.is_linked() {
            if let Err(e) = pad.link(&sink) {
                tracing::warn!(error = ?e, media, "linking decoded pad failed");
            }
        }
    }
}

/// Runs the source pipeline of `input` until `stop` is set, restarting it on failure.
pub fn supervise<S: FrameSink>(
    input: Weak<S>,
    cfg: InputConfig,
    stop: Arc<AtomicBool>,
    stall: Duration,
) {
    let max_backoff = Duration::from_secs(u64::from(cfg.reconnect_max_seconds));
    let mut backoff = Duration::from_millis(500);
    while !stop.load(Ordering::Relaxed) {
        let Some(strong) = input.upgrade() else {
            return;
        };
        let id = strong.id().to_string();
        let stats = strong.stats();
        drop(strong);
        *lock(&stats.source_state) = SourceState::Starting;
        let started = Instant::now();
        let reason = match build(&cfg, &input) {
            Ok(pipeline) => {
                if let Some(i) = input.upgrade() {
                    i.source_restarted();
                }
                let reason = run(
                    &pipeline,
                    &id,
                    &stats,
                    &|| stop.load(Ordering::Relaxed),
                    stall,
                    stall,
                );
                let _ = pipeline.set_state(gst::State::Null);
                reason
            }
            Err(e) => SourceEnd::Build(e),
        };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(500);
        }
        let jitter = Duration::from_millis(u64::from(started.elapsed().subsec_millis() % 250));
        let wait = (backoff + jitter).min(max_backoff);
        tracing::warn!(input = %id, %reason, retry_in_ms = wait.as_millis() as u64, "source down");
        *lock(&stats.source_state) = SourceState::Retrying {
            reason: reason.to_string(),
            retry_in_ms: wait.as_millis() as u64,
        };
        stats.source_restarts.fetch_add(1, Ordering::Relaxed);
        let until = Instant::now() + wait;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(max_backoff);
    }
}

/// Plays the pipeline and watches its bus (on the main loop) and its frames; returns why
/// it ended: an error, the end of stream, `stop`, no first frame within `first_frame`, or
/// no frame for `stall` once frames flowed.
pub(crate) fn run(
    pipeline: &gst::Pipeline,
    id: &str,
    stats: &Stats,
    stop: &dyn Fn() -> bool,
    first_frame: Duration,
    stall: Duration,
) -> SourceEnd {
    // The first error or end of stream ends the run; the watch ends with it.
    let (ended, end) = std::sync::mpsc::sync_channel::<SourceEnd>(1);
    let watch = main_loop::watch(pipeline, id, "source", move |msg| {
        use gst::MessageView;
        let why = match msg.view() {
            MessageView::Error(e) => SourceEnd::Failed {
                error: e.error().to_string(),
                debug: e.debug().map(|d| d.to_string()).unwrap_or_default(),
            },
            MessageView::Eos(_) => SourceEnd::EndOfStream,
            MessageView::Warning(w) => {
                tracing::debug!(warning = %w.error(), "source warning");
                return glib::ControlFlow::Continue;
            }
            _ => return glib::ControlFlow::Continue,
        };
        let _ = ended.try_send(why);
        glib::ControlFlow::Break
    });
    let _watch = match watch {
        Ok(w) => w,
        Err(e) => return SourceEnd::NoBus(e.to_string()),
    };
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        return SourceEnd::Start(e.to_string());
    }
    let started = Instant::now();
    let mut playing = false;
    loop {
        if stop() {
            return SourceEnd::Stopping;
        }
        match end.recv_timeout(Duration::from_millis(100)) {
            Ok(why) => return why,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return SourceEnd::NoBus("the bus watch ended".into())
            }
        }
        // Frames flowing since this run started?
        let age = stats.frame_age_ms().map(Duration::from_millis);
        let fresh = age.is_some_and(|a| a < started.elapsed());
        if fresh && !playing {
            playing = true;
            *lock(&stats.source_state) = SourceState::Playing;
        }
        let (silent_for, limit) = if fresh {
            (age.unwrap_or_default(), stall)
        } else if playing {
            (started.elapsed(), stall)
        } else {
            (started.elapsed(), first_frame)
        };
        if silent_for > limit {
            return SourceEnd::NoFrames {
                ms: silent_for.as_millis(),
            };
        }
    }
}
