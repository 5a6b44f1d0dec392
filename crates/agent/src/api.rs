//! The agent's own HTTPS endpoint, called by the control plane (authenticated with the
//! secret it was given at registration): serial console log and attach, the VM jobs
//! (backup, snapshots, disk resize and export, `vm exec`), migrations, and metrics. Its OpenAPI
//! document is in [`openapi`].

pub mod openapi;

use std::io::SeekFrom;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use novacron_api_types::{ApiError, ConsoleLog, ErrorCode, validate_name};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::state::Shared;

struct Failure(ApiError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0)).into_response()
    }
}

/// One route of the agent API: its method and path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    pub path: &'static str,
}

/// The agent API's router being built: each route added is recorded in the route table,
/// which the OpenAPI document is checked against (nothing else adds routes).
struct Routes {
    router: Router<Arc<Shared>>,
    table: Vec<RouteInfo>,
}

impl Routes {
    fn new() -> Self {
        Routes {
            router: Router::new(),
            table: vec![],
        }
    }

    fn get<H: Handler<T, Arc<Shared>>, T: 'static>(mut self, path: &'static str, h: H) -> Self {
        self.table.push(RouteInfo {
            method: Method::GET,
            path,
        });
        self.router = self.router.route(path, get(h));
        self
    }

    fn post<H: Handler<T, Arc<Shared>>, T: 'static>(mut self, path: &'static str, h: H) -> Self {
        self.table.push(RouteInfo {
            method: Method::POST,
            path,
        });
        self.router = self.router.route(path, post(h));
        self
    }
}

/// Every route, unassembled (no state, no authentication yet).
fn routes() -> Routes {
    Routes::new()
        .get("/agent/v1/vms/{project}/{name}/console", console_log)
        .get(
            "/agent/v1/vms/{project}/{name}/console/attach",
            console_attach,
        )
        .get("/agent/v1/vms/{project}/{name}/vnc", vnc_attach)
        .post("/agent/v1/vms/{project}/{name}/backup", backup)
        .post("/agent/v1/vms/{project}/{name}/snapshot", snapshot)
        .post("/agent/v1/vms/{project}/{name}/disks/attach", disk_attach)
        .post("/agent/v1/vms/{project}/{name}/disks/detach", disk_detach)
        .post("/agent/v1/vms/{project}/{name}/disks/resize", disk_resize)
        .post("/agent/v1/vms/{project}/{name}/disks/export", disk_export)
        .post("/agent/v1/vms/{project}/{name}/nics/attach", nic_attach)
        .post("/agent/v1/vms/{project}/{name}/nics/detach", nic_detach)
        .post("/agent/v1/vms/{project}/{name}/exec", exec)
        .post("/agent/v1/migrations/incoming", migration_incoming)
        .post("/agent/v1/migrations/outgoing", migration_outgoing)
        .post("/agent/v1/migrations/{id}/cancel", migration_cancel)
        .get("/metrics", metrics)
}

/// Every route the agent API serves (what its OpenAPI document must list).
#[cfg(test)]
fn route_table() -> Vec<RouteInfo> {
    routes().table
}

pub fn router(shared: Arc<Shared>) -> Router {
    routes()
        .router
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            authenticate,
        ))
        .with_state(shared)
}

/// Only the control plane (holder of the server token) may call the agent.
async fn authenticate(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = shared.server_token.as_bytes();
    let ok = presented.len() == expected.len()
        && presented
            .as_bytes()
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !ok {
        return Failure(ApiError::new(
            ErrorCode::Unauthenticated,
            "invalid agent token",
        ))
        .into_response();
    }
    next.run(req).await
}

fn run_dir(shared: &Shared, project: &str, name: &str) -> Result<novacron_qemu::RunDir, Failure> {
    validate_name("project", project).map_err(|e| Failure(ApiError::invalid(e.to_string())))?;
    validate_name("vm", name).map_err(|e| Failure(ApiError::invalid(e.to_string())))?;
    Ok(novacron_qemu::RunDir::new(
        shared.vm_dir(project, name).join("run"),
    ))
}

#[derive(Deserialize)]
struct TailQuery {
    /// How much of the log's end to answer, in bytes (default 64 KiB, at most 16 MiB).
    tail_bytes: Option<u64>,
}

