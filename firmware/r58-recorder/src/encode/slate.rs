//! The "no signal" slate: one still frame, rendered once at the input's output size, that
//! the input pushes into its encode at the output frame rate while its source delivers
//! nothing. The encode never stops, so recording and streams run through a signal loss.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::error::RecorderError;

/// The gst-launch description of the pipeline that renders the slate.
pub fn describe(format: &str, width: u32, height: u32, fps: u32) -> String {
    format!(
        "videotestsrc pattern=black num-buffers=1 \
         ! video/x-raw,format={format},width={width},height={height},framerate={fps}/1,pixel-aspect-ratio=1/1 \
         ! textoverlay name=text font-desc=\"Sans Bold 40\" halignment=center valignment=center \
         ! appsink name=out sync=false"
    )
}

/// Renders the slate for `id` as raw video of the given format and size.
pub fn render(
    id: &str,
    format: &str,
    width: u32,
    height: u32,
    fps: u32,
) -> Result<gst::Sample, RecorderError> {
    let werr = |what: String| RecorderError::PipelineWire {
        input: id.to_string(),
        stage: "slate",
        what,
    };
    let pipeline = gst::parse::launch(&describe(format, width, height, fps))
        .map_err(|source| RecorderError::PipelineBuild {
            input: id.to_string(),
            stage: "slate",
            source,
        })?
        .downcast::<gst::Pipeline>()
        .map_err(|_| werr("not a pipeline".into()))?;
    if let Some(text) = pipeline.by_name("text") {
        text.set_property("text", format!("NO SIGNAL\n{id}"));
    }
    let sink = pipeline
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| werr("appsink".into()))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|source| RecorderError::PipelineStart {
            input: id.to_string(),
            stage: "slate",
            source,
        })?;
    let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(10));
    let _ = pipeline.set_state(gst::State::Null);
    sample.ok_or_else(|| werr("no slate frame rendered".into()))
}
