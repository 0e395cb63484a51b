//! The fleet's end of the tunnel: opens streams to ports of the box.

use std::collections::VecDeque;
use std::future::Future;
use std::task::Poll;

use futures::future::poll_fn;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

use crate::{header, yamux_config, TunnelError};

/// A stream to a port of the box: the bytes of one TCP connection there.
pub type TunnelStream = Compat<yamux::Stream>;

type Opened = oneshot::Sender<Result<yamux::Stream, TunnelError>>;

/// Opens streams on one box's tunnel; cheap to clone. When the last handle is dropped the
/// fleet closes the tunnel, and its open streams with it.
#[derive(Clone, Debug)]
pub struct Tunnel {
    opens: mpsc::Sender<Opened>,
}

impl Tunnel {
    /// A stream to `127.0.0.1:<port>` on the box, once the box has agreed to it.
    pub async fn open(&self, port: u16) -> Result<TunnelStream, TunnelError> {
        let (tx, rx) = oneshot::channel();
        self.opens.send(tx).await.map_err(|_| TunnelError::Closed)?;
        let mut stream = rx.await.map_err(|_| TunnelError::Closed)??.compat();
        stream
            .write_all(header::open_request(port).as_bytes())
            .await?;
        match header::parse_answer(&header::read_line(&mut stream).await?)? {
            None => Ok(stream),
            Some(reason) => Err(TunnelError::Refused { port, reason }),
        }
    }
}

/// The fleet's end over `io` (the WebSocket the box dialled, as bytes): the handle, and the
/// future that runs the connection — spawn it; it ends when the box goes away (or every
/// handle is gone), with the reason.
pub fn connect<T>(
    io: T,
    max_streams: usize,
) -> (Tunnel, impl Future<Output = Result<(), TunnelError>> + Send)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (opens, mut requests) = mpsc::channel::<Opened>(16);
    let mut conn =
        yamux::Connection::new(io.compat(), yamux_config(max_streams), yamux::Mode::Client);
    let driver = async move {
        let mut waiting: VecDeque<Opened> = VecDeque::new();
        let mut handles_gone = false;
        poll_fn(move |cx| loop {
            while !handles_gone {
                match requests.poll_recv(cx) {
                    Poll::Ready(Some(req)) => waiting.push_back(req),
                    Poll::Ready(None) => handles_gone = true,
                    Poll::Pending => break,
                }
            }
            if !waiting.is_empty() {
                if let Poll::Ready(opened) = conn.poll_new_outbound(cx) {
                    if let Some(req) = waiting.pop_front() {
                        // The asker may have given up: the stream is dropped, and so closed.
                        let _ = req.send(opened.map_err(TunnelError::Open));
                    }
                    continue;
                }
            }
            match conn.poll_next_inbound(cx) {
                // The box opens no streams; one it opens anyway is dropped (closed).
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(TunnelError::Connection(e))),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => {}
            }
            if handles_gone && waiting.is_empty() {
                return conn.poll_close(cx).map_err(TunnelError::Connection);
            }
            return Poll::Pending;
        })
        .await
    };
    (Tunnel { opens }, driver)
}
