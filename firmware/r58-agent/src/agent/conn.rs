//! One connection to the broker: its client and its event loop (polled by a task of its
//! own). What was sent on it and not yet acknowledged is the delivery's (`crate::delivery`).

use std::time::Instant;

use r58_proto::Status;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, QoS};
use tokio::sync::mpsc;

use super::Agent;
use crate::delivery::{Full, Publish};
use crate::error::AgentError;
use crate::link::Link;

/// A connection's event loop, polled by a task of its own. rumqttc's `poll` is not
/// cancel-safe while it connects: raced against the agent's timers in a `select!`, a slow
/// TLS handshake (a loaded box) would be dropped half-way, after the broker had taken the
/// CONNECT; the broker would then publish that session's last will (`lost`), which outranks
/// the session's own `online` in the fleet.
pub(super) struct Events {
    rx: mpsc::Receiver<Result<Event, ConnectionError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Events {
    pub(super) fn spawn(mut events: EventLoop) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let ev = events.poll().await;
                let end = ev.is_err();
                if tx.send(ev).await.is_err() || end {
                    break;
                }
            }
        });
        Self { rx, task }
    }

    /// The next event (cancel-safe); the loop's error ends it.
    pub(super) async fn next(&mut self) -> Result<Event, ConnectionError> {
        self.rx
            .recv()
            .await
            .unwrap_or(Err(ConnectionError::RequestsDone))
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) struct Conn {
    pub(super) client: AsyncClient,
    pub(super) events: Events,
}

impl Publish for Conn {
    /// Never waits for room in the client's request queue: its event loop may itself be
    /// waiting for the agent's loop to take an event (a flood of inbound messages).
    fn try_publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<(), Full> {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .map_err(|_| Full)
    }
}

/// The broker connection and its state as one value: a connection exists exactly while
/// connecting or online, and the attempt count lives with the state it counts for.
pub(super) enum Connection {
    /// No connection; the next attempt at `until`.
    Waiting {
        attempt: u32,
        until: Instant,
    },
    /// CONNECT sent, CONNACK awaited.
    Connecting {
        attempt: u32,
        conn: Conn,
    },
    Online {
        conn: Conn,
    },
}

impl Connection {
    /// The connection, while there is one.
    pub(super) fn conn(&mut self) -> Option<&mut Conn> {
        match self {
            Self::Connecting { conn, .. } | Self::Online { conn } => Some(conn),
            Self::Waiting { .. } => None,
        }
    }

    /// The connection, once the broker has accepted it.
    pub(super) fn online(&mut self) -> Option<&mut Conn> {
        match self {
            Self::Online { conn } => Some(conn),
            _ => None,
        }
    }

    pub(super) fn into_conn(self) -> Option<Conn> {
        match self {
            Self::Connecting { conn, .. } | Self::Online { conn } => Some(conn),
            Self::Waiting { .. } => None,
        }
    }

    /// Failed attempts since the last CONNACK.
    pub(super) fn attempt(&self) -> u32 {
        match self {
            Self::Waiting { attempt, .. } | Self::Connecting { attempt, .. } => *attempt,
            Self::Online { .. } => 0,
        }
    }

    /// The broker accepted the connection.
    pub(super) fn accepted(self) -> Self {
        match self {
            Self::Connecting { conn, .. } | Self::Online { conn } => Self::Online { conn },
            waiting => waiting,
        }
    }

    /// The state as the logs and `sd_notify` name it.
    pub(super) fn link(&self) -> Link {
        match self {
            Self::Waiting { attempt, until } => Link::Backoff {
                attempt: *attempt,
                wait: until.saturating_duration_since(Instant::now()),
            },
            Self::Connecting { attempt, .. } => Link::Connecting { attempt: *attempt },
            Self::Online { .. } => Link::Online,
        }
    }
}

/// The next connection's session number: above the last one, and at least the Unix time in
/// seconds. The fleet orders a device's states by session; a box whose `/data` was wiped
/// (reflashed, replaced) starts again from nothing, and with a plain counter its states would
/// rank below the ones the fleet holds from before until the counter caught up.
pub(super) fn next_session(prev: u64, now_secs: u64) -> u64 {
    prev.saturating_add(1).max(now_secs)
}

impl Agent {
    pub(super) fn connect(&mut self) -> Result<Conn, AgentError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.persisted.session = next_session(self.persisted.session, now);
        self.save();
        let will = self.state_doc(Status::Lost);
        let opts = crate::mqtt::options(&self.cfg.agent, self.tls.as_ref(), will)?;
        let (client, mut events) = AsyncClient::new(opts, 256);
        // Statuses go out back to back (accepted, then the result): without TCP_NODELAY the
        // second waits for the broker's delayed ACK (~40 ms).
        let mut net = events.network_options();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(10);
        events.set_network_options(net);
        Ok(Conn {
            client,
            events: Events::spawn(events),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::next_session;

    #[test]
    fn sessions_grow_and_a_wiped_box_starts_above_its_old_sessions() {
        let t = 1_800_000_000;
        assert_eq!(
            next_session(0, t),
            t,
            "a new (or wiped) box starts at the time"
        );
        assert_eq!(
            next_session(t, t),
            t + 1,
            "reconnects in the same second still grow"
        );
        assert_eq!(
            next_session(t + 5, t + 2),
            t + 6,
            "a clock stepped back does not go back"
        );
        // A box wiped after running a year: its first session is above the old ones.
        assert!(next_session(0, t + 365 * 86_400) > next_session(t + 10_000, t));
    }
}
