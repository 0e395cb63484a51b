//! `r58-recorder --check`: parses every pipeline description the configured inputs and
//! outputs use (source, slate, encode, recording, HLS, RTSP) without starting any, plus the
//! elements those pipelines only create while running (decoders behind `uridecodebin`, the
//! muxer of `splitmuxsink`), and names each GStreamer element that is not installed.

use gstreamer as gst;
use r58_config::{InputConfig, InputKind, R58Config};

use crate::encode::encoder;
use crate::error::RecorderError;

/// One pipeline the recorder would build, and what of it is missing here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineCheck {
    /// The input it belongs to.
    pub input: String,
    /// `source`, `slate`, `encode`, `recording`, `hls`, `rtsp`.
    pub stage: &'static str,
    /// Element factories that are not installed.
    pub missing: Vec<String>,
    /// A description that does not parse for another reason (a bad property, a link).
    pub error: Option<String>,
}

impl PipelineCheck {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.error.is_none()
    }
}

/// Elements a pipeline of this input creates only while running.
fn runtime_elements(cfg: &InputConfig) -> &'static [&'static str] {
    match cfg.kind {
        InputKind::Test | InputKind::V4l2 => &[],
        InputKind::Rtsp => &["rtspsrc", "rtph264depay", "h264parse", "avdec_h264"],
        InputKind::Srt => &["srtsrc", "tsdemux", "h264parse", "avdec_h264"],
        InputKind::Whip => &[
            "webrtcbin",
            "nicesrc",
            "rtph264depay",
            "avdec_h264",
            "rtpvp8depay",
            "vp8dec",
            "rtpopusdepay",
            "opusdec",
        ],
    }
}

/// Checks every pipeline of every enabled input in `cfg`. Initialises GStreamer.
pub fn pipelines(cfg: &R58Config) -> Result<Vec<PipelineCheck>, RecorderError> {
    gst::init().map_err(RecorderError::GstInit)?;
    let mut out = Vec::new();
    for (id, icfg) in cfg.inputs.iter().filter(|(_, c)| c.enabled) {
        let mut push = |stage, desc: Option<String>, extra: &[&str]| {
            out.push(check_one(id, stage, desc.as_deref(), extra));
        };
        push(
            "source",
            Some(crate::capture::source::describe(icfg)),
            runtime_elements(icfg),
        );
        // The encoder is picked from what is installed: when none is, say which were tried.
        let venc = encoder::pick_video(&cfg.encoder);
        let aenc = if icfg.audio {
            Some(encoder::pick_audio())
        } else {
            None
        };
        let mut missing_encoders = Vec::new();
        let venc_name = match &venc {
            Ok(v) => v.clone(),
            Err(_) => {
                missing_encoders.push(wanted(&cfg.encoder.video, encoder::VIDEO_ENCODERS));
                "x264enc".to_string()
            }
        };
        let aenc_name = match aenc {
            Some(Ok(a)) => Some(a),
            Some(Err(_)) => {
                missing_encoders.push(wanted("auto", encoder::AUDIO_ENCODERS));
                Some("avenc_aac".to_string())
            }
            None => None,
        };
        push(
            "slate",
            Some(crate::encode::slate::describe(
                encoder::raw_format(&venc_name),
                icfg.width,
                icfg.height,
                icfg.fps,
            )),
            &[],
        );
        let encode = crate::encode::input::describe_encode(
            icfg,
            &cfg.encoder,
            &venc_name,
            aenc_name.as_deref(),
        );
        let mut check = check_one(id, "encode", Some(&encode), &[]);
        // The stand-in names above are not what is missing: the encoder choice is.
        check
            .missing
            .retain(|m| m != &venc_name && Some(m) != aenc_name.as_ref());
        check.missing.extend(missing_encoders);
        out.push(check);
        let audio = aenc_name.is_some();
        let segment_ns = u64::from(cfg.recorder.segment_seconds) * 1_000_000_000;
        out.push(check_one(
            id,
            "recording",
            Some(&crate::outputs::recording::describe(segment_ns, audio)),
            &["mpegtsmux", "filesink"],
        ));
        if cfg.hls.enabled {
            out.push(check_one(
                id,
                "hls",
                Some(&crate::outputs::hls::describe(&cfg.hls, audio)),
                &["mpegtsmux"],
            ));
        }
        if cfg.rtsp.enabled {
            out.push(check_one(
                id,
                "rtsp",
                Some(&crate::outputs::rtsp::describe(audio)),
                &[],
            ));
        }
    }
    Ok(out)
}

