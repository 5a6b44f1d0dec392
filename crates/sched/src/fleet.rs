//! In-memory fleet state behind the scheduler: hosts with free capacity, resident VMs, groups
//! with per-domain member counts, interned label sets and constraint profiles, and the capacity
//! index. Every change is incremental (O(1) or O(group size)); `verify` recomputes it all from
//! the VM records to prove the increments right.

use crate::index::CapacityIndex;
use crate::model::{FailureDomain, GroupRule, HostSpec, HostState, Level, Overcommit, Resources};
use crate::names::NameTable;
use std::collections::{BTreeMap, HashMap};

/// Marker for "no index".
pub(crate) const NONE: u32 = u32::MAX;

/// Data touched for every candidate host: kept small and contiguous.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HostHot {
    /// Free (effective capacity − used) per dimension; negative when overcommitted by a restore.
    pub free: [i64; 3],
    pub labelset: u32,
    pub ready: bool,
}

/// Everything else about a host.
#[derive(Clone, Debug)]
pub(crate) struct HostCold {
    pub present: bool,
    /// Capacity × overcommit, per dimension.
    pub capacity: [i64; 3],
    pub physical: Resources,
    pub overcommit: Overcommit,
    pub labels: BTreeMap<String, String>,
    pub domain: FailureDomain,
    /// Domain ids by level (index 0 = the host itself).
    pub domains: [u32; 4],
    pub state: HostState,
    pub vms: Vec<u32>,
}

/// A resident VM.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VmRec {
    pub host: u32,
    /// Position in its host's `vms` list.
    pub pos: u32,
    pub demand: [u32; 3],
    pub profile: u32,
}

const FREE_VM: VmRec = VmRec {
    host: NONE,
    pos: 0,
    demand: [0; 3],
    profile: 0,
};

/// Selector with interned strings; `NONE` stands for a string no host has.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RSel {
    pub key: u32,
    pub op: ROp,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ROp {
    In(Box<[u32]>),
    NotIn(Box<[u32]>),
    Exists,
    DoesNotExist,
}

/// A term relative to a group (resolved).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RTerm {
    pub group: u32,
    pub level: Level,
    pub hard: bool,
}

/// The constraints a resident VM carries, shared by all VMs with the same ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct ProfileKey {
    pub selectors: Box<[RSel]>,
    pub member_of: Box<[u32]>,
    pub near: Box<[RTerm]>,
    pub away: Box<[RTerm]>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Profile {
    pub key: ProfileKey,
    pub refs: u32,
}

/// A group of VMs.
#[derive(Clone, Debug, Default)]
pub(crate) struct GroupRec {
    /// Fixed by the first member; cleared when the last member leaves.
    pub rules: Option<Box<[GroupRule]>>,
    pub members: u32,
    /// Profiles referencing this group (as member or as target of a term).
    pub refs: u32,
    /// Sorted `(level << 32 | domain, members there)`.
    pub counts: Vec<(u64, u32)>,
    /// Sorted `(level << 32 | domain, VMs with a hard anti-affinity term to this group there)`.
    pub repel: Vec<(u64, u32)>,
    /// Bit per level with any repel entry.
    pub repel_levels: u8,
}

pub(crate) fn domain_key(level: Level, domain: u32) -> u64 {
    ((level.index() as u64) << 32) | u64::from(domain)
}

fn count_in(v: &[(u64, u32)], key: u64) -> u32 {
    match v.binary_search_by_key(&key, |e| e.0) {
        Ok(i) => v[i].1,
        Err(_) => 0,
    }
}

fn bump(v: &mut Vec<(u64, u32)>, key: u64, up: bool) {
    match v.binary_search_by_key(&key, |e| e.0) {
        Ok(i) => {
            if up {
                v[i].1 += 1;
            } else if v[i].1 <= 1 {
                v.remove(i);
            } else {
                v[i].1 -= 1;
            }
        }
        Err(i) => {
            if up {
                v.insert(i, (key, 1));
            }
        }
    }
}

