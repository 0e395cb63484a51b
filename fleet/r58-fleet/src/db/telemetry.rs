//! Telemetry history: one row per sample, deduplicated on (device, stream, seq, ts) since
//! the broker may deliver a sample twice; bounded by age.

use r58_fleet_api::{TelemetryPage, TelemetrySample};
use serde_json::Value;
use sqlx::Row;

use super::{q, Db, DbError};

/// The most sample data (JSON text) one answer holds; past it the oldest of the samples
/// asked for are left out (`TelemetryPage::truncated`).
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

impl Db {
    /// Samples of one device, newest last: `since` (exclusive, ms), at most `limit`, at
    /// most [`MAX_ANSWER_BYTES`] of data.
    pub async fn telemetry(
        &self,
        device: &str,
        stream: Option<&str>,
        since: Option<i64>,
        limit: i64,
    ) -> Result<TelemetryPage, DbError> {
        let rows = sqlx::query(
            "SELECT stream, seq, ts, data FROM telemetry
             WHERE device = $1 AND ($2 IS NULL OR stream = $2) AND ($3 IS NULL OR ts > $3)
             ORDER BY ts DESC, stream LIMIT $4",
        )
        .bind(device)
        .bind(stream.map(str::to_string))
        .bind(since)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(q("read telemetry"))?;
        let mut out = Vec::with_capacity(rows.len());
        let mut bytes = 0usize;
        let mut truncated = false;
        for r in &rows {
            let data: String = r.try_get("data").map_err(q("decode telemetry"))?;
            bytes += data.len();
            if bytes > MAX_ANSWER_BYTES && !out.is_empty() {
                truncated = true;
                break;
            }
            out.push(TelemetrySample {
                stream: r.try_get("stream").map_err(q("decode telemetry"))?,
                seq: r.try_get("seq").map_err(q("decode telemetry"))?,
                ts: r.try_get("ts").map_err(q("decode telemetry"))?,
                data: serde_json::from_str(&data).unwrap_or(Value::Null),
            });
        }
        out.reverse();
        Ok(TelemetryPage {
            telemetry: out,
            truncated,
        })
    }

    pub async fn telemetry_count(&self, device: Option<&str>) -> Result<i64, DbError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM telemetry WHERE ($1 IS NULL OR device = $1)")
            .bind(device.map(str::to_string))
            .fetch_one(self.pool())
            .await
            .map_err(q("count telemetry"))
    }

    /// Deletes samples older than `before` (ms); returns how many.
    pub async fn prune_telemetry(&self, before: i64) -> Result<u64, DbError> {
        let r = sqlx::query("DELETE FROM telemetry WHERE ts < $1")
            .bind(before)
            .execute(self.pool())
            .await
            .map_err(q("prune telemetry"))?;
        Ok(r.rows_affected())
    }
}
