//! qemu-img integration and import vetting on real files, plus the cloud-init seed as the OS sees it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use novacron_qemu::{
    BackingFile, DiskFormat, NoCloudSeed, QemuError, backing_chain, check_self_contained,
    create_blank, create_overlay, inspect_as, inspect_for_import, write_nocloud_seed,
};

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `qemu-img convert` of the raw file `src` to `format` at `dst`.
/// An 8 MiB raw disk at `path`: zeros but for `mib` MiB from MiB `from`, which hold a pattern that
/// neither zeros nor a misplaced range would match.
fn patterned_raw(path: &Path, (from, mib): (usize, usize)) {
    let mut bytes = vec![0u8; 8 << 20];
    for (i, b) in bytes
        .iter_mut()
        .enumerate()
        .skip(from << 20)
        .take(mib << 20)
    {
        *b = (i * 13 % 251) as u8;
    }
    std::fs::write(path, &bytes).unwrap();
}

/// Asserts the qcow2 at `qcow2` holds the same disk as the raw file at `raw`.
fn same_as_raw(raw: &Path, qcow2: &Path) {
    qemu_img(&[
        "compare",
        "-q",
        "-f",
        "raw",
        "-F",
        "qcow2",
        raw.to_str().unwrap(),
        qcow2.to_str().unwrap(),
    ]);
}

fn convert_raw(src: &Path, format: &str, dst: &Path) {
    qemu_img(&[
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        format,
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
    ]);
}

fn import_error(path: &Path) -> String {
    match futures_lite_block(inspect_for_import(path)) {
        Err(e @ QemuError::InvalidImage { .. }) => e.to_string(),
        other => panic!("{} should be refused, got {other:?}", path.display()),
    }
}

fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn import_refuses_text_random_truncated_and_backed_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let text = d.join("notes.txt");
    std::fs::write(&text, "this is not a disk\n".repeat(100)).unwrap();
    let e = import_error(&text);
    assert!(e.contains("neither qcow2 nor a raw disk"), "{e}");

    // Random bytes, sector-sized, with no signature anywhere it is looked for.
    let random = d.join("random.bin");
    let mut bytes = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    bytes[510] = 0;
    std::fs::write(&random, &bytes).unwrap();
    let e = import_error(&random);
    assert!(e.contains("neither qcow2 nor a raw disk"), "{e}");

    let empty = d.join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    assert!(import_error(&empty).contains("empty"));

    // A qcow2 with data, cut in half.
    let good = d.join("good.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", good.to_str().unwrap(), "64M"]);
    convert_raw(&random, "qcow2", &good);
    let full = std::fs::read(&good).unwrap();
    let truncated = d.join("truncated.qcow2");
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let e = import_error(&truncated);
    assert!(e.contains("qcow2"), "{e}");
    // Header only.
    let header_only = d.join("header.qcow2");
    std::fs::write(&header_only, &full[..100]).unwrap();
    assert!(import_error(&header_only).contains("qcow2"));

    // A qcow2 whose L1 table points past the end: corrupt.
    let corrupt = d.join("corrupt.qcow2");
    let mut c = full.clone();
    // l1_table_offset is the big-endian u64 at byte 40 of the header.
    c[40..48].copy_from_slice(&(1u64 << 40).to_be_bytes());
    std::fs::write(&corrupt, &c).unwrap();
    let e = import_error(&corrupt);
    assert!(e.contains("qcow2"), "{e}");

    // An overlay is refused for its backing file.
    let overlay = d.join("overlay.qcow2");
    futures_lite_block(create_overlay(&good, DiskFormat::Qcow2, &overlay, None)).unwrap();
    let e = import_error(&overlay);
    assert!(e.contains("backing file"), "{e}");

    // A VMDK is named as such.
    let vmdk = d.join("disk.vmdk");
    qemu_img(&["create", "-q", "-f", "vmdk", vmdk.to_str().unwrap(), "1M"]);
    assert!(import_error(&vmdk).contains("VMDK"));
}

