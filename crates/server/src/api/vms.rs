//! VM endpoints: create, list, show, power actions, delete. Every change writes the desired
//! state with a new generation and an operation record in one transaction; the node agent
//! acts on it and its status report finishes the operation.

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use novacron_api_types::{
    ApiError, ErrorCode, ImageKind, Operation, OperationRef, PowerState, StopRequest, Vm,
    VmCreateRequest, VmState, format_size, validate_name,
};

use super::operations::{new_operation, put_op};
use super::{ApiFailure, ApiResult, Json};
use crate::lifecycle::{self, Event};
use crate::placement;
use crate::records::{self, VmRecord, VmStatusRecord, now};
use crate::state::AppState;
use crate::typed_store::{self, Change};
use crate::vm_config::{self, NodeRoom};
use novacron_api_types::labels::Selector;
use novacron_api_types::{OperationState, VmSetRequest, VmSetResponse};

/// What the VM is observed doing (`creating` until its agent reported).
pub fn observed_state(state: &AppState, vm: &VmRecord) -> VmState {
    state
        .statuses
        .get(&records::vm_status_key(&vm.project, &vm.name))
        .map(|s| s.state)
        .unwrap_or(VmState::Creating)
}

pub fn view(state: &AppState, vm: &VmRecord) -> Vm {
    let status = state
        .statuses
        .get(&records::vm_status_key(&vm.project, &vm.name));
    Vm {
        name: vm.name.clone(),
        project: vm.project.clone(),
        uuid: vm.uuid.clone(),
        state: status
            .as_ref()
            .map(|s| s.state)
            .unwrap_or(VmState::Creating),
        state_reason: status.as_ref().and_then(|s| s.reason.clone()),
        desired: vm.power,
        node: Some(vm.node.clone()),
        cpus: vm.cpus,
        memory_bytes: vm.memory_bytes,
        disk_bytes: vm.disk_bytes,
        image: vm.image.clone(),
        accel: vm.accel,
        accel_in_use: status.as_ref().and_then(|s| s.accel_in_use.clone()),
        network: vm.network.clone(),
        storage: vm.storage.clone(),
        ha: vm.ha,
        ha_priority: vm.ha_priority,
        pid: status.as_ref().and_then(|s| s.pid),
        created_at: vm.created_at,
        generation: vm.generation,
        nics: vm.nics.clone(),
        added_nics: vm.added_nics.clone(),
        security_groups: vm.security_groups.clone(),
        bandwidth_bps: vm.bandwidth_bps,
        labels: vm.labels.clone(),
        description: vm.description.clone(),
        firmware: firmware(state, vm).into(),
        secure_boot: vm.secure_boot,
        tpm: vm.tpm,
        pending_cpus: vm.pending.and_then(|p| p.cpus),
        pending_memory_bytes: vm.pending.and_then(|p| p.memory_bytes),
        user_data: vm.user_data.is_some(),
        vendor_data: vm.vendor_data.is_some(),
        snapshots: vm.snapshots.clone(),
        vnc: vm.vnc,
        iso: vm.iso.clone(),
        data_disks: vm.data_disks.clone(),
        free_disk_slots: crate::disk_ops::free_disk_slots(vm),
        guest_interfaces: status
            .as_ref()
            .filter(|s| s.state == VmState::Running)
            .map(|s| s.guest_interfaces.clone())
            .unwrap_or_default(),
    }
}

/// What the guest boots through: OVMF for a UEFI VM, else SeaBIOS for disk images and QEMU's
/// direct kernel boot for kernel images.
fn firmware(state: &AppState, vm: &VmRecord) -> &'static str {
    if vm.firmware == novacron_api_types::Firmware::Uefi {
        return "uefi";
    }
    match state
        .image(&vm.project, &vm.image)
        .map(|i| matches!(i.kind, ImageKind::Kernel { .. }))
    {
        Some(true) => "kernel",
        _ => "bios",
    }
}

pub(crate) fn find(state: &AppState, name: &str) -> ApiResult<Arc<VmRecord>> {
    state
        .vms
        .get(&records::vm_key(&crate::tenancy::current_project(), name))
        .ok_or_else(|| {
            ApiFailure(ApiError::not_found(format!(
                "no VM named {name:?}: see `novacron vm list`"
            )))
        })
}

