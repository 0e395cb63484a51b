//! Commands sent to devices and the statuses they report (`cmd/status`, at least once:
//! a status never moves a command backwards).

use r58_fleet_api::Command;
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

pub struct NewCommand<'a> {
    pub id: &'a str,
    pub device: &'a str,
    pub name: &'a str,
    pub args: &'a Value,
    pub created_by: &'a str,
    pub expires_at: i64,
}

const COLUMNS: &str = "id, device, name, args, state, progress, message, result, created_by, created_at, expires_at, updated_at";

fn from_row(r: &sqlx::any::AnyRow, now: i64) -> Result<Command, sqlx::Error> {
    let mut state: String = r.try_get("state")?;
    let expires_at: Option<i64> = r.try_get("expires_at")?;
    if state_rank(&state) < 3 && expires_at.is_some_and(|e| e < now) {
        state = "expired".into();
    }
    let args: String = r.try_get("args")?;
    Ok(Command {
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
        let failed = StatusRow {
            device,
            id,
            name,
            state: "failed",
            progress: 0,
            message: Some(why),
            result: None,
        };
        write::cmd_statuses(&mut conn, &[vec![failed]], self.backend).await
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

    /// Applies reported statuses (grouped by `status_statements`) in multi-row statements:
    /// each unless its command is already further along or belongs to another device. A
    /// status for a command this fleet did not send (another tool) is kept too.
    pub async fn cmd_statuses(
        conn: &mut sqlx::AnyConnection,
        statements: &[Vec<StatusRow<'_>>],
        backend: crate::db::Backend,
    ) -> Result<(), DbError> {
        let now = now_ms();
        for rows in statements {
            let sql = format!(
                "INSERT INTO commands (id, device, name, args, state, state_rank, progress, message, result, created_at, updated_at)
                 VALUES {}
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, state_rank = excluded.state_rank,
                   progress = excluded.progress, message = excluded.message, result = excluded.result,
                   updated_at = excluded.updated_at
                 WHERE commands.device = excluded.device AND commands.state_rank <= excluded.state_rank
                   AND commands.state_rank < 3",
                crate::db::values(rows.len(), 11, backend)
            );
            let mut query = sqlx::query(&sql);
            for r in rows {
                query = query
                    .bind(r.id)
                    .bind(r.device)
                    .bind(r.name)
                    .bind("null")
                    .bind(r.state)
                    .bind(state_rank(r.state))
                    .bind(r.progress)
                    .bind(r.message)
                    .bind(r.result.as_deref())
                    .bind(now)
                    .bind(now);
            }
            query
                .execute(&mut *conn)
                .await
                .map_err(q("apply command statuses"))?;
        }
        Ok(())
    }
}

/// One reported command status, as the ingest batches them.
pub(crate) struct StatusRow<'a> {
    pub device: &'a str,
    pub id: &'a str,
    pub name: &'a str,
    pub state: &'a str,
    pub progress: i64,
    pub message: Option<&'a str>,
    pub result: Option<String>,
}

/// The statuses of one batch as statements: per (command, device) only the one a sequential
/// application would leave (the furthest along; the later one of equal rank), and no command
/// twice in one statement (PostgreSQL refuses to update a row twice in one statement).
pub(crate) fn status_statements<'a>(
    rows: Vec<StatusRow<'a>>,
    per_statement: usize,
) -> Vec<Vec<StatusRow<'a>>> {
    let mut last: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    let mut kept: Vec<StatusRow<'a>> = Vec::with_capacity(rows.len());
    for r in rows {
        match last.get(&(r.id, r.device)).copied() {
            Some(i) if state_rank(kept[i].state) > state_rank(r.state) => {}
            Some(i) => kept[i] = r,
            None => {
                last.insert((r.id, r.device), kept.len());
                kept.push(r);
            }
        }
    }
    let mut out: Vec<Vec<StatusRow<'a>>> = Vec::new();
    let mut ids: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for r in kept {
        if out.last().map_or(true, |c| c.len() >= per_statement) || ids.contains(r.id) {
            out.push(Vec::new());
            ids.clear();
        }
        ids.insert(r.id);
        if let Some(c) = out.last_mut() {
            c.push(r);
        }
    }
    out
}

impl Db {
    pub async fn command(&self, id: &str) -> Result<Option<Command>, DbError> {
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
    ) -> Result<Vec<Command>, DbError> {
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

#[cfg(test)]
mod tests {
    use super::{status_statements, StatusRow};

    fn row<'a>(id: &'a str, device: &'a str, state: &'a str, progress: i64) -> StatusRow<'a> {
        StatusRow {
            device,
            id,
            name: "ping",
            state,
            progress,
            message: None,
            result: None,
        }
    }

    #[test]
    fn a_batch_keeps_what_a_sequential_application_would() {
        let rows = vec![
            row("c1", "d1", "accepted", 0),
            row("c1", "d1", "in_progress", 10),
            row("c2", "d2", "succeeded", 100),
            row("c1", "d1", "in_progress", 50), // same rank, later: wins
            row("c2", "d2", "accepted", 0),     // behind: ignored
            row("c1", "d9", "failed", 0),       // another device claims c1: kept apart
        ];
        let st = status_statements(rows, 100);
        let flat: Vec<(&str, &str, &str, i64)> = st
            .iter()
            .flatten()
            .map(|r| (r.id, r.device, r.state, r.progress))
            .collect();
        assert_eq!(
            flat,
            [
                ("c1", "d1", "in_progress", 50),
                ("c2", "d2", "succeeded", 100),
                ("c1", "d9", "failed", 0)
            ]
        );
        // c1 twice: never in one statement.
        assert_eq!(st.len(), 2);
        assert!(st.iter().all(|s| {
            let mut ids: Vec<&str> = s.iter().map(|r| r.id).collect();
            ids.sort_unstable();
            ids.windows(2).all(|w| w[0] != w[1])
        }));
        // And the statement size is bounded.
        let ids: Vec<String> = (0..250).map(|i| format!("c{i}")).collect();
        let many: Vec<StatusRow<'_>> = ids.iter().map(|i| row(i, "d", "accepted", 0)).collect();
        let sizes: Vec<usize> = status_statements(many, 100).iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 100, 50]);
    }
}
