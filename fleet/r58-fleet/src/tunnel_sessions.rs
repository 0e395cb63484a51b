//! Streams through boxes' tunnels as audited sessions with limits (docs/remote-access.md):
//! each is recorded when it opens, carries bytes between the fleet's side and the box with
//! counts kept, ends at its idle timeout, its maximum duration or an operator's word, and is
//! recorded with how it ended. An operator closes a session on the fleet process that holds
//! it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::db::{Db, DbError, NewTunnelSession};

/// How often an open session's byte counts reach the database; a session not updated for
/// [`STALE_AFTER`] belongs to a fleet process that is gone.
const UPDATE_EVERY: Duration = Duration::from_secs(20);
pub const STALE_AFTER: Duration = Duration::from_secs(90);

/// Why a session ended, as the audit records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Closed,
    Idle,
    MaxDuration,
    ClosedByOperator,
    /// The fleet-wide remote-access switch was turned off.
    RemoteAccessOff,
    Error,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Idle => "idle",
            Self::MaxDuration => "max_duration",
            Self::ClosedByOperator => "closed_by_operator",
            Self::RemoteAccessOff => "remote_access_off",
            Self::Error => "error",
        }
    }
}

/// The limits every session has.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_duration: Duration,
    pub idle: Duration,
}

/// What a session is, as it opens.
#[derive(Debug, Clone)]
pub struct Opening {
    pub device: String,
    pub kind: &'static str,
    pub opened_by: String,
    pub port: u16,
    pub target: String,
}

/// The sessions this fleet process holds.
pub struct Sessions {
    db: Db,
    limits: Limits,
    open: Mutex<HashMap<String, Stop>>,
}

/// How a session held here is ended from outside: the token, and the reason to record.
#[derive(Clone)]
struct Stop {
    token: CancellationToken,
    reason: Arc<Mutex<EndReason>>,
}

impl Stop {
    fn new() -> Self {
        Self {
            token: CancellationToken::new(),
            reason: Arc::new(Mutex::new(EndReason::ClosedByOperator)),
        }
    }

    fn cancel(&self, reason: EndReason) {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = reason;
        self.token.cancel();
    }

    fn reason(&self) -> EndReason {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sessions {
    pub fn new(db: Db, limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            db,
            limits,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn open_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stop>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the session, then carries bytes between `near` (the fleet's side) and `box_side`
    /// on a task of its own until either ends or a limit or an operator ends it. No record,
    /// no session: the error is returned and nothing is carried.
    pub async fn run<A, B>(
        self: &Arc<Self>,
        what: Opening,
        near: A,
        box_side: B,
    ) -> Result<String, DbError>
    where
        A: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        B: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let id = new_id();
        self.db
            .open_tunnel_session(&NewTunnelSession {
                id: &id,
                device: &what.device,
                kind: what.kind,
                opened_by: &what.opened_by,
                port: what.port,
                target: &what.target,
            })
            .await?;
        let stop = Stop::new();
        self.open_map().insert(id.clone(), stop.clone());
        tracing::info!(session = %id, device = %what.device, kind = what.kind, by = %what.opened_by, port = what.port, target = %what.target, "tunnel session opened");
        let me = self.clone();
        let sid = id.clone();
        tokio::spawn(async move {
            let counts = Arc::new(Counts::new());
            let reason = me
                .carry(
                    &sid,
                    near,
                    Counted::new(box_side, counts.clone()),
                    &counts,
                    stop,
                )
                .await;
            me.open_map().remove(&sid);
            let (to, from) = counts.bytes();
            tracing::info!(session = %sid, reason = reason.as_str(), bytes_to_device = to, bytes_from_device = from, "tunnel session ended");
            if let Err(e) = me
                .db
                .update_tunnel_session(&sid, to, from, Some(reason.as_str()))
                .await
            {
                tracing::error!(session = %sid, error = %r58_log::error_chain(&e), "recording the end of a tunnel session");
            }
        });
        Ok(id)
    }

    async fn carry<A, B>(
        &self,
        id: &str,
        mut near: A,
        mut box_side: Counted<B>,
        counts: &Counts,
        stop: Stop,
    ) -> EndReason
    where
        A: AsyncRead + AsyncWrite + Unpin,
        B: AsyncRead + AsyncWrite + Unpin,
    {
        let watch = async {
            let started = Instant::now();
            let mut last_update = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                if started.elapsed() >= self.limits.max_duration {
                    return EndReason::MaxDuration;
                }
                if counts.idle_for() >= self.limits.idle {
                    return EndReason::Idle;
                }
                if last_update.elapsed() >= UPDATE_EVERY {
                    last_update = Instant::now();
                    let (to, from) = counts.bytes();
                    if let Err(e) = self.db.update_tunnel_session(id, to, from, None).await {
                        tracing::warn!(session = %id, error = %r58_log::error_chain(&e), "updating a tunnel session");
                    }
                }
            }
        };
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut near, &mut box_side) => match r {
                Ok(_) => EndReason::Closed,
                Err(e) => {
                    tracing::debug!(session = %id, error = %e, "tunnel session carried to an error");
                    EndReason::Error
                }
            },
            reason = watch => reason,
            () = stop.token.cancelled() => stop.reason(),
        }
    }

