//! Typed errors. A no-fit names the constraint that bound, with the best value that was
//! available, so users read "no host has 64 GiB free memory in zone b; largest free: 48 GiB on
//! host-17" instead of a bare failure.

use crate::model::Dimension;
use serde::Serialize;

/// Why nothing fits, as data; [`NoFit`]'s `Display` is the one-line message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Binding {
    /// The fleet has no hosts at all.
    NoHosts,
    /// Every host is cordoned, draining or down.
    NoReadyHost {
        /// Cordoned hosts.
        cordoned: usize,
        /// Draining hosts.
        draining: usize,
        /// Down hosts.
        down: usize,
    },
    /// One dimension is short on every host left after the other filters.
    Capacity {
        /// The short dimension.
        dimension: Dimension,
        /// What the request needs.
        demand: u64,
        /// The most free on any remaining host.
        largest_free: u64,
        /// That host.
        largest_host: String,
        /// Where the search was confined (`" in zone b"`), may be empty.
        scope: String,
    },
    /// Each dimension is available somewhere, but never all on one host.
    CapacityCombined {
        /// The host that came closest.
        closest_host: String,
        /// Its free vCPU in thousandths, memory in MiB, disk in GiB.
        closest_free: [u64; 3],
        /// Where the search was confined.
        scope: String,
    },
    /// A constraint filter rejected the last candidates.
    Filter {
        /// The filter's name.
        filter: String,
        /// What it requires, in words.
        requirement: String,
        /// Hosts it rejected.
        rejected: usize,
        /// Where the search was confined.
        scope: String,
    },
}

/// Nothing fits the request.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct NoFit {
    /// The binding constraint.
    pub binding: Binding,
    /// Hosts eliminated by each filter (first failing filter per host), in filter order.
    pub rejected_by: Vec<(String, usize)>,
    /// Hosts looked at.
    pub hosts_considered: usize,
    pub(crate) message: String,
}

impl NoFit {
    pub(crate) fn new(
        binding: Binding,
        rejected_by: Vec<(String, usize)>,
        hosts_considered: usize,
        demand: [u64; 3],
    ) -> Self {
        let message = match &binding {
            Binding::NoHosts => "no hosts registered".to_string(),
            Binding::NoReadyHost {
                cordoned,
                draining,
                down,
            } => {
                format!("no ready host: {cordoned} cordoned, {draining} draining, {down} down")
            }
            Binding::Capacity {
                dimension,
                demand,
                largest_free,
                largest_host,
                scope,
            } => {
                let want = dimension.format_amount(*demand);
                let have = dimension.format_amount(*largest_free);
                let what = match dimension {
                    Dimension::Cpu => format!("{want} free"),
                    Dimension::Memory => format!("{want} free memory"),
                    Dimension::Disk => format!("{want} free disk"),
                };
                format!("no host has {what}{scope}; largest free: {have} on {largest_host}")
            }
            Binding::CapacityCombined {
                closest_host,
                closest_free,
                scope,
            } => format!(
                "no host has {}, {} memory and {} disk free at once{scope}; closest: {closest_host} with {}, {} memory, {} disk free",
                Dimension::Cpu.format_amount(demand[0]),
                Dimension::Memory.format_amount(demand[1]),
                Dimension::Disk.format_amount(demand[2]),
                Dimension::Cpu.format_amount(closest_free[0]),
                Dimension::Memory.format_amount(closest_free[1]),
                Dimension::Disk.format_amount(closest_free[2]),
            ),
            Binding::Filter {
                filter,
                requirement,
                rejected,
                scope,
            } => {
                format!(
                    "no host fits: needs {requirement}{scope}; {rejected} remaining host(s) fail the {filter} filter"
                )
            }
        };
        NoFit {
            binding,
            rejected_by,
            hosts_considered,
            message,
        }
    }
}

/// Everything the scheduler API can refuse.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SchedError {
    /// No host can take the request (boxed: it carries the per-filter breakdown).
    #[error(transparent)]
    NoFit(Box<NoFit>),
    /// The quota hook refused.
    #[error("quota exceeded for tenant {tenant}: {reason}")]
    Quota {
        /// Tenant.
        tenant: String,
        /// The hook's reason.
        reason: String,
    },
    /// No host by that name.
    #[error("unknown host {0}")]
    UnknownHost(String),
    /// No resident VM by that name.
    #[error("unknown vm {0}")]
    UnknownVm(String),
    /// The VM is already placed.
    #[error("vm {0} is already placed; release it first")]
    VmExists(String),
    /// Removing a host that still has VMs.
    #[error("host {host} still has {vms} VMs; move or release them first")]
    HostNotEmpty {
        /// Host.
        host: String,
        /// Resident VMs.
        vms: usize,
    },
    /// A name is empty or too long.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name (truncated).
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A host spec is unusable.
    #[error("invalid host {host}: {reason}")]
    InvalidHost {
        /// Host.
        host: String,
        /// Why.
        reason: String,
    },
    /// A per-VM demand beyond what the scheduler tracks (2^32 − 1 of the unit).
    #[error("demand of {dimension:?} {amount} is larger than any host can offer")]
    DemandTooLarge {
        /// Dimension.
        dimension: Dimension,
        /// Amount asked for.
        amount: u64,
    },
    /// A request carries rules for a group that already has different ones.
    #[error(
        "group {group} already has rules {existing}; this request asks for {requested} (send no rules to inherit)"
    )]
    GroupRulesConflict {
        /// Group.
        group: String,
        /// Rules in force.
        existing: String,
        /// Rules requested.
        requested: String,
    },
    /// `commit`/`move_vm` to a host that fails a filter.
    #[error("host {host} cannot take vm {vm}: {filter} filter refuses ({requirement})")]
    Infeasible {
        /// VM.
        vm: String,
        /// Host.
        host: String,
        /// Failing filter.
        filter: String,
        /// What it requires.
        requirement: String,
    },
}

impl From<NoFit> for SchedError {
    fn from(n: NoFit) -> Self {
        SchedError::NoFit(Box::new(n))
    }
}