impl GroupRec {
    pub(crate) fn count(&self, level: Level, domain: u32) -> u32 {
        count_in(&self.counts, domain_key(level, domain))
    }

    pub(crate) fn repelled(&self, level: Level, domain: u32) -> u32 {
        if self.repel_levels & (1 << level.index()) == 0 {
            return 0;
        }
        count_in(&self.repel, domain_key(level, domain))
    }

    /// Domains of `level` where the group has members.
    pub(crate) fn domains_at(&self, level: Level) -> impl Iterator<Item = (u32, u32)> + '_ {
        let lo = domain_key(level, 0);
        let hi = domain_key(level, u32::MAX);
        let start = self.counts.partition_point(|e| e.0 < lo);
        self.counts[start..]
            .iter()
            .take_while(move |e| e.0 <= hi)
            .map(|e| (e.0 as u32, e.1))
    }
}

/// The whole fleet.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fleet {
    pub host_names: NameTable,
    pub hot: Vec<HostHot>,
    pub cold: Vec<HostCold>,
    /// Ready hosts holding VMs, by free capacity.
    pub index: CapacityIndex,
    /// Ready empty hosts, by free (= whole) capacity: bin-packing opens the largest first.
    pub empty: CapacityIndex,
    pub label_strs: NameTable,
    pub labelsets: Vec<Box<[(u32, u32)]>>,
    labelset_ids: HashMap<Box<[(u32, u32)]>, u32>,
    /// Index 0 (host level) unused.
    pub domain_names: [NameTable; 4],
    pub domain_hosts: [Vec<Vec<u32>>; 4],
    pub vm_names: NameTable,
    pub vms: Vec<VmRec>,
    pub group_names: NameTable,
    pub groups: Vec<GroupRec>,
    pub profiles: Vec<Profile>,
    profile_ids: HashMap<ProfileKey, u32>,
    free_profiles: Vec<u32>,
    /// Hosts holding at least one VM.
    pub hosts_used: usize,
    /// Resident VMs whose selectors require each (key, value) label.
    label_demand: HashMap<(u32, u32), u64>,
    /// Resident VMs with any selector.
    vms_with_selectors: u64,
    /// Per label set: how much of its labels' supply the selector demand claims, 0..=1
    /// (refreshed every `SCARCITY_REFRESH` attaches).
    pub scarcity: Vec<f32>,
    attaches_since_refresh: u32,
    /// Ready hosts per label set, recounted when `ready_dirty` (host changes are rare).
    ready_per_set: Vec<u64>,
    ready_dirty: bool,
}

/// Attaches between refreshes of the scarcity table.
const SCARCITY_REFRESH: u32 = 4096;

/// (members, per-domain counts, per-domain repellers) recomputed by `verify`.
type RecountedGroup = (u32, Vec<(u64, u32)>, Vec<(u64, u32)>);

/// Reserved selector keys that match failure-domain names.
pub(crate) const DOMAIN_KEYS: [&str; 3] = ["rack", "zone", "region"];

impl Fleet {
    pub(crate) fn with_capacity(hosts: usize, vms: usize) -> Self {
        let mut f = Fleet {
            host_names: NameTable::with_capacity(hosts, 12),
            vm_names: NameTable::with_capacity(vms, 12),
            vms: Vec::with_capacity(vms),
            hot: Vec::with_capacity(hosts),
            cold: Vec::with_capacity(hosts),
            // Room for a group per 16 VMs up front: growing these tables mid-run would stall
            // one decision for the copy.
            group_names: NameTable::with_capacity(vms / 16, 12),
            groups: Vec::with_capacity(vms / 16),
            profiles: Vec::with_capacity(vms / 16),
            profile_ids: HashMap::with_capacity(vms / 16),
            ..Default::default()
        };
        // Profile 0: no constraints, shared by every unconstrained VM.
        f.profiles.push(Profile::default());
        f.profile_ids.insert(ProfileKey::default(), 0);
        f
    }

