//! The single writer of the embedded store: a dedicated thread that owns the write
//! connection, group-commits the requests that queued up while the previous commit was
//! being fsynced (each keeping its own revision and compare result), expires leases, trims
//! history, and publishes the committed events to watchers.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{broadcast, oneshot};

use super::schema::{
    META_COMPACTED_BEFORE, META_NEXT_LEASE_ID, META_REVISION, db_err, key_from_bytes, require_meta,
    write_meta,
};
use crate::{
    Compare, KeyValue, LeaseId, Op, Revision, StoreError, TxnOutcome, WatchEvent, prefix_range_end,
};

/// The events of one group commit, in revision order, as sent to watchers.
pub(super) type EventBatch = Arc<Vec<WatchEvent>>;

/// Most revisions trimmed from the log by one automatic compaction step, so that trimming
/// never makes a single commit slow.
const COMPACTION_STEP_REVISIONS: i64 = 4096;

pub(super) enum Request {
    Txn {
        compares: Vec<Compare>,
        ops: Vec<Op>,
        reply: oneshot::Sender<Result<TxnOutcome, StoreError>>,
    },
    Grant {
        ttl: Duration,
        reply: oneshot::Sender<Result<LeaseId, StoreError>>,
    },
    Revoke {
        lease: LeaseId,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Compact {
        before: Revision,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A lease's TTL and when it runs out. Deadlines live only in memory.
#[derive(Debug, Clone, Copy)]
pub(super) struct LeaseTimer {
    pub ttl: Duration,
    pub deadline: Instant,
}

/// State shared between the writer thread and the async side of the store.
#[derive(Default)]
pub(super) struct Shared {
    /// Last committed revision.
    pub revision: AtomicI64,
    /// Oldest revision whose events the log still holds.
    pub compacted_before: AtomicI64,
    pub leases: Mutex<HashMap<i64, LeaseTimer>>,
    /// Set when a commit failed: the writer refuses further writes until restarted.
    pub failed: AtomicBool,
    pub commits: AtomicU64,
    pub txns: AtomicU64,
}

impl Shared {
    pub(super) fn leases(&self) -> MutexGuard<'_, HashMap<i64, LeaseTimer>> {
        // A panic while holding this lock cannot leave the map half-updated (single
        // inserts/removes), so a poisoned lock is still safe to use.
        self.leases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(super) struct Writer {
    pub conn: Connection,
    pub shared: Arc<Shared>,
    pub events: broadcast::Sender<EventBatch>,
    pub history_revisions: i64,
    pub max_batch_txns: usize,
    /// Held for the writer's lifetime: the exclusive lock on `<db>.lock`.
    pub _lock_file: File,
    pub revision: Revision,
    pub compacted_before: Revision,
    pub next_lease_id: i64,
}

/// What one request of a batch produced, replied after the commit.
enum Reply {
    Txn(
        oneshot::Sender<Result<TxnOutcome, StoreError>>,
        Result<TxnOutcome, StoreError>,
    ),
    Grant(
        oneshot::Sender<Result<LeaseId, StoreError>>,
        Result<LeaseId, StoreError>,
    ),
    Revoke(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    Compact(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
}

impl Reply {
    fn fail(self, e: &StoreError) -> Reply {
        let err = || StoreError::Unavailable(e.to_string());
        match self {
            Reply::Txn(tx, _) => Reply::Txn(tx, Err(err())),
            Reply::Grant(tx, _) => Reply::Grant(tx, Err(err())),
            Reply::Revoke(tx, _) => Reply::Revoke(tx, Err(err())),
            Reply::Compact(tx, _) => Reply::Compact(tx, Err(err())),
        }
    }

    fn send(self) {
        // A caller that stopped waiting is not an error for the writer.
        match self {
            Reply::Txn(tx, r) => drop(tx.send(r)),
            Reply::Grant(tx, r) => drop(tx.send(r)),
            Reply::Revoke(tx, r) => drop(tx.send(r)),
            Reply::Compact(tx, r) => drop(tx.send(r)),
        }
    }
}

/// Everything a batch changes, applied to memory only once the commit is durable.
struct Batch {
    revision: Revision,
    compacted_before: Revision,
    next_lease_id: i64,
    events: Vec<WatchEvent>,
    granted: Vec<(i64, Duration)>,
    revoked: HashSet<i64>,
    replies: Vec<Reply>,
    txns: u64,
}

impl Writer {
    /// The writer thread's loop: returns when every sender is gone or on shutdown.
    pub(super) fn run(mut self, rx: Receiver<Request>) {
        let mut shutdown_reply = None;
        loop {
            let first = match self.next_lease_deadline() {
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(req) => Some(req),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match rx.recv() {
                    Ok(req) => Some(req),
                    Err(_) => break,
                },
            };
            let mut requests = Vec::new();
            requests.extend(first);
            while requests.len() < self.max_batch_txns {
                match rx.try_recv() {
                    Ok(req) => requests.push(req),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if let Some(pos) = requests
                .iter()
                .position(|r| matches!(r, Request::Shutdown { .. }))
            {
                // Requests queued behind the shutdown are answered "closed" when their
                // reply channels drop with the receiver.
                let rest = requests.split_off(pos);
                if let Some(Request::Shutdown { reply }) = rest.into_iter().next() {
                    shutdown_reply = Some(reply);
                }
            }
            let expired = self.take_expired_leases();
            if !requests.is_empty() || !expired.is_empty() {
                self.run_batch(expired, requests);
            }
            if shutdown_reply.is_some() {
                break;
            }
        }
        tracing::debug!(revision = self.revision, "embedded store writer stopped");
        let Writer {
            conn,
            events,
            _lock_file: lock_file,
            ..
        } = self;
        if let Err((_, e)) = conn.close() {
            tracing::warn!(error = %e, "closing the embedded store database failed");
        }
        // Watches end (their channel closes), then the database is free to reopen; only
        // then is the closer told.
        drop(events);
        drop(lock_file);
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    fn next_lease_deadline(&self) -> Option<Instant> {
        self.shared.leases().values().map(|t| t.deadline).min()
    }

    /// Remove the leases whose deadline passed; from now on keep_alive reports them gone.
    fn take_expired_leases(&self) -> Vec<(i64, LeaseTimer)> {
        let now = Instant::now();
        let mut leases = self.shared.leases();
        let expired: Vec<(i64, LeaseTimer)> = leases
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .map(|(id, t)| (*id, *t))
            .collect();
        for (id, _) in &expired {
            leases.remove(id);
        }
        expired
    }

    fn run_batch(&mut self, expired: Vec<(i64, LeaseTimer)>, requests: Vec<Request>) {
        let mut batch = Batch {
            revision: self.revision,
            compacted_before: self.compacted_before,
            next_lease_id: self.next_lease_id,
            events: Vec::new(),
            granted: Vec::new(),
            revoked: HashSet::new(),
            replies: Vec::with_capacity(requests.len()),
            txns: 0,
        };
        let failed_before = self.shared.failed.load(Ordering::Acquire);
        let begin = if failed_before {
            Err(StoreError::Unavailable(
                "the embedded store failed to commit earlier; restart the process".to_string(),
            ))
        } else {
            self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)
        };
        if let Err(e) = begin {
            for req in requests {
                if let Some(reply) = pending_reply(req) {
                    reply.fail(&e).send();
                }
            }
            self.restore_leases(&expired);
            return;
        }

        for (lease, _) in &expired {
            let result = self.savepoint(|conn| revoke_in_db(conn, *lease, batch.revision + 1));
            match result {
                Ok(events) => {
                    tracing::info!(lease = %LeaseId(*lease), keys = events.len(), "lease expired");
                    batch.push_events(events);
                }
                Err(e) => {
                    tracing::warn!(lease = %LeaseId(*lease), error = %e, "expiring lease failed; retrying later");
                    // Put back (with a fresh TTL) so the next wakeup retries it.
                    self.restore_leases(&[(*lease, expired_timer(&expired, *lease))]);
                }
            }
        }
        for req in requests {
            self.apply_request(req, &mut batch);
        }
        let compaction = self.auto_compaction_target(batch.revision, batch.compacted_before);
        if let Some(before) = compaction {
            if let Err(e) = self.savepoint(|conn| compact_log(conn, before)) {
                tracing::warn!(error = %e, "trimming the revision log failed; retrying later");
            } else {
                batch.compacted_before = before;
            }
        }

        let commit = self
            .finish_meta(&batch)
            .and_then(|()| self.conn.execute_batch("COMMIT").map_err(db_err));
        if let Err(e) = commit {
            let _ = self.conn.execute_batch("ROLLBACK");
            tracing::error!(error = %e, "embedded store commit failed; refusing further writes");
            self.shared.failed.store(true, Ordering::Release);
            self.restore_leases(&expired);
            for reply in batch.replies {
                reply.fail(&e).send();
            }
            return;
        }

        // Durable: publish to memory, watchers, then callers.
        self.revision = batch.revision;
        self.compacted_before = batch.compacted_before;
        self.next_lease_id = batch.next_lease_id;
        self.shared
            .revision
            .store(batch.revision, Ordering::Release);
        self.shared
            .compacted_before
            .store(batch.compacted_before, Ordering::Release);
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        self.shared.txns.fetch_add(batch.txns, Ordering::Relaxed);
        {
            let now = Instant::now();
            let mut leases = self.shared.leases();
            for id in &batch.revoked {
                leases.remove(id);
            }
            for (id, ttl) in &batch.granted {
                if !batch.revoked.contains(id) {
                    leases.insert(
                        *id,
                        LeaseTimer {
                            ttl: *ttl,
                            deadline: now + *ttl,
                        },
                    );
                }
            }
        }
        if !batch.events.is_empty() {
            // No receiver is fine: nobody is watching.
            let _ = self
                .events
                .send(Arc::new(std::mem::take(&mut batch.events)));
        }
        for reply in batch.replies {
            reply.send();
        }
    }

    fn restore_leases(&self, expired: &[(i64, LeaseTimer)]) {
        let now = Instant::now();
        let mut leases = self.shared.leases();
        for (id, timer) in expired {
            leases.insert(
                *id,
                LeaseTimer {
                    ttl: timer.ttl,
                    deadline: now + timer.ttl,
                },
            );
        }
    }

    fn finish_meta(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.revision != self.revision {
            write_meta(&self.conn, META_REVISION, batch.revision)?;
        }
        if batch.compacted_before != self.compacted_before {
            write_meta(&self.conn, META_COMPACTED_BEFORE, batch.compacted_before)?;
        }
        if batch.next_lease_id != self.next_lease_id {
            write_meta(&self.conn, META_NEXT_LEASE_ID, batch.next_lease_id)?;
        }
        Ok(())
    }

    /// When the log holds well over `history_revisions`, the revision to trim up to (one
    /// bounded step at a time).
    fn auto_compaction_target(
        &self,
        revision: Revision,
        compacted_before: Revision,
    ) -> Option<i64> {
        let keep_from = revision + 1 - self.history_revisions;
        let slack = (self.history_revisions / 16).clamp(1, COMPACTION_STEP_REVISIONS);
        if keep_from - compacted_before >= slack {
            Some(keep_from.min(compacted_before + COMPACTION_STEP_REVISIONS))
        } else {
            None
        }
    }

    /// Run `f` inside a savepoint: its changes are kept only if it succeeds.
    fn savepoint<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("SAVEPOINT req").map_err(db_err)?;
        match f(&self.conn) {
            Ok(v) => {
                self.conn.execute_batch("RELEASE req").map_err(db_err)?;
                Ok(v)
            }
            Err(e) => {
                self.conn
                    .execute_batch("ROLLBACK TO req; RELEASE req")
                    .map_err(db_err)?;
                Err(e)
            }
        }
    }

    fn lease_exists(&self, batch: &Batch, lease: i64) -> bool {
        if batch.revoked.contains(&lease) {
            return false;
        }
        batch.granted.iter().any(|(id, _)| *id == lease)
            || self.shared.leases().contains_key(&lease)
    }

    fn apply_request(&mut self, req: Request, batch: &mut Batch) {
        match req {
            Request::Txn {
                compares,
                ops,
                reply,
            } => {
                batch.txns += 1;
                let next = batch.revision + 1;
                let lease_exists = |lease: LeaseId| self.lease_exists(batch, lease.0);
                let result =
                    self.savepoint(|conn| apply_txn(conn, next, &compares, &ops, &lease_exists));
                let outcome = result.map(|(succeeded, events)| {
                    batch.push_events(events);
                    TxnOutcome {
                        succeeded,
                        revision: batch.revision,
                    }
                });
                batch.replies.push(Reply::Txn(reply, outcome));
            }
            Request::Grant { ttl, reply } => {
                let id = batch.next_lease_id;
                let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
                let result = self.savepoint(|conn| {
                    conn.prepare_cached("INSERT INTO leases(id, ttl_ms) VALUES (?1, ?2)")
                        .and_then(|mut stmt| stmt.execute(params![id, ttl_ms]))
                        .map_err(db_err)
                });
                let result = result.map(|_| {
                    batch.next_lease_id += 1;
                    batch.granted.push((id, ttl));
                    LeaseId(id)
                });
                batch.replies.push(Reply::Grant(reply, result));
            }
            Request::Revoke { lease, reply } => {
                let result = if self.lease_exists(batch, lease.0) {
                    let next = batch.revision + 1;
                    self.savepoint(|conn| revoke_in_db(conn, lease.0, next))
                        .map(|events| {
                            batch.push_events(events);
                            batch.revoked.insert(lease.0);
                        })
                } else {
                    Err(StoreError::LeaseNotFound(lease))
                };
                batch.replies.push(Reply::Revoke(reply, result));
            }
            Request::Compact { before, reply } => {
                let result = if before > batch.revision + 1 {
                    Err(StoreError::Invalid(format!(
                        "cannot compact before revision {before}: the store is at {}",
                        batch.revision
                    )))
                } else if before <= batch.compacted_before {
                    Ok(())
                } else {
                    self.savepoint(|conn| compact_log(conn, before)).map(|()| {
                        batch.compacted_before = before;
                    })
                };
                batch.replies.push(Reply::Compact(reply, result));
            }
            Request::Shutdown { reply } => {
                // Shutdown is taken out of the batch before it runs; answer anyway.
                let _ = reply.send(());
            }
        }
    }
}

impl Batch {
    /// Record the events of one change; a change with events takes the next revision.
    fn push_events(&mut self, events: Vec<WatchEvent>) {
        if !events.is_empty() {
            self.revision += 1;
            self.events.extend(events);
        }
    }
}

fn pending_reply(req: Request) -> Option<Reply> {
    // The result is a placeholder: `Reply::fail` replaces it.
    let unset = || StoreError::Unavailable(String::new());
    match req {
        Request::Txn { reply, .. } => Some(Reply::Txn(reply, Err(unset()))),
        Request::Grant { reply, .. } => Some(Reply::Grant(reply, Err(unset()))),
        Request::Revoke { reply, .. } => Some(Reply::Revoke(reply, Err(unset()))),
        Request::Compact { reply, .. } => Some(Reply::Compact(reply, Err(unset()))),
        Request::Shutdown { reply } => {
            let _ = reply.send(());
            None
        }
    }
}

fn expired_timer(expired: &[(i64, LeaseTimer)], lease: i64) -> LeaseTimer {
    expired
        .iter()
        .find(|(id, _)| *id == lease)
        .map(|(_, t)| *t)
        .unwrap_or(LeaseTimer {
            ttl: Duration::from_secs(1),
            deadline: Instant::now(),
        })
}

/// Apply one transaction at revision `rev` (if it changes anything). Returns whether the
/// compares held and the events it produced.
fn apply_txn(
    conn: &Connection,
    rev: Revision,
    compares: &[Compare],
    ops: &[Op],
    lease_exists: &dyn Fn(LeaseId) -> bool,
) -> Result<(bool, Vec<WatchEvent>), StoreError> {
    for Compare::ModRevision { key, equals } in compares {
        let current: Option<i64> = conn
            .prepare_cached("SELECT mod_rev FROM kv WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row([key.as_bytes()], |r| r.get(0)).optional())
            .map_err(db_err)?;
        if current.unwrap_or(0) != *equals {
            return Ok((false, Vec::new()));
        }
    }
    // Like etcd, leases are checked only for the branch that runs.
    for op in ops {
        if let Op::PutWithLease { lease, .. } = op
            && !lease_exists(*lease)
        {
            return Err(StoreError::LeaseNotFound(*lease));
        }
    }
    let mut log = LogWriter::new(conn, rev);
    for op in ops {
        match op {
            Op::Put { key, value } => log.put(key, value, None)?,
            Op::PutWithLease { key, value, lease } => log.put(key, value, Some(lease.0))?,
            Op::Delete { key } => log.delete(key.as_bytes())?,
            Op::DeletePrefix { prefix } => {
                for key in keys_with_prefix(conn, prefix.as_bytes())? {
                    log.delete(&key)?;
                }
            }
        }
    }
    Ok((true, log.events))
}

/// Delete every key attached to the lease and the lease itself.
fn revoke_in_db(
    conn: &Connection,
    lease: i64,
    rev: Revision,
) -> Result<Vec<WatchEvent>, StoreError> {
    let keys: Vec<Vec<u8>> = conn
        .prepare_cached("SELECT key FROM kv WHERE lease = ?1 ORDER BY key")
        .and_then(|mut stmt| {
            stmt.query_map([lease], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<Vec<u8>>>>()
        })
        .map_err(db_err)?;
    let mut log = LogWriter::new(conn, rev);
    for key in keys {
        log.delete(&key)?;
    }
    conn.prepare_cached("DELETE FROM leases WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute([lease]))
        .map_err(db_err)?;
    Ok(log.events)
}

fn keys_with_prefix(conn: &Connection, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let end = prefix_range_end(prefix);
    conn.prepare_cached(
        "SELECT key FROM kv WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) ORDER BY key",
    )
    .and_then(|mut stmt| {
        stmt.query_map(params![prefix, end], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<Vec<u8>>>>()
    })
    .map_err(db_err)
}

fn compact_log(conn: &Connection, before: Revision) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM log WHERE rev < ?1")
        .and_then(|mut stmt| stmt.execute([before]))
        .map_err(db_err)?;
    Ok(())
}

/// Writes changes of one revision to `kv` and `log`, collecting their watch events.
struct LogWriter<'c> {
    conn: &'c Connection,
    rev: Revision,
    events: Vec<WatchEvent>,
}

impl<'c> LogWriter<'c> {
    fn new(conn: &'c Connection, rev: Revision) -> Self {
        LogWriter {
            conn,
            rev,
            events: Vec::new(),
        }
    }

    fn append_log(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        create_rev: Revision,
        lease: Option<i64>,
    ) -> Result<(), StoreError> {
        let seq = self.events.len() as i64;
        self.conn
            .prepare_cached(
                "INSERT INTO log(rev, seq, key, value, create_rev, lease) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut stmt| stmt.execute(params![self.rev, seq, key, value, create_rev, lease]))
            .map_err(db_err)?;
        Ok(())
    }

    fn put(&mut self, key: &str, value: &[u8], lease: Option<i64>) -> Result<(), StoreError> {
        let existing: Option<i64> = self
            .conn
            .prepare_cached("SELECT create_rev FROM kv WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row([key.as_bytes()], |r| r.get(0)).optional())
            .map_err(db_err)?;
        let create_rev = existing.unwrap_or(self.rev);
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO kv(key, value, create_rev, mod_rev, lease) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![key.as_bytes(), value, create_rev, self.rev, lease])
            })
            .map_err(db_err)?;
        self.append_log(key.as_bytes(), Some(value), create_rev, lease)?;
        self.events.push(WatchEvent::Put(KeyValue {
            key: key.to_string(),
            value: value.to_vec(),
            create_revision: create_rev,
            mod_revision: self.rev,
            lease: lease.map(LeaseId),
        }));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let deleted = self
            .conn
            .prepare_cached("DELETE FROM kv WHERE key = ?1")
            .and_then(|mut stmt| stmt.execute([key]))
            .map_err(db_err)?;
        if deleted == 0 {
            return Ok(());
        }
        self.append_log(key, None, 0, None)?;
        self.events.push(WatchEvent::Delete {
            key: key_from_bytes(key.to_vec())?,
            revision: self.rev,
        });
        Ok(())
    }
}

/// What the writer starts from, as persisted.
pub(super) struct PersistedState {
    pub revision: Revision,
    pub compacted_before: Revision,
    pub next_lease_id: i64,
    /// Every lease with its TTL.
    pub leases: Vec<(i64, Duration)>,
}

/// Load the writer's starting state from the database.
pub(super) fn load_state(conn: &Connection) -> Result<PersistedState, StoreError> {
    let revision = require_meta(conn, META_REVISION)?;
    let compacted_before = require_meta(conn, META_COMPACTED_BEFORE)?;
    let next_lease_id = require_meta(conn, META_NEXT_LEASE_ID)?;
    let leases = conn
        .prepare("SELECT id, ttl_ms FROM leases")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<Vec<(i64, i64)>>>()
        })
        .map_err(db_err)?
        .into_iter()
        .map(|(id, ttl_ms)| {
            let ttl = Duration::from_millis(ttl_ms.max(1) as u64).min(crate::MAX_LEASE_TTL);
            (id, ttl)
        })
        .collect();
    Ok(PersistedState {
        revision,
        compacted_before,
        next_lease_id,
        leases,
    })
}
