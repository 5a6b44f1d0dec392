//! Finished work by outcome, for `/metrics`: operations by kind (backups and restores are the
//! `vm.backup` and `vm.restore` kinds) and live migrations, each counted once when its record
//! reaches an end state, with how long it took (`updated_at - created_at`, whole seconds).
//!
//! Fed from the events stream, so a replica counts what finishes while it runs: counters
//! start at zero with the process (as Prometheus expects of counters), and every replica of
//! an HA control plane counts every outcome.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use novacron_api_types::events::{Event, EventKind};
use novacron_api_types::migration::Migration;
use novacron_api_types::{Operation, UnixSeconds};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::broadcast;

use crate::events::Item;
use crate::records;
use crate::state::AppState;

/// Upper bounds (seconds) of the duration histograms: from a VM start to an hour-long copy.
const DURATION_BUCKETS: [f64; 11] = [
    1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// How many finished ids are remembered, so a later change of a finished record (a new
/// message) is not counted twice.
const REMEMBERED: usize = 4096;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationOutcome {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MigrationOutcome {
    pub outcome: String,
}

/// The outcome families.
#[derive(Clone)]
pub struct Outcomes {
    operations: Family<OperationOutcome, Counter>,
    operation_seconds: Family<OperationOutcome, Histogram>,
    migrations: Family<MigrationOutcome, Counter>,
    migration_seconds: Family<MigrationOutcome, Histogram>,
}

impl Outcomes {
    pub fn register(registry: &mut Registry) -> Outcomes {
        let histogram = || Histogram::new(DURATION_BUCKETS);
        let o = Outcomes {
            operations: Family::default(),
            operation_seconds: Family::new_with_constructor(histogram),
            migrations: Family::default(),
            migration_seconds: Family::new_with_constructor(histogram),
        };
        registry.register(
            "novacron_operations",
            "Finished operations by kind and outcome (succeeded, failed)",
            o.operations.clone(),
        );
        registry.register(
            "novacron_operation_duration_seconds",
            "How long finished operations took, by kind and outcome",
            o.operation_seconds.clone(),
        );
        registry.register(
            "novacron_migrations",
            "Finished live migrations by outcome (succeeded, failed, cancelled)",
            o.migrations.clone(),
        );
        registry.register(
            "novacron_migration_duration_seconds",
            "How long finished live migrations took, by outcome",
            o.migration_seconds.clone(),
        );
        o
    }

    fn count(&self, f: &Finished, seconds: f64) {
        match &f.what {
            What::Operation { kind } => {
                let labels = OperationOutcome {
                    kind: kind.clone(),
                    outcome: f.outcome.clone(),
                };
                self.operations.get_or_create(&labels).inc();
                self.operation_seconds
                    .get_or_create(&labels)
                    .observe(seconds);
            }
            What::Migration => {
                let labels = MigrationOutcome {
                    outcome: f.outcome.clone(),
                };
                self.migrations.get_or_create(&labels).inc();
                self.migration_seconds
                    .get_or_create(&labels)
                    .observe(seconds);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum What {
    Operation { kind: String },
    Migration,
}

/// An event that says a record reached its end state.
#[derive(Debug, Clone, PartialEq)]
struct Finished {
    what: What,
    id: String,
    outcome: String,
}

/// What `event` finished, if it says an operation or migration reached an end state. An
/// operation may be created finished, so the state in the event's data decides, not its
/// action.
fn finished(event: &Event) -> Option<Finished> {
    let state = event.data.get("state")?.as_str()?;
    match event.kind {
        EventKind::Operation | EventKind::Backup => {
            let id = event.resource.strip_prefix("operation/")?;
            let kind = event.data.get("operation_kind")?.as_str()?;
            matches!(state, "succeeded" | "failed").then(|| Finished {
                what: What::Operation {
                    kind: kind.to_string(),
                },
                id: id.to_string(),
                outcome: state.to_string(),
            })
        }
        EventKind::Migration => {
            let id = event.resource.strip_prefix("migration/")?;
            matches!(state, "succeeded" | "failed" | "cancelled").then(|| Finished {
                what: What::Migration,
                id: id.to_string(),
                outcome: state.to_string(),
            })
        }
        _ => None,
    }
}

/// Ids counted already (the newest [`REMEMBERED`]).
#[derive(Default)]
struct Counted {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Counted {
    /// True the first time `id` is seen.
    fn first(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_string()) {
            return false;
        }
        self.order.push_back(id.to_string());
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

/// Counts outcomes from the events stream while the control plane runs. Events already in
/// the hub's window when it starts are not counted (they finished before).
pub async fn follow(state: Arc<AppState>) {
    let start = match state.store.revision().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "outcome metrics: cannot read the store revision; not counting");
            return;
        }
    };
    let (_, mut rx) = state
        .events
        .subscribe(Some(novacron_api_types::events::EventId::end_of(start)));
    let mut counted = Counted::default();
    loop {
        let event = match rx.recv().await {
            Ok(Item::Event(e)) => e,
            Ok(Item::Gap { .. }) => continue,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "outcome metrics fell behind the events stream");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if event.revision <= start {
            continue;
        }
        let Some(f) = finished(&event) else { continue };
        if !counted.first(&f.id) {
            continue;
        }
        let seconds = duration_of(&state, &f).await.unwrap_or(0);
        state.metrics.outcomes.count(&f, seconds as f64);
    }
}

/// Reads `(created_at, updated_at)` from a record's bytes.
type Span = fn(&[u8]) -> Option<(UnixSeconds, UnixSeconds)>;

/// How long the finished record took, from the record itself.
async fn duration_of(state: &AppState, f: &Finished) -> Option<UnixSeconds> {
    let (key, span): (String, Span) = match f.what {
        What::Operation { .. } => (records::op_key(&f.id), |b| {
            serde_json::from_slice::<Operation>(b)
                .ok()
                .map(|o| (o.created_at, o.updated_at))
        }),
        What::Migration => (records::migration_key(&f.id), |b| {
            serde_json::from_slice::<Migration>(b)
                .ok()
                .map(|m| (m.created_at, m.updated_at))
        }),
    };
    let kv = state.store.get(&key).await.ok()??;
    let (created, updated) = span(&kv.value)?;
    Some(updated.saturating_sub(created))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: EventKind, action: &str, resource: &str, data: serde_json::Value) -> Event {
        Event {
            id: "1-0".into(),
            revision: 1,
            kind,
            action: action.into(),
            resource: resource.into(),
            related: vec![],
            project: Some("default".into()),
            message: String::new(),
            data,
        }
    }

    #[test]
    fn end_states_are_outcomes_and_nothing_else_is() {
        let op = |action, state| {
            event(
                EventKind::Operation,
                action,
                "operation/op-1",
                json!({"operation_kind": "vm.start", "state": state}),
            )
        };
        assert_eq!(
            finished(&op("succeeded", "succeeded")),
            Some(Finished {
                what: What::Operation {
                    kind: "vm.start".into()
                },
                id: "op-1".into(),
                outcome: "succeeded".into()
            })
        );
        // Created already finished: the state decides.
        assert_eq!(
            finished(&op("created", "failed")).unwrap().outcome,
            "failed"
        );
        assert_eq!(finished(&op("progress", "running")), None);
        let backup = event(
            EventKind::Backup,
            "failed",
            "operation/op-2",
            json!({"operation_kind": "vm.backup", "state": "failed"}),
        );
        assert_eq!(
            finished(&backup).unwrap().what,
            What::Operation {
                kind: "vm.backup".into()
            }
        );
        let migration = |state| {
            event(
                EventKind::Migration,
                state,
                "migration/m-1",
                json!({"state": state}),
            )
        };
        assert_eq!(
            finished(&migration("cancelled")).unwrap().what,
            What::Migration
        );
        assert_eq!(finished(&migration("committed")), None);
        assert_eq!(finished(&migration("running")), None);
        let vm = event(
            EventKind::Vm,
            "state",
            "vm/web1",
            json!({"state": "failed"}),
        );
        assert_eq!(finished(&vm), None);
    }

    #[test]
    fn each_id_counts_once_and_memory_is_bounded() {
        let mut c = Counted::default();
        assert!(c.first("a"));
        assert!(!c.first("a"));
        for i in 0..REMEMBERED * 2 {
            c.first(&i.to_string());
        }
        assert_eq!(c.ids.len(), REMEMBERED);
        assert_eq!(c.order.len(), REMEMBERED);
    }
}
