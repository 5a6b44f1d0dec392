//! Writer leases and sweep markers: the handshake that lets garbage collection run while
//! backups are being written without ever deleting a chunk a backup still needs.
//!
//! A backup writes `locks/writer-<id>.json` **before** it looks at or writes any chunk and
//! removes it **after** its index is published. A collector writes `locks/sweep-<id>.json`
//! **before** it lists writer leases. Because both objects are written before the other side
//! is read, and listings are consistent with completed puts, at least one side sees the other:
//! either the collector sees the lease (and defers its sweep), or the writer sees the sweep
//! marker (and waits until the sweep is over before relying on any existing chunk).
//! See docs/backup.md for the full argument.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::backend::Backend;
use crate::error::{BackupError, Result};
use crate::util::{host_id, now_unix_ms, process_start_ticks, random_hex8};

/// Object key prefix of locks.
pub const LOCK_PREFIX: &str = "locks/";
/// A lease is refreshed this often while its holder runs.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// A lease from another host not refreshed for this long is considered abandoned.
pub const STALE_AFTER_MS: u64 = 10 * 60 * 1000;

/// What a lock protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    /// A backup in progress.
    Writer,
    /// A garbage-collection sweep in progress.
    Sweep,
    /// One project's storage limit being checked and a backup published under it: one at a
    /// time per project (the lock's id is the project), see [`Lease::acquire_exclusive`].
    Count,
}

impl LockKind {
    fn prefix(self) -> &'static str {
        match self {
            LockKind::Writer => "locks/writer-",
            LockKind::Sweep => "locks/sweep-",
            LockKind::Count => "locks/count-",
        }
    }
}

/// Contents of a lock object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockInfo {
    pub kind: LockKind,
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// Start time of the holder process (ticks since boot), to survive pid reuse.
    pub pid_start_ticks: u64,
    pub started_unix_ms: u64,
    pub refreshed_unix_ms: u64,
    /// What the holder does, e.g. `backup of web1`.
    pub what: String,
}

impl LockInfo {
    /// A lock held by this process from now on.
    fn ours(kind: LockKind, id: String, what: &str) -> LockInfo {
        let pid = std::process::id();
        let now = now_unix_ms();
        LockInfo {
            kind,
            id,
            host: host_id(),
            pid,
            pid_start_ticks: process_start_ticks(pid).unwrap_or(0),
            started_unix_ms: now,
            refreshed_unix_ms: now,
            what: what.to_string(),
        }
    }

    /// Whether the holder may still be running: same host → its process still exists;
    /// other host → refreshed within `STALE_AFTER_MS`.
    pub fn is_active(&self, now_ms: u64) -> bool {
        if self.host == host_id() {
            process_start_ticks(self.pid) == Some(self.pid_start_ticks)
        } else {
            now_ms.saturating_sub(self.refreshed_unix_ms) < STALE_AFTER_MS
        }
    }
    fn key(&self) -> String {
        format!("{}{}.json", self.kind.prefix(), self.id)
    }
}

/// A held lock; refreshed in the background, removed by `release` (or, best effort, on drop).
pub struct Lease {
    backend: Arc<dyn Backend>,
    info: LockInfo,
    refresher: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

impl Lease {
    /// Writes the lock object (durably) and starts refreshing it.
    pub async fn acquire(backend: Arc<dyn Backend>, kind: LockKind, what: &str) -> Result<Lease> {
        let info = LockInfo::ours(kind, random_hex8()?, what);
        put_info(backend.as_ref(), &info).await?;
        backend.flush().await?;
        debug!(lock = %info.id, kind = ?kind, "lock acquired");
        Ok(Lease::refreshed(backend, info))
    }

