//! Delivery of the agent's outbound messages, without I/O of its own: messages go out at
//! once while online (each kept until its PUBACK), else to the disk queue in order; the disk
//! queue drains up to a window of unacknowledged messages. The connection is behind
//! [`Publish`], so the bookkeeping (packet ids, the window, what goes back to disk when the
//! connection drops) is tested without a broker.

use std::collections::{HashMap, VecDeque};

use crate::mqtt;
use crate::queue::{DiskQueue, Queued};

/// Queued messages unacknowledged at a time.
pub const WINDOW: usize = 32;
/// Direct messages unacknowledged at a time; past it new messages go through the disk queue.
pub const DIRECT_MAX: usize = WINDOW * 4;

/// The connection's request queue is full: the message was not taken.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// A connection that takes QoS 1 publish requests without waiting.
pub trait Publish {
    fn try_publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<(), Full>;
}

/// A message over [`mqtt::MAX_MESSAGE`]: it would fail the connection if published, and
/// block everything behind it if queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("message on {topic} is {bytes} bytes, over the limit of {limit}")]
pub struct Oversized {
    pub topic: String,
    pub bytes: usize,
    pub limit: usize,
}

/// What a publish request carried, in the order the requests were made (the client reports
/// each request's packet id in that order).
enum Sent {
    /// A message from the disk queue (its seq).
    Queue(u64),
    /// A message sent straight away (its number in `direct`).
    Direct(u64),
    /// A retained document (state, reported config): sent again on the next change.
    Other,
}

/// What one connection carries unacknowledged.
#[derive(Default)]
struct Window {
    expect: VecDeque<Sent>,
    pkids: HashMap<u16, u64>,
    in_flight: VecDeque<u64>,
    direct: VecDeque<(u64, Queued)>,
    direct_pkids: HashMap<u16, u64>,
    next_direct: u64,
}

pub struct Delivery {
    queue: DiskQueue,
    /// Messages produced since the last flush.
    outbox: VecDeque<Queued>,
    window: Window,
}

impl Delivery {
    pub fn new(queue: DiskQueue) -> Self {
        Self {
            queue,
            outbox: VecDeque::new(),
            window: Window::default(),
        }
    }

    pub fn queue(&self) -> &DiskQueue {
        &self.queue
    }

    /// Takes a message for the next [`flush`](Self::flush). An oversized one is refused and
    /// counted as dropped.
    pub fn enqueue(&mut self, topic: String, payload: String) -> Result<(), Oversized> {
        if !mqtt::fits(&topic, payload.len()) {
            self.queue.note_dropped();
            return Err(Oversized {
                topic,
                bytes: payload.len(),
                limit: mqtt::MAX_MESSAGE,
            });
        }
        self.outbox.push_back(Queued {
            topic,
            payload,
            retain: false,
        });
        Ok(())
    }

    fn to_disk(&mut self, msg: &Queued) {
        if let Err(e) = self.queue.push(msg) {
            tracing::error!(error = %e, "offline queue write failed");
        }
    }

    /// `online` is the connection while the link is up. Online with nothing on disk: each
    /// message is published directly and remembered until its PUBACK. Otherwise (offline,
    /// older messages still on disk, the connection's queue full): appended to the disk
    /// queue, which keeps the order. Then the disk queue drains.
    pub fn flush(&mut self, mut online: Option<&mut dyn Publish>) {
        while let Some(msg) = self.outbox.pop_front() {
            match online.as_deref_mut() {
                Some(tx) if self.queue.is_empty() && self.window.direct.len() < DIRECT_MAX => {
                    let body = msg.payload.clone().into_bytes();
                    match tx.try_publish(&msg.topic, body, msg.retain) {
                        Ok(()) => {
                            let w = &mut self.window;
                            let n = w.next_direct;
                            w.next_direct += 1;
                            w.expect.push_back(Sent::Direct(n));
                            w.direct.push_back((n, msg));
                        }
                        Err(Full) => self.to_disk(&msg),
                    }
                }
                _ => self.to_disk(&msg),
            }
        }
        if let Some(tx) = online {
            self.drain(tx);
        }
    }

    /// Sends queued messages in order, up to [`WINDOW`] unacknowledged.
    pub fn drain(&mut self, tx: &mut dyn Publish) {
        let w = &self.window;
        if w.in_flight.len() >= WINDOW {
            return;
        }
        let after = w.in_flight.back().copied();
        let batch = self.queue.peek(after, WINDOW - w.in_flight.len());
        for (seq, msg) in batch {
            if !mqtt::fits(&msg.topic, msg.payload.len()) {
                // Queued by an agent without the bound: it can never be sent.
                tracing::error!(topic = %msg.topic, bytes = msg.payload.len(),
                    "queued message over the size limit dropped");
                self.queue.discard(seq);
                continue;
            }
            if tx
                .try_publish(&msg.topic, msg.payload.into_bytes(), msg.retain)
                .is_err()
            {
                // Stays on disk; the next drain sends it.
                break;
            }
            self.window.expect.push_back(Sent::Queue(seq));
            self.window.in_flight.push_back(seq);
        }
    }