/// The end of the VM's serial console log (empty while the VM has written none).
#[utoipa::path(get, path = "/agent/v1/vms/{project}/{name}/console", tag = "console",
    operation_id = "agent_vm_console_log",
    params(("project" = String, Path, description = "The VM's project."), ("name" = String, Path, description = "The VM's name."), ("tail_bytes" = Option<u64>, Query, description = "How much of the log's end to answer, in bytes (default 64 KiB, at most 16 MiB).")),
    responses(
        (status = 200, description = "The log's end; `truncated` when it was cut.", body = ConsoleLog),
        (status = 400, description = "The project or VM name is invalid.", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 500, description = "The log cannot be read.", body = ApiError),
    ))]
async fn console_log(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    Query(q): Query<TailQuery>,
) -> Result<axum::Json<ConsoleLog>, Failure> {
    let rd = run_dir(&shared, &project, &name)?;
    let tail = q.tail_bytes.unwrap_or(64 << 10).min(16 << 20);
    let mut f = match tokio::fs::File::open(rd.console_log()).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(axum::Json(ConsoleLog {
                text: String::new(),
                truncated: false,
            }));
        }
        Err(e) => {
            return Err(Failure(ApiError::internal(format!(
                "reading the console log: {e}"
            ))));
        }
    };
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(tail);
    f.seek(SeekFrom::Start(start))
        .await
        .map_err(|e| Failure(ApiError::internal(e.to_string())))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.read_to_end(&mut buf)
        .await
        .map_err(|e| Failure(ApiError::internal(e.to_string())))?;
    Ok(axum::Json(ConsoleLog {
        text: String::from_utf8_lossy(&buf).into_owned(),
        truncated: start > 0,
    }))
}

/// Attaches to the VM's serial console: the request asks to upgrade the connection
/// (`Connection: upgrade`, `Upgrade: novacron-console`), and after the 101 answer the
/// connection carries the console's raw bytes both ways (what the guest writes to its
/// serial port, and keystrokes to it) until either side closes it.
#[utoipa::path(get, path = "/agent/v1/vms/{project}/{name}/console/attach", tag = "console",
    operation_id = "agent_vm_console_attach",
    params(("project" = String, Path, description = "The VM's project."), ("name" = String, Path, description = "The VM's name."), ("Upgrade" = String, Header, description = "The protocol to switch to: `novacron-console`.")),
    responses(
        (status = 101, description = "Switching Protocols: from here on the connection is the VM's serial console, raw bytes both ways, until either side closes it."),
        (status = 400, description = "The project or VM name is invalid.", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 409, description = "The VM's console is not available here (the VM is not running).", body = ApiError),
    ))]
async fn console_attach(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    req: Request,
) -> Result<Response, Failure> {
    let rd = run_dir(&shared, &project, &name)?;
    relay_socket(
        req,
        &rd.console_socket(),
        novacron_client::CONSOLE_PROTOCOL,
        || format!("the console of VM {name} is not available (is it running?)"),
    )
    .await
}

/// Attaches to the VM's graphical console: after the 101 answer to `Upgrade: novacron-vnc`,
/// the connection carries QEMU's VNC server (RFB 3.8, no password: the control plane decided
/// who may open it) both ways until either side closes it.
#[utoipa::path(get, path = "/agent/v1/vms/{project}/{name}/vnc", tag = "console",
    operation_id = "agent_vm_vnc_attach",
    params(("project" = String, Path, description = "The VM's project."), ("name" = String, Path, description = "The VM's name."), ("Upgrade" = String, Header, description = "The protocol to switch to: `novacron-vnc`.")),
    responses(
        (status = 101, description = "Switching Protocols: from here on the connection is the VM's VNC server (RFB), both ways, until either side closes it."),
        (status = 400, description = "The project or VM name is invalid.", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 409, description = "The VM has no graphical console here (it is not running, or was created without `--vnc`).", body = ApiError),
    ))]
async fn vnc_attach(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    req: Request,
) -> Result<Response, Failure> {
    let rd = run_dir(&shared, &project, &name)?;
    relay_socket(req, &rd.vnc_socket(), novacron_client::VNC_PROTOCOL, || {
        format!(
            "VM {name} has no graphical console here (is it running, and was it created with --vnc?)"
        )
    })
    .await
}

