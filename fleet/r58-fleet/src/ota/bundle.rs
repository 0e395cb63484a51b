//! Published bundles: read with `rauc info` (version, compatible; the signature checked
//! against the devices' keyring when one is configured), stored as `<sha256>.raucb`, and
//! checked again before they are served (a bundle whose bytes changed on disk is withheld).

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::config::OtaConfig;
use crate::error::FleetError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub compatible: String,
    pub version: String,
    pub signature_checked: bool,
}

pub fn stored_path(dir: &Path, sha256: &str) -> PathBuf {
    dir.join(format!("{sha256}.raucb"))
}

pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((format!("{:x}", h.finalize()), n))
}

/// Runs `rauc info` on a bundle. With a keyring, a bad or unknown signature is an error.
pub fn inspect(cfg: &OtaConfig, path: &Path) -> Result<Inspected, FleetError> {
    let bad = |reason: String| FleetError::Bundle {
        path: path.to_path_buf(),
        reason,
    };
    let mut cmd = std::process::Command::new(&cfg.rauc);
    let checked = !cfg.keyring.as_os_str().is_empty();
    let mut _conf_dir = None;
    if checked {
        // `rauc info` checks the signature as the devices do: same keyring, codeSigning purpose.
        let dir = tempfile::tempdir().map_err(|e| bad(format!("temporary folder: {e}")))?;
        let conf = dir.path().join("system.conf");
        std::fs::write(
            &conf,
            format!("[system]\ncompatible=r58-fleet\nbootloader=noop\n[keyring]\npath={}\ncheck-purpose=codesign\n", cfg.keyring.display()),
        )
        .map_err(|e| bad(format!("writing {}: {e}", conf.display())))?;
        cmd.arg(format!("--conf={}", conf.display()));
        _conf_dir = Some(dir);
    }
    cmd.args(["info", "--output-format=json"]);
    if !checked {
        cmd.arg("--no-verify");
    }
    let out = cmd
        .arg(path)
        .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
        .output()
        .map_err(|e| {
            bad(format!(
                "running {}: {e} (is rauc installed?)",
                cfg.rauc.display()
            ))
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let msg = stderr
            .lines()
            .filter(|l| !l.contains("rauc-Message"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(bad(format!("rauc refused it: {}", msg.trim())));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| bad(format!("rauc info output: {e}")))?;
    let field = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad(format!("manifest has no {k}")))
    };
    let version = field("version")?;
    if !version
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".+-_".contains(&b))
    {
        return Err(bad(format!(
            "version {version:?} has characters a version should not"
        )));
    }
    Ok(Inspected {
        compatible: field("compatible")?,
        version,
        signature_checked: checked,
    })
}

/// What this process has verified of the stored bundles: a bundle is served only once its
/// bytes were found to match its SHA-256, and never after a check found they do not.
#[derive(Clone, Default)]
pub struct Withheld(Arc<Mutex<(HashSet<String>, HashSet<String>)>>);

impl Withheld {
    /// Some(true): verified good; Some(false): withheld; None: not checked yet.
    pub fn verdict(&self, sha: &str) -> Option<bool> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if s.1.contains(sha) {
            Some(false)
        } else if s.0.contains(sha) {
            Some(true)
        } else {
            None
        }
    }

    pub fn set(&self, sha: &str, bad: bool) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if bad {
            s.0.remove(sha);
            s.1.insert(sha.to_string());
        } else {
            s.1.remove(sha);
            s.0.insert(sha.to_string());
        }
    }
}

/// Checks one stored bundle against its name and size; records and returns the verdict.
pub async fn verify_stored(dir: &Path, b: &r58_fleet_api::Bundle, withheld: &Withheld) -> bool {
    let path = stored_path(dir, &b.sha256);
    let result = tokio::task::spawn_blocking(move || sha256_file(&path)).await;
    let ok = matches!(&result, Ok(Ok((sha, size))) if *sha == b.sha256 && *size as i64 == b.size);
    if !ok {
        tracing::error!(sha256 = %b.sha256, version = %b.version, "stored bundle does not match its checksum: withheld");
    }
    withheld.set(&b.sha256, !ok);
    ok
}

/// Checks every stored bundle against its name (at start, then every `every`).
pub async fn audit(
    db: crate::db::Db,
    dir: PathBuf,
    withheld: Withheld,
    every: std::time::Duration,
) {
    loop {
        match db.bundles().await {
            Ok(list) => {
                for b in list {
                    verify_stored(&dir, &b, &withheld).await;
                }
            }
            Err(e) => tracing::warn!(error = %r58_log::error_chain(&e), "bundle audit"),
        }
        tokio::time::sleep(every).await;
    }
}