    pub(crate) fn host_name(&self, h: u32) -> &str {
        self.host_names.name(h)
    }

    pub(crate) fn domain_of(&self, host: u32, level: Level) -> u32 {
        self.cold[host as usize].domains[level.index()]
    }

    /// Display name of a domain: `region/zone/rack` path or the host name.
    pub(crate) fn domain_display(&self, level: Level, domain: u32) -> String {
        match level {
            Level::Host => self.host_name(domain).to_string(),
            _ => self.domain_names[level.index()]
                .name(domain)
                .replace('\u{1f}', "/"),
        }
    }

    fn intern_labelset(&mut self, labels: &BTreeMap<String, String>, d: &FailureDomain) -> u32 {
        let mut set: Vec<(u32, u32)> = Vec::with_capacity(labels.len() + 3);
        let mut push = |t: &mut NameTable, k: &str, v: &str| {
            // Label strings are bounded by MAX_NAME_BYTES upstream (validated in upsert_host).
            if let (Some((k, _)), Some((v, _))) = (t.intern(k), t.intern(v)) {
                set.push((k, v));
            }
        };
        for (k, v) in labels {
            if !DOMAIN_KEYS.contains(&k.as_str()) {
                push(&mut self.label_strs, k, v);
            }
        }
        push(&mut self.label_strs, "region", &d.region);
        push(&mut self.label_strs, "zone", &d.zone);
        push(&mut self.label_strs, "rack", &d.rack);
        set.sort_unstable();
        let set = set.into_boxed_slice();
        if let Some(&id) = self.labelset_ids.get(&set) {
            return id;
        }
        let id = self.labelsets.len() as u32;
        self.labelsets.push(set.clone());
        self.labelset_ids.insert(set, id);
        id
    }

    fn intern_domains(&mut self, host: u32, d: &FailureDomain) -> [u32; 4] {
        let sep = '\u{1f}';
        let paths = [
            String::new(),
            format!("{}{sep}{}{sep}{}", d.region, d.zone, d.rack),
            format!("{}{sep}{}", d.region, d.zone),
            d.region.clone(),
        ];
        let mut ids = [host, 0, 0, 0];
        for l in 1..4 {
            // Paths are bounded: each part was length-checked by the caller.
            ids[l] = self.domain_names[l].intern(&paths[l]).map_or(0, |x| x.0);
        }
        ids
    }

    /// Add or update a host. Returns the host index.
    pub(crate) fn upsert_host(&mut self, spec: &HostSpec) -> Option<u32> {
        self.ready_dirty = true;
        let (h, new) = self.host_names.intern(&spec.name)?;
        let cap = [
            scaled(spec.capacity.cpu_millis, spec.overcommit.cpu),
            scaled(spec.capacity.memory_mib, spec.overcommit.memory),
            scaled(spec.capacity.disk_gib, spec.overcommit.disk),
        ];
        let labelset = self.intern_labelset(&spec.labels, &spec.domain);
        let domains = self.intern_domains(h, &spec.domain);
        let hi = h as usize;
        if hi >= self.cold.len() {
            self.hot.resize(hi + 1, HostHot::default());
            self.cold.resize(
                hi + 1,
                HostCold {
                    present: false,
                    capacity: [0; 3],
                    physical: Resources::default(),
                    overcommit: Overcommit::default(),
                    labels: BTreeMap::new(),
                    domain: FailureDomain::default(),
                    domains: [0; 4],
                    state: HostState::Down,
                    vms: Vec::new(),
                },
            );
        }
        let mut used = [0i64; 3];
        if !new {
            let old = &self.cold[hi];
            for d in 0..3 {
                used[d] = old.capacity[d] - self.hot[hi].free[d];
            }
            if old.domains != domains && !old.vms.is_empty() {
                // Moving a host with VMs to another domain changes group counts: re-attach.
                let vms = old.vms.clone();
                for &v in &vms {
                    self.detach_groups(v, h);
                }
                self.set_domains(h, domains);
                for &v in &vms {
                    self.attach_groups(v, h);
                }
            } else {
                self.set_domains(h, domains);
            }
        } else {
            self.set_domains(h, domains);
        }
        let c = &mut self.cold[hi];
        c.present = true;
        c.capacity = cap;
        c.physical = spec.capacity;
        c.overcommit = spec.overcommit;
        c.labels = spec.labels.clone();
        c.domain = spec.domain.clone();
        c.state = spec.state;
        self.hot[hi] = HostHot {
            free: [cap[0] - used[0], cap[1] - used[1], cap[2] - used[2]],
            labelset,
            ready: spec.state == HostState::Ready,
        };
        self.reindex(h);
        Some(h)
    }

