//! The agent side of the API: registration with the join token, heartbeats, the list of
//! VMs a node must run (long-polled), and status reports that finish operations.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::{Extension, Json as AxumJson};
use novacron_api_types::agent::{
    DesiredVm, DesiredVms, HeartbeatRequest, RegisterRequest, RegisterResponse, VmStatusReport,
};
use novacron_api_types::{
    ApiError, ErrorCode, NodeState, OperationState, PowerState, VmState, validate_name,
};
use novacron_store::{Compare, LeaseId, Op, StoreError};
use serde::Deserialize;

use super::roles::NodeCaller;
use super::{ApiFailure, ApiResult, Json, json_bytes};
use crate::auth::{Caller, new_token, token_hash};
use crate::records::{
    self, NodeLeaseRecord, NodeRecord, TokenRecord, VmRecord, VmStatusRecord, now,
};
use crate::state::AppState;
use crate::typed_store::{self, Change};

/// The names a node's certificate may carry, chosen by the control plane (never copied from
/// what the agent asks): the node's registered name, and the IP address the registration
/// came from. The host in `agent_url` must be one of those, or a DNS name that resolves (here)
/// to that address, so the control plane can reach the agent and check its certificate.
/// Anything else (a wildcard, `localhost`, another machine's name or address) is refused
/// with an error saying what to advertise instead.
pub async fn node_cert_names(
    node: &str,
    agent_url: &str,
    peer: std::net::IpAddr,
) -> ApiResult<(Vec<String>, Vec<std::net::IpAddr>)> {
    if !novacron_tls::is_node_dns_name(node) {
        return Err(ApiError::invalid(format!(
            "{node:?} cannot name a node: it must be a DNS label other than localhost"
        ))
        .into());
    }
    let url = reqwest::Url::parse(agent_url)
        .map_err(|e| ApiError::invalid(format!("agent_url {agent_url:?}: {e}")))?;
    if url.scheme() != "https" {
        return Err(ApiError::invalid("agent_url must be https").into());
    }
    let peer = peer.to_canonical();
    let Some(host) = url.host_str().map(|h| h.trim_matches(['[', ']'])) else {
        return Err(ApiError::invalid("agent_url has no host").into());
    };
    let mut dns = vec![];
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.to_canonical() == peer => {}
        Err(_) if host.eq_ignore_ascii_case(node) => {}
        Err(_) if novacron_tls::is_node_dns_name(host) => {
            let port = url.port_or_known_default().unwrap_or(443);
            let resolved: Vec<std::net::IpAddr> = tokio::net::lookup_host((host, port))
                .await
                .map(|addrs| addrs.map(|a| a.ip().to_canonical()).collect())
                .unwrap_or_default();
            if !resolved.contains(&peer) {
                return Err(ApiError::invalid(format!(
                    "agent_url host {host} does not resolve to {peer}, the address this registration came from; advertise {peer} or a name that resolves to it"
                ))
                .into());
            }
            dns.push(host.to_ascii_lowercase());
        }
        _ => {
            return Err(ApiError::invalid(format!(
                "agent_url host {host} is neither the node's name, nor {peer} (the address this registration came from), nor a name resolving to it; start the agent with --advertise {peer}"
            ))
            .into());
        }
    }
    Ok((dns, vec![peer]))
}

/// Register a node (join token), or re-register it (its node token), which also renews its
/// certificate.
#[utoipa::path(post, path = "/api/v1/agent/register", request_body = RegisterRequest,
    responses((status = 200, body = RegisterResponse), (status = 409, body = ApiError)))]
