//! Guest invites: made by the box's operators (with the API token), each with a name, an
//! expiry and a number of uses, and revocable. A guest sends the invite's token to the WHIP
//! endpoint. The token is shown once, when the invite is made; only its SHA-256 is kept, in
//! `<data>/recorder/invites.json`, written atomically.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::stats::lock;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invite {
    pub id: String,
    /// Who it is for (shown on the box's UI and in the guest's input).
    pub name: String,
    pub expires_at: DateTime<Utc>,
    pub uses_left: u32,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    token_sha256: String,
}

impl Invite {
    /// The invite as shown to operators: without its token's hash.
    pub fn public(&self) -> Invite {
        Invite {
            token_sha256: String::new(),
            ..self.clone()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("no such invite")]
    Unknown,
    #[error("the invite expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("the invite has been used as often as it may")]
    UsedUp,
    #[error("making a token: {0}")]
    Random(#[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] r58_fs::FsError),
}

pub struct Invites {
    path: PathBuf,
    list: Mutex<Vec<Invite>>,
}

fn sha256_hex(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// `bytes` random bytes from the kernel, as hex (tokens, ids).
pub fn random_hex(bytes: usize) -> Result<String, InviteError> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(InviteError::Random)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

impl Invites {
    /// The invites kept at `path`; an unreadable file is logged and starts an empty list.
    pub fn open(path: PathBuf) -> Self {
        let list = match r58_fs::read_json::<Vec<Invite>>(&path) {
            Ok(l) => l.unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "ignoring unreadable guest invites");
                Vec::new()
            }
        };
        Self {
            path,
            list: Mutex::new(list),
        }
    }

    fn save(&self, list: &[Invite]) -> Result<(), InviteError> {
        let now = Utc::now();
        let live: Vec<&Invite> = list.iter().filter(|i| i.expires_at > now).collect();
        r58_fs::write_json_atomic(&self.path, &live)?;
        Ok(())
    }

    /// A new invite and its token (shown once).
    pub fn create(
        &self,
        name: &str,
        valid_for: Duration,
        uses: u32,
    ) -> Result<(Invite, String), InviteError> {
        let token = random_hex(24)?;
        let invite = Invite {
            id: random_hex(6)?,
            name: name.to_string(),
            expires_at: Utc::now()
                + chrono::Duration::from_std(valid_for).unwrap_or(chrono::Duration::zero()),
            uses_left: uses,
            token_sha256: sha256_hex(&token),
        };
        let mut list = lock(&self.list);
        let now = Utc::now();
        list.retain(|i| i.expires_at > now);
        list.push(invite.clone());
        self.save(&list)?;
        Ok((invite.public(), token))
    }

    /// The invites not expired yet.
    pub fn list(&self) -> Vec<Invite> {
        let now = Utc::now();
        lock(&self.list)
            .iter()
            .filter(|i| i.expires_at > now)
            .map(Invite::public)
            .collect()
    }

    /// Revokes invite `id`; false when there is none.
    pub fn revoke(&self, id: &str) -> Result<bool, InviteError> {
        let mut list = lock(&self.list);
        let before = list.len();
        list.retain(|i| i.id != id);
        if list.len() == before {
            return Ok(false);
        }
        self.save(&list)?;
        Ok(true)
    }

    /// The invite `token` belongs to, if it is known and not expired (uses not looked at).
    pub fn find(&self, token: &str) -> Result<Invite, InviteError> {
        let hash = sha256_hex(token);
        let list = lock(&self.list);
        let invite = list
            .iter()
            .find(|i| i.token_sha256 == hash)
            .ok_or(InviteError::Unknown)?;
        if invite.expires_at <= Utc::now() {
            return Err(InviteError::Expired(invite.expires_at));
        }
        Ok(invite.public())
    }

    /// The invite `token` belongs to, if it may be used for a new join now (nothing is
    /// counted).
    pub fn check(&self, token: &str) -> Result<Invite, InviteError> {
        let invite = self.find(token)?;
        if invite.uses_left == 0 {
            return Err(InviteError::UsedUp);
        }
        Ok(invite)
    }

    /// Counts one use of the invite `token` belongs to.
    pub fn redeem(&self, token: &str) -> Result<Invite, InviteError> {
        self.check(token)?;
        let hash = sha256_hex(token);
        let mut list = lock(&self.list);
        let Some(invite) = list.iter_mut().find(|i| i.token_sha256 == hash) else {
            return Err(InviteError::Unknown);
        };
        invite.uses_left = invite.uses_left.saturating_sub(1);
        let used = invite.public();
        self.save(&list)?;
        Ok(used)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn invites_are_counted_expire_are_revoked_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("invites.json");
        let invites = Invites::open(path.clone());
        let (twice, token) = invites.create("Ada", Duration::from_secs(3600), 2).unwrap();
        assert_eq!(invites.check(&token).unwrap().name, "Ada");
        assert!(matches!(invites.check("nope"), Err(InviteError::Unknown)));
        assert_eq!(invites.redeem(&token).unwrap().uses_left, 1);
        // Kept across a restart, without the token itself.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token), "{text}");
        let reopened = Invites::open(path.clone());
        assert_eq!(reopened.redeem(&token).unwrap().uses_left, 0);
        assert!(matches!(reopened.check(&token), Err(InviteError::UsedUp)));
        let (short, t2) = reopened
            .create("Bob", Duration::from_millis(50), 1)
            .unwrap();
        std::thread::sleep(Duration::from_millis(80));
        assert!(matches!(reopened.check(&t2), Err(InviteError::Expired(_))));
        assert!(!reopened.list().iter().any(|i| i.id == short.id));
        assert!(reopened.revoke(&twice.id).unwrap());
        assert!(!reopened.revoke(&twice.id).unwrap());
        assert!(matches!(reopened.check(&token), Err(InviteError::Unknown)));
    }
}
