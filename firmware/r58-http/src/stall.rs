//! Progress deadlines: a request body that stops arriving, or a response the client stops
//! reading, fails after [`Limits::stall_timeout`](crate::Limits) without progress. Only
//! progress counts, not total time: a large upload or download on a slow link goes on as
//! long as bytes move.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A deadline armed while an operation waits and cleared by progress.
struct Deadline {
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            sleep: None,
        }
    }

    /// After the operation was polled: progress clears the deadline; waiting arms it (once)
    /// and reports whether it has passed.
    fn expired<T>(&mut self, polled: &Poll<T>, cx: &mut Context<'_>) -> bool {
        if polled.is_ready() {
            self.sleep = None;
            return false;
        }
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        sleep.as_mut().poll(cx).is_ready()
    }
}

fn stalled(what: &str, timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what} made no progress for {timeout:?}"),
    )
}

/// A request body that fails once no frame has arrived for the timeout.
pub(crate) struct StallBody {
    inner: Incoming,
    deadline: Deadline,
}

impl StallBody {
    pub(crate) fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Deadline::new(timeout),
        }
    }
}

impl Body for StallBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if this.deadline.expired(&polled, cx) {
            return Poll::Ready(Some(Err(stalled(
                "the request body",
                this.deadline.timeout,
            )
            .into())));
        }
        polled.map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose writes fail once the client has taken nothing for the timeout.
/// Reads are left to hyper (the header read timeout bounds the wait for a request).
pub(crate) struct StallIo<S> {
    inner: S,
    deadline: Deadline,
}

impl<S> StallIo<S> {
    pub(crate) fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Deadline::new(timeout),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> StallIo<S> {
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let polled = op(Pin::new(&mut self.inner), cx);
        if self.deadline.expired(&polled, cx) {
            return Poll::Ready(Err(stalled("the response", self.deadline.timeout)));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.watch(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.watch(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.watch(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.watch(cx, |s, cx| s.poll_shutdown(cx))
    }
}
