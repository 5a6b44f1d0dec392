//! The built-in tiny guest: the host's kernel plus an initramfs written here (busybox, virtio modules, an init that
//! prints a ready marker, gives a shell on the serial console and powers off on the ACPI button). No download.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::QemuError;
use crate::cpio::CpioWriter;

/// Printed on the serial console once the guest is up (modules loaded, network configured if any).
pub const GUEST_READY_MARKER: &str = "NOVACRON-GUEST-READY";

/// Kernel command line of the tiny guest. `panic=-1` reboots at once on a panic that happens before the pvpanic
/// driver loads; after that the pvpanic device makes QEMU end (see [`crate::build_command_line`]). `oops=panic`
/// turns a half-dead guest into a visible crash. (Skipping i8042 probing was measured and gained nothing.)
pub const TINY_CMDLINE: &str = "console=ttyS0 quiet panic=-1 oops=panic";

/// Modules the guest loads, with their dependencies resolved from modules.dep. Built-in ones are skipped.
pub const TINY_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "virtio_rng",
    "button",
    "evdev",
    "pvpanic_mmio",
    // UEFI variables from inside a guest booted under OVMF (`mount -t efivarfs`).
    "efivarfs",
];

/// A file to add to the guest, e.g. `/etc/novacron/init.d/50-heartbeat` (executables there run after the marker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestFile {
    /// Absolute path inside the guest.
    pub path_in_guest: String,
    pub contents: Vec<u8>,
    /// Unix permission bits, e.g. 0o755 for a script.
    pub mode: u32,
}

/// Options of [`build_tiny`]; the default uses the newest /boot/vmlinuz-* and /bin/busybox.
#[derive(Clone, Debug, Default)]
pub struct TinyOptions {
    /// Extra files; their parents are created. Executables in /etc/novacron/init.d/ run one after another, in name
    /// order, in the background after the ready marker, with output on the serial console.
    pub extra_files: Vec<GuestFile>,
    /// Kernel to use instead of the newest /boot/vmlinuz-*; its modules must be in /lib/modules/<release>, where
    /// the release is the file name after "vmlinuz-".
    pub kernel: Option<PathBuf>,
    /// busybox to use instead of /bin/busybox (must be static).
    pub busybox: Option<PathBuf>,
    /// More kernel modules to load at boot (with their dependencies), e.g. "isofs" or "vfat".
    pub extra_modules: Vec<String>,
    /// A qemu-guest-agent binary to add with the shared libraries it loads (found with
    /// `ldd`); the guest starts it on its `org.qemu.guest_agent.0` port after the ready
    /// marker. See [`host_guest_agent`].
    pub guest_agent: Option<PathBuf>,
}

/// Where Debian's qemu-guest-agent package installs the agent.
pub const HOST_GUEST_AGENT: &str = "/usr/sbin/qemu-ga";

/// The host's qemu-guest-agent when it is installed (scripts/deps.sh installs it), to put
/// into the tiny guest so `vm exec` works there.
pub fn host_guest_agent() -> Option<PathBuf> {
    let path = PathBuf::from(HOST_GUEST_AGENT);
    path.is_file().then_some(path)
}

/// The guest's init.d script that starts the agent (its libraries keep their host paths).
const GUEST_AGENT_START: &str = r#"#!/bin/sh
# qemu-guest-agent on its virtio-serial port: `novacron vm exec` and the guest's addresses.
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] || continue
  LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64 \
    /usr/sbin/qemu-ga -d -m virtio-serial -p "/dev/${p##*/}" -f /run/qemu-ga.pid -t /run \
    -l /var/log/qemu-ga.log
done
"#;

/// A bootable tiny guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TinyImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
}

const BOOT_DIR: &str = "/boot";
const MODULES_ROOT: &str = "/lib/modules";
const DEFAULT_BUSYBOX: &str = "/bin/busybox";

/// Builds the tiny guest into `out_dir` (kernel copy `vmlinuz` and uncompressed initramfs `initramfs.cpio`).
/// Uncompressed because unpacking gzip under TCG costs more than reading the bytes.
pub async fn build_tiny(out_dir: &Path, opts: &TinyOptions) -> Result<TinyImage, QemuError> {
    let out_dir = out_dir.to_path_buf();
    let opts = opts.clone();
    tokio::task::spawn_blocking(move || build_tiny_blocking(&out_dir, &opts))
        .await
        .map_err(|e| QemuError::TinyImage(format!("builder task failed: {e}")))?
}

