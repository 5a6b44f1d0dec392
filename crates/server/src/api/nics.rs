//! VM NIC endpoints: `vm nic add` (a NIC on an overlay network, a node bridge or user-mode
//! NAT, plugged into a running guest at once or there from its next start) and `vm nic
//! remove`. Like a disk add, the NIC is recorded on the VM first (an overlay NIC with its
//! address, in the same transaction), then a task asks the VM's agent to plug it, and the
//! outcome is recorded with the finished operation: a NIC the agent could not add leaves
//! the record again and frees its address (docs/nics.md).

use std::sync::Arc;

use axum::extract::{Path, State};
use novacron_api_types::nics::{
    AddedNic, NicAddRequest, NicAttachJob, NicDetachJob, NicLink, NicPlugged,
};
use novacron_api_types::overlay::NicRequest;
use novacron_api_types::{ApiError, validate_name};

use super::operations::{new_operation, put_op, put_runner};
use super::vms::{OpResponse, accepted, find, node_of, observed_state};
use super::{ApiResult, Json};
use crate::nic_ops;
use crate::records::{self, NodeRecord, VmRecord, now};
use crate::state::AppState;
use crate::typed_store::{self, Change};

/// Add a NIC to a VM: on an overlay network of its project (with an address from the
/// network's IPAM), on a Linux bridge of its node, or on user-mode NAT. Plugged into the
/// running guest at once, or there from its next start. Refused while the VM migrates or
/// changes a disk or NIC, when its hot-plug ports are all in use, or when it has a NIC on
/// that network already.
#[utoipa::path(post, path = "/api/v1/vms/{name}/nics",
    params(("name" = String, Path)), request_body = NicAddRequest,
    responses((status = 202, body = novacron_api_types::OperationRef), (status = 400, body = ApiError), (status = 404, body = ApiError),
              (status = 409, body = ApiError)))]
pub async fn add(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<NicAddRequest>,
) -> OpResponse {
    validate_name("vm", &name)?;
    req.validate()?;
    let rec = find(&state, &name)?;
    let node = node_of(&state, &rec)?;
    if let Some(bridge) = &req.bridge
        && !node.bridges.contains(bridge)
    {
        return Err(ApiError::invalid(format!(
            "node {} of VM {name} has no bridge {bridge} (its bridges: {}): create it there first, or use --network or --nat",
            node.name,
            if node.bridges.is_empty() {
                "none".to_string()
            } else {
                node.bridges.join(", ")
            }
        ))
        .into());
    }
    let what = match (&req.network, &req.bridge) {
        (Some(n), _) => format!("network {n}"),
        (None, Some(b)) => format!("bridge {b}"),
        (None, None) => "user NAT".to_string(),
    };
    let op = new_operation(
        "vm.nic.add",
        &rec.project,
        &format!("vm/{name}"),
        &format!("adding a NIC on {what}"),
    );
    let observed = observed_state(&state, &rec);
    let at = now();
    let written = match &req.network {
        Some(network) => {
            let request = NicRequest {
                network: network.clone(),
                ip: req.ip.clone(),
                mac: req.mac.clone(),
            };
            crate::networks::check_macs_free(&state, &rec.project, std::slice::from_ref(&request))?;
            record_overlay_nic(&state, &rec, &op, &request, observed, at).await?
        }
        None => {
            let mac = match &req.mac {
                Some(m) => novacron_api_types::overlay::parse_mac(m)
                    .map_err(|e| ApiError::invalid(e.to_string()))?,
                None => crate::ipam::random_mac(),
            };
            let link = match &req.bridge {
                Some(bridge) => NicLink::Bridge {
                    bridge: bridge.clone(),
                },
                None => NicLink::Nat,
            };
            super::disks::record_change(&state, &rec, &op, |r| {
                Ok(nic_ops::begin_add(r, observed, link.clone(), &mac, &op.id, at)?.0)
            })
            .await?
        }
    };
    // The NIC this operation recorded (its name and port were chosen in the transaction).
    let nic = written
        .disk_plug
        .as_ref()
        .filter(|p| p.operation == op.id)
        .and_then(|p| written.added_nics.iter().find(|n| n.name == p.disk))
        .cloned()
        .ok_or_else(|| ApiError::internal("the added NIC was not recorded"))?;
    tracing::info!(vm = %name, nic = %nic.name, port = nic.port, operation = %op.id, "NIC add recorded");
    let (project, id) = (rec.project.clone(), op.id.clone());
    tokio::spawn(async move {
        let answer = plug(&state, &node, &project, &name, &nic, true).await;
        if let Err(e) = &answer {
            tracing::warn!(vm = %name, operation = %id, error = %e.message, "NIC add failed");
            // The agent takes out what it plugged when it fails; a call cut short (the
            // agent died mid-way) may have left the NIC plugged: ask it to take it out.
            if let Err(e) = plug(&state, &node, &project, &name, &nic, false).await {
                tracing::warn!(vm = %name, nic = %nic.name, error = %e.message, "cannot undo the failed NIC add");
            }
        }
        let message = |p: &NicPlugged| {
            format!(
                "{} added ({}){}",
                p.nic,
                nic.describe(),
                if p.live {
                    ": plugged into the running guest"
                } else {
                    "; the VM has it from its next start"
                }
            )
        };
        if let Err(e) =
            super::disks::conclude_plug(&state, &project, &name, &id, answer, message).await
        {
            tracing::warn!(vm = %name, operation = %id, error = %e.0.message, "cannot record the NIC operation's outcome");
        }
    });
    Ok(accepted(op))
}

