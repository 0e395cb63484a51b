//! Operator API tokens and roles: only a token's SHA-256 is stored; a token is shown once
//! when made.

pub use r58_fleet_api::Role;
use serde::Serialize;
use sqlx::Row;

use super::{now_ms, q, Db, DbError};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Operator {
    pub name: String,
    pub role: Role,
    pub revoked: bool,
    pub created_at: i64,
}

impl Db {
    /// Adds an operator or replaces its token and role (un-revoking it).
    pub async fn put_operator(
        &self,
        name: &str,
        token_sha256: &str,
        role: Role,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO operators (name, token_sha256, revoked, created_at, role) VALUES ($1, $2, 0, $3, $4)
             ON CONFLICT (name) DO UPDATE SET token_sha256 = excluded.token_sha256, revoked = 0, created_at = excluded.created_at, role = excluded.role",
        )
        .bind(name)
        .bind(token_sha256)
        .bind(now_ms())
        .bind(role.as_str())
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

    /// The operator a token belongs to and its role, if it is known and not revoked. A role
    /// this version does not know (written by a newer one) grants the least: viewer.
    pub async fn operator_by_token(
        &self,
        token_sha256: &str,
    ) -> Result<Option<(String, Role)>, DbError> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT name, role FROM operators WHERE token_sha256 = $1 AND revoked = 0",
        )
        .bind(token_sha256)
        .fetch_optional(self.pool())
        .await
        .map_err(q("authenticate operator"))?;
        Ok(row.map(|(name, role)| (name, Role::parse(&role).unwrap_or(Role::Viewer))))
    }

    pub async fn operators(&self) -> Result<Vec<Operator>, DbError> {
        let rows =
            sqlx::query("SELECT name, role, revoked, created_at FROM operators ORDER BY name")
                .fetch_all(self.pool())
                .await
                .map_err(q("list operators"))?;
        rows.iter()
            .map(|r| {
                Ok(Operator {
                    name: r.try_get("name")?,
                    role: Role::parse(r.try_get::<&str, _>("role")?).unwrap_or(Role::Viewer),
                    revoked: r.try_get::<i64, _>("revoked")? != 0,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(q("list operators"))
    }
}
