//! The agent's event loop: one task owns the MQTT connection, the offline queue and the
//! timers; commands run in tasks of their own and report back through a bounded channel.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r58_config::{ConfigPaths, R58Config};
use r58_proto::{
    self as proto, CmdState, Inbound, State, Status, Telemetry, TwinDesired, TwinReported,
};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, Outgoing, QoS};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::commands::{self, Ctx, Refusal};
use crate::error::AgentError;
use crate::ids::SeenIds;
use crate::link::{backoff, Link};
use crate::queue::{DiskQueue, Queued};
use crate::system::System;
use crate::telemetry::{self, CpuSampler};
use crate::twin;

const WINDOW: usize = 32;

/// Messages from command tasks to the loop.
enum ToLoop {
    Status(proto::CmdStatus),
    SetStatus(Status, oneshot::Sender<()>),
    /// What RAUC says runs: the booted slot and its bundle's version (when it knows one).
    Running {
        slot: String,
        version: Option<String>,
    },
}

#[derive(Default, Serialize, Deserialize)]
struct Persisted {
    session: u64,
    /// Last sequence number per telemetry stream.
    #[serde(default)]
    stream_seq: BTreeMap<String, u64>,
    twin_version: Option<u64>,
    twin_applied: BTreeMap<String, Value>,
}

pub struct Agent {
    cfg: R58Config,
    paths: ConfigPaths,
    system: Arc<dyn System>,
    http: reqwest::Client,
    queue: DiskQueue,
    seen: SeenIds,
    state_file: PathBuf,
    persisted: Persisted,
    link: Link,
    status: Status,
    started: Instant,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Monotonic ms of the last loop turn, for the watchdog.
    pub heartbeat: Arc<AtomicU64>,
    ready_sent: bool,
    /// Messages produced since the last flush (see `flush`).
    outbox: VecDeque<Queued>,
    /// The OTA engine's inbox (None with `ota.enabled = false`).
    ota: Option<mpsc::Sender<r58_ota::In>>,
    /// What runs: RAUC's version of the booted slot's bundle, else this build's.
    firmware_version: String,
    /// The booted slot: `R58_BOOTED_SLOT` if set, else RAUC's answer, else the boot
    /// loader's `rauc.slot=` on the kernel command line.
    booted_slot: Option<String>,
}

