//! `r58-fleet tunnel`: a local listener whose every connection becomes a port forward to a
//! box through the fleet ([`r58_fleet_api::paths::device_port`]), one upgrade per connection.

use std::net::SocketAddr;

use r58_fleet_api::tunnels::PORT_UPGRADE;
use r58_fleet_api::{paths, ErrorBody, TunnelList};
use tokio::net::{TcpListener, TcpStream};

use super::args::Remote;
use super::client::Client;
use crate::FleetError;

/// Listens on `local` until Ctrl-C; each connection is joined to `box_port` of `device`.
/// A box without an open tunnel is an error at once; a refusal of one connection (the box
/// does not open that port, the tunnel went away) is printed and ends that connection only.
pub fn forward(
    remote: &Remote,
    device: &str,
    local: SocketAddr,
    box_port: u16,
) -> Result<(), FleetError> {
    let client = Client::new(&remote.server, &remote.token)?;
    let open: TunnelList = client.get(&format!("{}/tunnels", paths::API))?;
    if !open.devices.iter().any(|d| d == device) {
        return Err(FleetError::Client {
            url: remote.server.clone(),
            reason: format!("device {device:?} has no open tunnel (is its remote access on?)"),
        });
    }
    let url = format!(
        "{}{}",
        remote.server.trim_end_matches('/'),
        paths::device_port(device, box_port)
    );
    let fail = |reason: String| FleetError::Client {
        url: url.clone(),
        reason,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("starting the runtime: {e}")))?;
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| fail(r58_log::error_chain(&e)))?;
    rt.block_on(async {
        let listener = TcpListener::bind(local)
            .await
            .map_err(|source| FleetError::Bind {
                addr: local,
                source,
            })?;
        let bound = listener.local_addr().unwrap_or(local);
        eprintln!("forwarding {bound} to port {box_port} of {device}; Ctrl-C to stop");
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                accepted = listener.accept() => {
                    let (sock, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            eprintln!("accepting on {bound}: {e}");
                            continue;
                        }
                    };
                    let (http, url, token) = (http.clone(), url.clone(), remote.token.clone());
                    tokio::spawn(async move {
                        if let Err(reason) = join(&http, &url, &token, sock).await {
                            eprintln!("{peer}: {reason}");
                        }
                    });
                }
            }
        }
    })
}

/// One local connection, upgraded at the fleet and carried until either side closes.
async fn join(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    mut sock: TcpStream,
) -> Result<(), String> {
    let resp = http
        .get(url)
        .bearer_auth(token)
        .header(reqwest::header::CONNECTION, "upgrade")
        .header(reqwest::header::UPGRADE, PORT_UPGRADE)
        .send()
        .await
        .map_err(|e| r58_log::error_chain(&e))?;
    let status = resp.status();
    if status != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        let text = resp.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<ErrorBody>(&text)
            .map(|e| e.reason)
            .unwrap_or(text);
        return Err(format!("HTTP {}: {reason}", status.as_u16()));
    }
    let mut up = resp
        .upgrade()
        .await
        .map_err(|e| format!("upgrading: {}", r58_log::error_chain(&e)))?;
    tokio::io::copy_bidirectional(&mut sock, &mut up)
        .await
        .map(|_| ())
        .map_err(|e| format!("carrying: {e}"))
}
