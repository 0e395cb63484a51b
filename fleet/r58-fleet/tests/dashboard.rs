//! The dashboard in headless Chromium (Debian `chromium`, driven over the DevTools
//! protocol): sign-in with a token, the device table turning a new device `online` live
//! (no reload), and a command button whose progress reaches `succeeded`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use r58_testkit::browser::Browser;
use serde_json::json;

#[test]
fn dashboard_signs_in_shows_a_device_going_online_and_a_command_completing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let broker = Broker::start_with_certs(dir.path(), &pki);
    let db = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let ota = format!(
        "[ota]\ndir = \"{}\"\ntick_ms = 300\n",
        dir.path().join("ota").display()
    );
    let fleet = Fleet::start_with(
        &dir.path().join("fleet"),
        &pki,
        broker.port,
        &db,
        "fleet-web",
        &ota,
    );
    let token = fleet.operator("web-operator");
    let mut b = Browser::start();

    // Not signed in: the dashboard sends the browser to the sign-in page.
    b.call("Page.navigate", json!({ "url": fleet.url("/") }));
    b.wait_js(
        "location.pathname === '/login' && !!document.getElementById('token')",
        "the sign-in page",
    );
    b.eval("document.getElementById('token').value = 'wrong'; document.querySelector('#login button').click(); 1");
    b.wait_js(
        "document.getElementById('error').textContent.includes('unknown')",
        "the refusal of a wrong token",
    );
    b.eval(&format!("document.getElementById('token').value = {token:?}; document.querySelector('#login button').click(); 1"));
    b.wait_js(
        "location.pathname === '/' && document.getElementById('live').textContent === 'live'",
        "the live device table",
    );
    assert_eq!(
        b.eval("document.getElementById('who').textContent"),
        "web-operator"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#devices tbody tr').length"),
        0
    );

    // A device comes online: its row appears and turns online without a reload.
    b.eval("window.__sameDocument = true; 1");
    let _agent = agent_with_bundle(dir.path(), &pki, broker.port, "r58-web");
    b.wait_js(
        "(document.querySelector('#dev-r58-web td.status') || {}).textContent === 'online'",
        "the device row online",
    );
    assert_eq!(
        b.eval("window.__sameDocument === true"),
        true,
        "updated live, not by reloading"
    );

    // Its page: the Ping button's command goes to the device and completes.
    b.goto(&fleet.url("/device/r58-web"));
    b.wait_js(
        "(document.querySelector('#card-status') || {}).textContent === 'Statusonline'",
        "the device summary",
    );
    b.wait_js(
        "document.getElementById('live').textContent === 'live'",
        "the device page's live stream",
    );
    b.eval("document.querySelector('button[data-cmd=\"ping\"]').click(); 1");
    b.wait_js(
        "!!document.querySelector('#commands tr[data-name=\"ping\"][data-state=\"succeeded\"]')",
        "the ping command succeeded",
    );
    // The server agrees.
    let cmds: r58_fleet_api::CommandList =
        api_get(&fleet, &token, &paths::device_commands("r58-web"));
    assert_eq!(cmds.commands[0].state, "succeeded");
    assert_eq!(cmds.commands[0].created_by.as_deref(), Some("web-operator"));
    // The telemetry chart drew a line (its colour, not only the "no data yet" text).
    b.wait_js(
        "(() => { const c = document.getElementById('chart-cpu'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 60 && d[i + 2] > 150 && d[i + 3] > 0) n++; return n > 20; })()",
        "a drawn chart line",
    );

    // The updates page shows a rollout with its device's job, and steers it.
    let keys = dir.path().join("keys");
    r58_testkit::rauc::dev_keys(&keys);
    let file =
        r58_testkit::rauc::bundle(&dir.path().join("web.raucb"), "1.0.0", "r58-test", 1, &keys);
    let up = reqwest::blocking::Client::new()
        .post(fleet.url(&paths::bundles()))
        .bearer_auth(&token)
        .body(std::fs::read(&file).unwrap())
        .send()
        .unwrap();
    assert_eq!(up.status().as_u16(), 201);
    let create = r58_fleet_api::CreateRollout {
        waves: Some(vec!["100%".into()]),
        reboot_policy: r58_proto::Policy::Manual,
        ..r58_fleet_api::CreateRollout::new(
            "1.0.0",
            r58_fleet_api::Target::Devices(vec!["r58-web".into()]),
        )
    };
    let r: r58_fleet_api::RolloutDetail =
        api_send(&fleet, &token, "POST", &paths::rollouts(), &create);
    let id = r.rollout.id;
    b.goto(&fleet.url("/updates"));
    b.wait_js(
        &format!("!!document.querySelector('section.rollout[data-id=\"{id}\"]')"),
        "the rollout card",
    );
    assert_eq!(
        b.eval("document.querySelector('#bundles tbody td').textContent"),
        "1.0.0"
    );
    // This agent has no RAUC: its job fails, the page follows it without a reload.
    b.wait_js(
        "!!document.querySelector('section.rollout tr.phase-failed')",
        "the device's failed job",
    );
    b.wait_js(&format!("document.querySelector('section.rollout[data-id=\"{id}\"]').dataset.state === 'halted'"), "the halted rollout");
    b.eval("document.querySelector('section.rollout button[data-action=\"abort\"]').click(); 1");
    b.wait_js(&format!("document.querySelector('section.rollout[data-id=\"{id}\"]').dataset.state === 'aborted'"), "the aborted rollout");
    let r: r58_fleet_api::RolloutDetail = api_get(&fleet, &token, &paths::rollout(&id));
    assert_eq!(r.rollout.state, "aborted");
}
