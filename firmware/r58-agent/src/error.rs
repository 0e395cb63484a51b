use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("loading configuration: {0}")]
    Config(#[from] r58_config::ConfigError),
    #[error("agent.device_id is not set (it must equal the CN of the device certificate)")]
    NoDeviceId,
    #[error("agent.broker {0:?}: {1}")]
    BrokerUrl(String, String),
    #[error(transparent)]
    Tls(#[from] r58_tls::TlsError),
    #[error("preparing state folder {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] r58_fs::FsError),
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
