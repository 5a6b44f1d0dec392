//! One control group per QEMU process, with CPU and memory limits from the VM's spec, so a
//! runaway or compromised QEMU cannot take the host's CPUs or memory from its neighbours.
//!
//! Where: cgroup v2 (`/sys/fs/cgroup/novacron/<key>`) when the unified hierarchy offers the
//! `cpu` and `memory` controllers, else the v1 `cpu` and `memory` hierarchies
//! (`/sys/fs/cgroup/{cpu,memory}/novacron/<key>`, hybrid hosts such as this project's CI).
//! A host with neither (no cgroup file system, not root) runs QEMU without a group, with a
//! warning; the VM still starts.
//!
//! The key holds the VM's uuid and a hash of its run directory, so the two QEMUs of one VM
//! during a same-host migration get a group each. QEMU enters its group between fork and
//! exec (it writes `0` to the `cgroup.procs` files opened beforehand), so it never runs a
//! single instruction outside it. The group is removed once QEMU has ended.
//!
//! Limits, and why:
//! - CPU: `cpus + 1` CPUs' worth of time per 100 ms period. The extra CPU is for QEMU's own
//!   threads (main loop, I/O, the migration thread), which must not starve behind the vCPUs
//!   during a migration.
//! - Memory: guest RAM + 256 MiB + RAM/16 for QEMU itself, plus 1 GiB under TCG for the
//!   translated-code buffer (QEMU 7.2 reserves up to 1 GiB for it on a large host and fills
//!   it as the guest runs code). Over the limit the kernel's OOM killer ends QEMU, which the
//!   agent reports as a crash.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::{Accel, VmSpec};

const ROOT: &str = "/sys/fs/cgroup";
const GROUP_DIR: &str = "novacron";
/// CFS period for the CPU limit.
const CPU_PERIOD_US: u64 = 100_000;

/// CPU and memory limits of one QEMU process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU time per [`CPU_PERIOD_US`], in microseconds.
    pub cpu_quota_us: u64,
    pub memory_bytes: u64,
}

impl Limits {
    /// The limits for `spec` (see the module documentation).
    pub fn for_spec(spec: &VmSpec) -> Limits {
        let ram = spec.memory_bytes;
        let tcg = if spec.accel == Accel::Tcg { 1 << 30 } else { 0 };
        Limits {
            cpu_quota_us: (u64::from(spec.cpus.max(1)) + 1) * CPU_PERIOD_US,
            memory_bytes: ram + (256 << 20) + ram / 16 + tcg,
        }
    }
}

/// A QEMU's control group: the directories made for it, and the `cgroup.procs` files QEMU
/// writes itself into before exec.
#[derive(Debug)]
pub struct VmCgroup {
    dirs: Vec<PathBuf>,
    procs: Vec<OwnedFd>,
}

impl VmCgroup {
    /// Creates (or reuses, after an earlier QEMU of the same run directory) the group for
    /// `spec` run from `run_dir` and sets its limits. `None` when this host offers no
    /// writable cgroup hierarchy with cpu and memory (logged).
    pub fn create(spec: &VmSpec, run_dir: &Path) -> Option<VmCgroup> {
        let key = group_key(&spec.uuid, run_dir);
        let limits = Limits::for_spec(spec);
        let result = match layout() {
            Some(Layout::V2) => create_v2(&key, limits),
            Some(Layout::V1) => create_v1(&key, limits),
            None => {
                tracing::warn!(vm = %spec.name, "no cgroup hierarchy with cpu and memory; QEMU runs without CPU and memory limits");
                return None;
            }
        };
        match result {
            Ok(group) => {
                tracing::debug!(vm = %spec.name, dirs = ?group.dirs, ?limits, "QEMU cgroup ready");
                Some(group)
            }
            Err(e) => {
                tracing::warn!(vm = %spec.name, error = %e, "cannot set up QEMU's cgroup; QEMU runs without CPU and memory limits");
                None
            }
        }
    }

    /// Descriptors of the `cgroup.procs` files, for [`join_in_child`].
    pub fn procs_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// The group directories (one on v2, one per controller on v1).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Removes the group of `spec` run from `run_dir`, once its QEMU has ended (best effort:
    /// a group with a process left in it stays, and is reused by the next launch).
    pub fn remove_for(uuid: &str, run_dir: &Path) {
        let key = group_key(uuid, run_dir);
        for dir in candidate_dirs(&key) {
            if dir.exists()
                && let Err(e) = std::fs::remove_dir(&dir)
            {
                tracing::debug!(dir = %dir.display(), error = %e, "cgroup not removed");
            }
        }
    }
}

