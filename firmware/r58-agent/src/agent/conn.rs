//! One connection to the broker: its client, its event loop (polled by a task of its own)
//! and what was sent on it and not yet acknowledged.

use std::collections::{HashMap, VecDeque};

use r58_proto::Status;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop};
use tokio::sync::mpsc;

use super::Agent;
use crate::error::AgentError;
use crate::queue::Queued;

/// What a publish request carried, in the order the requests were made.
pub(super) enum Sent {
    /// A message from the disk queue (its seq).
    Queue(u64),
    /// A message sent straight away while online (its number in `direct`).
    Direct(u64),
    Other,
}

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
    pub(super) expect: VecDeque<Sent>,
    pub(super) pkids: HashMap<u16, u64>,
    pub(super) in_flight: VecDeque<u64>,
    /// Messages sent directly and not yet acknowledged, in send order: written to the
    /// disk queue if the connection drops before the broker acknowledges them.
    pub(super) direct: VecDeque<(u64, Queued)>,
    pub(super) direct_pkids: HashMap<u16, u64>,
    pub(super) next_direct: u64,
}

impl Agent {
    pub(super) fn connect(&mut self) -> Result<Conn, AgentError> {
        self.persisted.session += 1;
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
            expect: VecDeque::new(),
            pkids: HashMap::new(),
            in_flight: VecDeque::new(),
            direct: VecDeque::new(),
            direct_pkids: HashMap::new(),
            next_direct: 0,
        })
    }
}
