//! A VM's disks as the API names them, and the disk operations the control plane asks an
//! agent to do (`vm disk resize`). A VM has one disk today, `disk0` (QEMU block node
//! `disk0`, file `disk0.qcow2`; `vm show` lists it as `disk`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ApiError, format_size};

/// The one disk every VM with a disk has.
pub const DISK0: &str = "disk0";

/// The disk `given` names: `disk0`, or `disk` as `vm show` labels it.
pub fn disk_name(vm: &str, given: &str) -> Result<&'static str, ApiError> {
    match given {
        DISK0 | "disk" => Ok(DISK0),
        other => Err(ApiError::not_found(format!(
            "VM {vm} has no disk {other:?}: its disk is {DISK0}"
        ))),
    }
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
        assert_eq!(disk_name("web1", "disk0").unwrap(), "disk0");
        assert_eq!(disk_name("web1", "disk").unwrap(), "disk0");
        let e = disk_name("web1", "disk1").unwrap_err();
        assert!(e.message.contains("its disk is disk0"), "{e}");
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
