//! The box's side of the connection: dials the relay and keeps the tunnel up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::device::{self, Policy};
use crate::ws_io::WsIo;
use crate::TunnelError;

/// Where and how a box dials its relay.
#[derive(Clone)]
pub struct Dialer {
    /// `host:port` of the relay.
    pub address: String,
    /// The name the relay's certificate must carry.
    pub server_name: String,
    /// The WebSocket's path on the relay.
    pub path: String,
    /// The box's certificate and the CA it trusts (see `r58_tls::client_config`).
    pub tls: Arc<rustls::ClientConfig>,
    pub policy: Policy,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Dialer {
    /// One connection: dials, then serves the tunnel until it ends.
    pub async fn once(&self) -> Result<(), TunnelError> {
        let peer = self.address.clone();
        let tcp = TcpStream::connect(&self.address).await?;
        let name = rustls::pki_types::ServerName::try_from(self.server_name.clone())
            .map_err(|e| TunnelError::Identity(format!("{}: {e}", self.server_name)))?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|source| TunnelError::Tls {
                peer: peer.clone(),
                source,
            })?;
        let url = format!("wss://{}{}", self.address, self.path);
        let (ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .map_err(|e| TunnelError::WebSocket {
                peer,
                source: Box::new(e),
            })?;
        device::serve(WsIo::new(ws), self.policy.clone()).await
    }

    /// Keeps the tunnel up until `stop`: dials again after each end, waiting 1 s, then twice
    /// as long after each failure in a row (up to `max_backoff`); a tunnel that stayed up a
    /// minute starts the waits over.
    pub async fn run(&self, stop: CancellationToken) {
        let first = Duration::from_secs(1);
        let mut wait = first;
        loop {
            let began = Instant::now();
            let ended = tokio::select! {
                r = self.once() => r,
                () = stop.cancelled() => return,
            };
            match ended {
                Ok(()) => tracing::info!(relay = %self.address, "tunnel closed by the relay"),
                Err(e) => tracing::warn!(relay = %self.address, error = %e, "tunnel down"),
            }
            if began.elapsed() > Duration::from_secs(60) {
                wait = first;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return,
            }
            wait = (wait * 2).min(self.max_backoff);
        }
    }
}
