//! One batch of what the broker delivered, written in one transaction: either all of it is
//! stored (and then acknowledged to the broker) or none, and the batch is retried. What the
//! database refuses outright is set aside in `rejected_messages`.

use serde_json::Value;

use super::commands::write as cmd_write;
use super::commands::{status_statements, StatusRow};
use super::devices::write as dev_write;
use super::ota::write as ota_write;
use super::{q, values, Db, DbError, StateUpdate, ROWS_PER_STATEMENT};

/// A parsed device message (see `crate::mqtt::ingest::parse`).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    State {
        device: String,
        state: StateUpdate,
    },
    Telemetry {
        device: String,
        stream: String,
        seq: i64,
        ts: i64,
        /// The sample's `data` as the device sent it (JSON text).
        data: String,
        figures: Figures,
    },
    Reported {
        device: String,
        version: i64,
        applied: Value,
        errors: Value,
        /// As for [`StateUpdate::live`].
        live: bool,
    },
    CmdStatus {
        device: String,
        id: String,
        name: String,
        state: String,
        progress: i64,
        message: Option<String>,
        result: Option<Value>,
    },
    JobUpdate {
        device: String,
        job_id: String,
        phase: String,
        progress: i64,
        reason: Option<String>,
        details: Option<String>,
    },
}

/// The figures the inventory keeps from a telemetry sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    pub recording: Option<bool>,
    pub temperature_c: Option<f64>,
    pub disk: Option<(i64, i64)>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct IngestOutcome {
    /// Telemetry samples stored (redeliveries excluded).
    pub new_samples: u64,
    /// The oldest telemetry timestamp of the batch (ms), to measure the ingest lag.
    pub oldest_ts: Option<i64>,
}

impl Message {
    /// Marks a message the broker delivered from its retained store (on a new subscription):
    /// it says what the device last published, not that it was heard from now.
    pub fn retained_copy(mut self) -> Self {
        match &mut self {
            Message::State { state, .. } => state.live = false,
            Message::Reported { live, .. } => *live = false,
            _ => {}
        }
        self
    }
}

