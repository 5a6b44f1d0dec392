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
use novacron_api_types::{
    ApiError, DEFAULT_PROJECT, ErrorCode, Network, NodeState, OperationState, VmState,
    validate_name,
};
use novacron_store::{Compare, Op};

use super::operations::{finish, new_operation, put_op};
use super::roles::NodeCaller;
use super::{ApiFailure, ApiResult, Json, json_bytes};
use crate::records::{self, NodeRecord, VmRecord, now};
use crate::state::AppState;

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

/// `major.minor` of a version string like `7.2.19` or `QEMU emulator version 7.2.19 (...)`.
fn major_minor(v: &str) -> Option<(u64, u64)> {
    let word = v
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut it = word.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((major, minor))
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

/// Memory and disk bytes promised to each node beyond the VMs placed on it: VMs migrating there
/// now (and, while an evacuation is planned, VMs the plan already sends there).
type Promised = std::collections::HashMap<String, (u64, u64)>;

/// What each node holds and is promised, read once per request.
struct Load {
    placed: std::collections::HashMap<String, (novacron_api_types::Resources, u32)>,
    promised: Promised,
}

fn load(state: &AppState) -> Load {
    Load {
        placed: state.allocations(),
        promised: incoming(state),
    }
}

fn incoming(state: &AppState) -> Promised {
    let mut out = Promised::new();
    state.vms.with(|vms| {
        for v in vms.values() {
            if let Some(to) = &v.migrating_to {
                add_promise(&mut out, to, v);
            }
        }
    });
    out
}

fn add_promise(p: &mut Promised, node: &str, vm: &VmRecord) {
    let e = p.entry(node.to_string()).or_default();
    e.0 += vm.memory_bytes;
    if vm.storage.is_none() {
        e.1 += vm.disk_bytes.unwrap_or(0);
    }
}

/// Why `dest` cannot take `vm` now (`None`: it can).
fn refusal(
    state: &AppState,
    vm: &VmRecord,
    source: &NodeRecord,
    dest: &NodeRecord,
    load: &Load,
) -> Option<String> {
    if dest.name == vm.node {
        return Some(format!("VM {} already runs on {}", vm.name, dest.name));
    }
    match state.node_state(dest) {
        NodeState::Ready => {}
        other => {
            return Some(format!(
                "node {} is {other}: only a ready node takes VMs (`novacron node uncordon {}`)",
                dest.name, dest.name
            ));
        }
    }
    let (src_v, dst_v) = (
        major_minor(&source.qemu_version),
        major_minor(&dest.qemu_version),
    );
    if src_v.is_none() || src_v != dst_v {
        return Some(format!(
            "node {} runs QEMU {:?} and {} runs QEMU {:?}: VMs use the machine type of their QEMU version, so both nodes need the same QEMU major.minor",
            source.name, source.qemu_version, dest.name, dest.qemu_version
        ));
    }
    if let Some((major, _)) = dst_v
        && major < 7
    {
        return Some(format!(
            "node {} runs QEMU {}; live migration needs QEMU 7.2 or newer",
            dest.name, dest.qemu_version
        ));
    }
    let accel_in_use = state
        .statuses
        .get(&records::vm_status_key(&vm.project, &vm.name))
        .and_then(|s| s.accel_in_use.clone())
        .unwrap_or_default();
    if accel_in_use == "kvm" && !dest.kvm_usable {
        return Some(format!(
            "VM {} runs with KVM (CPU model `host`) and node {} has no usable KVM: the CPU the guest sees cannot move there",
            vm.name, dest.name
        ));
    }
    if accel_in_use == "tcg" && vm.accel == novacron_api_types::AccelChoice::Auto && dest.kvm_usable
    {
        return Some(format!(
            "VM {} runs under TCG (accel auto) and node {} would pick KVM: both sides must use the same accelerator; create the VM with --accel tcg or choose a node without KVM",
            vm.name, dest.name
        ));
    }
    if let Network::Bridge { bridge } = &vm.network
        && !dest.bridges.contains(bridge)
    {
        return Some(format!(
            "node {} has no bridge {bridge} (VM {} is attached to it)",
            dest.name, vm.name
        ));
    }
    let alloc = &load.placed;
    let extra = load.promised.get(&dest.name).copied().unwrap_or_default();
    let used = alloc.get(&dest.name).map(|a| a.0.memory_bytes).unwrap_or(0) + extra.0;
    if used + vm.memory_bytes > dest.capacity.memory_bytes {
        return Some(format!(
            "node {} has {} MiB of memory free and VM {} needs {} MiB",
            dest.name,
            dest.capacity.memory_bytes.saturating_sub(used) >> 20,
            vm.name,
            vm.memory_bytes >> 20
        ));
    }
    if vm.storage.is_none() {
        let disk_used = alloc.get(&dest.name).map(|a| a.0.disk_bytes).unwrap_or(0) + extra.1;
        if disk_used + vm.disk_bytes.unwrap_or(0) > dest.capacity.disk_bytes {
            return Some(format!(
                "node {} has not enough disk for VM {} ({} GiB)",
                dest.name,
                vm.name,
                vm.disk_bytes.unwrap_or(0) >> 30
            ));
        }
    }
    None
}

/// The destination for `vm`: the one asked for (checked), or the able node with the most
/// free memory.
fn choose_destination(
    state: &AppState,
    vm: &VmRecord,
    to: Option<&str>,
    load: &Load,
) -> ApiResult<Arc<NodeRecord>> {
    let source = state
        .nodes
        .get(&records::node_key(&vm.node))
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "node {} of VM {} is not registered",
                vm.node, vm.name
            ))
        })?;
    if state.node_state(&source) == NodeState::Down {
        return Err(ApiError::unavailable(format!(
            "node {} of VM {} is down: a live migration needs its agent (HA restarts VMs of lost nodes)",
            source.name, vm.name
        ))
        .into());
    }
    if let Some(to) = to {
        validate_name("node", to)?;
        let dest = state.nodes.get(&records::node_key(to)).ok_or_else(|| {
            ApiError::not_found(format!("no node named {to:?}: see `novacron node list`"))
        })?;
        if let Some(why) = refusal(state, vm, &source, &dest, load) {
            return Err(ApiError::new(ErrorCode::NoCapacity, why).into());
        }
        return Ok(dest);
    }
    let alloc = &load.placed;
    let mut best: Option<(u64, Arc<NodeRecord>)> = None;
    let mut reasons = vec![];
    for n in state.nodes.values() {
        if n.name == vm.node {
            continue;
        }
        match refusal(state, vm, &source, &n, load) {
            Some(why) => reasons.push(why),
            None => {
                let free = n
                    .capacity
                    .memory_bytes
                    .saturating_sub(alloc.get(&n.name).map(|a| a.0.memory_bytes).unwrap_or(0))
                    .saturating_sub(load.promised.get(&n.name).map(|p| p.0).unwrap_or(0));
                if best.as_ref().is_none_or(|(f, _)| free > *f) {
                    best = Some((free, n));
                }
            }
        }
    }
    best.map(|(_, n)| n).ok_or_else(|| {
        ApiFailure(ApiError::new(
            ErrorCode::NoCapacity,
            if reasons.is_empty() {
                format!("no other node to move VM {} to", vm.name)
            } else {
                format!("no node can take VM {}: {}", vm.name, reasons.join("; "))
            },
        ))
    })
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
    let key = records::vm_key(DEFAULT_PROJECT, name);
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
    let dest = choose_destination(state, &rec, req.to.as_deref(), &load(state))?;
    let source = state
        .nodes
        .get(&records::node_key(&rec.node))
        .ok_or_else(|| ApiError::unavailable(format!("node {} is not registered", rec.node)))?;

    let id = new_migration_id();
    let secret = new_migration_secret()?;
    let op = new_operation(
        "vm.migrate",
        &rec.project,
        &format!("vm/{name}"),
        &format!("preparing {} for VM {name}", dest.name),
    );
    let t = now();
    let mut mig = Migration {
        id: id.clone(),
        project: rec.project.clone(),
        vm: name.to_string(),
        source: source.name.clone(),
        destination: dest.name.clone(),
        state: MigrationState::Preparing,
        message: format!("preparing node {}", dest.name),
        max_downtime_ms,
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
    rec.migration = Some(id.clone());
    rec.migrating_to = Some(dest.name.clone());
    let out = state
        .store
        .txn(
            vec![Compare::ModRevision {
                key: key.clone(),
                equals: kv.mod_revision,
            }],
            vec![
                Op::Put {
                    key: key.clone(),
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
        return Err(ApiError::conflict(format!("VM {name} changed meanwhile; try again")).into());
    }
    state.vms.wait_for(out.revision, AppState::CATCH_UP).await;
    tracing::info!(vm = name, migration = %id, from = %source.name, to = %dest.name, "migration recorded");

    let disks: Vec<String> = if rec.storage.is_none() && local_disk(state, &rec) {
        vec!["disk0".to_string()]
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

/// True when the VM has a disk on the node's local storage.
fn local_disk(state: &AppState, rec: &VmRecord) -> bool {
    if rec.disk_bytes.is_some() {
        return true;
    }
    state
        .images
        .get(&records::image_key(&rec.project, &rec.image))
        .is_some_and(|i| matches!(i.kind, novacron_api_types::ImageKind::Disk { .. }))
}

/// Applies `f` to the migration record (compare-and-swap, retried). `None`: no such record.
async fn update(
    state: &AppState,
    id: &str,
    f: impl Fn(&mut Migration),
) -> ApiResult<Option<Migration>> {
    let key = records::migration_key(id);
    for _ in 0..20 {
        let Some(kv) = state.store.get(&key).await? else {
            return Ok(None);
        };
        let mut m: Migration = decode("migration record", &kv.value)?;
        f(&mut m);
        m.updated_at = now();
        if state
            .store
            .compare_and_swap(&key, kv.mod_revision, json_bytes(&m)?)
            .await?
            .is_some()
        {
            return Ok(Some(m));
        }
    }
    Err(ApiError::unavailable(format!("migration {id} kept changing")).into())
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

/// Decides "the VM stays on the source" unless the switch-over already committed; returns
/// what holds. `end` is the state to record (failed or cancelled).
async fn abort(
    state: &AppState,
    id: &str,
    end: MigrationState,
    reason: &str,
) -> ApiResult<MigrationOutcome> {
    for _ in 0..20 {
        let (mut m, m_rev) = get_migration(state, id).await?;
        if matches!(
            m.state,
            MigrationState::Committed | MigrationState::Succeeded
        ) {
            return Ok(MigrationOutcome::Committed);
        }
        let vm_key = records::vm_key(&m.project, &m.vm);
        let vm_kv = state.store.get(&vm_key).await?;
        let mut compares = vec![Compare::ModRevision {
            key: records::migration_key(id),
            equals: m_rev,
        }];
        let mut ops = vec![];
        if let Some(kv) = &vm_kv {
            let mut rec: VmRecord = decode("VM record", &kv.value)?;
            if rec.migration.as_deref() == Some(id) {
                rec.migration = None;
                rec.migrating_to = None;
                compares.push(Compare::ModRevision {
                    key: vm_key.clone(),
                    equals: kv.mod_revision,
                });
                ops.push(Op::Put {
                    key: vm_key.clone(),
                    value: json_bytes(&rec)?,
                });
            }
        }
        let already_done = m.state.is_done();
        if !already_done {
            m.state = end;
            m.message = format!("{reason}; VM {} stays on {}", m.vm, m.source);
            m.progress.phase = "failed".into();
            m.updated_at = now();
            ops.push(Op::Put {
                key: records::migration_key(id),
                value: json_bytes(&m)?,
            });
        }
        if ops.is_empty() {
            return Ok(MigrationOutcome::Aborted);
        }
        let out = state.store.txn(compares, ops).await?;
        if out.succeeded {
            state.vms.wait_for(out.revision, AppState::CATCH_UP).await;
            if !already_done {
                tracing::warn!(migration = id, vm = %m.vm, reason, "migration aborted; the VM stays on the source");
                finish(
                    state.store.as_ref(),
                    &m.operation,
                    OperationState::Failed,
                    m.message.clone(),
                )
                .await?;
            }
            return Ok(MigrationOutcome::Aborted);
        }
    }
    Err(ApiError::unavailable(format!("migration {id} kept changing; try again")).into())
}

/// Records the switch-over: the VM now belongs to the destination. Idempotent.
async fn commit(state: &AppState, id: &str, caller_node: &str) -> ApiResult<MigrationOutcome> {
    for _ in 0..20 {
        let (mut m, m_rev) = get_migration(state, id).await?;
        if m.source != caller_node {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!("only the source node {} commits migration {id}", m.source),
            )
            .into());
        }
        match m.state {
            MigrationState::Committed | MigrationState::Succeeded => {
                return Ok(MigrationOutcome::Committed);
            }
            MigrationState::Running => {}
            _ => return Ok(MigrationOutcome::Aborted),
        }
        let vm_key = records::vm_key(&m.project, &m.vm);
        let Some(kv) = state.store.get(&vm_key).await? else {
            return Ok(MigrationOutcome::Aborted);
        };
        let mut rec: VmRecord = decode("VM record", &kv.value)?;
        if rec.migration.as_deref() != Some(id) || rec.node != m.source {
            return Ok(MigrationOutcome::Aborted);
        }
        rec.migration = None;
        rec.migrating_to = None;
        rec.node = m.destination.clone();
        rec.generation += 1;
        rec.operation = Some(m.operation.clone());
        rec.action = None;
        m.state = MigrationState::Committed;
        m.message = format!("switched over: VM {} belongs to {}", m.vm, m.destination);
        m.progress.phase = "switch-over".into();
        m.updated_at = now();
        let out = state
            .store
            .txn(
                vec![
                    Compare::ModRevision {
                        key: vm_key.clone(),
                        equals: kv.mod_revision,
                    },
                    Compare::ModRevision {
                        key: records::migration_key(id),
                        equals: m_rev,
                    },
                ],
                vec![
                    Op::Put {
                        key: vm_key.clone(),
                        value: json_bytes(&rec)?,
                    },
                    Op::Put {
                        key: records::migration_key(id),
                        value: json_bytes(&m)?,
                    },
                ],
            )
            .await?;
        if out.succeeded {
            state.vms.wait_for(out.revision, AppState::CATCH_UP).await;
            tracing::info!(migration = id, vm = %m.vm, to = %m.destination, generation = rec.generation, "migration committed");
            return Ok(MigrationOutcome::Committed);
        }
    }
    Err(ApiError::unavailable(format!("migration {id} kept changing; try again")).into())
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
    let mut out: Vec<Migration> = kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
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
    Ok(AxumJson(get_migration(&state, &id).await?.0))
}

/// Abort a migration before its switch-over; the VM keeps running on the source.
#[utoipa::path(post, path = "/api/v1/migrations/{id}/cancel", params(("id" = String, Path)),
    responses((status = 200, body = Migration), (status = 409, body = ApiError)))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<Migration>> {
    let (m, _) = get_migration(&state, &id).await?;
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
    // The decision is recorded; now stop the work on both sides (best effort: an agent that
    // cannot be reached finds out when it asks to commit, or cleans up when it restarts).
    for node in [&m.source, &m.destination] {
        if let Some(n) = state.nodes.get(&records::node_key(node))
            && let Err(e) = super::agent::call_agent::<_, serde_json::Value>(
                &state,
                &n,
                &format!("/agent/v1/migrations/{id}/cancel"),
                &serde_json::json!({}),
            )
            .await
        {
            tracing::warn!(migration = %id, node = %node, error = %e.message, "cannot tell an agent about the cancel");
        }
    }
    Ok(AxumJson(get_migration(&state, &id).await?.0))
}

/// How many migrations to run at once when the caller does not say.
const DEFAULT_PARALLEL: u32 = 2;

/// Plans the evacuation of a node (ITP): which VM goes where, in which order, how many at
/// once. Paused VMs first (they dirty no memory), then running ones from the smallest memory
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
    let mut vms: Vec<Arc<VmRecord>> = state
        .vms
        .values()
        .into_iter()
        .filter(|v| v.node == req.node && !v.deleting)
        .collect();
    let observed = |v: &VmRecord| super::vms::observed_state(&state, v);
    vms.sort_by_key(|v| {
        (
            observed(v) != VmState::Paused,
            v.memory_bytes,
            v.image.clone(),
            v.name.clone(),
        )
    });
    let mut steps = vec![];
    let mut problems = vec![];
    let mut load = load(&state);
    for v in vms {
        let st = observed(&v);
        if !matches!(st, VmState::Running | VmState::Paused) {
            continue;
        }
        match choose_destination(&state, &v, req.to.as_deref(), &load) {
            Ok(dest) => {
                add_promise(&mut load.promised, &dest.name, &v);
                steps.push(EvacuationStep {
                    vm: v.name.clone(),
                    destination: dest.name.clone(),
                    reason: if st == VmState::Paused {
                        "paused: no dirty memory, moves first".into()
                    } else {
                        format!("running, {} MiB: smaller VMs first", v.memory_bytes >> 20)
                    },
                })
            }
            Err(e) => problems.push(e.0.message),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::new(ErrorCode::NoCapacity, problems.join("; ")).into());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_minor() {
        assert_eq!(major_minor("7.2.19"), Some((7, 2)));
        assert_eq!(
            major_minor("QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)"),
            Some((7, 2))
        );
        assert_eq!(major_minor("8.1.0-rc1"), Some((8, 1)));
        assert_eq!(major_minor("unknown"), None);
    }
}
