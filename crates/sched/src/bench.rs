//! `novacron bench scheduler`: fills a simulated fleet from a generated workload (mixed VM
//! sizes, anti-affinity and spread groups, label selectors, arrivals and departures) or from a
//! trace, timing every decision, then packs the final resident set with first-fit-decreasing as
//! the reference and checks every placement with the independent validator. The only OS access
//! is reading this process's peak RSS (VmHWM, /proc/self/status) and the scheduling thread's
//! on-CPU time (/proc/thread-self/schedstat).

use crate::SchedError;
use crate::ffd::{FfdItem, FfdResult, first_fit_decreasing};
use crate::model::{
    FailureDomain, GroupMembership, GroupRule, HostSpec, HostState, LabelSelector, Level,
    Overcommit, Request, Resources, SchedulerConfig,
};
use crate::rng::SplitMix64;
use crate::scheduler::Scheduler;
use crate::validate::{Assignment, ValidationReport, validate};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::time::{Duration, Instant};

/// Share of fill-phase steps that are a departure instead of an arrival.
pub const FILL_DEPARTURE_SHARE: f64 = 0.10;
/// Steady-state churn after the fill: this share of `vms` departure+arrival pairs.
pub const CHURN_SHARE: f64 = 0.10;
/// Migrations asked of `propose_rebalance` after the placement phase.
pub const REBALANCE_MOVES: usize = 100;
/// Hosts per rack in the generated fleet.
pub const HOSTS_PER_RACK: usize = 40;
/// Every this-many-th generated host is cordoned before the run (must receive nothing).
pub const CORDON_EVERY: usize = 1000;

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct BenchConfig {
    /// Generated hosts.
    pub hosts: usize,
    /// Resident VMs to reach (generated workload; ignored with a trace).
    pub vms: usize,
    /// Seed of the workload generator and of the scheduler.
    pub seed: u64,
    /// Replay this trace instead of generating a workload (hosts are still generated).
    pub trace: Option<Trace>,
}

/// Knobs beyond [`BenchConfig`], for experiments; [`run`] uses the defaults.
#[derive(Clone, Copy, Debug)]
pub struct BenchOptions {
    /// Scheduler tuning (its seed is replaced by the bench seed).
    pub scheduler: SchedulerConfig,
    /// Share of fill-phase steps that are departures.
    pub fill_departure_share: f64,
    /// Steady churn pairs as a share of `vms`.
    pub churn_share: f64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            scheduler: SchedulerConfig::default(),
            fill_departure_share: FILL_DEPARTURE_SHARE,
            churn_share: CHURN_SHARE,
        }
    }
}

