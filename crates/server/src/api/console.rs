//! Console access through the control plane: the serial console's log (what the guest wrote)
//! and interactive attach, and the graphical console (VNC) of VMs created with `--vnc`; each
//! attach is an HTTP upgrade relayed to the agent that runs the VM.

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use novacron_api_types::{ApiError, ConsoleLog, ErrorCode, PowerState};
use serde::Deserialize;

use super::{ApiFailure, ApiResult};
use crate::records::{self, NodeRecord, VmRecord};
use crate::state::AppState;

/// The HTTP upgrade protocol of console attach.
pub const CONSOLE_PROTOCOL: &str = "novacron-console";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct TailQuery {
    /// How many bytes from the end of the log (default 64 KiB, max 16 MiB).
    pub tail_bytes: Option<u64>,
}

/// The VM `name` of the caller's project, its node, and the agent's URL of the VM
/// (`.../agent/v1/vms/{project}/{name}`).
fn locate(state: &AppState, name: &str) -> ApiResult<(Arc<VmRecord>, Arc<NodeRecord>, String)> {
    novacron_api_types::validate_name("vm", name)?;
    let vm = state
        .vms
        .get(&records::vm_key(&crate::tenancy::current_project(), name))
        .ok_or_else(|| {
            ApiError::not_found(format!("no VM named {name:?}: see `novacron vm list`"))
        })?;
    let node = super::vms::node_of(state, &vm)?;
    let url = format!(
        "{}/agent/v1/vms/{}/{}",
        node.agent_url.trim_end_matches('/'),
        vm.project,
        vm.name
    );
    Ok((vm, node, url))
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
    let (_, node, url) = locate(&state, &name)?;
    let tail = q.tail_bytes.unwrap_or(64 << 10).min(16 << 20);
    let resp = state
        .agent_http
        .get(format!("{url}/console?tail_bytes={tail}"))
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
    wants_upgrade(&req, CONSOLE_PROTOCOL, "console attach")?;
    let (_, node, url) = locate(&state, &name)?;
    let agent_io = connect(
        &state,
        &node,
        &format!("{url}/console/attach"),
        CONSOLE_PROTOCOL,
    )
    .await?;
    Ok(relay_upgrade(req, agent_io, CONSOLE_PROTOCOL))
}

/// The HTTP upgrade protocol of the graphical console.
pub const VNC_PROTOCOL: &str = "novacron-vnc";

/// Open the graphical console of a VM created with `--vnc`: an HTTP upgrade to
/// `novacron-vnc`, after which the connection speaks RFB (VNC) with the VM's display, for one
/// viewer. `novacron vm console NAME --vnc` serves it on a local port for a VNC viewer.
#[utoipa::path(get, path = "/api/v1/vms/{name}/vnc", params(("name" = String, Path)),
    responses((status = 101, description = "switched to the VM's VNC server (RFB, no further authentication)"),
        (status = 400, body = ApiError, description = "No `Upgrade: novacron-vnc`."),
        (status = 404, body = ApiError, description = "No such VM."),
        (status = 409, body = ApiError, description = "The VM was created without `--vnc`, or is stopped (a paused VM's screen can be watched)."),
        (status = 503, body = ApiError, description = "The VM's agent cannot be reached.")))]
pub async fn vnc(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    wants_upgrade(&req, VNC_PROTOCOL, "the VNC console")?;
    let agent_io = connect_vnc(&state, &name).await?;
    Ok(relay_upgrade(req, agent_io, VNC_PROTOCOL))
}

/// The VM's VNC server on its agent, for a VM created with `--vnc` that is not stopped.
async fn connect_vnc(state: &AppState, name: &str) -> ApiResult<reqwest::Upgraded> {
    let (vm, node, url) = locate(state, name)?;
    if !vm.vnc {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "VM {name} has no graphical console: it was created without --vnc (its serial console is `novacron vm console {name}`)"
            ),
        )
        .into());
    }
    if vm.power == PowerState::Stopped {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("VM {name} is stopped: start it with `novacron vm start {name}`"),
        )
        .into());
    }
    connect(state, &node, &format!("{url}/vnc"), VNC_PROTOCOL).await
}

/// The WebSocket subprotocol of the graphical console: noVNC's, binary messages carrying RFB.
pub const VNC_WEBSOCKET_PROTOCOL: &str = "binary";

/// The graphical console over a WebSocket (for browsers: the web console's noVNC screen):
/// offer the subprotocol `binary`, and `novacron.bearer.<token>` when the client cannot send
/// `Authorization`. Binary messages carry RFB (VNC) both ways.
#[utoipa::path(get, path = "/api/v1/vms/{name}/vnc/ws", params(("name" = String, Path)),
    responses((status = 101, description = "switched to a WebSocket carrying the VM's VNC server (RFB)"),
        (status = 400, body = ApiError, description = "Not a WebSocket upgrade offering `binary`."),
        (status = 404, body = ApiError, description = "No such VM."),
        (status = 409, body = ApiError, description = "The VM was created without `--vnc`, or is stopped."),
        (status = 503, body = ApiError, description = "The VM's agent cannot be reached.")))]
