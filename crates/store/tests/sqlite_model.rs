//! Property test: random sequences of transactions (compares, puts, deletes, prefix
//! deletes, leases) run against the SQLite store and against a plain in-memory model of
//! etcd's semantics; outcomes, revisions, reads and the watch history must agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use novacron_store::{
    Compare, KeyValue, LeaseId, Op, Revision, SqliteStore, Store, StoreError, TxnOutcome,
    WatchEvent,
};
use proptest::prelude::*;

const KEYS: &[&str] = &["a/1", "a/2", "a/3", "ab", "b/1", "b/2"];
const PREFIXES: &[&str] = &["a/", "a", "b/", "", "zz"];

#[derive(Debug, Clone)]
enum Expect {
    /// The key's current mod revision in the model (the compare holds).
    Current,
    Absent,
    Stale(Revision),
}

#[derive(Debug, Clone)]
enum GenOp {
    Put(usize, u8),
    PutWithLease(usize, u8, usize),
    Delete(usize),
    DeletePrefix(usize),
}

#[derive(Debug, Clone)]
enum Step {
    Txn(Vec<(usize, Expect)>, Vec<GenOp>),
    Grant,
    Revoke(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let key = 0..KEYS.len();
    let expect = prop_oneof![
        3 => Just(Expect::Current),
        1 => Just(Expect::Absent),
        1 => (1i64..40).prop_map(Expect::Stale),
    ];
    let op = prop_oneof![
        4 => (key.clone(), any::<u8>()).prop_map(|(k, v)| GenOp::Put(k, v)),
        2 => (key.clone(), any::<u8>(), 0usize..4).prop_map(|(k, v, l)| GenOp::PutWithLease(k, v, l)),
        2 => key.clone().prop_map(GenOp::Delete),
        1 => (0..PREFIXES.len()).prop_map(GenOp::DeletePrefix),
    ];
    prop_oneof![
        8 => (
            proptest::collection::vec((key, expect), 0..3),
            proptest::collection::vec(op, 0..4)
        )
            .prop_map(|(c, o)| Step::Txn(c, o)),
        1 => Just(Step::Grant),
        1 => (0usize..4).prop_map(Step::Revoke),
    ]
}

/// etcd semantics, written as plainly as possible.
#[derive(Default)]
struct Model {
    revision: Revision,
    kv: BTreeMap<String, KeyValue>,
    leases: Vec<LeaseId>,
    live_leases: BTreeSet<LeaseId>,
    log: Vec<WatchEvent>,
}

impl Model {
    fn txn(&mut self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, &'static str> {
        // The rules: no key written twice when one write is a put; non-empty keys.
        let mut puts = BTreeSet::new();
        for op in ops {
            if let Op::Put { key, .. } | Op::PutWithLease { key, .. } = op
                && !puts.insert(key.clone())
            {
                return Err("invalid");
            }
        }
        for op in ops {
            match op {
                Op::Delete { key } if puts.contains(key) => return Err("invalid"),
                Op::DeletePrefix { prefix }
                    if puts.iter().any(|k| k.starts_with(prefix.as_str())) =>
                {
                    return Err("invalid");
                }
                _ => {}
            }
        }
        let holds = compares.iter().all(|Compare::ModRevision { key, equals }| {
            self.kv.get(key).map_or(0, |kv| kv.mod_revision) == *equals
        });
        if !holds {
            return Ok(TxnOutcome {
                succeeded: false,
                revision: self.revision,
            });
        }
        for op in ops {
            if let Op::PutWithLease { lease, .. } = op
                && !self.live_leases.contains(lease)
            {
                return Err("lease not found");
            }
        }
        let rev = self.revision + 1;
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value } => events.push(self.put(key, value, None, rev)),
                Op::PutWithLease { key, value, lease } => {
                    events.push(self.put(key, value, Some(*lease), rev))
                }
                Op::Delete { key } => events.extend(self.delete(key, rev)),
                Op::DeletePrefix { prefix } => {
                    let doomed: Vec<String> = self
                        .kv
                        .keys()
                        .filter(|k| k.starts_with(prefix.as_str()))
                        .cloned()
                        .collect();
                    for k in doomed {
                        events.extend(self.delete(&k, rev));
                    }
                }
            }
        }
        if !events.is_empty() {
            self.revision = rev;
            self.log.extend(events);
        }
        Ok(TxnOutcome {
            succeeded: true,
            revision: self.revision,
        })
    }

    fn put(
        &mut self,
        key: &str,
        value: &[u8],
        lease: Option<LeaseId>,
        rev: Revision,
    ) -> WatchEvent {
        let create_revision = self.kv.get(key).map_or(rev, |kv| kv.create_revision);
        let kv = KeyValue {
            key: key.to_string(),
            value: value.to_vec(),
            create_revision,
            mod_revision: rev,
            lease,
        };
        self.kv.insert(key.to_string(), kv.clone());
        WatchEvent::Put(kv)
    }

    fn delete(&mut self, key: &str, rev: Revision) -> Option<WatchEvent> {
        self.kv.remove(key).map(|_| WatchEvent::Delete {
            key: key.to_string(),
            revision: rev,
        })
    }

    fn revoke(&mut self, lease: LeaseId) -> Result<(), &'static str> {
        if !self.live_leases.remove(&lease) {
            return Err("lease not found");
        }
        let doomed: Vec<String> = self
            .kv
            .values()
            .filter(|kv| kv.lease == Some(lease))
            .map(|kv| kv.key.clone())
            .collect();
        let rev = self.revision + 1;
        let events: Vec<WatchEvent> = doomed.iter().filter_map(|k| self.delete(k, rev)).collect();
        if !events.is_empty() {
            self.revision = rev;
            self.log.extend(events);
        }
        Ok(())
    }
}

