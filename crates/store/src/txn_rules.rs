//! Rules every backend applies to a transaction before running it (so that a transaction
//! that works on the embedded store also works on etcd), and key-range helpers.

use std::collections::HashSet;
use std::time::Duration;

use crate::{Compare, Op, Revision, StoreError};

/// Longest lease TTL accepted (ten years; leases are for liveness, not storage).
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Most compares, and most ops, one transaction may carry (etcd's default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// Most bytes of keys and values one transaction may carry (below etcd's default
/// `--max-request-bytes` of 1.5 MiB, leaving room for the request framing).
pub const MAX_TXN_BYTES: usize = 1_500_000;

/// The first key after every key starting with `prefix`, or `None` when no such bound
/// exists (empty prefix, or a prefix of only `0xff` bytes): the exclusive end of the range.
pub fn prefix_range_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Check a lease TTL against the rules shared by all backends.
pub(crate) fn validate_lease_ttl(ttl: Duration) -> Result<(), StoreError> {
    if ttl.is_zero() {
        return Err(StoreError::Invalid(
            "lease TTL must be positive".to_string(),
        ));
    }
    if ttl > MAX_LEASE_TTL {
        return Err(StoreError::Invalid(format!(
            "lease TTL {ttl:?} is longer than the maximum {MAX_LEASE_TTL:?}"
        )));
    }
    Ok(())
}

/// Check a watch start against the rules shared by all backends.
pub(crate) fn validate_watch_start(after_revision: Revision) -> Result<(), StoreError> {
    if after_revision < 0 {
        return Err(StoreError::Invalid(format!(
            "cannot watch after revision {after_revision}: revisions start at 0"
        )));
    }
    Ok(())
}

/// Check a transaction against the rules shared by all backends.
pub(crate) fn validate_txn(compares: &[Compare], ops: &[Op]) -> Result<(), StoreError> {
    if compares.len() > MAX_TXN_OPS || ops.len() > MAX_TXN_OPS {
        return Err(StoreError::Invalid(format!(
            "transaction has {} compares and {} ops; at most {MAX_TXN_OPS} of each",
            compares.len(),
            ops.len()
        )));
    }
    let mut bytes = 0usize;
    for Compare::ModRevision { key, equals } in compares {
        check_key(key)?;
        if *equals < 0 {
            return Err(StoreError::Invalid(format!(
                "compare on {key:?}: revision {equals} is negative"
            )));
        }
        bytes += key.len();
    }
    let mut put_keys: HashSet<&str> = HashSet::new();
    for op in ops {
        match op {
            Op::Put { key, value } | Op::PutWithLease { key, value, .. } => {
                check_key(key)?;
                if !put_keys.insert(key) {
                    return Err(duplicate(key));
                }
                bytes += key.len() + value.len();
            }
            Op::Delete { key } => {
                check_key(key)?;
                bytes += key.len();
            }
            Op::DeletePrefix { prefix } => bytes += prefix.len(),
        }
    }
    for op in ops {
        match op {
            Op::Delete { key } if put_keys.contains(key.as_str()) => return Err(duplicate(key)),
            Op::DeletePrefix { prefix } => {
                if let Some(key) = put_keys.iter().find(|k| k.starts_with(prefix.as_str())) {
                    return Err(duplicate(key));
                }
            }
            _ => {}
        }
    }
    if bytes > MAX_TXN_BYTES {
        return Err(StoreError::Invalid(format!(
            "transaction carries {bytes} bytes of keys and values; at most {MAX_TXN_BYTES}"
        )));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::Invalid("empty key".to_string()));
    }
    Ok(())
}

fn duplicate(key: &str) -> StoreError {
    StoreError::Invalid(format!(
        "key {key:?} is written more than once in one transaction"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn range_end_increments_last_byte_that_can_be() {
        assert_eq!(prefix_range_end(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_range_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_range_end(b"\xff\xff"), None);
        assert_eq!(prefix_range_end(b""), None);
    }

    #[test]
    fn rejects_double_writes_and_empty_keys() {
        let put = |k: &str| Op::Put {
            key: k.into(),
            value: vec![],
        };
        assert!(validate_txn(&[], &[put("a"), put("b")]).is_ok());
        assert!(validate_txn(&[], &[put("a"), put("a")]).is_err());
        assert!(validate_txn(&[], &[put("a/b"), Op::Delete { key: "a/b".into() }]).is_err());
        assert!(
            validate_txn(
                &[],
                &[
                    put("a/b"),
                    Op::DeletePrefix {
                        prefix: "a/".into()
                    }
                ]
            )
            .is_err()
        );
        assert!(
            validate_txn(
                &[],
                &[
                    Op::Delete { key: "x".into() },
                    Op::DeletePrefix { prefix: "".into() }
                ]
            )
            .is_ok()
        );
        assert!(validate_txn(&[], &[put("")]).is_err());
        let many: Vec<Op> = (0..=MAX_TXN_OPS).map(|i| put(&format!("k{i}"))).collect();
        assert!(validate_txn(&[], &many).is_err());
        let big = Op::Put {
            key: "big".into(),
            value: vec![0; MAX_TXN_BYTES],
        };
        assert!(validate_txn(&[], &[big]).is_err());
    }
}
