//! The events stream's engine: one watch on the whole store (`/novacron/`) turned into
//! [`Event`]s, a bounded window of recent events for clients that resume, and a broadcast
//! for clients that follow. Handlers write records as before; every event is derived from
//! the record changes, so nothing can change state without an event.
//!
//! Ids are store revisions (with the change's place inside its revision), so every
//! control-plane replica gives the same change the same id and a client may resume on
//! another replica after a failover. A replica keeps the last [`RETAINED_EVENTS`] events,
//! and on start it replays up to [`BACKFILL_REVISIONS`] revisions of the store's history
//! (what the store still keeps) to fill that window. A client resuming from before the
//! window gets a gap notice ([`Replay::gap`]) and then everything retained.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use novacron_api_types::audit::AuditRecord;
use novacron_api_types::events::{Event, EventId, EventKind};
use novacron_api_types::migration::Migration;
use novacron_api_types::{Operation, PowerState};
use novacron_store::{KeyValue, Revision, Store, StoreError, WatchEvent};
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast;

use crate::records::{self, NetworkRecord, NodeRecord, VmRecord, VmStatusRecord};

/// Events kept for clients that resume (about a few MB at most).
pub const RETAINED_EVENTS: usize = 10_000;

/// How many revisions of store history a starting replica replays into its window.
pub const BACKFILL_REVISIONS: Revision = 10_000;

/// What followers receive.
#[derive(Debug, Clone)]
pub enum Item {
    Event(Arc<Event>),
    /// The hub lost its place in the store's history (compaction): events between the last
    /// one sent and `retained_after` are lost.
    Gap {
        retained_after: EventId,
    },
}

/// Turns record changes into events. Keeps, per record, the few fields events are made of,
/// so that a write that changes none of them (a heartbeat's timestamp) makes no event.
#[derive(Default)]
pub struct Deriver {
    seen: HashMap<String, serde_json::Value>,
}

/// A state or enum value as its wire name (`running`).
fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// `(project, name)` from the rest of a key after its prefix (`project/name`).
fn project_and_name(rest: &str) -> Option<(&str, &str)> {
    rest.split_once('/')
}

struct Draft {
    kind: EventKind,
    action: String,
    resource: String,
    related: Vec<String>,
    project: Option<String>,
    message: String,
    data: serde_json::Value,
}

impl Deriver {
    /// The event for one store change at `id`, if it makes one.
    pub fn derive(&mut self, id: EventId, change: &WatchEvent) -> Option<Event> {
        let key = change.key();
        let rest = key.strip_prefix(records::ROOT)?;
        let (collection, rest) = rest.split_once('/')?;
        let put = match change {
            WatchEvent::Put(kv) => Some(kv),
            WatchEvent::Delete { .. } => None,
        };
        let draft = match collection {
            "vms" => self.vm(key, rest, put),
            "vmstatus" => self.vm_status(key, rest, put),
            "nodes" => self.node(key, rest, put),
            "nodeleases" => node_lease(rest, put),
            "operations" => self.operation(key, put),
            "migrations" => self.migration(key, put),
            "networks" => network(rest, put),
            "audit" => audit(rest, put),
            _ => None,
        }?;
        Some(Event {
            id: id.to_string(),
            revision: id.revision,
            kind: draft.kind,
            action: draft.action,
            resource: draft.resource,
            related: draft.related,
            project: draft.project,
            message: draft.message,
            data: draft.data,
        })
    }

    /// Records `summary` for `key`; the previous one, or `None` when the summary did not
    /// change (nothing to tell).
    fn remember(
        &mut self,
        key: &str,
        summary: serde_json::Value,
    ) -> Option<Option<serde_json::Value>> {
        match self.seen.insert(key.to_string(), summary.clone()) {
            Some(old) if old == summary => None,
            old => Some(old),
        }
    }

