//! Storage backends: where repository objects live. A backend stores opaque, immutable
//! objects under slash-separated keys (`config.json`, `chunks/ab/<id>`, `indexes/<backup>`,
//! `locks/<name>`). The repository never needs rename or append from a backend, only atomic
//! whole-object puts, so the same code runs on a local directory and on S3-compatible storage.

use std::future::Future;
use std::pin::Pin;

use crate::error::Result;

pub mod local;
pub mod s3;

/// A boxed future, so `Backend` stays object-safe (`Arc<dyn Backend>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One object in a listing.
#[derive(Clone, Debug)]
pub struct ObjectInfo {
    /// Full key, e.g. `chunks/ab/ab12…`.
    pub key: String,
    pub size_bytes: u64,
    /// Last modification, milliseconds since the Unix epoch.
    pub modified_unix_ms: u64,
}

/// Object storage used by a repository.
///
/// Contract: `put` is atomic (a reader sees the whole object or nothing) and durable when it
/// returns, except that a local directory defers the directory-entry fsync to `flush`;
/// `delete` of a missing object succeeds; `list` is consistent with completed puts and deletes
/// (local POSIX directories and S3 since 2020 both give read-after-write consistency, which
/// the garbage collector's handshake relies on).
pub trait Backend: Send + Sync + 'static {
    /// Stores `data` under `key`, replacing any previous object.
    fn put(&self, key: &str, data: Vec<u8>) -> BoxFuture<'_, Result<()>>;
    /// Stores `data` under `key` only if no object exists there; returns false if one did.
    fn put_new(&self, key: &str, data: Vec<u8>) -> BoxFuture<'_, Result<bool>>;
    /// Reads a whole object; `BackupError::NotFound` if it does not exist.
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Vec<u8>>>;
    /// Whether `key` exists.
    fn exists(&self, key: &str) -> BoxFuture<'_, Result<bool>>;
    /// Removes `key` (no error if absent).
    fn delete(&self, key: &str) -> BoxFuture<'_, Result<()>>;
    /// Every object whose key starts with `prefix` (recursively).
    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<ObjectInfo>>>;
    /// Makes every completed put and delete durable (local: fsync touched directories).
    fn flush(&self) -> BoxFuture<'_, Result<()>>;
    /// Removes leftovers of interrupted puts older than `older_than_ms`; returns how many.
    fn cleanup_partial(&self, older_than_ms: u64) -> BoxFuture<'_, Result<u64>>;
    /// Human-readable location (`/srv/backups`, `s3://bucket/prefix`).
    fn location(&self) -> String;
}
