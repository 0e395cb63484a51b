//! Broker URLs (`mqtts://host:port`) and the rustls configurations of mutual TLS: the client's
//! (trust one CA, present one certificate) used by both ends of the MQTT protocol, and the
//! server's (present one certificate, accept clients of one CA) of the fleet's tunnel relay.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("broker URL {url:?}: {reason}")]
    BrokerUrl { url: String, reason: String },
    #[error("TLS material {path}: {reason}")]
    Material { path: PathBuf, reason: String },
}

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// `mqtts://host:port` (default port 8883) or `mqtt://host:port` (1883).
pub fn parse_broker(url: &str) -> Result<Broker, TlsError> {
    let bad = |why: &str| TlsError::BrokerUrl {
        url: url.to_string(),
        reason: why.to_string(),
    };
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(bad("scheme must be mqtts:// or mqtt://"));
    };
    let rest = rest.trim_end_matches('/');
    let default_port = if tls { 8883 } else { 1883 };
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after.strip_prefix(':') {
                Some(p) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
                None if after.is_empty() => (h, default_port),
                None => return Err(bad("junk after ]")),
            }
        }
        None => match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
            None => (rest, default_port),
        },
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Broker {
        host: host.to_string(),
        port,
        tls,
    })
}

fn material(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Material {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// A rustls client config (ring provider) that trusts the CA in `ca` and presents the
/// certificate chain in `cert` with the private key in `key` (all PEM).
pub fn client_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let (roots, certs, private) = load(ca, cert, key)?;
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| material(ca, e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, private)
        .map_err(|e| material(cert, e))?;
    Ok(Arc::new(cfg))
}

/// A rustls server config (ring provider) that presents `cert` with `key` and accepts only
/// clients with a certificate the CA in `ca` issued (all PEM).
pub fn server_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (roots, certs, private) = load(ca, cert, key)?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| material(ca, e))?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| material(ca, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, private)
        .map_err(|e| material(cert, e))?;
    Ok(Arc::new(cfg))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

type Material = (
    rustls::RootCertStore,
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

/// The CA in `ca`, the chain in `cert` and the key in `key`, each file named when it fails.
fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Material, TlsError> {
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(BufReader::new)
            .map_err(|e| material(p, e))
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut open(ca)?) {
        roots
            .add(c.map_err(|e| material(ca, e))?)
            .map_err(|e| material(ca, e))?;
    }
    if roots.is_empty() {
        return Err(material(ca, "no CA certificate in file"));
    }
    let certs: Vec<_> = rustls_pemfile::certs(&mut open(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| material(cert, e))?;
    if certs.is_empty() {
        return Err(material(cert, "no certificate in file"));
    }
    let private = rustls_pemfile::private_key(&mut open(key)?)
        .map_err(|e| material(key, e))?
        .ok_or_else(|| material(key, "no private key in file"))?;
    Ok((roots, certs, private))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let b = parse_broker("mqtts://broker.example:8884").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("broker.example", 8884, true)
        );
        assert_eq!(parse_broker("mqtt://h").unwrap().port, 1883);
        assert_eq!(parse_broker("mqtts://h/").unwrap().port, 8883);
        assert_eq!(
            parse_broker("mqtts://[::1]:9").unwrap(),
            Broker {
                host: "::1".into(),
                port: 9,
                tls: true
            }
        );
        assert_eq!(parse_broker("mqtts://[::1]").unwrap().port, 8883);
        assert!(parse_broker("http://h").is_err());
        assert!(parse_broker("mqtts://h:x").is_err());
        assert!(parse_broker("mqtts://:1").is_err());
    }

    #[test]
    fn missing_material_names_the_file() {
        let e = client_config(
            Path::new("/nonexistent/ca.pem"),
            Path::new("c"),
            Path::new("k"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
