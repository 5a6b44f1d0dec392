//! Choosing a node for a VM, through the scheduler (`novacron-sched`). The control plane
//! keeps one in-memory fleet, fed from the store mirrors: nodes become hosts (vCPUs
//! overcommitted up to [`CPU_OVERCOMMIT`]×, memory never), every VM a resident. A placement
//! decision commits at once, so it doubles as a reservation while the VM record is written.

use std::sync::Arc;
use std::time::Duration;

use novacron_api_types::{ApiError, ErrorCode, NodeState};
use novacron_sched::{
    FailureDomain, HostSpec, HostState, LabelSelector, Overcommit, Request, Resources, SchedError,
    Scheduler, SchedulerConfig, SelectorOp,
};

use crate::cache::Change;
use crate::records::{self, NodeRecord, VmRecord};
use crate::state::AppState;

/// vCPUs per physical CPU a node may hand out.
pub const CPU_OVERCOMMIT: f64 = 4.0;

/// What a VM needs from a node.
#[derive(Debug, Clone)]
pub struct Demand {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    pub needs_kvm: bool,
    pub bridge: Option<String>,
}

/// The fleet as the scheduler sees it.
pub struct Placement {
    sched: std::sync::Mutex<Scheduler>,
}

/// The scheduler's id of a VM.
pub fn vm_id(project: &str, name: &str) -> String {
    format!("{project}/{name}")
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

fn gib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 30)
}

fn host_spec(rec: &NodeRecord, state: NodeState) -> HostSpec {
    let mut spec = HostSpec::new(
        rec.name.clone(),
        Resources {
            cpu_millis: u64::from(rec.capacity.cpus) * 1000,
            memory_mib: rec.capacity.memory_bytes >> 20,
            disk_gib: rec.capacity.disk_bytes >> 30,
        },
        FailureDomain {
            region: "default".into(),
            zone: "default".into(),
            rack: rec.name.clone(),
        },
    );
    spec.overcommit = Overcommit {
        cpu: CPU_OVERCOMMIT,
        ..Overcommit::default()
    };
    spec.labels.insert("kvm".into(), rec.kvm_usable.to_string());
    for b in &rec.bridges {
        spec.labels.insert(format!("bridge.{b}"), "present".into());
    }
    spec.state = host_state(state);
    spec
}

fn host_state(s: NodeState) -> HostState {
    match s {
        NodeState::Ready => HostState::Ready,
        NodeState::Cordoned => HostState::Cordoned,
        NodeState::Draining => HostState::Draining,
        NodeState::Down => HostState::Down,
    }
}

fn request(d: &Demand) -> Request {
    let mut r = Request::new(Resources {
        cpu_millis: u64::from(d.cpus) * 1000,
        memory_mib: mib(d.memory_bytes),
        disk_gib: gib(d.disk_bytes),
    });
    if d.needs_kvm {
        r.selectors.push(LabelSelector::eq("kvm", "true"));
    }
    if let Some(b) = &d.bridge {
        r.selectors.push(LabelSelector {
            key: format!("bridge.{b}"),
            op: SelectorOp::Exists,
        });
    }
    r
}

pub fn demand_of(vm: &VmRecord) -> Demand {
    Demand {
        cpus: vm.cpus,
        memory_bytes: vm.memory_bytes,
        disk_bytes: vm.disk_bytes.unwrap_or(0),
        needs_kvm: vm.accel == novacron_api_types::AccelChoice::Kvm,
        bridge: match &vm.network {
            novacron_api_types::Network::Bridge { bridge } => Some(bridge.clone()),
            _ => None,
        },
    }
}

fn refused(e: SchedError, node: Option<&str>) -> ApiError {
    match e {
        SchedError::UnknownHost(h) => {
            ApiError::not_found(format!("node {h} does not exist: see `novacron node list`"))
        }
        SchedError::NoFit(nf) => ApiError::new(ErrorCode::NoCapacity, nf.to_string()),
        // Another create of the same name holds the reservation (its record may not be
        // written yet): the same answer as when the record is there.
        SchedError::VmExists(id) => ApiError::new(
            ErrorCode::AlreadyExists,
            format!(
                "a VM named {:?} already exists",
                id.split_once('/').map_or(id.as_str(), |(_, name)| name)
            ),
        ),
        other => ApiError::new(
            ErrorCode::NoCapacity,
            match node {
                Some(n) => format!("node {n} cannot run this VM: {other}"),
                None => other.to_string(),
            },
        ),
    }
}

