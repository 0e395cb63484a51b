use std::process::ExitCode;

use r58_recorder::run::{run, Options};

const USAGE: &str = "usage: r58-recorder [--config FILE] [--check-config] [--check] [--version]\n\
  --config FILE    main config file (default: $R58_CONFIG or /etc/r58/r58.toml; conf.d/ beside it)\n\
  --check-config   load and validate the configuration, then exit\n\
  --check          build every pipeline description the configuration uses and name any\n\
                   GStreamer element that is not installed, then exit (1 if one is missing)";

fn main() -> ExitCode {
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => match args.next() {
                Some(p) => opts.config = Some(p.into()),
                None => return usage_error("--config needs a file"),
            },
            "--check-config" => opts.check_config = true,
            "--check" => opts.check_pipelines = true,
            "--version" => {
                println!("r58-recorder {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage_error(&format!("unknown argument {other:?}")),
        }
    }
    r58_log::init("r58-recorder");
    r58_log::exit_with("r58-recorder", run(opts))
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("r58-recorder: {msg}\n{USAGE}");
    ExitCode::from(2)
}
