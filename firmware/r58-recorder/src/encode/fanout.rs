//! One encode, many consumers: every encoded buffer of an input is handed to each attached
//! consumer (recording, HLS, each RTSP media) by reference — no consumer re-encodes.
//!
//! A consumer is a pair of `appsrc` elements in its own pipeline, held by weak reference
//! so that a consumer pipeline that goes away simply drops out. Each consumer starts on a
//! key frame, and its timestamps are moved into its own pipeline's running time: that key
//! frame lands on the consumer's running time at the moment it starts, and what was encoded
//! before it (audio from just before the key frame) is not handed to that consumer, so each
//! consumer's timestamps start at or after zero and only increase.
//!
//! A consumer that finishes (a recording that stops) ends its picture at once and its
//! sound once the sound has reached the end of the picture: the audio encoder runs some tens
//! of milliseconds behind the video, and that audio belongs in the last segment.

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
    /// Added to encode-pipeline running time to get consumer running time (ns); set on the
    /// consumer's first key frame.
    offset: i64,
    started: bool,
    video_caps: Option<gst::Caps>,
    audio_caps: Option<gst::Caps>,
    /// End of the last video buffer handed over, in consumer running time (ns).
    video_end: Option<i64>,
    /// Set by [`Fanout::finish`]: the picture has ended, the sound goes on to `video_end`.
    finishing: bool,
}