    /// A retained document (state, reported config), not queued: false when the
    /// connection did not take it (it goes again on the next change or connection).
    pub fn send_document(
        &mut self,
        tx: &mut dyn Publish,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> bool {
        match tx.try_publish(topic, payload, retain) {
            Ok(()) => {
                self.window.expect.push_back(Sent::Other);
                true
            }
            Err(Full) => {
                tracing::warn!(%topic, "publish request refused: the connection's queue is full");
                false
            }
        }
    }

    /// The client sent the next request with packet id `pkid`.
    pub fn on_outgoing_publish(&mut self, pkid: u16) {
        let w = &mut self.window;
        match w.expect.pop_front() {
            Some(Sent::Queue(seq)) => {
                w.pkids.insert(pkid, seq);
            }
            Some(Sent::Direct(n)) => {
                w.direct_pkids.insert(pkid, n);
            }
            _ => {}
        }
    }

    /// The broker acknowledged `pkid`.
    pub fn on_puback(&mut self, pkid: u16) {
        let w = &mut self.window;
        if let Some(seq) = w.pkids.remove(&pkid) {
            self.queue.ack(seq);
            w.in_flight.retain(|s| *s != seq);
        } else if let Some(n) = w.direct_pkids.remove(&pkid) {
            w.direct.retain(|(m, _)| *m != n);
        }
    }

    /// The connection is gone: what was sent directly and not acknowledged goes to disk, in
    /// order, to be sent again after the reconnect (queued messages are still on disk).
    pub fn connection_lost(&mut self) {
        let w = std::mem::take(&mut self.window);
        for (_, msg) in w.direct {
            self.to_disk(&msg);
        }
        self.window.next_direct = w.next_direct;
    }

    /// Messages taken and not yet acknowledged by the broker, direct and queued.
    pub fn unacknowledged(&self) -> usize {
        self.window.direct.len() + self.window.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that records what it took and hands out packet ids like rumqttc.
    #[derive(Default)]
    struct Link {
        sent: Vec<(String, String)>,
        room: Option<usize>,
    }

    impl Publish for Link {
        fn try_publish(&mut self, topic: &str, payload: Vec<u8>, _: bool) -> Result<(), Full> {
            if let Some(room) = self.room.as_mut() {
                if *room == 0 {
                    return Err(Full);
                }
                *room -= 1;
            }
            self.sent
                .push((topic.into(), String::from_utf8(payload).unwrap()));
            Ok(())
        }
    }

    fn delivery(dir: &std::path::Path) -> Delivery {
        Delivery::new(DiskQueue::open(dir, 10_000).unwrap())
    }

    fn put(d: &mut Delivery, range: std::ops::Range<u32>) {
        for i in range {
            d.enqueue("r58/v1/d/t".into(), i.to_string()).unwrap();
        }
    }

    /// Reports packet ids for every request sent so far after `from` (1-based ids).
    fn outgoing(d: &mut Delivery, link: &Link, from: usize) {
        for i in from..link.sent.len() {
            d.on_outgoing_publish(i as u16 + 1);
        }
    }

    fn payloads(link: &Link) -> Vec<String> {
        link.sent.iter().map(|(_, p)| p.clone()).collect()
    }

    #[test]
    fn offline_messages_wait_on_disk_and_drain_in_order_after_the_reconnect() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = delivery(dir.path());
        put(&mut d, 0..5);
        d.flush(None);
        assert_eq!(d.queue().len(), 5);
        let mut link = Link::default();
        d.flush(Some(&mut link));
        assert_eq!(payloads(&link), ["0", "1", "2", "3", "4"]);
        outgoing(&mut d, &link, 0);
        for pkid in 1..=5 {
            d.on_puback(pkid);
        }
        assert!(d.queue().is_empty());
        assert_eq!(d.unacknowledged(), 0);
        // Nothing on disk now: the next message goes directly.
        put(&mut d, 5..6);
        d.flush(Some(&mut link));
        assert_eq!(d.queue().len(), 0);
        assert_eq!(payloads(&link).last().unwrap(), "5");
    }

    #[test]
    fn the_window_bounds_what_is_in_flight_and_acks_open_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = delivery(dir.path());
        put(&mut d, 0..(WINDOW as u32 + 8));
        d.flush(None);
        let mut link = Link::default();
        d.flush(Some(&mut link));
        assert_eq!(link.sent.len(), WINDOW, "the window is full");
        outgoing(&mut d, &link, 0);
        d.drain(&mut link);
        assert_eq!(link.sent.len(), WINDOW, "nothing more until an ack");
        d.on_puback(1);
        d.on_puback(2);
        d.drain(&mut link);
        assert_eq!(link.sent.len(), WINDOW + 2);
        let all: Vec<String> = (0..(WINDOW as u32 + 2)).map(|i| i.to_string()).collect();
        assert_eq!(payloads(&link), all, "in order, none twice");
    }

