//! The job state machine (docs/ota.md). One job at a time; every phase change is written to
//! the record first and then reported, so a restart or a power cut resumes or fails the job
//! truthfully:
//!
//! queued → downloading → verifying → [waiting_for_idle] → installing → waiting_for_reboot →
//! rebooting → (new boot) verifying_boot → succeeded | failed
//!
//! Up to `installing` a job can be cancelled (`ota.cancel`, or the fleet withdraws it) or
//! replaced by a newer one. The commit is the boot health check's (`r58-agent --health-check`
//! marks the slot good and writes `health.json` for this boot): `succeeded` is only reported
//! after it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Timelike, Utc};
use r58_proto::{compare_versions, Job, JobUpdate, Phase, Policy, Reason, Status};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::download::{self, DownloadError};
use crate::rauc::{Rauc, RaucError};
use crate::record::{Record, Store};

mod boot;
pub use boot::{read_boot_id, BootJudged, HealthVerdict, HEALTH_FILE, JUDGED_FILE};

/// What the engine needs from the rest of the device.
pub trait Host: Send + Sync {
    /// Whether any input is recording now.
    fn recording(&self) -> crate::BoxFuture<'_, Result<bool, HostError>>;
    fn reboot(&self) -> crate::BoxFuture<'_, Result<(), HostError>>;
}

/// A [`Host`] call that failed, with the cause from the device's side.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("asking whether anything records: {0}")]
    Recording(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("asking for the reboot: {0}")]
    Reboot(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: PathBuf,
    pub boot_id_file: PathBuf,
    pub download_attempts: u32,
    pub backoff_max: Duration,
    pub reserve_bytes: u64,
    /// How often waiting phases look again.
    pub poll: Duration,
    /// The version this build reports when RAUC knows none for the booted slot.
    pub build_version: String,
    /// Hand RAUC the bundle's URL (it streams the bundle, nothing is stored on the data
    /// partition); the download to `dir` is the fallback when RAUC cannot read the URL.
    pub streaming: bool,
    /// The box's version floor (`ota.min_version`): nothing older installs, whatever the job
    /// allows. Empty: none.
    pub min_version: String,
    /// How long a job waits, at most, for the boot health check to judge this boot before it
    /// uses RAUC (see [`BootJudged`]).
    pub boot_check_wait: Duration,
}

/// Refuses a version below the box's floor (see [`Settings::min_version`]).
fn check_floor(version: &str, floor: &str) -> Result<(), Fail> {
    if !floor.is_empty() && compare_versions(version, floor).is_lt() {
        return Err(Fail(
            Reason::Downgrade,
            format!("{version} is below this box's ota.min_version {floor}"),
        ));
    }
    Ok(())
}

pub enum In {
    /// The retained `jobs/next` (None: the fleet withdrew it).
    Job(Option<Job>),
    Cancel(oneshot::Sender<Result<Value, String>>),
    Status(oneshot::Sender<Result<Value, String>>),
}

pub enum Out {
    Update(JobUpdate),
    /// Sets `state.status`; answered once the broker has it (or the agent is offline).
    Status(Status, oneshot::Sender<()>),
}

struct Shared {
    store: Store,
    /// Set under the lock by a cancel; the worker checks it before installing.
    cancelled: bool,
}

struct Worker {
    settings: Settings,
    rauc: Arc<dyn Rauc>,
    host: Arc<dyn Host>,
    http: reqwest::Client,
    out: mpsc::Sender<Out>,
    shared: Arc<Mutex<Shared>>,
}

/// Ends a job's run: the reason it failed (None for success is never built).
struct Fail(Reason, String);

impl From<DownloadError> for Fail {
    fn from(e: DownloadError) -> Self {
        let r = match &e {
            DownloadError::Client { .. } => Reason::HttpClientError,
            DownloadError::Exhausted { .. } => Reason::DownloadFailed,
            DownloadError::NoSpace { .. } => Reason::NoSpace,
            DownloadError::Size { .. } => Reason::SizeMismatch,
            DownloadError::Checksum { .. } => Reason::ChecksumMismatch,
            DownloadError::Io { .. } => Reason::StorageError,
        };
        Fail(r, e.to_string())
    }
}

