//! The operating system seam: unit restarts, reboot and the journal. The real
//! implementation runs `systemctl` and `journalctl` (the agent's unit is allowed to through
//! polkit/D-Bus policy); tests put stand-ins for both on `PATH`, as RAUC's tests do with
//! `fw_setenv`.

use std::future::Future;
use std::pin::Pin;

pub type SystemFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait System: Send + Sync {
    fn restart_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a, Result<(), String>>;
    fn reboot(&self) -> SystemFuture<'_, Result<(), String>>;
    fn journal_tail<'a>(
        &'a self,
        unit: &'a str,
        lines: u32,
    ) -> SystemFuture<'a, Result<Vec<String>, String>>;
}

/// systemd through its command-line tools.
pub struct Systemd;

async fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl System for Systemd {
    fn restart_unit<'a>(&'a self, unit: &'a str) -> SystemFuture<'a, Result<(), String>> {
        Box::pin(async move {
            run("systemctl", &["restart", "--no-block", unit])
                .await
                .map(|_| ())
        })
    }

    fn reboot(&self) -> SystemFuture<'_, Result<(), String>> {
        Box::pin(async move { run("systemctl", &["reboot"]).await.map(|_| ()) })
    }

    fn journal_tail<'a>(
        &'a self,
        unit: &'a str,
        lines: u32,
    ) -> SystemFuture<'a, Result<Vec<String>, String>> {
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