pub async fn register(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<AxumJson<RegisterResponse>> {
    validate_name("node", &req.name)?;
    let vtep_address = req
        .vtep_address
        .as_deref()
        .map(novacron_api_types::overlay::parse_vtep)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?
        .map(|ip| ip.to_string());
    if let Some(site) = &req.site {
        validate_name("site", site)?;
    }
    if let Some(t) = &req.tunnel {
        t.check().map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    let (cert_dns, cert_ips) = node_cert_names(&req.name, &req.agent_url, peer.ip()).await?;
    let key = records::node_key(&req.name);
    let existing = state.store.get(&key).await?;
    match (&caller, &existing) {
        (Caller::Join(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::AlreadyExists,
                format!("a node named {} is already registered; restart that agent with its own data dir, or pick another --name", req.name),
            )
            .into());
        }
        (Caller::Join(_), None) | (Caller::Admin, _) => {}
        (Caller::Node(n), _) if n == &req.name => {}
        (Caller::Node(n), _) => {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!("this token belongs to node {n}, not {}", req.name),
            )
            .into());
        }
        (Caller::Replica(_), _) => {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "a replica credential cannot register nodes",
            )
            .into());
        }
        // The register router's gate admits no user token; refused here too.
        (Caller::User(_), _) => {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "user and API tokens cannot register nodes",
            )
            .into());
        }
    }
    let old: Option<NodeRecord> = existing
        .as_ref()
        .and_then(|kv| serde_json::from_slice(&kv.value).ok());
    // A node registering again with its own token keeps its credentials (a crash between
    // our answer and the agent saving it must not lock the node out); a join mints new ones.
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let rejoin = matches!(caller, Caller::Node(_));
    let node_token = match (&caller, presented) {
        (Caller::Node(_), Some(t)) => t,
        _ => new_token(),
    };
    // The agent's server token is derived, not stored; a node registered before that keeps
    // its stored one until it joins again (its running agent expects it).
    let (server_token_legacy, server_token_nonce) = match (&old, rejoin) {
        (Some(o), true) => (o.server_token.clone(), o.server_token_nonce.clone()),
        _ => (String::new(), Some(crate::auth::new_nonce())),
    };
    let ttl = state.node_lease_ttl;
    let lease = state.store.grant_lease(ttl).await?;
    let issued = state
        .ca
        .issue_node(&req.name, &cert_dns, &cert_ips, state.node_cert_ttl)
        .map_err(|e| ApiError::internal(format!("issuing the node certificate: {e}")))?;
    let rec = NodeRecord {
        name: req.name.clone(),
        capacity: req.capacity,
        agent_url: req.agent_url.clone(),
        kvm_usable: req.kvm_usable,
        qemu_version: req.qemu_version.clone(),
        bridges: req.bridges.clone(),
        vtep_address,
        site: req.site.clone(),
        tunnel: req.tunnel.clone(),
        registered_at: old.as_ref().map(|o| o.registered_at).unwrap_or_else(now),
        admin_state: old
            .as_ref()
            .map(|o| o.admin_state)
            .unwrap_or(NodeState::Ready),
        server_token: server_token_legacy,
        server_token_nonce,
        cert_serial: Some(issued.serial.clone()),
        cert_serials: {
            let now = now();
            let mut serials: Vec<records::IssuedSerial> = old
                .as_ref()
                .map(|o| o.cert_serials.clone())
                .unwrap_or_default();
            serials.retain(|s| s.not_after > now);
            serials.push(records::IssuedSerial {
                serial: issued.serial.clone(),
                not_after: issued.not_after_unix,
            });
            serials
        },
    };
    let mut ops = vec![
        Op::Put {
            key: key.clone(),
            value: json_bytes(&rec)?,
        },
        Op::PutWithLease {
            key: records::node_lease_key(&req.name),
            value: json_bytes(&NodeLeaseRecord {
                lease: lease.0,
                ttl_ms: ttl.as_millis() as u64,
                since: now(),
            })?,
            lease,
        },
    ];
    if !rejoin {
        // A join replaces the node's credentials: its earlier tokens stop working.
        let stale: Vec<String> = state.tokens.with(|t| {
            t.iter()
                .filter(
                    |(_, v)| matches!(v.as_ref(), TokenRecord::Node { node } if node == &req.name),
                )
                .map(|(k, _)| k.clone())
                .collect()
        });
        for k in stale {
            ops.push(Op::Delete { key: k });
        }
        ops.push(Op::Put {
            key: records::token_key(&token_hash(&node_token)),
            value: json_bytes(&TokenRecord::Node {
                node: req.name.clone(),
            })?,
        });
    }
    let mut compares = vec![Compare::ModRevision {
        key: key.clone(),
        equals: existing.map(|kv| kv.mod_revision).unwrap_or(0),
    }];
    if let Caller::Join(token_key) = &caller {
        // A single-use token registers one node: its use is written only if absent.
        let (more_compares, more_ops) =
            crate::join_tokens::use_ops(&state, token_key, &req.name).await?;
        compares.extend(more_compares);
        ops.extend(more_ops);
    }
    let out = state.store.txn(compares, ops).await?;
    if !out.succeeded {
        if let Caller::Join(token_key) = &caller
            && let Some(spent) = crate::join_tokens::spent_meanwhile(&state, token_key).await
        {
            return Err(spent.into());
        }
        return Err(ApiError::conflict(format!(
            "node {} registered concurrently; try again",
            req.name
        ))
        .into());
    }
    if !rejoin {
        // A renewal writes no token: the token mirror would never reach its revision.
        state
            .tokens
            .wait_for(out.revision, AppState::CATCH_UP)
            .await;
    }
    state.nodes.wait_for(out.revision, AppState::CATCH_UP).await;
    state
        .node_leases
        .wait_for(out.revision, AppState::CATCH_UP)
        .await;
    state.saw_node(&req.name);
    let server_token = state.server_token(&rec);
    tracing::info!(node = %req.name, url = %req.agent_url, %peer, cert_serial = %issued.serial, "node registered");
    Ok(AxumJson(RegisterResponse {
        node_token,
        server_token,
        ca_cert_pem: state.ca.identity.cert_pem.clone(),
        cert_pem: issued.identity.cert_pem,
        key_pem: issued.identity.key_pem,
        lease_ttl_ms: ttl.as_millis() as u64,
        cert_not_after: Some(issued.not_after_unix),
    }))
}

