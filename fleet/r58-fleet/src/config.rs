//! `r58-fleet` configuration: the same layered loader as the devices (built-in defaults →
//! the main file → `conf.d/*.toml`), main file from `--config` or `R58_FLEET_CONFIG`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use r58_config::Validate;

pub const CONFIG_ENV: &str = "R58_FLEET_CONFIG";
pub const DEFAULT_CONFIG: &str = "/etc/r58-fleet/fleet.toml";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    pub http: HttpConfig,
    pub db: DbConfig,
    pub mqtt: MqttConfig,
    pub devices: DevicesConfig,
    pub turn: TurnConfig,
    pub ota: OtaConfig,
    pub relay: RelayConfig,
}

/// The remote-access relay (docs/remote-access.md): boxes dial it with their device
/// certificate and the fleet reaches their local ports through it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Where boxes dial (mutual TLS); absent: no relay.
    pub listen: Option<SocketAddr>,
    /// The relay's certificate and key (the name boxes dial must be in it).
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The CA whose device certificates the relay accepts: the fleet's PKI.
    pub ca_file: PathBuf,
    /// Streams open at once per box.
    pub max_streams: u32,
    /// The port of the box's web UI (the recorder's API).
    pub ui_port: u16,
    /// Requests on the public guest path (`/g/<device>/…`) one source address may make per
    /// minute (a burst of that many, then refilled evenly).
    pub guest_per_address_per_minute: u32,
    /// Requests on the public guest path to one device per minute, from all addresses.
    pub guest_per_device_per_minute: u32,
    /// Take the source address from the last `X-Forwarded-For` entry (the fleet behind a
    /// reverse proxy such as Coolify's, which adds it); otherwise the TCP peer.
    pub trust_forwarded_for: bool,
    /// The longest a stream through a tunnel stays open.
    pub session_max_seconds: u32,
    /// A stream through a tunnel with no byte either way for this long is closed.
    pub session_idle_seconds: u32,
    /// How long the path an admin gets when opening a box's UI (`/b/<grant>/`) leads there.
    pub ui_grant_seconds: u32,
    /// The fleet's address as guests on the internet reach it (`https://fleet.example.com`):
    /// an invite made through the fleet (`guest.invite`) answers with its public link,
    /// `<public_url>/g/<device>/guest_join?invite=…`. Empty: no public link.
    pub public_url: String,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            listen: None,
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            ca_file: PathBuf::new(),
            max_streams: 64,
            ui_port: 8000,
            guest_per_address_per_minute: 60,
            guest_per_device_per_minute: 600,
            trust_forwarded_for: false,
            session_max_seconds: 14_400,
            session_idle_seconds: 900,
            ui_grant_seconds: 28_800,
            public_url: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtaConfig {
    /// Published bundles, stored by SHA-256 (`<sha256>.raucb`).
    pub dir: PathBuf,
    /// The devices' RAUC keyring: every published bundle's signature is checked against it.
    /// Empty: bundles are published unchecked (development only; the devices still check).
    pub keyring: PathBuf,
    /// The base URL devices download bundles from (`<public_url>/ota/bundles/<sha256>.raucb`),
    /// e.g. `https://fleet.example.com`. Empty: `http://<http.listen>`.
    pub public_url: String,
    /// The `rauc` program, which reads bundles for `ota publish`.
    pub rauc: PathBuf,
    /// How often the replica holding the rollout lease drives the rollouts.
    pub tick_ms: u32,
}