/// Connects to QEMU's unix socket `socket`, then answers 101 and copies bytes both ways
/// between it and the upgraded connection; a socket nobody listens on is a 409 saying `why`.
async fn relay_socket(
    req: Request,
    socket: &std::path::Path,
    protocol: &'static str,
    why: impl FnOnce() -> String,
) -> Result<Response, Failure> {
    let mut qemu_io = tokio::net::UnixStream::connect(socket).await.map_err(|e| {
        Failure(ApiError::new(
            ErrorCode::Conflict,
            format!("{}: {e}", why()),
        ))
    })?;
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(up) => {
                let mut io = TokioIo::new(up);
                let _ = tokio::io::copy_bidirectional(&mut io, &mut qemu_io).await;
            }
            Err(e) => tracing::debug!(error = %e, protocol, "upgrade failed"),
        }
    });
    Ok((
        StatusCode::SWITCHING_PROTOCOLS,
        [(header::CONNECTION, "upgrade"), (header::UPGRADE, protocol)],
    )
        .into_response())
}

/// What a job needs of the worker of this node's VM `project/name` (404 while there is none).
fn worker_access(
    shared: &Arc<Shared>,
    project: &str,
    name: &str,
) -> Result<crate::backup::VmAccess, Failure> {
    run_dir(shared, project, name)?;
    let workers = shared.workers.lock().unwrap_or_else(|p| p.into_inner());
    workers
        .get(&format!("{project}/{name}"))
        .map(|w| w.access(shared))
        .ok_or_else(|| {
            Failure(ApiError::not_found(format!(
                "VM {name} is not (yet) on this node"
            )))
        })
}

/// Starts a backup of one of this node's VMs (the control plane follows the operation).
#[utoipa::path(post, path = "/agent/v1/vms/{project}/{name}/backup", tag = "vms",
    operation_id = "agent_vm_backup",
    params(("project" = String, Path, description = "The VM's project."), ("name" = String, Path, description = "The VM's name.")), request_body = novacron_api_types::backup::BackupJob,
    responses(
        (status = 202, description = "Accepted: the backup runs in the background and reports to the job's operation; the body is an empty object.", body = Object),
        (status = 400, description = "The names are invalid, or the VM has no disk here.", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 404, description = "The VM is not (yet) on this node.", body = ApiError),
        (status = 409, description = "The VM is busy (another backup, a start or a stop).", body = ApiError),
    ))]
async fn backup(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    axum::Json(job): axum::Json<novacron_api_types::backup::BackupJob>,
) -> Result<(StatusCode, axum::Json<serde_json::Value>), Failure> {
    let access = worker_access(&shared, &project, &name)?;
    crate::backup::start(shared.clone(), access, job).map_err(Failure)?;
    Ok((StatusCode::ACCEPTED, axum::Json(serde_json::json!({}))))
}

/// Takes, reverts, deletes or lists the VM's snapshots; answers with the disk's snapshots.
#[utoipa::path(post, path = "/agent/v1/vms/{project}/{name}/snapshot", tag = "vms",
    operation_id = "agent_vm_snapshot",
    params(("project" = String, Path, description = "The VM's project."), ("name" = String, Path, description = "The VM's name.")), request_body = novacron_api_types::SnapshotJob,
    responses(
        (status = 200, description = "Done: the snapshots the VM's disk holds now.", body = [novacron_api_types::VmSnapshot]),
        (status = 400, description = "The names are invalid, or the VM has no disk.", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 404, description = "The VM is not (yet) on this node, or has no such snapshot.", body = ApiError),
        (status = 409, description = "The VM is busy, the snapshot exists already, or the VM's power state does not allow it.", body = ApiError),
        (status = 500, description = "QEMU or qemu-img failed.", body = ApiError),
    ))]
async fn snapshot(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    axum::Json(job): axum::Json<novacron_api_types::SnapshotJob>,
) -> Result<axum::Json<Vec<novacron_api_types::VmSnapshot>>, Failure> {
    let access = worker_access(&shared, &project, &name)?;
    crate::snapshot::run(access, job)
        .await
        .map(axum::Json)
        .map_err(Failure)
}

