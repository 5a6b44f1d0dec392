//! The embedded backend: one SQLite database file (WAL, `synchronous=FULL`) holding the
//! current keys, a revision log for watches, and leases. One writer thread group-commits
//! writes; reads run on a small pool of reader connections off the async runtime.

mod schema;
mod watch;
mod writer;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{broadcast, oneshot};

use self::schema::{META_REVISION, db_err, kv_from_row, open_reader, open_writer, require_meta};
use self::writer::{EventBatch, LeaseTimer, PersistedState, Request, Shared, Writer, load_state};
use crate::txn_rules::{validate_lease_ttl, validate_txn, validate_watch_start};
use crate::{
    BoxFuture, Compare, KeyValue, LeaseId, Op, Revision, Store, StoreError, TxnOutcome,
    WatchStream, prefix_range_end,
};

/// Tuning of the embedded store. The defaults suit a control plane.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Revisions of history kept for watches; a watch from an older revision gets
    /// [`StoreError::Compacted`].
    pub history_revisions: i64,
    /// Most requests committed together in one SQLite transaction (one fsync).
    pub max_batch_txns: usize,
    /// Most idle reader connections kept open.
    pub reader_connections: usize,
    /// Group commits buffered for watchers; a watcher further behind catches up from the log.
    pub watch_buffer_commits: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            history_revisions: 100_000,
            max_batch_txns: 1024,
            reader_connections: 4,
            watch_buffer_commits: 64,
        }
    }
}

/// Counters of the writer since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteStats {
    /// SQLite transactions committed (each one fsync).
    pub commits: u64,
    /// Store transactions ([`Store::txn`]) applied, successful or not.
    pub txns: u64,
}

/// The embedded store. Clones share one database and writer.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    requests: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    /// Weak, so that watches end when the writer (holding the only strong sender) stops.
    events: broadcast::WeakSender<EventBatch>,
    readers: Arc<ReaderPool>,
}

