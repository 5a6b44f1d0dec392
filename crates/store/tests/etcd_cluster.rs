//! The etcd backend against a real 3-member cluster on loopback: kill the leader with
//! SIGKILL while writing; every acknowledged write must survive, writes must continue on
//! the remaining quorum, and a watch must carry on without gaps.
#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{EtcdCluster, next_event};
use novacron_store::{EtcdOptions, EtcdStore, Revision, Store, WatchEvent};

fn options() -> EtcdOptions {
    EtcdOptions {
        request_timeout: Duration::from_secs(3),
        keep_alive_interval: Duration::from_secs(1),
        ..EtcdOptions::default()
    }
}

/// Write `/ha/{i}` for increasing i until `want` more writes were acknowledged.
/// Failed writes have an unknown outcome and are not counted.
async fn write_until(
    store: &EtcdStore,
    next: &mut u64,
    acked: &mut BTreeMap<u64, Revision>,
    want: usize,
    limit: Duration,
) -> usize {
    let deadline = Instant::now() + limit;
    let target = acked.len() + want;
    let mut errors = 0;
    while acked.len() < target && Instant::now() < deadline {
        let i = *next;
        *next += 1;
        match store
            .put(&format!("/ha/{i:06}"), format!("value-{i}").into_bytes())
            .await
        {
            Ok(rev) => {
                acked.insert(i, rev);
            }
            Err(e) => {
                errors += 1;
                eprintln!("write {i} failed (outcome unknown): {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write() {
    let mut cluster = EtcdCluster::start(3).await;
    let store = EtcdStore::connect(&cluster.endpoints(), options())
        .await
        .unwrap();
    let start = store.revision().await.unwrap();
    let mut watch = store.watch("/ha/", start).await.unwrap();

    let mut acked = BTreeMap::new();
    let mut next = 0u64;
    let errors_before =
        write_until(&store, &mut next, &mut acked, 200, Duration::from_secs(60)).await;
    assert_eq!(acked.len(), 200, "healthy cluster: {errors_before} errors");

    let leader = cluster
        .leader_index()
        .await
        .expect("the cluster has a leader");
    cluster.kill(leader);
    let killed_at = Instant::now();
    let errors_after =
        write_until(&store, &mut next, &mut acked, 200, Duration::from_secs(60)).await;
    assert_eq!(
        acked.len(),
        400,
        "writes did not continue on the remaining quorum ({errors_after} errors)"
    );
    println!(
        "killed leader m{leader}; 200 more writes acknowledged {:.2}s later with {errors_after} failed attempts",
        killed_at.elapsed().as_secs_f64()
    );

    // Read back through the survivors only.
    let survivors: Vec<String> = cluster
        .endpoints()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, e)| e)
        .collect();
    let check = EtcdStore::connect(&survivors, options()).await.unwrap();
    let (listed, _) = check.list("/ha/").await.unwrap();
    let present: BTreeMap<String, (Vec<u8>, Revision)> = listed
        .into_iter()
        .map(|kv| (kv.key, (kv.value, kv.mod_revision)))
        .collect();
    for (i, rev) in &acked {
        let key = format!("/ha/{i:06}");
        let (value, mod_revision) = present
            .get(&key)
            .unwrap_or_else(|| panic!("acknowledged {key} at revision {rev} was lost"));
        assert_eq!(value, format!("value-{i}").as_bytes());
        assert_eq!(mod_revision, rev);
    }

    // The watch (re-established on a surviving member if it was on the leader) delivers
    // every acknowledged write, in revision order, without gaps or repeats.
    let mut want: Vec<Revision> = acked.values().copied().collect();
    want.sort_unstable();
    let mut seen = Vec::new();
    while seen.last() != want.last() {
        match next_event(&mut watch, Duration::from_secs(30)).await {
            WatchEvent::Put(kv) => seen.push(kv.mod_revision),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        seen.windows(2).all(|p| p[0] < p[1]),
        "watch out of order or repeated"
    );
    for rev in &want {
        assert!(
            seen.binary_search(rev).is_ok(),
            "watch missed revision {rev}"
        );
    }
}
