//! Runs a parsed command: server-side ones against the configured database, the others
//! through the fleet's REST API.

use std::path::PathBuf;
use std::process::ExitCode;

use r58_fleet_api::paths::{self, DeviceQuery, RolloutAction, TelemetryQuery};
use r58_fleet_api::{
    BundleAnswer, BundleList, CreateRollout, DesiredVersion, DeviceConfig, DeviceDetail,
    DeviceList, RemoteAccessSwitch, RolloutDetail, RolloutList, SendCommand, SetConfig,
    SetRemoteAccess, Target, TelemetryPage,
};
use serde::Serialize;
use serde_json::Value;

use super::args::{Cli, Cmd, ConfigCmd, OperatorCmd, OtaCmd, PkiCmd, Remote};
use super::client::{self, Client};
use crate::config::{FleetConfig, CONFIG_ENV, DEFAULT_CONFIG};
use crate::FleetError;

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

fn print<T: Serialize>(remote: &Remote, v: &T, human: impl FnOnce(&T) -> String) {
    if remote.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        print!("{}", human(v));
    }
}

pub(crate) fn run(cli: Cli) -> Result<ExitCode, FleetError> {
    match cli.cmd {
        Cmd::Serve => {
            let cfg = load_config(&cli.config)?;
            runtime()?.block_on(crate::serve(cfg))?;
        }
        Cmd::CheckConfig => {
            load_config(&cli.config)?;
            println!("config ok");
        }
        Cmd::Operator(op) => {
            let cfg = load_config(&cli.config)?;
            runtime()?.block_on(async {
                let db = crate::db::Db::open(&cfg.db.url, 2).await?;
                match op {
                    OperatorCmd::Add { name, role } => {
                        if name.is_empty() || name.len() > 64 {
                            return Err(FleetError::Usage("operator name: 1-64 characters".into()));
                        }
                        let role = crate::db::Role::parse(&role).ok_or_else(|| {
                            FleetError::Usage(format!(
                                "--role {role:?}: one of viewer, operator, admin"
                            ))
                        })?;
                        let token = crate::devices::new_token()?;
                        db.put_operator(&name, &crate::devices::token_hash(&token), role)
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
                        print!("{}", client::table(&["OPERATOR", "ROLE", "STATE"], &rows));
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
                crate::pki::Ca::init(&dir, &name, &broker_names)?;
                println!("CA, broker and fleet certificates in {}", dir.display());
            }
            PkiCmd::IssueDevice {
                id,
                dir,
                out,
                broker,
            } => {
                let bundle = crate::pki::Ca::open(&dir)?.issue_device(&id, &out, &broker)?;
                println!("{}", bundle.display());
            }
            PkiCmd::IssueOperator { name, dir, out } => {
                std::fs::create_dir_all(&out).map_err(|source| FleetError::Write {
                    path: out.clone(),
                    source,
                })?;
                let (c, _) = crate::pki::Ca::open(&dir)?.issue(
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
                    crate::pki::Ca::init(&dir, &name, &broker_names)?;
                    println!(
                        "CA, broker and fleet certificates made in {}",
                        dir.display()
                    );
                }
                if !dir.join("relay.crt").exists() {
                    // A CA made before the relay existed.
                    crate::pki::Ca::open(&dir)?.issue_relay(&broker_names)?;
                    println!("relay certificate made in {}", dir.display());
                }
                crate::pki::export(&dir, &broker_certs, &fleet_certs)?;
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
                if crate::pki::revoke(&dir, &cn, broker_certs.as_deref())? {
                    println!("{cn} revoked ({})", dir.join("revoked").display());
                } else {
                    println!("{cn} was revoked already");
                }
            }
        },
        Cmd::DeviceToken { id } => {
            let cfg = load_config(&cli.config)?;
            println!("{}", crate::issue_device_token(&cfg.devices.file, &id)?);
        }
        Cmd::DeviceRevoke { id } => {
            let cfg = load_config(&cli.config)?;
            if !crate::revoke_device(&cfg.devices.file, &id)? {
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
            let q = DeviceQuery {
                status,
                tag,
                version,
                q: None,
            };
            let v: DeviceList = c.get(&paths::devices(&q))?;
            print(&remote, &v, |v| client::devices_table(&v.devices));
        }
        Cmd::Device { id, remote } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let v: DeviceDetail = c.get(&paths::device(&id))?;
            print(&remote, &v, |v| {
                let mut out = client::devices_table(std::slice::from_ref(&v.device));
                let rows: Vec<Vec<String>> = v
                    .commands
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.clone(),
                            c.name.clone(),
                            c.state.clone(),
                            c.progress.to_string(),
                            c.message.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                out += "\n";
                out += &client::table(&["COMMAND", "NAME", "STATE", "PROGRESS", "MESSAGE"], &rows);
                out
            });
        }
        Cmd::Tunnel {
            device,
            local_port,
            box_port,
            bind,
            remote,
        } => {
            super::tunnel::forward(&remote, &device, (bind, local_port).into(), box_port)?;
        }
        Cmd::RemoteAccess { set, remote } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let v: RemoteAccessSwitch = match set.as_deref() {
                Some(word) => c.put(
                    &paths::remote_access(),
                    &SetRemoteAccess {
                        enabled: word == "on",
                    },
                )?,
                None => c.get(&paths::remote_access())?,
            };
            print(&remote, &v, |v| {
                let state = if v.enabled { "on" } else { "off" };
                match &v.changed_by {
                    Some(by) => format!("remote access: {state} (set by {by})\n"),
                    None => format!("remote access: {state} (never switched)\n"),
                }
            });
        }
        Cmd::Watch { id, remote, stream } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let mut q = TelemetryQuery {
                stream,
                since: None,
                limit: Some(100),
            };
            loop {
                let page: TelemetryPage = c.get(&paths::device_telemetry(&id, &q))?;
                for t in page.telemetry {
                    q.since = Some(t.ts);
                    if remote.json {
                        println!("{}", serde_json::to_string(&t).unwrap_or_default());
                    } else {
                        let ts = chrono::DateTime::from_timestamp_millis(t.ts)
                            .map(|d| d.format("%H:%M:%S").to_string());
                        println!("{} {:<9} {}", ts.unwrap_or_default(), t.stream, t.data);
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
            let send = SendCommand {
                name,
                args: Value::Object(client::parse_pairs(&args)?),
                timeout_seconds: timeout,
            };
            let cmd = client::command(&c, &id, &send, !no_wait, remote.json)?;
            print(&remote, &cmd, |c| {
                let mut s = format!("{} {}", c.id, c.state);
                if let Some(m) = &c.message {
                    s += &format!(": {m}");
                }
                if let Some(r) = c.result.as_ref().filter(|r| !r.is_null()) {
                    s += &format!("\n{}", serde_json::to_string_pretty(r).unwrap_or_default());
                }
                s + "\n"
            });
            if !no_wait && cmd.state != "succeeded" {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Ota(o) => return ota(o),
        Cmd::Config(ConfigCmd::Get { id, remote }) => {
            let c = Client::new(&remote.server, &remote.token)?;
            let v: DeviceConfig = c.get(&paths::device_config(&id))?;
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
            let path = paths::device_config(&id);
            let mut settings = if replace {
                serde_json::Map::new()
            } else {
                c.get::<DeviceConfig>(&path)?
                    .desired
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            };
            settings.extend(client::parse_pairs(&pairs)?);
            let v: DesiredVersion = c.put(&path, &SetConfig { settings })?;
            print(&remote, &v, |v| {
                format!("desired version {}\n", v.desired_version)
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
    let path = paths::rollout(id);
    let mut v: RolloutDetail = c.get(&path)?;
    if watch {
        let mut last = String::new();
        while !v.rollout.is_settled() {
            let view = super::ota_view::rollout_view(&v);
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
    print(remote, &v, super::ota_view::rollout_view);
    let failed = watch && v.rollout.state != "completed";
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `--install-policy`/`--reboot-policy` as the wire names them.
fn policy(flag: &str, v: Option<String>) -> Result<r58_proto::Policy, FleetError> {
    match v {
        None => Ok(r58_proto::Policy::default()),
        Some(s) => serde_json::from_value(Value::String(s.clone())).map_err(|_| {
            FleetError::Usage(format!("--{flag} {s:?}: one of when_idle, force, manual"))
        }),
    }
}

fn ota(cmd: OtaCmd) -> Result<ExitCode, FleetError> {
    match cmd {
        OtaCmd::Publish { bundle, remote } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let v: BundleAnswer = c.upload(&paths::bundles(), &bundle)?;
            print(&remote, &v, |v| {
                let b = &v.bundle;
                format!(
                    "published {} ({}) sha256 {}{}\n",
                    b.version,
                    b.compatible,
                    b.sha256,
                    if b.signature_checked {
                        ""
                    } else {
                        " — signature NOT checked (no ota.keyring on the server)"
                    }
                )
            });
        }
        OtaCmd::Bundles { remote } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let v: BundleList = c.get(&paths::bundles())?;
            print(&remote, &v, super::ota_view::bundles_table);
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
                (true, _, _) => Target::All(true),
                (false, Some(t), _) => Target::Tag(t),
                (false, None, false) => Target::Devices(devices),
                (false, None, true) => {
                    return Err(FleetError::Usage(
                        "say which devices: --all, --tag T or --devices a,b".into(),
                    ))
                }
            };
            let body = CreateRollout {
                waves: (!waves.is_empty()).then_some(waves),
                success_percent,
                failure_percent,
                step_timeout_seconds: step_timeout,
                install_policy: policy("install-policy", install_policy)?,
                reboot_policy: policy("reboot-policy", reboot_policy)?,
                allow_downgrade,
                ..CreateRollout::new(&version, target)
            };
            let c = Client::new(&remote.server, &remote.token)?;
            let v: RolloutDetail = c.post(&paths::rollouts(), &body)?;
            let id = v.rollout.id;
            if !remote.json {
                eprintln!("rollout {id} started");
            }
            return show_rollout(&c, &remote, &id, watch);
        }
        OtaCmd::Rollouts { remote } => {
            let c = Client::new(&remote.server, &remote.token)?;
            let v: RolloutList = c.get(&paths::rollouts())?;
            print(&remote, &v, |v| {
                let rows: Vec<Vec<String>> = v
                    .rollouts
                    .iter()
                    .map(|r| {
                        vec![
                            r.rollout.id.clone(),
                            r.rollout.version.clone(),
                            r.rollout.state.clone(),
                            r.summary.devices.to_string(),
                            r.summary.count("succeeded").to_string(),
                            r.summary.count("failed").to_string(),
                        ]
                    })
                    .collect();
                client::table(
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
        OtaCmd::Pause { id, remote } => return steer(&id, RolloutAction::Pause, &remote),
        OtaCmd::Resume { id, remote } => return steer(&id, RolloutAction::Resume, &remote),
        OtaCmd::Abort { id, remote } => return steer(&id, RolloutAction::Abort, &remote),
    }
    Ok(ExitCode::SUCCESS)
}

fn steer(id: &str, action: RolloutAction, remote: &Remote) -> Result<ExitCode, FleetError> {
    let c = Client::new(&remote.server, &remote.token)?;
    let v: RolloutDetail = c.post_empty(&paths::rollout_action(id, action))?;
    print(remote, &v, super::ota_view::rollout_view);
    Ok(ExitCode::SUCCESS)
}