/// The finding behind this test: a qcow2 whose header names an external data file was imported, and a VM created
/// from it read a host file as its disk. Every way of naming a file outside the image must be refused, at import and
/// by the check the agent runs on images it downloads.
#[test]
fn refuses_images_that_refer_to_host_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let host_file = d.join("host-secret");
    let mut secret = b"HOST-SECRET-CONTENT".to_vec();
    secret.resize(1 << 20, 0);
    std::fs::write(&host_file, &secret).unwrap();
    let host = host_file.to_str().unwrap();

    // External raw data file: the guest's disk *is* the host file.
    let raw_data = d.join("data-raw.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        &format!("data_file={host},data_file_raw=on"),
        raw_data.to_str().unwrap(),
        "1M",
    ]);
    // `qemu-img create` itself rewrites the data file: put the secret in afterwards.
    std::fs::write(&host_file, &secret).unwrap();
    let e = import_error(&raw_data);
    assert!(e.contains("external data file"), "{e}");
    assert!(
        e.contains("qemu-img convert"),
        "the error must say what to do: {e}"
    );
    assert_eq!(
        std::fs::read(&host_file).unwrap(),
        secret,
        "the host file was touched"
    );

    // External data file without data_file_raw.
    let data = d.join("data.qcow2");
    let data_target = d.join("data-target");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        &format!("data_file={}", data_target.display()),
        data.to_str().unwrap(),
        "1M",
    ]);
    assert!(import_error(&data).contains("external data file"));

    // The same file after its data-file target is gone still names it.
    std::fs::remove_file(&data_target).unwrap();
    assert!(import_error(&data).contains("external data file"));

    // The check the agent runs on downloads refuses it too, for the declared format.
    match futures_lite_block(check_self_contained(&raw_data, DiskFormat::Qcow2)) {
        Err(QemuError::InvalidImage { reason, .. }) => {
            assert!(reason.contains("external data file"), "{reason}")
        }
        other => panic!("agent-side check accepted a data-file image: {other:?}"),
    }

    // A backing file stays refused, also one named by a relative path or a json: pseudo-filename.
    let base = d.join("base.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "1M"]);
    let backed = d.join("backed.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        "base.qcow2",
        backed.to_str().unwrap(),
    ]);
    let e = import_error(&backed);
    assert!(e.contains("backing file (base.qcow2)"), "{e}");
    let json_backed = d.join("json-backed.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-u",
        "-F",
        "raw",
        "-b",
        &format!("json:{{\"driver\":\"file\",\"filename\":\"{host}\"}}"),
        json_backed.to_str().unwrap(),
        "1M",
    ]);
    assert!(import_error(&json_backed).contains("backing file"));

    // A raw file that happens to start with the qcow2 magic is never opened as qcow2 by the check for raw.
    let info = futures_lite_block(check_self_contained(&host_file, DiskFormat::Raw)).unwrap();
    assert_eq!(info.format, DiskFormat::Raw);
    assert_eq!(info.virtual_size_bytes, 1 << 20);
    let mut fake = std::fs::read(&raw_data).unwrap();
    fake.resize(1 << 20, 0);
    let fake_raw = d.join("fake.raw");
    std::fs::write(&fake_raw, &fake).unwrap();
    let info = futures_lite_block(check_self_contained(&fake_raw, DiskFormat::Raw)).unwrap();
    assert_eq!(info.format, DiskFormat::Raw);
}

/// The chain a VM's disk is launched with: each file under the disk, nearest first, by the
/// absolute name its header resolves to (a relative backing name included).
#[tokio::test]
async fn backing_chain_lists_the_files_under_a_disk() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = d.join("base.raw");
    create_blank(&base, DiskFormat::Raw, 1 << 20).await.unwrap();
    let mid = d.join("mid.qcow2");
    create_overlay(&base, DiskFormat::Raw, &mid, None)
        .await
        .unwrap();
    // A relative backing name, as `qemu-img create -b` takes it.
    let top = d.join("top.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "mid.qcow2",
        "-F",
        "qcow2",
        top.to_str().unwrap(),
    ]);
    assert_eq!(
        backing_chain(&top, DiskFormat::Qcow2).await.unwrap(),
        [
            BackingFile {
                path: mid.clone(),
                format: DiskFormat::Qcow2
            },
            BackingFile {
                path: base.clone(),
                format: DiskFormat::Raw
            },
        ]
    );
    assert_eq!(backing_chain(&base, DiskFormat::Raw).await.unwrap(), []);
    std::fs::remove_file(&base).unwrap();
    assert!(backing_chain(&top, DiskFormat::Qcow2).await.is_err());
}