fn storage(e: r58_fs::FsError) -> Fail {
    Fail(Reason::StorageError, e.to_string())
}

fn in_window(job: &Job) -> bool {
    let Some(w) = &job.window else { return false };
    let mins = |s: &str| -> Option<u32> {
        let (h, m) = s.split_once(':')?;
        Some(h.parse::<u32>().ok()? * 60 + m.parse::<u32>().ok()?)
    };
    let (Some(a), Some(b)) = (mins(&w.start), mins(&w.end)) else {
        return false;
    };
    let now = Utc::now();
    let t = now.hour() * 60 + now.minute();
    if a <= b {
        (a..b).contains(&t)
    } else {
        t >= a || t < b
    }
}

impl Worker {
    /// The job record as it stands (a copy: the lock is not held).
    fn current(&self) -> Option<Record> {
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .store
            .current()
            .cloned()
    }

    fn bundle_path(&self) -> PathBuf {
        self.settings.dir.join("bundle.raucb")
    }

    fn update_of(rec: &Record) -> JobUpdate {
        JobUpdate {
            job_id: rec.job.job_id.clone(),
            phase: rec.phase,
            progress: rec.progress,
            reason: rec.reason,
            details: rec.details.clone(),
            version: rec.job.version.clone(),
            ts: Utc::now(),
        }
    }

    /// Writes the record's new phase, then reports it. Refused (Err) when the job was
    /// cancelled and the new phase would start installing.
    async fn set(
        &self,
        phase: Phase,
        progress: u8,
        details: Option<String>,
        edit: impl FnOnce(&mut Record),
    ) -> Result<Record, Fail> {
        let (rec, staged) = {
            let mut sh = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            if sh.cancelled && phase >= Phase::Installing && phase < Phase::Succeeded {
                return Err(Fail(Reason::Cancelled, "cancelled".into()));
            }
            let mut rec = sh
                .store
                .current()
                .cloned()
                .ok_or_else(|| Fail(Reason::StorageError, "job record vanished".into()))?;
            rec.phase = phase;
            rec.progress = progress;
            rec.details = details;
            edit(&mut rec);
            let staged = sh.store.stage(rec.clone()).map_err(storage)?;
            (rec, staged)
        };
        // The fsync waits for the disk; the event loop (one thread) must not.
        tokio::task::spawn_blocking(move || staged.write())
            .await
            .map_err(|e| Fail(Reason::StorageError, format!("writing the job record: {e}")))?
            .map_err(storage)?;
        tracing::info!(job = %rec.job.job_id, phase = phase.as_str(), progress, "ota");
        let _ = self.out.send(Out::Update(Self::update_of(&rec))).await;
        Ok(rec)
    }