/// Reader connections, reused across calls; each call runs on the blocking pool.
pub(super) struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl ReaderPool {
    /// Run `f` with a reader connection on tokio's blocking pool.
    pub(super) async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let result = f(&conn);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store reader task failed: {e}")))?
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let reused = self.lock().pop();
        match reused {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        // A connection left inside a transaction by an error is not reused.
        if !conn.is_autocommit() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Run `f` inside one read transaction, so that everything it reads is one snapshot.
pub(super) fn read_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("BEGIN").map_err(db_err)?;
    let result = f(conn);
    let end = conn.execute_batch("COMMIT").map_err(db_err);
    let value = result?;
    end?;
    Ok(value)
}

impl SqliteStore {
    /// Open (creating if needed) the store at `path`, with default options.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, SqliteOptions::default())
    }

    /// Open (creating if needed) the store at `path`. Only one process may have it open:
    /// `<path>.lock` is locked for as long as the store is open.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        if options.history_revisions < 1 || options.max_batch_txns < 1 {
            return Err(StoreError::Invalid(
                "history_revisions and max_batch_txns must be at least 1".to_string(),
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let lock_file = lock_database(path)?;
        let conn = open_writer(path)?;
        let PersistedState {
            revision,
            compacted_before,
            next_lease_id,
            leases,
        } = load_state(&conn)?;

        let shared = Arc::new(Shared::default());
        shared.revision.store(revision, Ordering::Release);
        shared
            .compacted_before
            .store(compacted_before, Ordering::Release);
        {
            // After a restart every lease gets its full TTL again, so that a restart of
            // the control plane does not expire every node at once.
            let now = Instant::now();
            let mut table = shared.leases();
            for (id, ttl) in &leases {
                table.insert(
                    *id,
                    LeaseTimer {
                        ttl: *ttl,
                        deadline: now + *ttl,
                    },
                );
            }
        }
        let (events, _) = broadcast::channel(options.watch_buffer_commits.max(1));
        let (requests, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            shared: Arc::clone(&shared),
            events: events.clone(),
            history_revisions: options.history_revisions,
            max_batch_txns: options.max_batch_txns,
            _lock_file: lock_file,
            revision,
            compacted_before,
            next_lease_id,
        };
        std::thread::Builder::new()
            .name("novacron-store-writer".to_string())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer: {e}")))?;
        tracing::info!(path = %path.display(), revision, leases = leases.len(), "embedded store opened");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                requests,
                shared,
                events: events.downgrade(),
                readers: Arc::new(ReaderPool {
                    path: path.to_path_buf(),
                    idle: Mutex::new(Vec::new()),
                    max_idle: options.reader_connections,
                }),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Writer counters: `txns / commits` is the mean group-commit size.
    pub fn stats(&self) -> SqliteStats {
        SqliteStats {
            commits: self.inner.shared.commits.load(Ordering::Relaxed),
            txns: self.inner.shared.txns.load(Ordering::Relaxed),
        }
    }

    /// Drop the history of revisions before `before` (watches from earlier revisions then
    /// get [`StoreError::Compacted`]). The store also does this by itself, keeping
    /// [`SqliteOptions::history_revisions`].
    pub async fn compact(&self, before: Revision) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Compact { before, reply })?;
        rx.await.map_err(|_| closed())?
    }

    /// Finish queued writes, close the database and release its lock. Every clone of this
    /// store fails with [`StoreError::Unavailable`] afterwards.
    pub async fn close(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        if self
            .inner
            .requests
            .send(Request::Shutdown { reply })
            .is_err()
        {
            return Ok(());
        }
        // The writer answers after the database is closed and its lock file dropped.
        let _ = rx.await;
        Ok(())
    }

    fn send(&self, req: Request) -> Result<(), StoreError> {
        self.inner.requests.send(req).map_err(|_| closed())
    }

    async fn txn_impl(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> Result<TxnOutcome, StoreError> {
        validate_txn(&compares, &ops)?;
        let (reply, rx) = oneshot::channel();
        self.send(Request::Txn {
            compares,
            ops,
            reply,
        })?;
        rx.await.map_err(|_| closed())?
    }

    async fn get_impl(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        if key.is_empty() {
            return Err(StoreError::Invalid("empty key".to_string()));
        }
        let key = key.as_bytes().to_vec();
        self.inner
            .readers
            .run(move |conn| {
                let row = conn
                    .prepare_cached(
                        "SELECT key, value, create_rev, mod_rev, lease FROM kv WHERE key = ?1",
                    )
                    .and_then(|mut stmt| stmt.query_row([&key], kv_from_row).optional())
                    .map_err(db_err)?;
                row.map(|(k, parts)| parts.into_kv(k)).transpose()
            })
            .await
    }

    async fn list_impl(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        let prefix = prefix.as_bytes().to_vec();
        self.inner
            .readers
            .run(move |conn| {
                read_snapshot(conn, |conn| {
                    let end = prefix_range_end(&prefix);
                    let rows = conn
                        .prepare_cached(
                            "SELECT key, value, create_rev, mod_rev, lease FROM kv \
                             WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) ORDER BY key",
                        )
                        .and_then(|mut stmt| {
                            stmt.query_map(params![prefix, end], kv_from_row)?
                                .collect::<rusqlite::Result<Vec<_>>>()
                        })
                        .map_err(db_err)?;
                    let revision = require_meta(conn, META_REVISION)?;
                    let kvs = rows
                        .into_iter()
                        .map(|(k, parts)| parts.into_kv(k))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok((kvs, revision))
                })
            })
            .await
    }

    async fn watch_impl(
        &self,
        prefix: &str,
        after_revision: Revision,
    ) -> Result<WatchStream, StoreError> {
        validate_watch_start(after_revision)?;
        // Subscribe before reading history, so that nothing committed in between is missed.
        let live = self.inner.events.upgrade().ok_or_else(closed)?.subscribe();
        let oldest = self.inner.shared.compacted_before.load(Ordering::Acquire);
        if after_revision + 1 < oldest {
            return Err(StoreError::Compacted {
                requested: after_revision + 1,
                oldest,
            });
        }
        Ok(watch::spawn(
            Arc::clone(&self.inner.readers),
            prefix.to_string(),
            after_revision,
            live,
        ))
    }

    async fn grant_impl(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        validate_lease_ttl(ttl)?;
        let (reply, rx) = oneshot::channel();
        self.send(Request::Grant { ttl, reply })?;
        rx.await.map_err(|_| closed())?
    }

    fn keep_alive_now(&self, lease: LeaseId) -> Result<(), StoreError> {
        // The writer holds the only strong sender: once it stopped, the store is closed.
        if self.inner.events.upgrade().is_none() {
            return Err(closed());
        }
        if self.inner.shared.failed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable(
                "the embedded store failed to commit earlier; restart the process".to_string(),
            ));
        }
        let mut leases = self.inner.shared.leases();
        match leases.get_mut(&lease.0) {
            Some(timer) => {
                timer.deadline = Instant::now() + timer.ttl;
                Ok(())
            }
            None => Err(StoreError::LeaseNotFound(lease)),
        }
    }

    async fn revoke_impl(&self, lease: LeaseId) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Revoke { lease, reply })?;
        rx.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the embedded store is closed".to_string())
}

/// Lock `<path>.lock` so that a second process (or a second open in this one) cannot
/// write the same database; the lock goes away with the process, even on kill -9.
fn lock_database(path: &Path) -> Result<File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", lock_path.display()))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "{} is in use by another NovaCron process (lock {} is held)",
            path.display(),
            lock_path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

impl Store for SqliteStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>, StoreError>> {
        Box::pin(self.get_impl(key))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<(Vec<KeyValue>, Revision), StoreError>> {
        Box::pin(self.list_impl(prefix))
    }

    fn txn<'a>(
        &'a self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> BoxFuture<'a, Result<TxnOutcome, StoreError>> {
        Box::pin(self.txn_impl(compares, ops))
    }

    fn watch<'a>(
        &'a self,
        prefix: &'a str,
        after_revision: Revision,
    ) -> BoxFuture<'a, Result<WatchStream, StoreError>> {
        Box::pin(self.watch_impl(prefix, after_revision))
    }

    fn revision(&self) -> BoxFuture<'_, Result<Revision, StoreError>> {
        let revision = self.inner.shared.revision.load(Ordering::Acquire);
        Box::pin(async move { Ok(revision) })
    }

    fn grant_lease(&self, ttl: Duration) -> BoxFuture<'_, Result<LeaseId, StoreError>> {
        Box::pin(self.grant_impl(ttl))
    }

    fn keep_alive(&self, lease: LeaseId) -> BoxFuture<'_, Result<(), StoreError>> {
        let result = self.keep_alive_now(lease);
        Box::pin(async move { result })
    }

    fn revoke_lease(&self, lease: LeaseId) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.revoke_impl(lease))
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}
