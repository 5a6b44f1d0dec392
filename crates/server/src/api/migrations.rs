//! Live migration: the control plane checks a move, prepares the destination agent, starts
//! the source agent, and is the single place where the switch-over is decided. The VM
//! record carries the migration's id while it runs; the source's commit (VM moves to the
//! destination) and any abort (VM stays) are compare-and-swap writes on that record, so
//! exactly one of them can win, whoever asks and whatever crashes.

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use novacron_api_types::agent::DesiredVm;
use novacron_api_types::migration::{
    EvacuateRequest, EvacuationPlan, EvacuationStep, IncomingMigration, IncomingReady,
    MigrateRequest, Migration, MigrationOutcome, MigrationProgress, MigrationRef, MigrationReport,
    MigrationSecret, MigrationState, OutgoingMigration,
};
use novacron_api_types::{ApiError, ErrorCode, NodeState, OperationState, VmState, validate_name};
use novacron_store::{Compare, Op};

use super::operations::{finish, new_operation, put_op};
use super::roles::NodeCaller;
use super::{ApiFailure, ApiResult, Json, json_bytes};
use crate::lifecycle::{self, Event};
use crate::placement::{self, MoveRule};
use crate::records::{self, NodeRecord, VmRecord, now};
use crate::state::AppState;
use crate::typed_store::{self, Change};

/// Default longest pause of the guest.
pub const DEFAULT_MAX_DOWNTIME_MS: u64 = 300;

fn new_migration_id() -> String {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).expect("the system random generator failed");
    format!(
        "mig-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, b: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(b).map_err(|e| ApiFailure(ApiError::internal(format!("{what}: {e}"))))
}

/// A fresh per-migration secret for the two agents' DWCP session (never logged, never stored).
fn new_migration_secret() -> ApiResult<MigrationSecret> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| ApiError::internal("the system random generator failed"))?;
    Ok(MigrationSecret(
        b.iter().map(|x| format!("{x:02x}")).collect(),
    ))
}

/// The node `vm` runs on, which must be up: a live migration needs its agent.
fn live_source(state: &AppState, vm: &VmRecord) -> ApiResult<Arc<NodeRecord>> {
    let source = super::vms::node_of(state, vm)?;
    if state.node_state(&source) == NodeState::Down {
        return Err(ApiError::unavailable(format!(
            "node {} of VM {} is down: a live migration needs its agent (HA restarts VMs of lost nodes)",
            source.name, vm.name
        ))
        .into());
    }
    Ok(source)
}

/// What moving `vm` off `source` now requires of its destination.
fn rules_of(state: &AppState, vm: &VmRecord, source: &NodeRecord) -> Vec<MoveRule> {
    let accel_in_use = state
        .statuses
        .get(&records::vm_status_key(&vm.project, &vm.name))
        .and_then(|s| s.accel_in_use.clone())
        .unwrap_or_default();
    placement::move_rules(vm, &accel_in_use, source)
}

/// The destination for `vm`, chosen by the scheduler (or `to`, checked by it), with the VM's
/// demand reserved there: the caller records the migration or calls
/// [`crate::placement::Placement::release_incoming`].
fn reserve_destination(
    state: &AppState,
    vm: &VmRecord,
    to: Option<&str>,
) -> ApiResult<Arc<NodeRecord>> {
    let source = live_source(state, vm)?;
    let dest = match to {
        Some(to) => {
            validate_name("node", to)?;
            Some(state.nodes.get(&records::node_key(to)).ok_or_else(|| {
                ApiError::not_found(format!("no node named {to:?}: see `novacron node list`"))
            })?)
        }
        None => None,
    };
    let rules = rules_of(state, vm, &source);
    let chosen = state.placement.reserve_incoming(
        vm,
        &rules,
        &source.name,
        dest.as_deref().map(|d| (d, state.node_state(d))),
    )?;
    match state.nodes.get(&records::node_key(&chosen)) {
        Some(n) => Ok(n),
        None => {
            state
                .placement
                .release_incoming(&placement::vm_id(&vm.project, &vm.name));
            Err(
                ApiError::unavailable(format!("node {chosen} was removed meanwhile; try again"))
                    .into(),
            )
        }
    }
}

