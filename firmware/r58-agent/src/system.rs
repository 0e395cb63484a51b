//! The operating system seam: unit restarts, reboot and the journal. The real
//! implementation runs `systemctl` and `journalctl` (the agent's unit is allowed to through
//! polkit/D-Bus policy); tests put stand-ins for both on `PATH`, as RAUC's tests do with
//! `fw_setenv`.

use std::future::Future;
use std::pin::Pin;

pub type SystemFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("running {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

pub trait System: Send + Sync {
    fn restart_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a, Result<(), SystemError>>;
    fn reboot(&self) -> SystemFuture<'_, Result<(), SystemError>>;
    fn journal_tail<'a>(
        &'a self,
        unit: &'a str,
        lines: u32,
    ) -> SystemFuture<'a, Result<Vec<String>, SystemError>>;
}

/// systemd through its command-line tools.
pub struct Systemd;

async fn run(program: &str, args: &[&str]) -> Result<String, SystemError> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|source| SystemError::Spawn {
            program: program.into(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(SystemError::Failed {
            command: format!("{program} {}", args.join(" ")),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl System for Systemd {
    fn restart_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a, Result<(), SystemError>> {
        Box::pin(async move {
            run("systemctl", &["restart", "--no-block", unit])
                .await
                .map(|_| ())
        })
    }

    fn reboot(&self) -> SystemFuture<'_, Result<(), SystemError>> {
        Box::pin(async move { run("systemctl", &["reboot"]).await.map(|_| ()) })
    }

    fn journal_tail<'a>(
        &'a self,
        unit: &'a str,
        lines: u32,
    ) -> SystemFuture<'a, Result<Vec<String>, SystemError>> {
        Box::pin(async move {
            let n = lines.to_string();
            let out = run(
                "journalctl",
                &["--no-pager", "-o", "short-iso", "-u", unit, "-n", &n],
            )
            .await?;
            Ok(out.lines().map(str::to_string).collect())
        })
    }
}
