//! The storage guard: keeps a free-space floor on the data partition by removing the
//! oldest finished sessions, removes sessions past the maximum age, and when that is not
//! enough stops recording cleanly with reason `disk_full`. The session being written is
//! never removed.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use r58_config::StorageConfig;

use crate::error::RecorderError;
use crate::manifest::Manifest;
use crate::sessions::{session_dirs, Sessions};

const MIB: u64 = 1024 * 1024;

/// Free MiB for unprivileged writers on the file system holding `path`.
pub fn free_mib(path: &Path) -> Result<u64, RecorderError> {
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|source| RecorderError::Statvfs { path: path.to_path_buf(), source })?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64 / MIB)
}

/// Refuses to start recording below the floor.
pub fn check_can_record(root: &Path, cfg: &StorageConfig) -> Result<(), RecorderError> {
    let free = free_mib(root)?;
    if free < cfg.min_free_mib {
        return Err(RecorderError::DiskFull { path: root.to_path_buf(), free_mib: free, floor_mib: cfg.min_free_mib });
    }
    Ok(())
}

/// One pass of the guard. Returns the sessions it removed.
pub fn enforce(sessions: &Sessions, cfg: &StorageConfig) -> Vec<String> {
    let root = sessions.root();
    let active = sessions.active_session();
    let mut removed = Vec::new();
    let finished: Vec<(std::path::PathBuf, Option<Manifest>)> = session_dirs(root)
        .into_iter()
        .filter(|d| active.as_deref() != d.file_name().and_then(|n| n.to_str()))
        .map(|d| {
            let m = Manifest::read(&d).ok().flatten();
            (d, m)
        })
        .collect();
    if cfg.max_age_days > 0 {
        let max_age = chrono::Duration::days(i64::from(cfg.max_age_days));
        for (dir, m) in &finished {
            let ended = m.as_ref().and_then(|m| m.ended_at.or(Some(m.started_at)));
            if ended.is_some_and(|t| Utc::now() - t > max_age) && remove(dir) {
                removed.push(dir.display().to_string());
            }
        }
    }
    let mut free = match free_mib(root) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "storage guard");
            return removed;
        }
    };
    // Oldest first: session folder names are their start times.
    for (dir, _) in &finished {
        if free >= cfg.min_free_mib {
            break;
        }
        if !dir.exists() {
            continue;
        }
        if remove(dir) {
            tracing::warn!(session = %dir.display(), free_mib = free, "removed oldest session to keep the free-space floor");
            removed.push(dir.display().to_string());
            free = free_mib(root).unwrap_or(free);
        }
    }
    if free < cfg.min_free_mib && sessions.any_recording() {
        tracing::error!(free_mib = free, floor_mib = cfg.min_free_mib, "disk full: stopping recording");
        sessions.stop(None, "disk_full", false);
    }
    removed
}

fn remove(dir: &Path) -> bool {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(session = %dir.display(), error = %e, "removing session failed");
            false
        }
    }
}

pub fn interval(cfg: &StorageConfig) -> Duration {
    Duration::from_secs(u64::from(cfg.check_interval_seconds))
}
