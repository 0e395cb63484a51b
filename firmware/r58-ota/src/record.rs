//! The job's state on the data partition (`<ota.dir>/job.json`, written atomically): the
//! current job with its phase, and the ids of recent finished jobs (the retained `jobs/next`
//! comes again on every connection and must not run twice).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

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
        Ok(Self { path, disk })
    }

    pub fn current(&self) -> Option<&Record> {
        self.disk.current.as_ref()
    }

    pub fn is_done(&self, job_id: &str) -> bool {
        self.disk.done.iter().any(|j| j == job_id)
    }

    /// Replaces the current record (a final one also joins the done list) and writes it.
    pub fn put(&mut self, mut rec: Record) -> Result<(), r58_fs::FsError> {
        rec.updated = Utc::now();
        if rec.phase.is_final() && !self.is_done(&rec.job.job_id) {
            self.disk.done.push_back(rec.job.job_id.clone());
            while self.disk.done.len() > KEEP_DONE {
                self.disk.done.pop_front();
            }
        }
        self.disk.current = Some(rec);
        r58_fs::write_json_atomic(&self.path, &self.disk)
    }
}
