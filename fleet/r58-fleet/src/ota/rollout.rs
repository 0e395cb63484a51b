//! Staged rollouts. A rollout targets one bundle at a set of devices, split into waves
//! (cumulative: `"1"` = one canary device, `"10%"` = a tenth of the set). The replica that
//! holds the `rollouts` lease drives every rollout each tick:
//!
//! - a job that has not reported for `step_timeout_s` fails (`timeout`) and is withdrawn;
//! - failures above `failure_percent` of the jobs started halt the rollout;
//! - the current wave's jobs are published (retained `jobs/next`);
//! - when every job of the wave is final, the next wave starts if the wave's success rate
//!   reaches `success_percent`; otherwise the rollout halts. After the last: `completed`.
//!
//! Operators pause (no new jobs; running ones go on), resume, or abort (unstarted jobs are
//! skipped, published ones withdrawn: devices drop them unless already installing).

use std::time::Duration;

use crate::mqtt::publisher::{PublishError, Publisher};
use rumqttc::QoS;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use r58_fleet_api::{Bundle, Job, Rollout};

use crate::db::{now_ms, Db, DbError};

pub const DEFAULT_WAVES: [&str; 4] = ["1", "10%", "50%", "100%"];

/// Per-rollout options carried into each job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOptions {
    #[serde(default)]
    pub install_policy: r58_proto::Policy,
    #[serde(default)]
    pub reboot_policy: r58_proto::Policy,
    #[serde(default)]
    pub allow_downgrade: bool,
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub window: Option<r58_proto::Window>,
}

/// Cumulative device counts of each wave for `total` devices; errors name the bad entry.
pub fn wave_sizes(waves: &[String], total: usize) -> Result<Vec<usize>, String> {
    if waves.is_empty() {
        return Err("waves must not be empty".into());
    }
    let mut out = Vec::new();
    let mut last = 0usize;
    for w in waves {
        let n = if let Some(p) = w.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("wave {w:?} is not N or P%"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!("wave {w:?}: a percentage is in (0, 100]"));
            }
            ((total as f64) * p / 100.0).ceil() as usize
        } else {
            let n: usize = w
                .trim()
                .parse()
                .map_err(|_| format!("wave {w:?} is not N or P%"))?;
            if n == 0 {
                return Err(format!("wave {w:?}: a count is at least 1"));
            }
            n
        };
        let n = n.min(total);
        if n < last {
            return Err(format!(
                "wave {w:?} is smaller than the one before it (waves are cumulative)"
            ));
        }
        last = n;
        out.push(n);
    }
    // Whatever the list says, the last wave covers every targeted device.
    if let Some(l) = out.last_mut() {
        *l = total;
    }
    Ok(out)
}

/// Devices in a stable, rollout-specific spread order, each with its wave index.
pub fn assign(rollout_id: &str, devices: &[String], sizes: &[usize]) -> Vec<(String, i64)> {
    let mut order: Vec<(String, &String)> = devices
        .iter()
        .map(|d| {
            let h = Sha256::digest(format!("{rollout_id}/{d}").as_bytes());
            (format!("{h:x}"), d)
        })
        .collect();
    order.sort();
    order
        .into_iter()
        .enumerate()
        .map(|(k, (_, d))| {
            (
                d.clone(),
                sizes
                    .iter()
                    .position(|&n| k < n)
                    .unwrap_or(sizes.len().saturating_sub(1)) as i64,
            )
        })
        .collect()
}

fn is_final(phase: &str) -> bool {
    matches!(phase, "succeeded" | "failed" | "skipped")
}

/// Withdraws a device's retained job (an empty retained message deletes it).
pub async fn withdraw(mqtt: &Publisher, device: &str) -> Result<(), PublishError> {
    mqtt.publish(
        r58_proto::jobs_next(device),
        QoS::AtLeastOnce,
        true,
        Vec::new(),
    )
    .await
}

/// Aborts a rollout: unstarted jobs are skipped, started ones withdrawn. False when its
/// state does not allow it.
pub async fn abort(db: &Db, mqtt: &Publisher, id: &str) -> Result<bool, DbError> {
    if !db
        .set_rollout_state(
            id,
            &["running", "paused", "halted"],
            "aborted",
            Some("aborted by an operator"),
        )
        .await?
    {
        return Ok(false);
    }
    for j in db.rollout_jobs(id).await? {
        if j.phase == "pending" {
            db.set_job(&j.job_id, "skipped", Some("aborted"), None)
                .await?;
        } else if !is_final(&j.phase) {
            if let Err(e) = withdraw(mqtt, &j.device).await {
                tracing::warn!(device = %j.device, error = %e, "withdrawing a job of an aborted rollout");
            }
        }
    }
    Ok(true)
}

