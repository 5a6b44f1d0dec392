//! The agent's lease heartbeat: every interval it tells the control plane that this node
//! lives, and on each acknowledgement touches the fence's `alive` file, which keeps the fence
//! watchdog from killing the node's HA VMs. A beat also carries the newest usage sample when
//! one is waiting (taken elsewhere, see `crate::stats`, so sampling never delays a beat).
//!
//! `alive` must only move when the control plane has renewed the lease: a node that cannot
//! reach it will see its HA VMs restarted elsewhere, and must fence them first. What must
//! not stop the heartbeat is the agent merely being busy, so it depends on nothing the rest
//! of the agent shares:
//! - it runs on a thread of its own with a single-threaded runtime, so a runtime kept busy
//!   by a flood of connections on the agent's endpoint (or a blocked worker) cannot delay it;
//! - it has its own client, whose one kept-alive connection is reused for every beat (the
//!   control plane's idle timeout is far longer than the interval), so it needs no new
//!   socket, and connection caps on a flooded control plane do not turn it away;
//! - it touches `alive` through a descriptor the fence opened at start, so a full
//!   descriptor table does not stop it either.

use std::sync::Arc;
use std::time::Duration;

use novacron_api_types::agent::HeartbeatRequest;
use novacron_api_types::stats::NodeSample;
use novacron_client::Client;
use tokio::sync::watch;

use crate::fence::Fence;

/// What the heartbeat needs.
pub struct HeartbeatConfig {
    /// A client of its own (not shared with the rest of the agent), so its connection is
    /// never busy with, or closed after, other requests.
    pub client: Client,
    pub interval: Duration,
    /// `None` for hollow agents.
    pub fence: Option<Arc<Fence>>,
    /// How many VMs run now (reported with each beat).
    pub running_vms: Arc<dyn Fn() -> u32 + Send + Sync>,
    /// The newest usage sample not sent yet, if any (carried with the next beat).
    pub take_sample: Arc<dyn Fn() -> Option<NodeSample> + Send + Sync>,
}

