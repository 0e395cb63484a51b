//! Delivery: messages go out at once while online (each kept until its PUBACK), else to the
//! disk queue in order; the queue drains up to a window of unacknowledged messages.

use rumqttc::QoS;
use serde::Serialize;

use super::conn::{Conn, Sent};
use super::{Agent, WINDOW};
use crate::link::Link;
use crate::mqtt;
use crate::queue::Queued;

impl Agent {
    /// Hands a message to `flush`: sent at once while online, else kept on disk.
    /// A message over [`mqtt::MAX_MESSAGE`] is dropped here (logged, counted): published,
    /// it would fail the connection, and queued it would block everything behind it.
    pub(super) fn enqueue(&mut self, topic: String, payload: &impl Serialize) {
        let payload = serde_json::to_string(payload).unwrap_or_default();
        if !mqtt::fits(&topic, payload.len()) {
            tracing::error!(%topic, bytes = payload.len(), limit = mqtt::MAX_MESSAGE,
                "message over the size limit dropped");
            self.queue.note_dropped();
            return;
        }
        self.outbox.push_back(Queued {
            topic,
            payload,
            retain: false,
        });
    }

    pub(super) fn to_disk(&mut self, msg: &Queued) {
        if let Err(e) = self.queue.push(msg) {
            tracing::error!(error = %e, "offline queue write failed");
        }
    }

    /// Online with nothing queued on disk: publish directly (QoS 1), remembering each
    /// message until its PUBACK. Otherwise (offline, or older messages still on disk):
    /// append to the disk queue, which keeps the order. Then drain the disk queue.
    pub(super) async fn flush(&mut self, mut conn: Option<&mut Conn>) {
        while let Some(msg) = self.outbox.pop_front() {
            match conn.as_deref_mut() {
                Some(c)
                    if self.link == Link::Online
                        && self.queue.is_empty()
                        && c.direct.len() < WINDOW * 4 =>
                {
                    let n = c.next_direct;
                    c.next_direct += 1;
                    let body = msg.payload.clone().into_bytes();
                    // Never waits for room in the client's request queue: its event loop
                    // may itself be waiting for this loop to take an event (a flood of
                    // inbound messages); a full queue sends the message to disk instead.
                    match c.client.try_publish(
                        msg.topic.clone(),
                        QoS::AtLeastOnce,
                        msg.retain,
                        body,
                    ) {
                        Ok(()) => {
                            c.expect.push_back(Sent::Direct(n));
                            c.direct.push_back((n, msg));
                        }
                        Err(_) => self.to_disk(&msg),
                    }
                }
                _ => self.to_disk(&msg),
            }
        }
        if let Some(c) = conn {
            self.drain(c).await;
        }
    }

    /// The connection is gone: what was sent directly but not acknowledged goes to disk,
    /// in order, to be sent again after the reconnect.
    pub(super) fn requeue_direct(&mut self, conn: &mut Conn) {
        let unacked: Vec<(u64, Queued)> = conn.direct.drain(..).collect();
        for (_, msg) in unacked {
            self.to_disk(&msg);
        }
    }

    pub(super) async fn publish(
        &self,
        conn: &mut Conn,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        seq: Option<u64>,
    ) -> bool {
        // Not waiting for room (see flush): a queued message stays on disk and goes with the
        // next drain; a state or reported document is retried on the next change or
        // connection.
        match conn
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => {
                conn.expect.push_back(seq.map_or(Sent::Other, Sent::Queue));
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "publish request failed");
                false
            }
        }
    }

    /// Sends queued messages in order, up to WINDOW unacknowledged.
    pub(super) async fn drain(&mut self, conn: &mut Conn) {
        if self.link != Link::Online || conn.in_flight.len() >= WINDOW {
            return;
        }
        let after = conn.in_flight.back().copied();
        let batch = self.queue.peek(after, WINDOW - conn.in_flight.len());
        for (seq, msg) in batch {
            if !mqtt::fits(&msg.topic, msg.payload.len()) {
                // Queued by an agent without the bound: it can never be sent.
                tracing::error!(topic = %msg.topic, bytes = msg.payload.len(),
                    "queued message over the size limit dropped");
                self.queue.discard(seq);
                continue;
            }
            if !self
                .publish(
                    conn,
                    msg.topic,
                    msg.payload.into_bytes(),
                    msg.retain,
                    Some(seq),
                )
                .await
            {
                break;
            }
            conn.in_flight.push_back(seq);
        }
    }

    pub(super) fn on_outgoing_publish(&mut self, conn: &mut Conn, pkid: u16) {
        match conn.expect.pop_front() {
            Some(Sent::Queue(seq)) => {
                conn.pkids.insert(pkid, seq);
            }
            Some(Sent::Direct(n)) => {
                conn.direct_pkids.insert(pkid, n);
            }
            _ => {}
        }
    }

    pub(super) fn on_puback(&mut self, conn: &mut Conn, pkid: u16) {
        if let Some(seq) = conn.pkids.remove(&pkid) {
            self.queue.ack(seq);
            conn.in_flight.retain(|s| *s != seq);
        } else if let Some(n) = conn.direct_pkids.remove(&pkid) {
            conn.direct.retain(|(m, _)| *m != n);
        }
    }
}