/// Bench failures.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Reading the trace failed.
    #[error("trace line {line}: {reason}")]
    Trace {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Reading the trace source failed.
    #[error("reading trace: {0}")]
    Read(#[from] std::io::Error),
    /// The trace does something impossible when replayed (deletes a VM it never added, adds
    /// one twice).
    #[error("trace replay: {0}")]
    Replay(String),
    /// Nonsensical configuration.
    #[error("invalid bench configuration: {0}")]
    Config(String),
    /// The scheduler refused something the bench expected to work.
    #[error("scheduler: {0}")]
    Scheduler(#[from] SchedError),
}

/// The result, as one JSON object with `-o json`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Placements per second of wall time over the whole event loop (arrivals, departures and
    /// building requests included).
    pub placements_per_sec: f64,
    /// Median decision+commit latency, µs.
    pub p50_us: f64,
    /// 99th percentile decision+commit latency, µs.
    pub p99_us: f64,
    /// Hosts holding VMs at the end.
    pub hosts_used: usize,
    /// Hosts FFD needs for the final resident set.
    pub ffd_hosts: usize,
    /// Peak resident memory of the process (VmHWM) at the end of the run, bytes.
    pub peak_rss_bytes: u64,
    /// Hard-constraint violations found by the independent validator.
    pub violations: u64,
    /// `hosts_used / ffd_hosts`.
    pub ffd_ratio: f64,
    /// Placements per second counting only time inside `place_and_commit`.
    pub decision_only_per_sec: f64,
    /// 99.9th percentile latency, µs.
    pub p999_us: f64,
    /// Slowest decision, µs.
    pub max_us: f64,
    /// Placements per second of wall time in the steady churn phase at full occupancy.
    pub steady_placements_per_sec: f64,
    /// p99 latency in the steady phase, µs.
    pub steady_p99_us: f64,
    /// Steady-phase placements per on-CPU second of the scheduling thread.
    pub steady_placements_per_cpu_sec: f64,
    /// Mean hosts examined per decision in the steady phase.
    pub steady_mean_hosts_examined: f64,
    /// On-CPU seconds of the scheduling thread in the event loop (from
    /// /proc/thread-self/schedstat; 0 where unavailable). On a shared machine wall time includes
    /// time spent waiting for a core; this does not.
    pub cpu_seconds_placement: f64,
    /// Placements per on-CPU second of the scheduling thread.
    pub placements_per_cpu_sec: f64,
    /// Imbalance (std dev of host load) at the end of the placement phase.
    pub imbalance_before: f64,
    /// Moves `propose_rebalance(REBALANCE_MOVES)` proposed, and their summed gain.
    pub rebalance_moves: usize,
    /// Summed gain of those moves.
    pub rebalance_gain: f64,
    /// Time `propose_rebalance` took, ms.
    pub rebalance_ms: f64,
    /// VMs on the host `plan_evacuation` was asked about (the fullest host by VM count).
    pub evacuation_vms: usize,
    /// Time `plan_evacuation` took, ms (0 VMs and 0 ms if it found no fit).
    pub evacuation_ms: f64,
    /// Peak RSS right after the placement phase (before FFD and validation), bytes.
    pub rss_after_placement_bytes: u64,
    /// Hosts in the fleet.
    pub hosts: usize,
    /// VMs resident at the end.
    pub vms: usize,
    /// Successful placements.
    pub placements: u64,
    /// Departures (releases).
    pub departures: u64,
    /// Arrivals nothing could hold.
    pub no_fit: u64,
    /// First no-fit message, if any.
    pub first_no_fit: Option<String>,
    /// No-fits by binding constraint (`capacity`, `capacity_combined`, filter names).
    pub no_fit_by_binding: BTreeMap<String, u64>,
    /// Mean utilisation of used hosts at the end: vCPU, memory, disk (from the bench's records).
    pub used_host_utilisation: [f64; 3],
    /// Lower bound on hosts for the final resident set: the fewest hosts (largest first) whose
    /// total capacity covers the total demand in every dimension, ignoring fragmentation.
    pub lower_bound_hosts: usize,
    /// VMs FFD could not place.
    pub ffd_unplaced: usize,
    /// Mean hosts examined per decision.
    pub mean_hosts_examined: f64,
    /// Mean feasible hosts scored per decision.
    pub mean_hosts_scored: f64,
    /// Seconds in the event loop.
    pub seconds_placement: f64,
    /// Seconds for FFD.
    pub seconds_ffd: f64,
    /// Seconds for validation.
    pub seconds_validate: f64,
    /// Seconds in total.
    pub seconds_total: f64,
    /// `generated` or `trace`.
    pub workload: String,
    /// Seed.
    pub seed: u64,
    /// Validator detail.
    pub validation: ValidationReport,
}

/// A trace: the operations of a workload, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// Operations.
    pub ops: Vec<TraceOp>,
}

/// One trace row.
#[derive(Clone, Debug, PartialEq)]
pub enum TraceOp {
    /// A VM arrives.
    Add {
        /// Milliseconds since the start (informative; order is the file's).
        time_ms: u64,
        /// VM name.
        vm: String,
        /// Demand.
        demand: Resources,
        /// Group and its rules.
        group: Option<GroupMembership>,
        /// Hard selectors.
        selectors: Vec<LabelSelector>,
    },
    /// A VM departs.
    Del {
        /// Milliseconds since the start.
        time_ms: u64,
        /// VM name.
        vm: String,
    },
}

