//! `copy_all`: moving NovaCron's state from the embedded store to etcd (and between
//! embedded stores), refusing to copy over existing keys unless told to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use novacron_store::{CopyOptions, SqliteStore, Store, StoreError, copy_all, copy_with_options};

async fn fill(store: &dyn Store) -> usize {
    let mut n = 0;
    for i in 0..300 {
        // Mixed sizes, including values large enough to split transactions by bytes.
        let size = if i % 50 == 0 { 200_000 } else { 100 + i };
        store
            .put(
                &format!("/novacron/vms/{i:04}"),
                vec![(i % 251) as u8; size],
            )
            .await
            .unwrap();
        n += 1;
    }
    store.put("/novacron/config", b"{}".to_vec()).await.unwrap();
    n += 1;
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    store
        .put_with_lease("/novacron/nodes/alive/n1", b"1".to_vec(), lease)
        .await
        .unwrap();
    n
}

async fn assert_same_durable_keys(from: &dyn Store, to: &dyn Store) {
    let (a, _) = from.list("").await.unwrap();
    let (b, _) = to.list("").await.unwrap();
    let durable: Vec<(&str, &[u8])> = a
        .iter()
        .filter(|kv| kv.lease.is_none())
        .map(|kv| (kv.key.as_str(), kv.value.as_slice()))
        .collect();
    let copied: Vec<(&str, &[u8])> = b
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_slice()))
        .collect();
    assert_eq!(durable, copied);
}

#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_sqlite_to_etcd_and_refuses_a_second_time() {
    use novacron_store::{EtcdOptions, EtcdStore};
    let dir = tempfile::tempdir().unwrap();
    let source = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let durable = fill(&source).await;
    let cluster = common::EtcdCluster::start(1).await;
    let target = EtcdStore::connect(&cluster.endpoints(), EtcdOptions::default())
        .await
        .unwrap();

    let copied = copy_all(&source, &target).await.unwrap();
    assert_eq!(copied, durable as u64, "leased keys are not copied");
    assert_same_durable_keys(&source, &target).await;
    assert_eq!(target.get("/novacron/nodes/alive/n1").await.unwrap(), None);

    let before = target.revision().await.unwrap();
    match copy_all(&source, &target).await {
        Err(StoreError::Invalid(msg)) => assert!(msg.contains("already has"), "{msg}"),
        other => panic!("a second copy must be refused, got {other:?}"),
    }
    assert_eq!(
        target.revision().await.unwrap(),
        before,
        "a refused copy writes nothing"
    );

    source
        .put("/novacron/config", b"{\"v\":2}".to_vec())
        .await
        .unwrap();
    let overwrite = CopyOptions {
        overwrite: true,
        ..CopyOptions::default()
    };
    copy_with_options(&source, &target, &overwrite)
        .await
        .unwrap();
    assert_eq!(
        target.get("/novacron/config").await.unwrap().unwrap().value,
        b"{\"v\":2}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_only_the_given_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let source = SqliteStore::open(&dir.path().join("a.db")).unwrap();
    let target = SqliteStore::open(&dir.path().join("b.db")).unwrap();
    fill(&source).await;
    source.put("/other/app", b"x".to_vec()).await.unwrap();
    // The target's unrelated keys do not block a copy of other prefixes.
    target.put("/elsewhere/k", b"y".to_vec()).await.unwrap();
    let options = CopyOptions {
        prefixes: vec!["/novacron/vms/".into(), "/novacron/".into()],
        overwrite: false,
    };
    let copied = copy_with_options(&source, &target, &options).await.unwrap();
    assert_eq!(copied, 301);
    assert_eq!(target.get("/other/app").await.unwrap(), None);
    assert!(target.get("/elsewhere/k").await.unwrap().is_some());
    // copy_all (every prefix) now refuses: the target has keys.
    assert!(matches!(
        copy_all(&source, &target).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_between_embedded_stores() {
    let dir = tempfile::tempdir().unwrap();
    let source = SqliteStore::open(&dir.path().join("a.db")).unwrap();
    let target = SqliteStore::open(&dir.path().join("b.db")).unwrap();
    let durable = fill(&source).await;
    assert_eq!(copy_all(&source, &target).await.unwrap(), durable as u64);
    assert_same_durable_keys(&source, &target).await;
}
