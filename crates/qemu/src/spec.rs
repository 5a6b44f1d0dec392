//! What a VM is (its spec, from which the QEMU command line is derived) and where its runtime files live (its run directory).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Accel, DiskFormat, QemuError};

/// Machine type used when the spec names none: see [`VmSpec::machine`].
pub const DEFAULT_MACHINE: &str = "q35";

/// Longest path a unix socket can be bound at (sun_path is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Everything needed to start one VM. Serialised to the run directory at launch, so a restarted agent can check what runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VmSpec {
    /// Human name; shown by QEMU (process title, `query-name`).
    pub name: String,
    /// SMBIOS UUID of the machine, e.g. "6f0c1f1e-8a8e-4f0e-9c55-2d2b8f3f0a01".
    pub uuid: String,
    pub cpus: u32,
    /// Guest RAM; a whole number of 4 KiB pages (the agent gives TCG guests 8 KiB more than asked, see novacron-migrate compat).
    pub memory_bytes: u64,
    pub accel: Accel,
    /// QEMU machine type; `None` means [`DEFAULT_MACHINE`] ("q35"). Under TCG q35 and "pc" boot the tiny guest
    /// equally fast (tests/boot_time.rs, 5 runs each on a shared 2-core machine: median 6.5 s vs 6.2 s with
    /// overlapping spreads of 5.9-7.6 s and 5.7-7.0 s; about 2.6 s on an idle machine), so q35 wins on what it
    /// offers: PCIe, and what current cloud images expect. Pin a versioned type (e.g. "pc-q35-7.2") when migrating
    /// between different QEMU versions.
    pub machine: Option<String>,
    /// QEMU CPU model; `None` means "host" under KVM and QEMU's default (qemu64) under TCG.
    pub cpu_model: Option<String>,
    pub boot: Boot,
    /// Virtio block disks, attached in order as block nodes `disk0`, `disk1`, ... (names used for NBD export and mirroring).
    pub disks: Vec<DiskSpec>,
    /// Virtio NICs, netdevs `net0`, `net1`, ...
    pub nics: Vec<NicSpec>,
    /// cloud-init NoCloud seed, attached read-only as a virtio disk after `disks` (see [`crate::build_command_line`]).
    pub seed_iso: Option<PathBuf>,
    /// `-incoming` value, e.g. "defer" for a live-migration destination. Such a VM starts paused in state "inmigrate".
    pub incoming: Option<String>,
    /// Start with vCPUs stopped (`-S`); resume with [`crate::Qmp::cont`].
    pub start_paused: bool,
    /// Appended verbatim after everything else.
    pub extra_args: Vec<String>,
    /// The unprivileged user QEMU runs as (see [`crate::user`]); `None` keeps the caller's user.
    pub run_as: Option<crate::user::RunAs>,
    /// A graphics card and a VNC server on the unix socket `vnc.sock` in the run directory
    /// (see [`RunDir::vnc_socket`]): the graphical console, reached only through the agent.
    pub vnc: bool,
    /// An ISO 9660 medium as a read-only CD-ROM on the machine's own AHCI (q35) or IDE (pc)
    /// controller, booted after the disks (an installer: the blank disk falls through to it).
    pub cdrom: Option<PathBuf>,
    /// Spare PCIe root ports `hp0`, `hp1`, ... (q35 only) that disks are hot-plugged into
    /// while the VM runs: see [`crate::hotplug`]. Placed after every other device.
    pub hotplug_ports: u32,
    /// Disks on those ports, each in its own port (`bus=hp<port>`): the disks `vm disk add`
    /// attached, rendered where hot-plug put them, so a restart or a live migration's
    /// destination builds the same machine.
    pub plugged_disks: Vec<PluggedDisk>,
    /// NICs on those ports, each in its own port: the NICs `vm nic add` attached (see
    /// [`crate::hotplug::attach_nic`]).
    pub plugged_nics: Vec<PluggedNic>,
    /// UEFI through OVMF with the VM's own variable store; `None` is SeaBIOS (QEMU's default).
    /// Direct kernel boot works under either: OVMF loads the kernel as an EFI program.
    pub uefi: Option<crate::firmware::Uefi>,
    /// A TPM 2.0: a swtpm process started with QEMU, its state in the VM's own directory
    /// (see [`crate::tpm`]).
    pub tpm: Option<crate::tpm::Tpm>,
    /// The disks' files live on storage other hosts write too (a shared pool). Only then
    /// does QEMU drop a disk file's page cache when it takes the disk over (the `cont` of an
    /// incoming migration), so that it reads what the other host wrote. A host-local file
    /// has no such writer: the incoming VM's own NBD server wrote its data through this
    /// host's page cache, and dropping it cost the pause its write-back and the guest its
    /// cached reads (see docs/migration.md).
    pub shared_storage: bool,
}

