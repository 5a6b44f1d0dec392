//! What the control plane keeps in the store, and under which keys. Desired state (written
//! by the API) and observed state (reported by agents) live under separate keys so the two
//! writers never conflict.

use novacron_api_types::agent::VmAction;
use novacron_api_types::{
    AccelChoice, HaPolicy, Network, NodeState, PowerState, Resources, UnixSeconds, VmState,
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
/// Which replica run carries out an operation a control-plane replica (not an agent) ends.
pub fn op_runner_key(id: &str) -> String {
    format!("{ROOT}op-runners/{id}")
}
pub fn op_runner_prefix() -> String {
    format!("{ROOT}op-runners/")
}
pub fn token_key(hash: &str) -> String {
    format!("{ROOT}tokens/{hash}")
}
pub fn project_key(name: &str) -> String {
    format!("{ROOT}projects/{name}")
}
pub fn node_lease_prefix() -> String {
    format!("{ROOT}nodeleases/")
}
pub fn node_lease_key(name: &str) -> String {
    format!("{ROOT}nodeleases/{name}")
}
pub fn member_prefix() -> String {
    format!("{ROOT}members/")
}
pub fn member_key(id: &str) -> String {
    format!("{ROOT}members/{id}")
}
pub fn leader_prefix() -> String {
    format!("{ROOT}leader/")
}
/// One election for every background controller (placement follows every replica; HA,
/// operation expiry and later automation run on the leader only).
pub fn leader_key() -> String {
    format!("{ROOT}leader/controllers")
}
pub fn storage_prefix() -> String {
    format!("{ROOT}storage/")
}
pub fn storage_key(name: &str) -> String {
    format!("{ROOT}storage/{name}")
}
pub fn backup_repo_prefix() -> String {
    format!("{ROOT}backup/repos/")
}
pub fn backup_repo_key(name: &str) -> String {
    format!("{ROOT}backup/repos/{name}")
}
pub fn backup_schedule_prefix() -> String {
    format!("{ROOT}backup/schedules/")
}
pub fn backup_schedule_key(vm: &str) -> String {
    format!("{ROOT}backup/schedules/{vm}")
}
pub fn migration_prefix() -> String {
    format!("{ROOT}migrations/")
}
pub fn migration_key(id: &str) -> String {
    format!("{ROOT}migrations/{id}")
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
    /// Storage pool holding the disk (`None`: the node's local disk).
    #[serde(default)]
    pub storage: Option<String>,
    #[serde(default)]
    pub ha: HaPolicy,
    #[serde(default)]
    pub ha_priority: i32,
    /// Fill the disk from a backup (applied once, at `restore.generation`).
    #[serde(default)]
    pub restore: Option<novacron_api_types::backup::RestoreSource>,
    /// The migration moving this VM (its id); other changes wait until it ends.
    #[serde(default)]
    pub migration: Option<String>,
    /// The destination of that migration (its memory and disk count there too meanwhile).
    #[serde(default)]
    pub migrating_to: Option<String>,
    /// NICs on overlay networks, with the addresses IPAM gave them.
    #[serde(default)]
    pub nics: Vec<novacron_api_types::overlay::Nic>,
    #[serde(default)]
    pub labels: novacron_api_types::labels::Labels,
    #[serde(default)]
    pub description: Option<String>,
    /// cloud-init user-data and vendor-data given at create (checked cloud-config YAML).
    #[serde(default)]
    pub user_data: Option<String>,
    #[serde(default)]
    pub vendor_data: Option<String>,
    /// CPUs and memory asked for by `vm set` while QEMU ran: applied when it next starts
    /// (the running QEMU, and so a live migration's destination, keep `cpus`/`memory_bytes`).
    #[serde(default)]
    pub pending: Option<crate::vm_config::PendingResources>,
    /// Snapshots inside the VM's disk, as its agent last reported them after a snapshot
    /// operation (recorded only once the disk holds them).
    #[serde(default)]
    pub snapshots: Vec<novacron_api_types::VmSnapshot>,
    /// A disk resize its agent is doing: the new size counts against the project's quota
    /// from the request on, and `disk_bytes` takes it only once the disk has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_resize: Option<crate::disk_ops::DiskResize>,
    /// Made by `vm clone`: its disk starts from this VM's disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_of: Option<novacron_api_types::disks::CloneSource>,
    /// The disk is an overlay over a frozen base shared with linked clones (this VM is one,
    /// or the source of one): on a local disk, it cannot be live-migrated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disk_linked: bool,
    /// A graphics card and a VNC console (`vm create --vnc`); fixed at create, so a live
    /// migration's destination builds the same machine.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vnc: bool,
    /// The ISO image (of this project) in the VM's CD-ROM drive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso: Option<String>,
    /// Spare PCIe root ports of the machine, for `vm disk add` (set at create; 0 for a VM
    /// from before hot-plug until it gets them while stopped).
    #[serde(default)]
    pub hotplug_ports: u32,
    /// Disks added by `vm disk add`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_disks: Vec<novacron_api_types::disks::DataDisk>,
    /// NICs added by `vm nic add`, each in a hot-plug port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_nics: Vec<novacron_api_types::nics::AddedNic>,
    /// When a NIC was last added or removed: a running VM is not reverted to a memory
    /// snapshot taken before (its saved devices are not the machine's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nics_changed_at: Option<UnixSeconds>,
    /// Security groups (of the VM's project) that filter its overlay NICs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// Each overlay NIC's limit, bits per second in each direction (`--bandwidth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_bps: Option<u64>,
    /// A disk or NIC its agent is adding or removing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_plug: Option<crate::disk_ops::DiskPlug>,
    /// BIOS or UEFI (fixed at create: a guest installed under one does not boot under the
    /// other).
    #[serde(default, skip_serializing_if = "novacron_api_types::Firmware::is_bios")]
    pub firmware: novacron_api_types::Firmware,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secure_boot: bool,
    /// A TPM 2.0 (fixed at create: what the guest sealed to it stays there).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tpm: bool,
}

impl VmRecord {
    /// The overlay networks the VM has a NIC on (created or added), without copying them:
    /// the overlay data plane asks this of every VM for every network.
    pub fn overlay_networks(&self) -> impl Iterator<Item = &str> {
        self.nics
            .iter()
            .map(|n| n.network.as_str())
            .chain(self.added_nics.iter().filter_map(|n| match &n.link {
                novacron_api_types::nics::NicLink::Network { network, .. } => {
                    Some(network.as_str())
                }
                _ => None,
            }))
    }

    /// Every NIC of the VM on an overlay network: those it was created with, then those
    /// `vm nic add` gave it.
    pub fn overlay_nics(&self) -> Vec<novacron_api_types::overlay::Nic> {
        self.nics
            .iter()
            .cloned()
            .chain(self.added_nics.iter().filter_map(|n| n.overlay()))
            .collect()
    }
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
    /// What the guest's agent reported of its interfaces (while it runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guest_interfaces: Vec<novacron_api_types::GuestInterface>,
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
    /// The secret the control plane presents when it calls this agent, as registered before
    /// it was derived (empty for nodes registered since: see `server_token_nonce`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_token: String,
    /// The public input from which the control plane derives this agent's server token with
    /// the CA key ([`crate::auth::derived_secret`]); the token itself is not stored.
    #[serde(default)]
    pub server_token_nonce: Option<String>,
    /// Serial (hex) of the node certificate issued last; revoked when the node is deleted.
    #[serde(default)]
    pub cert_serial: Option<String>,
    /// Every certificate issued to the node that has not expired yet (renewal leaves the
    /// previous one valid): all are revoked when the node is deleted.
    #[serde(default)]
    pub cert_serials: Vec<IssuedSerial>,
    /// The node's VTEP (IPv4) for overlay networks, as its agent advertised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtep_address: Option<String>,
    /// The node's site (`agent --site`); none: the default site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// The node's end of the tunnel between sites, as its agent advertised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<novacron_api_types::overlay::TunnelEndpoint>,
}

/// A certificate the control plane issued, and until when it is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedSerial {
    pub serial: String,
    pub not_after: UnixSeconds,
}