    fn set_domains(&mut self, h: u32, domains: [u32; 4]) {
        let old = self.cold[h as usize].domains;
        let was_present = self.cold[h as usize].present;
        for l in 1..4 {
            if was_present {
                if old[l] == domains[l] {
                    continue;
                }
                if let Some(list) = self.domain_hosts[l].get_mut(old[l] as usize) {
                    list.retain(|&x| x != h);
                }
            }
            let list = &mut self.domain_hosts[l];
            if list.len() <= domains[l] as usize {
                list.resize(domains[l] as usize + 1, Vec::new());
            }
            list[domains[l] as usize].push(h);
        }
        self.cold[h as usize].domains = domains;
    }

    /// Remove an empty host.
    pub(crate) fn remove_host(&mut self, h: u32) {
        self.ready_dirty = true;
        self.index.remove(h);
        self.empty.remove(h);
        let domains = self.cold[h as usize].domains;
        for l in 1..4 {
            if let Some(list) = self.domain_hosts[l].get_mut(domains[l] as usize) {
                list.retain(|&x| x != h);
            }
        }
        self.cold[h as usize].present = false;
        self.hot[h as usize].ready = false;
        self.host_names.remove_index(h);
    }

    pub(crate) fn set_state(&mut self, h: u32, state: HostState) {
        self.ready_dirty = true;
        self.cold[h as usize].state = state;
        self.hot[h as usize].ready = state == HostState::Ready;
        self.reindex(h);
    }

    /// Keep the index in step with the host's free capacity and state.
    pub(crate) fn reindex(&mut self, h: u32) {
        let hot = self.hot[h as usize];
        if !hot.ready {
            self.index.remove(h);
            self.empty.remove(h);
        } else if self.cold[h as usize].vms.is_empty() {
            self.index.remove(h);
            self.empty.upsert(h, hot.free[0], hot.free[1]);
        } else {
            self.empty.remove(h);
            self.index.upsert(h, hot.free[0], hot.free[1]);
        }
    }

    /// Intern a profile, taking a reference.
    pub(crate) fn acquire_profile(&mut self, key: ProfileKey) -> u32 {
        if let Some(&id) = self.profile_ids.get(&key) {
            self.profiles[id as usize].refs += 1;
            return id;
        }
        for &g in key.member_of.iter() {
            self.groups[g as usize].refs += 1;
        }
        for t in key.near.iter().chain(key.away.iter()) {
            self.groups[t.group as usize].refs += 1;
        }
        let p = Profile {
            key: key.clone(),
            refs: 1,
        };
        let id = match self.free_profiles.pop() {
            Some(id) => {
                self.profiles[id as usize] = p;
                id
            }
            None => {
                self.profiles.push(p);
                (self.profiles.len() - 1) as u32
            }
        };
        self.profile_ids.insert(key, id);
        id
    }

    /// Drop a reference to a profile, freeing it (and groups nobody references) at zero.
    pub(crate) fn release_profile(&mut self, id: u32) {
        if id == 0 {
            return;
        }
        let p = &mut self.profiles[id as usize];
        p.refs -= 1;
        if p.refs > 0 {
            return;
        }
        let key = std::mem::take(&mut p.key);
        self.profile_ids.remove(&key);
        self.free_profiles.push(id);
        for &g in key.member_of.iter() {
            self.unref_group(g);
        }
        for t in key.near.iter().chain(key.away.iter()) {
            self.unref_group(t.group);
        }
    }

