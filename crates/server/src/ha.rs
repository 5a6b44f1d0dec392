//! High availability of the control plane and of VMs: replicas announce themselves under a
//! lease, one of them is elected (through a store lease) to run the background controllers,
//! and the HA controller restarts `--ha restart` VMs of a lost node elsewhere, after the
//! node's agent has fenced them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use novacron_api_types::{HaPolicy, PowerState, VmState};
use novacron_store::{Compare, LeaseId, Op, StoreError};

use crate::lifecycle::Event;
use crate::placement::{demand_of, vm_id};
use crate::records::{self, LeaderRecord, MemberRecord, VmRecord, VmStatusRecord, now};
use crate::state::AppState;
use crate::typed_store::Change;

const MEMBER_TTL: Duration = Duration::from_secs(10);
const LEADER_TTL: Duration = Duration::from_secs(4);

/// Keeps this replica's member record alive.
pub async fn announce(
    state: Arc<AppState>,
    record: MemberRecord,
    (credential_key, credential): (String, Vec<u8>),
) {
    let key = records::member_key(&record.id);
    let value = serde_json::to_vec(&record).unwrap_or_default();
    loop {
        let lease = match state.store.grant_lease(MEMBER_TTL).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot announce this replica; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // The replica's credential lives exactly as long as its member record.
        let put = state
            .store
            .txn(
                vec![],
                vec![
                    Op::PutWithLease {
                        key: key.clone(),
                        value: value.clone(),
                        lease,
                    },
                    Op::PutWithLease {
                        key: credential_key.clone(),
                        value: credential.clone(),
                        lease,
                    },
                ],
            )
            .await;
        if let Err(e) = put {
            tracing::warn!(error = %e, "cannot announce this replica; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            tokio::time::sleep(MEMBER_TTL / 4).await;
            match state.store.keep_alive(lease).await {
                Ok(()) => {}
                Err(StoreError::LeaseNotFound(_)) => break,
                Err(e) => tracing::warn!(error = %e, "member lease renewal failed"),
            }
        }
    }
}

/// Campaigns for leadership forever; while leader, runs the controllers.
pub async fn elect_and_run(state: Arc<AppState>) {
    let key = records::leader_key();
    loop {
        match campaign(&state, &key).await {
            Ok(Some(lease)) => {
                tracing::info!(member = %state.member_id, "this replica leads the controllers");
                let controllers = vec![
                    tokio::spawn(ha_controller(state.clone())),
                    tokio::spawn(crate::expire_operations(state.clone())),
                    tokio::spawn(crate::api::operations::fail_orphans(state.clone())),
                    tokio::spawn(crate::api::backups::schedule_controller(state.clone())),
                ];
                // Renew until the lease is lost; then stop leading at once.
                loop {
                    tokio::time::sleep(LEADER_TTL / 4).await;
                    match state.store.keep_alive(lease).await {
                        Ok(()) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the controller lease; stepping down");
                            break;
                        }
                    }
                }
                for c in controllers {
                    c.abort();
                }
            }
            Ok(None) => {
                // Someone else leads: wait for their key to go away.
                let mut changes = state.leader.subscribe_changes();
                let deadline = tokio::time::sleep(LEADER_TTL);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        c = changes.recv() => match c {
                            Ok(c) if c.new.is_none() => break,
                            Ok(_) => {}
                            Err(_) => break,
                        },
                        _ = &mut deadline => break,
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "leader election failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn campaign(state: &AppState, key: &str) -> Result<Option<LeaseId>, StoreError> {
    if state.store.get(key).await?.is_some() {
        return Ok(None);
    }
    let lease = state.store.grant_lease(LEADER_TTL).await?;
    let rec = LeaderRecord {
        member: state.member_id.clone(),
        since: now(),
    };
    let out = state
        .store
        .txn(
            vec![Compare::ModRevision {
                key: key.to_string(),
                equals: 0,
            }],
            vec![Op::PutWithLease {
                key: key.to_string(),
                value: serde_json::to_vec(&rec).unwrap_or_default(),
                lease,
            }],
        )
        .await?;
    if out.succeeded {
        Ok(Some(lease))
    } else {
        let _ = state.store.revoke_lease(lease).await;
        Ok(None)
    }
}

/// Restarts HA VMs of lost nodes on healthy ones, highest priority first.
async fn ha_controller(state: Arc<AppState>) {
    // When each node was first seen without its lease (by this leader).
    let mut lost_since: HashMap<String, Instant> = HashMap::new();
    let mut leases = state.node_leases.subscribe_revision();
    loop {
        let nodes = state.nodes.values();
        for n in &nodes {
            let alive = state
                .node_leases
                .get(&records::node_lease_key(&n.name))
                .is_some();
            if alive {
                lost_since.remove(&n.name);
                continue;
            }
            let since = *lost_since.entry(n.name.clone()).or_insert_with(|| {
                tracing::warn!(node = %n.name, "node lost its lease");
                Instant::now()
            });
            if since.elapsed() >= state.fence_margin
                && let Err(e) = restart_vms_of(&state, &n.name).await
            {
                tracing::warn!(node = %n.name, error = %e, "HA restart pass failed; retrying");
            }
        }
        lost_since.retain(|n, _| nodes.iter().any(|r| &r.name == n));
        tokio::select! {
            _ = leases.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

async fn restart_vms_of(state: &AppState, node: &str) -> Result<(), StoreError> {
    let mut vms: Vec<Arc<VmRecord>> = state.vms.with(|vms| {
        vms.values()
            .filter(|v| {
                v.node == node
                    && v.ha == HaPolicy::Restart
                    && v.power != PowerState::Stopped
                    && !v.deleting
            })
            .cloned()
            .collect()
    });
    vms.sort_by(|a, b| b.ha_priority.cmp(&a.ha_priority).then(a.name.cmp(&b.name)));
    for vm in vms {
        let id = vm_id(&vm.project, &vm.name);
        let key = records::vm_key(&vm.project, &vm.name);
        let rec = match crate::typed_store::get::<VmRecord>(state.store.as_ref(), &key).await {
            Ok(Some((rec, _))) => rec,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(vm = %vm.name, error = %e.0.message, "cannot read an HA VM's record");
                continue;
            }
        };
        if rec.node != node {
            continue; // moved meanwhile
        }
        if let Err(refusal) = crate::lifecycle::check_changeable(&rec) {
            // The same rule as every other change: the migration decides first. Its source
            // is lost, so it can no longer switch over; end it (unless it committed just now)
            // and restart the VM in a later pass.
            tracing::warn!(vm = %vm.name, node, reason = %refusal, "HA restart waits for the migration to end; ending it");
            if let Some(m) = &rec.migration
                && let Err(e) =
                    crate::api::migrations::abandon_for_lost_source(state, m, node).await
            {
                tracing::warn!(vm = %vm.name, migration = %m, error = %e.0.message, "cannot end the migration of a lost node's VM");
            }
            continue;
        }
        let target = match state
            .placement
            .relocate(&id, &demand_of(&vm), &[node.to_string()])
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(vm = %vm.name, node, error = %e.message, "no healthy node can take this HA VM; it waits");
                continue;
            }
        };
        let status = VmStatusRecord {
            observed_generation: 0,
            state: VmState::Starting,
            reason: Some(format!("node {node} was lost; restarting on {target}")),
            pid: None,
            accel_in_use: None,
            updated_at: now(),
            guest_interfaces: Vec::new(),
        };
        let status = serde_json::to_vec(&status).unwrap_or_default();
        let status_key = records::vm_status_key(&vm.project, &vm.name);
        let written =
            crate::typed_store::update(state.store.as_ref(), &key, |rec: VmRecord| {
                // Moved, or a migration started, since the read above: a later pass decides.
                let event = Event::HaRestart {
                    from: node.to_string(),
                    to: target.clone(),
                };
                let observed = crate::api::vms::observed_state(state, &rec);
                let rec = match crate::lifecycle::apply(&rec, observed, &event) {
                    Ok(next) => next,
                    Err(refusal) => {
                        tracing::info!(vm = %rec.name, reason = %refusal, "HA restart left to a later pass");
                        return std::future::ready(Ok(Change::Keep));
                    }
                };
                std::future::ready(Ok(Change::WriteWith {
                    record: rec,
                    compares: vec![],
                    ops: vec![Op::Put {
                        key: status_key.clone(),
                        value: status.clone(),
                    }],
                }))
            })
            .await;
        let out = match written {
            Ok(Some(u)) => u,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(vm = %vm.name, error = %e.0.message, "HA restart not recorded");
                continue;
            }
        };
        if out.written {
            tracing::warn!(vm = %vm.name, from = node, to = %target, "HA restart");
        }
    }
    Ok(())
}
