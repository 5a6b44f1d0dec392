//! Resource types shared by the control plane, the node agent and the client SDK: one
//! definition of a VM, a node, an image and an operation, so CLI, API and OpenAPI
//! document cannot drift apart.

// Tests may unwrap; product code may not (workspace lint).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod agent;
pub mod audit;
pub mod backup;
pub mod cloud_init;
pub mod disks;
pub mod error;
pub mod events;
pub mod exec;
pub mod file_hash;
pub mod join_token;
pub mod labels;
pub mod migration;
pub mod names;
pub mod nics;
pub mod overlay;
pub mod security;
pub mod size;
pub mod sse;
pub mod stats;
pub mod tenancy;
pub mod validate;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use error::{ApiError, ErrorCode};
pub use names::{NameError, validate_name};
pub use size::{SizeError, format_bandwidth, format_size, parse_bandwidth, parse_size};
pub use validate::Invalid;

/// Every resource belongs to a project; this one always exists.
pub const DEFAULT_PROJECT: &str = "default";

/// Where public images live: images a cluster admin made for every project to use. An image
/// of this pseudo-project shows it as its `project`; no project can be named so. A project
/// finds a public image by its name, and no project image may take the name of a public one
/// (nor the other way round), so a name always means the same image.
pub const PUBLIC_IMAGES: &str = "public";

/// Seconds since the Unix epoch.
pub type UnixSeconds = u64;

/// What a VM is doing, as last observed (or being changed to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    Creating,
    Stopped,
    Starting,
    Running,
    Paused,
    Stopping,
    Migrating,
    Crashed,
}

impl VmState {
    pub const ALL: [VmState; 8] = [
        VmState::Creating,
        VmState::Stopped,
        VmState::Starting,
        VmState::Running,
        VmState::Paused,
        VmState::Stopping,
        VmState::Migrating,
        VmState::Crashed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Creating => "creating",
            VmState::Stopped => "stopped",
            VmState::Starting => "starting",
            VmState::Running => "running",
            VmState::Paused => "paused",
            VmState::Stopping => "stopping",
            VmState::Migrating => "migrating",
            VmState::Crashed => "crashed",
        }
    }

    /// True when a QEMU process exists for the VM in this state.
    pub fn has_process(self) -> bool {
        matches!(
            self,
            VmState::Starting
                | VmState::Running
                | VmState::Paused
                | VmState::Stopping
                | VmState::Migrating
        )
    }
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The power state an operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    Running,
    Paused,
    Stopped,
}

/// Which accelerator to use; `auto` picks KVM only where it really works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            other => Err(format!(
                "unknown accelerator {other:?}: use auto, kvm or tcg"
            )),
        }
    }
}

impl std::fmt::Display for AccelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccelChoice::Auto => "auto",
            AccelChoice::Kvm => "kvm",
            AccelChoice::Tcg => "tcg",
        })
    }
}

/// A host port forwarded to a guest port through user-mode NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    pub host_port: u16,
    pub guest_port: u16,
}

impl std::str::FromStr for PortForward {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        validate::parse_port_forward(s)
    }
}

/// How a VM is connected to the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum Network {
    /// User-mode NAT, optionally with host port forwards.
    User {
        #[serde(default)]
        forwards: Vec<PortForward>,
    },
    /// A tap device attached to an existing Linux bridge on the node.
    Bridge { bridge: String },
    /// No network device.
    None,
}

impl Default for Network {
    fn default() -> Self {
        Network::User { forwards: vec![] }
    }
}

