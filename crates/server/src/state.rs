//! What every request handler shares: the store, the in-memory mirrors of it, the cluster
//! CA and the metrics.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use novacron_api_types::{Image, Node, NodeState, Resources};
use novacron_store::Store;
use novacron_tls::Ca;

use crate::cache::Cache;
use crate::metrics::ServerMetrics;
use crate::records::{self, HeartbeatRecord, NodeRecord, TokenRecord, VmRecord, VmStatusRecord};

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub vms: Cache<VmRecord>,
    pub statuses: Cache<VmStatusRecord>,
    pub nodes: Cache<NodeRecord>,
    pub heartbeats: Cache<HeartbeatRecord>,
    pub images: Cache<Image>,
    pub tokens: Cache<TokenRecord>,
    pub ca: Ca,
    pub images_dir: PathBuf,
    pub node_down_after: Duration,
    pub metrics: ServerMetrics,
    /// The scheduler's fleet; a decision reserves capacity at once.
    pub placement: crate::placement::Placement,
    /// HTTPS client trusting the cluster CA, for calls to agents.
    pub agent_http: reqwest::Client,
}

impl AppState {
    /// How long handlers wait for the mirrors to show their own writes.
    pub const CATCH_UP: Duration = Duration::from_secs(10);

    pub fn node_state(&self, node: &NodeRecord) -> NodeState {
        let alive = self
            .heartbeats
            .get(&records::heartbeat_key(&node.name))
            .is_some_and(|hb| {
                records::now().saturating_sub(hb.at) <= self.node_down_after.as_secs()
            });
        if alive {
            node.admin_state
        } else {
            NodeState::Down
        }
    }

    /// Resources asked for by the VMs placed on each node (deleted VMs excluded).
    pub fn allocations(&self) -> std::collections::HashMap<String, (Resources, u32)> {
        let mut out: std::collections::HashMap<String, (Resources, u32)> = Default::default();
        self.vms.with(|vms| {
            for vm in vms.values() {
                let e = out.entry(vm.node.clone()).or_default();
                e.0.cpus += vm.cpus;
                e.0.memory_bytes += vm.memory_bytes;
                e.0.disk_bytes += vm.disk_bytes.unwrap_or(0);
                e.1 += 1;
            }
        });
        out
    }

    pub fn node_view(
        &self,
        rec: &NodeRecord,
        allocations: &std::collections::HashMap<String, (Resources, u32)>,
    ) -> Node {
        let (allocated, vms) = allocations.get(&rec.name).copied().unwrap_or_default();
        Node {
            name: rec.name.clone(),
            state: self.node_state(rec),
            capacity: rec.capacity,
            allocated,
            vms,
            kvm_usable: rec.kvm_usable,
            qemu_version: rec.qemu_version.clone(),
            agent_url: rec.agent_url.clone(),
            registered_at: rec.registered_at,
            last_heartbeat: self
                .heartbeats
                .get(&records::heartbeat_key(&rec.name))
                .map(|h| h.at)
                .unwrap_or(0),
        }
    }
}
