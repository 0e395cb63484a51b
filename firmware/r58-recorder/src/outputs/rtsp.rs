//! RTSP at `rtsp://<box>:<port>/<input>` with gst-rtsp-server. Each mount is a *shared*
//! media whose `appsrc`s are attached to the input's fan-out: all clients of an input
//! share one media and one encode; nothing is encoded per client.

use std::collections::BTreeMap;
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

use r58_config::RtspConfig;

use crate::encode::input::Input;
use crate::error::RecorderError;
use crate::main_loop;

/// The server runs on the recorder's main loop; stopping it removes it from there.
pub struct RtspServer {
    server: rtsp::RTSPServer,
    listener: glib::Source,
    cleanup: glib::Source,
    pub port: u16,
}

/// The gst-launch description of one RTSP media (a bin fed by the input's encode).
pub fn describe(audio: bool) -> String {
    let mut d = String::from(
        "( appsrc name=v is-live=true format=time max-bytes=8388608 ! h264parse \
         ! rtph264pay name=pay0 pt=96 config-interval=-1",
    );
    if audio {
        d.push_str(" appsrc name=a is-live=true format=time max-bytes=1048576 ! aacparse ! rtpmp4gpay name=pay1 pt=97");
    }
    d.push_str(" )");
    d
}

impl RtspServer {
    pub fn start(
        cfg: &RtspConfig,
        inputs: &BTreeMap<String, Arc<Input>>,
    ) -> Result<Self, RecorderError> {
        let addr = format!("{}:{}", cfg.address, cfg.port);
        let ctx = main_loop::context()?;
        let server = rtsp::RTSPServer::new();
        server.set_address(&cfg.address);
        server.set_service(&cfg.port.to_string());
        let mounts = server
            .mount_points()
            .ok_or_else(|| RecorderError::RtspStart {
                addr: addr.clone(),
                reason: "no mount points".into(),
            })?;
        for (id, input) in inputs {
            let factory = rtsp::RTSPMediaFactory::new();
            factory.set_launch(&describe(input.audio_encoder.is_some()));
            factory.set_shared(true);
            factory.set_clock(Some(&gst::SystemClock::obtain()));
            let weak = Arc::downgrade(input);
            factory.connect_media_configure(move |_, media| {
                let Some(input) = weak.upgrade() else { return };
                let element = media.element();
                let Some(bin) = element.downcast_ref::<gst::Bin>() else {
                    return;
                };
                let get = |n: &str| {
                    bin.by_name(n)
                        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                };
                let Some(v) = get("v") else { return };
                let a = get("a");
                let consumer = input
                    .fanout
                    .attach(&format!("rtsp:{}", input.id), &v, a.as_ref());
                input.request_keyframe();
                let weak = Arc::downgrade(&input);
                media.connect_unprepared(move |_| {
                    if let Some(input) = weak.upgrade() {
                        input.fanout.detach(consumer);
                    }
                });
            });
            mounts.add_factory(&format!("/{id}"), factory);
        }
        let source_id = server
            .attach(Some(ctx))
            .map_err(|e| RecorderError::RtspStart {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        let listener =
            ctx.find_source_by_id(&source_id)
                .ok_or_else(|| RecorderError::RtspStart {
                    addr: addr.clone(),
                    reason: "the server's source is not on the main loop".into(),
                })?;
        let port = u16::try_from(server.bound_port()).unwrap_or(cfg.port);
        // The server's sessions expire only if someone cleans them up.
        let cleaned = server.clone();
        let cleanup = glib::timeout_source_new(
            std::time::Duration::from_secs(2),
            None,
            glib::Priority::DEFAULT,
            move || {
                if let Some(pool) = cleaned.session_pool() {
                    pool.cleanup();
                }
                glib::ControlFlow::Continue
            },
        );
        cleanup.attach(Some(ctx));
        tracing::info!(%addr, port, "RTSP server listening");
        Ok(Self {
            server,
            listener,
            cleanup,
            port,
        })
    }

    /// Stops listening and closes every client's connection.
    pub fn stop(self) {
        self.cleanup.destroy();
        self.listener.destroy();
        self.server
            .client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
    }
}
