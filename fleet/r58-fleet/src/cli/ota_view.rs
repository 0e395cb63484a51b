//! The CLI's OTA views: bundles, and rollouts with a progress bar per wave.

use r58_fleet_api::{BundleList, Job, RolloutDetail};

use super::client::table;

fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        width
    } else {
        (done as usize * width) / total as usize
    };
    format!(
        "[{}{}]",
        "#".repeat(filled),
        "-".repeat(width - filled.min(width))
    )
}

pub fn bundles_table(v: &BundleList) -> String {
    let rows: Vec<Vec<String>> = v
        .bundles
        .iter()
        .map(|b| {
            vec![
                b.version.clone(),
                b.compatible.clone(),
                format!("{:.1} MiB", b.size as f64 / 1_048_576.0),
                if b.signature_checked { "yes" } else { "NO" }.to_string(),
                b.sha256.clone(),
            ]
        })
        .collect();
    table(
        &[
            "VERSION",
            "COMPATIBLE",
            "SIZE",
            "SIGNATURE CHECKED",
            "SHA256",
        ],
        &rows,
    )
}

/// One rollout: its state, a bar per wave (final jobs of all jobs), and the jobs not yet done.
pub fn rollout_view(v: &RolloutDetail) -> String {
    let r = &v.rollout;
    let mut out = format!(
        "rollout {} → {}: {} (wave {}/{}){}\n",
        r.id,
        r.version,
        r.state,
        r.wave + 1,
        r.waves.len(),
        r.message
            .as_deref()
            .map(|m| format!(" — {m}"))
            .unwrap_or_default(),
    );
    let waves = v.jobs.iter().map(|j| j.wave).max().map_or(0, |w| w + 1);
    for w in 0..waves {
        let in_wave: Vec<&Job> = v.jobs.iter().filter(|j| j.wave == w).collect();
        let count = |p: &str| in_wave.iter().filter(|j| j.phase == p).count() as u64;
        let (ok, failed, skipped) = (count("succeeded"), count("failed"), count("skipped"));
        out += &format!(
            "  wave {:<2} {} {:>3}/{:<3} succeeded {ok}, failed {failed}{}\n",
            w + 1,
            bar(ok + failed + skipped, in_wave.len() as u64, 24),
            ok + failed + skipped,
            in_wave.len(),
            if skipped > 0 {
                format!(", skipped {skipped}")
            } else {
                String::new()
            },
        );
    }
    let rows: Vec<Vec<String>> = v
        .jobs
        .iter()
        .filter(|j| j.phase != "succeeded" && j.phase != "pending")
        .map(|j| {
            vec![
                j.device.clone(),
                j.phase.clone(),
                format!("{}%", j.progress),
                j.reason.clone().unwrap_or_default(),
                j.details
                    .as_deref()
                    .unwrap_or("")
                    .chars()
                    .take(80)
                    .collect(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out += &table(&["DEVICE", "PHASE", "PROGRESS", "REASON", "DETAILS"], &rows);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use r58_fleet_api::{Job, Rollout, RolloutDetail, RolloutSummary};
    use serde_json::Value;

    fn job(device: &str, wave: i64, phase: &str, progress: i64, reason: Option<&str>) -> Job {
        Job {
            rollout_id: "r1".into(),
            device: device.into(),
            wave,
            job_id: format!("r1-{device}"),
            phase: phase.into(),
            progress,
            reason: reason.map(str::to_string),
            details: reason.map(|_| "sha".to_string()),
            published_at: None,
            updated_at: 0,
        }
    }

    #[test]
    fn rollout_view_shows_waves_and_unfinished_jobs() {
        let jobs = vec![
            job("a", 0, "succeeded", 100, None),
            job("b", 1, "downloading", 40, None),
            job("c", 1, "failed", 0, Some("checksum_mismatch")),
        ];
        let v = RolloutDetail {
            rollout: Rollout {
                id: "r1".into(),
                bundle_sha256: "00".into(),
                version: "1.2.0".into(),
                target: Value::Null,
                waves: vec!["1".into(), "100%".into()],
                success_percent: 95,
                failure_percent: 10,
                step_timeout_s: 1800,
                options: Value::Null,
                state: "running".into(),
                wave: 1,
                message: None,
                created_by: None,
                created_at: 0,
                updated_at: 0,
            },
            summary: RolloutSummary::of(&jobs),
            jobs,
        };
        let s = super::rollout_view(&v);
        assert!(s.contains("rollout r1 → 1.2.0: running (wave 2/2)"), "{s}");
        assert!(
            s.contains("wave 1  [########################]   1/1"),
            "{s}"
        );
        assert!(
            s.contains("wave 2  [############------------]   1/2"),
            "{s}"
        );
        assert!(
            s.contains("downloading") && s.contains("checksum_mismatch") && !s.contains("\na "),
            "{s}"
        );
        assert!(!v.rollout.is_settled());
        assert_eq!(
            (
                v.summary.devices,
                v.summary.count("failed"),
                v.summary.count("queued")
            ),
            (3, 1, 0)
        );
    }
}