fn new_uuid() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("the system random generator failed");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Create a VM (and start it unless `start` is false).
#[utoipa::path(post, path = "/api/v1/vms", request_body = VmCreateRequest,
    responses((status = 202, body = OperationRef), (status = 400, body = ApiError), (status = 404, body = ApiError),
              (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Json(req): Json<VmCreateRequest>,
) -> ApiResult<(StatusCode, AxumJson<OperationRef>)> {
    let op = create_vm(&state, req, None).await?;
    Ok((
        StatusCode::ACCEPTED,
        AxumJson(OperationRef { operation: op }),
    ))
}

/// Creates a VM: checks the request, places it, and writes its record and operation in one
/// transaction. With `restore`, the disk is filled from a backup instead of made from the
/// image, and the image may be missing (disaster recovery from a repository alone: the
/// restored disk is complete and boots by itself).
pub async fn create_vm(
    state: &AppState,
    req: VmCreateRequest,
    restore: Option<novacron_api_types::backup::RestoreSource>,
) -> ApiResult<Operation> {
    create_vm_from(state, req, restore, None, vec![], vec![]).await
}

/// The ISO image `req` puts in the CD-ROM drive: `--iso`, or the image itself when it is
/// an ISO (an installer VM, which must say how large a disk to install onto). `--iso` must
/// name an ISO image of the project.
fn iso_to_attach(
    state: &AppState,
    project: &str,
    req: &VmCreateRequest,
    installer: bool,
) -> ApiResult<Option<String>> {
    if installer {
        if req.disk_bytes.is_none() {
            return Err(ApiError::invalid(format!(
                "image {} is an ISO 9660 installation medium: give --disk SIZE for the blank disk to install onto (e.g. --disk 20G), and --vnc to see the installer",
                req.image
            ))
            .into());
        }
        if let Some(other) = req.iso.as_ref().filter(|i| **i != req.image) {
            return Err(ApiError::invalid(format!(
                "image {} is already the installation medium; --iso {other} would be a second one",
                req.image
            ))
            .into());
        }
        return Ok(Some(req.image.clone()));
    }
    let Some(name) = &req.iso else {
        return Ok(None);
    };
    match state.image(project, name) {
        None => Err(ApiError::not_found(format!(
            "no image named {name:?} for --iso: import the ISO first with `novacron image import {name} FILE.iso`"
        ))
        .into()),
        Some(i) if i.kind != ImageKind::Iso => Err(ApiError::invalid(format!(
            "--iso {name}: image {name} is not an ISO 9660 medium (import one with `novacron image import NAME FILE.iso`)"
        ))
        .into()),
        Some(_) => Ok(Some(name.clone())),
    }
}

/// [`create_vm`], for a clone too: with `clone_of`, the disk starts from that VM's disk
/// (`vm clone`, see `api::disks`). `data_disks` and `added_nics` are what a clone or a
/// restore carries over from the source's hot-plug ports; the NICs get new MACs and, on
/// overlay networks, new addresses (see [`crate::nic_ops::carried_nics`]).
pub async fn create_vm_from(
    state: &AppState,
    req: VmCreateRequest,
    restore: Option<novacron_api_types::backup::RestoreSource>,
    clone_of: Option<novacron_api_types::disks::CloneSource>,
    data_disks: Vec<novacron_api_types::disks::DataDisk>,
    added_nics: Vec<novacron_api_types::nics::AddedNic>,
) -> ApiResult<Operation> {
    req.validate_carrying(added_nics.iter().any(|n| n.overlay().is_some()))?;
    let project = &crate::tenancy::current_project();
    let key = records::vm_key(project, &req.name);
    if state.vms.get(&key).is_some() {
        return Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!("a VM named {:?} already exists", req.name),
        )
        .into());
    }
    crate::security_groups::check_exist(state, project, &req.security_groups)?;
    let image = match state.image(project, &req.image) {
        Some(i) => Some(i),
        None if restore.is_some() => None,
        None => {
            return Err(ApiError::not_found(format!(
                "no image named {:?}: see `novacron image list`, or `novacron image build-tiny {}`",
                req.image, req.image
            ))
            .into());
        }
    };
    let firmware = req
        .firmware
        .or(image.as_ref().and_then(|i| i.firmware))
        .unwrap_or_default();
    novacron_api_types::validate::check_firmware(firmware, req.secure_boot, req.memory_bytes)?;
    let installer = image.as_ref().is_some_and(|i| i.kind == ImageKind::Iso);
    let iso = iso_to_attach(state, project, &req, installer)?;
    // Disk images, and kernel images carrying a disk (`vm template`), set the least size.
    let image_disk = image
        .as_ref()
        .and_then(|i| novacron_api_types::disks::image_disk_format(i));
    let disk_bytes = match image_disk {
        Some(_) => {
            let base = image
                .as_ref()
                .and_then(|i| i.virtual_size_bytes)
                .unwrap_or(0);
            match req.disk_bytes {
                Some(d) if d < base => {
                    return Err(ApiError::invalid(format!(
                        "--disk {} is smaller than image {} ({}); it can only grow",
                        format_size(d),
                        req.image,
                        format_size(base)
                    ))
                    .into());
                }
                Some(d) => Some(d),
                None => Some(base),
            }
        }
        None => req.disk_bytes,
    };
    if let Some(pool) = &req.storage
        && state.storage.get(&records::storage_key(pool)).is_none()
    {
        return Err(ApiError::not_found(format!(
            "no storage pool named {pool:?}: see `novacron storage list`"
        ))
        .into());
    }
    // Only disk images get a cloud-init seed.
    let no_cloud_init = match image.as_ref().map(|i| &i.kind) {
        Some(ImageKind::Kernel { .. }) => Some("kernel images have no cloud-init"),
        Some(ImageKind::Iso) => Some("an installer ISO reads no cloud-init data"),
        _ => None,
    };
    if let Some(why) = no_cloud_init {
        if !req.ssh_keys.is_empty() {
            return Err(
                ApiError::invalid(format!("--ssh-key needs a cloud (disk) image; {why}")).into(),
            );
        }
        if req.user_data.is_some() || req.vendor_data.is_some() {
            return Err(ApiError::invalid(format!(
                "--user-data and --vendor-data need a cloud (disk) image; {why}"
            ))
            .into());
        }
    }
    let power = if req.start {
        PowerState::Running
    } else {
        PowerState::Stopped
    };
    let kind = if restore.is_some() {
        "vm.restore"
    } else if clone_of.is_some() {
        "vm.clone"
    } else {
        "vm.create"
    };
    // The NICs created with and those carried over, one address request list: the first
    // `req.nics.len()` are the VM's own.
    let macs: Vec<String> = added_nics
        .iter()
        .map(|_| crate::ipam::random_mac())
        .collect();
    let mut requests = req.nics.clone();
    requests.extend(crate::nic_ops::carried_requests(&added_nics));
    let mut rec = VmRecord {
        name: req.name.clone(),
        project: project.into(),
        uuid: new_uuid(),
        cpus: req.cpus,
        memory_bytes: req.memory_bytes,
        disk_bytes,
        image: req.image.clone(),
        accel: req.accel,
        network: req.network.clone(),
        ssh_keys: req.ssh_keys.clone(),
        // Set once placed, below.
        node: String::new(),
        power,
        force: false,
        action: None,
        deleting: false,
        generation: 1,
        created_at: now(),
        operation: None,
        creating: true,
        storage: req.storage.clone(),
        ha: req.ha,
        ha_priority: req.ha_priority,
        restore,
        migration: None,
        migrating_to: None,
        nics: vec![],
        labels: req.labels.clone(),
        description: req.description.clone().filter(|d| !d.is_empty()),
        user_data: req.user_data.clone(),
        vendor_data: req.vendor_data.clone(),
        pending: None,
        snapshots: vec![],
        disk_resize: None,
        disk_linked: clone_of.as_ref().is_some_and(|c| c.linked),
        clone_of,
        vnc: req.vnc,
        iso,
        hotplug_ports: novacron_api_types::disks::HOTPLUG_PORTS,
        data_disks,
        added_nics: crate::nic_ops::carried_nics(&added_nics, &macs, &[]),
        nics_changed_at: None,
        security_groups: req.security_groups.clone(),
        bandwidth_bps: req.bandwidth_bps,
        disk_plug: None,
        firmware,
        secure_boot: req.secure_boot,
        tpm: req.tpm,
    };
    // What the VM needs of its node, as for a move later: the bridges of carried NICs too,
    // and no node disk for a disk in a storage pool.
    let demand = placement::demand_of(&rec);
    // The decision reserves the capacity in the scheduler; it is released again if the
    // record cannot be written.
    let vm_id = placement::vm_id(project, &req.name);
    let node = state
        .placement
        .reserve(&vm_id, &demand, req.node.as_deref())?;
    let op = new_operation(
        kind,
        project,
        &format!("vm/{}", req.name),
        &format!("placing on {node}"),
    );
    rec.node = node.clone();
    rec.operation = Some(op.id.clone());
    // Written with the project's usage, checked against its limits, in one transaction.
    let written = async {
        let value = super::json_bytes(&rec)?;
        let request = crate::quota::vm_usage(&rec);
        let exists = || {
            ApiError::new(
                ErrorCode::AlreadyExists,
                format!("a VM named {:?} already exists", req.name),
            )
        };
        if requests.is_empty() {
            return crate::quota::create_counted(
                state,
                project,
                &key,
                value,
                vec![put_op(&op)?],
                &request,
                exists,
            )
            .await
            .map_err(ApiFailure);
        }
        // The VM record, its operation, its NICs' addresses and the project's usage in one
        // transaction.
        crate::networks::check_macs_free(state, project, &requests)?;
        let (owner, key, rec, op, nics, own, added_nics, macs) = (
            format!("{project}/{}", req.name),
            &key,
            &rec,
            &op,
            &requests,
            req.nics.len(),
            &added_nics,
            &macs,
        );
        crate::quota::create_counted_with(
            state,
            project,
            key,
            &request,
            exists,
            |compares, usage| {
                let owner = &owner;
                async move {
                    let committed = crate::ipam::commit_with_nics(
                        state.store.as_ref(),
                        project,
                        owner,
                        nics,
                        compares,
                        |nics| {
                            let (own_nics, carried) = nics.split_at(own.min(nics.len()));
                            let rec = VmRecord {
                                nics: own_nics.to_vec(),
                                added_nics: crate::nic_ops::carried_nics(added_nics, macs, carried),
                                ..rec.clone()
                            };
                            Ok(vec![
                                novacron_store::Op::Put {
                                    key: key.clone(),
                                    value: super::json_bytes(&rec).map_err(|e| e.0)?,
                                },
                                put_op(op).map_err(|e| e.0)?,
                            ]
                            .into_iter()
                            .chain(usage.clone())
                            .collect())
                        },
                    )
                    .await?;
                    Ok(committed.map(|c| c.revision))
                }
            },
        )
        .await
        .map_err(ApiFailure)
    }
    .await;
    let revision = match written {
        Ok(revision) => revision,
        Err(e) => {
            state.placement.release(&vm_id);
            return Err(e);
        }
    };
    state.vms.wait_for(revision, AppState::CATCH_UP).await;
    tracing::info!(vm = %req.name, node = %node, operation = %op.id, kind, "VM created");
    Ok(op)
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only VMs whose labels match: `key=value`, `key!=value` or `key`, joined by commas.
    #[serde(default)]
    pub selector: Option<String>,
}

