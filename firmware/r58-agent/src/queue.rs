//! The offline queue: outbound messages kept on the data partition until the broker has
//! acknowledged them. One file per message (`<seq>.json`, written atomically), so a power
//! cut loses nothing that was queued. Bounded: past the bound the oldest are dropped and
//! counted; the count is persisted and reported in telemetry.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::AgentError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    pub topic: String,
    pub payload: String,
    #[serde(default)]
    pub retain: bool,
}

pub struct DiskQueue {
    dir: PathBuf,
    seqs: VecDeque<u64>,
    next: u64,
    max: usize,
    dropped: u64,
}

#[derive(Serialize, Deserialize, Default)]
struct Counters {
    dropped: u64,
}

impl DiskQueue {
    pub fn open(dir: &Path, max: usize) -> Result<Self, AgentError> {
        std::fs::create_dir_all(dir).map_err(|source| AgentError::StateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut seqs: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|source| AgentError::StateDir {
                path: dir.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
            .collect();
        seqs.sort_unstable();
        let counters: Counters = r58_fs::read_json(&dir.join("counters"))
            .ok()
            .flatten()
            .unwrap_or_default();
        let next = seqs.last().map_or(1, |s| s + 1);
        Ok(Self {
            dir: dir.to_path_buf(),
            seqs: seqs.into(),
            next,
            max: max.max(1),
            dropped: counters.dropped,
        })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    /// Appends a message; drops the oldest when full. Returns its sequence number.
    pub fn push(&mut self, msg: &Queued) -> Result<u64, AgentError> {
        while self.seqs.len() >= self.max {
            if let Some(old) = self.seqs.pop_front() {
                let _ = std::fs::remove_file(self.path(old));
                self.note_dropped();
            }
        }
        let seq = self.next;
        r58_fs::write_json_atomic(&self.path(seq), msg)?;
        self.next += 1;
        self.seqs.push_back(seq);
        Ok(seq)
    }

    /// The oldest messages, in order, up to `n` (after `after`, exclusive).
    pub fn peek(&self, after: Option<u64>, n: usize) -> Vec<(u64, Queued)> {
        self.seqs
            .iter()
            .filter(|s| after.map_or(true, |a| **s > a))
            .take(n)
            .filter_map(|&s| {
                let text = std::fs::read(self.path(s)).ok()?;
                match serde_json::from_slice(&text) {
                    Ok(q) => Some((s, q)),
                    Err(e) => {
                        tracing::error!(seq = s, error = %e, "dropping unreadable queued message");
                        None
                    }
                }
            })
            .collect()
    }

    /// Counts a message that will never be sent (the count survives restarts and is in the
    /// agent's telemetry).
    pub fn note_dropped(&mut self) {
        self.dropped += 1;
        let _ = r58_fs::write_json_atomic(
            &self.dir.join("counters"),
            &Counters {
                dropped: self.dropped,
            },
        );
    }

    /// Removes a queued message that can never be sent, counted as dropped.
    pub fn discard(&mut self, seq: u64) {
        self.ack(seq);
        self.note_dropped();
    }

    /// Removes an acknowledged message.
    pub fn ack(&mut self, seq: u64) {
        if let Some(pos) = self.seqs.iter().position(|s| *s == seq) {
            self.seqs.remove(pos);
        }
        let _ = std::fs::remove_file(self.path(seq));
    }

    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: u32) -> Queued {
        Queued {
            topic: "t".into(),
            payload: i.to_string(),
            retain: false,
        }
    }

    #[test]
    fn survives_reopen_in_order_and_drops_oldest_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), 3).unwrap();
        for i in 0..5 {
            q.push(&msg(i)).unwrap();
        }
        assert_eq!(q.dropped(), 2);
        drop(q);
        let mut q = DiskQueue::open(dir.path(), 3).unwrap();
        let items: Vec<String> = q
            .peek(None, 10)
            .into_iter()
            .map(|(_, m)| m.payload)
            .collect();
        assert_eq!(items, vec!["2", "3", "4"]);
        assert_eq!(q.dropped(), 2, "drop count survives a restart");
        let first = q.peek(None, 1)[0].0;
        q.ack(first);
        let next = q.push(&msg(9)).unwrap();
        assert!(next > first);
        let items: Vec<String> = q
            .peek(None, 10)
            .into_iter()
            .map(|(_, m)| m.payload)
            .collect();
        assert_eq!(items, vec!["3", "4", "9"]);
    }
}
