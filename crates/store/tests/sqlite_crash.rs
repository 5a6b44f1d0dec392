//! Durability of the embedded store: a child process writes numbered keys from several
//! tasks at once (so commits are grouped) and prints each write the store acknowledged;
//! it is killed with SIGKILL mid-stream; the database is reopened and every acknowledged
//! write must be there with its value and revision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use novacron_store::{SqliteStore, Store};

const CHILD_DB_ENV: &str = "NOVACRON_STORE_CRASH_DB";
const CHILD_ROUND_ENV: &str = "NOVACRON_STORE_CRASH_ROUND";
const WRITERS: u64 = 8;

fn value_for(round: u64, i: u64) -> Vec<u8> {
    let mut v = format!("round-{round}-key-{i}-").into_bytes();
    v.resize(1024, b'a' + (i % 26) as u8);
    v
}

fn key_for(round: u64, i: u64) -> String {
    format!("/crash/{round}/{i:08}")
}

/// The child side: only runs when the parent test starts it (it is ignored otherwise).
#[test]
#[ignore = "child process of acknowledged_writes_survive_kill_9"]
fn crash_child_writer() {
    let db = std::env::var(CHILD_DB_ENV).expect("run by acknowledged_writes_survive_kill_9");
    let round: u64 = std::env::var(CHILD_ROUND_ENV).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = SqliteStore::open(Path::new(&db)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut i = w;
                    while Instant::now() < deadline {
                        let rev = store
                            .put(&key_for(round, i), value_for(round, i))
                            .await
                            .unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {i} {rev}").unwrap();
                        out.flush().unwrap();
                        i += WRITERS;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// Start a child writer for `round`, kill -9 it after `kill_after` acknowledgements, and
/// return every (key index -> revision) it acknowledged.
fn run_and_kill(db: &Path, round: u64, kill_after: usize) -> BTreeMap<u64, i64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB_ENV, db)
        .env(CHILD_ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (i, rev) = rest.split_once(' ').unwrap();
                let _ = tx.send((i.parse::<u64>().unwrap(), rev.parse::<i64>().unwrap()));
            }
        }
    });
    let mut acked = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < kill_after {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(remaining) {
            Ok((i, rev)) => {
                acked.insert(i, rev);
            }
            Err(_) => break,
        }
    }
    // SIGKILL: no destructor, no flush, no clean close of the database.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    // Lines printed before the kill were acknowledged too.
    acked.extend(rx.try_iter());
    assert!(!status.success(), "the child was killed, not finished");
    assert!(
        acked.len() >= kill_after,
        "child acknowledged only {} writes before the deadline",
        acked.len()
    );
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let mut all: Vec<BTreeMap<u64, i64>> = Vec::new();
    for (round, kill_after) in [(0u64, 300usize), (1, 700), (2, 150)] {
        let db_for_child = db.clone();
        let acked =
            tokio::task::spawn_blocking(move || run_and_kill(&db_for_child, round, kill_after))
                .await
                .unwrap();
        all.push(acked);

        let store = SqliteStore::open(&db).unwrap();
        let mut max_rev = 0;
        for (r, acked) in all.iter().enumerate() {
            for (i, rev) in acked {
                let key = key_for(r as u64, *i);
                let kv = store.get(&key).await.unwrap().unwrap_or_else(|| {
                    panic!("acknowledged {key} (revision {rev}) is missing after kill -9")
                });
                assert_eq!(kv.value, value_for(r as u64, *i), "{key}");
                assert_eq!(kv.mod_revision, *rev, "{key}");
                max_rev = max_rev.max(*rev);
            }
        }
        let revs: std::collections::HashSet<i64> = acked_revisions(&all);
        assert_eq!(
            revs.len(),
            all.iter().map(BTreeMap::len).sum::<usize>(),
            "revisions are unique"
        );
        assert!(store.revision().await.unwrap() >= max_rev);
        // The reopened store keeps working and keeps counting from where it was.
        let next = store.put("/crash/after", b"x".to_vec()).await.unwrap();
        assert!(next > max_rev);
        store.close().await.unwrap();
    }
}

fn acked_revisions(all: &[BTreeMap<u64, i64>]) -> std::collections::HashSet<i64> {
    all.iter().flat_map(|m| m.values().copied()).collect()
}