fn build_tiny_blocking(out_dir: &Path, opts: &TinyOptions) -> Result<TinyImage, QemuError> {
    let kernel = match &opts.kernel {
        Some(k) => k.clone(),
        None => newest_kernel(Path::new(BOOT_DIR))?,
    };
    let release = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or_else(|| {
            QemuError::TinyImage(format!(
                "cannot tell the kernel release from {} (expected a file named vmlinuz-<release>)",
                kernel.display()
            ))
        })?
        .to_string();
    let modules_dir = Path::new(MODULES_ROOT).join(&release);
    let busybox_path = opts
        .busybox
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BUSYBOX));
    let busybox = std::fs::read(&busybox_path).map_err(|e| QemuError::BusyboxUnusable {
        path: busybox_path.clone(),
        reason: format!("cannot read it ({e})"),
    })?;
    check_static_elf(&busybox).map_err(|reason| QemuError::BusyboxUnusable {
        path: busybox_path.clone(),
        reason,
    })?;
    let applets = busybox_applets(&busybox_path)?;

    let mut wanted: Vec<&str> = TINY_MODULES.to_vec();
    wanted.extend(opts.extra_modules.iter().map(String::as_str));
    let modules = resolve_modules(&modules_dir, &wanted)?;

    let mut cpio = CpioWriter::new();
    let err = |e: String| QemuError::TinyImage(e);
    for dir in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "root",
        "var/log",
        "mnt",
        "etc/novacron/init.d",
    ] {
        cpio.dir(dir, 0o755).map_err(err)?;
    }
    cpio.char_device("dev/console", 0o600, 5, 1).map_err(err)?;
    cpio.char_device("dev/null", 0o666, 1, 3).map_err(err)?;
    cpio.file("bin/busybox", 0o755, &busybox).map_err(err)?;
    for applet in &applets {
        if applet != "bin/busybox" && !cpio.contains(applet) {
            cpio.symlink(applet, "/bin/busybox").map_err(err)?;
        }
    }
    // The kernel runs /init; as "init", busybox is its init, which reads /etc/inittab.
    cpio.symlink("init", "/bin/busybox").map_err(err)?;
    let mut module_list = String::new();
    for (name, rel) in &modules {
        let data = std::fs::read(modules_dir.join(rel))
            .map_err(|e| QemuError::io(format!("reading module {name}"), e))?;
        let file = Path::new(rel)
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or(name.as_str())
            .to_string();
        cpio.file(&format!("lib/modules/{file}"), 0o644, &data)
            .map_err(err)?;
        module_list.push_str(&file);
        module_list.push('\n');
    }
    cpio.file("etc/novacron/modules", 0o644, module_list.as_bytes())
        .map_err(err)?;
    cpio.file("etc/inittab", 0o644, INITTAB.as_bytes())
        .map_err(err)?;
    cpio.file("etc/init.d/rcS", 0o755, rc_script().as_bytes())
        .map_err(err)?;
    cpio.file("etc/acpi/PWRF/00000080", 0o755, POWER_BUTTON.as_bytes())
        .map_err(err)?;
    cpio.file(
        "etc/novacron/udhcpc.script",
        0o755,
        UDHCPC_SCRIPT.as_bytes(),
    )
    .map_err(err)?;
    cpio.file("etc/profile", 0o644, PROFILE.as_bytes())
        .map_err(err)?;
    cpio.file("etc/hostname", 0o644, b"novacron-tiny\n")
        .map_err(err)?;
    cpio.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .map_err(err)?;
    cpio.file("etc/group", 0o644, b"root:x:0:\n").map_err(err)?;
    if let Some(agent) = &opts.guest_agent {
        for (path, data) in guest_agent_files(agent)? {
            if !cpio.contains(&path) {
                cpio.file(&path, 0o755, &data).map_err(err)?;
            }
        }
        cpio.file(
            "etc/novacron/init.d/00-qemu-ga",
            0o755,
            GUEST_AGENT_START.as_bytes(),
        )
        .map_err(err)?;
    }
    for f in &opts.extra_files {
        if !f.path_in_guest.starts_with('/') {
            return Err(QemuError::TinyImage(format!(
                "guest path {:?} must be absolute",
                f.path_in_guest
            )));
        }
        if cpio.contains(&f.path_in_guest) {
            return Err(QemuError::TinyImage(format!(
                "{} is already part of the tiny image",
                f.path_in_guest
            )));
        }
        cpio.file(&f.path_in_guest, f.mode, &f.contents)
            .map_err(err)?;
    }
    let archive = cpio.finish();

    std::fs::create_dir_all(out_dir)
        .map_err(|e| QemuError::io(format!("creating {}", out_dir.display()), e))?;
    let initrd = out_dir.join("initramfs.cpio");
    let kernel_copy = out_dir.join("vmlinuz");
    write_atomic(&initrd, &archive)?;
    let kernel_bytes = std::fs::read(&kernel)
        .map_err(|e| QemuError::io(format!("reading kernel {}", kernel.display()), e))?;
    write_atomic(&kernel_copy, &kernel_bytes)?;
    tracing::info!(
        kernel = %kernel.display(),
        initrd_bytes = archive.len(),
        modules = modules.len(),
        extra_files = opts.extra_files.len(),
        "built tiny guest image"
    );
    Ok(TinyImage {
        kernel: kernel_copy,
        initrd,
        cmdline: TINY_CMDLINE.to_string(),
    })
}