/// Body of `POST /api/v1/vms`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VmCreateRequest {
    pub name: String,
    pub image: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    /// Size of the VM's disk; defaults to the image's size for disk images, none for kernel images.
    #[serde(default)]
    pub disk_bytes: Option<u64>,
    /// Place on this node; otherwise the scheduler chooses.
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub accel: AccelChoice,
    #[serde(default)]
    pub network: Network,
    /// SSH public keys put into the cloud-init seed (disk images only).
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    /// Start the VM after creating it (default true).
    #[serde(default = "default_true")]
    pub start: bool,
    /// Keep the VM's disk in this storage pool (shared by every node) instead of the node's
    /// local disk.
    #[serde(default)]
    pub storage: Option<String>,
    /// What to do when the VM's node is lost.
    #[serde(default)]
    pub ha: HaPolicy,
    /// Higher restarts first when several VMs must move.
    #[serde(default)]
    pub ha_priority: i32,
    /// NICs on overlay networks (`--network NET [--ip A] [--mac M]`), in addition to `network`.
    #[serde(default)]
    pub nics: Vec<overlay::NicRequest>,
    /// Security groups (of the VM's project) that filter its overlay NICs
    /// (`--security-group web`); none leaves them unfiltered.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Limit each overlay NIC to this many bits per second in each direction
    /// (`--bandwidth 200mbit`); absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_bps: Option<u64>,
    /// `key=value` labels to find the VM by (`vm list --selector`).
    #[serde(default)]
    pub labels: labels::Labels,
    /// Free text shown by `vm show`.
    #[serde(default)]
    pub description: Option<String>,
    /// cloud-init user-data (a `#cloud-config` YAML document, at most 64 KiB) put into the
    /// NoCloud seed as it is; disk images only.
    #[serde(default)]
    pub user_data: Option<String>,
    /// cloud-init vendor-data, checked like `user_data`.
    #[serde(default)]
    pub vendor_data: Option<String>,
    /// Give the VM a graphics card and a graphical console (VNC), reached only through the API
    /// (`vm console NAME --vnc`); never a port on the node.
    #[serde(default)]
    pub vnc: bool,
    /// An ISO image (`image import NAME FILE.iso`) attached as a read-only CD-ROM, booted
    /// after the disk. When `image` is itself an ISO image, the VM is an installer: a blank
    /// disk of `disk_bytes` (required) and that ISO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso: Option<String>,
    /// `bios` (SeaBIOS) or `uefi` (OVMF, with the VM's own variable store); absent: the
    /// image's (`vm template` of a UEFI VM makes a UEFI image), else `bios`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Firmware>,
    /// UEFI Secure Boot (with `firmware: uefi`): OVMF's Secure Boot build, Microsoft's keys
    /// enrolled, so shim-signed installers and OSes boot and unsigned ones are refused.
    #[serde(default)]
    pub secure_boot: bool,
    /// A TPM 2.0 (swtpm, QEMU's `tpm-crb`) whose state is the VM's own and follows it through
    /// migrations, backups, restores and clones.
    #[serde(default)]
    pub tpm: bool,
}

/// The firmware a VM boots through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// SeaBIOS, QEMU's default.
    #[default]
    Bios,
    /// OVMF, with a variable store (NVRAM) of the VM's own that follows it.
    Uefi,
}

impl Firmware {
    pub fn is_bios(&self) -> bool {
        *self == Firmware::Bios
    }
}

impl std::str::FromStr for Firmware {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bios" => Ok(Firmware::Bios),
            "uefi" => Ok(Firmware::Uefi),
            other => Err(format!("unknown firmware {other:?}: use bios or uefi")),
        }
    }
}

/// Body of `POST /api/v1/vms/{name}/set`: what to change; absent fields stay as they are.
/// Labels and description apply at once; CPUs and memory when the VM next starts (at once
/// when it is stopped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VmSetRequest {
    #[serde(default)]
    pub cpus: Option<u32>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Labels to add or overwrite.
    #[serde(default)]
    pub labels: labels::Labels,
    /// Label keys to remove.
    #[serde(default)]
    pub remove_labels: Vec<String>,
    /// The new description (an empty string clears it).
    #[serde(default)]
    pub description: Option<String>,
    /// The new limit of each overlay NIC, bits per second in each direction; 0 removes it.
    /// Applies at once to a running VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_bps: Option<u64>,
}

/// Answer of `POST /api/v1/vms/{name}/set`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmSetResponse {
    /// The change's operation (finished: nothing waits on the node).
    pub operation: Operation,
    pub vm: Vm,
    /// What takes effect only when the VM next starts (e.g. `cpus`, `memory`).
    pub at_next_start: Vec<String>,
}

