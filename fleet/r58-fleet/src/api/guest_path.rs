//! The public guest path, `/g/<device>/…` (docs/remote-access.md): a guest with no account
//! reaches the guest page and the WHIP endpoints of one box through its tunnel, and nothing
//! else of the box. The invite the guest page sends is the credential, checked by the box.
//! Requests are limited per source address and per device.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::rate::RateLimit;
use super::tunnels::{forward, Caller};
use super::AppState;

/// The largest request body a guest sends (an SDP offer, an ICE fragment).
const MAX_BODY: usize = 64 * 1024;

/// The rate limits of the guest path and where the source address comes from.
pub struct GuestLimits {
    pub per_address: RateLimit,
    pub per_device: RateLimit,
    pub trust_forwarded_for: bool,
}

impl GuestLimits {
    pub fn new(cfg: &crate::config::RelayConfig) -> Self {
        Self {
            per_address: RateLimit::new(cfg.guest_per_address_per_minute),
            per_device: RateLimit::new(cfg.guest_per_device_per_minute),
            trust_forwarded_for: cfg.trust_forwarded_for,
        }
    }

    /// The guest's address: the TCP peer, or the entry the reverse proxy in front added
    /// (the last of `X-Forwarded-For`) when configured to trust it.
    fn source(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if self.trust_forwarded_for {
            let last = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|a| a.trim().parse::<IpAddr>().ok());
            if let Some(a) = last {
                return a;
            }
        }
        peer.ip()
    }
}

/// Whether `method` on `path` (below `/g/<device>/`, query excluded) is part of what guests
/// may reach: the guest page, the WHIP endpoint, and a WHIP session's resource.
pub fn allowed(method: &Method, path: &str) -> bool {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["guest_join"] => matches!(*method, Method::GET | Method::HEAD),
        ["whip"] => matches!(*method, Method::POST | Method::OPTIONS),
        ["whip", input, session] => {
            segment_ok(input)
                && segment_ok(session)
                && matches!(*method, Method::DELETE | Method::PATCH | Method::OPTIONS)
        }
        _ => false,
    }
}

/// `ANY /g/:device/*path`.
pub async fn guest(
    State(s): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Result<Response, ApiError> {
    let limits = &s.guest_limits;
    let now = Instant::now();
    let source = limits.source(peer, req.headers());
    limits
        .per_address
        .take(&source.to_string(), now)
        .map_err(|retry_after_s| ApiError::RateLimited {
            what: format!("from {source}"),
            retry_after_s,
        })?;
    if !allowed(req.method(), &path) {
        return Err(ApiError::NotFound(format!(
            "{} /{path} on the guest path",
            req.method()
        )));
    }
    // Refused while remote access is off, before it counts against the device's limit.
    if !s.db.remote_access().await?.enabled {
        return Err(ApiError::RemoteAccessOff);
    }
    limits
        .per_device
        .take(&id, now)
        .map_err(|retry_after_s| ApiError::RateLimited {
            what: format!("to device {id}"),
            retry_after_s,
        })?;
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| ApiError::TooLarge(format!("a guest's request body: {e}")))?;
    let req = Request::from_parts(parts, Body::from(body));
    let mut resp = forward(s, id.clone(), path, req, Caller::Guest(source)).await?;
    // The box sets no cookie on the guests' host and sends guests nowhere else.
    resp.headers_mut().remove(axum::http::header::SET_COOKIE);
    if resp.status().is_redirection() {
        return Err(ApiError::BadGateway(format!(
            "device {id} answered a guest with a redirect"
        )));
    }
    Ok(resp)
}

/// The host name of the guests' address (`relay.public_url`), lower case, without port.
pub fn guest_host(cfg: &crate::config::RelayConfig) -> Option<String> {
    let base = public_base(cfg)?;
    let rest = base.split_once("://").map_or(base.as_str(), |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    Some(host_name(authority))
}

/// `host[:port]` (or `[v6]:port`) as a bare, lower-case host name.
pub fn host_name(authority: &str) -> String {
    let a = authority.trim();
    let host = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        a.rsplit_once(':').map_or(a, |(h, _)| h)
    };
    host.to_ascii_lowercase()
}

/// The host a request was sent to (its `Host` header), as [`host_name`].
pub fn request_host(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_name)
}

/// With a guests' host set (`relay.public_url`), that host serves the guest path (and
/// `/healthz`) only, and the guest path is served on that host only: a box's guest page
/// then runs in an origin of its own, where no operator's session cookie is ever set.
pub async fn separate_hosts(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(guests) = s.guest_host.as_deref() else {
        return next.run(req).await;
    };
    let on_guest_host = request_host(req.headers()).as_deref() == Some(guests);
    let path = req.uri().path();
    let guest_path = path.starts_with("/g/");
    if guest_path && !on_guest_host {
        return ApiError::NotFound(format!("guest pages on this host: they are at {guests}"))
            .into_response();
    }
    if on_guest_host && !guest_path && path != "/healthz" {
        return ApiError::NotFound(format!("{path} on the guests' host")).into_response();
    }
    next.run(req).await
}

