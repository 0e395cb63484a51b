//! The box's end of the tunnel: answers the streams the fleet opens.

use std::net::Ipv4Addr;
use std::sync::Arc;

use futures::future::poll_fn;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

use crate::activity::Activity;
use crate::{header, yamux_config, TunnelError};

/// Which local ports of the box the fleet may reach, and how many streams at once; and
/// where the tunnel's [`Activity`] is counted.
#[derive(Clone, Debug)]
pub struct Policy {
    pub ports: Vec<u16>,
    pub max_streams: usize,
    pub activity: Arc<Activity>,
}

impl Policy {
    pub fn allows(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }
}

/// Runs the box's end over `io` (the WebSocket to the fleet's relay, as bytes) until the
/// fleet closes it: every stream the fleet opens is checked against `policy` and, when
/// allowed, joined to a new TCP connection to `127.0.0.1:<port>`. Streams run on tasks of
/// their own; one that ends or fails ends only itself.
pub async fn serve<T>(io: T, policy: Policy) -> Result<(), TunnelError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn = yamux::Connection::new(
        io.compat(),
        yamux_config(policy.max_streams),
        yamux::Mode::Server,
    );
    let policy = Arc::new(policy);
    let _up = policy.activity.connection();
    loop {
        match poll_fn(|cx| conn.poll_next_inbound(cx)).await {
            Some(Ok(stream)) => {
                let policy = policy.clone();
                tokio::spawn(async move {
                    if let Err(e) = forward(stream, &policy).await {
                        tracing::info!(error = %e, "a tunnel stream ended with an error");
                    }
                });
            }
            Some(Err(e)) => return Err(TunnelError::Connection(e)),
            None => return Ok(()),
        }
    }
}

/// One stream: its request, the answer, then the bytes both ways.
async fn forward(stream: yamux::Stream, policy: &Policy) -> Result<(), TunnelError> {
    let mut stream = stream.compat();
    let port = header::parse_open(&header::read_line(&mut stream).await?)?;
    let refuse = |reason: String| format!("NO {}\n", reason.replace('\n', " "));
    if !policy.allows(port) {
        let no = refuse(format!("port {port} is not open to the fleet"));
        stream.write_all(no.as_bytes()).await?;
        return Ok(stream.shutdown().await?);
    }
    let mut local = match TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await {
        Ok(l) => l,
        Err(e) => {
            let no = refuse(format!("nothing answers on port {port}: {e}"));
            stream.write_all(no.as_bytes()).await?;
            return Ok(stream.shutdown().await?);
        }
    };
    stream.write_all(b"OK\n").await?;
    let _open = policy.activity.stream();
    let (up, down) = tokio::io::copy_bidirectional(&mut stream, &mut local).await?;
    tracing::debug!(port, up, down, "a tunnel stream ended");
    Ok(())
}
