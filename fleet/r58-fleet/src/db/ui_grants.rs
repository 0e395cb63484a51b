//! Grants to a box's web UI through its tunnel: an admin opens a box's UI and gets a
//! random path under `/b/`, which carries them to that one box until it expires. Only the
//! grant's SHA-256 is kept.

use sqlx::Row;

use super::{now_ms, q, Db, DbError};

/// Who a grant is for and to which box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiGrant {
    pub device: String,
    pub operator: String,
}

impl Db {
    /// Keeps a new grant until `expires_at` (ms); expired ones are dropped on the way.
    pub async fn create_ui_grant(
        &self,
        token_sha256: &str,
        grant: &UiGrant,
        expires_at: i64,
    ) -> Result<(), DbError> {
        let now = now_ms();
        sqlx::query("DELETE FROM ui_grants WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(q("drop expired box UI grants"))?;
        sqlx::query(
            "INSERT INTO ui_grants (token_sha256, device, operator, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_sha256)
        .bind(&grant.device)
        .bind(&grant.operator)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await
        .map_err(q("record a box UI grant"))?;
        Ok(())
    }

    /// The grant with this SHA-256, while it has not expired.
    pub async fn ui_grant(&self, token_sha256: &str) -> Result<Option<UiGrant>, DbError> {
        let row = sqlx::query(
            "SELECT device, operator FROM ui_grants WHERE token_sha256 = $1 AND expires_at >= $2",
        )
        .bind(token_sha256)
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await
        .map_err(q("read a box UI grant"))?;
        Ok(row.map(|r| UiGrant {
            device: r.get("device"),
            operator: r.get("operator"),
        }))
    }
}
