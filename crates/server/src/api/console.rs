//! Serial console access through the control plane: the log (what the guest wrote) and an
//! interactive attach (an HTTP upgrade relayed to the agent that runs the VM).

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use novacron_api_types::{ApiError, ConsoleLog};
use serde::Deserialize;

use super::{ApiFailure, ApiResult};
use crate::records::{self, NodeRecord};
use crate::state::AppState;

/// The HTTP upgrade protocol of console attach.
pub const CONSOLE_PROTOCOL: &str = "novacron-console";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct TailQuery {
    /// How many bytes from the end of the log (default 64 KiB, max 16 MiB).
    pub tail_bytes: Option<u64>,
}

fn locate(state: &AppState, name: &str) -> ApiResult<(Arc<NodeRecord>, String)> {
    novacron_api_types::validate_name("vm", name)?;
    let vm = state
        .vms
        .get(&records::vm_key(&crate::tenancy::current_project(), name))
        .ok_or_else(|| {
            ApiError::not_found(format!("no VM named {name:?}: see `novacron vm list`"))
        })?;
    let node = super::vms::node_of(state, &vm)?;
    let url = format!(
        "{}/agent/v1/vms/{}/{}/console",
        node.agent_url.trim_end_matches('/'),
        vm.project,
        vm.name
    );
    Ok((node, url))
}

fn unreachable(node: &str, e: &reqwest::Error) -> ApiFailure {
    ApiFailure(ApiError::unavailable(format!(
        "cannot reach the agent of node {node}: {}",
        novacron_client::error_chain(e)
    )))
}

/// What the guest wrote on its serial console.
#[utoipa::path(get, path = "/api/v1/vms/{name}/console", params(("name" = String, Path), TailQuery),
    responses((status = 200, body = ConsoleLog), (status = 404, body = ApiError), (status = 503, body = ApiError)))]
pub async fn log(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<TailQuery>,
) -> ApiResult<AxumJson<ConsoleLog>> {
    let (node, url) = locate(&state, &name)?;
    let tail = q.tail_bytes.unwrap_or(64 << 10).min(16 << 20);
    let resp = state
        .agent_http
        .get(format!("{url}?tail_bytes={tail}"))
        .bearer_auth(state.server_token(&node))
        .send()
        .await
        .map_err(|e| unreachable(&node.name, &e))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| unreachable(&node.name, &e))?;
    if !status.is_success() {
        return Err(match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(e) => ApiFailure(e),
            Err(_) => ApiFailure(ApiError::unavailable(format!(
                "agent of {} answered {status}",
                node.name
            ))),
        });
    }
    let log: ConsoleLog = serde_json::from_slice(&bytes)
        .map_err(|e| ApiFailure(ApiError::unavailable(format!("agent answer: {e}"))))?;
    Ok(AxumJson(log))
}

/// Attach to the serial console (HTTP upgrade to `novacron-console`; then raw bytes).
#[utoipa::path(get, path = "/api/v1/vms/{name}/console/attach", params(("name" = String, Path)),
    responses((status = 101, description = "switched to the raw console stream"), (status = 404, body = ApiError)))]
pub async fn attach(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let wants = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(CONSOLE_PROTOCOL));
    if !wants {
        return Err(ApiError::invalid(format!(
            "console attach needs `Upgrade: {CONSOLE_PROTOCOL}`"
        ))
        .into());
    }
    let (node, url) = locate(&state, &name)?;
    let agent_resp = state
        .agent_http
        .get(format!("{url}/attach"))
        .bearer_auth(state.server_token(&node))
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, CONSOLE_PROTOCOL)
        .send()
        .await
        .map_err(|e| unreachable(&node.name, &e))?;
    if agent_resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = agent_resp.status();
        let bytes = agent_resp.bytes().await.unwrap_or_default();
        return Err(match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(e) => ApiFailure(e),
            Err(_) => ApiFailure(ApiError::unavailable(format!(
                "agent of {} refused the console: {status}",
                node.name
            ))),
        });
    }
    let mut agent_io = agent_resp
        .upgrade()
        .await
        .map_err(|e| unreachable(&node.name, &e))?;
    let client_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match client_upgrade.await {
            Ok(up) => {
                let mut client_io = TokioIo::new(up);
                let _ = tokio::io::copy_bidirectional(&mut client_io, &mut agent_io).await;
            }
            Err(e) => tracing::debug!(error = %e, "console client upgrade failed"),
        }
    });
    Ok((
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade"),
            (header::UPGRADE, CONSOLE_PROTOCOL),
        ],
    )
        .into_response())
}
