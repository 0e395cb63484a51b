//! Schema migrations: an ordered list, each applied once in a transaction and recorded in
//! `schema_migrations`. Never edit an applied migration: add the next one.

use super::{Db, DbError};

pub const MIGRATIONS: &[(i64, &str, &[&str])] = &[
    (
        1,
        "inventory",
        &[
            "CREATE TABLE IF NOT EXISTS devices (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL DEFAULT 'unknown',
            status_rank BIGINT NOT NULL DEFAULT 0,
            session BIGINT NOT NULL DEFAULT -1,
            firmware_version TEXT,
            booted_slot TEXT,
            ip_addresses TEXT,
            uptime_s BIGINT,
            state_ts BIGINT,
            last_seen BIGINT,
            recording BIGINT,
            temperature_c DOUBLE PRECISION,
            disk_free_mib BIGINT,
            disk_total_mib BIGINT,
            tags TEXT NOT NULL DEFAULT '[]',
            desired_version BIGINT NOT NULL DEFAULT 0,
            desired TEXT NOT NULL DEFAULT '{}',
            reported_version BIGINT,
            reported TEXT,
            reported_errors TEXT,
            updated_at BIGINT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS devices_updated ON devices (updated_at)",
            "CREATE TABLE IF NOT EXISTS telemetry (
            device TEXT NOT NULL,
            stream TEXT NOT NULL,
            seq BIGINT NOT NULL,
            ts BIGINT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (device, stream, seq, ts)
        )",
            "CREATE INDEX IF NOT EXISTS telemetry_ts ON telemetry (ts)",
            "CREATE TABLE IF NOT EXISTS commands (
            id TEXT PRIMARY KEY,
            device TEXT NOT NULL,
            name TEXT NOT NULL,
            args TEXT NOT NULL,
            state TEXT NOT NULL,
            state_rank BIGINT NOT NULL,
            progress BIGINT NOT NULL DEFAULT 0,
            message TEXT,
            result TEXT,
            created_by TEXT,
            created_at BIGINT NOT NULL,
            expires_at BIGINT,
            updated_at BIGINT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS commands_device ON commands (device, created_at)",
            "CREATE INDEX IF NOT EXISTS commands_updated ON commands (updated_at)",
            "CREATE TABLE IF NOT EXISTS operators (
            name TEXT PRIMARY KEY,
            token_sha256 TEXT NOT NULL UNIQUE,
            revoked BIGINT NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL
        )",
        ],
    ),
    (
        2,
        "ota",
        &[
            "CREATE TABLE IF NOT EXISTS bundles (
            sha256 TEXT PRIMARY KEY,
            version TEXT NOT NULL,
            compatible TEXT NOT NULL,
            size BIGINT NOT NULL,
            signature_checked BIGINT NOT NULL,
            created_by TEXT,
            created_at BIGINT NOT NULL
        )",
            "CREATE TABLE IF NOT EXISTS rollouts (
            id TEXT PRIMARY KEY,
            bundle_sha256 TEXT NOT NULL,
            version TEXT NOT NULL,
            target TEXT NOT NULL,
            waves TEXT NOT NULL,
            success_percent BIGINT NOT NULL,
            failure_percent BIGINT NOT NULL,
            step_timeout_s BIGINT NOT NULL,
            options TEXT NOT NULL,
            state TEXT NOT NULL,
            wave BIGINT NOT NULL,
            message TEXT,
            created_by TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )",
            "CREATE TABLE IF NOT EXISTS rollout_devices (
            rollout_id TEXT NOT NULL,
            device TEXT NOT NULL,
            wave BIGINT NOT NULL,
            job_id TEXT NOT NULL UNIQUE,
            phase TEXT NOT NULL,
            phase_rank BIGINT NOT NULL,
            progress BIGINT NOT NULL DEFAULT 0,
            reason TEXT,
            details TEXT,
            published_at BIGINT,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (rollout_id, device)
        )",
            "CREATE INDEX IF NOT EXISTS rollout_devices_device ON rollout_devices (device)",
            "CREATE TABLE IF NOT EXISTS leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            until_ms BIGINT NOT NULL
        )",
        ],
    ),
    (
        3,
        "rejected messages",
        &["CREATE TABLE IF NOT EXISTS rejected_messages (
            topic TEXT NOT NULL,
            reason TEXT NOT NULL,
            payload TEXT NOT NULL,
            size BIGINT NOT NULL,
            received_at BIGINT NOT NULL
        )",
          "CREATE INDEX IF NOT EXISTS rejected_messages_received ON rejected_messages (received_at)"],
    ),
    (
        4,
        "operator roles",
        // Operators made before roles could do everything: they stay admins.
        &["ALTER TABLE operators ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'"],
    ),
    (
        5,
        "tunnel sessions",
        &[
            "CREATE TABLE IF NOT EXISTS tunnel_sessions (
            id TEXT PRIMARY KEY,
            device TEXT NOT NULL,
            kind TEXT NOT NULL,
            opened_by TEXT NOT NULL,
            port BIGINT NOT NULL,
            target TEXT NOT NULL,
            opened_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            closed_at BIGINT,
            bytes_to_device BIGINT NOT NULL DEFAULT 0,
            bytes_from_device BIGINT NOT NULL DEFAULT 0,
            end_reason TEXT
        )",
            "CREATE INDEX IF NOT EXISTS tunnel_sessions_device ON tunnel_sessions (device, opened_at)",
            "CREATE INDEX IF NOT EXISTS tunnel_sessions_opened ON tunnel_sessions (opened_at)",
        ],
    ),
    (
        6,
        "fleet settings",
        &["CREATE TABLE IF NOT EXISTS fleet_settings (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            changed_by TEXT NOT NULL,
            changed_at BIGINT NOT NULL
        )"],
    ),
    (
        7,
        "box UI grants",
        &[
            "CREATE TABLE IF NOT EXISTS ui_grants (
            token_sha256 TEXT PRIMARY KEY,
            device TEXT NOT NULL,
            operator TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS ui_grants_expires ON ui_grants (expires_at)",
        ],
    ),
    (
        8,
        "tunnel session close requests",
        // An admin's close of a session another fleet process holds.
        &["ALTER TABLE tunnel_sessions ADD COLUMN close_requested_by TEXT"],
    ),
    (
        9,
        "remote access in the device's state",
        &["ALTER TABLE devices ADD COLUMN remote_access TEXT"],
    ),
];

