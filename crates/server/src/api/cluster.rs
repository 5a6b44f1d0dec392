//! Cluster-wide endpoints: the status of the control plane (replicas, store, controller
//! leader, node leases) and storage pools.

use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use novacron_api_types::{
    ApiError, ClusterStatus, ErrorCode, Member, NodeLease, StoragePool, StoreHealth, validate_name,
};
use novacron_store::{Compare, Op};

use super::{ApiResult, Json, json_bytes};
use crate::records::{self, ClusterRecord, now};
use crate::state::AppState;

/// Replicas, store health, who runs the controllers, and every node's lease.
#[utoipa::path(get, path = "/api/v1/cluster/status", responses((status = 200, body = ClusterStatus)))]
pub async fn status(State(state): State<Arc<AppState>>) -> ApiResult<AxumJson<ClusterStatus>> {
    let store = match state.store.revision().await {
        Ok(rev) => StoreHealth {
            backend: state.store_backend.clone(),
            healthy: true,
            revision: rev,
            detail: "ok".into(),
        },
        Err(e) => StoreHealth {
            backend: state.store_backend.clone(),
            healthy: false,
            revision: 0,
            detail: e.to_string(),
        },
    };
    let cluster_id = match state.store.get(records::CLUSTER_KEY).await {
        Ok(Some(kv)) => serde_json::from_slice::<ClusterRecord>(&kv.value)
            .map(|c| c.cluster_id)
            .unwrap_or_default(),
        _ => String::new(),
    };
    let mut members: Vec<Member> = state
        .members
        .values()
        .iter()
        .map(|m| Member {
            id: m.id.clone(),
            url: m.url.clone(),
            version: m.version.clone(),
            started_at: m.started_at,
        })
        .collect();
    members.sort_by(|a, b| a.id.cmp(&b.id));
    let mut controllers = std::collections::BTreeMap::new();
    if let Some(l) = state.leader.get(&records::leader_key()) {
        for c in ["placement-audit", "ha", "operations"] {
            controllers.insert(c.to_string(), l.member.clone());
        }
    }
    let mut node_leases: Vec<NodeLease> = state
        .nodes
        .values()
        .iter()
        .map(|n| {
            let lease = state.node_leases.get(&records::node_lease_key(&n.name));
            NodeLease {
                node: n.name.clone(),
                alive: lease.is_some(),
                ttl_seconds: lease
                    .map(|l| l.ttl_ms / 1000)
                    .unwrap_or(state.node_lease_ttl.as_secs()),
            }
        })
        .collect();
    node_leases.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(AxumJson(ClusterStatus {
        cluster_id,
        answered_by: state.member_id.clone(),
        members,
        store,
        controllers,
        node_leases,
    }))
}

/// Storage pools.
#[utoipa::path(get, path = "/api/v1/storage", responses((status = 200, body = Vec<StoragePool>)))]
pub async fn storage_list(
    State(state): State<Arc<AppState>>,
) -> ApiResult<AxumJson<Vec<StoragePool>>> {
    Ok(AxumJson(
        state
            .storage
            .values()
            .iter()
            .map(|p| (**p).clone())
            .collect(),
    ))
}

/// Add a storage pool: a directory every node mounts at the same path.
#[utoipa::path(post, path = "/api/v1/storage", request_body = StoragePool,
    responses((status = 201, body = StoragePool), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
pub async fn storage_add(
    State(state): State<Arc<AppState>>,
    Json(mut pool): Json<StoragePool>,
) -> ApiResult<(StatusCode, AxumJson<StoragePool>)> {
    pool.validate()?;
    pool.path = pool.path.trim_end_matches('/').to_string();
    pool.created_at = now();
    let key = records::storage_key(&pool.name);
    let out = state
        .store
        .txn(
            vec![Compare::ModRevision {
                key: key.clone(),
                equals: 0,
            }],
            vec![Op::Put {
                key,
                value: json_bytes(&pool)?,
            }],
        )
        .await?;
    if !out.succeeded {
        return Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!("a storage pool named {} already exists", pool.name),
        )
        .into());
    }
    state
        .storage
        .wait_for(out.revision, AppState::CATCH_UP)
        .await;
    Ok((StatusCode::CREATED, AxumJson(pool)))
}

/// Remove a storage pool no VM uses.
#[utoipa::path(delete, path = "/api/v1/storage/{name}", params(("name" = String, Path)), responses((status = 200), (status = 409, body = ApiError)))]
pub async fn storage_delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    validate_name("storage pool", &name)?;
    let users: Vec<String> = state.vms.with(|v| {
        v.values()
            .filter(|v| v.storage.as_deref() == Some(name.as_str()))
            .map(|v| v.name.clone())
            .collect()
    });
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "storage pool {name} holds the disks of {}; delete them first",
            users.join(", ")
        ))
        .into());
    }
    let key = records::storage_key(&name);
    let kv = state
        .store
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no storage pool named {name:?}")))?;
    let out = state
        .store
        .txn(
            vec![Compare::ModRevision {
                key: key.clone(),
                equals: kv.mod_revision,
            }],
            vec![Op::Delete { key }],
        )
        .await?;
    if !out.succeeded {
        return Err(ApiError::conflict("storage pool changed meanwhile; try again").into());
    }
    state
        .storage
        .wait_for(out.revision, AppState::CATCH_UP)
        .await;
    Ok(AxumJson(serde_json::json!({"deleted": name})))
}
