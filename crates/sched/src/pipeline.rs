//! The filter and score stages. Each rule is one small part: a [`Filter`] says whether a host
//! can take the request (feasibility), a [`Scorer`] says how good it is. The scheduler runs the
//! filters in order on each candidate the capacity index yields, scores the feasible ones and
//! keeps the best, like Nomad's iterator stack or kube-scheduler's filter/score plugins. Adding a
//! rule means adding one part with [`crate::Scheduler::add_filter`] or
//! [`crate::Scheduler::add_scorer`].

use crate::fleet::{Fleet, NONE, ROp, RSel};
use crate::model::{Dimension, GroupRule, HostState, Level, Request, Resources, Strategy};

/// A group the request joins, resolved against the fleet.
#[derive(Clone, Debug)]
pub(crate) struct RGroup {
    /// Group index, `NONE` if the group does not exist yet.
    pub idx: u32,
    pub name: String,
    /// Effective rules (the group's own if it has members, else the request's).
    pub rules: Vec<GroupRule>,
}

/// A term to another group, resolved.
#[derive(Clone, Debug)]
pub(crate) struct RTermReq {
    pub idx: u32,
    pub name: String,
    pub level: Level,
    pub hard: bool,
}

/// A request resolved against the fleet, handed to every filter and scorer.
pub struct RequestContext<'a> {
    pub(crate) fleet: &'a Fleet,
    request: &'a Request,
    pub(crate) demand: [i64; 3],
    pub(crate) selectors: Vec<RSel>,
    pub(crate) member_of: Vec<RGroup>,
    pub(crate) near: Vec<RTermReq>,
    pub(crate) away: Vec<RTermReq>,
    /// Sorted host indices the request excludes.
    pub(crate) excluded: Vec<u32>,
    pub(crate) strategy: Strategy,
}

impl<'a> RequestContext<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        fleet: &'a Fleet,
        request: &'a Request,
        selectors: Vec<RSel>,
        member_of: Vec<RGroup>,
        near: Vec<RTermReq>,
        away: Vec<RTermReq>,
        excluded: Vec<u32>,
        strategy: Strategy,
    ) -> Self {
        let d = request.demand;
        RequestContext {
            fleet,
            request,
            demand: [clamp(d.cpu_millis), clamp(d.memory_mib), clamp(d.disk_gib)],
            selectors,
            member_of,
            near,
            away,
            excluded,
            strategy,
        }
    }

    /// The request being placed.
    pub fn request(&self) -> &Request {
        self.request
    }

    /// Members of group `name` in the domain of `level` that holds `host` (0 for an unknown group).
    pub fn group_members_near(&self, name: &str, level: Level, host: &HostView<'_>) -> u32 {
        match self.fleet.group_names.get(name) {
            Some(g) => {
                self.fleet.groups[g as usize].count(level, self.fleet.domain_of(host.idx, level))
            }
            None => 0,
        }
    }
}

fn clamp(x: u64) -> i64 {
    x.min(i64::MAX as u64 / 4) as i64
}

/// Read-only view of one host for filters and scorers.
#[derive(Clone, Copy)]
pub struct HostView<'a> {
    pub(crate) fleet: &'a Fleet,
    pub(crate) idx: u32,
}

