//! Resumable bundle download: `<dest>.part` grows until it has `size` bytes, then its SHA-256
//! is checked and it is renamed to `dest`. After a cut (network or power), the next attempt
//! asks for the rest with an HTTP Range request; a server that ignores Range makes it start
//! over. 4xx ends the job; timeouts, resets and 5xx are retried with a capped backoff, a
//! bounded number of times in a row without progress.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};

/// What to fetch and how hard to try.
#[derive(Debug, Clone)]
pub struct Spec {
    pub url: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    pub dest: PathBuf,
    /// Consecutive failed attempts (without a byte of progress) before giving up.
    pub max_attempts: u32,
    pub backoff_max: Duration,
    /// Kept free on the file system beyond the bundle.
    pub reserve_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("server refused {url}: HTTP {status}")]
    Client { url: String, status: u16 },
    #[error("giving up on {url} after {attempts} attempts: {last}")]
    Exhausted {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("not enough space in {dir}: {need} bytes needed, {free} free")]
    NoSpace { dir: PathBuf, need: u64, free: u64 },
    #[error("{url} has {got} bytes, the job says {expected}")]
    Size {
        url: String,
        expected: u64,
        got: u64,
    },
    #[error("SHA-256 of the download is {got}, the job says {expected}")]
    Checksum { expected: String, got: String },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What one successful download did, for reports and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes already on disk when it started (kept, not fetched again).
    pub resumed_from: u64,
    /// Bytes received over the network.
    pub received: u64,
    /// Bytes received again because the server ignored a Range request.
    pub refetched: u64,
}

pub fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn free_bytes(dir: &Path) -> Result<u64, DownloadError> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| io(dir)(e.into()))?;
    Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

fn hash_prefix(path: &Path, len: u64) -> Result<Sha256, DownloadError> {
    if len == 0 {
        return Ok(Sha256::new());
    }
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = f.read(&mut buf[..want]).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(h)
}

enum Attempt {
    Done,
    /// Retry: what went wrong, and whether bytes were gained.
    Retry(String, bool),
}

