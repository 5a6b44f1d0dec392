//! One behaviour suite, run against every backend: the embedded SQLite store and a real
//! single-member etcd on loopback. Each behaviour is a generic async function over
//! `&dyn Store`; the macro at the bottom instantiates it per backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_quiet, next_event, next_item, take_events};
use novacron_store::{Compare, LeaseId, Op, Revision, SqliteStore, Store, StoreError, WatchEvent};

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// A backend under test plus what keeps it alive (temp dir, etcd processes).
pub struct Backend {
    pub store: Arc<dyn Store>,
    compact: Box<dyn Fn(Revision) -> futures_boxed::Fut + Send + Sync>,
    _keep: Box<dyn std::any::Any + Send>,
}

mod futures_boxed {
    pub type Fut = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), novacron_store::StoreError>> + Send>,
    >;
}

impl Backend {
    async fn compact(&self, before: Revision) {
        (self.compact)(before).await.unwrap();
    }
}

async fn sqlite_backend() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    let for_compact = store.clone();
    Backend {
        store: Arc::new(store),
        compact: Box::new(move |rev| {
            let s = for_compact.clone();
            Box::pin(async move { s.compact(rev).await })
        }),
        _keep: Box::new(dir),
    }
}

#[cfg(feature = "etcd")]
async fn etcd_backend() -> Backend {
    let cluster = common::EtcdCluster::start(1).await;
    let store = novacron_store::EtcdStore::connect(
        &cluster.endpoints(),
        novacron_store::EtcdOptions::default(),
    )
    .await
    .unwrap();
    let for_compact = store.clone();
    Backend {
        store: Arc::new(store),
        compact: Box::new(move |rev| {
            let s = for_compact.clone();
            Box::pin(async move { s.compact(rev).await })
        }),
        _keep: Box::new(cluster),
    }
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
    }
}

