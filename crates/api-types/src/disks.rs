//! A VM's disks as the API names them, and the disk operations the control plane asks an
//! agent to do (`vm disk add | detach | resize`). A VM's boot disk is `disk0` (QEMU block
//! node `disk0`, file `disk0.qcow2`; `vm show` also calls it `disk`); `vm disk add` attaches
//! more, `disk1`, `disk2`, ..., each in one of the VM's spare PCIe root ports (docs/disks.md).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ApiError, format_size};

/// The boot disk of every VM with a disk.
pub const DISK0: &str = "disk0";

/// What a UEFI VM's variable store is called in its backups, beside its disks (restored to
/// `efivars.fd` beside them).
pub const UEFI_VARS: &str = "efivars";

/// What a VM's TPM state is called in its backups, beside its disks (restored to
/// `tpm/<node>/tpm2-00.permall` beside them).
pub const TPM_STATE: &str = "tpm";

/// A backup's file that travels with the disks but is not one (the UEFI variable store, the
/// TPM state).
pub fn is_side_file(name: &str) -> bool {
    name == UEFI_VARS || name == TPM_STATE
}

/// Spare PCIe root ports a VM gets at create (so at most this many added disks): a running
/// machine cannot gain ports, and each one takes a slot of the root bus.
pub const HOTPLUG_PORTS: u32 = 4;

/// A disk `vm disk add` attached to a VM: block node and file name `name` (`disk1`, ...), in
/// hot-plug port `port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DataDisk {
    pub name: String,
    pub size_bytes: u64,
    pub port: u32,
    /// The image the disk was made from (a standalone copy of it), if not blank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl DataDisk {
    /// Checks a disk described from outside the control plane (a backup's copy of its VM's
    /// definition): a name `disk<N>` (N from 1, no leading zero), a port the machine has, a
    /// size in whole sectors.
    pub fn validate(&self) -> Result<(), ApiError> {
        let named = self.name.strip_prefix("disk").is_some_and(|n| {
            !n.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())
        });
        if let Some(image) = &self.image {
            crate::validate_name("image", image).map_err(|e| ApiError::invalid(e.to_string()))?;
        }
        if !named
            || self.port >= HOTPLUG_PORTS
            || self.size_bytes == 0
            || !self.size_bytes.is_multiple_of(SECTOR_BYTES)
        {
            return Err(ApiError::invalid(format!(
                "added disk {:?} (port {}, {} bytes) is not one NovaCron makes",
                self.name, self.port, self.size_bytes
            )));
        }
        Ok(())
    }
}

/// The disk `given` names on a VM whose added disks are `added`: `disk0` (or `disk`, as
/// `vm show` labels the boot disk), or one of the added ones.
pub fn disk_name(vm: &str, given: &str, added: &[DataDisk]) -> Result<String, ApiError> {
    match given {
        DISK0 | "disk" => Ok(DISK0.to_string()),
        other if added.iter().any(|d| d.name == other) => Ok(other.to_string()),
        other => {
            let mut names = vec![DISK0.to_string()];
            names.extend(added.iter().map(|d| d.name.clone()));
            Err(ApiError::not_found(format!(
                "VM {vm} has no disk {other:?}: its disks are {}",
                names.join(", ")
            )))
        }
    }
}

/// The bus `vm disk add --bus` may name: only virtio-blk is plugged into a running VM.
pub const DISK_BUSES: &[&str] = &["virtio"];

/// Body of `POST /api/v1/vms/{name}/disks`: a blank disk of `size_bytes`, or a copy of
/// disk image `image` (grown to `size_bytes` if that is given and larger).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskAddRequest {
    /// The new disk's size in bytes (a multiple of 512); with `image`, at least its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// A disk image of the project to copy onto the new disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `virtio` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

impl DiskAddRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        match (self.size_bytes, &self.image) {
            (None, None) => {
                return Err(ApiError::invalid(
                    "say what the disk is: --size SIZE for a blank disk, or --image NAME for a copy of an image",
                ));
            }
            (Some(size_bytes), _) => DiskResizeRequest { size_bytes }.validate()?,
            (None, Some(_)) => {}
        }
        if let Some(image) = &self.image {
            crate::validate_name("image", image).map_err(|e| ApiError::invalid(e.to_string()))?;
        }
        if let Some(bus) = &self.bus
            && !DISK_BUSES.contains(&bus.as_str())
        {
            return Err(ApiError::invalid(format!(
                "--bus {bus}: disks are plugged into a running VM as virtio (virtio-blk); {bus} cannot be hot-plugged here, so use --bus virtio"
            )));
        }
        Ok(())
    }
}

/// Answer of the agent's attach and detach: the disk is in the VM (or gone), `live` when
/// that happened under a running guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiskPlugged {
    pub disk: String,
    pub live: bool,
}

/// What the control plane asks a VM's agent: add `disk` to the VM, blank, or a standalone
/// copy of `image` grown to the disk's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiskAttachJob {
    pub disk: DataDisk,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::Image>,
}

/// What the control plane asks a VM's agent: remove added disk `disk` (unplugged first
/// while the VM runs) and delete its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiskDetachJob {
    pub disk: String,
}

