//! VM disk endpoints: add a blank disk to a VM and detach it again (`vm disk add | detach`,
//! plugged into and out of a running guest), grow a disk (`vm disk resize`), make an image
//! of a stopped VM's disk (`vm template`) or a new VM from it (`vm clone`); docs/disks.md.
//! An add or detach is recorded on the VM first (the added disk counts against the quota in
//! that transaction), then a task asks the VM's agent to do it, and the outcome is recorded
//! with the finished operation: a disk the agent could not add leaves the record again.
//! The resize handler records the resize on the VM (refused while the VM migrates, is
//! deleted or created, or when the size does not grow the disk; the new size counts against
//! the project's quota in the same transaction), and a task asks the VM's agent to grow the
//! disk: through QEMU while the VM runs, so the guest sees the new size at once, with
//! qemu-img while it is stopped. The record's size changes only once the agent reported the
//! disk has it, in the transaction that finishes the operation.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use futures_util::StreamExt;
use novacron_api_types::disks::{
    CloneRequest, CloneSource, DISK0, DataDisk, DiskAddRequest, DiskAttachJob, DiskDetachJob,
    DiskExportJob, DiskPlugged, DiskResizeJob, DiskResizeRequest, DiskResized, TemplateRequest,
    disk_name,
};
use novacron_api_types::{
    ApiError, ErrorCode, Operation, OperationState, format_size, validate_name,
};
use tokio::io::AsyncWriteExt;

use super::operations::{finish, finish_with_vm, new_operation, put_op, put_runner};
use super::vms::{OpResponse, accepted, find, node_of, observed_state};
use super::{ApiResult, Json};
use crate::disk_ops;
use crate::records::{self, NodeRecord, VmRecord, now};
use crate::state::AppState;
use crate::typed_store::{self, Change};

