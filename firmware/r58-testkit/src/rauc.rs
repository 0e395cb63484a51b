//! The real RAUC on this host for OTA tests: `rauc service` on a private D-Bus system bus,
//! A/B slots as ext4 image files, `bootloader=custom` with a shell backend that keeps the
//! U-Boot-style boot state (`BOOT_ORDER`, `BOOT_x_LEFT`) in a file. A "boot" stops the
//! service, lets the backend pick the slot as U-Boot would (decrementing its counter), writes
//! a new boot id and starts the service on that slot again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::repo;

pub struct RaucSim {
    pub dir: PathBuf,
    /// `ca.cert.pem` (the keyring), `signing.cert.pem`, `signing.key.pem`.
    pub keys: PathBuf,
    /// `unix:path=…` of the private system bus.
    pub bus: String,
    pub boot_id_file: PathBuf,
    pub compatible: String,
    dbus: Option<Child>,
    service: Option<Child>,
    boots: u32,
    pub booted: String,
}

const BACKEND: &str = r#"#!/bin/sh
# RAUC custom bootloader backend for tests: U-Boot's A/B logic on a state file.
set -eu
S="$(dirname "$0")/boot.env"
. "$S"
save() {
  printf 'BOOT_ORDER="%s"\nBOOT_A_LEFT=%s\nBOOT_B_LEFT=%s\n' "$BOOT_ORDER" "$BOOT_A_LEFT" "$BOOT_B_LEFT" > "$S.tmp"
  mv "$S.tmp" "$S"
}
left() { eval "echo \$BOOT_$1_LEFT"; }
setleft() { eval "BOOT_$1_LEFT=$2"; }
echo "$*" >> "$(dirname "$0")/bootloader.log"
case "$1" in
  get-primary)
    for s in $BOOT_ORDER; do if [ "$(left "$s")" -gt 0 ]; then echo "$s"; exit 0; fi; done
    exit 1 ;;
  set-primary)
    order="$2"; for s in $BOOT_ORDER; do [ "$s" = "$2" ] || order="$order $s"; done
    BOOT_ORDER="$order"; setleft "$2" 3; save ;;
  get-state)
    case " $BOOT_ORDER " in *" $2 "*) [ "$(left "$2")" -gt 0 ] && { echo good; exit 0; } ;; esac
    echo bad ;;
  set-state)
    if [ "$3" = good ]; then setleft "$2" 3
    else setleft "$2" 0; order=""; for s in $BOOT_ORDER; do [ "$s" = "$2" ] || order="$order $s"; done; BOOT_ORDER="${order# }"; fi
    save ;;
  get-current) cat "$(dirname "$0")/booted" ;;
  boot)
    # What U-Boot does at power-on: the first slot of the order with tries left, one try less.
    for s in $BOOT_ORDER; do
      n=$(left "$s"); if [ "$n" -gt 0 ]; then setleft "$s" $((n - 1)); save; echo "$s" > "$(dirname "$0")/booted"; echo "$s"; exit 0; fi
    done
    BOOT_ORDER="A B"; BOOT_A_LEFT=3; BOOT_B_LEFT=3; save; echo A > "$(dirname "$0")/booted"; echo A ;;
  *) echo "unknown backend call $*" >&2; exit 1 ;;
esac
"#;

/// A development CA and signing key in `dir` (kept if there).
pub fn dev_keys(dir: &Path) {
    run(Command::new(repo().join("ota/keys/make-dev-keys")).arg(dir));
}

