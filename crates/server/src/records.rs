//! What the control plane keeps in the store, and under which keys. Desired state (written
//! by the API) and observed state (reported by agents) live under separate keys so the two
//! writers never conflict.

use novacron_api_types::agent::VmAction;
use novacron_api_types::{
    AccelChoice, Network, NodeState, PowerState, Resources, UnixSeconds, VmState,
};
use serde::{Deserialize, Serialize};

/// Root of every NovaCron key.
pub const ROOT: &str = "/novacron/";

pub fn vm_prefix() -> String {
    format!("{ROOT}vms/")
}
pub fn vm_key(project: &str, name: &str) -> String {
    format!("{ROOT}vms/{project}/{name}")
}
pub fn vm_status_prefix() -> String {
    format!("{ROOT}vmstatus/")
}
pub fn vm_status_key(project: &str, name: &str) -> String {
    format!("{ROOT}vmstatus/{project}/{name}")
}
pub fn node_prefix() -> String {
    format!("{ROOT}nodes/")
}
pub fn node_key(name: &str) -> String {
    format!("{ROOT}nodes/{name}")
}
pub fn heartbeat_prefix() -> String {
    format!("{ROOT}heartbeats/")
}
pub fn heartbeat_key(name: &str) -> String {
    format!("{ROOT}heartbeats/{name}")
}
pub fn image_prefix() -> String {
    format!("{ROOT}images/")
}
pub fn image_key(project: &str, name: &str) -> String {
    format!("{ROOT}images/{project}/{name}")
}
pub fn op_key(id: &str) -> String {
    format!("{ROOT}operations/{id}")
}
pub fn op_prefix() -> String {
    format!("{ROOT}operations/")
}
pub fn token_key(hash: &str) -> String {
    format!("{ROOT}tokens/{hash}")
}
pub fn project_key(name: &str) -> String {
    format!("{ROOT}projects/{name}")
}
pub const CA_KEY: &str = "/novacron/cluster/ca";
pub const CLUSTER_KEY: &str = "/novacron/cluster/info";

/// Desired state of a VM (written by the API only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRecord {
    pub name: String,
    pub project: String,
    pub uuid: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub disk_bytes: Option<u64>,
    pub image: String,
    pub accel: AccelChoice,
    pub network: Network,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    pub node: String,
    pub power: PowerState,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub action: Option<VmAction>,
    #[serde(default)]
    pub deleting: bool,
    pub generation: u64,
    pub created_at: UnixSeconds,
    /// The operation waiting for this generation, if any.
    #[serde(default)]
    pub operation: Option<String>,
    /// True until the VM first reached the state its creation asked for; a failure before
    /// then rolls the whole creation back.
    #[serde(default)]
    pub creating: bool,
}

/// Observed state of a VM (written on behalf of its agent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmStatusRecord {
    pub observed_generation: u64,
    pub state: VmState,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub accel_in_use: Option<String>,
    pub updated_at: UnixSeconds,
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub capacity: Resources,
    pub agent_url: String,
    pub kvm_usable: bool,
    pub qemu_version: String,
    #[serde(default)]
    pub bridges: Vec<String>,
    pub registered_at: UnixSeconds,
    /// Set by an operator: ready, cordoned or draining (`down` is derived from heartbeats).
    pub admin_state: NodeState,
    /// The secret the control plane presents when it calls this agent.
    pub server_token: String,
}

/// The last heartbeat of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatRecord {
    pub at: UnixSeconds,
    pub running_vms: u32,
}

/// What a bearer token may do. Only the BLAKE3 hash of a token is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TokenRecord {
    Admin,
    Join,
    Node { node: String },
}

/// Facts about the cluster set at initialisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub cluster_id: String,
    pub created_at: UnixSeconds,
}

/// The cluster CA, kept in the store so every control-plane replica issues the same chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRecord {
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn now() -> UnixSeconds {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