fn error_kind(e: &StoreError) -> &'static str {
    match e {
        StoreError::Invalid(_) => "invalid",
        StoreError::LeaseNotFound(_) => "lease not found",
        other => panic!("unexpected store error {other}"),
    }
}

async fn run_case(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("m.db")).unwrap();
    let mut model = Model::default();
    for step in steps {
        match step {
            Step::Grant => {
                let lease = store.grant_lease(Duration::from_secs(3600)).await.unwrap();
                model.leases.push(lease);
                model.live_leases.insert(lease);
            }
            Step::Revoke(i) => {
                let Some(&lease) = model.leases.get(i) else {
                    continue;
                };
                let got = store.revoke_lease(lease).await.map_err(|e| error_kind(&e));
                prop_assert_eq!(got, model.revoke(lease));
            }
            Step::Txn(gen_compares, gen_ops) => {
                let compares: Vec<Compare> = gen_compares
                    .into_iter()
                    .map(|(k, expect)| {
                        let key = KEYS[k].to_string();
                        let equals = match expect {
                            Expect::Current => model.kv.get(&key).map_or(0, |kv| kv.mod_revision),
                            Expect::Absent => 0,
                            Expect::Stale(r) => r,
                        };
                        Compare::ModRevision { key, equals }
                    })
                    .collect();
                let ops: Vec<Op> = gen_ops
                    .into_iter()
                    .map(|op| match op {
                        GenOp::Put(k, v) => Op::Put {
                            key: KEYS[k].into(),
                            value: vec![v; 3],
                        },
                        GenOp::PutWithLease(k, v, l) => Op::PutWithLease {
                            key: KEYS[k].into(),
                            value: vec![v; 2],
                            // Index past the granted ones: a lease that never existed.
                            lease: model.leases.get(l).copied().unwrap_or(LeaseId(9_999_999)),
                        },
                        GenOp::Delete(k) => Op::Delete {
                            key: KEYS[k].into(),
                        },
                        GenOp::DeletePrefix(p) => Op::DeletePrefix {
                            prefix: PREFIXES[p].into(),
                        },
                    })
                    .collect();
                let got = store
                    .txn(compares.clone(), ops.clone())
                    .await
                    .map_err(|e| error_kind(&e));
                let want = model.txn(&compares, &ops);
                prop_assert_eq!(got, want, "compares {:?} ops {:?}", compares, ops);
            }
        }
        prop_assert_eq!(store.revision().await.unwrap(), model.revision);
    }
    // Reads agree.
    let (listed, at) = store.list("").await.unwrap();
    prop_assert_eq!(at, model.revision);
    prop_assert_eq!(&listed, &model.kv.values().cloned().collect::<Vec<_>>());
    for prefix in PREFIXES {
        let (listed, _) = store.list(prefix).await.unwrap();
        let want: Vec<KeyValue> = model
            .kv
            .values()
            .filter(|kv| kv.key.starts_with(prefix))
            .cloned()
            .collect();
        prop_assert_eq!(listed, want);
    }
    for key in KEYS {
        prop_assert_eq!(store.get(key).await.unwrap(), model.kv.get(*key).cloned());
    }
    // The watch history is the model's log, in order.
    let mut w = store.watch("", 0).await.unwrap();
    let replayed = common::take_events(&mut w, model.log.len(), Duration::from_secs(5)).await;
    prop_assert_eq!(&replayed, &model.log);
    common::assert_quiet(&mut w, Duration::from_millis(20)).await;
    store.close().await.unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        // Failing cases are printed (shrunk) in the test output; nothing is written to the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn sqlite_store_matches_the_model(steps in proptest::collection::vec(step(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_case(steps))?;
    }
}