/// The running heartbeat; [`Heartbeat::stop`] ends it (dropping it does too, without waiting).
pub struct Heartbeat {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Every this many beats the heartbeat checks that the fence watchdog still runs (it may
/// have been killed); the check opens files, so it is kept rare.
const WATCHDOG_CHECK_EVERY: u64 = 20;

impl Heartbeat {
    /// Starts the heartbeat thread; the first beat is sent at once.
    pub fn start(config: HeartbeatConfig) -> std::io::Result<Heartbeat> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("novacron-heartbeat".into())
            .spawn(move || runtime.block_on(beat(config, stopped)))?;
        Ok(Heartbeat {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the heartbeat and waits (briefly) for its thread.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = tokio::time::timeout(
                Duration::from_secs(15),
                tokio::task::spawn_blocking(move || t.join()),
            )
            .await;
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn beat(config: HeartbeatConfig, mut stop: watch::Receiver<bool>) {
    let mut beats: u64 = 0;
    loop {
        let request = HeartbeatRequest {
            running_vms: (config.running_vms)(),
            stats: (config.take_sample)(),
        };
        let sent = tokio::select! {
            r = config.client.agent_heartbeat(&request) => r,
            _ = stop.changed() => return,
        };
        match sent {
            Ok(()) => {
                if let Some(f) = &config.fence {
                    f.alive();
                    beats += 1;
                    if beats.is_multiple_of(WATCHDOG_CHECK_EVERY) {
                        f.ensure_watchdog();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.interval) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    const CHILD: &str = "NOVACRON_TEST_HEARTBEAT_FD_CHILD";
    const NAME: &str = "heartbeat::tests::heartbeat_keeps_ticking_with_a_full_descriptor_table";

    /// Lowering RLIMIT_NOFILE and filling the descriptor table would break tests running
    /// beside this one, so the work runs in a child process that runs only this test.
    #[test]
    fn heartbeat_keeps_ticking_with_a_full_descriptor_table() {
        if std::env::var_os(CHILD).is_some() {
            return in_child();
        }
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(90) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child test did not finish within 90 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            status.success() && stdout.contains("1 passed"),
            "child failed ({status}):\n{stdout}\n{stderr}"
        );
    }

    fn in_child() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            novacron_tls::install_crypto_provider();
            // A control plane that acknowledges heartbeats and counts them.
            let ca = novacron_tls::Ca::generate().unwrap();
            let id = ca.issue_control_plane(&["127.0.0.1".into()]).unwrap();
            let tls = novacron_tls::server_config(&id, None).unwrap();
            let acked = Arc::new(AtomicU64::new(0));
            let counter = acked.clone();
            let router = axum::Router::new().route(
                "/api/v1/agent/heartbeat",
                axum::routing::post(move || {
                    let counter = counter.clone();
                    async move {
                        counter.fetch_add(1, Ordering::Relaxed);
                        axum::Json(serde_json::json!({}))
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let serve = novacron_tls::serve_https(listener, tls, router).unwrap();
            let client = Client::new(novacron_client::Config {
                servers: vec![format!("https://{}", serve.local_addr)],
                token: "node-token".into(),
                ca_cert_pem: ca.identity.cert_pem.clone(),
            })
            .unwrap();

            let dir = tempfile::tempdir().unwrap();
            let fence = Arc::new(Fence::new(dir.path().join("fence")).unwrap());
            let alive = dir.path().join("fence").join("alive");
            let heartbeat = Heartbeat::start(HeartbeatConfig {
                client,
                interval: Duration::from_millis(100),
                fence: Some(fence.clone()),
                running_vms: Arc::new(|| 0),
                take_sample: Arc::new(|| None),
            })
            .unwrap();
            let start = std::time::Instant::now();
            while acked.load(Ordering::Relaxed) < 3 {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "no heartbeats at all"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }

            // Fill the descriptor table: a lowered soft limit, then /dev/null until EMFILE.
            let mut saved = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit/setrlimit with valid structs.
            unsafe {
                assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut saved), 0);
                let low = libc::rlimit {
                    rlim_cur: 512.min(saved.rlim_cur),
                    rlim_max: saved.rlim_max,
                };
                assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &low), 0);
            }
            let mut hog = Vec::new();
            let exhausted = loop {
                match std::fs::File::open("/dev/null") {
                    Ok(f) => hog.push(f),
                    Err(e) => break e,
                }
                assert!(hog.len() < 10_000, "the lowered limit did not apply");
            };
            assert_eq!(exhausted.raw_os_error(), Some(libc::EMFILE), "{exhausted}");

            let acked_before = acked.load(Ordering::Relaxed);
            let touched_before = std::fs::metadata(&alive).unwrap().modified().unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            // Still full: nothing could have been opened meanwhile.
            let still = std::fs::File::open("/dev/null").map(|_| ()).unwrap_err();
            let acked_after = acked.load(Ordering::Relaxed);
            let touched_after = std::fs::metadata(&alive).unwrap().modified().unwrap();
            let age = std::time::SystemTime::now()
                .duration_since(touched_after)
                .unwrap_or_default();

            drop(hog);
            // SAFETY: restores the limit read above.
            unsafe {
                libc::setrlimit(libc::RLIMIT_NOFILE, &saved);
            }
            heartbeat.stop().await;
            serve.stop().await;

            assert_eq!(still.raw_os_error(), Some(libc::EMFILE));
            assert!(
                acked_after >= acked_before + 5,
                "the control plane got {} heartbeats in 1.5 s with the table full",
                acked_after - acked_before
            );
            assert!(
                touched_after > touched_before && age < Duration::from_millis(600),
                "alive was not touched with the table full (last touched {age:?} ago)"
            );
        });
    }
}