/// What happens to a VM when its node is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HaPolicy {
    /// Nothing: it comes back with its node.
    #[default]
    None,
    /// Restart it on a healthy node (needs shared storage).
    Restart,
}

impl std::str::FromStr for HaPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(HaPolicy::None),
            "restart" => Ok(HaPolicy::Restart),
            other => Err(format!("unknown HA policy {other:?}: use restart or none")),
        }
    }
}

/// Kinds of storage pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StorageKind {
    /// A directory every node mounts at the same path (NFS, CephFS, ...).
    SharedDir,
}

/// A place for VM disks that every node can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoragePool {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: StorageKind,
    pub path: String,
    #[serde(default)]
    pub created_at: UnixSeconds,
}

/// A control-plane replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub id: String,
    pub url: String,
    pub version: String,
    pub started_at: UnixSeconds,
}

/// A node's liveness lease as the control plane sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeLease {
    pub node: String,
    pub alive: bool,
    pub ttl_seconds: u64,
}

/// Answer of `GET /api/v1/cluster/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    pub cluster_id: String,
    /// Which replica answered.
    pub answered_by: String,
    pub members: Vec<Member>,
    /// `sqlite` or `etcd`, and its health.
    pub store: StoreHealth,
    /// Controller name → member id of the replica running it.
    pub controllers: std::collections::BTreeMap<String, String>,
    pub node_leases: Vec<NodeLease>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreHealth {
    pub backend: String,
    pub healthy: bool,
    pub revision: i64,
    pub detail: String,
}

fn default_true() -> bool {
    true
}

/// A network interface as the guest's qemu-guest-agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GuestInterface {
    /// The guest's name for it, e.g. `eth0`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Addresses with their prefix length (`10.0.2.15/24`), IPv4 first; link-local IPv6
    /// addresses are left out.
    #[serde(default)]
    pub ips: Vec<String>,
}

/// A virtual machine: what was asked for and what is observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Vm {
    pub name: String,
    pub project: String,
    pub uuid: String,
    /// Observed state.
    pub state: VmState,
    /// Why the VM is in this state when it is not the one asked for (e.g. a crash reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    /// Power state asked for.
    pub desired: PowerState,
    pub node: Option<String>,
    pub cpus: u32,
    pub memory_bytes: u64,
    #[serde(default)]
    pub disk_bytes: Option<u64>,
    pub image: String,
    pub accel: AccelChoice,
    /// The accelerator the running QEMU actually uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel_in_use: Option<String>,
    pub network: Network,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(default)]
    pub ha: HaPolicy,
    #[serde(default)]
    pub ha_priority: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub created_at: UnixSeconds,
    /// Bumped on every change of what is asked for.
    pub generation: u64,
    /// NICs on overlay networks: network, MAC, addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<overlay::Nic>,
    /// NICs added with `vm nic add`, each in a hot-plug port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_nics: Vec<nics::AddedNic>,
    /// Security groups that filter the VM's overlay NICs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// Each overlay NIC's limit in bits per second, in each direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_bps: Option<u64>,
    #[serde(default)]
    pub labels: labels::Labels,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the guest boots through: `uefi` (OVMF, any image), `bios` (SeaBIOS, disk images)
    /// or `kernel` (SeaBIOS with direct kernel boot, kernel images).
    #[serde(default)]
    pub firmware: String,
    /// UEFI Secure Boot is on.
    #[serde(default)]
    pub secure_boot: bool,
    /// The VM has a TPM 2.0.
    #[serde(default)]
    pub tpm: bool,
    /// CPUs the VM gets when it next starts, when that differs from `cpus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_cpus: Option<u32>,
    /// Memory the VM gets when it next starts, when that differs from `memory_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_memory_bytes: Option<u64>,
    /// Whether cloud-init user-data / vendor-data were given at create.
    #[serde(default)]
    pub user_data: bool,
    /// The guest's interfaces and addresses while it runs, as its qemu-guest-agent reports
    /// them (empty when the guest runs no agent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guest_interfaces: Vec<GuestInterface>,
    #[serde(default)]
    pub vendor_data: bool,
    /// Snapshots of the VM's disk, oldest first.
    #[serde(default)]
    pub snapshots: Vec<VmSnapshot>,
    /// The VM has a graphics card and a graphical console (`vm console NAME --vnc`).
    #[serde(default)]
    pub vnc: bool,
    /// The ISO image in the VM's CD-ROM drive, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso: Option<String>,
    /// Disks added by `vm disk add` (`disk1`, ...), besides the boot disk `disk0`.
    #[serde(default)]
    pub data_disks: Vec<disks::DataDisk>,
    /// How many more disks can be added: free hot-plug ports (a VM created before hot-plug
    /// gets ports when it is stopped).
    #[serde(default)]
    pub free_disk_slots: u32,
}