    async fn set_status(&self, status: Status) {
        let (tx, rx) = oneshot::channel();
        if self.out.send(Out::Status(status, tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        }
    }

    /// The version running on `sys`: RAUC's record of the booted slot's bundle, else the build's.
    fn version_on(&self, sys: &crate::rauc::System) -> String {
        sys.booted_slot()
            .and_then(|s| s.bundle_version.clone())
            .unwrap_or_else(|| self.settings.build_version.clone())
    }

    async fn current_version(&self) -> String {
        match self.rauc.system().await {
            Ok(sys) => self.version_on(&sys),
            Err(_) => self.settings.build_version.clone(),
        }
    }

    fn past_deadline(job: &Job) -> bool {
        job.deadline.is_some_and(|d| Utc::now() > d)
    }

    /// Waits until nothing records (or the window opens, or the policy says go).
    async fn wait_idle(
        &self,
        policy: Policy,
        job: &Job,
        phase_if_waiting: Phase,
        check_deadline: bool,
    ) -> Result<(), Fail> {
        let mut reported = false;
        loop {
            if policy == Policy::Force || in_window(job) {
                return Ok(());
            }
            if policy != Policy::Manual {
                match self.host.recording().await {
                    Ok(false) => return Ok(()),
                    Ok(true) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot tell whether the recorder records: treated as idle");
                        return Ok(());
                    }
                }
            }
            if check_deadline && Self::past_deadline(job) {
                return Err(Fail(
                    Reason::Deadline,
                    "deadline passed while waiting for the recording to stop".into(),
                ));
            }
            if !reported {
                let why = if policy == Policy::Manual {
                    "waiting for an operator's reboot"
                } else {
                    "an input is recording"
                };
                self.set(phase_if_waiting, 0, Some(why.into()), |_| {})
                    .await?;
                reported = true;
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// Runs the job from its recorded phase up to the reboot (or a final phase).
    async fn drive(&self) -> Result<(), Fail> {
        let rec = self.current();
        let Some(rec) = rec else { return Ok(()) };
        let job = rec.job.clone();
        let installed = rec.phase == Phase::Installing && self.finish_running_install().await?;
        if rec.phase <= Phase::Installing && !installed {
            self.wait_boot_judged().await;
            self.set_status(Status::Updating).await;
            if rec.phase == Phase::Queued {
                self.check_job(&job).await?;
            }
            let streamed = self.settings.streaming
                && !self.bundle_path().exists()
                && self.stream(&job).await?;
            if !streamed {
                self.download(&job, rec.phase).await?;
                let local = self.bundle_path().to_string_lossy().into_owned();
                self.verify(&job, &local).await?;
                self.before_install(&job).await?;
                self.install(&local).await?;
            }
        }
        let rec = self.current();
        if rec
            .as_ref()
            .is_some_and(|r| r.phase <= Phase::WaitingForReboot)
        {
            self.wait_idle(job.reboot_policy, &job, Phase::WaitingForReboot, false)
                .await?;
            self.reboot().await?;
        }
        Ok(())
    }

    /// After a restart during the install, RAUC may still be installing what this job handed
    /// it: then its outcome is the install's (RAUC refuses other calls meanwhile). Ok(false):
    /// nothing was running or it failed, and the job installs again.
    async fn finish_running_install(&self) -> Result<bool, Fail> {
        match self.rauc.finish_running_install().await {
            Ok(true) => {
                let _ = std::fs::remove_file(self.bundle_path());
                self.set(Phase::WaitingForReboot, 100, None, |_| {}).await?;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                tracing::warn!(error = %e, "the install running before the restart failed: installing again");
                Ok(false)
            }
        }
    }

    /// Streams the bundle: RAUC reads it at the job's URL for the checks and the install.
    /// Ok(false) when RAUC could not read the URL (no streaming in this RAUC, the server
    /// refuses ranges, the link broke): the caller downloads the bundle instead. A bundle
    /// that RAUC read and refused (signature, compatible, version) fails the job.
    async fn stream(&self, job: &Job) -> Result<bool, Fail> {
        match self.verify(job, &job.url).await {
            Ok(()) => {}
            Err(Fail(Reason::InstallFailed, why)) => {
                tracing::warn!(%why, "RAUC cannot stream the bundle: downloading it instead");
                return Ok(false);
            }
            Err(f) => return Err(f),
        }
        self.before_install(job).await?;
        match self.install(&job.url).await {
            Ok(()) => Ok(true),
            Err(Fail(Reason::InstallFailed, why)) => {
                tracing::warn!(%why, "streamed install failed: downloading the bundle instead");
                Ok(false)
            }
            Err(f) => Err(f),
        }
    }

    /// Downloads the bundle to `dir` (resuming what is there), reporting progress.
    async fn download(&self, job: &Job, phase: Phase) -> Result<(), Fail> {
        let spec = download::Spec {
            url: job.url.clone(),
            size: job.size,
            sha256: job.sha256.clone(),
            dest: self.bundle_path(),
            max_attempts: self.settings.download_attempts,
            backoff_max: self.settings.backoff_max,
            reserve_bytes: self.settings.reserve_bytes,
        };
        if !spec.dest.exists() || phase <= Phase::Downloading {
            self.set(Phase::Downloading, 0, None, |_| {}).await?;
            let (tx, mut rx) = mpsc::channel::<u8>(4);
            let fetch = download::fetch(&self.http, &spec, move |have, size| {
                let _ = tx.try_send((have.saturating_mul(100) / size.max(1)) as u8);
            });
            tokio::pin!(fetch);
            let mut last = 0u8;
            let stats = loop {
                tokio::select! {
                r = &mut fetch => break r?,
                Some(pct) = rx.recv() => if pct >= last.saturating_add(5) && pct < 100 {
                    last = pct;
                    self.set(Phase::Downloading, pct, None, |_| {}).await?;
                },
                }
            };
            tracing::info!(
                resumed_from = stats.resumed_from,
                received = stats.received,
                refetched = stats.refetched,
                "bundle downloaded"
            );
        }
        Ok(())
    }

    /// Waits for the install policy, then checks the deadline.
    async fn before_install(&self, job: &Job) -> Result<(), Fail> {
        self.wait_idle(job.install_policy, job, Phase::WaitingForIdle, true)
            .await?;
        if Self::past_deadline(job) {
            return Err(Fail(
                Reason::Deadline,
                "deadline passed before the install".into(),
            ));
        }
        Ok(())
    }

    async fn check_job(&self, job: &Job) -> Result<(), Fail> {
        if job.sha256.len() != 64 || !job.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Fail(
                Reason::InvalidJob,
                format!("sha256 {:?} is not 64 hex digits", job.sha256),
            ));
        }
        if !(job.url.starts_with("https://") || job.url.starts_with("http://")) {
            return Err(Fail(
                Reason::InvalidJob,
                format!("url {:?} is not http(s)", job.url),
            ));
        }
        if job.size == 0 {
            return Err(Fail(Reason::InvalidJob, "size is 0".into()));
        }
        let current = self.current_version().await;
        if let Some(min) = &job.min_version {
            if compare_versions(&current, min).is_lt() {
                return Err(Fail(
                    Reason::MinVersion,
                    format!("running {current}, the job needs at least {min}"),
                ));
            }
        }
        check_floor(&job.version, &self.settings.min_version)?;
        if !job.allow_downgrade && compare_versions(&job.version, &current).is_lt() {
            return Err(Fail(
                Reason::Downgrade,
                format!(
                    "{} is older than the running {current} (allow_downgrade not set)",
                    job.version
                ),
            ));
        }
        if Self::past_deadline(job) {
            return Err(Fail(
                Reason::Deadline,
                "the job's deadline has passed".into(),
            ));
        }
        Ok(())
    }

    /// RAUC reads the bundle at `bundle` (the local file or the URL), checking its signature,
    /// then compatible and version.
    async fn verify(&self, job: &Job, bundle: &str) -> Result<(), Fail> {
        self.set(Phase::Verifying, 0, None, |_| {}).await?;
        let info = self.rauc.info(bundle).await.map_err(|e| {
            if e.is_signature() {
                Fail(Reason::BadSignature, e.to_string())
            } else {
                Fail(Reason::InstallFailed, e.to_string())
            }
        })?;
        let sys = self
            .rauc
            .system()
            .await
            .map_err(|e| Fail(Reason::InstallFailed, e.to_string()))?;
        if info.compatible != sys.compatible {
            return Err(Fail(
                Reason::Incompatible,
                format!(
                    "bundle is for {:?}, this system is {:?}",
                    info.compatible, sys.compatible
                ),
            ));
        }
        if info.version != job.version {
            return Err(Fail(
                Reason::VersionMismatch,
                format!(
                    "bundle version {}, the job says {}",
                    info.version, job.version
                ),
            ));
        }
        check_floor(&info.version, &self.settings.min_version)?;
        let current = self.version_on(&sys);
        if !job.allow_downgrade && compare_versions(&info.version, &current).is_lt() {
            return Err(Fail(
                Reason::Downgrade,
                format!("{} is older than the running {current}", info.version),
            ));
        }
        Ok(())
    }

    /// RAUC installs `bundle` (the local file or the URL) to the other slot.
    async fn install(&self, bundle: &str) -> Result<(), Fail> {
        let sys = self
            .rauc
            .system()
            .await
            .map_err(|e| Fail(Reason::InstallFailed, e.to_string()))?;
        let target = sys.other_bootname();
        let from = sys.booted.clone();
        self.set(Phase::Installing, 0, None, |r| {
            r.from_slot = Some(from);
            r.target_slot = target;
        })
        .await?;
        let (tx, mut rx) = mpsc::channel::<u8>(8);
        let progress = move |pct: u8| {
            let _ = tx.try_send(pct);
        };
        let install = self.rauc.install(bundle, &progress);
        tokio::pin!(install);
        let mut last = 0u8;
        loop {
            tokio::select! {
                r = &mut install => {
                    r.map_err(|e: RaucError| if e.is_signature() { Fail(Reason::BadSignature, e.to_string()) } else { Fail(Reason::InstallFailed, e.to_string()) })?;
                    break;
                }
                Some(pct) = rx.recv() => if pct >= last.saturating_add(10) && pct < 100 {
                    last = pct;
                    self.set(Phase::Installing, pct, None, |_| {}).await?;
                },
            }
        }
        // The bundle has served its purpose; the slot holds it now.
        let _ = std::fs::remove_file(self.bundle_path());
        self.set(Phase::WaitingForReboot, 100, None, |_| {}).await?;
        Ok(())
    }
}

/// The engine: owns the job record, runs the worker, answers cancel/status.
pub struct Engine {
    worker: Arc<Worker>,
    running: Option<JoinHandle<()>>,
    /// A job that arrived while another was past the point of no return.
    pending: Option<Job>,
}

impl Engine {
    pub fn new(
        settings: Settings,
        rauc: Arc<dyn Rauc>,
        host: Arc<dyn Host>,
        http: reqwest::Client,
        out: mpsc::Sender<Out>,
    ) -> Result<Self, r58_fs::FsError> {
        let store = Store::open(&settings.dir)?;
        let shared = Arc::new(Mutex::new(Shared {
            store,
            cancelled: false,
        }));
        Ok(Self {
            worker: Arc::new(Worker {
                settings,
                rauc,
                host,
                http,
                out,
                shared,
            }),
            running: None,
            pending: None,
        })
    }

