//! First-fit-decreasing, the packing reference the scheduler is measured against: sort the VMs
//! by size (sum of demands normalised by the mean host capacity), largest first, and put each on
//! the lowest-numbered ready host where it fits and breaks no hard rule (selectors, group spread
//! and affinity). Offline: it sees the whole set at once, which an online scheduler never does.
//! Max-trees over free capacity (one per selector set) find the first fit in O(log n) steps.

use crate::model::{GroupRule, HostSpec, HostState, LabelSelector, Level, SelectorOp};
use serde::Serialize;
use std::collections::HashMap;

/// One VM for FFD, compact because the reference run packs ten million of them.
#[derive(Clone, Copy, Debug)]
pub struct FfdItem {
    /// vCPU in thousandths, memory MiB, disk GiB.
    pub demand: [u32; 3],
    /// Index into the selector-set table.
    pub selector_set: u32,
    /// Group index, or `u32::MAX` for none.
    pub group: u32,
}

/// FFD outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FfdResult {
    /// Hosts holding at least one VM.
    pub hosts_used: usize,
    /// VMs FFD could not place.
    pub unplaced: usize,
}

/// Max-tree over the free capacity of a subset of hosts (in host order).
struct MaxTree {
    size: usize,
    nodes: Vec<[i64; 3]>,
    hosts: Vec<u32>,
}

impl MaxTree {
    fn new(hosts: Vec<u32>, free: &[[i64; 3]]) -> Self {
        let size = hosts.len().next_power_of_two().max(1);
        let mut nodes = vec![[i64::MIN; 3]; 2 * size];
        for (i, &h) in hosts.iter().enumerate() {
            nodes[size + i] = free[h as usize];
        }
        for n in (1..size).rev() {
            nodes[n] = max3(nodes[2 * n], nodes[2 * n + 1]);
        }
        MaxTree { size, nodes, hosts }
    }

    fn update(&mut self, pos: usize, free: [i64; 3]) {
        let mut n = self.size + pos;
        self.nodes[n] = free;
        while n > 1 {
            n /= 2;
            self.nodes[n] = max3(self.nodes[2 * n], self.nodes[2 * n + 1]);
        }
    }

    /// Leftmost position whose free covers `d` and passes `ok`.
    fn find(&self, d: [i64; 3], ok: &mut impl FnMut(u32) -> bool) -> Option<usize> {
        self.descend(1, d, ok)
    }

    fn descend(&self, n: usize, d: [i64; 3], ok: &mut impl FnMut(u32) -> bool) -> Option<usize> {
        let m = self.nodes[n];
        if m[0] < d[0] || m[1] < d[1] || m[2] < d[2] {
            return None;
        }
        if n >= self.size {
            let pos = n - self.size;
            return (pos < self.hosts.len() && ok(self.hosts[pos])).then_some(pos);
        }
        self.descend(2 * n, d, ok)
            .or_else(|| self.descend(2 * n + 1, d, ok))
    }
}

fn max3(a: [i64; 3], b: [i64; 3]) -> [i64; 3] {
    [a[0].max(b[0]), a[1].max(b[1]), a[2].max(b[2])]
}

fn matches(h: &HostSpec, sels: &[LabelSelector]) -> bool {
    sels.iter().all(|s| {
        let v = match s.key.as_str() {
            "region" => Some(h.domain.region.as_str()),
            "zone" => Some(h.domain.zone.as_str()),
            "rack" => Some(h.domain.rack.as_str()),
            k => h.labels.get(k).map(String::as_str),
        };
        match &s.op {
            SelectorOp::In(vs) => v.is_some_and(|v| vs.iter().any(|x| x == v)),
            SelectorOp::NotIn(vs) => v.is_none_or(|v| !vs.iter().any(|x| x == v)),
            SelectorOp::Exists => v.is_some(),
            SelectorOp::DoesNotExist => v.is_none(),
        }
    })
}