    /// Group index for `name`, creating an empty group (no rules, no refs) if new.
    pub(crate) fn intern_group(&mut self, name: &str) -> Option<u32> {
        let (g, new) = self.group_names.intern(name)?;
        let gi = g as usize;
        if gi >= self.groups.len() {
            self.groups.resize(gi + 1, GroupRec::default());
        }
        if new {
            self.groups[gi] = GroupRec::default();
        }
        Some(g)
    }

    fn unref_group(&mut self, g: u32) {
        let rec = &mut self.groups[g as usize];
        rec.refs -= 1;
        if rec.refs == 0 {
            *rec = GroupRec::default();
            self.group_names.remove_index(g);
        }
    }

    /// Record VM `v` (already in `vms` with `profile` and `demand`) on host `h`.
    pub(crate) fn attach(&mut self, v: u32, h: u32) {
        let rec = self.vms[v as usize];
        let cold = &mut self.cold[h as usize];
        if cold.vms.is_empty() {
            self.hosts_used += 1;
        }
        let pos = cold.vms.len() as u32;
        cold.vms.push(v);
        let vm = &mut self.vms[v as usize];
        vm.host = h;
        vm.pos = pos;
        let hot = &mut self.hot[h as usize];
        for d in 0..3 {
            hot.free[d] -= i64::from(rec.demand[d]);
        }
        self.attach_groups(v, h);
        self.reindex(h);
        self.attaches_since_refresh += 1;
        if self.attaches_since_refresh >= SCARCITY_REFRESH {
            self.refresh_scarcity();
        }
    }

    /// Recompute, per label set, the share of its most demanded label's supply that resident
    /// selector demand claims: demand share (VMs requiring the label / VMs) over supply share
    /// (ready hosts with it / ready hosts), capped at 1. Unconstrained requests steer away from
    /// such hosts so that scarce hosts stay free for the VMs that can run nowhere else.
    pub(crate) fn refresh_scarcity(&mut self) {
        self.attaches_since_refresh = 0;
        self.scarcity.clear();
        self.scarcity.resize(self.labelsets.len(), 0.0);
        let vms = self.vm_names.len().max(1) as f64;
        if self.vms_with_selectors == 0 {
            return;
        }
        let mut supply: HashMap<(u32, u32), u64> = HashMap::new();
        if self.ready_dirty || self.ready_per_set.len() != self.labelsets.len() {
            self.ready_per_set.clear();
            self.ready_per_set.resize(self.labelsets.len(), 0);
            for h in 0..self.hot.len() {
                if self.hot[h].ready {
                    self.ready_per_set[self.hot[h].labelset as usize] += 1;
                }
            }
            self.ready_dirty = false;
        }
        let ready: u64 = self.ready_per_set.iter().sum();
        for (set, &n) in self.ready_per_set.iter().enumerate() {
            if n == 0 {
                continue;
            }
            for &kv in self.labelsets[set].iter() {
                if self.label_demand.get(&kv).is_some_and(|&d| d > 0) {
                    *supply.entry(kv).or_default() += n;
                }
            }
        }
        let ready = ready.max(1) as f64;
        for (set, labels) in self.labelsets.iter().enumerate() {
            let mut worst: f64 = 0.0;
            for kv in labels.iter() {
                let Some(&d) = self.label_demand.get(kv) else {
                    continue;
                };
                let Some(&sup) = supply.get(kv) else { continue };
                if d == 0 || sup == 0 {
                    continue;
                }
                worst = worst.max((d as f64 / vms) / (sup as f64 / ready));
            }
            self.scarcity[set] = worst.min(1.0) as f32;
        }
    }

