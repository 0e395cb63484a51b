//! Test and benchmark harness shared by the agent's tests and benchmarks: a test PKI
//! (rcgen), the real Mosquitto with the production configuration and authorization plugin (paths and port
//! rewritten), and an MQTT client with any identity that records what it receives.
#![allow(clippy::unwrap_used)]

pub mod browser;
pub mod daemon;
pub mod postgres;
pub mod rauc;

pub use daemon::Daemon;
pub use postgres::Postgres;

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The broker's authorization plugin (fleet/deploy/mosquitto/plugin), built on first use.
pub fn broker_plugin() -> PathBuf {
    let out = repo().join("target/broker-plugin/r58_auth.so");
    let status = Command::new(repo().join("fleet/deploy/mosquitto/plugin/build"))
        .arg(&out)
        .status()
        .expect("fleet/deploy/mosquitto/plugin/build");
    assert!(status.success(), "building the broker plugin failed");
    out
}

pub struct Pki {
    pub dir: PathBuf,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, "R58 test CA");
        let ca_cert = p.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        let pki = Self {
            dir: dir.to_path_buf(),
            ca_cert,
            ca_key,
        };
        pki.issue("broker", "localhost", true);
        pki
    }

    /// Writes `<name>.crt` and `<name>.key` for a certificate with CN `cn`.
    pub fn issue(&self, name: &str, cn: &str, server: bool) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(if server {
            vec!["localhost".to_string()]
        } else {
            vec![]
        })
        .unwrap();
        if server {
            p.subject_alt_names
                .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        }
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        let (c, k) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

/// The production broker configuration (fleet/deploy/mosquitto/mosquitto.conf) made local:
/// the listener on 127.0.0.1:`port`, certificates (and the revocation list) from `certs`
/// (`ca.pem`, `broker.crt`, `broker.key` as `r58-fleet pki init` makes them), the
/// authorization plugin built into target/broker-plugin, persistence in `data`, the log to
/// `log_file` (stderr when None), running as `user`. The tests, `scripts/run`, the benches
/// and the virtual R58's host side all write their broker configuration with it
/// (`r58-broker-conf`).
pub struct LocalBroker {
    pub port: u16,
    pub certs: PathBuf,
    pub data: PathBuf,
    pub log_file: Option<PathBuf>,
    pub user: String,
}

impl LocalBroker {
    /// The configuration text, with `changes` (`(line, replacement)`, each line present in
    /// the production file) applied first.
    pub fn config(&self, changes: &[(&str, &str)]) -> Result<String, String> {
        let path = repo().join("fleet/deploy/mosquitto/mosquitto.conf");
        let mut text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        for (line, new) in changes {
            if !text.contains(line) {
                return Err(format!("the production broker config has no {line:?}"));
            }
            text = text.replace(line, new);
        }
        let log = match &self.log_file {
            Some(f) => format!("log_dest file {}", f.display()),
            None => "log_dest stderr".into(),
        };
        let text = text
            .replace(
                "listener 8883",
                &format!("listener {} 127.0.0.1", self.port),
            )
            .replace(
                "/mosquitto/config/certs/",
                &format!("{}/", self.certs.display()),
            )
            .replace("/mosquitto/data/", &format!("{}/", self.data.display()))
            .replace(
                "/usr/lib/mosquitto/r58_auth.so",
                &broker_plugin().display().to_string(),
            )
            .replace("log_dest stdout", &log)
            + &format!("\nuser {}\n", self.user);
        if !text.contains(&format!("listener {} 127.0.0.1", self.port)) || !text.contains(&log) {
            return Err("the production broker config changed shape (listener, log_dest)".into());
        }
        Ok(text)
    }
}

pub struct Broker {
    daemon: Daemon,
    pub port: u16,
    pub log: PathBuf,
}

impl Broker {
    /// Mosquitto with fleet/deploy/mosquitto/mosquitto.conf and its authorization plugin,
    /// certificates (and the revocation list) from `pki`.
    pub fn start(dir: &Path, pki: &Pki) -> Self {
        Self::start_with_certs(dir, &pki.dir)
    }

