//! coturn's TURN REST scheme (`use-auth-secret`): username `<expiry unix time>:<device id>`,
//! credential base64(HMAC-SHA1(secret, username)). coturn checks the HMAC and refuses the
//! username once its time has passed.

use crate::{Credentials, IceServer};
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};

pub fn credential(secret: &[u8], username: &str) -> String {
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn mint(
    secret: &[u8],
    device: &str,
    urls: &[String],
    expires_at: DateTime<Utc>,
) -> Credentials {
    mint_user(secret, device, urls, expires_at)
}

/// Credentials for one remote guest of `device`: the coturn user `<device>.guest.<guest>`,
/// so that the relay's logs and quotas tell guests apart.
pub fn mint_for_guest(
    secret: &[u8],
    device: &str,
    guest: &str,
    urls: &[String],
    expires_at: DateTime<Utc>,
) -> Credentials {
    mint_user(secret, &format!("{device}.guest.{guest}"), urls, expires_at)
}

fn mint_user(secret: &[u8], user: &str, urls: &[String], expires_at: DateTime<Utc>) -> Credentials {
    let username = format!("{}:{user}", expires_at.timestamp());
    let credential = credential(secret, &username);
    Credentials {
        ice_servers: vec![IceServer {
            urls: urls.to_vec(),
            username: Some(username),
            credential: Some(credential),
        }],
        expires_at,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_gets_a_user_of_its_own_with_its_own_credential() {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let device = mint(b"s", "r58-1", &[], at);
        let guest = mint_for_guest(b"s", "r58-1", "inv-7", &[], at);
        let user = guest.ice_servers[0].username.as_deref().unwrap();
        assert_eq!(user, "1700000000:r58-1.guest.inv-7");
        assert_eq!(
            guest.ice_servers[0].credential.as_deref(),
            Some(credential(b"s", user).as_str())
        );
        assert_ne!(
            guest.ice_servers[0].credential,
            device.ice_servers[0].credential
        );
    }

    #[test]
    fn matches_the_rest_api_scheme() {
        // RFC 2202 test case 2 for HMAC-SHA1: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            credential(b"Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let c = mint(b"s", "r58-a", &["turn:t.example.com:3478".into()], t);
        assert_eq!(
            c.ice_servers[0].username.as_deref(),
            Some("1800000000:r58-a")
        );
    }
}
