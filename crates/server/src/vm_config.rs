//! `vm set` as a pure function: a VM's record, what its agent observed, the room on its
//! node and the requested change give the next record (and what waits for the next start),
//! or a [`SetRefusal`]. No I/O; the handler feeds it and writes the result.
//!
//! The model: labels and the description are control-plane data and change at once. CPUs
//! and memory shape the QEMU process: while QEMU runs (or may be starting) they are kept as
//! `pending` and applied by the lifecycle when the VM next starts from stopped or crashed
//! (or is restarted by HA), so the running process, and the destination a live migration
//! prepares from the record, keep matching what runs. On a stopped VM they apply at once.
//! Neither is a new generation: the agent reads CPUs and memory when it starts QEMU. A NIC
//! bandwidth limit is control-plane data too: the VM's agent follows it on the running taps.

use novacron_api_types::{ApiError, PowerState, VmSetRequest, VmState, format_size};
use serde::{Deserialize, Serialize};

use crate::lifecycle::{Refusal, check_changeable};
use crate::records::VmRecord;

/// CPUs and memory a VM takes at its next start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PendingResources {
    #[serde(default)]
    pub cpus: Option<u32>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

/// What the VM's node can give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRoom {
    pub node: String,
    pub cpus: u32,
    /// The node's memory less what every other VM placed on it asked for.
    pub free_memory_bytes: u64,
}

/// Why a change was refused, as data; `Display` is the user's one-line answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SetRefusal {
    #[error(transparent)]
    Lifecycle(#[from] Refusal),
    #[error(
        "--memory {} is more than node {node} can give VM {vm} ({} free for it)",
        format_size(*asked),
        format_size(*free)
    )]
    MemoryTooLarge {
        vm: String,
        node: String,
        asked: u64,
        free: u64,
    },
    #[error(
        "--memory {}: VM {vm} boots through UEFI, which needs at least {}",
        format_size(*asked),
        format_size(novacron_api_types::validate::MIN_UEFI_MEMORY_BYTES)
    )]
    UefiMemoryTooSmall { vm: String, asked: u64 },
    #[error(
        "--bandwidth limits NICs on NovaCron networks and VM {vm} has none: add one with `novacron vm nic add {vm} --network NET`"
    )]
    NoOverlayNic { vm: String },
    #[error("--cpus {asked} is more than node {node} has ({cpus})")]
    CpusTooMany {
        vm: String,
        node: String,
        asked: u32,
        cpus: u32,
    },
}

impl From<SetRefusal> for ApiError {
    fn from(r: SetRefusal) -> ApiError {
        match r {
            SetRefusal::Lifecycle(l) => l.into(),
            other => ApiError::invalid(other.to_string()),
        }
    }
}

impl From<SetRefusal> for crate::api::ApiFailure {
    fn from(r: SetRefusal) -> Self {
        crate::api::ApiFailure(r.into())
    }
}

/// Whether no QEMU runs for the VM and none is about to start (so CPUs and memory may
/// change in place).
fn quiet(rec: &VmRecord, observed: VmState) -> bool {
    rec.power == PowerState::Stopped
        && matches!(
            observed,
            VmState::Stopped | VmState::Crashed | VmState::Creating
        )
}

