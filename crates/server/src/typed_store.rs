//! Typed records over the store: read one, create one, change one with THE compare-and-swap
//! retry loop, delete one. A writer says only what the new record is, as a function of the
//! current one (or refuses, with its reason); this module owns decoding, the revision compare,
//! re-reading after a concurrent change and the "kept changing" answer. Records that must
//! change in the same transaction ride along as extra compares and ops.
//!
//! Contract of [`update`]: the function may run several times (once per attempt, each time on
//! a fresh read), so it must not have side effects; the write happens only if the record is
//! still at the revision the function saw and every extra compare holds.

use novacron_api_types::ApiError;
use novacron_store::{Compare, Op, Revision, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{ApiFailure, ApiResult};
use crate::records::{NodeRecord, VmRecord};

/// Attempts of one update before it answers "kept changing".
pub const UPDATE_ATTEMPTS: usize = 20;

/// A record type kept in the store as JSON, and what messages call it.
pub trait Record: Serialize + DeserializeOwned {
    const WHAT: &'static str;
}

impl Record for VmRecord {
    const WHAT: &'static str = "VM record";
}
impl Record for NodeRecord {
    const WHAT: &'static str = "node record";
}
impl Record for novacron_api_types::Operation {
    const WHAT: &'static str = "operation record";
}
impl Record for novacron_api_types::migration::Migration {
    const WHAT: &'static str = "migration record";
}

/// What an update does with the record it read.
#[derive(Debug)]
pub enum Change<T> {
    /// Write this record.
    Write(T),
    /// Write this record and, in the same transaction, `ops`, if `compares` hold too.
    WriteWith {
        record: T,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    },
    /// Leave the record as it is, and apply `ops` if it and `compares` are unchanged.
    KeepWith {
        compares: Vec<Compare>,
        ops: Vec<Op>,
    },
    /// Delete the record (with `ops`) if it and `compares` are unchanged.
    Delete {
        compares: Vec<Compare>,
        ops: Vec<Op>,
    },
    /// Leave the record as it is (nothing to do).
    Keep,
}

/// The record after an update.
#[derive(Debug, Clone, PartialEq)]
pub struct Updated<T> {
    pub record: T,
    /// The store revision of the write (of the read, when nothing was written).
    pub revision: Revision,
    /// False when the update chose [`Change::Keep`].
    pub written: bool,
}

fn encode<T: Record>(rec: &T) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(rec)
        .map_err(|e| ApiFailure(ApiError::internal(format!("{}: encoding: {e}", T::WHAT))))
}

fn decode<T: Record>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiFailure(ApiError::internal(format!("{}: {e}", T::WHAT))))
}

/// The record under `key` and its mod revision, if present.
pub async fn get<T: Record>(store: &dyn Store, key: &str) -> ApiResult<Option<(T, Revision)>> {
    match store.get(key).await? {
        Some(kv) => Ok(Some((decode(&kv.value)?, kv.mod_revision))),
        None => Ok(None),
    }
}

/// Writes `rec` under `key` (with `ops`) only if the key does not exist. `None`: it exists.
pub async fn create<T: Record>(
    store: &dyn Store,
    key: &str,
    rec: &T,
    ops: Vec<Op>,
) -> ApiResult<Option<Revision>> {
    let mut all = vec![Op::Put {
        key: key.to_string(),
        value: encode(rec)?,
    }];
    all.extend(ops);
    let out = store
        .txn(
            vec![Compare::ModRevision {
                key: key.to_string(),
                equals: 0,
            }],
            all,
        )
        .await?;
    Ok(out.succeeded.then_some(out.revision))
}

/// Changes the record under `key` with `change` (current record → new one, or a refusal),
/// retrying on concurrent changes. `None`: no such record. `change` is async so that it may
/// read other records (an operation it supersedes); it must not write any.
pub async fn update<T, F, Fut>(
    store: &dyn Store,
    key: &str,
    mut change: F,
) -> ApiResult<Option<Updated<T>>>
where
    T: Record,
    F: FnMut(T) -> Fut,
    Fut: Future<Output = ApiResult<Change<T>>>,
{
    for _ in 0..UPDATE_ATTEMPTS {
        let Some(kv) = store.get(key).await? else {
            return Ok(None);
        };
        let put = |record: &T| -> ApiResult<Option<Op>> {
            Ok(Some(Op::Put {
                key: key.to_string(),
                value: encode(record)?,
            }))
        };
        let (record, own, mut compares, extra) = match change(decode(&kv.value)?).await? {
            Change::Keep => {
                return Ok(Some(Updated {
                    record: decode(&kv.value)?,
                    revision: kv.mod_revision,
                    written: false,
                }));
            }
            Change::Write(record) => {
                let own = put(&record)?;
                (record, own, vec![], vec![])
            }
            Change::WriteWith {
                record,
                compares,
                ops,
            } => {
                let own = put(&record)?;
                (record, own, compares, ops)
            }
            Change::KeepWith { compares, ops } => (decode(&kv.value)?, None, compares, ops),
            Change::Delete { compares, ops } => (
                decode(&kv.value)?,
                Some(Op::Delete {
                    key: key.to_string(),
                }),
                compares,
                ops,
            ),
        };
        compares.push(Compare::ModRevision {
            key: key.to_string(),
            equals: kv.mod_revision,
        });
        let mut ops: Vec<Op> = own.into_iter().collect();
        ops.extend(extra);
        let out = store.txn(compares, ops).await?;
        if out.succeeded {
            return Ok(Some(Updated {
                record,
                revision: out.revision,
                written: true,
            }));
        }
    }
    Err(ApiError::unavailable(format!("{key} kept changing; try again")).into())
}

