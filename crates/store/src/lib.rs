//! The state store: an etcd-shaped key-value interface (get, put, compare-and-swap on a
//! revision, prefix list, prefix watch, leases) with an embedded backend for one machine
//! ([`SqliteStore`]) and an etcd backend for an HA control plane (`EtcdStore`, feature
//! `etcd`). Callers only ever see [`Store`]; [`open_store`] picks the backend from a URL.

use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;

mod migrate;
mod sqlite;
mod txn_rules;
mod url;
mod watch_stream;

#[cfg(feature = "etcd")]
mod etcd;

#[cfg(feature = "etcd")]
pub use etcd::{EtcdMemberStatus, EtcdOptions, EtcdStore};
pub use migrate::{CopyOptions, copy_all, copy_with_options};
pub use sqlite::{SqliteOptions, SqliteStats, SqliteStore};
pub use txn_rules::{MAX_LEASE_TTL, MAX_TXN_BYTES, MAX_TXN_OPS, prefix_range_end};
pub use url::{StoreUrl, open_store, parse_store_url};

/// A store-wide, monotonically increasing revision number (etcd semantics: every
/// committed write transaction that changes something gets the next revision; a key
/// that does not exist has `mod_revision == 0` in comparisons).
pub type Revision = i64;

/// A boxed future, so that [`Store`] can be used as `dyn Store`.
pub type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A stream of watch events, in revision order.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

/// Identifies a lease: a time-to-live that keys can be attached to (etcd semantics). When the
/// lease expires or is revoked, every key attached to it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// One key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to this key.
    pub mod_revision: Revision,
    /// The lease the key is attached to (written with [`Op::PutWithLease`]), if any.
    pub lease: Option<LeaseId>,
}

/// A condition checked atomically at the start of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's `mod_revision` equals this value (0 = the key does not exist).
    ModRevision { key: String, equals: Revision },
}

/// One write inside a transaction. A transaction may not write the same key twice when
/// one of the writes is a put (etcd rejects that; so does every backend here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write the key; detaches it from any lease it had.
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Delete every key that starts with the prefix.
    DeletePrefix {
        prefix: String,
    },
    /// Write the key attached to `lease`: it is deleted (with a Delete watch event) when the
    /// lease expires or is revoked. Fails the whole transaction with
    /// [`StoreError::LeaseNotFound`] if the lease does not exist.
    PutWithLease {
        key: String,
        value: Vec<u8>,
        lease: LeaseId,
    },
}

/// The outcome of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOutcome {
    /// True when every compare held and the ops were applied.
    pub succeeded: bool,
    /// The store revision after the transaction (the new one when it wrote).
    pub revision: Revision,
}

/// What a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Put(KeyValue),
    /// The key was deleted at `revision`.
    Delete {
        key: String,
        revision: Revision,
    },
}

impl WatchEvent {
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put(kv) => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put(kv) => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }
}

/// Errors every backend maps its failures into.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or failed (I/O, database, network). For a write, the
    /// outcome is unknown: re-read and retry (compare-and-swap makes retries safe).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The data in the store is not what this version of NovaCron expects.
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// A watch asked for history the store no longer keeps: list again and watch from the
    /// revision the list returned.
    #[error("revision {requested} has been compacted (oldest kept: {oldest})")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    /// The caller passed something invalid (empty key, bad URL...).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The lease expired, was revoked, or never existed: grant a new one.
    #[error("lease {0} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
}

/// The store interface. Every write is durable when the returned future resolves
/// (a crash afterwards loses nothing). Implementations are cheap to clone behind `Arc`.
pub trait Store: Send + Sync + 'static {
    /// The value of one key, if present.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>, StoreError>>;

    /// Every key starting with `prefix`, in key order, and the store revision they were read at.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<(Vec<KeyValue>, Revision), StoreError>>;

    /// Atomically: if every compare holds, apply every op. One revision for the whole
    /// transaction (none when it changed nothing). At most [`MAX_TXN_OPS`] compares and ops
    /// and [`MAX_TXN_BYTES`] of keys and values, so that what works on one backend works on all.
    fn txn<'a>(
        &'a self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> BoxFuture<'a, Result<TxnOutcome, StoreError>>;

    /// Events for keys starting with `prefix` with revision > `after_revision`, first the
    /// history still kept, then live changes, in revision order, until the stream is dropped.
    /// If that history was compacted, [`StoreError::Compacted`] is returned, either here or
    /// as the first item of the stream; any error ends the stream (list and watch again).
    fn watch<'a>(
        &'a self,
        prefix: &'a str,
        after_revision: Revision,
    ) -> BoxFuture<'a, Result<WatchStream, StoreError>>;

    /// The current store revision.
    fn revision(&self) -> BoxFuture<'_, Result<Revision, StoreError>>;

    /// Create a lease that lives `ttl` (positive, at most [`MAX_LEASE_TTL`]) unless kept
    /// alive. etcd rounds the TTL up to whole seconds and to its minimum (about 2 s with
    /// default settings).
    fn grant_lease(&self, ttl: Duration) -> BoxFuture<'_, Result<LeaseId, StoreError>>;

    /// Restart the lease's full TTL. [`StoreError::LeaseNotFound`] once it has expired.
    fn keep_alive(&self, lease: LeaseId) -> BoxFuture<'_, Result<(), StoreError>>;

    /// End the lease now, deleting every key attached to it (one revision).
    /// [`StoreError::LeaseNotFound`] if it does not exist.
    fn revoke_lease(&self, lease: LeaseId) -> BoxFuture<'_, Result<(), StoreError>>;

    // ---- conveniences built on the primitives; backends need not override them ----

    /// Unconditional put; returns the new revision.
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<Revision, StoreError>> {
        Box::pin(async move {
            let out = self
                .txn(
                    vec![],
                    vec![Op::Put {
                        key: key.to_string(),
                        value,
                    }],
                )
                .await?;
            Ok(out.revision)
        })
    }

    /// Unconditional put attached to a lease; returns the new revision.
    fn put_with_lease<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        lease: LeaseId,
    ) -> BoxFuture<'a, Result<Revision, StoreError>> {
        Box::pin(async move {
            let out = self
                .txn(
                    vec![],
                    vec![Op::PutWithLease {
                        key: key.to_string(),
                        value,
                        lease,
                    }],
                )
                .await?;
            Ok(out.revision)
        })
    }

    /// Compare-and-swap: write `value` only if the key's mod revision is `expected`
    /// (0 = only if it does not exist). Returns `Some(new revision)` on success, `None` on conflict.
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Revision,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<Option<Revision>, StoreError>> {
        Box::pin(async move {
            let out = self
                .txn(
                    vec![Compare::ModRevision {
                        key: key.to_string(),
                        equals: expected,
                    }],
                    vec![Op::Put {
                        key: key.to_string(),
                        value,
                    }],
                )
                .await?;
            Ok(out.succeeded.then_some(out.revision))
        })
    }

    /// Unconditional delete; returns the store revision afterwards.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Revision, StoreError>> {
        Box::pin(async move {
            let out = self
                .txn(
                    vec![],
                    vec![Op::Delete {
                        key: key.to_string(),
                    }],
                )
                .await?;
            Ok(out.revision)
        })
    }
}
