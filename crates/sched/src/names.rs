//! Compact string interner mapping the control plane's names (VM, host, group names) to dense
//! `u32` indices. Ten million VM names must fit in a few hundred MiB, so names live in one byte
//! arena and the hash table holds only (index, hash) pairs; freed indices are reused.

/// Longest name accepted, in bytes (DNS-label-like names are far shorter).
pub const MAX_NAME_BYTES: usize = 1024;

const EMPTY: u64 = u64::MAX;
const START_BITS: u32 = 40;
const LEN_BITS: u32 = 12;

/// Packed (start: 40 bits, len: 12 bits, cap: 12 bits) location of a name in the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span(u64);

impl Span {
    fn new(start: usize, len: usize, cap: usize) -> Self {
        Span(
            (start as u64)
                | ((len as u64) << START_BITS)
                | ((cap as u64) << (START_BITS + LEN_BITS)),
        )
    }
    fn start(self) -> usize {
        (self.0 & ((1 << START_BITS) - 1)) as usize
    }
    fn len(self) -> usize {
        ((self.0 >> START_BITS) & ((1 << LEN_BITS) - 1)) as usize
    }
    fn cap(self) -> usize {
        (self.0 >> (START_BITS + LEN_BITS)) as usize
    }
}

const FREE_SPAN: Span = Span(u64::MAX);

/// Interner with removal. Indices are dense: a freed index is handed out again.
#[derive(Clone, Debug, Default)]
pub struct NameTable {
    arena: Vec<u8>,
    spans: Vec<Span>,
    /// Open addressing, linear probing; each slot is `(hash32 << 32) | index`, `EMPTY` if free.
    slots: Vec<u64>,
    free: Vec<u32>,
    /// Reusable arena positions, by capacity class (capacity / 8).
    holes: Vec<Vec<u64>>,
    live: usize,
    garbage_bytes: usize,
}

fn hash_name(name: &[u8]) -> u32 {
    // 64-bit multiply-mix over 8-byte words; names are short, so this is a few cycles.
    let mut h: u64 = 0x243F_6A88_85A3_08D3 ^ (name.len() as u64);
    let mut chunks = name.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (h >> 32) as u32
}

impl NameTable {
    /// Table sized for about `n` names without rehashing.
    pub fn with_capacity(n: usize, avg_name_bytes: usize) -> Self {
        let mut t = NameTable {
            arena: Vec::with_capacity(n * round_cap(avg_name_bytes)),
            spans: Vec::with_capacity(n),
            ..Default::default()
        };
        let slots = (n * 4 / 3 + 1).next_power_of_two().max(16);
        t.slots = vec![EMPTY; slots];
        t
    }

    /// Number of live names.
    pub fn len(&self) -> usize {
        self.live
    }

    /// One past the largest index ever handed out (size for dense side tables).
    #[cfg(test)]
    pub fn index_bound(&self) -> usize {
        self.spans.len()
    }