/// What a node is allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Ready,
    Cordoned,
    Draining,
    Down,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeState::Ready => "ready",
            NodeState::Cordoned => "cordoned",
            NodeState::Draining => "draining",
            NodeState::Down => "down",
        })
    }
}

/// Resources of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Resources {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
}

/// A host that runs VMs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Node {
    pub name: String,
    pub state: NodeState,
    pub capacity: Resources,
    /// Sum of what the VMs placed on this node asked for.
    pub allocated: Resources,
    pub vms: u32,
    pub kvm_usable: bool,
    pub qemu_version: String,
    pub agent_url: String,
    pub registered_at: UnixSeconds,
    pub last_heartbeat: UnixSeconds,
    /// The IPv4 address other nodes send this node's overlay (VXLAN) traffic to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtep_address: Option<String>,
    /// The node's site (none: the default site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// The node's end of the tunnel between sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<overlay::TunnelEndpoint>,
}

/// What an image boots from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ImageKind {
    /// Direct kernel boot: kernel + initrd + command line.
    Kernel { cmdline: String },
    /// A bootable disk (cloud image), qcow2 or raw.
    Disk { format: DiskFormat },
    /// An ISO 9660 medium (file role `iso`): installation media, not a bootable disk.
    Iso,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Qcow2,
    Raw,
}

impl std::fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        })
    }
}

/// A bootable image held by the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Image {
    pub name: String,
    pub project: String,
    #[serde(flatten)]
    pub kind: ImageKind,
    /// Bytes stored (all files of the image).
    pub size_bytes: u64,
    /// For disk images: the guest-visible size.
    #[serde(default)]
    pub virtual_size_bytes: Option<u64>,
    /// Files of the image, e.g. `kernel`, `initrd` or `disk`, with their BLAKE3 checksums.
    pub files: Vec<ImageFile>,
    pub created_at: UnixSeconds,
    /// The control-plane replica that holds the files (others fetch them from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The firmware VMs made from the image boot through when `vm create` names none
    /// (`vm template` of a UEFI VM makes a UEFI image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Firmware>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageFile {
    pub role: String,
    pub size_bytes: u64,
    pub blake3: String,
}

/// Body of `POST /api/v1/images/build-tiny`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildTinyRequest {
    pub name: String,
    /// Make it a public image, which every project can use (cluster admins only).
    #[serde(default)]
    pub public: bool,
}

/// Body of `POST /api/v1/images/{name}/import-url`: the control plane downloads `url` and imports the file as
/// `image import` does with a local one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageUrlImportRequest {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The file's expected SHA-256 (64 hex digits): checked before the image is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Make it a public image, which every project can use (cluster admins only).
    #[serde(default)]
    pub public: bool,
}

/// Answer of `GET /api/v1/local-files`: where a client on this control plane's own host hands
/// it an open file (a unix socket taking one descriptor, SCM_RIGHTS), so that `image import` of
/// a local file is read from the disk instead of sent over TLS. See docs/images.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LocalFiles {
    /// The socket's path on the control plane's host.
    pub socket: String,
    /// The replica that listens on it (its member id): the socket answers the same id, so a
    /// client never hands a file to another server that happens to use the same path.
    pub server: String,
}

