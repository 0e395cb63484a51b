//! Command ids already executed, remembered across restarts (bounded, newest kept), so that
//! a redelivered or duplicated command runs at most once.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const KEEP: usize = 4096;

#[derive(Default, Serialize, Deserialize)]
struct Stored {
    ids: VecDeque<String>,
}

pub struct SeenIds {
    path: PathBuf,
    stored: Stored,
}

impl SeenIds {
    pub fn open(path: &Path) -> Self {
        let stored = match r58_fs::read_json(path) {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "command id store unreadable: starting empty");
                Stored::default()
            }
        };
        Self {
            path: path.to_path_buf(),
            stored,
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.stored.ids.iter().any(|i| i == id)
    }

    /// Records `id` before the command runs: written and renamed into place (it survives
    /// a crash of the agent), but not fsynced, which would put a flush of the eMMC into
    /// every command's latency. See docs/mqtt.md for what a power cut can cost.
    pub fn insert(&mut self, id: &str) -> Result<(), r58_fs::FsError> {
        self.stored.ids.push_back(id.to_string());
        while self.stored.ids.len() > KEEP {
            self.stored.ids.pop_front();
        }
        r58_fs::write_json_replace(&self.path, &self.stored)
    }
}