    /// Ends an open session held here; false if this process holds none of that id.
    pub fn close(&self, id: &str) -> bool {
        match self.open_map().get(id) {
            Some(stop) => {
                stop.cancel(EndReason::ClosedByOperator);
                true
            }
            None => false,
        }
    }

    /// Ends every session held here because remote access was turned off; how many.
    pub fn close_all_remote_access_off(&self) -> usize {
        let open = self.open_map();
        for stop in open.values() {
            stop.cancel(EndReason::RemoteAccessOff);
        }
        open.len()
    }
}

/// How often a fleet process looks for what other processes asked of the sessions it holds.
pub const REQUESTS_EVERY: Duration = Duration::from_secs(2);

/// Ends, every [`REQUESTS_EVERY`], the sessions held here that an admin closed through another
/// fleet process, and all of them once remote access is off (switched on another process).
pub async fn follow_requests(sessions: Arc<Sessions>) {
    let mut tick = tokio::time::interval(REQUESTS_EVERY);
    loop {
        tick.tick().await;
        if sessions.open_map().is_empty() {
            continue;
        }
        match sessions.db.remote_access().await {
            Ok(switch) if !switch.enabled => {
                sessions.close_all_remote_access_off();
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %r58_log::error_chain(&e), "reading the remote-access switch")
            }
        }
        match sessions.db.tunnel_session_close_requests().await {
            Ok(ids) => {
                for id in ids {
                    if sessions.close(&id) {
                        tracing::info!(session = %id, "tunnel session closed on another fleet process's request");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %r58_log::error_chain(&e), "reading tunnel session close requests")
            }
        }
    }
}

/// Closes, once a minute, the sessions whose fleet process stopped without recording
/// their end (see [`STALE_AFTER`]).
pub async fn close_stale(db: Db) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let before = crate::db::now_ms() - STALE_AFTER.as_millis() as i64;
        match db.close_stale_tunnel_sessions(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                sessions = n,
                "tunnel sessions of a stopped fleet process closed"
            ),
            Err(e) => {
                tracing::warn!(error = %r58_log::error_chain(&e), "closing stale tunnel sessions")
            }
        }
    }
}

fn new_id() -> String {
    let n = crate::devices::random_bytes::<8>()
        .map(u64::from_le_bytes)
        .unwrap_or_else(|_| {
            u64::from(std::process::id()) ^ (crate::db::now_ms() as u64).rotate_left(17)
        });
    format!("t{:x}-{n:016x}", crate::db::now_ms())
}

/// Bytes each way and the time of the last one.
struct Counts {
    to_device: AtomicU64,
    from_device: AtomicU64,
    started: Instant,
    /// ms since `started` of the last byte either way.
    last_ms: AtomicI64,
}

impl Counts {
    fn new() -> Self {
        Self {
            to_device: AtomicU64::new(0),
            from_device: AtomicU64::new(0),
            started: Instant::now(),
            last_ms: AtomicI64::new(0),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.started.elapsed().as_millis() as i64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as i64;
        Duration::from_millis((now - self.last_ms.load(Ordering::Relaxed)).max(0) as u64)
    }

    fn bytes(&self) -> (u64, u64) {
        (
            self.to_device.load(Ordering::Relaxed),
            self.from_device.load(Ordering::Relaxed),
        )
    }
}

/// The box's side of a session, counting what passes.
struct Counted<S> {
    inner: S,
    counts: Arc<Counts>,
}

impl<S> Counted<S> {
    fn new(inner: S, counts: Arc<Counts>) -> Self {
        Self { inner, counts }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counts
                .from_device
                .fetch_add(n as u64, Ordering::Relaxed);
            self.counts.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                self.counts
                    .to_device
                    .fetch_add(*n as u64, Ordering::Relaxed);
                self.counts.touch();
            }
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
