//! The agent's event loop: one task owns the MQTT connection, the offline queue and the
//! timers; commands run in tasks of their own and report back through a bounded channel.
//! The connection is in `conn`, delivery (direct or through the disk queue) in
//! `crate::delivery`, what arrives from the broker in `inbound`, what runs (slot, version) in
//! `running`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r58_config::{ConfigPaths, R58Config};
use r58_proto::{self as proto, State, Status, Telemetry};
use rumqttc::{Event, Incoming, Outgoing};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::commands;
use crate::delivery::{Delivery, Publish};
use crate::error::AgentError;
use crate::ids::SeenIds;
use crate::link::{backoff, Link};
use crate::queue::DiskQueue;
use crate::system::System;
use crate::telemetry::{self, CpuSampler};

mod conn;
mod inbound;
mod running;

use conn::{Conn, Connection};

/// What woke the event loop.
enum Woke {
    Shutdown,
    Broker(Result<Event, rumqttc::ConnectionError>),
    Ota(Option<r58_ota::Out>),
    Task(Option<ToLoop>),
    Tick,
}

/// Logs a change of the connection's state (`from`, `to`, and the state with its details).
fn log_link(logged: &mut Link, now: Link) {
    if logged.name() != now.name() || matches!(now, Link::Connecting { .. }) && *logged != now {
        tracing::info!(from = logged.name(), to = now.name(), state = ?now, "link");
    }
    *logged = now;
}

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
    delivery: Delivery,
    seen: SeenIds,
    state_file: PathBuf,
    persisted: Persisted,
    status: Status,
    started: Instant,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Monotonic ms of the last loop turn, for the watchdog.
    pub heartbeat: Arc<AtomicU64>,
    ready_sent: bool,
    /// The OTA engine's inbox (None with `ota.enabled = false`).
    ota: Option<mpsc::Sender<r58_ota::In>>,
    /// What runs: RAUC's version of the booted slot's bundle, else this build's.
    firmware_version: String,
    /// The booted slot: `R58_BOOTED_SLOT` if set, else RAUC's answer, else the boot
    /// loader's `rauc.slot=` on the kernel command line.
    booted_slot: Option<String>,
    /// The remote-access tunnel's dialer.
    remote: crate::remote_access::RemoteAccess,
    /// The remote-access state last published (the state is published again when it
    /// changes, at most once a tick).
    remote_published: Option<r58_proto::RemoteAccessState>,
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
            delivery: Delivery::new(queue),
            seen,
            state_file,
            persisted,
            status: Status::Online,
            started: Instant::now(),
            tls,
            heartbeat: Arc::new(AtomicU64::new(1)),
            ready_sent: false,
            ota: None,
            firmware_version: env!("CARGO_PKG_VERSION").into(),
            booted_slot: running::slot_at_start(),
            remote: Default::default(),
            remote_published: None,
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

    /// Publishes the retained `state` with the current status.
    async fn publish_state(&mut self, conn: &mut Conn) {
        self.remote_published = self.remote.state();
        let doc = self.state_doc(self.status);
        let topic = proto::state(self.id());
        self.delivery.send_document(conn, &topic, doc, true);
    }

    /// Hands a message to the delivery (sent at the next flush); an oversized one is
    /// dropped here, logged and counted.
    fn enqueue(&mut self, topic: String, payload: &impl Serialize) {
        let payload = serde_json::to_string(payload).unwrap_or_default();
        if let Err(e) = self.delivery.enqueue(topic, payload) {
            tracing::error!(error = %e, "message over the size limit dropped");
        }
    }

    /// Sends what was produced: directly while `online` (the accepted connection), else to
    /// disk; then drains the disk.
    fn flush(&mut self, online: Option<&mut Conn>) {
        self.delivery.flush(online.map(|c| c as &mut dyn Publish));
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
            remote_access: self.remote.state(),
        };
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    fn sample_telemetry(&mut self, cpu: &mut CpuSampler, recorder: Value) {
        let data_dir = self.cfg.recorder.data_dir.clone();
        let queue = self.delivery.queue();
        let system = telemetry::system(cpu, &data_dir, queue.len(), queue.dropped());
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

    /// Runs until `shutdown` resolves. Never returns an error for connectivity: it retries.
    pub async fn run(mut self, mut shutdown: oneshot::Receiver<()>) {
        self.remote.apply(&self.cfg);
        let (tx, mut rx) = mpsc::channel::<ToLoop>(256);
        let (ota_out_tx, mut ota_out) = mpsc::channel::<r58_ota::Out>(64);
        let mut engine_task = None;
        if self.cfg.ota.enabled {
            let rauc: Arc<dyn r58_ota::rauc::Rauc> = Arc::new(r58_ota::rauc::DbusRauc {
                conf: self.cfg.ota.rauc_conf.clone(),
            });
            // Published again once RAUC answers.
            running::ask_rauc(rauc.clone(), tx.clone());
            let host = Arc::new(crate::ota::AgentHost {
                http: self.http.clone(),
                recorder_api: self.cfg.agent.recorder_api.clone(),
                api_token: self.cfg.api.token.clone(),
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
        let mut state = Connection::Waiting {
            attempt: 0,
            until: Instant::now(),
        };
        let mut logged = Link::Connecting { attempt: 0 };
        let mut pending_status: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            self.heartbeat
                .store(now_ms(self.started), Ordering::Relaxed);
            if let Connection::Waiting { attempt, until } = state {
                if Instant::now() >= until {
                    state = match self.connect() {
                        Ok(conn) => Connection::Connecting { attempt, conn },
                        Err(e) => {
                            tracing::error!(error = %e, "cannot prepare the connection");
                            // Again at the next turn (the tick wakes the loop twice a second).
                            Connection::Waiting {
                                attempt: attempt + 1,
                                until: Instant::now(),
                            }
                        }
                    };
                }
            }
            log_link(&mut logged, state.link());
            // What woke the loop; the connection is free again once it is known.
            let woke = {
                let poll = async {
                    match state.conn() {
                        Some(c) => c.events.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = &mut shutdown => Woke::Shutdown,
                    ev = poll => Woke::Broker(ev),
                    out = ota_out.recv(), if engine_task.is_some() => Woke::Ota(out),
                    msg = rx.recv() => Woke::Task(msg),
                    _ = tick.tick() => Woke::Tick,
                }
            };
            match woke {
                Woke::Shutdown => break,
                Woke::Broker(Ok(Event::Incoming(Incoming::ConnAck(_)))) => {
                    state = state.accepted();
                    log_link(&mut logged, state.link());
                    if let Some(c) = state.online() {
                        self.on_connected(c).await;
                    }
                }
                Woke::Broker(Ok(Event::Incoming(Incoming::Publish(p)))) => {
                    if let Some(c) = state.conn() {
                        self.on_publish(c, &p.topic, &p.payload, &tx).await;
                    }
                }
                Woke::Broker(Ok(Event::Incoming(Incoming::PubAck(a)))) => {
                    self.delivery.on_puback(a.pkid);
                    for done in pending_status.drain(..) {
                        let _ = done.send(());
                    }
                }
                Woke::Broker(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    self.delivery.on_outgoing_publish(pkid);
                }
                Woke::Broker(Ok(_)) => {}
                Woke::Broker(Err(e)) => {
                    let attempt = state.attempt();
                    let wait = backoff(
                        attempt,
                        Duration::from_secs(u64::from(self.cfg.agent.reconnect_max_seconds)),
                        now_ms(self.started) * 7919,
                    );
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "broker connection lost or refused");
                    r58_systemd::notify_or_log(&[r58_systemd::Notify::Status(format!(
                        "offline: {e}"
                    ))]);
                    state = Connection::Waiting {
                        attempt: attempt + 1,
                        until: Instant::now() + wait,
                    };
                    self.delivery.connection_lost();
                }
                Woke::Ota(Some(r58_ota::Out::Update(u))) => {
                    let topic = proto::job_update(self.id(), &u.job_id);
                    self.enqueue(topic, &u);
                }
                Woke::Ota(Some(r58_ota::Out::Status(status, done))) => {
                    let _ = tx.try_send(ToLoop::SetStatus(status, done));
                }
                Woke::Ota(None) => engine_task = None,
                Woke::Task(Some(ToLoop::Status(st))) => {
                    let topic = proto::cmd_status(self.id());
                    let st = commands::bounded(st, &topic);
                    self.enqueue(topic, &st)
                }
                Woke::Task(Some(ToLoop::Running { slot, version })) => {
                    if running::pinned_slot().is_none() {
                        self.booted_slot = Some(slot);
                    }
                    if let Some(v) = version {
                        self.firmware_version = v;
                    }
                    if let Some(c) = state.online() {
                        self.publish_state(c).await;
                    }
                }
                Woke::Task(Some(ToLoop::SetStatus(status, done))) => {
                    self.status = status;
                    match state.online() {
                        Some(c) => {
                            self.publish_state(c).await;
                            pending_status.push(done);
                        }
                        None => {
                            let _ = done.send(());
                        }
                    }
                }
                Woke::Task(None) => {}
                Woke::Tick => {
                    if self.remote.state() != self.remote_published {
                        if let Some(c) = state.online() {
                            self.publish_state(c).await;
                        }
                    }
                    if Instant::now() >= next_telemetry {
                        next_telemetry = Instant::now()
                            + Duration::from_secs(u64::from(
                                self.cfg.agent.telemetry_interval_seconds,
                            ));
                        let recorder = telemetry::recorder(
                            &self.http,
                            &self.cfg.agent.recorder_api,
                            &self.cfg.api.token,
                        )
                        .await;
                        self.sample_telemetry(&mut cpu, recorder);
                    }
                    if !self.ready_sent && Instant::now() >= ready_deadline {
                        tracing::warn!("broker not reached yet: READY anyway, running offline");
                        r58_systemd::notify_or_log(&[
                            r58_systemd::Notify::Ready,
                            r58_systemd::Notify::Status("offline".into()),
                        ]);
                        self.ready_sent = true;
                    }
                }
            }
            self.flush(state.online());
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
        self.shutdown(state.into_conn()).await;
    }

    async fn shutdown(&mut self, conn: Option<Conn>) {
        tracing::info!(to = Link::Stopping.name(), "link");
        r58_systemd::notify_or_log(&[r58_systemd::Notify::Stopping]);
        // Nothing produced is lost: pending and unacknowledged messages go to disk.
        self.flush(None);
        self.delivery.connection_lost();
        let Some(mut c) = conn else { return };
        let doc = self.state_doc(Status::Offline);
        let topic = proto::state(self.id());
        self.delivery.send_document(&mut c, &topic, doc, true);
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
