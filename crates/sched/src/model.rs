//! The scheduler's public vocabulary: hosts, their capacity and failure domains, requests with
//! their constraints, and the decisions (placements, moves) the scheduler hands back.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Amounts of the three scheduled resources. Also used for host capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources {
    /// vCPU in thousandths (`2_000` = 2 vCPU).
    pub cpu_millis: u64,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Disk in GiB.
    pub disk_gib: u64,
}

impl Resources {
    /// Resources from whole vCPUs, MiB of memory and GiB of disk.
    pub const fn new(vcpus: u64, memory_mib: u64, disk_gib: u64) -> Self {
        Resources {
            cpu_millis: vcpus * 1000,
            memory_mib,
            disk_gib,
        }
    }

    pub(crate) fn as_array(&self) -> [u64; 3] {
        [self.cpu_millis, self.memory_mib, self.disk_gib]
    }
}

/// One scheduled resource dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    /// vCPU (with CPU overcommit applied to host capacity).
    Cpu,
    /// Memory.
    Memory,
    /// Disk.
    Disk,
}

impl Dimension {
    /// All dimensions in storage order.
    pub const ALL: [Dimension; 3] = [Dimension::Cpu, Dimension::Memory, Dimension::Disk];

    /// Human amount of this dimension, e.g. `64 GiB`, `16 vCPU`, `1.5 vCPU`.
    pub fn format_amount(self, amount: u64) -> String {
        match self {
            Dimension::Cpu => {
                if amount.is_multiple_of(1000) {
                    format!("{} vCPU", amount / 1000)
                } else {
                    let s = format!("{:.3}", amount as f64 / 1000.0);
                    format!("{} vCPU", s.trim_end_matches('0').trim_end_matches('.'))
                }
            }
            Dimension::Memory => {
                if amount.is_multiple_of(1024) {
                    format!("{} GiB", amount / 1024)
                } else {
                    format!("{amount} MiB")
                }
            }
            Dimension::Disk => format!("{amount} GiB"),
        }
    }

    /// Word used in messages: `vCPU`, `memory`, `disk`.
    pub fn noun(self) -> &'static str {
        match self {
            Dimension::Cpu => "vCPU",
            Dimension::Memory => "memory",
            Dimension::Disk => "disk",
        }
    }
}

/// Overcommit ratio per dimension: a host offers `capacity × ratio` to VMs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overcommit {
    /// vCPU per physical CPU, typically 1–8.
    pub cpu: f64,
    /// Usually 1.0 (ballooning and KSM make more possible, at a risk).
    pub memory: f64,
    /// Thin provisioning ratio for disk.
    pub disk: f64,
}

impl Default for Overcommit {
    fn default() -> Self {
        Overcommit {
            cpu: 1.0,
            memory: 1.0,
            disk: 1.0,
        }
    }
}

/// Failure-domain levels, from the smallest to the largest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// One host.
    Host,
    /// A rack (shared top-of-rack switch and power).
    Rack,
    /// An availability zone.
    Zone,
    /// A region.
    Region,
}

impl Level {
    /// All levels, smallest first.
    pub const ALL: [Level; 4] = [Level::Host, Level::Rack, Level::Zone, Level::Region];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name, as in the trace format and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Host => "host",
            Level::Rack => "rack",
            Level::Zone => "zone",
            Level::Region => "region",
        }
    }

    /// Parse `host|rack|zone|region`.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "host" => Some(Level::Host),
            "rack" => Some(Level::Rack),
            "zone" => Some(Level::Zone),
            "region" => Some(Level::Region),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a host sits. Rack names need only be unique within their zone, zone names within
/// their region. The names are also visible to selectors under the keys `region`, `zone`, `rack`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FailureDomain {
    /// Region name.
    pub region: String,
    /// Zone name.
    pub zone: String,
    /// Rack name.
    pub rack: String,
}

