//! Derives the QEMU command line from a [`VmSpec`]; pure, so every choice here is unit-tested.

use std::os::fd::RawFd;
use std::path::Path;

use crate::{Accel, Boot, DiskFormat, NicSpec, RunDir, VmSpec};

/// QEMU's seccomp sandbox (see [`build_command_line`]).
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// Escapes a value for QEMU's `key=value,key=value` option syntax (a comma is written twice).
pub fn escape_opt(value: &str) -> String {
    value.replace(',', ",,")
}

fn path_opt(path: &Path) -> String {
    escape_opt(&path.to_string_lossy())
}

/// The arguments after the QEMU binary for `spec`, with all runtime files in `run_dir`; `taps` holds one open tap
/// descriptor per bridged NIC, in NIC order (see [`crate::tap`]).
///
/// Fixed choices, and why:
/// - `-nodefaults -no-user-config -display none`: no surprise devices or host config; no display (serial console only).
/// - `-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny`: QEMU's seccomp filter; a
///   compromised QEMU cannot fork or exec, change its ids or its scheduling. Nothing QEMU does for us needs those:
///   taps come in as descriptors, migration and NBD use sockets.
/// - Bridged NICs as `-netdev tap,fd=N` on a tap the agent made and attached (no qemu-bridge-helper, which a
///   sandboxed QEMU could not run). A bridged NIC without a descriptor in `taps` falls back to `-netdev bridge`;
///   [`crate::launch`] always passes one.
/// - QMP on a unix socket server (`wait=off`), serial console on a unix socket server with QEMU's own `logfile`
///   (append): the log and the attachable console keep working without the agent.
/// - `-action panic=shutdown` with an ISA `pvpanic` device: a guest kernel panic (with the pvpanic driver) ends QEMU
///   with a GUEST_PANICKED event instead of hanging; reboots stay resets, so `system_reset` keeps the VM.
/// - Disks as `-blockdev` nodes `disk{i}` (format) over `disk{i}-file` (protocol) on virtio-blk-pci: stable node
///   names for NBD export and block mirroring during migration.
/// - The cloud-init seed as a read-only virtio disk, not a CD-ROM: cloud-init finds NoCloud by the label "cidata"
///   on any block device, and Debian's cloud kernel (linux-image-cloud-amd64) has no AHCI driver, so a q35 CD-ROM
///   would be invisible to it.
/// - A virtio RNG fed from /dev/urandom, so guests generating keys at first boot do not stall.
/// - A virtio-serial port `org.qemu.guest_agent.0` on the unix socket `qga.sock`: what a guest's
///   qemu-guest-agent opens (`vm exec`, addresses); a guest without one never looks at it.
/// - With [`VmSpec::uefi`], OVMF as two flash devices (`-machine pflash0=,pflash1=`) over
///   block nodes: the shared code read-only, the VM's variable store writable (see
///   [`crate::firmware`]).
/// - With [`VmSpec::tpm`], a `tpm-crb` device on the VM's swtpm socket (see [`crate::tpm`]).
/// - With [`VmSpec::cdrom`], the ISO as an `ide-cd` on the machine's built-in controller (`ide.0`: AHCI on q35),
///   which every installer and BIOS reads (virtio-scsi would need drivers Windows installers lack); it boots after
///   the disks, so a blank disk falls through to it and an installed one boots itself.
/// - With [`VmSpec::vnc`], a standard VGA card (which every installer and BIOS can draw on), a USB tablet (an
///   absolute pointer, so the guest's cursor follows the viewer's) and
///   QEMU's VNC server on the unix socket `vnc.sock`, never on a TCP port: the agent relays it to
///   callers the control plane let in. `-display none` stays: it only means no local window.
pub fn build_command_line(spec: &VmSpec, run_dir: &RunDir, taps: &[RawFd]) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));

    push(&[
        "-name",
        &format!("guest={},debug-threads=on", escape_opt(&spec.name)),
    ]);
    push(&["-uuid", &spec.uuid]);
    let (firmware_machine, firmware_args) = match &spec.uefi {
        Some(uefi) => crate::firmware::args(uefi),
        None => (String::new(), Vec::new()),
    };
    push(&[
        "-machine",
        &format!("{}{firmware_machine}", spec.machine_type()),
    ]);
    push(&["-accel", &spec.accel.to_string()]);
    match (&spec.cpu_model, spec.accel) {
        (Some(model), _) => push(&["-cpu", model]),
        (None, Accel::Kvm) => push(&["-cpu", "host"]),
        (None, Accel::Tcg) => {}
    }
    push(&["-smp", &spec.cpus.to_string()]);
    let memory = if spec.memory_bytes.is_multiple_of(1 << 20) {
        format!("{}M", spec.memory_bytes >> 20)
    } else {
        format!("{}B", spec.memory_bytes)
    };
    push(&["-m", &memory]);
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    push(&["-sandbox", SANDBOX]);
    push(&["-msg", "timestamp=on"]);
    push(&["-action", "reboot=reset,shutdown=poweroff,panic=shutdown"]);

    push(&[
        "-chardev",
        &format!(
            "socket,id=qmp,path={},server=on,wait=off",
            path_opt(&run_dir.qmp_socket())
        ),
    ]);
    push(&["-mon", "chardev=qmp,mode=control"]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=console,path={},server=on,wait=off,logfile={},logappend=on",
            path_opt(&run_dir.console_socket()),
            path_opt(&run_dir.console_log())
        ),
    ]);
    push(&["-serial", "chardev:console"]);
    push(&["-pidfile", &run_dir.pidfile().to_string_lossy()]);

    push(&firmware_args.iter().map(String::as_str).collect::<Vec<_>>());
    if spec.tpm.is_some() {
        push(
            &crate::tpm::args(run_dir)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
    }
    push(&["-device", "pvpanic"]);
    push(&["-object", "rng-random,id=rng0,filename=/dev/urandom"]);
    push(&["-device", "virtio-rng-pci,rng=rng0"]);

    if let Boot::Kernel {
        kernel,
        initrd,
        cmdline,
    } = &spec.boot
    {
        push(&["-kernel", &kernel.to_string_lossy()]);
        if let Some(initrd) = initrd {
            push(&["-initrd", &initrd.to_string_lossy()]);
        }
        push(&["-append", cmdline]);
    }

    for (i, disk) in spec.disks.iter().enumerate() {
        let read_only = if disk.read_only { "on" } else { "off" };
        let discard = if disk.read_only { "" } else { ",discard=unmap" };
        let drop_cache = if spec.shared_storage {
            ""
        } else {
            ",drop-cache=off"
        };
        push(&[
            "-blockdev",
            &format!(
                "driver=file,node-name=disk{i}-file,filename={},read-only={read_only}{discard}{drop_cache}",
                path_opt(&disk.path)
            ),
        ]);
        let driver = match disk.format {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        };
        let backing = backing_options(&disk.backing, spec.shared_storage);
        push(&[
            "-blockdev",
            &format!(
                "driver={driver},node-name=disk{i},file=disk{i}-file,read-only={read_only}{discard}{backing}"
            ),
        ]);
        let boot = if matches!(spec.boot, Boot::Disk) {
            format!(",bootindex={i}")
        } else {
            String::new()
        };
        push(&[
            "-device",
            &format!("virtio-blk-pci,drive=disk{i},id=virtio-disk{i}{boot}"),
        ]);
    }

    if let Some(iso) = &spec.cdrom {
        push(&[
            "-blockdev",
            &format!(
                "driver=file,node-name=cdrom0-file,filename={},read-only=on",
                path_opt(iso)
            ),
        ]);
        push(&[
            "-blockdev",
            "driver=raw,node-name=cdrom0,file=cdrom0-file,read-only=on",
        ]);
        let boot = if matches!(spec.boot, Boot::Disk) {
            format!(",bootindex={}", spec.disks.len())
        } else {
            String::new()
        };
        // On the controller built into the machine: no PCI device, so no address moves.
        push(&[
            "-device",
            &format!("ide-cd,bus=ide.0,drive=cdrom0,id=cdrom0{boot}"),
        ]);
    }

    if let Some(seed) = &spec.seed_iso {
        push(&[
            "-blockdev",
            &format!(
                "driver=file,node-name=seed-file,filename={},read-only=on",
                path_opt(seed)
            ),
        ]);
        push(&[
            "-blockdev",
            "driver=raw,node-name=seed,file=seed-file,read-only=on",
        ]);
        push(&["-device", "virtio-blk-pci,drive=seed,id=seed-disk"]);
    }

    let mut bridged = 0;
    for (i, nic) in spec.nics.iter().enumerate() {
        match nic {
            NicSpec::User { forwards } => {
                let mut netdev = format!("user,id=net{i}");
                for f in forwards {
                    netdev.push_str(&format!(
                        ",hostfwd=tcp:127.0.0.1:{}-:{}",
                        f.host_port, f.guest_port
                    ));
                }
                push(&["-netdev", &netdev]);
                push(&[
                    "-device",
                    &format!("virtio-net-pci,netdev=net{i},id=nic{i}"),
                ]);
            }
            NicSpec::Bridge { bridge, mac } => {
                let netdev = bridged_netdev(&format!("net{i}"), bridge, taps, &mut bridged);
                push(&["-netdev", &netdev]);
                push(&[
                    "-device",
                    &format!("virtio-net-pci,netdev=net{i},id=nic{i},mac={mac}"),
                ]);
            }
        }
    }

    // Last of the devices: added after the others, it leaves their PCI addresses as they were
    // before the port existed.
    push(&[
        "-chardev",
        &format!(
            "socket,id=qga,path={},server=on,wait=off",
            path_opt(&run_dir.guest_agent_socket())
        ),
    ]);
    push(&["-device", "virtio-serial-pci,id=serial0"]);
    push(&[
        "-device",
        &format!(
            "virtserialport,bus=serial0.0,chardev=qga,name={}",
            crate::qga::GUEST_AGENT_PORT
        ),
    ]);

    // After the agent's port, for the same reason: a VM given a graphical console keeps the
    // addresses its other devices had.
    if spec.vnc {
        push(&["-device", "VGA,id=video0"]);
        // An absolute pointer: a viewer's mouse lands where it points (a PS/2 mouse is
        // relative, and drifts from the viewer's cursor).
        push(&["-device", "qemu-xhci,id=usb0"]);
        push(&["-device", "usb-tablet,id=tablet0,bus=usb0.0"]);
        push(&["-vnc", &format!("unix:{}", path_opt(&run_dir.vnc_socket()))]);
    }

    // Last: spare root ports for hot-plug, then the disks hot-plug put into them. A port
    // takes the next free slot of the root bus, and what sits behind it takes none.
    if spec.is_q35() {
        for port in 0..spec.hotplug_ports {
            let id = crate::spec::hotplug_port_id(port);
            push(&[
                "-device",
                &format!("pcie-root-port,id={id},chassis={},port={port}", port + 1),
            ]);
        }
    }
    for disk in &spec.plugged_disks {
        let [file, format] = crate::hotplug::blockdev_options(disk, spec.shared_storage);
        push(&["-blockdev", &blockdev_arg(&file)]);
        push(&["-blockdev", &blockdev_arg(&format)]);
        push(&[
            "-device",
            &format!(
                "virtio-blk-pci,drive={},id={},bus={}",
                disk.node,
                disk.device_id(),
                disk.bus()
            ),
        ]);
    }
    for nic in &spec.plugged_nics {
        let netdev = match &nic.bridge {
            None => format!("user,id={}", nic.netdev_id()),
            Some(bridge) => bridged_netdev(&nic.netdev_id(), bridge, taps, &mut bridged),
        };
        push(&["-netdev", &netdev]);
        push(&[
            "-device",
            &format!(
                "virtio-net-pci,netdev={},id={},mac={},bus={}",
                nic.netdev_id(),
                nic.device_id(),
                nic.mac,
                nic.bus()
            ),
        ]);
    }

    if spec.start_paused {
        push(&["-S"]);
    }
    if let Some(incoming) = &spec.incoming {
        push(&["-incoming", incoming]);
    }
    args.extend(spec.extra_args.iter().cloned());
    args
}

