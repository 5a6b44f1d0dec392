//! `vm exec`: a command run inside a running guest through its qemu-guest-agent
//! (docs/vm-exec.md). The handler checks the request, refuses a VM that migrates or is
//! deleted (naming the migration), and passes the request to the agent of the VM's node,
//! which answers once the command ended: its exit status and output. Running a command in
//! a guest is as much power as its console, so it takes the same role (`operator`); the
//! audit log records the call like every other.

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use novacron_api_types::exec::{ExecRequest, ExecResult};
use novacron_api_types::{ApiError, validate_name};

use super::vms::{find, node_of};
use super::{ApiResult, Json};
use crate::state::AppState;

// `call_agent` gives up after 300 s: the longest command wait ends well before.
const _: () = assert!(novacron_api_types::exec::MAX_TIMEOUT_S + 30 < 300);

/// Run a command in the VM's guest (through qemu-guest-agent, which the guest must run) and
/// answer its exit status and output once it ended.
#[utoipa::path(post, path = "/api/v1/vms/{name}/exec", tag = "vms", params(("name" = String, Path)), request_body = ExecRequest,
    responses((status = 200, body = ExecResult), (status = 400, body = ApiError), (status = 404, body = ApiError),
              (status = 409, body = ApiError), (status = 503, body = ApiError)))]
pub async fn exec(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(req): Json<ExecRequest>,
) -> ApiResult<AxumJson<ExecResult>> {
    validate_name("vm", &name)?;
    req.validate()?;
    let rec = find(&state, &name)?;
    crate::lifecycle::check_changeable(&rec)?;
    let node = node_of(&state, &rec)?;
    let path = format!("/agent/v1/vms/{}/{name}/exec", rec.project);
    let result: ExecResult = super::agent::call_agent(&state, &node, &path, &req).await?;
    tracing::info!(vm = %name, program = %req.command[0], exit_code = ?result.exit_code, elapsed_ms = result.elapsed_ms, "vm exec");
    Ok(AxumJson(result))
}