impl Trace {
    /// Parse the CSV trace format documented in `docs/scheduler.md`.
    pub fn from_reader(r: impl BufRead) -> Result<Trace, BenchError> {
        let mut ops = Vec::new();
        let mut last_time = 0u64;
        for (i, line) in r.lines().enumerate() {
            let line = line?;
            let n = i + 1;
            let err = |reason: String| BenchError::Trace { line: n, reason };
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with("time_ms") {
                continue;
            }
            let f: Vec<&str> = t.split(',').map(str::trim).collect();
            if f.len() < 3 {
                return Err(err(format!(
                    "expected at least 3 fields, found {}",
                    f.len()
                )));
            }
            let time_ms: u64 = f[0]
                .parse()
                .map_err(|_| err(format!("time_ms {:?} is not a whole number", f[0])))?;
            if time_ms < last_time {
                return Err(err(format!("time_ms {time_ms} goes back from {last_time}")));
            }
            last_time = time_ms;
            let vm = f[2].to_string();
            if vm.is_empty() || vm.len() > crate::MAX_NAME_BYTES {
                return Err(err("vm name empty or too long".into()));
            }
            let field = |k: usize| f.get(k).copied().unwrap_or("");
            match f[1] {
                "del" => ops.push(TraceOp::Del { time_ms, vm }),
                "add" => {
                    let vcpus: f64 = field(3)
                        .parse()
                        .map_err(|_| err(format!("vcpus {:?} is not a number", field(3))))?;
                    if !(vcpus.is_finite() && vcpus > 0.0 && vcpus <= 4096.0) {
                        return Err(err(format!("vcpus {vcpus} out of range (0, 4096]")));
                    }
                    let memory_mib: u64 = field(4).parse().map_err(|_| {
                        err(format!("memory_mib {:?} is not a whole number", field(4)))
                    })?;
                    let disk_gib: u64 = field(5).parse().map_err(|_| {
                        err(format!("disk_gib {:?} is not a whole number", field(5)))
                    })?;
                    let demand = Resources {
                        cpu_millis: (vcpus * 1000.0).round() as u64,
                        memory_mib,
                        disk_gib,
                    };
                    let group = match field(6) {
                        "" => None,
                        name => {
                            let level = match field(8) {
                                "" => Level::Host,
                                l => Level::parse(l).ok_or_else(|| {
                                    err(format!("level {l:?} is not host|rack|zone|region"))
                                })?,
                            };
                            let hard = match field(10) {
                                "" | "hard" | "1" => true,
                                "soft" | "0" => false,
                                h => return Err(err(format!("hard {h:?} is not hard|soft"))),
                            };
                            let rules = match field(7) {
                                "" => vec![],
                                "anti-affinity" => vec![GroupRule::anti_affinity(level, hard)],
                                "affinity" => vec![GroupRule::Affinity { level, hard }],
                                "spread" => {
                                    let max: u32 = field(9).parse().map_err(|_| {
                                        err(format!(
                                            "max_per_domain {:?} is not a whole number",
                                            field(9)
                                        ))
                                    })?;
                                    if max == 0 {
                                        return Err(
                                            err("max_per_domain must be at least 1".into()),
                                        );
                                    }
                                    vec![GroupRule::Spread {
                                        level,
                                        max_per_domain: max,
                                        hard,
                                    }]
                                }
                                r => {
                                    return Err(err(format!(
                                        "rule {r:?} is not anti-affinity|affinity|spread"
                                    )));
                                }
                            };
                            Some(GroupMembership {
                                name: name.to_string(),
                                rules,
                            })
                        }
                    };
                    let mut selectors = Vec::new();
                    for s in field(11).split(';').filter(|s| !s.is_empty()) {
                        let (k, v) = s
                            .split_once('=')
                            .ok_or_else(|| err(format!("selector {s:?} is not key=value")))?;
                        selectors.push(LabelSelector::eq(k.trim(), v.trim()));
                    }
                    ops.push(TraceOp::Add {
                        time_ms,
                        vm,
                        demand,
                        group,
                        selectors,
                    });
                }
                o => return Err(err(format!("op {o:?} is not add|del"))),
            }
        }
        Ok(Trace { ops })
    }
}

/// The generated fleet: `n` hosts in one region, three zones, racks of [`HOSTS_PER_RACK`];
/// three host shapes; 30 % of racks with `disk=ssd`; CPU overcommit 4; every
/// [`CORDON_EVERY`]-th host cordoned.
pub fn generate_hosts(n: usize) -> Vec<HostSpec> {
    const SHAPES: [(u64, u64, u64); 3] = [
        (96, 1536 * 1024, 16_384),
        (128, 2048 * 1024, 32_768),
        (64, 1024 * 1024, 8_192),
    ];
    (0..n)
        .map(|i| {
            let rack = i / HOSTS_PER_RACK;
            let zone = ["a", "b", "c"][rack % 3];
            let shape = SHAPES[match i % 4 {
                0 | 2 => 0,
                1 => 1,
                _ => 2,
            }];
            let mut labels = BTreeMap::new();
            labels.insert(
                "disk".to_string(),
                if rack % 10 < 3 { "ssd" } else { "hdd" }.to_string(),
            );
            HostSpec {
                name: format!("host-{i}"),
                capacity: Resources::new(shape.0, shape.1, shape.2),
                overcommit: Overcommit {
                    cpu: 4.0,
                    memory: 1.0,
                    disk: 1.0,
                },
                labels,
                domain: FailureDomain {
                    region: "r1".into(),
                    zone: zone.into(),
                    rack: format!("rk-{rack}"),
                },
                state: if i % CORDON_EVERY == CORDON_EVERY - 1 {
                    HostState::Cordoned
                } else {
                    HostState::Ready
                },
            }
        })
        .collect()
}

/// A resident VM as the bench recorded it from decisions (not from the scheduler's state).
#[derive(Clone, Copy)]
struct BenchVm {
    /// Arrival number (names `vm-N`) or trace name index.
    id: u32,
    host: u32,
    demand: [u32; 3],
    group: u32,
    selset: u32,
}