/// Schedulability of a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    /// Accepts new VMs.
    Ready,
    /// Keeps its VMs, takes no new ones (`novacron node cordon`).
    Cordoned,
    /// Takes no new VMs and its VMs are being moved away (`novacron node drain`).
    Draining,
    /// Unreachable or failed; its VMs need an HA restart elsewhere.
    Down,
}

impl HostState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Ready => "ready",
            HostState::Cordoned => "cordoned",
            HostState::Draining => "draining",
            HostState::Down => "down",
        }
    }
}

/// A host as the control plane describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostSpec {
    /// Node name (unique).
    pub name: String,
    /// Physical capacity; overcommit is applied on top.
    pub capacity: Resources,
    /// Overcommit ratios.
    pub overcommit: Overcommit,
    /// Free-form labels (`disk=ssd`, `gpu=a100`).
    pub labels: BTreeMap<String, String>,
    /// Failure domains.
    pub domain: FailureDomain,
    /// Initial state.
    pub state: HostState,
}

impl HostSpec {
    /// A ready host with no labels and no overcommit.
    pub fn new(name: impl Into<String>, capacity: Resources, domain: FailureDomain) -> Self {
        HostSpec {
            name: name.into(),
            capacity,
            overcommit: Overcommit::default(),
            labels: BTreeMap::new(),
            domain,
            state: HostState::Ready,
        }
    }
}

/// Label selector operator.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SelectorOp {
    /// The label's value is one of these.
    In(Vec<String>),
    /// The label is absent or its value is none of these.
    NotIn(Vec<String>),
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// A hard requirement on host labels. The keys `region`, `zone` and `rack` match the host's
/// failure-domain names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LabelSelector {
    /// Label key.
    pub key: String,
    /// Condition on the value.
    pub op: SelectorOp,
}

impl LabelSelector {
    /// `key = value`.
    pub fn eq(key: impl Into<String>, value: impl Into<String>) -> Self {
        LabelSelector {
            key: key.into(),
            op: SelectorOp::In(vec![value.into()]),
        }
    }
}

impl LabelSelector {
    /// Whether a host with `labels` satisfies this selector (the failure-domain keys are not
    /// in `labels`; the scheduler's own filter resolves them). For explaining a refusal in the
    /// caller's words; decisions go through [`crate::Scheduler`].
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match (&self.op, value) {
            (SelectorOp::In(vs), Some(v)) => vs.contains(v),
            (SelectorOp::In(_), None) => false,
            (SelectorOp::NotIn(vs), Some(v)) => !vs.contains(v),
            (SelectorOp::NotIn(_), None) => true,
            (SelectorOp::Exists, v) => v.is_some(),
            (SelectorOp::DoesNotExist, v) => v.is_none(),
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            SelectorOp::In(v) if v.len() == 1 => write!(f, "{}={}", self.key, v[0]),
            SelectorOp::In(v) => write!(f, "{} in ({})", self.key, v.join(",")),
            SelectorOp::NotIn(v) if v.len() == 1 => write!(f, "{}!={}", self.key, v[0]),
            SelectorOp::NotIn(v) => write!(f, "{} notin ({})", self.key, v.join(",")),
            SelectorOp::Exists => write!(f, "{}", self.key),
            SelectorOp::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// A policy a group imposes on its members (the OpenStack server-group model): fixed by the
/// group's first member and checked for every later one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GroupRule {
    /// At most `max_per_domain` members in any one domain of `level`. Anti-affinity is
    /// `max_per_domain = 1`. Soft: members prefer the domain with the fewest members.
    Spread {
        /// Domain level.
        level: Level,
        /// Cap per domain (hard) — ignored when soft except as a preference.
        max_per_domain: u32,
        /// Hard (filter) or soft (score).
        hard: bool,
    },
    /// All members in one domain of `level` (hard), or preferably (soft).
    Affinity {
        /// Domain level.
        level: Level,
        /// Hard (filter) or soft (score).
        hard: bool,
    },
}

impl GroupRule {
    /// No two members in the same domain of `level`.
    pub const fn anti_affinity(level: Level, hard: bool) -> Self {
        GroupRule::Spread {
            level,
            max_per_domain: 1,
            hard,
        }
    }

