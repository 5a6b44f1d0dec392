//! Which unprivileged user a QEMU runs as, and the files it must be able to open.
//!
//! A VM's QEMU can run as its own user ([`RunAs`]), chosen by the agent. Before QEMU starts,
//! [`prepare_files`] hands it what is its own: its run directory (where QEMU creates its QMP,
//! console and NBD sockets and its pid file) and its disk and seed files, each owned by the
//! VM's user and closed to everyone else. Shared, read-only files (kernels, initrds, base images
//! behind an overlay) stay root's and reach QEMU through the permissions their owner gives them
//! (the agent makes its images readable by the group in [`RunAs::groups`]). QEMU becomes the
//! user between fork and exec ([`become_in_child`]), after entering its cgroup, so no QEMU code
//! ever runs as root.
//!
//! Files the agent makes later for a running QEMU (a fleecing image, a socket QEMU connects
//! to) are handed over with [`give_to_dir_owner`]: they live in the VM's run directory, whose
//! owner is the VM's user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{QemuError, RunDir, VmSpec};

/// The credentials a QEMU runs with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (e.g. the group that may read the node's images).
    #[serde(default)]
    pub groups: Vec<u32>,
}

impl RunAs {
    /// Refuses root: a QEMU "confined" as uid or gid 0 is not confined.
    pub fn validate(&self) -> Result<(), QemuError> {
        if self.uid == 0 || self.gid == 0 || self.groups.contains(&0) {
            return Err(QemuError::InvalidSpec(
                "run_as must name an unprivileged user and groups, not root (0)".into(),
            ));
        }
        Ok(())
    }
}

/// Gives the VM's user its run directory (mode 0700) and its disk and seed files (0600, seed
/// 0400), so that user and root can open them and no one else can.
pub fn prepare_files(spec: &VmSpec, run_dir: &RunDir, who: &RunAs) -> Result<(), QemuError> {
    hand_over(run_dir.path(), who.uid, who.gid, 0o700)?;
    // QEMU appends to its console log across runs; one left by a QEMU that ran as root is
    // handed over too.
    let console_log = run_dir.console_log();
    if console_log.exists() {
        hand_over(&console_log, who.uid, who.gid, 0o600)?;
    }
    for disk in &spec.disks {
        hand_over(
            &disk.path,
            who.uid,
            who.gid,
            if disk.read_only { 0o400 } else { 0o600 },
        )?;
    }
    for disk in &spec.plugged_disks {
        hand_over(&disk.path, who.uid, who.gid, 0o600)?;
    }
    if let Some(uefi) = &spec.uefi {
        hand_over(&uefi.vars, who.uid, who.gid, 0o600)?;
    }
    if let Some(tpm) = &spec.tpm {
        hand_over(&tpm.state_dir, who.uid, who.gid, 0o700)?;
        let entries = std::fs::read_dir(&tpm.state_dir)
            .map_err(|e| QemuError::io(format!("reading {}", tpm.state_dir.display()), e))?;
        for entry in entries.filter_map(Result::ok) {
            hand_over(&entry.path(), who.uid, who.gid, 0o600)?;
        }
    }
    if let Some(seed) = &spec.seed_iso {
        hand_over(seed, who.uid, who.gid, 0o400)?;
    }
    Ok(())
}

/// Makes `path` (a file the agent created for a running QEMU, in that QEMU's run directory)
/// owned by the owner of its directory, mode 0600. Under a root-owned directory this changes
/// only the mode.
pub fn give_to_dir_owner(path: &Path) -> Result<(), QemuError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let meta = std::fs::metadata(dir)
        .map_err(|e| QemuError::io(format!("reading the owner of {}", dir.display()), e))?;
    hand_over(path, meta.uid(), meta.gid(), 0o600)
}

/// Makes `path` owned by `uid`:`gid` with permission bits `mode`.
pub fn hand_over(path: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), QemuError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| QemuError::io(format!("giving {} to uid {uid}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| QemuError::io(format!("setting the mode of {}", path.display()), e))
}

/// The group owning `/dev/kvm`, which a QEMU using KVM needs among its groups.
pub fn kvm_group() -> Option<u32> {
    std::fs::metadata("/dev/kvm").ok().map(|m| m.gid())
}

/// Switches the calling (forked, not yet exec'd) process to `who`: supplementary groups, then
/// group, then user, and checks that root cannot be regained. Async-signal-safe: system calls
/// only, on memory allocated before the fork.
pub(crate) fn become_in_child(who: &RunAs) -> std::io::Result<()> {
    let groups: &[libc::gid_t] = &who.groups;
    // SAFETY: setgroups(2), setresgid(2) and setresuid(2) read only the arguments given; the
    // group list is a live slice.
    unsafe {
        if libc::setgroups(groups.len(), groups.as_ptr()) == -1 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::setresgid(who.gid, who.gid, who.gid) == -1 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::setresuid(who.uid, who.uid, who.uid) == -1 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::setuid(0) == 0 {
            return Err(std::io::Error::from_raw_os_error(libc::EPERM));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_refused() {
        for who in [
            RunAs {
                uid: 0,
                gid: 5,
                groups: vec![],
            },
            RunAs {
                uid: 5,
                gid: 0,
                groups: vec![],
            },
            RunAs {
                uid: 5,
                gid: 5,
                groups: vec![7, 0],
            },
        ] {
            assert!(who.validate().is_err(), "{who:?}");
        }
        let ok = RunAs {
            uid: 5,
            gid: 5,
            groups: vec![7],
        };
        assert!(ok.validate().is_ok());
    }
}