/// Body of `POST /api/v1/images/{name}/import-local`: imports the file handed to the replica's
/// local-files socket under `ticket`, as an operation, as `PUT .../import` would its upload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageLocalImportRequest {
    /// What the local-files socket answered for the descriptor (one use, valid for a minute).
    pub ticket: String,
    /// The file's name: one ending in `.iso` must be an ISO 9660 image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The file's expected SHA-256 (64 hex digits): checked before the image is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Make it a public image, which every project can use (cluster admins only).
    #[serde(default)]
    pub public: bool,
}

/// Body of `POST /api/v1/images/{name}/import-ova-local`: imports the OVA appliance handed to
/// the replica's local-files socket (see [`LocalFiles`]) as `PUT .../import-ova` does an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OvaLocalImportRequest {
    /// What the local-files socket answered for the descriptor (one use, valid for a minute).
    pub ticket: String,
}

/// Answer of `PUT /api/v1/images/{name}/import-ova` (and `POST .../import-ova-local`): the appliance's disks as images (`NAME`,
/// `NAME-disk2`, ...) and what its OVF descriptor says about the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OvaImport {
    /// One disk image per OVF disk, the boot disk first.
    pub images: Vec<Image>,
    /// The OVF's virtual system id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appliance: Option<String>,
    pub cpus: Option<u32>,
    pub memory_bytes: Option<u64>,
    pub nics: Vec<OvaNic>,
    /// The `novacron vm create` command that matches the appliance.
    pub vm_create: String,
    /// The `novacron vm disk add` commands that give that VM the appliance's other disks, in
    /// the OVF's order.
    #[serde(default)]
    pub disk_adds: Vec<String>,
    /// The `image.import` operation that did the import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

/// A network card of an OVA appliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OvaNic {
    /// The OVF network it was connected to.
    pub network: Option<String>,
    /// The OVF's card model, e.g. `E1000`, `VmxNet3` (NovaCron gives every NIC virtio-net).
    pub model: Option<String>,
}

/// Where a long operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperationState {
    Running,
    Succeeded,
    Failed,
}

/// A long operation (start, stop, create, later migrate) the CLI can wait on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Operation {
    pub id: String,
    pub project: String,
    /// e.g. `vm.create`, `vm.start`.
    pub kind: String,
    /// The resource it acts on, e.g. `vm/web1`.
    pub target: String,
    pub state: OperationState,
    /// A short description of the current step, or the error when failed.
    pub message: String,
    /// 0.0 ..= 1.0 when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    pub created_at: UnixSeconds,
    pub updated_at: UnixSeconds,
}

impl Operation {
    pub fn is_done(&self) -> bool {
        self.state != OperationState::Running
    }
}

/// Answer of calls that start a long operation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationRef {
    pub operation: Operation,
}

/// Body of `POST /api/v1/vms/{name}/stop`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// Kill QEMU instead of asking the guest to power off.
    #[serde(default)]
    pub force: bool,
}

/// Answer of `GET /api/v1/vms/{name}/console`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsoleLog {
    /// What the guest wrote on its serial console (the last `tail_bytes` of it).
    pub text: String,
    pub truncated: bool,
}

/// Liveness and version of the control plane.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub store: String,
}

/// A snapshot of a VM's disk (and, with `memory`, of its running state), kept inside the
/// VM's qcow2 disk (internal snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VmSnapshot {
    pub name: String,
    /// Holds the guest's memory and device state: reverting a running VM to it brings the
    /// guest back to that moment.
    pub memory: bool,
    /// Bytes of saved memory and device state (0 for a disk-only snapshot).
    #[serde(default)]
    pub vm_state_bytes: u64,
    pub created_at: UnixSeconds,
}

/// Body of `POST /api/v1/vms/{name}/snapshots`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCreateRequest {
    /// Defaults to `snap-<date>-<time>` (UTC).
    #[serde(default)]
    pub name: Option<String>,
    /// Save memory and device state too (the VM must be running).
    #[serde(default)]
    pub memory: bool,
}

/// What the control plane asks an agent to do with a VM's snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum SnapshotJob {
    Create { name: String, memory: bool },
    Revert { name: String },
    Delete { name: String },
    List,
}