/// Every VM of the project (those matching `selector`).
#[utoipa::path(get, path = "/api/v1/vms", params(ListQuery),
    responses((status = 200, body = Vec<Vm>), (status = 400, body = ApiError)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<AxumJson<Vec<Vm>>> {
    let selector = Selector::parse(q.selector.as_deref().unwrap_or(""))?;
    let vms = state
        .vms
        .values_under(&records::vm_key(&crate::tenancy::current_project(), ""))
        .iter()
        .filter(|v| selector.matches(&v.labels))
        .map(|v| view(&state, v))
        .collect();
    Ok(AxumJson(vms))
}

/// What the VM's node can give it: its CPUs, and its memory less every other VM's there.
fn node_room(state: &AppState, vm: &VmRecord) -> ApiResult<NodeRoom> {
    let node = state
        .nodes
        .get(&records::node_key(&vm.node))
        .ok_or_else(|| {
            ApiError::conflict(format!("VM {} is on unknown node {}", vm.name, vm.node))
        })?;
    let others: u64 = state
        .vms
        .values_under(&records::vm_prefix())
        .iter()
        .filter(|o| {
            (o.node == vm.node || o.migrating_to.as_deref() == Some(vm.node.as_str()))
                && !(o.project == vm.project && o.name == vm.name)
        })
        .map(|o| {
            o.memory_bytes
                .max(o.pending.and_then(|p| p.memory_bytes).unwrap_or(0))
        })
        .sum();
    Ok(NodeRoom {
        node: vm.node.clone(),
        cpus: node.capacity.cpus,
        free_memory_bytes: node.capacity.memory_bytes.saturating_sub(others),
    })
}

/// Change a VM's labels and description (at once) and its CPUs and memory (when it next
/// starts; at once when stopped). Refused, with nothing changed, while the VM migrates or
/// is deleted, or when the node cannot give what is asked.
#[utoipa::path(post, path = "/api/v1/vms/{name}/set", params(("name" = String, Path)), request_body = VmSetRequest,
    responses((status = 200, body = VmSetResponse), (status = 400, body = ApiError), (status = 404, body = ApiError),
              (status = 409, body = ApiError)))]