impl Default for VmSpec {
    fn default() -> Self {
        VmSpec {
            name: String::new(),
            uuid: String::new(),
            cpus: 1,
            memory_bytes: 256 << 20,
            accel: Accel::Tcg,
            machine: None,
            cpu_model: None,
            boot: Boot::Disk,
            disks: Vec::new(),
            nics: Vec::new(),
            seed_iso: None,
            incoming: None,
            start_paused: false,
            extra_args: Vec::new(),
            run_as: None,
            vnc: false,
            cdrom: None,
            hotplug_ports: 0,
            plugged_disks: Vec::new(),
            plugged_nics: Vec::new(),
            uefi: None,
            tpm: None,
            shared_storage: false,
        }
    }
}

/// How the guest starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Boot {
    /// Direct kernel boot (`-kernel`, `-initrd`, `-append`).
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: String,
    },
    /// Firmware boots the first disk.
    Disk,
}

/// One virtio block disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSpec {
    pub path: PathBuf,
    pub format: DiskFormat,
    pub read_only: bool,
    /// The files under it, nearest first, as its header names them (read with
    /// [`crate::img::backing_chain`] just before the launch): given, they are opened
    /// read-only with the page cache kept at takeover, as the disk's own file is (see
    /// [`VmSpec::shared_storage`]). Empty: QEMU opens what the header names with its
    /// defaults.
    #[serde(default)]
    pub backing: Vec<BackingFile>,
}

/// One file of a disk's backing chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackingFile {
    pub path: PathBuf,
    pub format: DiskFormat,
}

/// A virtio block disk in a hot-plug port: block nodes `<node>` (format) over
/// `<node>-file`, device `virtio-<node>` on bus `hp<port>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluggedDisk {
    /// Block node name, e.g. "disk1": the same on every node the VM runs on (NBD export and
    /// mirroring during migration use it).
    pub node: String,
    pub path: PathBuf,
    pub format: DiskFormat,
    /// Which of the spare root ports (`hp<port>`) holds it.
    pub port: u32,
}

impl PluggedDisk {
    /// The device's id (`virtio-disk1`).
    pub fn device_id(&self) -> String {
        format!("virtio-{}", self.node)
    }

    /// The root port's id (`hp0`).
    pub fn bus(&self) -> String {
        hotplug_port_id(self.port)
    }
}

/// A virtio NIC in a hot-plug port: netdev `hpnet<port>`, device `hpnic<port>` on bus
/// `hp<port>`, the same on every node the VM runs on (a migration's destination builds it
/// on its command line, the source may have plugged it live).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluggedNic {
    pub port: u32,
    pub mac: String,
    /// A tap on this host bridge; `None` is QEMU's user-mode NAT.
    pub bridge: Option<String>,
}

impl PluggedNic {
    /// The netdev's id (`hpnet1`).
    pub fn netdev_id(&self) -> String {
        format!("hpnet{}", self.port)
    }

    /// The device's id (`hpnic1`).
    pub fn device_id(&self) -> String {
        format!("hpnic{}", self.port)
    }

    /// The root port's id (`hp1`).
    pub fn bus(&self) -> String {
        hotplug_port_id(self.port)
    }
}

/// The id of spare root port `port`.
pub fn hotplug_port_id(port: u32) -> String {
    format!("hp{port}")
}

/// A host port forwarded to a guest port (TCP, user-mode networking). The host side binds 127.0.0.1 only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForward {
    pub host_port: u16,
    pub guest_port: u16,
}

/// One virtio NIC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NicSpec {
    /// QEMU user-mode networking (slirp): guest 10.0.2.15/24, DHCP, outbound NAT; inbound only through `forwards`.
    User { forwards: Vec<PortForward> },
    /// A tap the agent creates and attaches to a host Linux bridge (see [`crate::tap`]).
    Bridge { bridge: String, mac: String },
}

impl VmSpec {
    /// The machine type actually used.
    pub fn machine_type(&self) -> &str {
        self.machine.as_deref().unwrap_or(DEFAULT_MACHINE)
    }

    /// A q35 machine ("q35", "pc-q35-7.2", ...): PCIe, so root ports for hot-plug.
    pub fn is_q35(&self) -> bool {
        let m = self.machine_type();
        m == "q35" || m.starts_with("pc-q35-")
    }

