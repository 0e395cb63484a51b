//! The `r58-fleet` CLI: the PKI (bundles that verify against the CA and that the real
//! broker accepts, keys 0600, no CA overwritten, bad ids refused) and the client commands
//! against a real server and agent (tables, `--json`, command progress and exit codes,
//! config set/get, a clear error without a token).
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;

fn cli(fleet: &Fleet, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(fleet_bin())
        .args(args)
        .env("R58_FLEET_URL", fleet.url(""))
        .env("R58_FLEET_TOKEN", token)
        .output()
        .unwrap()
}

#[test]
fn pki_bundles_verify_and_are_guarded() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let out = dir.path().join("bundles");
    let bundle = fleet_cli(&[
        "pki",
        "issue-device",
        "r58-0042",
        "--dir",
        pki.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--broker",
        "mqtts://fleet.example:8883",
    ]);
    let b = std::path::PathBuf::from(bundle.trim());
    for (file, mode) in [
        ("device.key", 0o600),
        ("device.crt", 0o644),
        ("fleet-ca.pem", 0o644),
        ("60-fleet.toml", 0o644),
    ] {
        assert_eq!(
            std::fs::metadata(b.join(file))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            mode,
            "{file}"
        );
    }
    assert_eq!(
        std::fs::metadata(pki.join("ca.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // The device certificate (CN = device id, client auth) verifies against the CA file the box gets.
    let v = Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(b.join("fleet-ca.pem"))
        .arg(b.join("device.crt"))
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(b.join("device.crt"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&subject.stdout).contains("CN = r58-0042"));
    // The broker's certificate is a server certificate for the names given.
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(pki.join("broker.crt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("DNS:localhost")
            && text.contains("IP Address:127.0.0.1")
            && text.contains("TLS Web Server Authentication"),
        "{text}"
    );
    // The drop-in is a valid agent configuration for the real loader's schema.
    let toml = std::fs::read_to_string(b.join("60-fleet.toml")).unwrap();
    assert!(
        toml.contains("device_id = \"r58-0042\"")
            && toml.contains("broker = \"mqtts://fleet.example:8883\""),
        "{toml}"
    );

    // A second init would replace the CA every device trusts: refused.
    let again = Command::new(fleet_bin())
        .args([
            "pki",
            "init",
            "--dir",
            pki.to_str().unwrap(),
            "--broker-name",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a CA"));
    // Bad device ids and broker URLs are refused, naming the problem.
    for (id, broker, want) in [
        ("R58/x", "mqtts://h", "bad device id"),
        // The broker gives the CN `fleet` the whole tree: never a device's name.
        ("fleet", "mqtts://h", "reserved"),
        ("r58-1", "http://h", "broker URL"),
    ] {
        let o = Command::new(fleet_bin())
            .args([
                "pki",
                "issue-device",
                id,
                "--dir",
                pki.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--broker",
                broker,
            ])
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // Revocation: the CN goes on the list the broker's plugin reads, once, and is logged;
    // the fleet's own identity and bad names are refused.
    let revoke = |cn: &str| {
        Command::new(fleet_bin())
            .args(["pki", "revoke", cn, "--dir", pki.to_str().unwrap()])
            .output()
            .unwrap()
    };
    assert!(revoke("r58-0042").status.success());
    let again = revoke("r58-0042");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("revoked already"));
    assert!(revoke("r58-0043").status.success());
    for (cn, want) in [("fleet", "reserved"), ("r58/#", "bad device id")] {
        let o = revoke(cn);
        assert!(!o.status.success(), "{cn}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{cn}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let list = std::fs::read_to_string(pki.join("revoked")).unwrap();
    let names: Vec<&str> = list.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(names, ["r58-0042", "r58-0043"], "{list}");
    let log = std::fs::read_to_string(pki.join("issued.log")).unwrap();
    assert_eq!(log.matches("revoked r58-0042").count(), 1, "{log}");
}

/// The deployment's PKI step: the CA once, the services' certificates copied into folders
/// of their own without the CA key; revocations reach the broker's folder.
#[test]
fn pki_deploy_keeps_the_ca_key_out_of_the_services_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, broker, fleet) = (
        dir.path().join("pki"),
        dir.path().join("broker"),
        dir.path().join("fleet"),
    );
    let deploy = || {
        let o = Command::new(fleet_bin())
            .args(["pki", "deploy", "--name", "t", "--broker-name", "mosquitto"])
            .arg("--dir")
            .arg(&pki)
            .arg("--broker-certs")
            .arg(&broker)
            .arg("--fleet-certs")
            .arg(&fleet)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    deploy();
    let ca = std::fs::read(pki.join("ca.pem")).unwrap();
    deploy();
    assert_eq!(
        std::fs::read(pki.join("ca.pem")).unwrap(),
        ca,
        "the CA was replaced"
    );
    let names = |d: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&broker),
        ["broker.crt", "broker.key", "ca.pem", "revoked"]
    );
    assert_eq!(
        names(&fleet),
        ["ca.pem", "fleet.crt", "fleet.key", "relay.crt", "relay.key"]
    );
    for key in [
        broker.join("broker.key"),
        fleet.join("fleet.key"),
        fleet.join("relay.key"),
    ] {
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(std::fs::read(broker.join("ca.pem")).unwrap(), ca);
    // A PKI made before the relay existed gets its certificate on the next deployment,
    // under the same CA.
    std::fs::remove_file(pki.join("relay.crt")).unwrap();
    std::fs::remove_file(fleet.join("relay.crt")).unwrap();
    deploy();
    assert!(pki.join("relay.crt").exists() && fleet.join("relay.crt").exists());
    assert_eq!(std::fs::read(pki.join("ca.pem")).unwrap(), ca);
    let o = Command::new(fleet_bin())
        .args(["pki", "revoke", "r58-0007", "--dir"])
        .arg(&pki)
        .arg("--broker-certs")
        .arg(&broker)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(std::fs::read_to_string(broker.join("revoked"))
        .unwrap()
        .lines()
        .any(|l| l == "r58-0007"));

    // The compose deployment mounts the CA's volume into the one-shot PKI service only.
    let compose = std::fs::read_to_string(repo().join("fleet/deploy/docker-compose.yml")).unwrap();
    let mut service = String::new();
    let mut mounting_pki = Vec::new();
    let mut publishing = Vec::new();
    for line in compose.lines() {
        if line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':') {
            service = line.trim().trim_end_matches(':').to_string();
        }
        if line.trim_start().starts_with("- pki:") {
            mounting_pki.push(service.clone());
        }
        if line.trim() == "ports:" {
            publishing.push(service.clone());
        }
    }
    assert_eq!(mounting_pki, ["fleet-pki"], "{compose}");
    // Only the broker and the fleet's relay (both mutual TLS, not through a proxy) are
    // published; the fleet's HTTP is reached through Coolify's proxy.
    assert_eq!(publishing, ["mosquitto", "fleet"], "{compose}");
    assert!(
        compose.contains("\"${R58_RELAY_PORT:-8443}:8443\""),
        "{compose}"
    );
}

#[test]
fn client_commands_against_a_real_server_and_agent() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let broker = Broker::start_with_certs(dir.path(), &pki);
    let db = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let fleet = Fleet::start(
        &dir.path().join("fleet"),
        &pki,
        broker.port,
        &db,
        "fleet-cli",
    );
    let token = fleet.operator("cli");
    let _agent = agent_with_bundle(dir.path(), &pki, broker.port, "r58-cli");
    wait_device(&fleet, &token, "r58-cli", "device online", |d| {
        d.status == "online"
    });

    let o = cli(&fleet, &token, &["devices"]);
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success());
    assert!(
        table.starts_with("DEVICE")
            && table.lines().nth(1).unwrap().starts_with("r58-cli")
            && table.contains("online"),
        "{table}"
    );
    let o = cli(&fleet, &token, &["devices", "--json", "--status", "online"]);
    let v: r58_fleet_api::DeviceList = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.devices[0].id, "r58-cli");

    let o = cli(&fleet, &token, &["cmd", "r58-cli", "ping"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("succeeded"));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("100%"),
        "progress shown: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = cli(&fleet, &token, &["cmd", "r58-cli", "no.such.command"]);
    assert_eq!(o.status.code(), Some(1), "a rejected command fails the CLI");
    assert!(String::from_utf8_lossy(&o.stdout).contains("rejected"));

    let o = cli(
        &fleet,
        &token,
        &["config", "set", "r58-cli", "encoder.bitrate_kbps=9000"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = wait_until(Duration::from_secs(20), "config in sync", || {
        let o = cli(&fleet, &token, &["config", "get", "r58-cli", "--json"]);
        let v: r58_fleet_api::DeviceConfig = serde_json::from_slice(&o.stdout).ok()?;
        v.in_sync.then_some(v)
    });
    assert_eq!(v.desired["encoder.bitrate_kbps"], 9000);
    assert_eq!(v.reported.unwrap()["encoder.bitrate_kbps"], 9000);

    let o = cli(&fleet, &token, &["device", "r58-cli"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("ping") && text.contains("succeeded"),
        "{text}"
    );

    // watch: live telemetry lines until stopped.
    let mut w = Command::new(fleet_bin())
        .args(["watch", "r58-cli", "--stream", "system"])
        .env("R58_FLEET_URL", fleet.url(""))
        .env("R58_FLEET_TOKEN", &token)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(w.stdout.take().unwrap()));
    let first = lines.next().unwrap().unwrap();
    let _ = w.kill();
    let _ = w.wait();
    assert!(
        first.contains(" system ") && first.contains("cpu_percent"),
        "{first}"
    );

    // Without a token: a usage error that says what to do.
    let o = cli(&fleet, "", &["devices"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("R58_FLEET_TOKEN"));
    // A wrong one: the server's reason.
    let o = cli(&fleet, "wrong", &["devices"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HTTP 401"));
    // The compose deployment's configuration is valid.
    let deploy = repo().join("fleet/deploy/fleet.toml");
    let o = Command::new(fleet_bin())
        .args(["--config", deploy.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // --help everywhere.
    for args in [
        &["--help"][..],
        &["cmd", "--help"],
        &["pki", "issue-device", "--help"],
        &["config", "set", "--help"],
    ] {
        let o = Command::new(fleet_bin()).args(args).output().unwrap();
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}