#[derive(Clone)]
pub struct Driver {
    pub db: Db,
    pub mqtt: Publisher,
    /// `<public_url>/ota/bundles/`
    pub bundle_base: String,
    pub holder: String,
}

impl Driver {
    fn job_doc(&self, r: &Rollout, b: &Bundle, job_id: &str) -> r58_proto::Job {
        let o: JobOptions = serde_json::from_value(r.options.clone()).unwrap_or_default();
        r58_proto::Job {
            job_id: job_id.to_string(),
            version: b.version.clone(),
            url: format!("{}{}.raucb", self.bundle_base, b.sha256),
            size: b.size as u64,
            sha256: b.sha256.clone(),
            min_version: o.min_version,
            install_policy: o.install_policy,
            reboot_policy: o.reboot_policy,
            window: o.window,
            allow_downgrade: o.allow_downgrade,
            deadline: None,
        }
    }

    async fn retain(&self, device: &str, payload: Vec<u8>) -> Result<(), PublishError> {
        self.mqtt
            .publish(
                r58_proto::jobs_next(device),
                QoS::AtLeastOnce,
                true,
                payload,
            )
            .await
    }

    async fn withdraw(&self, device: &str) -> Result<(), PublishError> {
        withdraw(&self.mqtt, device).await
    }

    async fn tick_one(&self, r: &Rollout) -> Result<(), DbError> {
        let mut jobs = self.db.rollout_jobs(&r.id).await?;
        let now = now_ms();
        let mut timed_out = false;
        // Silent devices: failed, and their job withdrawn.
        for j in jobs
            .iter()
            .filter(|j| j.published_at.is_some() && !is_final(&j.phase))
        {
            if now - j.updated_at > r.step_timeout_s * 1000 {
                let details = format!(
                    "no report for {} s (last phase {})",
                    r.step_timeout_s, j.phase
                );
                if self
                    .db
                    .set_job(&j.job_id, "failed", Some("timeout"), Some(&details))
                    .await?
                {
                    timed_out = true;
                    tracing::warn!(rollout = %r.id, device = %j.device, %details, "OTA job timed out");
                    if let Err(e) = self.withdraw(&j.device).await {
                        tracing::warn!(device = %j.device, error = %e, "withdrawing a timed-out job");
                    }
                }
            }
        }
        if r.state != "running" {
            return Ok(());
        }
        if timed_out {
            jobs = self.db.rollout_jobs(&r.id).await?;
        }
        let started = jobs.iter().filter(|j| j.published_at.is_some()).count() as i64;
        let failed = jobs.iter().filter(|j| j.phase == "failed").count() as i64;
        if started > 0 && failed * 100 > r.failure_percent * started {
            let msg = format!(
                "halted: {failed} of {started} started jobs failed (limit {} %)",
                r.failure_percent
            );
            if self
                .db
                .set_rollout_state(&r.id, &["running"], "halted", Some(&msg))
                .await?
            {
                tracing::error!(rollout = %r.id, %msg, "rollout halted");
            }
            return Ok(());
        }
        let Some(bundle) = self.db.bundle(&r.bundle_sha256).await? else {
            self.db
                .set_rollout_state(
                    &r.id,
                    &["running"],
                    "halted",
                    Some("halted: its bundle is gone"),
                )
                .await?;
            return Ok(());
        };
        for j in jobs
            .iter()
            .filter(|j| j.wave <= r.wave && j.phase == "pending")
        {
            let doc = self.job_doc(r, &bundle, &j.job_id);
            let payload = serde_json::to_vec(&doc).unwrap_or_default();
            match self.retain(&j.device, payload).await {
                Ok(()) => {
                    self.db.set_job(&j.job_id, "published", None, None).await?;
                }
                Err(e) => {
                    tracing::warn!(device = %j.device, error = %e, "publishing an OTA job: next tick");
                    return Ok(());
                }
            }
        }
        let wave: Vec<&Job> = jobs.iter().filter(|j| j.wave == r.wave).collect();
        if !wave.iter().all(|j| is_final(&j.phase)) {
            return Ok(());
        }
        let ok = wave.iter().filter(|j| j.phase == "succeeded").count() as i64;
        let rate = if wave.is_empty() {
            100
        } else {
            ok * 100 / wave.len() as i64
        };
        let last = jobs.iter().map(|j| j.wave).max().unwrap_or(0);
        if rate < r.success_percent {
            let msg = format!(
                "halted: wave {} succeeded on {rate} % (needs {} %)",
                r.wave + 1,
                r.success_percent
            );
            if self
                .db
                .set_rollout_state(&r.id, &["running"], "halted", Some(&msg))
                .await?
            {
                tracing::error!(rollout = %r.id, %msg, "rollout halted");
            }
        } else if r.wave >= last {
            let msg = format!(
                "completed: {} of {} devices updated",
                jobs.iter().filter(|j| j.phase == "succeeded").count(),
                jobs.len()
            );
            if self
                .db
                .set_rollout_state(&r.id, &["running"], "completed", Some(&msg))
                .await?
            {
                tracing::info!(rollout = %r.id, %msg, "rollout completed");
                for j in &jobs {
                    let _ = self.withdraw(&j.device).await;
                }
            }
        } else {
            tracing::info!(rollout = %r.id, wave = r.wave + 2, "next wave");
            self.db.set_rollout_wave(&r.id, r.wave + 1).await?;
        }
        Ok(())
    }

