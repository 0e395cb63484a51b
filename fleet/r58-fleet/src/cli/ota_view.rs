//! The CLI's OTA views: bundles, and rollouts with a progress bar per wave.

use serde_json::Value;

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

pub fn bundles_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["bundles"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            vec![
                b["version"].as_str().unwrap_or("?").to_string(),
                b["compatible"].as_str().unwrap_or("?").to_string(),
                format!("{:.1} MiB", b["size"].as_f64().unwrap_or(0.0) / 1_048_576.0),
                if b["signature_checked"] == true {
                    "yes"
                } else {
                    "NO"
                }
                .to_string(),
                b["sha256"].as_str().unwrap_or("?").to_string(),
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
pub fn rollout_view(v: &Value) -> String {
    let r = &v["rollout"];
    let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
    let mut out = format!(
        "rollout {} → {}: {} (wave {}/{}){}\n",
        r["id"].as_str().unwrap_or("?"),
        r["version"].as_str().unwrap_or("?"),
        r["state"].as_str().unwrap_or("?"),
        r["wave"].as_i64().unwrap_or(0) + 1,
        r["waves"].as_array().map_or(0, Vec::len),
        r["message"]
            .as_str()
            .map(|m| format!(" — {m}"))
            .unwrap_or_default(),
    );
    let waves = jobs
        .iter()
        .filter_map(|j| j["wave"].as_i64())
        .max()
        .map_or(0, |w| w + 1);
    for w in 0..waves {
        let in_wave: Vec<&Value> = jobs
            .iter()
            .filter(|j| j["wave"].as_i64() == Some(w))
            .collect();
        let count = |p: &str| in_wave.iter().filter(|j| j["phase"] == p).count() as u64;
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
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .filter(|j| j["phase"] != "succeeded" && j["phase"] != "pending")
        .map(|j| {
            vec![
                j["device"].as_str().unwrap_or("?").to_string(),
                j["phase"].as_str().unwrap_or("?").to_string(),
                format!("{}%", j["progress"].as_i64().unwrap_or(0)),
                j["reason"].as_str().unwrap_or("").to_string(),
                j["details"]
                    .as_str()
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

pub fn is_settled(v: &Value) -> bool {
    matches!(
        v["rollout"]["state"].as_str(),
        Some("completed" | "halted" | "aborted")
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    #[test]
    fn rollout_view_shows_waves_and_unfinished_jobs() {
        let v = json!({
            "rollout": { "id": "r1", "version": "1.2.0", "state": "running", "wave": 1, "waves": ["1", "100%"], "message": null },
            "jobs": [
                { "device": "a", "wave": 0, "phase": "succeeded", "progress": 100 },
                { "device": "b", "wave": 1, "phase": "downloading", "progress": 40 },
                { "device": "c", "wave": 1, "phase": "failed", "progress": 0, "reason": "checksum_mismatch", "details": "sha" },
            ]
        });
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
        assert!(!super::is_settled(&v));
    }
}
