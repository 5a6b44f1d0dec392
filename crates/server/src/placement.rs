//! Choosing a node for a VM. For now: the first ready node with enough free capacity,
//! checked in name order; memory is never overcommitted, vCPUs up to [`CPU_OVERCOMMIT`]×.

use novacron_api_types::{ApiError, ErrorCode, NodeState, format_size};

use crate::state::AppState;

/// vCPUs per physical CPU a node may hand out.
pub const CPU_OVERCOMMIT: u32 = 4;

/// What a VM needs from a node.
#[derive(Debug, Clone)]
pub struct Demand {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    pub needs_kvm: bool,
    pub bridge: Option<String>,
}

/// Why `node` cannot take `demand`, or `None` when it can.
fn refusal(
    state: &AppState,
    node: &str,
    demand: &Demand,
    allocations: &std::collections::HashMap<String, (novacron_api_types::Resources, u32)>,
) -> Option<String> {
    let Some(rec) = state.nodes.get(&crate::records::node_key(node)) else {
        return Some(format!("node {node} does not exist"));
    };
    let st = state.node_state(&rec);
    if st != NodeState::Ready {
        return Some(format!("node {node} is {st}"));
    }
    let (used, _) = allocations.get(node).copied().unwrap_or_default();
    let free_mem = rec.capacity.memory_bytes.saturating_sub(used.memory_bytes);
    if demand.memory_bytes > free_mem {
        return Some(format!(
            "node {node} has {} free memory, the VM needs {}",
            format_size(free_mem),
            format_size(demand.memory_bytes)
        ));
    }
    let cpu_limit = rec.capacity.cpus * CPU_OVERCOMMIT;
    if used.cpus + demand.cpus > cpu_limit {
        return Some(format!(
            "node {node} has {} of {cpu_limit} vCPUs allocated, the VM needs {}",
            used.cpus, demand.cpus
        ));
    }
    let free_disk = rec.capacity.disk_bytes.saturating_sub(used.disk_bytes);
    if demand.disk_bytes > free_disk {
        return Some(format!(
            "node {node} has {} free disk, the VM needs {}",
            format_size(free_disk),
            format_size(demand.disk_bytes)
        ));
    }
    if demand.needs_kvm && !rec.kvm_usable {
        return Some(format!(
            "node {node} cannot run KVM guests (no usable /dev/kvm with vmx/svm); use --accel tcg or auto"
        ));
    }
    if let Some(b) = &demand.bridge
        && !rec.bridges.contains(b)
    {
        return Some(format!("node {node} has no bridge {b}"));
    }
    None
}

/// Checks that `node` can take the VM.
pub fn check_node(state: &AppState, node: &str, demand: &Demand) -> Result<(), ApiError> {
    let allocations = state.allocations();
    match refusal(state, node, demand, &allocations) {
        None => Ok(()),
        Some(why) if why.ends_with("does not exist") => Err(ApiError::not_found(format!(
            "{why}: see `novacron node list`"
        ))),
        Some(why) => Err(ApiError::new(ErrorCode::NoCapacity, why)),
    }
}

/// The first node that can take the VM; the error names the closest miss.
pub fn choose_node(state: &AppState, demand: &Demand) -> Result<String, ApiError> {
    let allocations = state.allocations();
    let mut names: Vec<String> = state
        .nodes
        .with(|n| n.values().map(|r| r.name.clone()).collect());
    names.sort();
    if names.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NoCapacity,
            "no node has registered yet: start `novacron agent` or use `novacron up`",
        ));
    }
    let mut reasons = Vec::new();
    for n in &names {
        match refusal(state, n, demand, &allocations) {
            None => return Ok(n.clone()),
            Some(why) => reasons.push(why),
        }
    }
    // The largest free memory anywhere tells the operator how far off the request is.
    let best = names
        .iter()
        .filter_map(|n| {
            let rec = state.nodes.get(&crate::records::node_key(n))?;
            let used = allocations.get(n).map(|a| a.0.memory_bytes).unwrap_or(0);
            Some((rec.capacity.memory_bytes.saturating_sub(used), n.clone()))
        })
        .max();
    let mut msg = format!("no node can run this VM: {}", reasons.join("; "));
    if let Some((free, n)) = best {
        msg.push_str(&format!(
            " (largest free memory: {} on {n})",
            format_size(free)
        ));
    }
    Err(ApiError::new(ErrorCode::NoCapacity, msg))
}