#[tokio::test]
async fn accepts_good_images_and_creates_disks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let blank = d.join("blank.qcow2");
    create_blank(&blank, DiskFormat::Qcow2, 64 << 20)
        .await
        .unwrap();
    let info = inspect_for_import(&blank).await.unwrap();
    assert_eq!(info.format, DiskFormat::Qcow2);
    assert_eq!(info.virtual_size_bytes, 64 << 20);
    assert_eq!(info.backing_file, None);
    assert!(
        create_blank(&blank, DiskFormat::Qcow2, 1 << 20)
            .await
            .is_err(),
        "must not overwrite"
    );

    let overlay = d.join("overlay.qcow2");
    create_overlay(&blank, DiskFormat::Qcow2, &overlay, Some(128 << 20))
        .await
        .unwrap();
    let info = inspect_as(&overlay, DiskFormat::Qcow2).await.unwrap();
    assert_eq!(info.format, DiskFormat::Qcow2);
    assert_eq!(info.virtual_size_bytes, 128 << 20);
    assert_eq!(
        info.backing_file.as_deref(),
        Some(std::fs::canonicalize(&blank).unwrap().as_path())
    );

    // A raw disk with an MBR is accepted; a blank raw file is not (no signature).
    let raw = d.join("disk.raw");
    create_blank(&raw, DiskFormat::Raw, 8 << 20).await.unwrap();
    assert!(inspect_for_import(&raw).await.is_err());
    let mut mbr = std::fs::read(&raw).unwrap();
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    std::fs::write(&raw, &mbr).unwrap();
    let info = inspect_for_import(&raw).await.unwrap();
    assert_eq!(info.format, DiskFormat::Raw);
    assert_eq!(info.virtual_size_bytes, 8 << 20);

    // An ext4 filesystem image, if mkfs.ext4 is present.
    let ext4 = d.join("fs.ext4");
    create_blank(&ext4, DiskFormat::Raw, 8 << 20).await.unwrap();
    if Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&ext4)
        .status()
        .is_ok_and(|s| s.success())
    {
        assert_eq!(
            inspect_for_import(&ext4).await.unwrap().format,
            DiskFormat::Raw
        );
    } else {
        println!("mkfs.ext4 unavailable; skipping the ext4 import check");
    }

    // Our own seed ISO passes as a raw disk (iso9660 signature).
    let seed = d.join("seed.iso");
    write_nocloud_seed(&seed, "i-1", "vm1", &[]).unwrap();
    assert_eq!(
        inspect_for_import(&seed).await.unwrap().format,
        DiskFormat::Raw
    );
}

