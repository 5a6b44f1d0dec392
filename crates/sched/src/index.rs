//! Index of ready hosts by free capacity: a 128 × 128 grid of (free memory, free vCPU) buckets on
//! a log scale, with bitmasks of non-empty cells. A request walks only cells whose bucket can
//! hold its demand, tightest first for bin-packing, emptiest first for spreading, so a decision
//! looks at a few dozen hosts whatever the fleet size. Updates on place/remove are O(1).

/// Number of buckets per axis.
pub(crate) const BUCKETS: usize = 128;
const NO_CELL: u16 = u16::MAX;

/// Log-linear bucket of a free amount: exact below 8, then 4 buckets per power of two.
/// Monotone: `a <= b` implies `bucket(a) <= bucket(b)`, so cells below `bucket(demand)` can be
/// skipped without checking (their free amount is certainly smaller than the demand).
pub(crate) fn bucket(amount: i64) -> usize {
    if amount <= 0 {
        return 0;
    }
    let x = amount as u64;
    if x < 8 {
        return x as usize;
    }
    let e = 63 - x.leading_zeros() as usize; // e >= 3
    let sub = ((x >> (e - 2)) & 3) as usize;
    (8 + (e - 3) * 4 + sub).min(BUCKETS - 1)
}

/// Which hosts sit in which (memory, cpu) cell.
#[derive(Clone, Debug)]
pub(crate) struct CapacityIndex {
    cells: Vec<Vec<u32>>,
    row_mask: u128,
    col_masks: Box<[u128; BUCKETS]>,
    host_cell: Vec<u16>,
    host_pos: Vec<u32>,
    len: usize,
}

impl Default for CapacityIndex {
    fn default() -> Self {
        CapacityIndex {
            cells: vec![Vec::new(); BUCKETS * BUCKETS],
            row_mask: 0,
            col_masks: Box::new([0; BUCKETS]),
            host_cell: Vec::new(),
            host_pos: Vec::new(),
            len: 0,
        }
    }
}

/// Walk order over cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// Smallest sufficient free memory first, then smallest sufficient free vCPU (best fit).
    Tightest,
    /// Largest free memory first, then largest free vCPU (worst fit).
    Emptiest,
}

impl CapacityIndex {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn ensure(&mut self, host: u32) {
        let need = host as usize + 1;
        if self.host_cell.len() < need {
            self.host_cell.resize(need, NO_CELL);
            self.host_pos.resize(need, 0);
        }
    }

    pub(crate) fn contains(&self, host: u32) -> bool {
        self.host_cell
            .get(host as usize)
            .is_some_and(|&c| c != NO_CELL)
    }

    /// Put `host` in the cell for its free (cpu, memory), moving it if it is elsewhere.
    pub(crate) fn upsert(&mut self, host: u32, free_cpu: i64, free_mem: i64) {
        self.ensure(host);
        let cell = (bucket(free_mem) * BUCKETS + bucket(free_cpu)) as u16;
        let cur = self.host_cell[host as usize];
        if cur == cell {
            return;
        }
        if cur != NO_CELL {
            self.take_out(host, cur);
        } else {
            self.len += 1;
        }
        let v = &mut self.cells[cell as usize];
        self.host_pos[host as usize] = v.len() as u32;
        v.push(host);
        self.host_cell[host as usize] = cell;
        let (row, col) = (cell as usize / BUCKETS, cell as usize % BUCKETS);
        self.row_mask |= 1u128 << row;
        self.col_masks[row] |= 1u128 << col;
    }

    /// Remove `host` from the index (not schedulable).
    pub(crate) fn remove(&mut self, host: u32) {
        let Some(&cur) = self.host_cell.get(host as usize) else {
            return;
        };
        if cur == NO_CELL {
            return;
        }
        self.take_out(host, cur);
        self.host_cell[host as usize] = NO_CELL;
        self.len -= 1;
    }

    fn take_out(&mut self, host: u32, cell: u16) {
        let pos = self.host_pos[host as usize] as usize;
        let v = &mut self.cells[cell as usize];
        v.swap_remove(pos);
        if let Some(&moved) = v.get(pos) {
            self.host_pos[moved as usize] = pos as u32;
        }
        if v.is_empty() {
            let (row, col) = (cell as usize / BUCKETS, cell as usize % BUCKETS);
            self.col_masks[row] &= !(1u128 << col);
            if self.col_masks[row] == 0 {
                self.row_mask &= !(1u128 << row);
            }
        }
    }

