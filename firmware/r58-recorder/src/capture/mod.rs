//! Capture: the source pipelines (HDMI through v4l2, RTSP/SRT, test sources, guests over
//! WHIP), restarted when they fail, handing their frames to the encode side.

pub mod source;
pub mod whip;

/// Which elementary stream a buffer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Video,
    Audio,
}
