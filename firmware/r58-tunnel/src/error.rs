//! What can fail on a tunnel, named after the step that failed.

/// An error of the tunnel or of one of its streams.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("the tunnel is closed")]
    Closed,
    #[error("opening a stream on the tunnel: {0}")]
    Open(#[source] yamux::ConnectionError),
    #[error("the tunnel's connection failed: {0}")]
    Connection(#[source] yamux::ConnectionError),
    #[error("the box refused port {port}: {reason}")]
    Refused { port: u16, reason: String },
    #[error("bad stream header {0:?}")]
    BadHeader(String),
    #[error("the peer's identity: {0}")]
    Identity(String),
    #[error("TLS with {peer}: {source}")]
    Tls {
        peer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("WebSocket with {peer}: {source}")]
    WebSocket {
        peer: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    #[error("stream I/O: {0}")]
    Io(#[from] std::io::Error),
}
