//! Runs a parsed command: server-side ones against the configured database, the others
//! through the fleet's REST API.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value};

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

fn print(remote: &Remote, v: &Value, human: impl FnOnce(&Value) -> String) {
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
            let mut query = Vec::new();
            for (k, v) in [("status", status), ("tag", tag), ("version", version)] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", urlencode(&v)));
                }
            }
            let v = c.get(&format!("/api/v1/devices?{}", query.join("&")))?;
            print(&remote, &v, |v| {
                client::devices_table(
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
                let mut out = client::devices_table(std::slice::from_ref(&v["device"]));
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
                out += &client::table(&["COMMAND", "NAME", "STATE", "PROGRESS", "MESSAGE"], &rows);
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
            let args = Value::Object(client::parse_pairs(&args)?);
            let cmd = client::command(&c, &id, &name, args, timeout, !no_wait, remote.json)?;
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
            settings.extend(client::parse_pairs(&pairs)?);
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
        while !super::ota_view::is_settled(&v) {
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
    print(remote, &v, super::ota_view::rollout_view);
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
