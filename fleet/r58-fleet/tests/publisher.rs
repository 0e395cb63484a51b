//! The fleet's publishing connection against a real Mosquitto (production config and authorization plugin):
//! a burst as large as a command to a fleet arrives whole and in order per device, a broker
//! restart in the middle of one loses nothing, and a connection gone silent is replaced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r58_fleet::config::MqttConfig;
use r58_fleet::mqtt::publisher::Publisher;
use r58_testkit::{Broker, Observer, Pki};
use rumqttc::QoS;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const DEVICES: usize = 20;

fn topic(i: usize) -> String {
    format!("r58/v1/d{}/cmd/ping", i % DEVICES)
}

/// Per device, the message numbers in the order they first arrived (a resent message may
/// arrive twice: at least once).
fn arrived(obs: &Observer) -> HashMap<String, Vec<usize>> {
    let mut seen = std::collections::HashSet::new();
    let mut per: HashMap<String, Vec<usize>> = HashMap::new();
    for (t, p, _) in obs.messages.lock().unwrap().iter() {
        let i: usize = String::from_utf8_lossy(p).parse().unwrap();
        if seen.insert(i) {
            per.entry(t.clone()).or_default().push(i);
        }
    }
    per
}

async fn wait_for(obs: &Observer, n: usize, what: &str) -> HashMap<String, Vec<usize>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let per = arrived(obs);
        let got: usize = per.values().map(Vec::len).sum();
        if got >= n {
            return per;
        }
        assert!(Instant::now() < deadline, "{what}: {got} of {n} arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_in_order(per: &HashMap<String, Vec<usize>>, n: usize) {
    assert_eq!(per.len(), DEVICES);
    let mut all: Vec<usize> = per.values().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "every message, once");
    for (t, ids) in per {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{t} out of order: {ids:?}"
        );
    }
}

/// A broker, an observer of every device's commands (fleet identity), and the fleet's
/// certificate for the publisher.
struct Setup {
    _dir: tempfile::TempDir,
    pki: Pki,
    broker: Broker,
    obs: Observer,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let (cert, key) = pki.issue("fleet", "fleet", false);
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(&pki, broker.port, "obs", "fleet", &["r58/v1/+/cmd/+"]);
    Setup {
        _dir: dir,
        pki,
        broker,
        obs,
        cert,
        key,
    }
}

/// A publisher connecting to `port` (5-s keepalive), once it is up; and its `up` signal.
async fn publisher(s: &Setup, port: u16) -> (Publisher, Arc<tokio::sync::Notify>) {
    let cfg = MqttConfig {
        broker: format!("mqtts://127.0.0.1:{port}"),
        ca_file: s.pki.ca(),
        cert_file: s.cert.clone(),
        key_file: s.key.clone(),
        keepalive_seconds: 5,
        ..MqttConfig::default()
    };
    let up = Arc::new(tokio::sync::Notify::new());
    let p = Publisher::start(&cfg, "t", up.clone()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), up.notified())
        .await
        .expect("the publishing connection came up");
    (p, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_arrives_whole_and_in_order_even_across_a_broker_restart() {
    let mut s = setup();
    let (p, up) = publisher(&s, s.broker.port).await;

    // A burst, as a command to a whole fleet: written in large batches, all of it arrives.
    for i in 0..3000 {
        p.publish(topic(i), QoS::AtLeastOnce, false, i.to_string())
            .await
            .unwrap();
    }
    assert_in_order(&wait_for(&s.obs, 3000, "the first burst").await, 3000);

    // The broker stops in the middle of the next burst, more is published while it is away:
    // what it had not acknowledged is sent again after the reconnect, before anything newer.
    for i in 3000..6000 {
        p.publish(topic(i), QoS::AtLeastOnce, false, i.to_string())
            .await
            .unwrap();
    }
    s.broker.stop();
    for i in 6000..6500 {
        p.publish(topic(i), QoS::AtLeastOnce, false, i.to_string())
            .await
            .unwrap();
    }
    s.broker.spawn();
    tokio::time::timeout(Duration::from_secs(30), up.notified())
        .await
        .expect("the publishing connection came back");
    assert_in_order(&wait_for(&s.obs, 6500, "after the restart").await, 6500);
}

/// A TCP relay to the broker whose connections can be frozen: a frozen connection stays open
/// on both ends and carries nothing more — a broker (or a NAT on the way) that went silent
/// without closing. Connections made after the freeze are relayed as usual.
async fn freezable_relay(broker: u16) -> (u16, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let generation = Arc::new(AtomicU64::new(0));
    let g = generation.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let born = g.load(Ordering::SeqCst);
            let upstream = tokio::net::TcpStream::connect(("127.0.0.1", broker))
                .await
                .unwrap();
            let (cr, cw) = client.into_split();
            let (ur, uw) = upstream.into_split();
            for (mut from, mut to) in [
                (
                    Box::new(cr) as Box<dyn AsyncRead + Send + Unpin>,
                    Box::new(uw) as Box<dyn AsyncWrite + Send + Unpin>,
                ),
                (Box::new(ur), Box::new(cw)),
            ] {
                let g = g.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 1 << 16];
                    loop {
                        let n = from.read(&mut buf).await.unwrap_or(0);
                        if g.load(Ordering::SeqCst) != born {
                            // Frozen: hold both ends open, forward nothing.
                            std::future::pending::<()>().await;
                        }
                        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    (port, generation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_goes_silent_is_left_and_made_anew() {
    let s = setup();
    let (relay, freeze) = freezable_relay(s.broker.port).await;
    let (p, up) = publisher(&s, relay).await;
    // Silence: no PINGRESP comes back. After 1.5 keepalives the publisher gives the
    // connection up and makes a new one, and the message it could not deliver goes out on
    // it. A publisher that only waited would sit on the silent connection for good.
    freeze.fetch_add(1, Ordering::SeqCst);
    p.publish(topic(0), QoS::AtLeastOnce, false, "0")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), up.notified())
        .await
        .expect("a new publishing connection after the silence");
    wait_for(
        &s.obs,
        1,
        "the message published into the silent connection",
    )
    .await;
}
