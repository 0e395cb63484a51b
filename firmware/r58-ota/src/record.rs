//! The job's state on the data partition (`<ota.dir>/job.json`, written atomically): the
//! current job with its phase, and the ids of recent finished jobs (the retained `jobs/next`
//! comes again on every connection and must not run twice).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use r58_proto::{Job, Phase, Reason};
use serde::{Deserialize, Serialize};

const KEEP_DONE: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub job: Job,
    pub phase: Phase,
    pub progress: u8,
    #[serde(default)]
    pub reason: Option<Reason>,
    #[serde(default)]
    pub details: Option<String>,
    /// Bootnames: where the install started from, and where it went.
    #[serde(default)]
    pub from_slot: Option<String>,
    #[serde(default)]
    pub target_slot: Option<String>,
    /// The boot during which the reboot was requested.
    #[serde(default)]
    pub reboot_boot_id: Option<String>,
    #[serde(default)]
    pub reboot_attempts: u32,
    pub updated: DateTime<Utc>,
}

impl Record {
    pub fn new(job: Job) -> Self {
        Self {
            job,
            phase: Phase::Queued,
            progress: 0,
            reason: None,
            details: None,
            from_slot: None,
            target_slot: None,
            reboot_boot_id: None,
            reboot_attempts: 0,
            updated: Utc::now(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    current: Option<Record>,
    #[serde(default)]
    done: VecDeque<String>,
}

#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    disk: OnDisk,
    /// Numbers the staged contents; the writer keeps the number it last wrote.
    staged: u64,
    written: Arc<Mutex<u64>>,
}

/// The store's contents at one change, to be written off the event loop: an fsync can take
/// seconds while RAUC writes a slot on the same disk. Writes happen one at a time, and one
/// older than what is on disk is skipped, so the file never goes back.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    seq: u64,
    data: Vec<u8>,
    written: Arc<Mutex<u64>>,
}

impl Staged {
    pub fn write(self) -> Result<(), r58_fs::FsError> {
        let mut last = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if self.seq <= *last {
            return Ok(());
        }
        r58_fs::write_atomic(&self.path, &self.data)?;
        *last = self.seq;
        Ok(())
    }
}

impl Store {
    /// Opens (or starts) the store. A file that cannot be read is an error: a job must not be
    /// forgotten silently.
    pub fn open(dir: &Path) -> Result<Self, r58_fs::FsError> {
        std::fs::create_dir_all(dir).map_err(|source| r58_fs::FsError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("job.json");
        let disk = r58_fs::read_json(&path)?.unwrap_or_default();
        Ok(Self {
            path,
            disk,
            staged: 0,
            written: Arc::new(Mutex::new(0)),
        })
    }

    pub fn current(&self) -> Option<&Record> {
        self.disk.current.as_ref()
    }

    pub fn is_done(&self, job_id: &str) -> bool {
        self.disk.done.iter().any(|j| j == job_id)
    }

    /// Replaces the current record (a final one also joins the done list) and writes it.
    pub fn put(&mut self, rec: Record) -> Result<(), r58_fs::FsError> {
        self.stage(rec)?.write()
    }

    /// Replaces the current record in memory; the caller writes what it returns.
    pub fn stage(&mut self, mut rec: Record) -> Result<Staged, r58_fs::FsError> {
        rec.updated = Utc::now();
        if rec.phase.is_final() && !self.is_done(&rec.job.job_id) {
            self.disk.done.push_back(rec.job.job_id.clone());
            while self.disk.done.len() > KEEP_DONE {
                self.disk.done.pop_front();
            }
        }
        self.disk.current = Some(rec);
        let mut data =
            serde_json::to_vec_pretty(&self.disk).map_err(|source| r58_fs::FsError::Encode {
                path: self.path.clone(),
                source,
            })?;
        data.push(b'\n');
        self.staged += 1;
        Ok(Staged {
            path: self.path.clone(),
            seq: self.staged,
            data,
            written: self.written.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> Job {
        serde_json::from_value(serde_json::json!({
            "job_id": id, "version": "2.0.0", "url": "http://fleet/b.raucb",
            "size": 1, "sha256": "0".repeat(64)
        }))
        .unwrap()
    }

    #[test]
    fn staged_writes_land_in_order_and_an_older_one_never_replaces_a_newer() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut rec = Record::new(job("j1"));
        let older = store.stage(rec.clone()).unwrap();
        rec.phase = Phase::Installing;
        let newer = store.stage(rec).unwrap();
        newer.write().unwrap();
        // The older contents, written late (a slow writer thread), must not win.
        older.write().unwrap();
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.current().unwrap().phase, Phase::Installing);
        // Memory holds the staged record before any write.
        let mut rec = again.current().unwrap().clone();
        rec.phase = Phase::Failed;
        let mut store = again;
        let _unwritten = store.stage(rec).unwrap();
        assert_eq!(store.current().unwrap().phase, Phase::Failed);
        assert!(store.is_done("j1"));
        assert_eq!(
            Store::open(dir.path()).unwrap().current().unwrap().phase,
            Phase::Installing
        );
    }
}
