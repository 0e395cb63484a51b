//! The MQTT side of the fleet service: one MQTT 5 connection per replica. Device messages
//! come in through shared subscriptions (`$share/<group>/…`: each message goes to one
//! replica of the group), are written to the database in batches, and are acknowledged to
//! the broker only once committed — a crash loses nothing, the broker redelivers. Retained
//! `state` and `twin/reported` documents are read once per connection through plain
//! subscriptions (brokers do not send retained messages to shared subscriptions); both
//! paths write idempotently.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::config::MqttConfig;
use crate::db::{Db, Figures, Message, StateUpdate};
use crate::error::FleetError;

/// Ingest counters, exported on /metrics.
#[derive(Default)]
pub struct IngestStats {
    pub messages: AtomicU64,
    pub rejected: AtomicU64,
    pub batches: AtomicU64,
    pub db_errors: AtomicU64,
    /// Largest lag (now − sample ts, ms) since the last scrape.
    pub max_lag_ms: AtomicI64,
    pub connected: AtomicU64,
}

/// The device-facing topics the fleet ingests (under `$share/<group>/` when shared).
pub const INGEST_FILTERS: [&str; 5] = [
    "r58/v1/+/state",
    "r58/v1/+/telemetry/+",
    "r58/v1/+/twin/reported",
    "r58/v1/+/cmd/status",
    "r58/v1/+/jobs/+/update",
];
const RECEIVE_MAXIMUM: u16 = 4096;
/// The bytes of received messages held in memory until their batch is committed, in KiB.
/// The in-flight window bounds their number, this their size: 4 096 messages of up to the
/// broker's 1 MiB each would be 4 GiB. Past it the event loop stops reading from the broker,
/// which holds the rest.
const HELD_KIB: u32 = 32 * 1024;
const BATCH_MAX: usize = 2048;
const BATCH_WINDOW: Duration = Duration::from_millis(50);
const RETAINED_FILTERS: [&str; 2] = ["r58/v1/+/state", "r58/v1/+/twin/reported"];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("topic {0:?} is not a device topic the fleet ingests")]
    Topic(String),
    #[error("bad device id in {0:?}")]
    DeviceId(String),
    #[error("payload of {topic}: {reason}")]
    Payload { topic: String, reason: String },
}

fn payload<'a, T: serde::Deserialize<'a>>(topic: &str, bytes: &'a [u8]) -> Result<T, ParseError> {
    serde_json::from_slice(bytes).map_err(|e| ParseError::Payload {
        topic: topic.to_string(),
        reason: e.to_string(),
    })
}

/// The parts of a telemetry sample the inventory keeps figures from; everything else in
/// the sample is skipped here and stored as the device sent it.
#[derive(Default, serde::Deserialize)]
struct Picked {
    #[serde(default)]
    temperatures_c: Value,
    #[serde(default)]
    disk: Value,
    #[serde(default)]
    inputs: Value,
}

/// What the inventory keeps of a sample: recording (any input), hottest sensor, data disk.
/// A sample whose `data` is not an object, or whose figures are missing or of another type,
/// has none (it is still stored).
pub fn figures(stream: &str, data: &RawValue) -> Figures {
    let picked = || serde_json::from_str::<Picked>(data.get()).unwrap_or_default();
    match stream {
        "system" => {
            let p = picked();
            Figures {
                recording: None,
                temperature_c: p
                    .temperatures_c
                    .as_object()
                    .and_then(|t| t.values().filter_map(Value::as_f64).reduce(f64::max)),
                disk: match (p.disk["free_mib"].as_i64(), p.disk["total_mib"].as_i64()) {
                    (Some(f), Some(t)) => Some((f, t)),
                    _ => None,
                },
            }
        }
        "recorder" => Figures {
            recording: picked()
                .inputs
                .as_object()
                .map(|i| i.values().any(|v| v["recording"].as_bool() == Some(true))),
            ..Figures::default()
        },
        _ => Figures::default(),
    }
}