fn keys(kvs: &[novacron_store::KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

mod suite {
    use super::*;

    pub async fn put_get_list(b: &Backend) {
        let s = &*b.store;
        let start = s.revision().await.unwrap();
        let r1 = s.put("/t/a/1", b"one".to_vec()).await.unwrap();
        let r2 = s.put("/t/a/2", b"two".to_vec()).await.unwrap();
        let r3 = s.put("/t/b/1", b"three".to_vec()).await.unwrap();
        s.put("/t/ab", b"not under /t/a/".to_vec()).await.unwrap();
        assert_eq!((r1, r2, r3), (start + 1, start + 2, start + 3));

        let kv = s.get("/t/a/1").await.unwrap().unwrap();
        assert_eq!(kv.value, b"one");
        assert_eq!(
            (kv.create_revision, kv.mod_revision, kv.lease),
            (r1, r1, None)
        );
        assert_eq!(s.get("/t/missing").await.unwrap(), None);
        assert!(matches!(s.get("").await, Err(StoreError::Invalid(_))));

        let r4 = s.put("/t/a/1", b"uno".to_vec()).await.unwrap();
        assert_eq!(r4, r3 + 2);
        let kv = s.get("/t/a/1").await.unwrap().unwrap();
        assert_eq!(
            (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
            (&b"uno"[..], r1, r4)
        );

        let (list, at) = s.list("/t/a/").await.unwrap();
        assert_eq!(keys(&list), ["/t/a/1", "/t/a/2"]);
        assert_eq!(at, r4, "list revision is the store revision");
        assert_eq!(list[1].value, b"two");
        let (all, _) = s.list("/t/").await.unwrap();
        assert_eq!(keys(&all), ["/t/a/1", "/t/a/2", "/t/ab", "/t/b/1"]);
        let (everything, _) = s.list("").await.unwrap();
        assert_eq!(keys(&everything), keys(&all));
        assert!(s.list("/nothing/").await.unwrap().0.is_empty());
        assert_eq!(s.revision().await.unwrap(), r4);
    }

    pub async fn compare_and_swap(b: &Backend) {
        let s = &*b.store;
        let created = s
            .compare_and_swap("/cas/k", 0, b"v1".to_vec())
            .await
            .unwrap();
        let created = created.expect("create-if-absent succeeds on a missing key");
        assert_eq!(
            s.compare_and_swap("/cas/k", 0, b"again".to_vec())
                .await
                .unwrap(),
            None,
            "create-if-absent conflicts when the key exists"
        );
        let before_conflict = s.revision().await.unwrap();
        assert_eq!(
            s.compare_and_swap("/cas/k", created + 100, b"stale".to_vec())
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            s.revision().await.unwrap(),
            before_conflict,
            "a failed CAS writes nothing"
        );
        let swapped = s
            .compare_and_swap("/cas/k", created, b"v2".to_vec())
            .await
            .unwrap()
            .expect("CAS on the current mod revision succeeds");
        let kv = s.get("/cas/k").await.unwrap().unwrap();
        assert_eq!(
            (kv.value.as_slice(), kv.mod_revision, kv.create_revision),
            (&b"v2"[..], swapped, created)
        );
        assert_eq!(
            s.compare_and_swap("/cas/k", created, b"v3".to_vec())
                .await
                .unwrap(),
            None,
            "the old revision no longer matches"
        );
        assert_eq!(s.get("/cas/k").await.unwrap().unwrap().value, b"v2");
    }

    pub async fn txn_atomicity(b: &Backend) {
        let s = &*b.store;
        let ra = s.put("/x/a", b"a0".to_vec()).await.unwrap();
        let rb = s.put("/x/b", b"b0".to_vec()).await.unwrap();

        // One compare fails: nothing is applied.
        let out = s
            .txn(
                vec![
                    Compare::ModRevision {
                        key: "/x/a".into(),
                        equals: ra,
                    },
                    Compare::ModRevision {
                        key: "/x/b".into(),
                        equals: ra,
                    },
                ],
                vec![
                    put("/x/a", "a1"),
                    put("/x/c", "c1"),
                    Op::Delete { key: "/x/b".into() },
                ],
            )
            .await
            .unwrap();
        assert!(!out.succeeded);
        assert_eq!(out.revision, rb);
        assert_eq!(s.get("/x/a").await.unwrap().unwrap().value, b"a0");
        assert_eq!(s.get("/x/c").await.unwrap(), None);
        assert!(s.get("/x/b").await.unwrap().is_some());

        // All compares hold: every op applied at one revision.
        let out = s
            .txn(
                vec![
                    Compare::ModRevision {
                        key: "/x/a".into(),
                        equals: ra,
                    },
                    Compare::ModRevision {
                        key: "/x/b".into(),
                        equals: rb,
                    },
                    Compare::ModRevision {
                        key: "/x/c".into(),
                        equals: 0,
                    },
                ],
                vec![
                    put("/x/a", "a1"),
                    put("/x/c", "c1"),
                    Op::Delete { key: "/x/b".into() },
                ],
            )
            .await
            .unwrap();
        assert!(out.succeeded);
        assert_eq!(out.revision, rb + 1);
        let (list, _) = s.list("/x/").await.unwrap();
        assert_eq!(keys(&list), ["/x/a", "/x/c"]);
        assert!(list.iter().all(|kv| kv.mod_revision == out.revision));

        // Invalid transactions are refused whole.
        let before = s.revision().await.unwrap();
        for bad in [
            vec![put("/x/d", "1"), put("/x/d", "2")],
            vec![
                put("/x/e", "1"),
                Op::DeletePrefix {
                    prefix: "/x/".into(),
                },
            ],
            vec![put("", "1")],
        ] {
            assert!(matches!(
                s.txn(vec![], bad).await,
                Err(StoreError::Invalid(_))
            ));
        }
        let with_missing_lease = s
            .txn(
                vec![],
                vec![
                    put("/x/f", "1"),
                    Op::PutWithLease {
                        key: "/x/g".into(),
                        value: b"1".to_vec(),
                        lease: LeaseId(0x7777_0001),
                    },
                ],
            )
            .await;
        assert!(
            matches!(
                with_missing_lease,
                Err(StoreError::LeaseNotFound(LeaseId(0x7777_0001)))
            ),
            "{with_missing_lease:?}"
        );
        assert!(matches!(
            s.grant_lease(Duration::ZERO).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.watch("/x/", -1).await,
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(
            s.revision().await.unwrap(),
            before,
            "refused transactions write nothing"
        );
        assert_eq!(s.get("/x/f").await.unwrap(), None);
    }

    pub async fn delete_and_delete_prefix(b: &Backend) {
        let s = &*b.store;
        for k in ["/d/a/1", "/d/a/2", "/d/a/3/x", "/d/ab", "/d/b"] {
            s.put(k, k.as_bytes().to_vec()).await.unwrap();
        }
        let before = s.revision().await.unwrap();
        let r = s.delete("/d/b").await.unwrap();
        assert_eq!(r, before + 1);
        assert_eq!(s.get("/d/b").await.unwrap(), None);
        assert_eq!(
            s.delete("/d/b").await.unwrap(),
            r,
            "deleting a missing key changes nothing (no new revision)"
        );
        let out = s
            .txn(
                vec![],
                vec![Op::DeletePrefix {
                    prefix: "/d/a/".into(),
                }],
            )
            .await
            .unwrap();
        assert!(out.succeeded);
        assert_eq!(out.revision, r + 1, "one revision for the whole prefix");
        let (left, _) = s.list("/d/").await.unwrap();
        assert_eq!(keys(&left), ["/d/ab"]);
        // Recreating a deleted key starts a new create revision.
        let again = s.put("/d/a/1", b"new".to_vec()).await.unwrap();
        assert_eq!(
            s.get("/d/a/1").await.unwrap().unwrap().create_revision,
            again
        );
    }

    pub async fn watch_replays_history_then_live(b: &Backend) {
        let s = &*b.store;
        s.put("/w/other", b"x".to_vec()).await.unwrap();
        let r1 = s.put("/w/k/1", b"v1".to_vec()).await.unwrap();
        let r2 = s.put("/w/k/2", b"v2".to_vec()).await.unwrap();
        let r3 = s.delete("/w/k/1").await.unwrap();
        s.put("/w/kx", b"outside the prefix".to_vec())
            .await
            .unwrap();

        // From r1: history after r1 (r2, r3), then live events.
        let mut w = s.watch("/w/k/", r1).await.unwrap();
        let history = take_events(&mut w, 2, EVENT_WAIT).await;
        assert!(
            matches!(&history[0], WatchEvent::Put(kv) if kv.key == "/w/k/2" && kv.value == b"v2" && kv.mod_revision == r2)
        );
        assert_eq!(
            history[1],
            WatchEvent::Delete {
                key: "/w/k/1".into(),
                revision: r3
            }
        );

        // From 0: the whole kept history of the prefix.
        let mut from_start = s.watch("/w/k/", 0).await.unwrap();
        let all = take_events(&mut from_start, 3, EVENT_WAIT).await;
        assert_eq!(
            all.iter().map(WatchEvent::revision).collect::<Vec<_>>(),
            [r1, r2, r3]
        );

        let t = s
            .txn(
                vec![],
                vec![put("/w/k/3", "v3"), put("/w/k/4", "v4"), put("/w/z", "no")],
            )
            .await
            .unwrap();
        let r5 = s.put("/w/k/2", b"v2b".to_vec()).await.unwrap();
        let live = take_events(&mut w, 3, EVENT_WAIT).await;
        let mut same_txn: Vec<&str> = live[..2].iter().map(WatchEvent::key).collect();
        same_txn.sort();
        assert_eq!(same_txn, ["/w/k/3", "/w/k/4"]);
        assert!(live[..2].iter().all(|e| e.revision() == t.revision));
        match &live[2] {
            WatchEvent::Put(kv) => {
                assert_eq!(
                    (kv.key.as_str(), kv.value.as_slice(), kv.mod_revision),
                    ("/w/k/2", &b"v2b"[..], r5)
                );
                assert_eq!(kv.create_revision, r2);
            }
            other => panic!("expected a put, got {other:?}"),
        }
        assert_quiet(&mut w, Duration::from_millis(300)).await;
        // The watch from 0 sees the same live events, in the same order.
        let live0 = take_events(&mut from_start, 3, EVENT_WAIT).await;
        assert_eq!(
            live0.iter().map(WatchEvent::revision).collect::<Vec<_>>(),
            live.iter().map(WatchEvent::revision).collect::<Vec<_>>()
        );

        // A watch from the current revision sees only what comes next.
        let now = s.revision().await.unwrap();
        let mut w_now = s.watch("/w/", now).await.unwrap();
        assert_quiet(&mut w_now, Duration::from_millis(300)).await;
        let r6 = s.put("/w/k/9", b"9".to_vec()).await.unwrap();
        assert_eq!(next_event(&mut w_now, EVENT_WAIT).await.revision(), r6);
    }

    pub async fn watch_many_revisions_in_order(b: &Backend) {
        let s = &*b.store;
        let start = s.revision().await.unwrap();
        let mut w = s.watch("/seq/", start).await.unwrap();
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let store = Arc::clone(&b.store);
                tokio::spawn(async move {
                    for i in 0..50 {
                        store
                            .put(&format!("/seq/{t}/{i}"), vec![b'x'; 64])
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in writers {
            h.await.unwrap();
        }
        let events = take_events(&mut w, 200, EVENT_WAIT).await;
        let revs: Vec<Revision> = events.iter().map(WatchEvent::revision).collect();
        assert!(
            revs.windows(2).all(|p| p[0] < p[1]),
            "strictly increasing: {revs:?}"
        );
        assert_eq!(revs.first(), Some(&(start + 1)));
        assert_eq!(revs.last(), Some(&(start + 200)));
    }

    pub async fn watch_from_compacted_revision(b: &Backend) {
        let s = &*b.store;
        let mut revs = Vec::new();
        for i in 0..10 {
            revs.push(s.put("/c/k", format!("{i}").into_bytes()).await.unwrap());
        }
        b.compact(revs[7]).await;
        // Events from revs[2] on are needed, but history before revs[7] is gone.
        match s.watch("/c/", revs[1]).await {
            Err(StoreError::Compacted { requested, oldest }) => {
                assert_eq!(requested, revs[1] + 1);
                assert!(oldest > revs[1] + 1 && oldest <= revs[7], "oldest {oldest}");
            }
            Ok(mut stream) => match next_item(&mut stream, EVENT_WAIT).await {
                Some(Err(StoreError::Compacted { requested, oldest })) => {
                    assert_eq!(requested, revs[1] + 1);
                    assert!(oldest > revs[1] + 1 && oldest <= revs[7], "oldest {oldest}");
                    assert!(
                        next_item(&mut stream, EVENT_WAIT).await.is_none(),
                        "an error ends the stream"
                    );
                }
                other => panic!("expected Compacted, got {other:?}"),
            },
            Err(other) => panic!("expected Compacted, got {other}"),
        }
        // From the compaction point on, history is still there.
        let mut w = s.watch("/c/", revs[7] - 1).await.unwrap();
        let events = take_events(&mut w, 3, EVENT_WAIT).await;
        assert_eq!(
            events.iter().map(WatchEvent::revision).collect::<Vec<_>>(),
            &revs[7..]
        );
        // Compacting again to an older point is harmless.
        b.compact(revs[3]).await;
    }

    pub async fn lease_expiry_deletes_keys(b: &Backend) {
        let s = &*b.store;
        let lease = s.grant_lease(Duration::from_secs(2)).await.unwrap();
        let r = s
            .put_with_lease("/l/node-1", b"alive".to_vec(), lease)
            .await
            .unwrap();
        s.put("/l/durable", b"stays".to_vec()).await.unwrap();
        assert_eq!(
            s.get("/l/node-1").await.unwrap().unwrap().lease,
            Some(lease)
        );
        let mut w = s.watch("/l/", r).await.unwrap();
        let _durable_put = next_event(&mut w, EVENT_WAIT).await;
        // etcd checks expiry every 500 ms after a minimum TTL; allow generous slack.
        let started = std::time::Instant::now();
        let ev = next_event(&mut w, Duration::from_secs(15)).await;
        assert!(
            matches!(&ev, WatchEvent::Delete { key, .. } if key == "/l/node-1"),
            "{ev:?}"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "expired too early: {:?}",
            started.elapsed()
        );
        assert_eq!(s.get("/l/node-1").await.unwrap(), None);
        assert!(s.get("/l/durable").await.unwrap().is_some());
        let answered = tokio::time::timeout(Duration::from_secs(2), s.keep_alive(lease))
            .await
            .expect("keep_alive of an expired lease answers promptly");
        assert!(matches!(answered, Err(StoreError::LeaseNotFound(l)) if l == lease));
        assert!(matches!(
            s.put_with_lease("/l/node-1", b"late".to_vec(), lease).await,
            Err(StoreError::LeaseNotFound(_))
        ));
    }

    pub async fn keep_alive_keeps_keys_and_revoke_deletes(b: &Backend) {
        let s = &*b.store;
        let lease = s.grant_lease(Duration::from_secs(2)).await.unwrap();
        s.put_with_lease("/k/a", b"1".to_vec(), lease)
            .await
            .unwrap();
        s.put_with_lease("/k/b", b"2".to_vec(), lease)
            .await
            .unwrap();
        let other = s.grant_lease(Duration::from_secs(60)).await.unwrap();
        s.put_with_lease("/k/other", b"3".to_vec(), other)
            .await
            .unwrap();
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            s.keep_alive(lease).await.unwrap();
        }
        // 5 s after a 2 s lease was granted, it is still alive thanks to keep_alive.
        let (kept, at) = s.list("/k/").await.unwrap();
        assert_eq!(keys(&kept), ["/k/a", "/k/b", "/k/other"]);
        let mut w = s.watch("/k/", at).await.unwrap();
        s.revoke_lease(lease).await.unwrap();
        let events = take_events(&mut w, 2, EVENT_WAIT).await;
        assert!(
            events
                .iter()
                .all(|e| matches!(e, WatchEvent::Delete { .. }))
        );
        assert_eq!(
            events[0].revision(),
            events[1].revision(),
            "one revision for the revoke"
        );
        let (left, _) = s.list("/k/").await.unwrap();
        assert_eq!(keys(&left), ["/k/other"]);
        assert!(matches!(
            s.revoke_lease(lease).await,
            Err(StoreError::LeaseNotFound(_))
        ));
        assert!(matches!(
            s.keep_alive(lease).await,
            Err(StoreError::LeaseNotFound(_))
        ));
        // A plain put detaches a key from its lease.
        s.put("/k/other", b"now durable".to_vec()).await.unwrap();
        assert_eq!(s.get("/k/other").await.unwrap().unwrap().lease, None);
        s.revoke_lease(other).await.unwrap();
        assert!(s.get("/k/other").await.unwrap().is_some());
    }
}

macro_rules! conformance {
    ($($behaviour:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let backend = super::sqlite_backend().await;
                    super::suite::$behaviour(&backend).await;
                }
            )*
        }
        #[cfg(feature = "etcd")]
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let backend = super::etcd_backend().await;
                    super::suite::$behaviour(&backend).await;
                }
            )*
        }
    };
}

conformance!(
    put_get_list,
    compare_and_swap,
    txn_atomicity,
    delete_and_delete_prefix,
    watch_replays_history_then_live,
    watch_many_revisions_in_order,
    watch_from_compacted_revision,
    lease_expiry_deletes_keys,
    keep_alive_keeps_keys_and_revoke_deletes,
);