impl Db {
    /// Stores a batch. Telemetry goes in multi-row statements (per-statement cost dominates
    /// at fleet scale); the figures it carries are merged per device first (later values win,
    /// as they would one by one).
    pub async fn ingest(&self, batch: &[Message]) -> Result<IngestOutcome, DbError> {
        let mut out = IngestOutcome::default();
        let mut samples: Vec<(&str, &str, i64, i64, &str)> = Vec::new();
        let mut figures: Vec<(&str, Figures)> = Vec::new();
        let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        // Command statuses come by the thousand after a bulk command: in multi-row statements
        // too (one statement each kept the ingest behind the broker during a fan-out).
        let mut statuses: Vec<StatusRow<'_>> = Vec::new();
        let mut tx = self.pool().begin().await.map_err(q("begin ingest batch"))?;
        for m in batch {
            match m {
                Message::State { device, state } => {
                    dev_write::state(&mut tx, device, state).await?
                }
                Message::Telemetry {
                    device,
                    stream,
                    seq,
                    ts,
                    data,
                    figures: f,
                } => {
                    samples.push((device, stream, *seq, *ts, data));
                    out.oldest_ts = Some(out.oldest_ts.map_or(*ts, |o| o.min(*ts)));
                    let i = *index.entry(device).or_insert_with(|| {
                        figures.push((device, Figures::default()));
                        figures.len() - 1
                    });
                    let merged = &mut figures[i].1;
                    merged.recording = f.recording.or(merged.recording);
                    merged.temperature_c = f.temperature_c.or(merged.temperature_c);
                    merged.disk = f.disk.or(merged.disk);
                }
                Message::Reported {
                    device,
                    version,
                    applied,
                    errors,
                    live,
                } => dev_write::reported(&mut tx, device, *version, applied, errors, *live).await?,
                Message::CmdStatus {
                    device,
                    id,
                    name,
                    state,
                    progress,
                    message,
                    result,
                } => statuses.push(StatusRow {
                    device,
                    id,
                    name,
                    state,
                    progress: *progress,
                    message: message.as_deref(),
                    result: result.as_ref().map(Value::to_string),
                }),
                Message::JobUpdate {
                    device,
                    job_id,
                    phase,
                    progress,
                    reason,
                    details,
                } => {
                    ota_write::job_update(
                        &mut tx,
                        device,
                        job_id,
                        phase,
                        *progress,
                        reason.as_deref(),
                        details.as_deref(),
                    )
                    .await?
                }
            }
        }
        let statements = status_statements(statuses, ROWS_PER_STATEMENT / 2);
        cmd_write::cmd_statuses(&mut tx, &statements, self.backend).await?;
        for chunk in samples.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO telemetry (device, stream, seq, ts, data) VALUES {} ON CONFLICT (device, stream, seq, ts) DO NOTHING",
                values(chunk.len(), 5, self.backend)
            );
            let mut query = sqlx::query(&sql);
            for (device, stream, seq, ts, data) in chunk {
                query = query
                    .bind(*device)
                    .bind(*stream)
                    .bind(*seq)
                    .bind(*ts)
                    .bind(*data);
            }
            out.new_samples += query
                .execute(&mut *tx)
                .await
                .map_err(q("insert telemetry"))?
                .rows_affected();
        }
        let now = super::now_ms();
        for chunk in figures.chunks(ROWS_PER_STATEMENT) {
            // Also registers a device first heard of by its telemetry, and its last_seen.
            let sql = format!(
                "INSERT INTO devices (id, recording, temperature_c, disk_free_mib, disk_total_mib, last_seen, updated_at) VALUES {}
                 ON CONFLICT (id) DO UPDATE SET
                   recording = COALESCE(excluded.recording, devices.recording),
                   temperature_c = COALESCE(excluded.temperature_c, devices.temperature_c),
                   disk_free_mib = COALESCE(excluded.disk_free_mib, devices.disk_free_mib),
                   disk_total_mib = COALESCE(excluded.disk_total_mib, devices.disk_total_mib),
                   last_seen = excluded.last_seen, updated_at = excluded.updated_at",
                values(chunk.len(), 7, self.backend)
            );
            let mut query = sqlx::query(&sql);
            for (device, f) in chunk {
                query = query
                    .bind(*device)
                    .bind(f.recording.map(i64::from))
                    .bind(f.temperature_c)
                    .bind(f.disk.map(|d| d.0))
                    .bind(f.disk.map(|d| d.1))
                    .bind(now)
                    .bind(now);
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(q("apply telemetry figures"))?;
        }
        tx.commit().await.map_err(q("commit ingest batch"))?;
        Ok(out)
    }
}

/// How much of a rejected message's payload is kept (the reason and the size always are).
pub const REJECTED_PAYLOAD_BYTES: usize = 4096;

impl Db {
    /// Sets a message aside that is never going to be stored: its topic, why, and the start
    /// of its payload (as text, NUL characters replaced: the reason may be one of them).
    pub async fn reject(&self, topic: &str, reason: &str, payload: &[u8]) -> Result<(), DbError> {
        let clean = |t: &str, max: usize| -> String {
            let mut t: String = t.replace('\0', "\u{FFFD}");
            if t.len() > max {
                let mut end = max;
                while !t.is_char_boundary(end) {
                    end -= 1;
                }
                t.truncate(end);
            }
            t
        };
        let text = String::from_utf8_lossy(&payload[..payload.len().min(REJECTED_PAYLOAD_BYTES)]);
        sqlx::query(
            "INSERT INTO rejected_messages (topic, reason, payload, size, received_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(clean(topic, 512))
        .bind(clean(reason, 1024))
        .bind(clean(&text, REJECTED_PAYLOAD_BYTES))
        .bind(payload.len() as i64)
        .bind(super::now_ms())
        .execute(self.pool())
        .await
        .map_err(q("store a rejected message"))?;
        Ok(())
    }

    /// Deletes rejected messages received before `before` (Unix ms), as old telemetry is.
    pub async fn prune_rejected(&self, before: i64) -> Result<u64, DbError> {
        let r = sqlx::query("DELETE FROM rejected_messages WHERE received_at < $1")
            .bind(before)
            .execute(self.pool())
            .await
            .map_err(q("prune rejected messages"))?;
        Ok(r.rows_affected())
    }

    /// Whether the database answers at all (tells a refused message from an outage).
    pub async fn answers(&self) -> bool {
        sqlx::query("SELECT 1").execute(self.pool()).await.is_ok()
    }
}
