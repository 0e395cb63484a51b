//! Live figures of one input, shared between GStreamer threads and the API.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde::Serialize;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds on a monotonic clock (since the first call in this process), never 0.
pub fn mono_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// What the source side of an input is doing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SourceState {
    Starting,
    Playing,
    Retrying { reason: String, retry_in_ms: u64 },
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceFormat {
    pub width: i32,
    pub height: i32,
    pub fps: f64,
    pub format: String,
}

#[derive(Debug)]
pub struct Stats {
    pub frames_in: AtomicU64,
    pub last_frame_ms: AtomicU64,
    pub encoded_frames: AtomicU64,
    pub encoded_bytes: AtomicU64,
    pub last_encoded_ms: AtomicU64,
    pub keyframes: AtomicU64,
    pub dropped_in: AtomicU64,
    pub source_restarts: AtomicU64,
    pub signal: AtomicBool,
    pub source_state: Mutex<SourceState>,
    pub source_format: Mutex<Option<SourceFormat>>,
    /// Set when the encode pipeline reported an error; the watchdog then fails.
    pub fatal: Mutex<Option<String>>,
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    at_ms: u64,
    frames: u64,
    bytes: u64,
    fps: f64,
    kbps: f64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            frames_in: AtomicU64::new(0),
            last_frame_ms: AtomicU64::new(0),
            encoded_frames: AtomicU64::new(0),
            encoded_bytes: AtomicU64::new(0),
            last_encoded_ms: AtomicU64::new(0),
            keyframes: AtomicU64::new(0),
            dropped_in: AtomicU64::new(0),
            source_restarts: AtomicU64::new(0),
            signal: AtomicBool::new(false),
            source_state: Mutex::new(SourceState::Starting),
            source_format: Mutex::new(None),
            fatal: Mutex::new(None),
            window: Mutex::new(Window::default()),
        }
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stats {
    /// Updates the measured output rate; call about once a second.
    pub fn sample_rates(&self) {
        let now = mono_ms();
        let frames = self.encoded_frames.load(Ordering::Relaxed);
        let bytes = self.encoded_bytes.load(Ordering::Relaxed);
        let mut w = lock(&self.window);
        let dt = now.saturating_sub(w.at_ms);
        if w.at_ms != 0 && dt > 0 {
            w.fps = (frames - w.frames) as f64 * 1000.0 / dt as f64;
            w.kbps = (bytes - w.bytes) as f64 * 8.0 / dt as f64;
        }
        *w = Window {
            at_ms: now,
            frames,
            bytes,
            fps: w.fps,
            kbps: w.kbps,
        };
    }

    /// (frames per second, kilobits per second) of the encoded output.
    pub fn rates(&self) -> (f64, f64) {
        let w = lock(&self.window);
        (w.fps, w.kbps)
    }

    /// Milliseconds since the last encoded frame (None before the first one).
    pub fn encoded_age_ms(&self) -> Option<u64> {
        match self.last_encoded_ms.load(Ordering::Relaxed) {
            0 => None,
            t => Some(mono_ms().saturating_sub(t)),
        }
    }

    pub fn frame_age_ms(&self) -> Option<u64> {
        match self.last_frame_ms.load(Ordering::Relaxed) {
            0 => None,
            t => Some(mono_ms().saturating_sub(t)),
        }
    }
}
