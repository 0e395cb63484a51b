//! Serving an axum router to clients that are not trusted: the recorder's API on a venue's
//! network, the fleet's API on the internet.
//!
//! What `axum::serve` leaves open, bounded here:
//! - **Connections at once** ([`Limits::max_connections`]): past the bound, new connections
//!   wait in the listen backlog until one closes, so no number of clients exhausts the
//!   process's file descriptors or memory.
//! - **Slow or silent clients** ([`Limits::header_read_timeout`]): a connection that does
//!   not deliver a request's headers in time — from its opening, or between two requests
//!   on a kept-alive connection — is closed; a few clients trickling bytes cannot hold
//!   every connection slot.
//! - **Stalled transfers** ([`Limits::stall_timeout`]): a request body that stops arriving
//!   fails (the handler answers its error), and a connection whose client stops reading the
//!   response is closed, each after the timeout without progress.
//! - **Shutdown** ([`Limits::shutdown_grace`]): on the shutdown signal no new connection
//!   is accepted, requests in flight may finish, and connections still open after the
//!   grace period (a live event stream never ends on its own) are dropped.
//!
//! Each request carries the peer's address as axum's `ConnectInfo<SocketAddr>`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

mod stall;
use stall::{StallBody, StallIo};

/// The bounds a server holds its clients to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, counted from the connection's opening
    /// or from the end of the previous response.
    pub header_read_timeout: Duration,
    /// Time a request body may deliver nothing, and a client may take none of a response,
    /// before the request fails or the connection is closed.
    pub stall_timeout: Duration,
    /// How long shutdown waits for open connections to finish.
    pub shutdown_grace: Duration,
}

impl Limits {
    /// For a service on a network that is not trusted, with `max_connections`.
    pub const fn untrusted(max_connections: usize) -> Self {
        Self {
            max_connections,
            header_read_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes; returns once
/// the connections have finished or the grace period is over.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it was accepted:
                    // not fatal; a pause keeps an exhausted process from spinning.
                    tracing::warn!(%error, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let stop = stop_rx.clone();
        connections.spawn(async move {
            serve_connection(stream, peer, router, limits, stop).await;
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = connections.len(),
            "shutdown: closing connections still open after the grace period"
        );
    }
    connections.abort_all();
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let stall = limits.stall_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(|b| Body::new(StallBody::new(b, stall)));
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(StallIo::new(stream, stall)), service)
        .with_upgrades();
    let mut conn = pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended");
            }
        }
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
