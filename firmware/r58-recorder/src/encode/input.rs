//! One input: its source (restartable, see `source`), its single encode, and the fan-out
//! of encoded buffers to recording, HLS and RTSP.
//!
//! Encode pipeline: `appsrc` (frames from the source, mapped to this pipeline's running
//! time) → convert/scale (passthrough when the source already fits) → encoder →
//! `h264parse` → `appsink`. While no source frame arrives, a slate thread pushes the
//! "no signal" still instead (see `slate`), so the output never stops: recording and
//! streams continue through a signal loss and resume without a restart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use r58_config::{EncoderConfig, GuestsConfig, InputConfig, InputKind, WatchdogConfig};

use crate::capture::source::{self, FrameSink};
use crate::capture::whip::{self, GuestPort};
use crate::encode::encoder;
use crate::encode::fanout::{Fanout, Stream};
use crate::error::RecorderError;
use crate::main_loop::{self, BusWatch};
use crate::stats::{lock, mono_ms, SourceFormat, Stats};

/// Extra latency of the audio mixer, so that jittery source audio still makes the deadline.
const MIX_LATENCY_NS: u64 = 100_000_000;

pub struct Input {
    pub id: String,
    pub cfg: InputConfig,
    pub video_encoder: String,
    pub audio_encoder: Option<String>,
    pub stats: Arc<Stats>,
    pub fanout: Arc<Fanout>,
    pipeline: gst::Pipeline,
    vin: gst_app::AppSrc,
    ain: Option<gst_app::AppSrc>,
    slate: gst::Sample,
    /// Last timestamp pushed into `vin`: source and slate frames never go backwards.
    last_video_pts: Mutex<Option<u64>>,
    vout: gst_app::AppSink,
    /// Source-to-encode timestamp offset (ns) for the current source run.
    clock_map: Mutex<Option<i64>>,
    caps_in: Mutex<(Option<gst::Caps>, Option<gst::Caps>)>,
    last_keyframe_request_ms: AtomicU64,
    signal_timeout_ms: u64,
    stop: Arc<AtomicBool>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    bus: Mutex<Option<BusWatch>>,
    /// Where a guest connects, for a `whip` input.
    pub guest: Option<Arc<GuestPort>>,
}

/// The gst-launch description of the encode pipeline (also used by the benchmark baseline).
pub fn describe_encode(
    cfg: &InputConfig,
    enc: &EncoderConfig,
    venc: &str,
    aenc: Option<&str>,
) -> String {
    let (w, h, f) = (cfg.width, cfg.height, cfg.fps);
    let profile = enc.profile.as_str();
    let fmt = encoder::raw_format(venc);
    let mut d = format!(
        "appsrc name=vin is-live=true format=time min-latency=0 max-latency=1000000000 max-buffers=4 leaky-type=downstream \
         ! videoconvert ! videoscale ! videorate drop-only=true max-rate={f} \
         ! video/x-raw,format={fmt},width={w},height={h},pixel-aspect-ratio=1/1 \
         ! queue max-size-buffers=3 max-size-bytes=0 max-size-time=0 \
         ! {venc} name=venc ! video/x-h264,profile={profile} ! h264parse config-interval=-1 \
         ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! appsink name=vout sync=false max-buffers=60 drop=true"
    );
    if let Some(aenc) = aenc {
        d.push_str(&format!(
            " appsrc name=ain is-live=true format=time min-latency=0 max-latency=1000000000 max-buffers=50 leaky-type=downstream \
             ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! amix.sink_0 \
             audiotestsrc is-live=true wave=silence samplesperbuffer=960 \
             ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! amix.sink_1 \
             audiomixer name=amix latency={MIX_LATENCY_NS} ! audioconvert ! {aenc} name=aenc \
             ! aacparse ! audio/mpeg,mpegversion=4,stream-format=adts \
             ! appsink name=aout sync=false max-buffers=100 drop=true"
        ));
    }
    d
}

fn wire_err(input: &str, what: &str) -> RecorderError {
    RecorderError::PipelineWire {
        input: input.to_string(),
        stage: "encode",
        what: what.to_string(),
    }
}