    /// Checks what can be checked before starting QEMU, so mistakes come back as one clear sentence.
    pub fn validate(&self, run_dir: &RunDir) -> Result<(), QemuError> {
        let bad = |msg: String| Err(QemuError::InvalidSpec(msg));
        if self.name.trim().is_empty() {
            return bad("name is empty".into());
        }
        if self.name.chars().any(char::is_control) {
            return bad(format!("name {:?} contains control characters", self.name));
        }
        if !is_uuid(&self.uuid) {
            return bad(format!(
                "uuid {:?} is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex)",
                self.uuid
            ));
        }
        if let Some(who) = &self.run_as {
            who.validate()?;
        }
        if self.cpus == 0 || self.cpus > 255 {
            return bad(format!("cpus must be 1..=255, got {}", self.cpus));
        }
        if self.memory_bytes < (16 << 20) || !self.memory_bytes.is_multiple_of(4 << 10) {
            return bad(format!(
                "memory_bytes must be a whole number of 4 KiB pages and at least 16 MiB, got {}",
                self.memory_bytes
            ));
        }
        let machine = self.machine_type();
        if machine.is_empty() || machine.contains(',') || machine.chars().any(char::is_whitespace) {
            return bad(format!(
                "machine type {machine:?} is not a plain QEMU machine name"
            ));
        }
        if let Some(cpu) = &self.cpu_model
            && (cpu.is_empty() || cpu.chars().any(char::is_whitespace))
        {
            return bad(format!("cpu model {cpu:?} is not a QEMU CPU model"));
        }
        if let Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        } = &self.boot
        {
            must_exist(kernel, "kernel")?;
            if let Some(initrd) = initrd {
                must_exist(initrd, "initrd")?;
            }
            if cmdline.contains('\n') {
                return bad("kernel cmdline contains a newline".into());
            }
        }
        if matches!(self.boot, Boot::Disk) && self.disks.is_empty() && self.seed_iso.is_none() {
            return bad("boot from disk needs at least one disk".into());
        }
        for disk in &self.disks {
            must_exist(&disk.path, "disk")?;
        }
        if let Some(seed) = &self.seed_iso {
            must_exist(seed, "seed ISO")?;
        }
        if let Some(uefi) = &self.uefi {
            must_exist(&uefi.code, "UEFI firmware")?;
            must_exist(&uefi.vars, "UEFI variable store")?;
            if uefi.secure_boot && !self.is_q35() {
                return bad(format!(
                    "Secure Boot needs a q35 machine (SMM), not {}",
                    self.machine_type()
                ));
            }
        }
        if let Some(tpm) = &self.tpm
            && !tpm.state_dir.is_dir()
        {
            return bad(format!(
                "TPM state directory {} does not exist",
                tpm.state_dir.display()
            ));
        }
        if self.hotplug_ports > 0 && !self.is_q35() {
            return bad(format!(
                "hot-plug ports need a q35 machine, not {}",
                self.machine_type()
            ));
        }
        let mut ports = std::collections::BTreeSet::new();
        for d in &self.plugged_disks {
            if !is_plugged_node(&d.node) {
                return bad(format!(
                    "plugged disk node {:?} is not disk<N> with N >= 1",
                    d.node
                ));
            }
            if d.port >= self.hotplug_ports || !ports.insert(d.port) {
                return bad(format!(
                    "plugged disk {} is in port {}: not a free one of the {} hot-plug ports",
                    d.node, d.port, self.hotplug_ports
                ));
            }
            must_exist(&d.path, "disk")?;
        }
        for n in &self.plugged_nics {
            if n.port >= self.hotplug_ports || !ports.insert(n.port) {
                return bad(format!(
                    "plugged NIC {} is in port {}: not a free one of the {} hot-plug ports",
                    n.mac, n.port, self.hotplug_ports
                ));
            }
            if !is_mac(&n.mac) {
                return bad(format!("plugged NIC: mac {:?} is not a MAC address", n.mac));
            }
            if let Some(bridge) = &n.bridge
                && !is_interface_name(bridge)
            {
                return bad(format!(
                    "plugged NIC {}: {bridge:?} is not a Linux interface name",
                    n.mac
                ));
            }
        }
        for (i, nic) in self.nics.iter().enumerate() {
            match nic {
                NicSpec::User { forwards } => {
                    for f in forwards {
                        if f.host_port == 0 || f.guest_port == 0 {
                            return bad(format!("nic {i}: port 0 cannot be forwarded"));
                        }
                    }
                }
                NicSpec::Bridge { bridge, mac } => {
                    if !is_interface_name(bridge) {
                        return bad(format!("nic {i}: {bridge:?} is not a Linux interface name"));
                    }
                    if !is_mac(mac) {
                        return bad(format!(
                            "nic {i}: mac {mac:?} is not of the form 52:54:00:xx:xx:xx"
                        ));
                    }
                }
            }
        }
        if let Some(incoming) = &self.incoming
            && (incoming.is_empty() || incoming.chars().any(char::is_whitespace))
        {
            return bad(format!(
                "incoming {incoming:?} is not a QEMU -incoming value"
            ));
        }
        for socket in [run_dir.qmp_socket(), run_dir.console_socket()] {
            if socket.as_os_str().len() > MAX_SOCKET_PATH_BYTES {
                return bad(format!(
                    "socket path {} is longer than {MAX_SOCKET_PATH_BYTES} bytes: use a shorter run directory",
                    socket.display()
                ));
            }
        }
        Ok(())
    }
}