    fn vm(&mut self, key: &str, rest: &str, put: Option<&KeyValue>) -> Option<Draft> {
        let (project, name) = project_and_name(rest)?;
        let mut draft = Draft {
            kind: EventKind::Vm,
            action: String::new(),
            resource: format!("vm/{name}"),
            related: vec![],
            project: Some(project.to_string()),
            message: String::new(),
            data: json!({}),
        };
        let Some(kv) = put else {
            self.seen.remove(key);
            draft.action = "deleted".into();
            draft.message = format!("VM {name} deleted");
            return Some(draft);
        };
        let rec: VmRecord = decode(kv)?;
        let summary = json!({
            "power": name_of(&rec.power),
            "node": rec.node,
            "deleting": rec.deleting,
            "migration": rec.migration,
        });
        let old = self.remember(key, summary.clone())?;
        draft.related = vec![format!("node/{}", rec.node)];
        draft.data = summary;
        let power = name_of(&rec.power);
        if kv.create_revision == kv.mod_revision {
            draft.action = "created".into();
            draft.message = format!("VM {name} created on node {} (power {power})", rec.node);
            return Some(draft);
        }
        // A VM changes node only by a migration's switch-over (which clears the migration
        // it carried) or by the HA controller restarting it elsewhere.
        if let Some(old) = &old
            && old["node"] != rec.node.as_str()
            && old["migration"].is_null()
        {
            let from = old["node"].as_str().unwrap_or_default().to_string();
            draft.kind = EventKind::Ha;
            draft.action = "restarted".into();
            draft.message = format!(
                "HA: VM {name} restarted on node {} after node {from} was lost",
                rec.node
            );
            draft.related.push(format!("node/{from}"));
            return Some(draft);
        }
        draft.action = "changed".into();
        draft.message = if rec.deleting {
            format!("VM {name} is being deleted")
        } else if let Some(m) = &rec.migration {
            format!("VM {name} is migrating ({m})")
        } else {
            let verb = match rec.power {
                PowerState::Running => "should run",
                PowerState::Paused => "should be paused",
                PowerState::Stopped => "should be stopped",
            };
            format!("VM {name} {verb} on node {}", rec.node)
        };
        Some(draft)
    }

    fn vm_status(&mut self, key: &str, rest: &str, put: Option<&KeyValue>) -> Option<Draft> {
        let (project, name) = project_and_name(rest)?;
        let Some(kv) = put else {
            // The VM's own deletion says it.
            self.seen.remove(key);
            return None;
        };
        let rec: VmStatusRecord = decode(kv)?;
        let state = name_of(&rec.state);
        let summary = json!({"state": state, "reason": rec.reason});
        self.remember(key, summary.clone())?;
        let message = match &rec.reason {
            Some(reason) => format!("VM {name} is {state}: {reason}"),
            None => format!("VM {name} is {state}"),
        };
        Some(Draft {
            kind: EventKind::Vm,
            action: "state".into(),
            resource: format!("vm/{name}"),
            related: vec![],
            project: Some(project.to_string()),
            message,
            data: summary,
        })
    }

    fn node(&mut self, key: &str, name: &str, put: Option<&KeyValue>) -> Option<Draft> {
        let mut draft = Draft {
            kind: EventKind::Node,
            action: String::new(),
            resource: format!("node/{name}"),
            related: vec![],
            project: None,
            message: String::new(),
            data: json!({}),
        };
        let Some(kv) = put else {
            self.seen.remove(key);
            draft.action = "removed".into();
            draft.message = format!("node {name} removed");
            return Some(draft);
        };
        let rec: NodeRecord = decode(kv)?;
        let admin_state = name_of(&rec.admin_state);
        let summary = json!({"admin_state": admin_state});
        self.remember(key, summary.clone())?;
        draft.data = summary;
        if kv.create_revision == kv.mod_revision {
            draft.action = "registered".into();
            draft.message = format!("node {name} registered ({admin_state})");
        } else {
            draft.message = format!("node {name} is {admin_state}");
            draft.action = admin_state;
        }
        Some(draft)
    }