    /// The same, with `ca.pem`, `broker.crt` and `broker.key` from `certs` (e.g. made by
    /// `r58-fleet pki init`).
    pub fn start_with_certs(dir: &Path, certs: &Path) -> Self {
        Self::start_tuned(dir, certs, &[])
    }

    /// The same, with production settings replaced: `(line, replacement)` pairs (each line
    /// must be in the production config).
    pub fn start_tuned(dir: &Path, certs: &Path, changes: &[(&str, &str)]) -> Self {
        let port = free_port();
        let data = dir.join("mosquitto-data");
        std::fs::create_dir_all(&data).unwrap();
        let local = LocalBroker {
            port,
            certs: certs.to_path_buf(),
            data,
            log_file: None,
            user: "root".into(),
        };
        let conf_text = local.config(changes).unwrap_or_else(|e| panic!("{e}"));
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, conf_text).unwrap();
        let log = dir.join("mosquitto.log");
        let mut b = Self {
            daemon: Daemon::new("mosquitto", "mosquitto", &log)
                .args([OsStr::new("-c"), conf.as_os_str()]),
            port,
            log,
        };
        b.spawn();
        b
    }

    pub fn spawn(&mut self) {
        self.daemon.spawn();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        self.daemon.terminate(Duration::from_secs(10));
    }
}

pub fn tls(pki: &Pki, cert: &Path, key: &Path) -> Transport {
    tls_files(&pki.ca(), cert, key)
}

pub fn tls_files(ca: &Path, cert: &Path, key: &Path) -> Transport {
    Transport::tls_with_config(TlsConfiguration::Rustls(
        r58_tls::client_config(ca, cert, key).unwrap(),
    ))
}

/// An MQTT client (fleet identity by default) that records every message it receives.
pub struct Observer {
    pub client: Client,
    pub messages: Arc<Mutex<Vec<(String, Vec<u8>, bool)>>>,
    arrived: Arc<Condvar>,
}

impl Observer {
    pub fn connect(pki: &Pki, port: u16, name: &str, cn: &str, subscribe: &[&str]) -> Self {
        let (c, k) = pki.issue(name, cn, false);
        Self::connect_with(tls(pki, &c, &k), port, name, subscribe)
    }

    /// With certificate files (e.g. the fleet's from `r58-fleet pki init`).
    pub fn connect_files(
        ca: &Path,
        cert: &Path,
        key: &Path,
        port: u16,
        name: &str,
        subscribe: &[&str],
    ) -> Self {
        Self::connect_with(tls_files(ca, cert, key), port, name, subscribe)
    }

    fn connect_with(transport: Transport, port: u16, name: &str, subscribe: &[&str]) -> Self {
        let mut opts = MqttOptions::new(name, "127.0.0.1", port);
        opts.set_transport(transport);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_clean_session(false);
        // As the fleet's ingest takes them (rumqttc's default is 10 KiB).
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = Client::new(opts, 1000);
        // Like the agent: no Nagle delay between back-to-back packets (publish, then acks).
        let mut net = conn.eventloop.network_options();
        net.set_tcp_nodelay(true);
        conn.eventloop.set_network_options(net);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Condvar::new());
        let m = messages.clone();
        let a = arrived.clone();
        let topics: Vec<String> = subscribe.iter().map(|s| s.to_string()).collect();
        let sub = client.clone();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Incoming::ConnAck(ack))) if !ack.session_present => {
                        for t in &topics {
                            let _ = sub.try_subscribe(t.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        m.lock()
                            .unwrap()
                            .push((p.topic.clone(), p.payload.to_vec(), p.retain));
                        a.notify_all();
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        Self {
            client,
            messages,
            arrived,
        }
    }

    pub fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.into())
            .unwrap();
    }

    /// JSON payloads received on `topic`.
    pub fn json_on(&self, topic: &str) -> Vec<serde_json::Value> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _)| t == topic)
            .filter_map(|(_, p, _)| serde_json::from_slice(p).ok())
            .collect()
    }

    pub fn count_on_prefix(&self, prefix: &str) -> usize {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _)| t.starts_with(prefix))
            .count()
    }

    /// Waits for a JSON message on `topic` for which `f` holds (woken on each arrival).
    pub fn wait_json(
        &self,
        topic: &str,
        timeout: Duration,
        what: &str,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        let mut guard = self.messages.lock().unwrap();
        loop {
            for (t, p, _) in guard.iter().skip(seen) {
                if t == topic {
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(p) {
                        if f(&v) {
                            return v;
                        }
                    }
                }
            }
            // Earlier messages were already checked; a later match may refer to them again
            // only through `f`, which is pure, so start where this pass ended.
            seen = guard.len();
            let now = Instant::now();
            if now >= deadline {
                drop(guard);
                panic!(
                    "timed out waiting for {what} on {topic}; got {:?}",
                    self.json_on(topic)
                );
            }
            guard = self.arrived.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }
}

