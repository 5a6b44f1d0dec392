//! The unprivileged user each VM's QEMU runs as on this node.
//!
//! An agent running as root gives every VM a user of its own, from a numeric range no
//! distribution hands out ([`FIRST_VM_UID`] onwards; no passwd entry is needed). The VM's
//! directory (`<data dir>/vms/<project>/<name>`) is owned by that user, mode 0700, and that
//! ownership is the record of the assignment: it survives agent restarts, moves nowhere, and
//! is freed when the directory is removed with the VM. Work directories made for a running
//! QEMU (backups, migrations) get the owner of the VM's run directory ([`own_work_dir`]).
//!
//! Files every VM may read (kernels, initrds, base images) belong to root and to the group
//! [`IMAGE_GID`], mode 0640, and every VM user is in that group. Directories on the way to a
//! VM's files (`<data dir>`, `vms`, `vms/<project>`, `images`) are opened for passing only
//! (mode 0711): names inside cannot be listed.
//!
//! An agent not running as root cannot switch users; its QEMUs run as the agent's own user.

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use novacron_qemu::RunAs;
use novacron_qemu::user::hand_over;

/// The first user id given to a VM; ids and group ids are equal.
pub const FIRST_VM_UID: u32 = 0x7000_0001;
/// How many VM users a node has (more VMs than this on one node are refused).
pub const VM_UIDS: u32 = 0xFFFF;

/// The group that may read the node's images; every VM user is in it.
pub const IMAGE_GID: u32 = FIRST_VM_UID - 1;

/// Whether `uid` is in the VM users' range.
pub fn is_vm_uid(uid: u32) -> bool {
    (FIRST_VM_UID..FIRST_VM_UID + VM_UIDS).contains(&uid)
}

/// Hands out VM users on this node.
#[derive(Debug)]
pub struct VmUsers {
    vms_root: PathBuf,
    enabled: bool,
    /// Serialises choosing a free id (scan, then chown) between workers.
    choosing: Mutex<()>,
}

impl VmUsers {
    /// VM users under `<data_dir>/vms`; enabled when the agent runs as root.
    pub fn new(data_dir: &Path) -> VmUsers {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        VmUsers {
            vms_root: data_dir.join("vms"),
            enabled: root,
            choosing: Mutex::new(()),
        }
    }

    /// The user of the VM whose directory is `vm_dir` (which must exist): the one the
    /// directory is owned by, or the lowest free one, given to it now. `None` when the agent
    /// cannot switch users.
    pub fn assign(&self, vm_dir: &Path) -> Result<Option<RunAs>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let _one_at_a_time = self.choosing.lock().unwrap_or_else(|p| p.into_inner());
        let meta = std::fs::metadata(vm_dir)
            .map_err(|e| format!("reading the owner of {}: {e}", vm_dir.display()))?;
        let uid = if is_vm_uid(meta.uid()) {
            meta.uid()
        } else {
            let used = used_uids(&self.vms_root);
            (FIRST_VM_UID..FIRST_VM_UID + VM_UIDS)
                .find(|u| !used.contains(u))
                .ok_or_else(|| {
                    format!("this node runs {VM_UIDS} VMs already, each with a user of its own")
                })?
        };
        let who = RunAs {
            uid,
            gid: uid,
            groups: vec![IMAGE_GID],
        };
        give_dir(vm_dir, &who, &self.vms_root)?;
        Ok(Some(who))
    }

    /// Gives `dir` (a VM's disk directory in a storage pool, `<pool>/vms/<project>/<name>`)
    /// to the VM's user, opening the directories above it up to the pool's for passing.
    /// `dir` itself is passable too (0711, not listable): a live migration's destination
    /// takes it while the source still runs as its own user, and the source's swtpm opens its
    /// state (`tpm/<node>/`, that user's own, 0700) by name until the migration ends.
    pub fn give_pool_dir(&self, dir: &Path, who: &RunAs) -> Result<(), String> {
        let top = dir.ancestors().nth(3).unwrap_or(Path::new("/"));
        give_dir_mode(dir, who, top, 0o711)
    }

    /// Makes an image file readable by every VM user (root:[`IMAGE_GID`], 0640) and its
    /// directory passable; nothing to do when VMs run as the agent's user.
    pub fn share_image(&self, path: &Path) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            open_for_passing(dir)?;
        }
        hand_over(path, 0, IMAGE_GID, 0o640)
            .map_err(|e| format!("sharing an image with the VMs' users: {e}"))
    }
}

