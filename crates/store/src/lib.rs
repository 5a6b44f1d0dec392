//! The state store: an etcd-shaped key-value interface (get, put, compare-and-swap on a
//! revision, prefix list, prefix watch) with an embedded backend for one machine and an
//! etcd backend for an HA control plane. Callers only ever see [`Store`].

use std::pin::Pin;

use futures_core::Stream;

/// A store-wide, monotonically increasing revision number (etcd semantics: every
/// committed write transaction gets the next revision; a key that does not exist has
/// `mod_revision == 0` in comparisons).
pub type Revision = i64;

/// A boxed future, so that [`Store`] can be used as `dyn Store`.
pub type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A stream of watch events, in revision order.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

/// One key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to this key.
    pub mod_revision: Revision,
}

/// A condition checked atomically at the start of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's `mod_revision` equals this value (0 = the key does not exist).
    ModRevision { key: String, equals: Revision },
}

/// One write inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
    /// Delete every key that starts with the prefix.
    DeletePrefix { prefix: String },
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
    Delete { key: String, revision: Revision },
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
    /// The backend cannot be reached or failed (I/O, database, network).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The data in the store is not what this version of NovaCron expects.
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// A watch asked for history the store no longer keeps.
    #[error("revision {requested} has been compacted (oldest kept: {oldest})")]
    Compacted { requested: Revision, oldest: Revision },
    /// The caller passed something invalid (empty key, bad URL...).
    #[error("invalid store request: {0}")]
    Invalid(String),
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

    /// Atomically: if every compare holds, apply every op. One revision for the whole transaction.
    fn txn<'a>(
        &'a self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> BoxFuture<'a, Result<TxnOutcome, StoreError>>;

    /// Events for keys starting with `prefix` with revision > `after_revision`, first the
    /// history still kept, then live changes, in revision order, until the stream is dropped.
    fn watch<'a>(
        &'a self,
        prefix: &'a str,
        after_revision: Revision,
    ) -> BoxFuture<'a, Result<WatchStream, StoreError>>;

    /// The current store revision.
    fn revision(&self) -> BoxFuture<'_, Result<Revision, StoreError>>;

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
