//! Prints the local broker configuration (`r58_testkit::LocalBroker`) for the scripts:
//!
//!     r58-broker-conf PORT CERTS DATA [--log FILE] [--replace LINE NEW]...
//!
//! PORT on 127.0.0.1, certificates from CERTS, persistence in DATA, the log to FILE (else
//! stderr), running as this user; each `--replace` swaps a line of the production file.

use std::path::PathBuf;
use std::process::ExitCode;

use r58_testkit::LocalBroker;

const USAGE: &str = "usage: r58-broker-conf PORT CERTS DATA [--log FILE] [--replace LINE NEW]...";

fn parse() -> Result<(LocalBroker, Vec<(String, String)>), String> {
    let mut args = std::env::args().skip(1);
    let mut next = |what: &str| args.next().ok_or(format!("{what} missing\n{USAGE}"));
    let port = next("PORT")?
        .parse::<u16>()
        .map_err(|e| format!("PORT: {e}"))?;
    let certs = PathBuf::from(next("CERTS")?);
    let data = PathBuf::from(next("DATA")?);
    let mut log_file = None;
    let mut changes = Vec::new();
    while let Ok(flag) = next("") {
        match flag.as_str() {
            "--log" => log_file = Some(PathBuf::from(next("--log FILE")?)),
            "--replace" => changes.push((next("--replace LINE")?, next("--replace NEW")?)),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into());
    Ok((
        LocalBroker {
            port,
            certs,
            data,
            log_file,
            user,
        },
        changes,
    ))
}

fn main() -> ExitCode {
    let result = parse().and_then(|(broker, changes)| {
        let pairs: Vec<(&str, &str)> = changes
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        broker.config(&pairs)
    });
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("r58-broker-conf: {e}");
            ExitCode::from(2)
        }
    }
}
