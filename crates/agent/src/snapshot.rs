//! Snapshots of this node's VMs, asked for by the control plane (which records them once
//! this module answered). Internal qcow2 snapshots of every disk of the VM (`disk0` and the
//! added ones, the memory in `disk0`): through QMP while QEMU runs, with qemu-img while it
//! is stopped (see `novacron_qemu::snapshot` and docs/snapshots.md). Each answer is the boot
//! disk's own list of snapshots, so the control plane's record follows the disk even after
//! an earlier call was cut short.

use std::time::Duration;

use novacron_api_types::{ApiError, SnapshotJob, VmSnapshot};
use novacron_qemu::snapshot::{self, SnapshotInfo};

use crate::backup::VmAccess;

/// Longest a memory snapshot save, load or delete may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(600);

fn failed(vm: &str, what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{what} of VM {vm} failed: {e}"))
}

/// Runs `job` on the VM and returns the snapshots its disk holds afterwards.
pub async fn run(vm: VmAccess, job: SnapshotJob) -> Result<Vec<VmSnapshot>, ApiError> {
    let name = vm.desired.name.clone();
    if !vm.disk.exists() {
        return Err(ApiError::invalid(format!(
            "VM {name} has no disk to snapshot (create it with --disk)"
        )));
    }
    // Start, stop and backups take the same lock: no power change mid-snapshot.
    let Ok(_guard) = vm.disk_lock.clone().try_lock_owned() else {
        return Err(ApiError::conflict(format!(
            "VM {name} is busy (a backup, a start or stop, or another snapshot); try again when it is done"
        )));
    };
    let existing = list(&vm.disk, &name).await?;
    let find = |snap: &str| -> Result<SnapshotInfo, ApiError> {
        existing
            .iter()
            .find(|s| s.name == snap)
            .cloned()
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "VM {} has no snapshot {snap:?}: see `novacron vm snapshot list {}`",
                    vm.desired.name, vm.desired.name
                ))
            })
    };
    let vm_name = vm.desired.name.as_str();
    // Every disk of the VM, the boot disk first (it holds a memory snapshot's state).
    let disks: Vec<(String, std::path::PathBuf)> = vm
        .disk_names()
        .into_iter()
        .map(|n| (vm.disk_file(&n), n))
        .filter(|(file, _)| file.exists())
        .map(|(file, n)| (n, file))
        .collect();
    let nodes: Vec<&str> = disks.iter().map(|(n, _)| n.as_str()).collect();
    match (&job, &vm.running) {
        (SnapshotJob::List, _) => {}
        (SnapshotJob::Create { name: snap, .. }, _) if existing.iter().any(|s| &s.name == snap) => {
            return Err(ApiError::conflict(format!(
                "VM {vm_name} already has a snapshot {snap:?}"
            )));
        }
        (SnapshotJob::Create { name: snap, memory }, Some(qemu)) => {
            let r = if *memory {
                snapshot::create_live_memory(qemu.qmp(), &nodes, snap, JOB_TIMEOUT).await
            } else {
                snapshot::create_live_disk(qemu.qmp(), &nodes, snap).await
            };
            r.map_err(|e| failed(vm_name, "taking a snapshot", e))?;
        }
        (SnapshotJob::Create { memory: true, .. }, None) => {
            return Err(ApiError::conflict(format!(
                "VM {vm_name} is not running: a snapshot with --memory needs a running guest (leave out --memory for a disk snapshot)"
            )));
        }
        (SnapshotJob::Create { name: snap, .. }, None) => {
            for (_, file) in &disks {
                snapshot::create_offline(file, snap)
                    .await
                    .map_err(|e| failed(vm_name, "taking a snapshot", e))?;
            }
        }
        (SnapshotJob::Revert { name: snap }, Some(qemu)) => {
            let s = find(snap)?;
            if s.vm_state_bytes == 0 {
                return Err(ApiError::conflict(format!(
                    "snapshot {snap:?} holds no memory, so VM {vm_name} must be stopped to revert to it: `novacron vm stop {vm_name}`, then revert and start"
                )));
            }
            held_by_all(&disks, vm_name, snap).await?;
            for (node, _) in &disks {
                let live = snapshot::bitmaps_live(qemu.qmp(), node)
                    .await
                    .map_err(|e| failed(vm_name, "reading the disk's bitmaps", e))?;
                for b in ours(live) {
                    snapshot::remove_bitmap_live(qemu.qmp(), node, &b)
                        .await
                        .map_err(|e| failed(vm_name, "dropping backup bitmap before revert", e))?;
                }
            }
            snapshot::load_live_memory(qemu.qmp(), &nodes, snap, JOB_TIMEOUT)
                .await
                .map_err(|e| failed(vm_name, "reverting", e))?;
        }
        (SnapshotJob::Revert { name: snap }, None) => {
            find(snap)?;
            held_by_all(&disks, vm_name, snap).await?;
            for (_, file) in &disks {
                for b in backup_bitmaps(file, vm_name).await? {
                    snapshot::remove_bitmap_offline(file, &b)
                        .await
                        .map_err(|e| failed(vm_name, "dropping backup bitmap before revert", e))?;
                }
            }
            for (_, file) in &disks {
                snapshot::revert_offline(file, snap)
                    .await
                    .map_err(|e| failed(vm_name, "reverting", e))?;
            }
        }
        (SnapshotJob::Delete { name: snap }, running) => {
            find(snap)?;
            // From the disks that hold it (one added after it does not), the boot disk last:
            // its list is what the control plane records.
            let mut holding = Vec::new();
            for (node, file) in disks.iter().rev() {
                if list(file, vm_name).await?.iter().any(|s| &s.name == snap) {
                    holding.push((node.as_str(), file));
                }
            }
            match running {
                Some(qemu) => {
                    let held: Vec<&str> = holding.iter().map(|(n, _)| *n).collect();
                    snapshot::delete_live(qemu.qmp(), &held, snap, JOB_TIMEOUT).await
                }
                None => {
                    let mut r = Ok(());
                    for (_, file) in &holding {
                        r = snapshot::delete_offline(file, snap).await;
                        if r.is_err() {
                            break;
                        }
                    }
                    r
                }
            }
            .map_err(|e| failed(vm_name, "deleting a snapshot", e))?;
        }
    }
    let after = list(&vm.disk, vm_name).await?;
    tracing::info!(vm = vm_name, job = ?job, snapshots = after.len(), "snapshot job done");
    Ok(after.into_iter().map(view).collect())
}

