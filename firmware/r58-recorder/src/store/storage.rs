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
use crate::store::sessions::{session_dirs, Sessions};

const MIB: u64 = 1024 * 1024;

/// Free MiB for unprivileged writers on the file system holding `path`.
pub fn free_mib(path: &Path) -> Result<u64, RecorderError> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|source| RecorderError::Statvfs {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64 / MIB)
}

/// Makes room for a recording that is about to start (oldest finished sessions first),
/// and refuses to start below the floor.
pub fn check_can_record(sessions: &Sessions, cfg: &StorageConfig) -> Result<(), RecorderError> {
    let root = sessions.root();
    if free_mib(root)? < cfg.min_free_mib {
        prune_for_space(sessions, cfg);
    }
    let free = free_mib(root)?;
    if free < cfg.min_free_mib {
        return Err(RecorderError::DiskFull {
            path: root.to_path_buf(),
            free_mib: free,
            floor_mib: cfg.min_free_mib,
        });
    }
    Ok(())
}

fn finished_sessions(sessions: &Sessions) -> Vec<(std::path::PathBuf, Option<Manifest>)> {
    let active = sessions.active_session();
    session_dirs(sessions.root())
        .into_iter()
        .filter(|d| active.as_deref() != d.file_name().and_then(|n| n.to_str()))
        .map(|d| {
            let m = Manifest::read(&d).ok().flatten();
            (d, m)
        })
        .collect()
}

/// One pass of the guard: sessions past the maximum age go; while recording, the oldest
/// finished sessions go until the floor is met (when nothing records, low space hurts
/// nobody, so the latest recordings stay). Returns the sessions it removed.
pub fn enforce(sessions: &Sessions, cfg: &StorageConfig) -> Vec<String> {
    let mut removed = Vec::new();
    if cfg.max_age_days > 0 {
        let finished = finished_sessions(sessions);
        let max_age = chrono::Duration::days(i64::from(cfg.max_age_days));
        for (dir, m) in &finished {
            let ended = m.as_ref().and_then(|m| m.ended_at.or(Some(m.started_at)));
            if ended.is_some_and(|t| Utc::now() - t > max_age) && remove(dir) {
                removed.push(dir.display().to_string());
            }
        }
    }
    if sessions.any_recording() {
        removed.extend(prune_for_space(sessions, cfg));
    }
    removed
}

fn prune_for_space(sessions: &Sessions, cfg: &StorageConfig) -> Vec<String> {
    let root = sessions.root();
    let mut removed = Vec::new();
    let finished = finished_sessions(sessions);
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
        tracing::error!(
            free_mib = free,
            floor_mib = cfg.min_free_mib,
            "disk full: stopping recording"
        );
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