/// The record after `req`, and the names of the settings that wait for the next start.
pub fn apply_set(
    rec: &VmRecord,
    observed: VmState,
    req: &VmSetRequest,
    room: &NodeRoom,
) -> Result<(VmRecord, Vec<String>), SetRefusal> {
    check_changeable(rec)?;
    if let Some(c) = req.cpus
        && c > room.cpus
    {
        return Err(SetRefusal::CpusTooMany {
            vm: rec.name.clone(),
            node: room.node.clone(),
            asked: c,
            cpus: room.cpus,
        });
    }
    if let Some(m) = req.memory_bytes
        && m > room.free_memory_bytes
    {
        return Err(SetRefusal::MemoryTooLarge {
            vm: rec.name.clone(),
            node: room.node.clone(),
            asked: m,
            free: room.free_memory_bytes,
        });
    }
    if let Some(m) = req.memory_bytes
        && rec.firmware == novacron_api_types::Firmware::Uefi
        && m < novacron_api_types::validate::MIN_UEFI_MEMORY_BYTES
    {
        return Err(SetRefusal::UefiMemoryTooSmall {
            vm: rec.name.clone(),
            asked: m,
        });
    }
    if req.bandwidth_bps.is_some_and(|b| b != 0) && rec.overlay_nics().is_empty() {
        return Err(SetRefusal::NoOverlayNic {
            vm: rec.name.clone(),
        });
    }
    let mut next = rec.clone();
    // The NICs' agents shape them as soon as the record changes, running or not.
    if let Some(b) = req.bandwidth_bps {
        next.bandwidth_bps = (b != 0).then_some(b);
    }
    for k in &req.remove_labels {
        next.labels.remove(k);
    }
    for (k, v) in &req.labels {
        next.labels.insert(k.clone(), v.clone());
    }
    if let Some(d) = &req.description {
        next.description = (!d.is_empty()).then(|| d.clone());
    }
    let mut later = vec![];
    if req.cpus.is_some() || req.memory_bytes.is_some() {
        if quiet(rec, observed) {
            next.cpus = req.cpus.unwrap_or(next.cpus);
            next.memory_bytes = req.memory_bytes.unwrap_or(next.memory_bytes);
            apply_pending(&mut next);
        } else {
            let mut p = next.pending.unwrap_or_default();
            if let Some(c) = req.cpus {
                p.cpus = (c != rec.cpus).then_some(c);
            }
            if let Some(m) = req.memory_bytes {
                p.memory_bytes = (m != rec.memory_bytes).then_some(m);
            }
            if p.cpus.is_some() {
                later.push("cpus".to_string());
            }
            if p.memory_bytes.is_some() {
                later.push("memory".to_string());
            }
            next.pending = (p != PendingResources::default()).then_some(p);
        }
    }
    Ok((next, later))
}

