//! Shared test helpers: real etcd members on loopback (killed and cleaned up by a guard,
//! even when a test fails), and small helpers for reading watch streams.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::poll_fn;
use std::time::Duration;

use novacron_store::{StoreError, WatchEvent, WatchStream};

#[cfg(feature = "etcd")]
mod etcd_cluster {
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use novacron_store::EtcdStore;

    /// The etcd binary; CI installs Debian's etcd-server. Override with NOVACRON_ETCD_BIN.
    pub fn etcd_binary() -> PathBuf {
        let path = std::env::var_os("NOVACRON_ETCD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
        assert!(
            path.exists(),
            "etcd not found at {}: install it (`apt-get install etcd-server`, as CI does) \
             or set NOVACRON_ETCD_BIN; the etcd backend tests cannot run without it",
            path.display()
        );
        path
    }

    /// Pick free loopback ports (bound, then released just before etcd binds them).
    fn free_ports(n: usize) -> Vec<u16> {
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect()
    }

    pub struct EtcdMember {
        pub name: String,
        pub client_url: String,
        pub peer_url: String,
        pub data_dir: PathBuf,
        pub log_path: PathBuf,
        child: Option<Child>,
    }

    /// A real etcd cluster on loopback. Dropping it kills every member and removes the data.
    pub struct EtcdCluster {
        pub members: Vec<EtcdMember>,
        dir: tempfile::TempDir,
    }

    impl EtcdCluster {
        /// Start `n` members and wait until the cluster has a leader.
        pub async fn start(n: usize) -> EtcdCluster {
            let binary = etcd_binary();
            let dir = tempfile::Builder::new()
                .prefix("novacron-etcd-")
                .tempdir()
                .unwrap();
            let ports = free_ports(2 * n);
            let mut members: Vec<EtcdMember> = (0..n)
                .map(|i| EtcdMember {
                    name: format!("m{i}"),
                    client_url: format!("http://127.0.0.1:{}", ports[2 * i]),
                    peer_url: format!("http://127.0.0.1:{}", ports[2 * i + 1]),
                    data_dir: dir.path().join(format!("m{i}.etcd")),
                    log_path: dir.path().join(format!("m{i}.log")),
                    child: None,
                })
                .collect();
            let initial_cluster = members
                .iter()
                .map(|m| format!("{}={}", m.name, m.peer_url))
                .collect::<Vec<_>>()
                .join(",");
            let token = format!("novacron-test-{}-{}", std::process::id(), ports[0]);
            for m in &mut members {
                let log = std::fs::File::create(&m.log_path).unwrap();
                let mut cmd = Command::new(&binary);
                cmd.arg("--name")
                    .arg(&m.name)
                    .arg("--data-dir")
                    .arg(&m.data_dir)
                    .arg("--listen-client-urls")
                    .arg(&m.client_url)
                    .arg("--advertise-client-urls")
                    .arg(&m.client_url)
                    .arg("--listen-peer-urls")
                    .arg(&m.peer_url)
                    .arg("--initial-advertise-peer-urls")
                    .arg(&m.peer_url)
                    .arg("--initial-cluster")
                    .arg(&initial_cluster)
                    .arg("--initial-cluster-state")
                    .arg("new")
                    .arg("--initial-cluster-token")
                    .arg(&token)
                    .arg("--logger")
                    .arg("zap")
                    .arg("--log-outputs")
                    .arg("stderr")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::from(log));
                kill_with_parent(&mut cmd);
                m.child = Some(cmd.spawn().unwrap());
            }
            let cluster = EtcdCluster { members, dir };
            cluster.wait_for_leader(Duration::from_secs(40)).await;
            cluster
        }

        pub fn endpoints(&self) -> Vec<String> {
            self.members.iter().map(|m| m.client_url.clone()).collect()
        }

        pub fn dir(&self) -> &Path {
            self.dir.path()
        }

        /// Kill one member with SIGKILL and reap it, waiting at most 5 s: this also runs in
        /// `Drop` on the test's runtime thread, where an unbounded `Child::wait` on a process
        /// stuck in the kernel would hang a failing test for good.
        pub fn kill(&mut self, index: usize) {
            if let Some(mut child) = self.members[index].child.take() {
                let _ = child.kill();
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }

        /// Index of the current leader, as the live members report it.
        pub async fn leader_index(&self) -> Option<usize> {
            let mut ids = Vec::new();
            let mut leader = 0;
            for (i, m) in self.members.iter().enumerate() {
                if m.child.is_none() {
                    continue;
                }
                if let Ok(status) =
                    EtcdStore::member_status(&m.client_url, Duration::from_secs(2)).await
                {
                    ids.push((i, status.member_id));
                    if let Some(id) = status.leader {
                        leader = id;
                    }
                }
            }
            ids.into_iter()
                .find(|(_, id)| *id == leader)
                .map(|(i, _)| i)
        }

        async fn wait_for_leader(&self, limit: Duration) {
            let deadline = Instant::now() + limit;
            loop {
                let mut ready = 0;
                for m in &self.members {
                    if let Ok(status) =
                        EtcdStore::member_status(&m.client_url, Duration::from_secs(2)).await
                        && status.leader.is_some()
                    {
                        ready += 1;
                    }
                }
                if ready == self.members.len() {
                    return;
                }
                if Instant::now() > deadline {
                    let logs: String = self
                        .members
                        .iter()
                        .map(|m| {
                            let log = std::fs::read_to_string(&m.log_path).unwrap_or_default();
                            let tail: Vec<&str> = log.lines().rev().take(15).collect();
                            format!(
                                "--- {} ---\n{}\n",
                                m.name,
                                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                            )
                        })
                        .collect();
                    panic!("etcd cluster did not elect a leader in {limit:?}\n{logs}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    impl Drop for EtcdCluster {
        fn drop(&mut self) {
            for i in 0..self.members.len() {
                self.kill(i);
            }
            // `dir` (a TempDir) removes the data directories after this.
        }
    }

    /// Make the child die with us even if the test process is killed before Drop runs.
    fn kill_with_parent(cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of
        // the parent; it only sets a flag on the about-to-exec child.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}
#[cfg(feature = "etcd")]
#[allow(unused_imports)]
pub use etcd_cluster::*;

/// The next item of a watch stream, or a panic after `limit`.
pub async fn next_item(
    stream: &mut WatchStream,
    limit: Duration,
) -> Option<Result<WatchEvent, StoreError>> {
    tokio::time::timeout(limit, poll_fn(|cx| stream.as_mut().poll_next(cx)))
        .await
        .unwrap_or_else(|_| panic!("no watch event within {limit:?}"))
}

/// The next event of a watch stream (panics on error, end, or timeout).
pub async fn next_event(stream: &mut WatchStream, limit: Duration) -> WatchEvent {
    match next_item(stream, limit).await {
        Some(Ok(ev)) => ev,
        Some(Err(e)) => panic!("watch failed: {e}"),
        None => panic!("watch ended"),
    }
}

/// Exactly `n` events (panics if fewer arrive within `limit` each).
pub async fn take_events(stream: &mut WatchStream, n: usize, limit: Duration) -> Vec<WatchEvent> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_event(stream, limit).await);
    }
    out
}

/// Assert nothing arrives on the stream for `quiet`.
pub async fn assert_quiet(stream: &mut WatchStream, quiet: Duration) {
    if let Ok(item) = tokio::time::timeout(quiet, poll_fn(|cx| stream.as_mut().poll_next(cx))).await
    {
        panic!("expected no watch event, got {item:?}");
    }
}
