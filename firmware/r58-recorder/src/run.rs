//! The service's life: load config, start, READY, serve, stop on SIGTERM.

use std::time::Duration;

use r58_systemd::{notify_or_log, Notify};

use crate::error::RecorderError;
use crate::service::Recorder;

/// Command-line options (everything else comes from the config files).
#[derive(Debug, Default)]
pub struct Options {
    pub config: Option<std::path::PathBuf>,
    pub check_config: bool,
    /// Check that every GStreamer element the configured pipelines use is installed.
    pub check_pipelines: bool,
}

pub fn run(opts: Options) -> Result<(), RecorderError> {
    let paths = r58_config::ConfigPaths::resolve(
        opts.config,
        r58_config::CONFIG_ENV,
        r58_config::DEFAULT_CONFIG_PATH,
    );
    let loaded = r58_config::load_from::<r58_config::R58Config>(&paths)?;
    if opts.check_config {
        println!(
            "config ok: {}",
            loaded
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(());
    }
    if opts.check_pipelines {
        return crate::check::report(&crate::check::pipelines(&loaded.config)?);
    }
    let cfg = loaded.config;
    tracing::info!(files = ?loaded.files, inputs = cfg.inputs.len(), "configuration loaded");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RecorderError::Serve)?;
    runtime.block_on(serve(cfg))
}

/// The API's bounds on the venue's network: viewers of the live stream, the box's own page
/// and a few tools at once, well inside the service's descriptors (r58_http).
const API_LIMITS: r58_http::Limits = r58_http::Limits::untrusted(256);

async fn serve(cfg: r58_config::R58Config) -> Result<(), RecorderError> {
    let addr = cfg.api.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RecorderError::BindApi { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| RecorderError::BindApi { addr, source })?;
    let recorder = tokio::task::spawn_blocking(move || Recorder::start(cfg))
        .await
        .map_err(|e| RecorderError::Serve(std::io::Error::other(e)))??;
    let rec = recorder.clone();
    tokio::task::spawn_blocking(move || rec.wait_ready(Duration::from_secs(30)))
        .await
        .map_err(|e| RecorderError::Serve(std::io::Error::other(e)))??;
    let resume = recorder.resume.clone();
    if !resume.is_empty() {
        let rec = recorder.clone();
        let result = tokio::task::spawn_blocking(move || rec.start_recording(Some(&resume))).await;
        match result {
            Ok(Ok((session, inputs))) => {
                tracing::warn!(%session, ?inputs, "resumed recording after restart")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "could not resume recording"),
            Err(e) => tracing::error!(error = %e, "could not resume recording"),
        }
    }
    let _ = recorder.turn.set(crate::turn::start(&recorder.cfg.turn));
    let app = crate::api::router(recorder.clone());
    tracing::info!(api = %bound, rtsp_port = ?recorder.rtsp_port, "recorder ready");
    notify_or_log(&[
        Notify::Ready,
        Notify::Status(format!("{} inputs, API on {bound}", recorder.inputs.len())),
    ]);
    let health = recorder.clone();
    r58_systemd::spawn_watchdog(move || health.health());

    r58_http::serve(listener, app, API_LIMITS, r58_systemd::shutdown_signal()).await;

    notify_or_log(&[
        Notify::Stopping,
        Notify::Status("finishing recordings".into()),
    ]);
    tracing::info!("stopping: finishing open segments");
    let rec = recorder.clone();
    let _ = tokio::task::spawn_blocking(move || rec.shutdown()).await;
    tracing::info!("stopped");
    Ok(())
}
