use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("loading configuration: {0}")]
    Config(#[from] r58_config::ConfigError),
    #[error("reading device registry {path}: {source}")]
    DevicesRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("device registry {path}: {reason}")]
    DevicesParse { path: PathBuf, reason: String },
    #[error("reading secret file {path}: {source}")]
    Secret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {path} is empty")]
    SecretEmpty { path: PathBuf },
    #[error(transparent)]
    State(r58_fs::FsError),
    #[error("binding HTTP on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("[relay]: {0}")]
    RelayTls(#[source] r58_tls::TlsError),
    #[error("binding the relay on {addr}: {source}")]
    RelayBind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
    #[error("bad device id {0:?}: use 1-64 characters of a-z, 0-9, '-', '_', not one of the reserved names {reserved:?}", reserved = r58_proto::RESERVED_IDS)]
    BadDeviceId(String),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("[mqtt]")]
    Mqtt(#[from] r58_tls::TlsError),
    #[error("PKI: {0}")]
    Pki(String),
    #[error("reading the revocation list {path}: {source}")]
    RevokedRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("fleet API {url}: {reason}")]
    Client { url: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("bundle {path}: {reason}")]
    Bundle { path: PathBuf, reason: String },
}

/// Reads a secret from a file, trimmed; empty is an error.
pub fn read_secret(path: &std::path::Path) -> Result<String, FleetError> {
    let s = std::fs::read_to_string(path).map_err(|source| FleetError::Secret {
        path: path.to_path_buf(),
        source,
    })?;
    let s = s.trim().to_string();
    if s.is_empty() {
        return Err(FleetError::SecretEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(s)
}
