//! The device registry: device ids with the SHA-256 of their bearer tokens (the tokens
//! themselves are never stored). Written atomically.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::FleetError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    #[serde(default)]
    pub devices: BTreeMap<String, Device>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub token_sha256: String,
    #[serde(default)]
    pub revoked: bool,
}

pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Devices {
    pub fn load(path: &Path) -> Result<Self, FleetError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| FleetError::DevicesParse {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(FleetError::DevicesRead {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), FleetError> {
        let text = toml::to_string(self).map_err(|e| FleetError::DevicesParse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| FleetError::DevicesRead {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        r58_fs::write_atomic(path, text.as_bytes()).map_err(FleetError::State)
    }

    /// The device a bearer token belongs to, unless unknown or revoked.
    pub fn authenticate(&self, token: &str) -> Option<&str> {
        let hash = token_hash(token);
        self.devices
            .iter()
            .find(|(_, d)| !d.revoked && d.token_sha256 == hash)
            .map(|(id, _)| id.as_str())
    }
}

/// A new random token (256 bits from the OS), as hex.
/// `N` bytes from the kernel's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], FleetError> {
    use std::io::Read;
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|source| FleetError::DevicesRead {
            path: "/dev/urandom".into(),
            source,
        })?;
    Ok(buf)
}

pub fn new_token() -> Result<String, FleetError> {
    Ok(random_bytes::<32>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn authenticates_by_hash_and_honours_revocation() {
        let mut d = Devices::default();
        d.devices.insert(
            "r58-a".into(),
            Device {
                token_sha256: token_hash("tok-a"),
                revoked: false,
            },
        );
        d.devices.insert(
            "r58-b".into(),
            Device {
                token_sha256: token_hash("tok-b"),
                revoked: true,
            },
        );
        assert_eq!(d.authenticate("tok-a"), Some("r58-a"));
        assert_eq!(d.authenticate("tok-b"), None);
        assert_eq!(d.authenticate("nope"), None);
    }
}
