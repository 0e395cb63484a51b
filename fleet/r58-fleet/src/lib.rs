//! The R58 fleet service: inventory, commands and desired config over the devices' MQTT
//! protocol, an operator REST API with a dashboard, the TURN credential API for devices,
//! and the `r58-fleet` CLI (client commands, operator tokens, a small PKI).

pub mod api;
pub mod cli;
pub mod config;
mod dashboard;
pub mod db;
pub mod devices;
pub mod error;
pub mod mqtt;
pub mod ota;
pub mod pki;
mod republish;
pub mod tunnel_sessions;
pub mod turn_api;

use std::sync::Arc;

use mqtt::ingest;
use std::time::Duration;

pub use error::FleetError;

/// Opens the database, connects to the broker (when configured) and serves until SIGTERM
/// or Ctrl-C.
pub async fn serve(cfg: config::FleetConfig) -> Result<(), FleetError> {
    let turn = Arc::new(turn_api::TurnApi::from_config(&cfg)?);
    let db = db::Db::open(&cfg.db.url, cfg.db.max_connections).await?;
    let stats = Arc::new(ingest::IngestStats::default());
    let publisher_up = Arc::new(tokio::sync::Notify::new());
    let mqtt = if cfg.mqtt.broker.is_empty() {
        tracing::warn!("no [mqtt] broker configured: devices cannot be reached");
        None
    } else {
        Some(ingest::start(
            &cfg.mqtt,
            db.clone(),
            stats.clone(),
            publisher_up.clone(),
        )?)
    };
    let (events, _) = tokio::sync::broadcast::channel(1024);
    let guest_base = api::guest_path::public_base(&cfg.relay);
    tokio::spawn(api::events::poll(
        db.clone(),
        events.clone(),
        Duration::from_secs(1),
        guest_base.clone(),
    ));
    tokio::spawn(prune(db.clone(), cfg.db.telemetry_retention_hours));
    if db.backend == db::Backend::Sqlite {
        tokio::spawn(checkpoint(db.clone()));
    }
    let withheld = ota::bundle::Withheld::default();
    tokio::spawn(ota::bundle::audit(
        db.clone(),
        cfg.ota.dir.clone(),
        withheld.clone(),
        Duration::from_secs(600),
    ));
    if let Some(client) = &mqtt {
        let base = if cfg.ota.public_url.is_empty() {
            format!("http://{}", cfg.http.listen)
        } else {
            cfg.ota.public_url.clone()
        };
        let driver = ota::rollout::Driver {
            db: db.clone(),
            mqtt: client.clone(),
            bundle_base: format!("{}/ota/bundles/", base.trim_end_matches('/')),
            holder: format!("{}-{}", ingest::client_id(&cfg.mqtt), std::process::id()),
        };
        tokio::spawn(republish::run(
            db.clone(),
            client.clone(),
            Some(driver.clone()),
            publisher_up,
        ));
        tokio::spawn(driver.run(Duration::from_millis(u64::from(cfg.ota.tick_ms))));
    }
    let relay = match cfg.relay.listen {
        Some(addr) => Some(start_relay(&cfg.relay, addr).await?),
        None => None,
    };
    let state = api::AppState {
        db: db.clone(),
        mqtt,
        stats,
        events,
        command_timeout_s: cfg.mqtt.command_timeout_seconds,
        ota: Arc::new(cfg.ota.clone()),
        withheld,
        relay,
        ui_port: cfg.relay.ui_port,
        ui_grant: Duration::from_secs(cfg.relay.ui_grant_seconds.into()),
        guest_base,
        guest_host: api::guest_path::guest_host(&cfg.relay),
        guest_limits: Arc::new(api::guest_path::GuestLimits::new(&cfg.relay)),
        sessions: tunnel_sessions::Sessions::new(
            db.clone(),
            tunnel_sessions::Limits {
                max_duration: Duration::from_secs(cfg.relay.session_max_seconds.into()),
                idle: Duration::from_secs(cfg.relay.session_idle_seconds.into()),
            },
        ),
    };
    tokio::spawn(tunnel_sessions::close_stale(db.clone()));
    tokio::spawn(tunnel_sessions::follow_requests(state.sessions.clone()));
    let addr = cfg.http.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| FleetError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| FleetError::Bind { addr, source })?;
    tracing::info!(%bound, backend = ?cfg.turn.backend, broker = %cfg.mqtt.broker, "r58-fleet serving");
    r58_http::serve(
        listener,
        api::router(state, turn),
        HTTP_LIMITS,
        r58_systemd::shutdown_signal(),
    )
    .await;
    Ok(())
}

/// Listens for the boxes' remote-access tunnels on `addr`.
async fn start_relay(
    cfg: &config::RelayConfig,
    addr: std::net::SocketAddr,
) -> Result<Arc<r58_tunnel::listen::Relay>, FleetError> {
    let tls = r58_tls::server_config(&cfg.ca_file, &cfg.cert_file, &cfg.key_file)
        .map_err(FleetError::RelayTls)?;
    let relay = r58_tunnel::listen::Relay::new(tls, cfg.max_streams as usize);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| FleetError::RelayBind { addr, source })?;
    tracing::info!(%addr, "relay for remote access listening");
    tokio::spawn(relay.clone().run(listener));
    Ok(relay)
}

/// The API's bounds on the internet: devices asking for TURN credentials, operators'
/// dashboards (each holds an event stream) and tools (r58_http).
const HTTP_LIMITS: r58_http::Limits = r58_http::Limits::untrusted(4096);

/// Checkpoints a SQLite WAL every second, off the ingest's path (`Db::checkpoint`).
async fn checkpoint(db: db::Db) {
    let mut failing = false;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match db.checkpoint().await {
            Ok(()) => failing = false,
            // Once per failure spell: the automatic checkpoint still bounds the WAL.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %r58_log::error_chain(&e), "checkpointing the database");
            }
            Err(_) => {}
        }
    }
}

/// Deletes telemetry and rejected messages older than the retention, every ten minutes.
async fn prune(db: db::Db, hours: u32) {
    loop {
        let before = db::now_ms() - i64::from(hours) * 3_600_000;
        match db.prune_telemetry(before).await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "old telemetry pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %r58_log::error_chain(&e), "pruning telemetry"),
        }
        if let Err(e) = db.prune_rejected(before).await {
            tracing::warn!(error = %r58_log::error_chain(&e), "pruning rejected messages");
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
}

/// Adds a device or rotates its token; returns the new token (shown once, stored hashed).
pub fn issue_device_token(devices_file: &std::path::Path, id: &str) -> Result<String, FleetError> {
    if !r58_proto::assignable_device_id(id) {
        return Err(FleetError::BadDeviceId(id.to_string()));
    }
    let mut devices = devices::Devices::load(devices_file)?;
    let token = devices::new_token()?;
    devices.devices.insert(
        id.to_string(),
        devices::Device {
            token_sha256: devices::token_hash(&token),
            revoked: false,
        },
    );
    devices.save(devices_file)?;
    Ok(token)
}

/// Revokes a device's token; false when the device is unknown.
pub fn revoke_device(devices_file: &std::path::Path, id: &str) -> Result<bool, FleetError> {
    let mut devices = devices::Devices::load(devices_file)?;
    let Some(d) = devices.devices.get_mut(id) else {
        return Ok(false);
    };
    d.revoked = true;
    devices.save(devices_file)?;
    Ok(true)
}