/// Grow a VM's disk (`disk0`; `disk` names it too). A running guest sees the new size at once.
#[utoipa::path(post, path = "/api/v1/vms/{name}/disks/{disk}/resize",
    params(("name" = String, Path), ("disk" = String, Path)), request_body = DiskResizeRequest,
    responses((status = 202, body = novacron_api_types::OperationRef), (status = 400, body = ApiError), (status = 404, body = ApiError),
              (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn resize(
    State(state): State<Arc<AppState>>,
    Path((name, disk)): Path<(String, String)>,
    Json(req): Json<DiskResizeRequest>,
) -> OpResponse {
    validate_name("vm", &name)?;
    req.validate()?;
    let rec = find(&state, &name)?;
    let disk = disk_name(&name, &disk, &rec.data_disks)?;
    let node = node_of(&state, &rec)?;
    let op = new_operation(
        "vm.disk.resize",
        &rec.project,
        &format!("vm/{name}"),
        &format!("growing {disk} to {}", format_size(req.size_bytes)),
    );
    let (at, size_bytes) = (now(), req.size_bytes);
    record_change(&state, &rec, &op, |r| {
        Ok(disk_ops::begin_resize(r, &disk, size_bytes, &op.id, at)?)
    })
    .await?;
    tracing::info!(vm = %name, disk, size_bytes = req.size_bytes, operation = %op.id, "disk resize recorded");
    let (project, id) = (rec.project.clone(), op.id.clone());
    let job = DiskResizeJob {
        disk,
        size_bytes: req.size_bytes,
    };
    let state = state.clone();
    tokio::spawn(async move {
        let path = format!("/agent/v1/vms/{project}/{name}/disks/resize");
        let answer = super::agent::call_agent::<_, DiskResized>(&state, &node, &path, &job).await;
        if let Err(e) = &answer {
            tracing::warn!(vm = %name, operation = %id, error = %e.message, "disk resize failed");
        }
        if let Err(e) = conclude(&state, &project, &name, &id, answer).await {
            tracing::warn!(vm = %name, operation = %id, error = %e.0.message, "cannot record the disk resize's outcome");
        }
    });
    Ok(accepted(op))
}

/// Records what the agent answered: the VM's new size (or the resize dropped) and the
/// finished operation, in one transaction.
async fn conclude(
    state: &AppState,
    project: &str,
    name: &str,
    op_id: &str,
    answer: Result<DiskResized, ApiError>,
) -> ApiResult<()> {
    let (outcome, message) = match &answer {
        Ok(r) => (
            OperationState::Succeeded,
            format!(
                "{} grown from {} to {}{}",
                r.disk,
                format_size(r.previous_bytes),
                format_size(r.size_bytes),
                if r.live {
                    " while the VM runs (the guest sees it now; grow its partition and filesystem)"
                } else {
                    ""
                }
            ),
        ),
        Err(e) => (OperationState::Failed, e.message.clone()),
    };
    finish_with_vm(
        state.store.as_ref(),
        op_id,
        outcome,
        message,
        (project, name),
        |rec| match &answer {
            Ok(r) => disk_ops::finish_resize(rec, op_id, &r.disk, r.size_bytes),
            Err(_) => disk_ops::abandon_resize(rec, op_id),
        },
    )
    .await
}

/// Add a disk to a VM (`disk1`, `disk2`, ...), blank or a copy of a disk image: plugged
/// into the running guest at once, or there from its next start. Refused while the VM
/// migrates or changes another disk, when its hot-plug ports are all in use, or beyond the
/// project's disk quota.
#[utoipa::path(post, path = "/api/v1/vms/{name}/disks",
    params(("name" = String, Path)), request_body = DiskAddRequest,
    responses((status = 202, body = novacron_api_types::OperationRef), (status = 400, body = ApiError), (status = 404, body = ApiError),
              (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn add(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<DiskAddRequest>,
) -> OpResponse {
    validate_name("vm", &name)?;
    req.validate()?;
    let rec = find(&state, &name)?;
    let node = node_of(&state, &rec)?;
    let image = match &req.image {
        Some(i) => Some(disk_image(&state, &rec.project, i)?),
        None => None,
    };
    let size_bytes = added_disk_size(req.size_bytes, image.as_deref())?;
    let op = new_operation(
        "vm.disk.add",
        &rec.project,
        &format!("vm/{name}"),
        &match &image {
            Some(i) => format!(
                "adding a {} disk from image {}",
                format_size(size_bytes),
                i.name
            ),
            None => format!("adding a {} disk", format_size(size_bytes)),
        },
    );
    let observed = observed_state(&state, &rec);
    let at = now();
    let from = req.image.as_deref();
    let written = record_change(&state, &rec, &op, |r| {
        Ok(disk_ops::begin_add(r, observed, size_bytes, from, &op.id, at)?.0)
    })
    .await?;
    // The disk this operation recorded (its name and port were chosen in the transaction).
    let disk = written
        .disk_plug
        .as_ref()
        .filter(|p| p.operation == op.id)
        .and_then(|p| written.data_disks.iter().find(|d| d.name == p.disk))
        .cloned()
        .ok_or_else(|| ApiError::internal("the added disk was not recorded"))?;
    tracing::info!(vm = %name, disk = %disk.name, size_bytes, operation = %op.id, "disk add recorded");
    let (project, id) = (rec.project.clone(), op.id.clone());
    let state = state.clone();
    tokio::spawn(async move {
        let path = format!("/agent/v1/vms/{project}/{name}/disks/attach");
        let job = DiskAttachJob {
            disk: disk.clone(),
            image: image.map(|i| (*i).clone()),
        };
        let answer = super::agent::call_agent::<_, DiskPlugged>(&state, &node, &path, &job).await;
        if let Err(e) = &answer {
            tracing::warn!(vm = %name, operation = %id, error = %e.message, "disk add failed");
            // The agent removes what it made when it fails; a call cut short (the agent
            // died mid-way) may have left the disk plugged: ask it to take it out again.
            let undo = DiskDetachJob {
                disk: disk.name.clone(),
            };
            let path = format!("/agent/v1/vms/{project}/{name}/disks/detach");
            if let Err(e) =
                super::agent::call_agent::<_, DiskPlugged>(&state, &node, &path, &undo).await
            {
                tracing::warn!(vm = %name, disk = %disk.name, error = %e.message, "cannot undo the failed disk add");
            }
        }
        let message = |p: &DiskPlugged| {
            format!(
                "{} added ({}{}){}",
                p.disk,
                format_size(disk.size_bytes),
                disk.image
                    .as_ref()
                    .map(|i| format!(", a copy of image {i}"))
                    .unwrap_or_default(),
                if p.live {
                    ": the running guest sees it now (make a filesystem on it)"
                } else {
                    "; the VM has it from its next start"
                }
            )
        };
        if let Err(e) = conclude_plug(&state, &project, &name, &id, answer, message).await {
            tracing::warn!(vm = %name, operation = %id, error = %e.0.message, "cannot record the disk add's outcome");
        }
    });
    Ok(accepted(op))
}

/// Image `name` of `project` to copy onto an added disk: one that holds a disk.
fn disk_image(
    state: &AppState,
    project: &str,
    name: &str,
) -> ApiResult<Arc<novacron_api_types::Image>> {
    let image = state
        .image(project, name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no image named {name:?}: see `novacron image list`, or `novacron image import {name} FILE`"
            ))
        })?;
    if novacron_api_types::disks::image_disk_format(&image).is_none() {
        return Err(ApiError::invalid(format!(
            "image {name} holds no disk (an ISO goes into the CD-ROM drive with `vm create --iso`; a kernel image boots a VM): --image takes a disk image"
        ))
        .into());
    }
    Ok(image)
}

/// The size of an added disk: `asked`, or the image's; never smaller than the image.
fn added_disk_size(
    asked: Option<u64>,
    image: Option<&novacron_api_types::Image>,
) -> ApiResult<u64> {
    let from_image = image.and_then(|i| i.virtual_size_bytes);
    match (asked, from_image) {
        (Some(a), Some(i)) if a < i => Err(ApiError::invalid(format!(
            "--size {} is smaller than image {} ({}): leave --size out, or give at least that",
            format_size(a),
            image.map(|i| i.name.as_str()).unwrap_or_default(),
            format_size(i)
        ))
        .into()),
        (Some(a), _) => Ok(a),
        (None, Some(i)) => Ok(i.div_ceil(512) * 512),
        (None, None) => Err(ApiError::invalid(
            "the image's size is not known: give --size for the new disk",
        )
        .into()),
    }
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetachQuery {
    /// Also while the VM runs (the disk or NIC is unplugged from the guest).
    #[serde(default)]
    pub force: bool,
}

/// Detach an added disk from a VM and delete it with its data: unplugged from a running
/// guest (only with `force=true`), which must release it. The boot disk is never detached.
#[utoipa::path(delete, path = "/api/v1/vms/{name}/disks/{disk}",
    params(("name" = String, Path), ("disk" = String, Path), DetachQuery),
    responses((status = 202, body = novacron_api_types::OperationRef), (status = 400, body = ApiError), (status = 404, body = ApiError),
              (status = 409, body = ApiError)))]