impl<'a> HostView<'a> {
    /// Node name.
    pub fn name(&self) -> &'a str {
        self.fleet.host_name(self.idx)
    }

    /// Free capacity (effective capacity minus use; 0 where overcommitted beyond capacity).
    pub fn free(&self) -> Resources {
        let f = self.fleet.hot[self.idx as usize].free;
        Resources {
            cpu_millis: f[0].max(0) as u64,
            memory_mib: f[1].max(0) as u64,
            disk_gib: f[2].max(0) as u64,
        }
    }

    /// Effective capacity (physical × overcommit).
    pub fn capacity(&self) -> Resources {
        let c = self.fleet.cold[self.idx as usize].capacity;
        Resources {
            cpu_millis: c[0] as u64,
            memory_mib: c[1] as u64,
            disk_gib: c[2] as u64,
        }
    }

    /// Value of a label (`region`, `zone`, `rack` give the failure-domain names).
    pub fn label(&self, key: &str) -> Option<&'a str> {
        let c = &self.fleet.cold[self.idx as usize];
        match key {
            "region" => Some(c.domain.region.as_str()),
            "zone" => Some(c.domain.zone.as_str()),
            "rack" => Some(c.domain.rack.as_str()),
            _ => c.labels.get(key).map(String::as_str),
        }
    }

    /// Scheduling state.
    pub fn state(&self) -> HostState {
        self.fleet.cold[self.idx as usize].state
    }

    /// Number of resident VMs.
    pub fn vm_count(&self) -> usize {
        self.fleet.cold[self.idx as usize].vms.len()
    }
}

