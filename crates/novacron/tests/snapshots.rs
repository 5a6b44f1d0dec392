//! End-to-end test of VM snapshots (issue 15) with a real TCG guest: disk-only and memory
//! snapshots of a running VM, revert (live with memory; stopped for disk-only), delete, and
//! the refusals (a disk-only revert under a running guest, a live migration that would lose
//! the snapshots), through the real CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Cluster;

const BOOT: Duration = Duration::from_secs(120);
const MARKER: &str = "NOVACRON-GUEST-READY";

/// Writes `text` on the raw disk and `text` into /tmp/mark (guest RAM: tmpfs or rootfs).
fn write_state(c: &Cluster, vm: &str, text: &str) {
    c.write_disk_mark(vm, text, &format!("echo '{text}' > /tmp/mark;"));
}

/// (what the disk holds, what /tmp/mark holds) as the guest sees them.
fn read_state(c: &Cluster, vm: &str) -> (String, String) {
    (
        c.read_disk_mark(vm, 9),
        c.console_eval(vm, "cat /tmp/mark 2>/dev/null || echo none"),
    )
}

fn snapshot_names(c: &Cluster, vm: &str) -> Vec<(String, bool)> {
    c.json(&["vm", "snapshot", "list", vm])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["memory"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn snapshot_write_revert_and_the_write_is_gone() {
    let c = Cluster::start();
    c.ok(&["image", "build-tiny", "tiny"]);
    c.ok(&[
        "vm", "create", "web1", "--image", "tiny", "--memory", "128M", "--accel", "tcg", "--disk",
        "1G",
    ]);
    c.wait_console("web1", MARKER, 1, BOOT);
    write_state(&c, "web1", "version-A");

    // A disk-only snapshot of the running guest (1 GiB disk; the issue asks for <= 1 s, the
    // bound here is loose for busy test machines), then a memory snapshot.
    let t = std::time::Instant::now();
    let op = c.json(&["vm", "snapshot", "create", "web1", "disk-a"]);
    let took = t.elapsed();
    println!("BENCH disk-only snapshot of a running VM, 1 GiB disk, CLI round trip: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(op.as_array().unwrap().len(), 1, "{op}");
    write_state(&c, "web1", "version-B");
    c.ok(&["vm", "snapshot", "create", "web1", "mem-b", "--memory"]);
    assert_eq!(
        snapshot_names(&c, "web1"),
        [("disk-a".to_string(), false), ("mem-b".to_string(), true)]
    );
    let show = c.ok(&["vm", "show", "web1"]);
    assert!(show.contains("disk-a, mem-b (with memory)"), "{show}");
    let err = c.fails(&["vm", "snapshot", "create", "web1", "mem-b"]);
    assert!(err.contains("already has a snapshot"), "{err}");

    // After the memory snapshot: new data on disk and in RAM...
    write_state(&c, "web1", "version-C");
    assert_eq!(
        read_state(&c, "web1"),
        ("version-C".into(), "version-C".into())
    );
    // ...reverting the running guest to it brings both back to that moment, without a boot.
    let pid = c.vm("web1")["pid"].as_u64().unwrap();
    // Without --force a running guest's present is not thrown away: refused, nothing changed.
    let err = c.fails(&["vm", "snapshot", "revert", "web1", "mem-b"]);
    assert!(
        err.contains("novacron vm snapshot revert web1 mem-b --force"),
        "{err}"
    );
    assert_eq!(
        read_state(&c, "web1"),
        ("version-C".into(), "version-C".into())
    );
    c.ok(&["vm", "snapshot", "revert", "web1", "mem-b", "--force"]);
    assert_eq!(
        read_state(&c, "web1"),
        ("version-B".into(), "version-B".into())
    );
    assert_eq!(
        c.vm("web1")["pid"].as_u64(),
        Some(pid),
        "same QEMU, no restart"
    );
    assert_eq!(
        c.console("web1").matches(MARKER).count(),
        1,
        "the guest did not boot again"
    );

    // A disk-only snapshot cannot be reverted under a running guest.
    let err = c.fails(&["vm", "snapshot", "revert", "web1", "disk-a"]);
    assert!(err.contains("novacron vm stop web1"), "{err}");
    // A live migration would lose the snapshots: refused before anything starts.
    let err = c.fails(&["vm", "migrate", "web1", "--to", "node-b"]);
    assert!(err.contains("snapshot(s)"), "{err}");
    assert!(
        c.json(&["migration", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Stopped: the disk-only revert, and the next boot sees the old disk.
    c.ok(&["vm", "stop", "web1", "--force"]);
    c.ok(&["vm", "snapshot", "revert", "web1", "disk-a"]);
    c.ok(&["vm", "start", "web1"]);
    c.wait_console("web1", MARKER, 2, BOOT);
    assert_eq!(read_state(&c, "web1").0, "version-A");

    // Delete, on a running VM; unknown names are refused.
    c.ok(&["vm", "snapshot", "delete", "web1", "mem-b"]);
    assert_eq!(snapshot_names(&c, "web1"), [("disk-a".to_string(), false)]);
    let err = c.fails(&["vm", "snapshot", "revert", "web1", "nope"]);
    assert!(err.contains("no snapshot \"nope\""), "{err}");
    let err = c.fails(&["vm", "snapshot", "delete", "web1", "nope"]);
    assert!(err.contains("no snapshot \"nope\""), "{err}");
    assert_eq!(snapshot_names(&c, "web1"), [("disk-a".to_string(), false)]);
    let err = c.fails(&["vm", "snapshot", "create", "web1", "bad/name"]);
    assert!(err.contains("invalid snapshot name"), "{err}");
}
