//! Long operations: records with an id, a message and progress, that the CLI waits on.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use futures_util::StreamExt;
use novacron_api_types::{ApiError, Operation, OperationState, UnixSeconds};
use novacron_store::{Op, Store};
use serde::{Deserialize, Serialize};

use super::{ApiFailure, ApiResult, json_bytes};
use crate::records::{self, now};
use crate::state::AppState;

/// A new running operation.
pub fn new_operation(kind: &str, project: &str, target: &str, message: &str) -> Operation {
    let t = now();
    Operation {
        id: new_id(),
        project: project.into(),
        kind: kind.into(),
        target: target.into(),
        state: OperationState::Running,
        message: message.into(),
        progress: None,
        created_at: t,
        updated_at: t,
    }
}

/// 16 random hex digits, prefixed so ids are recognisable in logs.
pub fn new_id() -> String {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).expect("the system random generator failed");
    format!(
        "op-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// The store write that records `op`.
pub fn put_op(op: &Operation) -> ApiResult<Op> {
    Ok(Op::Put {
        key: records::op_key(&op.id),
        value: json_bytes(op)?,
    })
}

/// Who carries out an operation that a control-plane replica ends itself (an image import, a
/// snapshot or resize it waits on an agent for), rather than an agent's report: the replica
/// and its run. A replica that stops (a crash, a restart) takes its tasks with it; the leader
/// then fails the operations its run left behind ([`fail_orphans`]), so none stays `running`
/// for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRunner {
    pub member: String,
    pub run: String,
    pub since: UnixSeconds,
}

/// How long a runner record is left alone whatever the member records say: a replica writes
/// its member record just after it starts serving, and the leader's view of the member
/// records may lag by a moment.
pub const RUNNER_GRACE_SECS: UnixSeconds = 15;

/// The store write that names this replica's run as the one carrying out `op`: put it in the
/// transaction that records the operation.
pub fn put_runner(state: &AppState, op: &Operation) -> ApiResult<Op> {
    Ok(Op::Put {
        key: records::op_runner_key(&op.id),
        value: json_bytes(&OpRunner {
            member: state.member_id.clone(),
            run: state.run_id.clone(),
            since: now(),
        })?,
    })
}

/// What becomes of a runner record.
#[derive(Debug, PartialEq, Eq)]
pub enum Orphan {
    /// Its run is alive (or only just started): leave it.
    Keep,
    /// The operation ended or is gone: the record has no use any more.
    Forget,
    /// The run that carried the operation out is gone: fail it with this message.
    Fail(String),
}

/// The decision over one runner record, given the operation it names, the runs of the
/// replicas alive now and the time.
pub fn orphan_verdict(
    op: Option<&Operation>,
    runner: &OpRunner,
    live_runs: &std::collections::HashSet<String>,
    now: UnixSeconds,
) -> Orphan {
    let Some(op) = op.filter(|op| !op.is_done()) else {
        return Orphan::Forget;
    };
    if live_runs.contains(&runner.run) || now < runner.since.saturating_add(RUNNER_GRACE_SECS) {
        return Orphan::Keep;
    }
    Orphan::Fail(format!(
        "the control-plane replica {} carrying out this {} stopped (crashed or restarted) before it finished: check the result (`novacron vm show`, `image list`) and start it again",
        runner.member, op.kind
    ))
}

/// One pass over the runner records (leader only): forgets those of ended operations and
/// fails the operations whose run is gone. Returns how many it failed.
pub async fn sweep_orphans(state: &AppState) -> Result<usize, novacron_store::StoreError> {
    let store = state.store.as_ref();
    let (runners, _) = store.list(&records::op_runner_prefix()).await?;
    if runners.is_empty() {
        return Ok(0);
    }
    let live_runs: std::collections::HashSet<String> = state
        .members
        .values()
        .iter()
        .map(|m| m.run.clone())
        .filter(|r| !r.is_empty())
        .collect();
    let mut failed = 0;
    for kv in runners {
        let Ok(runner) = serde_json::from_slice::<OpRunner>(&kv.value) else {
            tracing::warn!(key = %kv.key, "unreadable operation runner record; removing it");
            store.delete(&kv.key).await?;
            continue;
        };
        let id = kv.key.trim_start_matches(&records::op_runner_prefix());
        let op_key = records::op_key(id);
        let found = store.get(&op_key).await?;
        let op = found
            .as_ref()
            .and_then(|o| serde_json::from_slice::<Operation>(&o.value).ok());
        let forget = Op::Delete {
            key: kv.key.clone(),
        };
        let runner_unchanged = novacron_store::Compare::ModRevision {
            key: kv.key.clone(),
            equals: kv.mod_revision,
        };
        match orphan_verdict(op.as_ref(), &runner, &live_runs, now()) {
            Orphan::Keep => {}
            Orphan::Forget => {
                store.txn(vec![runner_unchanged], vec![forget]).await?;
            }
            Orphan::Fail(message) => {
                let (Some(mut op), Some(found)) = (op, found) else {
                    continue;
                };
                op.state = OperationState::Failed;
                op.message = message;
                op.updated_at = now();
                let Ok(value) = serde_json::to_vec(&op) else {
                    continue;
                };
                let out = store
                    .txn(
                        vec![
                            runner_unchanged,
                            novacron_store::Compare::ModRevision {
                                key: op_key.clone(),
                                equals: found.mod_revision,
                            },
                        ],
                        vec![forget, Op::Put { key: op_key, value }],
                    )
                    .await?;
                if out.succeeded {
                    tracing::warn!(operation = %op.id, kind = %op.kind, member = %runner.member, "failed an operation whose control-plane replica stopped");
                    failed += 1;
                }
            }
        }
    }
    Ok(failed)
}

