//! Crash-safe writes: a reader sees the old file or the new one, never a half-written one,
//! and after return the new one survives a power cut.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding JSON for {path}: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("decoding JSON in {path}: {source}")]
    Decode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// `.<name>.tmp` beside `path`: where a new version is written before the rename.
fn temp_path(path: &Path) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?;
    Ok(path.with_file_name(format!(".{}.tmp", name.to_string_lossy())))
}

/// Writes `data` to `path` atomically: `.<name>.tmp` beside it, fsync, rename, fsync folder.
/// The new file's mode follows the process's umask.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FsError> {
    write_atomic_inner(path, data, None)
}

/// [`write_atomic`] with the new file's permission bits set to `mode` whatever the umask
/// (e.g. 0o640 for a file another service reads through the group). The group is the
/// folder's when the folder is set-group-ID, else the process's.
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> Result<(), FsError> {
    write_atomic_inner(path, data, Some(mode))
}

fn write_atomic_inner(path: &Path, data: &[u8], mode: Option<u32>) -> Result<(), FsError> {
    let err = |source| FsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = temp_path(path).map_err(err)?;
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        if let Some(mode) = mode {
            // Never more open than `mode`, not even between create and chmod (private keys).
            options.mode(mode & 0o777);
        }
        let mut f = options.open(&tmp)?;
        if let Some(mode) = mode {
            // fchmod is not masked by the umask, unlike the mode given to open.
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Serializes `value` as pretty JSON and writes it with [`write_atomic`].
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), FsError> {
    let mut data = serde_json::to_vec_pretty(value).map_err(|source| FsError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    data.push(b'\n');
    write_atomic(path, &data)
}

/// Like [`write_json_atomic`] without the fsyncs: readers still see the old or the new
/// file, and the new one survives a crash of the process, but a power cut may lose the
/// last write (ext4 with `auto_da_alloc` still never leaves an empty file). For state on a
/// hot path where losing the last second is acceptable.
pub fn write_json_replace<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), FsError> {
    let err = |source| FsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let data = serde_json::to_vec(value).map_err(|source| FsError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    let tmp = temp_path(path).map_err(err)?;
    std::fs::write(&tmp, &data)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
}

/// Reads JSON written by [`write_json_atomic`]; Ok(None) when the file does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, FsError> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|source| FsError::Decode {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FsError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Flushes a file's data to stable storage through a fresh descriptor: fsync works on the
/// inode, so this also makes durable what another writer (e.g. a GStreamer sink) wrote.
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_json_atomic(&path, &vec![1, 2]).unwrap();
        write_json_atomic(&path, &vec![3]).unwrap();
        assert_eq!(read_json::<Vec<i32>>(&path).unwrap(), Some(vec![3]));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old").unwrap();
        // A folder where the temp file would go makes the write fail.
        std::fs::create_dir(dir.path().join(".state.json.tmp")).unwrap();
        assert!(write_atomic(&path, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn the_mode_given_is_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.toml");
        // A leftover 0600 file (written under umask 077) is replaced by one the group reads.
        write_atomic(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic_mode(&path, b"new", 0o640).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn missing_file_reads_as_none_and_garbage_as_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        assert!(read_json::<u32>(&path).unwrap().is_none());
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            read_json::<u32>(&path),
            Err(FsError::Decode { .. })
        ));
    }
}
