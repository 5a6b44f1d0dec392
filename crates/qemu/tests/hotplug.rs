//! Disks plugged into and out of a running tiny guest (TCG) through QMP: the guest's kernel
//! sees a new block device of the disk's size, and sees it go again; QEMU keeps no block node
//! of it afterwards. A VM started with the disk already in its port shows it the same way.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use novacron_qemu::console::{console_log_len, send_console_line, wait_for_text};
use novacron_qemu::hotplug::{attach_disk, detach_disk, plugged};
use novacron_qemu::{
    Accel, Boot, DiskFormat, GUEST_READY_MARKER, PluggedDisk, RunDir, RunningVm, TinyOptions,
    VmSpec, build_tiny, create_blank, launch,
};

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

async fn spec(dir: &Path) -> VmSpec {
    let image = build_tiny(&dir.join("image"), &TinyOptions::default())
        .await
        .unwrap();
    VmSpec {
        name: "plug".into(),
        uuid: "6f0c1f1e-8a8e-4f0e-9c55-2d2b8f3f0a02".into(),
        memory_bytes: 128 << 20,
        accel: Accel::Tcg,
        boot: Boot::Kernel {
            kernel: image.kernel,
            initrd: Some(image.initrd),
            cmdline: image.cmdline,
        },
        hotplug_ports: 2,
        ..Default::default()
    }
}

/// What the guest prints for `cmd`, between two markers.
async fn guest_says(vm: &RunningVm, cmd: &str) -> String {
    let rd: &RunDir = vm.run_dir();
    let from = console_log_len(rd);
    // The quotes keep the shell's echo of the line itself from matching the markers.
    send_console_line(rd, &format!("echo @@\"\"B; {cmd}; echo @@\"\"E"))
        .await
        .unwrap();
    wait_for_text(&rd.console_log(), "@@E\r\n", from, Duration::from_secs(20))
        .await
        .unwrap();
    let log = std::fs::read(rd.console_log()).unwrap();
    let text = String::from_utf8_lossy(&log[from as usize..]).to_string();
    let start = text.rfind("@@B\r\n").map(|i| i + 5).unwrap_or(0);
    let end = text.rfind("@@E\r\n").unwrap_or(text.len());
    text[start.min(end)..end].trim().to_string()
}

/// Polls the guest until `cmd` prints `want`.
async fn guest_until(vm: &RunningVm, cmd: &str, want: &str) {
    let mut last = String::new();
    for _ in 0..40 {
        last = guest_says(vm, cmd).await;
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("`{cmd}` in the guest printed {last:?}, not {want:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_is_plugged_into_a_running_guest_and_unplugged_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path()).await;
    let disk = dir.path().join("disk1.qcow2");
    create_blank(&disk, DiskFormat::Qcow2, 64 << 20)
        .await
        .unwrap();
    let rd = RunDir::new(dir.path().join("run"));
    let vm = launch(&spec, &rd).await.unwrap();
    wait_for_text(&rd.console_log(), GUEST_READY_MARKER, 0, BOOT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(guest_says(&vm, "ls /sys/block | grep -c vd").await, "0");

    let plug = PluggedDisk {
        node: "disk1".into(),
        path: disk.clone(),
        format: DiskFormat::Qcow2,
        port: 1,
    };
    attach_disk(vm.qmp(), &plug, false).await.unwrap();
    // Asking again (a call cut short, retried) changes nothing.
    attach_disk(vm.qmp(), &plug, false).await.unwrap();
    assert_eq!(plugged(vm.qmp()).await.unwrap(), ["disk1"]);
    // 64 MiB in 512-byte sectors.
    guest_until(&vm, "cat /sys/block/vda/size", "131072").await;

    detach_disk(vm.qmp(), "disk1", Duration::from_secs(30))
        .await
        .unwrap();
    guest_until(&vm, "ls /sys/block | grep -c vd", "0").await;
    assert!(plugged(vm.qmp()).await.unwrap().is_empty());
    let nodes = vm
        .qmp()
        .execute(
            "query-named-block-nodes",
            Some(serde_json::json!({"flat": true})),
        )
        .await
        .unwrap();
    assert!(
        !nodes.to_string().contains("disk1"),
        "QEMU keeps a node of the unplugged disk: {nodes}"
    );
    // Unplugging what is gone is done at once.
    detach_disk(vm.qmp(), "disk1", Duration::from_secs(1))
        .await
        .unwrap();
    vm.kill().await.unwrap();

    // Started with the disk in its port: the guest has it from boot.
    spec.plugged_disks = vec![plug];
    let rd = RunDir::new(dir.path().join("run2"));
    let vm = launch(&spec, &rd).await.unwrap();
    wait_for_text(&rd.console_log(), GUEST_READY_MARKER, 0, BOOT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(guest_says(&vm, "cat /sys/block/vda/size").await, "131072");
    assert_eq!(plugged(vm.qmp()).await.unwrap(), ["disk1"]);
    vm.kill().await.unwrap();
}
