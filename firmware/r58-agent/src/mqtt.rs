//! MQTT connection options: mTLS with the device certificate (client id = device id =
//! certificate CN), persistent session, and the `lost` state as last will.

use std::sync::Arc;
use std::time::Duration;

use r58_config::AgentConfig;
use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};

use crate::error::AgentError;

/// (host, port, tls) from `mqtts://host:port` / `mqtt://host:port`.
pub fn parse_broker(url: &str) -> Result<(String, u16, bool), AgentError> {
    let b = r58_tls::parse_broker(url)?;
    Ok((b.host, b.port, b.tls))
}

/// A rustls client config that trusts `ca` and presents `cert`/`key`.
pub fn tls_config(cfg: &AgentConfig) -> Result<Arc<rustls::ClientConfig>, AgentError> {
    Ok(r58_tls::client_config(
        &cfg.ca_file,
        &cfg.cert_file,
        &cfg.key_file,
    )?)
}

/// The largest MQTT packet the agent sends or takes (the broker's and the fleet's limit is
/// the same); a larger publish would fail the whole connection.
pub const MAX_PACKET: usize = 1 << 20;
/// The largest message the agent publishes (topic and payload): everything it produces is
/// bounded well below this (telemetry, statuses, a cut `logs.tail`); what is not, is dropped
/// with a count and an error in the log instead of failing the connection.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// Whether a message of this topic and payload may be published.
pub fn fits(topic: &str, payload_len: usize) -> bool {
    topic.len() + payload_len <= MAX_MESSAGE
}

pub fn options(
    cfg: &AgentConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
    will: Vec<u8>,
) -> Result<MqttOptions, AgentError> {
    let (host, port, use_tls) = parse_broker(&cfg.broker)?;
    let mut opts = MqttOptions::new(cfg.device_id.clone(), host, port);
    opts.set_keep_alive(Duration::from_secs(u64::from(cfg.keepalive_seconds)));
    opts.set_clean_session(false);
    opts.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    opts.set_last_will(LastWill::new(
        r58_proto::state(&cfg.device_id),
        will,
        QoS::AtLeastOnce,
        true,
    ));
    if use_tls {
        let tls = tls.ok_or_else(|| {
            AgentError::BrokerUrl(cfg.broker.clone(), "TLS material not loaded".into())
        })?;
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.clone(),
        )));
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker("mqtts://fleet.example.com:8883").unwrap(),
            ("fleet.example.com".into(), 8883, true)
        );
        assert_eq!(
            parse_broker("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884, false)
        );
        assert_eq!(parse_broker("mqtts://h").unwrap().1, 8883);
        assert!(parse_broker("http://h").is_err());
        assert!(parse_broker("mqtt://h:x").is_err());
    }
}