    /// Publishes again every started, unfinished job of a rollout that is not over (after the
    /// broker may have lost its retained store); returns how many.
    pub async fn republish(&self) -> Result<usize, DbError> {
        let mut n = 0;
        for r in self.db.rollouts().await? {
            if !matches!(r.state.as_str(), "running" | "paused" | "halted") {
                continue;
            }
            let Some(bundle) = self.db.bundle(&r.bundle_sha256).await? else {
                continue;
            };
            for j in self.db.rollout_jobs(&r.id).await? {
                if j.published_at.is_none() || is_final(&j.phase) {
                    continue;
                }
                let doc = self.job_doc(&r, &bundle, &j.job_id);
                let payload = serde_json::to_vec(&doc).unwrap_or_default();
                if let Err(e) = self.retain(&j.device, payload).await {
                    tracing::warn!(device = %j.device, error = %e, "publishing an OTA job again");
                    return Ok(n);
                }
                n += 1;
            }
        }
        Ok(n)
    }

    pub async fn tick(&self) -> Result<(), DbError> {
        if !self.db.lease("rollouts", &self.holder, 15_000).await? {
            return Ok(());
        }
        for r in self.db.rollouts().await? {
            if matches!(r.state.as_str(), "running" | "paused" | "halted") {
                self.tick_one(&r).await?;
            }
        }
        Ok(())
    }

    pub async fn run(self, every: Duration) {
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %r58_log::error_chain(&e), "driving rollouts");
            }
            tokio::time::sleep(every).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn w(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn waves_are_cumulative_and_end_with_everyone() {
        assert_eq!(
            wave_sizes(&w(&DEFAULT_WAVES), 40).unwrap(),
            vec![1, 4, 20, 40]
        );
        assert_eq!(wave_sizes(&w(&["1", "50%"]), 3).unwrap(), vec![1, 3]);
        assert_eq!(wave_sizes(&w(&["5"]), 2).unwrap(), vec![2]);
        assert!(wave_sizes(&w(&["50%", "10%"]), 100)
            .unwrap_err()
            .contains("smaller"));
        assert!(wave_sizes(&w(&["0"]), 10).is_err());
        assert!(wave_sizes(&w(&["150%"]), 10).is_err());
        assert!(wave_sizes(&w(&["x"]), 10).is_err());
        assert!(wave_sizes(&[], 10).is_err());
    }

    #[test]
    fn assignment_is_stable_and_fills_waves_in_order() {
        let devs: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
        let sizes = wave_sizes(&w(&["1", "50%", "100%"]), 10).unwrap();
        let a = assign("r1", &devs, &sizes);
        assert_eq!(a, assign("r1", &devs, &sizes));
        let per_wave = |k: i64| a.iter().filter(|(_, w)| *w == k).count();
        assert_eq!((per_wave(0), per_wave(1), per_wave(2)), (1, 4, 5));
        assert_ne!(
            a.iter().map(|x| x.0.clone()).collect::<Vec<_>>(),
            assign("r2", &devs, &sizes)
                .iter()
                .map(|x| x.0.clone())
                .collect::<Vec<_>>()
        );
    }
}