/// Move a running VM to another node while it runs.
#[utoipa::path(post, path = "/api/v1/vms/{name}/migrate", params(("name" = String, Path)), request_body = MigrateRequest,
    responses((status = 202, body = MigrationRef), (status = 404, body = ApiError), (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn start(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<MigrateRequest>,
) -> ApiResult<(StatusCode, AxumJson<MigrationRef>)> {
    validate_name("vm", &name)?;
    let m = begin(&state, &name, &req).await?;
    Ok((
        StatusCode::ACCEPTED,
        AxumJson(MigrationRef { migration: m }),
    ))
}

/// Checks, records and starts a migration; on any failure nothing is left behind.
pub async fn begin(state: &AppState, name: &str, req: &MigrateRequest) -> ApiResult<Migration> {
    let max_downtime_ms = req.max_downtime_ms.unwrap_or(DEFAULT_MAX_DOWNTIME_MS);
    if max_downtime_ms == 0 {
        return Err(ApiError::invalid("--max-downtime must be above 0 ms").into());
    }
    if req.bandwidth_bps == Some(0) {
        return Err(ApiError::invalid("--bandwidth must be above 0").into());
    }
    let mode = req.mode.unwrap_or_default();
    if let Some(why) = mode.unsupported_reason() {
        return Err(ApiError::invalid(why).into());
    }
    let key = records::vm_key(&crate::tenancy::current_project(), name);
    let kv = state.store.get(&key).await?.ok_or_else(|| {
        ApiError::not_found(format!("no VM named {name:?}: see `novacron vm list`"))
    })?;
    let mut rec: VmRecord = decode("VM record", &kv.value)?;
    if rec.deleting || rec.creating {
        return Err(ApiError::conflict(format!(
            "VM {name} is being {}",
            if rec.deleting { "deleted" } else { "created" }
        ))
        .into());
    }
    if let Some(m) = &rec.migration {
        return Err(ApiError::conflict(format!(
            "VM {name} is already migrating ({m}): see `novacron migration show {m}`"
        ))
        .into());
    }
    // The disk copy (drive-mirror) writes the current disk state into a new file: the
    // snapshots inside the source's qcow2 would not reach the destination.
    if rec.storage.is_none() && !rec.snapshots.is_empty() {
        return Err(ApiError::conflict(format!(
            "VM {name} has {} snapshot(s) inside its local disk, which a live migration's disk copy would lose: delete them first (`novacron vm snapshot list {name}`), or keep the disk on shared storage",
            rec.snapshots.len()
        ))
        .into());
    }
    // A disk being resized, or a linked clone's local base (see disk_ops); the compare-and-swap
    // below on the record read here keeps a resize or link from starting meanwhile.
    if let Some(why) = crate::disk_ops::migration_refusal(&rec, now()) {
        return Err(ApiError::conflict(why).into());
    }
    let observed = super::vms::observed_state(state, &rec);
    if !matches!(observed, VmState::Running | VmState::Paused) {
        return Err(ApiError::conflict(format!(
            "VM {name} is {observed}: only a running or paused VM can be migrated (start it first)"
        ))
        .into());
    }
    if rec.generation
        != state
            .statuses
            .get(&records::vm_status_key(&rec.project, &rec.name))
            .map(|s| s.observed_generation)
            .unwrap_or(0)
    {
        return Err(ApiError::conflict(format!(
            "VM {name} has a change in progress; wait for it (`novacron operation list`)"
        ))
        .into());
    }
    let dest = reserve_destination(state, &rec, req.to.as_deref())?;
    let recorded = record_migration(state, &mut rec, &dest, &key, kv.mod_revision, req).await;
    let (id, secret, source, mut mig) = match recorded {
        Ok(r) => r,
        Err(e) => {
            state
                .placement
                .release_incoming(&placement::vm_id(&rec.project, &rec.name));
            return Err(e);
        }
    };

    // Local disks are mirrored to the destination: the boot disk, then the added ones.
    let disks: Vec<String> = if rec.storage.is_none() {
        let boot = local_disk(state, &rec).then(|| "disk0".to_string());
        boot.into_iter()
            .chain(rec.data_disks.iter().map(|d| d.name.clone()))
            .collect()
    } else {
        vec![]
    };
    let desired: DesiredVm = super::agent::desired_vm(state, &rec);
    let incoming = IncomingMigration {
        id: id.clone(),
        source: source.name.clone(),
        secret: secret.clone(),
        vm: desired,
        disks: disks.clone(),
        mode,
    };
    let ready: IncomingReady =
        match super::agent::call_agent(state, &dest, "/agent/v1/migrations/incoming", &incoming)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("the destination could not prepare: {}", e.message);
                abort(state, &id, MigrationState::Failed, &msg).await?;
                return Err(ApiError::new(e.code, msg).into());
            }
        };
    let outgoing = OutgoingMigration {
        id: id.clone(),
        project: rec.project.clone(),
        vm: name.to_string(),
        destination: dest.name.clone(),
        dwcp_addr: ready.dwcp_addr,
        secret,
        disks,
        full_disk: false,
        max_downtime_ms,
        max_downtime_default: req.max_downtime_ms.is_none(),
        bandwidth_bps: req.bandwidth_bps,
        offline: req.offline,
        deadline_seconds: req.deadline_seconds,
        mode,
    };
    if let Err(e) = super::agent::call_agent::<_, serde_json::Value>(
        state,
        &source,
        "/agent/v1/migrations/outgoing",
        &outgoing,
    )
    .await
    {
        let msg = format!("the source could not start: {}", e.message);
        abort(state, &id, MigrationState::Failed, &msg).await?;
        let _ = super::agent::call_agent::<_, serde_json::Value>(
            state,
            &dest,
            &format!("/agent/v1/migrations/{id}/cancel"),
            &serde_json::json!({}),
        )
        .await;
        return Err(ApiError::new(e.code, msg).into());
    }
    mig = update(state, &id, |m| {
        if m.state == MigrationState::Preparing {
            m.state = MigrationState::Running;
            m.message = format!("moving VM {name} to {}", m.destination);
        }
    })
    .await?
    .unwrap_or(mig);
    Ok(mig)
}

