//! The agent protocol: what a node agent and the control plane tell each other
//! (registration, heartbeats, desired VMs for a node, observed VM status).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{AccelChoice, HaPolicy, Image, Network, PowerState, Resources, StoragePool, VmState};

/// Body of `POST /api/v1/agent/register` (authenticated with the join token, or with the
/// node's own token when it registers again).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub name: String,
    pub capacity: Resources,
    /// Where the control plane reaches this agent (console, later migration control).
    pub agent_url: String,
    pub kvm_usable: bool,
    pub qemu_version: String,
    /// Linux bridges present on the node, so `--bridge` can be checked before placement.
    #[serde(default)]
    pub bridges: Vec<String>,
    /// This node's VTEP: the IPv4 address other nodes send its overlay (VXLAN) traffic to.
    /// None: the node takes part in no overlay network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtep_address: Option<String>,
    /// The site the node is in (`agent --site`); none: the default site. Overlay traffic
    /// between nodes of different sites goes through the tunnel, encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// The node's end of the tunnel between sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<crate::overlay::TunnelEndpoint>,
}

/// Answer of a registration: the node's credentials. The token authenticates the agent to
/// the control plane; the certificate (signed by the cluster CA) serves the agent's own
/// HTTPS endpoint and node-to-node DWCP.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub node_token: String,
    /// Secret the control plane presents when it calls the agent.
    pub server_token: String,
    pub ca_cert_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// The node's liveness lease: without a heartbeat for this long the node counts as lost,
    /// and the agent fences its HA VMs itself.
    pub lease_ttl_ms: u64,
    /// When the certificate expires (Unix seconds); the agent registers again with its node
    /// token well before, which issues a new one.
    #[serde(default)]
    pub cert_not_after: Option<u64>,
}

/// Body of `POST /api/v1/agent/heartbeat`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatRequest {
    pub running_vms: u32,
    /// The node's newest usage sample, sent once (with the first beat after it was taken).
    /// Control planes from before metrics ignore it; agents from before send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<crate::stats::NodeSample>,
}

/// A one-shot action attached to a generation of a VM's desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VmAction {
    Reboot,
}

/// A VM as the agent of its node must make it be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DesiredVm {
    pub project: String,
    pub name: String,
    pub uuid: String,
    /// Bumped on every change; the agent acts once per generation.
    pub generation: u64,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub disk_bytes: Option<u64>,
    /// `None` when the image record is gone (the VM keeps running; it cannot be prepared anew).
    pub image: Option<Image>,
    pub accel: AccelChoice,
    pub network: Network,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    pub power: PowerState,
    /// With `power: stopped`: kill instead of a graceful ACPI shutdown.
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub action: Option<VmAction>,
    /// The VM is being deleted: stop it and remove its files.
    #[serde(default)]
    pub deleting: bool,
    /// Where the disk lives when not on the node's local disk.
    #[serde(default)]
    pub storage: Option<StoragePool>,
    #[serde(default)]
    pub ha: HaPolicy,
    /// Fill the disk from this backup (a restored VM, or a restore over this one).
    #[serde(default)]
    pub restore: Option<crate::backup::RestoreSource>,
    /// NICs on overlay networks: each a tap on the network's bridge `ncbr<vni>`.
    #[serde(default)]
    pub nics: Vec<crate::overlay::Nic>,
    /// cloud-init user-data for the NoCloud seed (replaces the generated one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// cloud-init vendor-data for the NoCloud seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_data: Option<String>,
    /// Made by `vm clone`: the disk starts from this VM's disk (on the same node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_of: Option<crate::disks::CloneSource>,
    /// A graphics card and QEMU's VNC server on a unix socket in the VM's run directory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vnc: bool,
    /// The ISO image in the VM's CD-ROM drive (`None` also when that image record is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso: Option<Image>,
    /// Spare PCIe root ports the machine has for hot-plugged disks (0: a VM from before
    /// hot-plug, whose machine keeps the shape it was started with).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hotplug_ports: u32,
    /// Disks added by `vm disk add`, each in its port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_disks: Vec<crate::disks::DataDisk>,
    /// NICs added by `vm nic add`, each in its port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_nics: Vec<crate::nics::AddedNic>,
    /// BIOS or UEFI; a UEFI VM's variable store lives beside its disks.
    #[serde(default, skip_serializing_if = "crate::Firmware::is_bios")]
    pub firmware: crate::Firmware,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secure_boot: bool,
    /// A TPM 2.0 through swtpm; its state lives beside the disks (`tpm/<node>/`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tpm: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Answer of `GET /api/v1/agent/vms`: the VMs placed on the calling node — all of them
/// (`full`), or only those that changed since the revision the agent passed as `after`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DesiredVms {
    /// Store revision the list was read at; pass it back as `after` to wait for changes.
    pub revision: i64,
    /// True: `vms` is every VM of the node (anything else the agent runs is not placed
    /// here any more). False: `vms` changed, `removed` are no longer placed here.
    #[serde(default = "default_true")]
    pub full: bool,
    pub vms: Vec<DesiredVm>,
    /// `project/name` of VMs that left the node (deleted or moved).
    #[serde(default)]
    pub removed: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// Body of `PUT /api/v1/agent/vms/{project}/{name}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmStatusReport {
    /// The generation of desired state this report answers.
    pub observed_generation: u64,
    pub state: VmState,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub accel_in_use: Option<String>,
    /// Acting on `observed_generation` failed with this error.
    #[serde(default)]
    pub error: Option<String>,
    /// The guest powered itself off (the VM should stay off).
    #[serde(default)]
    pub guest_initiated_stop: bool,
    /// Files and process are gone after a delete.
    #[serde(default)]
    pub deleted: bool,
    /// The guest's interfaces and addresses, from its qemu-guest-agent, while it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guest_interfaces: Vec<crate::GuestInterface>,
}