impl Input {
    /// Builds the encode pipeline and starts it and the source supervisor.
    pub fn start(
        id: &str,
        cfg: &InputConfig,
        enc: &EncoderConfig,
        wd: &WatchdogConfig,
        guests: &GuestsConfig,
    ) -> Result<Arc<Self>, RecorderError> {
        let venc = encoder::pick_video(enc)?;
        let aenc = if cfg.audio {
            Some(encoder::pick_audio()?)
        } else {
            None
        };
        let desc = describe_encode(cfg, enc, &venc, aenc.as_deref());
        let pipeline = gst::parse::launch(&desc)
            .map_err(|source| RecorderError::PipelineBuild {
                input: id.into(),
                stage: "encode",
                source,
            })?
            .downcast::<gst::Pipeline>()
            .map_err(|_| wire_err(id, "not a pipeline"))?;
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let by = |n: &str| pipeline.by_name(n).ok_or_else(|| wire_err(id, n));
        encoder::configure_video(&by("venc")?, &venc, enc, cfg.fps);
        if aenc.is_some() {
            encoder::configure_audio(&by("aenc")?, enc);
        }
        let slate = crate::encode::slate::render(
            id,
            encoder::raw_format(&venc),
            cfg.width,
            cfg.height,
            cfg.fps,
        )?;
        let appsrc = |n: &str| {
            by(n)?
                .downcast::<gst_app::AppSrc>()
                .map_err(|_| wire_err(id, n))
        };
        let vin = appsrc("vin")?;
        let ain = if aenc.is_some() {
            Some(appsrc("ain")?)
        } else {
            None
        };
        let vout = by("vout")?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| wire_err(id, "vout"))?;
        let aout = if aenc.is_some() {
            Some(
                by("aout")?
                    .downcast::<gst_app::AppSink>()
                    .map_err(|_| wire_err(id, "aout"))?,
            )
        } else {
            None
        };