    #[test]
    fn acks_out_of_order_remove_exactly_the_acknowledged_messages() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = delivery(dir.path());
        put(&mut d, 0..6);
        d.flush(None);
        let mut link = Link::default();
        d.flush(Some(&mut link));
        outgoing(&mut d, &link, 0);
        for pkid in [5, 2, 6] {
            d.on_puback(pkid);
        }
        // The broker took messages 1, 4 and 5 (0-based); 0, 2, 3 stay on disk.
        let left: Vec<String> = d
            .queue()
            .peek(None, 10)
            .into_iter()
            .map(|(_, m)| m.payload)
            .collect();
        assert_eq!(left, ["0", "2", "3"]);
        // An ack for a packet id never used changes nothing.
        d.on_puback(999);
        assert_eq!(d.queue().len(), 3);
        for pkid in [3, 1, 4] {
            d.on_puback(pkid);
        }
        assert!(d.queue().is_empty());
        assert_eq!(d.unacknowledged(), 0);
    }

    #[test]
    fn a_lost_connection_sends_what_was_in_flight_again_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = delivery(dir.path());
        let mut link = Link::default();
        put(&mut d, 0..4);
        d.flush(Some(&mut link));
        assert_eq!(d.queue().len(), 0, "online: sent directly");
        outgoing(&mut d, &link, 0);
        d.on_puback(2);
        d.connection_lost();
        // Messages produced while offline queue behind the unacknowledged ones.
        put(&mut d, 4..6);
        d.flush(None);
        assert_eq!(d.queue().len(), 5);
        let mut again = Link::default();
        d.flush(Some(&mut again));
        assert_eq!(payloads(&again), ["0", "2", "3", "4", "5"]);
        outgoing(&mut d, &again, 0);
        for pkid in 1..=5 {
            d.on_puback(pkid);
        }
        assert!(d.queue().is_empty());
    }

    #[test]
    fn a_full_connection_queue_sends_messages_to_disk_and_keeps_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = delivery(dir.path());
        let mut link = Link {
            room: Some(2),
            ..Link::default()
        };
        put(&mut d, 0..5);
        d.flush(Some(&mut link));
        assert_eq!(payloads(&link), ["0", "1"]);
        assert_eq!(d.queue().len(), 3);
        outgoing(&mut d, &link, 0);
        d.on_puback(1);
        d.on_puback(2);
        link.room = None;
        // Disk holds older messages: a new one queues behind them.
        put(&mut d, 5..6);
        d.flush(Some(&mut link));
        assert_eq!(payloads(&link), ["0", "1", "2", "3", "4", "5"]);
    }

    #[test]
    fn an_oversized_message_is_refused_and_counted_and_blocks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = delivery(dir.path());
        let big = "x".repeat(mqtt::MAX_MESSAGE);
        let err = d.enqueue("r58/v1/d/t".into(), big).unwrap_err();
        assert_eq!(err.limit, mqtt::MAX_MESSAGE);
        assert_eq!(d.queue().dropped(), 1);
        put(&mut d, 0..1);
        let mut link = Link::default();
        d.flush(Some(&mut link));
        assert_eq!(payloads(&link), ["0"]);
        // One already on disk (queued by an older agent) is discarded at the drain.
        let mut q = DiskQueue::open(dir.path(), 10).unwrap();
        q.push(&Queued {
            topic: "r58/v1/d/t".into(),
            payload: "y".repeat(mqtt::MAX_MESSAGE),
            retain: false,
        })
        .unwrap();
        q.push(&Queued {
            topic: "r58/v1/d/t".into(),
            payload: "after".into(),
            retain: false,
        })
        .unwrap();
        let mut d = Delivery::new(q);
        let mut link = Link::default();
        d.drain(&mut link);
        assert_eq!(payloads(&link), ["after"]);
        assert_eq!(d.queue().dropped(), 2);
    }
}