/// A root file system image whose `/etc/r58-version` is `version`, padded with `mib` MiB of
/// random data, signed with `keys` into a plain bundle at `out` by `ota/make-bundle`.
pub fn bundle(out: &Path, version: &str, compatible: &str, mib: u32, keys: &Path) -> PathBuf {
    let work = out.with_extension("build");
    let content = work.join("content");
    std::fs::create_dir_all(content.join("etc")).unwrap();
    std::fs::write(content.join("etc/r58-version"), version).unwrap();
    if mib > 0 {
        run(Command::new("dd")
            .arg("if=/dev/urandom")
            .arg(format!("of={}", content.join("payload").display()))
            .args(["bs=1M", &format!("count={mib}"), "status=none"]));
    }
    let img = work.join("rootfs.ext4");
    run(Command::new("truncate")
        .arg("-s")
        .arg(format!("{}M", mib + mib / 8 + 8))
        .arg(&img));
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&content)
        .arg(&img));
    run(Command::new(repo().join("ota/make-bundle"))
        .arg("--rootfs")
        .arg(&img)
        .args([
            "--version",
            version,
            "--compatible",
            compatible,
            "--format",
            "plain",
            "--keys",
        ])
        .arg(keys)
        .arg("--out")
        .arg(out));
    let _ = std::fs::remove_dir_all(&work);
    out.to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl RaucSim {
    /// Slots, bus and service, trusting the CA in `keys` (made there by
    /// `ota/keys/make-dev-keys` if missing); the machine boots slot A.
    pub fn start(dir: &Path, keys: &Path) -> Self {
        Self::start_sized(dir, keys, 16)
    }

    /// With slots of `slot_mib` MiB (a bundle's image must fit).
    pub fn start_sized(dir: &Path, keys: &Path, slot_mib: u32) -> Self {
        Self::start_compatible(dir, keys, slot_mib, "r58-test")
    }

    /// With slots of `slot_mib` MiB and the system's `compatible`.
    pub fn start_compatible(dir: &Path, keys: &Path, slot_mib: u32, compatible: &str) -> Self {
        Self::start_configured(dir, keys, slot_mib, compatible, "")
    }

    /// As `start_compatible`, with `system_extra` (lines) added to system.conf's `[system]`.
    pub fn start_configured(
        dir: &Path,
        keys: &Path,
        slot_mib: u32,
        compatible: &str,
        system_extra: &str,
    ) -> Self {
        Self::start_with_handlers(dir, keys, slot_mib, compatible, system_extra, "")
    }

    /// As `start_configured`, with a `pre-install` handler that sleeps `seconds`: an install
    /// that stays in progress long enough to restart the agent in the middle of it. Each
    /// install adds a line to `pre-install.log`.
    pub fn start_slow_install(dir: &Path, keys: &Path, slot_mib: u32, seconds: u32) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let hook = dir.join("pre-install.sh");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\necho install >> '{}'\nsleep {seconds}\n",
                dir.join("pre-install.log").display()
            ),
        )
        .unwrap();
        run(Command::new("chmod").arg("+x").arg(&hook));
        let line = format!("pre-install={}\n", hook.display());
        Self::start_with_handlers(dir, keys, slot_mib, "r58-test", "", &line)
    }

    fn start_with_handlers(
        dir: &Path,
        keys: &Path,
        slot_mib: u32,
        compatible: &str,
        system_extra: &str,
        handlers_extra: &str,
    ) -> Self {
        std::fs::create_dir_all(dir.join("slots")).unwrap();
        std::fs::create_dir_all(dir.join("mnt")).unwrap();
        let keys = keys.to_path_buf();
        dev_keys(&keys);
        for s in ["a", "b"] {
            let img = dir.join(format!("slots/{s}.img"));
            run(Command::new("truncate")
                .arg("-s")
                .arg(format!("{slot_mib}M"))
                .arg(&img));
            run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        }
        std::fs::write(
            dir.join("boot.env"),
            "BOOT_ORDER=\"A B\"\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n",
        )
        .unwrap();
        let backend = dir.join("bootloader.sh");
        std::fs::write(&backend, BACKEND).unwrap();
        run(Command::new("chmod").arg("+x").arg(&backend));
        let compatible = compatible.to_string();
        std::fs::write(
            dir.join("system.conf"),
            format!(
                "[system]\ncompatible={compatible}\nbootloader=custom\nbundle-formats=plain verity\ndata-directory={d}/data\n{system_extra}\
                 [handlers]\nbootloader-custom-backend={b}\n{handlers_extra}[keyring]\npath={k}/ca.cert.pem\ncheck-purpose=codesign\n\
                 [slot.rootfs.0]\ndevice={d}/slots/a.img\ntype=ext4\nbootname=A\n\
                 [slot.rootfs.1]\ndevice={d}/slots/b.img\ntype=ext4\nbootname=B\n",
                d = dir.display(),
                b = backend.display(),
                k = keys.display()
            ),
        )
        .unwrap();
        let sock = dir.join("bus.sock");
        std::fs::write(
            dir.join("dbus.conf"),
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\" \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig><type>system</type>\
                 <listen>unix:path={}</listen><auth>EXTERNAL</auth><policy context=\"default\">\
                 <allow user=\"*\"/><allow own=\"*\"/><allow send_destination=\"*\"/><allow receive_sender=\"*\"/>\
                 </policy></busconfig>\n",
                sock.display()
            ),
        )
        .unwrap();
        let dbus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", dir.join("dbus.conf").display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian dbus-daemon) must be installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(
                Instant::now() < deadline,
                "dbus-daemon did not open {}",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut sim = Self {
            dir: dir.to_path_buf(),
            keys,
            bus: format!("unix:path={}", sock.display()),
            boot_id_file: dir.join("boot_id"),
            compatible,
            dbus: Some(dbus),
            service: None,
            boots: 0,
            booted: String::new(),
        };
        sim.boot();
        sim
    }

    fn stop_service(&mut self) {
        if let Some(mut c) = self.service.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A power cycle as far as RAUC and the bootloader are concerned; returns the bootname.
    pub fn boot(&mut self) -> String {
        self.stop_service();
        let slot = run(Command::new(self.dir.join("bootloader.sh")).arg("boot"));
        self.boots += 1;
        std::fs::write(
            &self.boot_id_file,
            format!("boot-{}-{}\n", self.boots, std::process::id()),
        )
        .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("rauc.log"))
            .unwrap();
        let child = Command::new("rauc")
            .arg(format!("--conf={}", self.dir.join("system.conf").display()))
            .arg(format!("--mount={}", self.dir.join("mnt").display()))
            .arg("service")
            .arg(format!("--override-boot-slot={slot}"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("rauc (Debian rauc, rauc-service) must be installed");
        self.service = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = Command::new("rauc")
                .arg("status")
                .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus)
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rauc service did not come up: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.booted = slot.clone();
        slot
    }

    /// The boot state file (`BOOT_ORDER`, counters), for assertions.
    pub fn boot_state(&self) -> String {
        std::fs::read_to_string(self.dir.join("boot.env")).unwrap_or_default()
    }

    /// What RAUC reports now (`rauc status --output-format=json`).
    pub fn status_json(&self) -> serde_json::Value {
        let out = Command::new("rauc")
            .args(["status", "--detailed", "--output-format=json"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for RaucSim {
    fn drop(&mut self) {
        self.stop_service();
        if let Some(mut c) = self.dbus.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A bundle still mounted by a killed service would keep its loop device.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("mnt"))
            .stderr(Stdio::null())
            .status();
    }
}