#[test]
fn seed_iso_is_seen_by_blkid_and_mount() {
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.iso");
    let keys = vec![
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7x alice@example".to_string(),
        "ssh-rsa AAAAB3NzaC1yc2E bob@example".to_string(),
    ];
    let seed = NoCloudSeed {
        instance_id: "i-0abc".into(),
        hostname: "web-1".into(),
        ssh_authorized_keys: keys.clone(),
        network_config: Some("version: 2\nethernets:\n  eth0:\n    dhcp4: true\n".into()),
        ..NoCloudSeed::default()
    };
    seed.write(&seed_path).unwrap();
    let expected = seed.files().unwrap();

    match Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(&seed_path)
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.lines().any(|l| l == "LABEL=cidata"), "{text}");
            assert!(text.lines().any(|l| l == "TYPE=iso9660"), "{text}");
        }
        other => println!("blkid unusable ({other:?}); skipping the blkid check"),
    }

    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-o", "loop,ro", "-t", "iso9660"])
        .arg(&seed_path)
        .arg(&mnt)
        .output();
    match mounted {
        Ok(out) if out.status.success() => {
            let mut names: Vec<String> = std::fs::read_dir(&mnt)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into())
                .collect();
            names.sort();
            let read: Vec<(String, Vec<u8>)> = names
                .iter()
                .map(|n| (n.clone(), std::fs::read(mnt.join(n)).unwrap()))
                .collect();
            let status = Command::new("umount").arg(&mnt).status().unwrap();
            assert!(status.success());
            let want: Vec<(String, Vec<u8>)> = expected
                .iter()
                .map(|(n, d)| (n.to_string(), d.clone()))
                .collect();
            assert_eq!(read, want);
            let user_data = String::from_utf8(read[2].1.clone()).unwrap();
            assert!(user_data.contains(&keys[0]) && user_data.contains("hostname: \"web-1\""));
        }
        Ok(out) => println!(
            "loop mount unavailable here ({}); skipping the mount check",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => println!("mount not runnable ({e}); skipping the mount check"),
    }
}

/// The seed as a Linux guest sees it: attached as a virtio disk, mounted as iso9660, Joliet names (lowercase with
/// '-', which plain ISO 9660 cannot hold) and bytes intact. (busybox's findfs has no iso9660 label support, so the
/// label is checked with util-linux blkid on the host in `seed_iso_is_seen_by_blkid_and_mount`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_iso_is_read_by_a_linux_guest() {
    use novacron_qemu::console::wait_for_text;
    use novacron_qemu::{Accel, Boot, GuestFile, RunDir, TinyOptions, VmSpec, build_tiny, launch};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let seed = NoCloudSeed {
        instance_id: "i-guest".into(),
        hostname: "seeded".into(),
        ssh_authorized_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7x carol@example".into()],
        network_config: Some("version: 2\n".into()),
        user_data: Some("#cloud-config\nruncmd:\n  - [touch, /tmp/from-user-data]\n".into()),
        vendor_data: Some("#cloud-config\npackages: [htop]\n".into()),
    };
    let seed_path = dir.path().join("seed.iso");
    seed.write(&seed_path).unwrap();

    let script = "#!/bin/sh\n\
        dev=/dev/vda\n\
        mount -t iso9660 -o ro \"$dev\" /mnt || echo SEED-MOUNT-FAILED\n\
        cd /mnt && for f in *; do echo \"SEED-FILE=$f $(md5sum < \"$f\" | cut -d' ' -f1)\"; done\n\
        echo SEED-DONE\n";
    let opts = TinyOptions {
        extra_files: vec![GuestFile {
            path_in_guest: "/etc/novacron/init.d/10-seed".into(),
            contents: script.as_bytes().to_vec(),
            mode: 0o755,
        }],
        extra_modules: vec!["isofs".into()],
        ..Default::default()
    };
    let image = build_tiny(&dir.path().join("image"), &opts).await.unwrap();
    let spec = VmSpec {
        name: "seed-reader".into(),
        uuid: "0b6c7d8e-1111-4222-8333-944455556666".into(),
        memory_bytes: 128 << 20,
        accel: Accel::Tcg,
        boot: Boot::Kernel {
            kernel: image.kernel,
            initrd: Some(image.initrd),
            cmdline: image.cmdline,
        },
        seed_iso: Some(seed_path),
        ..Default::default()
    };
    let run_dir = RunDir::new(dir.path().join("run"));
    let vm = launch(&spec, &run_dir).await.unwrap();
    let pid = vm.pid();
    let waited = wait_for_text(
        &run_dir.console_log(),
        "SEED-DONE",
        0,
        Duration::from_secs(40),
    )
    .await;
    let log = std::fs::read_to_string(run_dir.console_log()).unwrap();
    vm.kill().await.unwrap();
    assert!(novacron_qemu::process::wait_pid_gone(pid, Duration::from_secs(5)).await);
    waited.unwrap();

    for line in log.lines().filter(|l| l.contains("SEED-")) {
        println!("guest: {}", line.trim_end());
    }
    assert!(!log.contains("SEED-MOUNT-FAILED"), "{log}");
    let mut seen: Vec<(String, String)> = log
        .lines()
        // The shell prompt may share a line with the script's output.
        .filter_map(|l| l.trim_end_matches('\r').split("SEED-FILE=").nth(1))
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(n, h)| (n.to_string(), h.to_string()))
        })
        .collect();
    seen.sort();
    let mut want = Vec::new();
    for (name, data) in seed.files().unwrap() {
        let host = dir.path().join(format!("expected-{name}"));
        std::fs::write(&host, &data).unwrap();
        let out = Command::new("md5sum").arg(&host).output().unwrap();
        let hash = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        want.push((name.to_string(), hash));
    }
    want.sort();
    assert_eq!(seen, want, "guest saw different files:\n{log}");
}

