//! Behaviour specific to the embedded store: group commit, leases across restarts, the
//! single-process lock, slow watchers, automatic history compaction, closing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{next_event, next_item, take_events};
use novacron_store::{SqliteOptions, SqliteStore, Store, StoreError, WatchEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_txns_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let clients = 32;
    let run_for = Duration::from_secs(2);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revs = Vec::new();
                let mut i = 0u64;
                while started.elapsed() < run_for {
                    revs.push(
                        store
                            .put(&format!("/gc/{c}/{}", i % 100), vec![7u8; 1024])
                            .await
                            .unwrap(),
                    );
                    i += 1;
                }
                revs
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let stats = store.stats();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "every transaction got its own revision");
    assert_eq!(stats.txns as usize, n);
    assert!(
        stats.commits < stats.txns,
        "{} txns in {} commits: concurrent transactions were not grouped",
        stats.txns,
        stats.commits
    );
    println!(
        "{clients} clients, 1 KiB puts: {n} txns in {:.2}s = {:.0} txns/s, {} commits ({:.1} txns/commit)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        stats.commits,
        stats.txns as f64 / stats.commits as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_restart_with_a_fresh_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).unwrap();
    let lease = store.grant_lease(Duration::from_secs(3)).await.unwrap();
    store
        .put_with_lease("/node/a", b"up".to_vec(), lease)
        .await
        .unwrap();
    store.close().await.unwrap();
    // Down for most of the TTL: a restart must not expire the lease at once.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let reopened_at = Instant::now();
    let store = SqliteStore::open(&path).unwrap();
    let kv = store
        .get("/node/a")
        .await
        .unwrap()
        .expect("leased key survives the restart");
    assert_eq!(kv.lease, Some(lease));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        store.get("/node/a").await.unwrap().is_some(),
        "fresh TTL after restart"
    );
    store.keep_alive(lease).await.unwrap();
    let kept_at = Instant::now();
    let at = store.revision().await.unwrap();
    let mut w = store.watch("/node/", at).await.unwrap();
    let ev = next_event(&mut w, Duration::from_secs(10)).await;
    assert!(matches!(ev, WatchEvent::Delete { ref key, .. } if key == "/node/a"));
    assert!(
        kept_at.elapsed() >= Duration::from_millis(2900),
        "expired {:?} after keep_alive",
        kept_at.elapsed()
    );
    assert!(reopened_at.elapsed() >= Duration::from_millis(4400));
    // A new lease after restart never reuses an old id.
    let newer = store.grant_lease(Duration::from_secs(5)).await.unwrap();
    assert!(newer.0 > lease.0);
}

#[tokio::test]
async fn a_database_opens_in_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let first = SqliteStore::open(&path).unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("in use"), "{msg}"),
        other => panic!("second open must fail, got {other:?}"),
    }
    first.put("/a", b"1".to_vec()).await.unwrap();
    first.close().await.unwrap();
    assert!(matches!(
        first.put("/a", b"2".to_vec()).await,
        Err(StoreError::Unavailable(_))
    ));
    let second = SqliteStore::open(&path).unwrap();
    assert_eq!(second.get("/a").await.unwrap().unwrap().value, b"1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_blocks_no_writer_and_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        watch_buffer_commits: 4,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&dir.path().join("s.db"), options).unwrap();
    let mut slow = store.watch("/slow/", 0).await.unwrap();
    // Far more commits than the live buffer (4) and the stream buffer (1024 events) hold,
    // while the watcher reads nothing.
    let total = 3000usize;
    let started = Instant::now();
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..total / 8 {
                    store
                        .put(&format!("/slow/{t}/{i}"), vec![1u8; 128])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("writers blocked")
            .unwrap();
    }
    let write_time = started.elapsed();
    let events = take_events(&mut slow, total, Duration::from_secs(10)).await;
    let revs: Vec<i64> = events.iter().map(WatchEvent::revision).collect();
    assert!(
        revs.windows(2).all(|p| p[1] == p[0] + 1),
        "no gap, no duplicate"
    );
    assert_eq!(revs.len(), total);
    println!(
        "{total} writes in {write_time:?} with a stalled watcher; watcher caught up from the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_compacted_automatically() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        history_revisions: 100,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&dir.path().join("s.db"), options).unwrap();
    for i in 0..400 {
        store
            .put("/h/k", format!("{i}").into_bytes())
            .await
            .unwrap();
    }
    let now = store.revision().await.unwrap();
    match store.watch("/h/", 0).await {
        Err(StoreError::Compacted {
            requested: 1,
            oldest,
        }) => {
            assert!(
                oldest > 1 && oldest >= now - 200,
                "oldest {oldest} at revision {now}"
            );
        }
        other => panic!("expected Compacted, got {:?}", other.map(|_| "a stream")),
    }
    // The most recent history_revisions are always kept.
    let mut w = store.watch("/h/", now - 100).await.unwrap();
    let events = take_events(&mut w, 100, Duration::from_secs(5)).await;
    assert_eq!(events.first().map(WatchEvent::revision), Some(now - 99));
    assert_eq!(events.last().map(WatchEvent::revision), Some(now));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_store_ends_watches_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let mut w = store.watch("/", 0).await.unwrap();
    store.put("/x", b"1".to_vec()).await.unwrap();
    let _ = next_event(&mut w, Duration::from_secs(5)).await;
    store.close().await.unwrap();
    match next_item(&mut w, Duration::from_secs(5)).await {
        Some(Err(StoreError::Unavailable(_))) => {}
        other => panic!("expected an Unavailable error, got {other:?}"),
    }
    assert!(next_item(&mut w, Duration::from_secs(5)).await.is_none());
}
