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
    let username = format!("{}:{device}", expires_at.timestamp());
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
