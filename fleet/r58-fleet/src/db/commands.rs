//! Commands sent to devices and the statuses they report (`cmd/status`, at least once:
//! a status never moves a command backwards).

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::{now_ms, q, Db, DbError};

/// `sent` is the fleet's own first state (published, nothing heard yet); `expired` is
/// derived when reading: no final state before `expires_at`.
pub fn state_rank(state: &str) -> i64 {
    match state {
        "sent" => 0,
        "accepted" => 1,
        "in_progress" => 2,
        _ => 3,
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CommandRow {
    pub id: String,
    pub device: String,
    pub name: String,
    pub args: Value,
    pub state: String,
    pub progress: i64,
    pub message: Option<String>,
    pub result: Option<Value>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub updated_at: i64,
}

pub struct NewCommand<'a> {
    pub id: &'a str,
    pub device: &'a str,
    pub name: &'a str,
    pub args: &'a Value,
    pub created_by: &'a str,
    pub expires_at: i64,
}

const COLUMNS: &str = "id, device, name, args, state, progress, message, result, created_by, created_at, expires_at, updated_at";

fn from_row(r: &sqlx::any::AnyRow, now: i64) -> Result<CommandRow, sqlx::Error> {
    let mut state: String = r.try_get("state")?;
    let expires_at: Option<i64> = r.try_get("expires_at")?;
    if state_rank(&state) < 3 && expires_at.is_some_and(|e| e < now) {
        state = "expired".into();
    }
    let args: String = r.try_get("args")?;
    Ok(CommandRow {
        id: r.try_get("id")?,
        device: r.try_get("device")?,
        name: r.try_get("name")?,
        args: serde_json::from_str(&args).unwrap_or(Value::Null),
        state,
        progress: r.try_get("progress")?,
        message: r.try_get("message")?,
        result: r
            .try_get::<Option<String>, _>("result")?
            .and_then(|s| serde_json::from_str(&s).ok()),
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        expires_at,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Db {
    pub async fn insert_command(&self, c: &NewCommand<'_>) -> Result<(), DbError> {
        self.insert_commands(std::slice::from_ref(c)).await
    }

    /// Marks a stored command `failed` (it never left the fleet).
    pub async fn command_failed(
        &self,
        device: &str,
        id: &str,
        name: &str,
        why: &str,
    ) -> Result<(), DbError> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(q("connect for a command status"))?;
        write::cmd_status(&mut conn, device, id, name, "failed", 0, Some(why), None).await
    }

    /// Stores new commands (state `sent`) in one transaction.
    pub async fn insert_commands(&self, cmds: &[NewCommand<'_>]) -> Result<(), DbError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await.map_err(q("begin commands"))?;
        for chunk in cmds.chunks(super::ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO commands (id, device, name, args, state, state_rank, created_by, created_at, expires_at, updated_at) VALUES {}",
                super::values(chunk.len(), 10, self.backend)
            );
            let mut query = sqlx::query(&sql);
            for c in chunk {
                query = query
                    .bind(c.id)
                    .bind(c.device)
                    .bind(c.name)
                    .bind(c.args.to_string())
                    .bind("sent")
                    .bind(state_rank("sent"))
                    .bind(c.created_by)
                    .bind(now)
                    .bind(c.expires_at)
                    .bind(now);
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(q("insert commands"))?;
        }
        tx.commit().await.map_err(q("commit commands"))?;
        Ok(())
    }
}

pub(crate) mod write {
    use super::*;

    /// Applies a reported status unless the command is already further along. A status for
    /// a command this fleet did not send (another tool) is kept too.
    #[allow(clippy::too_many_arguments)]
    pub async fn cmd_status(
        conn: &mut sqlx::AnyConnection,
        device: &str,
        id: &str,
        name: &str,
        state: &str,
        progress: i64,
        message: Option<&str>,
        result: Option<&Value>,
    ) -> Result<(), DbError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO commands (id, device, name, args, state, state_rank, progress, message, result, created_at, updated_at)
             VALUES ($1, $2, $3, 'null', $4, $5, $6, $7, $8, $9, $9)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, state_rank = excluded.state_rank,
               progress = excluded.progress, message = excluded.message, result = excluded.result,
               updated_at = excluded.updated_at
             WHERE commands.device = excluded.device AND commands.state_rank <= excluded.state_rank
               AND commands.state_rank < 3",
        )
        .bind(id)
        .bind(device)
        .bind(name)
        .bind(state)
        .bind(state_rank(state))
        .bind(progress)
        .bind(message.map(str::to_string))
        .bind(result.map(Value::to_string))
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(q("apply command status"))?;
        Ok(())
    }
}

impl Db {
    pub async fn command(&self, id: &str) -> Result<Option<CommandRow>, DbError> {
        let now = now_ms();
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM commands WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(q("read command"))?;
        row.as_ref()
            .map(|r| from_row(r, now))
            .transpose()
            .map_err(q("decode command"))
    }

    /// Commands of one device (or all), newest first, optionally only those changed since.
    pub async fn commands(
        &self,
        device: Option<&str>,
        updated_since: Option<i64>,
        limit: i64,
    ) -> Result<Vec<CommandRow>, DbError> {
        let now = now_ms();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM commands WHERE ($1 IS NULL OR device = $1) AND ($2 IS NULL OR updated_at >= $2)
             ORDER BY created_at DESC LIMIT $3"
        ))
        .bind(device.map(str::to_string))
        .bind(updated_since)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(q("list commands"))?;
        rows.iter()
            .map(|r| from_row(r, now))
            .collect::<Result<_, _>>()
            .map_err(q("decode command"))
    }
}
