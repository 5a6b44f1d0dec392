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
use crate::records::{
    self, LeaderRecord, MemberRecord, NodeLeaseRecord, NodeRecord, TokenRecord, VmRecord,
    VmStatusRecord,
};

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub vms: Cache<VmRecord>,
    pub statuses: Cache<VmStatusRecord>,
    pub nodes: Cache<NodeRecord>,
    pub node_leases: Cache<NodeLeaseRecord>,
    pub images: Cache<Image>,
    pub security_groups: Cache<novacron_api_types::security::SecurityGroup>,
    pub tokens: Cache<TokenRecord>,
    pub projects: Cache<novacron_api_types::tenancy::Project>,
    pub users: Cache<crate::tenancy::UserRecord>,
    pub bindings: Cache<novacron_api_types::tenancy::RoleBinding>,
    /// Certificates revoked before their expiry, by serial.
    pub revoked_certs: Cache<records::RevokedCertRecord>,
    pub members: Cache<MemberRecord>,
    pub leader: Cache<LeaderRecord>,
    pub storage: Cache<novacron_api_types::StoragePool>,
    pub backup_repos: Cache<novacron_api_types::backup::BackupRepo>,
    pub backup_schedules: Cache<novacron_api_types::backup::BackupSchedule>,
    /// The events stream (record changes as events, a window of recent ones).
    pub events: crate::events::EventHub,
    /// The audit log's writer (every change and refusal, hash-chained).
    pub audit: crate::audit::AuditLog,
    /// This replica's id.
    pub member_id: String,
    /// This process's run of the replica (new at every start; see `MemberRecord::run`).
    pub run_id: String,
    /// When this replica last heard from each node (unix seconds).
    pub last_seen: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// How long a node may go without a heartbeat before it counts as lost.
    pub node_lease_ttl: Duration,
    /// Lifetime of the node certificates registration issues.
    pub node_cert_ttl: Duration,
    /// How long after a node's lease expired its HA VMs are restarted elsewhere (the node's
    /// agent has fenced them by then).
    pub fence_margin: Duration,
    /// "sqlite" or "etcd".
    pub store_backend: String,
    pub ca: Ca,
    pub images_dir: PathBuf,
    /// Files handed in by clients on this host (see [`crate::local_files`]); `None` when the
    /// socket could not be made (imports then take uploads only).
    pub local_files: Option<std::sync::Arc<crate::local_files::LocalFiles>>,
    pub metrics: ServerMetrics,
    /// The scheduler's fleet; a decision reserves capacity at once.
    pub placement: crate::placement::Placement,
    /// HTTPS client trusting the cluster CA, for calls to agents.
    pub agent_http: reqwest::Client,
    /// HTTPS client for calls to other control-plane replicas (which present control-plane
    /// certificates, not node certificates).
    pub replica_http: reqwest::Client,
}

impl AppState {
    /// How long handlers wait for the mirrors to show their own writes.
    pub const CATCH_UP: Duration = Duration::from_secs(10);

    /// Image `name` as `project` sees it: its own, else the public image of that name (a name
    /// never means both, see [`novacron_api_types::PUBLIC_IMAGES`]).
    pub fn image(&self, project: &str, name: &str) -> Option<Arc<Image>> {
        self.images
            .get(&crate::records::image_key(project, name))
            .or_else(|| {
                self.images.get(&crate::records::image_key(
                    novacron_api_types::PUBLIC_IMAGES,
                    name,
                ))
            })
    }

    /// Whether image `name`, as a VM of `vm_project` names it, is the image of `project`: the
    /// VM's own project's, or the public one when the VM's project has none of that name.
    /// Needs no record of the image itself (this replica's mirror may trail).
    pub fn names_image_of(&self, vm_project: &str, name: &str, project: &str) -> bool {
        vm_project == project
            || (project == novacron_api_types::PUBLIC_IMAGES
                && self
                    .images
                    .get(&crate::records::image_key(vm_project, name))
                    .is_none())
    }

    /// The token the control plane presents when it calls `node`'s agent.
    pub fn server_token(&self, node: &NodeRecord) -> String {
        match &node.server_token_nonce {
            Some(nonce) => crate::auth::derived_secret(
                &self.ca.identity.key_pem,
                crate::auth::Purpose::AgentServerToken,
                &node.name,
                nonce,
            ),
            None => node.server_token.clone(),
        }
    }

    /// The internal credential of replica `member` (for fetching image files from it).
    pub fn replica_credential(&self, member: &MemberRecord) -> String {
        crate::auth::derived_secret(
            &self.ca.identity.key_pem,
            crate::auth::Purpose::Replica,
            &member.id,
            &member.credential_nonce,
        )
    }

    /// `down` while the node's liveness lease is gone, else what the operator set.
    pub fn node_state(&self, node: &NodeRecord) -> NodeState {
        if self
            .node_leases
            .get(&records::node_lease_key(&node.name))
            .is_some()
        {
            node.admin_state
        } else {
            NodeState::Down
        }
    }

    pub fn saw_node(&self, node: &str) {
        self.last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.to_string(), records::now());
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
            vtep_address: rec.vtep_address.clone(),
            site: rec.site.clone(),
            tunnel: rec.tunnel.clone(),
            last_heartbeat: self
                .last_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&rec.name)
                .copied()
                .unwrap_or(0),
        }
    }
}
