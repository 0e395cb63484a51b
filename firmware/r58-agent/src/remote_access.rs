//! The box's remote-access tunnel (docs/remote-access.md): while `remote_access.enabled`
//! (local config or the fleet's desired config), a dialer keeps a tunnel to the fleet's
//! relay open, authenticated with the device certificate the agent uses for MQTT.

use std::sync::Arc;
use std::time::Duration;

use r58_config::{R58Config, RemoteAccessConfig};
use r58_proto::RemoteAccessState;
use r58_tunnel::activity::Activity;
use r58_tunnel::device::Policy;
use r58_tunnel::dial::Dialer;
use tokio_util::sync::CancellationToken;

/// Starts and stops the dialer as the configuration says.
#[derive(Default)]
pub struct RemoteAccess {
    running: Option<(RemoteAccessConfig, CancellationToken)>,
    /// The running dialer's tunnel: connected, streams open.
    activity: Option<Arc<Activity>>,
}

impl RemoteAccess {
    /// Brings the dialer in line with `cfg`: started when enabled, stopped when not, started
    /// again when its settings changed.
    pub fn apply(&mut self, cfg: &R58Config) {
        let want = &cfg.remote_access;
        if let Some((now, _)) = &self.running {
            if want.enabled && now == want {
                return;
            }
        }
        if let Some((_, stop)) = self.running.take() {
            stop.cancel();
            self.activity = None;
            tracing::info!("remote access off");
        }
        if !want.enabled {
            return;
        }
        let a = &cfg.agent;
        let tls = match r58_tls::client_config(&a.ca_file, &a.cert_file, &a.key_file) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "remote access stays off: no TLS identity");
                return;
            }
        };
        let activity = Arc::new(Activity::default());
        let dialer = Dialer {
            address: want.relay.clone(),
            server_name: want.relay_name().to_string(),
            path: "/relay".into(),
            tls,
            policy: Policy {
                ports: want.ports.clone(),
                max_streams: want.max_streams as usize,
                activity: activity.clone(),
            },
            max_backoff: Duration::from_secs(u64::from(want.reconnect_max_seconds)),
        };
        let stop = CancellationToken::new();
        tokio::spawn({
            let stop = stop.clone();
            async move { dialer.run(stop).await }
        });
        tracing::info!(relay = %want.relay, ports = ?want.ports, "remote access on");
        self.running = Some((want.clone(), stop));
        self.activity = Some(activity);
    }

    /// For the box's state: the tunnel while remote access is on, None while it is off.
    pub fn state(&self) -> Option<RemoteAccessState> {
        self.activity.as_ref().map(|a| RemoteAccessState {
            tunnel: a.connected(),
            open_streams: u32::try_from(a.open_streams()).unwrap_or(u32::MAX),
        })
    }
}

impl Drop for RemoteAccess {
    fn drop(&mut self) {
        if let Some((_, stop)) = self.running.take() {
            stop.cancel();
        }
    }
}