impl Default for OtaConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/data/fleet/ota"),
            keyring: PathBuf::new(),
            public_url: String::new(),
            rauc: PathBuf::from("rauc"),
            tick_ms: 2000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbConfig {
    /// `sqlite:///path/fleet.db` (created if missing) or `postgres://user:pass@host/db`.
    pub url: String,
    /// Telemetry older than this is deleted (the inventory keeps the latest figures).
    pub telemetry_retention_hours: u32,
    pub max_connections: u32,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            url: "sqlite:///data/fleet/fleet.db".into(),
            telemetry_retention_hours: 48,
            max_connections: 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtts://host:port`; empty: no broker (the API serves what the database holds).
    pub broker: String,
    /// This replica's MQTT client id (unique per replica, stable across restarts so the
    /// broker keeps its session); empty: `r58-fleet-<hostname>`.
    pub client_id: String,
    /// Replicas with the same group share the ingest (MQTT 5 shared subscriptions).
    pub share_group: String,
    pub ca_file: PathBuf,
    /// The fleet's client certificate (CN `fleet`, a service identity of the broker) and key.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub keepalive_seconds: u16,
    /// How long a command may wait for the device before it expires.
    pub command_timeout_seconds: u32,
    /// How often the retained `state` and `twin/reported` documents are read again (besides on
    /// every connection), so that a message the broker dropped for this replica (its queue
    /// full) heals without a reconnect; 0: only on connection.
    pub reread_retained_seconds: u32,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            broker: String::new(),
            client_id: String::new(),
            share_group: "r58-fleet".into(),
            ca_file: PathBuf::from("/etc/r58-fleet/pki/ca.pem"),
            cert_file: PathBuf::from("/etc/r58-fleet/pki/fleet.crt"),
            key_file: PathBuf::from("/etc/r58-fleet/pki/fleet.key"),
            // Generous: under a backlog the broker's PINGRESP queues behind the messages.
            keepalive_seconds: 60,
            command_timeout_seconds: 300,
            reread_retained_seconds: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevicesConfig {
    /// The device registry: ids with the SHA-256 of their bearer tokens.
    pub file: PathBuf,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        Self {
            file: PathBuf::from("/data/fleet/devices.toml"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnBackend {
    /// No TURN service: `POST /turn/credentials` answers 503.
    None,
    /// coturn with `use-auth-secret` (TURN REST API credentials).
    Coturn,
    /// Cloudflare Realtime TURN; the key stays on this server.
    Cloudflare,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    pub backend: TurnBackend,
    /// Lifetime of minted credentials; a device may ask for less, never more.
    pub ttl_seconds: u32,
    pub timeout_ms: u32,
    /// Requests a minute each device may make on average (devices cache what they get),
    /// up to `device_burst` at once; over it: 429. 0: no limit.
    pub device_rate_per_minute: u32,
    pub device_burst: u32,
    pub coturn: CoturnConfig,
    pub cloudflare: CloudflareConfig,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            backend: TurnBackend::None,
            ttl_seconds: 3600,
            timeout_ms: 5000,
            device_rate_per_minute: 30,
            device_burst: 10,
            coturn: CoturnConfig::default(),
            cloudflare: CloudflareConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoturnConfig {
    /// File holding coturn's `static-auth-secret`.
    pub secret_file: PathBuf,
    /// TURN/STUN URLs handed to browsers, e.g. `turn:turn.example.com:3478?transport=udp`.
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudflareConfig {
    pub key_id: String,
    pub api_token_file: PathBuf,
    pub api_base: String,
}

impl Default for CloudflareConfig {
    fn default() -> Self {
        Self {
            key_id: String::new(),
            api_token_file: PathBuf::new(),
            api_base: r58_turn::CLOUDFLARE_API.into(),
        }
    }
}

impl Validate for FleetConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !(60..=172_800).contains(&self.turn.ttl_seconds) {
            out.push((
                "turn.ttl_seconds".into(),
                format!("{} is out of range 60..=172800", self.turn.ttl_seconds),
            ));
        }
        if !(self.db.url.starts_with("sqlite:")
            || self.db.url.starts_with("postgres://")
            || self.db.url.starts_with("postgresql://"))
        {
            out.push((
                "db.url".into(),
                format!("{:?} is neither sqlite:… nor postgres://…", self.db.url),
            ));
        }
        if self.relay.listen.is_some() {
            for (key, path) in [
                ("relay.cert_file", &self.relay.cert_file),
                ("relay.key_file", &self.relay.key_file),
                ("relay.ca_file", &self.relay.ca_file),
            ] {
                if path.as_os_str().is_empty() {
                    out.push((key.into(), "needed when relay.listen is set".into()));
                }
            }
        }
        for (key, v) in [
            ("relay.max_streams", self.relay.max_streams),
            (
                "relay.guest_per_address_per_minute",
                self.relay.guest_per_address_per_minute,
            ),
            (
                "relay.guest_per_device_per_minute",
                self.relay.guest_per_device_per_minute,
            ),
            ("relay.session_max_seconds", self.relay.session_max_seconds),
            (
                "relay.session_idle_seconds",
                self.relay.session_idle_seconds,
            ),
        ] {
            if v == 0 {
                out.push((key.into(), "must be at least 1".into()));
            }
        }
        if self.db.max_connections == 0 {
            out.push(("db.max_connections".into(), "must be at least 1".into()));
        }
        if !self.mqtt.broker.is_empty() {
            if let Err(e) = r58_tls::parse_broker(&self.mqtt.broker) {
                out.push(("mqtt.broker".into(), e.to_string()));
            }
        }
        if self.mqtt.share_group.is_empty() || self.mqtt.share_group.contains(['/', '+', '#']) {
            out.push((
                "mqtt.share_group".into(),
                "must be a non-empty name without / + #".into(),
            ));
        }
        if self.mqtt.command_timeout_seconds < 5 {
            out.push((
                "mqtt.command_timeout_seconds".into(),
                "must be at least 5".into(),
            ));
        }
        if !self.ota.public_url.is_empty()
            && !(self.ota.public_url.starts_with("https://")
                || self.ota.public_url.starts_with("http://"))
        {
            out.push((
                "ota.public_url".into(),
                format!("{:?} is not an http(s):// URL", self.ota.public_url),
            ));
        }
        if !self.relay.public_url.is_empty()
            && !(self.relay.public_url.starts_with("https://")
                || self.relay.public_url.starts_with("http://"))
        {
            out.push((
                "relay.public_url".into(),
                format!("{:?} is not an http(s):// URL", self.relay.public_url),
            ));
        }
        if !(200..=60_000).contains(&self.ota.tick_ms) {
            out.push((
                "ota.tick_ms".into(),
                format!("{} is out of range 200..=60000", self.ota.tick_ms),
            ));
        }
        match self.turn.backend {
            TurnBackend::None => {}
            TurnBackend::Coturn => {
                if self.turn.coturn.secret_file.as_os_str().is_empty() {
                    out.push((
                        "turn.coturn.secret_file".into(),
                        "the coturn backend needs a secret file".into(),
                    ));
                }
                if self.turn.coturn.urls.is_empty() {
                    out.push((
                        "turn.coturn.urls".into(),
                        "the coturn backend needs at least one URL".into(),
                    ));
                }
                for u in &self.turn.coturn.urls {
                    if !(u.starts_with("turn:")
                        || u.starts_with("turns:")
                        || u.starts_with("stun:"))
                    {
                        out.push((
                            "turn.coturn.urls".into(),
                            format!("{u:?} is not a turn:, turns: or stun: URL"),
                        ));
                    }
                }
            }
            TurnBackend::Cloudflare => {
                if self.turn.cloudflare.key_id.is_empty() {
                    out.push((
                        "turn.cloudflare.key_id".into(),
                        "the cloudflare backend needs a key id".into(),
                    ));
                }
                if self.turn.cloudflare.api_token_file.as_os_str().is_empty() {
                    out.push((
                        "turn.cloudflare.api_token_file".into(),
                        "the cloudflare backend needs a token file".into(),
                    ));
                }
            }
        }
        out
    }
}