/// Feasibility part: may this host take the request?
pub trait Filter: Send {
    /// Short stable name (`capacity`, `selector`, ...), used in errors.
    fn name(&self) -> &'static str;
    /// False when the filter has nothing to check for this request (it is then skipped).
    fn applies(&self, _ctx: &RequestContext<'_>) -> bool {
        true
    }
    /// True if `host` passes.
    fn feasible(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> bool;
    /// What this filter requires, as a phrase for error messages
    /// (`"hard anti-affinity of group web per host"`).
    fn explain(&self, ctx: &RequestContext<'_>) -> String;
}

/// Ranking part: higher is better; built-ins return values in about `[-1, 1]`.
pub trait Scorer: Send {
    /// Short stable name.
    fn name(&self) -> &'static str;
    /// False when the scorer has nothing to say about this request.
    fn applies(&self, _ctx: &RequestContext<'_>) -> bool {
        true
    }
    /// Score of placing the request on `host` (already known feasible).
    fn score(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> f64;
}

/// Host must be `ready`.
pub struct HostStateFilter;

impl Filter for HostStateFilter {
    fn name(&self) -> &'static str {
        "host-state"
    }
    fn feasible(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> bool {
        ctx.fleet.hot[host.idx as usize].ready
    }
    fn explain(&self, _ctx: &RequestContext<'_>) -> String {
        "a ready host".to_string()
    }
}

/// Host must not be in the request's exclusion list.
pub struct ExcludedFilter;

impl Filter for ExcludedFilter {
    fn name(&self) -> &'static str {
        "excluded"
    }
    fn applies(&self, ctx: &RequestContext<'_>) -> bool {
        !ctx.excluded.is_empty()
    }
    fn feasible(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> bool {
        ctx.excluded.binary_search(&host.idx).is_err()
    }
    fn explain(&self, ctx: &RequestContext<'_>) -> String {
        format!("a host other than {}", ctx.request.exclude_hosts.join(", "))
    }
}

/// Host labels must satisfy every selector.
pub struct SelectorFilter;

pub(crate) fn selector_matches(set: &[(u32, u32)], sel: &RSel) -> bool {
    let value = set
        .binary_search_by_key(&sel.key, |e| e.0)
        .ok()
        .map(|i| set[i].1);
    match (&sel.op, value) {
        (ROp::In(vs), Some(v)) => vs.contains(&v),
        (ROp::In(_), None) => false,
        (ROp::NotIn(vs), Some(v)) => !vs.contains(&v),
        (ROp::NotIn(_), None) => true,
        (ROp::Exists, v) => v.is_some(),
        (ROp::DoesNotExist, v) => v.is_none(),
    }
}

impl Filter for SelectorFilter {
    fn name(&self) -> &'static str {
        "selector"
    }
    fn applies(&self, ctx: &RequestContext<'_>) -> bool {
        !ctx.selectors.is_empty()
    }
    fn feasible(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> bool {
        // A key or value no host has is `NONE`, which no label set contains: In/Exists fail,
        // NotIn/DoesNotExist hold, as they should.
        let set = &ctx.fleet.labelsets[ctx.fleet.hot[host.idx as usize].labelset as usize];
        ctx.selectors.iter().all(|s| selector_matches(set, s))
    }
    fn explain(&self, ctx: &RequestContext<'_>) -> String {
        let parts: Vec<String> = ctx
            .request
            .selectors
            .iter()
            .map(|s| s.to_string())
            .collect();
        format!("a host with {}", parts.join(", "))
    }
}

/// Hard group affinity (members together) and hard affinity terms to other groups.
pub struct AffinityFilter;

impl Filter for AffinityFilter {
    fn name(&self) -> &'static str {
        "affinity"
    }
    fn applies(&self, ctx: &RequestContext<'_>) -> bool {
        ctx.member_of.iter().any(|g| {
            g.rules
                .iter()
                .any(|r| matches!(r, GroupRule::Affinity { hard: true, .. }))
        }) || ctx.near.iter().any(|t| t.hard)
    }
    fn feasible(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> bool {
        let f = ctx.fleet;
        for g in &ctx.member_of {
            if g.idx == NONE {
                continue;
            }
            let rec = &f.groups[g.idx as usize];
            if rec.members == 0 {
                continue;
            }
            for r in &g.rules {
                if let GroupRule::Affinity { level, hard: true } = *r
                    && rec.count(level, f.domain_of(host.idx, level)) == 0
                {
                    return false;
                }
            }
        }
        for t in ctx.near.iter().filter(|t| t.hard) {
            if t.idx == NONE {
                return false;
            }
            if f.groups[t.idx as usize].count(t.level, f.domain_of(host.idx, t.level)) == 0 {
                return false;
            }
        }
        true
    }
    fn explain(&self, ctx: &RequestContext<'_>) -> String {
        let mut parts = Vec::new();
        for g in &ctx.member_of {
            for r in &g.rules {
                if let GroupRule::Affinity { level, hard: true } = *r {
                    let at = if g.idx != NONE {
                        ctx.fleet.groups[g.idx as usize]
                            .domains_at(level)
                            .next()
                            .map(|(d, _)| {
                                format!(" ({level} {})", ctx.fleet.domain_display(level, d))
                            })
                            .unwrap_or_default()
                    } else {
                        String::new()
                    };
                    parts.push(format!(
                        "the {level} of group {}{at} (hard affinity)",
                        g.name
                    ));
                }
            }
        }
        for t in ctx.near.iter().filter(|t| t.hard) {
            if t.idx == NONE || ctx.fleet.groups[t.idx as usize].members == 0 {
                parts.push(format!(
                    "a {} holding a member of group {} (it has no members)",
                    t.level, t.name
                ));
            } else {
                parts.push(format!(
                    "a {} holding a member of group {}",
                    t.level, t.name
                ));
            }
        }
        parts.join(" and ")
    }
}

/// Hard spread / anti-affinity of the groups the request joins.
pub struct SpreadFilter;

impl Filter for SpreadFilter {
    fn name(&self) -> &'static str {
        "spread"
    }
    fn applies(&self, ctx: &RequestContext<'_>) -> bool {
        ctx.member_of.iter().any(|g| {
            g.idx != NONE
                && g.rules
                    .iter()
                    .any(|r| matches!(r, GroupRule::Spread { hard: true, .. }))
        })
    }
    fn feasible(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> bool {
        let f = ctx.fleet;
        for g in ctx.member_of.iter().filter(|g| g.idx != NONE) {
            let rec = &f.groups[g.idx as usize];
            for r in &g.rules {
                if let GroupRule::Spread {
                    level,
                    max_per_domain,
                    hard: true,
                } = *r
                    && rec.count(level, f.domain_of(host.idx, level)) >= max_per_domain
                {
                    return false;
                }
            }
        }
        true
    }
    fn explain(&self, ctx: &RequestContext<'_>) -> String {
        let mut parts = Vec::new();
        for g in &ctx.member_of {
            for r in &g.rules {
                if let GroupRule::Spread {
                    level,
                    max_per_domain,
                    hard: true,
                } = *r
                {
                    if max_per_domain == 1 {
                        parts.push(format!(
                            "a {level} without a member of group {} (hard anti-affinity)",
                            g.name
                        ));
                    } else {
                        parts.push(format!(
                            "a {level} with fewer than {max_per_domain} members of group {} (hard spread)",
                            g.name
                        ));
                    }
                }
            }
        }
        parts.join(" and ")
    }
}

/// Hard anti-affinity terms, both ways: the request avoids domains of groups it names, and a
/// member of a group avoids domains where resident VMs named that group in a hard term.
pub struct AntiAffinityFilter;

impl Filter for AntiAffinityFilter {
    fn name(&self) -> &'static str {
        "anti-affinity"
    }
    fn applies(&self, ctx: &RequestContext<'_>) -> bool {
        ctx.away.iter().any(|t| t.hard && t.idx != NONE)
            || ctx
                .member_of
                .iter()
                .any(|g| g.idx != NONE && ctx.fleet.groups[g.idx as usize].repel_levels != 0)
    }
    fn feasible(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> bool {
        let f = ctx.fleet;
        for t in ctx.away.iter().filter(|t| t.hard && t.idx != NONE) {
            if f.groups[t.idx as usize].count(t.level, f.domain_of(host.idx, t.level)) > 0 {
                return false;
            }
        }
        for g in ctx.member_of.iter().filter(|g| g.idx != NONE) {
            let rec = &f.groups[g.idx as usize];
            if rec.repel_levels == 0 {
                continue;
            }
            for l in Level::ALL {
                if rec.repelled(l, f.domain_of(host.idx, l)) > 0 {
                    return false;
                }
            }
        }
        true
    }
    fn explain(&self, ctx: &RequestContext<'_>) -> String {
        let mut parts: Vec<String> = ctx
            .away
            .iter()
            .filter(|t| t.hard)
            .map(|t| format!("a {} without members of group {}", t.level, t.name))
            .collect();
        for g in ctx
            .member_of
            .iter()
            .filter(|g| g.idx != NONE && ctx.fleet.groups[g.idx as usize].repel_levels != 0)
        {
            parts.push(format!(
                "a domain where no VM refuses members of group {}",
                g.name
            ));
        }
        parts.join(" and ")
    }
}

/// Free capacity (with overcommit) must cover the demand in every dimension.
pub struct CapacityFilter;

impl Filter for CapacityFilter {
    fn name(&self) -> &'static str {
        "capacity"
    }
    fn feasible(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> bool {
        let free = &ctx.fleet.hot[host.idx as usize].free;
        free[0] >= ctx.demand[0] && free[1] >= ctx.demand[1] && free[2] >= ctx.demand[2]
    }
    fn explain(&self, ctx: &RequestContext<'_>) -> String {
        let d = ctx.request.demand;
        format!(
            "{}, {} and {} free",
            Dimension::Cpu.format_amount(d.cpu_millis),
            Dimension::Memory.format_amount(d.memory_mib),
            Dimension::Disk.format_amount(d.disk_gib)
        )
    }
}

/// Bin-pack (prefer high utilisation after placement) or spread (prefer low), over vCPU and
/// memory with disk at a quarter weight.
pub struct FitScorer;

const DIM_WEIGHTS: [f64; 3] = [1.0, 1.0, 0.25];

pub(crate) fn utilisation_after(fleet: &Fleet, host: u32, demand: &[i64; 3]) -> [f64; 3] {
    let hot = &fleet.hot[host as usize];
    let cap = &fleet.cold[host as usize].capacity;
    let mut u = [0.0; 3];
    for d in 0..3 {
        if cap[d] > 0 {
            u[d] = (cap[d] - hot.free[d] + demand[d]) as f64 / cap[d] as f64;
        }
    }
    u
}

impl Scorer for FitScorer {
    fn name(&self) -> &'static str {
        "fit"
    }
    fn score(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> f64 {
        let u = utilisation_after(ctx.fleet, host.idx, &ctx.demand);
        let packed = (u[0] * DIM_WEIGHTS[0] + u[1] * DIM_WEIGHTS[1] + u[2] * DIM_WEIGHTS[2])
            / (DIM_WEIGHTS[0] + DIM_WEIGHTS[1] + DIM_WEIGHTS[2]);
        match ctx.strategy {
            Strategy::BinPack => packed,
            Strategy::Spread => 1.0 - packed,
        }
    }
}

/// Prefer hosts whose vCPU and memory utilisation stay close to each other after placement, so
/// neither runs out while the other idles.
pub struct BalanceScorer;

impl Scorer for BalanceScorer {
    fn name(&self) -> &'static str {
        "balance"
    }
    fn score(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> f64 {
        let u = utilisation_after(ctx.fleet, host.idx, &ctx.demand);
        1.0 - (u[0] - u[1]).abs().min(1.0)
    }
}

/// Soft group rules and soft terms: spread members, keep affine members together, be near or
/// away from other groups. Hard spread rules also get the even-spread preference.
pub struct SoftConstraintScorer;

impl Scorer for SoftConstraintScorer {
    fn name(&self) -> &'static str {
        "soft-constraints"
    }
    fn applies(&self, ctx: &RequestContext<'_>) -> bool {
        ctx.member_of
            .iter()
            .any(|g| g.idx != NONE && !g.rules.is_empty())
            || ctx.near.iter().any(|t| !t.hard && t.idx != NONE)
            || ctx.away.iter().any(|t| !t.hard && t.idx != NONE)
    }
    fn score(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> f64 {
        let f = ctx.fleet;
        let mut total = 0.0;
        let mut n = 0u32;
        for g in ctx.member_of.iter().filter(|g| g.idx != NONE) {
            let rec = &f.groups[g.idx as usize];
            for r in &g.rules {
                match *r {
                    GroupRule::Spread {
                        level,
                        max_per_domain,
                        ..
                    } => {
                        let c = rec.count(level, f.domain_of(host.idx, level));
                        total -= (f64::from(c) / f64::from(max_per_domain.max(1))).min(1.0);
                        n += 1;
                    }
                    GroupRule::Affinity { level, hard: false } => {
                        if rec.members > 0 {
                            total += if rec.count(level, f.domain_of(host.idx, level)) > 0 {
                                1.0
                            } else {
                                -1.0
                            };
                            n += 1;
                        }
                    }
                    GroupRule::Affinity { hard: true, .. } => {}
                }
            }
        }
        for t in ctx.near.iter().filter(|t| !t.hard && t.idx != NONE) {
            let c = f.groups[t.idx as usize].count(t.level, f.domain_of(host.idx, t.level));
            total += if c > 0 { 1.0 } else { -1.0 };
            n += 1;
        }
        for t in ctx.away.iter().filter(|t| !t.hard && t.idx != NONE) {
            let c = f.groups[t.idx as usize].count(t.level, f.domain_of(host.idx, t.level));
            total -= if c > 0 { 1.0 } else { 0.0 };
            n += 1;
        }
        if n == 0 { 0.0 } else { total / f64::from(n) }
    }
}

/// Keep scarce hosts for the VMs that need them: a request without selectors scores lower on a
/// host whose labels many resident VMs require (e.g. `disk=ssd` when a fifth of the VMs ask for
/// it and a third of the hosts have it). Without this, unconstrained VMs fill the special hosts
/// that bin-packing opened for constrained ones, and the constrained ones run out of room.
pub struct ScarcityScorer;

impl Scorer for ScarcityScorer {
    fn name(&self) -> &'static str {
        "scarcity"
    }
    fn applies(&self, ctx: &RequestContext<'_>) -> bool {
        ctx.selectors.is_empty() && !ctx.fleet.scarcity.is_empty()
    }
    fn score(&self, ctx: &RequestContext<'_>, host: &HostView<'_>) -> f64 {
        let set = ctx.fleet.hot[host.idx as usize].labelset as usize;
        -f64::from(ctx.fleet.scarcity.get(set).copied().unwrap_or(0.0))
    }
}