/// A revoked certificate, kept until it would have expired anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCertRecord {
    pub node: String,
    pub revoked_at: UnixSeconds,
    /// Unknown for the last certificate of a node registered before expiries were recorded.
    #[serde(default)]
    pub not_after: Option<UnixSeconds>,
    pub reason: String,
}

pub fn revoked_cert_prefix() -> String {
    format!("{ROOT}revokedcerts/")
}
pub fn revoked_cert_key(serial: &str) -> String {
    format!("{ROOT}revokedcerts/{serial}")
}

/// A node's liveness: the key lives as long as the store lease the node's heartbeats renew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeLeaseRecord {
    pub lease: i64,
    pub ttl_ms: u64,
    pub since: UnixSeconds,
}

/// A control-plane replica, alive while its lease is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub id: String,
    pub url: String,
    pub version: String,
    pub started_at: UnixSeconds,
    /// The public input from which replicas derive this replica's internal credential with
    /// the CA key ([`crate::auth::derived_secret`]); they present it to fetch image files
    /// from this one. The credential itself is not stored, only its hash (a `replica` token
    /// that lives as long as this record's lease, and changes at every start).
    #[serde(default)]
    pub credential_nonce: String,
    /// Random, new at every start of the replica: operations this process carries out name
    /// it ([`crate::api::operations::OpRunner`]), and fail once no member record holds it.
    #[serde(default)]
    pub run: String,
}

/// Who runs the background controllers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub member: String,
    pub since: UnixSeconds,
}

