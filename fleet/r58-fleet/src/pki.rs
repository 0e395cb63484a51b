//! A small CA for the broker's mutual TLS: `pki init` makes the CA, the broker's server
//! certificate and the fleet service's client certificate (CN `fleet`, the ACL's user);
//! `pki issue-device <id>` writes a bundle ready to drop onto a box (certificate CN = device
//! id = MQTT client id, which the ACL's `%u` patterns rely on); `pki issue-operator <name>`
//! a client certificate for an operator's MQTT tools. Keys are written 0600, atomically.
//!
//! Layout of the PKI folder: `ca.pem`, `ca.key`, `ca.json` (the CA's name), `broker.crt`/
//! `.key`, `fleet.crt`/`.key`, `issued.log` (one line per certificate issued).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Datelike;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};

use crate::FleetError;

fn err(what: impl std::fmt::Display) -> FleetError {
    FleetError::Pki(what.to_string())
}

#[derive(Serialize, Deserialize)]
struct CaInfo {
    common_name: String,
}

/// Writes a PKI file atomically; a private key is 0600 from its creation on (never readable
/// by others, not even between create and chmod).
fn write(path: &Path, data: &[u8], private: bool) -> Result<(), FleetError> {
    let mode = if private { 0o600 } else { 0o644 };
    r58_fs::write_atomic_mode(path, data, mode).map_err(FleetError::State)
}

/// Valid from the start of this year for `years` years.
fn set_validity(p: &mut CertificateParams, years: i32) {
    let y = chrono::Utc::now().year();
    p.not_before = rcgen::date_time_ymd(y, 1, 1);
    p.not_after = rcgen::date_time_ymd(y + years, 1, 1);
}

