//! Operations on a VM's disks as decisions over its record, without I/O: whether a resize,
//! an added disk (`vm disk add`) or a detach may start, and the record while it runs and
//! after it ended (docs/disks.md).
//!
//! The model: a resize is recorded on the VM ([`DiskResize`]) before its agent touches the
//! disk, in the transaction that also counts the new size against the project's quota; the
//! record's `disk_bytes` takes the size only after the agent reported the disk has it. While
//! a resize is recorded, no other resize and no live migration may start (the migration's
//! disk copy must see one size). A control plane that died mid-resize leaves the record
//! behind: after [`RESIZE_STALE_AFTER_SECS`] it no longer holds anything up (the agent's own
//! resize ends in seconds).

use novacron_api_types::disks::{DISK0, DataDisk, HOTPLUG_PORTS};
use novacron_api_types::overlay::NicRequest;
use novacron_api_types::{
    ApiError, Network, PowerState, UnixSeconds, VmCreateRequest, VmState, format_size,
};
use serde::{Deserialize, Serialize};

use crate::lifecycle::{Refusal, check_changeable};
use crate::records::VmRecord;

/// A resize of one of the VM's disks that its agent is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskResize {
    /// The operation that waits for it.
    pub operation: String,
    pub disk: String,
    pub size_bytes: u64,
    pub started_at: UnixSeconds,
}

/// After this long, a recorded resize is taken for one whose control plane died mid-way.
pub const RESIZE_STALE_AFTER_SECS: u64 = 600;

/// A disk (or NIC: `disk` is then its name, `nic<N>`) its agent is adding to the VM
/// (`attach`) or removing from it. An added disk is in
/// the record's `data_disks` from the request on (it counts against the quota, and a start
/// meanwhile builds it), and leaves it again if the agent could not add it; a detached disk
/// leaves `data_disks` once the agent removed it. Like a resize, it holds up other disk
/// operations and live migration until it ends or is [`RESIZE_STALE_AFTER_SECS`] old.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskPlug {
    pub operation: String,
    pub disk: String,
    pub attach: bool,
    pub started_at: UnixSeconds,
}

/// Why a disk may not be added or detached, as data; `Display` is the user's answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlugRefusal {
    #[error(transparent)]
    Lifecycle(#[from] Refusal),
    #[error(
        "VM {vm} is busy adding or removing a disk or NIC (operation {operation}): wait for it (`novacron operation show {operation}`)"
    )]
    InProgress { vm: String, operation: String },
    #[error(
        "VM {vm} runs on a machine started without hot-plug ports (it was created before `vm disk add` existed): stop it (`novacron vm stop {vm}`), add the disk, and start it again"
    )]
    NoPorts { vm: String },
    #[error(
        "VM {vm} has all its {ports} hot-plug ports in use ({disks}): detach a disk (`novacron vm disk detach {vm} DISK`) or remove a NIC (`novacron vm nic remove {vm} NIC`) first"
    )]
    PortsFull {
        vm: String,
        ports: u32,
        disks: String,
    },
    #[error("{disk} is the boot disk of VM {vm}: only disks added with `vm disk add` are detached")]
    BootDisk { vm: String, disk: String },
    #[error(
        "VM {vm} is {observed}: detaching {disk} unplugs it from the running guest and deletes its data; add --force to do so, or stop the VM first"
    )]
    NeedsForce {
        vm: String,
        disk: String,
        observed: VmState,
    },
}

impl From<PlugRefusal> for ApiError {
    fn from(r: PlugRefusal) -> ApiError {
        match r {
            PlugRefusal::Lifecycle(l) => l.into(),
            PlugRefusal::BootDisk { .. } => ApiError::invalid(r.to_string()),
            PlugRefusal::InProgress { .. }
            | PlugRefusal::NoPorts { .. }
            | PlugRefusal::PortsFull { .. }
            | PlugRefusal::NeedsForce { .. } => ApiError::conflict(r.to_string()),
        }
    }
}

impl From<PlugRefusal> for crate::api::ApiFailure {
    fn from(r: PlugRefusal) -> Self {
        crate::api::ApiFailure(r.into())
    }
}

/// The operation of a disk change (resize, add, detach) still under way on `rec` at `now`.
pub fn disk_busy(rec: &VmRecord, now: UnixSeconds) -> Option<&str> {
    let fresh = |started: UnixSeconds| now < started.saturating_add(RESIZE_STALE_AFTER_SECS);
    resize_in_flight(rec, now).or(rec
        .disk_plug
        .as_ref()
        .filter(|p| fresh(p.started_at))
        .map(|p| p.operation.as_str()))
}

/// The VM's disks by name and size: the boot disk (if any), then the added ones.
pub fn disk_sizes(rec: &VmRecord) -> Vec<(&str, u64)> {
    let boot = rec.disk_bytes.map(|b| (DISK0, b));
    boot.into_iter()
        .chain(
            rec.data_disks
                .iter()
                .map(|d| (d.name.as_str(), d.size_bytes)),
        )
        .collect()
}