/// Polls `f` until it returns Some; panics naming `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A binary of the workspace, next to the running test (`target/<profile>/NAME`); the
/// workspace must be built first (scripts/test does).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} missing: build the workspace first (cargo build --workspace)",
        p.display()
    );
    p
}

pub struct AgentProc {
    pub daemon: Daemon,
    pub dir: PathBuf,
    pub config: PathBuf,
}

/// Writes fake `systemctl`, `journalctl` and `rauc` into `<dir>/bin` that log their arguments.
/// `systemctl is-active U` answers `failed` for the units listed in `<dir>/inactive-units`;
/// `journalctl` prints `<dir>/journal` when it exists, else two lines.
pub fn fake_system_tools(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = dir.join("system-calls.log");
    for tool in ["systemctl", "journalctl", "rauc"] {
        let script = format!(
            "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nif [ {tool} = journalctl ]; then if [ -f '{journal}' ]; then cat '{journal}'; else echo 'line one'; echo 'line two'; fi; fi\n\
             if [ {tool} = systemctl ] && [ \"$1\" = is-active ]; then\n\
               if grep -qx \"$2\" '{inactive}' 2>/dev/null; then echo failed; exit 3; fi; echo active; fi\nexit 0\n",
            calls.display(),
            inactive = dir.join("inactive-units").display(),
            journal = dir.join("journal").display()
        );
        let p = bin.join(tool);
        std::fs::write(&p, script).unwrap();
        Command::new("chmod").arg("+x").arg(&p).status().unwrap();
    }
    bin
}

impl AgentProc {
    pub fn start(dir: &Path, pki: &Pki, port: u16, device: &str, extra: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = pki.issue(device, device, false);
        Self::start_with(dir, &pki.ca(), &cert, &key, port, device, extra)
    }

    /// The agent with the given TLS files (e.g. a bundle of `r58-fleet pki issue-device`).
    pub fn start_with(
        dir: &Path,
        ca: &Path,
        cert: &Path,
        key: &Path,
        port: u16,
        device: &str,
        extra: &str,
    ) -> Self {
        let mut a = Self::configure(dir, ca, cert, key, port, device, extra);
        a.spawn();
        a
    }

