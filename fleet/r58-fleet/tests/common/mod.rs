//! Harness of the fleet tests: a PKI made by `r58-fleet pki`, the real Mosquitto with the
//! production config, PostgreSQL from Debian started in a temp folder, `r58-fleet serve`
//! processes, and the real agent.
#![allow(dead_code, clippy::unwrap_used)]

pub mod ota;
pub mod ota_env;
pub mod tunnel_box;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use r58_fleet_api::paths;
pub use r58_testkit::*;
use serde_json::Value;

pub fn fleet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_r58-fleet"))
}

/// Runs `r58-fleet ARGS`, panics on failure, returns stdout.
pub fn fleet_cli(args: &[&str]) -> String {
    let out = Command::new(fleet_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "r58-fleet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A PKI made with `r58-fleet pki init` (CA, broker, fleet) in `dir/pki`.
pub fn fleet_pki(dir: &Path) -> PathBuf {
    let pki = dir.join("pki");
    fleet_cli(&[
        "pki",
        "init",
        "--dir",
        pki.to_str().unwrap(),
        "--name",
        "test",
        "--broker-name",
        "localhost",
        "--broker-name",
        "127.0.0.1",
    ]);
    pki
}

/// `r58-fleet serve` with its config in `dir`.
pub struct Fleet {
    daemon: Daemon,
    pub port: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Fleet {
    pub fn start(dir: &Path, pki: &Path, broker_port: u16, db_url: &str, client_id: &str) -> Self {
        Self::start_with(dir, pki, broker_port, db_url, client_id, "")
    }

    /// With `extra` appended to the configuration (more sections, e.g. `[ota]`).
    pub fn start_with(
        dir: &Path,
        pki: &Path,
        broker_port: u16,
        db_url: &str,
        client_id: &str,
        extra: &str,
    ) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let config = dir.join("fleet.toml");
        std::fs::write(
            &config,
            format!(
                "[http]\nlisten = \"127.0.0.1:{port}\"\n[db]\nurl = \"{db_url}\"\n[devices]\nfile = \"{devices}\"\n\
                 [mqtt]\nbroker = \"mqtts://127.0.0.1:{broker_port}\"\nclient_id = \"{client_id}\"\n\
                 ca_file = \"{pki}/ca.pem\"\ncert_file = \"{pki}/fleet.crt\"\nkey_file = \"{pki}/fleet.key\"\nkeepalive_seconds = 5\n{extra}",
                devices = dir.join("devices.toml").display(),
                pki = pki.display(),
            ),
        )
        .unwrap();
        let log = dir.join("fleet.log");
        let daemon = Daemon::new("r58-fleet", fleet_bin(), &log).args([
            std::ffi::OsStr::new("--config"),
            config.as_os_str(),
            std::ffi::OsStr::new("serve"),
        ]);
        let mut f = Self {
            daemon,
            port,
            dir: dir.to_path_buf(),
            config,
            log,
        };
        f.spawn();
        f
    }

    pub fn spawn(&mut self) {
        self.daemon.spawn();
        let url = self.url("/healthz");
        wait_until(Duration::from_secs(20), "fleet /healthz", || {
            reqwest::blocking::get(&url)
                .ok()
                .filter(|r| r.status().as_u16() == 200)
                .map(|_| ())
        });
    }

    /// The running service's process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid().expect("fleet running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `r58-fleet operator add NAME --role admin` against this fleet's database.
    pub fn operator(&self, name: &str) -> String {
        self.operator_as(name, "admin")
    }

    /// `r58-fleet operator add NAME --role ROLE`: the token.
    pub fn operator_as(&self, name: &str, role: &str) -> String {
        fleet_cli(&[
            "--config",
            self.config.to_str().unwrap(),
            "operator",
            "add",
            name,
            "--role",
            role,
        ])
        .trim()
        .to_string()
    }

    pub fn log_text(&self) -> String {
        self.daemon.log_text()
    }

    /// Sends a signal to the running service (`STOP` freezes it, `CONT` resumes it).
    pub fn signal(&self, sig: &str) {
        self.daemon.signal(sig);
    }

    pub fn kill9(&mut self) {
        self.daemon.kill9();
    }
}

/// An HTTP call with an operator token: (status, JSON body or Null).
pub fn call(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let c = reqwest::blocking::Client::new();
    let mut r = c.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `(ca, cert, key)` of a device bundle made by `r58-fleet pki issue-device`.
pub fn device_files(
    dir: &Path,
    pki: &Path,
    broker_port: u16,
    id: &str,
) -> (PathBuf, PathBuf, PathBuf) {
    let out = dir.join("bundles");
    let bundle = fleet_cli(&[
        "pki",
        "issue-device",
        id,
        "--dir",
        pki.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--broker",
        &format!("mqtts://127.0.0.1:{broker_port}"),
    ]);
    let b = PathBuf::from(bundle.trim());
    (
        b.join("fleet-ca.pem"),
        b.join("device.crt"),
        b.join("device.key"),
    )
}

/// The real agent as device `id`, with the bundle `r58-fleet pki issue-device` wrote.
pub fn agent_with_bundle(dir: &Path, pki: &Path, broker_port: u16, id: &str) -> AgentProc {
    let (ca, cert, key) = device_files(dir, pki, broker_port, id);
    AgentProc::start_with(&dir.join(id), &ca, &cert, &key, broker_port, id, "")
}

/// A call that must succeed, its answer read as the API's wire type `T` (`()` for none).
fn answer<T: serde::de::DeserializeOwned>(what: &str, (code, v): (u16, Value)) -> T {
    assert!((200..300).contains(&code), "{what}: HTTP {code}: {v}");
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{what}: the answer: {e}"))
}

/// `GET path` as an operator; must succeed.
pub fn api_get<T: serde::de::DeserializeOwned>(f: &Fleet, token: &str, path: &str) -> T {
    answer(
        &format!("GET {path}"),
        call("GET", &f.url(path), Some(token), None),
    )
}

/// `method path` with a wire-type body as an operator; must succeed.
pub fn api_send<B: serde::Serialize, T: serde::de::DeserializeOwned>(
    f: &Fleet,
    token: &str,
    method: &str,
    path: &str,
    body: &B,
) -> T {
    let body = serde_json::to_value(body).unwrap();
    answer(
        &format!("{method} {path}"),
        call(method, &f.url(path), Some(token), Some(body)),
    )
}

/// `GET /api/v1/devices/{id}` (None when not 200).
pub fn device(f: &Fleet, token: &str, id: &str) -> Option<r58_fleet_api::DeviceDetail> {
    let (code, v) = call("GET", &f.url(&paths::device(id)), Some(token), None);
    (code == 200).then(|| serde_json::from_value(v).unwrap())
}

/// Waits (30 s) for the device to satisfy `pred`.
pub fn wait_device(
    f: &Fleet,
    token: &str,
    id: &str,
    what: &str,
    pred: impl Fn(&r58_fleet_api::Device) -> bool,
) -> r58_fleet_api::DeviceDetail {
    wait_until(Duration::from_secs(30), what, || {
        device(f, token, id).filter(|d| pred(&d.device))
    })
}

/// Waits (20 s) for a command's final state.
pub fn wait_command(f: &Fleet, token: &str, id: &str) -> r58_fleet_api::Command {
    wait_until(Duration::from_secs(20), "a final command state", || {
        let a: r58_fleet_api::CommandAnswer = api_get(f, token, &paths::command(id));
        a.command.is_final().then_some(a.command)
    })
}

/// An MQTT client with the fleet's identity (the broker lets it write any device topic).
pub fn publisher(pki: &std::path::Path, port: u16, client_id: &str) -> rumqttc::Client {
    let mut opts = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_transport(tls_files(
        &pki.join("ca.pem"),
        &pki.join("fleet.crt"),
        &pki.join("fleet.key"),
    ));
    opts.set_keep_alive(Duration::from_secs(5));
    // Up to the broker's message size limit.
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut conn) = rumqttc::Client::new(opts, 10_000);
    std::thread::spawn(move || for _ in conn.iter() {});
    client
}

/// A telemetry document.
pub fn sample(seq: u64) -> String {
    serde_json::json!({ "seq": seq, "ts": chrono::Utc::now(), "data": { "cpu_percent": 1.0 } })
        .to_string()
}

/// A device's `state` document: online on slot A, firmware 0.1.0.
pub fn state_doc(session: u64) -> String {
    serde_json::json!({ "status": "online", "firmware_version": "0.1.0", "booted_slot": "A", "ip_addresses": [],
            "uptime_s": 1, "session": session, "ts": chrono::Utc::now() })
    .to_string()
}

/// The `[relay]` section of a fleet's configuration: the relay on `relay_port` with the
/// broker's certificate of `pki`, then the lines of `extra`.
pub fn relay_section(pki: &Path, relay_port: u16, extra: &str) -> String {
    format!(
        "[relay]\nlisten = \"127.0.0.1:{relay_port}\"\nca_file = \"{p}/ca.pem\"\n\
         cert_file = \"{p}/relay.crt\"\nkey_file = \"{p}/relay.key\"\n{extra}",
        p = pki.display()
    )
}

/// Turns the fleet-wide remote-access switch on or off as the admin `token`; the switch as
/// the fleet answers it.
pub fn switch_remote_access(f: &Fleet, token: &str, on: bool) -> Value {
    let (code, body) = call(
        "PUT",
        &f.url("/api/v1/remote-access"),
        Some(token),
        Some(serde_json::json!({ "enabled": on })),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["enabled"], on, "{body}");
    body
}

/// Waits until `device`'s tunnel is the one the fleet lists as open.
pub fn wait_tunnel(f: &Fleet, token: &str, device: &str) {
    wait_until(Duration::from_secs(20), "the box's tunnel", || {
        let (code, list) = call("GET", &f.url("/api/v1/tunnels"), Some(token), None);
        (code == 200 && list["devices"] == serde_json::json!([device])).then_some(())
    });
}

/// The box's side of a tunnel: the `r58-tunnel` dialer the agent runs, to the relay on
/// `relay_port` with the device files `files` (CA, certificate, key), opening `ports`.
pub fn box_dialer(
    relay_port: u16,
    files: &(PathBuf, PathBuf, PathBuf),
    ports: Vec<u16>,
) -> r58_tunnel::dial::Dialer {
    r58_tunnel::dial::Dialer {
        address: format!("127.0.0.1:{relay_port}"),
        server_name: "localhost".into(),
        path: "/relay".into(),
        tls: r58_tls::client_config(&files.0, &files.1, &files.2).unwrap(),
        policy: r58_tunnel::device::Policy {
            ports,
            max_streams: 16,
            activity: Default::default(),
        },
        max_backoff: Duration::from_secs(1),
    }
}

/// `r58-fleet serve` in `dir/fleet` on SQLite in `dir`, with no broker and the `[relay]`
/// section `relay` ([`relay_section`]).
pub fn relay_fleet(dir: &Path, pki: &Path, client_id: &str, relay: &str) -> Fleet {
    let db = format!("sqlite://{}", dir.join("fleet.db").display());
    Fleet::start_with(&dir.join("fleet"), pki, free_port(), &db, client_id, relay)
}
