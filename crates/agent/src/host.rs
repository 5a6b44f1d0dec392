//! Facts about this host that the control plane needs: capacity, KVM, QEMU version, bridges.

use std::path::Path;

use novacron_api_types::Resources;

/// What the agent reports about its host when it registers.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub capacity: Resources,
    pub kvm_usable: bool,
    pub qemu_version: String,
    pub bridges: Vec<String>,
}

impl HostFacts {
    /// What a hollow node (scale tests) reports: a plausible host, no QEMU.
    pub fn hollow() -> HostFacts {
        HostFacts {
            capacity: Resources {
                cpus: 64,
                memory_bytes: 512 << 30,
                disk_bytes: 8 << 40,
            },
            kvm_usable: false,
            qemu_version: "hollow".into(),
            bridges: vec![],
        }
    }

    pub async fn probe(data_dir: &Path) -> HostFacts {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| parse_meminfo_total(&m))
            .unwrap_or(0);
        let disk_bytes = free_disk_bytes(data_dir).unwrap_or(0);
        let kvm_usable = matches!(
            novacron_qemu::resolve_accel(novacron_qemu::AccelChoice::Auto),
            Ok(novacron_qemu::Accel::Kvm)
        );
        HostFacts {
            capacity: Resources {
                cpus,
                memory_bytes,
                disk_bytes,
            },
            kvm_usable,
            qemu_version: qemu_version().await,
            bridges: bridges(),
        }
    }
}

fn parse_meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn free_disk_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid, writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

async fn qemu_version() -> String {
    let mut cmd = tokio::process::Command::new(novacron_qemu::process::qemu_binary());
    cmd.arg("--version");
    novacron_qemu::process::inherit_only_stdio(cmd.as_std_mut(), &[]);
    let out = cmd.output().await;
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("QEMU emulator version "))
            .map(|v| v.split_whitespace().next().unwrap_or(v).to_string())
            .unwrap_or_else(|| "unknown".into()),
        _ => "not installed".into(),
    }
}

fn bridges() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("bridge").is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename) with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo() {
        let m = "MemTotal:       24576000 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_meminfo_total(m), Some(24576000 * 1024));
        assert_eq!(parse_meminfo_total("garbage"), None);
    }
}
