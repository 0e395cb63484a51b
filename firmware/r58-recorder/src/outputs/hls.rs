//! Live HLS of each input for browsers: a consumer pipeline with `hlssink2` writing
//! MPEG-TS segments and `index.m3u8` into `<hls.dir>/<input>/`, served by the HTTP API.

use std::path::Path;
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use r58_config::HlsConfig;

use crate::encode::input::Input;
use crate::error::RecorderError;
use crate::main_loop::{self, BusWatch};

pub struct Hls {
    pipeline: gst::Pipeline,
    input: Arc<Input>,
    consumer: u64,
    _bus: BusWatch,
}

/// The gst-launch description of an input's HLS pipeline.
pub fn describe(cfg: &HlsConfig, audio: bool) -> String {
    let mut desc = format!(
        "appsrc name=v is-live=true format=time max-bytes=16777216 ! h264parse ! hlssink2 name=hls \
         target-duration={} playlist-length={} max-files={} send-keyframe-requests=false",
        cfg.segment_seconds,
        cfg.playlist_length,
        cfg.playlist_length + 4
    );
    if audio {
        desc.push_str(
            " appsrc name=a is-live=true format=time max-bytes=4194304 ! aacparse ! hls.audio",
        );
    }
    desc
}

impl Hls {
    pub fn start(input: &Arc<Input>, cfg: &HlsConfig) -> Result<Self, RecorderError> {
        let id = &input.id;
        let werr = |what: &str| RecorderError::PipelineWire {
            input: id.clone(),
            stage: "hls",
            what: what.into(),
        };
        let dir = cfg.dir.join(id);
        // Old segments from an earlier run would confuse players: start clean.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|source| RecorderError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let audio = input.audio_encoder.is_some();
        let pipeline = gst::parse::launch(&describe(cfg, audio))
            .map_err(|source| RecorderError::PipelineBuild {
                input: id.clone(),
                stage: "hls",
                source,
            })?
            .downcast::<gst::Pipeline>()
            .map_err(|_| werr("not a pipeline"))?;
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let hls = pipeline.by_name("hls").ok_or_else(|| werr("hls"))?;
        hls.set_property("location", path_str(&dir.join("segment%05d.ts")));
        hls.set_property("playlist-location", path_str(&dir.join("index.m3u8")));
        let appsrc = |n: &str| {
            pipeline
                .by_name(n)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| werr(n))
        };
        let v = appsrc("v")?;
        let a = if audio { Some(appsrc("a")?) } else { None };
        let bus = log_bus(&pipeline, id)?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|source| RecorderError::PipelineStart {
                input: id.clone(),
                stage: "hls",
                source,
            })?;
        let consumer = input.fanout.attach(&format!("hls:{id}"), &v, a.as_ref());
        Ok(Self {
            pipeline,
            input: input.clone(),
            consumer,
            _bus: bus,
        })
    }

    pub fn stop(&self) {
        self.input.fanout.detach(self.consumer);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Logs what the consumer pipeline reports (errors and warnings), on the main loop.
fn log_bus(pipeline: &gst::Pipeline, id: &str) -> Result<BusWatch, RecorderError> {
    let input = id.to_string();
    main_loop::watch(pipeline, id, "hls", move |msg| {
        match msg.view() {
            gst::MessageView::Error(e) => {
                tracing::error!(%input, error = %e.error(), "hls pipeline")
            }
            gst::MessageView::Warning(w) => {
                tracing::warn!(%input, warning = %w.error(), "hls pipeline")
            }
            _ => {}
        }
        glib::ControlFlow::Continue
    })
}
