//! The VM lifecycle as a pure state machine: a VM's desired record, the state its agent last
//! observed and an event give the next record, or a [`Refusal`] that says why not. No I/O:
//! handlers parse a request into an [`Event`], controllers make their own (HA restart), and
//! both write the result through [`crate::typed_store::update`].
//!
//! The model: the record is desired state; every accepted event is a new `generation` the
//! node's agent acts on. Two rules hold for every event: a VM being deleted takes no more
//! changes, and a VM a live migration is moving takes none until the migration's switch-over
//! (or abort) decides where it runs (the migration's commit is its own compare-and-swap on
//! the record, see `api::migrations`). Whether a guest may be rebooted, paused, resumed,
//! deleted without `--force` or restored over depends on what the agent observed, not on
//! what was asked for last.

use novacron_api_types::agent::VmAction;
use novacron_api_types::backup::RestoreSource;
use novacron_api_types::{ApiError, PowerState, VmState};

use crate::records::VmRecord;

/// Something that changes what a VM should be doing.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Start,
    /// ACPI power-off with a timeout, then force; `force` kills at once.
    Stop {
        force: bool,
    },
    Reboot,
    Pause,
    Resume,
    /// `force` deletes a guest that still runs.
    Delete {
        force: bool,
    },
    /// Fill the stopped VM's disk from a backup (applied once, at the new generation).
    RestoreOver {
        repo: novacron_api_types::backup::BackupRepo,
        backup: String,
    },
    /// The HA controller restarts the VM on `to` because node `from` was lost.
    HaRestart {
        from: String,
        to: String,
    },
    /// Live migration `id` to node `to` starts: other changes wait until it ends. Not a new
    /// generation (the source's agent keeps running the VM as it is).
    MigrationStarted {
        id: String,
        to: String,
    },
    /// Migration `id` switched over from `from`: the VM belongs to `to` now, as a new
    /// generation that `operation` waits for.
    MigrationCommitted {
        id: String,
        from: String,
        to: String,
        operation: String,
    },
    /// Migration `id` ended without a switch-over: the VM stays where it ran.
    MigrationEnded {
        id: String,
    },
}

/// Why an event was refused, as data; `Display` is the user's one-line answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("VM {vm} is being deleted")]
    Deleting { vm: String },
    #[error(
        "VM {vm} is migrating ({migration}): wait for it, or `novacron migration cancel {migration}`"
    )]
    Migrating { vm: String, migration: String },
    #[error("VM {vm} is {observed}; only a running VM can be rebooted")]
    RebootNeedsRunning { vm: String, observed: VmState },
    #[error("VM {vm} is {observed}; only a running VM can be paused")]
    PauseNeedsRunning { vm: String, observed: VmState },
    #[error("VM {vm} is {observed}; only a paused VM can be resumed")]
    ResumeNeedsPaused { vm: String, observed: VmState },
    #[error(
        "VM {vm} is {}: stop it first (`novacron vm stop {vm}`), or delete it anyway with `novacron vm delete {vm} --force`",
        observed.as_str()
    )]
    DeleteNeedsForce { vm: String, observed: VmState },
    #[error("VM {vm} is {observed}; stop it before restoring over it")]
    RestoreNeedsStopped { vm: String, observed: VmState },
    #[error("VM {vm} is being created")]
    Creating { vm: String },
    /// The record no longer names that migration (it ended, or the VM was moved meanwhile).
    #[error("VM {vm} is not moved by migration {migration}")]
    NotThisMigration { vm: String, migration: String },
    /// The VM is no longer on the lost node (moved, or restarted already).
    #[error("VM {vm} runs on {node}, not on {from}")]
    NotOnNode {
        vm: String,
        node: String,
        from: String,
    },
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        ApiError::conflict(r.to_string())
    }
}

impl From<Refusal> for crate::api::ApiFailure {
    fn from(r: Refusal) -> Self {
        crate::api::ApiFailure(r.into())
    }
}

/// Whether deleting a VM in this observed state would kill a guest that is still running.
fn delete_needs_force(observed: VmState) -> bool {
    !matches!(
        observed,
        VmState::Stopped | VmState::Crashed | VmState::Creating
    )
}

/// The rule every event obeys: no change while the VM is deleted or moved by a migration.
pub fn check_changeable(rec: &VmRecord) -> Result<(), Refusal> {
    if rec.deleting {
        return Err(Refusal::Deleting {
            vm: rec.name.clone(),
        });
    }
    if let Some(m) = &rec.migration {
        return Err(Refusal::Migrating {
            vm: rec.name.clone(),
            migration: m.clone(),
        });
    }
    Ok(())
}

