//! Disks plugged into and unplugged from a running VM, through QMP: `blockdev-add` of the
//! file and format nodes, then `device_add` of a virtio-blk device into one of the spare
//! PCIe root ports ([`crate::VmSpec::hotplug_ports`]); the reverse is `device_del`, which
//! the guest must acknowledge (QEMU then sends DEVICE_DELETED), then `blockdev-del` of both
//! nodes. NICs the same way: a netdev (a tap handed over the monitor, or user-mode NAT) and a
//! virtio-net device in a port; `device_del`, then `netdev_del`. Both directions look first at what QEMU has and do only what is missing, so a
//! call cut short (an agent that died mid-way) is finished by calling again.

use std::time::Duration;

use serde_json::{Value, json};

use crate::spec::{PluggedDisk, PluggedNic};
use crate::{QemuError, Qmp};

/// The `blockdev-add` arguments of the disk's file node and format node, in that order
/// (the command line renders the same objects as `-blockdev`).
pub fn blockdev_options(disk: &PluggedDisk, shared_storage: bool) -> [Value; 2] {
    let file = format!("{}-file", disk.node);
    [
        json!({
            "driver": "file",
            "node-name": file,
            "filename": disk.path.to_string_lossy(),
            "read-only": false,
            "discard": "unmap",
            // See VmSpec::shared_storage.
            "drop-cache": shared_storage,
        }),
        json!({
            "driver": disk.format.as_str(),
            "node-name": disk.node,
            "file": file,
            "read-only": false,
            "discard": "unmap",
        }),
    ]
}

/// Block node names QEMU has.
async fn node_names(qmp: &Qmp) -> Result<Vec<String>, QemuError> {
    let nodes = qmp
        .execute("query-named-block-nodes", Some(json!({"flat": true})))
        .await?;
    Ok(nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["node-name"].as_str().map(str::to_string))
        .collect())
}

/// Ids of the devices given on the command line or added by `device_add`.
async fn device_ids(qmp: &Qmp) -> Result<Vec<String>, QemuError> {
    let list = qmp
        .execute("qom-list", Some(json!({"path": "/machine/peripheral"})))
        .await?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["type"].as_str().is_some_and(|t| t.starts_with("child<")))
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect())
}

/// The block node names of the disks in hot-plug ports now (`disk1`, ...).
pub async fn plugged(qmp: &Qmp) -> Result<Vec<String>, QemuError> {
    Ok(device_ids(qmp)
        .await?
        .into_iter()
        .filter_map(|id| id.strip_prefix("virtio-").map(str::to_string))
        .filter(|node| crate::spec::is_plugged_node(node))
        .collect())
}

/// Plugs `disk` (its file exists) into its port of the running VM. Nothing plugged half:
/// when the device cannot be added, the nodes this call added are removed again.
/// `shared_storage` as in [`crate::VmSpec::shared_storage`].
pub async fn attach_disk(
    qmp: &Qmp,
    disk: &PluggedDisk,
    shared_storage: bool,
) -> Result<(), QemuError> {
    let id = disk.device_id();
    if device_ids(qmp).await?.contains(&id) {
        return Ok(());
    }
    let nodes = node_names(qmp).await?;
    let [file, format] = blockdev_options(disk, shared_storage);
    let file_node = format!("{}-file", disk.node);
    let mut added = Vec::new();
    for (name, options) in [(&file_node, file), (&disk.node, format)] {
        if nodes.contains(name) {
            continue;
        }
        if let Err(e) = qmp.execute("blockdev-add", Some(options)).await {
            remove_nodes(qmp, &added).await;
            return Err(e);
        }
        added.push(name.clone());
    }
    let device = json!({
        "driver": "virtio-blk-pci",
        "drive": disk.node,
        "id": id,
        "bus": disk.bus(),
    });
    if let Err(e) = qmp.execute("device_add", Some(device)).await {
        // Also the nodes an earlier, cut-short call added: none of them has a device.
        remove_nodes(qmp, &[disk.node.clone(), file_node]).await;
        return Err(e);
    }
    tracing::info!(node = %disk.node, bus = %disk.bus(), "disk plugged");
    Ok(())
}

/// Removes block nodes, the format node first; failures are logged (cleanup).
async fn remove_nodes(qmp: &Qmp, nodes: &[String]) {
    let present = node_names(qmp).await.unwrap_or_default();
    let mut order: Vec<&String> = nodes.iter().filter(|n| present.contains(n)).collect();
    // A format node holds its file node: delete `diskN` before `diskN-file`.
    order.sort_by_key(|n| n.ends_with("-file"));
    for node in order {
        if let Err(e) = qmp
            .execute("blockdev-del", Some(json!({"node-name": node})))
            .await
        {
            tracing::warn!(node = %node, error = %e, "cannot remove block node");
        }
    }
}

/// Asks the guest to release device `id` and waits up to `timeout` until QEMU removed it
/// (DEVICE_DELETED, or the device gone from the list); `what` names it in the error.
async fn unplug_device(
    qmp: &Qmp,
    id: &str,
    what: &str,
    timeout: Duration,
) -> Result<(), QemuError> {
    let mut events = qmp.subscribe();
    if !device_ids(qmp).await?.iter().any(|d| d == id) {
        return Ok(());
    }
    match qmp.execute("device_del", Some(json!({"id": id}))).await {
        Ok(_) => {}
        // Already being removed (an earlier call asked): wait for it the same way.
        Err(QemuError::Qmp { ref desc, .. }) if desc.contains("in progress") => {}
        Err(e) => return Err(e),
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let wait = tokio::time::sleep_until(deadline);
        let poll = tokio::time::sleep(Duration::from_millis(500));
        tokio::select! {
            ev = events.recv() => {
                if let Ok(ev) = ev
                    && ev.event == "DEVICE_DELETED"
                    && ev.data["device"].as_str() == Some(id)
                {
                    return Ok(());
                }
            }
            _ = poll => {
                if !device_ids(qmp).await?.iter().any(|d| d == id) {
                    return Ok(());
                }
            }
            _ = wait => {
                return Err(QemuError::Hotplug(format!(
                    "the guest did not release {what} within {} s (does its OS support PCI hot-unplug{}?)",
                    timeout.as_secs(),
                    if what.starts_with("disk") { ", and is the disk unmounted" } else { "" }
                )));
            }
        }
    }
}