/// Disk space the VM counts against its project's quota: every disk, each at the size a
/// resize under way asks for if larger.
pub fn counted_disk_bytes(rec: &VmRecord) -> u64 {
    disk_sizes(rec)
        .into_iter()
        .map(|(name, size)| match &rec.disk_resize {
            Some(r) if r.disk == name => size.max(r.size_bytes),
            _ => size,
        })
        .sum()
}

/// Why a template of `rec` is refused while it has added disks: an image is one disk.
pub fn only_boot_disk(rec: &VmRecord) -> Option<String> {
    if rec.data_disks.is_empty() {
        return None;
    }
    let names: Vec<&str> = rec.data_disks.iter().map(|d| d.name.as_str()).collect();
    Some(format!(
        "VM {} has added disks ({}): a template covers the boot disk only, so the added ones would be left out; detach them first (`novacron vm disk detach {} DISK`)",
        rec.name,
        names.join(", "),
        rec.name
    ))
}

/// How many more disks or NICs `vm disk add` and `vm nic add` can give the VM: its free
/// hot-plug ports (a VM from before hot-plug gets [`HOTPLUG_PORTS`] when it is stopped).
pub fn free_disk_slots(rec: &VmRecord) -> u32 {
    let ports = if rec.hotplug_ports == 0 {
        HOTPLUG_PORTS
    } else {
        rec.hotplug_ports
    };
    ports.saturating_sub((rec.data_disks.len() + rec.added_nics.len()) as u32)
}

/// What sits in the VM's hot-plug ports: added disks and NICs, by name.
pub fn port_holders(rec: &VmRecord) -> Vec<(u32, &str)> {
    rec.data_disks
        .iter()
        .map(|d| (d.port, d.name.as_str()))
        .chain(rec.added_nics.iter().map(|n| (n.port, n.name.as_str())))
        .collect()
}

/// The record ready to take one more device in a hot-plug port, and that port; or why not.
/// A stopped VM from before hot-plug gets its ports now (its machine is built anew at its
/// next start).
pub fn claim_port(rec: &VmRecord, observed: VmState) -> Result<(VmRecord, u32), PlugRefusal> {
    let vm = || rec.name.clone();
    let mut next = rec.clone();
    if next.hotplug_ports == 0 {
        if not_stopped(rec, observed).is_some() {
            return Err(PlugRefusal::NoPorts { vm: vm() });
        }
        next.hotplug_ports = HOTPLUG_PORTS;
    }
    let holders = port_holders(rec);
    let Some(port) = (0..next.hotplug_ports).find(|p| !holders.iter().any(|(q, _)| q == p)) else {
        let names: Vec<&str> = holders.iter().map(|(_, n)| *n).collect();
        return Err(PlugRefusal::PortsFull {
            vm: vm(),
            ports: next.hotplug_ports,
            disks: names.join(", "),
        });
    };
    Ok((next, port))
}

/// The state to name when the VM is (or is asked to be) anything but stopped, from what its
/// agent observed (`starting` when it is stopped but asked to run); `None` while it stays
/// stopped.
pub(crate) fn not_stopped(rec: &VmRecord, observed: VmState) -> Option<VmState> {
    let stopped = matches!(observed, VmState::Stopped | VmState::Crashed);
    match (stopped, rec.power) {
        (true, PowerState::Stopped) => None,
        (true, _) => Some(VmState::Starting),
        (false, _) => Some(observed),
    }
}

/// The checks every device add (and a NIC's removal) starts with: the VM may change, is not
/// being created, and has no disk or NIC change under way.
pub fn check_pluggable(rec: &VmRecord, now: UnixSeconds) -> Result<(), PlugRefusal> {
    check_changeable(rec)?;
    if rec.creating {
        return Err(Refusal::Creating {
            vm: rec.name.clone(),
        }
        .into());
    }
    if let Some(op) = disk_busy(rec, now) {
        return Err(PlugRefusal::InProgress {
            vm: rec.name.clone(),
            operation: op.to_string(),
        });
    }
    Ok(())
}

/// The record with a new disk of `size_bytes` (blank, or a copy of `image`) added under
/// `operation` (in the first free port, named after the lowest free `disk<N>`), and that
/// disk; or why not. A stopped
/// VM from before hot-plug gets its ports now (its machine is built anew at its next start).
pub fn begin_add(
    rec: &VmRecord,
    observed: VmState,
    size_bytes: u64,
    image: Option<&str>,
    operation: &str,
    now: UnixSeconds,
) -> Result<(VmRecord, DataDisk), PlugRefusal> {
    check_pluggable(rec, now)?;
    let (mut next, port) = claim_port(rec, observed)?;
    let name = (1u32..)
        .map(|n| format!("disk{n}"))
        .find(|n| !rec.data_disks.iter().any(|d| &d.name == n))
        .unwrap_or_else(|| format!("disk{}", rec.data_disks.len() + 1));
    let disk = DataDisk {
        name,
        size_bytes,
        port,
        image: image.map(str::to_string),
    };
    next.data_disks.push(disk.clone());
    next.disk_plug = Some(DiskPlug {
        operation: operation.into(),
        disk: disk.name.clone(),
        attach: true,
        started_at: now,
    });
    Ok((next, disk))
}

