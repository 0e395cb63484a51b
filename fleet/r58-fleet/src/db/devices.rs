//! The device inventory: one row per device, kept from its retained `state`, its telemetry
//! (latest figures), and its twin.

use r58_fleet_api::Device;
use serde_json::Value;
use sqlx::Row;

use super::{now_ms, q, Db, DbError};

/// A `state` document as it updates the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct StateUpdate {
    pub status: String,
    pub session: i64,
    pub firmware_version: String,
    pub booted_slot: Option<String>,
    pub ip_addresses: Vec<String>,
    pub uptime_s: i64,
    pub ts: i64,
    /// The box's remote-access tunnel, as its state says (absent: remote access off).
    pub remote_access: Option<r58_proto::RemoteAccessState>,
    /// Delivered as the device published it (not a retained copy the broker kept): counts as
    /// hearing from the device (`last_seen`).
    pub live: bool,
}

/// The order of states within one agent session: a goodbye (`offline`, or `lost` from the
/// broker's last will) is final for that session even if it overtakes an earlier message
/// on its way through another replica.
pub fn status_rank(status: &str) -> i64 {
    match status {
        "offline" | "lost" => 1,
        _ => 0,
    }
}

#[derive(Debug, Default, Clone)]
pub struct DeviceFilter {
    pub status: Option<String>,
    pub tag: Option<String>,
    pub version: Option<String>,
    /// Substring of the id.
    pub q: Option<String>,
    pub updated_since: Option<i64>,
}

const COLUMNS: &str = "id, status, session, firmware_version, booted_slot, ip_addresses, uptime_s, state_ts, \
    last_seen, recording, temperature_c, disk_free_mib, disk_total_mib, tags, desired_version, desired, \
    reported_version, reported, reported_errors, remote_access, updated_at";

fn json_text(s: Option<String>) -> Option<Value> {
    s.and_then(|t| serde_json::from_str(&t).ok())
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Device, sqlx::Error> {
    let list = |s: Option<String>| -> Vec<String> {
        json_text(s)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    };
    Ok(Device {
        id: r.try_get("id")?,
        status: r.try_get("status")?,
        session: r.try_get("session")?,
        firmware_version: r.try_get("firmware_version")?,
        booted_slot: r.try_get("booted_slot")?,
        ip_addresses: list(r.try_get("ip_addresses")?),
        uptime_s: r.try_get("uptime_s")?,
        state_ts: r.try_get("state_ts")?,
        last_seen: r.try_get("last_seen")?,
        recording: r.try_get::<Option<i64>, _>("recording")?.map(|v| v != 0),
        temperature_c: r.try_get("temperature_c")?,
        disk_free_mib: r.try_get("disk_free_mib")?,
        disk_total_mib: r.try_get("disk_total_mib")?,
        tags: list(r.try_get("tags")?),
        desired_version: r.try_get("desired_version")?,
        desired: json_text(r.try_get("desired")?).unwrap_or(Value::Object(Default::default())),
        reported_version: r.try_get("reported_version")?,
        reported: json_text(r.try_get("reported")?),
        reported_errors: json_text(r.try_get("reported_errors")?),
        remote_access: json_text(r.try_get("remote_access")?)
            .and_then(|v| serde_json::from_value(v).ok()),
        updated_at: r.try_get("updated_at")?,
    })
}

/// Writes of the ingest path; they run inside the ingest transaction (`Db::ingest`).
pub(crate) mod write {
    use super::*;
    use sqlx::AnyConnection;

    /// Applies a `state` unless the inventory already holds a later one (higher session,
    /// or a goodbye of the same session).
    pub async fn state(conn: &mut AnyConnection, id: &str, s: &StateUpdate) -> Result<(), DbError> {
        let now = now_ms();
        let ips = serde_json::to_string(&s.ip_addresses).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO devices (id, status, status_rank, session, firmware_version, booted_slot, ip_addresses, uptime_s, state_ts, last_seen, updated_at, remote_access)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, status_rank = excluded.status_rank,
               session = excluded.session, firmware_version = excluded.firmware_version,
               booted_slot = excluded.booted_slot, ip_addresses = excluded.ip_addresses,
               uptime_s = excluded.uptime_s, state_ts = excluded.state_ts,
               remote_access = excluded.remote_access,
               last_seen = CASE WHEN devices.last_seen IS NULL OR devices.last_seen < excluded.last_seen THEN excluded.last_seen ELSE devices.last_seen END,
               updated_at = excluded.updated_at
             WHERE devices.session < excluded.session
                OR (devices.session = excluded.session AND devices.status_rank <= excluded.status_rank)",
        )
        .bind(id)
        .bind(&s.status)
        .bind(status_rank(&s.status))
        .bind(s.session)
        .bind(&s.firmware_version)
        .bind(s.booted_slot.clone())
        .bind(ips)
        .bind(s.uptime_s)
        .bind(s.ts)
        .bind(s.live.then_some(now))
        .bind(now)
        .bind(
            s.remote_access
                .and_then(|r| serde_json::to_string(&r).ok()),
        )
        .execute(&mut *conn)
        .await
        .map_err(q("apply state"))?;
        Ok(())
    }

    pub async fn reported(
        conn: &mut AnyConnection,
        id: &str,
        version: i64,
        applied: &Value,
        errors: &Value,
        live: bool,
    ) -> Result<(), DbError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO devices (id, reported_version, reported, reported_errors, last_seen, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET reported_version = excluded.reported_version, reported = excluded.reported,
               reported_errors = excluded.reported_errors,
               last_seen = CASE WHEN devices.last_seen IS NULL OR devices.last_seen < excluded.last_seen THEN excluded.last_seen ELSE devices.last_seen END,
               updated_at = excluded.updated_at
             WHERE devices.reported_version IS NULL OR devices.reported_version <= excluded.reported_version",
        )
        .bind(id)
        .bind(version)
        .bind(applied.to_string())
        .bind(errors.to_string())
        .bind(live.then_some(now))
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(q("apply twin reported"))?;
        Ok(())
    }
}