/// Where guests on the internet reach a box's guest page: `relay.public_url`, when the fleet
/// has a relay and that address is set.
pub fn public_base(cfg: &crate::config::RelayConfig) -> Option<String> {
    (cfg.listen.is_some() && !cfg.public_url.is_empty())
        .then(|| cfg.public_url.trim_end_matches('/').to_string())
}

/// Adds the public link to the answer of a `guest.invite` made through the fleet: the box
/// answers with its guest page relative to itself (`url`), the fleet's public path to it is
/// `public_url`.
pub fn add_public_link(base: Option<&str>, c: &mut r58_fleet_api::Command) {
    let Some(base) = base else { return };
    if c.name != "guest.invite" {
        return;
    }
    let Some(result) = c.result.as_mut().and_then(|r| r.as_object_mut()) else {
        return;
    };
    let Some(url) = result.get("url").and_then(|u| u.as_str()) else {
        return;
    };
    if !url.starts_with("/guest_join?") {
        return;
    }
    let link = format!("{base}/g/{}{url}", r58_fleet_api::paths::encode(&c.device));
    result.insert("public_url".into(), link.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(name: &str, device: &str, result: serde_json::Value) -> r58_fleet_api::Command {
        r58_fleet_api::Command {
            id: "c1".into(),
            device: device.into(),
            name: name.into(),
            args: serde_json::json!({}),
            state: "succeeded".into(),
            progress: 100,
            message: None,
            result: Some(result),
            created_by: Some("ada".into()),
            created_at: 1,
            expires_at: None,
            updated_at: 2,
        }
    }

    #[test]
    fn hosts_are_compared_by_name_alone() {
        assert_eq!(host_name("Guests.Example.com:443"), "guests.example.com");
        assert_eq!(host_name("localhost"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "::1");
        let mut cfg = crate::config::RelayConfig {
            listen: Some(([127, 0, 0, 1], 0).into()),
            public_url: "https://guests.example.com:8443/".into(),
            ..Default::default()
        };
        assert_eq!(guest_host(&cfg).as_deref(), Some("guests.example.com"));
        cfg.public_url.clear();
        assert_eq!(guest_host(&cfg), None);
    }

    #[test]
    fn an_invite_made_through_the_fleet_gets_its_public_link() {
        let base = Some("https://fleet.example.com");
        let made = serde_json::json!({"token": "abc", "url": "/guest_join?invite=abc"});
        let mut c = answered("guest.invite", "r58 0001", made.clone());
        add_public_link(base, &mut c);
        assert_eq!(
            c.result.unwrap()["public_url"],
            "https://fleet.example.com/g/r58%200001/guest_join?invite=abc"
        );
        // No public address, another command, or an answer that is not a guest page: as is.
        for (base, name, result) in [
            (None, "guest.invite", made.clone()),
            (base, "ping", made.clone()),
            (
                base,
                "guest.invite",
                serde_json::json!({"url": "https://elsewhere/x"}),
            ),
            (base, "guest.invite", serde_json::json!("done")),
        ] {
            let mut c = answered(name, "r58-0001", result.clone());
            add_public_link(base, &mut c);
            assert_eq!(c.result, Some(result));
        }
    }

    #[test]
    fn only_the_guest_page_and_whip_are_reachable() {
        assert!(allowed(&Method::GET, "guest_join"));
        assert!(allowed(&Method::POST, "whip"));
        assert!(allowed(&Method::OPTIONS, "whip"));
        assert!(allowed(&Method::DELETE, "whip/guest-ann/0a1b2c"));
        assert!(allowed(&Method::PATCH, "whip/guest-ann/0a1b2c"));
        for (m, p) in [
            (Method::POST, "guest_join"),
            (Method::GET, "whip"),
            (Method::GET, ""),
            (Method::GET, "api/status"),
            (Method::POST, "api/recordings/start"),
            (Method::GET, "hls/cam1/index.m3u8"),
            (Method::DELETE, "whip/../api"),
            (Method::DELETE, "whip/a/b/c"),
            (Method::DELETE, "whip//b"),
            (Method::DELETE, "whip/a%2F/b"),
            (Method::GET, "guest_join/"),
            (Method::GET, "./guest_join"),
        ] {
            assert!(!allowed(&m, p), "{m} {p}");
        }
    }

    #[test]
    fn the_proxy_s_address_is_used_only_when_trusted() {
        let peer: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "1.2.3.4, 5.6.7.8".parse().unwrap());
        let mut l = GuestLimits::new(&Default::default());
        assert_eq!(l.source(peer, &h).to_string(), "10.0.0.1");
        l.trust_forwarded_for = true;
        assert_eq!(l.source(peer, &h).to_string(), "5.6.7.8");
        assert_eq!(l.source(peer, &HeaderMap::new()).to_string(), "10.0.0.1");
    }
}
