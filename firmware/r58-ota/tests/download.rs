//! The downloader against small HTTP servers on loopback that misbehave on purpose: a 503
//! every time (bounded retries), a server that ignores Range (starts over, counted), a body
//! that is not the job's (checksum), a server that sends more than the job says.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use r58_ota::download::{fetch, part_path, DownloadError, Spec};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `respond(request_number, request_head)` → raw response bytes, one per connection.
async fn server(
    respond: impl Fn(usize, &str) -> Vec<u8> + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/b.raucb", l.local_addr().unwrap());
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let k = count.fetch_add(1, Ordering::SeqCst);
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let _ = s.write_all(&respond(k, &head)).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (url, n)
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn spec(url: &str, body: &[u8], dir: &std::path::Path) -> Spec {
    Spec {
        url: url.into(),
        size: body.len() as u64,
        sha256: format!("{:x}", Sha256::digest(body)),
        dest: dir.join("b.raucb"),
        max_attempts: 3,
        backoff_max: Duration::from_millis(50),
        reserve_bytes: 0,
    }
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    let (url, calls) = server(|_, _| {
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_vec()
    })
    .await;
    let body = vec![7u8; 1000];
    let e = fetch(
        &reqwest::Client::new(),
        &spec(&url, &body, dir.path()),
        |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, DownloadError::Exhausted { attempts: 3, .. }),
        "{e}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_client_error_is_final_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (url, calls) = server(|_, _| {
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
    })
    .await;
    let e = fetch(
        &reqwest::Client::new(),
        &spec(&url, b"x", dir.path()),
        |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, DownloadError::Client { status: 404, .. }),
        "{e}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_server_ignoring_range_makes_it_start_over_and_the_result_is_still_right() {
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let b2 = body.clone();
    let (url, _) = server(move |k, _| {
        if k == 0 {
            ok(&b2)[..200].to_vec()
        } else {
            ok(&b2)
        }
    })
    .await;
    let s = spec(&url, &body, dir.path());
    let stats = fetch(&reqwest::Client::new(), &s, |_, _| {}).await.unwrap();
    assert!(stats.refetched > 0, "{stats:?}");
    assert_eq!(std::fs::read(&s.dest).unwrap(), body);
    assert!(!part_path(&s.dest).exists());
}

#[tokio::test]
async fn a_resumed_download_asks_for_the_rest_only() {
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
    let s0 = spec("http://unused", &body, dir.path());
    std::fs::write(part_path(&s0.dest), &body[..20_000]).unwrap();
    let b2 = body.clone();
    let (url, _) = server(move |_, head| {
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("range: bytes=20000-"), "{head}");
        let rest = &b2[20_000..];
        let mut r = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 20000-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            b2.len() - 1,
            b2.len(),
            rest.len()
        )
        .into_bytes();
        r.extend_from_slice(rest);
        r
    })
    .await;
    let s = Spec { url, ..s0 };
    let stats = fetch(&reqwest::Client::new(), &s, |_, _| {}).await.unwrap();
    assert_eq!(
        (stats.resumed_from, stats.received, stats.refetched),
        (20_000, 30_000, 0)
    );
    assert_eq!(std::fs::read(&s.dest).unwrap(), body);
}

#[tokio::test]
async fn wrong_bytes_and_too_many_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = server(|_, _| ok(b"not the bundle")).await;
    let mut s = spec(&url, b"the real bundle", dir.path());
    s.size = 14;
    let e = fetch(&reqwest::Client::new(), &s, |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(e, DownloadError::Checksum { .. }), "{e}");
    assert!(
        !part_path(&s.dest).exists(),
        "a corrupt prefix must not be resumed"
    );
    let s = spec(&url, b"short", dir.path());
    let e = fetch(&reqwest::Client::new(), &s, |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(e, DownloadError::Size { .. }), "{e}");
}

/// A body that takes longer than the client's own timeout (the agent's client bounds small
/// calls at 10 s) still arrives in one request: only a stall ends a download attempt.
#[tokio::test]
async fn a_slow_transfer_outlasts_the_clients_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/b.raucb", l.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let (count, served) = (calls.clone(), body.clone());
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let body = served.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                // 16 pieces, 200 ms apart: 3.2 s in all.
                for piece in body.chunks(body.len() / 16) {
                    let _ = s.write_all(piece).await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let stats = tokio::time::timeout(
        Duration::from_secs(30),
        fetch(&client, &spec(&url, &body, dir.path()), |_, _| {}),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no end after 30 s and {} requests: each cut by the client's timeout",
            calls.load(Ordering::SeqCst)
        )
    })
    .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the transfer was cut and resumed"
    );
    assert_eq!(stats.received, body.len() as u64);
    assert_eq!(std::fs::read(dir.path().join("b.raucb")).unwrap(), body);
}
