//! The commit policy of the boot health check, as pure decisions (docs/ota.md, "The commit").
//!
//! - A **committed** slot (no update waits for this boot) is marked good as soon as the check
//!   runs: it proved itself before, the other slot is no better, and neither the network nor a
//!   local fault is a reason to switch. Problems are reported, never acted on with a reboot.
//!   U-Boot counts every boot down, so marking good on every boot is what keeps it bootable.
//! - A **trial** boot (an installed update booted for the first time: the OTA job waits in
//!   `rebooting`/`verifying_boot` for this slot, and this is not the boot that asked for the
//!   reboot) must show the services active, the recorder healthy and the broker reached during
//!   this boot, within the deadline. Then it is committed; otherwise it is marked bad and the
//!   machine reboots into the old slot. An update that comes up without a route to the broker
//!   is therefore rolled back: a slot that cannot prove it reaches the fleet is not kept.
//!
//! "This boot" is the kernel's boot id, never a file time against uptime: a clock step
//! changes no verdict.

use r58_ota::record::Record;
use r58_proto::Phase;

/// What kind of boot the health check is judging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootKind {
    Committed,
    Trial { job_id: String, slot: String },
}

/// The kind of this boot, from the OTA job record, the booted slot and this boot's id.
pub fn boot_kind(record: Option<&Record>, booted: &str, boot_id: &str) -> BootKind {
    let Some(rec) = record else {
        return BootKind::Committed;
    };
    let waiting = matches!(rec.phase, Phase::Rebooting | Phase::VerifyingBoot);
    let on_target = rec.target_slot.as_deref() == Some(booted);
    let after_reboot = rec.reboot_boot_id.as_deref() != Some(boot_id);
    if waiting && on_target && after_reboot {
        BootKind::Trial {
            job_id: rec.job.job_id.clone(),
            slot: booted.to_string(),
        }
    } else {
        BootKind::Committed
    }
}

/// One problem the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A unit is not active.
    Unit(String),
    /// The recorder does not answer healthy.
    Recorder(String),
    /// The broker was not reached during this boot.
    Broker(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Unit(s) | Problem::Recorder(s) | Problem::Broker(s) => f.write_str(s),
        }
    }
}

/// What the health check does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Mark the booted slot good; `degraded` lists what was wrong (reported only).
    MarkGood { degraded: Vec<Problem> },
    /// Mark the booted slot bad and reboot into the other one.
    MarkBad { reasons: Vec<Problem> },
    /// Check again later.
    Wait,
}

/// The decision for one round of checks.
pub fn decide(kind: &BootKind, problems: Vec<Problem>, deadline_passed: bool) -> Decision {
    match kind {
        BootKind::Committed => Decision::MarkGood { degraded: problems },
        BootKind::Trial { .. } if problems.is_empty() => Decision::MarkGood {
            degraded: Vec::new(),
        },
        BootKind::Trial { .. } if deadline_passed => Decision::MarkBad { reasons: problems },
        BootKind::Trial { .. } => Decision::Wait,
    }
}

/// Whether the agent's connection record (`connected.json`) was written during the boot
/// `boot_id`.
pub fn connected_during(record: Option<&ConnectedRecord>, boot_id: &str) -> bool {
    record.is_some_and(|r| !boot_id.is_empty() && r.boot_id == boot_id)
}

/// What the agent writes on every connection to the broker.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConnectedRecord {
    pub boot_id: String,
    pub ts: chrono::DateTime<chrono::Utc>,
    pub session: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use r58_proto::Job;

    fn job() -> Job {
        serde_json::from_value(serde_json::json!({
            "job_id": "j1", "version": "2.0.0", "size": 1,
            "sha256": "0".repeat(64), "url": "https://fleet.example.com/b.raucb"
        }))
        .expect("job")
    }

    fn record(phase: Phase, target: &str, reboot_boot: &str) -> Record {
        let mut r = Record::new(job());
        r.phase = phase;
        r.target_slot = Some(target.into());
        r.from_slot = Some(if target == "A" { "B" } else { "A" }.into());
        r.reboot_boot_id = Some(reboot_boot.into());
        r
    }

    fn broker_down() -> Vec<Problem> {
        vec![Problem::Broker(
            "the agent has not reached the broker during this boot".into(),
        )]
    }

    #[test]
    fn a_committed_slot_with_no_broker_is_never_marked_bad() {
        // No job at all, a finished job, a job for the other slot: all committed boots.
        let finished = record(Phase::Succeeded, "B", "boot-1");
        let other = record(Phase::VerifyingBoot, "B", "boot-1");
        for (rec, booted) in [(None, "A"), (Some(&finished), "B"), (Some(&other), "A")] {
            let kind = boot_kind(rec, booted, "boot-2");
            assert_eq!(kind, BootKind::Committed, "{rec:?} on {booted}");
            for deadline_passed in [false, true] {
                assert_eq!(
                    decide(&kind, broker_down(), deadline_passed),
                    Decision::MarkGood {
                        degraded: broker_down()
                    }
                );
            }
        }
        // Local faults on a committed slot are reported, not acted on either.
        let local = vec![Problem::Recorder("recorder down".into())];
        assert!(matches!(
            decide(&BootKind::Committed, local, true),
            Decision::MarkGood { degraded } if degraded.len() == 1
        ));
    }

    #[test]
    fn an_uncommitted_slot_that_fails_its_verdict_is_marked_bad() {
        let rec = record(Phase::VerifyingBoot, "B", "boot-1");
        let kind = boot_kind(Some(&rec), "B", "boot-2");
        assert_eq!(
            kind,
            BootKind::Trial {
                job_id: "j1".into(),
                slot: "B".into()
            }
        );
        assert_eq!(decide(&kind, broker_down(), false), Decision::Wait);
        assert_eq!(
            decide(&kind, broker_down(), true),
            Decision::MarkBad {
                reasons: broker_down()
            }
        );
        assert_eq!(
            decide(&kind, Vec::new(), false),
            Decision::MarkGood {
                degraded: Vec::new()
            }
        );
        // A job still `rebooting` (the agent has not run yet this boot) is a trial too.
        let rec = record(Phase::Rebooting, "B", "boot-1");
        assert!(matches!(
            boot_kind(Some(&rec), "B", "boot-2"),
            BootKind::Trial { .. }
        ));
        // The boot that asked for the reboot (the reboot did not happen yet) is not a trial.
        assert_eq!(boot_kind(Some(&rec), "B", "boot-1"), BootKind::Committed);
    }

    #[test]
    fn a_clock_step_does_not_change_the_verdict() {
        let now = chrono::Utc::now();
        for ts in [
            now - chrono::Duration::days(400),
            now,
            now + chrono::Duration::days(400),
        ] {
            let rec = ConnectedRecord {
                boot_id: "boot-2".into(),
                ts,
                session: 3,
            };
            assert!(connected_during(Some(&rec), "boot-2"), "ts {ts}");
            assert!(!connected_during(Some(&rec), "boot-3"), "ts {ts}");
        }
        assert!(!connected_during(None, "boot-2"));
        let blank = ConnectedRecord {
            boot_id: String::new(),
            ts: now,
            session: 0,
        };
        assert!(!connected_during(Some(&blank), ""));
    }
}