/// How a missing encoder choice is named: the configured one, or "one of [...]".
fn wanted(configured: &str, order: &[&str]) -> String {
    if configured == "auto" {
        format!("one of [{}]", order.join(", "))
    } else {
        configured.to_string()
    }
}

fn check_one(
    input: &str,
    stage: &'static str,
    desc: Option<&str>,
    extra: &[&str],
) -> PipelineCheck {
    let mut missing = Vec::new();
    let mut error = None;
    if let Some(desc) = desc {
        let mut ctx = gst::ParseContext::new();
        match gst::parse::launch_full(desc, Some(&mut ctx), gst::ParseFlags::FATAL_ERRORS) {
            Ok(el) => {
                let _ = gst::prelude::ElementExt::set_state(&el, gst::State::Null);
            }
            Err(e) => {
                missing = ctx.missing_elements();
                if missing.is_empty() {
                    error = Some(e.to_string());
                }
            }
        }
    }
    for name in extra {
        if gst::ElementFactory::find(name).is_none() && !missing.iter().any(|m| m == name) {
            missing.push((*name).to_string());
        }
    }
    PipelineCheck {
        input: input.to_string(),
        stage,
        missing,
        error,
    }
}

/// Prints one line per pipeline; an error names every missing element.
pub fn report(checks: &[PipelineCheck]) -> Result<(), RecorderError> {
    for c in checks {
        if c.ok() {
            println!("ok       {} {}", c.input, c.stage);
        } else if let Some(e) = &c.error {
            println!("invalid  {} {}: {e}", c.input, c.stage);
        } else {
            println!("missing  {} {}: {}", c.input, c.stage, c.missing.join(", "));
        }
    }
    let mut missing: Vec<String> = checks.iter().flat_map(|c| c.missing.clone()).collect();
    missing.sort();
    missing.dedup();
    let invalid: Vec<String> = checks
        .iter()
        .filter(|c| c.error.is_some())
        .map(|c| format!("{} {}", c.input, c.stage))
        .collect();
    if missing.is_empty() && invalid.is_empty() {
        println!("pipelines ok: {} checked", checks.len());
        Ok(())
    } else {
        Err(RecorderError::PipelineCheck { missing, invalid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_element_is_named_and_a_present_one_is_not() {
        gst::init().unwrap();
        let c = check_one(
            "cam1",
            "source",
            Some("videotestsrc ! r58nosuchelement ! fakesink"),
            &["r58alsomissing", "fakesink"],
        );
        assert_eq!(c.missing, vec!["r58nosuchelement", "r58alsomissing"]);
        assert!(c.error.is_none());
        assert!(!c.ok());
        let ok = check_one("cam1", "source", Some("videotestsrc ! fakesink"), &[]);
        assert!(ok.ok(), "{ok:?}");
        let bad = check_one("cam1", "source", Some("videotestsrc ! ! fakesink"), &[]);
        assert!(bad.missing.is_empty() && bad.error.is_some(), "{bad:?}");
        assert!(report(&[bad]).is_err());
    }

    #[test]
    fn every_stage_of_every_enabled_input_is_checked() {
        let mut cfg = R58Config::default();
        let mut input = InputConfig::default();
        input.kind = InputKind::Rtsp;
        input.url = Some("rtsp://127.0.0.1/x".into());
        cfg.inputs.insert("cam1".into(), input.clone());
        input.enabled = false;
        cfg.inputs.insert("cam2".into(), input);
        let checks = pipelines(&cfg).unwrap();
        let stages: Vec<_> = checks.iter().map(|c| (c.input.as_str(), c.stage)).collect();
        assert_eq!(
            stages,
            vec![
                ("cam1", "source"),
                ("cam1", "slate"),
                ("cam1", "encode"),
                ("cam1", "recording"),
                ("cam1", "hls"),
                ("cam1", "rtsp"),
            ]
        );
        // The test command installs every package the recorder needs: nothing is missing.
        assert!(checks.iter().all(PipelineCheck::ok), "{checks:?}");
    }
}
