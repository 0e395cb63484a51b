use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use r58_fleet::cli::{self, Client};
use r58_fleet::config::{FleetConfig, CONFIG_ENV, DEFAULT_CONFIG};
use r58_fleet::FleetError;
use serde_json::{json, Value};

/// The R58 fleet service and its operator CLI.
#[derive(Parser)]
#[command(name = "r58-fleet", version, about)]
struct Cli {
    /// Main config file of the server commands (default: $R58_FLEET_CONFIG or /etc/r58-fleet/fleet.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct Remote {
    /// The fleet server's URL.
    #[arg(long, env = "R58_FLEET_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An operator token (made with `r58-fleet operator add`).
    #[arg(
        long,
        env = "R58_FLEET_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    token: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
#[allow(clippy::enum_variant_names)]
enum Cmd {
    /// Serve the fleet service (API, dashboard, ingest, TURN credentials).
    Serve,
    /// Load and validate the configuration.
    CheckConfig,
    /// Operator API tokens (server side: uses the configured database).
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// The CA for the broker's mutual TLS.
    #[command(subcommand)]
    Pki(PkiCmd),
    /// Add a device to the TURN registry or rotate its token; prints the token once.
    DeviceToken { id: String },
    /// Revoke a device's TURN token.
    DeviceRevoke { id: String },
    /// List devices.
    Devices {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        version: Option<String>,
    },
    /// Show one device with its recent commands.
    Device {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Follow a device's telemetry live (Ctrl-C to stop).
    Watch {
        id: String,
        #[command(flatten)]
        remote: Remote,
        /// Only this telemetry stream (system, network, recorder).
        #[arg(long)]
        stream: Option<String>,
    },
    /// Send a command (`ping`, `record.start`, `record.stop`, `reboot`, …) and follow its progress.
    Cmd {
        id: String,
        name: String,
        /// Arguments as key=value (values parsed as JSON when they are).
        args: Vec<String>,
        #[arg(long)]
        timeout: Option<u32>,
        /// Return once sent.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// A device's desired and reported configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Updates: publish RAUC bundles and roll them out in waves.
    #[command(subcommand)]
    Ota(OtaCmd),
}

#[derive(Subcommand)]
enum OtaCmd {
    /// Upload a RAUC bundle; the server reads its version and compatible (and checks its signature).
    Publish {
        bundle: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// List published bundles.
    Bundles {
        #[command(flatten)]
        remote: Remote,
    },
    /// Start a rollout of a published version (waves: cumulative counts or percentages).
    Rollout {
        version: String,
        /// Every device.
        #[arg(long, conflicts_with_all = ["tag", "devices"])]
        all: bool,
        /// Devices with this tag.
        #[arg(long, conflicts_with = "devices")]
        tag: Option<String>,
        /// These devices (comma-separated).
        #[arg(long, value_delimiter = ',')]
        devices: Vec<String>,
        /// Waves, e.g. 1,10%,50%,100% (the default).
        #[arg(long, value_delimiter = ',')]
        waves: Vec<String>,
        /// Success rate a wave needs before the next starts.
        #[arg(long)]
        success_percent: Option<i64>,
        /// Halt when more than this share of started jobs failed.
        #[arg(long)]
        failure_percent: Option<i64>,
        /// A device silent this long in one phase counts as failed.
        #[arg(long)]
        step_timeout: Option<i64>,
        /// when_idle (default: never during a recording) or force.
        #[arg(long)]
        install_policy: Option<String>,
        /// when_idle (default), force or manual.
        #[arg(long)]
        reboot_policy: Option<String>,
        #[arg(long)]
        allow_downgrade: bool,
        /// Follow the rollout until it settles.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List rollouts.
    Rollouts {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a rollout; --watch follows it until it completes, halts or is aborted.
    Show {
        id: String,
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Pause a rollout: no new jobs, running ones go on.
    Pause {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Resume a paused or halted rollout.
    Resume {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Abort a rollout: unstarted jobs are skipped, started ones withdrawn (unless installing).
    Abort {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum OperatorCmd {
    /// Add an operator (or replace its token and role); prints the token once.
    Add {
        name: String,
        /// viewer (reads), operator (also commands, desired config, tags) or admin (also
        /// bundles and rollouts).
        #[arg(long)]
        role: String,
    },
    /// Revoke an operator's token.
    Revoke { name: String },
    /// List operators.
    List,
}

#[derive(Subcommand)]
enum PkiCmd {
    /// Create the CA, the broker's server certificate and the fleet's client certificate.
    Init {
        #[arg(long, default_value = "/data/fleet/pki")]
        dir: PathBuf,
        /// A name for this CA (e.g. the company).
        #[arg(long, default_value = "r58")]
        name: String,
        /// DNS names / IP addresses of the broker (repeat).
        #[arg(long = "broker-name", required = true)]
        broker_names: Vec<String>,
    },
    /// Issue a device certificate as a bundle for the box.
    IssueDevice {
        id: String,
        #[arg(long, default_value = "/data/fleet/pki")]
        dir: PathBuf,
        #[arg(long, default_value = "/data/fleet/bundles")]
        out: PathBuf,
        /// The broker URL the device connects to.
        #[arg(long)]
        broker: String,
    },
    /// Issue an operator's client certificate (for MQTT tools; name it in the broker's
    /// `plugin_opt_services` to give it the fleet's topics).
    IssueOperator {
        name: String,
        #[arg(long, default_value = "/data/fleet/pki")]
        dir: PathBuf,
        #[arg(long, default_value = "/data/fleet/bundles")]
        out: PathBuf,
    },
    /// Shut a device (or operator) certificate out of the broker: disconnected and refused
    /// within a second, without restarting the broker.
    Revoke {
        cn: String,
        #[arg(long, default_value = "/data/fleet/pki")]
        dir: PathBuf,
        /// Also put the list in the broker's certificate folder (see `pki deploy`).
        #[arg(long)]
        broker_certs: Option<PathBuf>,
    },
    /// The deployment's step before the services start: the CA and the service
    /// certificates if there are none yet (never replaced), then the broker's and the
    /// fleet's certificates (and the revocation list) copied into folders of their own, so
    /// that no running service mounts the CA key.
    Deploy {
        #[arg(long, default_value = "/data/fleet/pki")]
        dir: PathBuf,
        /// A name for the CA, when one is made.
        #[arg(long, default_value = "r58")]
        name: String,
        /// DNS names / IP addresses of the broker, when the CA is made (repeat).
        #[arg(long = "broker-name")]
        broker_names: Vec<String>,
        #[arg(long)]
        broker_certs: PathBuf,
        #[arg(long)]
        fleet_certs: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Show desired and reported configuration.
    Get {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Set desired settings (dotted r58.toml keys), merged into the current ones.
    Set {
        id: String,
        /// key=value pairs, e.g. recorder.segment_seconds=10
        #[arg(required = true)]
        pairs: Vec<String>,
        /// Replace all desired settings instead of merging.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

fn load_config(path: &Option<PathBuf>) -> Result<FleetConfig, FleetError> {
    let paths = r58_config::ConfigPaths::resolve(path.clone(), CONFIG_ENV, DEFAULT_CONFIG);
    Ok(r58_config::load_from(&paths)?.config)
}

fn runtime() -> Result<tokio::runtime::Runtime, FleetError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(FleetError::Serve)
}

fn print(remote: &Remote, v: &Value, human: impl FnOnce(&Value) -> String) {
    if remote.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        print!("{}", human(v));
    }
}

fn run(cli: Cli) -> Result<ExitCode, FleetError> {
    match cli.cmd {
        Cmd::Serve => {
            let cfg = load_config(&cli.config)?;
            runtime()?.block_on(r58_fleet::serve(cfg))?;
        }
        Cmd::CheckConfig => {
            load_config(&cli.config)?;
            println!("config ok");
        }
        Cmd::Operator(op) => {
            let cfg = load_config(&cli.config)?;
            runtime()?.block_on(async {
                let db = r58_fleet::db::Db::open(&cfg.db.url, 2).await?;
                match op {
                    OperatorCmd::Add { name, role } => {
                        if name.is_empty() || name.len() > 64 {
                            return Err(FleetError::Usage("operator name: 1-64 characters".into()));
                        }
                        let role = r58_fleet::db::Role::parse(&role).ok_or_else(|| {
                            FleetError::Usage(format!(
                                "--role {role:?}: one of viewer, operator, admin"
                            ))
                        })?;
                        let token = r58_fleet::devices::new_token()?;
                        db.put_operator(&name, &r58_fleet::devices::token_hash(&token), role)
                            .await?;
                        println!("{token}");
                    }
                    OperatorCmd::Revoke { name } => {
                        if !db.revoke_operator(&name).await? {
                            return Err(FleetError::Usage(format!("no operator {name:?}")));
                        }
                    }
                    OperatorCmd::List => {
                        let rows: Vec<Vec<String>> = db
                            .operators()
                            .await?
                            .into_iter()
                            .map(|o| {
                                vec![
                                    o.name,
                                    o.role.as_str().into(),
                                    if o.revoked { "revoked" } else { "active" }.into(),
                                ]
                            })
                            .collect();
                        print!("{}", cli::table(&["OPERATOR", "ROLE", "STATE"], &rows));
                    }
                }
                Ok::<_, FleetError>(())
            })?;
        }
        Cmd::Pki(p) => match p {
            PkiCmd::Init {
                dir,
                name,
                broker_names,
            } => {
                r58_fleet::pki::Ca::init(&dir, &name, &broker_names)?;
                println!("CA, broker and fleet certificates in {}", dir.display());
            }
            PkiCmd::IssueDevice {
                id,
                dir,
                out,
                broker,
            } => {
                let bundle = r58_fleet::pki::Ca::open(&dir)?.issue_device(&id, &out, &broker)?;
                println!("{}", bundle.display());
            }
            PkiCmd::IssueOperator { name, dir, out } => {
                std::fs::create_dir_all(&out).map_err(|source| FleetError::Write {
                    path: out.clone(),
                    source,
                })?;
                let (c, _) = r58_fleet::pki::Ca::open(&dir)?.issue(
                    &out.join(format!("operator-{name}")),
                    &name,
                    &[],
                    false,
                )?;
                println!("{}", c.display());
            }
            PkiCmd::Deploy {
                dir,
                name,
                broker_names,
                broker_certs,
                fleet_certs,
            } => {
                if !dir.join("ca.key").exists() {
                    r58_fleet::pki::Ca::init(&dir, &name, &broker_names)?;
                    println!(
                        "CA, broker and fleet certificates made in {}",
                        dir.display()
                    );
                }
                r58_fleet::pki::export(&dir, &broker_certs, &fleet_certs)?;
                println!(
                    "broker certificates in {}, fleet certificates in {}",
                    broker_certs.display(),
                    fleet_certs.display()
                );
            }
            PkiCmd::Revoke {
                cn,
                dir,
                broker_certs,
            } => {
                if r58_fleet::pki::revoke(&dir, &cn, broker_certs.as_deref())? {
                    println!("{cn} revoked ({})", dir.join("revoked").display());
                } else {
                    println!("{cn} was revoked already");
                }
            }
        },
        Cmd::DeviceToken { id } => {
            let cfg = load_config(&cli.config)?;
            println!("{}", r58_fleet::issue_device_token(&cfg.devices.file, &id)?);
        }
        Cmd::DeviceRevoke { id } => {
            let cfg = load_config(&cli.config)?;
            if !r58_fleet::revoke_device(&cfg.devices.file, &id)? {
                return Err(FleetError::Usage(format!("no device {id:?}")));
            }
        }
        Cmd::Devices {
            remote,
            status,
            tag,
            version,
        } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let mut query = Vec::new();
            for (k, v) in [("status", status), ("tag", tag), ("version", version)] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", urlencode(&v)));
                }
            }
            let v = c.get(&format!("/api/v1/devices?{}", query.join("&")))?;
            print(&remote, &v, |v| {
                cli::devices_table(
                    v["devices"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                )
            });
        }
        Cmd::Device { id, remote } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let v = c.get(&format!("/api/v1/devices/{}", urlencode(&id)))?;
            print(&remote, &v, |v| {
                let mut out = cli::devices_table(std::slice::from_ref(&v["device"]));
                let rows: Vec<Vec<String>> = v["commands"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        ["id", "name", "state", "progress", "message"]
                            .iter()
                            .map(|k| {
                                c[*k]
                                    .as_str()
                                    .map_or_else(|| c[*k].to_string(), str::to_string)
                            })
                            .collect()
                    })
                    .collect();
                out += "\n";
                out += &cli::table(&["COMMAND", "NAME", "STATE", "PROGRESS", "MESSAGE"], &rows);
                out
            });
        }
        Cmd::Watch { id, remote, stream } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let mut since: Option<i64> = None;
            loop {
                let mut path = format!("/api/v1/devices/{}/telemetry?limit=100", urlencode(&id));
                if let Some(s) = &stream {
                    path += &format!("&stream={}", urlencode(s));
                }
                if let Some(t) = since {
                    path += &format!("&since={t}");
                }
                for t in c.get(&path)?["telemetry"].as_array().into_iter().flatten() {
                    since = t["ts"].as_i64().or(since);
                    if remote.json {
                        println!("{t}");
                    } else {
                        let ts = t["ts"]
                            .as_i64()
                            .and_then(chrono::DateTime::from_timestamp_millis)
                            .map(|d| d.format("%H:%M:%S").to_string());
                        println!(
                            "{} {:<9} {}",
                            ts.unwrap_or_default(),
                            t["stream"].as_str().unwrap_or("?"),
                            t["data"]
                        );
                    }
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        Cmd::Cmd {
            id,
            name,
            args,
            timeout,
            no_wait,
            remote,
        } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let args = Value::Object(cli::parse_pairs(&args)?);
            let cmd = cli::command(&c, &id, &name, args, timeout, !no_wait, remote.json)?;
            print(&remote, &cmd, |c| {
                let mut s = format!(
                    "{} {}",
                    c["id"].as_str().unwrap_or("?"),
                    c["state"].as_str().unwrap_or("?")
                );
                if let Some(m) = c["message"].as_str() {
                    s += &format!(": {m}");
                }
                if !c["result"].is_null() {
                    s += &format!(
                        "\n{}",
                        serde_json::to_string_pretty(&c["result"]).unwrap_or_default()
                    );
                }
                s + "\n"
            });
            if !no_wait && cmd["state"] != "succeeded" {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Ota(o) => return ota(o),
        Cmd::Config(ConfigCmd::Get { id, remote }) => {
            let c = Client::new(&remote.server, &remote.token)?;
            let v = c.get(&format!("/api/v1/devices/{}/config", urlencode(&id)))?;
            print(&remote, &v, |v| {
                serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
            });
        }
        Cmd::Config(ConfigCmd::Set {
            id,
            pairs,
            replace,
            remote,
        }) => {
            let c = Client::new(&remote.server, &remote.token)?;
            let path = format!("/api/v1/devices/{}/config", urlencode(&id));
            let mut settings = if replace {
                serde_json::Map::new()
            } else {
                c.get(&path)?["desired"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            };
            settings.extend(cli::parse_pairs(&pairs)?);
            let v = c.put(&path, &json!({ "settings": settings }))?;
            print(&remote, &v, |v| {
                format!("desired version {}\n", v["desired_version"])
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Shows a rollout, following it with --watch; the exit code says whether it completed.
fn show_rollout(
    c: &Client,
    remote: &Remote,
    id: &str,
    watch: bool,
) -> Result<ExitCode, FleetError> {
    use std::io::Write;
    let path = format!("/api/v1/rollouts/{}", urlencode(id));
    let mut v = c.get(&path)?;
    if watch {
        let mut last = String::new();
        while !r58_fleet::cli_ota::is_settled(&v) {
            let view = r58_fleet::cli_ota::rollout_view(&v);
            if !remote.json && view != last {
                // Redraw in place on a terminal.
                eprint!("\x1b[2J\x1b[H{view}");
                let _ = std::io::stderr().flush();
                last = view;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
            v = c.get(&path)?;
        }
    }
    print(remote, &v, r58_fleet::cli_ota::rollout_view);
    let failed = watch && v["rollout"]["state"] != "completed";
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn ota(cmd: OtaCmd) -> Result<ExitCode, FleetError> {
    match cmd {
        OtaCmd::Publish { bundle, remote } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let v = c.upload("/api/v1/bundles", &bundle)?;
            print(&remote, &v, |v| {
                let b = &v["bundle"];
                format!(
                    "published {} ({}) sha256 {}{}\n",
                    b["version"].as_str().unwrap_or("?"),
                    b["compatible"].as_str().unwrap_or("?"),
                    b["sha256"].as_str().unwrap_or("?"),
                    if b["signature_checked"] == true {
                        ""
                    } else {
                        " — signature NOT checked (no ota.keyring on the server)"
                    }
                )
            });
        }
        OtaCmd::Bundles { remote } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let v = c.get("/api/v1/bundles")?;
            print(&remote, &v, r58_fleet::cli_ota::bundles_table);
        }
        OtaCmd::Rollout {
            version,
            all,
            tag,
            devices,
            waves,
            success_percent,
            failure_percent,
            step_timeout,
            install_policy,
            reboot_policy,
            allow_downgrade,
            watch,
            remote,
        } => {
            let target = match (all, tag, devices.is_empty()) {
                (true, _, _) => json!({ "all": true }),
                (false, Some(t), _) => json!({ "tag": t }),
                (false, None, false) => json!({ "devices": devices }),
                (false, None, true) => {
                    return Err(FleetError::Usage(
                        "say which devices: --all, --tag T or --devices a,b".into(),
                    ))
                }
            };
            let mut body =
                json!({ "version": version, "target": target, "allow_downgrade": allow_downgrade });
            if !waves.is_empty() {
                body["waves"] = json!(waves);
            }
            for (k, v) in [
                ("success_percent", success_percent),
                ("failure_percent", failure_percent),
                ("step_timeout_seconds", step_timeout),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            for (k, v) in [
                ("install_policy", install_policy),
                ("reboot_policy", reboot_policy),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            let c = Client::new(&remote.server, &remote.token)?;
            let v = c.post("/api/v1/rollouts", &body)?;
            let id = v["rollout"]["id"].as_str().unwrap_or_default().to_string();
            if !remote.json {
                eprintln!("rollout {id} started");
            }
            return show_rollout(&c, &remote, &id, watch);
        }
        OtaCmd::Rollouts { remote } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let v = c.get("/api/v1/rollouts")?;
            print(&remote, &v, |v| {
                let rows: Vec<Vec<String>> = v["rollouts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let phases = &r["summary"]["phases"];
                        vec![
                            r["rollout"]["id"].as_str().unwrap_or("?").to_string(),
                            r["rollout"]["version"].as_str().unwrap_or("?").to_string(),
                            r["rollout"]["state"].as_str().unwrap_or("?").to_string(),
                            r["summary"]["devices"].to_string(),
                            phases["succeeded"].as_u64().unwrap_or(0).to_string(),
                            phases["failed"].as_u64().unwrap_or(0).to_string(),
                        ]
                    })
                    .collect();
                cli::table(
                    &[
                        "ROLLOUT",
                        "VERSION",
                        "STATE",
                        "DEVICES",
                        "SUCCEEDED",
                        "FAILED",
                    ],
                    &rows,
                )
            });
        }
        OtaCmd::Show { id, watch, remote } => {
            let c = Client::new(&remote.server, &remote.token)?;
            return show_rollout(&c, &remote, &id, watch);
        }
        OtaCmd::Pause { id, remote } => return steer(&id, "pause", &remote),
        OtaCmd::Resume { id, remote } => return steer(&id, "resume", &remote),
        OtaCmd::Abort { id, remote } => return steer(&id, "abort", &remote),
    }
    Ok(ExitCode::SUCCESS)
}

fn steer(id: &str, action: &str, remote: &Remote) -> Result<ExitCode, FleetError> {
    let c = Client::new(&remote.server, &remote.token)?;
    let v = c.post(
        &format!("/api/v1/rollouts/{}/{action}", urlencode(id)),
        &json!({}),
    )?;
    print(remote, &v, r58_fleet::cli_ota::rollout_view);
    Ok(ExitCode::SUCCESS)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    r58_log::init("r58-fleet");
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("r58-fleet: {}", r58_log::error_chain(&e));
            if matches!(e, FleetError::Usage(_)) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
