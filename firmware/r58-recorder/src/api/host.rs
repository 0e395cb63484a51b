//! The `Host` allow-list: the API answers IP addresses, `localhost`, the box's own host name
//! and `api.allowed_hosts`, and refuses any other name, so a web page whose DNS name is
//! rebound to the box's address cannot talk to it from a browser on the venue's network.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::ApiError;

pub struct Allowed {
    names: Vec<String>,
}

impl Allowed {
    /// `configured` plus `localhost` and the box's host name (with `.local`, mDNS).
    pub fn new(configured: &[String]) -> Self {
        let mut names: Vec<String> = configured.iter().map(|h| h.to_ascii_lowercase()).collect();
        names.push("localhost".into());
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let h = h.trim().to_ascii_lowercase();
            if !h.is_empty() {
                names.push(format!("{h}.local"));
                names.push(h);
            }
        }
        Self { names }
    }

    /// Whether a `Host` header value (`name[:port]`, `[v6]:port`) is one the box answers.
    pub fn allows(&self, host: &str) -> bool {
        let name = if let Some(rest) = host.strip_prefix('[') {
            // [v6 address]:port
            rest.split(']').next().unwrap_or("")
        } else {
            host.rsplit_once(':').map_or(host, |(n, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    n
                } else {
                    host
                }
            })
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name.parse::<IpAddr>().is_ok() || self.names.contains(&name)
    }
}

pub async fn require_allowed_host(
    State(allowed): State<Arc<Allowed>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // HTTP/1.1 and browsers always send Host; without one there is no name to rebind.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match host {
        Some(h) if !allowed.allows(&h) => Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            format!("this box does not answer to the host name {h:?} (api.allowed_hosts)"),
        )),
        _ => Ok(next.run(req).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_local_names_and_configured_names_pass_others_do_not() {
        let a = Allowed {
            names: vec![
                "localhost".into(),
                "r58".into(),
                "r58.local".into(),
                "box.venue.example".into(),
            ],
        };
        for ok in [
            "127.0.0.1:8000",
            "192.168.1.20",
            "[::1]:8000",
            "[fe80::1]",
            "localhost:8000",
            "R58.local",
            "box.venue.example.",
        ] {
            assert!(a.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:8000",
            "r58.evil.example",
            "127.0.0.1.nip.io",
            "",
            "localhost.evil",
        ] {
            assert!(!a.allows(bad), "{bad}");
        }
    }
}