/// The guest agent (at /usr/sbin/qemu-ga in the guest) and each library `ldd` says it loads,
/// at the path the guest's loader looks for it: (path in the guest, bytes).
fn guest_agent_files(agent: &Path) -> Result<Vec<(String, Vec<u8>)>, QemuError> {
    let unusable = |reason: String| {
        QemuError::TinyImage(format!(
            "cannot add the guest agent {}: {reason}",
            agent.display()
        ))
    };
    let binary = std::fs::read(agent).map_err(|e| unusable(format!("cannot read it ({e})")))?;
    let mut cmd = std::process::Command::new("ldd");
    cmd.arg(agent);
    crate::process::inherit_only_stdio(&mut cmd, &[]);
    let out = cmd
        .output()
        .map_err(|e| unusable(format!("cannot run ldd ({e})")))?;
    if !out.status.success() {
        return Err(unusable(format!(
            "ldd failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut files = vec![("/usr/sbin/qemu-ga".to_string(), binary)];
    for lib in ldd_paths(&String::from_utf8_lossy(&out.stdout)).map_err(unusable)? {
        let data = std::fs::read(&lib).map_err(|e| unusable(format!("cannot read {lib} ({e})")))?;
        files.push((lib, data));
    }
    Ok(files)
}

/// The absolute library paths in `ldd` output ("libc.so.6 => /lib/.../libc.so.6 (0x...)" and
/// the loader's own "/lib64/ld-linux-x86-64.so.2 (0x...)"); a library ldd could not find is
/// an error.
fn ldd_paths(output: &str) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(format!("the library {} is missing", name.trim()));
                }
                rest
            }
            None => line,
        };
        let path = target.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') && !path.contains("..") {
            paths.push(path.to_string());
        }
    }
    Ok(paths)
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), QemuError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)
        .map_err(|e| QemuError::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| QemuError::io(format!("renaming to {}", path.display()), e))
}

/// The newest /boot/vmlinuz-<release>, comparing releases by their numeric parts.
fn newest_kernel(boot: &Path) -> Result<PathBuf, QemuError> {
    let entries = std::fs::read_dir(boot).map_err(|_| QemuError::KernelNotFound {
        dir: boot.to_path_buf(),
    })?;
    let mut best: Option<(Vec<u64>, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(release) = name.strip_prefix("vmlinuz-") else {
            continue;
        };
        let key = version_key(release);
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, entry.path()));
        }
    }
    best.map(|(_, p)| p)
        .ok_or_else(|| QemuError::KernelNotFound {
            dir: boot.to_path_buf(),
        })
}

fn version_key(release: &str) -> Vec<u64> {
    release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0))
        .collect()
}

/// Checks an x86-64 ELF has no program interpreter (PT_INTERP), i.e. is statically linked.
pub fn check_static_elf(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF executable".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a 64-bit little-endian ELF".into());
    }
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    if u16_at(0x12) != Some(62) {
        return Err("not an x86-64 executable".into());
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Err("truncated ELF header".into());
    };
    for i in 0..phnum as usize {
        let off = (phoff as usize).saturating_add(i.saturating_mul(phentsize as usize));
        match u32_at(off) {
            Some(3) => {
                return Err(
                    "dynamically linked (has a program interpreter), the guest has no libc".into(),
                );
            }
            Some(_) => {}
            None => return Err("truncated ELF program headers".into()),
        }
    }
    Ok(())
}

