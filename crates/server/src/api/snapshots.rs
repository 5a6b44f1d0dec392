//! VM snapshot endpoints: take, list, revert and delete internal snapshots of a VM's disk
//! (docs/snapshots.md). Each change is an operation: the handler checks what it can from
//! the records (the VM exists, is not migrating or being deleted, a disk-only snapshot is
//! not reverted under a running guest), records the operation, and a task asks the VM's
//! agent to do the work. The VM record's snapshot list is replaced by what the agent
//! reports its disk holds, in the same transaction that finishes the operation, so the
//! control plane never records a snapshot the disk does not have (an agent that dies
//! mid-snapshot fails the operation and leaves the record as it was).

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, Query, State};
use novacron_api_types::{
    ApiError, Operation, OperationState, SnapshotCreateRequest, SnapshotJob, VmSnapshot, VmState,
    labels::snapshot_name,
};

use super::operations::{finish, finish_with_vm, new_operation, put_op, put_runner};
use super::vms::{OpResponse, accepted, find, node_of, observed_state};
use super::{ApiResult, Json};
use crate::lifecycle::{Refusal, check_changeable};
use crate::records::{VmRecord, now};
use crate::state::AppState;

/// What every snapshot change needs: a VM with a disk that no migration or deletion holds.
fn changeable(state: &AppState, name: &str) -> ApiResult<Arc<VmRecord>> {
    let rec = find(state, name)?;
    check_changeable(&rec)?;
    if rec.creating {
        return Err(Refusal::Creating {
            vm: rec.name.clone(),
        }
        .into());
    }
    if rec.disk_bytes.is_none() {
        return Err(ApiError::invalid(format!(
            "VM {name} has no disk to snapshot (create it with --disk)"
        ))
        .into());
    }
    Ok(rec)
}

