//! The JSON manifest of a recording session (`<session>/manifest.json`), written
//! atomically after every change, and its repair after a crash or power cut.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "manifest.json";
/// Container of the segments; docs/decisions/0001-mpeg-ts-segments.md says why MPEG-TS.
pub const CONTAINER: &str = "mpegts";
pub const SEGMENT_EXT: &str = "ts";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Segment {
    /// Path relative to the session folder, e.g. `cam1/20261128T101500.123Z.ts`.
    pub file: String,
    pub started_at: DateTime<Utc>,
    /// None while being written, or when recovered after a crash.
    pub duration_s: Option<f64>,
    pub bytes: u64,
    /// True for the segment found on disk after an unclean stop.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct InputRecord {
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub stop_reason: Option<String>,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub session: String,
    pub container: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `stopped`, `disk_full`, `shutdown`, `interrupted` (found unfinished at start) …
    pub end_reason: Option<String>,
    pub inputs: BTreeMap<String, InputRecord>,
}

impl Manifest {
    pub fn new(session: &str, now: DateTime<Utc>) -> Self {
        Self {
            session: session.to_string(),
            container: CONTAINER.into(),
            started_at: now,
            ended_at: None,
            end_reason: None,
            inputs: BTreeMap::new(),
        }
    }

    pub fn total_bytes(&self) -> u64 {
        self.inputs
            .values()
            .flat_map(|i| &i.segments)
            .map(|s| s.bytes)
            .sum()
    }

    pub fn write(&self, dir: &Path) -> Result<(), r58_fs::FsError> {
        r58_fs::write_json_atomic(&dir.join(MANIFEST), self)
    }

    pub fn read(dir: &Path) -> Result<Option<Self>, r58_fs::FsError> {
        r58_fs::read_json(&dir.join(MANIFEST))
    }
}

/// Wall-clock file name of a segment that starts now: `20261128T101500.123Z.ts`.
pub fn segment_name(now: DateTime<Utc>) -> String {
    format!("{}.{SEGMENT_EXT}", now.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// Session ids are their start time: sorting by id sorts by age.
pub fn session_id(now: DateTime<Utc>) -> String {
    now.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Closes a session that was being written when the process died: every segment file on
/// disk is listed with its size, and the session ends at the newest file's mtime.
pub fn repair(dir: &Path, manifest: &mut Manifest) -> std::io::Result<()> {
    let mut newest: Option<DateTime<Utc>> = None;
    for (input, rec) in manifest.inputs.iter_mut() {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir.join(input)) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == SEGMENT_EXT))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        files.sort();
        for path in files {
            let meta = std::fs::metadata(&path)?;
            let mtime: DateTime<Utc> = meta.modified()?.into();
            newest = newest.max(Some(mtime));
            let rel = format!(
                "{input}/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            match rec.segments.iter_mut().find(|s| s.file == rel) {
                Some(seg) => seg.bytes = meta.len(),
                None => rec.segments.push(Segment {
                    file: rel,
                    started_at: started_from_name(&path).unwrap_or(mtime),
                    duration_s: None,
                    bytes: meta.len(),
                    recovered: true,
                }),
            }
        }
        if rec.ended_at.is_none() {
            rec.ended_at = newest;
            rec.stop_reason.get_or_insert_with(|| "interrupted".into());
        }
    }
    manifest.ended_at = Some(newest.unwrap_or(manifest.started_at));
    manifest.end_reason = Some("interrupted".into());
    Ok(())
}

fn started_from_name(path: &Path) -> Option<DateTime<Utc>> {
    let stem = path.file_stem()?.to_str()?;
    chrono::NaiveDateTime::parse_from_str(stem, "%Y%m%dT%H%M%S%.3fZ")
        .ok()
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_parse_back() {
        let t = DateTime::parse_from_rfc3339("2026-11-28T10:15:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(segment_name(t), "20261128T101500.123Z.ts");
        assert_eq!(session_id(t), "20261128T101500Z");
        assert_eq!(
            started_from_name(Path::new("a/20261128T101500.123Z.ts")),
            Some(t)
        );
    }

    #[test]
    fn repair_lists_unknown_files_and_closes_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let mut m = Manifest::new("s", now);
        m.inputs.insert(
            "cam".into(),
            InputRecord {
                started_at: Some(now),
                ..Default::default()
            },
        );
        std::fs::create_dir(dir.path().join("cam")).unwrap();
        std::fs::write(
            dir.path().join("cam/20261128T101500.000Z.ts"),
            vec![0u8; 376],
        )
        .unwrap();
        repair(dir.path(), &mut m).unwrap();
        let rec = &m.inputs["cam"];
        assert_eq!(rec.segments.len(), 1);
        assert_eq!(rec.segments[0].bytes, 376);
        assert!(rec.segments[0].recovered);
        assert_eq!(m.end_reason.as_deref(), Some("interrupted"));
        assert!(m.ended_at.is_some());
    }
}
