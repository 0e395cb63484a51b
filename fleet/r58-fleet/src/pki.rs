//! A small CA for the broker's mutual TLS: `pki init` makes the CA, the broker's server
//! certificate and the fleet service's client certificate (CN `fleet`, a service identity of the broker's plugin);
//! `pki issue-device <id>` writes a bundle ready to drop onto a box (certificate CN = device
//! id = MQTT client id, which the broker's plugin holds the device to); `pki issue-operator <name>`
//! a client certificate for an operator's MQTT tools; `pki revoke <cn>` puts a CN on the
//! broker's revocation list. Keys are written 0600, atomically.
//!
//! Layout of the PKI folder: `ca.pem`, `ca.key`, `ca.json` (the CA's name), `broker.crt`/
//! `.key`, `fleet.crt`/`.key`, `issued.log` (one line per certificate issued or revoked),
//! `revoked` (the CNs the broker refuses: one a line; its plugin re-reads it within a
//! second of a change, docs/mqtt.md).

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

fn append_log(dir: &Path, line: &str) -> Result<(), FleetError> {
    let log = dir.join("issued.log");
    let line = format!("{} {line}\n", chrono::Utc::now().to_rfc3339());
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|_| f.sync_all()))
        .map_err(|source| FleetError::Write { path: log, source })
}

/// The CNs on the broker's revocation list (`<dir>/revoked`; none when it does not exist).
pub fn revoked(dir: &Path) -> Result<Vec<String>, FleetError> {
    let path = dir.join("revoked");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| l.split('#').next())
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(FleetError::RevokedRead { path, source }),
    }
}

/// What the running services get of the PKI folder, each in a folder of its own that is all
/// its container mounts: the broker `ca.pem`, `broker.crt`, `broker.key` and the revocation
/// list; the fleet service `ca.pem`, `fleet.crt`, `fleet.key` and the relay's `relay.crt`,
/// `relay.key`. The CA key stays in `dir`,
/// which no running service mounts. Written atomically, keys 0600.
pub fn export(dir: &Path, broker_certs: &Path, fleet_certs: &Path) -> Result<(), FleetError> {
    let copy = |name: &str, to: &Path, private: bool| -> Result<(), FleetError> {
        let from = dir.join(name);
        let data = std::fs::read(&from).map_err(|e| err(format!("{}: {e}", from.display())))?;
        std::fs::create_dir_all(to).map_err(|source| FleetError::Write {
            path: to.to_path_buf(),
            source,
        })?;
        write(&to.join(name), &data, private)
    };
    for (name, private) in [
        ("ca.pem", false),
        ("broker.crt", false),
        ("broker.key", true),
    ] {
        copy(name, broker_certs, private)?;
    }
    for (name, private) in [
        ("ca.pem", false),
        ("fleet.crt", false),
        ("fleet.key", true),
        ("relay.crt", false),
        ("relay.key", true),
    ] {
        copy(name, fleet_certs, private)?;
    }
    publish_revoked(dir, broker_certs)
}

/// Copies the revocation list to where the broker reads it (an empty list if none).
fn publish_revoked(dir: &Path, broker_certs: &Path) -> Result<(), FleetError> {
    let text = match std::fs::read(dir.join("revoked")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(FleetError::RevokedRead {
                path: dir.join("revoked"),
                source,
            })
        }
    };
    write(&broker_certs.join("revoked"), &text, false)
}

/// Puts `cn` on the broker's revocation list: its connection is closed and it is refused
/// from then on (within a second, no broker restart). False if it was on the list already.
/// The fleet's own identities are refused here (a new CA replaces them).
/// With `broker_certs`, the list is also copied there (the broker's folder of [`export`]).
pub fn revoke(dir: &Path, cn: &str, broker_certs: Option<&Path>) -> Result<bool, FleetError> {
    if !r58_proto::valid_device_id(cn) {
        return Err(FleetError::BadDeviceId(cn.to_string()));
    }
    if r58_proto::RESERVED_IDS.contains(&cn) {
        return Err(err(format!(
            "{cn} is reserved for the fleet's own services, not a device or operator: \
             replace the CA to shut it out"
        )));
    }
    let mut list = revoked(dir)?;
    if list.iter().any(|c| c == cn) {
        if let Some(b) = broker_certs {
            publish_revoked(dir, b)?;
        }
        return Ok(false);
    }
    list.push(cn.to_string());
    let text = format!(
        "# CNs the broker refuses (r58-fleet pki revoke), one a line.\n{}\n",
        list.join("\n")
    );
    write(&dir.join("revoked"), text.as_bytes(), false)?;
    append_log(dir, &format!("revoked {cn}"))?;
    if let Some(b) = broker_certs {
        publish_revoked(dir, b)?;
    }
    Ok(true)
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
        ca.issue_relay(broker_names)?;
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
        append_log(
            &self.dir,
            &format!(
                "{} {} {}",
                if server { "server" } else { "client" },
                cn,
                c.display()
            ),
        )?;
        Ok((c, k))
    }

    /// The remote-access relay's server certificate (`relay.crt`, `relay.key`): boxes dial
    /// the relay on the same host names as the broker.
    pub fn issue_relay(&self, names: &[String]) -> Result<(PathBuf, PathBuf), FleetError> {
        self.issue(&self.dir.join("relay"), "relay", names, true)
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
