//! The audit of streams opened through boxes' tunnels: a row when one opens, its byte
//! counts brought up to date while it runs, and how it ended.

use r58_fleet_api::TunnelSession;
use sqlx::Row;

use super::{now_ms, q, Db, DbError};

/// How many sessions one listing returns at most.
pub const LIST_LIMIT: i64 = 500;

/// A session as it opens.
#[derive(Debug, Clone)]
pub struct NewTunnelSession<'a> {
    pub id: &'a str,
    pub device: &'a str,
    pub kind: &'a str,
    pub opened_by: &'a str,
    pub port: u16,
    pub target: &'a str,
}

impl Db {
    pub async fn open_tunnel_session(&self, s: &NewTunnelSession<'_>) -> Result<i64, DbError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO tunnel_sessions (id, device, kind, opened_by, port, target, opened_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(s.id)
        .bind(s.device)
        .bind(s.kind)
        .bind(s.opened_by)
        .bind(i64::from(s.port))
        .bind(s.target)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(q("record tunnel session"))?;
        Ok(now)
    }

    /// Brings an open session's byte counts up to date; `end` closes it with its reason.
    pub async fn update_tunnel_session(
        &self,
        id: &str,
        to_device: u64,
        from_device: u64,
        end: Option<&str>,
    ) -> Result<(), DbError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE tunnel_sessions SET bytes_to_device = $2, bytes_from_device = $3, updated_at = $4,
             closed_at = CASE WHEN $5 IS NULL THEN NULL ELSE $4 END, end_reason = $5
             WHERE id = $1 AND closed_at IS NULL",
        )
        .bind(id)
        .bind(to_device as i64)
        .bind(from_device as i64)
        .bind(now)
        .bind(end)
        .execute(self.pool())
        .await
        .map_err(q("update tunnel session"))?;
        Ok(())
    }

    /// Asks whichever fleet process holds the open session `id` to end it; false when no
    /// open session has that id.
    pub async fn request_tunnel_session_close(&self, id: &str, by: &str) -> Result<bool, DbError> {
        let r = sqlx::query(
            "UPDATE tunnel_sessions SET close_requested_by = $2 WHERE id = $1 AND closed_at IS NULL",
        )
        .bind(id)
        .bind(by)
        .execute(self.pool())
        .await
        .map_err(q("request a tunnel session's close"))?;
        Ok(r.rows_affected() == 1)
    }

    /// The open sessions an admin asked to close.
    pub async fn tunnel_session_close_requests(&self) -> Result<Vec<String>, DbError> {
        sqlx::query_scalar(
            "SELECT id FROM tunnel_sessions WHERE closed_at IS NULL AND close_requested_by IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await
        .map_err(q("read tunnel session close requests"))
    }

    /// Closes the sessions no fleet process has updated since `before_ms` (the process that
    /// held them stopped): closed when last seen, reason `fleet_stopped`.
    pub async fn close_stale_tunnel_sessions(&self, before_ms: i64) -> Result<u64, DbError> {
        let r = sqlx::query(
            "UPDATE tunnel_sessions SET closed_at = updated_at, end_reason = 'fleet_stopped'
             WHERE closed_at IS NULL AND updated_at < $1",
        )
        .bind(before_ms)
        .execute(self.pool())
        .await
        .map_err(q("close stale tunnel sessions"))?;
        Ok(r.rows_affected())
    }

    /// Sessions, newest first: of one device or all, open ones only or all.
    pub async fn tunnel_sessions(
        &self,
        device: Option<&str>,
        open_only: bool,
    ) -> Result<Vec<TunnelSession>, DbError> {
        let rows = sqlx::query(
            "SELECT id, device, kind, opened_by, port, target, opened_at, closed_at,
                    bytes_to_device, bytes_from_device, end_reason
             FROM tunnel_sessions
             WHERE ($1 IS NULL OR device = $1) AND ($2 = 0 OR closed_at IS NULL)
             ORDER BY opened_at DESC, id DESC LIMIT $3",
        )
        .bind(device)
        .bind(i64::from(open_only))
        .bind(LIST_LIMIT)
        .fetch_all(self.pool())
        .await
        .map_err(q("list tunnel sessions"))?;
        rows.iter()
            .map(|r| {
                Ok(TunnelSession {
                    id: r.try_get("id")?,
                    device: r.try_get("device")?,
                    kind: r.try_get("kind")?,
                    opened_by: r.try_get("opened_by")?,
                    port: u16::try_from(r.try_get::<i64, _>("port")?).unwrap_or(0),
                    target: r.try_get("target")?,
                    opened_at: r.try_get("opened_at")?,
                    closed_at: r.try_get("closed_at")?,
                    bytes_to_device: r.try_get("bytes_to_device")?,
                    bytes_from_device: r.try_get("bytes_from_device")?,
                    end_reason: r.try_get("end_reason")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(q("list tunnel sessions"))
    }
}