/// Moves the calling process into the groups whose `cgroup.procs` are open as `fds`. Runs
/// between fork and exec: only write(2), which is async-signal-safe.
pub fn join_in_child(fds: &[RawFd]) -> std::io::Result<()> {
    for &fd in fds {
        // SAFETY: writes one byte from a static buffer to a descriptor the parent opened.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `vm-<uuid>-<hash of run dir>`: stable for one run directory, distinct for two QEMUs of one
/// VM. Characters outside `[A-Za-z0-9-]` in the uuid are dropped (it is a path component).
fn group_key(uuid: &str, run_dir: &Path) -> String {
    let clean: String = uuid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    // FNV-1a: stable across versions and processes (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in run_dir.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("vm-{clean}-{:08x}", h as u32)
}

enum Layout {
    V2,
    V1,
}

fn layout() -> Option<Layout> {
    let root = Path::new(ROOT);
    if let Ok(controllers) = std::fs::read_to_string(root.join("cgroup.controllers")) {
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        if has("cpu") && has("memory") {
            return Some(Layout::V2);
        }
    }
    (root.join("cpu/cgroup.procs").exists() && root.join("memory/cgroup.procs").exists())
        .then_some(Layout::V1)
}

fn candidate_dirs(key: &str) -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    vec![
        root.join(GROUP_DIR).join(key),
        root.join("cpu").join(GROUP_DIR).join(key),
        root.join("memory").join(GROUP_DIR).join(key),
    ]
}

fn write_file(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes()).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("writing {value:?} to {}: {e}", path.display()),
        )
    })
}

fn open_procs(dir: &Path) -> std::io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))?;
    Ok(f.into())
}

fn create_v2(key: &str, limits: Limits) -> std::io::Result<VmCgroup> {
    let parent = Path::new(ROOT).join(GROUP_DIR);
    std::fs::create_dir_all(&parent)?;
    // Controllers reach a child group only when its parent delegates them.
    write_file(
        &Path::new(ROOT).join("cgroup.subtree_control"),
        "+cpu +memory",
    )?;
    write_file(&parent.join("cgroup.subtree_control"), "+cpu +memory")?;
    let dir = parent.join(key);
    std::fs::create_dir_all(&dir)?;
    write_file(
        &dir.join("cpu.max"),
        &format!("{} {CPU_PERIOD_US}", limits.cpu_quota_us),
    )?;
    write_file(&dir.join("memory.max"), &limits.memory_bytes.to_string())?;
    let procs = vec![open_procs(&dir)?];
    Ok(VmCgroup {
        dirs: vec![dir],
        procs,
    })
}

fn create_v1(key: &str, limits: Limits) -> std::io::Result<VmCgroup> {
    let root = Path::new(ROOT);
    let cpu = root.join("cpu").join(GROUP_DIR).join(key);
    let memory = root.join("memory").join(GROUP_DIR).join(key);
    std::fs::create_dir_all(&cpu)?;
    std::fs::create_dir_all(&memory)?;
    write_file(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
    write_file(
        &cpu.join("cpu.cfs_quota_us"),
        &limits.cpu_quota_us.to_string(),
    )?;
    write_file(
        &memory.join("memory.limit_in_bytes"),
        &limits.memory_bytes.to_string(),
    )?;
    let procs = vec![open_procs(&cpu)?, open_procs(&memory)?];
    Ok(VmCgroup {
        dirs: vec![cpu, memory],
        procs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_leave_room_for_qemu_itself() {
        let spec = VmSpec {
            cpus: 2,
            memory_bytes: 1 << 30,
            accel: Accel::Kvm,
            ..Default::default()
        };
        let l = Limits::for_spec(&spec);
        assert_eq!(l.cpu_quota_us, 300_000);
        assert_eq!(l.memory_bytes, (1 << 30) + (256 << 20) + (64 << 20));
        let tcg = Limits::for_spec(&VmSpec {
            accel: Accel::Tcg,
            ..spec
        });
        assert_eq!(tcg.memory_bytes, l.memory_bytes + (1 << 30));
    }

    #[test]
    fn keys_differ_per_run_dir_and_stay_path_safe() {
        let a = group_key("6f0c/../x", Path::new("/run/a"));
        let b = group_key("6f0c/../x", Path::new("/run/b"));
        assert_ne!(a, b);
        assert_eq!(a, group_key("6f0c/../x", Path::new("/run/a")));
        assert!(a.starts_with("vm-6f0cx-"), "{a}");
        assert!(!a.contains('/') && !a.contains('.'));
    }
}