/// Adds a disk (blank, or a copy of an image) to one of this node's VMs: its file, plugged
/// into the guest if it runs.
#[utoipa::path(post, path = "/agent/v1/vms/{project}/{name}/disks/attach", tag = "vms",
    operation_id = "agent_vm_disk_attach",
    params(("project" = String, Path, description = "The VM's project."), ("name" = String, Path, description = "The VM's name.")), request_body = novacron_api_types::disks::DiskAttachJob,
    responses(
        (status = 200, description = "The disk is the VM's (plugged in when `live`).", body = novacron_api_types::disks::DiskPlugged),
        (status = 400, description = "The names are invalid.", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 404, description = "The VM is not (yet) on this node.", body = ApiError),
        (status = 409, description = "The VM stayed busy (a backup, a snapshot, a start or a stop).", body = ApiError),
        (status = 500, description = "QEMU or qemu-img failed; nothing of the disk is left.", body = ApiError),
    ))]
async fn disk_attach(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    axum::Json(job): axum::Json<novacron_api_types::disks::DiskAttachJob>,
) -> Result<axum::Json<novacron_api_types::disks::DiskPlugged>, Failure> {
    let access = worker_access(&shared, &project, &name)?;
    crate::disk::attach(&shared, access, job)
        .await
        .map(axum::Json)
        .map_err(Failure)
}

/// Plugs a NIC `vm nic add` gave one of this node's VMs into it, if it runs.
#[utoipa::path(post, path = "/agent/v1/vms/{project}/{name}/nics/attach", tag = "vms",
    operation_id = "agent_vm_nic_attach",
    params(("project" = String, Path, description = "The VM's project."), ("name" = String, Path, description = "The VM's name.")), request_body = novacron_api_types::nics::NicAttachJob,
    responses(
        (status = 200, description = "The NIC is the VM's (plugged in when `live`).", body = novacron_api_types::nics::NicPlugged),
        (status = 400, description = "The names are invalid.", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 404, description = "The VM is not (yet) on this node.", body = ApiError),
        (status = 409, description = "The VM stayed busy (a backup, a snapshot, a start or a stop).", body = ApiError),
        (status = 500, description = "The bridge is missing or QEMU failed; nothing of the NIC is left.", body = ApiError),
    ))]
async fn nic_attach(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    axum::Json(job): axum::Json<novacron_api_types::nics::NicAttachJob>,
) -> Result<axum::Json<novacron_api_types::nics::NicPlugged>, Failure> {
    let access = worker_access(&shared, &project, &name)?;
    crate::nic::attach(access, job)
        .await
        .map(axum::Json)
        .map_err(Failure)
}

/// Takes an added NIC out of one of this node's VMs, if it runs.
#[utoipa::path(post, path = "/agent/v1/vms/{project}/{name}/nics/detach", tag = "vms",
    operation_id = "agent_vm_nic_detach",
    params(("project" = String, Path, description = "The VM's project."), ("name" = String, Path, description = "The VM's name.")), request_body = novacron_api_types::nics::NicDetachJob,
    responses(
        (status = 200, description = "The NIC is gone (unplugged from the guest when `live`).", body = novacron_api_types::nics::NicPlugged),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 404, description = "The VM is not (yet) on this node.", body = ApiError),
        (status = 409, description = "The VM stayed busy (a backup, a snapshot, a start or a stop).", body = ApiError),
        (status = 500, description = "The guest did not release the NIC, or QEMU failed; the NIC stays.", body = ApiError),
    ))]
async fn nic_detach(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    axum::Json(job): axum::Json<novacron_api_types::nics::NicDetachJob>,
) -> Result<axum::Json<novacron_api_types::nics::NicPlugged>, Failure> {
    let access = worker_access(&shared, &project, &name)?;
    crate::nic::detach(access, job)
        .await
        .map(axum::Json)
        .map_err(Failure)
}

