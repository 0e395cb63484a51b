//! The fleet's relay: accepts the boxes' tunnels over mutual TLS and keeps who is
//! connected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::relay::{self, Tunnel};
use crate::ws_io::WsIo;
use crate::TunnelError;

/// How long a box has for TLS and the WebSocket upgrade.
const HANDSHAKE: Duration = Duration::from_secs(10);

struct Entry {
    tunnel: Tunnel,
    /// Tells this registration from a later one of the same box.
    generation: u64,
}

/// The boxes whose tunnels are open, by device id (their certificate's common name).
pub struct Relay {
    tls: TlsAcceptor,
    max_streams: usize,
    open: Mutex<HashMap<String, Entry>>,
    generations: std::sync::atomic::AtomicU64,
}

impl Relay {
    /// A relay accepting boxes with a certificate `tls` trusts (see `r58_tls::server_config`).
    pub fn new(tls: Arc<rustls::ServerConfig>, max_streams: usize) -> Arc<Self> {
        Arc::new(Relay {
            tls: TlsAcceptor::from(tls),
            max_streams,
            open: Mutex::new(HashMap::new()),
            generations: Default::default(),
        })
    }

    fn open(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tunnel of `device`, while it is connected.
    pub fn tunnel(&self, device: &str) -> Option<Tunnel> {
        self.open().get(device).map(|e| e.tunnel.clone())
    }

    /// The devices connected now, sorted.
    pub fn devices(&self) -> Vec<String> {
        let mut d: Vec<String> = self.open().keys().cloned().collect();
        d.sort();
        d
    }

    /// Accepts boxes on `listener` for ever; each on a task of its own.
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let relay = self.clone();
            tokio::spawn(async move {
                if let Err(e) = relay.serve(tcp, peer.to_string()).await {
                    tracing::info!(%peer, error = %e, "relay: a box's tunnel ended");
                }
            });
        }
    }

    async fn serve(&self, tcp: TcpStream, peer: String) -> Result<(), TunnelError> {
        let (device, ws) = tokio::time::timeout(HANDSHAKE, async {
            let tls = self
                .tls
                .accept(tcp)
                .await
                .map_err(|source| TunnelError::Tls {
                    peer: peer.clone(),
                    source,
                })?;
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .ok_or_else(|| TunnelError::Identity(format!("{peer} sent no certificate")))?;
            let device = crate::identity::common_name(cert)?;
            let ws =
                tokio_tungstenite::accept_async(tls)
                    .await
                    .map_err(|e| TunnelError::WebSocket {
                        peer: peer.clone(),
                        source: Box::new(e),
                    })?;
            Ok::<_, TunnelError>((device, ws))
        })
        .await
        .map_err(|_| {
            TunnelError::Identity(format!("{peer}: no handshake within {HANDSHAKE:?}"))
        })??;
        let (tunnel, driver) = relay::connect(WsIo::new(ws), self.max_streams);
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A box that comes back replaces its older tunnel (which is then closed).
        self.open()
            .insert(device.clone(), Entry { tunnel, generation });
        tracing::info!(%device, %peer, "relay: tunnel open");
        let ended = driver.await;
        let mut open = self.open();
        if open.get(&device).map(|e| e.generation) == Some(generation) {
            open.remove(&device);
        }
        drop(open);
        tracing::info!(%device, "relay: tunnel closed");
        ended
    }
}