pub async fn set(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<VmSetRequest>,
) -> ApiResult<AxumJson<VmSetResponse>> {
    validate_name("vm", &name)?;
    req.validate()?;
    let project = crate::tenancy::current_project();
    let key = records::vm_key(&project, &name);
    let mut op = new_operation("vm.set", &project, &format!("vm/{name}"), "changed");
    op.state = OperationState::Succeeded;
    let (op, req, state_ref) = (&op, &req, &state);
    let later = std::sync::Mutex::new(vec![]);
    let later_ref = &later;
    let updated = typed_store::update(state.store.as_ref(), &key, |rec: VmRecord| async move {
        let room = node_room(state_ref, &rec)?;
        let observed = observed_state(state_ref, &rec);
        let (next, at_next_start) = vm_config::apply_set(&rec, observed, req, &room)?;
        if let Ok(mut l) = later_ref.lock() {
            *l = at_next_start;
        }
        // More CPUs or memory count against the project's limits in the same transaction.
        Ok(crate::quota::counted_change(state_ref, &rec, next, vec![put_op(op)?]).await?)
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no VM named {name:?}: see `novacron vm list`")))?;
    state
        .vms
        .wait_for(updated.revision, AppState::CATCH_UP)
        .await;
    let at_next_start = later.lock().map(|l| l.clone()).unwrap_or_default();
    let mut op = op.clone();
    if !at_next_start.is_empty() {
        op.message = format!("changed; {} at next start", at_next_start.join(" and "));
    }
    tracing::info!(vm = %name, operation = %op.id, at_next_start = ?at_next_start, "VM settings changed");
    Ok(AxumJson(VmSetResponse {
        operation: op,
        vm: view(&state, &updated.record),
        at_next_start,
    }))
}

/// The node record of the node `rec` is placed on.
pub fn node_of(state: &AppState, rec: &VmRecord) -> ApiResult<Arc<crate::records::NodeRecord>> {
    state
        .nodes
        .get(&records::node_key(&rec.node))
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "node {} of VM {} is not registered",
                rec.node, rec.name
            ))
            .into()
        })
}