/// Pack `items` onto the ready `hosts` by first-fit-decreasing. `selector_sets[i]` are the hard
/// selectors of items with `selector_set == i`; `groups[g]` the rules of group `g`.
pub fn first_fit_decreasing(
    hosts: &[HostSpec],
    selector_sets: &[Vec<LabelSelector>],
    groups: &[Vec<GroupRule>],
    items: &mut [FfdItem],
) -> FfdResult {
    let n = hosts.len();
    let free: Vec<[i64; 3]> = hosts
        .iter()
        .map(|h| {
            if h.state != HostState::Ready {
                return [i64::MIN / 4; 3];
            }
            [
                (h.capacity.cpu_millis as f64 * h.overcommit.cpu).floor() as i64,
                (h.capacity.memory_mib as f64 * h.overcommit.memory).floor() as i64,
                (h.capacity.disk_gib as f64 * h.overcommit.disk).floor() as i64,
            ]
        })
        .collect();
    // Domain ids per host and level.
    let mut ids: HashMap<(u8, String), u32> = HashMap::new();
    let mut doms = vec![[0u32; 4]; n];
    let mut domain_hosts: HashMap<(u8, u32), Vec<u32>> = HashMap::new();
    for (i, h) in hosts.iter().enumerate() {
        for l in Level::ALL {
            let key = match l {
                Level::Host => h.name.clone(),
                Level::Rack => format!("{}/{}/{}", h.domain.region, h.domain.zone, h.domain.rack),
                Level::Zone => format!("{}/{}", h.domain.region, h.domain.zone),
                Level::Region => h.domain.region.clone(),
            };
            let next = ids.len() as u32;
            let id = *ids.entry((l as u8, key)).or_insert(next);
            doms[i][l as usize] = id;
            domain_hosts
                .entry((l as u8, id))
                .or_default()
                .push(i as u32);
        }
    }
    // Bins largest first (the usual FFD variant for bins of several sizes), then by index.
    let mut ready: Vec<usize> = (0..n)
        .filter(|&i| hosts[i].state == HostState::Ready)
        .collect();
    let mut mean = [1.0f64; 3];
    if !ready.is_empty() {
        for d in 0..3 {
            mean[d] = ready.iter().map(|&i| free[i][d] as f64).sum::<f64>() / ready.len() as f64;
            if mean[d] <= 0.0 {
                mean[d] = 1.0;
            }
        }
    }
    let bin_size = |i: usize| -> f64 { (0..3).map(|d| free[i][d] as f64 / mean[d]).sum() };
    ready.sort_by(|&a, &b| bin_size(b).total_cmp(&bin_size(a)).then(a.cmp(&b)));
    let key = |it: &FfdItem| -> f64 { (0..3).map(|d| f64::from(it.demand[d]) / mean[d]).sum() };
    items.sort_by(|a, b| key(b).total_cmp(&key(a)).then(b.demand.cmp(&a.demand)));

    let mut st = State {
        hosts,
        selector_sets,
        free,
        doms,
        trees: HashMap::new(),
        tree_of_host: vec![Vec::new(); n],
        members: HashMap::new(),
        affinity_home: HashMap::new(),
        vms_on: vec![0u32; n],
        ready,
    };
    // Hard-affinity groups are packed as a gang when their largest member comes up: the first
    // domain (in bin order) that holds all members gets them all.
    let affinity_level = |g: u32| -> Option<Level> {
        groups.get(g as usize)?.iter().find_map(|r| match *r {
            GroupRule::Affinity { level, hard: true } => Some(level),
            _ => None,
        })
    };
    let mut gangs: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        if it.group != u32::MAX && affinity_level(it.group).is_some() {
            gangs.entry(it.group).or_default().push(i);
        }
    }
    let mut done = vec![false; items.len()];
    let mut unplaced = 0usize;
    for i in 0..items.len() {
        if done[i] {
            continue;
        }
        let it = items[i];
        let rules: &[GroupRule] = if it.group == u32::MAX {
            &[]
        } else {
            groups.get(it.group as usize).map_or(&[], |v| v)
        };
        if let (Some(level), Some(gang)) = (affinity_level(it.group), gangs.get(&it.group))
            && !st.affinity_home.contains_key(&(it.group, level as u8))
        {
            match st.place_gang(items, gang, rules, level, &domain_hosts) {
                Some(()) => {}
                None => unplaced += gang.len(),
            }
            for &m in gang {
                done[m] = true;
            }
            continue;
        }
        done[i] = true;
        match st.first_fit(&it, rules, &domain_hosts, &[]) {
            Some(h) => st.put(h, &it, rules),
            None => unplaced += 1,
        }
    }
    FfdResult {
        hosts_used: st.vms_on.iter().filter(|&&c| c > 0).count(),
        unplaced,
    }
}