/// Fetches `spec` into `spec.dest`, reporting the bytes on disk through `progress`.
pub async fn fetch(
    client: &reqwest::Client,
    spec: &Spec,
    mut progress: impl FnMut(u64, u64),
) -> Result<Stats, DownloadError> {
    let part = part_path(&spec.dest);
    let dir = spec.dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if spec.dest.exists() {
        // A complete download from before a restart: verified again below.
        std::fs::rename(&spec.dest, &part).map_err(io(&part))?;
    }
    let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if have > spec.size {
        have = 0;
    }
    let need = spec.size - have + spec.reserve_bytes;
    let free = free_bytes(dir)?;
    if free < need {
        return Err(DownloadError::NoSpace {
            dir: dir.to_path_buf(),
            need,
            free,
        });
    }
    let mut stats = Stats {
        resumed_from: have,
        ..Stats::default()
    };
    let mut hasher = hash_prefix(&part, have)?;
    let mut failures = 0u32;
    loop {
        match attempt(
            client,
            spec,
            &part,
            &mut have,
            &mut hasher,
            &mut stats,
            &mut progress,
        )
        .await?
        {
            Attempt::Done => break,
            Attempt::Retry(why, gained) => {
                failures = if gained { 1 } else { failures + 1 };
                if failures >= spec.max_attempts {
                    return Err(DownloadError::Exhausted {
                        url: spec.url.clone(),
                        attempts: failures,
                        last: why,
                    });
                }
                let wait = Duration::from_millis(500u64.saturating_mul(1 << failures.min(16)))
                    .min(spec.backoff_max);
                tracing::warn!(url = %spec.url, error = %why, have, retry_in_ms = wait.as_millis() as u64, "download interrupted");
                tokio::time::sleep(wait).await;
            }
        }
    }
    let got = format!("{:x}", hasher.finalize());
    if got != spec.sha256.to_ascii_lowercase() {
        // Start over next time rather than resume a corrupt prefix.
        let _ = std::fs::remove_file(&part);
        return Err(DownloadError::Checksum {
            expected: spec.sha256.clone(),
            got,
        });
    }
    r58_fs::sync_file(&part).map_err(io(&part))?;
    std::fs::rename(&part, &spec.dest).map_err(io(&spec.dest))?;
    r58_fs::sync_dir(dir).map_err(io(dir))?;
    Ok(stats)
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    client: &reqwest::Client,
    spec: &Spec,
    part: &Path,
    have: &mut u64,
    hasher: &mut Sha256,
    stats: &mut Stats,
    progress: &mut impl FnMut(u64, u64),
) -> Result<Attempt, DownloadError> {
    if *have == spec.size {
        return Ok(Attempt::Done);
    }
    // A bundle takes as long as the link needs: no limit on the whole request (the client's
    // is for small calls), but a stall of STALL ends the attempt (and it resumes).
    let mut req = client.get(&spec.url).timeout(WHOLE_TRANSFER);
    if *have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={}-", *have));
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Ok(Attempt::Retry(e.to_string(), false)),
    };
    let status = resp.status();
    if status.as_u16() == 416 {
        // Our prefix is already as long as the file: the checksum decides.
        let total = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit('/').next())
            .and_then(|n| n.parse::<u64>().ok());
        return match total {
            Some(t) if t != spec.size => Err(DownloadError::Size {
                url: spec.url.clone(),
                expected: spec.size,
                got: t,
            }),
            _ => Ok(Attempt::Done),
        };
    }
    if status.is_client_error() {
        return Err(DownloadError::Client {
            url: spec.url.clone(),
            status: status.as_u16(),
        });
    }
    if !status.is_success() {
        return Ok(Attempt::Retry(format!("HTTP {status}"), false));
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(part)
        .map_err(io(part))?;
    if status.as_u16() == 206 {
        file.seek(SeekFrom::Start(*have)).map_err(io(part))?;
    } else {
        // The whole file again: the server ignored the Range.
        stats.refetched += *have;
        *have = 0;
        *hasher = Sha256::new();
        file.set_len(0).map_err(io(part))?;
        if let Some(len) = resp.content_length() {
            if len != spec.size {
                return Err(DownloadError::Size {
                    url: spec.url.clone(),
                    expected: spec.size,
                    got: len,
                });
            }
        }
    }
    let start = *have;
    // The disk side runs on its own thread: receiving goes on while it writes, hashes and
    // waits for fsync (inline, the socket sat idle during every fsync).
    let (tx, rx) = tokio::sync::mpsc::channel(SINK_QUEUE);
    let hash = std::mem::take(hasher);
    let sink = tokio::task::spawn_blocking(move || write_chunks(file, hash, rx));
    let mut received = start;
    let mut outcome = Ok(None);
    let mut body = resp.bytes_stream();
    loop {
        let chunk = match tokio::time::timeout(STALL, body.next()).await {
            Ok(None) => break,
            Ok(Some(Ok(c))) => c,
            Ok(Some(Err(e))) => {
                outcome = Ok(Some(e.to_string()));
                break;
            }
            Err(_) => {
                outcome = Ok(Some(format!("no data for {} s", STALL.as_secs())));
                break;
            }
        };
        let len = chunk.len() as u64;
        if received + len > spec.size {
            outcome = Err(DownloadError::Size {
                url: spec.url.clone(),
                expected: spec.size,
                got: received + len,
            });
            break;
        }
        if tx.send(chunk).await.is_err() {
            break; // the sink failed: its error is below
        }
        received += len;
        progress(received, spec.size);
    }
    drop(tx);
    let (hash, written, result) = sink
        .await
        .unwrap_or_else(|e| (Sha256::new(), 0, Err(std::io::Error::other(e.to_string()))));
    *hasher = hash;
    *have = start + written;
    stats.received += written;
    result.map_err(io(part))?;
    if let Some(why) = outcome? {
        return Ok(Attempt::Retry(why, *have > start));
    }
    if *have < spec.size {
        return Ok(Attempt::Retry(
            format!("connection closed at {} of {} bytes", *have, spec.size),
            *have > start,
        ));
    }
    Ok(Attempt::Done)
}

/// A download attempt ends when no byte arrived for this long (then it resumes).
const STALL: Duration = Duration::from_secs(30);
/// The bound of one request: a day (a bundle over a slow uplink).
const WHOLE_TRANSFER: Duration = Duration::from_secs(24 * 3600);

/// Chunks received but not yet on disk, at most (a chunk is what one socket read gave).
const SINK_QUEUE: usize = 128;
/// What is on disk is what a resume after a power cut keeps: synced every this many bytes.
const SYNC_EVERY: u64 = 8 << 20;

/// Writes and hashes the chunks in order until the channel closes, syncing every
/// [`SYNC_EVERY`] bytes and at the end. Returns the hash state, the bytes written (all of
/// them hashed) and the first error, after which it stops.
fn write_chunks<T: AsRef<[u8]>>(
    mut file: std::fs::File,
    mut hash: Sha256,
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> (Sha256, u64, std::io::Result<()>) {
    let mut written = 0u64;
    let mut since_sync = 0u64;
    while let Some(chunk) = rx.blocking_recv() {
        let chunk = chunk.as_ref();
        if let Err(e) = file.write_all(chunk) {
            // Part of the chunk may be in the file beyond `written`: a retry in this run
            // writes from `written` on, a later run hashes the file again from disk.
            return (hash, written, Err(e));
        }
        hash.update(chunk);
        written += chunk.len() as u64;
        since_sync += chunk.len() as u64;
        if since_sync >= SYNC_EVERY {
            if let Err(e) = file.sync_data() {
                return (hash, written, Err(e));
            }
            since_sync = 0;
        }
    }
    let r = file.sync_data();
    (hash, written, r)
}