/// The `-netdev` of the next bridged NIC (`bridged` counts those rendered so far): the tap
/// the agent opened for it, or QEMU's own bridge helper when no descriptor was given.
fn bridged_netdev(id: &str, bridge: &str, taps: &[RawFd], bridged: &mut usize) -> String {
    let netdev = match taps.get(*bridged) {
        Some(fd) => format!("tap,id={id},fd={fd}"),
        None => format!("bridge,id={id},br={}", escape_opt(bridge)),
    };
    *bridged += 1;
    netdev
}

/// A disk's backing chain as options of its format node, each file under the one before
/// (`backing.`, `backing.backing.`, ...), read-only, each file node with `drop-cache=off`
/// unless the storage is shared (see [`VmSpec::shared_storage`]). The last file's own
/// backing, if its header names one, QEMU opens as before.
fn backing_options(chain: &[crate::spec::BackingFile], shared_storage: bool) -> String {
    let mut options = String::new();
    let mut at = String::new();
    for b in chain {
        at.push_str("backing.");
        options.push_str(&format!(
            ",{at}driver={},{at}read-only=on,{at}file.driver=file,{at}file.filename={},{at}file.read-only=on",
            b.format.as_str(),
            path_opt(&b.path),
        ));
        if !shared_storage {
            options.push_str(&format!(",{at}file.drop-cache=off"));
        }
    }
    options
}

