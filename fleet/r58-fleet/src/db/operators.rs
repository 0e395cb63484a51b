//! Operator API tokens: only their SHA-256 is stored; a token is shown once when made.

use serde::Serialize;
use sqlx::Row;

use super::{now_ms, q, Db, DbError};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Operator {
    pub name: String,
    pub revoked: bool,
    pub created_at: i64,
}

impl Db {
    /// Adds an operator or replaces its token (un-revoking it).
    pub async fn put_operator(&self, name: &str, token_sha256: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO operators (name, token_sha256, revoked, created_at) VALUES ($1, $2, 0, $3)
             ON CONFLICT (name) DO UPDATE SET token_sha256 = excluded.token_sha256, revoked = 0, created_at = excluded.created_at",
        )
        .bind(name)
        .bind(token_sha256)
        .bind(now_ms())
        .execute(self.pool())
        .await
        .map_err(q("store operator"))?;
        Ok(())
    }

    pub async fn revoke_operator(&self, name: &str) -> Result<bool, DbError> {
        let r = sqlx::query("UPDATE operators SET revoked = 1 WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await
            .map_err(q("revoke operator"))?;
        Ok(r.rows_affected() > 0)
    }

    /// The operator a token belongs to, if it is known and not revoked.
    pub async fn operator_by_token(&self, token_sha256: &str) -> Result<Option<String>, DbError> {
        sqlx::query_scalar("SELECT name FROM operators WHERE token_sha256 = $1 AND revoked = 0")
            .bind(token_sha256)
            .fetch_optional(self.pool())
            .await
            .map_err(q("authenticate operator"))
    }

    pub async fn operators(&self) -> Result<Vec<Operator>, DbError> {
        let rows = sqlx::query("SELECT name, revoked, created_at FROM operators ORDER BY name")
            .fetch_all(self.pool())
            .await
            .map_err(q("list operators"))?;
        rows.iter()
            .map(|r| {
                Ok(Operator {
                    name: r.try_get("name")?,
                    revoked: r.try_get::<i64, _>("revoked")? != 0,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(q("list operators"))
    }
}
