//! End-to-end tests of day-2 VM operations (issue 15) with real TCG guests, through the real
//! CLI against a real `novacron up`: growing a running VM's disk (the guest sees the new
//! size) and a stopped one's, with the refusals (a shrink names the current size; the
//! project's disk quota counts the new size); a template image and a clone made from a
//! stopped VM's disk, each booting with what the disk held, the clone independent of it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, MARK_SECTOR, tpm_cmd};

const BOOT: Duration = Duration::from_secs(120);
const MARKER: &str = "NOVACRON-GUEST-READY";
const GIB: u64 = 1 << 30;

/// What the guest's kernel says the size of /dev/vda is, in 512-byte sectors.
fn guest_sectors(c: &Cluster, vm: &str) -> u64 {
    c.console_eval(vm, "cat /sys/block/vda/size")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Waits until the guest sees /dev/vda as `bytes` large.
fn wait_guest_disk(c: &Cluster, vm: &str, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = guest_sectors(c, vm) * 512;
        if seen == bytes {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the guest of {vm} sees a disk of {seen} bytes, not {bytes}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The one file under the cluster's data directory whose path ends with `tail`.
fn data_file(c: &Cluster, tail: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = walk_files(&c.data_dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(tail))
        .collect();
    assert_eq!(found.len(), 1, "files ending with {tail}: {found:?}");
    found.remove(0)
}

/// The file of `vm`'s disk under the cluster's data directory.
fn disk_file(c: &Cluster, vm: &str) -> PathBuf {
    data_file(c, &format!("/{vm}/disk0.qcow2"))
}

/// `qemu-img info` of a disk file, as JSON.
fn qemu_img_info(path: &Path) -> serde_json::Value {
    let out = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_disk_grows_under_a_running_guest_and_never_shrinks() {
    let c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    c.ok(&[
        "vm", "create", "web1", "--image", "tiny", "--memory", "128M", "--accel", "tcg", "--disk",
        "1G",
    ]);
    c.wait_console("web1", MARKER, 1, BOOT);
    assert_eq!(guest_sectors(&c, "web1") * 512, GIB);

    // Live: QEMU grows the disk and the running guest's kernel sees the new capacity.
    let out = c.json(&["vm", "disk", "resize", "web1", "disk0", "--size", "2G"]);
    assert_eq!(out["size_bytes"], 2 * GIB, "{out}");
    assert_eq!(out["operation"]["kind"], "vm.disk.resize", "{out}");
    assert_eq!(out["operation"]["state"], "succeeded", "{out}");
    let message = out["operation"]["message"].as_str().unwrap();
    assert!(
        message.contains("grown from 1G to 2G while the VM runs"),
        "{message}"
    );
    wait_guest_disk(&c, "web1", 2 * GIB);
    assert_eq!(c.vm("web1")["disk_bytes"], 2 * GIB);
    assert_eq!(
        c.console("web1").matches(MARKER).count(),
        1,
        "no reboot was needed"
    );

    // A shrink (or no change) is refused with the current size, and changes nothing.
    let err = c.fails(&["vm", "disk", "resize", "web1", "disk", "--size", "1G"]);
    assert!(
        err.contains("disk0 of VM web1 is 2G") && err.contains("only grow"),
        "{err}"
    );
    let err = c.fails(&["vm", "disk", "resize", "web1", "disk0", "--size", "2G"]);
    assert!(err.contains("is 2G already"), "{err}");
    let err = c.fails(&["vm", "disk", "resize", "web1", "disk7", "--size", "3G"]);
    assert!(err.contains("its disks are disk0"), "{err}");
    let err = c.fails(&["vm", "disk", "resize", "web1", "disk0", "--size", "1000"]);
    assert!(err.contains("512-byte sectors"), "{err}");
    assert_eq!(c.vm("web1")["disk_bytes"], 2 * GIB);
    assert_eq!(guest_sectors(&c, "web1") * 512, 2 * GIB);

    // The project's disk quota counts the new size: over the limit, nothing is touched.
    c.ok(&["project", "set", "default", "--max-disk", "3G"]);
    let err = c.fails(&["vm", "disk", "resize", "web1", "disk0", "--size", "4G"]);
    assert!(err.contains("max-disk"), "{err}");
    let file = disk_file(&c, "web1");
    assert_eq!(qemu_img_info(&file)["virtual-size"], 2 * GIB);
    c.ok(&["project", "set", "default", "--max-disk", "100G"]);

    // Stopped: qemu-img grows the file; the record follows only after success.
    c.ok(&["vm", "stop", "web1", "--force"]);
    let out = c.json(&["vm", "disk", "resize", "web1", "disk0", "--size", "3G"]);
    assert_eq!(out["size_bytes"], 3 * GIB, "{out}");
    assert_eq!(qemu_img_info(&file)["virtual-size"], 3 * GIB);
    let usage = c.json(&["project", "usage", "default"]);
    assert_eq!(usage["usage"]["disk_bytes"], 3 * GIB, "{usage}");
    let ops = c.json(&["operation", "list"]);
    let resizes = ops
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "vm.disk.resize")
        .count();
    assert_eq!(resizes, 2, "one operation per resize that started: {ops}");
}

fn write_mark(c: &Cluster, vm: &str, mark: &str) {
    assert_eq!(mark.len(), 9);
    c.write_disk_mark(vm, mark, "");
}

fn read_mark(c: &Cluster, vm: &str) -> String {
    c.read_disk_mark(vm, 9)
}

/// The 9 bytes at [`MARK_SECTOR`] of a qcow2 file no QEMU has open, read with qemu-img.
fn read_mark_offline(c: &Cluster, disk: &Path) -> String {
    let out_file = c.dir.path().join("mark.raw");
    let _ = std::fs::remove_file(&out_file);
    let out = Command::new("qemu-img")
        .args(["dd", "-f", "qcow2", "-O", "raw", "bs=512"])
        .arg(format!("skip={MARK_SECTOR}"))
        .arg(format!("count={}", MARK_SECTOR + 1))
        .arg(format!("if={}", disk.display()))
        .arg(format!("of={}", out_file.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&out_file).unwrap();
    String::from_utf8_lossy(&bytes[..9]).into_owned()
}

#[test]
fn a_template_and_a_clone_start_from_a_stopped_vms_disk() {
    let c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    c.ok(&[
        "vm", "create", "web1", "--image", "tiny", "--memory", "128M", "--accel", "tcg", "--disk",
        "1G", "--label", "role=web",
    ]);
    c.wait_console("web1", MARKER, 1, BOOT);
    write_mark(&c, "web1", "golden-01");

    // Only a stopped VM's disk is copied.
    let err = c.fails(&["vm", "template", "web1", "--as", "golden"]);
    assert!(
        err.contains("VM web1 is running") && err.contains("novacron vm stop web1"),
        "{err}"
    );
    let err = c.fails(&["vm", "clone", "web1", "web3"]);
    assert!(err.contains("VM web1 is running"), "{err}");
    // A clean power-off: QEMU flushes its qcow2 caches before it exits.
    c.ok(&["vm", "stop", "web1"]);

    // The template: a standalone image; the VM is kept as it was.
    let t = c.json(&["vm", "template", "web1", "--as", "golden"]);
    assert_eq!(t["image"]["name"], "golden", "{t}");
    assert_eq!(t["image"]["virtual_size_bytes"], GIB, "{t}");
    assert_eq!(t["vm_kept"], true, "{t}");
    assert_eq!(t["operation"]["kind"], "vm.template", "{t}");
    assert_eq!(c.vm("web1")["state"], "stopped");
    let image_disk = data_file(&c, "/images/default/golden/disk");
    let info = qemu_img_info(&image_disk);
    assert_eq!(info["format"], "qcow2", "{info}");
    assert!(info.get("backing-filename").is_none(), "standalone: {info}");
    assert_eq!(read_mark_offline(&c, &image_disk), "golden-01");
    let err = c.fails(&["vm", "template", "web1", "--as", "golden"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        c.json(&["image", "list"]).as_array().unwrap().len(),
        2,
        "nothing half-made"
    );

    // A VM made from the template boots with what the disk held.
    c.ok(&[
        "vm", "create", "web2", "--image", "golden", "--memory", "128M", "--accel", "tcg",
    ]);
    assert_eq!(c.vm("web2")["disk_bytes"], GIB);
    c.wait_console("web2", MARKER, 1, BOOT);
    assert_eq!(read_mark(&c, "web2"), "golden-01");
    c.ok(&["vm", "stop", "web2", "--force"]);

    // The clone: same settings, new identity, its own copy of the disk.
    let bad = c.fails(&["vm", "clone", "web1", "web2"]);
    assert!(bad.contains("already exists"), "{bad}");
    let bad = c.fails(&["vm", "clone", "web1", "web3", "--node", "node-z"]);
    assert!(bad.contains("is made on node node-a"), "{bad}");
    let t0 = Instant::now();
    let clone = c.json(&["vm", "clone", "web1", "web3"]);
    println!(
        "BENCH full clone of a stopped VM, 1 GiB disk (a few MiB used), CLI round trip: {:?}",
        t0.elapsed()
    );
    let web1 = c.vm("web1");
    assert_eq!(clone["name"], "web3", "{clone}");
    assert_eq!(clone["state"], "stopped", "{clone}");
    assert_ne!(clone["uuid"], web1["uuid"]);
    assert_eq!(clone["labels"]["role"], "web");
    assert_eq!(clone["image"], "tiny");
    assert_eq!(clone["memory_bytes"], web1["memory_bytes"]);
    assert_eq!(clone["disk_bytes"], GIB);
    let clone_disk = disk_file(&c, "web3");
    assert!(
        qemu_img_info(&clone_disk).get("backing-filename").is_none(),
        "a full clone stands alone"
    );
    c.ok(&["vm", "start", "web3"]);
    c.wait_console("web3", MARKER, 1, BOOT);
    assert_eq!(read_mark(&c, "web3"), "golden-01");
    // Independent: what the clone writes is not in the source's disk.
    write_mark(&c, "web3", "clone-002");
    assert_eq!(read_mark(&c, "web3"), "clone-002");
    assert_eq!(read_mark_offline(&c, &disk_file(&c, "web1")), "golden-01");
    c.ok(&["vm", "stop", "web3", "--force"]);

    // Linked: the source's disk is frozen as a base both share; nothing is copied.
    let t0 = Instant::now();
    let linked = c.json(&["vm", "clone", "web1", "web4", "--linked"]);
    let took = t0.elapsed();
    println!("BENCH linked clone of a stopped VM, 1 GiB disk, CLI round trip: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(linked["state"], "stopped", "{linked}");
    let base = data_file(
        &c,
        &format!(
            "/bases/default/web1-{}.qcow2",
            linked["uuid"].as_str().unwrap()
        ),
    );
    let backing = |vm: &str| {
        qemu_img_info(&disk_file(&c, vm))["full-backing-filename"]
            .as_str()
            .map(PathBuf::from)
    };
    let canonical = base.canonicalize().unwrap();
    assert_eq!(
        backing("web4"),
        Some(canonical.clone()),
        "the clone's overlay"
    );
    assert_eq!(backing("web1"), Some(canonical), "the source's new overlay");
    assert_eq!(read_mark_offline(&c, &base), "golden-01");
    c.ok(&["vm", "start", "web4"]);
    c.wait_console("web4", MARKER, 1, BOOT);
    assert_eq!(read_mark(&c, "web4"), "golden-01");
    write_mark(&c, "web4", "linked-03");
    assert_eq!(read_mark_offline(&c, &disk_file(&c, "web1")), "golden-01");
    assert_eq!(
        read_mark_offline(&c, &base),
        "golden-01",
        "the base stays frozen"
    );
    // A live migration would copy only the overlay, without the base: refused, for both.
    for vm in ["web4", "web1"] {
        let err = c.fails(&["vm", "migrate", vm, "--to", "node-b"]);
        assert!(err.contains("linked disk"), "{err}");
    }
    assert!(
        c.json(&["migration", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// `vm console --vnc`: a VM created with `--vnc` shows its screen to a VNC viewer through the
/// CLI's local relay and the API (the node opens no port), to one viewer after another; a
/// VM without it, and `--tail` with `--vnc`, are refused with what to do instead.
#[test]
fn vnc_console_shows_the_screen_through_the_api() {
    let c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    c.ok(&[
        "vm", "create", "web1", "--image", "tiny", "--memory", "128M", "--accel", "tcg", "--vnc",
    ]);
    c.ok(&[
        "vm",
        "create",
        "plain",
        "--image",
        "tiny",
        "--memory",
        "128M",
        "--accel",
        "tcg",
        "--no-start",
    ]);
    assert_eq!(c.vm("web1")["vnc"], true);
    assert_eq!(c.vm("plain")["vnc"], false);
    assert!(c.ok(&["vm", "show", "web1"]).contains("serial, vnc"));
    c.wait_console("web1", MARKER, 1, BOOT);

    let (mut relay, addr) = c.vnc_relay("web1");
    for _ in 0..2 {
        let screen = common::rfb_viewer(&addr);
        assert_eq!(screen.name, "QEMU (web1)", "{screen:?}");
        assert!(screen.width >= 640 && screen.height >= 400, "{screen:?}");
    }
    // The node listens on no TCP port for it: QEMU's server is a unix socket.
    let qemu = c.vm("web1")["pid"].as_u64().unwrap();
    let cmdline = std::fs::read(format!("/proc/{qemu}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("-vnc unix:"), "{cmdline}");
    assert!(common::stop_child(&mut relay, Duration::from_secs(5)));

    let err = c.fails(&["vm", "console", "plain", "--vnc"]);
    assert!(
        err.contains("created without --vnc") && err.contains("vm console plain"),
        "{err}"
    );
    let err = c.fails(&["vm", "console", "web1", "--vnc", "--tail"]);
    assert!(err.contains("--tail"), "{err}");
    let err = c.fails(&["vm", "console", "web1", "--listen", "127.0.0.1:0"]);
    assert!(err.contains("not provided: --vnc"), "{err}");
}

/// An installer VM: `vm create --iso` with a blank disk boots the ISO's El Torito program
/// through the BIOS once the blank disk proves unbootable (as an OS installer CD would),
/// shows the medium in `vm show`, keeps the image from deletion, live-migrates to a node
/// that builds the same drive from its own copy of the image, and a restore of its backup
/// is the same shape (ISO, screen). Bad requests change nothing.
#[test]
fn an_installer_vm_boots_its_iso_and_migrates_with_it() {
    let mut c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    let iso = c.dir.path().join("installer.iso");
    common::write_boot_iso(&iso);
    c.ok(&["image", "import", "installer", iso.to_str().unwrap()]);
    let b_dir = c.start_agent("node-b");
    c.wait_nodes_ready(&["node-a", "node-b"]);

    let base = ["vm", "create", "inst1", "--memory", "96M", "--accel", "tcg"];
    let with =
        |more: &[&'static str]| -> Vec<&'static str> { base.iter().chain(more).copied().collect() };
    let err = c.fails(&with(&["--iso", "installer"]));
    assert!(err.contains("--disk SIZE"), "{err}");
    let err = c.fails(&with(&["--image", "tiny", "--iso", "tiny"]));
    assert!(err.contains("not an ISO 9660 medium"), "{err}");
    let err = c.fails(&with(&["--image", "tiny", "--iso", "nosuch"]));
    assert!(err.contains("image import nosuch"), "{err}");
    let user_data = c.dir.path().join("user-data.yaml");
    std::fs::write(&user_data, "#cloud-config\nhostname: inst1\n").unwrap();
    let mut args = with(&["--iso", "installer", "--disk", "64M", "--user-data"]);
    args.push(user_data.to_str().unwrap());
    let err = c.fails(&args);
    assert!(err.contains("installer ISO reads no cloud-init"), "{err}");
    assert!(c.json(&["vm", "list"]).as_array().unwrap().is_empty());

    c.ok(&with(&[
        "--iso",
        "installer",
        "--disk",
        "64M",
        "--vnc",
        "--node",
        "node-a",
    ]));
    c.wait_console("inst1", common::ISO_BOOTED, 1, BOOT);
    let v = c.vm("inst1");
    assert_eq!(v["iso"], "installer", "{v}");
    assert_eq!(v["disk_bytes"], 64u64 << 20, "{v}");
    assert!(c.ok(&["vm", "show", "inst1"]).contains("installer"));
    let err = c.fails(&["image", "delete", "installer"]);
    assert!(err.contains("inst1"), "{err}");

    let m = c.json(&["vm", "migrate", "inst1", "--to", "node-b"]);
    assert_eq!(m["state"], "succeeded", "{m}");
    let v = c.wait_state("inst1", "running", Duration::from_secs(30));
    assert_eq!(v["node"], "node-b", "{v}");
    let pids = common::qemu_pids_under(&b_dir);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("ide-cd,bus=ide.0,drive=cdrom0"),
        "node-b's QEMU has no CD-ROM"
    );

    // A backup restored as a new VM keeps the shape: the drive with its ISO, the screen.
    backup_and_restore(&c, "inst1", "inst2");
    c.wait_console("inst2", common::ISO_BOOTED, 1, BOOT);
    let v = c.vm("inst2");
    assert_eq!(
        (v["iso"].as_str(), v["vnc"].as_bool()),
        (Some("installer"), Some(true)),
        "{v}"
    );
    let (mut relay, addr) = c.vnc_relay("inst2");
    assert_eq!(common::rfb_viewer(&addr).name, "QEMU (inst2)");
    assert!(common::stop_child(&mut relay, Duration::from_secs(5)));
}

/// `vm exec` through the tiny image's qemu-guest-agent: the command runs in the guest (what it
/// writes there, the console reads back), the CLI prints its streams apart and exits with its
/// status, `--stdin` feeds it, `-o json` answers the record; a paused or stopped VM, a
/// program the guest lacks and a bad request each say what is wrong.
#[test]
fn vm_exec_runs_a_command_in_the_guest() {
    let c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    c.ok(&[
        "vm", "create", "web1", "--image", "tiny", "--memory", "128M", "--accel", "tcg",
    ]);
    c.wait_console("web1", MARKER, 1, BOOT);
    // `novacron vm exec web1 -- <words>`
    let exec = |words: &[&'static str]| -> Vec<&'static str> {
        ["vm", "exec", "web1", "--"]
            .into_iter()
            .chain(words.iter().copied())
            .collect()
    };

    let out = c.ok(&exec(&["sh", "-c", "echo made-by-exec > /tmp/x; uname -s"]));
    assert_eq!(out, "Linux\n");
    assert_eq!(c.console_eval("web1", "cat /tmp/x"), "made-by-exec");

    let failed = c.cli(&exec(&["sh", "-c", "echo out; echo err >&2; exit 7"]));
    assert_eq!(failed.status.code(), Some(7), "{failed:?}");
    assert_eq!(failed.stdout, b"out\n");
    assert_eq!(failed.stderr, b"err\n");

    let shouted = c.ok_with_stdin(
        &["vm", "exec", "web1", "--stdin", "--", "tr", "a-z", "A-Z"],
        "shout\n",
    );
    assert_eq!(shouted, "SHOUT\n");

    // `-o json` goes before `--`: after it, it would be part of the guest's command.
    let mut json_args = exec(&["sh", "-c", "printf abc; exit 2"]);
    json_args.splice(3..3, ["-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&c.ok(&json_args)).unwrap();
    assert_eq!(json["exit_code"], 2, "{json}");
    assert_eq!(json["stdout"], "abc", "{json}");
    assert_eq!(json["encoding"], "utf8", "{json}");

    let err = c.fails(&exec(&["/no/such/program"]));
    assert!(err.contains("refused"), "{err}");
    let err = c.fails(&["vm", "exec", "web1", "--timeout", "9m", "--", "true"]);
    assert!(err.contains("--timeout"), "{err}");
    let err = c.fails(&["vm", "exec", "nosuch", "--", "true"]);
    assert!(err.contains("no VM named"), "{err}");

    c.ok(&["vm", "pause", "web1"]);
    let err = c.fails(&exec(&["true"]));
    assert!(
        err.contains("paused") && err.contains("vm resume web1"),
        "{err}"
    );
    c.ok(&["vm", "resume", "web1"]);
    assert_eq!(c.ok(&exec(&["cat", "/tmp/x"])), "made-by-exec\n");

    // The guest agent's view of the network reaches `vm show`: the address it lists is the
    // one the guest's own `ip` prints.
    let (name, ip) = c.wait_guest_address("web1");
    let inside = c.ok(&[
        "vm", "exec", "web1", "--", "ip", "-o", "-4", "addr", "show", "dev", &name,
    ]);
    assert!(
        inside.contains(&format!("inet {ip} ")),
        "{ip} not in {inside}"
    );
    assert!(
        c.ok(&["vm", "show", "web1"])
            .contains(&format!("{name}, mac"))
    );

    c.ok(&["vm", "stop", "web1", "--force"]);
    let err = c.fails(&exec(&["true"]));
    assert!(err.contains("not running"), "{err}");
    assert!(
        c.vm("web1")["guest_interfaces"].is_null(),
        "a stopped VM has no guest addresses"
    );
}

/// What the guest's kernel says the size of /dev/`dev` is, in bytes (0: no such disk).
fn guest_disk_bytes(c: &Cluster, vm: &str, dev: &str) -> u64 {
    c.console_eval(
        vm,
        &format!("cat /sys/block/{dev}/size 2>/dev/null || echo 0"),
    )
    .trim()
    .parse::<u64>()
    .unwrap_or(0)
        * 512
}

/// Waits until the guest sees /dev/`dev` as `bytes` large (0: gone).
fn wait_guest_dev(c: &Cluster, vm: &str, dev: &str, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let seen = guest_disk_bytes(c, vm, dev);
        if seen == bytes {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the guest of {vm} sees /dev/{dev} as {seen} bytes, not {bytes}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `vm disk add` plugs a blank disk into a running guest (its kernel sees a new block
/// device of that size at once), `vm show` lists it, it grows live, it live-migrates with
/// what the guest wrote on it (the destination builds the same machine, the disk mirrored),
/// and `vm disk detach --force` unplugs it from the guest and deletes it. A stopped VM gets
/// its disk at its next start. Refused, changing nothing: a bus that cannot be hot-plugged,
/// the boot disk, a running VM's detach without --force, more disks than ports, a size over
/// the project's disk quota, a revert to a snapshot taken before a disk was added, and a
/// restore over the VM from a backup that holds other disks. A backup holds every disk;
/// restored as a new VM, it has the added disk with what was written on it. A snapshot with
/// memory holds every disk: a revert undoes what the guest wrote on the added one.
#[test]
fn a_disk_is_added_to_a_running_guest_migrates_with_it_and_is_detached() {
    let mut c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    let b_dir = c.start_agent("node-b");
    c.wait_nodes_ready(&["node-a", "node-b"]);
    c.ok(&[
        "vm", "create", "web1", "--image", "tiny", "--memory", "128M", "--accel", "tcg", "--disk",
        "64M", "--node", "node-a",
    ]);
    c.wait_console("web1", MARKER, 1, BOOT);
    assert_eq!(guest_disk_bytes(&c, "web1", "vdb"), 0);

    let err = c.fails(&[
        "vm", "disk", "add", "web1", "--size", "32M", "--bus", "scsi",
    ]);
    assert!(err.contains("--bus virtio"), "{err}");
    let out = c.json(&["vm", "disk", "add", "web1", "--size", "32M"]);
    assert_eq!(out["disk"], "disk1", "{out}");
    assert_eq!(out["size_bytes"], 32u64 << 20, "{out}");
    assert_eq!(out["operation"]["state"], "succeeded", "{out}");
    let message = out["operation"]["message"].as_str().unwrap();
    assert!(
        message.contains("the running guest sees it now"),
        "{message}"
    );
    wait_guest_dev(&c, "web1", "vdb", 32 << 20);
    let v = c.vm("web1");
    assert_eq!(v["data_disks"][0]["name"], "disk1", "{v}");
    assert_eq!(v["free_disk_slots"], 3, "{v}");
    assert!(c.ok(&["vm", "show", "web1"]).contains("disk1 32M"));
    let out = c.json(&["vm", "disk", "resize", "web1", "disk1", "--size", "48M"]);
    assert_eq!(out["size_bytes"], 48u64 << 20, "{out}");
    wait_guest_dev(&c, "web1", "vdb", 48 << 20);

    // What the guest writes on the added disk, and the boot disk, moves with it.
    let out = c.console_send(
        "web1",
        "printf 'added-disk-data' | dd of=/dev/vdb bs=512 seek=9 conv=notrunc 2>/dev/null; sync; echo wrote-$((3+3))\n",
    );
    assert!(out.contains("wrote-6"), "console: {out}");
    let m = c.json(&["vm", "migrate", "web1", "--to", "node-b"]);
    assert_eq!(m["state"], "succeeded", "{m}");
    let v = c.wait_state("web1", "running", Duration::from_secs(30));
    assert_eq!(v["node"], "node-b", "{v}");
    assert!(
        common::qemu_pids_under(&b_dir).len() == 1,
        "node-b runs the VM"
    );
    assert_eq!(guest_disk_bytes(&c, "web1", "vdb"), 48 << 20);
    let read = c.console_eval(
        "web1",
        "dd if=/dev/vdb bs=512 skip=9 count=1 2>/dev/null | head -c 15",
    );
    assert_eq!(read, "added-disk-data");

    // A backup holds both disks; restored as a new VM, it has the added disk with its data.
    let (backup, op) = backup_and_restore(&c, "web1", "web2");
    assert!(
        op["message"].as_str().unwrap().contains("disk1 full read"),
        "{op}"
    );
    c.wait_console("web2", MARKER, 1, BOOT);
    assert_eq!(c.vm("web2")["data_disks"][0]["name"], "disk1");
    let read = c.console_eval(
        "web2",
        "dd if=/dev/vdb bs=512 skip=9 count=1 2>/dev/null | head -c 15",
    );
    assert_eq!(read, "added-disk-data");
    c.ok(&["vm", "delete", "web2", "--force"]);

    // Refusals, each changing nothing.
    // A snapshot with memory holds both disks: after a revert, what the guest wrote on the
    // added disk since is gone (read from the disk, not the guest's cache).
    c.ok(&["vm", "snapshot", "create", "web1", "both", "--memory"]);
    let out = c.console_send(
        "web1",
        "printf 'later-disk-data' | dd of=/dev/vdb bs=512 seek=9 conv=notrunc 2>/dev/null; sync; echo wrote-$((4+4))\n",
    );
    assert!(out.contains("wrote-8"), "console: {out}");
    c.ok(&["vm", "snapshot", "revert", "web1", "both", "--force"]);
    let read = c.console_eval(
        "web1",
        "sync; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vdb bs=512 skip=9 count=1 2>/dev/null | head -c 15",
    );
    assert_eq!(read, "added-disk-data");
    c.ok(&["vm", "snapshot", "delete", "web1", "both"]);
    let err = c.fails(&["vm", "disk", "detach", "web1", "disk1"]);
    assert!(err.contains("--force"), "{err}");
    let err = c.fails(&["vm", "disk", "detach", "web1", "disk0", "--force"]);
    assert!(err.contains("boot disk"), "{err}");
    let err = c.fails(&["vm", "disk", "detach", "web1", "disk7", "--force"]);
    assert!(err.contains("disk0, disk1"), "{err}");
    c.ok(&["project", "set", "default", "--max-disk", "200M"]);
    let err = c.fails(&["vm", "disk", "add", "web1", "--size", "100M"]);
    assert!(err.contains("max-disk"), "{err}");
    assert_eq!(c.vm("web1")["data_disks"].as_array().unwrap().len(), 1);

    // Detached from the running guest: gone from its kernel, from QEMU and from the node.
    let out = c.json(&["vm", "disk", "detach", "web1", "disk1", "--force"]);
    assert_eq!(out["operation"]["state"], "succeeded", "{out}");
    assert!(out["data_disks"].as_array().unwrap().is_empty(), "{out}");
    wait_guest_dev(&c, "web1", "vdb", 0);
    let err = c.fails(&["backup", "restore", &backup, "--over"]);
    assert!(
        err.contains("holds disks disk0, disk1 and VM web1 has disk0"),
        "{err}"
    );
    let files: Vec<_> = walk_files(&b_dir)
        .into_iter()
        .filter(|p| p.ends_with("web1/disk1.qcow2"))
        .collect();
    assert!(files.is_empty(), "{files:?}");

    // A disk made from a disk image: a copy of it, grown to --size, in the running guest.
    let raw = c.dir.path().join("seed.raw");
    let mut bytes = vec![0u8; 4 << 20];
    bytes[9 * 512..9 * 512 + 15].copy_from_slice(b"image-disk-data");
    std::fs::write(&raw, &bytes).unwrap();
    let seed = c.dir.path().join("seed.qcow2");
    let made = Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&seed)
        .status()
        .unwrap();
    assert!(made.success());
    c.ok(&["image", "import", "seed", seed.to_str().unwrap()]);
    let err = c.fails(&[
        "vm", "disk", "add", "web1", "--image", "seed", "--size", "1M",
    ]);
    assert!(err.contains("smaller than image seed (4M)"), "{err}");
    let err = c.fails(&["vm", "disk", "add", "web1", "--image", "tiny"]);
    assert!(err.contains("holds no disk"), "{err}");
    let err = c.fails(&["vm", "disk", "add", "web1"]);
    assert!(err.contains("--size"), "{err}");
    let out = c.json(&[
        "vm", "disk", "add", "web1", "--image", "seed", "--size", "8M",
    ]);
    assert_eq!(out["data_disks"][0]["image"], "seed", "{out}");
    wait_guest_dev(&c, "web1", "vdb", 8 << 20);
    let read = c.console_eval(
        "web1",
        "dd if=/dev/vdb bs=512 skip=9 count=1 2>/dev/null | head -c 15",
    );
    assert_eq!(read, "image-disk-data");
    c.ok(&["image", "delete", "seed"]);
    c.ok(&["vm", "disk", "detach", "web1", "disk1", "--force"]);
    wait_guest_dev(&c, "web1", "vdb", 0);

    // A stopped VM gets its disks at its next start; four ports, so a fifth is refused.
    c.ok(&["vm", "stop", "web1"]);
    c.wait_state("web1", "stopped", Duration::from_secs(60));
    c.ok(&["project", "set", "default", "--max-disk", "1T"]);
    // A snapshot taken before a disk was added is not reverted over it.
    c.ok(&["vm", "snapshot", "create", "web1", "before"]);
    for _ in 0..4 {
        let out = c.json(&["vm", "disk", "add", "web1", "--size", "8M"]);
        assert!(
            out["operation"]["message"]
                .as_str()
                .unwrap()
                .contains("next start"),
            "{out}"
        );
    }
    let err = c.fails(&["vm", "disk", "add", "web1", "--size", "8M"]);
    assert!(err.contains("all its 4 hot-plug ports"), "{err}");
    let err = c.fails(&["vm", "snapshot", "revert", "web1", "before"]);
    assert!(
        err.contains("taken before disk1 was added") && err.contains("vm disk detach web1 disk1"),
        "{err}"
    );
    c.ok(&["vm", "snapshot", "delete", "web1", "before"]);
    c.ok(&["vm", "disk", "detach", "web1", "disk2"]);
    let from = c.console("web1").matches(MARKER).count();
    c.ok(&["vm", "start", "web1"]);
    c.wait_console("web1", MARKER, from + 1, BOOT);
    for dev in ["vdb", "vdc", "vdd"] {
        assert_eq!(guest_disk_bytes(&c, "web1", dev), 8 << 20, "{dev}");
    }
    assert_eq!(guest_disk_bytes(&c, "web1", "vde"), 0);

    // A clone copies every disk into the same ports; a template (one image) refuses them.
    let out = c.console_send(
        "web1",
        // fsync: a flush, so QEMU writes its qcow2 metadata before the forced stop.
        "printf 'cloned-disk-data' | dd of=/dev/vdc bs=512 seek=9 conv=notrunc,fsync 2>/dev/null; echo wrote-$((5+5))\n",
    );
    assert!(out.contains("wrote-10"), "console: {out}");
    c.ok(&["vm", "stop", "web1", "--force"]);
    c.wait_state("web1", "stopped", Duration::from_secs(60));
    let err = c.fails(&["vm", "template", "web1"]);
    assert!(err.contains("added disks (disk1, disk3, disk4)"), "{err}");
    c.ok(&["vm", "clone", "web1", "web3"]);
    let v = c.vm("web3");
    let names: Vec<&str> = v["data_disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["disk1", "disk3", "disk4"], "{v}");
    c.ok(&["vm", "start", "web3"]);
    c.wait_console("web3", MARKER, 1, BOOT);
    for dev in ["vdb", "vdc", "vdd"] {
        assert_eq!(guest_disk_bytes(&c, "web3", dev), 8 << 20, "{dev}");
    }
    let read = c.console_eval(
        "web3",
        "dd if=/dev/vdc bs=512 skip=9 count=1 2>/dev/null | head -c 16",
    );
    assert_eq!(read, "cloned-disk-data");
}

/// Backs `vm` up into a new repository `r1` and restores the backup as the new VM `copy`;
/// answers the backup's id and the backup operation.
fn backup_and_restore(c: &Cluster, vm: &str, copy: &str) -> (String, serde_json::Value) {
    let repo = c.dir.path().join("backups");
    c.ok(&[
        "backup",
        "repo",
        "add",
        "r1",
        "--path",
        repo.to_str().unwrap(),
    ]);
    let backup = c.json(&["backup", "create", vm, "--repo", "r1"]);
    assert_eq!(backup["state"], "succeeded", "{backup}");
    let id = c.json(&["backup", "list", vm])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let op = c.json(&["backup", "restore", &id, "--as", copy]);
    assert_eq!(op["state"], "succeeded", "{op}");
    (id, backup)
}

/// Every file under `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found.push(p);
            }
        }
    }
    found
}

/// An EFI variable the UEFI test writes from inside the guest (vendor GUID made up for it).
const EFI_VAR: &str = "NovaCronTest-5e1f0c2a-7d4b-4c8e-9a61-3b2d0f8e6c14";

/// Mounts efivarfs in the guest (idempotent) and prints `EFI_VAR`'s data (after its 4 bytes
/// of attributes), or "none".
fn guest_efi_var(c: &Cluster, vm: &str) -> String {
    c.console_eval(
        vm,
        &format!(
            "mountpoint -q /sys/firmware/efi/efivars || mount -t efivarfs efivarfs /sys/firmware/efi/efivars; tail -c +5 /sys/firmware/efi/efivars/{EFI_VAR} 2>/dev/null || echo none"
        ),
    )
}

/// Whether `bytes` holds `needle`.
fn holds(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// A UEFI VM: the tiny guest boots under OVMF (the kernel sees EFI), a variable the guest
/// writes lands in the VM's own variable store on the node, and the store follows a live
/// migration (the destination's file holds it, and it survives a stop and start there), a
/// backup restored as a new VM, and a clone.
#[test]
fn a_uefi_guest_boots_under_ovmf_and_its_variables_follow_a_migration() {
    let mut c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    let b_dir = c.start_agent("node-b");
    c.wait_nodes_ready(&["node-a", "node-b"]);
    let base = [
        "vm", "create", "efi1", "--image", "tiny", "--memory", "256M", "--accel", "tcg",
    ];
    let with =
        |more: &[&'static str]| -> Vec<&'static str> { base.iter().chain(more).copied().collect() };
    let err = c.fails(&with(&["--secure-boot"]));
    assert!(err.contains("--firmware uefi"), "{err}");
    let err = c.fails(&with(&["--firmware", "efi"]));
    assert!(err.contains("bios or uefi"), "{err}");
    let err = c.fails(&[
        "vm",
        "create",
        "efi1",
        "--image",
        "tiny",
        "--memory",
        "128M",
        "--firmware",
        "uefi",
    ]);
    assert!(err.contains("--memory 256M or more"), "{err}");
    assert!(c.json(&["vm", "list"]).as_array().unwrap().is_empty());

    // A blank disk too: a backup needs one.
    c.ok(&with(&[
        "--firmware",
        "uefi",
        "--disk",
        "64M",
        "--node",
        "node-a",
    ]));
    c.wait_console("efi1", MARKER, 1, BOOT);
    let v = c.vm("efi1");
    assert_eq!(
        (v["firmware"].as_str(), v["secure_boot"].as_bool()),
        (Some("uefi"), Some(false)),
        "{v}"
    );
    assert_eq!(
        c.console_eval("efi1", "test -d /sys/firmware/efi && echo efi || echo bios"),
        "efi"
    );
    assert_eq!(guest_efi_var(&c, "efi1"), "none");
    let err = c.fails(&["vm", "set", "efi1", "--memory", "192M"]);
    assert!(err.contains("UEFI"), "{err}");
    // Attributes 7: non-volatile, boot service and runtime access.
    c.console_eval(
        "efi1",
        &format!(
            "printf '\\007\\000\\000\\000moved-with-the-vm' > /sys/firmware/efi/efivars/{EFI_VAR}"
        ),
    );
    assert_eq!(guest_efi_var(&c, "efi1"), "moved-with-the-vm");
    let a_store = data_file(&c, "/efi1/efivars.fd");
    assert!(
        holds(&std::fs::read(&a_store).unwrap(), b"moved-with-the-vm"),
        "the guest's variable is not in {}",
        a_store.display()
    );

    // A memory snapshot takes the flash with the rest of the machine state.
    c.ok(&["vm", "snapshot", "create", "efi1", "warm", "--memory"]);
    // A variable written after the snapshot is gone after its revert.
    let later = EFI_VAR.replace("NovaCronTest", "NovaCronLater");
    c.console_eval(
        "efi1",
        &format!("printf '\\007\\000\\000\\000later' > /sys/firmware/efi/efivars/{later}; echo"),
    );
    let read_later =
        format!("tail -c +5 /sys/firmware/efi/efivars/{later} 2>/dev/null || echo none");
    assert_eq!(c.console_eval("efi1", &read_later), "later");
    c.ok(&["vm", "snapshot", "revert", "efi1", "warm", "--force"]);
    assert_eq!(guest_efi_var(&c, "efi1"), "moved-with-the-vm");
    assert_eq!(c.console_eval("efi1", &read_later), "none");
    c.ok(&["vm", "snapshot", "delete", "efi1", "warm"]);

    let m = c.json(&["vm", "migrate", "efi1", "--to", "node-b"]);
    assert_eq!(m["state"], "succeeded", "{m}");
    let v = c.wait_state("efi1", "running", Duration::from_secs(30));
    assert_eq!(v["node"], "node-b", "{v}");
    assert_eq!(guest_efi_var(&c, "efi1"), "moved-with-the-vm");
    let b_store: Vec<PathBuf> = walk_files(&b_dir)
        .into_iter()
        .filter(|p| p.ends_with("efi1/efivars.fd"))
        .collect();
    assert_eq!(b_store.len(), 1, "{b_store:?}");
    assert!(
        holds(&std::fs::read(&b_store[0]).unwrap(), b"moved-with-the-vm"),
        "node-b's variable store lacks the guest's variable after the migration"
    );

    // A cold start on node-b reads the store from its file.
    c.ok(&["vm", "stop", "efi1", "--force"]);
    c.ok(&["vm", "start", "efi1"]);
    c.wait_console("efi1", MARKER, 1, BOOT);
    assert_eq!(c.vm("efi1")["node"], "node-b");
    assert_eq!(guest_efi_var(&c, "efi1"), "moved-with-the-vm");

    // A backup of the running VM holds the store, and a VM restored from it boots with it.
    let (_, backup) = backup_and_restore(&c, "efi1", "efi2");
    assert!(
        backup["message"].as_str().unwrap_or("").contains("efivars"),
        "{backup}"
    );
    c.wait_console("efi2", MARKER, 1, BOOT);
    assert_eq!(c.vm("efi2")["firmware"], "uefi");
    assert_eq!(guest_efi_var(&c, "efi2"), "moved-with-the-vm");

    // A clone starts from a copy of its source's store.
    c.ok(&["vm", "stop", "efi1", "--force"]);
    c.ok(&["vm", "clone", "efi1", "efi3"]);
    c.ok(&["vm", "start", "efi3"]);
    c.wait_console("efi3", MARKER, 1, BOOT);
    assert_eq!(guest_efi_var(&c, "efi3"), "moved-with-the-vm");

    // A template remembers the firmware: VMs made from it are UEFI unless told otherwise.
    let made = c.json(&["vm", "template", "efi1", "--as", "efi-image"]);
    assert_eq!(made["operation"]["state"], "succeeded", "{made}");
    assert_eq!(made["image"]["firmware"], "uefi", "{made}");
    assert!(c.ok(&["image", "list"]).contains("(uefi)"));
    let made = [
        "vm",
        "create",
        "efi4",
        "--image",
        "efi-image",
        "--memory",
        "256M",
        "--no-start",
    ];
    c.ok(&made);
    assert_eq!(c.vm("efi4")["firmware"], "uefi");
    let err = c.fails(&[
        "vm",
        "create",
        "efi5",
        "--image",
        "efi-image",
        "--memory",
        "128M",
        "--no-start",
    ]);
    assert!(err.contains("--memory 256M or more"), "{err}");
    c.ok(&[
        "vm",
        "create",
        "efi5",
        "--image",
        "efi-image",
        "--memory",
        "128M",
        "--no-start",
        "--firmware",
        "bios",
    ]);
    assert_eq!(c.vm("efi5")["firmware"], "kernel");
}

/// Sends `command` to the guest's TPM and answers the response code (8 hex digits).
fn guest_tpm(c: &Cluster, vm: &str, command: &[u8]) -> String {
    let hex = c.console_eval(vm, &tpm_cmd::exchange(command));
    assert!(hex.len() >= 20, "TPM response {hex:?}");
    hex[12..20].to_string()
}

/// PCR 16 (SHA-256) as the guest's kernel reads it.
fn guest_pcr16(c: &Cluster, vm: &str) -> String {
    c.console_eval(vm, "cat /sys/class/tpm/tpm0/pcr-sha256/16")
}

/// The swtpm processes serving VMs under `data_dir` (the test cluster's): (pid, uid).
fn swtpm_processes(data_dir: &Path) -> Vec<(u32, u32)> {
    let dir = data_dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if !cmdline.starts_with("swtpm ") || !cmdline.contains(&dir) {
                return None;
            }
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((pid, uid))
        })
        .collect()
}

/// A VM with a TPM 2.0: the guest sees a TPM 2.0 (swtpm, run as the VM's user); an NV index
/// it defines and a PCR it extends move with a live migration; the NV index survives a cold
/// start on the destination (the PCR is reset, as on real hardware), a backup restored as a
/// new VM and a clone, and migrations to and from a node sharing the disks' pool; each swtpm
/// ends with its VM.
#[test]
fn a_tpm_keeps_its_state_through_migration_restart_backup_and_clone() {
    let mut c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    let b_dir = c.start_agent("node-b");
    c.wait_nodes_ready(&["node-a", "node-b"]);
    c.ok(&[
        "vm", "create", "tpm1", "--image", "tiny", "--accel", "tcg", "--tpm", "--disk", "64M",
        "--node", "node-a",
    ]);
    c.wait_console("tpm1", MARKER, 1, BOOT);
    assert_eq!(c.vm("tpm1")["tpm"], true);
    assert!(c.ok(&["vm", "show", "tpm1"]).contains("2.0 (swtpm)"));
    assert_eq!(
        c.console_eval("tpm1", "cat /sys/class/tpm/tpm0/tpm_version_major"),
        "2"
    );
    let swtpm = swtpm_processes(c.dir.path());
    assert_eq!(swtpm.len(), 1, "{swtpm:?}");
    assert_ne!(swtpm[0].1, 0, "swtpm runs as root");

    let zeros = "0".repeat(64);
    assert_ne!(
        guest_tpm(&c, "tpm1", &tpm_cmd::nv_read_public()),
        "00000000"
    );
    assert_eq!(guest_tpm(&c, "tpm1", &tpm_cmd::nv_define()), "00000000");
    assert_eq!(
        guest_tpm(&c, "tpm1", &tpm_cmd::nv_read_public()),
        "00000000"
    );
    assert_eq!(guest_pcr16(&c, "tpm1"), zeros);
    assert_eq!(guest_tpm(&c, "tpm1", &tpm_cmd::pcr16_extend()), "00000000");
    let pcr = guest_pcr16(&c, "tpm1");
    assert_ne!(pcr, zeros);
    data_file(&c, "/tpm1/tpm/node-a/tpm2-00.permall");

    // Live migration carries the whole TPM, volatile state (the PCR) included.
    let m = c.json(&["vm", "migrate", "tpm1", "--to", "node-b"]);
    assert_eq!(m["state"], "succeeded", "{m}");
    let v = c.wait_state("tpm1", "running", Duration::from_secs(30));
    assert_eq!(v["node"], "node-b", "{v}");
    assert_eq!(guest_pcr16(&c, "tpm1"), pcr);
    assert_eq!(
        guest_tpm(&c, "tpm1", &tpm_cmd::nv_read_public()),
        "00000000"
    );
    let on_b: Vec<PathBuf> = walk_files(&b_dir)
        .into_iter()
        .filter(|p| p.ends_with("tpm1/tpm/node-b/tpm2-00.permall"))
        .collect();
    assert_eq!(on_b.len(), 1, "{on_b:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while swtpm_processes(c.dir.path()).len() != 1 {
        assert!(
            Instant::now() < deadline,
            "the source's swtpm outlived its QEMU"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A cold start on node-b: the NV index is kept, the PCR starts over.
    c.ok(&["vm", "stop", "tpm1", "--force"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !swtpm_processes(c.dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "swtpm outlived its stopped VM");
        std::thread::sleep(Duration::from_millis(200));
    }
    c.ok(&["vm", "start", "tpm1"]);
    c.wait_console("tpm1", MARKER, 1, BOOT);
    assert_eq!(c.vm("tpm1")["node"], "node-b");
    assert_eq!(
        guest_tpm(&c, "tpm1", &tpm_cmd::nv_read_public()),
        "00000000"
    );
    assert_eq!(guest_pcr16(&c, "tpm1"), zeros);

    // A backup of the running VM holds the TPM's state; a VM restored from it has the index.
    let (_, backup) = backup_and_restore(&c, "tpm1", "tpm2");
    assert!(
        backup["message"].as_str().unwrap_or("").contains("tpm"),
        "{backup}"
    );
    c.wait_console("tpm2", MARKER, 1, BOOT);
    assert_eq!(c.vm("tpm2")["tpm"], true);
    assert_eq!(
        guest_tpm(&c, "tpm2", &tpm_cmd::nv_read_public()),
        "00000000"
    );
    c.ok(&["vm", "delete", "tpm2", "--force"]);

    // A clone starts from a copy of its source's TPM.
    c.ok(&["vm", "stop", "tpm1", "--force"]);
    c.ok(&["vm", "clone", "tpm1", "tpm3"]);
    c.ok(&["vm", "start", "tpm3"]);
    c.wait_console("tpm3", MARKER, 1, BOOT);
    assert_eq!(
        guest_tpm(&c, "tpm3", &tpm_cmd::nv_read_public()),
        "00000000"
    );
    c.ok(&["vm", "delete", "tpm3", "--force"]);

    // In a storage pool both nodes' swtpm work in the same disks' directory, each in a state
    // directory of its own (swtpm locks the one it uses, and a migration runs both at once):
    // the state goes there and back, and a cold start takes the newest.
    let pool = c.dir.path().join("pool");
    std::fs::create_dir(&pool).unwrap();
    c.ok(&["storage", "add", "pool", "--path", pool.to_str().unwrap()]);
    c.ok(&[
        "vm",
        "create",
        "tpm4",
        "--image",
        "tiny",
        "--accel",
        "tcg",
        "--tpm",
        "--disk",
        "64M",
        "--storage",
        "pool",
        "--node",
        "node-a",
    ]);
    c.wait_console("tpm4", MARKER, 1, BOOT);
    assert_eq!(guest_tpm(&c, "tpm4", &tpm_cmd::nv_define()), "00000000");
    for node in ["node-b", "node-a"] {
        let m = c.json(&["vm", "migrate", "tpm4", "--to", node]);
        assert_eq!(m["state"], "succeeded", "{m}");
        let v = c.wait_state("tpm4", "running", Duration::from_secs(30));
        assert_eq!(v["node"], node, "{v}");
        assert_eq!(
            guest_tpm(&c, "tpm4", &tpm_cmd::nv_read_public()),
            "00000000"
        );
    }
    let states: Vec<PathBuf> = walk_files(&pool)
        .into_iter()
        .filter(|p| p.ends_with("tpm2-00.permall"))
        .collect();
    assert_eq!(states.len(), 2, "one state directory per node: {states:?}");
    c.ok(&["vm", "stop", "tpm4", "--force"]);
    c.ok(&["vm", "start", "tpm4"]);
    c.wait_console("tpm4", MARKER, 1, BOOT);
    assert_eq!(
        guest_tpm(&c, "tpm4", &tpm_cmd::nv_read_public()),
        "00000000"
    );
    c.ok(&["vm", "delete", "tpm4", "--force"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !swtpm_processes(c.dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "swtpm outlived its deleted VM");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Secure Boot, the way a signed OS boots: a disk whose EFI system partition holds Debian's
/// Microsoft-signed shim, Debian's signed GRUB and the host's Debian-signed kernel with the
/// tiny guest's initrd. OVMF checks shim against Microsoft's keys (the store `--secure-boot`
/// enrolls), shim checks GRUB and GRUB the kernel; the guest comes up and its firmware says
/// Secure Boot is on.
#[test]
fn a_secure_boot_guest_boots_through_the_signed_shim_grub_and_kernel() {
    let c = Cluster::start();
    let tiny = c.json(&["image", "build-tiny", "tiny"]);
    let cmdline = tiny["cmdline"]
        .as_str()
        .unwrap_or_else(|| panic!("no cmdline in {tiny}"))
        .to_string();
    let pick = |name: &str| -> PathBuf {
        walk_files(&c.data_dir)
            .into_iter()
            .find(|p| p.ends_with(name))
            .unwrap_or_else(|| panic!("the tiny image's {name}"))
    };
    let (kernel, initrd) = (pick("kernel"), pick("initrd"));
    // The whole disk one FAT file system (OVMF reads unpartitioned media too).
    let esp = c.dir.path().join("esp.raw");
    let file = std::fs::File::create(&esp).unwrap();
    file.set_len(96 << 20).unwrap();
    drop(file);
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .env("MTOOLS_SKIP_CHECK", "1")
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (scripts/deps.sh test installs it)"));
        assert!(out.status.success(), "{program} {args:?}: {out:?}");
    };
    let esp_s = esp.to_str().unwrap();
    run("mkfs.vfat", &["-n", "ESP", esp_s]);
    run("mmd", &["-i", esp_s, "::/EFI", "::/EFI/BOOT"]);
    let grub_cfg = c.dir.path().join("grub.cfg");
    std::fs::write(
        &grub_cfg,
        format!(
            "set timeout=0\nmenuentry tiny {{\n linux /vmlinuz {cmdline}\n initrd /initrd\n}}\n"
        ),
    )
    .unwrap();
    for (from, to) in [
        (
            "/usr/lib/shim/shimx64.efi.signed",
            "::/EFI/BOOT/BOOTX64.EFI",
        ),
        ("/usr/lib/shim/mmx64.efi.signed", "::/EFI/BOOT/mmx64.efi"),
        (
            "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
            "::/EFI/BOOT/grubx64.efi",
        ),
        (grub_cfg.to_str().unwrap(), "::/EFI/BOOT/grub.cfg"),
        (kernel.to_str().unwrap(), "::/vmlinuz"),
        (initrd.to_str().unwrap(), "::/initrd"),
    ] {
        run("mcopy", &["-i", esp_s, from, to]);
    }
    c.ok(&["image", "import", "signed", esp_s]);
    c.ok(&[
        "vm",
        "create",
        "sb1",
        "--image",
        "signed",
        "--memory",
        "512M",
        "--accel",
        "tcg",
        "--firmware",
        "uefi",
        "--secure-boot",
    ]);
    c.wait_console("sb1", MARKER, 1, BOOT);
    let v = c.vm("sb1");
    assert_eq!(
        (v["firmware"].as_str(), v["secure_boot"].as_bool()),
        (Some("uefi"), Some(true)),
        "{v}"
    );
    // The SecureBoot variable: 4 bytes of attributes, then 1 when it is on.
    assert_eq!(
        c.console_eval(
            "sb1",
            "mountpoint -q /sys/firmware/efi/efivars || mount -t efivarfs efivarfs /sys/firmware/efi/efivars; od -An -tx1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c | tr -d ' '"
        ),
        "0600000001"
    );
    assert!(
        c.console_eval("sb1", "dmesg | grep -c 'Secure boot enabled'") != "0",
        "the guest's kernel does not see Secure Boot"
    );
}

/// A Linux bridge on the host for one test, with address `198.18.77.1/24` and a set MAC;
/// removed on drop.
struct HostBridge(String);

impl HostBridge {
    fn create() -> HostBridge {
        let name = format!("ncnt{}", std::process::id() % 100_000);
        let run = |args: &[&str]| {
            let s = Command::new("ip").args(args).status().unwrap();
            assert!(s.success(), "ip {args:?}");
        };
        let _ = Command::new("ip").args(["link", "del", &name]).status();
        run(&["link", "add", &name, "type", "bridge"]);
        // Set, as a configured bridge's is: one whose MAC was not set takes the lowest of
        // its ports' (here the VM's taps, which come and go).
        run(&["link", "set", &name, "address", "02:4e:43:77:00:01"]);
        run(&["addr", "add", "198.18.77.1/24", "dev", &name]);
        run(&["link", "set", &name, "up"]);
        HostBridge(name)
    }

    /// The ports (taps) on the bridge now.
    fn ports(&self) -> Vec<String> {
        std::fs::read_dir(format!("/sys/class/net/{}/brif", self.0))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }
}

impl Drop for HostBridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// The guest's interface with MAC `mac` (empty: none).
fn guest_iface(c: &Cluster, vm: &str, mac: &str) -> String {
    c.console_eval(
        vm,
        &format!(
            "for i in /sys/class/net/*; do [ \"$(cat $i/address)\" = {mac} ] && basename $i; done"
        ),
    )
}

/// Waits until the guest has (`present`) or no longer has an interface with MAC `mac`;
/// answers its name.
fn wait_guest_iface(c: &Cluster, vm: &str, mac: &str, present: bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let iface = guest_iface(c, vm, mac);
        if iface.is_empty() != present {
            return iface;
        }
        assert!(
            Instant::now() < deadline,
            "the guest of {vm} {} an interface with MAC {mac}",
            if present { "has no" } else { "still has" }
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits (30 s at most) until one ping from the guest to `ip` is answered.
fn wait_guest_reaches(c: &Cluster, vm: &str, ip: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let ping = format!("ping -c 1 -W 1 {ip} >/dev/null 2>&1 && echo reached");
    while c.console_eval(vm, &ping) != "reached" {
        if Instant::now() > deadline {
            let guest = c.console_send(
                vm,
                &format!(
                    "ping -c 2 -W 2 {ip}; grep Icmp /proc/net/snmp; ip -s link; cat /proc/net/arp\n"
                ),
            );
            let host = Command::new("sh")
                .args(["-c", "grep Icmp /proc/net/snmp; ip neigh; bridge fdb show | grep -v permanent; bridge link; ip -s link show type bridge; ip -s link show type tun"])
                .output()
                .unwrap();
            panic!(
                "the guest of {vm} does not reach {ip}\nguest: {guest}\nhost: {}",
                String::from_utf8_lossy(&host.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `vm nic add` plugs a NIC into a running guest (its kernel sees a new interface with the
/// recorded MAC, and frames go through it: the guest pings the host bridge's address), `vm
/// show` lists it, it live-migrates (the destination builds the same machine, with its own
/// tap on the bridge, and the guest still reaches the bridge), and `vm nic remove --force`
/// unplugs it (the interface leaves the guest, the tap leaves the bridge). A stopped VM gets
/// an added NIC at its next start. Refused, changing nothing: no or two attachments, a
/// bridge the node lacks, a network that does not exist, removing a NIC the VM was created
/// with or a running VM's NIC without --force, and reverting the running VM to a memory
/// snapshot taken before the NIC was added.
#[test]
fn a_nic_is_added_to_a_running_guest_migrates_with_it_and_is_removed() {
    // Before the agents start: they report the host's bridges when they register.
    let bridge = HostBridge::create();
    let mut c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    let b_dir = c.start_agent("node-b");
    c.wait_nodes_ready(&["node-a", "node-b"]);
    c.ok(&[
        "vm", "create", "web1", "--image", "tiny", "--memory", "128M", "--accel", "tcg", "--disk",
        "32M", "--node", "node-a",
    ]);
    c.wait_console("web1", MARKER, 1, BOOT);
    // A memory snapshot of the machine before it has the NIC (reverting to it is refused).
    c.ok(&["vm", "snapshot", "create", "web1", "pre", "--memory"]);

    // Refusals first: nothing is recorded.
    let err = c.fails(&["vm", "nic", "add", "web1"]);
    assert!(err.contains("--network NET"), "{err}");
    let err = c.fails(&["vm", "nic", "add", "web1", "--bridge", "nosuchbr0"]);
    assert!(err.contains("has no bridge nosuchbr0"), "{err}");
    let err = c.fails(&["vm", "nic", "add", "web1", "--network", "nosuch"]);
    assert!(err.contains("no network \"nosuch\""), "{err}");
    assert!(c.vm("web1")["added_nics"].is_null(), "{}", c.vm("web1"));

    // On the host bridge: the guest sees it at once and reaches the bridge through it.
    let out = c.json(&["vm", "nic", "add", "web1", "--bridge", &bridge.0]);
    assert_eq!(
        out["nic"], "nic1",
        "created with user NAT, which is nic0: {out}"
    );
    assert_eq!(out["operation"]["state"], "succeeded", "{out}");
    assert!(
        out["operation"]["message"]
            .as_str()
            .unwrap()
            .contains("plugged into the running guest"),
        "{out}"
    );
    let mac = out["added"]["mac"].as_str().unwrap().to_string();
    assert_eq!(bridge.ports().len(), 1, "one tap on the bridge");
    let iface = wait_guest_iface(&c, "web1", &mac, true);
    c.console_eval(
        "web1",
        &format!("ip addr add 198.18.77.2/24 dev {iface}; ip link set {iface} up"),
    );
    wait_guest_reaches(&c, "web1", "198.18.77.1");
    let shown = c.ok(&["vm", "show", "web1"]);
    assert!(
        shown.contains(&format!("nic1: bridge {}, mac {mac}", bridge.0)),
        "{shown}"
    );
    let out = c.json(&["vm", "nic", "add", "web1", "--nat"]);
    assert_eq!(out["nic"], "nic2", "{out}");
    let nat_mac = out["added"]["mac"].as_str().unwrap().to_string();
    wait_guest_iface(&c, "web1", &nat_mac, true);
    assert_eq!(
        c.vm("web1")["free_disk_slots"],
        2,
        "NICs take hot-plug ports"
    );

    let err = c.fails(&["vm", "nic", "remove", "web1", "nic1"]);
    assert!(err.contains("--force"), "{err}");
    let err = c.fails(&["vm", "nic", "remove", "web1", "nic0", "--force"]);
    assert!(err.contains("created with"), "{err}");
    let err = c.fails(&["vm", "nic", "remove", "web1", "nic9", "--force"]);
    assert!(err.contains("nic1, nic2"), "{err}");
    let err = c.fails(&["vm", "snapshot", "revert", "web1", "pre", "--force"]);
    assert!(err.contains("before a NIC of VM web1 was added"), "{err}");
    c.ok(&["vm", "snapshot", "delete", "web1", "pre"]);

    // A live migration builds the same machine on node-b, with its own tap on the bridge.
    let m = c.json(&["vm", "migrate", "web1", "--to", "node-b"]);
    assert_eq!(m["state"], "succeeded", "{m}");
    let v = c.wait_state("web1", "running", Duration::from_secs(30));
    assert_eq!(v["node"], "node-b", "{v}");
    assert_eq!(
        common::qemu_pids_under(&b_dir).len(),
        1,
        "node-b runs the VM"
    );
    assert_eq!(guest_iface(&c, "web1", &mac), iface);
    assert_eq!(
        bridge.ports().len(),
        1,
        "the source's tap went with its QEMU"
    );
    wait_guest_reaches(&c, "web1", "198.18.77.1");

    // Removed: gone from the guest, from the bridge and from the record.
    let out = c.json(&["vm", "nic", "remove", "web1", &mac, "--force"]);
    assert_eq!(out["operation"]["state"], "succeeded", "{out}");
    assert_eq!(out["added_nics"][0]["name"], "nic2", "{out}");
    wait_guest_iface(&c, "web1", &mac, false);
    assert!(bridge.ports().is_empty(), "{:?}", bridge.ports());

    // A stopped VM gets an added NIC at its next start, in the port the removed one freed.
    c.ok(&["vm", "stop", "web1", "--force"]);
    c.wait_state("web1", "stopped", Duration::from_secs(60));
    let out = c.json(&["vm", "nic", "add", "web1", "--bridge", &bridge.0]);
    assert!(
        out["operation"]["message"]
            .as_str()
            .unwrap()
            .contains("next start"),
        "{out}"
    );
    assert_eq!(out["nic"], "nic1", "{out}");
    let mac = out["added"]["mac"].as_str().unwrap().to_string();
    let from = c.console("web1").matches(MARKER).count();
    c.ok(&["vm", "start", "web1"]);
    c.wait_console("web1", MARKER, from + 1, BOOT);
    wait_guest_iface(&c, "web1", &mac, true);
    wait_guest_iface(&c, "web1", &nat_mac, true);
    assert_eq!(bridge.ports().len(), 1);

    // A clone has the added NICs too, in the same ports, with MACs of its own: its guest
    // sees both and reaches the bridge through its own tap.
    c.ok(&["vm", "stop", "web1", "--force"]);
    c.wait_state("web1", "stopped", Duration::from_secs(60));
    c.ok(&["vm", "clone", "web1", "web2"]);
    let (src, copy) = (c.vm("web1"), c.vm("web2"));
    let shape = |v: &serde_json::Value| -> Vec<(String, u64, String)> {
        v["added_nics"]
            .as_array()
            .unwrap_or_else(|| panic!("no added NICs: {v}"))
            .iter()
            .map(|n| {
                (
                    n["name"].as_str().unwrap().to_string(),
                    n["port"].as_u64().unwrap(),
                    n["link"].to_string(),
                )
            })
            .collect()
    };
    assert_eq!(shape(&copy), shape(&src), "{copy}");
    let copy_macs: Vec<String> = copy["added_nics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["mac"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(copy_macs.len(), 2, "{copy}");
    assert!(
        !copy_macs.contains(&mac) && !copy_macs.contains(&nat_mac),
        "{copy}"
    );
    c.ok(&["vm", "start", "web2"]);
    c.wait_console("web2", MARKER, 1, BOOT);
    let on_bridge = copy["added_nics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["link"]["bridge"].is_string())
        .and_then(|n| n["mac"].as_str())
        .unwrap_or_else(|| panic!("no NIC on the bridge: {copy}"))
        .to_string();
    for m in &copy_macs {
        wait_guest_iface(&c, "web2", m, true);
    }
    let copy_iface = wait_guest_iface(&c, "web2", &on_bridge, true);
    assert_eq!(bridge.ports().len(), 1, "web2's tap alone: web1 is stopped");
    c.console_eval(
        "web2",
        &format!("ip addr add 198.18.77.3/24 dev {copy_iface}; ip link set {copy_iface} up"),
    );
    wait_guest_reaches(&c, "web2", "198.18.77.1");
    c.ok(&["vm", "delete", "web2", "--force"]);
    c.ok(&["vm", "delete", "web1", "--force"]);
}
