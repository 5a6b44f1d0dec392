//! Choosing a node for a VM, through the scheduler (`novacron-sched`): creation, HA restart,
//! the destination of a live migration and evacuation plans. The control plane keeps one
//! in-memory fleet, fed from the store mirrors: nodes become hosts (vCPUs overcommitted up to
//! [`CPU_OVERCOMMIT`]×, memory never), every VM a resident, and every in-flight migration a
//! reservation of the VM's demand on its destination ([`incoming_id`]), so nothing else takes
//! the memory promised to the incoming VM. A placement decision commits at once, so it
//! doubles as a reservation while the record is written.
//!
//! What a node offers is in its labels: `kvm` (`true`/`false`), `bridge.NAME`, `qemu`
//! (`major.minor`), `qemu.live-migration` (QEMU 7 or newer) and `node` (its name). A live
//! migration's own rules ([`MoveRule`]) are label selectors on top of the VM's demand.

use std::sync::Arc;
use std::time::Duration;

use novacron_api_types::{AccelChoice, ApiError, ErrorCode, Network, NodeState};
use novacron_sched::{
    EvacuationFailure, FailureDomain, HostSpec, HostState, LabelSelector, Move, Overcommit,
    Request, Resources, SchedError, Scheduler, SchedulerConfig, SelectorOp,
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
    /// Linux bridges the VM's NICs are attached to.
    pub bridges: Vec<String>,
}

/// The fleet as the scheduler sees it.
pub struct Placement {
    sched: std::sync::Mutex<Scheduler>,
}

/// The scheduler's id of a VM.
pub fn vm_id(project: &str, name: &str) -> String {
    format!("{project}/{name}")
}

/// The scheduler's id of the capacity an in-flight migration of VM `vm_id` holds on its
/// destination (`>` never occurs in a name).
pub fn incoming_id(vm_id: &str) -> String {
    format!("{vm_id}>incoming")
}

/// `major.minor` of a version string like `7.2.19` or `QEMU emulator version 7.2.19 (...)`.
pub fn major_minor(v: &str) -> Option<(u64, u64)> {
    let word = v
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut it = word.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((major, minor))
}

/// Oldest QEMU major version our live migration runs with.
const LIVE_MIGRATION_QEMU_MAJOR: u64 = 7;

/// What a live migration requires of its destination beyond room for the VM. Each rule is a
/// label selector for the scheduler and the sentence that explains a refusal.
#[derive(Debug, Clone, PartialEq)]
pub enum MoveRule {
    /// The source's QEMU major.minor (VMs use the machine type of their QEMU version).
    SameQemu { source: String, version: String },
    /// A QEMU new enough for live migration.
    LiveMigrationQemu,
    /// The guest runs under KVM with CPU model `host`: the destination needs KVM.
    Kvm,
    /// The guest runs under TCG with `--accel auto`: a node with KVM would start it under KVM.
    NoKvm,
    /// The bridge the VM is attached to.
    Bridge(String),
}

impl MoveRule {
    fn selector(&self) -> LabelSelector {
        match self {
            MoveRule::SameQemu { version, .. } => LabelSelector::eq(
                "qemu",
                major_minor(version)
                    .map(|(a, b)| format!("{a}.{b}"))
                    // No node's label: an unreadable source version moves nowhere.
                    .unwrap_or_else(|| format!("unknown {version}")),
            ),
            MoveRule::LiveMigrationQemu => LabelSelector::eq("qemu.live-migration", "true"),
            MoveRule::Kvm => LabelSelector::eq("kvm", "true"),
            MoveRule::NoKvm => LabelSelector::eq("kvm", "false"),
            MoveRule::Bridge(b) => LabelSelector {
                key: format!("bridge.{b}"),
                op: SelectorOp::Exists,
            },
        }
    }