impl Db {
    /// Stores new desired settings and returns their version (one more than before).
    pub async fn set_desired(&self, id: &str, settings: &Value) -> Result<Option<i64>, DbError> {
        let v: Option<i64> = sqlx::query_scalar(
            "UPDATE devices SET desired_version = desired_version + 1, desired = $2, updated_at = $3 WHERE id = $1 RETURNING desired_version",
        )
        .bind(id)
        .bind(settings.to_string())
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await
        .map_err(q("set desired config"))?;
        Ok(v)
    }

    pub async fn set_tags(&self, id: &str, tags: &[String]) -> Result<bool, DbError> {
        let r = sqlx::query("UPDATE devices SET tags = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(serde_json::to_string(tags).unwrap_or_else(|_| "[]".into()))
            .bind(now_ms())
            .execute(self.pool())
            .await
            .map_err(q("set tags"))?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn device(&self, id: &str) -> Result<Option<Device>, DbError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM devices WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(q("read device"))?;
        row.as_ref()
            .map(from_row)
            .transpose()
            .map_err(q("decode device"))
    }

    pub async fn devices(&self, f: &DeviceFilter) -> Result<Vec<Device>, DbError> {
        let tag = f
            .tag
            .as_ref()
            .map(|t| format!("%{}%", serde_json::to_string(t).unwrap_or_default()));
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM devices
             WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR tags LIKE $2)
               AND ($3 IS NULL OR firmware_version = $3) AND ($4 IS NULL OR id LIKE $4)
               AND ($5 IS NULL OR updated_at >= $5)
             ORDER BY id"
        ))
        .bind(f.status.clone())
        .bind(tag)
        .bind(f.version.clone())
        .bind(f.q.as_ref().map(|s| format!("%{s}%")))
        .bind(f.updated_since)
        .fetch_all(self.pool())
        .await
        .map_err(q("list devices"))?;
        rows.iter()
            .map(from_row)
            .collect::<Result<_, _>>()
            .map_err(q("decode device"))
    }

    /// Counts by status, for /metrics.
    pub async fn status_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM devices GROUP BY status ORDER BY status",
        )
        .fetch_all(self.pool())
        .await
        .map_err(q("count devices"))?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(q("count devices"))
    }
}