        let input = Arc::new(Self {
            id: id.to_string(),
            cfg: cfg.clone(),
            video_encoder: venc,
            audio_encoder: aenc,
            stats: Arc::new(Stats::default()),
            fanout: Arc::new(Fanout::new(id)),
            pipeline,
            vin,
            ain,
            slate,
            last_video_pts: Mutex::new(None),
            vout: vout.clone(),
            clock_map: Mutex::new(None),
            caps_in: Mutex::new((None, None)),
            last_keyframe_request_ms: AtomicU64::new(0),
            signal_timeout_ms: u64::from(wd.signal_timeout_ms),
            stop: Arc::new(AtomicBool::new(false)),
            supervisor: Mutex::new(None),
            bus: Mutex::new(None),
            guest: (cfg.kind == InputKind::Whip)
                .then(|| Arc::new(GuestPort::new(guests.ice_addresses.clone()))),
        });
        input.connect_output(&vout, Stream::Video);
        if let Some(aout) = &aout {
            input.connect_output(aout, Stream::Audio);
        }
        *lock(&input.bus) = Some(input.watch_bus()?);
        input
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|source| RecorderError::PipelineStart {
                input: id.into(),
                stage: "encode",
                source,
            })?;

        let weak = Arc::downgrade(&input);
        let stop = input.stop.clone();
        let scfg = cfg.clone();
        let stall = Duration::from_millis((u64::from(wd.signal_timeout_ms) * 5).max(5000));
        let guest = input.guest.clone();
        let handle = std::thread::Builder::new()
            .name(format!("src-{id}"))
            .spawn(move || match guest {
                Some(port) => whip::supervise(weak, scfg, stop, stall, port),
                None => source::supervise(weak, scfg, stop, stall),
            })
            .map_err(|e| wire_err(id, &format!("spawning source thread: {e}")))?;
        *lock(&input.supervisor) = Some(handle);
        let weak = Arc::downgrade(&input);
        let stop = input.stop.clone();
        let period = Duration::from_nanos(1_000_000_000 / u64::from(cfg.fps.max(1)));
        std::thread::Builder::new()
            .name(format!("slate-{id}"))
            .spawn(move || slate_pump(weak, stop, period))
            .map_err(|e| wire_err(id, &format!("spawning slate thread: {e}")))?;
        Ok(input)
    }

    fn connect_output(self: &Arc<Self>, sink: &gst_app::AppSink, stream: Stream) {
        let weak = Arc::downgrade(self);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(input) = weak.upgrade() else {
                        return Err(gst::FlowError::Flushing);
                    };
                    input.on_encoded(stream, &sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }

    fn on_encoded(&self, stream: Stream, sample: &gst::Sample) {
        if stream == Stream::Video {
            if let Some(buf) = sample.buffer() {
                self.stats.encoded_frames.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .encoded_bytes
                    .fetch_add(buf.size() as u64, Ordering::Relaxed);
                self.stats
                    .last_encoded_ms
                    .store(mono_ms(), Ordering::Relaxed);
                if !buf.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                    self.stats.keyframes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let outcome = self.fanout.push(stream, sample);
        if outcome.waiting_for_keyframe {
            self.request_keyframe();
        }
    }

    /// Asks the encoder for an IDR now (at most every 500 ms), so a new consumer starts fast.
    pub fn request_keyframe(&self) {
        let now = mono_ms();
        let last = self.last_keyframe_request_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 500 {
            return;
        }
        self.last_keyframe_request_ms.store(now, Ordering::Relaxed);
        let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        if let Some(pad) = self.vout.static_pad("sink") {
            pad.push_event(event);
        }
    }

    /// A frame or audio buffer from the source pipeline.
    pub fn push_raw(&self, stream: Stream, sample: &gst::Sample) {
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps_owned()) else {
            return;
        };
        let Some(now) = self.pipeline.current_running_time() else {
            return;
        };
        let src = match stream {
            Stream::Video => &self.vin,
            Stream::Audio => match &self.ain {
                Some(a) => a,
                None => return,
            },
        };
        let now_ns = now.nseconds() as i64;
        let pts_ns = buffer.pts().map(|t| t.nseconds() as i64);
        let mapped = {
            let mut map = lock(&self.clock_map);
            let off = *map.get_or_insert_with(|| now_ns - pts_ns.unwrap_or(now_ns));
            let mut t = pts_ns.map_or(now_ns, |p| p + off);
            // A source that stalled and then bursts: re-anchor rather than be late forever.
            if (t - now_ns).abs() > 1_000_000_000 {
                *map = Some(now_ns - pts_ns.unwrap_or(now_ns));
                t = now_ns;
            }
            t.max(0) as u64
        };
        {
            let mut last = lock(&self.caps_in);
            let slot = if stream == Stream::Video {
                &mut last.0
            } else {
                &mut last.1
            };
            if slot.as_ref() != Some(&caps) {
                src.set_caps(Some(&caps));
                *slot = Some(caps.clone());
                if stream == Stream::Video {
                    self.note_source_format(&caps);
                }
            }
        }
        let mut out = buffer.copy();
        {
            let out = out.make_mut();
            out.set_pts(gst::ClockTime::from_nseconds(mapped));
            out.set_dts(gst::ClockTime::NONE);
        }
        if stream == Stream::Video {
            self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
            self.stats.last_frame_ms.store(mono_ms(), Ordering::Relaxed);
            if !self.advance_video_pts(mapped) {
                return;
            }
        }
        if src.push_buffer(out).is_err() {
            self.stats.dropped_in.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Claims `pts` for the next video frame; false if it would go backwards.
    fn advance_video_pts(&self, pts: u64) -> bool {
        let mut last = lock(&self.last_video_pts);
        if last.is_some_and(|l| pts <= l) {
            return false;
        }
        *last = Some(pts);
        true
    }

    /// Pushes one slate frame stamped now, unless the source delivers.
    fn push_slate(&self) {
        if self.stats.signal.load(Ordering::Relaxed) {
            return;
        }
        let (Some(now), Some(buffer), Some(caps)) = (
            self.pipeline.current_running_time(),
            self.slate.buffer(),
            self.slate.caps_owned(),
        ) else {
            return;
        };
        if !self.advance_video_pts(now.nseconds()) {
            return;
        }
        {
            let mut last = lock(&self.caps_in);
            if last.0.as_ref() != Some(&caps) {
                self.vin.set_caps(Some(&caps));
                last.0 = Some(caps);
            }
        }
        let mut out = buffer.copy();
        {
            let out = out.make_mut();
            out.set_pts(now);
            out.set_dts(gst::ClockTime::NONE);
            out.set_duration(gst::ClockTime::NONE);
        }
        let _ = self.vin.push_buffer(out);
    }

    fn note_source_format(&self, caps: &gst::Caps) {
        let Some(s) = caps.structure(0) else { return };
        let fps = s
            .get::<gst::Fraction>("framerate")
            .map(|f| f.numer() as f64 / f.denom().max(1) as f64);
        *lock(&self.stats.source_format) = Some(SourceFormat {
            width: s.get("width").unwrap_or(0),
            height: s.get("height").unwrap_or(0),
            fps: fps.unwrap_or(0.0),
            format: s.get::<String>("format").unwrap_or_default(),
        });
    }

    /// Called by the source supervisor when a new source run starts.
    pub fn source_restarted(&self) {
        *lock(&self.clock_map) = None;
    }

    /// Decides from how long ago the last frame came whether the slate shows; updates rates.
    pub fn tick(&self) {
        self.stats.sample_rates();
        let live = self
            .stats
            .frame_age_ms()
            .is_some_and(|a| a <= self.signal_timeout_ms);
        let was = self.stats.signal.swap(live, Ordering::Relaxed);
        if was != live {
            if live {
                tracing::info!(input = %self.id, "signal present");
            } else {
                tracing::warn!(input = %self.id, "signal lost: showing the slate");
            }
        }
    }

    /// Ok while the encode produces frames; the reason otherwise (feeds the watchdog).
    pub fn health(&self, stall: Duration) -> Result<(), String> {
        if let Some(reason) = lock(&self.stats.fatal).clone() {
            return Err(format!("input {}: {reason}", self.id));
        }
        match self.stats.encoded_age_ms() {
            Some(age) if age <= stall.as_millis() as u64 => Ok(()),
            Some(age) => Err(format!("input {}: no encoded frame for {age} ms", self.id)),
            None => Err(format!("input {}: no encoded frame yet", self.id)),
        }
    }

    /// Watches the encode pipeline's bus on the main loop: an error is fatal for the input
    /// (its health says why), warnings are logged.
    fn watch_bus(self: &Arc<Self>) -> Result<BusWatch, RecorderError> {
        let weak = Arc::downgrade(self);
        let id = self.id.clone();
        main_loop::watch(&self.pipeline, &self.id, "encode", move |msg| {
            use gst::MessageView;
            let Some(input) = weak.upgrade() else {
                return glib::ControlFlow::Break;
            };
            match msg.view() {
                MessageView::Error(e) => {
                    let reason = format!(
                        "{} ({})",
                        e.error(),
                        e.debug().map(|d| d.to_string()).unwrap_or_default()
                    );
                    tracing::error!(input = %id, %reason, "encode pipeline failed");
                    *lock(&input.stats.fatal) = Some(reason);
                }
                MessageView::Warning(w) => tracing::warn!(
                    input = %id,
                    element = %msg.src().map(|s| s.path_string().to_string()).unwrap_or_default(),
                    warning = %w.error(),
                    debug = ?w.debug(),
                    "encode pipeline"
                ),
                MessageView::Eos(_) => return glib::ControlFlow::Break,
                _ => {}
            }
            glib::ControlFlow::Continue
        })
    }

    /// Stops the source and the encode pipeline (consumers are stopped before this).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = lock(&self.supervisor).take() {
            let _ = h.join();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        lock(&self.bus).take();
    }
}

/// Pushes slate frames at the output frame rate while the input has no signal.
fn slate_pump(input: std::sync::Weak<Input>, stop: Arc<AtomicBool>, period: Duration) {
    let mut next = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let Some(i) = input.upgrade() else { break };
        i.push_slate();
        drop(i);
        next += period;
        let now = std::time::Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

impl FrameSink for Input {
    fn id(&self) -> &str {
        &self.id
    }

    fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    fn push_raw(&self, stream: Stream, sample: &gst::Sample) {
        Input::push_raw(self, stream, sample);
    }

    fn source_restarted(&self) {
        Input::source_restarted(self);
    }
}
