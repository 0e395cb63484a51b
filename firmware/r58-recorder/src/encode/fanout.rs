//! One encode, many consumers: every encoded buffer of an input is handed to each attached
//! consumer (recording, HLS, each RTSP media) by reference — no consumer re-encodes.
//!
//! A consumer is a pair of `appsrc` elements in its own pipeline, held by weak reference
//! so that a consumer pipeline that goes away simply drops out. Each consumer starts on a
//! key frame, and its timestamps are moved into its own pipeline's running time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

pub use crate::capture::Stream;

struct Consumer {
    id: u64,
    name: String,
    video: glib::WeakRef<gst_app::AppSrc>,
    audio: Option<glib::WeakRef<gst_app::AppSrc>>,
    /// Added to encode-pipeline timestamps to get consumer running time (ns).
    offset: Option<i64>,
    started: bool,
    video_caps: Option<gst::Caps>,
    audio_caps: Option<gst::Caps>,
}

/// The consumers of one input's encode.
pub struct Fanout {
    input: String,
    consumers: Mutex<Vec<Consumer>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
}

/// What `push` tells the caller about consumers that want a key frame now.
#[derive(Debug, Default)]
pub struct PushOutcome {
    pub waiting_for_keyframe: bool,
}

impl Fanout {
    pub fn new(input: &str) -> Self {
        Self {
            input: input.to_string(),
            consumers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Attaches a consumer; returns its id for [`Fanout::detach`].
    pub fn attach(
        &self,
        name: &str,
        video: &gst_app::AppSrc,
        audio: Option<&gst_app::AppSrc>,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let consumer = Consumer {
            id,
            name: name.to_string(),
            video: video.downgrade(),
            audio: audio.map(|a| a.downgrade()),
            offset: None,
            started: false,
            video_caps: None,
            audio_caps: None,
        };
        self.lock().push(consumer);
        tracing::debug!(input = %self.input, consumer = name, id, "consumer attached");
        id
    }

    pub fn detach(&self, id: u64) {
        self.lock().retain(|c| c.id != id);
    }

    /// The names of the attached consumers (`recording:<input>`, `hls:<input>`, `rtsp:<input>`),
    /// in the order they attached.
    pub fn consumer_names(&self) -> Vec<String> {
        self.lock().iter().map(|c| c.name.clone()).collect()
    }

    /// Buffers dropped because a consumer did not keep up (its queue was full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Consumer>> {
        self.consumers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands one encoded sample to every consumer. `now_rt` is the encode pipeline's
    /// running time at this moment, used to map timestamps on a consumer's first buffer.
    pub fn push(
        &self,
        stream: Stream,
        sample: &gst::Sample,
        now_rt: Option<gst::ClockTime>,
    ) -> PushOutcome {
        let mut outcome = PushOutcome::default();
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps_owned()) else {
            return outcome;
        };
        let is_key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let segment = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned());
        let mut consumers = self.lock();
        consumers.retain_mut(|c| {
            let src = match stream {
                Stream::Video => c.video.upgrade(),
                Stream::Audio => match &c.audio {
                    Some(a) => a.upgrade(),
                    None => return c.video.upgrade().is_some(),
                },
            };
            let Some(src) = src else {
                tracing::debug!(input = %self.input, consumer = %c.name, "consumer gone");
                return false;
            };
            if !c.started {
                if stream == Stream::Audio {
                    return true;
                }
                if !is_key {
                    outcome.waiting_for_keyframe = true;
                    return true;
                }
                // The consumer's pipeline must be running to map timestamps into it.
                let (Some(cons_rt), Some(enc_rt)) = (src.current_running_time(), now_rt) else {
                    outcome.waiting_for_keyframe = true;
                    return true;
                };
                c.offset = Some(cons_rt.nseconds() as i64 - enc_rt.nseconds() as i64);
                c.started = true;
            }
            let last_caps = match stream {
                Stream::Video => &mut c.video_caps,
                Stream::Audio => &mut c.audio_caps,
            };
            if last_caps.as_ref() != Some(&caps) {
                src.set_caps(Some(&caps));
                *last_caps = Some(caps.clone());
            }
            if src.current_level_bytes() >= src.max_bytes() && src.max_bytes() > 0 {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            let mut out = buffer.copy();
            {
                let out = out.make_mut();
                // Timestamps become running time first: encoders shift them and their segment
                // (x264enc by 1000 h), and only running time means the same in both pipelines.
                let shift = |t: Option<gst::ClockTime>| {
                    let rt = match segment.as_ref() {
                        Some(seg) => seg.to_running_time(t?)?,
                        None => t?,
                    };
                    Some(gst::ClockTime::from_nseconds((rt.nseconds() as i64 + c.offset.unwrap_or(0)).max(0) as u64))
                };
                out.set_pts(shift(buffer.pts()));
                out.set_dts(shift(buffer.dts()));
            }
            match src.push_buffer(out) {
                Ok(_) => true,
                Err(gst::FlowError::Flushing) if !src.current_state().eq(&gst::State::Null) => true,
                Err(e) => {
                    tracing::debug!(input = %self.input, consumer = %c.name, error = ?e, "consumer stopped taking buffers");
                    false
                }
            }
        });
        outcome
    }
}
