//! The tunnel end to end on loopback: a real WebSocket (the box dials, the relay accepts),
//! yamux over it, and real TCP services on the box's side.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use r58_tunnel::activity::Activity;
use r58_tunnel::device::{self, Policy};
use r58_tunnel::relay::{self, Tunnel};
use r58_tunnel::ws_io::WsIo;
use r58_tunnel::TunnelError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// A box dialling a relay on loopback; the relay's handle to it.
async fn tunnel(ports: Vec<u16>) -> Tunnel {
    tunnel_counted(ports, Default::default()).await
}

/// As [`tunnel`], counting the box's activity in `activity`.
async fn tunnel_counted(ports: Vec<u16>, activity: Arc<Activity>) -> Tunnel {
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = relay.local_addr().unwrap();
    let boxed = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/relay"), tcp)
            .await
            .unwrap();
        device::serve(
            WsIo::new(ws),
            Policy {
                ports,
                max_streams: 64,
                activity,
            },
        )
        .await
    });
    let (tcp, _) = relay.accept().await.unwrap();
    let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let (handle, driver) = relay::connect(WsIo::new(ws), 64);
    tokio::spawn(driver);
    // The box's end runs on; its task is not awaited.
    drop(boxed);
    handle
}

/// A TCP echo service on the box's side; its port.
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

/// A service that sends without end; its port.
async fn firehose() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let chunk = vec![7u8; 64 * 1024];
                while s.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    port
}

async fn round_trip(t: &Tunnel, port: u16, msg: &[u8]) -> Vec<u8> {
    let mut s = t.open(port).await.unwrap();
    s.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).await.unwrap();
    back
}

#[tokio::test]
async fn a_stream_carries_bytes_both_ways_to_an_allowed_port() {
    let port = echo().await;
    let t = tunnel(vec![port]).await;
    let data: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let s = t.open(port).await.unwrap();
    let (mut r, mut w) = tokio::io::split(s);
    let sent = data.clone();
    let writer = tokio::spawn(async move { w.write_all(&sent).await.unwrap() });
    let mut back = vec![0u8; data.len()];
    timeout(Duration::from_secs(30), r.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert!(back == data, "the echoed bytes differ");
}

#[tokio::test]
async fn a_port_outside_the_policy_is_refused_and_the_tunnel_goes_on() {
    let open = echo().await;
    let closed = echo().await;
    let t = tunnel(vec![open]).await;
    match t.open(closed).await {
        Err(TunnelError::Refused { port, reason }) => {
            assert_eq!(port, closed);
            assert!(reason.contains("not open to the fleet"), "{reason}");
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    assert_eq!(round_trip(&t, open, b"still here").await, b"still here");
}

#[tokio::test]
async fn an_allowed_port_with_nothing_behind_it_is_refused_with_the_reason() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let t = tunnel(vec![port]).await;
    match t.open(port).await {
        Err(TunnelError::Refused { reason, .. }) => {
            assert!(reason.contains("nothing answers"), "{reason}")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_slow_reader_does_not_hold_up_the_other_streams() {
    let hose = firehose().await;
    let port = echo().await;
    let t = tunnel(vec![hose, port]).await;
    let mut unread = t.open(hose).await.unwrap();
    // Let the unread stream fill everything it may.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let others = async {
        for i in 0..200u32 {
            let msg = format!("ping {i}");
            assert_eq!(round_trip(&t, port, msg.as_bytes()).await, msg.as_bytes());
        }
    };
    timeout(Duration::from_secs(20), others)
        .await
        .expect("the other streams were held up");
    // And the unread stream still delivers once read.
    let mut got = vec![0u8; 4 * 1024 * 1024];
    timeout(Duration::from_secs(20), unread.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(got.iter().all(|&b| b == 7));
}

#[tokio::test]
async fn closing_one_stream_leaves_the_others_open() {
    let port = echo().await;
    let t = tunnel(vec![port]).await;
    let mut a = t.open(port).await.unwrap();
    let mut b = t.open(port).await.unwrap();
    a.write_all(b"a").await.unwrap();
    a.shutdown().await.unwrap();
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"a", "the echo of what was sent, then the end");
    drop(a);
    b.write_all(b"b lives").await.unwrap();
    let mut back = [0u8; 7];
    timeout(Duration::from_secs(5), b.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"b lives");
}

#[tokio::test]
async fn the_box_counts_its_connection_and_open_streams() {
    let port = echo().await;
    let activity = Arc::new(Activity::default());
    let t = tunnel_counted(vec![port, 1], activity.clone()).await;
    let wait = |want: (bool, usize)| {
        let activity = activity.clone();
        async move {
            timeout(Duration::from_secs(5), async {
                while (activity.connected(), activity.open_streams()) != want {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("never {want:?}"));
        }
    };
    wait((true, 0)).await;
    let mut a = t.open(port).await.unwrap();
    let b = t.open(port).await.unwrap();
    wait((true, 2)).await;
    // A refused stream is not counted.
    assert!(t.open(1).await.is_err());
    a.write_all(b"x").await.unwrap();
    a.shutdown().await.unwrap();
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).await.unwrap();
    drop(a);
    wait((true, 1)).await;
    drop(b);
    wait((true, 0)).await;
    drop(t);
    wait((false, 0)).await;
}