/// Disks grow in whole sectors: QEMU's `block_resize` and `qemu-img resize` want a multiple of 512 bytes.
pub const SECTOR_BYTES: u64 = 512;

/// Body of `POST /api/v1/vms/{name}/disks/{disk}/resize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskResizeRequest {
    /// The new size in bytes: larger than the disk is now, a multiple of 512.
    pub size_bytes: u64,
}

impl DiskResizeRequest {
    /// What can be said of the size without knowing the disk.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.size_bytes == 0 || !self.size_bytes.is_multiple_of(SECTOR_BYTES) {
            return Err(ApiError::invalid(format!(
                "--size {} ({} bytes) must be a whole number of 512-byte sectors above 0, e.g. 40G",
                format_size(self.size_bytes),
                self.size_bytes
            )));
        }
        Ok(())
    }
}

/// What the control plane asks a VM's agent: grow `disk` to `size_bytes` (through QEMU
/// while it runs, with qemu-img while it is stopped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiskResizeJob {
    pub disk: String,
    pub size_bytes: u64,
}

/// The agent's answer: the disk's guest-visible size before and after, as the disk says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiskResized {
    pub disk: String,
    pub previous_bytes: u64,
    pub size_bytes: u64,
    /// Grown under a running guest (through QEMU), which sees the new size at once.
    pub live: bool,
}

/// Body of `POST /api/v1/vms/{name}/template`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    /// The new image's name (default: the VM's name).
    #[serde(default)]
    pub image: Option<String>,
}

/// What the control plane asks a VM's agent: a standalone copy of `disk` (flattened qcow2,
/// no backing file) of the stopped VM, as the answer's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiskExportJob {
    pub disk: String,
}

/// The format of `image`'s `disk` file, if it has one: a disk image's own format; the disk a
/// kernel image carries (made by `vm template` from a VM that boots a kernel) is qcow2, and
/// VMs created from it get a copy-on-write overlay over it instead of a blank disk.
pub fn image_disk_format(image: &crate::Image) -> Option<crate::DiskFormat> {
    if !image.files.iter().any(|f| f.role == "disk") {
        return None;
    }
    match image.kind {
        crate::ImageKind::Disk { format } => Some(format),
        crate::ImageKind::Kernel { .. } => Some(crate::DiskFormat::Qcow2),
        // An installation medium is never a VM's disk.
        crate::ImageKind::Iso => None,
    }
}

/// Body of `POST /api/v1/vms/{name}/clone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    /// The new VM's name.
    pub name: String,
    /// Share the source's disk, frozen, as the backing file of both instead of copying it
    /// (docs/disks.md: such local disks are not live-migrated).
    #[serde(default)]
    pub linked: bool,
    /// The node to place the clone on: the source's node (its disk is there).
    #[serde(default)]
    pub node: Option<String>,
}

/// Where a new VM's disk comes from when `vm clone` made it: VM `name` of `project`, on the
/// same node, copied whole, or (`linked`) shared as the frozen backing file of both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CloneSource {
    pub project: String,
    pub name: String,
    #[serde(default)]
    pub linked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_is_named_as_vm_show_names_it() {
        assert_eq!(disk_name("web1", "disk0", &[]).unwrap(), "disk0");
        assert_eq!(disk_name("web1", "disk", &[]).unwrap(), "disk0");
        let e = disk_name("web1", "disk1", &[]).unwrap_err();
        assert!(e.message.contains("its disks are disk0"), "{e}");
        let added = [DataDisk {
            name: "disk2".into(),
            size_bytes: 1 << 30,
            port: 0,
            image: None,
        }];
        assert_eq!(disk_name("web1", "disk2", &added).unwrap(), "disk2");
        let e = disk_name("web1", "disk1", &added).unwrap_err();
        assert!(e.message.contains("its disks are disk0, disk2"), "{e}");
    }

    #[test]
    fn only_virtio_disks_are_added_blank_or_from_an_image() {
        let req = |bus: Option<&str>| DiskAddRequest {
            size_bytes: Some(1 << 30),
            image: None,
            bus: bus.map(str::to_string),
        };
        assert!(req(None).validate().is_ok());
        assert!(req(Some("virtio")).validate().is_ok());
        let e = req(Some("scsi")).validate().unwrap_err();
        assert!(
            e.message.contains("--bus scsi") && e.message.contains("--bus virtio"),
            "{e}"
        );
        let odd = DiskAddRequest {
            size_bytes: Some(7),
            ..req(None)
        };
        assert!(odd.validate().is_err());
        let nothing = DiskAddRequest {
            size_bytes: None,
            ..req(None)
        };
        let e = nothing.validate().unwrap_err();
        assert!(e.message.contains("--image NAME"), "{e}");
        let image = DiskAddRequest {
            image: Some("data1".into()),
            ..nothing.clone()
        };
        assert!(image.validate().is_ok());
        let bad = DiskAddRequest {
            image: Some("../x".into()),
            ..nothing
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn sizes_are_whole_sectors() {
        assert!(
            DiskResizeRequest {
                size_bytes: 40 << 30
            }
            .validate()
            .is_ok()
        );
        assert!(DiskResizeRequest { size_bytes: 0 }.validate().is_err());
        assert!(DiskResizeRequest { size_bytes: 1000 }.validate().is_err());
    }
}
