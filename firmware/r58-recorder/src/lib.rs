//! `r58-recorder`: capture → one encode per input → crash-safe recording, RTSP and HLS,
//! with an HTTP API. See docs/recorder.md.

pub mod api;
pub mod check;
pub mod encoder;
pub mod error;
pub mod fanout;
pub mod hls;
pub mod input;
pub mod manifest;
pub mod paths;
pub mod recording;
pub mod rtsp;
pub mod run;
pub mod service;
pub mod sessions;
pub mod slate;
pub mod source;
pub mod stats;
pub mod storage;
pub mod turn;

pub use error::RecorderError;