/// The record with added disk `disk` being detached under `operation`, or why not (the boot
/// disk never is; a running VM's only with `force`).
pub fn begin_detach(
    rec: &VmRecord,
    observed: VmState,
    disk: &str,
    force: bool,
    operation: &str,
    now: UnixSeconds,
) -> Result<VmRecord, PlugRefusal> {
    check_changeable(rec)?;
    let vm = || rec.name.clone();
    if rec.creating {
        return Err(Refusal::Creating { vm: vm() }.into());
    }
    if disk == DISK0 {
        return Err(PlugRefusal::BootDisk {
            vm: vm(),
            disk: disk.into(),
        });
    }
    if let Some(op) = disk_busy(rec, now) {
        return Err(PlugRefusal::InProgress {
            vm: vm(),
            operation: op.to_string(),
        });
    }
    if !force && let Some(observed) = not_stopped(rec, observed) {
        return Err(PlugRefusal::NeedsForce {
            vm: vm(),
            disk: disk.into(),
            observed,
        });
    }
    let mut next = rec.clone();
    next.disk_plug = Some(DiskPlug {
        operation: operation.into(),
        disk: disk.into(),
        attach: false,
        started_at: now,
    });
    Ok(next)
}

/// The record once the agent did `operation`'s add or detach at `now` (`None`: nothing to
/// change): a detached disk or NIC leaves the record; a NIC change is dated (the guest's
/// devices differ from those a memory snapshot taken before holds).
pub fn finish_plug(rec: &VmRecord, operation: &str, now: UnixSeconds) -> Option<VmRecord> {
    let plug = rec
        .disk_plug
        .as_ref()
        .filter(|p| p.operation == operation)?;
    let mut next = rec.clone();
    if novacron_api_types::nics::is_nic_name(&plug.disk) {
        next.nics_changed_at = Some(now);
    }
    if !plug.attach {
        next.data_disks.retain(|d| d.name != plug.disk);
        next.added_nics.retain(|n| n.name != plug.disk);
    }
    next.disk_plug = None;
    Some(next)
}

/// The record after `operation`'s add or detach failed (`None`: it no longer records it):
/// a disk that was being added leaves `data_disks`, one being detached stays.
pub fn abandon_plug(rec: &VmRecord, operation: &str) -> Option<VmRecord> {
    let plug = rec
        .disk_plug
        .as_ref()
        .filter(|p| p.operation == operation)?;
    let mut next = rec.clone();
    if plug.attach {
        next.data_disks.retain(|d| d.name != plug.disk);
        next.added_nics.retain(|n| n.name != plug.disk);
    }
    next.disk_plug = None;
    Some(next)
}

/// Why a resize may not start, as data; `Display` is the user's one-line answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResizeRefusal {
    #[error(transparent)]
    Lifecycle(#[from] Refusal),
    #[error("VM {vm} has no disk to resize (it was created without --disk)")]
    NoDisk { vm: String },
    #[error(
        "VM {vm} is already resizing its disk (operation {operation}): wait for it (`novacron operation show {operation}`)"
    )]
    InProgress { vm: String, operation: String },
    #[error(
        "{disk} of VM {vm} is {}; disks only grow, so --size must be larger (asked for {})",
        format_size(*current),
        format_size(*asked)
    )]
    Shrink {
        vm: String,
        disk: String,
        current: u64,
        asked: u64,
    },
    #[error("{disk} of VM {vm} is {} already", format_size(*current))]
    Unchanged {
        vm: String,
        disk: String,
        current: u64,
    },
}

impl From<ResizeRefusal> for ApiError {
    fn from(r: ResizeRefusal) -> ApiError {
        match r {
            ResizeRefusal::Lifecycle(l) => l.into(),
            ResizeRefusal::NoDisk { .. }
            | ResizeRefusal::Shrink { .. }
            | ResizeRefusal::Unchanged { .. } => ApiError::invalid(r.to_string()),
            ResizeRefusal::InProgress { .. } => ApiError::conflict(r.to_string()),
        }
    }
}

impl From<ResizeRefusal> for crate::api::ApiFailure {
    fn from(r: ResizeRefusal) -> Self {
        crate::api::ApiFailure(r.into())
    }
}

/// The operation of a resize still under way on `rec` at `now`, if any.
pub fn resize_in_flight(rec: &VmRecord, now: UnixSeconds) -> Option<&str> {
    rec.disk_resize
        .as_ref()
        .filter(|r| now < r.started_at.saturating_add(RESIZE_STALE_AFTER_SECS))
        .map(|r| r.operation.as_str())
}

/// Why a live migration of `rec` may not start because of its disk, if it may not: a resize
/// under way (the disk copy must see one size), or a local disk linked to a frozen base on
/// its node (a linked clone, or the source of one: live migration copies only the top of
/// the disk, and the base is not on the destination).
pub fn migration_refusal(rec: &VmRecord, now: UnixSeconds) -> Option<String> {
    let name = &rec.name;
    if let Some(op) = disk_busy(rec, now) {
        return Some(format!(
            "VM {name} is changing its disks (operation {op}): wait for it (`novacron operation show {op}`)"
        ));
    }
    if rec.disk_linked && rec.storage.is_none() {
        return Some(format!(
            "VM {name} has a linked disk (a linked clone, or the source of one) whose frozen base stays on node {}: live migration copies only the top of the disk, so it is refused; keep linked VMs on a storage pool, or make full clones (`novacron vm clone` without --linked)",
            rec.node
        ));
    }
    None
}

