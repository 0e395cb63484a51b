//! Telemetry samples: `system` (CPU, memory, load, temperatures, disk, uptime),
//! `network` (bytes per interface) and `recorder` (per input, from the recorder's API).

use std::path::Path;

use serde_json::{json, Map, Value};

#[derive(Default)]
pub struct CpuSampler {
    last: Option<(u64, u64)>,
}

impl CpuSampler {
    /// CPU use in percent since the previous call (None on the first).
    pub fn sample(&mut self) -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let total: u64 = fields.iter().sum();
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        let prev = self.last.replace((total, idle));
        let (t0, i0) = prev?;
        let dt = total.saturating_sub(t0);
        (dt > 0).then(|| 100.0 * (dt - idle.saturating_sub(i0).min(dt)) as f64 / dt as f64)
    }
}

fn meminfo() -> Value {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kib| kib / 1024)
    };
    json!({ "total_mib": get("MemTotal:"), "available_mib": get("MemAvailable:") })
}

fn load() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    json!(v)
}

pub fn uptime_s() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| {
            t.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0, |v| v as u64)
}

/// `/sys/class/thermal/thermal_zone*/temp` in °C, by zone type.
pub fn temperatures(root: &Path) -> Map<String, Value> {
    let mut out = Map::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return out;
    };
    let mut zones: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    zones.sort();
    for z in zones {
        let temp = std::fs::read_to_string(z.join("temp"))
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok());
        let kind = std::fs::read_to_string(z.join("type"))
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        if let (Some(t), false) = (temp, kind.is_empty()) {
            out.insert(kind, json!(t / 1000.0));
        }
    }
    out
}

fn disk(path: &Path) -> Value {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => {
            let mib = |blocks: u64| blocks * s.fragment_size() as u64 / (1024 * 1024);
            json!({ "path": path, "total_mib": mib(s.blocks() as u64), "free_mib": mib(s.blocks_available() as u64) })
        }
        Err(e) => json!({ "path": path, "error": e.to_string() }),
    }
}

pub fn system(
    cpu: &mut CpuSampler,
    data_dir: &Path,
    queue_len: usize,
    queue_dropped: u64,
) -> Value {
    json!({
        "cpu_percent": cpu.sample(),
        "memory": meminfo(),
        "load": load(),
        "temperatures_c": temperatures(Path::new("/sys/class/thermal")),
        "disk": disk(data_dir),
        "uptime_s": uptime_s(),
        "agent": { "queue_len": queue_len, "queue_dropped": queue_dropped },
    })
}

pub fn network() -> Value {
    let text = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    let mut out = Map::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        out.insert(
            name.into(),
            json!({ "rx_bytes": v.first(), "tx_bytes": v.get(8) }),
        );
    }
    Value::Object(out)
}

/// Per input figures from the recorder's `/api/status`.
pub async fn recorder(client: &reqwest::Client, api: &str, token: &str) -> Value {
    // Awaited inside the agent's event loop: keep it short so a hung recorder cannot stall
    // commands and keepalives.
    let status =
        match crate::recorder_api::status(client, api, token, std::time::Duration::from_secs(2))
            .await
        {
            Ok(v) => v,
            Err(e) => return json!({ "error": e.to_string() }),
        };
    let mut inputs = Map::new();
    if let Some(map) = status["inputs"].as_object() {
        for (id, i) in map {
            inputs.insert(
                id.clone(),
                json!({
                    "signal": i["signal"], "fps": i["fps"], "bitrate_kbps": i["bitrate_kbps"],
                    "recording": i["recording"]["recording"], "bytes": i["recording"]["bytes"],
                    "dropped": i["dropped_frames"],
                }),
            );
        }
    }
    json!({ "healthy": status["healthy"], "session": status["session"], "inputs": inputs })
}

/// The box's addresses (no loopback), for `state`.
pub fn ip_addresses() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(addr) = a.address else { continue };
            if let Some(v4) = addr.as_sockaddr_in() {
                let ip = std::net::Ipv4Addr::from(v4.ip());
                if !ip.is_loopback() {
                    out.push(ip.to_string());
                }
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                let ip = v6.ip();
                if !ip.is_loopback() {
                    out.push(ip.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_thermal_zones_in_celsius() {
        let dir = tempfile::tempdir().unwrap();
        for (z, kind, milli) in [
            ("thermal_zone0", "soc-thermal", "45123"),
            ("thermal_zone1", "gpu-thermal", "39000"),
        ] {
            std::fs::create_dir(dir.path().join(z)).unwrap();
            std::fs::write(dir.path().join(z).join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(dir.path().join(z).join("temp"), format!("{milli}\n")).unwrap();
        }
        let t = temperatures(dir.path());
        assert_eq!(t["soc-thermal"], json!(45.123));
        assert_eq!(t["gpu-thermal"], json!(39.0));
    }
}