    /// Visit hosts that may hold (cpu, memory) in `order`, each cell starting at a position
    /// derived from `salt` (sampling within equally good hosts). `visit` returns `false` to stop.
    pub(crate) fn walk(
        &self,
        min_cpu: i64,
        min_mem: i64,
        order: Order,
        salt: u64,
        mut visit: impl FnMut(u32) -> bool,
    ) {
        let (r0, c0) = (bucket(min_mem), bucket(min_cpu));
        let row_ok = self.row_mask & (!0u128 << r0);
        let mut rows = row_ok;
        while rows != 0 {
            let row = match order {
                Order::Tightest => rows.trailing_zeros() as usize,
                Order::Emptiest => 127 - rows.leading_zeros() as usize,
            };
            rows &= !(1u128 << row);
            let mut cols = self.col_masks[row] & (!0u128 << c0);
            while cols != 0 {
                let col = match order {
                    Order::Tightest => cols.trailing_zeros() as usize,
                    Order::Emptiest => 127 - cols.leading_zeros() as usize,
                };
                cols &= !(1u128 << col);
                let cell = &self.cells[row * BUCKETS + col];
                let n = cell.len();
                let start = (salt % n as u64) as usize;
                for k in 0..n {
                    let mut i = start + k;
                    if i >= n {
                        i -= n;
                    }
                    if !visit(cell[i]) {
                        return;
                    }
                }
            }
        }
    }

    /// Every indexed host, for consistency checks.
    #[cfg(test)]
    pub(crate) fn cell_of(&self, host: u32) -> Option<(usize, usize)> {
        let c = *self.host_cell.get(host as usize)?;
        (c != NO_CELL).then_some((c as usize / BUCKETS, c as usize % BUCKETS))
    }

    /// Check that `host` sits in the cell matching (cpu, mem) and the masks agree.
    pub(crate) fn check_host(&self, host: u32, free_cpu: i64, free_mem: i64) -> bool {
        let Some(&c) = self.host_cell.get(host as usize) else {
            return false;
        };
        if c == NO_CELL {
            return false;
        }
        let want = (bucket(free_mem) * BUCKETS + bucket(free_cpu)) as u16;
        let pos = self.host_pos[host as usize] as usize;
        let (row, col) = (c as usize / BUCKETS, c as usize % BUCKETS);
        c == want
            && self.cells[c as usize].get(pos) == Some(&host)
            && self.row_mask & (1u128 << row) != 0
            && self.col_masks[row] & (1u128 << col) != 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bucket_is_monotone_and_bounded() {
        let mut prev = 0;
        for x in (0..1_000_000i64).step_by(7).chain([i64::MAX, 1 << 40]) {
            let b = bucket(x);
            assert!(b >= prev || x == 1 << 40, "x={x}");
            assert!(b < BUCKETS);
            prev = b;
        }
        assert_eq!(bucket(-5), 0);
        assert_eq!(bucket(7), 7);
        assert_eq!(bucket(8), 8);
        assert!(bucket(4096) < bucket(6000));
    }

    #[test]
    fn walk_tightest_skips_too_small_and_orders_best_fit() {
        let mut ix = CapacityIndex::default();
        // host i has free mem 1000*(i+1), free cpu 64000.
        for i in 0..10u32 {
            ix.upsert(i, 64_000, 1000 * (i as i64 + 1));
        }
        let mut seen = Vec::new();
        ix.walk(1000, 4500, Order::Tightest, 0, |h| {
            seen.push(h);
            true
        });
        // Hosts 0..=2 (1000..3000 MiB) are in lower buckets and never visited.
        assert!(seen.iter().all(|&h| h >= 3), "{seen:?}");
        assert!(seen.contains(&9));
        // Best fit first: the first visited host has the smallest free memory among those >= 4500
        // in bucket order.
        let free = |h: u32| 1000 * (h as i64 + 1);
        for w in seen.windows(2) {
            assert!(bucket(free(w[0])) <= bucket(free(w[1])));
        }
        let mut emptiest = Vec::new();
        ix.walk(0, 0, Order::Emptiest, 0, |h| {
            emptiest.push(h);
            emptiest.is_empty()
        });
        // Hosts 8 (9000) and 9 (10000) share the top bucket; either may come first.
        assert_eq!(emptiest.len(), 1);
        assert_eq!(bucket(free(emptiest[0])), bucket(10_000));
        ix.remove(9);
        ix.upsert(8, 64_000, 10);
        assert!(ix.check_host(8, 64_000, 10));
        assert!(!ix.contains(9));
        assert_eq!(ix.len(), 9);
        assert_eq!(ix.cell_of(8), Some((bucket(10), bucket(64_000))));
    }
}