    fn operation(&mut self, key: &str, put: Option<&KeyValue>) -> Option<Draft> {
        let Some(kv) = put else {
            // Expiry of finished operations: nothing happened to anything.
            self.seen.remove(key);
            return None;
        };
        let op: Operation = decode(kv)?;
        let state = name_of(&op.state);
        let percent = op.progress.map(|p| (p * 100.0).round() as i64);
        let summary = json!({
            "operation_kind": op.kind,
            "state": state,
            "message": op.message,
            "progress_percent": percent,
        });
        let old = self.remember(key, summary.clone())?;
        let backup =
            op.kind == "vm.backup" || op.kind == "vm.restore" || op.kind.starts_with("backup.");
        let action = if kv.create_revision == kv.mod_revision {
            "created".to_string()
        } else if old.is_some_and(|o| o["state"] == state.as_str()) {
            "progress".to_string()
        } else {
            state.clone()
        };
        let mut message = format!("operation {} ({} {}): {state}", op.id, op.kind, op.target);
        if !op.message.is_empty() {
            message.push_str(&format!(", {}", op.message));
        }
        if let Some(p) = percent {
            message.push_str(&format!(" ({p} %)"));
        }
        Some(Draft {
            kind: if backup {
                EventKind::Backup
            } else {
                EventKind::Operation
            },
            action,
            resource: format!("operation/{}", op.id),
            related: vec![op.target.clone()],
            project: Some(op.project.clone()),
            message,
            data: summary,
        })
    }

    fn migration(&mut self, key: &str, put: Option<&KeyValue>) -> Option<Draft> {
        let Some(kv) = put else {
            self.seen.remove(key);
            return None;
        };
        let m: Migration = decode(kv)?;
        let state = m.state.as_str().to_string();
        let summary = json!({
            "state": state,
            "phase": m.progress.phase,
            "message": m.message,
            "bytes_sent": m.progress.bytes_sent,
            "remaining_ram_bytes": m.progress.remaining_ram_bytes,
            "disk_remaining_bytes": m.progress.disk_remaining_bytes,
        });
        let old = self.remember(key, summary.clone())?;
        let action = if kv.create_revision == kv.mod_revision {
            "started".to_string()
        } else if old.is_some_and(|o| o["state"] == state.as_str()) {
            "progress".to_string()
        } else {
            state.clone()
        };
        let phase = if m.progress.phase.is_empty() {
            state.clone()
        } else {
            m.progress.phase.clone()
        };
        Some(Draft {
            kind: EventKind::Migration,
            action,
            resource: format!("migration/{}", m.id),
            related: vec![
                format!("vm/{}", m.vm),
                format!("node/{}", m.source),
                format!("node/{}", m.destination),
            ],
            project: Some(m.project.clone()),
            message: format!(
                "migration {} of VM {} from {} to {}: {state}, {phase}, {} bytes sent",
                m.id, m.vm, m.source, m.destination, m.progress.bytes_sent
            ),
            data: summary,
        })
    }
}

/// Networks are created and deleted, never changed.
fn network(rest: &str, put: Option<&KeyValue>) -> Option<Draft> {
    let (project, name) = project_and_name(rest)?;
    let mut draft = Draft {
        kind: EventKind::Network,
        action: "deleted".into(),
        resource: format!("network/{name}"),
        related: vec![],
        project: Some(project.to_string()),
        message: format!("network {name} deleted"),
        data: json!({}),
    };
    if let Some(kv) = put {
        if kv.create_revision != kv.mod_revision {
            return None;
        }
        let net: NetworkRecord = decode(kv)?;
        draft.action = "created".into();
        draft.message = format!("network {name} created ({}, VNI {})", net.subnet, net.vni);
        draft.data = json!({"subnet": net.subnet, "vni": net.vni, "mtu": net.mtu});
    }
    Some(draft)
}