pub async fn vnc_websocket(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = offered(upgrade, &headers, VNC_WEBSOCKET_PROTOCOL, "VNC")?;
    let agent_io = connect_vnc(&state, &name).await?;
    Ok(upgrade
        .protocols([VNC_WEBSOCKET_PROTOCOL])
        .on_upgrade(move |socket| relay(socket, agent_io)))
}

/// Refuses a request that does not ask to upgrade to `protocol`.
fn wants_upgrade(req: &Request, protocol: &str, what: &str) -> ApiResult<()> {
    let wants = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(protocol));
    if wants {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("{what} needs `Upgrade: {protocol}`")).into())
    }
}

/// The WebSocket upgrade of a request that offers the subprotocol `protocol`; `what` names
/// the socket in the refusal.
fn offered(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: &axum::http::HeaderMap,
    protocol: &str,
    what: &str,
) -> ApiResult<WebSocketUpgrade> {
    let upgrade =
        upgrade.map_err(|e| ApiError::invalid(format!("{what} websocket: {}", e.body_text())))?;
    if !crate::auth::websocket_protocols(headers).any(|p| p == protocol) {
        return Err(ApiError::invalid(format!(
            "the {what} websocket needs the subprotocol {protocol}"
        ))
        .into());
    }
    Ok(upgrade)
}

/// Answers 101 to the client's upgrade to `protocol`, then copies bytes both ways between
/// the client and the agent's upgraded connection until either side ends.
fn relay_upgrade(
    req: Request,
    mut agent_io: reqwest::Upgraded,
    protocol: &'static str,
) -> Response {
    let client_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match client_upgrade.await {
            Ok(up) => {
                let mut client_io = TokioIo::new(up);
                let _ = tokio::io::copy_bidirectional(&mut client_io, &mut agent_io).await;
            }
            Err(e) => tracing::debug!(error = %e, protocol, "client upgrade failed"),
        }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [(header::CONNECTION, "upgrade"), (header::UPGRADE, protocol)],
    )
        .into_response()
}

/// The WebSocket subprotocol of the browser console: binary (or text) messages carry the
/// console's bytes both ways.
pub const CONSOLE_WEBSOCKET_PROTOCOL: &str = "novacron.console.v1";

/// The serial console over a WebSocket (for browsers; the web console's terminal): offer
/// the subprotocol `novacron.console.v1`, and `novacron.bearer.<token>` when the client
/// cannot send `Authorization`. Messages carry the console's raw bytes both ways.
#[utoipa::path(get, path = "/api/v1/vms/{name}/console/ws", params(("name" = String, Path)),
    responses((status = 101, description = "switched to a WebSocket carrying the console's bytes"),
        (status = 400, body = ApiError, description = "Not a WebSocket upgrade offering `novacron.console.v1`."),
        (status = 404, body = ApiError, description = "No such VM."),
        (status = 503, body = ApiError, description = "The VM's agent cannot be reached.")))]
pub async fn websocket(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = offered(upgrade, &headers, CONSOLE_WEBSOCKET_PROTOCOL, "console")?;
    let (_, node, url) = locate(&state, &name)?;
    let agent_io = connect(
        &state,
        &node,
        &format!("{url}/console/attach"),
        CONSOLE_PROTOCOL,
    )
    .await?;
    Ok(upgrade
        .protocols([CONSOLE_WEBSOCKET_PROTOCOL])
        .on_upgrade(move |socket| relay(socket, agent_io)))
}

/// Copies bytes (the serial console's, or RFB) between the browser's WebSocket and the
/// agent's stream until either side ends.
async fn relay(socket: axum::extract::ws::WebSocket, agent_io: reqwest::Upgraded) {
    use axum::extract::ws::Message;
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut agent_rx, mut agent_tx) = tokio::io::split(agent_io);
    let to_browser = async {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            match agent_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let bytes = axum::body::Bytes::copy_from_slice(&buf[..n]);
                    if ws_tx.send(Message::Binary(bytes)).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = ws_tx.send(Message::Close(None)).await;
    };
    let to_agent = async {
        while let Some(Ok(msg)) = ws_rx.next().await {
            let bytes = match msg {
                Message::Binary(b) => b,
                Message::Text(t) => axum::body::Bytes::copy_from_slice(t.as_str().as_bytes()),
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if agent_tx.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = agent_tx.shutdown().await;
    };
    tokio::select! {
        () = to_browser => {}
        () = to_agent => {}
    }
}

/// Opens `url` on the VM's agent with an upgrade to `protocol` (an upgraded connection
/// carrying raw bytes).
async fn connect(
    state: &AppState,
    node: &NodeRecord,
    url: &str,
    protocol: &'static str,
) -> ApiResult<reqwest::Upgraded> {
    let agent_resp = state
        .agent_http
        .get(url)
        .bearer_auth(state.server_token(node))
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, protocol)
        .send()
        .await
        .map_err(|e| unreachable(&node.name, &e))?;
    if agent_resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = agent_resp.status();
        let bytes = agent_resp.bytes().await.unwrap_or_default();
        return Err(match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(e) => ApiFailure(e),
            Err(_) => ApiFailure(ApiError::unavailable(format!(
                "agent of {} refused the {protocol} upgrade: {status}",
                node.name
            ))),
        });
    }
    agent_resp
        .upgrade()
        .await
        .map_err(|e| unreachable(&node.name, &e))
}