    /// Index of `name`, if interned.
    pub fn get(&self, name: &str) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let bytes = name.as_bytes();
        let h = hash_name(bytes);
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            if (s >> 32) as u32 == h {
                let idx = s as u32;
                if self.bytes_of(idx) == bytes {
                    return Some(idx);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The name at `idx` (empty string if `idx` is free).
    pub fn name(&self, idx: u32) -> &str {
        // Only valid UTF-8 enters the arena (from &str), so this cannot fail; fall back to "" to
        // stay panic-free if an index is stale.
        std::str::from_utf8(self.bytes_of(idx)).unwrap_or("")
    }

    /// True if `idx` currently names something.
    pub fn contains_index(&self, idx: u32) -> bool {
        self.spans
            .get(idx as usize)
            .is_some_and(|s| *s != FREE_SPAN)
    }

    fn bytes_of(&self, idx: u32) -> &[u8] {
        match self.spans.get(idx as usize) {
            Some(&s) if s != FREE_SPAN => &self.arena[s.start()..s.start() + s.len()],
            _ => &[],
        }
    }

    /// Insert `name`, which the caller knows is absent (saves the lookup `intern` does).
    pub fn insert_absent(&mut self, name: &str) -> Option<u32> {
        if name.len() > MAX_NAME_BYTES {
            return None;
        }
        debug_assert!(self.get(name).is_none());
        Some(self.insert_new(name))
    }

    /// Index of `name`, interning it if new. Returns `(index, newly_inserted)`.
    /// Names longer than [`MAX_NAME_BYTES`] are refused with `None`.
    pub fn intern(&mut self, name: &str) -> Option<(u32, bool)> {
        if name.len() > MAX_NAME_BYTES {
            return None;
        }
        if let Some(i) = self.get(name) {
            return Some((i, false));
        }
        Some((self.insert_new(name), true))
    }

    fn insert_new(&mut self, name: &str) -> u32 {
        if (self.live + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let bytes = name.as_bytes();
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.spans.push(FREE_SPAN);
                (self.spans.len() - 1) as u32
            }
        };
        let span = self.place_bytes(bytes);
        self.spans[idx as usize] = span;
        let h = hash_name(bytes);
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = (u64::from(h) << 32) | u64::from(idx);
        self.live += 1;
        idx
    }

    fn place_bytes(&mut self, bytes: &[u8]) -> Span {
        // Freed names leave holes of their capacity class; reuse one before growing the arena,
        // so churn (VMs created and deleted for ever) does not grow memory.
        let cap = round_cap(bytes.len());
        let class = cap / 8;
        if let Some(pos) = self.holes.get_mut(class).and_then(Vec::pop) {
            let pos = pos as usize;
            self.garbage_bytes -= cap;
            self.arena[pos..pos + bytes.len()].copy_from_slice(bytes);
            return Span::new(pos, bytes.len(), cap);
        }
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        self.arena.resize(start + cap, 0);
        Span::new(start, bytes.len(), cap)
    }

    /// Remove `name`; returns its former index.
    #[cfg(test)]
    pub fn remove(&mut self, name: &str) -> Option<u32> {
        let idx = self.get(name)?;
        self.remove_index(idx);
        Some(idx)
    }

    /// Remove the name at `idx` (no-op if free).
    pub fn remove_index(&mut self, idx: u32) {
        let Some(&span) = self.spans.get(idx as usize) else {
            return;
        };
        if span == FREE_SPAN {
            return;
        }
        let h = hash_name(&self.arena[span.start()..span.start() + span.len()]);
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return; // not present: table invariant broken; nothing to do
            }
            if s as u32 == idx {
                break;
            }
            i = (i + 1) & mask;
        }
        // Backward-shift deletion keeps probe chains intact without tombstones.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let s = self.slots[j];
            if s == EMPTY {
                break;
            }
            let home = (s >> 32) as usize & mask;
            // Move s into the hole if its home is not in (hole, j] cyclically.
            let in_range = if hole <= j {
                home > hole && home <= j
            } else {
                home > hole || home <= j
            };
            if !in_range {
                self.slots[hole] = s;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = EMPTY;
        let class = span.cap() / 8;
        if self.holes.len() <= class {
            self.holes.resize_with(class + 1, Vec::new);
        }
        self.holes[class].push(span.start() as u64);
        self.garbage_bytes += span.cap();
        self.spans[idx as usize] = FREE_SPAN;
        self.free.push(idx);
        self.live -= 1;
    }

    fn grow(&mut self) {
        let new_len = (self.slots.len() * 2).max(16);
        let mut slots = vec![EMPTY; new_len];
        let mask = new_len - 1;
        for &s in &self.slots {
            if s == EMPTY {
                continue;
            }
            let mut i = (s >> 32) as usize & mask;
            while slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            slots[i] = s;
        }
        self.slots = slots;
    }
}

fn round_cap(len: usize) -> usize {
    len.div_ceil(8).max(1) * 8
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn intern_get_remove_reuse() {
        let mut t = NameTable::with_capacity(4, 8);
        let mut ids = Vec::new();
        for i in 0..1000 {
            let (id, new) = t.intern(&format!("vm-{i}")).unwrap();
            assert!(new);
            ids.push(id);
        }
        assert_eq!(t.len(), 1000);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(t.get(&format!("vm-{i}")), Some(*id));
            assert_eq!(t.name(*id), format!("vm-{i}"));
        }
        assert_eq!(t.intern("vm-5").unwrap(), (ids[5], false));
        for i in (0..1000).step_by(2) {
            assert_eq!(t.remove(&format!("vm-{i}")), Some(ids[i]));
        }
        assert_eq!(t.len(), 500);
        for i in 0..1000 {
            let got = t.get(&format!("vm-{i}"));
            if i % 2 == 0 {
                assert_eq!(got, None, "vm-{i} should be gone");
            } else {
                assert_eq!(got, Some(ids[i]));
            }
        }
        let arena_before = t.arena.len();
        // New names reuse freed indices and freed arena space.
        for i in 0..500 {
            let (id, _) = t.intern(&format!("vm-x{i}")).unwrap();
            assert!(id < 1000);
        }
        assert_eq!(t.arena.len(), arena_before);
        assert_eq!(t.index_bound(), 1000);
        for i in (1..1000).step_by(2) {
            assert_eq!(t.name(ids[i]), format!("vm-{i}"));
        }
        assert!(t.intern(&"x".repeat(MAX_NAME_BYTES + 1)).is_none());
        assert!(!t.contains_index(5000));
    }
}
