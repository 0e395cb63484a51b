//! Settings of the whole fleet, changed at run time by an admin and the same for every
//! fleet process: each is a row with who changed it and when; no row is its default.

use r58_fleet_api::RemoteAccessSwitch;
use sqlx::Row;

use super::{now_ms, q, Db, DbError};

/// The fleet-wide remote-access switch (off unless an admin turned it on).
const REMOTE_ACCESS: &str = "remote_access";

impl Db {
    /// The fleet-wide remote-access switch.
    pub async fn remote_access(&self) -> Result<RemoteAccessSwitch, DbError> {
        let row =
            sqlx::query("SELECT value, changed_by, changed_at FROM fleet_settings WHERE name = $1")
                .bind(REMOTE_ACCESS)
                .fetch_optional(self.pool())
                .await
                .map_err(q("read the remote-access switch"))?;
        Ok(match row {
            None => RemoteAccessSwitch::default(),
            Some(r) => RemoteAccessSwitch {
                enabled: r.get::<String, _>("value") == "on",
                changed_by: Some(r.get("changed_by")),
                changed_at_ms: Some(r.get("changed_at")),
            },
        })
    }

    /// Turns remote access on or off for the whole fleet; `by` is the admin.
    pub async fn set_remote_access(
        &self,
        enabled: bool,
        by: &str,
    ) -> Result<RemoteAccessSwitch, DbError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO fleet_settings (name, value, changed_by, changed_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET value = $2, changed_by = $3, changed_at = $4",
        )
        .bind(REMOTE_ACCESS)
        .bind(if enabled { "on" } else { "off" })
        .bind(by)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(q("set the remote-access switch"))?;
        Ok(RemoteAccessSwitch {
            enabled,
            changed_by: Some(by.to_string()),
            changed_at_ms: Some(now),
        })
    }
}
