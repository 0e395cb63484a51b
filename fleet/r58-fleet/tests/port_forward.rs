//! `r58-fleet tunnel`: an admin's local port joined to a port of a box through the real
//! fleet's relay, the box's `r58-tunnel` dialer and a TCP service on the box's side. Each
//! connection is its own audited session; the box refuses ports it does not open; viewers
//! are refused; an admin's close ends the connection.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::tunnel_box::sign_in_browser;
use common::*;
use r58_testkit::{free_port, wait_until};
use serde_json::Value;

/// A TCP service on the box's side that sends every line back in capitals.
fn start_echo(port: u16) {
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut out = conn.try_clone().unwrap();
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { break };
                    if writeln!(out, "{}", line.to_uppercase()).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// `r58-fleet tunnel` as an operator runs it; its stderr goes to `log`.
struct Forward(Child);

impl Forward {
    fn start(
        f: &Fleet,
        token: &str,
        device: &str,
        local: u16,
        box_port: u16,
        log: &std::path::Path,
    ) -> Self {
        let child = Command::new(fleet_bin())
            .args(["tunnel", device, &local.to_string(), &box_port.to_string()])
            .args(["--server", &f.url(""), "--token", token])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn connect(port: u16) -> TcpStream {
    let s = wait_until(Duration::from_secs(20), "the forward's listener", || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn ask(s: &mut TcpStream, line: &str) -> String {
    writeln!(s, "{line}").unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        got.push(b[0]);
    }
    String::from_utf8(got).unwrap()
}

#[test]
fn an_admin_forwards_a_local_port_to_a_port_the_box_opens_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let (relay_port, echo_port, shut_port) = (free_port(), free_port(), free_port());
    let f = relay_fleet(
        dir.path(),
        &pki,
        "fleet-port-forward",
        &relay_section(&pki, relay_port, ""),
    );
    let admin = f.operator("ada");
    let viewer = f.operator_as("val", "viewer");

    // Without an open tunnel the command stops at once and says why.
    let out = Command::new(fleet_bin())
        .args([
            "tunnel",
            "r58-0001",
            &free_port().to_string(),
            &echo_port.to_string(),
        ])
        .args(["--server", &f.url(""), "--token", &admin])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no open tunnel"), "{err}");

    start_echo(echo_port);
    // A service the box runs but does not open to the fleet.
    start_echo(shut_port);
    let files = device_files(dir.path(), &pki, 1, "r58-0001");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dialer = box_dialer(relay_port, &files, vec![echo_port]);
    rt.spawn(async move { dialer.run(Default::default()).await });
    wait_tunnel(&f, &admin, "r58-0001");
    switch_remote_access(&f, &admin, true);

    let local = free_port();
    let log = dir.path().join("forward.log");
    let _fwd = Forward::start(&f, &admin, "r58-0001", local, echo_port, &log);
    let mut a = connect(local);
    let mut b = connect(local);
    assert_eq!(ask(&mut a, "first"), "FIRST");
    assert_eq!(ask(&mut b, "second"), "SECOND");
    // Closing one connection leaves the other carrying.
    drop(b);
    assert_eq!(ask(&mut a, "still here"), "STILL HERE");

    let open = |f: &Fleet| {
        let (code, list) = call(
            "GET",
            &f.url("/api/v1/tunnel-sessions?device=r58-0001&open=true"),
            Some(&viewer),
            None,
        );
        assert_eq!(code, 200, "{list}");
        list["sessions"].as_array().unwrap().clone()
    };
    let held = wait_until(Duration::from_secs(10), "one open session", || {
        let s = open(&f);
        (s.len() == 1).then_some(s)
    });
    let x = &held[0];
    assert_eq!(
        (
            x["kind"].as_str(),
            x["opened_by"].as_str(),
            x["target"].as_str()
        ),
        (
            Some("port"),
            Some("ada"),
            Some(format!("port {echo_port}").as_str())
        )
    );
    assert_eq!(x["port"], echo_port);

    // An admin's close ends the operator's connection.
    let id = x["id"].as_str().unwrap();
    let (code, body) = call(
        "DELETE",
        &f.url(&format!("/api/v1/tunnel-sessions/{id}")),
        Some(&admin),
        None,
    );
    assert_eq!(code, 204, "{body}");
    let mut rest = Vec::new();
    let n = a.read_to_end(&mut rest).unwrap();
    assert_eq!(n, 0, "the closed session's connection ends");
    let all = wait_until(Duration::from_secs(10), "both sessions closed", || {
        let (_, list) = call(
            "GET",
            &f.url("/api/v1/tunnel-sessions?device=r58-0001"),
            Some(&viewer),
            None,
        );
        let s = list["sessions"].as_array().unwrap().clone();
        (s.len() == 2 && s.iter().all(|x| !x["closed_at"].is_null())).then_some(s)
    });
    let mut reasons: Vec<&str> = all
        .iter()
        .map(|x| x["end_reason"].as_str().unwrap())
        .collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["closed", "closed_by_operator"]);
    for x in &all {
        // `first` / `still here` and their answers at least.
        assert!(x["bytes_to_device"].as_i64().unwrap() >= 6, "{x}");
        assert!(x["bytes_from_device"].as_i64().unwrap() >= 6, "{x}");
    }

    // A port the box does not open: the connection ends, the operator reads the box's reason.
    let local2 = free_port();
    let log2 = dir.path().join("forward2.log");
    let _fwd2 = Forward::start(&f, &admin, "r58-0001", local2, shut_port, &log2);
    let mut c = connect(local2);
    let _ = writeln!(c, "hello");
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(
        got.is_empty(),
        "nothing of the shut port came back: {got:?}"
    );
    let said = wait_until(Duration::from_secs(10), "the refusal in the log", || {
        let t = std::fs::read_to_string(&log2).unwrap_or_default();
        t.contains("502").then_some(t)
    });
    assert!(said.contains("not open to the fleet"), "{said}");

    // Viewers are refused, and a plain GET is not a forward.
    let c = reqwest::blocking::Client::new();
    let url = f.url(&format!("/api/v1/devices/r58-0001/port/{echo_port}"));
    let up = |token: &str| {
        c.get(&url)
            .bearer_auth(token)
            .header("Connection", "upgrade")
            .header("Upgrade", "r58-tunnel")
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(up(&viewer), 403);
    assert_eq!(up("not-a-token"), 401);
    let plain = c.get(&url).bearer_auth(&admin).send().unwrap();
    assert_eq!(plain.status().as_u16(), 400);
    let body: Value = plain.json().unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("Upgrade"),
        "{body}"
    );

    // Remote access turned off for the whole fleet: the connection carrying ends at once,
    // recorded as such, and no new one opens while it is off.
    let mut d = connect(local);
    assert_eq!(ask(&mut d, "before"), "BEFORE");
    let cli = |token: &str, args: &[&str]| {
        let out = Command::new(fleet_bin())
            .arg("remote-access")
            .args(args)
            .args(["--server", &f.url(""), "--token", token])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, said) = cli(&viewer, &["off"]);
    assert!(
        !ok && said.contains("403"),
        "a viewer does not switch it: {said}"
    );
    assert_eq!(ask(&mut d, "still on"), "STILL ON");
    let (ok, said) = cli(&admin, &["off"]);
    assert!(ok, "{said}");
    assert_eq!(said, "remote access: off (set by ada)\n");
    let mut rest = Vec::new();
    assert_eq!(d.read_to_end(&mut rest).unwrap(), 0, "the session ends");
    let ended = wait_until(
        Duration::from_secs(10),
        "the session's end recorded",
        || {
            let (_, list) = call(
                "GET",
                &f.url("/api/v1/tunnel-sessions?device=r58-0001"),
                Some(&viewer),
                None,
            );
            let newest = list["sessions"][0].clone();
            (!newest["closed_at"].is_null()).then_some(newest)
        },
    );
    assert_eq!(ended["end_reason"], "remote_access_off", "{ended}");
    let mut e = connect(local);
    let _ = writeln!(e, "after");
    let mut got = Vec::new();
    let _ = e.read_to_end(&mut got);
    assert!(got.is_empty(), "nothing carried while off: {got:?}");
    let said = wait_until(Duration::from_secs(10), "the refusal in the log", || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        t.contains("remote access is off").then_some(t)
    });
    assert!(said.contains("403"), "{said}");
    assert_eq!(
        cli(&viewer, &[]),
        (true, "remote access: off (set by ada)\n".into())
    );
    drop(rt);
}

/// The dashboard's remote-access page in headless Chromium: an admin turns the fleet-wide
/// switch on, sees the box's tunnel, closes an open session, and turning the switch off
/// ends the session that is still open.
#[test]
fn the_remote_access_page_switches_the_fleet_and_closes_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let (relay_port, echo_port) = (free_port(), free_port());
    let f = relay_fleet(
        dir.path(),
        &pki,
        "fleet-remote-page",
        &relay_section(&pki, relay_port, ""),
    );
    let admin = f.operator("ada");
    start_echo(echo_port);
    let files = device_files(dir.path(), &pki, 1, "r58-0001");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dialer = box_dialer(relay_port, &files, vec![echo_port]);
    rt.spawn(async move { dialer.run(Default::default()).await });
    wait_tunnel(&f, &admin, "r58-0001");

    let mut b = r58_testkit::browser::Browser::start();
    sign_in_browser(&mut b, &f, &admin);
    b.goto(&f.url("/remote"));
    b.wait_js(
        "document.getElementById('switch-state').dataset.enabled === 'false'",
        "the switch, off",
    );
    b.wait_js(
        "!!document.querySelector('#tunnels tr[data-device=\"r58-0001\"] a[href=\"/api/v1/devices/r58-0001/ui/\"]')",
        "the box's tunnel with a link to its UI",
    );
    b.eval("document.getElementById('switch').click(); 1");
    b.wait_js(
        "document.getElementById('switch-state').dataset.enabled === 'true'",
        "the switch, on",
    );
    let (_, switch) = call("GET", &f.url("/api/v1/remote-access"), Some(&admin), None);
    assert_eq!(
        (switch["enabled"].as_bool(), switch["changed_by"].as_str()),
        (Some(true), Some("ada"))
    );

    let local = free_port();
    let _fwd = Forward::start(
        &f,
        &admin,
        "r58-0001",
        local,
        echo_port,
        &dir.path().join("fwd.log"),
    );
    let mut a = connect(local);
    assert_eq!(ask(&mut a, "one"), "ONE");
    b.wait_js(
        "!!document.querySelector('#sessions tr[data-open=\"true\"] button[data-action=\"close\"]')",
        "the open session with its close button",
    );
    b.eval("document.querySelector('#sessions tr[data-open=\"true\"] button[data-action=\"close\"]').click(); 1");
    let mut rest = Vec::new();
    assert_eq!(a.read_to_end(&mut rest).unwrap(), 0, "closed from the page");
    b.wait_js(
        "!!document.querySelector('#sessions tr[data-reason=\"closed_by_operator\"]')",
        "the session closed by the admin",
    );

    let mut c = connect(local);
    assert_eq!(ask(&mut c, "two"), "TWO");
    b.wait_js(
        "!!document.querySelector('#sessions tr[data-open=\"true\"]')",
        "the second session, open",
    );
    b.eval("document.getElementById('switch').click(); 1");
    b.wait_js(
        "document.getElementById('switch-state').dataset.enabled === 'false'",
        "the switch, off again",
    );
    assert_eq!(
        c.read_to_end(&mut rest).unwrap(),
        0,
        "switching off ends it"
    );
    b.wait_js(
        "!!document.querySelector('#sessions tr[data-reason=\"remote_access_off\"]')",
        "the session ended by the switch",
    );
    drop(rt);
}

