//! Recording sessions: `<data>/recordings/<session>/<input>/<segment>.ts` plus
//! `manifest.json`. A session starts when recording starts from idle; inputs join and
//! leave it; it ends when its last input stops. Which inputs should be recording is kept
//! in `<data>/recorder/state.json`, so recording resumes (in a new session) after a crash,
//! a power cut or a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::encode::input::Input;
use crate::error::RecorderError;
use crate::manifest::{self, InputRecord, Manifest, Segment};
use crate::outputs::recording::{Failure, RecEvent, Recording};
use crate::stats::lock;

#[derive(Debug, Default, Serialize, Deserialize)]
struct DesiredState {
    recording: BTreeSet<String>,
}

struct Open {
    file: PathBuf,
    running_ns: u64,
    started_at: DateTime<Utc>,
}

struct Active {
    dir: PathBuf,
    manifest: Manifest,
    recordings: BTreeMap<String, Recording>,
    open: BTreeMap<String, Open>,
}

#[derive(Default)]
struct Inner {
    active: Option<Active>,
    last_stop: BTreeMap<String, String>,
}

pub struct Sessions {
    root: PathBuf,
    state_path: PathBuf,
    segment_seconds: u32,
    inner: Mutex<Inner>,
    /// Failures go to a thread of their own, which stops the failed recording.
    failures: Mutex<mpsc::Sender<(String, Failure)>>,
    me: std::sync::Weak<Sessions>,
}

/// Recording state of one input, for the API and telemetry.
#[derive(Debug, Clone, Serialize)]
pub struct InputRecording {
    pub recording: bool,
    pub session: Option<String>,
    pub bytes: u64,
    pub segments: usize,
    pub last_stop_reason: Option<String>,
}

