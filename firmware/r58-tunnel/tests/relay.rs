//! The relay and the dialer on loopback with a real PKI: the box is known by its
//! certificate only, a stranger's certificate gets nowhere, and the box dials again when
//! the relay comes back.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use r58_testkit::Pki;
use r58_tunnel::device::Policy;
use r58_tunnel::dial::Dialer;
use r58_tunnel::listen::Relay;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn relay(pki: &Pki) -> Arc<Relay> {
    let dir = &pki.dir;
    let tls = r58_tls::server_config(&pki.ca(), &dir.join("broker.crt"), &dir.join("broker.key"))
        .unwrap();
    Relay::new(tls, 16)
}

/// A relay on its own runtime (dropping the runtime is the fleet going away); its address.
fn relay_runtime(relay: Arc<Relay>, addr: SocketAddr) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.spawn(async move {
        let l = TcpListener::bind(addr).await.unwrap();
        relay.run(l).await
    });
    rt
}

fn dialer(
    ca: &std::path::Path,
    cert: (std::path::PathBuf, std::path::PathBuf),
    addr: SocketAddr,
    port: u16,
) -> Dialer {
    Dialer {
        address: addr.to_string(),
        server_name: "localhost".into(),
        path: "/relay".into(),
        tls: r58_tls::client_config(ca, &cert.0, &cert.1).unwrap(),
        policy: Policy {
            ports: vec![port],
            max_streams: 16,
            activity: Default::default(),
        },
        max_backoff: Duration::from_secs(2),
    }
}

async fn echo() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn until(what: &str, secs: u64, f: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_box_is_known_by_its_certificate_and_dials_again_when_the_relay_returns() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let port = echo().await;
    let addr = free_addr();
    let r = relay(&pki);
    let rt = relay_runtime(r.clone(), addr);
    let d = dialer(&pki.ca(), pki.issue("dev", "r58-0001", false), addr, port);
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move { d.run(stop).await }
    });
    until("the box's tunnel", 10, || r.devices() == ["r58-0001"]).await;
    let mut s = r.tunnel("r58-0001").unwrap().open(port).await.unwrap();
    s.write_all(b"hello box").await.unwrap();
    let mut back = [0u8; 9];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello box");

    // The fleet goes away and comes back on the same address: the box dials again.
    rt.shutdown_background();
    let r2 = relay(&pki);
    let rt2 = relay_runtime(r2.clone(), addr);
    until("the box back on the new relay", 15, || {
        r2.devices() == ["r58-0001"]
    })
    .await;
    let mut s = r2.tunnel("r58-0001").unwrap().open(port).await.unwrap();
    s.write_all(b"again").await.unwrap();
    let mut back = [0u8; 5];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"again");

    // The box stops: its tunnel leaves the register.
    stop.cancel();
    running.await.unwrap();
    until("the tunnel gone", 10, || r2.devices().is_empty()).await;
    rt2.shutdown_background();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_the_fleet_did_not_issue_gets_no_tunnel() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("fleet"));
    let stranger = Pki::new(&dir.path().join("stranger"));
    let addr = free_addr();
    let r = relay(&pki);
    let rt = relay_runtime(r.clone(), addr);
    // Claims to be a box of the fleet, with a certificate of another CA.
    let d = dialer(&pki.ca(), stranger.issue("dev", "r58-0001", false), addr, 1);
    let mut refused = None;
    for _ in 0..50 {
        match d.once().await {
            Err(e) if e.to_string().contains("Connection refused") => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => {
                refused = Some(other);
                break;
            }
        }
    }
    let e = refused.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            r58_tunnel::TunnelError::Tls { .. } | r58_tunnel::TunnelError::WebSocket { .. }
        ),
        "{e}"
    );
    assert!(r.devices().is_empty());
    rt.shutdown_background();
}