struct State<'a> {
    hosts: &'a [HostSpec],
    selector_sets: &'a [Vec<LabelSelector>],
    free: Vec<[i64; 3]>,
    doms: Vec<[u32; 4]>,
    trees: HashMap<u32, MaxTree>,
    tree_of_host: Vec<Vec<(u32, u32)>>,
    /// (group, level, domain) -> members, for hard spread rules.
    members: HashMap<(u32, u8, u32), u32>,
    /// Domain of each hard-affinity group, by (group, level).
    affinity_home: HashMap<(u32, u8), u32>,
    vms_on: Vec<u32>,
    /// Ready hosts in bin order.
    ready: Vec<usize>,
}

impl State<'_> {
    fn sels(&self, set: u32) -> &[LabelSelector] {
        self.selector_sets
            .get(set as usize)
            .map_or(&[][..], |v| v.as_slice())
    }

    fn ensure_tree(&mut self, set: u32) {
        if self.trees.contains_key(&set) {
            return;
        }
        let sels = self.sels(set);
        let hs: Vec<u32> = self
            .ready
            .iter()
            .filter(|&&i| matches(&self.hosts[i], sels))
            .map(|&i| i as u32)
            .collect();
        for (pos, &h) in hs.iter().enumerate() {
            self.tree_of_host[h as usize].push((set, pos as u32));
        }
        let t = MaxTree::new(hs, &self.free);
        self.trees.insert(set, t);
    }

    fn group_ok(&self, h: u32, g: u32, rules: &[GroupRule]) -> bool {
        rules.iter().all(|r| match *r {
            GroupRule::Spread {
                level,
                max_per_domain,
                hard: true,
            } => {
                self.members
                    .get(&(g, level as u8, self.doms[h as usize][level as usize]))
                    .copied()
                    .unwrap_or(0)
                    < max_per_domain
            }
            _ => true,
        })
    }

    /// First host (bin order) that takes `it`, honouring a known affinity home and skipping
    /// hosts whose `avoid_level` domain is in `avoid`.
    fn first_fit(
        &mut self,
        it: &FfdItem,
        rules: &[GroupRule],
        domain_hosts: &HashMap<(u8, u32), Vec<u32>>,
        avoid: &[(u8, u32)],
    ) -> Option<u32> {
        self.ensure_tree(it.selector_set);
        let d = [
            i64::from(it.demand[0]),
            i64::from(it.demand[1]),
            i64::from(it.demand[2]),
        ];
        let g = it.group;
        for r in rules {
            if let GroupRule::Affinity { level, hard: true } = *r
                && let Some(&dom) = self.affinity_home.get(&(g, level as u8))
            {
                let sels = self.sels(it.selector_set);
                let list = domain_hosts.get(&(level as u8, dom))?;
                return list.iter().copied().find(|&h| {
                    let f = self.free[h as usize];
                    self.hosts[h as usize].state == HostState::Ready
                        && f[0] >= d[0]
                        && f[1] >= d[1]
                        && f[2] >= d[2]
                        && matches(&self.hosts[h as usize], sels)
                        && self.group_ok(h, g, rules)
                });
            }
        }
        let tree = &self.trees[&it.selector_set];
        let mut ok = |h: u32| {
            let f = self.free[h as usize];
            f[0] >= d[0]
                && f[1] >= d[1]
                && f[2] >= d[2]
                && self.group_ok(h, g, rules)
                && !avoid
                    .iter()
                    .any(|&(l, dom)| self.doms[h as usize][l as usize] == dom)
        };
        tree.find(d, &mut ok).map(|pos| tree.hosts[pos])
    }

    fn put(&mut self, h: u32, it: &FfdItem, rules: &[GroupRule]) {
        for k in 0..3 {
            self.free[h as usize][k] -= i64::from(it.demand[k]);
        }
        self.vms_on[h as usize] += 1;
        let g = it.group;
        for l in Level::ALL {
            if rules
                .iter()
                .any(|r| matches!(*r, GroupRule::Spread { level, hard: true, .. } if level == l))
            {
                *self
                    .members
                    .entry((g, l as u8, self.doms[h as usize][l as usize]))
                    .or_default() += 1;
            }
        }
        for r in rules {
            if let GroupRule::Affinity { level, hard: true } = *r {
                self.affinity_home
                    .entry((g, level as u8))
                    .or_insert(self.doms[h as usize][level as usize]);
            }
        }
        let free = self.free[h as usize];
        for &(set, pos) in &self.tree_of_host[h as usize] {
            if let Some(t) = self.trees.get_mut(&set) {
                t.update(pos as usize, free);
            }
        }
    }

    fn unput(&mut self, h: u32, it: &FfdItem, rules: &[GroupRule]) {
        for k in 0..3 {
            self.free[h as usize][k] += i64::from(it.demand[k]);
        }
        self.vms_on[h as usize] -= 1;
        let g = it.group;
        for l in Level::ALL {
            if rules
                .iter()
                .any(|r| matches!(*r, GroupRule::Spread { level, hard: true, .. } if level == l))
                && let Some(c) =
                    self.members
                        .get_mut(&(g, l as u8, self.doms[h as usize][l as usize]))
            {
                *c -= 1;
            }
        }
        let free = self.free[h as usize];
        for &(set, pos) in &self.tree_of_host[h as usize] {
            if let Some(t) = self.trees.get_mut(&set) {
                t.update(pos as usize, free);
            }
        }
    }

    /// Place every member of a hard-affinity group in the first domain that holds them all.
    fn place_gang(
        &mut self,
        items: &[FfdItem],
        gang: &[usize],
        rules: &[GroupRule],
        level: Level,
        domain_hosts: &HashMap<(u8, u32), Vec<u32>>,
    ) -> Option<()> {
        let first = items[gang[0]];
        let g = first.group;
        let mut avoid: Vec<(u8, u32)> = Vec::new();
        // Bounded retries keep FFD's cost in check on pathological inputs.
        for _ in 0..256 {
            let h = self.first_fit(&first, rules, domain_hosts, &avoid)?;
            let dom = self.doms[h as usize][level as usize];
            self.put(h, &first, rules);
            let mut placed = vec![(h, gang[0])];
            let mut ok = true;
            for &m in &gang[1..] {
                match self.first_fit(&items[m], rules, domain_hosts, &[]) {
                    Some(hm) => {
                        self.put(hm, &items[m], rules);
                        placed.push((hm, m));
                    }
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                return Some(());
            }
            for &(hp, m) in placed.iter().rev() {
                self.unput(hp, &items[m], rules);
            }
            self.affinity_home.remove(&(g, level as u8));
            avoid.push((level as u8, dom));
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{FailureDomain, Resources};

    #[test]
    fn ffd_packs_decreasing_first_fit() {
        let dom = FailureDomain {
            region: "r".into(),
            zone: "z".into(),
            rack: "k".into(),
        };
        let hosts: Vec<HostSpec> = (0..4)
            .map(|i| {
                HostSpec::new(
                    format!("h{i}"),
                    Resources::new(10, 10_240, 1000),
                    dom.clone(),
                )
            })
            .collect();
        // 6 + 4 fit one host, 5 + 5 another, 3 + 3 + 3 a third: FFD finds 3 hosts.
        let sizes = [3u32, 5, 6, 3, 4, 5, 3];
        let mut items: Vec<FfdItem> = sizes
            .iter()
            .map(|&s| FfdItem {
                demand: [s * 1000, s * 1024, 1],
                selector_set: 0,
                group: u32::MAX,
            })
            .collect();
        let r = first_fit_decreasing(&hosts, &[vec![]], &[], &mut items);
        assert_eq!(
            r,
            FfdResult {
                hosts_used: 3,
                unplaced: 0
            }
        );
        // Anti-affinity: three members of one group need three hosts even though they are tiny.
        let mut items: Vec<FfdItem> = (0..3)
            .map(|_| FfdItem {
                demand: [1000, 1024, 1],
                selector_set: 0,
                group: 0,
            })
            .collect();
        let r = first_fit_decreasing(
            &hosts,
            &[vec![]],
            &[vec![GroupRule::anti_affinity(Level::Host, true)]],
            &mut items,
        );
        assert_eq!(r.hosts_used, 3);
        let mut items = vec![FfdItem {
            demand: [11_000, 1, 1],
            selector_set: 0,
            group: u32::MAX,
        }];
        assert_eq!(
            first_fit_decreasing(&hosts, &[vec![]], &[], &mut items).unplaced,
            1
        );
    }
}
