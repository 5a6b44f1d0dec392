//! End-to-end tests of image imports (issue 15) through the real CLI and a real `novacron up`:
//! VMDK, VHDX and VHD files converted to qcow2 with the guest's bytes intact, a VM booted from
//! the converted VMDK (TCG), imports from a URL served on 127.0.0.1 with a right and a wrong
//! SHA-256, ISO 9660 media, and bad input that must leave nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Cluster;

const BOOT: Duration = Duration::from_secs(120);
const MARKER: &str = "NOVACRON-GUEST-READY";

/// A 16-bit boot sector: reads LBA 2 (CHS 0/0/3) of the boot drive through the BIOS to 0x8000
/// and writes the NUL-terminated text found there to COM1, then halts. So the guest prints the
/// marker only when the bootloader and a data sector both survived the conversion.
const BOOT_SECTOR: &[u8] = &[
    0xFA, // cli
    0x31, 0xC0, // xor ax,ax
    0x8E, 0xD8, // mov ds,ax
    0x8E, 0xC0, // mov es,ax
    0x8E, 0xD0, // mov ss,ax
    0xBC, 0x00, 0x7C, // mov sp,0x7c00
    0xFB, // sti
    0xFC, // cld
    0xB8, 0x01, 0x02, // mov ax,0x0201 (read 1 sector)
    0xB9, 0x03, 0x00, // mov cx,0x0003 (cylinder 0, sector 3)
    0xB6, 0x00, // mov dh,0 (head 0; dl = boot drive)
    0xBB, 0x00, 0x80, // mov bx,0x8000
    0xCD, 0x13, // int 0x13
    0xBE, 0x00, 0x80, // mov si,0x8000
    0xAC, // next: lodsb
    0x84, 0xC0, // test al,al
    0x74, 0x12, // jz done
    0x88, 0xC4, // mov ah,al
    0xBA, 0xFD, 0x03, // wait: mov dx,0x3fd (line status)
    0xEC, // in al,dx
    0xA8, 0x20, // test al,0x20 (transmitter empty)
    0x74, 0xF8, // jz wait
    0x88, 0xE0, // mov al,ah
    0xBA, 0xF8, 0x03, // mov dx,0x3f8
    0xEE, // out dx,al
    0xEB, 0xE9, // jmp next
    0xFA, // done: cli
    0xF4, // hlt
    0xEB, 0xFC, // jmp done
];

