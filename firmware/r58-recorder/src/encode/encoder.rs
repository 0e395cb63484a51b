//! Picks and configures the H.264 and audio encoders.
//!
//! Order for `encoder.video = "auto"`: Rockchip MPP (`mpph264enc`, the RK3588's VPU),
//! a V4L2 stateful encoder (`v4l2h264enc`), `x264enc`, `openh264enc`. Every choice emits
//! browser-safe H.264: no B-frames, and `h264parse config-interval=-1` after it repeats
//! SPS/PPS in-band before every IDR.

use gstreamer as gst;
use gstreamer::prelude::*;

use r58_config::EncoderConfig;

use crate::error::RecorderError;

pub const VIDEO_ENCODERS: &[&str] = &["mpph264enc", "v4l2h264enc", "x264enc", "openh264enc"];
pub const AUDIO_ENCODERS: &[&str] = &["fdkaacenc", "avenc_aac", "voaacenc"];

/// The factory name to use: the configured one (which must exist) or the first available.
pub fn pick_video(cfg: &EncoderConfig) -> Result<String, RecorderError> {
    pick(&cfg.video, VIDEO_ENCODERS)
}

pub fn pick_audio() -> Result<String, RecorderError> {
    pick("auto", AUDIO_ENCODERS)
}

fn pick(wanted: &str, order: &[&str]) -> Result<String, RecorderError> {
    if wanted != "auto" {
        return match gst::ElementFactory::find(wanted) {
            Some(_) => Ok(wanted.to_string()),
            None => Err(RecorderError::EncoderMissing {
                name: wanted.to_string(),
            }),
        };
    }
    order
        .iter()
        .find(|name| gst::ElementFactory::find(name).is_some())
        .map(|s| s.to_string())
        .ok_or_else(|| RecorderError::EncoderMissing {
            name: order.join(", "),
        })
}

/// The raw format the encoder is fed: NV12 for the hardware encoders, I420 otherwise.
pub fn raw_format(factory: &str) -> &'static str {
    match factory {
        "mpph264enc" | "v4l2h264enc" => "NV12",
        _ => "I420",
    }
}

/// Sets bitrate, GOP and latency settings on a video encoder made from `factory`.
pub fn configure_video(el: &gst::Element, factory: &str, cfg: &EncoderConfig, fps: u32) {
    let gop = cfg.gop_seconds * fps;
    let kbps = cfg.bitrate_kbps;
    match factory {
        "x264enc" => {
            el.set_property("bitrate", kbps);
            el.set_property("key-int-max", gop);
            el.set_property_from_str("tune", "zerolatency");
            el.set_property_from_str("speed-preset", &cfg.x264_preset);
            el.set_property("b-adapt", false);
            el.set_property("bframes", 0u32);
        }
        "mpph264enc" => {
            el.set_property("bps", kbps * 1000);
            el.set_property("gop", gop as i32);
            el.set_property_from_str("rc-mode", "cbr");
        }
        "openh264enc" => {
            el.set_property("bitrate", kbps * 1000);
            el.set_property("gop-size", gop);
        }
        "v4l2h264enc" => {
            let controls = gst::Structure::builder("controls")
                .field("video_bitrate", (kbps * 1000) as i32)
                .field("h264_i_frame_period", gop as i32)
                .build();
            el.set_property("extra-controls", controls);
        }
        _ => tracing::warn!(factory, "unknown encoder: using its default settings"),
    }
}

/// Sets the bitrate on an audio encoder, whatever integer type its property has.
pub fn configure_audio(el: &gst::Element, cfg: &EncoderConfig) {
    let bps = (cfg.audio_bitrate_kbps * 1000) as i32;
    if el.find_property("bitrate").is_some() {
        match el.property_type("bitrate") {
            Some(t) if t == glib::Type::I32 => el.set_property("bitrate", bps),
            Some(t) if t == glib::Type::U32 => el.set_property("bitrate", bps as u32),
            Some(t) if t == glib::Type::I64 => el.set_property("bitrate", bps as i64),
            _ => {}
        }
    }
}