    /// Why `dest` fails this rule, in the user's words.
    fn refusal(&self, vm: &str, dest: &NodeRecord) -> String {
        match self {
            MoveRule::SameQemu { source, version } => format!(
                "node {source} runs QEMU {version:?} and {} runs QEMU {:?}: VMs use the machine type of their QEMU version, so both nodes need the same QEMU major.minor",
                dest.name, dest.qemu_version
            ),
            MoveRule::LiveMigrationQemu => format!(
                "node {} runs QEMU {}; live migration needs QEMU 7.2 or newer",
                dest.name, dest.qemu_version
            ),
            MoveRule::Kvm => format!(
                "VM {vm} runs with KVM (CPU model `host`) and node {} has no usable KVM: the CPU the guest sees cannot move there",
                dest.name
            ),
            MoveRule::NoKvm => format!(
                "VM {vm} runs under TCG (accel auto) and node {} would pick KVM: both sides must use the same accelerator; create the VM with --accel tcg or choose a node without KVM",
                dest.name
            ),
            MoveRule::Bridge(b) => format!(
                "node {} has no bridge {b} (VM {vm} is attached to it)",
                dest.name
            ),
        }
    }
}

/// The rules of moving `vm`, which runs with accelerator `accel_in_use` (as its agent
/// reported: `kvm`, `tcg` or empty) on `source`, to another node while it runs.
pub fn move_rules(vm: &VmRecord, accel_in_use: &str, source: &NodeRecord) -> Vec<MoveRule> {
    let mut rules = vec![
        MoveRule::SameQemu {
            source: source.name.clone(),
            version: source.qemu_version.clone(),
        },
        MoveRule::LiveMigrationQemu,
    ];
    if accel_in_use == "kvm" || vm.accel == AccelChoice::Kvm {
        rules.push(MoveRule::Kvm);
    } else if accel_in_use == "tcg" && vm.accel == AccelChoice::Auto {
        rules.push(MoveRule::NoKvm);
    }
    rules.extend(bridges_of(vm).into_iter().map(MoveRule::Bridge));
    rules
}