    /// The lock `kind` with the fixed `id`, which one holder has at a time: written only where
    /// none exists (a conditional create, on a directory or S3). A lock whose holder is gone
    /// ([`LockInfo::is_active`]) is taken over; a live one is waited for, at most `wait`.
    pub async fn acquire_exclusive(
        backend: Arc<dyn Backend>,
        kind: LockKind,
        id: &str,
        what: &str,
        wait: Duration,
    ) -> Result<Lease> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let info = LockInfo::ours(kind, id.to_string(), what);
            let now = info.started_unix_ms;
            if backend.put_new(&info.key(), encode(&info)?).await? {
                backend.flush().await?;
                debug!(lock = %info.id, kind = ?kind, "exclusive lock acquired");
                return Ok(Lease::refreshed(backend, info));
            }
            let holder = match backend.get(&info.key()).await {
                Ok(bytes) => serde_json::from_slice::<LockInfo>(&bytes).ok(),
                Err(BackupError::NotFound { .. }) => continue, // released meanwhile
                Err(e) => return Err(e),
            };
            match holder {
                Some(h) if !h.is_active(now) => {
                    warn!(lock = %info.key(), holder = %h.host, pid = h.pid, "taking over a lock its holder left behind");
                    backend.delete(&info.key()).await?;
                    continue;
                }
                Some(h) if std::time::Instant::now() >= deadline => {
                    return Err(BackupError::Timeout(format!("{} ({})", h.what, h.host)));
                }
                None if std::time::Instant::now() >= deadline => {
                    return Err(BackupError::Timeout(format!("lock {}", info.key())));
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn refreshed(backend: Arc<dyn Backend>, info: LockInfo) -> Lease {
        let refresher = {
            let backend = backend.clone();
            let mut info = info.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(REFRESH_INTERVAL).await;
                    info.refreshed_unix_ms = now_unix_ms();
                    if let Err(e) = put_info(backend.as_ref(), &info).await {
                        warn!(lock = %info.id, error = %e, "lock refresh failed");
                    }
                }
            })
        };
        Lease {
            backend,
            info,
            refresher: Some(refresher),
            released: false,
        }
    }

    /// The lock's contents.
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// Removes the lock object.
    pub async fn release(mut self) -> Result<()> {
        if let Some(r) = self.refresher.take() {
            r.abort();
            let _ = r.await;
        }
        self.released = true;
        self.backend.delete(&self.info.key()).await?;
        self.backend.flush().await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
        if !self.released
            && let Ok(h) = tokio::runtime::Handle::try_current()
        {
            let backend = self.backend.clone();
            let key = self.info.key();
            h.spawn(async move {
                let _ = backend.delete(&key).await;
            });
        }
    }
}

async fn put_info(backend: &dyn Backend, info: &LockInfo) -> Result<()> {
    backend.put(&info.key(), encode(info)?).await
}

/// A lock object's contents.
fn encode(info: &LockInfo) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(info).map_err(|e| BackupError::Task(e.to_string()))
}

/// Lists locks of `kind`, split into (active, stale). Unreadable lock objects count as active
/// for the first `STALE_AFTER_MS` of their life (a put may be in flight), then as stale.
pub async fn list_locks(
    backend: &dyn Backend,
    kind: LockKind,
) -> Result<(Vec<LockInfo>, Vec<String>)> {
    let now = now_unix_ms();
    let mut active = Vec::new();
    let mut stale = Vec::new();
    for obj in backend.list(kind.prefix()).await? {
        let parsed = match backend.get(&obj.key).await {
            Ok(bytes) => serde_json::from_slice::<LockInfo>(&bytes).ok(),
            Err(BackupError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        match parsed {
            Some(info) if info.is_active(now) => active.push(info),
            Some(_) => stale.push(obj.key),
            None if now.saturating_sub(obj.modified_unix_ms) < STALE_AFTER_MS => {
                active.push(LockInfo {
                    kind,
                    id: obj.key.clone(),
                    host: "?".into(),
                    pid: 0,
                    pid_start_ticks: 0,
                    started_unix_ms: obj.modified_unix_ms,
                    refreshed_unix_ms: obj.modified_unix_ms,
                    what: "unreadable lock".into(),
                })
            }
            None => stale.push(obj.key),
        }
    }
    Ok((active, stale))
}