/// A VMDK cut to a length that is not a whole number of sectors, streamed in as an upload: the
/// import ends with a refusal (QEMU 7.2 used to wait forever reading such a file through the
/// streaming NBD export) and leaves no converted file behind; the whole file converts fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_vmdk_cut_mid_sector_is_refused_promptly() {
    use novacron_qemu::import::import_streaming;
    use novacron_qemu::nbd::Arrived;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = d.join("src.raw");
    patterned_raw(&raw, (1, 1));
    let vmdk = d.join("src.vmdk");
    convert_raw(&raw, "vmdk", &vmdk);
    let whole = std::fs::read(&vmdk).unwrap();
    assert_eq!(whole.len() % 512, 0, "qemu-img writes whole sectors");

    for (name, bytes, should_import) in [
        ("cut", &whole[..whole.len() * 2 / 3 + 1], false),
        ("whole", &whole[..], true),
    ] {
        let upload = d.join(name).join("upload");
        std::fs::create_dir(upload.parent().unwrap()).unwrap();
        std::fs::write(&upload, bytes).unwrap();
        let (_tx, rx) = tokio::sync::watch::channel(Arrived::Done(Ok(bytes.len() as u64)));
        let result = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            import_streaming(&upload, bytes.len() as u64, rx, false),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: the import did not finish within 60 s"));
        assert_eq!(result.is_ok(), should_import, "{name}: {result:?}");
        let converted = upload.with_extension("qcow2");
        assert_eq!(converted.exists(), should_import, "{name}");
    }
}

/// A handed-in VMDK is converted straight from the file (no copy), to the same bytes; a file
/// that is not a foreign disk, or is open for writing, is left to the caller to copy.
#[tokio::test]
async fn a_held_vmdk_is_converted_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = d.join("src.raw");
    patterned_raw(&raw, (3, 1));
    let vmdk = d.join("src.vmdk");
    convert_raw(&raw, "vmdk", &vmdk);

    let dest = d.join("upload.qcow2");
    let handed = std::fs::File::open(&vmdk).unwrap();
    match novacron_qemu::import_held(&handed, &dest, false)
        .await
        .unwrap()
    {
        Some(novacron_qemu::Imported::Disk {
            path,
            info,
            converted_from,
        }) => {
            assert_eq!(path, dest);
            assert_eq!(info.format, DiskFormat::Qcow2);
            assert_eq!(converted_from, Some(novacron_qemu::ForeignFormat::Vmdk));
        }
        other => panic!("expected a converted disk, got {other:?}"),
    }
    same_as_raw(&raw, &dest);
    // The source is left as it was, and nothing holds it any more: it opens for writing at once.
    drop(std::fs::OpenOptions::new().write(true).open(&vmdk).unwrap());

    // A native disk becomes the image file itself: the caller copies it.
    let native = d.join("native.qcow2");
    convert_raw(&raw, "qcow2", &native);
    let handed = std::fs::File::open(&native).unwrap();
    let other = d.join("other.qcow2");
    assert!(
        novacron_qemu::import_held(&handed, &other, false)
            .await
            .unwrap()
            .is_none()
    );
    // So is a foreign disk that something has open for writing.
    let handed = std::fs::File::open(&vmdk).unwrap();
    let _writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&vmdk)
        .unwrap();
    assert!(
        novacron_qemu::import_held(&handed, &other, false)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!other.exists());
}

