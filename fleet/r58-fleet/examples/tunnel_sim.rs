//! Boxes for the tunnel benchmark (bench/tunnel): one process, N boxes, each with its own
//! device certificate signed by the fleet's CA (CN = device id, as the relay requires),
//! each running the `r58-tunnel` dialer the agent runs, opening `--ports` to the fleet.
//!
//! With `--fleet URL --token T --fleet-pid PID` it measures the fleet process's resident
//! memory with no tunnel, then with all N tunnels open and idle, and prints both, the
//! difference per tunnel and the ratio. Without, it keeps the tunnels open until killed.
//!
//! Usage: tunnel_sim --pki DIR --relay HOST:PORT [--boxes N] [--ports P,P…]
//!        [--fleet URL --token T --fleet-pid PID]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use r58_tunnel::device::Policy;
use r58_tunnel::dial::Dialer;
use tokio_util::sync::CancellationToken;

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Waits until the fleet's memory stops moving (two readings a second apart within 1 %).
async fn settled_rss(pid: u32) -> u64 {
    let mut last = rss_kib(pid);
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss_kib(pid);
        if now.abs_diff(last) * 100 <= last {
            return now;
        }
        last = now;
    }
    last
}

async fn open_tunnels(http: &reqwest::Client, fleet: &str, token: &str) -> usize {
    let v: serde_json::Value = match http
        .get(format!("{fleet}/api/v1/tunnels"))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => return 0,
    };
    v["devices"].as_array().map_or(0, Vec::len)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let pki = std::path::PathBuf::from(arg("--pki").expect("--pki DIR"));
    let relay = arg("--relay").expect("--relay HOST:PORT");
    let n: usize = arg("--boxes").map_or(1, |v| v.parse().unwrap());
    let ports: Vec<u16> = arg("--ports")
        .map(|v| v.split(',').map(|p| p.parse().unwrap()).collect())
        .unwrap_or_default();

    let ca = r58_fleet::pki::Ca::open(&pki).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.cert_pem().unwrap().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let t = Instant::now();
    let dialers: Vec<Dialer> = (0..n)
        .map(|i| {
            let id = if n == 1 {
                "tsim-box".to_string()
            } else {
                format!("tsim-{i:05}")
            };
            let (cert, key) = ca.sign(&id, &[], false).unwrap();
            let certs: Vec<_> = rustls_pemfile::certs(&mut cert.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
            let key = rustls_pemfile::private_key(&mut key.as_bytes())
                .unwrap()
                .unwrap();
            let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_client_auth_cert(certs, key)
                .unwrap();
            Dialer {
                address: relay.clone(),
                server_name: "localhost".into(),
                path: "/relay".into(),
                tls: Arc::new(tls),
                policy: Policy {
                    ports: ports.clone(),
                    max_streams: 16,
                    activity: Default::default(),
                },
                max_backoff: Duration::from_secs(5),
            }
        })
        .collect();
    eprintln!(
        "tunnel_sim: {n} certificates in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let measure = match (arg("--fleet"), arg("--token"), arg("--fleet-pid")) {
        (Some(f), Some(t), Some(p)) => Some((f, t, p.parse::<u32>().unwrap())),
        _ => None,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let before = match &measure {
        Some((_, _, pid)) => Some(settled_rss(*pid).await),
        None => None,
    };
    let stop = CancellationToken::new();
    let t = Instant::now();
    for d in dialers {
        let stop = stop.clone();
        tokio::spawn(async move { d.run(stop).await });
    }
    let Some((fleet, token, pid)) = measure else {
        eprintln!("tunnel_sim: {n} boxes dialling {relay}; stop with a signal");
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let open = open_tunnels(&http, &fleet, &token).await;
        if open >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {open} of {n} tunnels open after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "tunnel_sim: {n} tunnels open in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let before = before.unwrap_or(0);
    let after = settled_rss(pid).await;
    let per = after.saturating_sub(before) as f64 / n as f64;
    println!("fleet RSS with no tunnel (baseline): {before} KiB");
    println!("fleet RSS with {n} idle tunnels: {after} KiB");
    println!("per idle tunnel: {per:.1} KiB");
    println!("ratio: {:.2}", after as f64 / before.max(1) as f64);
    stop.cancel();
}