/// Whether every disk holds snapshot `snap` (the boot disk, first, was checked already): a
/// revert needs it on each, or a disk added after it would stay at a later moment.
async fn held_by_all(
    disks: &[(String, std::path::PathBuf)],
    vm: &str,
    snap: &str,
) -> Result<(), ApiError> {
    for (n, file) in disks.iter().skip(1) {
        if !list(file, vm).await?.iter().any(|s| s.name == snap) {
            return Err(ApiError::conflict(format!(
                "snapshot {snap:?} was taken before {n} was added to VM {vm}, so reverting would leave {n} at a later moment than the other disks: detach it first (`novacron vm disk detach {vm} {n}`)"
            )));
        }
    }
    Ok(())
}

async fn list(disk: &std::path::Path, vm: &str) -> Result<Vec<SnapshotInfo>, ApiError> {
    snapshot::list(disk)
        .await
        .map_err(|e| failed(vm, "listing snapshots", e))
}

/// The dirty bitmaps our backups keep in the disk. QEMU refuses to revert a disk that has
/// dirty bitmaps, and after a revert they no longer describe what changed since the last
/// backup: they are dropped, and the next backup reads the whole disk.
async fn backup_bitmaps(disk: &std::path::Path, vm: &str) -> Result<Vec<String>, ApiError> {
    Ok(ours(snapshot::bitmaps(disk).await.map_err(|e| {
        failed(vm, "reading the disk's bitmaps", e)
    })?))
}

/// Of `bitmaps`, those our backups made.
fn ours(bitmaps: Vec<String>) -> Vec<String> {
    bitmaps
        .into_iter()
        .filter(|b| b.starts_with(novacron_backup::live::BITMAP_PREFIX))
        .collect()
}

fn view(s: SnapshotInfo) -> VmSnapshot {
    VmSnapshot {
        memory: s.vm_state_bytes > 0,
        name: s.name,
        vm_state_bytes: s.vm_state_bytes,
        created_at: s.date_sec.max(0) as u64,
    }
}
