//! Copying NovaCron's keys from one store to another (`novacron store migrate`), e.g. from
//! the embedded store to etcd when a single server grows into an HA control plane.

use crate::{Compare, KeyValue, MAX_TXN_BYTES, MAX_TXN_OPS, Op, Store, StoreError};

/// What [`copy_with_options`] copies and whether it may overwrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    /// Key prefixes to copy; the default (one empty prefix) copies every key.
    pub prefixes: Vec<String>,
    /// Copy even if the target already has keys under these prefixes (same keys are
    /// overwritten, others are kept).
    pub overwrite: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            prefixes: vec![String::new()],
            overwrite: false,
        }
    }
}

/// Keys written per target transaction (below [`MAX_TXN_OPS`]).
const KEYS_PER_TXN: usize = 64;

/// Copy every key from `from` to `to`; refuses if `to` already has any key. Returns the
/// number of keys copied. See [`copy_with_options`].
pub async fn copy_all(from: &dyn Store, to: &dyn Store) -> Result<u64, StoreError> {
    copy_with_options(from, to, &CopyOptions::default()).await
}

/// Copy the keys under `options.prefixes` from `from` (one consistent snapshot per prefix)
/// to `to`. Unless `options.overwrite`, it refuses (changing nothing) when `to` already has
/// keys under those prefixes, and each key is written only if still absent, so a
/// concurrent writer to the target makes the copy fail rather than be overwritten.
///
/// Keys attached to leases are not copied: they are ephemeral (liveness, leadership) and
/// their owners recreate them with leases of the new store.
pub async fn copy_with_options(
    from: &dyn Store,
    to: &dyn Store,
    options: &CopyOptions,
) -> Result<u64, StoreError> {
    let prefixes = disjoint_prefixes(&options.prefixes);
    if prefixes.is_empty() {
        return Err(StoreError::Invalid("no prefixes to copy".to_string()));
    }
    if !options.overwrite {
        for prefix in &prefixes {
            let (existing, _) = to.list(prefix).await?;
            if let Some(first) = existing.first() {
                return Err(StoreError::Invalid(format!(
                    "the target store already has {} keys under {prefix:?} (e.g. {:?}); \
                     refusing to copy over them (use overwrite to replace them)",
                    existing.len(),
                    first.key
                )));
            }
        }
    }
    let mut copied = 0u64;
    let mut skipped_leased = 0u64;
    for prefix in &prefixes {
        let (kvs, revision) = from.list(prefix).await?;
        tracing::info!(prefix, keys = kvs.len(), revision, "copying keys");
        let (leased, durable): (Vec<KeyValue>, Vec<KeyValue>) =
            kvs.into_iter().partition(|kv| kv.lease.is_some());
        skipped_leased += leased.len() as u64;
        for chunk in chunks_within_limits(durable) {
            let n = chunk.len() as u64;
            let compares = if options.overwrite {
                Vec::new()
            } else {
                chunk
                    .iter()
                    .map(|kv| Compare::ModRevision {
                        key: kv.key.clone(),
                        equals: 0,
                    })
                    .collect()
            };
            let ops = chunk
                .into_iter()
                .map(|kv| Op::Put {
                    key: kv.key,
                    value: kv.value,
                })
                .collect();
            let outcome = to.txn(compares, ops).await?;
            if !outcome.succeeded {
                return Err(StoreError::Invalid(format!(
                    "a key under {prefix:?} appeared in the target store while copying \
                     ({copied} keys copied so far); another writer is using it"
                )));
            }
            copied += n;
        }
    }
    tracing::info!(copied, skipped_leased, "store copy finished");
    Ok(copied)
}

/// Drop prefixes covered by a shorter one, so no key is copied twice.
fn disjoint_prefixes(prefixes: &[String]) -> Vec<String> {
    let mut sorted: Vec<String> = prefixes.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in sorted {
        if !out.iter().any(|kept| p.starts_with(kept.as_str())) {
            out.push(p);
        }
    }
    out
}

/// Split keys into groups that each fit in one transaction on every backend.
fn chunks_within_limits(kvs: Vec<KeyValue>) -> Vec<Vec<KeyValue>> {
    let mut chunks = Vec::new();
    let mut current: Vec<KeyValue> = Vec::new();
    let mut bytes = 0usize;
    for kv in kvs {
        // Key counted twice: once in the compare, once in the put.
        let size = 2 * kv.key.len() + kv.value.len();
        if !current.is_empty()
            && (current.len() >= KEYS_PER_TXN.min(MAX_TXN_OPS) || bytes + size > MAX_TXN_BYTES)
        {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(kv);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nested_prefixes_are_copied_once() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            disjoint_prefixes(&p(&["/a/b/", "/a/", "/c/", "/a/"])),
            p(&["/a/", "/c/"])
        );
        assert_eq!(disjoint_prefixes(&p(&["", "/x/"])), p(&[""]));
    }

    #[test]
    fn chunks_respect_op_and_byte_limits() {
        let kv = |i: usize, size: usize| KeyValue {
            key: format!("k{i}"),
            value: vec![0; size],
            create_revision: 1,
            mod_revision: 1,
            lease: None,
        };
        let small: Vec<KeyValue> = (0..200).map(|i| kv(i, 10)).collect();
        let chunks = chunks_within_limits(small);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 200);
        assert!(chunks.iter().all(|c| c.len() <= KEYS_PER_TXN));
        let big: Vec<KeyValue> = (0..5).map(|i| kv(i, 600_000)).collect();
        let chunks = chunks_within_limits(big);
        assert_eq!(chunks.len(), 3);
    }
}