pub async fn detach(
    State(state): State<Arc<AppState>>,
    Path((name, disk)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<DetachQuery>,
) -> OpResponse {
    validate_name("vm", &name)?;
    let rec = find(&state, &name)?;
    let disk = disk_name(&name, &disk, &rec.data_disks)?;
    let node = node_of(&state, &rec)?;
    let op = new_operation(
        "vm.disk.detach",
        &rec.project,
        &format!("vm/{name}"),
        &format!("detaching {disk}"),
    );
    let observed = observed_state(&state, &rec);
    let at = now();
    record_change(&state, &rec, &op, |r| {
        Ok(disk_ops::begin_detach(
            r, observed, &disk, q.force, &op.id, at,
        )?)
    })
    .await?;
    tracing::info!(vm = %name, disk = %disk, operation = %op.id, "disk detach recorded");
    let (project, id) = (rec.project.clone(), op.id.clone());
    let state = state.clone();
    tokio::spawn(async move {
        let path = format!("/agent/v1/vms/{project}/{name}/disks/detach");
        let job = DiskDetachJob { disk };
        let answer = super::agent::call_agent::<_, DiskPlugged>(&state, &node, &path, &job).await;
        if let Err(e) = &answer {
            tracing::warn!(vm = %name, operation = %id, error = %e.message, "disk detach failed");
        }
        let message = |p: &DiskPlugged| {
            format!(
                "{} detached{} and deleted",
                p.disk,
                if p.live {
                    " from the running guest"
                } else {
                    ""
                }
            )
        };
        if let Err(e) = conclude_plug(&state, &project, &name, &id, answer, message).await {
            tracing::warn!(vm = %name, operation = %id, error = %e.0.message, "cannot record the disk detach's outcome");
        }
    });
    Ok(accepted(op))
}

/// Records a disk change on VM `rec`: `begin` makes the next record from the one in the
/// store (or refuses), written with `op` and its runner in one transaction that also counts
/// the change against the project's quota; answers the record written, once this replica's
/// mirror has it.
pub(super) async fn record_change(
    state: &Arc<AppState>,
    rec: &VmRecord,
    op: &Operation,
    begin: impl Fn(&VmRecord) -> ApiResult<VmRecord>,
) -> ApiResult<VmRecord> {
    let (begin, state_ref) = (&begin, &**state);
    let updated = typed_store::update(
        state.store.as_ref(),
        &records::vm_key(&rec.project, &rec.name),
        |current: VmRecord| async move {
            let next = begin(&current)?;
            Ok(crate::quota::counted_change(
                state_ref,
                &current,
                next,
                vec![put_op(op)?, put_runner(state_ref, op)?],
            )
            .await?)
        },
    )
    .await?;
    written_vm(state, updated, &rec.name).await
}

/// The VM record an update wrote, once this replica's mirror has it (`None`: the VM is gone).
pub(super) async fn written_vm(
    state: &AppState,
    updated: Option<typed_store::Updated<VmRecord>>,
    name: &str,
) -> ApiResult<VmRecord> {
    let updated = updated.ok_or_else(|| {
        ApiError::not_found(format!("no VM named {name:?}: see `novacron vm list`"))
    })?;
    state
        .vms
        .wait_for(updated.revision, AppState::CATCH_UP)
        .await;
    Ok(updated.record)
}

/// Records what the agent answered to an add or detach (of a disk or a NIC), with the
/// finished operation, in one transaction (a NIC that leaves the record frees its address
/// in it).
pub(super) async fn conclude_plug<T>(
    state: &AppState,
    project: &str,
    name: &str,
    op_id: &str,
    answer: Result<T, ApiError>,
    message: impl Fn(&T) -> String,
) -> ApiResult<()> {
    let (outcome, text) = match &answer {
        Ok(p) => (OperationState::Succeeded, message(p)),
        Err(e) => (OperationState::Failed, e.message.clone()),
    };
    finish_with_vm(
        state.store.as_ref(),
        op_id,
        outcome,
        text,
        (project, name),
        |rec| match &answer {
            Ok(_) => disk_ops::finish_plug(rec, op_id, now()),
            Err(_) => disk_ops::abandon_plug(rec, op_id),
        },
    )
    .await
}

/// Make an image from a stopped VM's disk: a standalone (flattened) qcow2 copy that
/// `vm create --image` uses. The VM is kept as it was.
#[utoipa::path(post, path = "/api/v1/vms/{name}/template", params(("name" = String, Path)), request_body = TemplateRequest,
    responses((status = 202, body = novacron_api_types::OperationRef), (status = 400, body = ApiError), (status = 404, body = ApiError),
              (status = 409, body = ApiError)))]
