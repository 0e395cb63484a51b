//! Logging for R58 services.
//!
//! Under systemd (`JOURNAL_STREAM` set) events go to journald with their fields as
//! journal fields (`SYSLOG_IDENTIFIER` = the service). Otherwise a readable line goes to
//! stderr. `RUST_LOG` filters in both cases (default `info`).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Where the log went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journald,
    Stderr,
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(service: &str) -> Sink {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(layer) = tracing_journald::layer() {
            let layer = layer.with_syslog_identifier(service.to_string());
            if tracing_subscriber::registry()
                .with(filter)
                .with(layer)
                .try_init()
                .is_ok()
            {
                return Sink::Journald;
            }
            return Sink::Stderr;
        }
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init();
    Sink::Stderr
}

/// Formats an error with its whole `source()` chain, for `main` to print before exiting.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// The exit of a service's `main`: success, or the error's chain in the log and on stderr
/// (`program: …`) and exit status 1.
pub fn exit_with<E: std::error::Error + 'static>(
    program: &str,
    result: Result<(), E>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let chain = error_chain(&e);
            tracing::error!(error = %chain, "{program} failed");
            eprintln!("{program}: {chain}");
            std::process::ExitCode::FAILURE
        }
    }
}