/// Writes the migration, its operation and the VM record that names it in one transaction
/// (compare-and-swap on the VM record read at `revision`).
async fn record_migration(
    state: &AppState,
    rec: &mut VmRecord,
    dest: &NodeRecord,
    key: &str,
    revision: i64,
    req: &MigrateRequest,
) -> ApiResult<(String, MigrationSecret, Arc<NodeRecord>, Migration)> {
    let source = state
        .nodes
        .get(&records::node_key(&rec.node))
        .ok_or_else(|| ApiError::unavailable(format!("node {} is not registered", rec.node)))?;
    let id = new_migration_id();
    let secret = new_migration_secret()?;
    let op = new_operation(
        "vm.migrate",
        &rec.project,
        &format!("vm/{}", rec.name),
        &format!("preparing {} for VM {}", dest.name, rec.name),
    );
    let t = now();
    let mig = Migration {
        id: id.clone(),
        project: rec.project.clone(),
        vm: rec.name.clone(),
        source: source.name.clone(),
        destination: dest.name.clone(),
        state: MigrationState::Preparing,
        message: format!("preparing node {}", dest.name),
        max_downtime_ms: req.max_downtime_ms.unwrap_or(DEFAULT_MAX_DOWNTIME_MS),
        max_downtime_default: req.max_downtime_ms.is_none(),
        bandwidth_bps: req.bandwidth_bps,
        offline: req.offline,
        deadline_seconds: req.deadline_seconds,
        progress: MigrationProgress {
            phase: "preparing".into(),
            ..MigrationProgress::default()
        },
        operation: op.id.clone(),
        created_at: t,
        updated_at: t,
    };
    *rec = lifecycle::apply(
        rec,
        VmState::Running,
        &Event::MigrationStarted {
            id: id.clone(),
            to: dest.name.clone(),
        },
    )?;
    let out = state
        .store
        .txn(
            vec![Compare::ModRevision {
                key: key.to_string(),
                equals: revision,
            }],
            vec![
                Op::Put {
                    key: key.to_string(),
                    value: json_bytes(&rec)?,
                },
                Op::Put {
                    key: records::migration_key(&id),
                    value: json_bytes(&mig)?,
                },
                put_op(&op)?,
            ],
        )
        .await?;
    if !out.succeeded {
        return Err(
            ApiError::conflict(format!("VM {} changed meanwhile; try again", rec.name)).into(),
        );
    }
    state.vms.wait_for(out.revision, AppState::CATCH_UP).await;
    tracing::info!(vm = %rec.name, migration = %id, from = %source.name, to = %dest.name, "migration recorded");

    Ok((id, secret, source, mig))
}

