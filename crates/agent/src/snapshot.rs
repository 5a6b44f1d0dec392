//! Snapshots of this node's VMs, asked for by the control plane (which records them once
//! this module answered). Internal qcow2 snapshots of `disk0`: through QMP while QEMU runs,
//! with qemu-img while it is stopped (see `novacron_qemu::snapshot` and docs/snapshots.md).
//! Each answer is the disk's own list of snapshots, so the control plane's record follows
//! the disk even after an earlier call was cut short.

use std::time::Duration;

use novacron_api_types::{ApiError, SnapshotJob, VmSnapshot};
use novacron_qemu::snapshot::{self, SnapshotInfo};

use crate::backup::{DISK_NAME, VmAccess};

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
    match (&job, &vm.running) {
        (SnapshotJob::List, _) => {}
        (SnapshotJob::Create { name: snap, .. }, _) if existing.iter().any(|s| &s.name == snap) => {
            return Err(ApiError::conflict(format!(
                "VM {vm_name} already has a snapshot {snap:?}"
            )));
        }
        (SnapshotJob::Create { name: snap, memory }, Some(qemu)) => {
            let r = if *memory {
                snapshot::create_live_memory(qemu.qmp(), DISK_NAME, snap, JOB_TIMEOUT).await
            } else {
                snapshot::create_live_disk(qemu.qmp(), DISK_NAME, snap).await
            };
            r.map_err(|e| failed(vm_name, "taking a snapshot", e))?;
        }
        (SnapshotJob::Create { memory: true, .. }, None) => {
            return Err(ApiError::conflict(format!(
                "VM {vm_name} is not running: a snapshot with --memory needs a running guest (leave out --memory for a disk snapshot)"
            )));
        }
        (SnapshotJob::Create { name: snap, .. }, None) => {
            snapshot::create_offline(&vm.disk, snap)
                .await
                .map_err(|e| failed(vm_name, "taking a snapshot", e))?;
        }
        (SnapshotJob::Revert { name: snap }, Some(qemu)) => {
            let s = find(snap)?;
            if s.vm_state_bytes == 0 {
                return Err(ApiError::conflict(format!(
                    "snapshot {snap:?} holds no memory, so VM {vm_name} must be stopped to revert to it: `novacron vm stop {vm_name}`, then revert and start"
                )));
            }
            for b in backup_bitmaps(&vm.disk, vm_name).await? {
                snapshot::remove_bitmap_live(qemu.qmp(), DISK_NAME, &b)
                    .await
                    .map_err(|e| failed(vm_name, "dropping backup bitmap before revert", e))?;
            }
            snapshot::load_live_memory(qemu.qmp(), DISK_NAME, snap, JOB_TIMEOUT)
                .await
                .map_err(|e| failed(vm_name, "reverting", e))?;
        }
        (SnapshotJob::Revert { name: snap }, None) => {
            find(snap)?;
            for b in backup_bitmaps(&vm.disk, vm_name).await? {
                snapshot::remove_bitmap_offline(&vm.disk, &b)
                    .await
                    .map_err(|e| failed(vm_name, "dropping backup bitmap before revert", e))?;
            }
            snapshot::revert_offline(&vm.disk, snap)
                .await
                .map_err(|e| failed(vm_name, "reverting", e))?;
        }
        (SnapshotJob::Delete { name: snap }, Some(qemu)) => {
            find(snap)?;
            snapshot::delete_live(qemu.qmp(), DISK_NAME, snap, JOB_TIMEOUT)
                .await
                .map_err(|e| failed(vm_name, "deleting a snapshot", e))?;
        }
        (SnapshotJob::Delete { name: snap }, None) => {
            find(snap)?;
            snapshot::delete_offline(&vm.disk, snap)
                .await
                .map_err(|e| failed(vm_name, "deleting a snapshot", e))?;
        }
    }
    let after = list(&vm.disk, vm_name).await?;
    tracing::info!(vm = vm_name, job = ?job, snapshots = after.len(), "snapshot job done");
    Ok(after.into_iter().map(view).collect())
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
    Ok(snapshot::bitmaps(disk)
        .await
        .map_err(|e| failed(vm, "reading the disk's bitmaps", e))?
        .into_iter()
        .filter(|b| b.starts_with(novacron_backup::live::BITMAP_PREFIX))
        .collect())
}

fn view(s: SnapshotInfo) -> VmSnapshot {
    VmSnapshot {
        memory: s.vm_state_bytes > 0,
        name: s.name,
        vm_state_bytes: s.vm_state_bytes,
        created_at: s.date_sec.max(0) as u64,
    }
}