    fn current(&self) -> Option<Record> {
        self.worker.current()
    }

    fn active(&self) -> bool {
        self.current().is_some_and(|r| !r.phase.is_final())
    }

    fn start(&mut self) {
        let w = self.worker.clone();
        self.running = Some(tokio::spawn(async move {
            let phase = w.current().map(|r| r.phase);
            let result = match phase {
                Some(Phase::Rebooting | Phase::VerifyingBoot) => w.verify_boot().await,
                Some(Phase::WaitingForReboot) => {
                    // A reboot may have happened meanwhile (an operator's, with the manual
                    // policy): then the target slot runs and only the boot is left to verify.
                    let boot = read_boot_id(&w.settings.boot_id_file);
                    let booted = w.rauc.system().await.ok().map(|s| s.booted);
                    let target = w.current().and_then(|r| r.target_slot.clone());
                    if booted.is_some() && booted == target {
                        let _ = w
                            .set(Phase::Rebooting, 100, None, |r| {
                                r.reboot_boot_id = Some(format!("before-{boot}"))
                            })
                            .await;
                        w.verify_boot().await
                    } else {
                        w.drive().await
                    }
                }
                Some(p) if !p.is_final() => w.drive().await,
                _ => Ok(()),
            };
            if let Err(Fail(reason, details)) = result {
                tracing::error!(?reason, %details, "ota job failed");
                if reason != Reason::Cancelled
                    || !w.shared.lock().unwrap_or_else(|p| p.into_inner()).cancelled
                {
                    let _ = w
                        .set(Phase::Failed, 0, Some(details), |r| {
                            r.reason = Some(reason);
                        })
                        .await;
                }
                let _ = std::fs::remove_file(download::part_path(&w.bundle_path()));
                let _ = std::fs::remove_file(w.bundle_path());
            }
            let done = w.current().is_some_and(|r| r.phase.is_final());
            if done {
                w.set_status(Status::Online).await;
            }
        }));
    }