/// True when the VM has a disk on the node's local storage.
fn local_disk(state: &AppState, rec: &VmRecord) -> bool {
    if rec.disk_bytes.is_some() {
        return true;
    }
    state
        .image(&rec.project, &rec.image)
        .is_some_and(|i| matches!(i.kind, novacron_api_types::ImageKind::Disk { .. }))
}

/// Applies `f` to the migration record (compare-and-swap, retried). `None`: no such record.
async fn update(
    state: &AppState,
    id: &str,
    f: impl Fn(&mut Migration),
) -> ApiResult<Option<Migration>> {
    let key = records::migration_key(id);
    let updated = typed_store::update(state.store.as_ref(), &key, |mut m: Migration| {
        f(&mut m);
        m.updated_at = now();
        async { Ok(Change::Write(m)) }
    })
    .await?;
    Ok(updated.map(|u| u.record))
}

async fn get_migration(state: &AppState, id: &str) -> ApiResult<(Migration, i64)> {
    if !id.starts_with("mig-") || id.len() > 40 {
        return Err(ApiError::invalid(format!("{id:?} is not a migration id (mig-...)")).into());
    }
    let kv = state
        .store
        .get(&records::migration_key(id))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("no migration {id}: see `novacron migration list`"))
        })?;
    Ok((decode("migration record", &kv.value)?, kv.mod_revision))
}

/// The VM record `id` moves, with `event` applied, as the extra compare and op of a write of
/// the migration record (`None`: the record is gone, or `event` does not apply to it).
async fn vm_in_step(
    state: &AppState,
    m: &Migration,
    event: &Event,
) -> ApiResult<Option<(Compare, Op, VmRecord)>> {
    let key = records::vm_key(&m.project, &m.vm);
    let Some((rec, revision)) = typed_store::get::<VmRecord>(state.store.as_ref(), &key).await?
    else {
        return Ok(None);
    };
    let observed = super::vms::observed_state(state, &rec);
    let Ok(next) = lifecycle::apply(&rec, observed, event) else {
        return Ok(None);
    };
    Ok(Some((
        Compare::ModRevision {
            key: key.clone(),
            equals: revision,
        },
        Op::Put {
            key,
            value: json_bytes(&next)?,
        },
        next,
    )))
}

