//! RAUC through its D-Bus API (`de.pengutronix.rauc.Installer` on the system bus): bundle
//! info (signature checked against the keyring), install with progress, slot status, mark
//! good/bad. The bootloader seam is RAUC's own (`bootloader=uboot` on the R58, `custom` with a
//! state-file script in the tests). `DBUS_SYSTEM_BUS_ADDRESS` selects another bus (tests).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use futures::StreamExt;
use zbus::zvariant::{OwnedValue, Value};

#[zbus::proxy(
    interface = "de.pengutronix.rauc.Installer",
    default_service = "de.pengutronix.rauc",
    default_path = "/"
)]
trait Installer {
    fn install_bundle(&self, source: &str, args: HashMap<&str, Value<'_>>) -> zbus::Result<()>;
    fn info(&self, bundle: &str) -> zbus::Result<(String, String)>;
    fn mark(&self, state: &str, slot_identifier: &str) -> zbus::Result<(String, String)>;
    fn get_slot_status(&self) -> zbus::Result<Vec<(String, HashMap<String, OwnedValue>)>>;
    fn get_primary(&self) -> zbus::Result<String>;
    #[zbus(signal)]
    fn completed(&self, result: i32) -> zbus::Result<()>;
    #[zbus(property)]
    fn operation(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn last_error(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn progress(&self) -> zbus::Result<(i32, String, i32)>;
    #[zbus(property)]
    fn compatible(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn boot_slot(&self) -> zbus::Result<String>;
}

#[derive(Debug, thiserror::Error)]
pub enum RaucError {
    #[error("connecting to RAUC on the system bus: {0}")]
    Connect(String),
    #[error("RAUC could not read the bundle {bundle}: {message}")]
    Info { bundle: String, message: String },
    #[error("RAUC install of {bundle} failed: {message}")]
    Install { bundle: String, message: String },
    #[error("RAUC slot status: {0}")]
    Status(String),
    #[error("RAUC mark {state}: {message}")]
    Mark { state: String, message: String },
}

impl RaucError {
    /// RAUC's message for a signature it refuses (unsigned, tampered, unknown signer).
    pub fn is_signature(&self) -> bool {
        let m = match self {
            Self::Info { message, .. } | Self::Install { message, .. } => {
                message.to_ascii_lowercase()
            }
            _ => return false,
        };
        m.contains("signature")
            || m.contains("verify")
            || m.contains("certificate")
            || m.contains("signed")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleInfo {
    pub compatible: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Slot {
    pub name: String,
    pub bootname: Option<String>,
    /// `booted`, `active`, `inactive`.
    pub state: String,
    /// `good` / `bad` as the bootloader sees it.
    pub boot_status: Option<String>,
    pub bundle_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct System {
    pub compatible: String,
    /// Bootname of the booted slot.
    pub booted: String,
    pub primary: Option<String>,
    pub slots: Vec<Slot>,
}

impl System {
    pub fn booted_slot(&self) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| s.bootname.as_deref() == Some(&self.booted))
    }

    /// The other slot of the booted one's class: where an install goes.
    pub fn other_bootname(&self) -> Option<String> {
        let booted = self.booted_slot()?;
        let class = booted.name.split('.').next()?;
        self.slots
            .iter()
            .find(|s| {
                s.name != booted.name
                    && s.name.split('.').next() == Some(class)
                    && s.bootname.is_some()
            })
            .and_then(|s| s.bootname.clone())
    }
}

pub type RaucFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RaucError>> + Send + 'a>>;

/// The update backend seam.
pub trait Rauc: Send + Sync {
    fn info<'a>(&'a self, bundle: &'a str) -> RaucFuture<'a, BundleInfo>;
    /// Installs, calling `progress` with RAUC's percentage; returns when RAUC completes.
    fn install<'a>(
        &'a self,
        bundle: &'a str,
        progress: &'a (dyn Fn(u8) + Send + Sync),
    ) -> RaucFuture<'a, ()>;
    fn system(&self) -> RaucFuture<'_, System>;
    /// Waits for an install RAUC is running (one started before this process restarted):
    /// Ok(true) when it completed, Ok(false) when RAUC was not installing, Err when it failed.
    fn finish_running_install(&self) -> RaucFuture<'_, bool>;
    /// `state` is `good` or `bad`, for the booted slot.
    fn mark_booted<'a>(&'a self, state: &'a str) -> RaucFuture<'a, ()>;
}

/// The real RAUC service. `conf` is its system.conf: RAUC 1.8's D-Bus `Info` says only
/// "rauc info error" when it refuses a bundle, so the reason is asked of `rauc info` with the
/// same configuration (keyring and purpose check) then.
pub struct DbusRauc {
    pub conf: std::path::PathBuf,
}

impl DbusRauc {
    async fn explain(&self, bundle: &str) -> Option<String> {
        let out = tokio::process::Command::new("rauc")
            .arg(format!("--conf={}", self.conf.display()))
            .args(["info", "--output-format=json", bundle])
            .output()
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let why: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("rauc-Message") && !l.trim().is_empty())
            .collect();
        (!out.status.success() && !why.is_empty()).then(|| why.join(" "))
    }
}

async fn proxy() -> Result<InstallerProxy<'static>, RaucError> {
    let conn = zbus::Connection::system()
        .await
        .map_err(|e| RaucError::Connect(e.to_string()))?;
    InstallerProxy::new(&conn)
        .await
        .map_err(|e| RaucError::Connect(e.to_string()))
}

fn text(v: Option<&OwnedValue>) -> Option<String> {
    v.and_then(|v| String::try_from(v.try_clone().ok()?).ok())
}

/// An install's outcome from its `Completed` signal (None: the signal stream ended): Err
/// with RAUC's last error when it failed.
async fn completion(p: &InstallerProxy<'_>, sig: Option<Completed>) -> Result<(), String> {
    let code = sig
        .and_then(|s| s.args().ok().map(|a| a.result))
        .ok_or_else(|| "RAUC left the bus".to_string())?;
    if code == 0 {
        return Ok(());
    }
    let why = p.last_error().await.unwrap_or_else(|e| e.to_string());
    Err(if why.is_empty() {
        format!("result {code}")
    } else {
        why
    })
}

fn dbus_message(e: zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(_, Some(m), _) => m,
        other => other.to_string(),
    }
}

impl Rauc for DbusRauc {
    fn info<'a>(&'a self, bundle: &'a str) -> RaucFuture<'a, BundleInfo> {
        Box::pin(async move {
            let p = proxy().await?;
            match p.info(bundle).await {
                Ok((compatible, version)) => Ok(BundleInfo {
                    compatible,
                    version,
                }),
                Err(e) => {
                    let message = match self.explain(bundle).await {
                        Some(why) => why,
                        None => dbus_message(e),
                    };
                    Err(RaucError::Info {
                        bundle: bundle.into(),
                        message,
                    })
                }
            }
        })
    }

    fn install<'a>(
        &'a self,
        bundle: &'a str,
        progress: &'a (dyn Fn(u8) + Send + Sync),
    ) -> RaucFuture<'a, ()> {
        Box::pin(async move {
            let fail = |message: String| RaucError::Install {
                bundle: bundle.into(),
                message,
            };
            let p = proxy().await?;
            // Listen before starting, so a fast install cannot complete unseen.
            let mut done = p
                .receive_completed()
                .await
                .map_err(|e| fail(e.to_string()))?;
            let mut changes = p.receive_progress_changed().await;
            p.install_bundle(bundle, HashMap::new())
                .await
                .map_err(|e| fail(dbus_message(e)))?;
            loop {
                tokio::select! {
                    sig = done.next() => {
                        completion(&p, sig).await.map_err(fail)?;
                        progress(100);
                        return Ok(());
                    }
                    Some(change) = changes.next() => {
                        if let Ok((pct, _, _)) = change.get().await {
                            progress(pct.clamp(0, 100) as u8);
                        }
                    }
                }
            }
        })
    }

