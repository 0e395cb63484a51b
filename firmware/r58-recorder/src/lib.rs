//! `r58-recorder`: capture → one encode per input → crash-safe recording, RTSP and HLS,
//! with an HTTP API. See docs/recorder.md.

mod api;
mod capture;
mod check;
mod encode;
pub mod error;
mod guests;
mod main_loop;
mod manifest;
mod outputs;
pub mod run;
mod service;
mod stats;
mod store;
mod turn;

pub use error::RecorderError;