impl Sessions {
    /// Creates the folders, repairs sessions left open by a crash, and starts the thread
    /// that applies recording events. Returns the inputs that should resume recording.
    pub fn open(
        data_dir: &Path,
        segment_seconds: u32,
    ) -> Result<(Arc<Self>, Vec<String>), RecorderError> {
        let root = data_dir.join("recordings");
        std::fs::create_dir_all(&root).map_err(|source| RecorderError::CreateDir {
            path: root.clone(),
            source,
        })?;
        repair_all(&root);
        let state_dir = data_dir.join("recorder");
        std::fs::create_dir_all(&state_dir).map_err(|source| RecorderError::CreateDir {
            path: state_dir.clone(),
            source,
        })?;
        let state_path = state_dir.join("state.json");
        let desired: DesiredState = match r58_fs::read_json(&state_path) {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "ignoring unreadable recorder state");
                DesiredState::default()
            }
        };
        let (tx, rx) = mpsc::channel::<(String, Failure)>();
        let sessions = Arc::new_cyclic(|me| Self {
            root,
            state_path,
            segment_seconds,
            inner: Mutex::new(Inner::default()),
            failures: Mutex::new(tx),
            me: me.clone(),
        });
        let weak = Arc::downgrade(&sessions);
        std::thread::Builder::new()
            .name("rec-failures".into())
            .spawn(move || {
                for (input, reason) in rx {
                    match weak.upgrade() {
                        Some(s) => {
                            s.stop(Some(&[input]), &reason.to_string(), false);
                        }
                        None => break,
                    }
                }
            })
            .map_err(|source| RecorderError::CreateDir {
                path: PathBuf::from("<thread>"),
                source,
            })?;
        Ok((sessions, desired.recording.into_iter().collect()))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts recording `inputs` (those not already recording) in the active session.
    pub fn start(&self, inputs: &[Arc<Input>]) -> Result<(String, Vec<String>), RecorderError> {
        let mut inner = lock(&self.inner);
        let now = Utc::now();
        if inner.active.is_none() {
            let mut id = manifest::session_id(now);
            let mut n = 1;
            while self.root.join(&id).exists() {
                n += 1;
                id = format!("{}-{n}", manifest::session_id(now));
            }
            let dir = self.root.join(&id);
            std::fs::create_dir_all(&dir).map_err(|source| RecorderError::CreateDir {
                path: dir.clone(),
                source,
            })?;
            inner.active = Some(Active {
                dir,
                manifest: Manifest::new(&id, now),
                recordings: BTreeMap::new(),
                open: BTreeMap::new(),
            });
        }
        let mut started = Vec::new();
        let mut first_err = None;
        {
            let active = inner.active.as_mut().expect("set above");
            for input in inputs {
                if active.recordings.contains_key(&input.id) {
                    continue;
                }
                match Recording::start(
                    input,
                    &active.dir.join(&input.id),
                    self.segment_seconds,
                    self.event_sink(),
                ) {
                    Ok(rec) => {
                        active.recordings.insert(input.id.clone(), rec);
                        let entry = active.manifest.inputs.entry(input.id.clone()).or_default();
                        entry.started_at.get_or_insert(now);
                        entry.ended_at = None;
                        entry.stop_reason = None;
                        started.push(input.id.clone());
                    }
                    Err(e) => {
                        tracing::error!(input = %input.id, error = %e, "starting recording failed");
                        first_err.get_or_insert(e);
                    }
                }
            }
            active.manifest.write(&active.dir)?;
        }
        for id in &started {
            inner.last_stop.remove(id);
        }
        let session = inner
            .active
            .as_ref()
            .map(|a| a.manifest.session.clone())
            .unwrap_or_default();
        let empty = inner
            .active
            .as_ref()
            .is_some_and(|a| a.recordings.is_empty());
        if empty {
            self.finish_session(&mut inner, "failed");
        }
        drop(inner);
        if let (Some(e), true) = (first_err, started.is_empty()) {
            return Err(e);
        }
        self.persist_desired();
        Ok((session, started))
    }

    /// Stops the given inputs (all when None). `reason` goes into the manifest. When
    /// `keep_desired`, the inputs resume at the next start (used on shutdown).
    pub fn stop(&self, ids: Option<&[String]>, reason: &str, keep_desired: bool) -> Vec<String> {
        let taken: Vec<(String, Recording)> = {
            let mut inner = lock(&self.inner);
            let Some(active) = inner.active.as_mut() else {
                return Vec::new();
            };
            let chosen: Vec<String> = active
                .recordings
                .keys()
                .filter(|k| ids.map_or(true, |ids| ids.iter().any(|i| i == *k)))
                .cloned()
                .collect();
            let taken: Vec<(String, Recording)> = chosen
                .into_iter()
                .filter_map(|id| active.recordings.remove(&id).map(|r| (id, r)))
                .collect();
            for (id, _) in &taken {
                inner.last_stop.insert(id.clone(), reason.to_string());
            }
            taken
        };
        // Outside the lock: the recordings' threads record the last segments while the EOS drains.
        let stopped: Vec<String> = taken
            .into_iter()
            .map(|(id, rec)| {
                rec.stop();
                id
            })
            .collect();
        let mut inner = lock(&self.inner);
        let now = Utc::now();
        if let Some(active) = inner.active.as_mut() {
            for id in &stopped {
                if let Some(r) = active.manifest.inputs.get_mut(id) {
                    r.ended_at = Some(now);
                    r.stop_reason = Some(reason.to_string());
                }
            }
        }
        for id in &stopped {
            inner.last_stop.insert(id.clone(), reason.to_string());
        }
        if inner
            .active
            .as_ref()
            .is_some_and(|a| a.recordings.is_empty())
        {
            self.finish_session(&mut inner, reason);
        } else if let Some(a) = inner.active.as_ref() {
            if let Err(e) = a.manifest.write(&a.dir) {
                tracing::error!(error = %e, "writing manifest");
            }
        }
        drop(inner);
        if !keep_desired {
            self.persist_desired();
        }
        stopped
    }

    fn event_sink(&self) -> crate::outputs::recording::EventSink {
        let weak = self.me.clone();
        Arc::new(move |ev| {
            let Some(s) = weak.upgrade() else { return };
            match ev {
                RecEvent::Failed { input, reason } => {
                    let _ = lock(&s.failures).send((input, reason));
                }
                ev => s.apply(ev),
            }
        })
    }

    fn finish_session(&self, inner: &mut Inner, reason: &str) {
        if let Some(mut active) = inner.active.take() {
            active.manifest.ended_at = Some(Utc::now());
            active.manifest.end_reason = Some(reason.to_string());
            if let Err(e) = active.manifest.write(&active.dir) {
                tracing::error!(error = %e, "writing final manifest");
            }
            tracing::info!(session = %active.manifest.session, reason, "session ended");
        }
    }

    fn apply(&self, ev: RecEvent) {
        let mut inner = lock(&self.inner);
        Self::apply_locked(&mut inner, ev);
        if let Some(a) = inner.active.as_ref() {
            if let Err(e) = a.manifest.write(&a.dir) {
                tracing::error!(error = %e, "writing manifest");
            }
        }
    }

    fn apply_locked(inner: &mut Inner, ev: RecEvent) {
        let Some(active) = inner.active.as_mut() else {
            return;
        };
        match ev {
            RecEvent::Opened {
                input,
                file,
                running_ns,
            } => {
                active.open.insert(
                    input,
                    Open {
                        file,
                        running_ns,
                        started_at: Utc::now(),
                    },
                );
            }
            RecEvent::Closed {
                input,
                file,
                running_ns,
            } => {
                let open = active.open.remove(&input);
                let rel = format!(
                    "{input}/{}",
                    file.file_name().unwrap_or_default().to_string_lossy()
                );
                let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                let (started_at, duration_s) = match open {
                    Some(o) if o.file == file && running_ns >= o.running_ns && running_ns > 0 => {
                        (o.started_at, Some((running_ns - o.running_ns) as f64 / 1e9))
                    }
                    Some(o) => (
                        o.started_at,
                        Some((Utc::now() - o.started_at).num_milliseconds() as f64 / 1e3),
                    ),
                    None => (Utc::now(), None),
                };
                let rec = active
                    .manifest
                    .inputs
                    .entry(input)
                    .or_insert_with(InputRecord::default);
                if !rec.segments.iter().any(|s| s.file == rel) {
                    rec.segments.push(Segment {
                        file: rel,
                        started_at,
                        duration_s,
                        bytes,
                        recovered: false,
                    });
                }
            }
            RecEvent::Failed { .. } => {}
        }
    }

    /// fsyncs the segments being written (called twice a second), so that a power cut
    /// loses at most about half a second plus what the encoder and muxer held.
    pub fn sync_open_segments(&self) {
        let files: Vec<PathBuf> = {
            let inner = lock(&self.inner);
            inner
                .active
                .iter()
                .flat_map(|a| a.recordings.values())
                .filter_map(|r| r.current_file())
                .collect()
        };
        for f in files {
            let _ = r58_fs::sync_file(&f);
            if let Some(dir) = f.parent() {
                let _ = r58_fs::sync_dir(dir);
            }
        }
    }

    pub fn status(&self, input: &str) -> InputRecording {
        let inner = lock(&self.inner);
        let active = inner.active.as_ref();
        let recording = active.is_some_and(|a| a.recordings.contains_key(input));
        let rec = active.and_then(|a| a.manifest.inputs.get(input));
        let open_bytes = active
            .and_then(|a| a.recordings.get(input))
            .and_then(|r| r.current_file())
            .and_then(|f| std::fs::metadata(f).ok())
            .map_or(0, |m| m.len());
        InputRecording {
            recording,
            session: if recording {
                active.map(|a| a.manifest.session.clone())
            } else {
                None
            },
            bytes: rec.map_or(0, |r| r.segments.iter().map(|s| s.bytes).sum::<u64>()) + open_bytes,
            segments: rec.map_or(0, |r| r.segments.len()) + usize::from(open_bytes > 0),
            last_stop_reason: inner.last_stop.get(input).cloned(),
        }
    }

    pub fn active_session(&self) -> Option<String> {
        lock(&self.inner)
            .active
            .as_ref()
            .map(|a| a.manifest.session.clone())
    }

    pub fn any_recording(&self) -> bool {
        lock(&self.inner)
            .active
            .as_ref()
            .is_some_and(|a| !a.recordings.is_empty())
    }

    fn persist_desired(&self) {
        let inner = lock(&self.inner);
        let recording = inner
            .active
            .iter()
            .flat_map(|a| a.recordings.keys().cloned())
            .collect();
        if let Err(e) = r58_fs::write_json_atomic(&self.state_path, &DesiredState { recording }) {
            tracing::error!(error = %e, "persisting recorder state");
        }
    }

    /// All session manifests, newest first.
    pub fn list(&self) -> Vec<Manifest> {
        let mut out: Vec<Manifest> = session_dirs(&self.root)
            .into_iter()
            .filter_map(|d| Manifest::read(&d).ok().flatten())
            .collect();
        out.sort_by(|a, b| b.session.cmp(&a.session));
        out
    }

    pub fn get(&self, session: &str) -> Option<Manifest> {
        if crate::store::paths::safe_component(session).is_err() {
            return None;
        }
        Manifest::read(&self.root.join(session)).ok().flatten()
    }
}

pub fn session_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn repair_all(root: &Path) {
    for dir in session_dirs(root) {
        match Manifest::read(&dir) {
            Ok(Some(mut m)) if m.ended_at.is_none() => {
                if let Err(e) = manifest::repair(&dir, &mut m)
                    .map_err(|e| e.to_string())
                    .and_then(|_| m.write(&dir).map_err(|e| e.to_string()))
                {
                    tracing::error!(session = %dir.display(), error = %e, "repairing session failed");
                } else {
                    tracing::warn!(session = %m.session, bytes = m.total_bytes(), "closed session interrupted by a crash or power cut");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(session = %dir.display(), error = %e, "unreadable manifest"),
        }
    }
}
