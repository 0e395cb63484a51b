use std::path::PathBuf;
use std::process::ExitCode;

use r58_fleet::config::{FleetConfig, CONFIG_ENV, DEFAULT_CONFIG};

const USAGE: &str = "usage: r58-fleet [--config FILE] <command>\n\
commands:\n\
  serve                     serve the fleet API (TURN credentials for devices)\n\
  check-config              load and validate the configuration\n\
  device-token <id>         add a device or rotate its token; prints the token once\n\
  device-revoke <id>        revoke a device's token\n\
--config FILE: main config file (default: $R58_FLEET_CONFIG or /etc/r58-fleet/fleet.toml)";

fn main() -> ExitCode {
    let mut config: Option<PathBuf> = None;
    let mut rest = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => match args.next() {
                Some(p) => config = Some(p.into()),
                None => return usage("--config needs a file"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--version" => {
                println!("r58-fleet {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            _ => rest.push(a),
        }
    }
    r58_log::init("r58-fleet");
    let paths = match config {
        Some(main) => r58_config::ConfigPaths { main, required: true },
        None => match std::env::var_os(CONFIG_ENV) {
            Some(p) => r58_config::ConfigPaths { main: p.into(), required: true },
            None => r58_config::ConfigPaths { main: DEFAULT_CONFIG.into(), required: false },
        },
    };
    let result = (|| -> Result<(), r58_fleet::FleetError> {
        let cfg: FleetConfig = r58_config::load_from(&paths)?.config;
        match rest.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["serve"] => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(r58_fleet::FleetError::Serve)?
                .block_on(r58_fleet::serve(cfg)),
            ["check-config"] => {
                println!("config ok");
                Ok(())
            }
            ["device-token", id] => {
                let token = r58_fleet::issue_device_token(&cfg.devices.file, id)?;
                println!("{token}");
                Ok(())
            }
            ["device-revoke", id] => {
                if !r58_fleet::revoke_device(&cfg.devices.file, id)? {
                    eprintln!("r58-fleet: no device {id:?}");
                    std::process::exit(1);
                }
                Ok(())
            }
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        }
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("r58-fleet: {}", r58_log::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("r58-fleet: {msg}\n{USAGE}");
    ExitCode::from(2)
}