/// Group classes of the generated workload: (share of VMs, rules, min size, max size).
fn group_classes() -> Vec<(f64, Vec<GroupRule>, u32, u32)> {
    vec![
        (
            0.12,
            vec![GroupRule::anti_affinity(Level::Host, true)],
            2,
            5,
        ),
        (
            0.05,
            vec![GroupRule::Spread {
                level: Level::Rack,
                max_per_domain: 2,
                hard: true,
            }],
            4,
            16,
        ),
        (
            0.03,
            vec![GroupRule::Spread {
                level: Level::Zone,
                max_per_domain: 3,
                hard: true,
            }],
            3,
            9,
        ),
        (
            0.02,
            vec![GroupRule::anti_affinity(Level::Host, false)],
            2,
            6,
        ),
        (
            0.01,
            vec![GroupRule::Affinity {
                level: Level::Rack,
                hard: true,
            }],
            2,
            4,
        ),
    ]
}

struct Generator {
    rng: SplitMix64,
    classes: Vec<(f64, Vec<GroupRule>, u32, u32)>,
    /// Group being deployed: (group, members still to come, their demand). Members of a group
    /// arrive back to back with one shape, as replicas of a deployment do.
    burst: Option<(u32, u32, [u32; 3])>,
    next_arrival: u32,
    /// Racks and zones in the fleet, to keep spread groups satisfiable on small fleets.
    racks: u32,
    zones: u32,
}

/// VM shapes: vCPU count weights and GiB per vCPU weights.
const VCPUS: [(u32, f64); 6] = [
    (1, 0.45),
    (2, 0.30),
    (4, 0.15),
    (8, 0.07),
    (16, 0.025),
    (32, 0.005),
];
const GIB_PER_VCPU: [(u32, f64); 3] = [(2, 0.35), (4, 0.45), (8, 0.20)];

fn pick<T: Copy>(rng: &mut SplitMix64, table: &[(T, f64)]) -> T {
    let mut x = rng.unit();
    for &(v, w) in table {
        if x < w {
            return v;
        }
        x -= w;
    }
    table[table.len() - 1].0
}

struct Tables {
    selsets: Vec<Vec<LabelSelector>>,
    groups: Vec<Vec<GroupRule>>,
    group_names: Vec<String>,
    group_selset: Vec<u32>,
}

impl Generator {
    fn arrival(&mut self, t: &mut Tables) -> BenchVm {
        let id = self.next_arrival;
        self.next_arrival += 1;
        if let Some((g, left, demand)) = self.burst {
            self.burst = if left > 1 {
                Some((g, left - 1, demand))
            } else {
                None
            };
            return BenchVm {
                id,
                host: u32::MAX,
                demand,
                group: g,
                selset: t.group_selset[g as usize],
            };
        }
        let r = &mut self.rng;
        let vcpus = pick(r, &VCPUS);
        let gib = pick(r, &GIB_PER_VCPU);
        let disk = 20 + 10 * vcpus + (r.below(4) as u32) * 10;
        let demand = [vcpus * 1000, vcpus * gib * 1024, disk];
        // Classes are drawn per group, weighted so that each class's share of VMs holds.
        let mut x = r.unit();
        let mut class = None;
        for (c, (share, _, lo, hi)) in self.classes.iter().enumerate() {
            let per_draw = share / (f64::from(lo + hi) / 2.0);
            if x < per_draw {
                class = Some(c);
                break;
            }
            x -= per_draw;
        }
        match class {
            Some(c) => {
                let (_, rules, lo, hi) = &self.classes[c];
                let mut size = lo + r.below(u64::from(hi - lo + 1)) as u32;
                // Spread groups must fit the fleet's domains; they take any disk (ssd racks are
                // fewer than the group may need).
                let mut ssd_ok = true;
                for rule in rules {
                    if let GroupRule::Spread {
                        level,
                        max_per_domain,
                        hard: true,
                    } = *rule
                    {
                        let domains = match level {
                            Level::Rack => self.racks,
                            Level::Zone => self.zones,
                            _ => u32::MAX / 4,
                        };
                        size = size.min(max_per_domain.saturating_mul(domains)).max(1);
                        ssd_ok &= level == Level::Host;
                    }
                }
                let g = t.groups.len() as u32;
                t.groups.push(rules.clone());
                t.group_names.push(format!("g-{g}"));
                let selset = if ssd_ok && r.chance(0.2) { 1 } else { 0 };
                t.group_selset.push(selset);
                if size > 1 {
                    self.burst = Some((g, size - 1, demand));
                }
                BenchVm {
                    id,
                    host: u32::MAX,
                    demand,
                    group: g,
                    selset,
                }
            }
            None => {
                // Ungrouped: 20 % want ssd, 2 % a given zone.
                let y = r.unit();
                let selset = if y < 0.2 {
                    1
                } else if y < 0.22 {
                    2 + r.below(3) as u32
                } else {
                    0
                };
                BenchVm {
                    id,
                    host: u32::MAX,
                    demand,
                    group: u32::MAX,
                    selset,
                }
            }
        }
    }
}

