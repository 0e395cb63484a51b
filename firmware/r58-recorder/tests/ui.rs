//! The box's own web UI (`/`) clicked through in headless Chromium against the real
//! recorder: sign in (a wrong token refused), inputs with their signal, start and stop a
//! recording, the session in the recordings, a recorded segment played in the page, the
//! live preview of an input, an invite made and revoked, a guest input waiting. Screenshots are kept under `target/test-artifacts/ui/`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use r58_testkit::browser::Browser;
use serde_json::json;

const INPUTS: &str =
    "[inputs.cam1]\nkind = \"test\"\npattern = \"ball\"\nwidth = 320\nheight = 240\nfps = 15\n\
                      [inputs.guest1]\nkind = \"whip\"\nwidth = 320\nheight = 240\nfps = 15\n";

fn screenshot(b: &mut Browser, name: &str) {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts/ui");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = b.call("Page.captureScreenshot", json!({"format": "png"}));
    let data = shot["data"].as_str().unwrap();
    let png = base64_decode(data);
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The page's player shows decoded frames of the 320×240 input and its clock moves (a media
/// error is on the page, printed when this times out).
fn wait_playing(b: &mut Browser, what: &str) {
    b.wait_js(
        "(() => { const v = document.getElementById('player-video');\
           return v.videoWidth === 320 && v.videoHeight === 240 && v.currentTime > 0.5\
             && v.getVideoPlaybackQuality().totalVideoFrames > 10; })()",
        what,
    );
}

fn text(b: &mut Browser, js: &str) -> String {
    b.eval(js).as_str().unwrap_or_default().to_string()
}

#[test]
fn the_local_ui_signs_in_records_invites_and_lists_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let r = Recorder::start(dir.path(), INPUTS);
    let mut b = Browser::start();
    b.goto(&r.url("/"));
    // A wrong token is refused on the page.
    b.eval("document.getElementById('token').value = 'wrong-token-0000000'; document.querySelector('#signin-form button').click(); 1");
    b.wait_js(
        "document.getElementById('signin-error').textContent.includes('refused')",
        "the refused token",
    );
    b.eval(&format!(
        "document.getElementById('token').value = '{TOKEN}'; document.querySelector('#signin-form button').click(); 1"
    ));
    b.wait_js(
        "!!document.querySelector('#inputs tr[data-input=\"cam1\"][data-signal=\"true\"]')",
        "cam1 with its signal",
    );
    let guest = text(
        &mut b,
        "document.querySelector('#inputs tr[data-input=\"guest1\"]').textContent",
    );
    assert!(guest.contains("no guest connected"), "{guest}");
    screenshot(&mut b, "1-signed-in");

    // Record, then stop: the session shows up among the recordings, ended.
    b.eval("document.getElementById('record-start').click(); 1");
    b.wait_js(
        "!!document.querySelector('#inputs tr[data-input=\"cam1\"][data-recording=\"true\"]')",
        "cam1 recording",
    );
    let session = r.status()["session"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(3));
    screenshot(&mut b, "2-recording");
    b.eval("document.getElementById('record-stop').click(); 1");
    b.wait_js(
        &format!("(document.querySelector('#recordings tr[data-session=\"{session}\"]') || {{}}).textContent?.includes('stopped')"),
        "the stopped session in the recordings",
    );
    let segments = text(
        &mut b,
        &format!("document.querySelector('#recordings tr[data-session=\"{session}\"] select').options.length + ''"),
    );
    assert!(segments.parse::<u32>().unwrap() >= 1, "{segments}");

    // A recorded segment of cam1 plays in the page: decoded frames at the input's size.
    b.eval(&format!(
        "const sel = document.querySelector('#recordings tr[data-session=\"{session}\"] select');\
         sel.value = [...sel.options].find((o) => o.value.startsWith('cam1/')).value;\
         document.querySelector('#recordings tr[data-session=\"{session}\"] button.play').click(); 1"
    ));
    wait_playing(&mut b, "the recorded segment playing");
    assert!(
        text(
            &mut b,
            "document.getElementById('player-title').textContent"
        )
        .contains("cam1/"),
        "the player names the segment"
    );
    screenshot(&mut b, "3-segment");

    // The live preview of cam1: playing, and staying near the live edge.
    b.eval("document.querySelector('#inputs tr[data-input=\"cam1\"] button.preview').click(); 1");
    b.wait_js(
        "document.getElementById('player-title').textContent === 'Live: cam1'",
        "the preview opened",
    );
    wait_playing(&mut b, "the live preview playing");
    let t0 = b
        .eval("document.getElementById('player-video').currentTime")
        .as_f64()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let t1 = b
        .eval("document.getElementById('player-video').currentTime")
        .as_f64()
        .unwrap();
    assert!(
        t1 - t0 > 1.5,
        "the preview advances with the clock: {t0} → {t1}"
    );
    assert_eq!(
        text(
            &mut b,
            "document.getElementById('player-state').textContent"
        ),
        "live"
    );
    screenshot(&mut b, "4-preview");
    b.eval("document.getElementById('player-close').click(); 1");
    b.wait_js(
        "document.getElementById('player').hidden",
        "the player closed",
    );

    // An invite: its link on the page, listed, then revoked.
    b.eval("document.getElementById('invite-name').value = 'Ada'; document.querySelector('#invite-form button').click(); 1");
    b.wait_js(
        "document.getElementById('invite-link').textContent.includes('/guest_join?invite=')",
        "the invite's link",
    );
    let link = text(&mut b, "document.getElementById('invite-link').textContent");
    let token = link.rsplit('=').next().unwrap().to_string();
    b.wait_js(
        "document.querySelectorAll('#invites tbody tr').length === 1",
        "the invite listed",
    );
    screenshot(&mut b, "5-invite");
    b.eval("document.querySelector('#invites tbody tr button').click(); 1");
    b.wait_js(
        "document.querySelectorAll('#invites tbody tr').length === 0",
        "the invite revoked",
    );
    // Revoked for real: the guest endpoint refuses it.
    let resp = reqwest::blocking::Client::new()
        .request(reqwest::Method::OPTIONS, r.url("/whip"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // Signing out forgets the token.
    b.eval("document.getElementById('signout').click(); 1");
    b.wait_js(
        "!document.getElementById('signin').hidden",
        "the sign-in form again",
    );
    assert_eq!(
        text(&mut b, "sessionStorage.getItem('r58-token') || ''"),
        ""
    );
}