pub struct Ca {
    dir: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    /// Creates the CA in `dir` (refuses to overwrite one) with the broker's certificate for
    /// `broker_names` (DNS names or IP addresses) and the fleet service's client certificate.
    pub fn init(dir: &Path, name: &str, broker_names: &[String]) -> Result<Self, FleetError> {
        if dir.join("ca.key").exists() {
            return Err(err(format!(
                "{} already holds a CA (ca.key): refusing to replace it",
                dir.display()
            )));
        }
        if broker_names.is_empty() {
            return Err(err("the broker needs at least one name (--broker-name)"));
        }
        std::fs::create_dir_all(dir).map_err(|source| FleetError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let key = KeyPair::generate().map_err(err)?;
        let common_name = format!("R58 fleet CA {name}");
        let cert = Self::ca_params(&common_name)?
            .self_signed(&key)
            .map_err(err)?;
        write(&dir.join("ca.key"), key.serialize_pem().as_bytes(), true)?;
        write(&dir.join("ca.pem"), cert.pem().as_bytes(), false)?;
        let info = serde_json::to_vec_pretty(&CaInfo { common_name }).map_err(err)?;
        write(&dir.join("ca.json"), &info, false)?;
        let ca = Self {
            dir: dir.to_path_buf(),
            cert,
            key,
        };
        ca.issue(&dir.join("broker"), "broker", broker_names, true)?;
        ca.issue(&dir.join("fleet"), "fleet", &[], false)?;
        Ok(ca)
    }

    fn ca_params(common_name: &str) -> Result<CertificateParams, FleetError> {
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.distinguished_name.push(DnType::CommonName, common_name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut p, 20);
        Ok(p)
    }

    /// Opens the CA made by `init`. The issuer is rebuilt from the same name and key, so
    /// what it signs verifies against the `ca.pem` that devices and the broker hold.
    pub fn open(dir: &Path) -> Result<Self, FleetError> {
        let read = |n: &str| {
            std::fs::read_to_string(dir.join(n)).map_err(|e| {
                err(format!(
                    "{}: {e} (run `r58-fleet pki init` first)",
                    dir.join(n).display()
                ))
            })
        };
        let key = KeyPair::from_pem(&read("ca.key")?)
            .map_err(|e| err(format!("{}: {e}", dir.join("ca.key").display())))?;
        let info: CaInfo = serde_json::from_str(&read("ca.json")?)
            .map_err(|e| err(format!("{}: {e}", dir.join("ca.json").display())))?;
        let cert = Self::ca_params(&info.common_name)?
            .self_signed(&key)
            .map_err(err)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            cert,
            key,
        })
    }

    /// Writes `<base>.crt` and `<base>.key` for CN `cn` (a server certificate with `names`
    /// as subject alternative names, or a client certificate).
    pub fn issue(
        &self,
        base: &Path,
        cn: &str,
        names: &[String],
        server: bool,
    ) -> Result<(PathBuf, PathBuf), FleetError> {
        let (cert_pem, key_pem) = self.sign(cn, names, server)?;
        let (c, k) = (base.with_extension("crt"), base.with_extension("key"));
        write(&k, key_pem.as_bytes(), true)?;
        write(&c, cert_pem.as_bytes(), false)?;
        let log = self.dir.join("issued.log");
        let line = format!(
            "{} {} {} {}\n",
            chrono::Utc::now().to_rfc3339(),
            if server { "server" } else { "client" },
            cn,
            c.display()
        );
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|_| f.sync_all()))
            .map_err(|source| FleetError::Write { path: log, source })?;
        Ok((c, k))
    }

    /// A certificate and its key (PEM) for CN `cn`, not written anywhere (the device
    /// simulator of the fleet benchmark uses this; `issue` writes and logs).
    pub fn sign(
        &self,
        cn: &str,
        names: &[String],
        server: bool,
    ) -> Result<(String, String), FleetError> {
        let key = KeyPair::generate().map_err(err)?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        for n in names {
            p.subject_alt_names
                .push(match n.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(
                        n.clone()
                            .try_into()
                            .map_err(|e| err(format!("name {n:?}: {e}")))?,
                    ),
                });
        }
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        set_validity(&mut p, if server { 5 } else { 10 });
        let cert = p.signed_by(&key, &self.cert, &self.key).map_err(err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A device bundle in `out/<id>/`: `fleet-ca.pem`, `device.crt`, `device.key` and the
    /// agent's drop-in `60-fleet.toml` pointing at them under `/data/agent/` and at `broker`.
    pub fn issue_device(&self, id: &str, out: &Path, broker: &str) -> Result<PathBuf, FleetError> {
        if !r58_proto::assignable_device_id(id) {
            return Err(FleetError::BadDeviceId(id.to_string()));
        }
        r58_tls::parse_broker(broker)?;
        let dir = out.join(id);
        std::fs::create_dir_all(&dir).map_err(|source| FleetError::Write {
            path: dir.clone(),
            source,
        })?;
        self.issue(&dir.join("device"), id, &[], false)?;
        write(
            &dir.join("fleet-ca.pem"),
            self.cert_pem()?.as_bytes(),
            false,
        )?;
        let toml = format!(
            "# Written by `r58-fleet pki issue-device {id}`. Copy this folder's files to /data/agent/\n\
             # and this file to /etc/r58/conf.d/ on the device.\n[agent]\ndevice_id = \"{id}\"\nbroker = \"{broker}\"\n\
             ca_file = \"/data/agent/fleet-ca.pem\"\ncert_file = \"/data/agent/device.crt\"\nkey_file = \"/data/agent/device.key\"\n"
        );
        write(&dir.join("60-fleet.toml"), toml.as_bytes(), false)?;
        Ok(dir)
    }

    /// The CA certificate as the broker and the devices hold it.
    pub fn cert_pem(&self) -> Result<String, FleetError> {
        std::fs::read_to_string(self.dir.join("ca.pem"))
            .map_err(|e| err(format!("{}: {e}", self.dir.join("ca.pem").display())))
    }
}