/// Records an overlay NIC with a new address of its network on VM `rec`, with `op` and its
/// runner, in one transaction (chosen again when a concurrent writer took the address).
async fn record_overlay_nic(
    state: &Arc<AppState>,
    rec: &VmRecord,
    op: &novacron_api_types::Operation,
    request: &NicRequest,
    observed: novacron_api_types::VmState,
    at: novacron_api_types::UnixSeconds,
) -> ApiResult<VmRecord> {
    let owner = format!("{}/{}", rec.project, rec.name);
    let (state_ref, owner) = (&**state, &owner);
    let updated = typed_store::update(
        state.store.as_ref(),
        &records::vm_key(&rec.project, &rec.name),
        |current: VmRecord| async move {
            let planned =
                crate::ipam::plan_one(state_ref.store.as_ref(), &current.project, owner, request)
                    .await?;
            let link = NicLink::Network {
                network: planned.nic.network.clone(),
                vni: planned.nic.vni,
                ips: planned.nic.ips.clone(),
            };
            let (record, _) =
                nic_ops::begin_add(&current, observed, link, &planned.nic.mac, &op.id, at)?;
            Ok(Change::WriteWith {
                record,
                compares: planned.compares,
                ops: vec![planned.op, put_op(op)?, put_runner(state_ref, op)?],
            })
        },
    )
    .await?;
    super::disks::written_vm(state, updated, &rec.name).await
}

/// Remove a NIC `vm nic add` gave a VM (named `nic<N>` or by its MAC): unplugged from a
/// running guest (only with `force=true`), its overlay address freed. The NICs a VM was
/// created with stay.
#[utoipa::path(delete, path = "/api/v1/vms/{name}/nics/{nic}",
    params(("name" = String, Path), ("nic" = String, Path), super::disks::DetachQuery),
    responses((status = 202, body = novacron_api_types::OperationRef), (status = 400, body = ApiError), (status = 404, body = ApiError),
              (status = 409, body = ApiError)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Path((name, nic)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<super::disks::DetachQuery>,
) -> OpResponse {
    validate_name("vm", &name)?;
    let rec = find(&state, &name)?;
    let node = node_of(&state, &rec)?;
    let observed = observed_state(&state, &rec);
    let at = now();
    // Checked on the mirror first for the operation's message; again in the transaction.
    let (_, found) = nic_ops::begin_remove(&rec, observed, &nic, q.force, "-", at)?;
    let op = new_operation(
        "vm.nic.remove",
        &rec.project,
        &format!("vm/{name}"),
        &format!("removing {}", found.name),
    );
    super::disks::record_change(&state, &rec, &op, |r| {
        Ok(nic_ops::begin_remove(r, observed, &nic, q.force, &op.id, at)?.0)
    })
    .await?;
    tracing::info!(vm = %name, nic = %found.name, operation = %op.id, "NIC removal recorded");
    let (project, id) = (rec.project.clone(), op.id.clone());
    tokio::spawn(async move {
        let answer = plug(&state, &node, &project, &name, &found, false).await;
        if let Err(e) = &answer {
            tracing::warn!(vm = %name, operation = %id, error = %e.message, "NIC removal failed");
        }
        let message = |p: &NicPlugged| {
            format!(
                "{} removed{}",
                p.nic,
                if p.live {
                    " from the running guest"
                } else {
                    ""
                }
            )
        };
        if let Err(e) =
            super::disks::conclude_plug(&state, &project, &name, &id, answer, message).await
        {
            tracing::warn!(vm = %name, operation = %id, error = %e.0.message, "cannot record the NIC operation's outcome");
        }
    });
    Ok(accepted(op))
}

/// Asks the VM's agent to plug `nic` in (`attach`) or take it out.
async fn plug(
    state: &AppState,
    node: &NodeRecord,
    project: &str,
    name: &str,
    nic: &AddedNic,
    attach: bool,
) -> Result<NicPlugged, ApiError> {
    if attach {
        let path = format!("/agent/v1/vms/{project}/{name}/nics/attach");
        let job = NicAttachJob { nic: nic.clone() };
        super::agent::call_agent::<_, NicPlugged>(state, node, &path, &job).await
    } else {
        let path = format!("/agent/v1/vms/{project}/{name}/nics/detach");
        let job = NicDetachJob {
            nic: nic.name.clone(),
            port: nic.port,
        };
        super::agent::call_agent::<_, NicPlugged>(state, node, &path, &job).await
    }
}