/// One VM.
#[utoipa::path(get, path = "/api/v1/vms/{name}", params(("name" = String, Path)),
    responses((status = 200, body = Vm), (status = 404, body = ApiError)))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<Vm>> {
    let vm = find(&state, &name)?;
    Ok(AxumJson(view(&state, &vm)))
}

/// Records `event` on the VM (through [`lifecycle::apply`]) as a new generation with a new
/// operation, retrying on concurrent changes. An operation still waiting on an older
/// generation is finished as superseded in the same transaction.
pub async fn change(
    state: &AppState,
    name: &str,
    kind: &str,
    message: &str,
    event: Event,
) -> ApiResult<Operation> {
    validate_name("vm", name)?;
    let project = crate::tenancy::current_project();
    let key = records::vm_key(&project, name);
    let op = new_operation(kind, &project, &format!("vm/{name}"), message);
    let (op, event) = (&op, &event);
    let updated = typed_store::update(state.store.as_ref(), &key, |rec: VmRecord| async move {
        let observed = observed_state(state, &rec);
        let mut next = lifecycle::apply(&rec, observed, event)?;
        let mut ops = vec![];
        if let Some(old) = next.operation.take()
            && let Some(old_kv) = state.store.get(&records::op_key(&old)).await?
            && let Ok(mut old_op) = serde_json::from_slice::<Operation>(&old_kv.value)
            && !old_op.is_done()
        {
            old_op.state = novacron_api_types::OperationState::Failed;
            old_op.message = format!("superseded by {} ({kind})", op.id);
            old_op.updated_at = now();
            ops.push(put_op(&old_op)?);
        }
        next.operation = Some(op.id.clone());
        ops.push(put_op(op)?);
        Ok(Change::WriteWith {
            record: next,
            compares: vec![],
            ops,
        })
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no VM named {name:?}: see `novacron vm list`")))?;
    state
        .vms
        .wait_for(updated.revision, AppState::CATCH_UP)
        .await;
    tracing::info!(vm = name, operation = %op.id, kind, generation = updated.record.generation, "VM change recorded");
    Ok(op.clone())
}

pub(crate) fn accepted(op: Operation) -> (StatusCode, AxumJson<OperationRef>) {
    (
        StatusCode::ACCEPTED,
        AxumJson(OperationRef { operation: op }),
    )
}

pub(crate) type OpResponse = ApiResult<(StatusCode, AxumJson<OperationRef>)>;

/// Start a stopped or crashed VM.
#[utoipa::path(post, path = "/api/v1/vms/{name}/start", params(("name" = String, Path)),
    responses((status = 202, body = OperationRef), (status = 404, body = ApiError)))]