/// A node is alive: renews its liveness lease (or takes a new one when it had expired).
#[utoipa::path(post, path = "/api/v1/agent/heartbeat", request_body = HeartbeatRequest, responses((status = 200)))]
pub async fn heartbeat(
    State(state): State<Arc<AppState>>,
    NodeCaller(node): NodeCaller,
    Json(req): Json<HeartbeatRequest>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    state.saw_node(&node);
    if let Some(mut sample) = req.stats {
        // A node speaks only for the VMs placed on it.
        sample.vms.retain(|v| {
            state
                .vms
                .get(&records::vm_key(&v.project, &v.name))
                .is_some_and(|r| r.node == node && r.uuid == v.uuid)
        });
        state.metrics.record_sample(&node, &sample);
    }
    let key = records::node_lease_key(&node);
    if let Some(rec) = state.node_leases.get(&key) {
        match state.store.keep_alive(LeaseId(rec.lease)).await {
            Ok(()) => return Ok(AxumJson(serde_json::json!({}))),
            Err(StoreError::LeaseNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The lease expired (the node was lost and is back), or this replica has not seen it yet.
    let ttl = state.node_lease_ttl;
    let lease = state.store.grant_lease(ttl).await?;
    let rev = state
        .store
        .put_with_lease(
            &key,
            json_bytes(&NodeLeaseRecord {
                lease: lease.0,
                ttl_ms: ttl.as_millis() as u64,
                since: now(),
            })?,
            lease,
        )
        .await?;
    state.node_leases.wait_for(rev, AppState::CATCH_UP).await;
    tracing::info!(node = %node, "node lease taken again");
    Ok(AxumJson(serde_json::json!({})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DesiredQuery {
    /// Answer only after something changed after this revision (long poll).
    pub after: Option<i64>,
    /// How long to wait for a change (max 60 s).
    pub wait_seconds: Option<u64>,
    /// Overlay only: answer also once a security group changed after this revision
    /// (`groups_revision` of the last answer).
    pub after_groups: Option<i64>,
}

pub fn desired_vm(state: &AppState, v: &VmRecord) -> DesiredVm {
    let image = state.image(&v.project, &v.image);
    DesiredVm {
        project: v.project.clone(),
        name: v.name.clone(),
        uuid: v.uuid.clone(),
        generation: v.generation,
        cpus: v.cpus,
        memory_bytes: v.memory_bytes,
        disk_bytes: v.disk_bytes,
        image: image.map(|i| (*i).clone()),
        accel: v.accel,
        network: v.network.clone(),
        ssh_keys: v.ssh_keys.clone(),
        power: v.power,
        force: v.force,
        action: v.action,
        deleting: v.deleting,
        storage: v
            .storage
            .as_ref()
            .and_then(|p| state.storage.get(&records::storage_key(p)))
            .map(|p| (*p).clone()),
        ha: v.ha,
        restore: v.restore.clone(),
        nics: v.nics.clone(),
        user_data: v.user_data.clone(),
        vendor_data: v.vendor_data.clone(),
        clone_of: v.clone_of.clone(),
        vnc: v.vnc,
        hotplug_ports: v.hotplug_ports,
        data_disks: v.data_disks.clone(),
        added_nics: v.added_nics.clone(),
        firmware: v.firmware,
        secure_boot: v.secure_boot,
        tpm: v.tpm,
        iso: v
            .iso
            .as_ref()
            .and_then(|iso| state.image(&v.project, iso).map(|i| (*i).clone())),
    }
}

/// The VMs placed on the calling node.
#[utoipa::path(get, path = "/api/v1/agent/vms", params(DesiredQuery), responses((status = 200, body = DesiredVms)))]
pub async fn desired_vms(
    State(state): State<Arc<AppState>>,
    NodeCaller(node): NodeCaller,
    Query(q): Query<DesiredQuery>,
) -> ApiResult<AxumJson<DesiredVms>> {
    if let Some(after) = q.after {
        let wait = Duration::from_secs(q.wait_seconds.unwrap_or(30).min(60));
        let mut changed = state.vms.subscribe_index(&node);
        let _ = tokio::time::timeout(wait, changed.wait_for(|r| *r > after)).await;
    }
    // Read the revision first: anything newer is sent again next time, never skipped.
    let revision = state.vms.revision();
    let delta = q.after.map(|after| state.vms.changed_since(&node, after));
    Ok(AxumJson(match delta {
        Some(crate::cache::ChangedSince::Keys(keys)) => {
            let mut vms = vec![];
            let mut removed = vec![];
            for k in keys {
                match state.vms.get(&k) {
                    Some(v) if v.node == node => vms.push(desired_vm(&state, &v)),
                    _ => removed.push(
                        k.strip_prefix(&records::vm_prefix())
                            .unwrap_or(&k)
                            .to_string(),
                    ),
                }
            }
            DesiredVms {
                revision,
                full: false,
                vms,
                removed,
            }
        }
        _ => DesiredVms {
            revision,
            full: true,
            vms: state
                .vms
                .values_by_index(&node)
                .iter()
                .map(|v| desired_vm(&state, v))
                .collect(),
            removed: vec![],
        },
    }))
}

/// The overlay networks the calling node must build: each network its VMs use, with the
/// VTEPs and VM MACs of the other nodes on it. With `after`, answers once a VM changed
/// after that revision (long poll), so agents follow VMs coming and going elsewhere.
#[utoipa::path(get, path = "/api/v1/agent/overlay", params(DesiredQuery),
    responses((status = 200, body = novacron_api_types::overlay::NodeOverlay)))]
pub async fn overlay(
    State(state): State<Arc<AppState>>,
    NodeCaller(node): NodeCaller,
    Query(q): Query<DesiredQuery>,
) -> ApiResult<AxumJson<novacron_api_types::overlay::NodeOverlay>> {
    if let Some(after) = q.after {
        let wait = Duration::from_secs(q.wait_seconds.unwrap_or(30).min(60));
        // A VM or a security group changing changes what the node must build. Each mirror
        // has its own revision: the two follow the store separately, so one can be ahead.
        let mut vms = state.vms.subscribe_revision();
        let mut groups = state.security_groups.subscribe_revision();
        // Without `after_groups` (an older agent) only VMs wake it.
        let groups_after = |r: &i64| q.after_groups.is_some_and(|g| *r > g);
        let _ = tokio::time::timeout(wait, async {
            tokio::select! {
                _ = vms.wait_for(|r| *r > after) => {}
                _ = groups.wait_for(groups_after) => {}
            }
        })
        .await;
    }
    Ok(AxumJson(
        crate::networks::node_overlay_now(&state, &node).await?,
    ))
}

/// What a node observed about one of its VMs.
#[utoipa::path(put, path = "/api/v1/agent/vms/{project}/{name}/status", request_body = VmStatusReport,
    params(("project" = String, Path), ("name" = String, Path)), responses((status = 200), (status = 409, body = ApiError)))]
pub async fn report_status(
    State(state): State<Arc<AppState>>,
    NodeCaller(node): NodeCaller,
    Path((project, name)): Path<(String, String)>,
    Json(report): Json<VmStatusReport>,
) -> ApiResult<AxumJson<serde_json::Value>> {
    validate_name("project", &project)?;
    validate_name("vm", &name)?;
    let key = records::vm_key(&project, &name);
    let status_key = records::vm_status_key(&project, &name);
    let state: &AppState = &state;
    let (report, node, name, status_key) = (&report, &node, &name, &status_key);
    let updated = typed_store::update(state.store.as_ref(), &key, |mut rec: VmRecord| async move {
        if &rec.node != node {
            return Err(ApiError::conflict(format!(
                "VM {name} is placed on {}, not on {node}",
                rec.node
            ))
            .into());
        }
        let mut ops = vec![];
        let mut finish: Option<(String, OperationState, String)> = None;
        let current = report.observed_generation == rec.generation;

        let mut rec_changed = false;
        let deleted = report.deleted && rec.deleting;
        if deleted {
            ops.push(Op::Delete {
                key: status_key.clone(),
            });
            // The VM's addresses are free again with its record gone.
            ops.extend(crate::ipam::release_ops(&rec.project, &rec.overlay_nics()));
            if let Some(id) = rec.operation.clone() {
                finish = Some(if rec.creating {
                    (
                        id,
                        OperationState::Failed,
                        "creation failed; everything it made was removed".into(),
                    )
                } else {
                    (id, OperationState::Succeeded, format!("VM {name} deleted"))
                });
            }
        } else {
            let status = VmStatusRecord {
                observed_generation: report.observed_generation,
                state: report.state,
                reason: report.reason.clone().or_else(|| report.error.clone()),
                pid: report.pid,
                accel_in_use: report.accel_in_use.clone(),
                updated_at: now(),
                guest_interfaces: report.guest_interfaces.clone(),
            };
            ops.push(Op::Put {
                key: status_key.clone(),
                value: json_bytes(&status)?,
            });
            if current && let Some(id) = rec.operation.clone() {
                if let Some(err) = &report.error {
                    if rec.creating && !rec.deleting {
                        // Roll the creation back: the agent removes what it made, then the
                        // delete report fails the operation with this message.
                        rec.deleting = true;
                        rec.power = PowerState::Stopped;
                        rec.force = true;
                        rec.generation += 1;
                        rec_changed = true;
                        let msg = format!("creation failed: {err}; rolling back");
                        ops.push(Op::Put {
                            key: records::op_key(&id),
                            value: json_bytes(&progress_op(state, &id, &msg).await?)?,
                        });
                    } else {
                        rec.operation = None;
                        rec_changed = true;
                        finish = Some((id, OperationState::Failed, err.clone()));
                    }
                } else if !rec.deleting && crate::api::vms::satisfied(&rec, &status) {
                    rec.operation = None;
                    rec.creating = false;
                    rec.action = None;
                    rec_changed = true;
                    finish = Some((
                        id,
                        OperationState::Succeeded,
                        format!("VM {name} is {}", status.state),
                    ));
                } else if status.state == VmState::Crashed && !rec.deleting {
                    rec.operation = None;
                    rec.creating = false;
                    rec_changed = true;
                    finish = Some((
                        id,
                        OperationState::Failed,
                        format!(
                            "VM {name} crashed: {}",
                            status.reason.clone().unwrap_or_default()
                        ),
                    ));
                }
            }
            if report.guest_initiated_stop && rec.power != PowerState::Stopped && !rec.deleting {
                // Powered off from inside: it stays off, like a physical machine.
                rec.power = PowerState::Stopped;
                rec.generation += 1;
                rec.creating = false;
                rec_changed = true;
            }
        }
        if let Some((id, st, msg)) = &finish {
            let mut op = progress_op(state, id, msg).await?;
            if rec.creating
                && let Ok(Some(kv)) = state.store.get(&records::op_key(id)).await
                && let Ok(old) = serde_json::from_slice::<novacron_api_types::Operation>(&kv.value)
                && let Some(cause) = old.message.strip_suffix("; rolling back")
            {
                // Keep the reason the creation failed.
                op.message = format!("{cause}; everything it made was removed");
            }
            op.state = *st;
            if *st == OperationState::Succeeded {
                op.progress = Some(1.0);
            }
            ops.push(Op::Put {
                key: records::op_key(id),
                value: json_bytes(&op)?,
            });
        }
        let compares = vec![];
        Ok(if deleted {
            Change::Delete { compares, ops }
        } else if rec_changed {
            Change::WriteWith {
                record: rec,
                compares,
                ops,
            }
        } else {
            Change::KeepWith { compares, ops }
        })
    })
    .await?
    // The VM is gone (deleted, or never was): nothing to record.
    .ok_or_else(|| ApiError::not_found(format!("no VM {project}/{name}")))?;
    state
        .statuses
        .wait_for(updated.revision, AppState::CATCH_UP)
        .await;
    Ok(AxumJson(serde_json::json!({"revision": updated.revision})))
}

/// The operation `id` with a new message (not yet written).
async fn progress_op(
    state: &AppState,
    id: &str,
    message: &str,
) -> ApiResult<novacron_api_types::Operation> {
    let kv = state
        .store
        .get(&records::op_key(id))
        .await?
        .ok_or_else(|| ApiError::internal(format!("operation {id} vanished")))?;
    let mut op: novacron_api_types::Operation = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiFailure(ApiError::internal(format!("operation record: {e}"))))?;
    op.message = message.into();
    op.updated_at = now();
    Ok(op)
}

/// Calls an agent endpoint as the control plane (POST, JSON both ways). An error answer comes
/// back as the agent's own error; an unreachable agent as `unavailable`, naming the node.
pub async fn call_agent<B: serde::Serialize, R: serde::de::DeserializeOwned>(
    state: &AppState,
    node: &NodeRecord,
    path: &str,
    body: &B,
) -> Result<R, ApiError> {
    let url = format!("{}{path}", node.agent_url.trim_end_matches('/'));
    let r = state
        .agent_http
        .post(&url)
        .bearer_auth(state.server_token(node))
        .timeout(Duration::from_secs(300))
        .json(body)
        .send()
        .await
        .map_err(|e| {
            ApiError::unavailable(format!(
                "cannot reach the agent of node {}: {}",
                node.name,
                novacron_client::error_chain(&e)
            ))
        })?;
    let status = r.status();
    let bytes = r.bytes().await.map_err(|e| {
        ApiError::unavailable(format!("reading the answer of node {}: {e}", node.name))
    })?;
    if !status.is_success() {
        return Err(
            serde_json::from_slice::<ApiError>(&bytes).unwrap_or_else(|_| {
                ApiError::unavailable(format!("agent of {} answered {status}", node.name))
            }),
        );
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("answer of node {}: {e}", node.name)))
}