/// Applet paths (e.g. "bin/sh", "usr/sbin/acpid") from `busybox --list-full`.
fn busybox_applets(busybox: &Path) -> Result<Vec<String>, QemuError> {
    let mut cmd = std::process::Command::new(busybox);
    cmd.arg("--list-full");
    crate::process::inherit_only_stdio(&mut cmd, &[]);
    let out = cmd.output().map_err(|e| QemuError::BusyboxUnusable {
        path: busybox.to_path_buf(),
        reason: format!("cannot run it ({e})"),
    })?;
    if !out.status.success() {
        return Err(QemuError::BusyboxUnusable {
            path: busybox.to_path_buf(),
            reason: "`busybox --list-full` failed".into(),
        });
    }
    let applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && !l.contains(".."))
        .collect();
    for needed in [
        "sh", "init", "insmod", "acpid", "poweroff", "mount", "ip", "udhcpc",
    ] {
        if !applets.iter().any(|a| a.rsplit('/').next() == Some(needed)) {
            return Err(QemuError::BusyboxUnusable {
                path: busybox.to_path_buf(),
                reason: format!("it lacks the applet {needed}"),
            });
        }
    }
    Ok(applets)
}

/// Kernel module name from a path in modules.dep ("kernel/drivers/misc/pvpanic/pvpanic-mmio.ko" -> "pvpanic_mmio").
fn module_name(rel: &str) -> String {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// Resolves `wanted` modules and their dependencies into load order (dependencies first): (name, path relative to
/// the modules dir). Built-in modules are skipped; a module neither loadable nor built in is an error.
fn resolve_modules(
    modules_dir: &Path,
    wanted: &[&str],
) -> Result<Vec<(String, String)>, QemuError> {
    let dep_path = modules_dir.join("modules.dep");
    let dep_text = std::fs::read_to_string(&dep_path).map_err(|e| {
        QemuError::TinyImage(format!(
            "cannot read {} ({e}): install the kernel's modules (Debian package linux-image-cloud-amd64)",
            dep_path.display()
        ))
    })?;
    let builtin_text =
        std::fs::read_to_string(modules_dir.join("modules.builtin")).unwrap_or_default();
    resolve_modules_from(&dep_text, &builtin_text, wanted)
}

fn resolve_modules_from(
    dep_text: &str,
    builtin_text: &str,
    wanted: &[&str],
) -> Result<Vec<(String, String)>, QemuError> {
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in dep_text.lines() {
        let Some((module, rest)) = line.split_once(':') else {
            continue;
        };
        let module = module.trim();
        if module.is_empty() {
            continue;
        }
        let dep_names = rest.split_whitespace().map(module_name).collect();
        deps.insert(module_name(module), (module.to_string(), dep_names));
    }
    let builtin: HashSet<String> = builtin_text
        .lines()
        .map(|l| module_name(l.trim()))
        .collect();

    let mut order = Vec::new();
    let mut done = HashSet::new();
    fn visit(
        name: &str,
        deps: &HashMap<String, (String, Vec<String>)>,
        builtin: &HashSet<String>,
        done: &mut HashSet<String>,
        order: &mut Vec<(String, String)>,
        depth: usize,
    ) -> Result<(), QemuError> {
        if done.contains(name) {
            return Ok(());
        }
        if depth > 64 {
            return Err(QemuError::TinyImage(format!(
                "module dependency loop at {name}"
            )));
        }
        let Some((rel, module_deps)) = deps.get(name) else {
            if builtin.contains(name) {
                done.insert(name.to_string());
                return Ok(());
            }
            return Err(QemuError::TinyImage(format!(
                "kernel module {name} is neither in modules.dep nor built in"
            )));
        };
        if !rel.ends_with(".ko") {
            return Err(QemuError::TinyImage(format!(
                "module {rel} is compressed; the tiny image needs uncompressed .ko modules"
            )));
        }
        for dep in module_deps {
            visit(dep, deps, builtin, done, order, depth + 1)?;
        }
        done.insert(name.to_string());
        order.push((name.to_string(), rel.clone()));
        Ok(())
    }
    for name in wanted {
        visit(
            &name.replace('-', "_"),
            &deps,
            &builtin,
            &mut done,
            &mut order,
            0,
        )?;
    }
    Ok(order)
}

const INITTAB: &str = "\
::sysinit:/etc/init.d/rcS
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/sbin/poweroff -f
::shutdown:/bin/sync
";

fn rc_script() -> String {
    format!(
        r#"#!/bin/sh
# NovaCron tiny guest: bring the system up, then announce readiness on the serial console.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
while read -r m; do
  [ -n "$m" ] && insmod "/lib/modules/$m" 2>/dev/null
done < /etc/novacron/modules
hostname -F /etc/hostname
ip link set lo up
acpid -c /etc/acpi -l /run/acpid.log -p /run/acpid.pid
# A power-button press is lost unless acpid already holds the input device open: wait for that (at most ~2 s)
# before announcing readiness, so system_powerdown right after the marker always works.
if ls /dev/input/event* >/dev/null 2>&1; then
  n=0
  while [ $n -lt 200 ]; do
    pid=$(pidof acpid)
    [ -n "$pid" ] && ls -l /proc/$pid/fd 2>/dev/null | grep -q /dev/input/event && break
    usleep 10000
    n=$((n + 1))
  done
fi
for dev in /sys/class/net/eth*; do
  [ -e "$dev" ] || continue
  nic="${{dev##*/}}"
  ip link set "$nic" up
  # Three quick tries, then on in the background every 2 s (a DHCP server may learn this
  # NIC's MAC a moment after the machine starts).
  udhcpc -i "$nic" -s /etc/novacron/udhcpc.script -q -b -t 3 -T 1 -A 2 >/dev/null 2>&1
  ip -4 addr show "$nic" | grep -q inet || echo "novacron: no DHCP lease on $nic yet; still asking in the background"
done
echo {marker}
(
  for f in /etc/novacron/init.d/*; do
    [ -f "$f" ] && [ -x "$f" ] && "$f"
  done
) </dev/null >/dev/console 2>&1 &
"#,
        marker = GUEST_READY_MARKER
    )
}

const POWER_BUTTON: &str = "#!/bin/sh
echo 'novacron: ACPI power button, powering off' > /dev/console
sync
poweroff -f
";

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
  deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$mtu" ]; then
      ip link set "$interface" mtu "$mtu"
    fi
    if [ -n "$router" ]; then
      ip route replace default via "${router%% *}" dev "$interface"
    fi
    if [ -n "$dns" ]; then
      : > /etc/resolv.conf
      for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    fi
    ;;
esac
exit 0
"#;

const PROFILE: &str = "export PATH=/sbin:/usr/sbin:/bin:/usr/bin\nexport PS1='tiny# '\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_every_library_and_the_loader() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibglib-2.0.so.0 => /lib/x86_64-linux-gnu/libglib-2.0.so.0 (0x7f1)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f2)\n";
        assert_eq!(
            ldd_paths(out).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libglib-2.0.so.0",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        let missing = ldd_paths("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(missing.contains("libfoo.so.1"), "{missing}");
    }

    #[test]
    fn resolves_dependencies_first() {
        let dep = "\
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/misc/pvpanic/pvpanic-mmio.ko: kernel/drivers/misc/pvpanic/pvpanic.ko
kernel/drivers/misc/pvpanic/pvpanic.ko:
";
        let order = resolve_modules_from(
            dep,
            "kernel/drivers/acpi/button.ko\n",
            &["virtio_net", "button", "pvpanic-mmio"],
        )
        .unwrap();
        let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
        let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(pos("failover") < pos("net_failover"));
        assert!(pos("net_failover") < pos("virtio_net"));
        assert!(pos("virtio_ring") < pos("virtio"));
        assert!(pos("virtio") < pos("virtio_net"));
        assert!(pos("pvpanic") < pos("pvpanic_mmio"));
        assert!(
            !names.contains(&"button"),
            "built-in modules are not loaded"
        );
        assert_eq!(names.len(), 7);
        let missing = resolve_modules_from(dep, "", &["nope"])
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope"), "{missing}");
    }

    #[test]
    fn resolves_on_this_host() {
        let Ok(kernel) = newest_kernel(Path::new(BOOT_DIR)) else {
            println!("no kernel in /boot; skipping");
            return;
        };
        let release = kernel
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .strip_prefix("vmlinuz-")
            .unwrap()
            .to_string();
        let order = resolve_modules(&Path::new(MODULES_ROOT).join(release), TINY_MODULES).unwrap();
        let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&"virtio_pci") || names.is_empty(),
            "{names:?}"
        );
    }

    #[test]
    fn static_elf_check() {
        let busybox = std::fs::read(DEFAULT_BUSYBOX).unwrap();
        check_static_elf(&busybox).unwrap();
        let dynamic = std::fs::read("/bin/ls").unwrap();
        assert!(
            check_static_elf(&dynamic)
                .unwrap_err()
                .contains("dynamically linked")
        );
        assert!(check_static_elf(b"#!/bin/sh\n").is_err());
        assert!(check_static_elf(&busybox[..70]).is_err());
    }

    #[test]
    fn version_ordering() {
        assert!(version_key("6.1.0-56-cloud-amd64") > version_key("6.1.0-9-cloud-amd64"));
        assert!(version_key("6.10.0-1-amd64") > version_key("6.9.12-1-amd64"));
        assert_eq!(
            module_name("kernel/drivers/misc/pvpanic/pvpanic-mmio.ko"),
            "pvpanic_mmio"
        );
        assert_eq!(module_name("kernel/x/y.ko.xz"), "y");
    }
}
