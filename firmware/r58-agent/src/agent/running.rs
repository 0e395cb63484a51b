//! What runs on this box, for the `state` document: the booted slot and the version of the
//! bundle installed there, as RAUC knows them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::ToLoop;

/// Names the booted slot instead of RAUC and the boot loader (tests without a boot loader).
const PINNED_SLOT: &str = "R58_BOOTED_SLOT";

/// The slot named by `R58_BOOTED_SLOT`, if set.
pub(super) fn pinned_slot() -> Option<String> {
    std::env::var(PINNED_SLOT).ok()
}

/// The booted slot known at start-up, before RAUC answers: the pinned one, else the boot
/// loader's `rauc.slot=` on the kernel command line.
pub(super) fn slot_at_start() -> Option<String> {
    pinned_slot().or_else(|| {
        std::fs::read_to_string("/proc/cmdline")
            .ok()
            .and_then(|c| slot_on_cmdline(&c))
    })
}

/// The slot the boot loader booted, from its `rauc.slot=` on the kernel command line.
fn slot_on_cmdline(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rauc.slot="))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Asks RAUC in the background what runs and tells the loop (`ToLoop::Running`). RAUC may
/// still be starting (D-Bus activation on a busy boot): asked again every 5 s, 20 times.
pub(super) fn ask_rauc(rauc: Arc<dyn r58_ota::rauc::Rauc>, tx: mpsc::Sender<ToLoop>) {
    tokio::spawn(async move {
        for _ in 0..20 {
            if let Ok(Ok(sys)) = tokio::time::timeout(Duration::from_secs(10), rauc.system()).await
            {
                let version = sys.booted_slot().and_then(|s| s.bundle_version.clone());
                let _ = tx
                    .send(ToLoop::Running {
                        slot: sys.booted,
                        version,
                    })
                    .await;
                return;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        tracing::warn!("RAUC did not answer: the state names this build's version");
    });
}

#[cfg(test)]
mod tests {
    use super::slot_on_cmdline;

    #[test]
    fn the_booted_slot_is_read_from_the_boot_loaders_command_line() {
        let line = "root=PARTLABEL=rootfs_b ro rootwait panic=10 rauc.slot=B console=ttyS0\n";
        assert_eq!(slot_on_cmdline(line).as_deref(), Some("B"));
        assert_eq!(slot_on_cmdline("root=/dev/sda1 ro quiet"), None);
        assert_eq!(slot_on_cmdline("rauc.slot= quiet"), None);
    }
}
