//! The fleet's publishing connection: commands, desired config and OTA jobs go out over an
//! MQTT 3.1.1 connection of their own (never the ingest connection, see `ingest::start`),
//! written by this small client.
//!
//! Why not rumqttc here: it writes and flushes each publish on its own, one TLS record per
//! message, and Mosquitto reads one TLS record per connection per turn of its event loop —
//! a turn that takes tens of milliseconds when thousands of devices are sending. A command to
//! 10 000 devices went out at 1 300-2 500 messages/s that way (bench/fleet-scale). This
//! client writes everything waiting, up to its window of unacknowledged messages, in one
//! write: records of ~16 KiB, over a hundred commands each. Same benchmark, the broker with
//! its deployed CPU weight: 3.2-4.8 s to reach all 10 000 devices, 5.3-6.5 s with rumqttc
//! (docs/benchmarks.md).
//!
//! Delivery: QoS 1, at least once, in order. Unacknowledged messages are kept and sent again
//! (DUP) after a reconnect, before anything newer; devices ignore what they already have
//! (command ids, desired config versions, job ids). While the broker is away, `publish`
//! waits once `QUEUE` messages are waiting.

pub mod wire;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::QoS;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use crate::config::MqttConfig;
use crate::error::FleetError;

/// QoS 1 messages the connection may have unacknowledged (a whole fleet's command).
const WINDOW: usize = 10_000;
/// Messages waiting to be written.
const QUEUE: usize = 10_000;
/// At most this much in one write.
const MAX_WRITE: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the publishing connection has stopped")]
    Closed,
    #[error("topic {topic:?}: {len} bytes, MQTT allows 65535")]
    TopicTooLong { topic: String, len: usize },
    #[error("message to {topic}: {len} bytes is larger than an MQTT packet")]
    TooLarge { topic: String, len: usize },
}

pub(crate) struct Outgoing {
    topic: String,
    payload: Vec<u8>,
    /// 0 or 1.
    qos: u8,
    retain: bool,
}

/// Publishes to devices; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<Outgoing>,
}

/// Where and as whom the connection connects.
struct Target {
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    client_id: String,
    keepalive: Duration,
}

impl Publisher {
    /// Starts the connection (`<client_id>-pub`); `up` is notified each time it is
    /// (re)established, so that retained documents can be published again.
    pub fn start(cfg: &MqttConfig, client_id: &str, up: Arc<Notify>) -> Result<Self, FleetError> {
        let broker = r58_tls::parse_broker(&cfg.broker)?;
        let tls = if broker.tls {
            Some(r58_tls::client_config(
                &cfg.ca_file,
                &cfg.cert_file,
                &cfg.key_file,
            )?)
        } else {
            None
        };
        let target = Target {
            host: broker.host,
            port: broker.port,
            tls,
            client_id: format!("{client_id}-pub"),
            keepalive: Duration::from_secs(u64::from(cfg.keepalive_seconds.max(5))),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(target, rx, up));
        Ok(Self { tx })
    }

    /// A publisher whose connection has stopped for good.
    #[cfg(test)]
    pub(crate) fn closed() -> Self {
        let (tx, _) = mpsc::channel(1);
        Self { tx }
    }

    /// Queues a message; it goes out with whatever else is waiting, in order. QoS 2 is sent
    /// as QoS 1 (nothing here needs exactly-once).
    pub async fn publish(
        &self,
        topic: impl Into<String>,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), PublishError> {
        let m = Outgoing {
            topic: topic.into(),
            payload: payload.into(),
            qos: u8::from(qos != QoS::AtMostOnce),
            retain,
        };
        if m.topic.len() > usize::from(u16::MAX) {
            return Err(PublishError::TopicTooLong {
                len: m.topic.len(),
                topic: m.topic.chars().take(64).collect(),
            });
        }
        if wire::publish_len(&m) > wire::MAX_REMAINING {
            return Err(PublishError::TooLarge {
                len: m.payload.len(),
                topic: m.topic,
            });
        }
        self.tx.send(m).await.map_err(|_| PublishError::Closed)
    }
}

/// The unacknowledged QoS 1 messages, oldest first, and their packet ids.
#[derive(Default)]
struct Inflight {
    queue: VecDeque<(u16, Outgoing)>,
    pids: HashSet<u16>,
    last: u16,
}

impl Inflight {
    fn len(&self) -> usize {
        self.queue.len()
    }

    /// The next packet id not in use (1..=65535).
    fn next_pid(&mut self) -> u16 {
        loop {
            self.last = self.last.checked_add(1).unwrap_or(1);
            if !self.pids.contains(&self.last) {
                return self.last;
            }
        }
    }

    fn push(&mut self, pid: u16, m: Outgoing) {
        self.pids.insert(pid);
        self.queue.push_back((pid, m));
    }

    /// Forgets an acknowledged message (the broker acknowledges in order: the front).
    fn ack(&mut self, pid: u16) {
        if self.pids.remove(&pid) {
            if let Some(i) = self.queue.iter().position(|(p, _)| *p == pid) {
                self.queue.remove(i);
            }
        }
    }
}