/// Decides "the VM stays on the source" unless the switch-over already committed; returns
/// what holds. `end` is the state to record (failed or cancelled).
async fn abort(
    state: &AppState,
    id: &str,
    end: MigrationState,
    reason: &str,
) -> ApiResult<MigrationOutcome> {
    get_migration(state, id).await?;
    let ended_now = std::sync::atomic::AtomicBool::new(false);
    let event = Event::MigrationEnded { id: id.to_string() };
    let (ended_now, event) = (&ended_now, &event);
    let updated = typed_store::update(
        state.store.as_ref(),
        &records::migration_key(id),
        |mut m: Migration| async move {
            ended_now.store(false, std::sync::atomic::Ordering::SeqCst);
            if matches!(
                m.state,
                MigrationState::Committed | MigrationState::Succeeded
            ) {
                return Ok(Change::Keep);
            }
            let vm = vm_in_step(state, &m, event).await?;
            let (compares, ops) = match vm {
                Some((c, o, _)) => (vec![c], vec![o]),
                None => (vec![], vec![]),
            };
            if m.state.is_done() {
                // Decided before; only the VM record may still name the migration.
                return Ok(if ops.is_empty() {
                    Change::Keep
                } else {
                    Change::KeepWith { compares, ops }
                });
            }
            m.state = end;
            m.message = format!("{reason}; VM {} stays on {}", m.vm, m.source);
            m.progress.phase = "failed".into();
            m.updated_at = now();
            ended_now.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(Change::WriteWith {
                record: m,
                compares,
                ops,
            })
        },
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no migration {id}")))?;
    if matches!(
        updated.record.state,
        MigrationState::Committed | MigrationState::Succeeded
    ) {
        return Ok(MigrationOutcome::Committed);
    }
    if updated.written {
        state
            .vms
            .wait_for(updated.revision, AppState::CATCH_UP)
            .await;
    }
    if ended_now.load(std::sync::atomic::Ordering::SeqCst) {
        let m = &updated.record;
        tracing::warn!(migration = id, vm = %m.vm, reason, "migration aborted; the VM stays on the source");
        finish(
            state.store.as_ref(),
            &m.operation,
            OperationState::Failed,
            m.message.clone(),
        )
        .await?;
    }
    Ok(MigrationOutcome::Aborted)
}

/// Records the switch-over: the VM now belongs to the destination. Idempotent.
async fn commit(state: &AppState, id: &str, caller_node: &str) -> ApiResult<MigrationOutcome> {
    let (m, _) = get_migration(state, id).await?;
    if m.source != caller_node {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!("only the source node {} commits migration {id}", m.source),
        )
        .into());
    }
    let updated = typed_store::update(
        state.store.as_ref(),
        &records::migration_key(id),
        |mut m: Migration| async move {
            if m.state != MigrationState::Running {
                return Ok(Change::Keep);
            }
            let event = Event::MigrationCommitted {
                id: id.to_string(),
                from: m.source.clone(),
                to: m.destination.clone(),
                operation: m.operation.clone(),
            };
            let Some((c, o, _)) = vm_in_step(state, &m, &event).await? else {
                // The VM is gone or moved some other way: this migration cannot win.
                return Ok(Change::Keep);
            };
            m.state = MigrationState::Committed;
            m.message = format!("switched over: VM {} belongs to {}", m.vm, m.destination);
            m.progress.phase = "switch-over".into();
            m.updated_at = now();
            Ok(Change::WriteWith {
                record: m,
                compares: vec![c],
                ops: vec![o],
            })
        },
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no migration {id}")))?;
    match updated.record.state {
        MigrationState::Committed | MigrationState::Succeeded => {
            if updated.written {
                state
                    .vms
                    .wait_for(updated.revision, AppState::CATCH_UP)
                    .await;
                let m = &updated.record;
                tracing::info!(migration = id, vm = %m.vm, to = %m.destination, "migration committed");
            }
            Ok(MigrationOutcome::Committed)
        }
        _ => Ok(MigrationOutcome::Aborted),
    }
}

/// The calling node and the migration, which must be about that node (source or destination).
async fn party(state: &AppState, node: &str, id: &str) -> ApiResult<(String, Migration)> {
    let node = node.to_string();
    let (m, _) = get_migration(state, id).await?;
    if m.source != node && m.destination != node {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!("migration {id} is not about node {node}"),
        )
        .into());
    }
    Ok((node, m))
}

/// The source agent asks to switch over (after the destination loaded the whole state).
#[utoipa::path(post, path = "/api/v1/agent/migrations/{id}/commit", params(("id" = String, Path)),
    responses((status = 200, body = MigrationOutcome)))]
pub async fn agent_commit(
    State(state): State<Arc<AppState>>,
    NodeCaller(node): NodeCaller,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<MigrationOutcome>> {
    Ok(AxumJson(commit(&state, &id, &node).await?))
}

/// Either agent asks to give up (or, having lost its peer, asks what was decided).
#[utoipa::path(post, path = "/api/v1/agent/migrations/{id}/abort", params(("id" = String, Path)),
    responses((status = 200, body = MigrationOutcome)))]
pub async fn agent_abort(
    State(state): State<Arc<AppState>>,
    NodeCaller(caller): NodeCaller,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<MigrationOutcome>> {
    let (node, _) = party(&state, &caller, &id).await?;
    let reason = format!("node {node} gave up (lost its peer or failed)");
    Ok(AxumJson(
        abort(&state, &id, MigrationState::Failed, &reason).await?,
    ))
}

/// An agent reports progress, its failure, or (source) the end after the switch-over.
#[utoipa::path(put, path = "/api/v1/agent/migrations/{id}", params(("id" = String, Path)), request_body = MigrationReport,
    responses((status = 200)))]