/// A `blockdev-add` argument object as a `-blockdev` option string (flat keys; strings
/// escaped, booleans as on/off).
fn blockdev_arg(options: &serde_json::Value) -> String {
    let Some(map) = options.as_object() else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={}", escape_opt(s)),
            serde_json::Value::Bool(b) => format!("{k}={}", if *b { "on" } else { "off" }),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DiskSpec, PortForward};
    use std::path::PathBuf;

    fn base() -> VmSpec {
        VmSpec {
            name: "web,1".into(),
            uuid: "6f0c1f1e-8a8e-4f0e-9c55-2d2b8f3f0a01".into(),
            cpus: 2,
            memory_bytes: 128 << 20,
            accel: Accel::Tcg,
            boot: Boot::Kernel {
                kernel: "/k/vmlinuz".into(),
                initrd: Some("/k/initrd".into()),
                cmdline: "console=ttyS0 quiet".into(),
            },
            ..Default::default()
        }
    }

    /// The value following the n-th occurrence of `flag`.
    fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn basics() {
        let rd = RunDir::new("/run/nc/vm1");
        let args = build_command_line(&base(), &rd, &[]);
        assert_eq!(values(&args, "-name"), ["guest=web,,1,debug-threads=on"]);
        assert_eq!(values(&args, "-machine"), ["q35"]);
        assert_eq!(values(&args, "-accel"), ["tcg"]);
        assert!(
            values(&args, "-cpu").is_empty(),
            "TCG keeps QEMU's default CPU"
        );
        assert_eq!(values(&args, "-smp"), ["2"]);
        assert_eq!(values(&args, "-m"), ["128M"]);
        assert!(args.contains(&"-nodefaults".to_string()));
        assert_eq!(values(&args, "-display"), ["none"]);
        assert_eq!(
            values(&args, "-chardev"),
            [
                "socket,id=qmp,path=/run/nc/vm1/qmp.sock,server=on,wait=off",
                "socket,id=console,path=/run/nc/vm1/console.sock,server=on,wait=off,logfile=/run/nc/vm1/console.log,logappend=on",
                "socket,id=qga,path=/run/nc/vm1/qga.sock,server=on,wait=off"
            ]
        );
        assert_eq!(values(&args, "-mon"), ["chardev=qmp,mode=control"]);
        assert_eq!(values(&args, "-serial"), ["chardev:console"]);
        assert_eq!(values(&args, "-pidfile"), ["/run/nc/vm1/qemu.pid"]);
        assert_eq!(values(&args, "-kernel"), ["/k/vmlinuz"]);
        assert_eq!(values(&args, "-initrd"), ["/k/initrd"]);
        assert_eq!(values(&args, "-append"), ["console=ttyS0 quiet"]);
        assert!(!args.contains(&"-S".to_string()));
        assert!(values(&args, "-incoming").is_empty());
    }

    #[test]
    fn uefi_puts_both_flash_images_on_the_machine() {
        let rd = RunDir::new("/run/nc/vm1");
        let bios = build_command_line(&base(), &rd, &[]);
        assert_eq!(values(&bios, "-machine"), ["q35"]);
        assert!(!bios.iter().any(|a| a.contains("fw-vars")));

        let spec = VmSpec {
            uefi: Some(crate::firmware::Uefi {
                code: PathBuf::from("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"),
                vars: PathBuf::from("/v/efivars.fd"),
                secure_boot: true,
            }),
            ..base()
        };
        let args = build_command_line(&spec, &rd, &[]);
        assert_eq!(
            values(&args, "-machine"),
            ["q35,pflash0=fw-code,pflash1=fw-vars,smm=on"]
        );
        let blockdevs = values(&args, "-blockdev");
        assert!(
            blockdevs
                .contains(&"driver=file,node-name=fw-vars,filename=/v/efivars.fd,read-only=off")
        );
        assert_eq!(
            values(&args, "-global"),
            ["driver=cfi.pflash01,property=secure,value=on"]
        );
        // Direct kernel boot stays: OVMF loads the kernel itself.
        assert_eq!(values(&args, "-kernel"), ["/k/vmlinuz"]);
    }

    #[test]
    fn hot_plug_ports_come_last_and_plugged_disks_sit_in_theirs() {
        let rd = RunDir::new("/run/nc/vm1");
        let plain = build_command_line(&base(), &rd, &[]);
        assert!(!plain.iter().any(|a| a.starts_with("pcie-root-port")));

        let spec = VmSpec {
            hotplug_ports: 2,
            plugged_disks: vec![crate::PluggedDisk {
                node: "disk3".into(),
                path: PathBuf::from("/v/d,3.qcow2"),
                format: DiskFormat::Qcow2,
                port: 1,
            }],
            vnc: true,
            ..base()
        };
        let args = build_command_line(&spec, &rd, &[]);
        let devices = values(&args, "-device");
        let n = devices.len();
        assert_eq!(
            devices[n - 3..],
            [
                "pcie-root-port,id=hp0,chassis=1,port=0",
                "pcie-root-port,id=hp1,chassis=2,port=1",
                "virtio-blk-pci,drive=disk3,id=virtio-disk3,bus=hp1",
            ],
            "after every other device, the screen's included"
        );
        let blockdevs = values(&args, "-blockdev");
        assert!(blockdevs.contains(
            &"discard=unmap,driver=file,drop-cache=off,filename=/v/d,,3.qcow2,node-name=disk3-file,read-only=off"
        ));
        assert!(
            blockdevs.contains(
                &"discard=unmap,driver=qcow2,file=disk3-file,node-name=disk3,read-only=off"
            )
        );

        // A pc machine has no PCIe root ports (and the spec refuses to ask for them).
        let pc = VmSpec {
            machine: Some("pc".into()),
            hotplug_ports: 2,
            ..base()
        };
        let args = build_command_line(&pc, &rd, &[]);
        assert!(!args.iter().any(|a| a.starts_with("pcie-root-port")));
    }

    #[test]
    fn plugged_nics_sit_in_their_ports_with_taps_after_the_other_nics() {
        let rd = RunDir::new("/run/nc/vm1");
        let spec = VmSpec {
            hotplug_ports: 4,
            nics: vec![NicSpec::Bridge {
                bridge: "br0".into(),
                mac: "52:54:00:00:00:01".into(),
            }],
            plugged_nics: vec![
                crate::PluggedNic {
                    port: 2,
                    mac: "02:00:00:00:00:02".into(),
                    bridge: None,
                },
                crate::PluggedNic {
                    port: 0,
                    mac: "02:00:00:00:00:03".into(),
                    bridge: Some("ncbr1000".into()),
                },
            ],
            ..base()
        };
        // One tap for the created NIC, then one for the plugged bridged NIC, in that order.
        let args = build_command_line(&spec, &rd, &[7, 9]);
        let netdevs = values(&args, "-netdev");
        assert_eq!(
            netdevs,
            ["tap,id=net0,fd=7", "user,id=hpnet2", "tap,id=hpnet0,fd=9"]
        );
        let devices = values(&args, "-device");
        let n = devices.len();
        assert_eq!(
            devices[n - 2..],
            [
                "virtio-net-pci,netdev=hpnet2,id=hpnic2,mac=02:00:00:00:00:02,bus=hp2",
                "virtio-net-pci,netdev=hpnet0,id=hpnic0,mac=02:00:00:00:00:03,bus=hp0",
            ]
        );
    }

    #[test]
    fn vnc_adds_a_card_and_a_unix_socket_after_every_other_device() {
        let rd = RunDir::new("/run/nc/v,m");
        let plain = build_command_line(&base(), &rd, &[]);
        assert!(values(&plain, "-vnc").is_empty());
        assert!(!plain.iter().any(|a| a.starts_with("VGA")));

        let args = build_command_line(
            &VmSpec {
                vnc: true,
                ..base()
            },
            &rd,
            &[],
        );
        assert_eq!(values(&args, "-vnc"), ["unix:/run/nc/v,,m/vnc.sock"]);
        assert_eq!(values(&args, "-display"), ["none"], "no local window");
        let devices = values(&args, "-device");
        assert_eq!(
            devices[devices.len() - 3..],
            [
                "VGA,id=video0",
                "qemu-xhci,id=usb0",
                "usb-tablet,id=tablet0,bus=usb0.0"
            ]
        );
        assert_eq!(
            devices[..devices.len() - 3],
            values(&plain, "-device")[..],
            "the other devices keep their order, so their PCI addresses"
        );
    }

    #[test]
    fn an_iso_is_a_cd_rom_booted_after_the_disks_on_the_built_in_controller() {
        let rd = RunDir::new("/r");
        let disk = DiskSpec {
            path: PathBuf::from("/r/disk0.qcow2"),
            format: DiskFormat::Qcow2,
            read_only: false,
            backing: Vec::new(),
        };
        let plain = VmSpec {
            boot: Boot::Disk,
            disks: vec![disk],
            ..base()
        };
        let args = build_command_line(
            &VmSpec {
                cdrom: Some("/images/in,st.iso".into()),
                ..plain.clone()
            },
            &rd,
            &[],
        );
        let blockdevs = values(&args, "-blockdev");
        assert!(
            blockdevs.contains(
                &"driver=file,node-name=cdrom0-file,filename=/images/in,,st.iso,read-only=on"
            ),
            "{blockdevs:?}"
        );
        assert!(blockdevs.contains(&"driver=raw,node-name=cdrom0,file=cdrom0-file,read-only=on"));
        let devices = values(&args, "-device");
        assert!(devices.contains(&"virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=0"));
        assert!(devices.contains(&"ide-cd,bus=ide.0,drive=cdrom0,id=cdrom0,bootindex=1"));
        let pci = |a: &[&str]| -> Vec<String> {
            a.iter()
                .filter(|d| !d.starts_with("ide-cd"))
                .map(|d| d.to_string())
                .collect()
        };
        assert_eq!(
            pci(&devices),
            pci(&values(&build_command_line(&plain, &rd, &[]), "-device"))
        );
    }

    #[test]
    fn kvm_uses_host_cpu_unless_told() {
        let rd = RunDir::new("/r");
        let mut s = VmSpec {
            accel: Accel::Kvm,
            ..base()
        };
        assert_eq!(values(&build_command_line(&s, &rd, &[]), "-cpu"), ["host"]);
        assert_eq!(values(&build_command_line(&s, &rd, &[]), "-accel"), ["kvm"]);
        s.cpu_model = Some("Skylake-Server".into());
        assert_eq!(
            values(&build_command_line(&s, &rd, &[]), "-cpu"),
            ["Skylake-Server"]
        );
    }

    #[test]
    fn disks_seed_nics_and_incoming() {
        let rd = RunDir::new("/r");
        let s = VmSpec {
            boot: Boot::Disk,
            machine: Some("pc-q35-7.2".into()),
            disks: vec![
                DiskSpec {
                    path: PathBuf::from("/img/a,b.qcow2"),
                    format: DiskFormat::Qcow2,
                    read_only: false,
                    backing: vec![
                        crate::BackingFile {
                            path: PathBuf::from("/img/mid,1.qcow2"),
                            format: DiskFormat::Qcow2,
                        },
                        crate::BackingFile {
                            path: PathBuf::from("/img/base.raw"),
                            format: DiskFormat::Raw,
                        },
                    ],
                },
                DiskSpec {
                    path: PathBuf::from("/img/data.raw"),
                    format: DiskFormat::Raw,
                    read_only: true,
                    backing: Vec::new(),
                },
            ],
            seed_iso: Some("/r/seed.iso".into()),
            nics: vec![
                NicSpec::User {
                    forwards: vec![
                        PortForward {
                            host_port: 2222,
                            guest_port: 22,
                        },
                        PortForward {
                            host_port: 8080,
                            guest_port: 80,
                        },
                    ],
                },
                NicSpec::Bridge {
                    bridge: "br0".into(),
                    mac: "52:54:00:aa:bb:cc".into(),
                },
            ],
            incoming: Some("defer".into()),
            start_paused: true,
            extra_args: vec!["-trace".into(), "migration_*".into()],
            ..base()
        };
        let args = build_command_line(&s, &rd, &[]);
        assert_eq!(values(&args, "-machine"), ["pc-q35-7.2"]);
        assert_eq!(
            values(&args, "-blockdev"),
            [
                "driver=file,node-name=disk0-file,filename=/img/a,,b.qcow2,read-only=off,discard=unmap,drop-cache=off",
                "driver=qcow2,node-name=disk0,file=disk0-file,read-only=off,discard=unmap,\
                 backing.driver=qcow2,backing.read-only=on,backing.file.driver=file,\
                 backing.file.filename=/img/mid,,1.qcow2,backing.file.read-only=on,\
                 backing.file.drop-cache=off,\
                 backing.backing.driver=raw,backing.backing.read-only=on,\
                 backing.backing.file.driver=file,backing.backing.file.filename=/img/base.raw,\
                 backing.backing.file.read-only=on,backing.backing.file.drop-cache=off",
                "driver=file,node-name=disk1-file,filename=/img/data.raw,read-only=on,drop-cache=off",
                "driver=raw,node-name=disk1,file=disk1-file,read-only=on",
                "driver=file,node-name=seed-file,filename=/r/seed.iso,read-only=on",
                "driver=raw,node-name=seed,file=seed-file,read-only=on",
            ]
        );
        // A shared pool's files keep QEMU's default: their page cache is dropped at takeover.
        let shared = build_command_line(
            &VmSpec {
                shared_storage: true,
                ..s.clone()
            },
            &rd,
            &[],
        );
        assert!(
            values(&shared, "-blockdev")
                .iter()
                .all(|b| !b.contains("drop-cache")),
            "{shared:?}"
        );
        let devices = values(&args, "-device");
        assert!(devices.contains(&"virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=0"));
        assert!(devices.contains(&"virtio-blk-pci,drive=disk1,id=virtio-disk1,bootindex=1"));
        assert!(devices.contains(&"virtio-blk-pci,drive=seed,id=seed-disk"));
        assert!(devices.contains(&"virtio-net-pci,netdev=net0,id=nic0"));
        assert!(devices.contains(&"virtio-net-pci,netdev=net1,id=nic1,mac=52:54:00:aa:bb:cc"));
        assert_eq!(
            values(&args, "-netdev"),
            [
                "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:8080-:80",
                "bridge,id=net1,br=br0"
            ]
        );
        // With the agent's tap descriptor the bridged NIC is a plain tap: no bridge helper to spawn.
        let with_tap = build_command_line(&s, &rd, &[7]);
        assert_eq!(values(&with_tap, "-netdev")[1], "tap,id=net1,fd=7");
        assert_eq!(values(&with_tap, "-sandbox"), [SANDBOX]);
        assert!(values(&args, "-kernel").is_empty());
        assert_eq!(values(&args, "-incoming"), ["defer"]);
        assert!(args.contains(&"-S".to_string()));
        assert_eq!(&args[args.len() - 2..], ["-trace", "migration_*"]);
    }
}
