//! Outputs fed from an input's encoded stream: the crash-safe recording, HLS and RTSP.

pub mod hls;
pub mod recording;
pub mod rtsp;