/// A raw 8 MiB disk that boots to the marker, with pseudo-random data at 1 MiB and 5 MiB.
fn bootable_raw(dir: &Path) -> PathBuf {
    let mut disk = vec![0u8; 8 << 20];
    disk[..BOOT_SECTOR.len()].copy_from_slice(BOOT_SECTOR);
    disk[510] = 0x55;
    disk[511] = 0xAA;
    let text = format!("{MARKER} booted from an imported disk\r\n\0");
    disk[1024..1024 + text.len()].copy_from_slice(text.as_bytes());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for at in [1usize << 20, 5 << 20] {
        for b in &mut disk[at..at + (256 << 10)] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    let path = dir.join("boot.raw");
    std::fs::write(&path, disk).unwrap();
    path
}

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn convert(raw: &Path, format: &str, options: &[&str], out: &Path) {
    let mut args = vec!["convert", "-q", "-f", "raw", "-O", format];
    args.extend_from_slice(options);
    args.extend([raw.to_str().unwrap(), out.to_str().unwrap()]);
    qemu_img(&args);
}

/// Whether the image stored as `name` holds exactly the guest bytes of `raw`.
fn stored_equals(c: &Cluster, name: &str, raw: &Path) -> bool {
    stored_equals_as(c, name, raw, "raw")
}

/// Whether the image stored as `name` holds exactly the guest bytes of `source`, read as `format`.
fn stored_equals_as(c: &Cluster, name: &str, source: &Path, format: &str) -> bool {
    let stored = c
        .data_dir
        .join("control-plane/images/default")
        .join(name)
        .join("disk");
    Command::new("qemu-img")
        .args(["compare", "-q", "-f", format, "-F", "qcow2"])
        .arg(source)
        .arg(&stored)
        .status()
        .unwrap()
        .success()
}

fn image_names(c: &Cluster) -> Vec<String> {
    c.json(&["image", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

/// No scratch left by refused imports, and no image directory for `names`.
fn nothing_left(c: &Cluster, names: &[&str]) {
    let incoming = c.data_dir.join("control-plane/images/.incoming");
    let left: Vec<_> = std::fs::read_dir(&incoming)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
    for n in names {
        let dir = c.data_dir.join("control-plane/images/default").join(n);
        assert!(!dir.exists(), "{} exists", dir.display());
    }
    let listed = image_names(c);
    for n in names {
        assert!(
            !listed.iter().any(|l| l == n),
            "image {n} listed: {listed:?}"
        );
    }
}

/// The truncated VMDK below is not a whole number of sectors: QEMU 7.2 hung reading it through
/// the streaming NBD export, so such a file converts from the complete upload instead.
#[test]
fn vmdk_vhdx_vhd_convert_byte_for_byte() {
    let c = Cluster::start();
    let dir = c.dir.path();
    let raw = bootable_raw(dir);
    let vmdk = dir.join("disk.vmdk");
    convert(&raw, "vmdk", &[], &vmdk);

    let img = c.json(&["image", "import", "appliance", vmdk.to_str().unwrap()]);
    assert_eq!(img["kind"], "disk", "{img}");
    assert_eq!(img["format"], "qcow2", "{img}");
    assert_eq!(img["virtual_size_bytes"], 8u64 << 20, "{img}");
    assert!(stored_equals(&c, "appliance", &raw), "VMDK bytes changed");

    // The other foreign formats, each checked byte for byte; half of them uploaded over the
    // API (`--upload`, as from another host), the rest handed to the control plane here.
    for (name, format, options, file, how) in [
        (
            "stream",
            "vmdk",
            &["-o", "subformat=streamOptimized"][..],
            "s.vmdk",
            "--upload",
        ),
        ("hyperv", "vhdx", &[][..], "d.vhdx", ""),
        ("vpc-dynamic", "vpc", &[][..], "d.vhd", "--upload"),
        (
            "vpc-fixed",
            "vpc",
            &["-o", "subformat=fixed"][..],
            "f.vhd",
            "",
        ),
    ] {
        let path = dir.join(file);
        convert(&raw, format, options, &path);
        let mut args = vec!["image", "import", name, path.to_str().unwrap()];
        args.extend((!how.is_empty()).then_some(how));
        let img = c.json(&args);
        assert_eq!(img["format"], "qcow2", "{name}: {img}");
        assert!(stored_equals(&c, name, &raw), "{name}: bytes changed");
        std::fs::remove_file(&path).unwrap();
    }

    // Bad input: a clear error each, and nothing half-created.
    let bytes = std::fs::read(&vmdk).unwrap();
    let truncated = dir.join("truncated.vmdk");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = c.fails(&["image", "import", "cut", truncated.to_str().unwrap()]);
    assert!(
        err.contains("not a usable disk image") && err.contains("VMDK"),
        "{err}"
    );
    assert!(
        !err.contains(".incoming"),
        "scratch path in the error: {err}"
    );
    let descriptor = dir.join("split.vmdk");
    std::fs::write(
        &descriptor,
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\
         RW 16 FLAT \"/etc/shadow\" 0\n",
    )
    .unwrap();
    let err = c.fails(&["image", "import", "split", descriptor.to_str().unwrap()]);
    assert!(err.contains("separate extent files"), "{err}");
    let vhdx = dir.join("bad.vhdx");
    let mut head = b"vhdxfile".to_vec();
    head.resize(1 << 20, 0xAB);
    std::fs::write(&vhdx, head).unwrap();
    let err = c.fails(&[
        "image",
        "import",
        "badvhdx",
        vhdx.to_str().unwrap(),
        "--upload",
    ]);
    assert!(err.contains("VHDX header is unreadable"), "{err}");
    nothing_left(&c, &["cut", "split", "badvhdx"]);
}

/// Sends `fd` (if any) to the local-files socket `socket` and answers its one-line reply.
fn hand_in_raw(socket: &Path, fd: Option<std::os::fd::BorrowedFd<'_>>) -> String {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    match fd {
        Some(fd) => {
            novacron_tls::fd_pass::send_with_fd(stream.as_raw_fd(), b"F", fd).unwrap();
        }
        None => stream.write_all(b"F").unwrap(),
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// On the control plane's host, `image import FILE` hands the file in: the control plane reads
/// it from the disk, as an operation, instead of taking an upload. The socket takes only a
/// regular file open for reading, and a ticket works once.
#[test]
fn a_local_file_is_handed_to_the_control_plane_not_uploaded() {
    use std::os::fd::AsFd;
    let c = Cluster::start();
    let dir = c.dir.path();
    let raw = dir.join("disk.raw");
    half_filled_raw(&raw, 16);
    let vmdk = dir.join("disk.vmdk");
    convert(&raw, "vmdk", &[], &vmdk);

    let img = c.json(&["image", "import", "handed", vmdk.to_str().unwrap()]);
    assert_eq!(img["format"], "qcow2", "{img}");
    assert!(stored_equals(&c, "handed", &raw), "handed-in bytes changed");
    // A VMDK nothing writes is converted where it is, without a copy (held still by a read
    // lease); one that something has open for writing is copied first, then converted.
    let read_as = |image: &str| {
        let log = common::strip_ansi(&c.log());
        log.lines()
            .find(|l| l.contains("image imported") && l.contains(&format!("image={image} ")))
            .unwrap_or_else(|| panic!("no \"image imported\" line for {image}:\n{log}"))
            .to_string()
    };
    assert!(
        read_as("handed").contains("read=\"in place\""),
        "{}",
        read_as("handed")
    );
    let writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&vmdk)
        .unwrap();
    c.ok(&["image", "import", "handed-busy", vmdk.to_str().unwrap()]);
    drop(writer);
    assert!(
        stored_equals(&c, "handed-busy", &raw),
        "copied bytes changed"
    );
    assert!(
        read_as("handed-busy").contains("read=\"copied\""),
        "{}",
        read_as("handed-busy")
    );
    // Uploads answer at once and record no operation; a handed-in file is imported as one.
    let op = import_op(&c, "image/handed").expect("the handed-in import is an operation");
    assert_eq!(op["state"], "succeeded", "{op}");
    c.ok(&[
        "image",
        "import",
        "sent",
        vmdk.to_str().unwrap(),
        "--upload",
    ]);
    assert!(
        import_op(&c, "image/sent").is_none(),
        "--upload was handed in"
    );
    assert!(stored_equals(&c, "sent", &raw), "uploaded bytes changed");

    // A checksum that does not match imports nothing, the handed-in way too.
    let zeros = "0".repeat(64);
    let err = c.fails(&[
        "image",
        "import",
        "badsum",
        vmdk.to_str().unwrap(),
        "--sha256",
        &zeros,
    ]);
    assert!(err.contains("checksum mismatch"), "{err}");
    nothing_left(&c, &["badsum"]);

    // The socket itself: a directory, a write-only file or no descriptor at all is refused.
    let socket = c.data_dir.join("control-plane/local-files.sock");
    let directory = std::fs::File::open(dir).unwrap();
    let answer = hand_in_raw(&socket, Some(directory.as_fd()));
    assert!(
        answer.starts_with("error ") && answer.contains("not a regular file"),
        "{answer}"
    );
    let write_only = std::fs::OpenOptions::new()
        .append(true)
        .open(&vmdk)
        .unwrap();
    let answer = hand_in_raw(&socket, Some(write_only.as_fd()));
    assert!(answer.contains("not open for reading"), "{answer}");
    let answer = hand_in_raw(&socket, None);
    assert!(answer.contains("no descriptor came"), "{answer}");
    // A readable file gets a ticket from this replica.
    let file = std::fs::File::open(&vmdk).unwrap();
    let answer = hand_in_raw(&socket, Some(file.as_fd()));
    let words: Vec<&str> = answer.split_whitespace().collect();
    assert!(
        words.len() == 3 && words[0] == "ok" && words[1].len() == 32,
        "{answer}"
    );
    std::fs::remove_file(&vmdk).unwrap();
    std::fs::remove_file(&raw).unwrap();
}

/// A VM boots from a converted VMDK (SeaBIOS, TCG) and prints the marker its boot sector reads
/// from a data sector.
#[test]
fn converted_vmdk_boots() {
    let c = Cluster::start();
    let dir = c.dir.path();
    let raw = bootable_raw(dir);
    let vmdk = dir.join("disk.vmdk");
    convert(&raw, "vmdk", &[], &vmdk);
    c.ok(&["image", "import", "appliance", vmdk.to_str().unwrap()]);
    // The converted disk boots under SeaBIOS and reads its data sector.
    c.ok(&[
        "vm",
        "create",
        "vm1",
        "--image",
        "appliance",
        "--memory",
        "128M",
        "--accel",
        "tcg",
    ]);
    c.wait_console("vm1", MARKER, 1, BOOT);
}

/// `python3 -m http.server` serving `dir` on 127.0.0.1; killed on drop.
struct HttpServer {
    child: Child,
    port: u16,
}

impl HttpServer {
    fn start(dir: &Path) -> HttpServer {
        let port = common::free_port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        HttpServer { child, port }
    }

    fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/{file}", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// Serves one endless-looking download on 127.0.0.1: announces 64 MiB, then sends 512 bytes a
/// second for at most two minutes (so an import from it is surely still running).
fn trickle_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = conn.read(&mut request);
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n");
                for _ in 0..120 {
                    if conn.write_all(&[0u8; 512]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
        }
    });
    port
}

fn import_op(c: &Cluster, target: &str) -> Option<serde_json::Value> {
    c.json(&["operation", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "image.import" && o["target"] == target)
        .cloned()
}

#[test]
fn a_url_import_cut_by_a_control_plane_crash_ends_failed_and_leaves_nothing() {
    let port = trickle_server();
    let mut c = Cluster::start();
    let url = format!("http://127.0.0.1:{port}/disk.raw");
    let mut cli = c.cli_command(&["image", "import", "slow", &url]);
    let mut cli = cli
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let op = loop {
        if let Some(op) = import_op(&c, "image/slow") {
            break op;
        }
        assert!(Instant::now() < deadline, "the import did not start");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(op["state"], "running", "{op}");
    let id = op["id"].as_str().unwrap().to_string();

    // The control plane dies mid-download; its successor fails the operation it left.
    c.kill9_up();
    let _ = cli.kill();
    let _ = cli.wait();
    c.launch_up();
    let deadline = Instant::now() + Duration::from_secs(90);
    let op = loop {
        let op = c.json(&["operation", "show", &id]);
        if op["state"] != "running" {
            break op;
        }
        assert!(
            Instant::now() < deadline,
            "the operation still runs after the restart: {op}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(op["state"], "failed", "{op}");
    let message = op["message"].as_str().unwrap();
    assert!(
        message.contains("stopped") && message.contains("start it again"),
        "{message}"
    );
    nothing_left(&c, &["slow"]);
}

#[test]
fn url_iso_and_ova_imports() {
    let c = Cluster::start();
    let served = c.dir.path().join("www");
    std::fs::create_dir(&served).unwrap();
    let raw = bootable_raw(c.dir.path());
    let vmdk = served.join("disk.vmdk");
    convert(&raw, "vmdk", &[], &vmdk);
    let sum = sha256(&vmdk);
    let http = HttpServer::start(&served);

    // Right checksum: downloaded, converted, identical.
    let img = c.json(&[
        "image",
        "import",
        "fromurl",
        &http.url("disk.vmdk"),
        "--sha256",
        &sum,
    ]);
    assert_eq!(img["format"], "qcow2", "{img}");
    assert!(stored_equals(&c, "fromurl", &raw));
    let ops = c.json(&["operation", "list"]);
    assert!(
        ops.as_array()
            .unwrap()
            .iter()
            .any(|o| o["kind"] == "image.import"
                && o["state"] == "succeeded"
                && o["target"] == "image/fromurl"),
        "{ops}"
    );

    // Wrong checksum: both digests named, nothing imported.
    let wrong = "0".repeat(64);
    let err = c.fails(&[
        "image",
        "import",
        "badsum",
        &http.url("disk.vmdk"),
        "--sha256",
        &wrong,
    ]);
    assert!(
        err.contains("checksum mismatch") && err.contains(&wrong) && err.contains(&sum),
        "{err}"
    );
    // A missing file, and a checksum that is not one.
    let err = c.fails(&["image", "import", "missing", &http.url("nope.vmdk")]);
    assert!(err.contains("404"), "{err}");
    let err = c.fails(&[
        "image",
        "import",
        "short",
        &http.url("disk.vmdk"),
        "--sha256",
        "abc",
    ]);
    assert!(err.contains("64 hex digits"), "{err}");
    nothing_left(&c, &["badsum", "missing", "short"]);

    // An ISO 9660 file (a real one, as NovaCron writes cloud-init seeds) is stored as a
    // medium; a VM made from it alone must say how large a disk to install onto. A .iso that
    // is not ISO 9660 is refused.
    let iso = c.dir.path().join("install.iso");
    novacron_qemu::NoCloudSeed {
        instance_id: "i-1".into(),
        hostname: "installer".into(),
        ..Default::default()
    }
    .write(&iso)
    .unwrap();
    let img = c.json(&["image", "import", "installer", iso.to_str().unwrap()]);
    assert_eq!(img["kind"], "iso", "{img}");
    assert_eq!(
        img["size_bytes"],
        std::fs::metadata(&iso).unwrap().len(),
        "{img}"
    );
    let err = c.fails(&[
        "vm",
        "create",
        "vm-iso",
        "--image",
        "installer",
        "--memory",
        "128M",
        "--accel",
        "tcg",
    ]);
    assert!(
        err.contains("ISO 9660") && err.contains("--disk SIZE"),
        "{err}"
    );
    assert!(c.json(&["vm", "list"]).as_array().unwrap().is_empty());
    let fake = c.dir.path().join("fake.iso");
    std::fs::copy(&raw, &fake).unwrap();
    let err = c.fails(&["image", "import", "fake", fake.to_str().unwrap()]);
    assert!(err.contains("not an ISO 9660 image"), "{err}");
    nothing_left(&c, &["fake"]);
    assert_eq!(c.json(&["vm", "list"]), serde_json::json!([]));

    // OVA: the OVF's machine and both disks, converted, the boot disk first.
    let ova_dir = c.dir.path().join("ova");
    std::fs::create_dir(&ova_dir).unwrap();
    convert(
        &raw,
        "vmdk",
        &["-o", "subformat=streamOptimized"],
        &ova_dir.join("app-disk1.vmdk"),
    );
    let data_raw = c.dir.path().join("data.raw");
    let mut data = vec![0u8; 4 << 20];
    data[4096..4096 + 11].copy_from_slice(b"second disk");
    std::fs::write(&data_raw, &data).unwrap();
    convert(
        &data_raw,
        "vmdk",
        &["-o", "subformat=streamOptimized"],
        &ova_dir.join("app-disk2.vmdk"),
    );
    std::fs::write(
        ova_dir.join("app.ovf"),
        OVF.replace("MISSING", "app-disk2.vmdk"),
    )
    .unwrap();
    let tar = |out: &str, members: &[&str]| {
        let path = c.dir.path().join(out);
        let st = Command::new("tar")
            .arg("-cf")
            .arg(&path)
            .arg("-C")
            .arg(&ova_dir)
            .args(members)
            .status()
            .unwrap();
        assert!(st.success());
        path
    };
    let ova = tar("app.ova", &["app.ovf", "app-disk1.vmdk", "app-disk2.vmdk"]);
    let got = c.json(&["image", "import", "app", ova.to_str().unwrap()]);
    assert_eq!(got["cpus"], 2, "{got}");
    assert_eq!(got["memory_bytes"], 128u64 << 20, "{got}");
    assert_eq!(got["nics"][0]["model"], "E1000", "{got}");
    assert_eq!(
        got["vm_create"], "novacron vm create app --image app --cpus 2 --memory 128M",
        "{got}"
    );
    let names: Vec<_> = got["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "app-disk2"], "{got}");
    assert_eq!(
        got["disk_adds"],
        serde_json::json!(["novacron vm disk add app --image app-disk2"]),
        "{got}"
    );
    assert!(stored_equals(&c, "app", &raw));
    assert!(stored_equals(&c, "app-disk2", &data_raw));
    // The import was an operation, which the answer names and which says how it ended.
    let op = import_op(&c, "image/app").expect("an image.import operation for app");
    assert_eq!(got["operation"], op["id"], "{op}");
    assert_eq!(op["state"], "succeeded", "{op}");
    assert!(
        op["message"].as_str().unwrap().contains("app, app-disk2"),
        "{op}"
    );
    // Both VMDKs were read straight from the archive, which was held still.
    let in_place = || {
        common::strip_ansi(&c.log())
            .lines()
            .filter(|l| l.contains("OVA disk imported") && l.contains(r#"read="in place""#))
            .count()
    };
    assert_eq!(in_place(), 2, "{}", c.log());
    // On the control plane's host the OVA was handed in; `--upload` sends it over the API.
    let imported = |via: &str| {
        c.log()
            .lines()
            .filter(|l| l.contains("OVA imported") && l.contains(&format!("\"{via}\"")))
            .count()
    };
    assert_eq!(imported("handed-in file"), 1, "{}", c.log());
    let table = c.ok(&[
        "image",
        "import",
        "app-again",
        ova.to_str().unwrap(),
        "--upload",
    ]);
    assert!(
        table.contains("novacron vm create app-again --image app-again --cpus 2 --memory 128M")
            && table.contains("novacron vm disk add app-again --image app-again-disk2"),
        "{table}"
    );
    assert_eq!(imported("upload"), 1, "{}", c.log());
    // An upload's scratch is the control plane's own: read in place too.
    assert_eq!(in_place(), 4, "{}", c.log());
    assert!(stored_equals(&c, "app-again", &raw));

    // A UEFI appliance (VMware's firmware setting): its boot disk's image is UEFI, and the
    // command asks for it with the memory OVMF needs.
    std::fs::write(
        ova_dir.join("app.ovf"),
        OVF.replace("MISSING", "app-disk2.vmdk").replace(
            "</VirtualHardwareSection>",
            r#"<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/></VirtualHardwareSection>"#,
        ),
    )
    .unwrap();
    let efi = tar("efi.ova", &["app.ovf", "app-disk1.vmdk", "app-disk2.vmdk"]);
    let got = c.json(&["image", "import", "efiapp", efi.to_str().unwrap()]);
    assert_eq!(
        got["vm_create"],
        "novacron vm create efiapp --image efiapp --cpus 2 --firmware uefi --memory 256M",
        "{got}"
    );
    assert_eq!(got["images"][0]["firmware"], "uefi", "{got}");
    assert!(got["images"][1]["firmware"].is_null(), "{got}");

    // An OVA without an OVF, and one whose OVF names a disk it does not hold.
    let no_ovf = tar("no-ovf.ova", &["app-disk1.vmdk"]);
    let err = c.fails(&["image", "import", "noovf", no_ovf.to_str().unwrap()]);
    assert!(err.contains("no .ovf descriptor"), "{err}");
    std::fs::write(ova_dir.join("app.ovf"), OVF).unwrap();
    let missing = tar("missing.ova", &["app.ovf", "app-disk1.vmdk"]);
    let err = c.fails(&["image", "import", "partial", missing.to_str().unwrap()]);
    assert!(err.contains("MISSING"), "{err}");
    let op = import_op(&c, "image/partial").expect("an image.import operation for partial");
    assert_eq!(op["state"], "failed", "{op}");
    assert!(op["message"].as_str().unwrap().contains("MISSING"), "{op}");
    nothing_left(&c, &["noovf", "partial", "partial-disk2"]);
}

/// A two-disk appliance: 2 CPUs, 128 MiB, one E1000 NIC; the second disk's file is `MISSING`.
const OVF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>
    <File ovf:href="app-disk1.vmdk" ovf:id="file1"/>
    <File ovf:href="MISSING" ovf:id="file2"/>
  </References>
  <DiskSection>
    <Disk ovf:capacity="8" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1"/>
    <Disk ovf:capacity="4" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk2" ovf:fileRef="file2"/>
  </DiskSection>
  <VirtualSystem ovf:id="test-appliance">
    <VirtualHardwareSection>
      <Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>128</rasd:VirtualQuantity></Item>
      <Item><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:HostResource>ovf:/disk/vmdisk2</rasd:HostResource><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:Connection>VM Network</rasd:Connection><rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#;

/// A raw disk of `mib` MiB, every other MiB filled with distinct random-looking data (half
/// full, like a used guest disk), the rest a hole.
fn half_filled_raw(path: &Path, mib: u64) {
    use std::io::{Read, Seek, Write};
    let mut chunk = vec![0u8; 1 << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut chunk)
        .unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(mib << 20).unwrap();
    for i in (0..mib).step_by(2) {
        chunk[..8].copy_from_slice(&i.to_le_bytes());
        f.seek(std::io::SeekFrom::Start(i << 20)).unwrap();
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
}

fn timed(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// Issue 15's figure: `image import` of a VMDK against a bare `qemu-img convert` of the same
/// file to qcow2 in the same run (the baseline runs before and after the import; their mean is
/// the reference). 256 MiB by default; `NOVACRON_BENCH_IMPORT_MIB=2048` for the published
/// 2 GiB figure (docs/benchmarks.md).
#[test]
#[ignore = "a benchmark, run on demand (cargo nextest run --run-ignored all -E 'test(bench)')"]
fn bench_vmdk_import_against_bare_qemu_img_convert() {
    let mib: u64 = std::env::var("NOVACRON_BENCH_IMPORT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let c = Cluster::start();
    let dir = c.dir.path();
    let raw = dir.join("bench.raw");
    half_filled_raw(&raw, mib);
    let vmdk = dir.join("bench.vmdk");
    convert(&raw, "vmdk", &[], &vmdk);
    std::fs::remove_file(&raw).unwrap();
    let out = dir.join("bare.qcow2");
    // `durable` adds an fsync of the output (`sync FILE`) to the timed work.
    // Every timed step starts with nothing left to write back (an untimed `sync`), so the
    // write-back of what an earlier step wrote does not land in whichever step comes next.
    let settle = || timed(&mut Command::new("sync"));
    let convert_vmdk = |out: &Path, durable: bool| {
        settle();
        let t = Instant::now();
        timed(
            Command::new("qemu-img")
                .args(["convert", "-f", "vmdk", "-O", "qcow2"])
                .arg(&vmdk)
                .arg(out),
        );
        if durable {
            timed(Command::new("sync").arg(out));
        }
        let t = t.elapsed();
        std::fs::remove_file(out).unwrap();
        t
    };
    // `image import` of `file` as image `name`, with `extra` arguments.
    let import_file = |name: &str, file: &Path, extra: &[&str]| {
        settle();
        timed(
            Command::new(common::BIN)
                .args(["image", "import", name, file.to_str().unwrap()])
                .args(extra)
                .env("NOVACRON_CONFIG", &c.config)
                .stdin(Stdio::null()),
        )
    };
    let import_vmdk = |name: &str, extra: &[&str]| import_file(name, &vmdk, extra);
    let bare_before = convert_vmdk(&out, false);
    // The CLI on the control plane's host hands the file in (read from the disk).
    let import = import_vmdk("bench", &[]);
    let bare_after = convert_vmdk(&out, false);
    // The same file sent over the API, as from another host.
    let uploaded = import_vmdk("bench-up", &["--upload"]);
    // A second reference: the same conversion made durable, which an import must be before it
    // answers; the bare one leaves its output in the page cache.
    let durable = convert_vmdk(&out, true);
    let reference = (bare_before + bare_after) / 2;
    let ratio = import.as_secs_f64() / reference.as_secs_f64();
    let durable_ratio = import.as_secs_f64() / durable.as_secs_f64();
    let vmdk_bytes = std::fs::metadata(&vmdk).unwrap().len();
    println!(
        "BENCH image import of a {mib} MiB VMDK ({} MiB file, half filled): import {:.2} s, bare qemu-img convert {:.2} s \
         (before {:.2} s, after {:.2} s), ratio {ratio:.2} (target <= 1.2); convert + fsync of the output {:.2} s, \
         ratio {durable_ratio:.2}; uploaded over TLS instead (--upload) {:.2} s, ratio {:.2}",
        vmdk_bytes >> 20,
        import.as_secs_f64(),
        reference.as_secs_f64(),
        bare_before.as_secs_f64(),
        bare_after.as_secs_f64(),
        durable.as_secs_f64(),
        uploaded.as_secs_f64(),
        uploaded.as_secs_f64() / reference.as_secs_f64(),
    );
    // The same VMDK as the one disk of an OVA appliance, handed in and uploaded.
    let ovf: String = OVF
        .lines()
        .filter(|l| !l.contains("vmdisk2") && !l.contains("file2"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("app-disk1.vmdk", "bench.vmdk");
    std::fs::write(dir.join("bench.ovf"), ovf).unwrap();
    let ova = dir.join("bench.ova");
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&ova)
        .arg("-C")
        .arg(dir)
        .args(["bench.ovf", "bench.vmdk"])
        .status()
        .unwrap();
    assert!(st.success());
    let ova_handed = import_file("bench-ova", &ova, &[]);
    let ova_uploaded = import_file("bench-ova-up", &ova, &["--upload"]);
    std::fs::remove_file(&ova).unwrap();
    println!(
        "BENCH the same VMDK as an OVA's one disk: handed in {:.2} s, ratio {:.2}; uploaded (--upload) {:.2} s, ratio {:.2}",
        ova_handed.as_secs_f64(),
        ova_handed.as_secs_f64() / reference.as_secs_f64(),
        ova_uploaded.as_secs_f64(),
        ova_uploaded.as_secs_f64() / reference.as_secs_f64(),
    );
    // The import's phases: the info line always, the debug ones (the upload alone, and the
    // vetting, conversion and check) when the cluster runs with
    // NOVACRON_TEST_LOG=info,novacron_server=debug,novacron_qemu=debug.
    let phases = [
        "image imported",
        "OVA imported",
        "upload received",
        "streamed import",
        "imported from the complete file",
        "imported in place",
        "synced and hashed",
        "OVA disk imported",
        "foreign disk converted",
    ];
    for line in c
        .log()
        .lines()
        .filter(|l| phases.iter().any(|p| l.contains(p)))
    {
        println!("BENCH   {line}");
    }
    // What was timed is a real import: the stored image holds the VMDK's guest bytes. The
    // figures are the BENCH line (docs/benchmarks.md); the target is not met yet, so it is
    // reported rather than asserted.
    for name in ["bench", "bench-up", "bench-ova", "bench-ova-up"] {
        assert!(
            stored_equals_as(&c, name, &vmdk, "vmdk"),
            "the imported image {name} differs from the VMDK"
        );
        c.ok(&["image", "delete", name]);
    }
    std::fs::remove_file(&vmdk).unwrap();
}