/// Records the operation and starts the agent's work on it in the background.
async fn launch(
    state: Arc<AppState>,
    rec: &VmRecord,
    kind: &str,
    message: &str,
    job: SnapshotJob,
) -> ApiResult<Operation> {
    let node = node_of(&state, rec)?;
    let op = new_operation(kind, &rec.project, &format!("vm/{}", rec.name), message);
    let runner = put_runner(&state, &op)?;
    state.store.txn(vec![], vec![put_op(&op)?, runner]).await?;
    let (project, name, id) = (rec.project.clone(), rec.name.clone(), op.id.clone());
    tokio::spawn(async move {
        let path = format!("/agent/v1/vms/{project}/{name}/snapshot");
        let answer =
            super::agent::call_agent::<_, Vec<VmSnapshot>>(&state, &node, &path, &job).await;
        let outcome = match answer {
            Ok(snapshots) => record(&state, &project, &name, &id, &job, snapshots).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = outcome {
            tracing::warn!(vm = %name, operation = %id, error = %e.0.message, "snapshot operation failed");
            let _ = finish(
                state.store.as_ref(),
                &id,
                OperationState::Failed,
                e.0.message.clone(),
            )
            .await;
        }
    });
    Ok(op)
}

/// Writes the disk's snapshots into the VM record and finishes the operation, together.
async fn record(
    state: &AppState,
    project: &str,
    name: &str,
    op_id: &str,
    job: &SnapshotJob,
    snapshots: Vec<VmSnapshot>,
) -> ApiResult<()> {
    let message = match job {
        SnapshotJob::Create { name: s, memory } => format!(
            "snapshot {s} taken{}",
            if *memory { " with memory" } else { "" }
        ),
        SnapshotJob::Revert { name: s } => format!("reverted to {s}"),
        SnapshotJob::Delete { name: s } => format!("snapshot {s} deleted"),
        SnapshotJob::List => "listed".into(),
    };
    tracing::debug!(
        vm = name,
        snapshots = snapshots.len(),
        "recording the disk's snapshots"
    );
    finish_with_vm(
        state.store.as_ref(),
        op_id,
        OperationState::Succeeded,
        message,
        (project, name),
        |rec| {
            Some(VmRecord {
                snapshots: snapshots.clone(),
                ..rec.clone()
            })
        },
    )
    .await
}

/// Take a snapshot of a VM's disk (with `memory`, of its running state too).
#[utoipa::path(post, path = "/api/v1/vms/{name}/snapshots", params(("name" = String, Path)), request_body = SnapshotCreateRequest,
    responses((status = 202, body = novacron_api_types::OperationRef), (status = 400, body = ApiError), (status = 404, body = ApiError),
              (status = 409, body = ApiError)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<SnapshotCreateRequest>,
) -> OpResponse {
    let rec = changeable(&state, &name)?;
    let snap = req
        .name
        .clone()
        .unwrap_or_else(|| format!("snap-{}", now()));
    snapshot_name(&snap)?;
    if rec.snapshots.iter().any(|s| s.name == snap) {
        return Err(
            ApiError::conflict(format!("VM {name} already has a snapshot {snap:?}")).into(),
        );
    }
    let observed = observed_state(&state, &rec);
    if req.memory && !matches!(observed, VmState::Running | VmState::Paused) {
        return Err(ApiError::conflict(format!(
            "VM {name} is {observed}: a snapshot with --memory needs a running guest (leave out --memory for a disk snapshot)"
        ))
        .into());
    }
    let job = SnapshotJob::Create {
        name: snap.clone(),
        memory: req.memory,
    };
    let op = launch(
        state.clone(),
        &rec,
        "vm.snapshot.create",
        &format!("taking snapshot {snap}"),
        job,
    )
    .await?;
    Ok(accepted(op))
}

/// The snapshots of a VM, oldest first.
#[utoipa::path(get, path = "/api/v1/vms/{name}/snapshots", params(("name" = String, Path)),
    responses((status = 200, body = Vec<VmSnapshot>), (status = 404, body = ApiError)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<Vec<VmSnapshot>>> {
    Ok(AxumJson(find(&state, &name)?.snapshots.clone()))
}

/// Query of the revert route.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevertQuery {
    /// Revert a running VM: what the guest did since the snapshot is lost.
    #[serde(default)]
    pub force: bool,
}

/// Why a revert to a snapshot may not go ahead on a VM observed in `observed`: a disk-only
/// snapshot cannot be loaded under a running guest, and throwing away a running guest's
/// present takes `--force`.
fn revert_refusal(
    vm: &str,
    snap: &VmSnapshot,
    nics_changed_at: Option<novacron_api_types::UnixSeconds>,
    observed: VmState,
    force: bool,
) -> Option<String> {
    if matches!(observed, VmState::Stopped | VmState::Crashed) {
        return None;
    }
    let (memory, snap_name) = (snap.memory, snap.name.as_str());
    if memory && nics_changed_at.is_some_and(|at| snap.created_at <= at) {
        return Some(format!(
            "snapshot {snap_name:?} was taken before a NIC of VM {vm} was added or removed, so the devices it saved are not the running machine's: stop the VM (`novacron vm stop {vm}`) and revert its disks, or add or remove the NIC again first"
        ));
    }
    let snap = snap_name;
    if !memory {
        return Some(format!(
            "snapshot {snap:?} holds no memory, so VM {vm} must be stopped to revert to it: `novacron vm stop {vm}`, then revert and start"
        ));
    }
    if !force {
        return Some(format!(
            "VM {vm} is {observed}: reverting to {snap:?} discards everything the guest did since that snapshot; revert anyway with `novacron vm snapshot revert {vm} {snap} --force`"
        ));
    }
    None
}

/// Revert a VM to a snapshot: a running VM continues from a memory snapshot's moment (with
/// `force=true`: what it did since is lost); a disk-only snapshot needs the VM stopped.
#[utoipa::path(post, path = "/api/v1/vms/{name}/snapshots/{snapshot}/revert",
    params(("name" = String, Path), ("snapshot" = String, Path), RevertQuery),
    responses((status = 202, body = novacron_api_types::OperationRef), (status = 404, body = ApiError),
        (status = 409, description = "The VM runs and the snapshot holds no memory, or force was not given", body = ApiError)))]