pub async fn agent_report(
    State(state): State<Arc<AppState>>,
    NodeCaller(caller): NodeCaller,
    Path(id): Path<String>,
    Json(r): Json<MigrationReport>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    let (node, m) = party(&state, &caller, &id).await?;
    if let Some(why) = &r.failed {
        let outcome = abort(&state, &id, MigrationState::Failed, why).await?;
        if outcome == MigrationOutcome::Committed {
            tracing::warn!(migration = %id, node, error = %why, "failure reported after the commit");
        }
        return Ok(AxumJson(serde_json::json!({})));
    }
    let from_source = m.source == node;
    let finished = r.finished && from_source;
    let updated = update(&state, &id, |m| {
        if m.state.is_done() {
            return;
        }
        if from_source {
            m.progress = r.progress.clone();
        }
        if finished && m.state == MigrationState::Committed {
            m.state = MigrationState::Succeeded;
            m.progress.phase = "completed".into();
            m.message = format!(
                "VM {} runs on {}{}",
                m.vm,
                m.destination,
                r.progress
                    .downtime_ms
                    .map(|d| format!(" (paused {d} ms)"))
                    .unwrap_or_default()
            );
        } else if m.state == MigrationState::Running {
            m.message = r.progress.phase.clone();
        }
    })
    .await?;
    if let Some(m) = updated {
        if m.state == MigrationState::Succeeded {
            finish(
                state.store.as_ref(),
                &m.operation,
                OperationState::Succeeded,
                m.message.clone(),
            )
            .await?;
        } else if m.state == MigrationState::Running {
            let _ =
                super::operations::progress(state.store.as_ref(), &m.operation, &m.message).await;
        }
    }
    Ok(AxumJson(serde_json::json!({})))
}

/// Migrations, newest first.
#[utoipa::path(get, path = "/api/v1/migrations", responses((status = 200, body = [Migration])))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<AxumJson<Vec<Migration>>> {
    let (kvs, _) = state.store.list(&records::migration_prefix()).await?;
    let project = crate::tenancy::current_project();
    let mut out: Vec<Migration> = kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Migration>(&kv.value).ok())
        .filter(|m| m.project == project)
        .collect();
    out.sort_by(|a: &Migration, b: &Migration| {
        b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id))
    });
    Ok(AxumJson(out))
}

/// One migration with its live progress.
#[utoipa::path(get, path = "/api/v1/migrations/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Migration), (status = 404, body = ApiError)))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<Migration>> {
    Ok(AxumJson(get_project_migration(&state, &id).await?.0))
}

/// A migration of the request's project (another project's answers 404, like a missing one).
async fn get_project_migration(state: &AppState, id: &str) -> ApiResult<(Migration, i64)> {
    let (m, rev) = get_migration(state, id).await?;
    if m.project != crate::tenancy::current_project() {
        return Err(ApiError::not_found(format!(
            "no migration {id}: see `novacron migration list`"
        ))
        .into());
    }
    Ok((m, rev))
}

/// Abort a migration before its switch-over; the VM keeps running on the source.
#[utoipa::path(post, path = "/api/v1/migrations/{id}/cancel", params(("id" = String, Path)),
    responses((status = 200, body = Migration), (status = 409, body = ApiError)))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<Migration>> {
    let (m, _) = get_project_migration(&state, &id).await?;
    if m.state.is_done() {
        return Ok(AxumJson(m));
    }
    if abort(
        &state,
        &id,
        MigrationState::Cancelled,
        "cancelled by a user",
    )
    .await?
        == MigrationOutcome::Committed
    {
        return Err(ApiError::conflict(format!(
            "migration {id} already switched over: VM {} belongs to {} now",
            m.vm, m.destination
        ))
        .into());
    }
    stop_both_sides(&state, &m).await;
    Ok(AxumJson(get_migration(&state, &id).await?.0))
}

/// After the decision "the VM stays on the source" is recorded, stops the work on both sides
/// (best effort: an agent that cannot be reached finds out when it asks to commit, or cleans
/// up when it restarts; a node that is down is not called).
async fn stop_both_sides(state: &AppState, m: &Migration) {
    for node in [&m.source, &m.destination] {
        if let Some(n) = state.nodes.get(&records::node_key(node))
            && state.node_state(&n) != NodeState::Down
            && let Err(e) = super::agent::call_agent::<_, serde_json::Value>(
                state,
                &n,
                &format!("/agent/v1/migrations/{}/cancel", m.id),
                &serde_json::json!({}),
            )
            .await
        {
            tracing::warn!(migration = %m.id, node = %node, error = %e.message, "cannot tell an agent about the cancel");
        }
    }
}

