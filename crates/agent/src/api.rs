//! The agent's own HTTPS endpoint, called by the control plane (authenticated with the
//! secret it was given at registration): serial console log and attach, and metrics.

use std::io::SeekFrom;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use novacron_api_types::{ApiError, ConsoleLog, ErrorCode, validate_name};
use serde::Deserialize;
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

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/agent/v1/vms/{project}/{name}/console", get(console_log))
        .route(
            "/agent/v1/vms/{project}/{name}/console/attach",
            get(console_attach),
        )
        .route(
            "/agent/v1/vms/{project}/{name}/backup",
            axum::routing::post(backup),
        )
        .route(
            "/agent/v1/vms/{project}/{name}/snapshot",
            axum::routing::post(snapshot),
        )
        .route(
            "/agent/v1/vms/{project}/{name}/disks/resize",
            axum::routing::post(disk_resize),
        )
        .route(
            "/agent/v1/vms/{project}/{name}/disks/export",
            axum::routing::post(disk_export),
        )
        .route(
            "/agent/v1/migrations/incoming",
            axum::routing::post(migration_incoming),
        )
        .route(
            "/agent/v1/migrations/outgoing",
            axum::routing::post(migration_outgoing),
        )
        .route(
            "/agent/v1/migrations/{id}/cancel",
            axum::routing::post(migration_cancel),
        )
        .route("/metrics", get(metrics))
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
    tail_bytes: Option<u64>,
}

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

async fn console_attach(
    State(shared): State<Arc<Shared>>,
    Path((project, name)): Path<(String, String)>,
    req: Request,
) -> Result<Response, Failure> {
    let rd = run_dir(&shared, &project, &name)?;
    let mut console = tokio::net::UnixStream::connect(rd.console_socket())
        .await
        .map_err(|e| {
            Failure(ApiError::new(
                ErrorCode::Conflict,
                format!("the console of VM {name} is not available (is it running?): {e}"),
            ))
        })?;
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(up) => {
                let mut io = TokioIo::new(up);
                let _ = tokio::io::copy_bidirectional(&mut io, &mut console).await;
            }
            Err(e) => tracing::debug!(error = %e, "console upgrade failed"),
        }
    });
    Ok((
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade"),
            (header::UPGRADE, novacron_client::CONSOLE_PROTOCOL),
        ],
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

/// Grows one of this node's VMs' disk; answers the disk's size before and after.
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

/// A standalone copy of a stopped VM's disk, as the answer's body (`vm template`).
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
async fn migration_outgoing(
    State(shared): State<Arc<Shared>>,
    axum::Json(req): axum::Json<novacron_api_types::migration::OutgoingMigration>,
) -> Result<(StatusCode, axum::Json<serde_json::Value>), Failure> {
    crate::migration::outgoing(shared, req).map_err(Failure)?;
    Ok((StatusCode::ACCEPTED, axum::Json(serde_json::json!({}))))
}

/// Stops this node's side of a migration (the control plane recorded the abort first).
async fn migration_cancel(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> axum::Json<serde_json::Value> {
    let found = crate::migration::cancel(&shared, &id);
    axum::Json(serde_json::json!({ "running_here": found }))
}

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