pub async fn revert(
    State(state): State<Arc<AppState>>,
    Path((name, snap)): Path<(String, String)>,
    Query(q): Query<RevertQuery>,
) -> OpResponse {
    let rec = changeable(&state, &name)?;
    snapshot_name(&snap)?;
    let Some(s) = rec.snapshots.iter().find(|s| s.name == snap) else {
        return Err(ApiError::not_found(format!(
            "VM {name} has no snapshot {snap:?}: see `novacron vm snapshot list {name}`"
        ))
        .into());
    };
    let observed = observed_state(&state, &rec);
    if let Some(why) = revert_refusal(&name, s, rec.nics_changed_at, observed, q.force) {
        return Err(ApiError::conflict(why).into());
    }
    let job = SnapshotJob::Revert { name: snap.clone() };
    let op = launch(
        state.clone(),
        &rec,
        "vm.snapshot.revert",
        &format!("reverting to {snap}"),
        job,
    )
    .await?;
    Ok(accepted(op))
}

/// Delete a snapshot (the disk keeps its current state).
#[utoipa::path(delete, path = "/api/v1/vms/{name}/snapshots/{snapshot}",
    params(("name" = String, Path), ("snapshot" = String, Path)),
    responses((status = 202, body = novacron_api_types::OperationRef), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((name, snap)): Path<(String, String)>,
) -> OpResponse {
    let rec = changeable(&state, &name)?;
    snapshot_name(&snap)?;
    // Not checked against the record: a snapshot an interrupted operation left in the disk
    // can be deleted too (the agent answers whether the disk has it).
    let job = SnapshotJob::Delete { name: snap.clone() };
    let op = launch(
        state.clone(),
        &rec,
        "vm.snapshot.delete",
        &format!("deleting snapshot {snap}"),
        job,
    )
    .await?;
    Ok(accepted(op))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, memory: bool, created_at: u64) -> VmSnapshot {
        VmSnapshot {
            name: name.into(),
            memory,
            vm_state_bytes: if memory { 1 << 20 } else { 0 },
            created_at,
        }
    }

    #[test]
    fn a_stopped_vm_reverts_to_any_snapshot() {
        for observed in [VmState::Stopped, VmState::Crashed] {
            for memory in [false, true] {
                let s = snap("s", memory, 100);
                assert_eq!(revert_refusal("web1", &s, Some(200), observed, false), None);
            }
        }
    }

    #[test]
    fn a_running_vm_reverts_only_to_memory_and_only_with_force() {
        let why =
            revert_refusal("web1", &snap("d", false, 100), None, VmState::Running, true).unwrap();
        assert!(why.contains("novacron vm stop web1"), "{why}");
        let m = snap("m", true, 100);
        let why = revert_refusal("web1", &m, None, VmState::Running, false).unwrap();
        assert!(
            why.contains("novacron vm snapshot revert web1 m --force"),
            "{why}"
        );
        let why = revert_refusal("web1", &m, None, VmState::Paused, false).unwrap();
        assert!(why.contains("is paused"), "{why}");
        assert_eq!(
            revert_refusal("web1", &m, None, VmState::Running, true),
            None
        );
        // Taken after the last NIC change: its devices are the machine's.
        assert_eq!(
            revert_refusal("web1", &m, Some(99), VmState::Running, true),
            None
        );
    }

    #[test]
    fn a_memory_snapshot_from_before_a_nic_change_is_not_loaded_into_the_running_vm() {
        let m = snap("m", true, 100);
        let why = revert_refusal("web1", &m, Some(100), VmState::Running, true).unwrap();
        assert!(
            why.contains("before a NIC of VM web1 was added or removed"),
            "{why}"
        );
        // Stopped, only the disks are reverted: nothing to match.
        assert_eq!(
            revert_refusal("web1", &m, Some(150), VmState::Stopped, true),
            None
        );
    }
}