/// One event per record of the audit log, when it is written (the chain is append-only; a
/// record's removal by retention tells nothing).
fn audit(rest: &str, put: Option<&KeyValue>) -> Option<Draft> {
    rest.strip_prefix("records/")?;
    let r: AuditRecord = decode(put?)?;
    let who = r.user.as_deref().unwrap_or(&r.actor);
    Some(Draft {
        kind: EventKind::Audit,
        action: r.outcome.as_str().into(),
        resource: format!("audit/{}", r.seq),
        related: vec![],
        project: r.project.clone(),
        message: format!("{who}: {} {} ({})", r.action, r.status, r.outcome.as_str()),
        data: json!({
            "seq": r.seq,
            "actor": r.actor,
            "user": r.user,
            "action": r.action,
            "target": r.target,
            "status": r.status,
            "request_id": r.request_id,
        }),
    })
}

/// A node's lease key appears when its agent starts heartbeating and goes when the lease
/// expires (renewals do not write the key).
fn node_lease(name: &str, put: Option<&KeyValue>) -> Option<Draft> {
    let (action, message) = match put {
        Some(kv) if kv.create_revision == kv.mod_revision => {
            ("up", format!("node {name} is up (heartbeats)"))
        }
        Some(_) => return None,
        None => ("down", format!("node {name} is down (no heartbeat)")),
    };
    Some(Draft {
        kind: EventKind::Node,
        action: action.into(),
        resource: format!("node/{name}"),
        related: vec![],
        project: None,
        message,
        data: json!({}),
    })
}

fn decode<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Option<T> {
    match serde_json::from_slice(&kv.value) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(key = kv.key, error = %e, "no event for a record this version cannot read");
            None
        }
    }
}

/// What a resuming client gets: a gap notice if events it has not seen are gone, then the
/// retained events after its position.
#[derive(Debug, Default)]
pub struct Replay {
    /// Set when events after the client's position were dropped: the oldest position from
    /// which the window is complete.
    pub gap: Option<EventId>,
    pub events: Vec<Arc<Event>>,
}

/// The bounded window of recent events.
pub struct EventLog {
    events: VecDeque<(EventId, Arc<Event>)>,
    capacity: usize,
    /// Every event after this position (and up to the newest) is in the window.
    complete_after: EventId,
}

impl EventLog {
    pub fn new(capacity: usize, complete_after: EventId) -> EventLog {
        EventLog {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            complete_after,
        }
    }

    pub fn push(&mut self, id: EventId, event: Arc<Event>) {
        if self.events.len() == self.capacity
            && let Some((dropped, _)) = self.events.pop_front()
        {
            self.complete_after = dropped;
        }
        self.events.push_back((id, event));
    }

    /// Forgets everything: the window is complete only after `complete_after`.
    pub fn reset(&mut self, complete_after: EventId) {
        self.events.clear();
        self.complete_after = complete_after;
    }

    pub fn complete_after(&self) -> EventId {
        self.complete_after
    }

    /// The retained events after `after` (`None`: none, the client wants new ones only).
    /// A position of revision 0 asks for everything retained, without a gap notice.
    pub fn after(&self, after: Option<EventId>) -> Replay {
        let Some(after) = after else {
            return Replay::default();
        };
        let gap =
            (after.revision > 0 && after < self.complete_after).then_some(self.complete_after);
        let start = self.events.partition_point(|(id, _)| *id <= after);
        Replay {
            gap,
            events: self
                .events
                .iter()
                .skip(start)
                .map(|(_, e)| e.clone())
                .collect(),
        }
    }
}

struct Shared {
    log: Mutex<EventLog>,
    tx: broadcast::Sender<Item>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, EventLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The events of this replica: started with the server, stopped when dropped.
pub struct EventHub {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EventHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Followers that fall this far behind the broadcast catch up from the window.
const BROADCAST_CAPACITY: usize = 1024;

impl EventHub {
    /// Starts following `store` from [`BACKFILL_REVISIONS`] before its current revision.
    pub async fn start(store: Arc<dyn Store>) -> Result<EventHub, StoreError> {
        Self::start_with(store, RETAINED_EVENTS, BACKFILL_REVISIONS).await
    }