/// Log-linear latency histogram (16 sub-buckets per power of two, ≤ 6 % error).
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_ns: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; 1024],
            total: 0,
            max_ns: 0,
        }
    }
    fn index(v: u64) -> usize {
        if v < 16 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize;
        16 + (e - 4) * 16 + ((v >> (e - 4)) & 15) as usize
    }
    fn lower(i: usize) -> u64 {
        if i < 16 {
            return i as u64;
        }
        let e = (i - 16) / 16 + 4;
        let sub = ((i - 16) % 16) as u64;
        (1u64 << e) + (sub << (e - 4))
    }
    fn record(&mut self, d: Duration) {
        let v = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max_ns = self.max_ns.max(v);
    }
    /// Quantile in µs (bucket midpoint).
    fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let lo = Self::lower(i);
                let hi = Self::lower(i + 1);
                return (lo + hi) as f64 / 2.0 / 1000.0;
            }
        }
        self.max_ns as f64 / 1000.0
    }
}

/// Coarse class of a no-fit scope for the breakdown: `:affinity`, `:selector`, or nothing.
fn scope_kind(scope: &str) -> &'static str {
    if scope.contains("(affinity of group") {
        ":affinity"
    } else if scope.is_empty() {
        ""
    } else {
        ":selector"
    }
}

fn utilisation(hosts: &[HostSpec], vms: &[BenchVm]) -> [f64; 3] {
    let mut used = vec![[0u64; 3]; hosts.len()];
    for v in vms {
        for d in 0..3 {
            used[v.host as usize][d] += u64::from(v.demand[d]);
        }
    }
    let mut sum = [0.0; 3];
    let mut n = 0usize;
    for (h, u) in hosts.iter().zip(&used) {
        if u[1] == 0 {
            continue;
        }
        n += 1;
        let cap = [
            h.capacity.cpu_millis as f64 * h.overcommit.cpu,
            h.capacity.memory_mib as f64 * h.overcommit.memory,
            h.capacity.disk_gib as f64 * h.overcommit.disk,
        ];
        for d in 0..3 {
            sum[d] += u[d] as f64 / cap[d];
        }
    }
    sum.map(|x| x / n.max(1) as f64)
}

fn lower_bound(hosts: &[HostSpec], vms: &[BenchVm]) -> usize {
    let mut total = [0u64; 3];
    for v in vms {
        for d in 0..3 {
            total[d] += u64::from(v.demand[d]);
        }
    }
    let mut need = 0;
    for d in 0..3 {
        let mut caps: Vec<u64> = hosts
            .iter()
            .filter(|h| h.state == HostState::Ready)
            .map(|h| match d {
                0 => (h.capacity.cpu_millis as f64 * h.overcommit.cpu) as u64,
                1 => (h.capacity.memory_mib as f64 * h.overcommit.memory) as u64,
                _ => (h.capacity.disk_gib as f64 * h.overcommit.disk) as u64,
            })
            .collect();
        caps.sort_unstable_by(|a, b| b.cmp(a));
        let mut sum = 0u64;
        let mut k = 0;
        while sum < total[d] && k < caps.len() {
            sum += caps[k];
            k += 1;
        }
        need = need.max(k);
    }
    need
}

/// Nanoseconds this thread has run on a CPU (first field of /proc/thread-self/schedstat).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Peak resident set size of this process (VmHWM), bytes; 0 where /proc is unavailable.
pub fn peak_rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn request_for(vm: &BenchVm, t: &Tables) -> Request {
    let mut req = Request::new(Resources {
        cpu_millis: u64::from(vm.demand[0]),
        memory_mib: u64::from(vm.demand[1]),
        disk_gib: u64::from(vm.demand[2]),
    });
    req.selectors = t.selsets[vm.selset as usize].clone();
    if vm.group != u32::MAX {
        req.groups = vec![GroupMembership {
            name: t.group_names[vm.group as usize].clone(),
            rules: t.groups[vm.group as usize].clone(),
        }];
    }
    req
}

enum Source {
    Generated(Generator),
    Trace {
        ops: std::vec::IntoIter<TraceOp>,
        names: Vec<String>,
        by_name: HashMap<String, u32>,
        group_ids: HashMap<String, u32>,
        selset_ids: HashMap<Vec<LabelSelector>, u32>,
    },
}

