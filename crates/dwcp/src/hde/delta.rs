//! XOR-and-run-length delta of a block against its previous version (XBZRLE-like).
//!
//! Format: a sequence of `(unchanged_len: varint, changed_len: varint, changed bytes)` pairs
//! covering the block from the start; bytes after the last pair are unchanged. Changed bytes
//! are the new values (equivalent to XOR with the old value, but decoding is a plain copy).

use super::varint;
use crate::error::HdeError;

/// Size of the word used to find unchanged runs quickly.
const WORD: usize = 8;

#[inline(always)]
fn word(data: &[u8], at: usize) -> u64 {
    let mut w = [0u8; WORD];
    w.copy_from_slice(&data[at..at + WORD]);
    u64::from_ne_bytes(w)
}

/// Encodes `new` as a delta against `old` (same length) into `out`.
///
/// Returns `false` (and leaves `out` with partial output the caller must discard) when the
/// delta would exceed `limit_bytes`: the caller then sends the block another way.
pub fn encode(old: &[u8], new: &[u8], limit_bytes: usize, out: &mut Vec<u8>) -> bool {
    debug_assert_eq!(old.len(), new.len());
    let n = new.len().min(old.len());
    let start_len = out.len();
    let mut i = 0;
    while i < n {
        // Unchanged run.
        let run_start = i;
        while i + WORD <= n && word(old, i) == word(new, i) {
            i += WORD;
        }
        while i < n && old[i] == new[i] {
            i += 1;
        }
        if i == n {
            break;
        }
        let unchanged = i - run_start;
        // Changed run: extend word by word while words differ, so that a literal ends only
        // at a fully unchanged word (short unchanged gaps stay inside the literal).
        let lit_start = i;
        loop {
            if i + WORD <= n {
                if word(old, i) != word(new, i) {
                    i += WORD;
                    continue;
                }
                break;
            }
            // Tail shorter than a word: take it whole if anything in it differs.
            if old[i..n] != new[i..n] {
                i = n;
            }
            break;
        }
        varint::put(out, unchanged as u64);
        varint::put(out, (i - lit_start) as u64);
        out.extend_from_slice(&new[lit_start..i]);
        if out.len() - start_len > limit_bytes {
            return false;
        }
    }
    true
}

/// Applies `delta` to `old`, producing the new version in `out` (cleared first).
pub fn decode(old: &[u8], delta: &[u8], out: &mut Vec<u8>) -> Result<(), HdeError> {
    out.clear();
    out.extend_from_slice(old);
    let mut pos = 0usize; // position in the block
    let mut rd = 0usize; // position in the delta
    while rd < delta.len() {
        let unchanged = varint::get(delta, &mut rd)?;
        let changed = varint::get(delta, &mut rd)?;
        let unchanged =
            usize::try_from(unchanged).map_err(|_| HdeError::Corrupt("delta run too long"))?;
        let changed =
            usize::try_from(changed).map_err(|_| HdeError::Corrupt("delta run too long"))?;
        pos = pos
            .checked_add(unchanged)
            .ok_or(HdeError::Corrupt("delta run overflows"))?;
        let end = pos
            .checked_add(changed)
            .ok_or(HdeError::Corrupt("delta run overflows"))?;
        if end > out.len() {
            return Err(HdeError::Corrupt("delta run past the end of the block"));
        }
        let lit_end = rd
            .checked_add(changed)
            .ok_or(HdeError::Corrupt("delta literal overflows"))?;
        if lit_end > delta.len() {
            return Err(HdeError::Truncated);
        }
        out[pos..end].copy_from_slice(&delta[rd..lit_end]);
        rd = lit_end;
        pos = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_change_gives_small_delta() {
        let old = vec![7u8; 4096];
        let mut new = old.clone();
        new[100] = 1;
        new[4000..4010].fill(9);
        let mut d = Vec::new();
        assert!(encode(&old, &new, 4096, &mut d));
        assert!(d.len() < 40, "delta is {} bytes", d.len());
        let mut back = Vec::new();
        decode(&old, &d, &mut back).unwrap();
        assert_eq!(back, new);
    }

    #[test]
    fn identical_blocks_give_empty_delta() {
        let old: Vec<u8> = (0..4096u32).map(|i| (i * 31) as u8).collect();
        let mut d = Vec::new();
        assert!(encode(&old, &old, 10, &mut d));
        assert!(d.is_empty());
    }

    #[test]
    fn limit_stops_large_deltas() {
        let old = vec![0u8; 4096];
        let new = vec![1u8; 4096];
        let mut d = Vec::new();
        assert!(!encode(&old, &new, 2048, &mut d));
    }
}