impl Placement {
    pub fn new() -> Placement {
        Placement {
            sched: std::sync::Mutex::new(Scheduler::new(SchedulerConfig::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Scheduler> {
        self.sched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Chooses a node (or checks `node`) and reserves the capacity for VM `id`.
    pub fn reserve(
        &self,
        id: &str,
        demand: &Demand,
        node: Option<&str>,
    ) -> Result<String, ApiError> {
        let req = request(demand);
        let mut s = self.lock();
        match node {
            Some(n) => s
                .commit(id, n, &req)
                .map(|()| n.to_string())
                .map_err(|e| refused(e, Some(n))),
            None => s
                .place_and_commit(id, &req)
                .map(|p| p.host)
                .map_err(|e| refused(e, None)),
        }
    }

    /// Chooses a node for VM `id` away from `exclude` (HA restart, evacuation), moving its
    /// reservation there; on failure it stays where it was.
    pub fn relocate(
        &self,
        id: &str,
        demand: &Demand,
        exclude: &[String],
    ) -> Result<String, ApiError> {
        let mut req = request(demand);
        req.exclude_hosts = exclude.to_vec();
        let mut s = self.lock();
        let old = s.vm_host(id).map(str::to_string);
        let _ = s.release(id);
        match s.place_and_commit(id, &req) {
            Ok(p) => Ok(p.host),
            Err(e) => {
                if let Some(h) = old {
                    let _ = s.restore(id, &h, &request(demand));
                }
                Err(refused(e, None))
            }
        }
    }

    /// Forgets VM `id` (deleted, or its creation was not written).
    pub fn release(&self, id: &str) {
        let _ = self.lock().release(id);
    }

    fn sync_node(s: &mut Scheduler, rec: &NodeRecord, state: NodeState) {
        if let Err(e) = s.upsert_host(host_spec(rec, state)) {
            tracing::warn!(node = %rec.name, error = %e, "scheduler refused a node");
        }
    }

    fn sync_vm(s: &mut Scheduler, id: &str, vm: Option<&VmRecord>) {
        match vm {
            None => {
                let _ = s.release(id);
            }
            Some(v) => match s.vm_host(id) {
                Some(h) if h == v.node => {}
                Some(_) => {
                    let _ = s.release(id);
                    let _ = s.restore(id, &v.node, &request(&demand_of(v)));
                }
                None => {
                    if let Err(e) = s.restore(id, &v.node, &request(&demand_of(v))) {
                        tracing::debug!(vm = id, error = %e, "VM not in the scheduler yet");
                    }
                }
            },
        }
    }

    /// Rebuilds the fleet from the mirrors.
    fn resync(&self, state: &AppState) {
        let mut fresh = Scheduler::new(SchedulerConfig::default());
        for n in state.nodes.values() {
            Self::sync_node(&mut fresh, &n, state.node_state(&n));
        }
        state.vms.with(|vms| {
            for v in vms.values() {
                Self::sync_vm(&mut fresh, &vm_id(&v.project, &v.name), Some(v));
            }
        });
        *self.lock() = fresh;
    }

    /// Node states that changed because heartbeats stopped (or resumed).
    fn refresh_states(&self, state: &AppState) {
        let nodes = state.nodes.values();
        let mut s = self.lock();
        for n in nodes {
            let want = host_state(state.node_state(&n));
            if s.host(&n.name).is_some_and(|h| h.state != want) {
                let _ = s.set_host_state(&n.name, want);
            }
        }
    }
}

impl Default for Placement {
    fn default() -> Self {
        Self::new()
    }
}

/// Keeps the scheduler's fleet in step with the store until the server stops.
pub async fn follow(state: Arc<AppState>) {
    let mut vm_changes = state.vms.subscribe_changes();
    let mut node_changes = state.nodes.subscribe_changes();
    let mut leases = state.node_leases.subscribe_revision();
    state.placement.resync(&state);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            c = vm_changes.recv() => match c {
                Ok(Change { key, new, .. }) => {
                    let id = key
                        .strip_prefix(&records::vm_prefix())
                        .map(str::to_string)
                        .unwrap_or(key);
                    let mut s = state.placement.lock();
                    Placement::sync_vm(&mut s, &id, new.as_deref());
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => state.placement.resync(&state),
                Err(_) => return,
            },
            c = node_changes.recv() => match c {
                Ok(Change { new: Some(rec), .. }) => {
                    let st = state.node_state(&rec);
                    let mut s = state.placement.lock();
                    Placement::sync_node(&mut s, &rec, st);
                }
                Ok(Change { old: Some(rec), new: None, .. }) => {
                    let _ = state.placement.lock().remove_host(&rec.name);
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => state.placement.resync(&state),
                Err(_) => return,
            },
            // A node's lease appearing or expiring changes its state at once.
            r = leases.changed() => {
                if r.is_err() { return; }
                state.placement.refresh_states(&state);
            }
            _ = tick.tick() => state.placement.refresh_states(&state),
        }
    }
}