    pub async fn start_with(
        store: Arc<dyn Store>,
        retained: usize,
        backfill: Revision,
    ) -> Result<EventHub, StoreError> {
        let current = store.revision().await?;
        let from = current.saturating_sub(backfill).max(0);
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let shared = Arc::new(Shared {
            log: Mutex::new(EventLog::new(retained, EventId::end_of(from))),
            tx,
        });
        let task = tokio::spawn(follow(store, shared.clone(), from));
        Ok(EventHub { shared, task })
    }

    /// The retained events after `after` and a receiver of every later one, with nothing
    /// lost or repeated between the two.
    pub fn subscribe(&self, after: Option<EventId>) -> (Replay, broadcast::Receiver<Item>) {
        let log = self.shared.lock();
        let rx = self.shared.tx.subscribe();
        (log.after(after), rx)
    }

    /// The retained events after `after` (for a follower that fell behind the broadcast).
    pub fn replay(&self, after: Option<EventId>) -> Replay {
        self.shared.lock().after(after)
    }
}

async fn follow(store: Arc<dyn Store>, shared: Arc<Shared>, mut after: Revision) {
    let mut deriver = Deriver::default();
    // The last change handled: a watch resumed after an error replays the revision it was
    // in, and changes up to this one are skipped.
    let mut last: Option<EventId> = None;
    loop {
        let result = async {
            let mut stream = store.watch(records::ROOT, after).await?;
            let mut position: Option<EventId> = None;
            while let Some(change) = stream.next().await {
                let change = change?;
                let revision = change.revision();
                let id = match position {
                    Some(p) if p.revision == revision => EventId {
                        revision,
                        index: p.index + 1,
                    },
                    _ => EventId { revision, index: 0 },
                };
                if let Some(p) = position
                    && p.revision < revision
                {
                    // Every change of the previous revision has been seen.
                    after = p.revision;
                }
                position = Some(id);
                if last.is_some_and(|l| id <= l) {
                    continue;
                }
                last = Some(id);
                let Some(event) = deriver.derive(id, &change) else {
                    continue;
                };
                let event = Arc::new(event);
                let mut log = shared.lock();
                log.push(id, event.clone());
                let _ = shared.tx.send(Item::Event(event));
            }
            Ok::<(), StoreError>(())
        }
        .await;
        match result {
            Ok(()) => tracing::debug!("events: store watch ended; resuming"),
            Err(StoreError::Compacted { requested, oldest }) => {
                let current = match store.revision().await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "events: cannot read the store revision");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                // Start from the oldest history kept if it still reaches the window,
                // else from now.
                let restart = if oldest > requested { oldest } else { current };
                tracing::warn!(
                    requested,
                    oldest,
                    restart,
                    "events: store history compacted; events in between are lost"
                );
                after = restart;
                let retained_after = EventId::end_of(restart);
                last = Some(retained_after);
                let mut log = shared.lock();
                log.reset(retained_after);
                let _ = shared.tx.send(Item::Gap { retained_after });
            }
            Err(e) => tracing::warn!(error = %e, "events: store watch failed; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use novacron_api_types::OperationState;

    fn put(key: &str, value: serde_json::Value, create: Revision, rev: Revision) -> WatchEvent {
        WatchEvent::Put(KeyValue {
            key: key.into(),
            value: serde_json::to_vec(&value).unwrap(),
            create_revision: create,
            mod_revision: rev,
            lease: None,
        })
    }

    fn id(revision: i64, index: u32) -> EventId {
        EventId { revision, index }
    }

    fn status(state: &str, reason: Option<&str>) -> serde_json::Value {
        json!({"observed_generation": 1, "state": state, "reason": reason, "updated_at": 5})
    }

    #[test]
    fn vm_status_changes_make_events_and_repeats_do_not() {
        let mut d = Deriver::default();
        let key = "/novacron/vmstatus/default/web1";
        let e = d
            .derive(id(3, 0), &put(key, status("starting", None), 3, 3))
            .unwrap();
        assert_eq!(e.kind, EventKind::Vm);
        assert_eq!(e.resource, "vm/web1");
        assert_eq!(e.project.as_deref(), Some("default"));
        assert_eq!(e.data["state"], "starting");
        assert_eq!(e.id, "3-0");
        assert!(
            d.derive(id(4, 0), &put(key, status("starting", None), 3, 4))
                .is_none(),
            "a write that changes nothing an event shows makes no event"
        );
        let e = d
            .derive(id(5, 1), &put(key, status("running", None), 3, 5))
            .unwrap();
        assert_eq!(e.message, "VM web1 is running");
        assert!(
            d.derive(
                id(6, 0),
                &WatchEvent::Delete {
                    key: key.into(),
                    revision: 6
                }
            )
            .is_none()
        );
    }

    fn vm(node: &str, migration: Option<&str>) -> serde_json::Value {
        json!({
            "name": "web1", "project": "default", "uuid": "u", "cpus": 1,
            "memory_bytes": 1, "disk_bytes": null, "image": "tiny", "accel": "tcg",
            "network": {"mode": "none"}, "node": node, "power": "running", "generation": 1,
            "created_at": 1, "migration": migration
        })
    }

    #[test]
    fn a_vm_moved_without_a_migration_is_an_ha_restart() {
        let mut d = Deriver::default();
        let key = "/novacron/vms/default/web1";
        let e = d.derive(id(2, 0), &put(key, vm("a", None), 2, 2)).unwrap();
        assert_eq!((e.kind, e.action.as_str()), (EventKind::Vm, "created"));
        let e = d.derive(id(3, 0), &put(key, vm("b", None), 2, 3)).unwrap();
        assert_eq!((e.kind, e.action.as_str()), (EventKind::Ha, "restarted"));
        assert!(e.concerns("node/a") && e.concerns("node/b"));
        // Migration: the record carries the migration, then switches node and clears it.
        d.derive(id(4, 0), &put(key, vm("b", Some("m1")), 2, 4))
            .unwrap();
        let e = d.derive(id(5, 0), &put(key, vm("c", None), 2, 5)).unwrap();
        assert_eq!((e.kind, e.action.as_str()), (EventKind::Vm, "changed"));
        let e = d
            .derive(
                id(6, 0),
                &WatchEvent::Delete {
                    key: key.into(),
                    revision: 6,
                },
            )
            .unwrap();
        assert_eq!(e.action, "deleted");
    }

    #[test]
    fn operations_report_progress_and_backups_are_their_own_kind() {
        let mut d = Deriver::default();
        let op = |kind: &str, state: OperationState, progress: Option<f64>| {
            serde_json::to_value(Operation {
                id: "op1".into(),
                project: "default".into(),
                kind: kind.into(),
                target: "vm/web1".into(),
                state,
                message: String::new(),
                progress,
                created_at: 1,
                updated_at: 1,
            })
            .unwrap()
        };
        let key = "/novacron/operations/op1";
        let e = d
            .derive(
                id(1, 0),
                &put(key, op("vm.backup", OperationState::Running, None), 1, 1),
            )
            .unwrap();
        assert_eq!((e.kind, e.action.as_str()), (EventKind::Backup, "created"));
        assert!(e.concerns("vm/web1"));
        let e = d
            .derive(
                id(2, 0),
                &put(
                    key,
                    op("vm.backup", OperationState::Running, Some(0.5)),
                    1,
                    2,
                ),
            )
            .unwrap();
        assert_eq!(e.action, "progress");
        assert_eq!(e.data["progress_percent"], 50);
        let e = d
            .derive(
                id(3, 0),
                &put(
                    key,
                    op("vm.backup", OperationState::Succeeded, Some(1.0)),
                    1,
                    3,
                ),
            )
            .unwrap();
        assert_eq!(e.action, "succeeded");
    }

    #[test]
    fn node_leases_tell_up_and_down() {
        let mut d = Deriver::default();
        let key = "/novacron/nodeleases/n1";
        let lease = json!({"lease": 1, "ttl_ms": 1000, "since": 1});
        let e = d.derive(id(1, 0), &put(key, lease.clone(), 1, 1)).unwrap();
        assert_eq!((e.kind, e.action.as_str()), (EventKind::Node, "up"));
        assert!(d.derive(id(2, 0), &put(key, lease, 1, 2)).is_none());
        let e = d
            .derive(
                id(3, 0),
                &WatchEvent::Delete {
                    key: key.into(),
                    revision: 3,
                },
            )
            .unwrap();
        assert_eq!(e.action, "down");
        assert!(
            d.derive(id(4, 0), &put("/novacron/tokens/x", json!({}), 4, 4))
                .is_none()
        );
    }

    #[test]
    fn networks_and_audit_records_make_events() {
        let mut d = Deriver::default();
        let key = "/novacron/networks/team-a/app";
        let net = json!({"name": "app", "project": "team-a", "vni": 4100, "subnet": "10.10.0.0/24",
            "gateway": "10.10.0.1", "nat": false, "dhcp": true, "dns": false, "mtu": 1450, "created_at": 1});
        let e = d.derive(id(1, 0), &put(key, net, 1, 1)).unwrap();
        assert_eq!((e.kind, e.action.as_str()), (EventKind::Network, "created"));
        assert_eq!(
            (e.resource.as_str(), e.project.as_deref()),
            ("network/app", Some("team-a"))
        );
        assert_eq!(e.data["vni"], 4100);
        let gone = WatchEvent::Delete {
            key: key.into(),
            revision: 2,
        };
        assert_eq!(d.derive(id(2, 0), &gone).unwrap().action, "deleted");
        assert!(
            d.derive(
                id(3, 0),
                &put("/novacron/networkguards/team-a", json!({}), 3, 3)
            )
            .is_none()
        );

        let record = json!({"seq": 7, "time": 1, "actor": "token tk-1", "user": "alice",
            "project": "team-a", "action": "POST /api/v1/vms", "target": "/api/v1/vms",
            "outcome": "refused", "status": 403, "request_id": "r1", "source": "127.0.0.1:5",
            "prev": "p", "hash": "h"});
        let e = d
            .derive(id(4, 0), &put(&crate::audit::record_key(7), record, 4, 4))
            .unwrap();
        assert_eq!((e.kind, e.action.as_str()), (EventKind::Audit, "refused"));
        assert_eq!(
            (e.resource.as_str(), e.project.as_deref()),
            ("audit/7", Some("team-a"))
        );
        assert_eq!(e.message, "alice: POST /api/v1/vms 403 (refused)");
        assert!(
            d.derive(
                id(5, 0),
                &put(crate::audit::HEAD_KEY, json!({"seq": 7}), 1, 5)
            )
            .is_none(),
            "the chain's head is not a record"
        );
    }

    fn event(i: i64) -> Arc<Event> {
        Arc::new(Event {
            id: format!("{i}-0"),
            revision: i,
            kind: EventKind::Vm,
            action: "state".into(),
            resource: "vm/a".into(),
            related: vec![],
            project: None,
            message: String::new(),
            data: json!({}),
        })
    }

    #[test]
    fn the_window_replays_exactly_what_follows_and_tells_a_gap() {
        let mut log = EventLog::new(3, EventId::end_of(10));
        for r in 11..=14 {
            log.push(id(r, 0), event(r));
        }
        // 11-0 was dropped: complete after it.
        assert_eq!(log.complete_after(), id(11, 0));
        let revs = |r: Replay| r.events.iter().map(|e| e.revision).collect::<Vec<_>>();
        let r = log.after(Some(id(12, 0)));
        assert!(r.gap.is_none());
        assert_eq!(revs(r), vec![13, 14]);
        let r = log.after(Some(id(11, 0)));
        assert!(r.gap.is_none(), "every event after 11-0 is still there");
        let r = log.after(Some(id(10, 0)));
        assert_eq!(r.gap, Some(id(11, 0)));
        assert_eq!(revs(r), vec![12, 13, 14]);
        let r = log.after(Some(EventId::end_of(0)));
        assert!(r.gap.is_none(), "revision 0 asks for all that is retained");
        assert_eq!(log.after(None).events.len(), 0);
    }
}