/// What a bearer token may do. Only the BLAKE3 hash of a token is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TokenRecord {
    Admin,
    /// Registers nodes (see [`JoinTokenRecord`]).
    Join(JoinTokenRecord),
    Node {
        node: String,
    },
    /// A control-plane replica's internal credential: fetches image files from it, nothing
    /// else. Stored with the replica's member lease, so it goes when the replica does.
    Replica {
        member: String,
    },
    /// An API token: a user's (its roles at most the user's), or one with its own project
    /// and role (see [`crate::tenancy::resolve_token`]).
    Api(crate::tenancy::ApiTokenRecord),
}

/// A join token: registers nodes until `expires_at` (Unix seconds), unless revoked. A join
/// token stored without an expiry (minted before tokens expired) no longer registers
/// anything. Its id is derived from its hash ([`join_token_id`]), so tokens minted before
/// ids existed have one too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    #[serde(default)]
    pub expires_at: Option<UnixSeconds>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub created_at: Option<UnixSeconds>,
    /// Registers one node: the registration writes [`join_use_key`] only if it is absent.
    #[serde(default)]
    pub single_use: bool,
    #[serde(default)]
    pub revoked_at: Option<UnixSeconds>,
}

/// The public id of the join token stored under `token_key(hash)`: `jt-` and the first 16
/// hex digits of the hash (the hash of a 256-bit random secret; it reveals nothing usable).
pub fn join_token_id(hash: &str) -> String {
    format!("jt-{}", hash.get(..16).unwrap_or(hash))
}

/// Which node a join token registered last; for a single-use token, its one use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinUseRecord {
    pub node: String,
    pub at: UnixSeconds,
}

pub fn join_use_prefix() -> String {
    format!("{ROOT}joinuses/")
}
pub fn join_use_key(id: &str) -> String {
    format!("{ROOT}joinuses/{id}")
}

/// Facts about the cluster set at initialisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub cluster_id: String,
    pub created_at: UnixSeconds,
}

/// The cluster CA certificate, kept in the store so every control-plane replica issues the
/// same chain (its private key is not in the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRecord {
    pub cert_pem: String,
    /// Only in stores written by older versions: the key now lives in a file of each
    /// replica's data directory ([`crate::CA_KEY_FILE`]) and is moved there on start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
}

pub fn now() -> UnixSeconds {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An overlay network (desired state, written by the API only): the API type itself.
pub type NetworkRecord = novacron_api_types::overlay::OverlayNetwork;

pub fn network_prefix() -> String {
    format!("{ROOT}networks/")
}
pub fn network_key(project: &str, name: &str) -> String {
    format!("{ROOT}networks/{project}/{name}")
}
/// Security groups (the API type itself, written by the API only).
pub fn security_group_prefix() -> String {
    format!("{ROOT}securitygroups/")
}
pub fn security_group_key(project: &str, name: &str) -> String {
    format!("{ROOT}securitygroups/{project}/{name}")
}
/// Who holds a VNI: one key per VNI makes the allocation unique in the cluster.
pub fn vni_prefix() -> String {
    format!("{ROOT}vnis/")
}
pub fn vni_key(vni: u32) -> String {
    format!("{ROOT}vnis/{vni:08}")
}
/// Rewritten by every create and delete of a network in `project`: a create compares it,
/// so its subnet-overlap check held for the networks it read.
pub fn network_guard_key(project: &str) -> String {
    format!("{ROOT}networkguards/{project}")
}

/// The holder of a VNI (under [`vni_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VniRecord {
    pub project: String,
    pub network: String,
}

/// A store failure as the API answers it (503: the state store is unavailable), logged once.
pub fn store_err(e: novacron_store::StoreError) -> novacron_api_types::ApiError {
    tracing::error!(error = %e, "store error");
    novacron_api_types::ApiError::unavailable(format!("the state store failed: {e}"))
}

/// A VM record for unit tests: `web` of project `default` on `node-a`, generation 3.
#[cfg(test)]
pub fn example_vm(power: PowerState) -> VmRecord {
    VmRecord {
        name: "web".into(),
        project: "default".into(),
        uuid: "u".into(),
        cpus: 1,
        memory_bytes: 128 << 20,
        disk_bytes: None,
        image: "tiny".into(),
        accel: AccelChoice::Tcg,
        network: Network::default(),
        ssh_keys: vec![],
        node: "node-a".into(),
        power,
        force: false,
        action: None,
        deleting: false,
        generation: 3,
        created_at: 0,
        operation: None,
        creating: false,
        storage: None,
        ha: HaPolicy::None,
        ha_priority: 0,
        restore: None,
        migration: None,
        migrating_to: None,
        nics: vec![],
        labels: Default::default(),
        description: None,
        user_data: None,
        vendor_data: None,
        pending: None,
        snapshots: vec![],
        disk_resize: None,
        clone_of: None,
        disk_linked: false,
        vnc: false,
        iso: None,
        hotplug_ports: 0,
        data_disks: vec![],
        added_nics: vec![],
        nics_changed_at: None,
        security_groups: vec![],
        bandwidth_bps: None,
        disk_plug: None,
        firmware: Default::default(),
        secure_boot: false,
        tpm: false,
    }
}
