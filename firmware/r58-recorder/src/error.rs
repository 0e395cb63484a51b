use std::path::PathBuf;

/// Everything the recorder can fail at, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("loading configuration: {0}")]
    Config(#[from] r58_config::ConfigError),
    #[error("no usable encoder: none of [{name}] is installed")]
    EncoderMissing { name: String },
    #[error("GStreamer element `{factory}` is not installed")]
    ElementMissing { factory: String },
    #[error("initialising GStreamer: {0}")]
    GstInit(#[source] glib::Error),
    #[error("building the {stage} pipeline of input `{input}`: {source}")]
    PipelineBuild {
        input: String,
        stage: &'static str,
        #[source]
        source: glib::Error,
    },
    #[error("wiring the {stage} pipeline of input `{input}`: {what}")]
    PipelineWire {
        input: String,
        stage: &'static str,
        what: String,
    },
    #[error("starting the {stage} pipeline of input `{input}`: {source}")]
    PipelineStart {
        input: String,
        stage: &'static str,
        #[source]
        source: gstreamer::StateChangeError,
    },
    #[error("checking the pipelines: {}", check_text(missing, invalid))]
    PipelineCheck {
        missing: Vec<String>,
        invalid: Vec<String>,
    },
    #[error("unknown input `{0}`")]
    UnknownInput(String),
    #[error("input `{0}` is disabled")]
    InputDisabled(String),
    #[error("no space for recording on {path}: {free_mib} MiB free, floor is {floor_mib} MiB")]
    DiskFull {
        path: PathBuf,
        free_mib: u64,
        floor_mib: u64,
    },
    #[error("creating folder {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading disk space of {path}: {source}")]
    Statvfs {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error(transparent)]
    State(#[from] r58_fs::FsError),
    #[error("binding the HTTP API to {addr}: {source}")]
    BindApi {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the GLib main loop's thread: {0}")]
    MainLoop(#[source] std::io::Error),
    #[error("starting the RTSP server on {addr}: {reason}")]
    RtspStart { addr: String, reason: String },
    #[error("serving the HTTP API: {0}")]
    Serve(#[source] std::io::Error),
    #[error("inputs did not start within {seconds} s: {waiting}")]
    StartTimeout { seconds: u64, waiting: String },
}

fn check_text(missing: &[String], invalid: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "GStreamer elements not installed: {}",
            missing.join(", ")
        ));
    }
    if !invalid.is_empty() {
        parts.push(format!(
            "descriptions that do not parse: {}",
            invalid.join(", ")
        ));
    }
    parts.join("; ")
}