/// Read in place through /proc/self/fd, a descriptor VMDK's extents would resolve next to that
/// path: one naming a host file, or another descriptor of qemu-img's, is never read in place. It is
/// left to the copy, whose vetting refuses it.
#[tokio::test]
async fn a_held_vmdk_descriptor_is_not_read_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = d.join("host-secret");
    std::fs::write(&secret, vec![7u8; 1 << 20]).unwrap();
    for extent in [secret.to_str().unwrap(), "1", "../../1/root/etc/hostname"] {
        let descriptor = d.join("desc.vmdk");
        std::fs::write(
            &descriptor,
            format!(
                "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n\
                 RW 2048 FLAT \"{extent}\" 0\n\nddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n"
            ),
        )
        .unwrap();
        let dest = d.join("out.qcow2");
        let handed = std::fs::File::open(&descriptor).unwrap();
        let in_place = novacron_qemu::import_held(&handed, &dest, false).await;
        assert!(
            matches!(in_place, Ok(None)),
            "extent {extent}: {in_place:?}"
        );
        assert!(!dest.exists(), "extent {extent}");
        let copied = novacron_qemu::import_file(&descriptor, false).await;
        assert!(
            matches!(&copied, Err(QemuError::InvalidImage { reason, .. }) if reason.contains("separate extent files")),
            "extent {extent}: {copied:?}"
        );
    }
}

/// A VMDK inside a held archive (an OVA member) is converted straight from its byte range, to the
/// same bytes; the members around it are never read as part of it.
#[tokio::test]
async fn a_vmdk_inside_a_held_archive_is_converted_from_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = d.join("disk.raw");
    patterned_raw(&raw, (1, 2));
    convert_raw(&raw, "vmdk", &d.join("disk.vmdk"));
    std::fs::write(d.join("a.ovf"), "<Envelope/>").unwrap();
    std::fs::write(d.join("z.bin"), vec![0xeeu8; 70_000]).unwrap();
    let ova = d.join("app.ova");
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&ova)
        .arg("-C")
        .arg(d)
        .args(["a.ovf", "disk.vmdk", "z.bin"])
        .status()
        .unwrap();
    assert!(st.success());
    let members = novacron_qemu::ova::tar_members(&ova).unwrap();
    let at = |name: &str| members.iter().find(|m| m.name == name).unwrap().clone();

    let handed = std::fs::File::open(&ova).unwrap();
    let held = novacron_qemu::held::Held::take(&handed).unwrap();
    let disk = at("disk.vmdk");
    let dest = d.join("out.qcow2");
    let imported =
        novacron_qemu::import_range(&held.path(), Some(&held), (disk.offset, disk.size), &dest)
            .await
            .unwrap();
    assert!(
        matches!(
            imported,
            Some(novacron_qemu::Imported::Disk {
                converted_from: Some(novacron_qemu::ForeignFormat::Vmdk),
                ..
            })
        ),
        "{imported:?}"
    );
    same_as_raw(&raw, &dest);
    // Another member is no disk: left to the copy.
    let other = d.join("other.qcow2");
    let z = at("z.bin");
    assert!(
        novacron_qemu::import_range(&held.path(), Some(&held), (z.offset, z.size), &other)
            .await
            .unwrap()
            .is_none()
    );
    // The VMDK cut short inside the archive (its range ends early) is refused, not padded with
    // the next member's bytes or zeros.
    let cut = novacron_qemu::import_range(
        &held.path(),
        Some(&held),
        (disk.offset, disk.size / 2),
        &other,
    )
    .await;
    assert!(
        matches!(&cut, Err(QemuError::InvalidImage { .. })),
        "{cut:?}"
    );
    assert!(!other.exists());
}