    /// Ends the current job as cancelled if it has not started installing.
    async fn cancel(&mut self, why: &str) -> Result<Value, String> {
        let rec = {
            let mut sh = self.worker.shared.lock().unwrap_or_else(|p| p.into_inner());
            let Some(rec) = sh.store.current().cloned() else {
                return Err("no OTA job".into());
            };
            if rec.phase.is_final() {
                return Err(format!(
                    "job {} already {}",
                    rec.job.job_id,
                    rec.phase.as_str()
                ));
            }
            if rec.phase >= Phase::Installing {
                return Err(format!(
                    "job {} is {}: too late to cancel",
                    rec.job.job_id,
                    rec.phase.as_str()
                ));
            }
            sh.cancelled = true;
            if let Some(h) = self.running.take() {
                h.abort();
            }
            let mut rec = rec;
            rec.phase = Phase::Failed;
            rec.reason = Some(Reason::Cancelled);
            rec.details = Some(why.to_string());
            sh.store.put(rec.clone()).map_err(|e| e.to_string())?;
            rec
        };
        let _ = std::fs::remove_file(download::part_path(&self.worker.bundle_path()));
        let _ = std::fs::remove_file(self.worker.bundle_path());
        let _ = self
            .worker
            .out
            .send(Out::Update(Worker::update_of(&rec)))
            .await;
        self.worker.set_status(Status::Online).await;
        Ok(json!({ "job_id": rec.job.job_id, "cancelled": true }))
    }