    /// True for hard rules.
    pub fn is_hard(&self) -> bool {
        match *self {
            GroupRule::Spread { hard, .. } | GroupRule::Affinity { hard, .. } => hard,
        }
    }
}

/// Membership of the requested VM in a named group, with the group's rules.
/// An empty `rules` list inherits the rules of an existing group.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupMembership {
    /// Group name.
    pub name: String,
    /// The group's rules.
    pub rules: Vec<GroupRule>,
}

/// A constraint relative to another group the VM is not (necessarily) a member of.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupTerm {
    /// The other group.
    pub group: String,
    /// Domain level at which "near" / "away" is judged.
    pub level: Level,
    /// Hard (filter) or soft (score).
    pub hard: bool,
}

/// What a VM needs from its host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Resource demand.
    pub demand: Resources,
    /// Hard label requirements (all must hold).
    pub selectors: Vec<LabelSelector>,
    /// Groups the VM joins.
    pub groups: Vec<GroupMembership>,
    /// Be in the same domain as some member of each group. Hard terms are checked when the
    /// VM is placed (departures of the other group later do not move it).
    pub affinity_to: Vec<GroupTerm>,
    /// Be in no domain holding a member of each group. Hard terms are symmetric: members of that
    /// group placed later also avoid this VM's domain.
    pub anti_affinity_to: Vec<GroupTerm>,
    /// Hosts that must not be chosen (HA restart away from a failed host, evacuation).
    pub exclude_hosts: Vec<String>,
    /// Tenant, passed to the quota hook.
    pub tenant: Option<String>,
}

impl Request {
    /// A request with only a demand.
    pub fn new(demand: Resources) -> Self {
        Request {
            demand,
            ..Default::default()
        }
    }
}

/// A placement decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Chosen host name.
    pub host: String,
    /// Total score of the chosen host (higher is better; comparable only within one decision).
    pub score: f64,
    /// Hosts looked at by the filter stage.
    pub hosts_examined: u32,
    /// Feasible hosts scored.
    pub hosts_scored: u32,
}

/// A proposed migration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Move {
    /// VM name.
    pub vm: String,
    /// Current host.
    pub from: String,
    /// Proposed host.
    pub to: String,
    /// Decrease of the imbalance metric this move brings (see `docs/scheduler.md`).
    pub gain: f64,
}

/// Bin-pack (fill the fullest host that fits; frees whole hosts) or spread (emptiest first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Best fit: fewest hosts used.
    #[default]
    BinPack,
    /// Worst fit: lowest load per host.
    Spread,
}

/// Weights of the built-in scorers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreWeights {
    /// Bin-pack / spread fit.
    pub fit: f64,
    /// Balance of utilisation across dimensions on the host.
    pub balance: f64,
    /// Soft group rules and soft terms.
    pub soft_constraints: f64,
    /// Keeping hosts with demanded labels for requests that select them.
    pub scarcity: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            fit: 1.0,
            balance: 0.25,
            soft_constraints: 1.0,
            scarcity: 0.5,
        }
    }
}

/// Tuning of the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// Packing strategy.
    pub strategy: Strategy,
    /// Seed of the sampling PRNG: same seed + same calls = same decisions.
    pub seed: u64,
    /// Stop collecting candidates once this many feasible hosts were found (hosts scored).
    pub max_scored: usize,
    /// Stop scanning after this many hosts were examined, if at least one was feasible.
    pub max_examined: usize,
    /// Scorer weights.
    pub weights: ScoreWeights,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            strategy: Strategy::BinPack,
            seed: 1,
            max_scored: 8,
            max_examined: 256,
            weights: ScoreWeights::default(),
        }
    }
}