/// The record with a resize of `disk` to `size_bytes` under `operation` recorded, or why not.
pub fn begin_resize(
    rec: &VmRecord,
    disk: &str,
    size_bytes: u64,
    operation: &str,
    now: UnixSeconds,
) -> Result<VmRecord, ResizeRefusal> {
    check_changeable(rec)?;
    let vm = || rec.name.clone();
    if rec.creating {
        return Err(Refusal::Creating { vm: vm() }.into());
    }
    let Some(current) = disk_sizes(rec)
        .into_iter()
        .find(|(name, _)| *name == disk)
        .map(|(_, size)| size)
    else {
        return Err(ResizeRefusal::NoDisk { vm: vm() });
    };
    if let Some(op) = disk_busy(rec, now) {
        return Err(ResizeRefusal::InProgress {
            vm: vm(),
            operation: op.to_string(),
        });
    }
    if size_bytes < current {
        return Err(ResizeRefusal::Shrink {
            vm: vm(),
            disk: disk.into(),
            current,
            asked: size_bytes,
        });
    }
    if size_bytes == current {
        return Err(ResizeRefusal::Unchanged {
            vm: vm(),
            disk: disk.into(),
            current,
        });
    }
    let mut next = rec.clone();
    next.disk_resize = Some(DiskResize {
        operation: operation.into(),
        disk: disk.into(),
        size_bytes,
        started_at: now,
    });
    Ok(next)
}

/// The record once the agent reported `disk` is `size_bytes` now (`None`: nothing to
/// change). The size only grows; the resize is cleared if it is still `operation`'s.
pub fn finish_resize(
    rec: &VmRecord,
    operation: &str,
    disk: &str,
    size_bytes: u64,
) -> Option<VmRecord> {
    let mut next = rec.clone();
    if disk == DISK0 {
        next.disk_bytes = Some(rec.disk_bytes.unwrap_or(0).max(size_bytes));
    } else if let Some(d) = next.data_disks.iter_mut().find(|d| d.name == disk) {
        d.size_bytes = d.size_bytes.max(size_bytes);
    }
    if rec
        .disk_resize
        .as_ref()
        .is_some_and(|r| r.operation == operation)
    {
        next.disk_resize = None;
    }
    (next != *rec).then_some(next)
}

/// The record after `operation`'s resize failed (`None`: it no longer records it).
pub fn abandon_resize(rec: &VmRecord, operation: &str) -> Option<VmRecord> {
    rec.disk_resize
        .as_ref()
        .filter(|r| r.operation == operation)?;
    let mut next = rec.clone();
    next.disk_resize = None;
    Some(next)
}

/// Why a VM's disk may not be copied (into a template image, or a clone), as data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CopyRefusal {
    #[error(transparent)]
    Lifecycle(#[from] Refusal),
    #[error("VM {vm} has no disk to copy (it was created without --disk)")]
    NoDisk { vm: String },
    #[error(
        "VM {vm} is {observed}: {what} is made from a stopped VM's disk; stop it first (`novacron vm stop {vm}`)"
    )]
    NotStopped {
        vm: String,
        observed: VmState,
        what: &'static str,
    },
    #[error(
        "VM {vm} has {count} snapshot(s) inside its disk, which a linked clone would freeze out of reach: delete them first (`novacron vm snapshot list {vm}`), or make a full clone"
    )]
    Snapshots { vm: String, count: usize },
    #[error("{0}")]
    AddedDisks(String),
}

impl From<CopyRefusal> for ApiError {
    fn from(r: CopyRefusal) -> ApiError {
        match r {
            CopyRefusal::Lifecycle(l) => l.into(),
            CopyRefusal::NoDisk { .. } => ApiError::invalid(r.to_string()),
            CopyRefusal::NotStopped { .. }
            | CopyRefusal::Snapshots { .. }
            | CopyRefusal::AddedDisks(_) => ApiError::conflict(r.to_string()),
        }
    }
}

impl From<CopyRefusal> for crate::api::ApiFailure {
    fn from(r: CopyRefusal) -> Self {
        crate::api::ApiFailure(r.into())
    }
}

/// Whether `rec`'s disk may be copied as `what` ("a template", "a clone") now that its agent
/// observed it `observed`: it must be stopped and stay so (no start asked for), with a disk,
/// and not migrating, created or deleted.
pub fn check_copyable(
    rec: &VmRecord,
    observed: VmState,
    what: &'static str,
) -> Result<(), CopyRefusal> {
    check_changeable(rec)?;
    let vm = || rec.name.clone();
    if rec.creating {
        return Err(Refusal::Creating { vm: vm() }.into());
    }
    if rec.disk_bytes.is_none() {
        return Err(CopyRefusal::NoDisk { vm: vm() });
    }
    if let Some(observed) = not_stopped(rec, observed) {
        return Err(CopyRefusal::NotStopped {
            vm: vm(),
            observed,
            what,
        });
    }
    Ok(())
}