    fn accept(&mut self, job: Job) {
        let mut sh = self.worker.shared.lock().unwrap_or_else(|p| p.into_inner());
        sh.cancelled = false;
        let rec = Record::new(job);
        if let Err(e) = sh.store.put(rec) {
            tracing::error!(error = %e, "cannot record the new job: it will come again with the next retained jobs/next");
            return;
        }
        drop(sh);
        self.start();
    }

    async fn on_job(&mut self, job: Option<Job>) {
        let current = self.current();
        let Some(job) = job else {
            if self.active() {
                let _ = self.cancel("withdrawn by the fleet").await;
            }
            self.pending = None;
            return;
        };
        if current.as_ref().is_some_and(|r| r.job.job_id == job.job_id) {
            return; // the retained document again
        }
        if self
            .worker
            .shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .store
            .is_done(&job.job_id)
        {
            return;
        }
        if self.active() {
            if self
                .cancel(&format!("superseded by job {}", job.job_id))
                .await
                .is_err()
            {
                tracing::info!(job = %job.job_id, "a job is installing: the new one waits for it");
                self.pending = Some(job);
                return;
            }
        }
        let _ = self
            .worker
            .out
            .send(Out::Update(Worker::update_of(&Record::new(job.clone()))))
            .await;
        self.accept(job);
    }

    /// Runs until `rx` closes: resumes a recorded job first.
    pub async fn run(mut self, mut rx: mpsc::Receiver<In>) {
        if self.active() {
            self.start();
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => break,
                    Some(In::Job(job)) => self.on_job(job).await,
                    Some(In::Cancel(reply)) => {
                        let _ = reply.send(self.cancel("cancelled by ota.cancel").await);
                    }
                    Some(In::Status(reply)) => {
                        let v = match self.current() {
                            Some(r) => json!({
                                "job_id": r.job.job_id, "version": r.job.version, "phase": r.phase.as_str(),
                                "progress": r.progress, "reason": r.reason, "details": r.details,
                                "from_slot": r.from_slot, "target_slot": r.target_slot, "updated": r.updated,
                            }),
                            None => json!({ "job_id": null }),
                        };
                        let _ = reply.send(Ok(v));
                    }
                },
                _ = tick.tick() => {
                    if !self.active() {
                        if let Some(job) = self.pending.take() {
                            self.on_job(Some(job)).await;
                        }
                    }
                }
            }
        }
        if let Some(h) = self.running.take() {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_floor;

    #[test]
    fn nothing_below_the_boxs_floor_installs() {
        assert!(check_floor("0.1.0", "").is_ok(), "no floor");
        assert!(check_floor("1.4.0", "1.4.0").is_ok());
        assert!(check_floor("1.10.0", "1.9.2").is_ok());
        let refused = check_floor("1.3.9", "1.4.0").unwrap_err();
        assert_eq!(refused.0, r58_proto::Reason::Downgrade);
        assert!(refused.1.contains("ota.min_version 1.4.0"), "{}", refused.1);
    }
}
