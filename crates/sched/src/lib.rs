//! NovaCron's scheduler: placement decisions and rebalancing proposals over an in-memory fleet.
//!
//! Pure and I/O-free (except `bench`, which reads its own peak RSS): the control plane feeds it
//! hosts and resident VMs, asks [`Scheduler::place`] where a VM should go, and records decisions
//! with [`Scheduler::commit`] / [`Scheduler::release`]. Decisions run a filter stage
//! ([`Filter`]) and a score stage ([`Scorer`]) over a handful of candidates drawn from an index
//! of hosts by free capacity, so they take microseconds at 100,000 hosts and ten million VMs.
//!
//! ```
//! use novacron_sched::*;
//! let mut s = Scheduler::new(SchedulerConfig::default());
//! let dom = FailureDomain { region: "r1".into(), zone: "b".into(), rack: "r7".into() };
//! s.upsert_host(HostSpec::new("host-1", Resources::new(32, 131_072, 2_000), dom)).unwrap();
//! let req = Request::new(Resources::new(4, 8_192, 40));
//! let p = s.place_and_commit("vm-1", &req).unwrap();
//! assert_eq!(p.host, "host-1");
//! let too_big = Request::new(Resources::new(4, 262_144, 40));
//! let err = s.place(&too_big).unwrap_err().to_string();
//! assert_eq!(err, "no host has 256 GiB free memory; largest free: 120 GiB on host-1");
//! ```

// Resources are fixed arrays of three dimensions (vCPU, memory, disk) indexed side by side in
// several arrays; `for d in 0..3` reads clearer than zipped iterators there.
#![allow(clippy::needless_range_loop)]

pub mod bench;
mod error;
pub mod ffd;
mod fleet;
mod index;
mod model;
mod names;
mod pipeline;
mod rebalance;
pub mod rng;
mod scheduler;
pub mod validate;

pub use error::{Binding, NoFit, SchedError};
pub use ffd::first_fit_decreasing;
pub use model::{
    Dimension, FailureDomain, GroupMembership, GroupRule, GroupTerm, HostSpec, HostState,
    LabelSelector, Level, Move, Overcommit, Placement, Request, Resources, SchedulerConfig,
    ScoreWeights, SelectorOp, Strategy,
};
pub use names::MAX_NAME_BYTES;
pub use pipeline::{
    AffinityFilter, AntiAffinityFilter, BalanceScorer, CapacityFilter, ExcludedFilter, Filter,
    FitScorer, HostStateFilter, HostView, RequestContext, ScarcityScorer, Scorer, SelectorFilter,
    SoftConstraintScorer, SpreadFilter,
};
pub use rebalance::EvacuationFailure;
pub use scheduler::{FleetStats, HostInfo, QuotaHook, Scheduler};
