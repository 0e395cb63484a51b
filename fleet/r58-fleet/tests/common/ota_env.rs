//! The OTA tests' world: a broker, the fleet (SQLite or PostgreSQL) with its bundle store and
//! the test signing keys, an observer on every device topic, and helpers to publish bundles,
//! target jobs and read a job's reported phases.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use r58_testkit::rauc;
use serde_json::{json, Value};

use super::ota::OtaDevice;
use super::*;
pub struct Env {
    pub dir: tempfile::TempDir,
    pub pki: PathBuf,
    pub keys: PathBuf,
    pub broker: Broker,
    pub fleet: Fleet,
    pub obs: Observer,
    pub token: String,
}

/// Broker, fleet on SQLite (checking signatures against the test CA when `keyring`), an observer.
pub fn setup(keyring: bool) -> Env {
    setup_db(keyring, None)
}

pub fn setup_db(keyring: bool, db_url: Option<&str>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path());
    let keys = dir.path().join("keys");
    rauc::dev_keys(&keys);
    let broker = Broker::start_with_certs(dir.path(), &pki);
    let extra = format!(
        "[ota]\ndir = \"{}\"\nkeyring = \"{}\"\ntick_ms = 300\n",
        dir.path().join("fleet-bundles").display(),
        if keyring {
            keys.join("ca.cert.pem").display().to_string()
        } else {
            String::new()
        },
    );
    let db = db_url.map_or_else(
        || format!("sqlite://{}/fleet.db", dir.path().display()),
        str::to_string,
    );
    let fleet = Fleet::start_with(
        &dir.path().join("fleet"),
        &pki,
        broker.port,
        &db,
        "r58-fleet-t",
        &extra,
    );
    let token = fleet.operator("ops");
    let (ca, cert, key) = super::ota::fleet_pki_dir_files(&pki);
    let obs = Observer::connect_files(&ca, &cert, &key, broker.port, "observer", &["r58/v1/#"]);
    Env {
        dir,
        pki,
        keys,
        broker,
        fleet,
        obs,
        token,
    }
}

impl Env {
    pub fn device(&self, id: &str) -> OtaDevice {
        let d = OtaDevice::start(self.dir.path(), &self.pki, self.broker.port, id, &self.keys);
        self.online(id);
        d
    }

    /// A device on `sim` with `ota.streaming` as given, once it is online.
    pub fn device_on(&self, sim: rauc::RaucSim, id: &str, streaming: bool) -> OtaDevice {
        let d = OtaDevice::start_on(
            sim,
            self.dir.path(),
            &self.pki,
            self.broker.port,
            id,
            streaming,
        );
        self.online(id);
        d
    }

    fn online(&self, id: &str) {
        self.obs.wait_json(
            &format!("r58/v1/{id}/state"),
            Duration::from_secs(20),
            "online",
            |v| v["status"] == "online",
        );
    }

    pub fn bundle(&self, name: &str, version: &str, compatible: &str, mib: u32) -> PathBuf {
        rauc::bundle(
            &self.dir.path().join(name),
            version,
            compatible,
            mib,
            &self.keys,
        )
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(fleet_bin())
            .args(args)
            .args(["--server", &self.fleet.url(""), "--token", &self.token])
            .output()
            .unwrap()
    }

    /// `r58-fleet ota publish`; returns the bundle as the fleet stored it.
    pub fn publish(&self, file: &Path) -> r58_fleet_api::Bundle {
        let out = self.cli(&["ota", "publish", file.to_str().unwrap(), "--json"]);
        assert!(
            out.status.success(),
            "publish: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<r58_fleet_api::BundleAnswer>(&out.stdout)
            .unwrap()
            .bundle
    }

    /// A job straight to one device (retained jobs/next), for the device-side cases.
    pub fn job(&self, device: &str, job: Value) {
        self.obs
            .publish(&format!("r58/v1/{device}/jobs/next"), job.to_string(), true);
    }

    pub fn job_doc(&self, job_id: &str, b: &r58_fleet_api::Bundle) -> Value {
        json!({
            "job_id": job_id, "version": b.version, "size": b.size, "sha256": b.sha256,
            "url": self.fleet.url(&format!("/ota/bundles/{}.raucb", b.sha256)),
        })
    }

    pub fn updates(&self, device: &str, job_id: &str) -> Vec<Value> {
        self.obs
            .json_on(&format!("r58/v1/{device}/jobs/{job_id}/update"))
    }

    pub fn phases(&self, device: &str, job_id: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for u in self.updates(device, job_id) {
            let p = u["phase"].as_str().unwrap().to_string();
            if out.last() != Some(&p) {
                out.push(p);
            }
        }
        out
    }

    /// Waits for the job's final update, servicing the devices' reboots meanwhile.
    pub fn finish(
        &self,
        devices: &mut [&mut OtaDevice],
        device: &str,
        job_id: &str,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            for d in devices.iter_mut() {
                d.service();
            }
            if let Some(u) = self
                .updates(device, job_id)
                .into_iter()
                .find(|u| u["phase"] == "succeeded" || u["phase"] == "failed")
            {
                return u;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} on {device} did not finish: {:?}",
                self.phases(device, job_id)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn subsequence(have: &[String], want: &[&str]) -> bool {
    let mut it = have.iter();
    want.iter().all(|w| it.any(|h| h == w))
}