/// Removes an added disk from one of this node's VMs: unplugged from the running guest,
/// then deleted.
#[utoipa::path(post, path = "/agent/v1/vms/{project}/{name}/disks/detach", tag = "vms",
    operation_id = "agent_vm_disk_detach",
    params(("project" = String, Path, description = "The VM's project."), ("name" = String, Path, description = "The VM's name.")), request_body = novacron_api_types::disks::DiskDetachJob,
    responses(
        (status = 200, description = "The disk is gone (unplugged from the guest when `live`).", body = novacron_api_types::disks::DiskPlugged),
        (status = 400, description = "The names are invalid, or the disk is the boot disk.", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 404, description = "The VM is not (yet) on this node.", body = ApiError),
        (status = 409, description = "The VM stayed busy (a backup, a snapshot, a start or a stop).", body = ApiError),
        (status = 500, description = "The guest did not release the disk, or QEMU failed; the disk stays.", body = ApiError),
    ))]
async fn disk_detach(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    axum::Json(job): axum::Json<novacron_api_types::disks::DiskDetachJob>,
) -> Result<axum::Json<novacron_api_types::disks::DiskPlugged>, Failure> {
    let access = worker_access(&shared, &project, &name)?;
    crate::disk::detach(access, job)
        .await
        .map(axum::Json)
        .map_err(Failure)
}

/// Grows one of this node's VMs' disk; answers the disk's size before and after.
#[utoipa::path(post, path = "/agent/v1/vms/{project}/{name}/disks/resize", tag = "vms",
    operation_id = "agent_vm_disk_resize",
    params(("project" = String, Path, description = "The VM's project."), ("name" = String, Path, description = "The VM's name.")), request_body = novacron_api_types::disks::DiskResizeJob,
    responses(
        (status = 200, description = "Grown: the disk's size before and after.", body = novacron_api_types::disks::DiskResized),
        (status = 400, description = "The names are invalid, the VM has no such disk, or the size would shrink it.", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 404, description = "The VM is not (yet) on this node.", body = ApiError),
        (status = 409, description = "The VM is busy (a backup, a snapshot, a start or a stop).", body = ApiError),
        (status = 500, description = "QEMU or qemu-img failed.", body = ApiError),
    ))]
async fn disk_resize(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    axum::Json(job): axum::Json<novacron_api_types::disks::DiskResizeJob>,
) -> Result<axum::Json<novacron_api_types::disks::DiskResized>, Failure> {
    let access = worker_access(&shared, &project, &name)?;
    crate::disk::resize(access, job)
        .await
        .map(axum::Json)
        .map_err(Failure)
}

/// Runs a command in one of this node's guests through its qemu-guest-agent (`vm exec`).
#[utoipa::path(post, path = "/agent/v1/vms/{project}/{name}/exec", tag = "vms",
    operation_id = "agent_vm_exec",
    params(("project" = String, Path, description = "The VM's project."), ("name" = String, Path, description = "The VM's name.")), request_body = novacron_api_types::exec::ExecRequest,
    responses(
        (status = 200, description = "The command ended: its exit status and output.", body = novacron_api_types::exec::ExecResult),
        (status = 400, description = "The request is invalid, or the guest agent refused the command (e.g. no such program).", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 404, description = "The VM is not (yet) on this node.", body = ApiError),
        (status = 409, description = "The VM is not running, is paused, runs no guest agent, or the command had not ended by its timeout.", body = ApiError),
        (status = 500, description = "The guest agent channel failed.", body = ApiError),
    ))]
async fn exec(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    axum::Json(req): axum::Json<novacron_api_types::exec::ExecRequest>,
) -> Result<axum::Json<novacron_api_types::exec::ExecResult>, Failure> {
    let access = worker_access(&shared, &project, &name)?;
    crate::exec::run(access, req)
        .await
        .map(axum::Json)
        .map_err(Failure)
}

/// A standalone copy of a stopped VM's disk, as the answer's body (`vm template`).
#[utoipa::path(post, path = "/agent/v1/vms/{project}/{name}/disks/export", tag = "vms",
    operation_id = "agent_vm_disk_export",
    params(("project" = String, Path, description = "The VM's project."), ("name" = String, Path, description = "The VM's name.")), request_body = novacron_api_types::disks::DiskExportJob,
    responses(
        (status = 200, description = "The disk as a standalone qcow2 file (no backing file, no snapshots).", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "The names are invalid, or the VM has no such disk.", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 404, description = "The VM is not (yet) on this node.", body = ApiError),
        (status = 409, description = "The VM is running or busy: its disk is copied only while it is stopped.", body = ApiError),
        (status = 500, description = "qemu-img failed, or the copy cannot be read.", body = ApiError),
    ))]
