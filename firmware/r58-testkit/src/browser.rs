//! Headless Chromium (Debian `chromium`) driven over the DevTools protocol: navigate, run
//! JavaScript, wait for a condition on the page. Extra command-line switches (fake media
//! devices, for example) are given at the start.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::{wait_until, Daemon};

pub struct Browser {
    daemon: Daemon,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With `switches` added to Chromium's command line.
    pub fn start_with(switches: &[&str]) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut daemon = Daemon::new("chromium", "chromium", profile.path().join("chromium.log"))
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .args([format!("--user-data-dir={}", profile.path().display())])
            .args(switches.iter().copied())
            .args(["about:blank"]);
        daemon.spawn();
        let browser_ws = wait_until(Duration::from_secs(30), "DevTools listening", || {
            daemon.log_text().lines().find_map(|l| {
                l.strip_prefix("DevTools listening on ")
                    .map(|u| u.trim().to_string())
            })
        });
        let http = browser_ws.replace("ws://", "http://");
        let host = &http[..http[7..].find('/').unwrap() + 7];
        let targets: Value = wait_until(Duration::from_secs(10), "a page target", || {
            let t: Value = reqwest::blocking::get(format!("{host}/json/list"))
                .ok()?
                .json()
                .ok()?;
            t.as_array()?
                .iter()
                .any(|p| p["type"] == "page")
                .then_some(t)
        });
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["type"] == "page")
            .unwrap();
        let (ws, _) = tungstenite::connect(page["webSocketDebuggerUrl"].as_str().unwrap()).unwrap();
        Self {
            daemon,
            ws,
            next_id: 1,
            _profile: profile,
        }
    }

    /// A DevTools call; returns its result (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.ws
            .send(Message::Text(
                json!({ "id": id, "method": method, "params": params }).to_string(),
            ))
            .unwrap();
        loop {
            if let Message::Text(t) = self.ws.read().unwrap() {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] == id {
                    assert!(v["error"].is_null(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    /// Evaluates `js` in the page (promises awaited); its value.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
        );
        r["result"]["value"].clone()
    }

    /// Evaluates `js` until it is neither null nor false (30 s at most); its value.
    pub fn wait_js(&mut self, js: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.eval(js);
            if !(v.is_null() || v == false) {
                return v;
            }
            if Instant::now() > deadline {
                let page = self.eval("document.body ? document.body.innerText : ''");
                panic!("timed out waiting in the browser for {what}; page:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_js(
            &format!("location.href === {url:?} && document.readyState === 'complete'"),
            url,
        );
    }

    /// Chromium's own output (console messages, crashes).
    pub fn log_text(&self) -> String {
        self.daemon.log_text()
    }
}
