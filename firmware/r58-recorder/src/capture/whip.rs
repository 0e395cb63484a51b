//! The source of a `whip` input: the WebRTC session of the guest publishing to it over WHIP
//! (RFC 9725). The HTTP side hands the guest's offer to the input's [`GuestPort`]; the
//! input's source thread builds a `webrtcbin` pipeline for it, answers once its ICE
//! candidates are gathered (no trickle), and runs it like any source pipeline until the guest
//! leaves, the session is deleted or frames stop. Then the port is free for the next guest,
//! the slate showing meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use gstreamer_webrtc::prelude::WebRTCICEExt;

use r58_config::InputConfig;

use crate::capture::source::{self, FrameSink, SourceEnd};
use crate::stats::{lock, SourceState};

/// How long a guest's connection may take to deliver its first frame.
const FIRST_FRAME: Duration = Duration::from_secs(30);
/// How long gathering the answer's ICE candidates may take.
const GATHERING: Duration = Duration::from_secs(10);
/// How long after a session ended its guest may come back into the same input without
/// using the invite again.
pub const RETURN_WINDOW: Duration = Duration::from_secs(600);

/// Why an offer got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhipError {
    #[error("the offer is not a session description: {0}")]
    BadOffer(String),
    #[error("no codec this box takes: video must offer H264 or VP8 (audio: Opus)")]
    NoCodec,
    #[error("a guest is connected to this input already")]
    Busy,
    #[error("answering the offer: {0}")]
    Answer(String),
}

/// A guest's offer on its way to the input's source thread, with where the answer goes.
struct Offer {
    sdp: gst_sdp::SDPMessage,
    answer: SyncSender<Result<String, WhipError>>,
}

/// Where a `whip` input takes its guest: one session at a time.
pub struct GuestPort {
    offers: SyncSender<Offer>,
    incoming: Mutex<Option<Receiver<Offer>>>,
    session: Mutex<Option<String>>,
    leave: AtomicBool,
    /// The session that ended last and when: its guest may come back (unless removed).
    last: Mutex<Option<(String, Instant)>>,
    removed: AtomicBool,
    /// The local addresses ICE uses (`guests.ice_addresses`); empty: libnice's choice.
    ice_addresses: Vec<String>,
}

/// Checks that `text` is an SDP offer with video this box decodes.
pub fn check_offer(text: &str) -> Result<gst_sdp::SDPMessage, WhipError> {
    let sdp = gst_sdp::SDPMessage::parse_buffer(text.as_bytes())
        .map_err(|_| WhipError::BadOffer("SDP does not parse".into()))?;
    if sdp.medias_len() == 0 {
        return Err(WhipError::BadOffer("no media section".into()));
    }
    let video_ok = sdp.medias().any(|m| {
        m.media() == Some("video")
            && m.attributes().any(|a| {
                a.key() == "rtpmap"
                    && a.value().is_some_and(|v| {
                        let v = v.to_ascii_uppercase();
                        v.contains(" H264/") || v.contains(" VP8/")
                    })
            })
    });
    if !video_ok {
        return Err(WhipError::NoCodec);
    }
    Ok(sdp)
}

impl GuestPort {
    pub fn new(ice_addresses: Vec<String>) -> Self {
        let (offers, incoming) = sync_channel(1);
        Self {
            offers,
            incoming: Mutex::new(Some(incoming)),
            session: Mutex::new(None),
            leave: AtomicBool::new(false),
            last: Mutex::new(None),
            removed: AtomicBool::new(false),
            ice_addresses,
        }
    }

    /// Whether `session` is the one that ended last here, less than [`RETURN_WINDOW`] ago,
    /// its guest not removed, and the input free: its guest is coming back.
    pub fn returning(&self, session: &str) -> bool {
        self.session().is_none()
            && lock(&self.last)
                .as_ref()
                .is_some_and(|(s, at)| s == session && at.elapsed() < RETURN_WINDOW)
    }

    /// Ends the connected session and does not let its guest come back (kick).
    pub fn remove(&self) -> bool {
        let Some(session) = self.session() else {
            return false;
        };
        self.removed.store(true, Ordering::Relaxed);
        self.end(&session)
    }

    /// The session connected now, if any.
    pub fn session(&self) -> Option<String> {
        lock(&self.session).clone()
    }

    /// Hands a checked offer to the input and waits for the answer (blocking, bounded).
    /// On success the session `id` is the port's until it ends.
    pub fn connect(
        &self,
        id: &str,
        sdp: gst_sdp::SDPMessage,
        timeout: Duration,
    ) -> Result<String, WhipError> {
        {
            let mut session = lock(&self.session);
            if session.is_some() {
                return Err(WhipError::Busy);
            }
            *session = Some(id.to_string());
        }
        self.leave.store(false, Ordering::Relaxed);
        self.removed.store(false, Ordering::Relaxed);
        *lock(&self.last) = None;
        let (answer, answered) = sync_channel(1);
        let result = self
            .offers
            .try_send(Offer { sdp, answer })
            .map_err(|_| WhipError::Busy)
            .and_then(|()| {
                answered
                    .recv_timeout(timeout)
                    .unwrap_or_else(|_| Err(WhipError::Answer("no answer in time".into())))
            });
        if result.is_err() {
            self.release(id);
        }
        result
    }

    /// Ends session `id` (the guest's DELETE); false when it is not the connected one.
    pub fn end(&self, id: &str) -> bool {
        if lock(&self.session).as_deref() != Some(id) {
            return false;
        }
        // The first DELETE ends it; the session is gone for any later one.
        !self.leave.swap(true, Ordering::Relaxed)
    }