/// `req` with the selectors of `rules` added.
fn with_rules(mut req: Request, rules: &[MoveRule]) -> Request {
    for r in rules {
        let s = r.selector();
        if !req.selectors.contains(&s) {
            req.selectors.push(s);
        }
    }
    req
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
    spec.labels.insert("node".into(), rec.name.clone());
    if let Some((major, minor)) = major_minor(&rec.qemu_version) {
        spec.labels
            .insert("qemu".into(), format!("{major}.{minor}"));
        if major >= LIVE_MIGRATION_QEMU_MAJOR {
            spec.labels
                .insert("qemu.live-migration".into(), "true".into());
        }
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
    for b in &d.bridges {
        r.selectors.push(LabelSelector {
            key: format!("bridge.{b}"),
            op: SelectorOp::Exists,
        });
    }
    r
}

/// What `vm` needs from the node it runs on (a disk in a storage pool takes no node disk).
pub fn demand_of(vm: &VmRecord) -> Demand {
    Demand {
        cpus: vm.cpus,
        memory_bytes: vm.memory_bytes,
        disk_bytes: if vm.storage.is_none() {
            vm.disk_bytes.unwrap_or(0)
        } else {
            0
        },
        needs_kvm: vm.accel == novacron_api_types::AccelChoice::Kvm,
        bridges: bridges_of(vm),
    }
}

/// The Linux bridges `vm`'s NICs are attached to: its created NIC's and added ones'.
pub fn bridges_of(vm: &VmRecord) -> Vec<String> {
    let created = match &vm.network {
        Network::Bridge { bridge } => Some(bridge.clone()),
        _ => None,
    };
    let mut bridges: Vec<String> = created
        .into_iter()
        .chain(vm.added_nics.iter().filter_map(|n| match &n.link {
            novacron_api_types::nics::NicLink::Bridge { bridge } => Some(bridge.clone()),
            _ => None,
        }))
        .collect();
    bridges.sort();
    bridges.dedup();
    bridges
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

/// Why `dest` refused a move that `filter` failed, in the user's words (`None`: the
/// scheduler's own words will do).
fn explain_move(
    s: &Scheduler,
    vm: &VmRecord,
    req: &Request,
    rules: &[MoveRule],
    dest: &NodeRecord,
    dest_state: NodeState,
    filter: &str,
) -> Option<String> {
    match filter {
        "host-state" => Some(format!(
            "node {} is {dest_state}: only a ready node takes VMs (`novacron node uncordon {}`)",
            dest.name, dest.name
        )),
        "selector" => {
            let labels = host_spec(dest, dest_state).labels;
            rules
                .iter()
                .find(|r| !r.selector().matches(&labels))
                .map(|r| r.refusal(&vm.name, dest))
        }
        "capacity" => {
            let host = s.host(&dest.name)?;
            let free = |cap: u64, used: u64| cap.saturating_sub(used);
            let d = req.demand;
            let mem_free = free(host.capacity.memory_mib, host.used.memory_mib);
            let disk_free = free(host.capacity.disk_gib, host.used.disk_gib);
            let cpu_free = free(host.capacity.cpu_millis, host.used.cpu_millis);
            Some(if mem_free < d.memory_mib {
                format!(
                    "node {} has {mem_free} MiB of memory free and VM {} needs {} MiB",
                    dest.name, vm.name, d.memory_mib
                )
            } else if disk_free < d.disk_gib {
                format!(
                    "node {} has not enough disk for VM {} ({} GiB; {disk_free} GiB free)",
                    dest.name, vm.name, d.disk_gib
                )
            } else {
                format!(
                    "node {} has {} vCPU free ({CPU_OVERCOMMIT}× its CPUs) and VM {} needs {}",
                    dest.name,
                    cpu_free / 1000,
                    vm.name,
                    d.cpu_millis / 1000
                )
            })
        }
        _ => None,
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

    /// Chooses the destination of a live migration of `vm` (or checks `to`, a node with its
    /// current state) away from `source`, and reserves the VM's demand there until the
    /// migration ends ([`Placement::release_incoming`] if the migration is not recorded).
    pub fn reserve_incoming(
        &self,
        vm: &VmRecord,
        rules: &[MoveRule],
        source: &str,
        to: Option<(&NodeRecord, NodeState)>,
    ) -> Result<String, ApiError> {
        let id = incoming_id(&vm_id(&vm.project, &vm.name));
        let mut req = with_rules(request(&demand_of(vm)), rules);
        let mut s = self.lock();
        let decided = match to {
            Some((dest, dest_state)) => {
                if dest.name == source {
                    return Err(ApiError::new(
                        ErrorCode::NoCapacity,
                        format!("VM {} already runs on {}", vm.name, dest.name),
                    ));
                }
                s.commit(&id, &dest.name, &req)
                    .map(|()| dest.name.clone())
                    .map_err(|e| {
                        let why = match &e {
                            SchedError::Infeasible { filter, .. } => {
                                explain_move(&s, vm, &req, rules, dest, dest_state, filter)
                            }
                            _ => None,
                        };
                        match why {
                            Some(why) => ApiError::new(ErrorCode::NoCapacity, why),
                            None => refused(e, Some(&dest.name)),
                        }
                    })
            }
            None => {
                req.exclude_hosts.push(source.to_string());
                s.place_and_commit(&id, &req)
                    .map(|p| p.host)
                    .map_err(|e| match e {
                        SchedError::NoFit(nf) => ApiError::new(
                            ErrorCode::NoCapacity,
                            format!("no node can take VM {}: {nf}", vm.name),
                        ),
                        other => refused(other, None),
                    })
            }
        };
        decided.map_err(|e| match e.code {
            // Another migration of this VM holds the reservation.
            ErrorCode::AlreadyExists => {
                ApiError::conflict(format!("VM {} is already migrating", vm.name))
            }
            _ => e,
        })
    }

    /// Drops the reservation of a migration of VM `id` that was not recorded.
    pub fn release_incoming(&self, id: &str) {
        let _ = self.lock().release(&incoming_id(id));
    }

    /// Where each VM on `node` goes if the node is evacuated now, through the scheduler's
    /// [`Scheduler::plan_evacuation_with`]: `rules(vm_id)` says what moving that VM requires,
    /// `None` leaves it where it is. Only `to` is considered when given.
    pub fn plan_evacuation(
        &self,
        node: &str,
        to: Option<&str>,
        mut rules: impl FnMut(&str) -> Option<Vec<MoveRule>>,
    ) -> Result<Vec<Move>, ApiError> {
        let mut s = self.lock();
        s.plan_evacuation_with(node, |id, req| {
            let rules = rules(id)?;
            let mut req = with_rules(req, &rules);
            if let Some(to) = to {
                req.selectors.push(LabelSelector::eq("node", to));
            }
            Some(req)
        })
        .map_err(|EvacuationFailure { vm, error }| match error {
            SchedError::UnknownHost(h) => {
                ApiError::not_found(format!("node {h} does not exist: see `novacron node list`"))
            }
            error => ApiError::new(
                ErrorCode::NoCapacity,
                format!(
                    "no node can take VM {}: {error}",
                    vm.split_once('/').map_or(vm.as_str(), |(_, n)| n)
                ),
            ),
        })
    }

    fn sync_node(s: &mut Scheduler, rec: &NodeRecord, state: NodeState) {
        if let Err(e) = s.upsert_host(host_spec(rec, state)) {
            tracing::warn!(node = %rec.name, error = %e, "scheduler refused a node");
        }
    }

    /// Brings VM `id` (and the reservation of its in-flight migration) in line with its record.
    fn sync_vm(s: &mut Scheduler, id: &str, vm: Option<&VmRecord>) {
        let incoming = incoming_id(id);
        let want_incoming = vm.and_then(|v| v.migrating_to.as_deref());
        let has_incoming = s.vm_host(&incoming).map(str::to_string);
        if has_incoming.is_some() && has_incoming.as_deref() != want_incoming {
            let _ = s.release(&incoming);
        }
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
        if let (Some(v), Some(to)) = (vm, want_incoming)
            && s.vm_host(&incoming) != Some(to)
            && let Err(e) = s.restore(&incoming, to, &request(&demand_of(v)))
        {
            tracing::debug!(vm = id, node = to, error = %e, "migration destination not in the scheduler yet");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_minor() {
        assert_eq!(major_minor("7.2.19"), Some((7, 2)));
        assert_eq!(
            major_minor("QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)"),
            Some((7, 2))
        );
        assert_eq!(major_minor("8.1.0-rc1"), Some((8, 1)));
        assert_eq!(major_minor("unknown"), None);
    }

    #[test]
    fn added_bridge_nics_bind_a_vm_to_nodes_with_their_bridges() {
        use novacron_api_types::nics::{AddedNic, NicLink};
        let nic = |name: &str, port, link| AddedNic {
            name: name.into(),
            port,
            mac: format!("02:00:00:00:00:0{port}"),
            link,
        };
        let vm = VmRecord {
            network: Network::Bridge {
                bridge: "br0".into(),
            },
            added_nics: vec![
                nic("nic1", 0, NicLink::Nat),
                nic(
                    "nic2",
                    1,
                    NicLink::Bridge {
                        bridge: "br1".into(),
                    },
                ),
                nic(
                    "nic3",
                    2,
                    NicLink::Bridge {
                        bridge: "br0".into(),
                    },
                ),
            ],
            ..records::example_vm(novacron_api_types::PowerState::Running)
        };
        assert_eq!(bridges_of(&vm), ["br0", "br1"]);
        assert_eq!(demand_of(&vm).bridges, ["br0", "br1"]);
        let source: NodeRecord = serde_json::from_value(serde_json::json!({
            "name": "node-a",
            "capacity": {"cpus": 2, "memory_bytes": 1u64 << 30, "disk_bytes": 1u64 << 30},
            "agent_url": "https://node-a:9441",
            "kvm_usable": false,
            "qemu_version": "7.2.19",
            "registered_at": 0,
            "admin_state": "ready"
        }))
        .unwrap();
        let rules = move_rules(&vm, "tcg", &source);
        assert!(rules.contains(&MoveRule::Bridge("br1".into())), "{rules:?}");
        let refusal = MoveRule::Bridge("br1".into()).refusal("web", &source);
        assert!(refusal.contains("no bridge br1"), "{refusal}");
    }
}
