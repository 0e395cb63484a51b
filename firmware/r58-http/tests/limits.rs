//! The server's bounds, seen from clients on a real socket: a silent or slow client is cut
//! off, a stalled upload or download is ended, connections past the bound wait for a free
//! slot, shutdown ends open streams.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use r58_http::{serve, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const LIMITS: Limits = Limits {
    max_connections: 2,
    header_read_timeout: Duration::from_millis(700),
    stall_timeout: Duration::from_millis(700),
    shutdown_grace: Duration::from_millis(500),
};

const CHUNK: usize = 64 * 1024;
const BIG: usize = 64 * 1024 * 1024;

fn app() -> Router {
    Router::new()
        .route(
            "/",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                format!("hello {}", peer.ip())
            }),
        )
        .route(
            "/upload",
            post(|body: Bytes| async move { format!("got {}", body.len()) }),
        )
        // BIG bytes, far more than the sockets' buffers hold.
        .route(
            "/big",
            get(|| async {
                let chunks = futures::stream::iter(
                    (0..BIG / CHUNK).map(|_| Ok::<_, std::io::Error>(vec![b'x'; CHUNK])),
                );
                axum::body::Body::from_stream(chunks)
            }),
        )
        // A response that never ends (an event stream): a line a second.
        .route(
            "/stream",
            get(|| async {
                let ticks = futures::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Some((Ok::<_, std::io::Error>("tick\n"), ()))
                });
                axum::body::Body::from_stream(
                    futures::stream::once(async { Ok::<_, std::io::Error>("start\n") })
                        .chain(ticks),
                )
            }),
        )
}

async fn start() -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app(), LIMITS, async {
        let _ = rx.await;
    }));
    (addr, tx, server)
}

/// Sends a GET and reads until the response's first body bytes (or the end): the text.
async fn get_on(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Reads until the server closes the connection; the time it took.
async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn answers_with_the_peers_address() {
    let (addr, _stop, _server) = start().await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let text = get_on(&mut c, "/").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("hello 127.0.0.1"), "{text}");
}

#[tokio::test]
async fn a_client_that_sends_nothing_or_trickles_headers_is_cut_off() {
    let (addr, _stop, _server) = start().await;
    // Silent from the start.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let took = closed_after(&mut silent, Duration::from_secs(5)).await;
    assert!(
        matches!(took, Some(d) if d >= Duration::from_millis(600)),
        "{took:?}"
    );
    // A byte at a time, never finishing the head (slowloris).
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    let mut closed = false;
    for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if slow.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut buf = [0u8; 512];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickling client was kept for {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Idle between two requests on a kept-alive connection: closed as well.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    assert!(get_on(&mut kept, "/").await.starts_with("HTTP/1.1 200"));
    assert!(closed_after(&mut kept, Duration::from_secs(5))
        .await
        .is_some());
}

#[tokio::test]
async fn connections_past_the_bound_wait_for_a_free_slot() {
    let (addr, _stop, _server) = start().await;
    // Two long responses hold both slots.
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    assert!(get_on(&mut a, "/stream").await.starts_with("HTTP/1.1 200"));
    assert!(get_on(&mut b, "/stream").await.starts_with("HTTP/1.1 200"));
    // A third is not served while they last...
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    assert!(
        tokio::time::timeout(Duration::from_millis(400), c.read(&mut buf))
            .await
            .is_err(),
        "served past the bound"
    );
    // ... and is, once one of them goes.
    drop(a);
    let n = tokio::time::timeout(Duration::from_secs(3), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn shutdown_ends_open_streams_after_the_grace_period() {
    let (addr, stop, server) = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(get_on(&mut s, "/stream").await.starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert!(closed_after(&mut s, Duration::from_secs(2)).await.is_some());
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_fails_and_frees_the_connection() {
    let (addr, _stop, _server) = start().await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let took = closed_after(&mut c, Duration::from_secs(5)).await;
    assert!(
        matches!(took, Some(d) if d >= Duration::from_millis(600)),
        "{took:?}"
    );
    // A whole body, sent in pieces with pauses shorter than the timeout, is taken.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.write_all(b"0123456789").await.unwrap();
    }
    let mut buf = vec![0u8; 1024];
    let n = c.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("got 30"),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_a_response_is_cut_off() {
    let (addr, _stop, _server) = start().await;
    // Reading slowly, but reading: the transfer goes on past the timeout.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut n = 0;
        while n < 4 * CHUNK {
            let r = slow.read(&mut buf).await.unwrap();
            assert!(r > 0, "a slow reader was cut off after {got} bytes");
            n += r;
        }
        got += n;
    }
    drop(slow);
    // Not reading at all: after the timeout the connection is closed, the rest unsent.
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    stuck
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut total = 0;
    let read_all = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stuck.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    assert!(read_all.is_ok(), "the connection stayed open");
    assert!(
        total < BIG,
        "the whole response was kept for a client that did not read"
    );
}
