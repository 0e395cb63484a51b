//! The operator REST API (`/api/v1`, JSON; "REST API" in docs/fleet.md), the dashboard, metrics and
//! health. Every route but `/healthz`, the login page, the static dashboard files, bundle
//! downloads and the public guest path (`/g/<device>/…`, guest_path.rs) needs an operator
//! token.

pub mod auth;
mod box_ui;
mod commands;
mod devices;
pub mod error;
pub mod events;
pub mod guest_path;
mod metrics;
mod ota;
mod rate;
mod tunnel_port;
mod tunnels;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get, post, put};
use axum::{middleware, Json, Router};
use r58_fleet_api::Health;
use tokio::sync::broadcast;

use crate::db::Db;
use crate::mqtt::ingest::IngestStats;
use crate::turn_api::TurnApi;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub mqtt: Option<crate::mqtt::publisher::Publisher>,
    pub stats: Arc<IngestStats>,
    pub events: broadcast::Sender<events::Change>,
    pub command_timeout_s: u32,
    pub ota: Arc<crate::config::OtaConfig>,
    pub withheld: crate::ota::bundle::Withheld,
    /// The remote-access relay, when configured.
    pub relay: Option<Arc<r58_tunnel::listen::Relay>>,
    /// The port of the boxes' web UI.
    pub ui_port: u16,
    /// How long an admin's path to a box's UI lasts (`relay.ui_grant_seconds`).
    pub ui_grant: std::time::Duration,
    /// Where guests on the internet reach a box (`relay.public_url`), for the links of
    /// invites made through the fleet.
    pub guest_base: Option<String>,
    /// That address's host name: it serves the guest path only (`guest_path::separate_hosts`).
    pub guest_host: Option<String>,
    /// The rate limits of the public guest path.
    pub guest_limits: Arc<guest_path::GuestLimits>,
    /// The streams through tunnels this process holds, audited and limited.
    pub sessions: Arc<crate::tunnel_sessions::Sessions>,
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    let db = s.db.ping().await;
    let broker = s.mqtt.is_none() || s.stats.connected.load(Ordering::Relaxed) == 1;
    let body = Health {
        status: if db.is_ok() && broker {
            "ok"
        } else {
            "degraded"
        }
        .into(),
        database: db
            .as_ref()
            .map(|_| "ok".to_string())
            .unwrap_or_else(|e| r58_log::error_chain(e)),
        broker: if s.mqtt.is_none() {
            "not configured"
        } else if broker {
            "connected"
        } else {
            "disconnected"
        }
        .into(),
    };
    (
        if db.is_ok() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}

pub fn router(state: AppState, turn: Arc<TurnApi>) -> Router {
    let api = Router::new()
        .route("/api/v1/devices", get(devices::list))
        .route("/api/v1/devices/:id", get(devices::one))
        .route("/api/v1/devices/:id/telemetry", get(devices::telemetry))
        .route("/api/v1/devices/:id/tags", put(devices::set_tags))
        .route(
            "/api/v1/devices/:id/config",
            get(devices::get_config).put(devices::set_config),
        )
        .route(
            "/api/v1/devices/:id/commands",
            get(commands::of_device).post(commands::send),
        )
        .route("/api/v1/commands", post(commands::send_many))
        .route("/api/v1/tunnels", get(tunnels::list))
        .route(
            "/api/v1/remote-access",
            get(tunnels::remote_access).put(tunnels::set_remote_access),
        )
        .route("/api/v1/tunnel-sessions", get(tunnels::sessions))
        .route(
            "/api/v1/tunnel-sessions/:id",
            axum::routing::delete(tunnels::close_session),
        )
        .route(auth::DEVICE_PORT_ROUTE, get(tunnel_port::port))
        .route(auth::BOX_UI_ROOT, get(box_ui::open_root))
        .route(auth::BOX_UI_ROUTE, get(box_ui::open_path))
        .route("/api/v1/commands/:id", get(commands::one))
        .route("/api/v1/events", get(events::stream))
        .route(
            "/api/v1/whoami",
            get(
                |axum::Extension(op): axum::Extension<auth::Operator>,
                 axum::Extension(role): axum::Extension<auth::OperatorRole>| async move {
                    Json(r58_fleet_api::Session {
                        operator: op.0,
                        role: role.0,
                    })
                },
            ),
        )
        .route(
            "/api/v1/bundles",
            get(ota::bundles)
                .post(ota::publish)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/api/v1/rollouts", get(ota::list).post(ota::create))
        .route("/api/v1/rollouts/:id", get(ota::one))
        .route("/api/v1/rollouts/:id/:action", post(ota::action))
        .route("/metrics", get(metrics::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require));
    let public = Router::new()
        .route("/healthz", get(healthz))
        .route("/ota/bundles/:file", get(ota::download))
        .route("/api/v1/session", post(auth::login).delete(auth::logout))
        .route("/g/:id/*path", any(guest_path::guest))
        .route("/b/:grant/", any(box_ui::serve_root))
        .route("/b/:grant/*path", any(box_ui::serve_path))
        .merge(crate::dashboard::routes());
    let turn = Router::new()
        .route("/turn/credentials", post(crate::turn_api::credentials))
        .with_state(turn);
    api.merge(public)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guest_path::separate_hosts,
        ))
        .with_state(state)
        .merge(turn)
}
