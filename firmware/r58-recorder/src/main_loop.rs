//! The recorder's one GLib main loop, on a thread of its own: every pipeline's bus is
//! watched on it (no thread polls a bus) and the RTSP server runs on it. Its handlers run
//! on that one thread, so none of them may block: what needs the disk is handed to its
//! owner's thread through a channel.

use std::sync::{Mutex, OnceLock};

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::error::RecorderError;

static CONTEXT: OnceLock<glib::MainContext> = OnceLock::new();
static STARTING: Mutex<()> = Mutex::new(());

/// The main loop's context, the loop started on first use; it runs as long as the process.
pub fn context() -> Result<&'static glib::MainContext, RecorderError> {
    if let Some(ctx) = CONTEXT.get() {
        return Ok(ctx);
    }
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(ctx) = CONTEXT.get() {
        return Ok(ctx);
    }
    let ctx = glib::MainContext::new();
    let main_loop = glib::MainLoop::new(Some(&ctx), false);
    std::thread::Builder::new()
        .name("glib-main-loop".into())
        .spawn(move || main_loop.run())
        .map_err(RecorderError::MainLoop)?;
    Ok(CONTEXT.get_or_init(|| ctx))
}

/// A watch on a pipeline's bus, on the main loop; removed when dropped.
pub struct BusWatch(glib::Source);

impl Drop for BusWatch {
    fn drop(&mut self) {
        self.0.destroy();
    }
}

/// Calls `handler` on the main loop for every message `pipeline` posts, until it returns
/// `Break` or the watch is dropped.
pub fn watch<F>(
    pipeline: &gst::Pipeline,
    input: &str,
    stage: &'static str,
    mut handler: F,
) -> Result<BusWatch, RecorderError>
where
    F: FnMut(&gst::Message) -> glib::ControlFlow + Send + 'static,
{
    let bus = pipeline.bus().ok_or_else(|| RecorderError::PipelineWire {
        input: input.to_string(),
        stage,
        what: "the pipeline has no bus".into(),
    })?;
    let name = format!("{stage}-bus-{input}");
    let source = bus.create_watch(Some(&name), glib::Priority::DEFAULT, move |_, msg| {
        handler(msg)
    });
    source.attach(Some(context()?));
    Ok(BusWatch(source))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn messages_reach_the_handler_on_the_main_loop_and_stop_with_the_watch() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch("fakesrc num-buffers=3 ! fakesink")
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let w = watch(&pipeline, "t", "test", move |msg| {
            let thread = std::thread::current().name().map(str::to_string);
            let _ = tx.send((msg.type_(), thread));
            glib::ControlFlow::Continue
        })
        .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let eos = loop {
            let (t, thread) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            if t == gst::MessageType::Eos {
                break thread;
            }
        };
        assert_eq!(eos.as_deref(), Some("glib-main-loop"));
        drop(w);
        while rx.try_recv().is_ok() {}
        // Without the watch, nothing more arrives.
        pipeline.set_state(gst::State::Null).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
        pipeline.set_state(gst::State::Null).unwrap();
    }
}
