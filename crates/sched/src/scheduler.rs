//! The scheduler: the control plane's handle on the fleet. It keeps hosts and resident VMs in
//! memory (rebuilt from the store at start, then updated incrementally) and decides placements
//! with the filter/score pipeline over candidates from the capacity index.

use crate::error::{Binding, NoFit, SchedError};
use crate::fleet::{Fleet, NONE, ProfileKey, ROp, RSel, RTerm};
use crate::index::Order;
use crate::model::{
    Dimension, GroupMembership, GroupRule, GroupTerm, HostSpec, HostState, LabelSelector, Level,
    Placement, Request, Resources, SchedulerConfig, SelectorOp, Strategy,
};
use crate::names::MAX_NAME_BYTES;
use crate::pipeline::{
    AffinityFilter, AntiAffinityFilter, BalanceScorer, CapacityFilter, ExcludedFilter, Filter,
    FitScorer, HostStateFilter, HostView, RGroup, RTermReq, RequestContext, ScarcityScorer, Scorer,
    SelectorFilter, SoftConstraintScorer, SpreadFilter,
};
use crate::rng::SplitMix64;
use serde::Serialize;
use std::cell::Cell;

/// Asked before every placement of a request with a tenant; the control plane owns the usage
/// numbers, the scheduler only asks.
pub trait QuotaHook: Send {
    /// `Err(reason)` refuses the placement.
    fn check(&self, tenant: &str, demand: &Resources) -> Result<(), String>;
}

/// A host as the scheduler sees it now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostInfo {
    /// Name.
    pub name: String,
    /// State.
    pub state: HostState,
    /// Effective capacity (physical × overcommit).
    pub capacity: Resources,
    /// Used by resident VMs.
    pub used: Resources,
    /// Resident VMs.
    pub vms: usize,
}

/// Fleet totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FleetStats {
    /// Registered hosts.
    pub hosts: usize,
    /// Hosts in state ready.
    pub ready_hosts: usize,
    /// Hosts holding at least one VM.
    pub hosts_used: usize,
    /// Resident VMs.
    pub vms: usize,
}

/// Placement and rebalancing over an in-memory fleet. Single-threaded by design: one
/// scheduling thread owns it (it is `Send`, not `Sync`).
pub struct Scheduler {
    pub(crate) config: SchedulerConfig,
    pub(crate) fleet: Fleet,
    /// Filters in order; `capacity` stays last so a no-fit names scope first, then capacity.
    pub(crate) filters: Vec<Box<dyn Filter>>,
    pub(crate) scorers: Vec<(Box<dyn Scorer>, f64)>,
    quota: Option<Box<dyn QuotaHook>>,
    rng: Cell<u64>,
}

/// Hard-affinity candidate sets up to this many hosts are enumerated directly instead of
/// walking the index.
const DIRECT_ENUMERATION_MAX: usize = 4096;

/// A walk examining `max_examined × GIVE_UP_FACTOR` hosts without a feasible one stops.
const GIVE_UP_FACTOR: u32 = 16;

impl Scheduler {
    /// An empty fleet.
    pub fn new(config: SchedulerConfig) -> Self {
        Self::with_capacity(config, 0, 0)
    }

