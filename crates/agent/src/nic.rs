//! NICs `vm nic add` gives this node's VMs: plugged into a running guest through QMP (a
//! tap on the NIC's bridge handed to QEMU, or user-mode NAT), taken out again by `vm nic
//! remove`. A stopped VM gets nothing here: its next start builds the NIC from the record
//! (see `worker::prepare_spec`). Asking again for what is done answers at once, so the
//! control plane can repeat a call an agent restart cut short.

use novacron_api_types::ApiError;
use novacron_api_types::nics::{AddedNic, NicAttachJob, NicDetachJob, NicLink, NicPlugged};

use crate::backup::VmAccess;
use crate::disk::{UNPLUG_TIMEOUT, failed};

/// What QEMU is given for `nic`: its port and MAC, and the bridge its tap goes on (an
/// overlay network's `ncbr<vni>`; none for user-mode NAT).
pub fn plugged(nic: &AddedNic) -> novacron_qemu::PluggedNic {
    novacron_qemu::PluggedNic {
        port: nic.port,
        mac: nic.mac.clone(),
        bridge: match &nic.link {
            NicLink::Network { vni, .. } => Some(format!("ncbr{vni}")),
            NicLink::Bridge { bridge } => Some(bridge.clone()),
            NicLink::Nat => None,
        },
    }
}

/// Plugs `job.nic` into the VM if it runs (an overlay network's bridge is waited for: the
/// overlay loop makes it once the control plane shows the NIC here).
pub async fn attach(vm: VmAccess, job: NicAttachJob) -> Result<NicPlugged, ApiError> {
    let nic = job.nic;
    let name = vm.desired.name.clone();
    if !novacron_api_types::nics::is_nic_name(&nic.name) {
        return Err(ApiError::invalid(format!(
            "{:?} is not the name of a NIC (nic1, nic2, ...)",
            nic.name
        )));
    }
    let _guard = crate::disk::wait_disk_lock(&vm).await?;
    let Some(qemu) = vm.current_vm() else {
        tracing::info!(vm = %name, nic = %nic.name, "NIC added; the VM has it from its next start");
        return Ok(NicPlugged {
            nic: nic.name,
            live: false,
        });
    };
    if let NicLink::Network { vni, .. } = &nic.link {
        crate::overlay::wait_for_bridge(*vni, crate::worker::OVERLAY_BRIDGE_WAIT)
            .await
            .map_err(|e| failed(&name, "plugging the NIC in", e))?;
        crate::overlay::wait_for_lease(*vni, &nic.mac, crate::worker::LEASE_WAIT).await;
    }
    novacron_qemu::hotplug::attach_nic(qemu.qmp(), &plugged(&nic))
        .await
        .map_err(|e| failed(&name, "plugging the NIC in", e))?;
    tracing::info!(vm = %name, nic = %nic.name, port = nic.port, "NIC plugged into the running VM");
    Ok(NicPlugged {
        nic: nic.name,
        live: true,
    })
}

/// Takes the NIC in `job.port` out of the VM if it runs (the guest must release it).
pub async fn detach(vm: VmAccess, job: NicDetachJob) -> Result<NicPlugged, ApiError> {
    let name = vm.desired.name.clone();
    let _guard = crate::disk::wait_disk_lock(&vm).await?;
    let running = vm.current_vm();
    if let Some(qemu) = &running {
        novacron_qemu::hotplug::detach_nic(qemu.qmp(), job.port, UNPLUG_TIMEOUT)
            .await
            .map_err(|e| failed(&name, &format!("unplugging {}", job.nic), e))?;
    }
    tracing::info!(vm = %name, nic = %job.nic, live = running.is_some(), "NIC removed");
    Ok(NicPlugged {
        nic: job.nic,
        live: running.is_some(),
    })
}
