//! OTA: published bundles, rollouts, each device's job in a rollout, and the lease that lets
//! one replica at a time drive rollouts. Job phases never move backwards (updates arrive at
//! least once, possibly out of order across replicas).

use r58_fleet_api::{Bundle, Job, Rollout};
use serde_json::Value;
use sqlx::Row;

use super::{now_ms, q, Db, DbError};

/// Rank of a job phase: `pending` (not published yet) and `published` are the fleet's own.
pub fn phase_rank(phase: &str) -> i64 {
    match phase {
        "pending" => 0,
        "published" => 1,
        "succeeded" | "failed" | "skipped" => 100,
        other => r58_proto::Phase::parse(other).map_or(1, |p| 2 + p as i64),
    }
}

fn bundle_row(r: &sqlx::any::AnyRow) -> Result<Bundle, sqlx::Error> {
    Ok(Bundle {
        sha256: r.try_get("sha256")?,
        version: r.try_get("version")?,
        compatible: r.try_get("compatible")?,
        size: r.try_get("size")?,
        signature_checked: r.try_get::<i64, _>("signature_checked")? != 0,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

fn rollout_row(r: &sqlx::any::AnyRow) -> Result<Rollout, sqlx::Error> {
    let text = |c: &str| -> Result<String, sqlx::Error> { r.try_get(c) };
    Ok(Rollout {
        id: text("id")?,
        bundle_sha256: text("bundle_sha256")?,
        version: text("version")?,
        target: serde_json::from_str(&text("target")?).unwrap_or(Value::Null),
        waves: serde_json::from_str(&text("waves")?).unwrap_or_default(),
        success_percent: r.try_get("success_percent")?,
        failure_percent: r.try_get("failure_percent")?,
        step_timeout_s: r.try_get("step_timeout_s")?,
        options: serde_json::from_str(&text("options")?).unwrap_or(Value::Null),
        state: text("state")?,
        wave: r.try_get("wave")?,
        message: r.try_get("message")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn job_row(r: &sqlx::any::AnyRow) -> Result<Job, sqlx::Error> {
    Ok(Job {
        rollout_id: r.try_get("rollout_id")?,
        device: r.try_get("device")?,
        wave: r.try_get("wave")?,
        job_id: r.try_get("job_id")?,
        phase: r.try_get("phase")?,
        progress: r.try_get("progress")?,
        reason: r.try_get("reason")?,
        details: r.try_get("details")?,
        published_at: r.try_get("published_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const JOB_COLUMNS: &str =
    "rollout_id, device, wave, job_id, phase, progress, reason, details, published_at, updated_at";

/// A new rollout with its devices, each already assigned to a wave.
pub struct NewRollout<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    pub target: &'a Value,
    pub waves: &'a [String],
    pub success_percent: i64,
    pub failure_percent: i64,
    pub step_timeout_s: i64,
    pub options: &'a Value,
    pub created_by: &'a str,
    /// (device, wave, job id)
    pub devices: &'a [(String, i64, String)],
}

impl Db {
    pub async fn insert_bundle(&self, b: &Bundle) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO bundles (sha256, version, compatible, size, signature_checked, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&b.sha256)
        .bind(&b.version)
        .bind(&b.compatible)
        .bind(b.size)
        .bind(i64::from(b.signature_checked))
        .bind(b.created_by.as_deref())
        .bind(b.created_at)
        .execute(self.pool())
        .await
        .map_err(q("insert bundle"))?;
        Ok(())
    }

    pub async fn bundles(&self) -> Result<Vec<Bundle>, DbError> {
        let rows = sqlx::query("SELECT * FROM bundles ORDER BY created_at DESC")
            .fetch_all(self.pool())
            .await
            .map_err(q("list bundles"))?;
        rows.iter()
            .map(bundle_row)
            .collect::<Result<_, _>>()
            .map_err(q("read bundle"))
    }

    pub async fn bundle(&self, sha256: &str) -> Result<Option<Bundle>, DbError> {
        let row = sqlx::query("SELECT * FROM bundles WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(self.pool())
            .await
            .map_err(q("bundle"))?;
        row.as_ref()
            .map(bundle_row)
            .transpose()
            .map_err(q("read bundle"))
    }

    /// The newest bundle of a version.
    pub async fn bundle_by_version(&self, version: &str) -> Result<Option<Bundle>, DbError> {
        let row = sqlx::query(
            "SELECT * FROM bundles WHERE version = $1 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(version)
        .fetch_optional(self.pool())
        .await
        .map_err(q("bundle by version"))?;
        row.as_ref()
            .map(bundle_row)
            .transpose()
            .map_err(q("read bundle"))
    }

    pub async fn insert_rollout(&self, r: &NewRollout<'_>) -> Result<(), DbError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await.map_err(q("begin rollout"))?;
        sqlx::query(
            "INSERT INTO rollouts (id, bundle_sha256, version, target, waves, success_percent, failure_percent, step_timeout_s,
               options, state, wave, message, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'running', 0, NULL, $10, $11, $11)",
        )
        .bind(r.id)
        .bind(&r.bundle.sha256)
        .bind(&r.bundle.version)
        .bind(r.target.to_string())
        .bind(serde_json::to_string(r.waves).unwrap_or_default())
        .bind(r.success_percent)
        .bind(r.failure_percent)
        .bind(r.step_timeout_s)
        .bind(r.options.to_string())
        .bind(r.created_by)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(q("insert rollout"))?;
        for (device, wave, job_id) in r.devices {
            sqlx::query(
                "INSERT INTO rollout_devices (rollout_id, device, wave, job_id, phase, phase_rank, updated_at)
                 VALUES ($1, $2, $3, $4, 'pending', 0, $5)",
            )
            .bind(r.id)
            .bind(device)
            .bind(*wave)
            .bind(job_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(q("insert rollout device"))?;
        }
        tx.commit().await.map_err(q("commit rollout"))
    }

    pub async fn rollouts(&self) -> Result<Vec<Rollout>, DbError> {
        let rows = sqlx::query("SELECT * FROM rollouts ORDER BY created_at DESC")
            .fetch_all(self.pool())
            .await
            .map_err(q("list rollouts"))?;
        rows.iter()
            .map(rollout_row)
            .collect::<Result<_, _>>()
            .map_err(q("read rollout"))
    }

    pub async fn rollout(&self, id: &str) -> Result<Option<Rollout>, DbError> {
        let row = sqlx::query("SELECT * FROM rollouts WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(q("rollout"))?;
        row.as_ref()
            .map(rollout_row)
            .transpose()
            .map_err(q("read rollout"))
    }

    pub async fn rollout_jobs(&self, id: &str) -> Result<Vec<Job>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM rollout_devices WHERE rollout_id = $1 ORDER BY wave, device"
        ))
        .bind(id)
        .fetch_all(self.pool())
        .await
        .map_err(q("rollout jobs"))?;
        rows.iter()
            .map(job_row)
            .collect::<Result<_, _>>()
            .map_err(q("read rollout job"))
    }

    /// Moves a rollout from one of `from` to `to` (with a message); false when it was in none.
    pub async fn set_rollout_state(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        message: Option<&str>,
    ) -> Result<bool, DbError> {
        let list = (0..from.len())
            .map(|i| format!("${}", i + 5))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("UPDATE rollouts SET state = $1, message = COALESCE($2, message), updated_at = $3 WHERE id = $4 AND state IN ({list})");
        let mut query = sqlx::query(&sql)
            .bind(to)
            .bind(message)
            .bind(now_ms())
            .bind(id);
        for f in from {
            query = query.bind(*f);
        }
        Ok(query
            .execute(self.pool())
            .await
            .map_err(q("set rollout state"))?
            .rows_affected()
            == 1)
    }

    pub async fn set_rollout_wave(&self, id: &str, wave: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE rollouts SET wave = $1, updated_at = $2 WHERE id = $3")
            .bind(wave)
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(q("set rollout wave"))?;
        Ok(())
    }

    /// The fleet's own transitions of a job (published, timed out, skipped): only forwards.
    pub async fn set_job(
        &self,
        job_id: &str,
        phase: &str,
        reason: Option<&str>,
        details: Option<&str>,
    ) -> Result<bool, DbError> {
        let now = now_ms();
        let rank = phase_rank(phase);
        let published = if phase == "published" {
            Some(now)
        } else {
            None
        };
        let n = sqlx::query(
            "UPDATE rollout_devices SET phase = $1, phase_rank = $2, reason = COALESCE($3, reason), details = COALESCE($4, details),
               published_at = COALESCE(published_at, $5), updated_at = $6
             WHERE job_id = $7 AND phase_rank < $2",
        )
        .bind(phase)
        .bind(rank)
        .bind(reason)
        .bind(details)
        .bind(published)
        .bind(now)
        .bind(job_id)
        .execute(self.pool())
        .await
        .map_err(q("set job"))?
        .rows_affected();
        Ok(n == 1)
    }

    /// Takes (or keeps) a lease for `ttl_ms`; true when `holder` has it.
    pub async fn lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, DbError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
             WHERE leases.until_ms < $4 OR leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(q("lease"))?;
        let h: String = sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1")
            .bind(name)
            .fetch_one(self.pool())
            .await
            .map_err(q("lease holder"))?;
        Ok(h == holder)
    }
}

pub(crate) mod write {
    use super::*;

    /// A device's report on `jobs/{job_id}/update` (inside the ingest transaction).
    #[allow(clippy::too_many_arguments)]
    pub async fn job_update(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        device: &str,
        job_id: &str,
        phase: &str,
        progress: i64,
        reason: Option<&str>,
        details: Option<&str>,
    ) -> Result<(), DbError> {
        let rank = phase_rank(phase);
        sqlx::query(
            "UPDATE rollout_devices SET phase = $1, phase_rank = $2, progress = $3, reason = $4, details = $5, updated_at = $6
             WHERE job_id = $7 AND device = $8 AND (phase_rank < $2 OR (phase_rank = $2 AND phase_rank < 100))",
        )
        .bind(phase)
        .bind(rank)
        .bind(progress)
        .bind(reason)
        .bind(details)
        .bind(now_ms())
        .bind(job_id)
        .bind(device)
        .execute(&mut **tx)
        .await
        .map_err(q("job update"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::phase_rank;

    /// The fleet keeps the highest-ranked update of a job: the ranks must follow the order the
    /// device goes through (a streamed install waits for the recording after verifying; ranked
    /// lower, that wait never showed and the fleet said `verifying`).
    #[test]
    fn ranks_follow_the_devices_order_streamed_and_downloaded() {
        let tail = [
            "waiting_for_idle",
            "installing",
            "waiting_for_reboot",
            "rebooting",
            "verifying_boot",
            "succeeded",
        ];
        for head in [
            &["pending", "published", "verifying"][..],
            &["pending", "published", "downloading", "verifying"],
        ] {
            let order: Vec<&str> = head.iter().chain(tail.iter()).copied().collect();
            for pair in order.windows(2) {
                assert!(
                    phase_rank(pair[0]) < phase_rank(pair[1]),
                    "{} before {}",
                    pair[0],
                    pair[1]
                );
            }
        }
        assert_eq!(phase_rank("failed"), phase_rank("succeeded"));
    }
}
