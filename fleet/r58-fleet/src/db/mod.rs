//! The inventory database: SQLite (one file, the default) or PostgreSQL, through one code
//! path (sqlx `Any`): the same SQL and the same migrations run on both. Portable SQL only:
//! `$n` parameters, `ON CONFLICT … DO UPDATE`, `RETURNING`, integers for times (Unix ms)
//! and flags, JSON as text.

mod commands;
mod devices;
mod ingest;
mod migrations;
mod operators;
mod ota;
mod settings;
mod telemetry;
mod tunnel_sessions;
mod ui_grants;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use commands::NewCommand;
pub use devices::{status_rank, DeviceFilter, StateUpdate};
pub use ingest::{Figures, IngestOutcome, Message};
pub use migrations::MIGRATIONS;
pub use operators::{Operator, Role};
pub use ota::{phase_rank, NewRollout};
pub use tunnel_sessions::NewTunnelSession;
pub use ui_grants::UiGrant;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database URL {url:?}: {source}")]
    Url {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("creating the database folder {path}: {source}")]
    Folder {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to the database ({backend}): {source}")]
    Connect {
        backend: Backend,
        #[source]
        source: sqlx::Error,
    },
    #[error("applying migration {version} ({name}): {source}")]
    Migrate {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("database schema version {found} is newer than this r58-fleet knows ({known}): upgrade r58-fleet")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("database query ({what}): {source}")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl DbError {
    /// The database refused what it was given (a value or a constraint: e.g. a NUL character
    /// in PostgreSQL text), as opposed to not being reachable or busy: sending the same again
    /// fails the same way.
    pub fn is_refusal(&self) -> bool {
        let DbError::Query {
            source: sqlx::Error::Database(e),
            ..
        } = self
        else {
            return false;
        };
        let code = e.code().map(|c| c.into_owned()).unwrap_or_default();
        if code.len() == 5 {
            // PostgreSQL's SQLSTATE (five characters; SQLite's codes have at most four digits): class 22 data exception, 23 integrity constraint, 54
            // program limit (a value too large).
            return matches!(&code[..2], "22" | "23" | "54");
        }
        // SQLite's result codes (primary in the low byte): TOOBIG, CONSTRAINT, MISMATCH.
        code.parse::<u32>()
            .is_ok_and(|c| matches!(c & 0xff, 18..=20))
    }
}

pub(crate) fn q(what: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
    move |source| DbError::Query { what, source }
}

/// Rows per multi-row statement (at most 10 parameters each: well under SQLite's and
/// PostgreSQL's parameter limits).
pub(crate) const ROWS_PER_STATEMENT: usize = 200;

/// The placeholders of a multi-row statement: `($1, $2, …), ($k, …)` for `rows` rows of
/// `cols` parameters on PostgreSQL; anonymous `(?, ?, …)` on SQLite, whose parser looks each
/// `$N` name up among those before it and whose bind (through sqlx) looks every parameter's
/// name up again: quadratic in the parameters, a quarter of the fleet's CPU at 2 000 msg/s
/// (perf, `bench/fleet-scale 2000`).
pub(crate) fn values(rows: usize, cols: usize, backend: Backend) -> String {
    let sqlite = backend == Backend::Sqlite;
    let row = |r: usize| -> String {
        let params: Vec<String> = (1..=cols)
            .map(|c| {
                if sqlite {
                    "?".to_string()
                } else {
                    format!("${}", r * cols + c)
                }
            })
            .collect();
        format!("({})", params.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// Which database the fleet runs on (from the URL's scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::Sqlite
        } else {
            Self::Postgres
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    pub backend: Backend,
}

/// Current time as Unix milliseconds (the unit of every time column).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Db {
    /// Connects (creating a SQLite file and its folder if needed) and applies migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url);
        let sqlite = backend == Backend::Sqlite;
        let mut url = url.to_string();
        if sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = std::path::Path::new(path.split('?').next().unwrap_or_default());
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| DbError::Folder {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            if !url.contains('?') {
                url.push_str("?mode=rwc");
            }
        }
        let opts = AnyConnectOptions::from_str(&url).map_err(|source| DbError::Url {
            url: redact(&url),
            source,
        })?;
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite {
                max_connections.min(4)
            } else {
                max_connections
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL: readers do not block the writer; wait rather than fail on a lock.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        // FULL: a commit is on disk before it returns. The ingest acknowledges
                        // a batch to the broker once committed; with NORMAL a power cut could
                        // roll back batches the broker had already forgotten. Cost at 10 000
                        // devices (one fsync per batch): lag max 488 ms vs 481-540 ms with
                        // NORMAL (bench/fleet-scale 10000 30).
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        // Statement journals (a multi-row upsert inside the batch's
                        // transaction writes one) in memory rather than spilling to a temp
                        // file past 64 KiB: perf at 5 000 msg/s put 6 % of the fleet's CPU in
                        // writing them (the whole run's CPU moved 39 % -> 37 %, within noise).
                        conn.execute("PRAGMA temp_store = MEMORY").await?;
                        // Telemetry goes into a per-device index at 10 000 rows a second:
                        // each batch touches the page each device's next row goes to (~4 KiB
                        // per device). A page cache that holds them (64 MiB, enough for ~15 000
                        // devices; SQLite's default is 2 MiB and reads them back through the
                        // kernel) and a WAL copied back into the database by the service's own
                        // checkpoint task (`checkpoint`), not by the committing writer every
                        // 1 000 pages — at 10 000 devices a checkpoint with its fsync came after
                        // almost every batch. Measured: perf put pread, pwrite and fsync at half
                        // the writer's time; the ingest of 10 000 devices x 60 s alone went from
                        // 21 000 to 26 000 rows/s (34 000 with samples kept as text). The
                        // automatic checkpoint stays as a backstop.
                        conn.execute("PRAGMA cache_size = -65536").await?;
                        conn.execute("PRAGMA wal_autocheckpoint = 50000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|source| DbError::Connect { backend, source })?;
        let db = Self { pool, backend };
        migrations::apply(&db).await?;
        Ok(db)
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Copies what the WAL holds back into a SQLite database, without waiting for readers or
    /// the writer (a passive checkpoint on a connection of its own, so the ingest's commits do
    /// not stop for it). The service runs it every second; a no-op on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<(), DbError> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(q("checkpoint the WAL"))
    }

    /// A cheap round trip, for `/healthz`.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(q("ping"))
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite:///data/x.db"), "sqlite:///data/x.db");
        assert_eq!(
            super::values(2, 3, super::Backend::Postgres),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(
            super::values(2, 2, super::Backend::Sqlite),
            "(?, ?), (?, ?)"
        );
    }

    /// An answer of samples is bounded by bytes: the newest fit, the oldest are left out and
    /// the answer says so.
    #[tokio::test]
    async fn a_history_of_large_samples_is_cut_to_the_answer_bound() {
        use super::{Db, Figures, Message};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            &format!("sqlite://{}", dir.path().join("f.db").display()),
            2,
        )
        .await
        .unwrap();
        let data = format!(r#""{}""#, "x".repeat(16 * 1024 - 2));
        let batch: Vec<Message> = (0..300)
            .map(|i| Message::Telemetry {
                device: "r58-big".into(),
                stream: "system".into(),
                seq: i,
                ts: 1_800_000_000_000 + i,
                data: data.clone(),
                figures: Figures::default(),
            })
            .collect();
        db.ingest(&batch).await.unwrap();
        let all = db.telemetry("r58-big", None, None, 5000).await.unwrap();
        assert!(all.truncated);
        let bytes: usize = all.telemetry.len() * data.len();
        assert!(bytes <= super::telemetry::MAX_ANSWER_BYTES, "{bytes}");
        assert_eq!(
            all.telemetry.len(),
            super::telemetry::MAX_ANSWER_BYTES / data.len()
        );
        // The newest, oldest first.
        assert_eq!(all.telemetry.last().unwrap().seq, 299);
        assert!(all.telemetry.windows(2).all(|w| w[0].ts < w[1].ts));
        let few = db.telemetry("r58-big", None, None, 10).await.unwrap();
        assert!(!few.truncated);
        assert_eq!(few.telemetry.len(), 10);
    }

    /// Telemetry is stored as the device sent it, and the service's checkpoint (not the
    /// writer) moves the WAL into the database file.
    #[tokio::test]
    async fn samples_are_stored_verbatim_and_checkpointed_off_the_writer() {
        use super::{Db, Figures, Message};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fleet.db");
        let db = Db::open(&format!("sqlite://{}", file.display()), 2)
            .await
            .unwrap();
        let size = |name: &str| std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len());
        let base = size("fleet.db");
        let note = "x".repeat(400);
        let data = &format!(
            r#"{{"temperatures_c":{{"soc":48.5}},"note":"{note}","nested":{{"b":1,"a":[1,2]}}}}"#
        );
        // ~5 MB: past SQLite's default automatic checkpoint (1 000 pages).
        let batch: Vec<Message> = (0..10_000)
            .map(|i| Message::Telemetry {
                device: format!("r58-{:04}", i % 1000),
                stream: "system".into(),
                seq: i,
                ts: 1_800_000_000_000 + i,
                data: data.to_string(),
                figures: Figures::default(),
            })
            .collect();
        db.ingest(&batch).await.unwrap();
        // Committed into the WAL; the writer did not copy it back (the automatic
        // checkpoint is only a backstop).
        assert_eq!(size("fleet.db"), base, "the writer checkpointed by itself");
        assert!(size("fleet.db-wal") > 4_500_000);
        db.checkpoint().await.unwrap();
        assert!(
            size("fleet.db") > base + 4_000_000,
            "the checkpoint moved nothing"
        );
        let rows = db
            .telemetry("r58-0007", None, None, 100)
            .await
            .unwrap()
            .telemetry;
        assert_eq!(rows.len(), 10);
        assert_eq!(
            rows[0].data,
            serde_json::from_str::<serde_json::Value>(data).unwrap()
        );
        let raw: String = sqlx::query_scalar("SELECT data FROM telemetry LIMIT 1")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(&raw, data, "the sample was not stored as sent");
    }
}