pub async fn apply(db: &Db) -> Result<(), DbError> {
    let err = |version, name| {
        move |source| DbError::Migrate {
            version,
            name,
            source,
        }
    };
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        .execute(db.pool())
        .await
        .map_err(err(0, "schema_migrations"))?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(db.pool())
        .await
        .map_err(err(0, "schema_migrations"))?;
    let found = found.unwrap_or(0);
    if found > known {
        return Err(DbError::SchemaTooNew { found, known });
    }
    for &(version, name, statements) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        let mut tx = db.pool().begin().await.map_err(err(version, name))?;
        if db.backend == super::Backend::Postgres {
            // Replicas starting together take turns (SQLite serialises writers itself).
            sqlx::query("SELECT pg_advisory_xact_lock(5858)")
                .execute(&mut *tx)
                .await
                .map_err(err(version, name))?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err(version, name))?;
            if done.unwrap_or(0) >= version {
                continue;
            }
        }
        for sql in statements {
            sqlx::query(sql)
                .execute(&mut *tx)
                .await
                .map_err(err(version, name))?;
        }
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(version)
        .bind(name)
        .bind(super::now_ms())
        .execute(&mut *tx)
        .await
        .map_err(err(version, name))?;
        tx.commit().await.map_err(err(version, name))?;
        tracing::info!(
            version,
            name,
            backend = %db.backend,
            "database migration applied"
        );
    }
    Ok(())
}