/// Deletes `key` (with `ops`) if it is still at `revision`. False: it changed or is gone.
pub async fn delete(
    store: &dyn Store,
    key: &str,
    revision: Revision,
    ops: Vec<Op>,
) -> ApiResult<Option<Revision>> {
    let mut all = vec![Op::Delete {
        key: key.to_string(),
    }];
    all.extend(ops);
    let out = store
        .txn(
            vec![Compare::ModRevision {
                key: key.to_string(),
                equals: revision,
            }],
            all,
        )
        .await?;
    Ok(out.succeeded.then_some(out.revision))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Counter {
        n: u64,
    }
    impl Record for Counter {
        const WHAT: &'static str = "counter";
    }

    async fn store(dir: &std::path::Path) -> Arc<dyn Store> {
        novacron_store::open_store(&novacron_store::StoreUrl::Sqlite(dir.join("s.db")))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn update_retries_on_a_concurrent_change_and_keeps_its_last_word() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        assert!(
            create(s.as_ref(), "/c", &Counter { n: 1 }, vec![])
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            create(s.as_ref(), "/c", &Counter { n: 9 }, vec![])
                .await
                .unwrap()
                .is_none()
        );
        // The first attempt races another writer (who sets 10); the retry sees 10.
        let attempts = AtomicUsize::new(0);
        let raced = s.clone();
        let out = update(s.as_ref(), "/c", |c: Counter| {
            let first = attempts.fetch_add(1, Ordering::SeqCst) == 0;
            let raced = raced.clone();
            async move {
                if first {
                    raced
                        .put("/c", serde_json::to_vec(&Counter { n: 10 }).unwrap())
                        .await
                        .unwrap();
                }
                Ok(Change::Write(Counter { n: c.n + 1 }))
            }
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert_eq!(out.record, Counter { n: 11 });
        assert!(out.written);
        assert_eq!(
            get::<Counter>(s.as_ref(), "/c").await.unwrap().unwrap().0,
            Counter { n: 11 }
        );
    }

    #[tokio::test]
    async fn refusals_keep_and_missing_records_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        assert!(
            update(s.as_ref(), "/none", |c: Counter| async {
                Ok(Change::Write(c))
            })
            .await
            .unwrap()
            .is_none()
        );
        create(s.as_ref(), "/c", &Counter { n: 1 }, vec![])
            .await
            .unwrap();
        let e = update(s.as_ref(), "/c", |_: Counter| async {
            Err(ApiError::conflict("not now").into())
        })
        .await
        .unwrap_err();
        assert_eq!(e.0.message, "not now");
        let kept = update(s.as_ref(), "/c", |_: Counter| async { Ok(Change::Keep) })
            .await
            .unwrap()
            .unwrap();
        assert!(!kept.written);
        // Extra ops land with the record; a failing extra compare writes neither.
        let with = update(s.as_ref(), "/c", |c: Counter| async move {
            Ok(Change::WriteWith {
                record: Counter { n: c.n + 1 },
                compares: vec![],
                ops: vec![Op::Put {
                    key: "/side".into(),
                    value: b"x".to_vec(),
                }],
            })
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(with.record.n, 2);
        assert!(s.get("/side").await.unwrap().is_some());
        let e = update(s.as_ref(), "/c", |c: Counter| async move {
            Ok(Change::WriteWith {
                record: Counter { n: c.n + 1 },
                compares: vec![Compare::ModRevision {
                    key: "/side".into(),
                    equals: 0,
                }],
                ops: vec![],
            })
        })
        .await
        .unwrap_err();
        assert!(e.0.message.contains("kept changing"), "{}", e.0.message);
        assert_eq!(
            get::<Counter>(s.as_ref(), "/c").await.unwrap().unwrap().0.n,
            2
        );
        let rev = get::<Counter>(s.as_ref(), "/c").await.unwrap().unwrap().1;
        assert!(
            delete(s.as_ref(), "/c", rev - 1, vec![])
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            delete(s.as_ref(), "/c", rev, vec![])
                .await
                .unwrap()
                .is_some()
        );
        assert!(s.get("/c").await.unwrap().is_none());
    }
}