    /// Take VM `v` off its host (keeps its record and profile).
    pub(crate) fn detach(&mut self, v: u32) -> u32 {
        let rec = self.vms[v as usize];
        let h = rec.host;
        let cold = &mut self.cold[h as usize];
        cold.vms.swap_remove(rec.pos as usize);
        if let Some(&moved) = cold.vms.get(rec.pos as usize) {
            self.vms[moved as usize].pos = rec.pos;
        }
        if cold.vms.is_empty() {
            self.hosts_used -= 1;
        }
        let hot = &mut self.hot[h as usize];
        for d in 0..3 {
            hot.free[d] += i64::from(rec.demand[d]);
        }
        self.detach_groups(v, h);
        self.vms[v as usize].host = NONE;
        self.reindex(h);
        h
    }

    fn attach_groups(&mut self, v: u32, h: u32) {
        self.update_groups(v, h, true);
    }

    fn detach_groups(&mut self, v: u32, h: u32) {
        self.update_groups(v, h, false);
    }

    fn update_groups(&mut self, v: u32, h: u32, up: bool) {
        let profile = self.vms[v as usize].profile;
        if profile == 0 {
            return;
        }
        let domains = self.cold[h as usize].domains;
        let key = &self.profiles[profile as usize].key;
        if !key.selectors.is_empty() {
            if up {
                self.vms_with_selectors += 1;
            } else {
                self.vms_with_selectors -= 1;
            }
            for sel in key.selectors.iter() {
                if let ROp::In(vs) = &sel.op
                    && vs.len() == 1
                {
                    let e = self.label_demand.entry((sel.key, vs[0])).or_default();
                    if up {
                        *e += 1;
                    } else {
                        *e = e.saturating_sub(1);
                    }
                }
            }
        }
        for &g in key.member_of.iter() {
            let rec = &mut self.groups[g as usize];
            if up {
                rec.members += 1;
            } else {
                rec.members -= 1;
            }
            for l in Level::ALL {
                bump(&mut rec.counts, domain_key(l, domains[l.index()]), up);
            }
            if !up && rec.members == 0 {
                rec.rules = None;
            }
        }
        for t in key.away.iter().filter(|t| t.hard) {
            let rec = &mut self.groups[t.group as usize];
            bump(
                &mut rec.repel,
                domain_key(t.level, domains[t.level.index()]),
                up,
            );
            rec.repel_levels = rec
                .repel
                .iter()
                .fold(0u8, |m, e| m | (1 << (e.0 >> 32) as u8));
        }
    }

    /// New VM record (not yet on a host); the caller has checked that `name` is not resident.
    pub(crate) fn new_vm(&mut self, name: &str, demand: [u32; 3], profile: u32) -> Option<u32> {
        let v = self.vm_names.insert_absent(name)?;
        let vi = v as usize;
        if vi >= self.vms.len() {
            self.vms.resize(vi + 1, FREE_VM);
        }
        self.vms[vi] = VmRec {
            host: NONE,
            pos: 0,
            demand,
            profile,
        };
        Some(v)
    }

    /// Forget a VM record (after `detach`).
    pub(crate) fn drop_vm(&mut self, v: u32) {
        let profile = self.vms[v as usize].profile;
        self.vms[v as usize] = FREE_VM;
        self.vm_names.remove_index(v);
        self.release_profile(profile);
    }

