//! Live updates for the dashboard and `r58-fleet watch`: server-sent events. One poller per
//! replica reads what changed in the database (devices and commands by `updated_at`) and
//! fans it out, so every replica shows every change whichever replica ingested it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use r58_fleet_api::Event;
use serde::Deserialize;
use tokio::sync::broadcast;

use super::AppState;
use crate::db::{now_ms, Db, DeviceFilter};

/// One change, as the event stream sends it.
pub type Change = Event;

/// Polls the database every `period` and broadcasts changes. Rows are compared by
/// `updated_at`; the window overlaps by a few seconds so that clocks of other replicas and
/// transactions committing late are not missed, and what was already sent is not repeated.
pub async fn poll(
    db: Db,
    tx: broadcast::Sender<Change>,
    period: Duration,
    guest_base: Option<String>,
) {
    let mut seen_dev: HashMap<String, i64> = HashMap::new();
    let mut seen_cmd: HashMap<String, (i64, String)> = HashMap::new();
    let mut since = now_ms();
    loop {
        tokio::time::sleep(period).await;
        let from = since - 5_000;
        let started = now_ms();
        if tx.receiver_count() == 0 {
            since = started;
            continue;
        }
        match db
            .devices(&DeviceFilter {
                updated_since: Some(from),
                ..Default::default()
            })
            .await
        {
            Ok(devs) => {
                for d in devs {
                    if seen_dev.get(&d.id) != Some(&d.updated_at) {
                        seen_dev.insert(d.id.clone(), d.updated_at);
                        let _ = tx.send(Event::Device { device: d });
                    }
                }
            }
            Err(e) => tracing::warn!(error = %r58_log::error_chain(&e), "events: reading devices"),
        }
        match db.commands(None, Some(from), 500).await {
            Ok(cmds) => {
                for mut c in cmds.into_iter().rev() {
                    super::guest_path::add_public_link(guest_base.as_deref(), &mut c);
                    let key = (c.updated_at, c.state.clone());
                    if seen_cmd.get(&c.id) != Some(&key) {
                        seen_cmd.insert(c.id.clone(), key);
                        let _ = tx.send(Event::Command { command: c });
                    }
                }
            }
            Err(e) => tracing::warn!(error = %r58_log::error_chain(&e), "events: reading commands"),
        }
        since = started;
        // Forget what can no longer be in the window.
        seen_dev.retain(|_, t| *t >= since - 60_000);
        seen_cmd.retain(|_, (t, _)| *t >= since - 3_600_000);
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only this device's changes.
    device: Option<String>,
}

fn concerns(change: &Event, device: &str) -> bool {
    match change {
        Event::Device { device: d } => d.id == device,
        Event::Command { command } => command.device == device,
        Event::Resync => true,
    }
}

/// The SSE event name of a change: its `type`.
fn name(change: &Event) -> &'static str {
    match change {
        Event::Device { .. } => "device",
        Event::Command { .. } => "command",
        Event::Resync => "resync",
    }
}

pub async fn stream(
    State(s): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = s.events.subscribe();
    let stream = futures::stream::unfold((rx, q.device), |(mut rx, device)| async move {
        loop {
            let change = match rx.recv().await {
                Ok(c) => c,
                // Too slow a reader: tell it to reload rather than silently skip changes.
                Err(broadcast::error::RecvError::Lagged(_)) => Event::Resync,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if device.as_deref().is_some_and(|d| !concerns(&change, d)) {
                continue;
            }
            let Ok(data) = serde_json::to_string(&change) else {
                continue;
            };
            let ev = SseEvent::default().event(name(&change)).data(data);
            return Some((Ok(ev), (rx, device)));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