    /// Writes the configuration and the stand-in tools without starting the agent.
    pub fn configure(
        dir: &Path,
        ca: &Path,
        cert: &Path,
        key: &Path,
        port: u16,
        device: &str,
        extra: &str,
    ) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("r58.toml");
        std::fs::write(
            &config,
            format!(
                "[recorder]\ndata_dir = \"{data}\"\n[agent]\ndevice_id = \"{device}\"\nbroker = \"mqtts://127.0.0.1:{port}\"\n\
                 ca_file = \"{ca}\"\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\nstate_dir = \"{state}\"\n\
                 keepalive_seconds = 5\nreconnect_max_seconds = 2\ntelemetry_interval_seconds = 1\n\
                 recorder_api = \"http://127.0.0.1:{dead}\"\n[ota]\ndir = \"{ota}\"\n\
                 # No boot health check runs beside a test agent unless the test starts one.\n\
                 boot_check_wait_seconds = 0\n",
                data = dir.display(),
                ca = ca.display(),
                cert = cert.display(),
                key = key.display(),
                state = dir.join("state").display(),
                dead = free_port(),
                ota = dir.join("ota").display(),
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/10-test.toml"), extra).unwrap();
        fake_system_tools(dir);
        let mut daemon = Daemon::new(
            "r58-agent",
            workspace_bin("r58-agent"),
            dir.join("agent.log"),
        )
        .args([OsStr::new("--config"), config.as_os_str()]);
        let path = format!(
            "{}:{}",
            dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        daemon.set_env("PATH", &path);
        Self {
            daemon,
            dir: dir.to_path_buf(),
            config,
        }
    }

    pub fn spawn(&mut self) {
        self.daemon.spawn();
    }

    pub fn kill9(&mut self) {
        self.daemon.kill9();
    }

    pub fn terminate(&mut self) -> Option<i32> {
        self.daemon.terminate(Duration::from_secs(10))
    }

    pub fn alive(&mut self) -> bool {
        self.daemon.alive()
    }

    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    pub fn log_text(&self) -> String {
        self.daemon.log_text()
    }

    pub fn system_calls(&self) -> String {
        std::fs::read_to_string(self.dir.join("system-calls.log")).unwrap_or_default()
    }
}

/// Starts the real recorder (built by the workspace) with one small test input, `extra` as a
/// conf.d drop-in; returns it and its API port.
pub fn start_recorder(dir: &Path, extra: &str) -> (Daemon, u16) {
    let bin = workspace_bin("r58-recorder");
    let api = free_port();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("r58.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{api}\"\n[recorder]\ndata_dir = \"{d}/data\"\n\
             [hls]\nenabled = false\ndir = \"{d}/hls\"\n[rtsp]\nenabled = false\n[storage]\nmin_free_mib = 1\n\
             [encoder]\nx264_preset = \"ultrafast\"\n\
             [inputs.cam1]\nkind = \"test\"\nwidth = 320\nheight = 240\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(dir.join("conf.d/10-test.toml"), extra).unwrap();
    let config = dir.join("r58.toml");
    let mut d = Daemon::new("r58-recorder", bin, dir.join("recorder.log"))
        .args([OsStr::new("--config"), config.as_os_str()]);
    d.spawn();
    (d, api)
}

/// The resident memory of process `pid`, in KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// xorshift64*, seeded (not zero): the same sequence for the same seed, so a generated run
/// can be repeated.
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// coturn (Debian `coturn`) on loopback with the TURN REST scheme (`use-auth-secret`):
/// relays on 127.0.0.1, no TLS, its log in `dir/turnserver.log`.
pub struct Coturn {
    pub daemon: Daemon,
    pub port: u16,
}

impl Coturn {
    pub fn start(dir: &Path, secret: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = loop {
            let p = free_port();
            if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
                break p;
            }
        };
        let relay_lo = 40000 + (port % 200) * 100;
        let mut daemon =
            Daemon::new("turnserver", "turnserver", dir.join("turnserver.log")).args([
                "-n".to_string(),
                "--listening-ip=127.0.0.1".into(),
                "--relay-ip=127.0.0.1".into(),
                "--use-auth-secret".into(),
                "--realm=r58.test".into(),
                "--no-tls".into(),
                "--no-dtls".into(),
                "--no-cli".into(),
                "--allow-loopback-peers".into(),
                "--simple-log".into(),
                "--log-file=stdout".into(),
                format!("--listening-port={port}"),
                format!("--min-port={relay_lo}"),
                format!("--max-port={}", relay_lo + 99),
                format!("--static-auth-secret={secret}"),
                format!("--userdb={}", dir.join("turndb").display()),
                format!("--pidfile={}", dir.join("turn.pid").display()),
            ]);
        daemon.spawn();
        // It listens on TCP and UDP alike: TCP tells when it is up.
        wait_until(Duration::from_secs(10), "coturn listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        });
        Self { daemon, port }
    }
}
