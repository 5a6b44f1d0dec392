//! Node endpoints: list, show, cordon / uncordon / drain, and removing a node.

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use novacron_api_types::{ApiError, Node, NodeState, validate_name};
use novacron_store::Op;

use super::{ApiFailure, ApiResult, json_bytes};
use crate::records::{self, NodeRecord, RevokedCertRecord, TokenRecord};
use crate::state::AppState;
use crate::typed_store::{self, Change};

/// Every registered node with its capacity and allocation.
#[utoipa::path(get, path = "/api/v1/nodes", responses((status = 200, body = Vec<Node>)))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<AxumJson<Vec<Node>>> {
    let alloc = state.allocations();
    Ok(AxumJson(
        state
            .nodes
            .values()
            .iter()
            .map(|n| state.node_view(n, &alloc))
            .collect(),
    ))
}

fn find(state: &AppState, name: &str) -> ApiResult<Arc<NodeRecord>> {
    state.nodes.get(&records::node_key(name)).ok_or_else(|| {
        ApiFailure(ApiError::not_found(format!(
            "no node named {name:?}: see `novacron node list`"
        )))
    })
}

/// One node.
#[utoipa::path(get, path = "/api/v1/nodes/{name}", params(("name" = String, Path)), responses((status = 200, body = Node), (status = 404, body = ApiError)))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<Node>> {
    let rec = find(&state, &name)?;
    Ok(AxumJson(state.node_view(&rec, &state.allocations())))
}

/// `cordon` (no new VMs), `uncordon` (ready again) or `drain` (no new VMs; its VMs are to
/// be moved away).
#[utoipa::path(post, path = "/api/v1/nodes/{name}/{action}", params(("name" = String, Path), ("action" = String, Path, description = "cordon, uncordon or drain")),
    responses((status = 200, body = Node), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
pub async fn action(
    State(state): State<Arc<AppState>>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult<AxumJson<Node>> {
    validate_name("node", &name)?;
    let target = match action.as_str() {
        "cordon" => NodeState::Cordoned,
        "uncordon" => NodeState::Ready,
        "drain" => NodeState::Draining,
        other => {
            return Err(ApiError::invalid(format!(
                "unknown node action {other:?}: use cordon, uncordon or drain"
            ))
            .into());
        }
    };
    let key = records::node_key(&name);
    let updated = typed_store::update(
        state.store.as_ref(),
        &key,
        |mut rec: NodeRecord| async move {
            rec.admin_state = target;
            Ok(Change::Write(rec))
        },
    )
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!("no node named {name:?}: see `novacron node list`"))
    })?;
    state
        .nodes
        .wait_for(updated.revision, AppState::CATCH_UP)
        .await;
    tracing::info!(node = %name, state = %target, "node state set");
    Ok(AxumJson(
        state.node_view(&updated.record, &state.allocations()),
    ))
}

/// Forget a node that has no VMs (its tokens stop working).
#[utoipa::path(delete, path = "/api/v1/nodes/{name}", params(("name" = String, Path)), responses((status = 200), (status = 409, body = ApiError)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    let rec = find(&state, &name)?;
    let vms = state.allocations().get(&rec.name).map(|a| a.1).unwrap_or(0);
    if vms > 0 {
        return Err(ApiError::conflict(format!(
            "node {name} still has {vms} VMs; delete or move them first"
        ))
        .into());
    }
    let kv = state
        .store
        .get(&records::node_key(&name))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no node {name}")))?;
    let mut ops = vec![Op::Delete {
        key: records::node_lease_key(&name),
    }];
    state.tokens.with(|t| {
        for (k, v) in t {
            if matches!(v.as_ref(), TokenRecord::Node { node } if node == &name) {
                ops.push(Op::Delete { key: k.clone() });
            }
        }
    });
    // Its certificates stop working now, not when they expire.
    let stored: NodeRecord = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("node record: {e}")))?;
    let revoked = revoked_certs(&stored, records::now());
    for (serial, rec) in &revoked {
        ops.push(Op::Put {
            key: records::revoked_cert_key(serial),
            value: json_bytes(rec)?,
        });
    }
    let revision = typed_store::delete(state.store.as_ref(), &kv.key, kv.mod_revision, ops)
        .await?
        .ok_or_else(|| ApiError::conflict("node changed meanwhile; try again"))?;
    state.nodes.wait_for(revision, AppState::CATCH_UP).await;
    state
        .revoked_certs
        .wait_for(revision, AppState::CATCH_UP)
        .await;
    tracing::info!(node = %name, revoked_certificates = revoked.len(), "node deleted");
    Ok(AxumJson(serde_json::json!({"deleted": name})))
}

/// The revocation records of every certificate `node` may still hold at `now`.
pub fn revoked_certs(node: &NodeRecord, now: u64) -> Vec<(String, RevokedCertRecord)> {
    let mut out: Vec<(String, RevokedCertRecord)> = node
        .cert_serials
        .iter()
        .filter(|s| s.not_after > now)
        .map(|s| (s.serial.clone(), Some(s.not_after)))
        .chain(node.cert_serial.iter().map(|s| (s.clone(), None)))
        .map(|(serial, not_after)| {
            (
                serial,
                RevokedCertRecord {
                    node: node.name.clone(),
                    revoked_at: now,
                    not_after,
                    reason: "node deleted".into(),
                },
            )
        })
        .collect();
    // The last serial is usually in both lists: keep the entry that knows its expiry.
    out.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.not_after.cmp(&a.1.not_after)));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}