/// Unplugs disk `node` from the running VM: asks the guest to release the device and waits
/// up to `timeout` for it (a guest without PCI hot-plug support never does: the error says
/// so and the disk stays), then removes its block nodes.
pub async fn detach_disk(qmp: &Qmp, node: &str, timeout: Duration) -> Result<(), QemuError> {
    unplug_device(qmp, &format!("virtio-{node}"), node, timeout).await?;
    remove_nodes(qmp, &[node.to_string(), format!("{node}-file")]).await;
    if node_names(qmp).await?.iter().any(|n| n == node) {
        return Err(QemuError::Hotplug(format!(
            "QEMU still holds block node {node} after its device was removed"
        )));
    }
    tracing::info!(node, "disk unplugged");
    Ok(())
}

/// Whether QEMU answered that an id it was given is in use already.
fn duplicate_id(e: &QemuError) -> bool {
    matches!(e, QemuError::Qmp { desc, .. } if desc.contains("Duplicate") || desc.contains("already"))
}

/// Plugs `nic` into its port of the running VM: for a bridged NIC a new tap on its bridge,
/// handed to QEMU over the monitor (`getfd`; QEMU's sandbox may not open devices itself),
/// then its netdev and a virtio-net device. Nothing plugged half: when the device cannot
/// be added, the netdev goes again. A NIC that is there answers at once; a netdev left by
/// a call cut short is used as it is.
pub async fn attach_nic(qmp: &Qmp, nic: &PluggedNic) -> Result<(), QemuError> {
    let id = nic.device_id();
    if device_ids(qmp).await?.contains(&id) {
        return Ok(());
    }
    let netdev = nic.netdev_id();
    let added = match &nic.bridge {
        None => {
            qmp.execute("netdev_add", Some(json!({"type": "user", "id": netdev})))
                .await
        }
        Some(bridge) => {
            let tap = crate::tap::Tap::on_bridge(bridge, &nic.mac)?;
            qmp.execute_with_fd("getfd", Some(json!({"fdname": netdev})), tap.as_fd())
                .await?;
            let added = qmp
                .execute(
                    "netdev_add",
                    Some(json!({"type": "tap", "id": netdev, "fd": netdev})),
                )
                .await;
            if added.is_err() {
                // QEMU keeps a named descriptor until something takes it.
                let _ = qmp
                    .execute("closefd", Some(json!({"fdname": netdev})))
                    .await;
            }
            added
        }
    };
    match added {
        Ok(_) => {}
        Err(e) if duplicate_id(&e) => {}
        Err(e) => return Err(e),
    }
    let device = json!({
        "driver": "virtio-net-pci",
        "netdev": netdev,
        "id": id,
        "mac": nic.mac,
        "bus": nic.bus(),
    });
    if let Err(e) = qmp.execute("device_add", Some(device)).await {
        remove_netdev(qmp, &netdev).await;
        return Err(e);
    }
    tracing::info!(mac = %nic.mac, bus = %nic.bus(), bridge = ?nic.bridge, "NIC plugged");
    Ok(())
}

/// Removes a netdev (its tap closes with it); a missing one is fine, other failures are
/// logged (cleanup).
async fn remove_netdev(qmp: &Qmp, netdev: &str) {
    match qmp.execute("netdev_del", Some(json!({"id": netdev}))).await {
        Ok(_) => {}
        Err(QemuError::Qmp { desc, .. }) if desc.contains("not found") => {}
        Err(e) => tracing::warn!(netdev, error = %e, "cannot remove netdev"),
    }
}

/// Unplugs the NIC in hot-plug port `port` from the running VM: the guest must release the
/// device (within `timeout`), then its netdev (and tap) goes.
pub async fn detach_nic(qmp: &Qmp, port: u32, timeout: Duration) -> Result<(), QemuError> {
    let nic = PluggedNic {
        port,
        mac: String::new(),
        bridge: None,
    };
    unplug_device(
        qmp,
        &nic.device_id(),
        &format!("the NIC in port {port}"),
        timeout,
    )
    .await?;
    remove_netdev(qmp, &nic.netdev_id()).await;
    tracing::info!(port, "NIC unplugged");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DiskFormat;

    #[test]
    fn options_name_both_nodes_and_the_file() {
        let disk = PluggedDisk {
            node: "disk2".into(),
            path: "/v/disk2.qcow2".into(),
            format: DiskFormat::Qcow2,
            port: 1,
        };
        let [file, format] = blockdev_options(&disk, false);
        assert_eq!(file["node-name"], "disk2-file");
        assert_eq!(file["drop-cache"], false);
        assert_eq!(blockdev_options(&disk, true)[0]["drop-cache"], true);
        assert_eq!(file["filename"], "/v/disk2.qcow2");
        assert_eq!(format["driver"], "qcow2");
        assert_eq!(format["file"], "disk2-file");
        assert_eq!(disk.device_id(), "virtio-disk2");
        assert_eq!(disk.bus(), "hp1");
    }
}
