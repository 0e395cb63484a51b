//! MQTT connection options: mTLS with the device certificate (client id = device id =
//! certificate CN), persistent session, and the `lost` state as last will.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use r58_config::AgentConfig;
use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};

use crate::error::AgentError;

/// (host, port, tls) from `mqtts://host:port` / `mqtt://host:port`.
pub fn parse_broker(url: &str) -> Result<(String, u16, bool), AgentError> {
    let bad = |why: &str| AgentError::BrokerUrl(url.to_string(), why.to_string());
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(bad("scheme must be mqtts:// or mqtt://"));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_string(), port, tls))
}

fn tls_err(path: &Path, reason: impl ToString) -> AgentError {
    AgentError::Tls { path: path.to_path_buf(), reason: reason.to_string() }
}

/// A rustls client config that trusts `ca` and presents `cert`/`key`.
pub fn tls_config(cfg: &AgentConfig) -> Result<rustls::ClientConfig, AgentError> {
    let open = |p: &Path| std::fs::File::open(p).map(BufReader::new).map_err(|e| tls_err(p, e));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut open(&cfg.ca_file)?) {
        roots.add(cert.map_err(|e| tls_err(&cfg.ca_file, e))?).map_err(|e| tls_err(&cfg.ca_file, e))?;
    }
    if roots.is_empty() {
        return Err(tls_err(&cfg.ca_file, "no CA certificate in file"));
    }
    let certs: Vec<_> = rustls_pemfile::certs(&mut open(&cfg.cert_file)?)
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(&cfg.cert_file, e))?;
    if certs.is_empty() {
        return Err(tls_err(&cfg.cert_file, "no certificate in file"));
    }
    let key = rustls_pemfile::private_key(&mut open(&cfg.key_file)?)
        .map_err(|e| tls_err(&cfg.key_file, e))?
        .ok_or_else(|| tls_err(&cfg.key_file, "no private key in file"))?;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&cfg.ca_file, e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| tls_err(&cfg.cert_file, e))
}

pub fn options(cfg: &AgentConfig, tls: Option<&Arc<rustls::ClientConfig>>, will: Vec<u8>) -> Result<MqttOptions, AgentError> {
    let (host, port, use_tls) = parse_broker(&cfg.broker)?;
    let mut opts = MqttOptions::new(cfg.device_id.clone(), host, port);
    opts.set_keep_alive(Duration::from_secs(u64::from(cfg.keepalive_seconds)));
    opts.set_clean_session(false);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts.set_last_will(LastWill::new(r58_proto::state(&cfg.device_id), will, QoS::AtLeastOnce, true));
    if use_tls {
        let tls = tls.ok_or_else(|| AgentError::BrokerUrl(cfg.broker.clone(), "TLS material not loaded".into()))?;
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls.clone())));
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(parse_broker("mqtts://fleet.example.com:8883").unwrap(), ("fleet.example.com".into(), 8883, true));
        assert_eq!(parse_broker("mqtt://127.0.0.1:1884").unwrap(), ("127.0.0.1".into(), 1884, false));
        assert_eq!(parse_broker("mqtts://h").unwrap().1, 8883);
        assert!(parse_broker("http://h").is_err());
        assert!(parse_broker("mqtt://h:x").is_err());
    }
}