    /// Recompute every derived number from the VM records and compare. Returns the first
    /// mismatch found.
    pub(crate) fn verify(&self) -> Result<(), String> {
        let n = self.cold.len();
        let mut used = vec![[0i64; 3]; n];
        let mut count = vec![0usize; n];
        let mut groups: HashMap<u32, RecountedGroup> = HashMap::new();
        let mut profile_refs: HashMap<u32, u32> = HashMap::new();
        for (v, rec) in self.vms.iter().enumerate() {
            if rec.host == NONE {
                continue;
            }
            if !self.vm_names.contains_index(v as u32) {
                return Err(format!("vm record {v} has no name"));
            }
            let h = rec.host as usize;
            if !self.cold[h].present {
                return Err(format!(
                    "vm {} on removed host {h}",
                    self.vm_names.name(v as u32)
                ));
            }
            if self.cold[h].vms.get(rec.pos as usize) != Some(&(v as u32)) {
                return Err(format!(
                    "vm {} position mismatch",
                    self.vm_names.name(v as u32)
                ));
            }
            for d in 0..3 {
                used[h][d] += i64::from(rec.demand[d]);
            }
            count[h] += 1;
            *profile_refs.entry(rec.profile).or_default() += 1;
            let key = &self.profiles[rec.profile as usize].key;
            let domains = self.cold[h].domains;
            for &g in key.member_of.iter() {
                let e = groups.entry(g).or_default();
                e.0 += 1;
                for l in Level::ALL {
                    bump(&mut e.1, domain_key(l, domains[l.index()]), true);
                }
            }
            for t in key.away.iter().filter(|t| t.hard) {
                let e = groups.entry(t.group).or_default();
                bump(
                    &mut e.2,
                    domain_key(t.level, domains[t.level.index()]),
                    true,
                );
            }
        }
        let mut hosts_used = 0;
        for h in 0..n {
            let c = &self.cold[h];
            if !c.present {
                if self.index.contains(h as u32) || self.empty.contains(h as u32) {
                    return Err(format!("removed host {h} still indexed"));
                }
                continue;
            }
            if c.vms.len() != count[h] {
                return Err(format!(
                    "host {} lists {} vms, records say {}",
                    self.host_name(h as u32),
                    c.vms.len(),
                    count[h]
                ));
            }
            if count[h] > 0 {
                hosts_used += 1;
            }
            for d in 0..3 {
                if self.hot[h].free[d] != c.capacity[d] - used[h][d] {
                    return Err(format!(
                        "host {} free[{d}] = {} but capacity − used = {}",
                        self.host_name(h as u32),
                        self.hot[h].free[d],
                        c.capacity[d] - used[h][d]
                    ));
                }
            }
            let ready = c.state == HostState::Ready;
            if self.hot[h].ready != ready {
                return Err(format!(
                    "host {} ready flag out of step",
                    self.host_name(h as u32)
                ));
            }
            let (f0, f1) = (self.hot[h].free[0], self.hot[h].free[1]);
            let indexed_ok = if !ready {
                !self.index.contains(h as u32) && !self.empty.contains(h as u32)
            } else if count[h] == 0 {
                self.empty.check_host(h as u32, f0, f1) && !self.index.contains(h as u32)
            } else {
                self.index.check_host(h as u32, f0, f1) && !self.empty.contains(h as u32)
            };
            if !indexed_ok {
                return Err(format!(
                    "host {} misplaced in the capacity index",
                    self.host_name(h as u32)
                ));
            }
        }
        if hosts_used != self.hosts_used {
            return Err(format!(
                "hosts_used {} but recount {}",
                self.hosts_used, hosts_used
            ));
        }
        for (g, rec) in self.groups.iter().enumerate() {
            if !self.group_names.contains_index(g as u32) {
                continue;
            }
            let (members, counts, repel) = groups.remove(&(g as u32)).unwrap_or_default();
            if rec.members != members || rec.counts != counts || rec.repel != repel {
                return Err(format!(
                    "group {} counts out of step",
                    self.group_names.name(g as u32)
                ));
            }
        }
        if let Some((g, _)) = groups.into_iter().next() {
            return Err(format!("group {g} referenced by VMs but not live"));
        }
        for (id, p) in self.profiles.iter().enumerate() {
            if id == 0 || p.refs == 0 {
                continue;
            }
            let want = profile_refs.get(&(id as u32)).copied().unwrap_or(0);
            if p.refs != want {
                return Err(format!(
                    "profile {id} refs {} but {want} VMs use it",
                    p.refs
                ));
            }
        }
        Ok(())
    }
}

fn scaled(amount: u64, ratio: f64) -> i64 {
    let r = if ratio.is_finite() && ratio > 0.0 {
        ratio
    } else {
        1.0
    };
    (amount as f64 * r).floor().min(i64::MAX as f64 / 4.0) as i64
}