/// Whether `rec`'s disk may become an image (`vm template`): as for any copy, and without
/// added disks (an image is one disk).
pub fn check_templatable(rec: &VmRecord, observed: VmState) -> Result<(), CopyRefusal> {
    check_copyable(rec, observed, "a template")?;
    if let Some(why) = only_boot_disk(rec) {
        return Err(CopyRefusal::AddedDisks(why));
    }
    Ok(())
}

/// Whether `rec`'s disk may become the frozen base of a linked clone: as for any copy, and
/// without internal snapshots (they would stay inside the frozen base, out of reach).
pub fn check_linkable(rec: &VmRecord, observed: VmState) -> Result<(), CopyRefusal> {
    check_copyable(rec, observed, "a clone")?;
    if !rec.snapshots.is_empty() {
        return Err(CopyRefusal::Snapshots {
            vm: rec.name.clone(),
            count: rec.snapshots.len(),
        });
    }
    Ok(())
}

/// What creating a clone of `src` asks for: the source's CPUs and memory (those it gets at
/// its next start), image, disk size, labels, description, cloud-init data, network kind,
/// storage, HA policy and security groups, on the source's node (its disk is there), created stopped. The
/// clone gets a new uuid (so a new MAC on a bridge) and new overlay NICs (addresses from
/// IPAM); user-mode port forwards are not copied (two VMs cannot hold one host port).
pub fn clone_request(src: &VmRecord, name: &str) -> VmCreateRequest {
    let pending = src.pending.unwrap_or_default();
    VmCreateRequest {
        name: name.to_string(),
        image: src.image.clone(),
        cpus: pending.cpus.unwrap_or(src.cpus),
        memory_bytes: pending.memory_bytes.unwrap_or(src.memory_bytes),
        disk_bytes: src.disk_bytes,
        node: Some(src.node.clone()),
        accel: src.accel,
        network: without_forwards(&src.network),
        ssh_keys: src.ssh_keys.clone(),
        start: false,
        storage: src.storage.clone(),
        ha: src.ha,
        ha_priority: src.ha_priority,
        nics: fresh_nics(&src.nics),
        security_groups: src.security_groups.clone(),
        // It limits the added NICs the clone carries too, even when they are its only ones
        // on NovaCron networks.
        bandwidth_bps: src.bandwidth_bps,
        labels: src.labels.clone(),
        description: src.description.clone(),
        user_data: src.user_data.clone(),
        vendor_data: src.vendor_data.clone(),
        vnc: src.vnc,
        iso: src.iso.clone(),
        firmware: Some(src.firmware),
        secure_boot: src.secure_boot,
        tpm: src.tpm,
    }
}

/// What restoring a backup as the new VM `name` asks for: the definition the backup holds
/// (CPUs, memory, image, disk size, accelerator, network kind, SSH keys, storage, cloud-init
/// data), started at once, on `node` or where the scheduler chooses. Like a clone, it gets a
/// new uuid and new NICs on the same overlay networks (addresses from IPAM: the original may
/// still hold its own), and no user-mode port forwards; HA policy, labels and description
/// are not part of the backup and start empty.
pub fn restore_request(
    spec: &novacron_api_types::agent::DesiredVm,
    name: &str,
    node: Option<String>,
) -> VmCreateRequest {
    VmCreateRequest {
        name: name.to_string(),
        image: spec
            .image
            .as_ref()
            .map(|i| i.name.clone())
            .unwrap_or_else(|| "restored".into()),
        cpus: spec.cpus,
        memory_bytes: spec.memory_bytes,
        disk_bytes: spec.disk_bytes,
        node,
        accel: spec.accel,
        network: without_forwards(&spec.network),
        ssh_keys: spec.ssh_keys.clone(),
        start: true,
        storage: spec.storage.as_ref().map(|p| p.name.clone()),
        ha: Default::default(),
        ha_priority: 0,
        nics: fresh_nics(&spec.nics),
        // Not part of the backup (like labels): the copy starts unfiltered.
        security_groups: vec![],
        bandwidth_bps: None,
        labels: Default::default(),
        description: None,
        // Part of the VM's definition; a new uuid makes cloud-init apply it to the copy.
        user_data: spec.user_data.clone(),
        vendor_data: spec.vendor_data.clone(),
        vnc: spec.vnc,
        iso: spec.iso.as_ref().map(|i| i.name.clone()),
        firmware: Some(spec.firmware),
        secure_boot: spec.secure_boot,
        tpm: spec.tpm,
    }
}

/// A copy's network: user-mode port forwards belong to the original VM (two VMs cannot hold
/// one host port).
fn without_forwards(network: &Network) -> Network {
    match network {
        Network::User { .. } => Network::User { forwards: vec![] },
        other => other.clone(),
    }
}