/// The record after `event`, given what the agent observed (`observed`): a new generation.
/// The caller attaches the operation that waits for it.
pub fn apply(rec: &VmRecord, observed: VmState, event: &Event) -> Result<VmRecord, Refusal> {
    if let Some(next) = migration_event(rec, event) {
        return next;
    }
    check_changeable(rec)?;
    let vm = || rec.name.clone();
    let mut next = rec.clone();
    match event {
        Event::Start => {
            if matches!(observed, VmState::Stopped | VmState::Crashed) {
                crate::vm_config::apply_pending(&mut next);
            }
            next.power = PowerState::Running;
            next.force = false;
            next.action = None;
        }
        Event::Stop { force } => {
            next.power = PowerState::Stopped;
            next.force = *force;
            next.action = None;
        }
        Event::Reboot => {
            if observed != VmState::Running {
                return Err(Refusal::RebootNeedsRunning { vm: vm(), observed });
            }
            next.power = PowerState::Running;
            next.action = Some(VmAction::Reboot);
        }
        Event::Pause => {
            if !matches!(observed, VmState::Running | VmState::Paused) {
                return Err(Refusal::PauseNeedsRunning { vm: vm(), observed });
            }
            next.power = PowerState::Paused;
            next.action = None;
        }
        Event::Resume => {
            if !matches!(observed, VmState::Running | VmState::Paused) {
                return Err(Refusal::ResumeNeedsPaused { vm: vm(), observed });
            }
            next.power = PowerState::Running;
            next.action = None;
        }
        Event::Delete { force } => {
            if !force && delete_needs_force(observed) {
                return Err(Refusal::DeleteNeedsForce { vm: vm(), observed });
            }
            next.deleting = true;
            next.power = PowerState::Stopped;
            next.force = true;
            next.action = None;
        }
        Event::RestoreOver { repo, backup } => {
            if !matches!(observed, VmState::Stopped | VmState::Crashed)
                || rec.power != PowerState::Stopped
            {
                return Err(Refusal::RestoreNeedsStopped { vm: vm(), observed });
            }
            next.restore = Some(RestoreSource {
                repo: repo.clone(),
                backup: backup.clone(),
                generation: rec.generation + 1,
            });
        }
        Event::MigrationStarted { .. }
        | Event::MigrationCommitted { .. }
        | Event::MigrationEnded { .. } => unreachable!("handled by migration_event"),
        Event::HaRestart { from, to } => {
            if &rec.node != from {
                return Err(Refusal::NotOnNode {
                    vm: vm(),
                    node: rec.node.clone(),
                    from: from.clone(),
                });
            }
            next.node = to.clone();
            crate::vm_config::apply_pending(&mut next);
            next.power = PowerState::Running;
            next.action = None;
            next.creating = false;
        }
    }
    next.generation = rec.generation + 1;
    Ok(next)
}

