//! systemd integration without libsystemd: the `sd_notify` datagram protocol, a watchdog
//! that is fed only while the service says it is healthy, and the stop signal.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// One field of a notification (see `sd_notify(3)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notify {
    Ready,
    Reloading,
    Stopping,
    Watchdog,
    Status(String),
}

impl Notify {
    fn line(&self) -> String {
        match self {
            Self::Ready => "READY=1".into(),
            Self::Reloading => "RELOADING=1".into(),
            Self::Stopping => "STOPPING=1".into(),
            Self::Watchdog => "WATCHDOG=1".into(),
            // A status is one line: newlines would start a new field.
            Self::Status(s) => format!("STATUS={}", s.replace('\n', " ")),
        }
    }
}

/// Sends the fields to `$NOTIFY_SOCKET`. Returns Ok(false) when not run by systemd.
pub fn notify(fields: &[Notify]) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let path = path.to_string_lossy().into_owned();
    let addr = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes())?
    } else {
        SocketAddr::from_pathname(&path)?
    };
    let msg: Vec<String> = fields.iter().map(Notify::line).collect();
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(msg.join("\n").as_bytes(), &addr)?;
    Ok(true)
}

/// Like [`notify`], but logs a failure instead of returning it (notification is best effort).
pub fn notify_or_log(fields: &[Notify]) {
    if let Err(e) = notify(fields) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// The watchdog period systemd expects (`WatchdogSec=`), when it is meant for this process.
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Feeds the systemd watchdog from a thread at half its period, but only while
/// `healthy()` says so: a stalled service stops feeding and systemd restarts it.
/// Returns None when no watchdog is configured.
pub fn spawn_watchdog<F>(healthy: F) -> Option<std::thread::JoinHandle<()>>
where
    F: Fn() -> Result<(), String> + Send + 'static,
{
    let period = watchdog_period()?;
    let tick = period / 2;
    let handle = std::thread::Builder::new()
        .name("sd-watchdog".into())
        .spawn(move || {
            let mut was_healthy = true;
            loop {
                match healthy() {
                    Ok(()) => {
                        notify_or_log(&[Notify::Watchdog]);
                        was_healthy = true;
                    }
                    Err(reason) => {
                        if was_healthy {
                            tracing::error!(%reason, "unhealthy: no longer feeding the systemd watchdog");
                            notify_or_log(&[Notify::Status(format!("unhealthy: {reason}"))]);
                        }
                        was_healthy = false;
                    }
                }
                std::thread::sleep(tick);
            }
        })
        .ok()?;
    Some(handle)
}

/// Resolves when the service is asked to stop: SIGTERM (systemd, Docker) or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM: stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_sends_fields_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        let sent = notify(&[Notify::Ready, Notify::Status("a\nb".into())]).unwrap();
        std::env::remove_var("NOTIFY_SOCKET");
        assert!(sent);
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            "READY=1\nSTATUS=a b"
        );
    }
}