pub async fn template(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<TemplateRequest>,
) -> OpResponse {
    validate_name("vm", &name)?;
    let rec = find(&state, &name)?;
    let image = req.image.clone().unwrap_or_else(|| name.clone());
    validate_name("image", &image)?;
    // Its own images and the public ones: a name means one image in a project.
    if state.image(&rec.project, &image).is_some() {
        return Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!("an image named {image:?} already exists; pick another name with --as"),
        )
        .into());
    }
    disk_ops::check_templatable(&rec, observed_state(&state, &rec))?;
    let source = state
        .image(&rec.project, &rec.image)
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "image {} of VM {name} no longer exists, and a template needs it to know how the disk boots",
                rec.image
            ))
        })?;
    let node = node_of(&state, &rec)?;
    let op = new_operation(
        "vm.template",
        &rec.project,
        &format!("vm/{name}"),
        &format!("copying the disk of VM {name} into image {image}"),
    );
    let runner = put_runner(&state, &op)?;
    state.store.txn(vec![], vec![put_op(&op)?, runner]).await?;
    tracing::info!(vm = %name, image = %image, operation = %op.id, "template started");
    let (project, id) = (rec.project.clone(), op.id.clone());
    let size = rec.disk_bytes.unwrap_or(0);
    let state = state.clone();
    tokio::spawn(async move {
        let path = format!("/agent/v1/vms/{project}/{name}/disks/export");
        let job = DiskExportJob {
            disk: DISK0.to_string(),
        };
        let (state_ref, node_ref, path_ref, job_ref) = (&*state, &node, &path, &job);
        let made = super::images::publish_from_disk(
            &state,
            &project,
            &image,
            Some(&*source),
            // VMs made from it boot the way the disk was installed.
            (rec.firmware == novacron_api_types::Firmware::Uefi)
                .then_some(novacron_api_types::Firmware::Uefi),
            |dest| async move { download(state_ref, node_ref, path_ref, job_ref, &dest).await },
        )
        .await;
        let (outcome, message) = match made {
            Ok(img) => (
                OperationState::Succeeded,
                format!(
                    "image {} made from the disk of VM {name} ({}, {} stored); VM {name} is kept as it was",
                    img.name,
                    format_size(img.virtual_size_bytes.unwrap_or(size)),
                    format_size(img.size_bytes)
                ),
            ),
            Err(e) => {
                tracing::warn!(vm = %name, operation = %id, error = %e.0.message, "template failed");
                (OperationState::Failed, e.0.message)
            }
        };
        if let Err(e) = finish(state.store.as_ref(), &id, outcome, message).await {
            tracing::warn!(operation = %id, error = %e.0.message, "cannot record the template's outcome");
        }
    });
    Ok(accepted(op))
}