    fn system(&self) -> RaucFuture<'_, System> {
        Box::pin(async move {
            let p = proxy().await?;
            let st = |e: zbus::Error| RaucError::Status(dbus_message(e));
            let compatible = p.compatible().await.map_err(st)?;
            let booted = p.boot_slot().await.map_err(st)?;
            let primary = p.get_primary().await.ok();
            let slots = p
                .get_slot_status()
                .await
                .map_err(st)?
                .into_iter()
                .map(|(name, m)| Slot {
                    name,
                    bootname: text(m.get("bootname")),
                    state: text(m.get("state")).unwrap_or_default(),
                    boot_status: text(m.get("boot-status")),
                    bundle_version: text(m.get("bundle.version")),
                })
                .collect();
            Ok(System {
                compatible,
                booted,
                primary,
                slots,
            })
        })
    }

    fn finish_running_install(&self) -> RaucFuture<'_, bool> {
        Box::pin(async move {
            let fail = |message: String| RaucError::Install {
                bundle: "(the install already running)".into(),
                message,
            };
            let p = proxy().await?;
            let mut done = p
                .receive_completed()
                .await
                .map_err(|e| fail(e.to_string()))?;
            let operation = p.operation().await.map_err(|e| fail(dbus_message(e)))?;
            if operation != "installing" {
                return Ok(false);
            }
            tracing::info!("RAUC is still installing: waiting for it to complete");
            completion(&p, done.next().await).await.map_err(fail)?;
            Ok(true)
        })
    }

    fn mark_booted<'a>(&'a self, state: &'a str) -> RaucFuture<'a, ()> {
        Box::pin(async move {
            let p = proxy().await?;
            p.mark(state, "booted").await.map_err(|e| RaucError::Mark {
                state: state.into(),
                message: dbus_message(e),
            })?;
            Ok(())
        })
    }
}