impl Consumer {
    /// Ends both streams of this consumer.
    fn end(&self) {
        if let Some(v) = self.video.upgrade() {
            let _ = v.end_of_stream();
        }
        if let Some(a) = self.audio.as_ref().and_then(|a| a.upgrade()) {
            let _ = a.end_of_stream();
        }
    }
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
            offset: 0,
            started: false,
            video_caps: None,
            audio_caps: None,
            video_end: None,
            finishing: false,
        };
        self.lock().push(consumer);
        tracing::debug!(input = %self.input, consumer = name, id, "consumer attached");
        id
    }

    pub fn detach(&self, id: u64) {
        self.lock().retain(|c| c.id != id);
    }

    /// Ends a consumer's streams: the video now, the audio once it has reached the end of
    /// the video (at once if the consumer has no audio or never started). The consumer is
    /// detached when both have ended; [`Fanout::is_attached`] tells when.
    pub fn finish(&self, id: u64) {
        let mut consumers = self.lock();
        let Some(i) = consumers.iter().position(|c| c.id == id) else {
            return;
        };
        let c = &mut consumers[i];
        if c.audio.is_none() || !c.started || c.video_end.is_none() {
            c.end();
            consumers.remove(i);
            return;
        }
        if let Some(v) = c.video.upgrade() {
            let _ = v.end_of_stream();
        }
        c.finishing = true;
    }

    pub fn is_attached(&self, id: u64) -> bool {
        self.lock().iter().any(|c| c.id == id)
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

    /// Hands one encoded sample to every consumer.
    pub fn push(&self, stream: Stream, sample: &gst::Sample) -> PushOutcome {
        let mut outcome = PushOutcome::default();
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps_owned()) else {
            return outcome;
        };
        let is_key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let segment = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned());
        // Timestamps become running time first: encoders shift them and their segment
        // (x264enc by 1000 h), and only running time means the same in both pipelines.
        let running = |t: Option<gst::ClockTime>| -> Option<i64> {
            let rt = match segment.as_ref() {
                Some(seg) => seg.to_running_time(t?)?,
                None => t?,
            };
            Some(rt.nseconds() as i64)
        };
        let (pts, dts) = (running(buffer.pts()), running(buffer.dts()));
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
            if c.finishing && stream == Stream::Video {
                return true;
            }
            if !c.started {
                if stream == Stream::Audio {
                    return true;
                }
                if !is_key {
                    outcome.waiting_for_keyframe = true;
                    return true;
                }
                // The consumer's pipeline must be playing to map timestamps into it. While
                // it goes to PLAYING, its `appsrc` has the clock before it has its base
                // time: its "running time" is then the clock's absolute time, hours ahead,
                // and a sink that syncs (RTSP's) would hold every buffer until then.
                if src.current_state() != gst::State::Playing {
                    outcome.waiting_for_keyframe = true;
                    return true;
                }
                let (Some(cons_rt), Some(key_rt)) = (src.current_running_time(), dts.or(pts))
                else {
                    outcome.waiting_for_keyframe = true;
                    return true;
                };
                c.offset = cons_rt.nseconds() as i64 - key_rt;
                c.started = true;
            }
            let (out_pts, out_dts) = (pts.map(|t| t + c.offset), dts.map(|t| t + c.offset));
            if out_pts.is_some_and(|t| t < 0) || out_dts.is_some_and(|t| t < 0) {
                // Encoded before this consumer's first key frame.
                return true;
            }
            if c.finishing {
                // Audio only: the sound has caught up with the end of the picture.
                if out_pts.is_none() || out_pts >= c.video_end {
                    let _ = src.end_of_stream();
                    return false;
                }
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
            if stream == Stream::Video {
                let duration = buffer.duration().map_or(0, |d| d.nseconds() as i64);
                if let Some(t) = out_pts {
                    c.video_end = Some(c.video_end.map_or(t + duration, |e| e.max(t + duration)));
                }
            }
            let mut out = buffer.copy();
            {
                let out = out.make_mut();
                let at = |t: Option<i64>| t.map(|t| gst::ClockTime::from_nseconds(t as u64));
                out.set_pts(at(out_pts));
                out.set_dts(at(out_dts));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An encoded H.264 key frame at `pts` of the encode pipeline's running time.
    fn key_frame(pts: gst::ClockTime) -> gst::Sample {
        let mut buffer = gst::Buffer::from_slice(vec![0u8, 0, 0, 1, 0x65, 0x88]);
        {
            let b = buffer.get_mut().unwrap();
            b.set_pts(pts);
            b.set_dts(pts);
            b.set_duration(gst::ClockTime::from_mseconds(33));
        }
        let caps = gst::Caps::builder("video/x-h264")
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build();
        let segment = gst::FormattedSegment::<gst::ClockTime>::new();
        gst::Sample::builder()
            .buffer(&buffer)
            .caps(&caps)
            .segment(&segment)
            .build()
    }

    #[test]
    fn a_consumer_starts_only_once_its_pipeline_plays_and_near_its_running_time() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "appsrc name=v is-live=true format=time ! appsink name=out sync=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let src = pipeline
            .by_name("v")
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap();
        let out = pipeline
            .by_name("out")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let fanout = Fanout::new("cam");
        fanout.attach("rtsp:cam", &src, None);
        // The moment inside the change to PLAYING when the element has the clock but not
        // yet its base time: its running time reads as the clock's absolute time.
        let clock = gst::SystemClock::obtain();
        assert!(src.set_clock(Some(&clock)).is_ok());
        let (reads, absolute) = (src.current_running_time().unwrap(), clock.time().unwrap());
        assert!(absolute - reads < gst::ClockTime::from_seconds(1));
        let outcome = fanout.push(Stream::Video, &key_frame(gst::ClockTime::from_seconds(1)));
        assert!(
            outcome.waiting_for_keyframe,
            "started before its pipeline plays"
        );
        assert_eq!(src.current_level_buffers(), 0);

        pipeline.set_state(gst::State::Playing).unwrap();
        // A live source is playing at once; the sink completes its change with the first
        // buffer.
        assert_eq!(src.current_state(), gst::State::Playing);
        let outcome = fanout.push(Stream::Video, &key_frame(gst::ClockTime::from_seconds(2)));
        assert!(!outcome.waiting_for_keyframe);
        let sample = out
            .try_pull_sample(gst::ClockTime::from_seconds(5))
            .expect("the key frame reaches the consumer");
        let pts = sample.buffer().unwrap().pts().unwrap();
        let now = src.current_running_time().unwrap();
        assert!(
            pts <= now && now - pts < gst::ClockTime::from_seconds(1),
            "first timestamp {pts} is not at the consumer's running time {now}"
        );
        // The next frame keeps the same mapping.
        fanout.push(Stream::Video, &key_frame(gst::ClockTime::from_seconds(3)));
        let next = out
            .try_pull_sample(gst::ClockTime::from_seconds(5))
            .unwrap()
            .buffer()
            .unwrap()
            .pts()
            .unwrap();
        assert_eq!(next - pts, gst::ClockTime::from_seconds(1));
        pipeline.set_state(gst::State::Null).unwrap();
    }
}