pub async fn start(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> OpResponse {
    let op = change(&state, &name, "vm.start", "starting", Event::Start).await?;
    Ok(accepted(op))
}

/// Stop a VM: ACPI power-off with a timeout, then force; `force` kills at once.
#[utoipa::path(post, path = "/api/v1/vms/{name}/stop", params(("name" = String, Path)), request_body = StopRequest,
    responses((status = 202, body = OperationRef), (status = 404, body = ApiError)))]
pub async fn stop(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> OpResponse {
    let force = if body.is_empty() {
        false
    } else {
        serde_json::from_slice::<StopRequest>(&body)
            .map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))?
            .force
    };
    let op = change(
        &state,
        &name,
        "vm.stop",
        if force {
            "killing"
        } else {
            "asking the guest to power off"
        },
        Event::Stop { force },
    )
    .await?;
    Ok(accepted(op))
}

/// Reset a running VM.
#[utoipa::path(post, path = "/api/v1/vms/{name}/reboot", params(("name" = String, Path)),
    responses((status = 202, body = OperationRef), (status = 409, body = ApiError)))]
pub async fn reboot(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> OpResponse {
    let op = change(&state, &name, "vm.reboot", "rebooting", Event::Reboot).await?;
    Ok(accepted(op))
}

/// Pause a running VM (its vCPUs stop; memory stays).
#[utoipa::path(post, path = "/api/v1/vms/{name}/pause", params(("name" = String, Path)),
    responses((status = 202, body = OperationRef), (status = 409, body = ApiError)))]
pub async fn pause(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> OpResponse {
    let op = change(&state, &name, "vm.pause", "pausing", Event::Pause).await?;
    Ok(accepted(op))
}

/// Resume a paused VM.
#[utoipa::path(post, path = "/api/v1/vms/{name}/resume", params(("name" = String, Path)),
    responses((status = 202, body = OperationRef), (status = 409, body = ApiError)))]
pub async fn resume(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> OpResponse {
    let op = change(&state, &name, "vm.resume", "resuming", Event::Resume).await?;
    Ok(accepted(op))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Delete the VM even while it runs (QEMU is killed at once).
    #[serde(default)]
    pub force: bool,
}

/// Delete a VM: stop it, remove its disk, then its records. A VM that runs (or is paused,
/// starting or stopping) is deleted only with `force=true`, so a typo never kills a guest.
#[utoipa::path(delete, path = "/api/v1/vms/{name}", params(("name" = String, Path), DeleteQuery),
    responses((status = 202, description = "Deletion started", body = OperationRef),
        (status = 404, description = "No such VM", body = ApiError),
        (status = 409, description = "The VM runs and force was not given", body = ApiError)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> OpResponse {
    let op = change(
        &state,
        &name,
        "vm.delete",
        "deleting",
        Event::Delete { force: q.force },
    )
    .await?;
    Ok(accepted(op))
}

/// Whether the observed state satisfies what the record asks for.
pub fn satisfied(rec: &VmRecord, status: &VmStatusRecord) -> bool {
    if status.observed_generation < rec.generation {
        return false;
    }
    match rec.power {
        PowerState::Running => status.state == VmState::Running,
        PowerState::Paused => status.state == VmState::Paused,
        PowerState::Stopped => status.state == VmState::Stopped,
    }
}