/// A copy's NICs: one on each of the original's overlay networks, address and MAC from IPAM.
fn fresh_nics(nics: &[novacron_api_types::overlay::Nic]) -> Vec<NicRequest> {
    nics.iter()
        .map(|n| NicRequest {
            network: n.network.clone(),
            ip: None,
            mac: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_vm_gets_new_nics_on_the_backups_networks_and_no_forwards() {
        // A VM definition as a backup stores it (the agent's view of the VM).
        let spec: novacron_api_types::agent::DesiredVm = serde_json::from_value(serde_json::json!({
            "project": "team-a", "name": "web1", "uuid": "u-1", "generation": 7,
            "cpus": 2, "memory_bytes": 268435456u64, "disk_bytes": 1073741824u64,
            "image": null, "accel": "tcg", "power": "running",
            "network": {"mode": "user", "forwards": [{"host_port": 8080, "guest_port": 80}]},
            "nics": [
                {"network": "app", "vni": 4101, "mac": "02:00:00:00:00:01", "ips": ["10.0.0.5"]},
                {"network": "db", "vni": 4102, "mac": "02:00:00:00:00:02", "ips": ["10.1.0.5"]}
            ]
        }))
        .unwrap();
        let req = restore_request(&spec, "web1-old", Some("node-b".into()));
        assert_eq!(req.name, "web1-old");
        assert_eq!((req.cpus, req.memory_bytes), (2, 256 << 20));
        assert_eq!(req.disk_bytes, Some(1 << 30));
        assert_eq!(req.node.as_deref(), Some("node-b"));
        assert_eq!(req.network, Network::User { forwards: vec![] });
        let nets: Vec<_> = req.nics.iter().map(|n| n.network.as_str()).collect();
        assert_eq!(nets, ["app", "db"]);
        assert!(
            req.nics.iter().all(|n| n.ip.is_none() && n.mac.is_none()),
            "the original may still hold its addresses: {:?}",
            req.nics
        );
        assert!(req.start);
    }

    fn vm() -> VmRecord {
        VmRecord {
            disk_bytes: Some(1 << 30),
            ..crate::records::example_vm(PowerState::Running)
        }
    }

    #[test]
    fn a_resize_is_recorded_then_finished() {
        let rec = vm();
        let next = begin_resize(&rec, "disk0", 2 << 30, "op-1", 100).unwrap();
        assert_eq!(
            next.disk_bytes,
            Some(1 << 30),
            "the size waits for the disk"
        );
        assert_eq!(next.disk_resize.as_ref().unwrap().size_bytes, 2 << 30);
        assert_eq!(
            crate::quota::vm_usage(&next).disk_bytes,
            2 << 30,
            "the quota counts the new size from the start"
        );
        let err = begin_resize(&next, "disk0", 3 << 30, "op-2", 101).unwrap_err();
        assert!(matches!(err, ResizeRefusal::InProgress { .. }), "{err}");
        let done = finish_resize(&next, "op-1", "disk0", 2 << 30).unwrap();
        assert_eq!(done.disk_bytes, Some(2 << 30));
        assert_eq!(done.disk_resize, None);
        let failed = abandon_resize(&next, "op-1").unwrap();
        assert_eq!(failed, rec);
        assert_eq!(abandon_resize(&next, "op-other"), None);
    }

    #[test]
    fn a_shrink_names_the_current_size() {
        let err = begin_resize(&vm(), "disk0", 512 << 20, "op", 0).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("disk0 of VM web is 1G") && text.contains("asked for 512M"),
            "{text}"
        );
        let err = begin_resize(&vm(), "disk0", 1 << 30, "op", 0).unwrap_err();
        assert!(matches!(err, ResizeRefusal::Unchanged { .. }), "{err}");
    }

    #[test]
    fn a_migrating_vm_names_its_migration() {
        let rec = VmRecord {
            migration: Some("mig-7".into()),
            ..vm()
        };
        let text = begin_resize(&rec, "disk0", 2 << 30, "op", 0)
            .unwrap_err()
            .to_string();
        assert!(text.contains("migrating (mig-7)"), "{text}");
        let rec = VmRecord {
            disk_bytes: None,
            ..vm()
        };
        assert!(matches!(
            begin_resize(&rec, "disk0", 2 << 30, "op", 0),
            Err(ResizeRefusal::NoDisk { .. })
        ));
    }

    #[test]
    fn a_stale_resize_holds_nothing_up() {
        let next = begin_resize(&vm(), "disk0", 2 << 30, "op-1", 100).unwrap();
        assert_eq!(resize_in_flight(&next, 101), Some("op-1"));
        let later = 100 + RESIZE_STALE_AFTER_SECS;
        assert_eq!(resize_in_flight(&next, later), None);
        assert!(begin_resize(&next, "disk0", 3 << 30, "op-2", later).is_ok());
    }

    #[test]
    fn only_a_stopped_vm_is_copied() {
        let stopped = vm_in(PowerState::Stopped);
        assert!(check_copyable(&stopped, VmState::Stopped, "a template").is_ok());
        assert!(check_copyable(&stopped, VmState::Crashed, "a template").is_ok());
        let text = check_copyable(&vm(), VmState::Running, "a template")
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("VM web is running: a template is made from a stopped VM's disk")
                && text.contains("novacron vm stop web"),
            "{text}"
        );
        // Asked to start, not yet started: refused too.
        let starting = check_copyable(&vm(), VmState::Stopped, "a clone").unwrap_err();
        assert!(starting.to_string().contains("is starting"), "{starting}");
        let no_disk = VmRecord {
            disk_bytes: None,
            ..stopped.clone()
        };
        assert!(matches!(
            check_copyable(&no_disk, VmState::Stopped, "a clone"),
            Err(CopyRefusal::NoDisk { .. })
        ));
        let migrating = VmRecord {
            migration: Some("mig-1".into()),
            ..stopped
        };
        let text = check_copyable(&migrating, VmState::Stopped, "a clone")
            .unwrap_err()
            .to_string();
        assert!(text.contains("migrating (mig-1)"), "{text}");
    }

    fn vm_in(power: PowerState) -> VmRecord {
        VmRecord {
            disk_bytes: Some(1 << 30),
            ..crate::records::example_vm(power)
        }
    }

    #[test]
    fn a_clone_asks_for_what_the_source_has_on_its_node() {
        let mut src = vm_in(PowerState::Stopped);
        src.labels.insert("role".into(), "web".into());
        src.network = Network::User {
            forwards: vec![novacron_api_types::PortForward {
                host_port: 2222,
                guest_port: 22,
            }],
        };
        src.pending = Some(crate::vm_config::PendingResources {
            cpus: Some(2),
            memory_bytes: None,
        });
        let req = clone_request(&src, "web2");
        assert_eq!(req.name, "web2");
        assert_eq!(req.node.as_deref(), Some("node-a"));
        assert_eq!((req.cpus, req.memory_bytes), (2, 128 << 20));
        assert_eq!(req.disk_bytes, Some(1 << 30));
        assert_eq!(req.image, "tiny");
        assert_eq!(req.labels, src.labels);
        assert!(!req.start);
        assert_eq!(req.network, Network::User { forwards: vec![] });
        assert!(req.validate().is_ok());
    }

    #[test]
    fn a_clone_keeps_the_limit_of_nics_that_were_all_added() {
        let mut src = vm_in(PowerState::Stopped);
        src.bandwidth_bps = Some(50_000_000);
        src.added_nics = vec![novacron_api_types::nics::AddedNic {
            name: "nic1".into(),
            port: 1,
            mac: "fe:00:00:00:00:01".into(),
            link: novacron_api_types::nics::NicLink::Network {
                network: "app".into(),
                vni: 100,
                ips: vec!["10.10.0.5".into()],
            },
        }];
        let req = clone_request(&src, "web2");
        assert!(req.nics.is_empty());
        assert_eq!(req.bandwidth_bps, Some(50_000_000));
        // A plain create could not ask for it; one that carries the added NIC can.
        assert!(req.validate().is_err());
        assert!(req.validate_carrying(true).is_ok());
    }

    #[test]
    fn linked_local_disks_and_resizes_keep_a_vm_in_place() {
        let rec = vm();
        assert_eq!(migration_refusal(&rec, 0), None);
        let resizing = begin_resize(&rec, "disk0", 2 << 30, "op-9", 10).unwrap();
        let why = migration_refusal(&resizing, 11).unwrap();
        assert!(why.contains("changing its disks (operation op-9)"), "{why}");
        let linked = VmRecord {
            disk_linked: true,
            ..rec.clone()
        };
        let why = migration_refusal(&linked, 0).unwrap();
        assert!(
            why.contains("linked disk") && why.contains("node-a"),
            "{why}"
        );
        let pooled = VmRecord {
            storage: Some("shared1".into()),
            ..linked
        };
        assert_eq!(
            migration_refusal(&pooled, 0),
            None,
            "the base is in the pool"
        );
    }

    fn with_ports(power: PowerState) -> VmRecord {
        VmRecord {
            hotplug_ports: HOTPLUG_PORTS,
            ..vm_in(power)
        }
    }

    #[test]
    fn an_added_disk_takes_the_first_free_port_and_name_and_counts_at_once() {
        let rec = with_ports(PowerState::Running);
        let (next, disk) = begin_add(&rec, VmState::Running, 32 << 20, None, "op-1", 10).unwrap();
        assert_eq!((disk.name.as_str(), disk.port), ("disk1", 0));
        assert_eq!(next.data_disks, [disk]);
        assert_eq!(counted_disk_bytes(&next), (1 << 30) + (32 << 20));
        assert_eq!(disk_busy(&next, 11), Some("op-1"));
        assert!(migration_refusal(&next, 11).is_some_and(|m| m.contains("op-1")));
        // Another disk change waits for it; a stale one (a dead control plane) does not.
        let err = begin_add(&next, VmState::Running, 8 << 20, None, "op-2", 11).unwrap_err();
        assert!(matches!(err, PlugRefusal::InProgress { .. }), "{err}");
        assert!(begin_resize(&next, "disk1", 64 << 20, "op-2", 11).is_err());
        let done = finish_plug(&next, "op-1", 200).unwrap();
        assert!(done.disk_plug.is_none() && done.data_disks.len() == 1);
        assert_eq!(finish_plug(&done, "op-1", 200), None, "finished once");

        // The next one fills the gap a detached disk left, by port and by name.
        let mut gap = done.clone();
        gap.data_disks = vec![DataDisk {
            name: "disk2".into(),
            size_bytes: 1 << 20,
            port: 1,
            image: None,
        }];
        let (_, d) = begin_add(&gap, VmState::Running, 1 << 20, None, "op-3", 20).unwrap();
        assert_eq!((d.name.as_str(), d.port), ("disk1", 0));
    }

    #[test]
    fn a_failed_add_leaves_nothing_and_a_failed_detach_keeps_the_disk() {
        let rec = with_ports(PowerState::Running);
        let (next, _) = begin_add(&rec, VmState::Running, 32 << 20, None, "op-1", 10).unwrap();
        let undone = abandon_plug(&next, "op-1").unwrap();
        assert!(undone.data_disks.is_empty() && undone.disk_plug.is_none());
        assert_eq!(counted_disk_bytes(&undone), 1 << 30);

        let added = finish_plug(&next, "op-1", 200).unwrap();
        let detaching = begin_detach(&added, VmState::Running, "disk1", true, "op-2", 30).unwrap();
        assert_eq!(
            detaching.data_disks.len(),
            1,
            "it stays until the agent removed it"
        );
        let kept = abandon_plug(&detaching, "op-2").unwrap();
        assert_eq!(kept.data_disks.len(), 1);
        let gone = finish_plug(&detaching, "op-2", 200).unwrap();
        assert!(gone.data_disks.is_empty());
        assert_eq!(abandon_plug(&gone, "op-2"), None);
    }

    #[test]
    fn detaching_needs_force_on_a_running_vm_and_never_takes_the_boot_disk() {
        let rec = with_ports(PowerState::Running);
        let (next, _) = begin_add(&rec, VmState::Running, 8 << 20, None, "op-1", 10).unwrap();
        let added = finish_plug(&next, "op-1", 200).unwrap();
        let err = begin_detach(&added, VmState::Running, "disk1", false, "op-2", 20).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        let err = begin_detach(&added, VmState::Running, "disk0", true, "op-2", 20).unwrap_err();
        assert!(matches!(err, PlugRefusal::BootDisk { .. }), "{err}");
        let mut stopped = added.clone();
        stopped.power = PowerState::Stopped;
        assert!(begin_detach(&stopped, VmState::Stopped, "disk1", false, "op-2", 20).is_ok());
        // Asked to start, not yet started: still needs --force.
        let mut starting = added;
        starting.power = PowerState::Running;
        let err =
            begin_detach(&starting, VmState::Stopped, "disk1", false, "op-2", 20).unwrap_err();
        assert!(err.to_string().contains("is starting"), "{err}");
    }

    #[test]
    fn ports_run_out_and_a_vm_from_before_hot_plug_gets_them_only_while_stopped() {
        let mut rec = with_ports(PowerState::Stopped);
        for i in 0..HOTPLUG_PORTS {
            let (next, _) = begin_add(&rec, VmState::Stopped, 1 << 20, None, "op", 10).unwrap();
            rec = finish_plug(&next, "op", 200).unwrap();
            assert_eq!(free_disk_slots(&rec), HOTPLUG_PORTS - i - 1);
        }
        let err = begin_add(&rec, VmState::Stopped, 1 << 20, None, "op", 10).unwrap_err();
        assert!(
            err.to_string()
                .contains("all its 4 hot-plug ports in use (disk1, disk2, disk3, disk4)"),
            "{err}"
        );

        let old = vm_in(PowerState::Running);
        assert_eq!(old.hotplug_ports, 0);
        let err = begin_add(&old, VmState::Running, 1 << 20, None, "op", 10).unwrap_err();
        assert!(matches!(err, PlugRefusal::NoPorts { .. }), "{err}");
        let stopped = vm_in(PowerState::Stopped);
        let (next, _) = begin_add(&stopped, VmState::Stopped, 1 << 20, None, "op", 10).unwrap();
        assert_eq!(next.hotplug_ports, HOTPLUG_PORTS);
    }

    #[test]
    fn a_template_is_refused_while_disks_are_added_and_a_clone_is_not() {
        let mut rec = vm_in(PowerState::Stopped);
        assert_eq!(only_boot_disk(&rec), None);
        rec.data_disks.push(DataDisk {
            name: "disk1".into(),
            size_bytes: 1 << 20,
            port: 0,
            image: None,
        });
        let why = only_boot_disk(&rec).unwrap();
        assert!(why.contains("added disks (disk1): a template"), "{why}");
        let err = check_templatable(&rec, VmState::Stopped).unwrap_err();
        assert!(matches!(err, CopyRefusal::AddedDisks(_)), "{err}");
        // A clone copies every disk.
        assert!(check_copyable(&rec, VmState::Stopped, "a clone").is_ok());
    }

    #[test]
    fn an_added_disk_grows_and_counts_at_the_size_asked_for() {
        let mut rec = with_ports(PowerState::Running);
        rec.data_disks.push(DataDisk {
            name: "disk1".into(),
            size_bytes: 1 << 30,
            port: 0,
            image: None,
        });
        let next = begin_resize(&rec, "disk1", 3 << 30, "op", 10).unwrap();
        assert_eq!(counted_disk_bytes(&next), (1 << 30) + (3 << 30));
        let done = finish_resize(&next, "op", "disk1", 3 << 30).unwrap();
        assert_eq!(done.data_disks[0].size_bytes, 3 << 30);
        assert_eq!(done.disk_bytes, Some(1 << 30), "the boot disk is as it was");
    }
}