    /// An empty fleet with room reserved for `hosts` hosts and `vms` VMs (avoids rehashing
    /// while a large fleet is loaded).
    pub fn with_capacity(config: SchedulerConfig, hosts: usize, vms: usize) -> Self {
        let w = config.weights;
        Scheduler {
            config,
            fleet: Fleet::with_capacity(hosts, vms),
            filters: vec![
                Box::new(HostStateFilter),
                Box::new(ExcludedFilter),
                Box::new(SelectorFilter),
                Box::new(AffinityFilter),
                Box::new(SpreadFilter),
                Box::new(AntiAffinityFilter),
                Box::new(CapacityFilter),
            ],
            scorers: vec![
                (Box::new(FitScorer), w.fit),
                (Box::new(BalanceScorer), w.balance),
                (Box::new(SoftConstraintScorer), w.soft_constraints),
                (Box::new(ScarcityScorer), w.scarcity),
            ],
            quota: None,
            rng: Cell::new(config.seed),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Add a feasibility rule; it runs after the built-in constraint filters and before the
    /// capacity filter.
    pub fn add_filter(&mut self, filter: Box<dyn Filter>) {
        let at = self.filters.len() - 1;
        self.filters.insert(at, filter);
    }

    /// Add a ranking rule with its weight.
    pub fn add_scorer(&mut self, scorer: Box<dyn Scorer>, weight: f64) {
        self.scorers.push((scorer, weight));
    }

    /// Install the tenant quota hook.
    pub fn set_quota_hook(&mut self, hook: Box<dyn QuotaHook>) {
        self.quota = Some(hook);
    }

    /// Add a host or update its capacity, labels, domain and state. VMs on it stay.
    pub fn upsert_host(&mut self, spec: HostSpec) -> Result<(), SchedError> {
        check_name(&spec.name)?;
        let bad = |reason: String| SchedError::InvalidHost {
            host: spec.name.clone(),
            reason,
        };
        for (what, r) in [
            ("cpu", spec.overcommit.cpu),
            ("memory", spec.overcommit.memory),
            ("disk", spec.overcommit.disk),
        ] {
            if !(r.is_finite() && r > 0.0 && r <= 1000.0) {
                return Err(bad(format!(
                    "{what} overcommit ratio {r} is not in (0, 1000]"
                )));
            }
        }
        for s in spec.labels.iter().flat_map(|(k, v)| [k, v]).chain([
            &spec.domain.region,
            &spec.domain.zone,
            &spec.domain.rack,
        ]) {
            if s.len() > MAX_NAME_BYTES / 4 {
                return Err(bad(format!(
                    "label or domain name longer than {} bytes",
                    MAX_NAME_BYTES / 4
                )));
            }
        }
        self.fleet
            .upsert_host(&spec)
            .ok_or_else(|| bad("name not accepted".into()))?;
        tracing::debug!(node = %spec.name, state = spec.state.as_str(), "scheduler: host upserted");
        Ok(())
    }

    /// Change a host's state (cordon, drain, down, ready). Resident VMs stay accounted.
    pub fn set_host_state(&mut self, host: &str, state: HostState) -> Result<(), SchedError> {
        let h = self.host_idx(host)?;
        self.fleet.set_state(h, state);
        tracing::info!(
            node = host,
            state = state.as_str(),
            "scheduler: host state changed"
        );
        Ok(())
    }

    /// Forget a host that holds no VMs.
    pub fn remove_host(&mut self, host: &str) -> Result<(), SchedError> {
        let h = self.host_idx(host)?;
        let vms = self.fleet.cold[h as usize].vms.len();
        if vms > 0 {
            return Err(SchedError::HostNotEmpty {
                host: host.to_string(),
                vms,
            });
        }
        self.fleet.remove_host(h);
        tracing::info!(node = host, "scheduler: host removed");
        Ok(())
    }

    /// A host's current numbers.
    pub fn host(&self, host: &str) -> Option<HostInfo> {
        let h = self.fleet.host_names.get(host)?;
        Some(self.host_info(h))
    }

    fn host_info(&self, h: u32) -> HostInfo {
        let c = &self.fleet.cold[h as usize];
        let f = self.fleet.hot[h as usize].free;
        HostInfo {
            name: self.fleet.host_name(h).to_string(),
            state: c.state,
            capacity: Resources {
                cpu_millis: c.capacity[0] as u64,
                memory_mib: c.capacity[1] as u64,
                disk_gib: c.capacity[2] as u64,
            },
            used: Resources {
                cpu_millis: (c.capacity[0] - f[0]).max(0) as u64,
                memory_mib: (c.capacity[1] - f[1]).max(0) as u64,
                disk_gib: (c.capacity[2] - f[2]).max(0) as u64,
            },
            vms: c.vms.len(),
        }
    }

    /// Every registered host.
    pub fn hosts(&self) -> Vec<HostInfo> {
        (0..self.fleet.cold.len() as u32)
            .filter(|&h| self.fleet.cold[h as usize].present)
            .map(|h| self.host_info(h))
            .collect()
    }

    /// Fleet totals.
    pub fn stats(&self) -> FleetStats {
        let present = self.fleet.cold.iter().filter(|c| c.present);
        let (mut hosts, mut ready) = (0, 0);
        for c in present {
            hosts += 1;
            if c.state == HostState::Ready {
                ready += 1;
            }
        }
        FleetStats {
            hosts,
            ready_hosts: ready,
            hosts_used: self.fleet.hosts_used,
            vms: self.fleet.vm_names.len(),
        }
    }

    /// Host a VM is on.
    pub fn vm_host(&self, vm: &str) -> Option<&str> {
        let v = self.fleet.vm_names.get(vm)?;
        Some(self.fleet.host_name(self.fleet.vms[v as usize].host))
    }

    /// VMs resident on a host.
    pub fn vms_on(&self, host: &str) -> Result<Vec<String>, SchedError> {
        let h = self.host_idx(host)?;
        Ok(self.fleet.cold[h as usize]
            .vms
            .iter()
            .map(|&v| self.fleet.vm_names.name(v).to_string())
            .collect())
    }

    /// The constraints a resident VM was committed with, as a request (used to re-place it).
    pub fn vm_request(&self, vm: &str) -> Option<Request> {
        let v = self.fleet.vm_names.get(vm)?;
        Some(self.request_of(v))
    }

    pub(crate) fn host_idx(&self, host: &str) -> Result<u32, SchedError> {
        self.fleet
            .host_names
            .get(host)
            .ok_or_else(|| SchedError::UnknownHost(host.to_string()))
    }

    fn next_salt(&self) -> u64 {
        let mut r = SplitMix64::new(self.rng.get());
        let s = r.next_u64();
        self.rng
            .set(self.rng.get().wrapping_add(0x9E37_79B9_7F4A_7C15));
        s
    }

    /// Decide where `req` should go, without committing it.
    pub fn place(&self, req: &Request) -> Result<Placement, SchedError> {
        let ctx = self.resolve(req)?;
        self.check_quota(req)?;
        let (h, p) = self.decide(&ctx)?;
        Ok(self.placement(h, p))
    }

    fn placement(&self, h: u32, p: Decision) -> Placement {
        Placement {
            host: self.fleet.host_name(h).to_string(),
            score: p.score,
            hosts_examined: p.examined,
            hosts_scored: p.scored,
        }
    }

    /// Decide and commit in one step.
    pub fn place_and_commit(&mut self, vm: &str, req: &Request) -> Result<Placement, SchedError> {
        check_name(vm)?;
        if self.fleet.vm_names.get(vm).is_some() {
            return Err(SchedError::VmExists(vm.to_string()));
        }
        let (h, d) = {
            let ctx = self.resolve(req)?;
            self.check_quota(req)?;
            self.decide(&ctx)?
        };
        let placement = self.placement(h, d);
        self.insert(vm, h, req)?;
        Ok(placement)
    }

    /// Record that `vm` runs on `host` with `req`, after checking every filter (capacity,
    /// state, constraints) against that host. For `vm create --node` and after `place`.
    pub fn commit(&mut self, vm: &str, host: &str, req: &Request) -> Result<(), SchedError> {
        check_name(vm)?;
        if self.fleet.vm_names.get(vm).is_some() {
            return Err(SchedError::VmExists(vm.to_string()));
        }
        let h = self.host_idx(host)?;
        {
            let ctx = self.resolve(req)?;
            self.check_quota(req)?;
            if let Some(f) = self.first_failing(&ctx, h) {
                return Err(SchedError::Infeasible {
                    vm: vm.to_string(),
                    host: host.to_string(),
                    filter: f.name().to_string(),
                    requirement: f.explain(&ctx),
                });
            }
        }
        self.insert(vm, h, req)
    }

    /// Record a VM as it is, without checks: for rebuilding the fleet from the store at start,
    /// where actual state wins even if it breaks a rule.
    pub fn restore(&mut self, vm: &str, host: &str, req: &Request) -> Result<(), SchedError> {
        check_name(vm)?;
        if self.fleet.vm_names.get(vm).is_some() {
            return Err(SchedError::VmExists(vm.to_string()));
        }
        let h = self.host_idx(host)?;
        let _ = self.resolve(req)?; // rule conflicts and size limits still refuse
        self.insert(vm, h, req)
    }

    /// Forget a VM (deleted, or stopped and not holding resources).
    pub fn release(&mut self, vm: &str) -> Result<(), SchedError> {
        let v = self
            .fleet
            .vm_names
            .get(vm)
            .ok_or_else(|| SchedError::UnknownVm(vm.to_string()))?;
        self.fleet.detach(v);
        self.fleet.drop_vm(v);
        Ok(())
    }

    /// Move a resident VM to `to` (after a migration), checking every filter there with the
    /// VM's own constraints.
    pub fn move_vm(&mut self, vm: &str, to: &str) -> Result<(), SchedError> {
        let v = self
            .fleet
            .vm_names
            .get(vm)
            .ok_or_else(|| SchedError::UnknownVm(vm.to_string()))?;
        let t = self.host_idx(to)?;
        let req = self.request_of(v);
        let from = self.fleet.detach(v);
        let refusal = {
            let ctx = self.resolve(&req)?;
            self.first_failing(&ctx, t)
                .map(|f| (f.name().to_string(), f.explain(&ctx)))
        };
        match refusal {
            None => {
                self.fleet.attach(v, t);
                Ok(())
            }
            Some((filter, requirement)) => {
                self.fleet.attach(v, from);
                Err(SchedError::Infeasible {
                    vm: vm.to_string(),
                    host: to.to_string(),
                    filter,
                    requirement,
                })
            }
        }
    }

    /// Recompute every derived number (free capacity, index cells, group counts) from the VM
    /// records and compare with the incrementally maintained ones.
    pub fn verify_bookkeeping(&self) -> Result<(), String> {
        self.fleet.verify()
    }

    fn check_quota(&self, req: &Request) -> Result<(), SchedError> {
        if let (Some(hook), Some(tenant)) = (&self.quota, &req.tenant) {
            hook.check(tenant, &req.demand)
                .map_err(|reason| SchedError::Quota {
                    tenant: tenant.clone(),
                    reason,
                })?;
        }
        Ok(())
    }

    pub(crate) fn first_failing(&self, ctx: &RequestContext<'_>, h: u32) -> Option<&dyn Filter> {
        let view = HostView {
            fleet: &self.fleet,
            idx: h,
        };
        self.filters
            .iter()
            .find(|f| f.applies(ctx) && !f.feasible(ctx, &view))
            .map(|f| f.as_ref())
    }

    /// Resolve names in a request against the fleet (no interning: `place` changes nothing).
    pub(crate) fn resolve<'a>(
        &'a self,
        req: &'a Request,
    ) -> Result<RequestContext<'a>, SchedError> {
        let f = &self.fleet;
        for (dimension, amount) in Dimension::ALL.into_iter().zip(req.demand.as_array()) {
            if amount > u64::from(u32::MAX) {
                return Err(SchedError::DemandTooLarge { dimension, amount });
            }
        }
        let selectors = req
            .selectors
            .iter()
            .map(|s| resolve_selector(s, |x| f.label_strs.get(x).unwrap_or(NONE)))
            .collect();
        let mut member_of: Vec<RGroup> = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            if member_of.iter().any(|m| m.name == g.name) {
                continue;
            }
            let idx = f.group_names.get(&g.name).unwrap_or(NONE);
            let existing = (idx != NONE)
                .then(|| f.groups[idx as usize].rules.as_deref())
                .flatten();
            let rules = match existing {
                Some(rules) => {
                    if !g.rules.is_empty() && g.rules.as_slice() != rules {
                        return Err(SchedError::GroupRulesConflict {
                            group: g.name.clone(),
                            existing: format!("{rules:?}"),
                            requested: format!("{:?}", g.rules),
                        });
                    }
                    rules.to_vec()
                }
                None => g.rules.clone(),
            };
            member_of.push(RGroup {
                idx,
                name: g.name.clone(),
                rules,
            });
        }
        let term = |t: &GroupTerm| RTermReq {
            idx: f.group_names.get(&t.group).unwrap_or(NONE),
            name: t.group.clone(),
            level: t.level,
            hard: t.hard,
        };
        let near = req.affinity_to.iter().map(term).collect();
        let away = req.anti_affinity_to.iter().map(term).collect();
        let mut excluded: Vec<u32> = req
            .exclude_hosts
            .iter()
            .filter_map(|h| f.host_names.get(h))
            .collect();
        excluded.sort_unstable();
        excluded.dedup();
        Ok(RequestContext::new(
            f,
            req,
            selectors,
            member_of,
            near,
            away,
            excluded,
            self.config.strategy,
        ))
    }

    /// Intern the request's constraints and record the VM on host `h`.
    fn insert(&mut self, vm: &str, h: u32, req: &Request) -> Result<(), SchedError> {
        let demand = [
            req.demand.cpu_millis as u32,
            req.demand.memory_mib as u32,
            req.demand.disk_gib as u32,
        ];
        let key = self.intern_profile(req)?;
        let f = &mut self.fleet;
        let profile = f.acquire_profile(key);
        let Some(v) = f.new_vm(vm, demand, profile) else {
            f.release_profile(profile);
            return Err(SchedError::InvalidName {
                name: truncate(vm),
                reason: "not accepted",
            });
        };
        f.attach(v, h);
        Ok(())
    }

    fn intern_profile(&mut self, req: &Request) -> Result<ProfileKey, SchedError> {
        if req.selectors.is_empty()
            && req.groups.is_empty()
            && req.affinity_to.is_empty()
            && req.anti_affinity_to.is_empty()
        {
            return Ok(ProfileKey::default());
        }
        // Check every name before interning anything, so a refusal leaves no half-made group.
        for name in req.groups.iter().map(|g| &g.name).chain(
            req.affinity_to
                .iter()
                .chain(&req.anti_affinity_to)
                .map(|t| &t.group),
        ) {
            check_name(name)?;
        }
        let f = &mut self.fleet;
        let mut too_long = false;
        let mut selectors: Vec<RSel> = req
            .selectors
            .iter()
            .map(|s| {
                resolve_selector(s, |x| match f.label_strs.intern(x) {
                    Some((i, _)) => i,
                    None => {
                        too_long = true;
                        NONE
                    }
                })
            })
            .collect();
        if too_long {
            return Err(SchedError::InvalidName {
                name: "selector".into(),
                reason: "label longer than 1024 bytes",
            });
        }
        selectors.sort_by_key(|s| s.key);
        let mut member_of = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let gi = f
                .intern_group(&g.name)
                .ok_or_else(|| SchedError::InvalidName {
                    name: truncate(&g.name),
                    reason: "group name too long",
                })?;
            // The first member fixes the group's rules.
            let rec = &mut f.groups[gi as usize];
            if rec.rules.is_none() {
                rec.rules = Some(g.rules.clone().into_boxed_slice());
            }
            if !member_of.contains(&gi) {
                member_of.push(gi);
            }
        }
        member_of.sort_unstable();
        let mut terms = |ts: &[GroupTerm]| -> Result<Vec<RTerm>, SchedError> {
            ts.iter()
                .map(|t| {
                    let group =
                        f.intern_group(&t.group)
                            .ok_or_else(|| SchedError::InvalidName {
                                name: truncate(&t.group),
                                reason: "group name too long",
                            })?;
                    Ok(RTerm {
                        group,
                        level: t.level,
                        hard: t.hard,
                    })
                })
                .collect()
        };
        let near = terms(&req.affinity_to)?;
        let away = terms(&req.anti_affinity_to)?;
        Ok(ProfileKey {
            selectors: selectors.into_boxed_slice(),
            member_of: member_of.into_boxed_slice(),
            near: near.into_boxed_slice(),
            away: away.into_boxed_slice(),
        })
    }

    /// Rebuild the request a resident VM was committed with.
    pub(crate) fn request_of(&self, v: u32) -> Request {
        let f = &self.fleet;
        let rec = f.vms[v as usize];
        let key = &f.profiles[rec.profile as usize].key;
        let s = |i: u32| f.label_strs.name(i).to_string();
        let selectors = key
            .selectors
            .iter()
            .map(|sel| LabelSelector {
                key: s(sel.key),
                op: match &sel.op {
                    ROp::In(vs) => SelectorOp::In(vs.iter().map(|&v| s(v)).collect()),
                    ROp::NotIn(vs) => SelectorOp::NotIn(vs.iter().map(|&v| s(v)).collect()),
                    ROp::Exists => SelectorOp::Exists,
                    ROp::DoesNotExist => SelectorOp::DoesNotExist,
                },
            })
            .collect();
        let groups = key
            .member_of
            .iter()
            .map(|&g| GroupMembership {
                name: f.group_names.name(g).to_string(),
                rules: Vec::new(),
            })
            .collect();
        let term = |t: &RTerm| GroupTerm {
            group: f.group_names.name(t.group).to_string(),
            level: t.level,
            hard: t.hard,
        };
        Request {
            demand: Resources {
                cpu_millis: u64::from(rec.demand[0]),
                memory_mib: u64::from(rec.demand[1]),
                disk_gib: u64::from(rec.demand[2]),
            },
            selectors,
            groups,
            affinity_to: key.near.iter().map(term).collect(),
            anti_affinity_to: key.away.iter().map(term).collect(),
            exclude_hosts: Vec::new(),
            tenant: None,
        }
    }

    /// Hosts to enumerate directly when a hard affinity confines the request to a few domains.
    fn confined_hosts(&self, ctx: &RequestContext<'_>) -> Option<Vec<u32>> {
        let f = &self.fleet;
        let mut best: Option<Vec<u32>> = None;
        let mut consider = |g: u32, level: Level| {
            let rec = &f.groups[g as usize];
            let mut hosts = Vec::new();
            for (d, _) in rec.domains_at(level) {
                match level {
                    Level::Host => hosts.push(d),
                    _ => hosts.extend_from_slice(
                        f.domain_hosts[level.index()]
                            .get(d as usize)
                            .map_or(&[][..], |v| v),
                    ),
                }
                if hosts.len() > DIRECT_ENUMERATION_MAX {
                    return;
                }
            }
            if best.as_ref().is_none_or(|b| hosts.len() < b.len()) {
                best = Some(hosts);
            }
        };
        for g in &ctx.member_of {
            if g.idx == NONE || f.groups[g.idx as usize].members == 0 {
                continue;
            }
            for r in &g.rules {
                if let GroupRule::Affinity { level, hard: true } = *r {
                    consider(g.idx, level);
                }
            }
        }
        for t in ctx.near.iter().filter(|t| t.hard) {
            if t.idx == NONE {
                return Some(Vec::new());
            }
            consider(t.idx, t.level);
        }
        best
    }

    /// The decision proper: candidates → filters → scorers → best.
    pub(crate) fn decide(&self, ctx: &RequestContext<'_>) -> Result<(u32, Decision), SchedError> {
        let cap_at = self.filters.len() - 1;
        let active: Vec<&dyn Filter> = self.filters[..cap_at]
            .iter()
            .filter(|f| f.applies(ctx))
            .map(|f| f.as_ref())
            .collect();
        let scorers: Vec<(&dyn Scorer, f64)> = self
            .scorers
            .iter()
            .filter(|(s, w)| *w != 0.0 && s.applies(ctx))
            .map(|(s, w)| (s.as_ref(), *w))
            .collect();
        let demand = ctx.demand;
        let fleet = &self.fleet;
        let mut search = Search {
            fleet,
            ctx,
            active: &active,
            scorers: &scorers,
            best: None,
            scarce_best: None,
            defer_scarce: ctx.selectors.is_empty()
                && !fleet.scarcity.is_empty()
                && self.config.weights.scarcity > 0.0,
            examined: 0,
            walk_examined: 0,
            scored: 0,
            max_scored: self.config.max_scored.max(1) as u32,
            max_examined: self.config.max_examined.max(1) as u32,
        };
        match self.confined_hosts(ctx) {
            Some(hosts) => {
                for h in hosts {
                    if !search.visit(h) {
                        break;
                    }
                }
            }
            None => {
                // Bin-pack: fill used hosts tightest first and open an empty host (largest
                // first) only when none fits. Spread: empty hosts first, then least used.
                // The first member of a hard-affinity group starts on the emptiest used host, so
                // its domain likely has room for the members that follow (a tight host's rack
                // may not), without opening a host.
                let salt = self.next_salt();
                let founding = ctx.member_of.iter().any(|g| {
                    (g.idx == NONE || f_members(fleet, g.idx) == 0)
                        && g.rules
                            .iter()
                            .any(|r| matches!(r, GroupRule::Affinity { hard: true, .. }))
                });
                let (first, first_order, second, second_order) =
                    match (self.config.strategy, founding) {
                        (Strategy::BinPack, false) => {
                            (&fleet.index, Order::Tightest, &fleet.empty, Order::Emptiest)
                        }
                        (Strategy::BinPack, true) => {
                            (&fleet.index, Order::Emptiest, &fleet.empty, Order::Emptiest)
                        }
                        (Strategy::Spread, _) => {
                            (&fleet.empty, Order::Emptiest, &fleet.index, Order::Emptiest)
                        }
                    };
                // A walk that finds nothing feasible in this many hosts gives way to the next;
                // the failure path's full scan still finds any feasible host.
                let give_up = search.max_examined.saturating_mul(GIVE_UP_FACTOR);
                first.walk(demand[0], demand[1], first_order, salt, |h| {
                    search.visit(h) && !(search.scored == 0 && search.walk_examined >= give_up)
                });
                if search.best.is_none() {
                    search.walk_examined = 0;
                    second.walk(demand[0], demand[1], second_order, salt, |h| {
                        search.visit(h) && !(search.scored == 0 && search.walk_examined >= give_up)
                    });
                }
            }
        }
        let best = search.best.or(search.scarce_best);
        let (examined, scored) = (search.examined, search.scored);
        match best {
            Some((score, h)) => Ok((
                h,
                Decision {
                    score,
                    examined,
                    scored,
                },
            )),
            None => match self.explain(ctx) {
                Ok(h) => Ok((
                    h,
                    Decision {
                        score: 0.0,
                        examined: self.fleet.cold.len() as u32,
                        scored: 1,
                    },
                )),
                Err(e) => Err(e),
            },
        }
    }

    /// Full scan that finds which filter bound. Only on the failure path. Also a safety net:
    /// returns a feasible host if the index walk missed one.
    fn explain(&self, ctx: &RequestContext<'_>) -> Result<u32, SchedError> {
        let f = &self.fleet;
        let demand = ctx.request().demand.as_array();
        let applicable: Vec<usize> = (0..self.filters.len())
            .filter(|&i| self.filters[i].applies(ctx))
            .collect();
        let mut rejected = vec![0usize; self.filters.len()];
        let mut considered = 0usize;
        let (mut cordoned, mut draining, mut down) = (0, 0, 0);
        // Per dimension: largest free among hosts that reached the capacity filter.
        let mut largest: [(i64, u32); 3] = [(i64::MIN, NONE); 3];
        let mut closest: (f64, u32) = (f64::INFINITY, NONE);
        let cap_filter = self.filters.len() - 1;
        for h in 0..f.cold.len() as u32 {
            let c = &f.cold[h as usize];
            if !c.present {
                continue;
            }
            considered += 1;
            match c.state {
                HostState::Cordoned => cordoned += 1,
                HostState::Draining => draining += 1,
                HostState::Down => down += 1,
                HostState::Ready => {}
            }
            let view = HostView { fleet: f, idx: h };
            let Some(&i) = applicable
                .iter()
                .find(|&&i| !self.filters[i].feasible(ctx, &view))
            else {
                // Unreachable when the index is consistent; if not, this host is feasible.
                tracing::debug!(
                    node = f.host_name(h),
                    "scheduler: feasible host found by the full scan"
                );
                return Ok(h);
            };
            rejected[i] += 1;
            if i == cap_filter {
                let free = f.hot[h as usize].free;
                for d in 0..3 {
                    if free[d] > largest[d].0 {
                        largest[d] = (free[d], h);
                    }
                }
                let short = (0..3)
                    .map(|d| {
                        if demand[d] == 0 {
                            0.0
                        } else {
                            (demand[d] as f64 - free[d] as f64) / demand[d] as f64
                        }
                    })
                    .fold(0.0f64, f64::max);
                if short < closest.0 {
                    closest = (short, h);
                }
            }
        }
        let rejected_by: Vec<(String, usize)> = applicable
            .iter()
            .map(|&i| (self.filters[i].name().to_string(), rejected[i]))
            .collect();
        let scope = self.scope_phrase(ctx);
        let binding = if considered == 0 {
            Binding::NoHosts
        } else {
            match applicable.iter().rev().find(|&&i| rejected[i] > 0) {
                None => Binding::NoHosts,
                Some(&0) => Binding::NoReadyHost {
                    cordoned,
                    draining,
                    down,
                },
                Some(&i) if i == cap_filter => {
                    // A dimension short everywhere binds; the largest relative shortfall wins.
                    let mut dim: Option<(f64, usize)> = None;
                    for d in 0..3 {
                        let have = largest[d].0.max(0) as u64;
                        if have < demand[d] {
                            let ratio = demand[d] as f64 / (have as f64 + 1.0);
                            if dim.is_none_or(|(r, _)| ratio > r) {
                                dim = Some((ratio, d));
                            }
                        }
                    }
                    match dim {
                        Some((_, d)) => Binding::Capacity {
                            dimension: Dimension::ALL[d],
                            demand: demand[d],
                            largest_free: largest[d].0.max(0) as u64,
                            largest_host: f.host_name(largest[d].1).to_string(),
                            scope,
                        },
                        None => {
                            let fr = f.hot[closest.1 as usize].free;
                            Binding::CapacityCombined {
                                closest_host: f.host_name(closest.1).to_string(),
                                closest_free: [
                                    fr[0].max(0) as u64,
                                    fr[1].max(0) as u64,
                                    fr[2].max(0) as u64,
                                ],
                                scope,
                            }
                        }
                    }
                }
                Some(&i) => Binding::Filter {
                    filter: self.filters[i].name().to_string(),
                    requirement: self.filters[i].explain(ctx),
                    rejected: rejected[i],
                    scope,
                },
            }
        };
        let nofit = NoFit::new(binding, rejected_by, considered, demand);
        tracing::debug!(reason = %nofit, "scheduler: no fit");
        Err(SchedError::NoFit(Box::new(nofit)))
    }

    /// Where the request confined the search, for messages: " in zone b with disk=ssd".
    fn scope_phrase(&self, ctx: &RequestContext<'_>) -> String {
        let mut out = String::new();
        let req = ctx.request();
        for key in ["region", "zone", "rack"] {
            for s in req.selectors.iter().filter(|s| s.key == key) {
                match &s.op {
                    SelectorOp::In(v) if v.len() == 1 => {
                        out.push_str(&format!(" in {key} {}", v[0]))
                    }
                    SelectorOp::In(v) => out.push_str(&format!(" in {key} {}", v.join(" or "))),
                    _ => out.push_str(&format!(" with {s}")),
                }
            }
        }
        let others: Vec<String> = req
            .selectors
            .iter()
            .filter(|s| !["region", "zone", "rack"].contains(&s.key.as_str()))
            .map(|s| s.to_string())
            .collect();
        if !others.is_empty() {
            out.push_str(&format!(" with {}", others.join(", ")));
        }
        for g in &ctx.member_of {
            if g.idx == NONE {
                continue;
            }
            for r in &g.rules {
                if let GroupRule::Affinity { level, hard: true } = *r
                    && let Some((d, _)) = self.fleet.groups[g.idx as usize].domains_at(level).next()
                {
                    out.push_str(&format!(
                        " in {level} {} (affinity of group {})",
                        self.fleet.domain_display(level, d),
                        g.name
                    ));
                }
            }
        }
        if !req.exclude_hosts.is_empty() {
            out.push_str(&format!(" excluding {}", req.exclude_hosts.join(", ")));
        }
        out
    }
}