/// Moves pending CPUs and memory into the record (the VM is about to get a new QEMU).
pub fn apply_pending(rec: &mut VmRecord) {
    if let Some(p) = rec.pending.take() {
        rec.cpus = p.cpus.unwrap_or(rec.cpus);
        rec.memory_bytes = p.memory_bytes.unwrap_or(rec.memory_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(power: PowerState) -> VmRecord {
        crate::records::example_vm(power)
    }

    fn room() -> NodeRoom {
        NodeRoom {
            node: "node-a".into(),
            cpus: 4,
            free_memory_bytes: 1 << 30,
        }
    }

    fn set(cpus: Option<u32>, memory: Option<u64>) -> VmSetRequest {
        VmSetRequest {
            cpus,
            memory_bytes: memory,
            ..VmSetRequest::default()
        }
    }

    #[test]
    fn a_running_vm_keeps_its_resources_until_its_next_start() {
        let rec = vm(PowerState::Running);
        let (next, later) = apply_set(
            &rec,
            VmState::Running,
            &set(Some(2), Some(256 << 20)),
            &room(),
        )
        .unwrap();
        assert_eq!((next.cpus, next.memory_bytes), (1, 128 << 20));
        assert_eq!(later, ["cpus", "memory"]);
        assert_eq!(next.generation, rec.generation, "no work for the agent");
        // A reboot keeps the QEMU process; a start after a stop takes the new values.
        let rebooted =
            crate::lifecycle::apply(&next, VmState::Running, &crate::lifecycle::Event::Reboot)
                .unwrap();
        assert_eq!(rebooted.cpus, 1);
        let stopped = crate::lifecycle::apply(
            &next,
            VmState::Running,
            &crate::lifecycle::Event::Stop { force: true },
        )
        .unwrap();
        let started =
            crate::lifecycle::apply(&stopped, VmState::Stopped, &crate::lifecycle::Event::Start)
                .unwrap();
        assert_eq!((started.cpus, started.memory_bytes), (2, 256 << 20));
        assert_eq!(started.pending, None);
        // Setting the running values again clears what was pending.
        let (back, later) =
            apply_set(&next, VmState::Running, &set(Some(1), None), &room()).unwrap();
        assert_eq!(later, ["memory"]);
        assert_eq!(back.pending.and_then(|p| p.cpus), None);
    }

    #[test]
    fn a_uefi_vm_keeps_the_memory_its_firmware_needs() {
        let mut rec = vm(PowerState::Stopped);
        rec.memory_bytes = 512 << 20;
        let small = set(None, Some(192 << 20));
        assert!(apply_set(&rec, VmState::Stopped, &small, &room()).is_ok());
        rec.firmware = novacron_api_types::Firmware::Uefi;
        let err = apply_set(&rec, VmState::Stopped, &small, &room()).unwrap_err();
        assert!(
            matches!(err, SetRefusal::UefiMemoryTooSmall { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("at least 256M"), "{err}");
        let enough = set(None, Some(256 << 20));
        assert!(apply_set(&rec, VmState::Stopped, &enough, &room()).is_ok());
    }

    #[test]
    fn a_stopped_vm_changes_at_once_and_labels_always_do() {
        let rec = vm(PowerState::Stopped);
        let mut req = set(Some(2), None);
        req.labels.insert("role".into(), "web".into());
        req.description = Some("front end".into());
        let (next, later) = apply_set(&rec, VmState::Stopped, &req, &room()).unwrap();
        assert_eq!(next.cpus, 2);
        assert!(later.is_empty());
        assert_eq!(next.labels.get("role").map(String::as_str), Some("web"));
        assert_eq!(next.description.as_deref(), Some("front end"));
        let mut rm = VmSetRequest {
            remove_labels: vec!["role".into()],
            description: Some(String::new()),
            ..VmSetRequest::default()
        };
        let (next, _) = apply_set(&next, VmState::Stopped, &rm, &room()).unwrap();
        assert!(next.labels.is_empty());
        assert_eq!(next.description, None);
        rm.remove_labels = vec!["absent".into()];
        assert!(apply_set(&next, VmState::Stopped, &rm, &room()).is_ok());
    }

    #[test]
    fn too_much_memory_or_cpus_and_migrating_vms_are_refused() {
        let rec = vm(PowerState::Running);
        let e = apply_set(&rec, VmState::Running, &set(None, Some(2 << 30)), &room()).unwrap_err();
        assert!(
            e.to_string().contains("more than node node-a can give"),
            "{e}"
        );
        let e = apply_set(&rec, VmState::Running, &set(Some(5), None), &room()).unwrap_err();
        assert!(e.to_string().contains("node-a has (4)"), "{e}");
        let mut moving = vm(PowerState::Running);
        moving.migration = Some("mig-7".into());
        let mut req = VmSetRequest::default();
        req.labels.insert("a".into(), "b".into());
        let e = apply_set(&moving, VmState::Running, &req, &room()).unwrap_err();
        assert!(e.to_string().contains("migrating (mig-7)"), "{e}");
    }

    #[test]
    fn a_bandwidth_limit_changes_at_once_and_needs_an_overlay_nic() {
        let limit = |bps| VmSetRequest {
            bandwidth_bps: Some(bps),
            ..VmSetRequest::default()
        };
        let rec = vm(PowerState::Running);
        let e = apply_set(&rec, VmState::Running, &limit(100_000_000), &room()).unwrap_err();
        assert!(e.to_string().contains("vm nic add"), "{e}");
        let mut on_net = rec.clone();
        on_net.nics.push(novacron_api_types::overlay::Nic {
            network: "app".into(),
            vni: 1000,
            mac: "02:00:00:00:00:07".into(),
            ips: vec!["10.0.0.7".into()],
        });
        let (next, later) =
            apply_set(&on_net, VmState::Running, &limit(100_000_000), &room()).unwrap();
        assert_eq!(next.bandwidth_bps, Some(100_000_000));
        assert!(later.is_empty(), "{later:?}");
        let (cleared, _) = apply_set(&next, VmState::Running, &limit(0), &room()).unwrap();
        assert_eq!(cleared.bandwidth_bps, None);
        // Removing a limit needs no NIC (nothing to shape).
        assert!(apply_set(&rec, VmState::Running, &limit(0), &room()).is_ok());
    }
}