/// What a publish request carried, in the order the requests were made.
enum Sent {
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
struct Events {
    rx: mpsc::Receiver<Result<Event, ConnectionError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Events {
    fn spawn(mut events: EventLoop) -> Self {
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
    async fn next(&mut self) -> Result<Event, ConnectionError> {
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

struct Conn {
    client: AsyncClient,
    events: Events,
    expect: VecDeque<Sent>,
    pkids: HashMap<u16, u64>,
    in_flight: VecDeque<u64>,
    /// Messages sent directly and not yet acknowledged, in send order: written to the
    /// disk queue if the connection drops before the broker acknowledges them.
    direct: VecDeque<(u64, Queued)>,
    direct_pkids: HashMap<u16, u64>,
    next_direct: u64,
}

/// The slot the boot loader booted, from its `rauc.slot=` on the kernel command line.
fn slot_on_cmdline(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rauc.slot="))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn now_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64 + 1
}

impl Agent {
    pub fn new(
        cfg: R58Config,
        paths: ConfigPaths,
        system: Arc<dyn System>,
    ) -> Result<Self, AgentError> {
        if cfg.agent.device_id.is_empty() {
            return Err(AgentError::NoDeviceId);
        }
        let dir = cfg.agent.state_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| AgentError::StateDir {
            path: dir.clone(),
            source,
        })?;
        let queue = DiskQueue::open(&dir.join("queue"), cfg.agent.queue_max_messages as usize)?;
        let seen = SeenIds::open(&dir.join("command-ids.json"));
        let state_file = dir.join("agent-state.json");
        let persisted: Persisted = r58_fs::read_json(&state_file)
            .ok()
            .flatten()
            .unwrap_or_default();
        let tls = if crate::mqtt::parse_broker(&cfg.agent.broker)?.2 {
            Some(crate::mqtt::tls_config(&cfg.agent)?)
        } else {
            None
        };
        Ok(Self {
            cfg,
            paths,
            system,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            queue,
            seen,
            state_file,
            persisted,
            link: Link::Connecting { attempt: 0 },
            status: Status::Online,
            started: Instant::now(),
            tls,
            heartbeat: Arc::new(AtomicU64::new(1)),
            ready_sent: false,
            outbox: VecDeque::new(),
            ota: None,
            firmware_version: env!("CARGO_PKG_VERSION").into(),
            booted_slot: std::env::var("R58_BOOTED_SLOT").ok().or_else(|| {
                std::fs::read_to_string("/proc/cmdline")
                    .ok()
                    .and_then(|c| slot_on_cmdline(&c))
            }),
        })
    }

    fn id(&self) -> &str {
        &self.cfg.agent.device_id
    }

    fn save(&self) {
        if let Err(e) = r58_fs::write_json_atomic(&self.state_file, &self.persisted) {
            tracing::error!(error = %e, "persisting agent state");
        }
    }

    fn set_link(&mut self, next: Link) {
        if self.link != next {
            tracing::info!(from = self.link.name(), to = next.name(), state = ?next, "link");
            self.link = next;
        }
    }

    fn state_doc(&self, status: Status) -> Vec<u8> {
        let doc = State {
            status,
            firmware_version: self.firmware_version.clone(),
            booted_slot: self.booted_slot.clone(),
            ip_addresses: telemetry::ip_addresses(),
            uptime_s: telemetry::uptime_s(),
            session: self.persisted.session,
            ts: chrono::Utc::now(),
        };
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    /// Hands a message to `flush`: sent at once while online, else kept on disk.
    fn enqueue(&mut self, topic: String, payload: &impl Serialize) {
        let payload = serde_json::to_string(payload).unwrap_or_default();
        self.outbox.push_back(Queued {
            topic,
            payload,
            retain: false,
        });
    }

    fn to_disk(&mut self, msg: &Queued) {
        if let Err(e) = self.queue.push(msg) {
            tracing::error!(error = %e, "offline queue write failed");
        }
    }

    /// Online with nothing queued on disk: publish directly (QoS 1), remembering each
    /// message until its PUBACK. Otherwise (offline, or older messages still on disk):
    /// append to the disk queue, which keeps the order. Then drain the disk queue.
    async fn flush(&mut self, mut conn: Option<&mut Conn>) {
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
                    match c
                        .client
                        .publish(msg.topic.clone(), QoS::AtLeastOnce, msg.retain, body)
                        .await
                    {
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
    fn requeue_direct(&mut self, conn: &mut Conn) {
        let unacked: Vec<(u64, Queued)> = conn.direct.drain(..).collect();
        for (_, msg) in unacked {
            self.to_disk(&msg);
        }
    }

    fn sample_telemetry(&mut self, cpu: &mut CpuSampler, recorder: Value) {
        let data_dir = self.cfg.recorder.data_dir.clone();
        let system = telemetry::system(cpu, &data_dir, self.queue.len(), self.queue.dropped());
        for (stream, data) in [
            ("system", system),
            ("network", telemetry::network()),
            ("recorder", recorder),
        ] {
            let seq = self
                .persisted
                .stream_seq
                .entry(stream.to_string())
                .or_insert(0);
            *seq += 1;
            let t = Telemetry {
                seq: *seq,
                ts: chrono::Utc::now(),
                data,
            };
            let topic = proto::telemetry(self.id(), stream);
            self.enqueue(topic, &t);
        }
        self.save();
    }

    fn connect(&mut self) -> Result<Conn, AgentError> {
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

    async fn publish(
        &self,
        conn: &mut Conn,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        seq: Option<u64>,
    ) -> bool {
        match conn
            .client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
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
    async fn drain(&mut self, conn: &mut Conn) {
        if self.link != Link::Online || conn.in_flight.len() >= WINDOW {
            return;
        }
        let after = conn.in_flight.back().copied();
        let batch = self.queue.peek(after, WINDOW - conn.in_flight.len());
        for (seq, msg) in batch {
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

    async fn on_connected(&mut self, conn: &mut Conn) {
        self.set_link(Link::Online);
        // For the boot health check: the broker was reached during this boot.
        let mark = self.cfg.agent.state_dir.join(crate::health::CONNECTED_FILE);
        let record = crate::commit::ConnectedRecord {
            boot_id: r58_ota::engine::read_boot_id(&self.cfg.ota.boot_id_file),
            ts: chrono::Utc::now(),
            session: self.persisted.session,
        };
        if let Err(e) = r58_fs::write_json_replace(&mark, &record) {
            tracing::warn!(error = %e, "cannot record the connection for the health check");
        }
        let id = self.id().to_string();
        let _ = conn
            .client
            .subscribe(proto::cmd_filter(&id), QoS::AtLeastOnce)
            .await;
        let _ = conn
            .client
            .subscribe(proto::twin_desired(&id), QoS::AtLeastOnce)
            .await;
        if self.ota.is_some() {
            let _ = conn
                .client
                .subscribe(proto::jobs_next(&id), QoS::AtLeastOnce)
                .await;
        }
        let doc = self.state_doc(self.status);
        self.publish(conn, proto::state(&id), doc, true, None).await;
        if !self.ready_sent {
            r58_systemd::notify_or_log(&[
                r58_systemd::Notify::Ready,
                r58_systemd::Notify::Status("online".into()),
            ]);
            self.ready_sent = true;
        } else {
            r58_systemd::notify_or_log(&[r58_systemd::Notify::Status("online".into())]);
        }
        self.drain(conn).await;
    }

    async fn on_publish(
        &mut self,
        conn: &mut Conn,
        topic: &str,
        payload: &[u8],
        tx: &mpsc::Sender<ToLoop>,
    ) {
        let id = self.id().to_string();
        match proto::parse_inbound(&id, topic) {
            Some(Inbound::Command(name)) => self.on_command(&name, payload, tx),
            Some(Inbound::TwinDesired) => self.on_twin(conn, payload).await,
            Some(Inbound::Jobs(rest)) if rest == "next" => self.on_job(payload).await,
            // Our own job updates do not come back (only jobs/next is subscribed).
            Some(Inbound::Jobs(_)) => tracing::warn!(topic, "unexpected jobs topic ignored"),
            // `cmd/+` also matches the statuses this agent publishes (MQTT 3.1.1 has no
            // no-local option): its own echo is expected.
            None if topic == proto::cmd_status(&id) => {}
            None => tracing::warn!(topic, "message on an unexpected topic ignored"),
        }
    }

    async fn on_job(&mut self, payload: &[u8]) {
        let Some(ota) = self.ota.clone() else { return };
        match crate::ota::parse_next(payload) {
            Ok(job) => {
                if ota.send(r58_ota::In::Job(job)).await.is_err() {
                    tracing::error!("the OTA engine stopped: job not taken");
                }
            }
            Err((Some(job_id), reason)) => {
                tracing::error!(%job_id, %reason, "OTA job refused");
                let update = proto::JobUpdate {
                    job_id: job_id.clone(),
                    phase: proto::Phase::Failed,
                    progress: 0,
                    reason: Some(proto::Reason::InvalidJob),
                    details: Some(reason),
                    version: String::new(),
                    ts: chrono::Utc::now(),
                };
                self.enqueue(proto::job_update(self.id(), &job_id), &update);
            }
            Err((None, reason)) => {
                tracing::error!(%reason, "jobs/next unusable and has no job id to answer to")
            }
        }
    }

    fn on_command(&mut self, name: &str, payload: &[u8], tx: &mpsc::Sender<ToLoop>) {
        let cmd = match commands::parse(name, payload) {
            Ok(c) => c,
            Err(Refusal::Rejected { id, reason }) => {
                tracing::warn!(command = name, %id, %reason, "command rejected");
                let st = commands::status(&id, name, CmdState::Rejected, 0, Some(reason), None);
                self.enqueue(proto::cmd_status(self.id()), &st);
                return;
            }
            Err(Refusal::Unanswerable(reason)) => {
                tracing::error!(command = name, %reason, "command ignored: no id to answer to");
                return;
            }
        };
        if self.seen.contains(&cmd.id) {
            tracing::info!(command = name, id = %cmd.id, "duplicate command id: not executed again");
            return;
        }
        if let Err(e) = self.seen.insert(&cmd.id) {
            tracing::error!(error = %e, "cannot record command id: refusing to run it");
            let st = commands::status(
                &cmd.id,
                name,
                CmdState::Failed,
                0,
                Some(format!("state write failed: {e}")),
                None,
            );
            self.enqueue(proto::cmd_status(self.id()), &st);
            return;
        }
        let st = commands::status(&cmd.id, name, CmdState::Accepted, 0, None, None);
        self.enqueue(proto::cmd_status(self.id()), &st);
        let ctx = Ctx {
            cfg: self.cfg.clone(),
            system: self.system.clone(),
            http: self.http.clone(),
            ota: self.ota.clone(),
        };
        let tx = tx.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            if commands::is_long(&name) {
                let _ = tx
                    .send(ToLoop::Status(commands::status(
                        &cmd.id,
                        &name,
                        CmdState::InProgress,
                        10,
                        None,
                        None,
                    )))
                    .await;
            }
            let tx2 = tx.clone();
            let before_reboot = || async move {
                let (done, wait) = oneshot::channel();
                if tx2
                    .send(ToLoop::SetStatus(Status::Rebooting, done))
                    .await
                    .is_ok()
                {
                    let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
                }
            };
            let st = match commands::execute(&ctx, &name, &cmd, before_reboot).await {
                Ok(result) => {
                    commands::status(&cmd.id, &name, CmdState::Succeeded, 100, None, Some(result))
                }
                Err(reason) => {
                    commands::status(&cmd.id, &name, CmdState::Failed, 100, Some(reason), None)
                }
            };
            let _ = tx.send(ToLoop::Status(st)).await;
        });
    }

    async fn on_twin(&mut self, conn: &mut Conn, payload: &[u8]) {
        let desired: TwinDesired = match serde_json::from_slice(payload) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "twin/desired is not a desired document; ignored");
                return;
            }
        };
        let reported = if self.persisted.twin_version == Some(desired.version) {
            TwinReported {
                version: desired.version,
                applied: self.persisted.twin_applied.clone(),
                errors: BTreeMap::new(),
                ts: chrono::Utc::now(),
            }
        } else {
            let paths = self.paths.clone();
            let previous = self.persisted.twin_applied.clone();
            let d = desired.clone();
            let outcome =
                match tokio::task::spawn_blocking(move || twin::apply(&paths, &d, &previous)).await
                {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::error!(error = %e, "twin apply panicked");
                        return;
                    }
                };
            if let Some(cfg) = outcome.config {
                tracing::info!(version = desired.version, "desired config applied");
                self.cfg.agent.telemetry_interval_seconds = cfg.agent.telemetry_interval_seconds;
                self.cfg.encoder = cfg.encoder;
                self.persisted.twin_version = Some(desired.version);
                self.persisted.twin_applied = outcome.reported.applied.clone();
                self.save();
                if outcome.restart_recorder {
                    if let Err(e) = self.system.restart_unit("r58-recorder.service").await {
                        tracing::error!(error = %e, "restarting the recorder for new config");
                    }
                }
            } else {
                tracing::warn!(version = desired.version, errors = ?outcome.reported.errors, "desired config refused");
            }
            outcome.reported
        };
        let body = serde_json::to_vec(&reported).unwrap_or_default();
        let topic = proto::twin_reported(self.id());
        self.publish(conn, topic, body, true, None).await;
    }

    fn on_outgoing_publish(&mut self, conn: &mut Conn, pkid: u16) {
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

    fn on_puback(&mut self, conn: &mut Conn, pkid: u16) {
        if let Some(seq) = conn.pkids.remove(&pkid) {
            self.queue.ack(seq);
            conn.in_flight.retain(|s| *s != seq);
        } else if let Some(n) = conn.direct_pkids.remove(&pkid) {
            conn.direct.retain(|(m, _)| *m != n);
        }
    }

    /// Runs until `shutdown` resolves. Never returns an error for connectivity: it retries.
    pub async fn run(mut self, mut shutdown: oneshot::Receiver<()>) {
        let (tx, mut rx) = mpsc::channel::<ToLoop>(256);
        let (ota_out_tx, mut ota_out) = mpsc::channel::<r58_ota::Out>(64);
        let mut engine_task = None;
        if self.cfg.ota.enabled {
            let rauc: Arc<dyn r58_ota::rauc::Rauc> = Arc::new(r58_ota::rauc::DbusRauc {
                conf: self.cfg.ota.rauc_conf.clone(),
            });
            // RAUC may still be starting (D-Bus activation on a busy boot): asked in the
            // background, the state is published again once it answers.
            let (ask, running) = (rauc.clone(), tx.clone());
            tokio::spawn(async move {
                for _ in 0..20 {
                    if let Ok(Ok(sys)) =
                        tokio::time::timeout(Duration::from_secs(10), ask.system()).await
                    {
                        let version = sys.booted_slot().and_then(|s| s.bundle_version.clone());
                        let _ = running
                            .send(ToLoop::Running {
                                slot: sys.booted,
                                version,
                            })
                            .await;
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                tracing::warn!("RAUC did not answer: the state names this build's version");
            });
            let host = Arc::new(crate::ota::AgentHost {
                http: self.http.clone(),
                recorder_api: self.cfg.agent.recorder_api.clone(),
                system: self.system.clone(),
            });
            match r58_ota::Engine::new(
                crate::ota::settings(&self.cfg),
                rauc,
                host,
                self.http.clone(),
                ota_out_tx,
            ) {
                Ok(engine) => {
                    let (in_tx, in_rx) = mpsc::channel(16);
                    self.ota = Some(in_tx);
                    engine_task = Some(tokio::spawn(engine.run(in_rx)));
                }
                Err(e) => {
                    tracing::error!(error = %e, "OTA disabled: its job record cannot be read")
                }
            }
        }
        let mut cpu = CpuSampler::default();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut next_telemetry = Instant::now();
        let ready_deadline =
            Instant::now() + Duration::from_secs(u64::from(self.cfg.agent.ready_timeout_seconds));
        let mut attempt: u32 = 0;
        let mut conn: Option<Conn> = None;
        let mut backoff_until: Option<Instant> = None;
        let mut pending_status: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            self.heartbeat
                .store(now_ms(self.started), Ordering::Relaxed);
            if conn.is_none() && backoff_until.map_or(true, |t| Instant::now() >= t) {
                self.set_link(Link::Connecting { attempt });
                match self.connect() {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot prepare the connection");
                        attempt += 1;
                    }
                }
                backoff_until = None;
            }
            let poll = async {
                match conn.as_mut() {
                    Some(c) => c.events.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                ev = poll => match ev {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        attempt = 0;
                        if let Some(mut c) = conn.take() {
                            self.on_connected(&mut c).await;
                            conn = Some(c);
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        if let Some(mut c) = conn.take() {
                            self.on_publish(&mut c, &p.topic, &p.payload, &tx).await;
                            conn = Some(c);
                        }
                    }
                    Ok(Event::Incoming(Incoming::PubAck(a))) => {
                        if let Some(mut c) = conn.take() {
                            self.on_puback(&mut c, a.pkid);
                            for done in pending_status.drain(..) {
                                let _ = done.send(());
                            }
                            conn = Some(c);
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(mut c) = conn.take() {
                            self.on_outgoing_publish(&mut c, pkid);
                            conn = Some(c);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let wait = backoff(attempt, Duration::from_secs(u64::from(self.cfg.agent.reconnect_max_seconds)), now_ms(self.started) * 7919);
                        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "broker connection lost or refused");
                        self.set_link(Link::Backoff { attempt, wait });
                        r58_systemd::notify_or_log(&[r58_systemd::Notify::Status(format!("offline: {e}"))]);
                        attempt += 1;
                        if let Some(mut c) = conn.take() {
                            self.requeue_direct(&mut c);
                        }
                        backoff_until = Some(Instant::now() + wait);
                    }
                },
                out = ota_out.recv(), if engine_task.is_some() => match out {
                    Some(r58_ota::Out::Update(u)) => {
                        let topic = proto::job_update(self.id(), &u.job_id);
                        self.enqueue(topic, &u);
                    }
                    Some(r58_ota::Out::Status(status, done)) => {
                        let _ = tx.try_send(ToLoop::SetStatus(status, done));
                    }
                    None => engine_task = None,
                },
                msg = rx.recv() => match msg {
                    Some(ToLoop::Status(st)) => self.enqueue(proto::cmd_status(self.id()), &st),
                    Some(ToLoop::Running { slot, version }) => {
                        if std::env::var_os("R58_BOOTED_SLOT").is_none() {
                            self.booted_slot = Some(slot);
                        }
                        if let Some(v) = version {
                            self.firmware_version = v;
                        }
                        if let Some(mut c) = conn.take() {
                            if self.link == Link::Online {
                                let doc = self.state_doc(self.status);
                                self.publish(&mut c, proto::state(self.id()), doc, true, None).await;
                            }
                            conn = Some(c);
                        }
                    }
                    Some(ToLoop::SetStatus(status, done)) => {
                        self.status = status;
                        match conn.take() {
                            Some(mut c) if self.link == Link::Online => {
                                let doc = self.state_doc(status);
                                let topic = proto::state(self.id());
                                self.publish(&mut c, topic, doc, true, None).await;
                                pending_status.push(done);
                                conn = Some(c);
                            }
                            other => {
                                conn = other;
                                let _ = done.send(());
                            }
                        }
                    }
                    None => {}
                },
                _ = tick.tick() => {
                    if Instant::now() >= next_telemetry {
                        next_telemetry = Instant::now() + Duration::from_secs(u64::from(self.cfg.agent.telemetry_interval_seconds));
                        let recorder = telemetry::recorder(&self.http, &self.cfg.agent.recorder_api).await;
                        self.sample_telemetry(&mut cpu, recorder);
                    }
                    if !self.ready_sent && Instant::now() >= ready_deadline {
                        tracing::warn!("broker not reached yet: READY anyway, running offline");
                        r58_systemd::notify_or_log(&[r58_systemd::Notify::Ready, r58_systemd::Notify::Status("offline".into())]);
                        self.ready_sent = true;
                    }
                }
            }
            self.flush(conn.as_mut()).await;
        }
        self.ota = None;
        if let Some(t) = engine_task {
            t.abort();
        }
        // Job updates produced so far go to disk with the rest.
        while let Ok(r58_ota::Out::Update(u)) = ota_out.try_recv() {
            let topic = proto::job_update(self.id(), &u.job_id);
            self.enqueue(topic, &u);
        }
        self.shutdown(conn).await;
    }

    async fn shutdown(&mut self, conn: Option<Conn>) {
        self.set_link(Link::Stopping);
        r58_systemd::notify_or_log(&[r58_systemd::Notify::Stopping]);
        // Nothing produced is lost: pending and unacknowledged messages go to disk.
        self.flush(None).await;
        let Some(mut c) = conn else { return };
        self.requeue_direct(&mut c);
        let doc = self.state_doc(Status::Offline);
        let topic = proto::state(self.id());
        self.publish(&mut c, topic, doc, true, None).await;
        // Wait for the broker to take it (bounded), then say goodbye without the will.
        let deadline = tokio::time::sleep(Duration::from_secs(3));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                ev = c.events.next() => match ev {
                    Ok(Event::Incoming(Incoming::PubAck(_))) => break,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        let _ = c.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while c.events.next().await.is_ok() {}
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::slot_on_cmdline;

    #[test]
    fn the_booted_slot_is_read_from_the_boot_loaders_command_line() {
        let line = "root=PARTLABEL=rootfs_b ro rootwait panic=10 rauc.slot=B console=ttyS0\n";
        assert_eq!(slot_on_cmdline(line).as_deref(), Some("B"));
        assert_eq!(slot_on_cmdline("root=/dev/sda1 ro quiet"), None);
        assert_eq!(slot_on_cmdline("rauc.slot= quiet"), None);
    }
}