/// The events of a live migration (`None`: `event` is another kind). The migration's own
/// record decides its outcome; these keep the VM record in step with that decision.
fn migration_event(rec: &VmRecord, event: &Event) -> Option<Result<VmRecord, Refusal>> {
    let not_this = |id: &String| Refusal::NotThisMigration {
        vm: rec.name.clone(),
        migration: id.clone(),
    };
    let mut next = rec.clone();
    let result = match event {
        Event::MigrationStarted { id, to } => {
            if rec.creating {
                return Some(Err(Refusal::Creating {
                    vm: rec.name.clone(),
                }));
            }
            if let Err(e) = check_changeable(rec) {
                return Some(Err(e));
            }
            next.migration = Some(id.clone());
            next.migrating_to = Some(to.clone());
            Ok(next)
        }
        Event::MigrationCommitted {
            id,
            from,
            to,
            operation,
        } => {
            if rec.migration.as_ref() != Some(id) || &rec.node != from {
                return Some(Err(not_this(id)));
            }
            next.migration = None;
            next.migrating_to = None;
            next.node = to.clone();
            next.generation = rec.generation + 1;
            next.operation = Some(operation.clone());
            next.action = None;
            Ok(next)
        }
        Event::MigrationEnded { id } => {
            if rec.migration.as_ref() != Some(id) {
                return Some(Err(not_this(id)));
            }
            next.migration = None;
            next.migrating_to = None;
            Ok(next)
        }
        _ => return None,
    };
    Some(result)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn vm(power: PowerState) -> VmRecord {
        crate::records::example_vm(power)
    }

    #[test]
    fn every_accepted_event_is_a_new_generation() {
        let rec = vm(PowerState::Running);
        let next = apply(&rec, VmState::Running, &Event::Stop { force: true }).unwrap();
        assert_eq!(
            (next.power, next.force, next.generation),
            (PowerState::Stopped, true, 4)
        );
        let next = apply(&next, VmState::Stopped, &Event::Start).unwrap();
        assert_eq!(
            (next.power, next.force, next.generation),
            (PowerState::Running, false, 5)
        );
        let next = apply(&rec, VmState::Running, &Event::Reboot).unwrap();
        assert_eq!(next.action, Some(VmAction::Reboot));
        let paused = apply(&rec, VmState::Running, &Event::Pause).unwrap();
        assert_eq!(paused.power, PowerState::Paused);
        let resumed = apply(&paused, VmState::Paused, &Event::Resume).unwrap();
        assert_eq!((resumed.power, resumed.action), (PowerState::Running, None));
    }

    #[test]
    fn what_the_agent_observed_decides_reboot_pause_and_delete() {
        let rec = vm(PowerState::Running);
        let e = apply(&rec, VmState::Starting, &Event::Reboot).unwrap_err();
        assert_eq!(
            e.to_string(),
            "VM web is starting; only a running VM can be rebooted"
        );
        assert!(apply(&rec, VmState::Stopped, &Event::Pause).is_err());
        assert!(apply(&rec, VmState::Crashed, &Event::Resume).is_err());
        let e = apply(&rec, VmState::Running, &Event::Delete { force: false }).unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        for quiet in [VmState::Stopped, VmState::Crashed, VmState::Creating] {
            let d = apply(&rec, quiet, &Event::Delete { force: false }).unwrap();
            assert!(d.deleting && d.force && d.power == PowerState::Stopped);
        }
        assert!(apply(&rec, VmState::Running, &Event::Delete { force: true }).is_ok());
    }

    #[test]
    fn deleting_and_migrating_vms_take_no_event() {
        let mut rec = vm(PowerState::Running);
        rec.migration = Some("mig-1".into());
        let ha = Event::HaRestart {
            from: "node-a".into(),
            to: "node-b".into(),
        };
        for e in [Event::Start, Event::Stop { force: true }, ha.clone()] {
            assert_eq!(
                apply(&rec, VmState::Running, &e).unwrap_err(),
                Refusal::Migrating {
                    vm: "web".into(),
                    migration: "mig-1".into()
                }
            );
        }
        rec.migration = None;
        rec.deleting = true;
        assert!(matches!(
            apply(&rec, VmState::Stopped, &Event::Start),
            Err(Refusal::Deleting { .. })
        ));
    }

    #[test]
    fn ha_restart_moves_only_a_vm_still_on_the_lost_node() {
        let mut rec = vm(PowerState::Paused);
        rec.creating = true;
        let ev = Event::HaRestart {
            from: "node-a".into(),
            to: "node-b".into(),
        };
        let next = apply(&rec, VmState::Stopped, &ev).unwrap();
        assert_eq!(next.node, "node-b");
        assert_eq!(next.power, PowerState::Running);
        assert!(!next.creating);
        assert_eq!(next.generation, 4);
        assert!(matches!(
            apply(&next, VmState::Stopped, &ev),
            Err(Refusal::NotOnNode { .. })
        ));
    }

    #[test]
    fn a_migration_holds_the_vm_until_its_commit_or_end() {
        let rec = vm(PowerState::Running);
        let started = apply(
            &rec,
            VmState::Running,
            &Event::MigrationStarted {
                id: "mig-1".into(),
                to: "node-b".into(),
            },
        )
        .unwrap();
        assert_eq!(
            started.generation, rec.generation,
            "the agent has nothing to do"
        );
        assert_eq!(started.migrating_to.as_deref(), Some("node-b"));
        assert!(matches!(
            apply(
                &started,
                VmState::Running,
                &Event::MigrationStarted {
                    id: "mig-2".into(),
                    to: "node-c".into()
                }
            ),
            Err(Refusal::Migrating { .. })
        ));
        // Another migration's end or commit does not touch it.
        assert!(matches!(
            apply(
                &started,
                VmState::Running,
                &Event::MigrationEnded { id: "mig-0".into() }
            ),
            Err(Refusal::NotThisMigration { .. })
        ));
        let ended = apply(
            &started,
            VmState::Running,
            &Event::MigrationEnded { id: "mig-1".into() },
        )
        .unwrap();
        assert_eq!((ended.migration, ended.node.as_str()), (None, "node-a"));
        let commit = Event::MigrationCommitted {
            id: "mig-1".into(),
            from: "node-a".into(),
            to: "node-b".into(),
            operation: "op-1".into(),
        };
        let moved = apply(&started, VmState::Running, &commit).unwrap();
        assert_eq!(moved.node, "node-b");
        assert_eq!(moved.generation, rec.generation + 1);
        assert_eq!(moved.operation.as_deref(), Some("op-1"));
        assert!(moved.migration.is_none() && moved.migrating_to.is_none());
        // A commit after the VM moved some other way (HA) is not this migration's any more.
        let mut elsewhere = started.clone();
        elsewhere.node = "node-c".into();
        assert!(apply(&elsewhere, VmState::Running, &commit).is_err());
        let mut creating = rec.clone();
        creating.creating = true;
        assert!(matches!(
            apply(
                &creating,
                VmState::Running,
                &Event::MigrationStarted {
                    id: "m".into(),
                    to: "b".into()
                }
            ),
            Err(Refusal::Creating { .. })
        ));
    }

    #[test]
    fn restore_over_needs_a_stopped_vm_and_names_its_generation() {
        let repo = novacron_api_types::backup::BackupRepo {
            name: "r".into(),
            location: novacron_api_types::backup::RepoLocation::Dir { path: "/r".into() },
            key_file: None,
            created_at: 0,
        };
        let ev = Event::RestoreOver {
            repo,
            backup: "b1".into(),
        };
        assert!(matches!(
            apply(&vm(PowerState::Running), VmState::Running, &ev),
            Err(Refusal::RestoreNeedsStopped { .. })
        ));
        let next = apply(&vm(PowerState::Stopped), VmState::Stopped, &ev).unwrap();
        assert_eq!(next.restore.unwrap().generation, next.generation);
    }
}