/// Runs [`sweep_orphans`] every few seconds while this replica leads.
pub async fn fail_orphans(state: Arc<AppState>) {
    loop {
        if let Err(e) = sweep_orphans(&state).await {
            tracing::warn!(error = %e, "failing the operations of stopped replicas");
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Marks an operation finished (unless it already is).
pub async fn finish(
    store: &dyn Store,
    id: &str,
    state: OperationState,
    message: String,
) -> ApiResult<()> {
    let message = &message;
    crate::typed_store::update(store, &records::op_key(id), |mut op: Operation| {
        let change = if op.is_done() {
            crate::typed_store::Change::Keep
        } else {
            op.state = state;
            op.message = message.clone();
            op.updated_at = now();
            if state == OperationState::Succeeded {
                op.progress = Some(1.0);
            }
            crate::typed_store::Change::Write(op)
        };
        std::future::ready(Ok(change))
    })
    .await?;
    Ok(())
}

/// Ends operation `id` as `state` with `message` and, in the same transaction, writes what
/// `change` makes of VM `project/name` (`None` leaves the record as it is), so the record
/// never shows an operation's effect without the operation's end, or the reverse. When the
/// VM was deleted meanwhile, the operation still ends.
pub async fn finish_with_vm(
    store: &dyn Store,
    id: &str,
    state: OperationState,
    message: String,
    (project, name): (&str, &str),
    change: impl Fn(&records::VmRecord) -> Option<records::VmRecord>,
) -> ApiResult<()> {
    let Some((mut op, _)) =
        crate::typed_store::get::<Operation>(store, &records::op_key(id)).await?
    else {
        return Ok(());
    };
    op.state = state;
    op.message = message;
    op.updated_at = now();
    if state == OperationState::Succeeded {
        op.progress = Some(1.0);
    }
    let (op_ref, change_ref) = (&op, &change);
    let updated = crate::typed_store::update(
        store,
        &records::vm_key(project, name),
        |rec: records::VmRecord| async move {
            let mut ops = vec![put_op(op_ref)?];
            Ok(match change_ref(&rec) {
                Some(record) => {
                    // A NIC on an overlay network that leaves the record frees its address
                    // in the same transaction.
                    let dropped = crate::nic_ops::dropped_overlay_nics(&rec, &record);
                    ops.extend(crate::ipam::release_ops(&rec.project, &dropped));
                    crate::typed_store::Change::WriteWith {
                        record,
                        compares: vec![],
                        ops,
                    }
                }
                None => crate::typed_store::Change::KeepWith {
                    compares: vec![],
                    ops,
                },
            })
        },
    )
    .await?;
    if updated.is_none() {
        store.txn(vec![], vec![put_op(&op)?]).await?;
    }
    tracing::info!(vm = name, operation = id, state = ?op.state, kind = %op.kind, "operation done");
    Ok(())
}

/// Updates the message of a running operation (best effort).
pub async fn progress(store: &dyn Store, id: &str, message: &str) -> ApiResult<()> {
    let Some(kv) = store.get(&records::op_key(id)).await? else {
        return Ok(());
    };
    let Ok(mut op) = serde_json::from_slice::<Operation>(&kv.value) else {
        return Ok(());
    };
    if op.is_done() || op.message == message {
        return Ok(());
    }
    op.message = message.into();
    op.updated_at = now();
    store
        .compare_and_swap(&kv.key, kv.mod_revision, json_bytes(&op)?)
        .await?;
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct WaitQuery {
    /// Wait up to this many seconds (max 60) for the operation to finish.
    pub wait_seconds: Option<u64>,
}

/// One operation; with `wait_seconds`, answers when it finishes or the wait ends.
#[utoipa::path(get, path = "/api/v1/operations/{id}", params(("id" = String, Path), WaitQuery),
    responses((status = 200, body = Operation), (status = 404, body = ApiError)))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<axum::Json<Operation>> {
    let key = records::op_key(&id);
    let read = |kv: &novacron_store::KeyValue| -> ApiResult<Operation> {
        serde_json::from_slice(&kv.value)
            .map_err(|e| ApiFailure(ApiError::internal(format!("operation record: {e}"))))
    };
    let kv = state
        .store
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no operation {id}")))?;
    let op = read(&kv)?;
    if op.project != crate::tenancy::current_project() {
        return Err(ApiError::not_found(format!("no operation {id}")).into());
    }
    let wait = Duration::from_secs(q.wait_seconds.unwrap_or(0).min(60));
    if op.is_done() {
        read_your_writes(&state, &op).await;
        return Ok(axum::Json(op));
    }
    if wait.is_zero() {
        return Ok(axum::Json(op));
    }
    let mut watch = state.store.watch(&key, kv.mod_revision).await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut latest = op;
    loop {
        match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(Some(Ok(novacron_store::WatchEvent::Put(kv)))) if kv.key == key => {
                latest = read(&kv)?;
                if latest.is_done() {
                    read_your_writes(&state, &latest).await;
                    break;
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(axum::Json(latest))
}

/// A finished VM operation was written in the same transaction as the VM's record and status:
/// before a caller learns it is done, this replica's views of that VM catch up with the store,
/// so the caller's next read of the VM shows the outcome (not the state before it).
async fn read_your_writes(state: &AppState, op: &Operation) {
    let Some(name) = op.target.strip_prefix("vm/") else {
        return;
    };
    if let Ok(Some(kv)) = state.store.get(&records::vm_key(&op.project, name)).await {
        state
            .vms
            .wait_for(kv.mod_revision, AppState::CATCH_UP)
            .await;
    }
    let status = records::vm_status_key(&op.project, name);
    if let Ok(Some(kv)) = state.store.get(&status).await {
        state
            .statuses
            .wait_for(kv.mod_revision, AppState::CATCH_UP)
            .await;
    }
}

/// Recent operations, newest first.
#[utoipa::path(get, path = "/api/v1/operations", responses((status = 200, body = Vec<Operation>)))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<axum::Json<Vec<Operation>>> {
    let (kvs, _) = state.store.list(&records::op_prefix()).await?;
    let project = crate::tenancy::current_project();
    let mut ops: Vec<Operation> = kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Operation>(&kv.value).ok())
        .filter(|o| o.project == project)
        .collect();
    ops.sort_by_key(|o: &Operation| std::cmp::Reverse((o.created_at, o.id.clone())));
    ops.truncate(200);
    Ok(axum::Json(ops))
}

/// Deletes finished operations older than `age` (run periodically).
pub async fn expire(
    store: &dyn Store,
    age: UnixSeconds,
) -> Result<usize, novacron_store::StoreError> {
    let (kvs, _) = store.list(&records::op_prefix()).await?;
    let cutoff = now().saturating_sub(age);
    let mut n = 0;
    for kv in kvs {
        if let Ok(op) = serde_json::from_slice::<Operation>(&kv.value)
            && op.is_done()
            && op.updated_at < cutoff
        {
            store
                .txn(
                    vec![novacron_store::Compare::ModRevision {
                        key: kv.key.clone(),
                        equals: kv.mod_revision,
                    }],
                    vec![Op::Delete { key: kv.key }],
                )
                .await?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn runner(run: &str, since: UnixSeconds) -> OpRunner {
        OpRunner {
            member: "cp-1".into(),
            run: run.into(),
            since,
        }
    }

    #[test]
    fn an_operation_of_a_run_that_is_gone_fails_after_the_grace() {
        let op = new_operation("image.import", "default", "image/x", "downloading");
        let live: HashSet<String> = ["run-new".to_string()].into();
        let r = runner("run-old", 1000);
        assert_eq!(
            orphan_verdict(Some(&op), &r, &live, 1000 + RUNNER_GRACE_SECS - 1),
            Orphan::Keep,
            "a just-started replica may not have written its member record yet"
        );
        let Orphan::Fail(why) = orphan_verdict(Some(&op), &r, &live, 1000 + RUNNER_GRACE_SECS)
        else {
            panic!("not failed")
        };
        assert!(
            why.contains("cp-1") && why.contains("image.import"),
            "{why}"
        );
    }

    #[test]
    fn a_live_run_keeps_its_operation_and_ended_ones_are_forgotten() {
        let mut op = new_operation("vm.snapshot.create", "default", "vm/a", "taking");
        let live: HashSet<String> = ["run-a".to_string()].into();
        let r = runner("run-a", 0);
        assert_eq!(orphan_verdict(Some(&op), &r, &live, 1 << 40), Orphan::Keep);
        op.state = OperationState::Succeeded;
        assert_eq!(
            orphan_verdict(Some(&op), &r, &live, 1 << 40),
            Orphan::Forget
        );
        assert_eq!(orphan_verdict(None, &r, &live, 1 << 40), Orphan::Forget);
    }
}
