use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use r58_agent::agent::Agent;
use r58_agent::system::Systemd;
use r58_agent::AgentError;

const USAGE: &str = "usage: r58-agent [--config FILE] [--check-config | --health-check [SECONDS]]";

fn main() -> ExitCode {
    let mut config = None;
    let mut check = false;
    let mut health: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next().map(std::path::PathBuf::from),
            "--check-config" => check = true,
            "--health-check" => {
                health = Some(args.next().and_then(|s| s.parse().ok()).unwrap_or(180))
            }
            "--version" => {
                println!("r58-agent {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("r58-agent: unknown argument {a:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    r58_log::init("r58-agent");
    if let Some(seconds) = health {
        return health_check(config, seconds);
    }
    r58_log::exit_with("r58-agent", run(config, check))
}

fn run(config: Option<std::path::PathBuf>, check: bool) -> Result<(), AgentError> {
    let paths = r58_config::ConfigPaths::resolve(
        config,
        r58_config::CONFIG_ENV,
        r58_config::DEFAULT_CONFIG_PATH,
    );
    let cfg: r58_config::R58Config = r58_config::load_from(&paths)?.config;
    if check {
        println!("config ok");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Runtime)?;
    rt.block_on(async move {
        let agent = Agent::new(cfg, paths, Arc::new(Systemd))?;
        let heartbeat = agent.heartbeat.clone();
        let started = Instant::now();
        // The watchdog is fed while the event loop turns (it wakes at least twice a second).
        r58_systemd::spawn_watchdog(move || {
            let last = heartbeat.load(Ordering::Relaxed);
            let now = started.elapsed().as_millis() as u64 + 1;
            if now.saturating_sub(last) < 10_000 {
                Ok(())
            } else {
                Err(format!(
                    "event loop stuck for {} ms",
                    now.saturating_sub(last)
                ))
            }
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            r58_systemd::shutdown_signal().await;
            let _ = stop_tx.send(());
        });
        agent.run(stop_rx).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(())
    })
}

fn health_check(config: Option<std::path::PathBuf>, seconds: u64) -> ExitCode {
    let paths = r58_config::ConfigPaths::resolve(
        config,
        r58_config::CONFIG_ENV,
        r58_config::DEFAULT_CONFIG_PATH,
    );
    let cfg: r58_config::R58Config = match r58_config::load_from(&paths) {
        Ok(l) => l.config,
        Err(e) => {
            eprintln!("r58-agent: {}", r58_log::error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    match r58_agent::health::run(&cfg, Duration::from_secs(seconds)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("r58-agent: boot health check failed: {reason}");
            ExitCode::FAILURE
        }
    }
}