    fn release(&self, id: &str) {
        let mut session = lock(&self.session);
        if session.as_deref() == Some(id) {
            *session = None;
            *lock(&self.last) =
                (!self.removed.load(Ordering::Relaxed)).then(|| (id.to_string(), Instant::now()));
        }
    }
}

/// Turns the incoming streams of `webrtcbin` into decoded pads linked to the converters.
pub fn wire(pipeline: &gst::Pipeline) -> Result<(), String> {
    let web = pipeline.by_name("web").ok_or("no webrtcbin")?;
    let weak = pipeline.downgrade();
    web.connect_pad_added(move |_, pad| {
        if pad.direction() != gst::PadDirection::Src {
            return;
        }
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let Ok(dec) = gst::ElementFactory::make("decodebin").build() else {
            tracing::error!("guest: no decodebin");
            return;
        };
        let inner = pipeline.downgrade();
        dec.connect_pad_added(move |_, decoded| {
            if let Some(pipeline) = inner.upgrade() {
                source::link_decoded(&pipeline, decoded);
            }
        });
        if pipeline.add(&dec).is_err() || dec.sync_state_with_parent().is_err() {
            tracing::error!("guest: adding a decoder");
            return;
        }
        if let Some(sink) = dec.static_pad("sink") {
            if let Err(e) = pad.link(&sink) {
                tracing::warn!(error = ?e, "guest: linking an incoming stream");
            }
        }
    });
    Ok(())
}

/// Answers `offer` on the pipeline's `webrtcbin`: remote description, answer, local
/// description, then waits for ICE gathering so the answer carries every candidate. ICE
/// uses `addresses` only, when some are given.
fn answer(
    pipeline: &gst::Pipeline,
    offer: gst_sdp::SDPMessage,
    addresses: &[String],
) -> Result<String, String> {
    let web = pipeline.by_name("web").ok_or("no webrtcbin")?;
    if !addresses.is_empty() {
        let ice = web.property::<gst_webrtc::WebRTCICE>("ice-agent");
        for a in addresses {
            if !ice.emit_add_local_ip_address(a) {
                return Err(format!("ICE does not take the local address {a}"));
            }
        }
    }
    let offer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
    let done = gst::Promise::new();
    web.emit_by_name::<()>("set-remote-description", &[&offer, &done]);
    if done.wait() != gst::PromiseResult::Replied {
        return Err("the offer was not taken".into());
    }
    if let Some(err) = done
        .get_reply()
        .and_then(|r| r.get::<glib::Error>("error").ok())
    {
        return Err(format!("the offer was refused: {err}"));
    }
    let made = gst::Promise::new();
    web.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &made]);
    if made.wait() != gst::PromiseResult::Replied {
        return Err("no answer was made".into());
    }
    let answer = made
        .get_reply()
        .and_then(|r| r.get::<gst_webrtc::WebRTCSessionDescription>("answer").ok())
        .ok_or("no answer was made (no common codec)")?;
    web.emit_by_name::<()>("set-local-description", &[&answer, &None::<gst::Promise>]);
    let until = Instant::now() + GATHERING;
    while web.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
        != gst_webrtc::WebRTCICEGatheringState::Complete
    {
        if Instant::now() > until {
            return Err("gathering ICE candidates took too long".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let local = web
        .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
        .ok_or("no local description")?;
    local
        .sdp()
        .as_text()
        .map_err(|e| format!("the answer as text: {e}"))
}

/// Runs the `whip` input: waits for a guest, runs the guest's session, waits again — until
/// `stop`.
pub fn supervise<S: FrameSink>(
    input: Weak<S>,
    cfg: InputConfig,
    stop: Arc<AtomicBool>,
    stall: Duration,
    port: Arc<GuestPort>,
) {
    let Some(offers) = lock(&port.incoming).take() else {
        tracing::error!("guest input supervised twice");
        return;
    };
    let stopping = || stop.load(Ordering::Relaxed);
    while !stopping() {
        let Some(strong) = input.upgrade() else {
            return;
        };
        let id = strong.id().to_string();
        let stats = strong.stats();
        drop(strong);
        *lock(&stats.source_state) = SourceState::Retrying {
            reason: "no guest connected".into(),
            retry_in_ms: 0,
        };
        let offer = match offers.recv_timeout(Duration::from_millis(200)) {
            Ok(o) => o,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let session = port.session().unwrap_or_default();
        *lock(&stats.source_state) = SourceState::Starting;
        let pipeline = match source::build(&cfg, &input) {
            Ok(p) => p,
            Err(e) => {
                let _ = offer.answer.send(Err(WhipError::Answer(e)));
                continue;
            }
        };
        let ready = pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| e.to_string())
            .and_then(|_| answer(&pipeline, offer.sdp, &port.ice_addresses));
        let reason = match ready {
            Ok(sdp) => {
                let _ = offer.answer.send(Ok(sdp));
                if let Some(i) = input.upgrade() {
                    i.source_restarted();
                }
                tracing::info!(input = %id, %session, "guest connected");
                let leaving = || stopping() || port.leave.load(Ordering::Relaxed);
                source::run(&pipeline, &id, &stats, &leaving, FIRST_FRAME, stall)
            }
            Err(e) => {
                let _ = offer.answer.send(Err(WhipError::Answer(e.clone())));
                SourceEnd::Start(e)
            }
        };
        let _ = pipeline.set_state(gst::State::Null);
        port.release(&session);
        stats.source_restarts.fetch_add(1, Ordering::Relaxed);
        tracing::info!(input = %id, %session, %reason, "guest session ended");
    }
}