async fn disk_export(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    axum::Json(job): axum::Json<novacron_api_types::disks::DiskExportJob>,
) -> Result<Response, Failure> {
    let access = worker_access(&shared, &project, &name)?;
    let work = shared.vm_dir(&project, &name);
    let (file, len) = crate::disk::export(access, job, &work)
        .await
        .map_err(Failure)?;
    let body =
        axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response())
}

/// Prepares this node to receive a VM (destination QEMU, DWCP listener).
#[utoipa::path(post, path = "/agent/v1/migrations/incoming", tag = "migrations",
    operation_id = "agent_migration_incoming",
    request_body = novacron_api_types::migration::IncomingMigration,
    responses(
        (status = 200, description = "Ready: where the source's DWCP session must connect.", body = novacron_api_types::migration::IncomingReady),
        (status = 400, description = "A name or the secret is invalid, or this node cannot take the asked mode (post-copy).", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 409, description = "The migration runs here already, or the VM's files are still being removed; try again.", body = ApiError),
        (status = 503, description = "The destination QEMU or the DWCP listener cannot be started.", body = ApiError),
    ))]
async fn migration_incoming(
    State(shared): State<Arc<Shared>>,
    axum::Json(req): axum::Json<novacron_api_types::migration::IncomingMigration>,
) -> Result<axum::Json<novacron_api_types::migration::IncomingReady>, Failure> {
    crate::migration::incoming(shared, req)
        .await
        .map(axum::Json)
        .map_err(Failure)
}

/// Starts sending one of this node's VMs.
#[utoipa::path(post, path = "/agent/v1/migrations/outgoing", tag = "migrations",
    operation_id = "agent_migration_outgoing",
    request_body = novacron_api_types::migration::OutgoingMigration,
    responses(
        (status = 202, description = "Accepted: the VM is being sent; the body is an empty object.", body = Object),
        (status = 400, description = "A name, the DWCP address or the secret is invalid.", body = ApiError),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
        (status = 404, description = "The VM is not on this node.", body = ApiError),
        (status = 409, description = "The VM has no QEMU running here, or the migration runs here already.", body = ApiError),
        (status = 500, description = "The migration's work directory cannot be prepared.", body = ApiError),
    ))]
async fn migration_outgoing(
    State(shared): State<Arc<Shared>>,
    axum::Json(req): axum::Json<novacron_api_types::migration::OutgoingMigration>,
) -> Result<(StatusCode, axum::Json<serde_json::Value>), Failure> {
    crate::migration::outgoing(shared, req).map_err(Failure)?;
    Ok((StatusCode::ACCEPTED, axum::Json(serde_json::json!({}))))
}

/// The answer to a migration's cancel.
#[derive(Serialize, utoipa::ToSchema)]
struct MigrationCancelled {
    /// Whether the migration was running on this node (and is now being stopped).
    running_here: bool,
}

/// Stops this node's side of a migration (the control plane recorded the abort first).
#[utoipa::path(post, path = "/agent/v1/migrations/{id}/cancel", tag = "migrations",
    operation_id = "agent_migration_cancel",
    params(("id" = String, Path, description = "The migration's id.")),
    responses(
        (status = 200, description = "Stopped here, if it ran here.", body = MigrationCancelled),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
    ))]
async fn migration_cancel(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> axum::Json<MigrationCancelled> {
    let running_here = crate::migration::cancel(&shared, &id);
    axum::Json(MigrationCancelled { running_here })
}

/// This agent's metrics (its VMs' and host's usage, see docs/metrics.md), as OpenMetrics text.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    operation_id = "agent_metrics",
    responses(
        (status = 200, description = "The metrics, OpenMetrics text format 1.0.0.", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "No bearer token, or not this agent's.", body = ApiError),
    ))]
async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut out = String::new();
    let registry = shared.registry.lock().unwrap_or_else(|p| p.into_inner());
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
}
