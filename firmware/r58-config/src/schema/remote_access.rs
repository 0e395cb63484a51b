//! `[remote_access]`: the tunnel the box opens to the fleet's relay (docs/remote-access.md).

use serde::{Deserialize, Serialize};

use super::{range_check, Validate};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteAccessConfig {
    /// Keep a tunnel to the relay open (settable through the twin). Off by default.
    pub enabled: bool,
    /// `host:port` of the fleet's relay.
    pub relay: String,
    /// The name the relay's certificate must carry; empty: the host of `relay`.
    pub server_name: String,
    /// The local ports the fleet may reach through the tunnel.
    pub ports: Vec<u16>,
    /// Streams open at once.
    pub max_streams: u32,
    /// The longest wait between two attempts to dial the relay.
    pub reconnect_max_seconds: u32,
}

impl Default for RemoteAccessConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            relay: String::new(),
            server_name: String::new(),
            ports: vec![8000],
            max_streams: 16,
            reconnect_max_seconds: 60,
        }
    }
}

impl RemoteAccessConfig {
    /// The name the relay's certificate must carry.
    pub fn relay_name(&self) -> &str {
        if !self.server_name.is_empty() {
            return &self.server_name;
        }
        match self.relay.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => &self.relay,
        }
    }
}

impl Validate for RemoteAccessConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.enabled && self.relay.is_empty() {
            out.push(("relay".into(), "needed when enabled".into()));
        }
        if !self.relay.is_empty()
            && self
                .relay
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
        {
            out.push(("relay".into(), format!("{:?} is not host:port", self.relay)));
        }
        if self.ports.contains(&0) {
            out.push(("ports".into(), "0 is not a port".into()));
        }
        range_check(&mut out, "max_streams", self.max_streams, 1, 1024);
        range_check(
            &mut out,
            "reconnect_max_seconds",
            self.reconnect_max_seconds,
            1,
            3600,
        );
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_is_checked_and_names_itself() {
        let mut c = RemoteAccessConfig {
            enabled: true,
            ..Default::default()
        };
        assert_eq!(c.validate()[0].0, "relay");
        c.relay = "fleet.example.com".into();
        assert!(c.validate()[0].1.contains("host:port"));
        c.relay = "fleet.example.com:8443".into();
        assert!(c.validate().is_empty());
        assert_eq!(c.relay_name(), "fleet.example.com");
        c.server_name = "relay.example.com".into();
        assert_eq!(c.relay_name(), "relay.example.com");
    }
}
