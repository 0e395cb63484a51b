//! State transitions against the real broker: online, lost (last will on kill -9), online
//! again with a new session, offline on a clean stop.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn online_lost_online_offline() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(&pki, broker.port, "fleet-observer", "fleet", &["r58/v1/#"]);
    let mut agent = AgentProc::start(&dir.path().join("a"), &pki, broker.port, "r58-a", "");
    let topic = "r58/v1/r58-a/state";
    let first = obs.wait_json(topic, Duration::from_secs(15), "online", |v| {
        v["status"] == "online"
    });
    let session = first["session"].as_u64().unwrap();
    assert_eq!(first["firmware_version"], env!("CARGO_PKG_VERSION"));

    agent.kill9();
    obs.wait_json(topic, Duration::from_secs(15), "lost (last will)", |v| {
        v["status"] == "lost"
    });

    agent.spawn();
    let again = obs.wait_json(topic, Duration::from_secs(15), "online again", |v| {
        v["status"] == "online" && v["session"].as_u64() > Some(session)
    });
    let session2 = again["session"].as_u64().unwrap();

    assert_eq!(agent.terminate(), Some(0));
    obs.wait_json(topic, Duration::from_secs(10), "offline", |v| {
        v["status"] == "offline" && v["session"].as_u64() == Some(session2)
    });
    // A clean stop sends no will afterwards.
    std::thread::sleep(Duration::from_secs(2));
    let last = obs.json_on(topic).last().cloned().unwrap();
    assert_eq!(last["status"], "offline", "{}", agent.log_text());
}

/// A TCP relay that holds every chunk for `delay` before passing it on (a slow link, or a
/// loaded box whose TLS handshake takes seconds). Runs until the test ends.
fn slow_relay(target: u16, delay: Duration) -> u16 {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for inbound in listener.incoming().flatten() {
            let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            for (mut from, mut to) in [
                (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                (outbound, inbound),
            ] {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        std::thread::sleep(delay);
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    port
}

/// A connection that takes seconds to set up (each chunk held 400 ms: the TLS handshake and
/// CONNECT take longer than the agent's 500 ms timer) is carried through to the end: the
/// agent comes online in its first session, and no last will (`lost`) is published for a
/// half-made connection.
#[test]
fn a_slow_connection_is_not_abandoned_half_way() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = Broker::start(dir.path(), &pki);
    let obs = Observer::connect(&pki, broker.port, "fleet-observer", "fleet", &["r58/v1/#"]);
    let relay = slow_relay(broker.port, Duration::from_millis(400));
    let agent = AgentProc::start(&dir.path().join("a"), &pki, relay, "r58-slow", "");
    let topic = "r58/v1/r58-slow/state";
    let online = obs.wait_json(topic, Duration::from_secs(30), "online", |v| {
        v["status"] == "online"
    });
    std::thread::sleep(Duration::from_secs(3));
    // One connection, kept: a single state, online, of the first session.
    let states: Vec<String> = obs
        .json_on(topic)
        .iter()
        .map(|v| format!("{} {}", v["status"], v["session"]))
        .collect();
    assert_eq!(
        states,
        [format!("\"online\" {}", online["session"])],
        "{}",
        agent.log_text()
    );
}