fn must_exist(path: &Path, what: &str) -> Result<(), QemuError> {
    if path.is_file() || path.exists() && !path.is_dir() {
        Ok(())
    } else {
        Err(QemuError::InvalidSpec(format!(
            "{what} {} does not exist",
            path.display()
        )))
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The directory holding one VM's runtime files. Nothing in it depends on the agent being alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    pub fn new(dir: impl Into<PathBuf>) -> RunDir {
        RunDir { dir: dir.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// QMP control socket (QEMU listens).
    pub fn qmp_socket(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }

    /// Serial console socket (QEMU listens; connect to type into ttyS0 and read its output).
    pub fn console_socket(&self) -> PathBuf {
        self.dir.join("console.sock")
    }

    /// Everything the guest wrote to its serial console, appended by QEMU itself.
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    /// The guest agent's channel (QEMU listens; the virtio-serial port
    /// `org.qemu.guest_agent.0` in the guest, see [`crate::qga`]).
    pub fn guest_agent_socket(&self) -> PathBuf {
        self.dir.join("qga.sock")
    }

    /// The VNC server of a VM with a graphical console (QEMU listens; RFB, no password: only
    /// the agent can open it).
    pub fn vnc_socket(&self) -> PathBuf {
        self.dir.join("vnc.sock")
    }

    /// The socket the VM's swtpm listens on, which QEMU's TPM connects to (see [`crate::tpm`]).
    pub fn tpm_socket(&self) -> PathBuf {
        self.dir.join("swtpm.sock")
    }

    /// swtpm's output.
    pub fn tpm_log(&self) -> PathBuf {
        self.dir.join("swtpm.log")
    }

    /// swtpm's pid, written by swtpm (`--pid`).
    pub fn tpm_pidfile(&self) -> PathBuf {
        self.dir.join("swtpm.pid")
    }

    /// QEMU's pid, written by QEMU (`-pidfile`).
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }

    /// QEMU's stdout and stderr.
    pub fn qemu_log(&self) -> PathBuf {
        self.dir.join("qemu.log")
    }

    /// The spec QEMU was launched with (JSON).
    pub fn spec_file(&self) -> PathBuf {
        self.dir.join("spec.json")
    }

    /// Creates the directory (and parents) with mode 0700: the sockets give full control of the VM.
    pub fn create(&self) -> Result<(), QemuError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| {
                QemuError::io(format!("creating run directory {}", self.dir.display()), e)
            })?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| QemuError::io(format!("setting mode of {}", self.dir.display()), e))
    }

    /// Reads the spec saved at launch, if any.
    pub fn read_spec(&self) -> Result<Option<VmSpec>, QemuError> {
        let path = self.spec_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                QemuError::InvalidSpec(format!("{} is not a VM spec: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(QemuError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// The last `max_lines` lines of QEMU's log (empty when there is none).
    pub fn qemu_log_tail(&self, max_lines: usize) -> String {
        tail_lines(&self.qemu_log(), 0, max_lines)
    }
}

/// The last `max_lines` non-empty lines of `path` from byte `from` on (reads at most the last 64 KiB).
pub(crate) fn tail_lines(path: &Path, from: u64, max_lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(64 << 10));
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

/// `disk1`, `disk2`, ...: the node names plugged disks take (`disk0` is the boot disk).
pub fn is_plugged_node(node: &str) -> bool {
    node.strip_prefix("disk")
        .filter(|n| !n.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()))
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> VmSpec {
        let kernel = dir.join("vmlinuz");
        std::fs::write(&kernel, b"k").unwrap();
        VmSpec {
            name: "vm1".into(),
            uuid: "6f0c1f1e-8a8e-4f0e-9c55-2d2b8f3f0a01".into(),
            cpus: 1,
            memory_bytes: 128 << 20,
            boot: Boot::Kernel {
                kernel,
                initrd: None,
                cmdline: "console=ttyS0".into(),
            },
            ..Default::default()
        }
    }

    fn plugged(node: &str, port: u32) -> PluggedDisk {
        PluggedDisk {
            node: node.into(),
            path: "/dev/null".into(),
            format: DiskFormat::Qcow2,
            port,
        }
    }

    #[test]
    fn plugged_node_names() {
        for ok in ["disk1", "disk12"] {
            assert!(is_plugged_node(ok), "{ok}");
        }
        for bad in ["disk0", "disk", "disk01", "disk1a", "seed", "disk-1"] {
            assert!(!is_plugged_node(bad), "{bad}");
        }
    }

    #[test]
    fn validates() {
        let dir = tempfile::tempdir().unwrap();
        let rd = RunDir::new(dir.path());
        let ok = spec(dir.path());
        ok.validate(&rd).unwrap();

        let cases: Vec<(VmSpec, &str)> = vec![
            (
                VmSpec {
                    uuid: "nope".into(),
                    ..ok.clone()
                },
                "uuid",
            ),
            (
                VmSpec {
                    cpus: 0,
                    ..ok.clone()
                },
                "cpus",
            ),
            (
                VmSpec {
                    memory_bytes: (128 << 20) + 1,
                    ..ok.clone()
                },
                "MiB",
            ),
            (
                VmSpec {
                    name: " ".into(),
                    ..ok.clone()
                },
                "name",
            ),
            (
                VmSpec {
                    disks: vec![DiskSpec {
                        path: dir.path().join("missing.qcow2"),
                        format: DiskFormat::Qcow2,
                        read_only: false,
                        backing: Vec::new(),
                    }],
                    ..ok.clone()
                },
                "missing.qcow2 does not exist",
            ),
            (
                VmSpec {
                    nics: vec![NicSpec::Bridge {
                        bridge: "br0".into(),
                        mac: "zz".into(),
                    }],
                    ..ok.clone()
                },
                "mac",
            ),
            (
                VmSpec {
                    boot: Boot::Disk,
                    ..ok.clone()
                },
                "at least one disk",
            ),
            (
                VmSpec {
                    machine: Some("pc".into()),
                    hotplug_ports: 1,
                    ..ok.clone()
                },
                "need a q35 machine",
            ),
            (
                VmSpec {
                    hotplug_ports: 1,
                    plugged_disks: vec![plugged("disk1", 1)],
                    ..ok.clone()
                },
                "in port 1: not a free one of the 1",
            ),
            (
                VmSpec {
                    hotplug_ports: 2,
                    plugged_disks: vec![plugged("disk1", 0), plugged("disk2", 0)],
                    ..ok.clone()
                },
                "disk2 is in port 0",
            ),
            (
                VmSpec {
                    hotplug_ports: 1,
                    plugged_disks: vec![plugged("disk0", 0)],
                    ..ok.clone()
                },
                "not disk<N> with N >= 1",
            ),
        ];
        for (s, needle) in cases {
            let err = s.validate(&rd).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
        let long = RunDir::new(dir.path().join("x".repeat(120)));
        assert!(
            ok.validate(&long)
                .unwrap_err()
                .to_string()
                .contains("shorter run directory")
        );
    }

    #[test]
    fn spec_round_trips_through_json() {
        let dir = tempfile::tempdir().unwrap();
        let s = VmSpec {
            nics: vec![NicSpec::User {
                forwards: vec![PortForward {
                    host_port: 2222,
                    guest_port: 22,
                }],
            }],
            incoming: Some("defer".into()),
            ..spec(dir.path())
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<VmSpec>(&json).unwrap(), s);
    }

    #[test]
    fn tail_takes_last_lines_after_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "old\nline1\n\nline2\nline3\n").unwrap();
        assert_eq!(tail_lines(&p, 0, 2), "line2\nline3");
        assert_eq!(tail_lines(&p, 4, 10), "line1\nline2\nline3");
        assert_eq!(tail_lines(&dir.path().join("none"), 0, 3), "");
    }
}