/// State of one candidate walk: filters, scores, keeps the best, says when to stop.
struct Search<'s, 'a> {
    fleet: &'s Fleet,
    ctx: &'s RequestContext<'a>,
    active: &'s [&'s dyn Filter],
    scorers: &'s [(&'s dyn Scorer, f64)],
    best: Option<(f64, u32)>,
    /// Best feasible host among scarce ones, used only if nothing else fits.
    scarce_best: Option<(f64, u32)>,
    /// The request selects nothing, so hosts with much-demanded labels are a last resort.
    defer_scarce: bool,
    examined: u32,
    /// Hosts examined in the current walk (stop conditions are per walk).
    walk_examined: u32,
    scored: u32,
    max_scored: u32,
    max_examined: u32,
}

/// Hosts whose label scarcity reaches this are kept for requests that select them: other
/// requests use them only when nothing else fits (like a soft taint).
const SCARCE_AT: f32 = 0.25;

impl Search<'_, '_> {
    /// Consider host `h`; false when the walk should stop.
    fn visit(&mut self, h: u32) -> bool {
        self.examined += 1;
        self.walk_examined += 1;
        let d = &self.ctx.demand;
        let free = &self.fleet.hot[h as usize].free;
        let feasible = free[0] >= d[0] && free[1] >= d[1] && free[2] >= d[2] && {
            let view = HostView {
                fleet: self.fleet,
                idx: h,
            };
            self.active.iter().all(|f| f.feasible(self.ctx, &view))
        };
        if feasible {
            let view = HostView {
                fleet: self.fleet,
                idx: h,
            };
            let s: f64 = self
                .scorers
                .iter()
                .map(|(sc, w)| w * sc.score(self.ctx, &view))
                .sum();
            let scarce = self.defer_scarce
                && self
                    .fleet
                    .scarcity
                    .get(self.fleet.hot[h as usize].labelset as usize)
                    .is_some_and(|&x| x >= SCARCE_AT);
            if scarce {
                if self.scarce_best.is_none_or(|(b, _)| s > b) {
                    self.scarce_best = Some((s, h));
                }
            } else {
                self.scored += 1;
                if self.best.is_none_or(|(b, _)| s > b) {
                    self.best = Some((s, h));
                }
            }
        }
        // Scarce hosts do not end the walk: at scale the tight cells fill with partly used
        // scarce hosts, and stopping there would open a new host instead of using a
        // non-scarce one a little further on.
        let any = self.scored > 0;
        !(self.scored >= self.max_scored || (self.walk_examined >= self.max_examined && any))
    }
}

/// Numbers about one decision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decision {
    pub score: f64,
    pub examined: u32,
    pub scored: u32,
}

fn f_members(fleet: &Fleet, g: u32) -> u32 {
    fleet.groups[g as usize].members
}

fn resolve_selector(s: &LabelSelector, mut id: impl FnMut(&str) -> u32) -> RSel {
    let key = id(&s.key);
    let op = match &s.op {
        SelectorOp::In(vs) => ROp::In(vs.iter().map(|v| id(v)).collect()),
        SelectorOp::NotIn(vs) => ROp::NotIn(vs.iter().map(|v| id(v)).collect()),
        SelectorOp::Exists => ROp::Exists,
        SelectorOp::DoesNotExist => ROp::DoesNotExist,
    };
    RSel { key, op }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

fn check_name(name: &str) -> Result<(), SchedError> {
    if name.is_empty() {
        return Err(SchedError::InvalidName {
            name: String::new(),
            reason: "empty",
        });
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(SchedError::InvalidName {
            name: truncate(name),
            reason: "longer than 1024 bytes",
        });
    }
    Ok(())
}