/// Run the benchmark with the default options.
pub fn run(cfg: &BenchConfig) -> Result<BenchReport, BenchError> {
    run_with(cfg, &BenchOptions::default())
}

/// Run the benchmark with explicit options.
pub fn run_with(cfg: &BenchConfig, opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    let started = Instant::now();
    if cfg.hosts == 0 {
        return Err(BenchError::Config("--hosts must be at least 1".into()));
    }
    if cfg.trace.is_none() && cfg.vms == 0 {
        return Err(BenchError::Config("--vms must be at least 1".into()));
    }
    if cfg.vms > u32::MAX as usize / 2 {
        return Err(BenchError::Config("--vms too large".into()));
    }
    let hosts = generate_hosts(cfg.hosts);
    let host_index: HashMap<String, u32> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.clone(), i as u32))
        .collect();
    let expected_vms = match &cfg.trace {
        Some(t) => t.ops.len(),
        None => cfg.vms,
    };
    let sched_cfg = SchedulerConfig {
        seed: cfg.seed,
        ..opts.scheduler
    };
    let mut sched = Scheduler::with_capacity(sched_cfg, cfg.hosts, expected_vms + expected_vms / 8);
    for h in &hosts {
        sched.upsert_host(h.clone())?;
    }
    let mut tables = Tables {
        selsets: vec![
            vec![],
            vec![LabelSelector::eq("disk", "ssd")],
            vec![LabelSelector::eq("zone", "a")],
            vec![LabelSelector::eq("zone", "b")],
            vec![LabelSelector::eq("zone", "c")],
        ],
        groups: Vec::new(),
        group_names: Vec::new(),
        group_selset: Vec::new(),
    };
    let mut rng = SplitMix64::new(cfg.seed ^ 0x005E_ED0F_BE4C);
    let classes = group_classes();
    let mut source = match &cfg.trace {
        None => Source::Generated(Generator {
            rng: SplitMix64::new(cfg.seed),
            classes,
            burst: None,
            racks: cfg.hosts.div_ceil(HOSTS_PER_RACK) as u32,
            zones: cfg.hosts.div_ceil(HOSTS_PER_RACK).min(3) as u32,
            next_arrival: 0,
        }),
        Some(t) => {
            tables.selsets.truncate(1);
            Source::Trace {
                ops: t.ops.clone().into_iter(),
                names: Vec::new(),
                by_name: HashMap::new(),
                group_ids: HashMap::new(),
                selset_ids: HashMap::from([(Vec::new(), 0)]),
            }
        }
    };
    // Resident VMs, dense: departures swap-remove.
    let mut resident: Vec<BenchVm> = Vec::with_capacity(expected_vms);
    let mut hist = Histogram::new();
    let mut steady_hist = Histogram::new();
    let (mut placements, mut departures, mut no_fit) = (0u64, 0u64, 0u64);
    let mut first_no_fit = None;
    let mut no_fit_by_binding: BTreeMap<String, u64> = BTreeMap::new();
    let (mut examined_sum, mut scored_sum) = (0u64, 0u64);
    let mut decision_time = Duration::ZERO;
    let churn_steps = (cfg.vms as f64 * opts.churn_share) as u64;
    let mut churn_done = 0u64;
    let mut steady_started: Option<Instant> = None;
    let mut steady_placements = 0u64;
    let mut steady_cpu_started: Option<u64> = None;
    let loop_started = Instant::now();
    let cpu_started = thread_cpu_ns();
    let mut steady_examined = 0u64;
    let mut name = String::with_capacity(24);
    loop {
        // 1. Decide the next event.
        let arrival: Option<BenchVm> = match &mut source {
            Source::Generated(g) => {
                let filling = resident.len() < cfg.vms;
                if !filling && churn_done >= churn_steps {
                    break;
                }
                let depart = if filling {
                    !resident.is_empty() && rng.chance(opts.fill_departure_share)
                } else {
                    if steady_started.is_none() {
                        steady_started = Some(Instant::now());
                        steady_cpu_started = thread_cpu_ns();
                    }
                    churn_done += 1;
                    true
                };
                if depart {
                    let p = rng.below(resident.len() as u64) as usize;
                    let vm = resident.swap_remove(p);
                    name.clear();
                    use std::fmt::Write;
                    let _ = write!(name, "vm-{}", vm.id);
                    sched.release(&name)?;
                    departures += 1;
                }
                Some(g.arrival(&mut tables))
            }
            Source::Trace {
                ops,
                names,
                by_name,
                group_ids,
                selset_ids,
            } => match ops.next() {
                None => break,
                Some(TraceOp::Del { vm, .. }) => {
                    let Some(p) = by_name.remove(&vm) else {
                        return Err(BenchError::Replay(format!(
                            "del of vm {vm}, which was never added"
                        )));
                    };
                    if p == u32::MAX {
                        continue; // its add found no host
                    }
                    let p = p as usize;
                    let gone = resident.swap_remove(p);
                    if let Some(moved) = resident.get(p) {
                        by_name.insert(names[moved.id as usize].clone(), p as u32);
                    }
                    sched.release(&names[gone.id as usize])?;
                    departures += 1;
                    None
                }
                Some(TraceOp::Add {
                    vm,
                    demand,
                    group,
                    selectors,
                    ..
                }) => {
                    if by_name.contains_key(&vm) {
                        return Err(BenchError::Replay(format!(
                            "add of vm {vm}, which is already resident"
                        )));
                    }
                    let id = names.len() as u32;
                    names.push(vm);
                    let group = match group {
                        None => u32::MAX,
                        Some(m) => *group_ids.entry(m.name.clone()).or_insert_with(|| {
                            tables.groups.push(m.rules.clone());
                            tables.group_names.push(m.name.clone());
                            (tables.groups.len() - 1) as u32
                        }),
                    };
                    let selset = *selset_ids.entry(selectors.clone()).or_insert_with(|| {
                        tables.selsets.push(selectors.clone());
                        (tables.selsets.len() - 1) as u32
                    });
                    let cap = |x: u64| x.min(u64::from(u32::MAX)) as u32;
                    Some(BenchVm {
                        id,
                        host: u32::MAX,
                        demand: [
                            cap(demand.cpu_millis),
                            cap(demand.memory_mib),
                            cap(demand.disk_gib),
                        ],
                        group,
                        selset,
                    })
                }
            },
        };
        let Some(mut vm) = arrival else { continue };
        // 2. Place it.
        let req = request_for(&vm, &tables);
        let vm_name: &str = match &source {
            Source::Generated(_) => {
                name.clear();
                use std::fmt::Write;
                let _ = write!(name, "vm-{}", vm.id);
                &name
            }
            Source::Trace { names, .. } => &names[vm.id as usize],
        };
        let t0 = Instant::now();
        let result = sched.place_and_commit(vm_name, &req);
        let dt = t0.elapsed();
        decision_time += dt;
        hist.record(dt);
        if steady_started.is_some() {
            steady_hist.record(dt);
        }
        match result {
            Ok(p) => {
                placements += 1;
                if steady_started.is_some() {
                    steady_placements += 1;
                    steady_examined += u64::from(p.hosts_examined);
                }
                examined_sum += u64::from(p.hosts_examined);
                scored_sum += u64::from(p.hosts_scored);
                vm.host = *host_index.get(&p.host).ok_or_else(|| {
                    BenchError::Config(format!("scheduler chose unknown host {}", p.host))
                })?;
                if let Source::Trace { by_name, names, .. } = &mut source {
                    by_name.insert(names[vm.id as usize].clone(), resident.len() as u32);
                }
                resident.push(vm);
            }
            Err(SchedError::NoFit(e)) => {
                no_fit += 1;
                let kind = match &e.binding {
                    crate::Binding::Filter { filter, .. } => filter.clone(),
                    crate::Binding::Capacity {
                        dimension, scope, ..
                    } => format!("capacity:{}{}", dimension.noun(), scope_kind(scope)),
                    crate::Binding::CapacityCombined { scope, .. } => {
                        format!("capacity:combined{}", scope_kind(scope))
                    }
                    crate::Binding::NoHosts => "no_hosts".into(),
                    crate::Binding::NoReadyHost { .. } => "no_ready_host".into(),
                };
                *no_fit_by_binding.entry(kind).or_default() += 1;
                if first_no_fit.is_none() {
                    first_no_fit = Some(e.to_string());
                }
                if let Source::Trace { by_name, names, .. } = &mut source {
                    // A later `del` of this VM is skipped.
                    by_name.insert(names[vm.id as usize].clone(), u32::MAX);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let seconds_placement = loop_started.elapsed().as_secs_f64();
    let cpu_seconds_placement = match (cpu_started, thread_cpu_ns()) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e9,
        _ => 0.0,
    };
    let steady_secs = steady_started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    let steady_cpu_secs = match (steady_cpu_started, thread_cpu_ns()) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e9,
        _ => 0.0,
    };
    let hosts_used = sched.stats().hosts_used;
    // Rebalancing and evacuation planning on the full fleet (proposals only: the fleet is
    // unchanged, so the measurements below see the placement phase's result).
    let imbalance_before = sched.imbalance();
    let t = Instant::now();
    let moves = sched.propose_rebalance(REBALANCE_MOVES);
    let rebalance_ms = t.elapsed().as_secs_f64() * 1000.0;
    let rebalance_gain: f64 = moves.iter().map(|m| m.gain).sum();
    let mut per_host = vec![0usize; hosts.len()];
    for v in &resident {
        per_host[v.host as usize] += 1;
    }
    let fullest = (0..hosts.len())
        .max_by_key(|&h| (per_host[h], std::cmp::Reverse(h)))
        .unwrap_or(0);
    let t = Instant::now();
    let (evacuation_vms, evacuation_ms) = match sched.plan_evacuation(&hosts[fullest].name) {
        Ok(plan) => (plan.len(), t.elapsed().as_secs_f64() * 1000.0),
        Err(_) => (0, 0.0),
    };
    let rss_after_placement_bytes = peak_rss_bytes();
    // The scheduler's state is not needed any more: FFD and the validator use the bench's own
    // records only.
    drop(sched);

    let ffd_started = Instant::now();
    let mut items: Vec<FfdItem> = resident
        .iter()
        .map(|v| FfdItem {
            demand: v.demand,
            selector_set: v.selset,
            group: v.group,
        })
        .collect();
    let FfdResult {
        hosts_used: ffd_hosts,
        unplaced: ffd_unplaced,
    } = first_fit_decreasing(&hosts, &tables.selsets, &tables.groups, &mut items);
    drop(items);
    let seconds_ffd = ffd_started.elapsed().as_secs_f64();

    let val_started = Instant::now();
    let one_group: Vec<usize> = (0..tables.groups.len()).collect();
    let validation = validate(
        &hosts,
        &tables.groups,
        resident.iter().map(|v| Assignment {
            host: v.host as usize,
            demand: Resources {
                cpu_millis: u64::from(v.demand[0]),
                memory_mib: u64::from(v.demand[1]),
                disk_gib: u64::from(v.demand[2]),
            },
            selectors: &tables.selsets[v.selset as usize],
            groups: if v.group == u32::MAX {
                &[]
            } else {
                &one_group[v.group as usize..v.group as usize + 1]
            },
            anti_affinity_to: &[],
        }),
    );
    let seconds_validate = val_started.elapsed().as_secs_f64();
    let secs = seconds_placement.max(1e-9);
    Ok(BenchReport {
        placements_per_sec: placements as f64 / secs,
        p50_us: hist.quantile_us(0.50),
        p99_us: hist.quantile_us(0.99),
        hosts_used,
        ffd_hosts,
        peak_rss_bytes: peak_rss_bytes(),
        violations: validation.violations,
        ffd_ratio: if ffd_hosts == 0 {
            0.0
        } else {
            hosts_used as f64 / ffd_hosts as f64
        },
        decision_only_per_sec: placements as f64 / decision_time.as_secs_f64().max(1e-9),
        p999_us: hist.quantile_us(0.999),
        max_us: hist.max_ns as f64 / 1000.0,
        steady_placements_per_sec: if steady_secs > 0.0 {
            steady_placements as f64 / steady_secs
        } else {
            0.0
        },
        steady_p99_us: steady_hist.quantile_us(0.99),
        steady_placements_per_cpu_sec: if steady_cpu_secs > 0.0 {
            steady_placements as f64 / steady_cpu_secs
        } else {
            0.0
        },
        rss_after_placement_bytes,
        imbalance_before,
        rebalance_moves: moves.len(),
        rebalance_gain,
        rebalance_ms,
        evacuation_vms,
        evacuation_ms,
        steady_mean_hosts_examined: steady_examined as f64 / steady_placements.max(1) as f64,
        cpu_seconds_placement,
        placements_per_cpu_sec: if cpu_seconds_placement > 0.0 {
            placements as f64 / cpu_seconds_placement
        } else {
            0.0
        },
        hosts: cfg.hosts,
        vms: resident.len(),
        placements,
        departures,
        no_fit,
        first_no_fit,
        no_fit_by_binding,
        lower_bound_hosts: lower_bound(&hosts, &resident),
        used_host_utilisation: utilisation(&hosts, &resident),
        ffd_unplaced,
        mean_hosts_examined: examined_sum as f64 / placements.max(1) as f64,
        mean_hosts_scored: scored_sum as f64 / placements.max(1) as f64,
        seconds_placement,
        seconds_ffd,
        seconds_validate,
        seconds_total: started.elapsed().as_secs_f64(),
        workload: if cfg.trace.is_some() {
            "trace"
        } else {
            "generated"
        }
        .to_string(),
        seed: cfg.seed,
        validation,
    })
}
