//! One batch of what the broker delivered, written in one transaction: either all of it is
//! stored (and then acknowledged to the broker) or none, and the batch is retried.

use serde_json::Value;

use super::commands::write as cmd_write;
use super::devices::write as dev_write;
use super::telemetry::{write as tel_write, Sample};
use super::{q, Db, DbError, StateUpdate};

/// A parsed device message (see `crate::ingest::parse`).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    State { device: String, state: StateUpdate },
    Telemetry { device: String, stream: String, seq: i64, ts: i64, data: Value, figures: Figures },
    Reported { device: String, version: i64, applied: Value, errors: Value },
    CmdStatus { device: String, id: String, name: String, state: String, progress: i64, message: Option<String>, result: Option<Value> },
}


/// The figures the inventory keeps from a telemetry sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    pub recording: Option<bool>,
    pub temperature_c: Option<f64>,
    pub disk: Option<(i64, i64)>,
}

impl PartialEq for StateUpdate {
    fn eq(&self, o: &Self) -> bool {
        (&self.status, self.session, &self.firmware_version, &self.booted_slot, &self.ip_addresses, self.uptime_s, self.ts)
            == (&o.status, o.session, &o.firmware_version, &o.booted_slot, &o.ip_addresses, o.uptime_s, o.ts)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct IngestOutcome {
    /// Telemetry samples stored (redeliveries excluded).
    pub new_samples: u64,
    /// The oldest telemetry timestamp of the batch (ms), to measure the ingest lag.
    pub oldest_ts: Option<i64>,
}

impl Db {
    pub async fn ingest(&self, batch: &[Message]) -> Result<IngestOutcome, DbError> {
        let mut out = IngestOutcome::default();
        let mut tx = self.pool().begin().await.map_err(q("begin ingest batch"))?;
        for m in batch {
            match m {
                Message::State { device, state } => dev_write::state(&mut tx, device, state).await?,
                Message::Telemetry { device, stream, seq, ts, data, figures } => {
                    let text = data.to_string();
                    let s = Sample { device, stream, seq: *seq, ts: *ts, data: &text };
                    if tel_write::sample(&mut tx, &s).await? {
                        out.new_samples += 1;
                    }
                    out.oldest_ts = Some(out.oldest_ts.map_or(*ts, |o| o.min(*ts)));
                    // Also registers a device heard of first by its telemetry, and its last_seen.
                    dev_write::figures(&mut tx, device, figures.recording, figures.temperature_c, figures.disk).await?;
                }
                Message::Reported { device, version, applied, errors } => {
                    dev_write::reported(&mut tx, device, *version, applied, errors).await?
                }
                Message::CmdStatus { device, id, name, state, progress, message, result } => {
                    cmd_write::cmd_status(&mut tx, device, id, name, state, *progress, message.as_deref(), result.as_ref()).await?
                }
            }
        }
        tx.commit().await.map_err(q("commit ingest batch"))?;
        Ok(out)
    }
}
