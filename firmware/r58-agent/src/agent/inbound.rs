//! What arrives from the broker: the connection acknowledged, commands, the desired
//! configuration and OTA jobs.

use std::collections::BTreeMap;
use std::time::Duration;

use r58_proto::{self as proto, CmdState, Inbound, Status, TwinDesired, TwinReported};
use rumqttc::QoS;
use tokio::sync::{mpsc, oneshot};

use super::conn::Conn;
use super::{Agent, ToLoop};
use crate::commands::{self, Ctx, Refusal};
use crate::twin;

impl Agent {
    pub(super) async fn on_connected(&mut self, conn: &mut Conn) {
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
        self.publish_state(conn).await;
        if !self.ready_sent {
            r58_systemd::notify_or_log(&[
                r58_systemd::Notify::Ready,
                r58_systemd::Notify::Status("online".into()),
            ]);
            self.ready_sent = true;
        } else {
            r58_systemd::notify_or_log(&[r58_systemd::Notify::Status("online".into())]);
        }
        self.delivery.drain(conn);
    }

    pub(super) async fn on_publish(
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

    pub(super) async fn on_job(&mut self, payload: &[u8]) {
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

    pub(super) fn on_command(&mut self, name: &str, payload: &[u8], tx: &mpsc::Sender<ToLoop>) {
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

    pub(super) async fn on_twin(&mut self, conn: &mut Conn, payload: &[u8]) {
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
                self.cfg.remote_access = cfg.remote_access;
                self.remote.apply(&self.cfg);
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
        self.delivery.send_document(conn, &topic, body, true);
    }
}