/// Asks `node`'s agent for `path` (a POST of `job`) and writes the answer's body to `dest`.
async fn download(
    state: &AppState,
    node: &NodeRecord,
    path: &str,
    job: &DiskExportJob,
    dest: &std::path::Path,
) -> ApiResult<()> {
    let url = format!("{}{path}", node.agent_url.trim_end_matches('/'));
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::unavailable(format!(
            "copying a disk from the agent of node {}: {e}",
            node.name
        ))
    };
    let resp = state
        .agent_http
        .post(&url)
        .bearer_auth(state.server_token(node))
        .timeout(Duration::from_secs(4 * 3600))
        .json(job)
        .send()
        .await
        .map_err(|e| unreachable(&novacron_client::error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        let bytes = resp.bytes().await.unwrap_or_default();
        return Err(serde_json::from_slice::<ApiError>(&bytes)
            .unwrap_or_else(|_| unreachable(&format!("the agent answered {status}")))
            .into());
    }
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", dest.display())))?;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| unreachable(&e))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(format!("writing {}: {e}", dest.display())))?;
    }
    file.sync_all()
        .await
        .map_err(|e| ApiError::internal(format!("syncing {}: {e}", dest.display())))?;
    Ok(())
}

/// Make a new VM from a stopped VM: the same CPUs, memory, image, disk size, labels,
/// networks, added disks and added NICs, a new uuid, MACs and addresses, created stopped on the source's node, its disk a standalone
/// copy of the source's, or (`linked`) a copy-on-write overlay over the source's disk frozen
/// as a base that both then share. The clone's creation is the operation (`vm.clone`); if
/// the disk cannot be made, the clone is rolled back like any failed create.
#[utoipa::path(post, path = "/api/v1/vms/{name}/clone", params(("name" = String, Path)), request_body = CloneRequest,
    responses((status = 202, body = novacron_api_types::OperationRef), (status = 400, body = ApiError), (status = 404, body = ApiError),
              (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn clone(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<CloneRequest>,
) -> OpResponse {
    validate_name("vm", &name)?;
    validate_name("vm", &req.name)?;
    let src = find(&state, &name)?;
    disk_ops::check_copyable(&src, observed_state(&state, &src), "a clone")?;
    if let Some(node) = &req.node
        && *node != src.node
    {
        return Err(ApiError::invalid(format!(
            "a clone is made on node {}, where the disk of VM {name} is; --node {node} is not supported yet",
            src.node
        ))
        .into());
    }
    if state
        .vms
        .get(&records::vm_key(&src.project, &req.name))
        .is_some()
    {
        return Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!("a VM named {:?} already exists", req.name),
        )
        .into());
    }
    if req.linked {
        link_source(&state, &src).await?;
    }
    let create = disk_ops::clone_request(&src, &req.name);
    let source = CloneSource {
        project: src.project.clone(),
        name: src.name.clone(),
        linked: req.linked,
    };
    // Added disks are copied in full (a linked clone shares the boot disk only), in the
    // same ports, so the clone's machine has the source's shape.
    let added = src
        .data_disks
        .iter()
        .map(|d| DataDisk {
            image: None,
            ..d.clone()
        })
        .collect();
    // And the added NICs, in their ports, with new MACs and addresses.
    let op = super::vms::create_vm_from(
        &state,
        create,
        None,
        Some(source),
        added,
        src.added_nics.clone(),
    )
    .await?;
    tracing::info!(vm = %name, clone = %req.name, operation = %op.id, "clone started");
    Ok(accepted(op))
}

/// Marks the source of a linked clone as linked before its disk is frozen (a mark that
/// outlives a failed clone only keeps the VM from live migration, never the reverse).
async fn link_source(state: &AppState, src: &VmRecord) -> ApiResult<()> {
    let at = observed_state(state, src);
    typed_store::update(
        state.store.as_ref(),
        &records::vm_key(&src.project, &src.name),
        |rec: VmRecord| async move {
            disk_ops::check_linkable(&rec, at)?;
            if rec.disk_linked {
                return Ok(Change::Keep);
            }
            Ok(Change::Write(VmRecord {
                disk_linked: true,
                ..rec
            }))
        },
    )
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "no VM named {:?}: see `novacron vm list`",
            src.name
        ))
    })?;
    Ok(())
}