/// A telemetry sample as delivered: `data` is kept as the device's JSON text (checked to be
/// JSON), not parsed into a tree and written out again — at fleet scale that round trip was
/// a large share of the ingest's CPU (perf, bench/fleet-scale). Same contract as
/// `r58_proto::Telemetry`.
#[derive(serde::Deserialize)]
struct TelemetryIn<'a> {
    seq: u64,
    ts: chrono::DateTime<chrono::Utc>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// How far ahead of the fleet's clock a sample's time may be (a device clock off by a bit).
const MAX_CLOCK_AHEAD_MS: i64 = 10 * 60 * 1000;

/// The largest telemetry sample kept (its `data`, as JSON text). The agent's samples are a
/// few hundred bytes; the bound keeps what one device can make the fleet store — and what a
/// history of samples costs to answer — in proportion.
pub const MAX_TELEMETRY_DATA: usize = 16 * 1024;

/// Parses one delivered message.
pub fn parse(topic: &str, bytes: &[u8]) -> Result<Message, ParseError> {
    let rest = topic
        .strip_prefix("r58/v1/")
        .ok_or_else(|| ParseError::Topic(topic.into()))?;
    let (device, what) = rest
        .split_once('/')
        .ok_or_else(|| ParseError::Topic(topic.into()))?;
    if !r58_proto::valid_device_id(device) {
        return Err(ParseError::DeviceId(topic.into()));
    }
    let device = device.to_string();
    match what {
        "state" => {
            let s: r58_proto::State = payload(topic, bytes)?;
            let status = serde_json::to_value(s.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            Ok(Message::State {
                device,
                state: StateUpdate {
                    status,
                    session: i64::try_from(s.session).unwrap_or(i64::MAX),
                    firmware_version: s.firmware_version,
                    booted_slot: s.booted_slot,
                    ip_addresses: s.ip_addresses,
                    uptime_s: i64::try_from(s.uptime_s).unwrap_or(i64::MAX),
                    ts: s.ts.timestamp_millis(),
                    remote_access: s.remote_access,
                    live: true,
                },
            })
        }
        "twin/reported" => {
            let r: r58_proto::TwinReported = payload(topic, bytes)?;
            Ok(Message::Reported {
                device,
                version: i64::try_from(r.version).unwrap_or(i64::MAX),
                applied: serde_json::to_value(r.applied).unwrap_or_default(),
                errors: serde_json::to_value(r.errors).unwrap_or_default(),
                live: true,
            })
        }
        "cmd/status" => {
            let c: r58_proto::CmdStatus = payload(topic, bytes)?;
            let state = serde_json::to_value(c.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            Ok(Message::CmdStatus {
                device,
                id: c.id,
                name: c.name,
                state,
                progress: i64::from(c.progress),
                message: c.message,
                result: c.result,
            })
        }
        _ if what.starts_with("jobs/") => {
            let job_id = what
                .strip_prefix("jobs/")
                .and_then(|r| r.strip_suffix("/update"))
                .unwrap_or_default();
            if !r58_proto::valid_device_id(job_id) {
                return Err(ParseError::Topic(topic.into()));
            }
            let u: r58_proto::JobUpdate = payload(topic, bytes)?;
            if u.job_id != job_id {
                return Err(ParseError::Payload {
                    topic: topic.into(),
                    reason: format!("job_id {:?} is not the topic's", u.job_id),
                });
            }
            let reason = u
                .reason
                .and_then(|r| serde_json::to_value(r).ok())
                .and_then(|v| v.as_str().map(str::to_string));
            Ok(Message::JobUpdate {
                device,
                job_id: u.job_id,
                phase: u.phase.as_str().to_string(),
                progress: i64::from(u.progress),
                reason,
                details: u.details,
            })
        }
        _ => match what.strip_prefix("telemetry/") {
            Some(stream) if r58_proto::valid_stream_name(stream) => {
                let t: TelemetryIn<'_> = payload(topic, bytes)?;
                if t.data.get().len() > MAX_TELEMETRY_DATA {
                    return Err(ParseError::Payload {
                        topic: topic.into(),
                        reason: format!(
                            "data of {} bytes is over the {MAX_TELEMETRY_DATA} kept",
                            t.data.get().len()
                        ),
                    });
                }
                // Retention goes by the sample's time: one from the future would stay.
                if t.ts.timestamp_millis() > crate::db::now_ms() + MAX_CLOCK_AHEAD_MS {
                    return Err(ParseError::Payload {
                        topic: topic.into(),
                        reason: format!("ts {} is in the future", t.ts),
                    });
                }
                Ok(Message::Telemetry {
                    figures: figures(stream, t.data),
                    device,
                    stream: stream.to_string(),
                    seq: i64::try_from(t.seq).unwrap_or(i64::MAX),
                    ts: t.ts.timestamp_millis(),
                    data: t.data.get().to_string(),
                })
            }
            _ => Err(ParseError::Topic(topic.into())),
        },
    }
}

pub fn client_id(cfg: &MqttConfig) -> String {
    if !cfg.client_id.is_empty() {
        return cfg.client_id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!(
        "r58-fleet-{}",
        if host.is_empty() { "replica" } else { &host }
    )
}

fn options(cfg: &MqttConfig, client_id: String) -> Result<MqttOptions, FleetError> {
    let broker = r58_tls::parse_broker(&cfg.broker)?;
    let mut opts = MqttOptions::new(client_id, broker.host, broker.port);
    opts.set_keep_alive(Duration::from_secs(u64::from(cfg.keepalive_seconds.max(5))));
    opts.set_max_packet_size(Some(1 << 20));
    if broker.tls {
        let tls = r58_tls::client_config(&cfg.ca_file, &cfg.cert_file, &cfg.key_file)?;
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    Ok(opts)
}

/// Connects and spawns the event loop and the database writer; returns the publisher the
/// API sends commands, desired config and jobs with.
///
/// Two connections: the ingest one (MQTT 5: shared subscriptions) only subscribes and
/// acknowledges; publishing goes over its own (`crate::mqtt::publisher`). rumqttc stops reading
/// *all* requests — acknowledgements included — while its outgoing in-flight window is full,
/// and on MQTT 5 that window is the broker's receive maximum (`max_inflight_messages`, 32
/// here): a command to 10 000 devices on the ingest connection stalled the ingest behind it,
/// and went out 32 at a time.
///
/// `publisher_up` is notified each time the publishing connection is (re)established.
pub fn start(
    cfg: &MqttConfig,
    db: Db,
    stats: Arc<IngestStats>,
    publisher_up: Arc<tokio::sync::Notify>,
) -> Result<crate::mqtt::publisher::Publisher, FleetError> {
    let id = client_id(cfg);
    let mut opts = options(cfg, id.clone())?;
    opts.set_clean_start(false);
    // Keep the session (and QoS 1 messages) for a day while this replica is away.
    opts.set_session_expiry_interval(Some(86_400));
    opts.set_manual_acks(true);
    // How many unacknowledged QoS 1 messages the broker may have in flight to this replica:
    // acks wait for the commit, so this window is what keeps the ingest streaming.
    opts.set_receive_maximum(Some(RECEIVE_MAXIMUM));
    let (client, eventloop) = AsyncClient::new(opts, 1024);
    // Larger than the broker's in-flight window: the event loop never waits on the writer
    // (it must keep answering pings), the window itself is the back-pressure.
    let (tx, rx) = mpsc::channel::<Held>(usize::from(RECEIVE_MAXIMUM) * 2);
    let reread = (cfg.reread_retained_seconds > 0)
        .then(|| Duration::from_secs(u64::from(cfg.reread_retained_seconds)));
    tokio::spawn(run_eventloop(
        eventloop,
        client.clone(),
        cfg.share_group.clone(),
        reread,
        tx,
        stats.clone(),
    ));
    tokio::spawn(run_writer(rx, client, db, stats));

    crate::mqtt::publisher::Publisher::start(cfg, &id, publisher_up)
}

/// How long the plain subscriptions to retained documents stay, each time.
const RETAINED_WINDOW: Duration = Duration::from_secs(3);

/// On a connection: the shared subscriptions, then the retained documents — read now, and
/// again every `reread` while this connection (`generation`) lasts.
async fn subscribe(
    c: AsyncClient,
    group: String,
    reread: Option<Duration>,
    connection: Arc<AtomicU64>,
    generation: u64,
) {
    for f in INGEST_FILTERS {
        if c.subscribe(format!("$share/{group}/{f}"), QoS::AtLeastOnce)
            .await
            .is_err()
        {
            return;
        }
    }
    loop {
        for f in RETAINED_FILTERS {
            if c.subscribe(f, QoS::AtLeastOnce).await.is_err() {
                return;
            }
        }
        // The retained documents arrive right after the subscription; then the shared
        // subscriptions carry everything.
        tokio::time::sleep(RETAINED_WINDOW).await;
        if connection.load(Ordering::Relaxed) != generation {
            return; // reconnected meanwhile: the new connection's window is not ours to end
        }
        for f in RETAINED_FILTERS {
            if c.unsubscribe(f).await.is_err() {
                return;
            }
        }
        let Some(every) = reread else { return };
        tokio::time::sleep(every).await;
        if connection.load(Ordering::Relaxed) != generation {
            return; // a newer connection has its own
        }
        tracing::debug!("reading the retained device documents again");
    }
}

/// A received message and its share of [`HELD_KIB`], given back when its batch is committed.
type Held = (Publish, OwnedSemaphorePermit);

/// What a message costs of [`HELD_KIB`]: its topic and payload, in KiB rounded up.
fn held_kib(p: &Publish) -> u32 {
    let bytes = p.topic.len() + p.payload.len();
    u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(HELD_KIB)
        .clamp(1, HELD_KIB)
}

async fn run_eventloop(
    mut ev: EventLoop,
    client: AsyncClient,
    group: String,
    reread: Option<Duration>,
    tx: mpsc::Sender<Held>,
    stats: Arc<IngestStats>,
) {
    let held = Arc::new(Semaphore::new(HELD_KIB as usize));
    let connection = Arc::new(AtomicU64::new(0));
    let mut backoff = Duration::from_millis(500);
    loop {
        match ev.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(500);
                stats.connected.store(1, Ordering::Relaxed);
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                let generation = connection.fetch_add(1, Ordering::Relaxed) + 1;
                tokio::spawn(subscribe(
                    client.clone(),
                    group.clone(),
                    reread,
                    connection.clone(),
                    generation,
                ));
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                // Bounded in number and bytes: when the database falls behind, stop
                // reading from the broker (it holds the messages) instead of growing
                // without limit. The writer gives the bytes back after each commit, without
                // waiting on this loop.
                let Ok(permit) = held.clone().acquire_many_owned(held_kib(&p)).await else {
                    return;
                };
                if tx.send((p, permit)).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                stats.connected.store(0, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_in = ?backoff, "broker connection");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn run_writer(
    mut rx: mpsc::Receiver<Held>,
    client: AsyncClient,
    db: Db,
    stats: Arc<IngestStats>,
) {
    // Unbounded, but never more than the broker's in-flight window of messages: only
    // unacknowledged messages are in it.
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    tokio::spawn(run_acker(ack_rx, client));
    let mut pubs: Vec<Publish> = Vec::with_capacity(BATCH_MAX);
    let mut permits: Vec<OwnedSemaphorePermit> = Vec::with_capacity(BATCH_MAX);
    while let Some((first, permit)) = rx.recv().await {
        pubs.clear();
        pubs.push(first);
        permits.push(permit);
        // Gather for a moment: one transaction per message would spend the time waking
        // threads and committing, not storing (measured by bench/fleet-scale).
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while pubs.len() < BATCH_MAX {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((p, permit))) => {
                    pubs.push(p);
                    permits.push(permit);
                }
                _ => break,
            }
        }
        // The parsed messages, and beside them where each came from (to set one aside).
        let mut batch = Vec::with_capacity(pubs.len());
        let mut sources = Vec::with_capacity(pubs.len());
        for p in &pubs {
            let topic = String::from_utf8_lossy(&p.topic);
            match parse(&topic, &p.payload) {
                // Without "retain as published", the broker sets the flag only on copies
                // from its retained store.
                Ok(m) => {
                    batch.push(if p.retain { m.retained_copy() } else { m });
                    sources.push(p);
                }
                Err(e) => {
                    // Acknowledged (a redelivery would fail the same way), but never silent.
                    tracing::warn!(error = %e, %topic, "rejected a device message");
                    set_aside(&db, &stats, &topic, &e.to_string(), &p.payload).await;
                }
            }
        }
        let outcome = store(&db, &stats, &batch, &sources).await;
        if let Some(ts) = outcome.oldest_ts {
            stats
                .max_lag_ms
                .fetch_max(crate::db::now_ms() - ts, Ordering::Relaxed);
        }
        stats
            .messages
            .fetch_add(outcome.stored as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        // Acks go to the event loop through its bounded request channel. Handed to another
        // task so this one never waits on it: the event loop may itself be waiting for this
        // task to take the next message (found at 10 000 devices: both stalled).
        // Only the packet ids are needed for that: the payloads are given back now.
        let acks: Vec<Publish> = pubs
            .drain(..)
            .filter(|p| p.qos != QoS::AtMostOnce)
            .map(|mut p| {
                p.payload = Default::default();
                p.topic = Default::default();
                p
            })
            .collect();
        permits.clear();
        if !acks.is_empty() && ack_tx.send(acks).is_err() {
            return;
        }
    }
}

/// Stores a batch in one transaction, retried while the database is unreachable (nothing
/// is acknowledged before it is stored). When the database refuses the batch, its messages
/// are stored one by one and those it refuses on their own are set aside: one bad message
/// never holds up the others.
async fn store(db: &Db, stats: &IngestStats, batch: &[Message], sources: &[&Publish]) -> Stored {
    match store_retrying(db, stats, batch).await {
        Ok(o) => Stored {
            oldest_ts: o.oldest_ts,
            stored: batch.len(),
        },
        Err(e) => {
            tracing::warn!(error = %r58_log::error_chain(&e), messages = batch.len(),
                "the database refused a batch: storing its messages one by one");
            let mut out = Stored::default();
            for (m, p) in batch.iter().zip(sources) {
                match store_retrying(db, stats, std::slice::from_ref(m)).await {
                    Ok(o) => {
                        out.stored += 1;
                        out.oldest_ts = match (out.oldest_ts, o.oldest_ts) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    Err(e) => {
                        let topic = String::from_utf8_lossy(&p.topic);
                        let reason = r58_log::error_chain(&e);
                        tracing::error!(%topic, %reason, "the database refused a device message: set aside");
                        set_aside(db, stats, &topic, &reason, &p.payload).await;
                    }
                }
            }
            out
        }
    }
}

/// What [`store`] stored of a batch.
#[derive(Default)]
struct Stored {
    oldest_ts: Option<i64>,
    stored: usize,
}

/// `db.ingest`, retried with backoff until it is stored or refused (`Err`, only for an error
/// the database gives for the data while it otherwise answers).
async fn store_retrying(
    db: &Db,
    stats: &IngestStats,
    messages: &[Message],
) -> Result<crate::db::IngestOutcome, crate::db::DbError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match db.ingest(messages).await {
            Ok(o) => return Ok(o),
            Err(e) if e.is_refusal() && db.answers().await => return Err(e),
            Err(e) => {
                stats.db_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %r58_log::error_chain(&e), retry_in = ?delay, "storing a batch");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Counts, and keeps in `rejected_messages`, a message that will never be stored.
async fn set_aside(db: &Db, stats: &IngestStats, topic: &str, reason: &str, payload: &[u8]) {
    stats.rejected.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = db.reject(topic, reason, payload).await {
        tracing::error!(error = %r58_log::error_chain(&e), %topic, "keeping a rejected message");
    }
}

/// Sends the PUBACKs of committed batches, in order.
async fn run_acker(mut rx: mpsc::UnboundedReceiver<Vec<Publish>>, client: AsyncClient) {
    while let Some(batch) = rx.recv().await {
        for p in &batch {
            if client.ack(p).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_messages_and_rejects_others() {
        let s = br#"{"status":"lost","firmware_version":"1.2.0","booted_slot":"A","ip_addresses":["10.0.0.2"],"uptime_s":5,"session":7,"ts":"2026-01-01T00:00:00Z"}"#;
        match parse("r58/v1/r58-a/state", s).unwrap() {
            Message::State { device, state } => {
                assert_eq!(
                    (device.as_str(), state.status.as_str(), state.session),
                    ("r58-a", "lost", 7)
                );
                assert_eq!(state.ts, 1_767_225_600_000);
            }
            m => panic!("{m:?}"),
        }
        let t = br#"{"seq":3,"ts":"2026-01-01T00:00:01Z","data":{"temperatures_c":{"a":41.5,"b":55.0},"disk":{"free_mib":10,"total_mib":20}}}"#;
        match parse("r58/v1/r58-a/telemetry/system", t).unwrap() {
            Message::Telemetry {
                stream,
                seq,
                figures,
                ..
            } => {
                assert_eq!((stream.as_str(), seq), ("system", 3));
                assert_eq!(
                    figures,
                    Figures {
                        recording: None,
                        temperature_c: Some(55.0),
                        disk: Some((10, 20))
                    }
                );
            }
            m => panic!("{m:?}"),
        }
        // `data` is kept as sent; a sample whose data has no figures is still a sample.
        let odd = br#"{"seq":4,"ts":"2026-01-01T00:00:02Z","data": {"temperatures_c": "hot",  "disk": 3}}"#;
        match parse("r58/v1/r58-a/telemetry/system", odd).unwrap() {
            Message::Telemetry { data, figures, .. } => {
                assert_eq!(data, r#"{"temperatures_c": "hot",  "disk": 3}"#);
                assert_eq!(figures, Figures::default());
            }
            m => panic!("{m:?}"),
        }
        for bad in [
            &br#"{"seq":4,"ts":"2026-01-01T00:00:02Z","data":{"a":}}"#[..],
            br#"{"seq":4,"ts":"2026-01-01T00:00:02Z"}"#,
            br#"{"seq":-1,"ts":"2026-01-01T00:00:02Z","data":{}}"#,
        ] {
            assert!(matches!(
                parse("r58/v1/r58-a/telemetry/system", bad),
                Err(ParseError::Payload { .. })
            ));
        }
        // Stream names are bounded (each is a row key); a sample from the future would never
        // be pruned.
        let long = format!("r58/v1/r58-a/telemetry/{}", "s".repeat(33));
        assert!(matches!(parse(&long, t), Err(ParseError::Topic(_))));
        assert!(matches!(
            parse("r58/v1/r58-a/telemetry/Sys tem", t),
            Err(ParseError::Topic(_))
        ));
        let future = format!(
            r#"{{"seq":5,"ts":"{}","data":{{}}}}"#,
            (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339()
        );
        assert!(matches!(
            parse("r58/v1/r58-a/telemetry/system", future.as_bytes()),
            Err(ParseError::Payload { .. })
        ));
        // A sample's data is bounded in size; at the bound it is kept.
        let sample = |n: usize| {
            format!(
                r#"{{"seq":6,"ts":"2026-01-01T00:00:02Z","data":"{}"}}"#,
                "x".repeat(n - 2)
            )
        };
        assert!(parse(
            "r58/v1/r58-a/telemetry/system",
            sample(MAX_TELEMETRY_DATA).as_bytes()
        )
        .is_ok());
        assert!(matches!(
            parse(
                "r58/v1/r58-a/telemetry/system",
                sample(MAX_TELEMETRY_DATA + 1).as_bytes()
            ),
            Err(ParseError::Payload { .. })
        ));
        let rec = serde_json::json!({"inputs": {"hdmi": {"recording": false}, "cam": {"recording": true}}});
        let rec = serde_json::value::to_raw_value(&rec).unwrap();
        assert_eq!(figures("recorder", &rec).recording, Some(true));
        assert!(matches!(
            parse("r58/v1/R58/state", s),
            Err(ParseError::DeviceId(_))
        ));
        assert!(matches!(
            parse("r58/v1/r58-a/cmd/ping", b"{}"),
            Err(ParseError::Topic(_))
        ));
        assert!(matches!(
            parse("r58/v1/r58-a/telemetry/a/b", t),
            Err(ParseError::Topic(_))
        ));
        assert!(matches!(
            parse("r58/v1/r58-a/state", b"{"),
            Err(ParseError::Payload { .. })
        ));
    }
}
