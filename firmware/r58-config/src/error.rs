use std::path::PathBuf;

/// Why the configuration could not be loaded. Each variant names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("listing config folder {path}: {source}")]
    ListDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {file}: key `{key}`: {reason}")]
    Invalid {
        /// The file that set the offending key (`<built-in defaults>` when none did).
        file: String,
        key: String,
        reason: String,
    },
}