/// `dir` owned by `who`, mode 0700; the directories from `top` down to its parent opened for
/// passing.
fn give_dir(dir: &Path, who: &RunAs, top: &Path) -> Result<(), String> {
    give_dir_mode(dir, who, top, 0o700)
}

/// [`give_dir`] with `dir` at `mode`.
fn give_dir_mode(dir: &Path, who: &RunAs, top: &Path, mode: u32) -> Result<(), String> {
    hand_over(dir, who.uid, who.gid, mode).map_err(|e| e.to_string())?;
    let mut up = dir.parent();
    while let Some(d) = up {
        open_for_passing(d)?;
        if d == top {
            break;
        }
        up = d.parent();
    }
    Ok(())
}

/// Adds execute (pass) permission for group and other to a directory, nothing else.
pub fn open_for_passing(dir: &Path) -> Result<(), String> {
    let mode = std::fs::metadata(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .mode();
    if mode & 0o011 != 0o011 {
        std::fs::set_permissions(
            dir,
            std::fs::Permissions::from_mode((mode | 0o011) & 0o7777),
        )
        .map_err(|e| format!("opening {} for passing: {e}", dir.display()))?;
    }
    Ok(())
}

/// The VM users' ids in use: the owners of `<vms_root>/<project>/<vm>`.
fn used_uids(vms_root: &Path) -> HashSet<u32> {
    let mut used = HashSet::new();
    let Ok(projects) = std::fs::read_dir(vms_root) else {
        return used;
    };
    for project in projects.flatten() {
        let Ok(vms) = std::fs::read_dir(project.path()) else {
            continue;
        };
        for vm in vms.flatten() {
            if let Ok(meta) = vm.metadata()
                && meta.is_dir()
                && is_vm_uid(meta.uid())
            {
                used.insert(meta.uid());
            }
        }
    }
    used
}

/// Creates `work` (mode 0700) for files a running QEMU must open or create there, owned by
/// the owner of that QEMU's run directory `run_dir`.
pub fn own_work_dir(work: &Path, run_dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let meta = std::fs::metadata(run_dir)
        .map_err(|e| format!("reading the owner of {}: {e}", run_dir.display()))?;
    hand_over(work, meta.uid(), meta.gid(), 0o700).map_err(|e| e.to_string())
}

/// Every directory from `/` down to `dir` that a VM's user cannot pass through (no execute
/// permission for others), which would keep QEMU from its files.
pub fn closed_ancestors(dir: &Path) -> Vec<PathBuf> {
    let mut closed = Vec::new();
    let mut path = PathBuf::new();
    for part in dir.components() {
        path.push(part);
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.mode() & 0o001 == 0
        {
            closed.push(path.clone());
        }
    }
    closed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_range_and_closed_dirs_are_named() {
        assert!(is_vm_uid(FIRST_VM_UID));
        assert!(is_vm_uid(FIRST_VM_UID + VM_UIDS - 1));
        assert!(!is_vm_uid(0));
        assert!(!is_vm_uid(1000));
        assert!(!is_vm_uid(FIRST_VM_UID + VM_UIDS));

        let dir = tempfile::tempdir().expect("temp dir");
        let inner = dir.path().join("a/b");
        std::fs::create_dir_all(&inner).expect("mkdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(closed_ancestors(&inner), vec![dir.path().to_path_buf()]);
    }

    #[test]
    fn a_vm_keeps_its_user_and_two_vms_get_two() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("needs root to give directories away; skipped");
            return;
        }
        let data = tempfile::tempdir().expect("temp dir");
        let users = VmUsers::new(data.path());
        let a = data.path().join("vms/p/a");
        let b = data.path().join("vms/p/b");
        std::fs::create_dir_all(&a).expect("mkdir");
        std::fs::create_dir_all(&b).expect("mkdir");
        let ua = users.assign(&a).expect("assign").expect("enabled");
        let ub = users.assign(&b).expect("assign").expect("enabled");
        assert_ne!(ua.uid, ub.uid);
        assert!(is_vm_uid(ua.uid) && is_vm_uid(ub.uid));
        assert_eq!(users.assign(&a).expect("again"), Some(ua.clone()));
        // A new agent on the same data dir reads the same assignment.
        assert_eq!(
            VmUsers::new(data.path()).assign(&b).expect("after restart"),
            Some(ub.clone())
        );
        // A freed id is handed out again.
        std::fs::remove_dir(&a).expect("rmdir");
        let c = data.path().join("vms/q/c");
        std::fs::create_dir_all(&c).expect("mkdir");
        assert_eq!(
            users.assign(&c).expect("assign c").map(|u| u.uid),
            Some(ua.uid)
        );
    }
}