/// Ends migration `id` as failed because its source node was lost (the HA controller, before
/// it restarts the VM elsewhere): the VM stays where it was, unless the switch-over committed
/// first. Returns what holds.
pub async fn abandon_for_lost_source(
    state: &AppState,
    id: &str,
    node: &str,
) -> ApiResult<MigrationOutcome> {
    let reason = format!("source node {node} was lost");
    let outcome = abort(state, id, MigrationState::Failed, &reason).await?;
    if outcome == MigrationOutcome::Aborted {
        let (m, _) = get_migration(state, id).await?;
        stop_both_sides(state, &m).await;
    }
    Ok(outcome)
}

/// How many migrations to run at once when the caller does not say.
const DEFAULT_PARALLEL: u32 = 2;

/// Plans the evacuation of a node (ITP): which VM goes where (the scheduler's
/// `plan_evacuation`, largest VM first, each with its live migration's rules), in which order
/// and how many at once. Paused VMs first (they dirty no memory), then running ones from the smallest memory
/// to the largest, so many VMs leave early and the big ones get the link to themselves at the
/// end; VMs of one image are kept next to each other. Stopped VMs are not moved.
#[utoipa::path(post, path = "/api/v1/evacuations/plan", request_body = EvacuateRequest,
    responses((status = 200, body = EvacuationPlan), (status = 422, body = ApiError)))]
pub async fn evacuation_plan(
    State(state): State<Arc<AppState>>,
    Json(req): Json<EvacuateRequest>,
) -> ApiResult<AxumJson<EvacuationPlan>> {
    validate_name("node", &req.node)?;
    if state.nodes.get(&records::node_key(&req.node)).is_none() {
        return Err(ApiError::not_found(format!(
            "no node named {:?}: see `novacron node list`",
            req.node
        ))
        .into());
    }
    if let Some(to) = &req.to {
        validate_name("node", to)?;
        if state.nodes.get(&records::node_key(to)).is_none() {
            return Err(ApiError::not_found(format!(
                "no node named {to:?}: see `novacron node list`"
            ))
            .into());
        }
    }
    let observed = |v: &VmRecord| super::vms::observed_state(&state, v);
    // VMs that run (or are paused) move; stopped ones, ones being deleted and ones already
    // leaving stay, and so do reservations for VMs arriving.
    let movable = |id: &str| -> Option<Arc<VmRecord>> {
        let v = state.vms.get(&format!("{}{id}", records::vm_prefix()))?;
        (v.node == req.node
            && !v.deleting
            && v.migration.is_none()
            && matches!(observed(&v), VmState::Running | VmState::Paused))
        .then_some(v)
    };
    let source = state.nodes.get(&records::node_key(&req.node));
    let moves = state
        .placement
        .plan_evacuation(&req.node, req.to.as_deref(), |id| {
            let v = movable(id)?;
            let source = source.as_deref()?;
            Some(rules_of(&state, &v, source))
        })?;
    let mut steps = vec![];
    for m in moves {
        let Some(v) = movable(&m.vm) else { continue };
        if steps.is_empty() {
            live_source(&state, &v)?;
        }
        steps.push((v, m.to));
    }
    steps.sort_by_key(|(v, _)| {
        (
            observed(v) != VmState::Paused,
            v.memory_bytes,
            v.image.clone(),
            v.name.clone(),
        )
    });
    let steps: Vec<EvacuationStep> = steps
        .into_iter()
        .map(|(v, destination)| EvacuationStep {
            vm: v.name.clone(),
            destination,
            reason: if observed(&v) == VmState::Paused {
                "paused: no dirty memory, moves first".into()
            } else {
                format!("running, {} MiB: smaller VMs first", v.memory_bytes >> 20)
            },
        })
        .collect();
    let parallel = req
        .parallel
        .unwrap_or(DEFAULT_PARALLEL)
        .clamp(1, 16)
        .min(steps.len().max(1) as u32);
    Ok(AxumJson(EvacuationPlan {
        node: req.node,
        parallel,
        steps,
    }))
}