/// Two fleet processes on one database (replicas): the box's tunnel is on one, an admin
/// works on the other. Closing a session and switching remote access off there end the
/// session the first one holds.
#[test]
fn another_fleet_process_closes_a_session_and_switches_remote_access_off() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let (relay_port, echo_port) = (free_port(), free_port());
    let holder = relay_fleet(
        dir.path(),
        &pki,
        "fleet-replica-a",
        &relay_section(&pki, relay_port, ""),
    );
    let db = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let other = Fleet::start_with(
        &dir.path().join("fleet-b"),
        &pki,
        free_port(),
        &db,
        "fleet-replica-b",
        "",
    );
    let admin = holder.operator("ada");
    start_echo(echo_port);
    let files = device_files(dir.path(), &pki, 1, "r58-0001");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dialer = box_dialer(relay_port, &files, vec![echo_port]);
    rt.spawn(async move { dialer.run(Default::default()).await });
    wait_tunnel(&holder, &admin, "r58-0001");
    // The switch is the whole fleet's: turned on through the other process.
    switch_remote_access(&other, &admin, true);

    let local = free_port();
    let _fwd = Forward::start(
        &holder,
        &admin,
        "r58-0001",
        local,
        echo_port,
        &dir.path().join("fwd.log"),
    );
    let open_id = |f: &Fleet| -> String {
        wait_until(Duration::from_secs(10), "an open session", || {
            let (_, list) = call(
                "GET",
                &f.url("/api/v1/tunnel-sessions?open=true"),
                Some(&admin),
                None,
            );
            list["sessions"][0]["id"].as_str().map(str::to_string)
        })
    };
    let reason_of = |id: &str| -> String {
        wait_until(
            Duration::from_secs(10),
            "the session's end recorded",
            || {
                let (_, list) = call(
                    "GET",
                    &other.url("/api/v1/tunnel-sessions"),
                    Some(&admin),
                    None,
                );
                list["sessions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["id"] == id)
                    .and_then(|x| x["end_reason"].as_str().map(str::to_string))
            },
        )
    };

    let mut a = connect(local);
    assert_eq!(ask(&mut a, "one"), "ONE");
    let id = open_id(&other);
    let (code, body) = call(
        "DELETE",
        &other.url(&format!("/api/v1/tunnel-sessions/{id}")),
        Some(&admin),
        None,
    );
    assert_eq!(code, 202, "held by the other process: {body}");
    let mut rest = Vec::new();
    assert_eq!(a.read_to_end(&mut rest).unwrap(), 0, "the session ends");
    assert_eq!(reason_of(&id), "closed_by_operator");
    let (code, _) = call(
        "DELETE",
        &other.url(&format!("/api/v1/tunnel-sessions/{id}")),
        Some(&admin),
        None,
    );
    assert_eq!(code, 404, "no longer open");

    let mut b = connect(local);
    assert_eq!(ask(&mut b, "two"), "TWO");
    let id = open_id(&other);
    switch_remote_access(&other, &admin, false);
    assert_eq!(
        b.read_to_end(&mut rest).unwrap(),
        0,
        "switching off ends it"
    );
    assert_eq!(reason_of(&id), "remote_access_off");
    drop(rt);
}
