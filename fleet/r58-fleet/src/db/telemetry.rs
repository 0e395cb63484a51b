//! Telemetry history: one row per sample, deduplicated on (device, stream, seq, ts) since
//! the broker may deliver a sample twice; bounded by age.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::{q, Db, DbError};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TelemetryRow {
    pub stream: String,
    pub seq: i64,
    pub ts: i64,
    pub data: Value,
}

impl Db {
    /// Samples of one device, newest last: `since` (exclusive, ms) and at most `limit`.
    pub async fn telemetry(
        &self,
        device: &str,
        stream: Option<&str>,
        since: Option<i64>,
        limit: i64,
    ) -> Result<Vec<TelemetryRow>, DbError> {
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
        let mut out = rows
            .iter()
            .map(|r| {
                let data: String = r.try_get("data")?;
                Ok(TelemetryRow {
                    stream: r.try_get("stream")?,
                    seq: r.try_get("seq")?,
                    ts: r.try_get("ts")?,
                    data: serde_json::from_str(&data).unwrap_or(Value::Null),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(q("decode telemetry"))?;
        out.reverse();
        Ok(out)
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