/// Keeps the connection up until every `Publisher` is gone.
async fn run(target: Target, mut rx: mpsc::Receiver<Outgoing>, up: Arc<Notify>) {
    let mut inflight = Inflight::default();
    let mut backoff = MIN_BACKOFF;
    loop {
        match session(&target, &mut rx, &mut inflight, &up, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, unacknowledged = inflight.len(), "publishing connection");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

async fn connect(t: &Target) -> std::io::Result<Box<dyn Stream>> {
    let tcp = TcpStream::connect((t.host.as_str(), t.port)).await?;
    tcp.set_nodelay(true)?;
    let Some(tls) = &t.tls else {
        return Ok(Box::new(tcp));
    };
    let name = rustls::pki_types::ServerName::try_from(t.host.clone())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let s = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await?;
    Ok(Box::new(s))
}

fn failed(why: impl Into<String>) -> std::io::Error {
    std::io::Error::other(why.into())
}

/// Writes and flushes `buf`; a broker that stops reading fails the connection.
async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    tokio::time::timeout(limit, async {
        w.write_all(buf).await?;
        w.flush().await
    })
    .await
    .map_err(|_| failed("the broker stopped reading"))?
}

/// One connection's life: connect, send again what was unacknowledged, then write what
/// waits and take acknowledgements, until the connection fails (`Err`) or every publisher
/// is gone (`Ok`).
async fn session(
    t: &Target,
    rx: &mut mpsc::Receiver<Outgoing>,
    inflight: &mut Inflight,
    up: &Notify,
    backoff: &mut Duration,
) -> std::io::Result<()> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect(t))
        .await
        .map_err(|_| failed("connecting timed out"))??;
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let keepalive_s = u16::try_from(t.keepalive.as_secs()).unwrap_or(u16::MAX);
    send(
        &mut w,
        &wire::connect(&t.client_id, keepalive_s),
        t.keepalive,
    )
    .await?;
    let (h, body) = tokio::time::timeout(t.keepalive, wire::read_packet(&mut r))
        .await
        .map_err(|_| failed("no CONNACK"))??;
    if h >> 4 != 2 || body.len() != 2 {
        return Err(failed(format!(
            "expected a CONNACK, got packet type {}",
            h >> 4
        )));
    }
    if body[1] != 0 {
        return Err(failed(format!(
            "the broker refused the connection (CONNACK return code {})",
            body[1]
        )));
    }
    *backoff = MIN_BACKOFF;
    tracing::info!(resending = inflight.len(), "publishing connection up");

    // Acknowledgements are read by a task of their own (a read cut off by select! would
    // lose bytes).
    let (in_tx, mut incoming) = mpsc::channel::<std::io::Result<(u8, Vec<u8>)>>(1024);
    let _reader = AbortOnDrop(tokio::spawn(async move {
        loop {
            let p = wire::read_packet(&mut r).await;
            let end = p.is_err();
            if in_tx.send(p).await.is_err() || end {
                return;
            }
        }
    }));

    let mut buf = Vec::with_capacity(1 << 16);
    for (pid, m) in &inflight.queue {
        wire::publish(&mut buf, m, Some(*pid), true);
        if buf.len() >= MAX_WRITE {
            send(&mut w, &buf, t.keepalive).await?;
            buf.clear();
        }
    }
    send(&mut w, &buf, t.keepalive).await?;
    up.notify_one();

    let mut ping = tokio::time::interval(t.keepalive / 2);
    ping.reset();
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            p = incoming.recv() => {
                let (h, body) = p.ok_or_else(|| failed("the reader stopped"))??;
                heard = tokio::time::Instant::now();
                if h >> 4 == 4 && body.len() >= 2 {
                    inflight.ack(u16::from_be_bytes([body[0], body[1]]));
                }
            }
            m = rx.recv(), if inflight.len() < WINDOW => {
                let Some(m) = m else {
                    let _ = send(&mut w, &wire::DISCONNECT, t.keepalive).await;
                    return Ok(());
                };
                buf.clear();
                let mut next = Some(m);
                while let Some(m) = next.take() {
                    if m.qos > 0 {
                        let pid = inflight.next_pid();
                        wire::publish(&mut buf, &m, Some(pid), false);
                        inflight.push(pid, m);
                    } else {
                        wire::publish(&mut buf, &m, None, false);
                    }
                    if inflight.len() < WINDOW && buf.len() < MAX_WRITE {
                        next = rx.try_recv().ok();
                    }
                }
                send(&mut w, &buf, t.keepalive).await?;
            }
            _ = ping.tick() => {
                if heard.elapsed() > t.keepalive * 3 / 2 {
                    return Err(failed("the broker stopped answering"));
                }
                send(&mut w, &wire::PINGREQ, t.keepalive).await?;
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn msg(i: usize) -> Outgoing {
        Outgoing {
            topic: format!("r58/v1/d{i}/cmd/ping"),
            payload: Vec::new(),
            qos: 1,
            retain: false,
        }
    }

    #[test]
    fn packet_ids_skip_those_still_unacknowledged() {
        let mut f = Inflight::default();
        let first = f.next_pid();
        f.push(first, msg(0));
        assert_eq!(first, 1);
        // Around the whole id space: 0 is never used, 1 is still waiting for its ack.
        for _ in 0..65_533 {
            f.next_pid();
        }
        assert_eq!(f.next_pid(), 65_535);
        assert_eq!(f.next_pid(), 2);
        f.push(2, msg(2));
        f.push(3, msg(3));
        f.ack(2);
        f.ack(999); // not ours: ignored
        assert_eq!(f.queue.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(f.len(), 2);
    }

    #[tokio::test]
    async fn a_stopped_connection_or_an_oversized_topic_is_an_error_not_a_silent_drop() {
        let p = Publisher::closed();
        assert!(matches!(
            p.publish("r58/v1/a/cmd/ping", QoS::AtLeastOnce, false, b"{}".to_vec())
                .await,
            Err(PublishError::Closed)
        ));
        assert!(matches!(
            p.publish("x".repeat(70_000), QoS::AtLeastOnce, false, b"{}".to_vec())
                .await,
            Err(PublishError::TopicTooLong { len: 70_000, .. })
        ));
    }
}
